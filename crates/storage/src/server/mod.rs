//! [`StorageServer`]: the cluster storage process — open on a data directory, then serve
//! `storage.v1.Clusters`, `storage.v1.Workspaces` and `storage.v1.DataPlane` (plus gRPC health
//! and reflection).
//!
//! This module assembles the finished parts; it owns no rules of its own:
//! - the control plane ([`crate::control::ControlPlane`]) behind one mutex, persisted in sled as
//!   one JSON document after every change, flushed before the call is answered;
//! - the data plane ([`crate::data::DataPlane`]) in `data_dir/data`;
//! - one key loop ([`crate::keyloop::KeyLoopDriver`]) per cluster, driven against the real Key
//!   Vault over gRPC as the cluster's managed identity, with a [`host::ClusterHost`] carrying out
//!   its data effects;
//! - a control tick task ([`effects`]) that completes due operations on the simulation clock and
//!   applies their effects (provisioned, key updated, deleted, recovered, purged), and runs the
//!   data lifecycle: retention and pending purges ([`lifecycle`]).
//!
//! Data directory layout:
//! - `control.sled/`: the control state, the clusters' managed-identity credentials, each
//!   workspace's destination history, the stats and the outage-buffer ledger ([`persist`]);
//! - `data/`: the encrypted data plane.
//!
//! Every client channel (Key Vault, identity) is built with [`Network::channel`], so the same
//! server runs over real TCP and over turmoil's simulated TCP. Time comes only from the
//! [`Clock`], randomness only from the [`SeedTree`] (or the OS for key material in live mode).

mod blocks;
mod convert;
mod core;
mod effects;
mod events;
mod facts;
mod grpc_byos;
mod grpc_clusters;
mod grpc_data;
mod grpc_lockbox;
mod grpc_workspaces;
mod host;
mod lifecycle;
mod persist;
mod system_identity;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use cmksim_proto::storage::v1 as pb;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree};

pub use events::StorageEvent;

/// How the storage server is set up.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Where the control state (`control.sled/`) and the data plane (`data/`) live.
    pub data_dir: PathBuf,
    pub clock: Clock,
    pub seeds: SeedTree,
    pub events: EventLog,
    pub profile: Profile,
    /// Real TCP (live, tests) or turmoil's simulated TCP (scenario runner).
    pub network: Network,
    /// The Key Vault service, e.g. `http://127.0.0.1:7001` or `http://keyvault:7001`.
    pub keyvault_uri: String,
    /// The identity authority (hosted by the Key Vault process): usually `keyvault_uri`.
    pub identity_uri: String,
    /// Draw AEKs and nonces from the OS instead of the seed tree (live mode).
    pub os_key_material: bool,
    /// Bounds on the Key Vault and identity channels.
    pub client_timeouts: ClientTimeouts,
    /// Cluster storage's own first-party principal (`cmksim-storage`, a resource provider of
    /// the identity authority): it creates the managed identities of clusters and storage
    /// accounts. Provisioned before the first create, possibly after the server opened (the
    /// simulated world); left empty, a create is refused with one sentence saying so.
    pub principal: cmksim_identity::CredentialSlot,
}

impl StorageConfig {
    /// A configuration with the identity authority at `keyvault_uri`, seeded key material and
    /// the default client timeouts.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        clock: Clock,
        seeds: SeedTree,
        events: EventLog,
        profile: Profile,
        network: Network,
        keyvault_uri: &str,
    ) -> StorageConfig {
        StorageConfig {
            data_dir: data_dir.into(),
            clock,
            seeds,
            events,
            profile,
            network,
            keyvault_uri: keyvault_uri.to_string(),
            identity_uri: keyvault_uri.to_string(),
            os_key_material: false,
            client_timeouts: ClientTimeouts::default(),
            principal: cmksim_identity::CredentialSlot::new(),
        }
    }

    /// This configuration with a new first-party principal `cmksim-storage` (no role) made in
    /// `authority`, for a host that holds the identity authority in its own process (`serve
    /// all`, tests). Other hosts provision [`StorageConfig::principal`] through the
    /// `identity.v1` API with an administrator's token.
    pub fn with_principal_of(
        self,
        authority: &std::sync::Mutex<cmksim_identity::IdentityAuthority>,
    ) -> Result<StorageConfig, cmksim_identity::IdentityError> {
        let (principal, secret) = authority
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .create_service_principal(cmksim_identity::directory::STORAGE_PROVIDER_NAME, &[])?;
        self.principal.set(&principal.object_id, &secret);
        Ok(self)
    }
}

