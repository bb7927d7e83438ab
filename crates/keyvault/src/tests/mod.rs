//! End-to-end tests over real gRPC on loopback: a server per test on 127.0.0.1:0, a tonic
//! client, tokens from the hosted identity authority. They live inside the crate (not in
//! `tests/`) only so that the secret-material test can open sealed keys to search responses for
//! them; everything else goes through the public gRPC surface.

mod cache;
mod errors;
mod happy;
mod hsm_faults;
mod key_material;
mod lifecycle;

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use cmksim_identity::{audience, IdentityAuthority, PrincipalKind};
use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

use crate::server::{KeyVaultConfig, KeyVaultServer};
use crate::service::Core;

pub struct Principal {
    pub oid: String,
    pub secret: String,
}

pub struct Harness {
    pub _addr: std::net::SocketAddr,
    pub clock: Clock,
    pub events: EventLog,
    pub identity: Arc<Mutex<IdentityAuthority>>,
    pub core: Arc<Core>,
    pub kv: pb::key_vault_client::KeyVaultClient<Channel>,
    pub chaos: pb::chaos_control_client::ChaosControlClient<Channel>,
    /// Lifetime of the tokens `token` issues (0 = the authority's default).
    pub token_lifetime_seconds: u64,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), crate::server::ServerError>>,
}

impl Harness {
    pub async fn start(dir: &Path, seed: u64, clock: Clock) -> Harness {
        Self::start_with(dir, seed, clock, EventLog::default()).await
    }

    pub async fn start_with(dir: &Path, seed: u64, clock: Clock, events: EventLog) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = KeyVaultServer::open(
            dir,
            clock.clone(),
            SeedTree::new(seed),
            events.clone(),
            KeyVaultConfig::default(),
        )
        .unwrap();
        let identity = server.identity();
        let core = server.core();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve_with_incoming(
            cmksim_sim::net::tcp_incoming(listener),
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Harness {
            _addr: addr,
            clock,
            events,
            identity,
            core,
            kv: pb::key_vault_client::KeyVaultClient::new(channel.clone()),
            chaos: pb::chaos_control_client::ChaosControlClient::new(channel),
            token_lifetime_seconds: 0,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        let Harness {
            stop,
            task,
            kv,
            chaos,
            core,
            identity,
            ..
        } = self;
        drop((kv, chaos, core, identity));
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }

    pub fn now(&self) -> SimTime {
        self.clock.now()
    }

    pub fn tenant(&self) -> String {
        let mut id = self.identity.lock().unwrap();
        if let Some(t) = id.directory().tenants.keys().next() {
            return t.clone();
        }
        id.create_tenant("contoso", "").unwrap().tenant_id
    }

    pub fn other_tenant(&self) -> String {
        self.identity
            .lock()
            .unwrap()
            .create_tenant("fabrikam", "")
            .unwrap()
            .tenant_id
    }

    pub fn principal(&self, tenant: &str, name: &str) -> Principal {
        let (p, secret) = self
            .identity
            .lock()
            .unwrap()
            .create_principal(tenant, name, PrincipalKind::ServicePrincipal)
            .unwrap();
        Principal {
            oid: p.object_id,
            secret,
        }
    }

    pub fn token(&self, p: &Principal, aud: &str) -> String {
        self.identity
            .lock()
            .unwrap()
            .issue_token(
                &p.oid,
                &p.secret,
                aud,
                self.token_lifetime_seconds,
                self.now(),
            )
            .unwrap()
            .0
    }

    pub fn vault_token(&self, p: &Principal) -> String {
        self.token(p, audience::VAULT)
    }

    pub fn mgmt_token(&self, p: &Principal) -> String {
        self.token(p, audience::MANAGEMENT)
    }
}

pub fn req<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if !token.is_empty() {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    r
}

pub fn key_ref(vault: &str, key: &str, version: &str) -> pb::KeyRef {
    pb::KeyRef {
        vault_name: vault.into(),
        key_name: key.into(),
        version: version.into(),
    }
}

/// Asserts a status: gRPC code, Azure code, HTTP status and exact message (and the metadata).
pub fn assert_azure(status: &Status, code: Code, azure_code: &str, http: u32, message: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
    let azure = crate::status::azure_error(status).expect("AzureError details");
    assert_eq!(azure.code, azure_code, "{azure:?}");
    assert_eq!(azure.http_status, http, "{azure:?}");
    assert_eq!(azure.message, message);
    assert_eq!(
        status
            .metadata()
            .get("x-ms-error-code")
            .unwrap()
            .to_str()
            .unwrap(),
        azure_code
    );
}

pub fn inner_code(status: &Status) -> String {
    crate::status::azure_error(status).unwrap().inner_code
}

/// A world: a tenant, an admin with every permission on vault `name`.
pub struct World {
    pub tenant: String,
    pub admin: Principal,
    pub vault: String,
}

pub async fn world(h: &mut Harness, name: &str, sku: pb::Sku, purge_protection: bool) -> World {
    let tenant = h.tenant();
    let admin = h.principal(&tenant, "admin");
    create_vault(h, &admin, &tenant, name, sku, purge_protection).await;
    World {
        tenant,
        admin,
        vault: name.to_string(),
    }
}

pub async fn create_vault(
    h: &mut Harness,
    admin: &Principal,
    tenant: &str,
    name: &str,
    sku: pb::Sku,
    purge_protection: bool,
) -> pb::Vault {
    let token = h.mgmt_token(admin);
    h.kv.create_vault(req(
        &token,
        pb::CreateVaultRequest {
            name: name.into(),
            location: "eastus".into(),
            tenant_id: tenant.into(),
            sku: sku as i32,
            enable_purge_protection: purge_protection,
            soft_delete_retention_in_days: Some(7),
            access_policies: vec![pb::AccessPolicy {
                tenant_id: tenant.into(),
                object_id: admin.oid.clone(),
                key_permissions: crate::model::KeyPermission::ALL
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            }],
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
}

pub async fn create_key(h: &mut Harness, w: &World, name: &str, kty: &str) -> pb::KeyBundle {
    let token = h.vault_token(&w.admin);
    h.kv.create_key(req(
        &token,
        pb::CreateKeyRequest {
            vault_name: w.vault.clone(),
            key_name: name.into(),
            kty: kty.into(),
            ..Default::default()
        },
    ))
    .await
    .unwrap()
    .into_inner()
}

pub fn version_of(bundle: &pb::KeyBundle) -> String {
    bundle
        .key
        .as_ref()
        .unwrap()
        .kid
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

pub fn clock() -> Clock {
    Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0)
}
