//! A world for storage integration tests: a real Key Vault server and a real storage server on
//! 127.0.0.1:0, over real gRPC (Network::Tcp), both on one scaled tokio clock so that simulated
//! hours pass in real seconds. Waits are bounded polling loops on the servers' answers; nothing
//! asserts on wall-clock durations.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
pub use cmksim_proto::common::v1::DropReason;
use cmksim_proto::identity::v1 as idpb;
use cmksim_proto::keyvault::v1 as kvpb;
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::net::Network;
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use cmksim_storage::{StorageConfig, StorageServer};
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const RG: &str = "rg1";
pub const REGION: &str = "westeurope";
/// Simulated seconds per real second.
pub const TIME_SCALE: f64 = 1800.0;
/// Real-time bound of every wait.
const WAIT_ROUNDS: u32 = 3000;
const WAIT_STEP: Duration = Duration::from_millis(10);

pub fn profile(name: &str, extra: &str) -> Profile {
    let text = format!(
        "[cluster]\nprovisioning_duration = \"2m\"\nkey_update_duration = \"1m\"\nlink_duration = \"2m\"\nunlink_duration = \"2m\"\n{extra}"
    );
    let table: toml::Table = text.parse().unwrap();
    Profile::builtin_with_overrides(name, Some(&table)).unwrap()
}

pub struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub clock: Clock,
    pub events: EventLog,
    pub profile: Profile,
    pub kv_uri: String,
    pub kv: kvpb::key_vault_client::KeyVaultClient<Channel>,
    pub chaos: kvpb::chaos_control_client::ChaosControlClient<Channel>,
    pub identity: idpb::identity_client::IdentityClient<Channel>,
    pub clusters: pb::clusters_client::ClustersClient<Channel>,
    pub workspaces: pb::workspaces_client::WorkspacesClient<Channel>,
    pub data: pb::data_plane_client::DataPlaneClient<Channel>,
    /// The channel to the storage server now running (replaced by a restart).
    pub storage_channel: Channel,
    authority: Authority,
    pub tenant: String,
    pub admin_oid: String,
    admin_secret: String,
    kv_server: Option<Running>,
    storage: Option<Running>,
}

/// The identity authority the Key Vault server hosts (cluster storage's principal is made there).
type Authority = std::sync::Arc<std::sync::Mutex<cmksim_identity::IdentityAuthority>>;

async fn start_keyvault(
    dir: &Path,
    clock: Clock,
    events: EventLog,
) -> (String, Running, Authority) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = KeyVaultServer::open(
        dir,
        clock,
        SeedTree::new(7),
        events,
        KeyVaultConfig {
            os_key_material: false,
            without_hsm: false,
            key_material_seed: None,
        },
    )
    .unwrap();
    let authority = server.identity();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(listener), async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), Running { stop, task }, authority)
}

async fn start_storage(
    dir: &Path,
    clock: Clock,
    events: EventLog,
    profile: Profile,
    kv_uri: &str,
    authority: &Authority,
) -> (String, Running) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = StorageConfig::new(
        dir,
        clock,
        SeedTree::new(11),
        events,
        profile,
        Network::Tcp,
        kv_uri,
    )
    .with_principal_of(authority)
    .unwrap();
    let server = StorageServer::open(config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(listener), async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}"), Running { stop, task })
}

fn channel(uri: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(uri.to_string())
        .unwrap()
        .connect_lazy()
}

pub fn req<T>(token: &str, message: T) -> tonic::Request<T> {
    cmksim_setup::authorized(token, message).expect("a token is a header value")
}