/// Why the server could not open or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("storage control store: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage control state: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("storage data plane: {0}")]
    Data(#[from] crate::data::DataError),
    #[error("endpoint: {0}")]
    Endpoint(#[from] cmksim_sim::net::EndpointError),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Bind(#[from] cmksim_sim::net::BindError),
}

/// An opened storage process, ready to serve.
pub struct StorageServer {
    core: Arc<core::Core>,
    /// The token and role checks in front of every call (`cmksim_identity::guard`); `None`
    /// serves every caller (in-process runs whose clients send no tokens).
    guard: Option<cmksim_identity::Guard>,
}

impl StorageServer {
    /// Opens (or creates) the storage state in `config.data_dir`. Key loops and the control
    /// tick start when serving.
    pub fn open(config: StorageConfig) -> Result<StorageServer, ServerError> {
        Ok(StorageServer {
            core: core::Core::open(config)?,
            guard: None,
        })
    }

    /// The slot of cluster storage's first-party principal ([`StorageConfig::principal`]), to
    /// provision after opening (a host that makes the principal through the identity API).
    pub fn principal(&self) -> cmksim_identity::CredentialSlot {
        self.core.principal.clone()
    }

    /// The server with `guard` in front of every call: a token of the right audience and
    /// tenant, and a role granting the call's action at the resource it names.
    pub fn with_guard(mut self, guard: cmksim_identity::Guard) -> StorageServer {
        self.guard = Some(guard);
        self
    }

    /// Serves on `addr` until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let incoming = cmksim_sim::net::bind_tcp(addr).await?;
        self.serve_with_incoming(incoming, shutdown).await
    }

    /// Serves the connections of `incoming` (real TCP, turmoil) until `shutdown`; then stops
    /// the key loops and the control tick and flushes everything before returning.
    pub async fn serve_with_incoming<I, IO, IE>(
        self,
        incoming: I,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError>
    where
        I: Stream<Item = Result<IO, IE>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let core = self.core;
        let (health_service, reflection) = cmksim_sim::net::health_and_reflection(
            &[
                pb::clusters_server::SERVICE_NAME,
                pb::workspaces_server::SERVICE_NAME,
                pb::data_plane_server::SERVICE_NAME,
                pb::lockbox_server::SERVICE_NAME,
                pb::byos_server::SERVICE_NAME,
            ],
            cmksim_proto::FILE_DESCRIPTOR_SET,
        )
        .await
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
        core.start_background()?;
        // Dropped before the graceful stop below has run (the task aborted: a simulated crash),
        // it aborts the background tasks without their save.
        let crash = cmksim_sim::net::AbortOnDrop::new({
            let core = core.clone();
            move || core.abort_background()
        });
        let (events, shutdown) = cmksim_events::events_service(
            "storage",
            &core.profile.name,
            core.events.clone(),
            core.clock.clone(),
            shutdown,
        );
        let result = tonic::transport::Server::builder()
            .layer(cmksim_identity::GuardLayer::new(self.guard))
            .add_service(events)
            .add_service(pb::clusters_server::ClustersServer::new(
                grpc_clusters::ClustersService { core: core.clone() },
            ))
            .add_service(pb::workspaces_server::WorkspacesServer::new(
                grpc_workspaces::WorkspacesService { core: core.clone() },
            ))
            .add_service(pb::data_plane_server::DataPlaneServer::new(
                grpc_data::DataService { core: core.clone() },
            ))
            .add_service(pb::lockbox_server::LockboxServer::new(
                grpc_lockbox::LockboxService { core: core.clone() },
            ))
            .add_service(pb::byos_server::ByosServer::new(grpc_byos::ByosService {
                core: core.clone(),
            }))
            .add_service(health_service)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        core.stop_background().await;
        crash.disarm();
        result.map_err(ServerError::from)
    }
}

#[cfg(test)]
mod crash_tests;
