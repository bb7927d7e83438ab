//! [`SentinelServer`]: the Sentinel process — open on a data directory, then serve
//! `sentinel.v1.Sentinel` (plus the event stream and gRPC health).
//!
//! This module assembles the parts and owns no rules: [`crate::onboarding`] decides onboarding,
//! [`crate::machine`] decides what a poll or a cluster change means, [`crate::store`] keeps the
//! data; [`core`] holds them together with the channels to Key Vault, the identity authority and
//! storage, and runs the poll task; [`grpc`] translates requests and refusals.
//!
//! Every client channel is built with [`Network::channel`], so the same server runs over real
//! TCP and over turmoil's simulated TCP. Time comes only from the [`Clock`], randomness only
//! from the [`SeedTree`] (or the OS for key material in live mode).

mod core;
mod grpc;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use cmksim_proto::sentinel::v1 as pb;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree};

pub use self::core::COSMOS_DB_PRINCIPAL_NAME;

/// How the Sentinel server is set up.
#[derive(Clone, Debug)]
pub struct SentinelConfig {
    /// Where `sentinel.sled/` lives.
    pub data_dir: PathBuf,
    pub clock: Clock,
    pub seeds: SeedTree,
    pub events: EventLog,
    pub profile: Profile,
    pub network: Network,
    /// The Key Vault service.
    pub keyvault_uri: String,
    /// The identity authority (hosted by the Key Vault process): usually `keyvault_uri`.
    pub identity_uri: String,
    /// The cluster storage service (workspaces' links and clusters' keys).
    pub storage_uri: String,
    /// A channel to storage already built (a test world that holds one); when set,
    /// `storage_uri` is not used.
    pub storage_channel: Option<tonic::transport::Channel>,
    /// Draw account keys and nonces from the OS instead of the seed tree (live mode).
    pub os_key_material: bool,
    pub client_timeouts: ClientTimeouts,
    /// The token and role checks in front of every call (`cmksim_identity::guard`); `None`
    /// lets every call through (tests, `serve all --allow-anonymous`).
    pub guard: Option<cmksim_identity::Guard>,
    /// Sentinel's own principal (`cmksim-sentinel`, a first-party resource provider), whose
    /// tokens go with its calls to storage and with its registration of a tenant's Cosmos DB
    /// principal (the identity service refuses that to anyone else but an administrator);
    /// `None` sends none.
    pub storage_tokens: Option<Arc<cmksim_identity::TokenSource>>,
}

impl SentinelConfig {
    /// A configuration with the identity authority at `keyvault_uri`, seeded key material and
    /// the default client timeouts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data_dir: impl Into<PathBuf>,
        clock: Clock,
        seeds: SeedTree,
        events: EventLog,
        profile: Profile,
        network: Network,
        keyvault_uri: &str,
        storage_uri: &str,
    ) -> SentinelConfig {
        SentinelConfig {
            data_dir: data_dir.into(),
            clock,
            seeds,
            events,
            profile,
            network,
            keyvault_uri: keyvault_uri.to_string(),
            identity_uri: keyvault_uri.to_string(),
            storage_uri: storage_uri.to_string(),
            storage_channel: None,
            os_key_material: false,
            client_timeouts: ClientTimeouts::default(),
            guard: None,
            storage_tokens: None,
        }
    }
}

/// Why the server could not open or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("sentinel data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("endpoint: {0}")]
    Endpoint(#[from] cmksim_sim::net::EndpointError),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Bind(#[from] cmksim_sim::net::BindError),
    #[error(transparent)]
    Reflection(#[from] cmksim_sim::net::ReflectionError),
}

/// An opened Sentinel process, ready to serve.
pub struct SentinelServer {
    core: Arc<core::Core>,
}

impl SentinelServer {
    /// Opens (or creates) the Sentinel store in `config.data_dir`; the poll task starts when
    /// serving.
    pub fn open(config: SentinelConfig) -> Result<SentinelServer, ServerError> {
        Ok(SentinelServer {
            core: core::Core::open(config)?,
        })
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

    /// Serves the connections of `incoming` (real TCP, turmoil) until `shutdown`; then stops the
    /// poll task.
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
            &[pb::sentinel_server::SERVICE_NAME],
            cmksim_proto::FILE_DESCRIPTOR_SET,
        )
        .await?;
        core.start_background();
        // Dropped before the graceful stop below has run (the task aborted: a simulated crash),
        // it aborts the poll task.
        let crash = cmksim_sim::net::AbortOnDrop::new({
            let core = core.clone();
            move || core.abort_background()
        });
        let (events, shutdown) = cmksim_events::events_service(
            "sentinel",
            &core.profile.name,
            core.events.clone(),
            core.clock.clone(),
            shutdown,
        );
        let result = tonic::transport::Server::builder()
            .layer(cmksim_identity::GuardLayer::new(core.guard.clone()))
            .add_service(events)
            .add_service(pb::sentinel_server::SentinelServer::new(
                grpc::SentinelService { core: core.clone() },
            ))
            .add_service(health_service)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        core.stop_background().await;
        crash.disarm();
        result.map_err(ServerError::from)
    }
}
