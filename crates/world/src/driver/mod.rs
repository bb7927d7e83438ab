//! The driver: the scenario's hands.
//!
//! It runs as a turmoil client. First it builds the world (tenants, principals, vaults, keys,
//! access policies, clusters, workspaces) through the services' gRPC APIs, as a person would
//! with PowerShell or REST, and waits for the asynchronous operations to finish; the moment the
//! world stands is T+0. Then it walks the timeline: it sleeps (virtual time) until each step's
//! offset, records the step, applies it, and records the result, `scenario.step.ok` or
//! `scenario.step.failed` with the Azure code and message the service answered. Faults that need
//! the simulation itself (crash, restart) are handed to the harness through [`HarnessCommands`].
//!
//! The driver never decides what the services do; it only acts and writes down what it did.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_identity::{AuthChannel, CredentialSlot, TokenSource};
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_scenario::model::{
    self, Action, Fault, HsmFault, Scenario, ScheduledKind, StepKind, VaultFault,
};
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, SimTime};
use serde_json::json;
use tonic::transport::Channel;

use crate::names::{Credential, Names};

mod byos;
mod cluster;
mod lifecycle;
mod lockbox;
mod sentinel;
mod traffic;

pub use traffic::{agent_config, synthetic_records};

/// Where the services listen inside the simulation.
pub const KEYVAULT_URI: &str = "http://keyvault:50051";
pub const STORAGE_URI: &str = "http://storage:50052";
pub const INGEST_URI: &str = "http://ingest:50053";
/// Sentinel (seed 002), hosted like the others.
pub const SENTINEL_URI: &str = "http://sentinel:50054";

/// Where the driver finds the three services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Key Vault, which also hosts the identity authority.
    pub keyvault: String,
    pub storage: String,
    pub ingest: String,
}

impl Endpoints {
    /// Sentinel's address: `sentinel:50054` in the simulation; live, the port after ingest's on
    /// ingest's host (where `serve all` puts it).
    pub fn sentinel_uri(&self) -> String {
        if self.ingest == INGEST_URI {
            return SENTINEL_URI.to_string();
        }
        match self.ingest.rsplit_once(':') {
            Some((host, port)) => match port.trim_end_matches('/').parse::<u16>() {
                Ok(port) if port < u16::MAX => format!("{host}:{}", port + 1),
                _ => SENTINEL_URI.to_string(),
            },
            None => SENTINEL_URI.to_string(),
        }
    }

    /// The services' addresses inside the simulation.
    pub fn simulated() -> Endpoints {
        Endpoints {
            keyvault: KEYVAULT_URI.into(),
            storage: STORAGE_URI.into(),
            ingest: INGEST_URI.into(),
        }
    }
}

/// The ARM id the driver gives a scenario's workspace (queries name workspaces by it).
pub fn workspace_resource_id(name: &str) -> String {
    Driver::workspace_id(name)
}

/// How the driver applies the faults that are not a service's own chaos control.
#[derive(Clone)]
pub enum Faults {
    /// In simulated time: network faults through turmoil, crash and restart through the harness.
    Simulated(HarnessCommands),
    /// In the event-driven engine: network faults on its in-memory network, crash and restart
    /// by its hosts, at once.
    Events(Arc<crate::engine::Hosts>),
    /// Against live processes: only the services' chaos controls (Key Vault, HSM) are within
    /// reach; a scenario needing more is refused before it starts ([`network_faults`]).
    Live,
}

/// The steps of `scenario` whose faults only the simulation can apply (partition, hold,
/// release, repair, crash, restart, link quality): `(line, step label, fault)`.
pub fn network_faults(scenario: &Scenario) -> Vec<(usize, String, String)> {
    scenario
        .timeline
        .iter()
        .filter_map(|step| match &step.what {
            StepKind::Fault { fault, .. } if needs_simulation(fault) => {
                Some((step.line, step.label(), fault.describe()))
            }
            _ => None,
        })
        .collect()
}

fn needs_simulation(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::Partition(..)
            | Fault::Repair(..)
            | Fault::Hold(..)
            | Fault::Release(..)
            | Fault::Crash(_)
            | Fault::Restart(_)
            | Fault::Link(..)
    )
}

/// The steps of `scenario` that set a link's quality, which only the event-driven engine's
/// network has (turmoil's hosts cannot reach theirs): `(line, step label, fault)`.
pub fn link_faults(scenario: &Scenario) -> Vec<(usize, String, String)> {
    scenario
        .timeline
        .iter()
        .filter_map(|step| match &step.what {
            StepKind::Fault { fault, .. } if matches!(fault, Fault::Link(..)) => {
                Some((step.line, step.label(), fault.describe()))
            }
            _ => None,
        })
        .collect()
}

const VAULT_AUDIENCE: &str = "https://vault.azure.net";
const MANAGEMENT_AUDIENCE: &str = "https://management.azure.com";

/// Requests from the driver to the harness, for faults only the simulation can apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HarnessCommand {
    Crash(String),
    Restart(String),
    /// The world is built: T+0 (the harness starts pacing a `--speed` run from here).
    Started,
}

/// A queue the driver fills and the harness drains between simulation steps.
pub type HarnessCommands = Arc<Mutex<Vec<HarnessCommand>>>;