impl World {
    pub async fn start(profile: Profile) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::tokio(SimTime(1_700_000_000_000), TIME_SCALE);
        let events = EventLog::default();
        let (kv_uri, kv_server, authority) =
            start_keyvault(&dir.path().join("kv"), clock.clone(), events.clone()).await;
        let (st_uri, storage) = start_storage(
            &dir.path().join("storage"),
            clock.clone(),
            events.clone(),
            profile.clone(),
            &kv_uri,
            &authority,
        )
        .await;
        let kvc = channel(&kv_uri);
        let stc = channel(&st_uri);
        let identity = idpb::identity_client::IdentityClient::new(kvc.clone());
        // The identity authority's bootstrap administrator, from the file it wrote on its first
        // start; it makes the tenant and the test's principal.
        let root = cmksim_identity::AdminCredentials::load(
            &cmksim_identity::authority::admin_credentials_path(
                &dir.path().join("kv").join("identity"),
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let admin = cmksim_setup::tenant_and_operator(kvc.clone(), &root, "admin")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        World {
            dir,
            clock,
            events,
            profile,
            kv_uri,
            kv: kvpb::key_vault_client::KeyVaultClient::new(kvc.clone()),
            chaos: kvpb::chaos_control_client::ChaosControlClient::new(kvc),
            identity,
            clusters: pb::clusters_client::ClustersClient::new(stc.clone()),
            workspaces: pb::workspaces_client::WorkspacesClient::new(stc.clone()),
            data: pb::data_plane_client::DataPlaneClient::new(stc.clone()),
            storage_channel: stc,
            authority,
            tenant: admin.tenant_id,
            admin_oid: admin.object_id,
            admin_secret: admin.secret,
            kv_server: Some(kv_server),
            storage: Some(storage),
        }
    }

    /// The tokens of a new first-party service principal `display_name` (Reader at `/`), made in
    /// the world's identity authority: Sentinel's (it registers Cosmos DB principals with them).
    pub fn first_party_tokens(
        &self,
        display_name: &str,
    ) -> std::sync::Arc<cmksim_identity::TokenSource> {
        let (principal, secret) = self
            .authority
            .lock()
            .unwrap()
            .create_service_principal(display_name, &[cmksim_identity::Role::Reader])
            .unwrap();
        cmksim_identity::TokenSource::new(
            channel(&self.kv_uri),
            &principal.object_id,
            &secret,
            self.clock.clone(),
        )
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn kv_dir(&self) -> PathBuf {
        self.dir.path().join("kv")
    }

    pub fn now(&self) -> SimTime {
        self.clock.now()
    }

    /// Stops the storage server and opens a new one on the same directory.
    pub async fn restart_storage(&mut self) {
        self.storage.take().unwrap().stop().await;
        let (st_uri, storage) = start_storage(
            &self.storage_dir(),
            self.clock.clone(),
            self.events.clone(),
            self.profile.clone(),
            &self.kv_uri,
            &self.authority,
        )
        .await;
        let stc = channel(&st_uri);
        self.clusters = pb::clusters_client::ClustersClient::new(stc.clone());
        self.workspaces = pb::workspaces_client::WorkspacesClient::new(stc.clone());
        self.data = pb::data_plane_client::DataPlaneClient::new(stc.clone());
        self.storage_channel = stc;
        self.storage = Some(storage);
    }

    /// Stops both servers, keeping the directories (for scanning).
    pub async fn stop_servers(&mut self) {
        if let Some(s) = self.storage.take() {
            s.stop().await;
        }
        if let Some(k) = self.kv_server.take() {
            k.stop().await;
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(s) = self.storage.take() {
            s.stop().await;
        }
        if let Some(k) = self.kv_server.take() {
            k.stop().await;
        }
    }

    pub async fn token(&mut self, audience: &str) -> String {
        self.identity
            .issue_token(idpb::IssueTokenRequest {
                object_id: self.admin_oid.clone(),
                secret: self.admin_secret.clone(),
                audience: audience.into(),
                lifetime_seconds: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .token
    }

    pub async fn mgmt(&mut self) -> String {
        self.token("https://management.azure.com").await
    }

    pub async fn vault_token(&mut self) -> String {
        self.token("https://vault.azure.net").await
    }

    /// A vault with soft delete and purge protection, the admin allowed everything.
    pub async fn vault(&mut self, name: &str, purge_protection: bool) {
        self.vault_of_sku(name, purge_protection, kvpb::Sku::Standard)
            .await
    }

    pub async fn vault_of_sku(&mut self, name: &str, purge_protection: bool, sku: kvpb::Sku) {
        let t = self.mgmt().await;
        let perms = [
            "get",
            "list",
            "create",
            "update",
            "delete",
            "recover",
            "purge",
            "wrapKey",
            "unwrapKey",
            "encrypt",
            "decrypt",
            "rotate",
        ];
        self.kv
            .create_vault(req(
                &t,
                kvpb::CreateVaultRequest {
                    name: name.into(),
                    location: REGION.into(),
                    tenant_id: self.tenant.clone(),
                    sku: sku as i32,
                    enable_soft_delete: Some(true),
                    soft_delete_retention_in_days: Some(7),
                    enable_purge_protection: purge_protection,
                    access_policies: vec![kvpb::AccessPolicy {
                        tenant_id: self.tenant.clone(),
                        object_id: self.admin_oid.clone(),
                        key_permissions: perms.iter().map(|p| p.to_string()).collect(),
                    }],
                    subscription_id: SUB.into(),
                    resource_group: RG.into(),
                },
            ))
            .await
            .unwrap();
    }

    /// An RSA key; returns its version.
    pub async fn key(&mut self, vault: &str, name: &str) -> String {
        self.key_of_type(vault, name, "RSA").await
    }

    /// A key of type `kty` (`RSA`, `RSA-HSM`); returns its version.
    pub async fn key_of_type(&mut self, vault: &str, name: &str, kty: &str) -> String {
        let t = self.vault_token().await;
        let k = self
            .kv
            .create_key(req(
                &t,
                kvpb::CreateKeyRequest {
                    vault_name: vault.into(),
                    key_name: name.into(),
                    kty: kty.into(),
                    key_size: 2048,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        version_of(&k.key.unwrap().kid)
    }

    pub async fn rotate(&mut self, vault: &str, name: &str) -> String {
        let t = self.vault_token().await;
        let k = self
            .kv
            .rotate_key(req(&t, key_ref(vault, name, "")))
            .await
            .unwrap()
            .into_inner();
        version_of(&k.key.unwrap().kid)
    }

    pub async fn set_key_enabled(&mut self, vault: &str, name: &str, version: &str, on: bool) {
        let t = self.vault_token().await;
        self.kv
            .update_key(req(
                &t,
                kvpb::UpdateKeyRequest {
                    key: Some(key_ref(vault, name, version)),
                    enabled: Some(on),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    pub async fn grant(&mut self, vault: &str, object_id: &str, perms: &[&str]) {
        let t = self.mgmt().await;
        self.kv
            .set_access_policy(req(
                &t,
                kvpb::SetAccessPolicyRequest {
                    vault_name: vault.into(),
                    policy: Some(kvpb::AccessPolicy {
                        tenant_id: self.tenant.clone(),
                        object_id: object_id.into(),
                        key_permissions: perms.iter().map(|p| p.to_string()).collect(),
                    }),
                },
            ))
            .await
            .unwrap();
    }

    pub async fn chaos(&mut self, mode: kvpb::ChaosMode) {
        self.chaos
            .set_chaos(kvpb::ChaosSettings {
                mode: mode as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// An HSM fault ("ok", "device-error", "latency", "tamper").
    pub async fn hsm_fault(&mut self, mode: &str) -> kvpb::HsmFaultStatus {
        self.chaos
            .set_hsm_fault(kvpb::HsmFaultRequest {
                mode: mode.into(),
                latency_ms: 0,
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub fn cluster_ref(name: &str) -> pb::ClusterRef {
        pb::ClusterRef {
            subscription_id: SUB.into(),
            resource_group: RG.into(),
            cluster_name: name.into(),
        }
    }

    pub fn cluster_id(name: &str) -> String {
        format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/clusters/{name}")
    }

    pub fn ws_ref(name: &str) -> pb::WorkspaceRef {
        pb::WorkspaceRef {
            subscription_id: SUB.into(),
            resource_group: RG.into(),
            workspace_name: name.into(),
        }
    }

    pub fn ws_id(name: &str) -> String {
        format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/{name}")
    }

    pub async fn create_cluster(
        &mut self,
        name: &str,
    ) -> Result<pb::ClusterOperation, tonic::Status> {
        self.clusters
            .create_cluster(cmksim_setup::cluster_request(
                Self::cluster_ref(name),
                REGION,
                &self.tenant,
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Creates a cluster, waits until provisioned, grants its identity get/wrapKey/unwrapKey on
    /// `vault`, and returns its identity's object id.
    pub async fn provisioned_cluster(&mut self, name: &str, vault: &str) -> String {
        let op = self.create_cluster(name).await.unwrap();
        let oid = op.cluster.unwrap().identity.unwrap().principal_id;
        self.wait_provisioning(name, "Succeeded").await;
        self.wait_state(name, &["healthy_mmk"]).await;
        self.grant(vault, &oid, &["get", "wrapKey", "unwrapKey"])
            .await;
        oid
    }

    pub async fn wait_provisioning(&mut self, name: &str, want: &str) -> pb::Cluster {
        for _ in 0..WAIT_ROUNDS {
            if let Ok(c) = self.clusters.get_cluster(Self::cluster_ref(name)).await {
                let c = c.into_inner();
                if c.provisioning_state == want {
                    return c;
                }
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("cluster {name} never reached provisioning state {want}");
    }

    pub async fn state(&mut self, name: &str) -> pb::StorageState {
        self.data
            .get_storage_state(Self::cluster_ref(name))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn wait_state(&mut self, name: &str, want: &[&str]) -> pb::StorageState {
        let mut last = String::new();
        for _ in 0..WAIT_ROUNDS {
            let s = self.state(name).await;
            if want.contains(&s.state().label()) {
                return s;
            }
            last = s.state().label().to_string();
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("cluster {name} never reached {want:?} (last {last})");
    }

    /// Simulated time passes (bounded).
    pub async fn sleep_sim(&self, d: Duration) {
        let until = self.now().add(d);
        for _ in 0..WAIT_ROUNDS * 10 {
            if self.now() >= until {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("simulated time did not pass");
    }

    pub async fn workspace(&mut self, name: &str) {
        self.workspaces
            .create_workspace(pb::CreateWorkspaceRequest {
                workspace: Some(Self::ws_ref(name)),
                location: REGION.into(),
                retention_in_days: 0,
            })
            .await
            .unwrap();
    }

    pub async fn link(&mut self, ws: &str, cluster: &str) {
        self.workspaces
            .link_workspace(pb::LinkWorkspaceRequest {
                workspace: Some(Self::ws_ref(ws)),
                cluster: Some(Self::cluster_ref(cluster)),
            })
            .await
            .unwrap();
        for _ in 0..WAIT_ROUNDS {
            let w = self
                .workspaces
                .get_workspace(Self::ws_ref(ws))
                .await
                .unwrap()
                .into_inner();
            if w.link_state == "Linked" {
                return;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("workspace {ws} never linked");
    }

    pub async fn update_key(
        &mut self,
        cluster: &str,
        vault: &str,
        key: &str,
        version: &str,
    ) -> Result<pb::ClusterOperation, tonic::Status> {
        self.clusters
            .update_cluster(pb::UpdateClusterRequest {
                cluster: Some(Self::cluster_ref(cluster)),
                key_vault_properties: Some(pb::KeyVaultProperties {
                    key_vault_uri: format!("https://{vault}.vault.azure.net"),
                    key_name: key.into(),
                    key_version: version.into(),
                }),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Key update, then waits for the operation to finish and the storage to be healthy under
    /// the CMK at `want_version`.
    pub async fn update_key_and_wait(
        &mut self,
        cluster: &str,
        vault: &str,
        key: &str,
        version: &str,
        want_version: &str,
    ) {
        self.update_key(cluster, vault, key, version).await.unwrap();
        self.wait_provisioning(cluster, "Succeeded").await;
        for _ in 0..WAIT_ROUNDS {
            let s = self.state(cluster).await;
            if s.state() == pb::StorageStateName::HealthyCmk && s.key_kid.ends_with(want_version) {
                return;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("cluster {cluster} never became healthy_cmk under {want_version}");
    }

    /// Appends one Heartbeat record per body (`Computer` = the body, `Seq` = its index).
    pub async fn append(&mut self, ws: &str, bodies: &[String]) -> pb::AppendResponse {
        let now = self.now().0;
        self.data
            .append(pb::AppendRequest {
                workspace_id: Self::ws_id(ws),
                table: "Heartbeat".into(),
                records: bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| pb::Record {
                        time_unix_ms: now,
                        columns: vec![
                            column("Computer", pb::value::Kind::StringValue(b.clone())),
                            column("Seq", pb::value::Kind::LongValue(i as i64)),
                        ],
                    })
                    .collect(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn query(&mut self, ws: &str) -> Result<pb::QueryResponse, tonic::Status> {
        self.data
            .query(pb::QueryRequest {
                workspace_id: Self::ws_id(ws),
                table: "Heartbeat".into(),
                from_unix_ms: 0,
                to_unix_ms: i64::MAX,
                limit: 0,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    pub fn events_of(&self, kind: &str) -> Vec<cmksim_sim::Event> {
        self.events.of_kind(kind)
    }

    /// Waits (bounded) until at least one event of `kind` was recorded. Effects such as the hot
    /// cache rebuild are applied just after the state transition that causes them, so a test
    /// that saw the new state must wait for the effect's event rather than expect it already.
    pub async fn wait_event(&self, kind: &str) -> Vec<cmksim_sim::Event> {
        for _ in 0..WAIT_ROUNDS {
            let found = self.events.of_kind(kind);
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
        panic!("no {kind} event was recorded");
    }
}

pub fn key_ref(vault: &str, key: &str, version: &str) -> kvpb::KeyRef {
    kvpb::KeyRef {
        vault_name: vault.into(),
        key_name: key.into(),
        version: version.into(),
    }
}

pub fn version_of(kid: &str) -> String {
    cmksim_proto::kid::version_of(kid)
}

/// `n` distinct `Computer` names.
pub fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

pub fn column(name: &str, kind: pb::value::Kind) -> pb::Column {
    pb::Column {
        name: name.into(),
        value: Some(pb::Value { kind: Some(kind) }),
    }
}

/// The `Computer` column of a record read back ("" when absent or not a string).
pub fn computer(record: &pb::Record) -> &str {
    record
        .columns
        .iter()
        .find(|c| c.name == "Computer")
        .and_then(|c| c.value.as_ref()?.kind.as_ref())
        .map(|k| match k {
            pb::value::Kind::StringValue(s) => s.as_str(),
            _ => "",
        })
        .unwrap_or("")
}

pub fn stored_count(r: &pb::AppendResponse) -> usize {
    r.record_outcomes()
        .filter(|o| {
            matches!(
                o,
                Some(pb::RecordOutcome {
                    outcome: Some(pb::record_outcome::Outcome::Stored(_)),
                    ..
                })
            )
        })
        .count()
}

pub fn buffered_count(r: &pb::AppendResponse) -> usize {
    r.record_outcomes()
        .filter(|o| {
            matches!(
                o,
                Some(pb::RecordOutcome {
                    outcome: Some(pb::record_outcome::Outcome::Buffered(_)),
                    ..
                })
            )
        })
        .count()
}

pub fn dropped_with(r: &pb::AppendResponse, reason: DropReason) -> usize {
    r.record_outcomes()
        .filter(|o| {
            o.and_then(|o| o.outcome.as_ref())
                == Some(&pb::record_outcome::Outcome::Dropped(reason as i32))
        })
        .count()
}

/// Record `i`'s outcome in an append's answer.
pub fn outcome_at(r: &pb::AppendResponse, i: usize) -> &pb::RecordOutcome {
    r.record_outcomes()
        .nth(i)
        .flatten()
        .unwrap_or_else(|| panic!("no outcome for record {i}: {r:?}"))
}