/// Why a step failed, as the service said it (or as the driver itself refused it).
#[derive(Debug)]
pub struct StepError {
    pub code: String,
    /// The HTTP status a service answered with; `None` when no service answered (the driver's
    /// own refusal, e.g. a key version the vault does not have, or a transport error).
    pub status: Option<u32>,
    pub message: String,
    /// The scenario line that declared the entity a world set-up call was for.
    pub line: Option<usize>,
}

impl StepError {
    /// The error of setting up the entity declared at `line`.
    pub fn declared_at(mut self, line: usize) -> StepError {
        self.line.get_or_insert(line);
        self
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status} {} {}", self.code, self.message),
            None => write!(f, "{} {}", self.code, self.message),
        }
    }
}

impl From<tonic::Status> for StepError {
    fn from(status: tonic::Status) -> Self {
        let azure = cmksim_keyvault::azure_error(&status);
        match azure {
            Some(a) => StepError {
                code: a.code,
                status: Some(a.http_status),
                line: None,
                message: a.message,
            },
            None => StepError {
                code: format!("{:?}", status.code()),
                status: None,
                line: None,
                message: status.message().to_string(),
            },
        }
    }
}

impl StepError {
    fn unknown(what: &str, name: &str) -> StepError {
        StepError {
            code: "UnknownName".into(),
            status: None,
            line: None,
            message: format!("unknown {what} {name:?}"),
        }
    }

    fn setup(message: String) -> StepError {
        StepError {
            code: "SetupFailed".into(),
            status: None,
            line: None,
            message,
        }
    }
}

impl From<crate::names::UnknownName> for StepError {
    fn from(e: crate::names::UnknownName) -> Self {
        StepError {
            code: "UnknownName".into(),
            status: None,
            line: None,
            message: e.to_string(),
        }
    }
}

/// Serialises a scenario enum to its file-format word (`wrapKey`, `unwrapKey`, ...).
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The driver client.
pub struct Driver {
    scenario: Arc<Scenario>,
    events: EventLog,
    clock: Clock,
    faults: Faults,
    names: Names,
    /// The identity service; its administrative calls carry the bootstrap administrator's token
    /// ([`Driver::admin`]).
    identity: idp::identity_client::IdentityClient<AuthChannel>,
    /// The identity authority's bootstrap administrator: the simulated world's Key Vault host
    /// provisions it ([`crate::auth::WorldAuth::admin`]), `run --live` reads it from the
    /// services' data directory ([`Driver::with_admin`]).
    admin: CredentialSlot,
    keyvault: kvp::key_vault_client::KeyVaultClient<Channel>,
    chaos: kvp::chaos_control_client::ChaosControlClient<Channel>,
    // Storage, ingest and Sentinel check tokens: these channels attach the driver's own
    // (`crate::auth`), obtained once its principal is provisioned at the start of set-up.
    clusters: cmksim_proto::storage::v1::clusters_client::ClustersClient<AuthChannel>,
    workspaces: cmksim_proto::storage::v1::workspaces_client::WorkspacesClient<AuthChannel>,
    ingestion: cmksim_proto::ingest::v1::ingestion_client::IngestionClient<AuthChannel>,
    query: cmksim_proto::ingest::v1::query_client::QueryClient<AuthChannel>,
    /// Sentinel (seed 002); its channel is lazy, so a scenario without Sentinel never connects.
    sentinel: cmksim_proto::sentinel::v1::sentinel_client::SentinelClient<AuthChannel>,
    /// Customer Lockbox (`storage.v1.Lockbox`), on the storage channel.
    lockbox: cmksim_proto::storage::v1::lockbox_client::LockboxClient<AuthChannel>,
    /// The same, with the support engineer's own token ([`lockbox`]): the requester of a
    /// Lockbox request and of an access check is the token's principal.
    engineer_lockbox: cmksim_proto::storage::v1::lockbox_client::LockboxClient<AuthChannel>,
    /// The ingest front end's queries with the support engineer's own token: the front end's
    /// guard lets them through only under an approved, unexpired Lockbox request.
    engineer_query: cmksim_proto::ingest::v1::query_client::QueryClient<AuthChannel>,
    /// The support engineer's credentials, made by the administrator at the first
    /// `lockbox-request` step.
    engineer: CredentialSlot,
    /// Queries in the customer's storage (`storage.v1.Byos`, seed 000), on the storage channel.
    byos: cmksim_proto::storage::v1::byos_client::ByosClient<AuthChannel>,
    /// The Lockbox request each `lockbox-request` step made, by step label ([`lockbox`]): its
    /// id and its workspace (a decision names both).
    lockbox_requests: BTreeMap<String, (String, cmksim_proto::storage::v1::WorkspaceRef)>,
    /// The label of the step being applied (Lockbox requests are remembered by it).
    step_label: String,
    /// The driver's own principal's credentials (provisioned at the start of set-up), and the
    /// identity authority's channel it provisions principals on.
    credentials: CredentialSlot,
    identity_channel: Channel,
    /// The simulated services' credentials, provisioned by the driver too (`None`: live
    /// services, which have their own).
    auth: Option<crate::auth::WorldAuth>,
    /// Clusters created by timeline steps (the world's are in the scenario).
    created_clusters: Vec<model::Cluster>,
    seeds: cmksim_sim::SeedTree,
    /// Set when the world is built: the simulated time of T+0.
    start: SimTime,
    /// Steps from the live dashboard's levers, played between timeline steps; `None` (no
    /// dashboard) keeps the timeline loop exactly as it is without one.
    levers: Option<crate::control::LeverQueue>,
}

impl Driver {
    pub fn new(
        scenario: Arc<Scenario>,
        events: EventLog,
        clock: Clock,
        faults: Faults,
        network: Network,
        endpoints: &Endpoints,
        seeds: cmksim_sim::SeedTree,
    ) -> Result<Driver, cmksim_sim::net::EndpointError> {
        let timeouts = ClientTimeouts::default();
        let kv_channel = network.channel(&endpoints.keyvault, timeouts)?;
        let storage_channel = network.channel(&endpoints.storage, timeouts)?;
        let ingest_channel = network.channel(&endpoints.ingest, timeouts)?;
        let sentinel_channel = network.channel(&endpoints.sentinel_uri(), timeouts)?;
        let credentials = CredentialSlot::new();
        let admin = CredentialSlot::new();
        let identity = idp::identity_client::IdentityClient::new(crate::auth::admin_channel(
            kv_channel.clone(),
            &admin,
            clock.clone(),
        ));
        let tokens =
            TokenSource::provisioned(kv_channel.clone(), credentials.clone(), clock.clone());
        let engineer = CredentialSlot::new();
        let raw_storage_channel = storage_channel.clone();
        let raw_ingest_channel = ingest_channel.clone();
        let engineer_tokens =
            TokenSource::provisioned(kv_channel.clone(), engineer.clone(), clock.clone());
        let with_tokens = |channel| AuthChannel::new(channel, Some(tokens.clone()));
        let (storage_channel, ingest_channel, sentinel_channel) = (
            with_tokens(storage_channel),
            with_tokens(ingest_channel),
            with_tokens(sentinel_channel),
        );
        Ok(Driver {
            credentials,
            identity_channel: kv_channel.clone(),
            auth: None,
            sentinel: cmksim_proto::sentinel::v1::sentinel_client::SentinelClient::new(
                sentinel_channel,
            ),
            clusters: cmksim_proto::storage::v1::clusters_client::ClustersClient::new(
                storage_channel.clone(),
            ),
            lockbox: cmksim_proto::storage::v1::lockbox_client::LockboxClient::new(
                storage_channel.clone(),
            ),
            engineer_lockbox: cmksim_proto::storage::v1::lockbox_client::LockboxClient::new(
                AuthChannel::new(raw_storage_channel, Some(engineer_tokens.clone())),
            ),
            engineer_query: cmksim_proto::ingest::v1::query_client::QueryClient::new(
                AuthChannel::new(raw_ingest_channel, Some(engineer_tokens)),
            ),
            engineer,
            byos: cmksim_proto::storage::v1::byos_client::ByosClient::new(storage_channel.clone()),
            lockbox_requests: BTreeMap::new(),
            step_label: String::new(),
            workspaces: cmksim_proto::storage::v1::workspaces_client::WorkspacesClient::new(
                storage_channel,
            ),
            ingestion: cmksim_proto::ingest::v1::ingestion_client::IngestionClient::new(
                ingest_channel.clone(),
            ),
            query: cmksim_proto::ingest::v1::query_client::QueryClient::new(ingest_channel),
            created_clusters: Vec::new(),
            seeds,
            scenario,
            events,
            start: clock.now(),
            clock,
            faults,
            levers: None,
            names: Names::default(),
            identity,
            admin,
            keyvault: kvp::key_vault_client::KeyVaultClient::new(kv_channel.clone()),
            chaos: kvp::chaos_control_client::ChaosControlClient::new(kv_channel),
        })
    }

    /// Provisions the simulated services' principals into `auth` when it builds the world.
    pub fn with_auth(mut self, auth: crate::auth::WorldAuth) -> Driver {
        self.admin = auth.admin.clone();
        self.identity = idp::identity_client::IdentityClient::new(crate::auth::admin_channel(
            self.identity_channel.clone(),
            &self.admin,
            self.clock.clone(),
        ));
        self.auth = Some(auth);
        self
    }

    /// Makes principals and role assignments as the administrator of `admin` (live services:
    /// the credentials file of their identity authority).
    pub fn with_admin(self, admin: &cmksim_identity::AdminCredentials) -> Driver {
        self.admin.set(&admin.object_id, &admin.client_secret);
        self
    }

    /// Makes the driver's principal (and, with [`Driver::with_auth`], the services'), before
    /// anything else of the world: every later call to storage, ingest or Sentinel carries a
    /// token.
    async fn provision_principals(&mut self) -> Result<(), StepError> {
        if self.admin.get().is_none() {
            // The simulated world's Key Vault host hands over its administrator when it has
            // opened the authority, before it serves: one answered call means it has.
            self.identity.get_signing_keys(idp::Empty {}).await?;
        }
        let identity = crate::auth::admin_channel(
            self.identity_channel.clone(),
            &self.admin,
            self.clock.clone(),
        );
        if self.credentials.get().is_none() {
            crate::auth::provision(
                identity.clone(),
                "cmksim-driver",
                &crate::auth::DRIVER_ROLES,
                &self.credentials,
            )
            .await?;
        }
        if let Some(auth) = &self.auth {
            if auth.ingest.get().is_none() {
                crate::auth::provision(
                    identity.clone(),
                    "cmksim-ingest",
                    &crate::auth::INGEST_ROLES,
                    &auth.ingest,
                )
                .await?;
            }
            if auth.sentinel.get().is_none() {
                crate::auth::provision(
                    identity.clone(),
                    cmksim_identity::directory::SENTINEL_PROVIDER_NAME,
                    &crate::auth::SENTINEL_ROLES,
                    &auth.sentinel,
                )
                .await?;
            }
            if auth.storage.get().is_none() {
                crate::auth::provision(
                    identity,
                    cmksim_identity::directory::STORAGE_PROVIDER_NAME,
                    &crate::auth::STORAGE_ROLES,
                    &auth.storage,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Plays the levers of `queue` (the live dashboard's) between timeline steps.
    pub(crate) fn with_levers(mut self, mut queue: crate::control::LeverQueue) -> Driver {
        queue.first_index = self.scenario.timeline.len();
        self.levers = Some(queue);
        self
    }

    /// Builds the world, then plays the timeline to the scenario's end.
    pub async fn run(mut self) -> Result<(), StepError> {
        self.build_world().await?;
        self.start = self.clock.now();
        self.push(HarnessCommand::Started);
        self.start_agents();
        self.start_sentinel_incidents();
        self.start_query_probes();
        let meta = &self.scenario.meta;
        self.events.record_raw(
            self.start,
            "scenario",
            "scenario.started",
            format!("scenario {} starts: {}", meta.name, meta.title),
            json!({
                "name": meta.name,
                "seed": meta.seed,
                "profile": meta.profile_name,
                "duration_ms": meta.duration.as_millis() as u64,
            }),
        );
        let scenario = self.scenario.clone();
        for scheduled in scenario.schedule() {
            self.wait_until_offset(scheduled.offset).await;
            match scheduled.what {
                ScheduledKind::Run => self.play_step(scheduled.step).await,
                ScheduledKind::Restore(fault) => self.restore_fault(scheduled.step, fault).await,
            }
        }
        self.wait_until_offset(scenario.meta.duration).await;
        self.record_audit_probes().await;
        self.events.record_raw(
            self.clock.now(),
            "scenario",
            "scenario.finished",
            format!("scenario {} finished", scenario.meta.name),
            json!({}),
        );
        Ok(())
    }

    async fn sleep_until_offset(&self, offset: Duration) {
        self.clock.sleep_until(self.start.add(offset)).await;
    }

    /// Sleeps until `offset`; with a lever queue, plays each lever pulled meanwhile as a step
    /// (through [`Driver::play_step`], like the timeline's own). Bounded: the wait ends at
    /// `offset` whatever arrives, and each lever is one step.
    async fn wait_until_offset(&mut self, offset: Duration) {
        let deadline = self.start.add(offset);
        loop {
            let Some(queue) = self.levers.as_mut() else {
                return self.sleep_until_offset(offset).await;
            };
            let elapsed = self.clock.now().since(self.start);
            let pulled = tokio::select! {
                biased;
                () = self.clock.sleep_until(deadline) => return,
                step = queue.next(elapsed) => step,
            };
            match pulled {
                Some(step) => self.play_step(&step).await,
                // The dashboard is gone: the timeline goes on alone.
                None => self.levers = None,
            }
        }
    }

    /// Records and applies one step.
    async fn play_step(&mut self, step: &model::Step) {
        let label = step.label();
        let what = match &step.what {
            StepKind::Action(action) => action.name().to_string(),
            StepKind::Fault { fault, .. } => fault.describe(),
            StepKind::Narrate => "narrate".to_string(),
        };
        let now = self.clock.now();
        self.events.record_raw(
            now,
            "scenario",
            "scenario.step",
            format!("step {label}: {what}"),
            json!({ "step": label, "index": step.index, "what": what }),
        );
        if let Some(text) = &step.narrate {
            self.events.record_raw(
                now,
                "scenario",
                "scenario.narrate",
                text.clone(),
                json!({ "step": label, "text": text }),
            );
        }
        match &step.what {
            StepKind::Narrate => {}
            StepKind::Action(action) => {
                self.step_label = label.clone();
                let result = self.apply_action(action).await;
                self.record_result(&label, action.name(), result);
            }
            StepKind::Fault { fault, .. } => self.apply_fault(&label, *fault).await,
        }
    }

    fn record_result(&self, label: &str, action: &str, result: Result<(), StepError>) {
        let now = self.clock.now();
        match result {
            Ok(()) => {
                self.events.record_raw(
                    now,
                    "scenario",
                    "scenario.step.ok",
                    format!("step {label}: {action} succeeded"),
                    json!({ "step": label, "action": action }),
                );
            }
            Err(e) => {
                self.events.record_raw(
                    now,
                    "scenario",
                    "scenario.step.failed",
                    format!("step {label}: {action} failed: {e}"),
                    json!({
                        "step": label,
                        "action": action,
                        "error_code": e.code,
                        "status": e.status,
                        "message": e.message,
                    }),
                );
            }
        }
    }

    // ---- tokens -------------------------------------------------------------------------

    async fn token(
        &mut self,
        credential: &Credential,
        audience: &str,
    ) -> Result<String, StepError> {
        let token = self
            .identity
            .issue_token(idp::IssueTokenRequest {
                object_id: credential.object_id.clone(),
                secret: credential.secret.clone(),
                audience: audience.to_string(),
                lifetime_seconds: 0,
            })
            .await?
            .into_inner();
        Ok(token.token)
    }

    /// A request carrying the vault tenant's operator token for `audience`.
    async fn authorized<T>(
        &mut self,
        vault: &str,
        audience: &str,
        message: T,
    ) -> Result<tonic::Request<T>, StepError> {
        let tenant_id = self.names.vault_tenant(vault)?.to_string();
        let operator = self.names.operator(&tenant_id)?.clone();
        let token = self.token(&operator, audience).await?;
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {token}").parse().map_err(|_| StepError {
            code: "BadToken".into(),
            status: None,
            line: None,
            message: "token is not ASCII".into(),
        })?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    // ---- the world ------------------------------------------------------------------------

    async fn build_world(&mut self) -> Result<(), StepError> {
        self.provision_principals().await?;
        let world = self.scenario.world.clone();
        for tenant in &world.tenants {
            let created = self
                .identity
                .create_tenant(idp::CreateTenantRequest {
                    name: tenant.name.clone(),
                    tenant_id: String::new(),
                })
                .await?
                .into_inner();
            let operator = self
                .identity
                .create_principal(idp::CreatePrincipalRequest {
                    tenant_id: created.tenant_id.clone(),
                    display_name: format!("cmksim-operator@{}", tenant.name),
                    kind: idp::PrincipalKind::User as i32,
                })
                .await?
                .into_inner();
            let principal = operator.principal.unwrap_or_default();
            self.names.operators.insert(
                created.tenant_id.clone(),
                Credential {
                    object_id: principal.object_id,
                    secret: operator.secret,
                    tenant_id: created.tenant_id.clone(),
                },
            );
            self.names
                .tenants
                .insert(tenant.name.clone(), created.tenant_id);
        }
        for user in &world.principals {
            let tenant_id = self.names.tenant_id(&user.tenant)?.to_string();
            let created = self
                .identity
                .create_principal(idp::CreatePrincipalRequest {
                    tenant_id: tenant_id.clone(),
                    display_name: user.name.clone(),
                    kind: idp::PrincipalKind::User as i32,
                })
                .await?
                .into_inner();
            let principal = created.principal.unwrap_or_default();
            self.names.users.insert(
                user.name.clone(),
                Credential {
                    object_id: principal.object_id,
                    secret: created.secret,
                    tenant_id,
                },
            );
        }
        for vault in &world.vaults {
            self.create_vault(vault)
                .await
                .map_err(|e| e.declared_at(vault.line))?;
        }
        for key in &world.keys {
            self.create_key(key)
                .await
                .map_err(|e| e.declared_at(key.line))?;
        }
        for policy in &world.access_policies {
            // Policies naming a cluster identity are set once the cluster exists.
            if matches!(
                policy.principal,
                model::PrincipalRef::User(_) | model::PrincipalRef::CosmosDb
            ) {
                self.set_access_policy(policy).await?;
            }
        }
        self.build_clusters().await?;
        self.build_storage_accounts().await?;
        self.build_sentinel().await
    }

    // ---- Key Vault actions ------------------------------------------------------------------

    async fn create_vault(&mut self, vault: &model::Vault) -> Result<(), StepError> {
        let tenant_id = self.names.tenant_id(&vault.tenant)?.to_string();
        self.names
            .vault_tenants
            .insert(vault.name.clone(), tenant_id.clone());
        let operator = self.names.operator(&tenant_id)?.clone();
        let request = kvp::CreateVaultRequest {
            name: vault.name.clone(),
            location: vault.location.clone(),
            tenant_id: tenant_id.clone(),
            sku: match vault.sku {
                model::Sku::Standard => kvp::Sku::Standard as i32,
                model::Sku::Premium => kvp::Sku::Premium as i32,
            },
            enable_soft_delete: Some(vault.soft_delete),
            soft_delete_retention_in_days: Some(vault.retention_days),
            enable_purge_protection: vault.purge_protection,
            access_policies: vec![kvp::AccessPolicy {
                tenant_id,
                object_id: operator.object_id.clone(),
                // The driver's operator owns the vaults it creates: every key permission.
                key_permissions: cmksim_keyvault::model::KeyPermission::ALL
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            }],
            subscription_id: String::new(),
            resource_group: String::new(),
        };
        let request = self
            .authorized(&vault.name, MANAGEMENT_AUDIENCE, request)
            .await?;
        self.keyvault.create_vault(request).await?;
        Ok(())
    }

    async fn create_key(&mut self, key: &model::Key) -> Result<(), StepError> {
        let request = kvp::CreateKeyRequest {
            vault_name: key.vault.clone(),
            key_name: key.name.clone(),
            kty: key.kty.as_str().to_string(),
            key_size: if key.kty.is_rsa() { key.size } else { 0 },
            curve: if key.kty.is_rsa() {
                String::new()
            } else {
                "P-256".to_string()
            },
            key_ops: key.ops.iter().map(wire).collect(),
            enabled: Some(key.enabled),
            nbf_unix_ms: None,
            exp_unix_ms: None,
            tags: BTreeMap::new().into_iter().collect(),
        };
        let request = self.authorized(&key.vault, VAULT_AUDIENCE, request).await?;
        self.keyvault.create_key(request).await?;
        Ok(())
    }

    async fn set_access_policy(&mut self, policy: &model::AccessPolicy) -> Result<(), StepError> {
        let tenant_id = self.names.vault_tenant(&policy.vault)?.to_string();
        let object_id = self
            .policy_object_id(&policy.vault, &policy.principal)
            .await?;
        let request = kvp::SetAccessPolicyRequest {
            vault_name: policy.vault.clone(),
            policy: Some(kvp::AccessPolicy {
                tenant_id,
                object_id,
                key_permissions: policy.permissions.iter().map(wire).collect(),
            }),
        };
        let request = self
            .authorized(&policy.vault, MANAGEMENT_AUDIENCE, request)
            .await?;
        self.keyvault.set_access_policy(request).await?;
        Ok(())
    }

    /// The concrete version a scenario's version selector names (`""` = newest).
    async fn resolve_version(
        &mut self,
        vault: &str,
        key: &str,
        version: &model::VersionSel,
    ) -> Result<String, StepError> {
        match version {
            model::VersionSel::Versionless | model::VersionSel::Latest => Ok(String::new()),
            model::VersionSel::Nth(n) => {
                let request = kvp::KeyRef {
                    vault_name: vault.into(),
                    key_name: key.into(),
                    version: String::new(),
                };
                let request = self.authorized(vault, VAULT_AUDIENCE, request).await?;
                let list = self.keyvault.list_key_versions(request).await?.into_inner();
                let mut versions: Vec<(i64, String)> = list
                    .keys
                    .iter()
                    .filter_map(|b| {
                        let created = b
                            .attributes
                            .as_ref()
                            .map(|a| a.created_unix_ms)
                            .unwrap_or(0);
                        let kid = b.key.as_ref()?.kid.clone();
                        Some((created, cmksim_proto::kid::version_of(&kid)))
                    })
                    .collect();
                versions.sort();
                versions
                    .get((*n as usize).saturating_sub(1))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| StepError {
                        code: "UnknownVersion".into(),
                        status: None,
                        line: None,
                        message: format!("key {key} in {vault} has no version v{n}"),
                    })
            }
        }
    }

    /// The newest version of a key, as Key Vault answers a versionless get.
    async fn newest_version(&mut self, vault: &str, key: &str) -> Result<String, StepError> {
        let request = self.newest_key_request(vault, key).await?;
        let bundle = self.keyvault.get_key(request).await?.into_inner();
        let kid = bundle.key.map(|k| k.kid).unwrap_or_default();
        Ok(cmksim_proto::kid::version_of(&kid))
    }

    /// A management request naming a vault, with the vault operator's token.
    async fn vault_request(
        &mut self,
        vault: &str,
    ) -> Result<tonic::Request<kvp::VaultRef>, StepError> {
        let reference = kvp::VaultRef {
            vault_name: vault.to_string(),
        };
        self.authorized(vault, MANAGEMENT_AUDIENCE, reference).await
    }

    /// A key request naming the key's newest version, with the vault operator's token.
    async fn newest_key_request(
        &mut self,
        vault: &str,
        key: &str,
    ) -> Result<tonic::Request<kvp::KeyRef>, StepError> {
        let reference = Self::key_ref(vault, key, String::new());
        self.authorized(vault, VAULT_AUDIENCE, reference).await
    }

    fn key_ref(vault: &str, key: &str, version: String) -> kvp::KeyRef {
        kvp::KeyRef {
            vault_name: vault.to_string(),
            key_name: key.to_string(),
            version,
        }
    }

    async fn apply_action(&mut self, action: &Action) -> Result<(), StepError> {
        match action {
            Action::EnableLockbox { .. }
            | Action::LockboxRequest { .. }
            | Action::LockboxDecide { .. }
            | Action::SupportQuery { .. } => {
                let label = self.step_label.clone();
                self.lockbox_step(&label, action).await
            }
            Action::Purge { .. } | Action::DeleteTable { .. } => self.lifecycle_step(action).await,
            Action::LinkStorageAccount { .. }
            | Action::SaveSearch { .. }
            | Action::ReadSavedSearches { .. } => self.byos_step(action).await,
            Action::Upload {
                dcr,
                stream,
                records,
            } => self.upload(dcr, stream, *records).await,
            Action::CreateVault(vault) => self.create_vault(vault).await,
            Action::UpdateVault {
                vault,
                soft_delete,
                retention_days,
                purge_protection,
            } => {
                let request = kvp::UpdateVaultRequest {
                    vault_name: vault.clone(),
                    enable_soft_delete: *soft_delete,
                    enable_purge_protection: *purge_protection,
                    soft_delete_retention_in_days: *retention_days,
                };
                let request = self.authorized(vault, MANAGEMENT_AUDIENCE, request).await?;
                self.keyvault.update_vault(request).await?;
                Ok(())
            }
            Action::DeleteVault { vault } => {
                let request = self.vault_request(vault).await?;
                self.keyvault.delete_vault(request).await?;
                Ok(())
            }
            Action::RecoverVault { vault } => {
                let request = self.vault_request(vault).await?;
                self.keyvault.recover_deleted_vault(request).await?;
                Ok(())
            }
            Action::PurgeVault { vault } => {
                let request = self.vault_request(vault).await?;
                self.keyvault.purge_deleted_vault(request).await?;
                Ok(())
            }
            Action::CreateKey(key) => self.create_key(key).await,
            Action::UpdateKey {
                vault,
                key,
                version,
                enabled,
                not_before,
                expires,
                ops,
            } => {
                let version = self.resolve_version(vault, key, version).await?;
                let to_ms = |offset: &Duration| self.start.add(*offset).unix_ms();
                let request = kvp::UpdateKeyRequest {
                    key: Some(Self::key_ref(vault, key, version)),
                    enabled: *enabled,
                    nbf_unix_ms: not_before.as_ref().map(to_ms),
                    exp_unix_ms: expires.as_ref().map(to_ms),
                    key_ops: ops
                        .as_ref()
                        .map(|ops| ops.iter().map(wire).collect())
                        .unwrap_or_default(),
                    clear_nbf: false,
                    clear_exp: false,
                    tags: Default::default(),
                };
                let request = self.authorized(vault, VAULT_AUDIENCE, request).await?;
                self.keyvault.update_key(request).await?;
                Ok(())
            }
            Action::RotateKey { vault, key } => {
                let request = self.newest_key_request(vault, key).await?;
                self.keyvault.rotate_key(request).await?;
                Ok(())
            }
            Action::DeleteKey { vault, key } => {
                let request = self.newest_key_request(vault, key).await?;
                self.keyvault.delete_key(request).await?;
                Ok(())
            }
            Action::RecoverKey { vault, key } => {
                let request = self.newest_key_request(vault, key).await?;
                self.keyvault.recover_deleted_key(request).await?;
                Ok(())
            }
            Action::PurgeKey { vault, key } => {
                let request = self.newest_key_request(vault, key).await?;
                self.keyvault.purge_deleted_key(request).await?;
                Ok(())
            }
            Action::SetAccessPolicy(policy) => self.set_access_policy(policy).await,
            Action::RemoveAccessPolicy { vault, principal } => {
                let object_id = self.policy_object_id(vault, principal).await?;
                let request = kvp::RemoveAccessPolicyRequest {
                    vault_name: vault.clone(),
                    object_id,
                };
                let request = self.authorized(vault, MANAGEMENT_AUDIENCE, request).await?;
                self.keyvault.remove_access_policy(request).await?;
                Ok(())
            }
            Action::CreateCluster(cluster) => self.create_cluster(cluster).await,
            Action::UpdateCluster {
                cluster,
                capacity_gb_per_day,
                billing_type,
                key,
            } => {
                self.update_cluster(cluster, *capacity_gb_per_day, *billing_type, key.as_ref())
                    .await
            }
            Action::DeleteCluster { cluster } => {
                let reference = self.cluster_ref(cluster)?;
                self.clusters.delete_cluster(reference).await?;
                Ok(())
            }
            Action::RecoverCluster { cluster } => {
                let reference = self.cluster_ref(cluster)?;
                self.clusters.recover_cluster(reference).await?;
                Ok(())
            }
            Action::CreateWorkspace(workspace) => self.create_workspace(workspace).await,
            Action::LinkWorkspace { workspace, cluster } => {
                self.link_workspace(workspace, cluster).await
            }
            Action::UnlinkWorkspace { workspace } => {
                self.workspaces
                    .unlink_workspace(Self::workspace_ref(workspace))
                    .await?;
                Ok(())
            }
            Action::SetWorkspaceRetention {
                workspace,
                retention_days,
            } => {
                let request = cmksim_proto::storage::v1::UpdateRetentionRequest {
                    workspace: Some(Self::workspace_ref(workspace)),
                    retention_in_days: *retention_days,
                };
                self.workspaces.update_retention(request).await?;
                Ok(())
            }
            Action::SetWorkspaceLock { workspace, locked } => {
                let request = cmksim_proto::storage::v1::SetLockRequest {
                    workspace: Some(Self::workspace_ref(workspace)),
                    locked: *locked,
                };
                self.workspaces.set_lock(request).await?;
                Ok(())
            }
            Action::Ingest {
                workspace,
                table,
                records,
            } => self.ingest(workspace, table, *records).await,
            Action::Query {
                workspace,
                table,
                kql,
                since,
            } => match kql {
                Some(kql) => self.kql_step(workspace, kql, *since).await,
                None => self.query_step(workspace, table.as_deref(), *since).await,
            },
            Action::RegisterCosmosDb
            | Action::OnboardSentinel { .. }
            | Action::CreateSentinelItem { .. }
            | Action::DeleteSentinelWorkspace { .. } => self.apply_sentinel(action).await,
        }
    }

    // ---- faults -----------------------------------------------------------------------------

    async fn apply_fault(&mut self, label: &str, fault: Fault) {
        let result = self.set_fault(fault).await;
        let impairs_vault = fault.impairs_vault();
        let name = fault.describe();
        match result {
            Ok(()) => {
                self.events.record_raw(
                    self.clock.now(),
                    "scenario",
                    "scenario.fault.applied",
                    format!("fault: {name}"),
                    json!({ "step": label, "fault": name, "impairs_vault": impairs_vault }),
                );
            }
            Err(e) => self.record_result(label, &name, Err(e)),
        }
    }

    async fn restore_fault(&mut self, origin: &model::Step, fault: Fault) {
        let label = origin.label();
        let name = fault.describe();
        match self.set_fault(fault).await {
            Ok(()) => {
                self.events.record_raw(
                    self.clock.now(),
                    "scenario",
                    "scenario.fault.restored",
                    format!("fault restored: {name}"),
                    json!({ "step": label, "fault": name }),
                );
            }
            Err(e) => self.record_result(&label, &name, Err(e)),
        }
    }

    async fn set_fault(&mut self, fault: Fault) -> Result<(), StepError> {
        if matches!(self.faults, Faults::Live) && needs_simulation(&fault) {
            return Err(StepError {
                code: "NotInLiveMode".into(),
                status: None,
                line: None,
                message: format!(
                    "fault {} needs the simulated network; live mode can only use the services' chaos controls",
                    fault.describe()
                ),
            });
        }
        match fault {
            Fault::Keyvault(mode) => {
                let settings = match mode {
                    VaultFault::Up => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::Up as i32,
                        ..Default::default()
                    },
                    VaultFault::Down => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::Down as i32,
                        ..Default::default()
                    },
                    VaultFault::Blackhole => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::Blackhole as i32,
                        ..Default::default()
                    },
                    VaultFault::Throttle => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::Throttle as i32,
                        retry_after_seconds: 10,
                        ..Default::default()
                    },
                    VaultFault::ErrorRate(rate) => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::ErrorRate as i32,
                        error_rate: rate,
                        ..Default::default()
                    },
                    VaultFault::Latency(latency) => kvp::ChaosSettings {
                        mode: kvp::ChaosMode::Up as i32,
                        added_latency_ms: latency.as_millis() as u64,
                        ..Default::default()
                    },
                };
                self.chaos.set_chaos(settings).await?;
                Ok(())
            }
            Fault::Partition(a, b) => {
                match &self.faults {
                    Faults::Events(hosts) => hosts.net().partition(a.as_str(), b.as_str()),
                    _ => turmoil::partition(a.as_str(), b.as_str()),
                }
                Ok(())
            }
            Fault::Repair(a, b) => {
                match &self.faults {
                    Faults::Events(hosts) => hosts.net().repair(a.as_str(), b.as_str()),
                    _ => turmoil::repair(a.as_str(), b.as_str()),
                }
                Ok(())
            }
            Fault::Hold(a, b) => {
                match &self.faults {
                    Faults::Events(hosts) => hosts.net().hold(a.as_str(), b.as_str()),
                    _ => turmoil::hold(a.as_str(), b.as_str()),
                }
                Ok(())
            }
            Fault::Release(a, b) => {
                match &self.faults {
                    Faults::Events(hosts) => hosts.net().release(a.as_str(), b.as_str()),
                    _ => turmoil::release(a.as_str(), b.as_str()),
                }
                Ok(())
            }
            Fault::Link(a, b, quality) => match &self.faults {
                Faults::Events(hosts) => hosts
                    .net()
                    .set_link(a.as_str(), b.as_str(), quality)
                    .map_err(|e| StepError {
                        code: "InvalidLinkQuality".into(),
                        status: None,
                        line: None,
                        message: e.to_string(),
                    }),
                // Refused before the run starts ([`link_faults`]); kept as an error, not a
                // silent no-op, should a caller skip that check.
                Faults::Simulated(_) | Faults::Live => Err(StepError {
                    code: "NeedsEventEngine".into(),
                    status: None,
                    line: None,
                    message: format!(
                        "fault {} needs the event-driven engine's network (--engine events)",
                        fault.describe()
                    ),
                }),
            },
            Fault::Crash(host) => {
                self.push(HarnessCommand::Crash(host.as_str().to_string()));
                Ok(())
            }
            Fault::Restart(host) => {
                self.push(HarnessCommand::Restart(host.as_str().to_string()));
                Ok(())
            }
            Fault::Hsm(mode) => {
                let (mode, latency_ms) = match mode {
                    HsmFault::Ok => ("ok", 0),
                    HsmFault::DeviceError => ("device-error", 0),
                    HsmFault::Latency(latency) => ("latency", latency.as_millis() as u64),
                    HsmFault::Tamper => ("tamper", 0),
                };
                self.chaos
                    .set_hsm_fault(kvp::HsmFaultRequest {
                        mode: mode.into(),
                        latency_ms,
                    })
                    .await?;
                Ok(())
            }
        }
    }

    fn push(&self, command: HarnessCommand) {
        match &self.faults {
            Faults::Simulated(commands) => commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(command),
            Faults::Events(hosts) => hosts.command(command),
            Faults::Live => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StepError;

    #[test]
    fn a_refusal_no_service_answered_has_no_http_status() {
        // A key version the vault does not have (`version = "v99"`) is the driver's own
        // refusal: it names no HTTP status rather than a made-up `0`.
        let own = StepError {
            code: "UnknownVersion".into(),
            status: None,
            line: None,
            message: "key k in kv has no version v99".into(),
        };
        assert_eq!(
            own.to_string(),
            "UnknownVersion key k in kv has no version v99"
        );
        assert!(serde_json::json!({ "status": own.status })["status"].is_null());
        let answered = StepError::from(tonic::Status::not_found("no such key"));
        assert_eq!(answered.status, None, "{answered}");
        assert!(!answered.to_string().starts_with('0'), "{answered}");
    }
}
