//! cmksim-rest: the Azure-compatible HTTPS front door.
//!
//! The services speak gRPC among themselves; the people who drill revocation want to point their
//! own code, written with the official Azure SDKs, at cmksim unmodified. This crate is one HTTPS
//! listener that speaks Azure's REST shapes and translates each call into the services' gRPC
//! (SPEC §9). It holds no domain rule of its own: every decision (a permission, a state, an error
//! message) is the gRPC service's, and the door only changes its shape.
//!
//! The parts, each a module:
//! - [`listener`]: TLS always (bearer-token clients refuse `http://`), HTTP/1.1 and HTTP/2, and
//!   on the same port an HTTP `CONNECT` proxy that tunnels into itself, so that an unmodified
//!   program given `HTTPS_PROXY` reaches `https://{vault}.vault.azure.net` with no DNS change.
//! - [`bootstrap`]: the first start's tenant, subscription and administrator service principal,
//!   kept in `DATA_DIR/credentials.json` and printed once as `export` lines.
//! - [`identity`]: Entra-shaped OpenID discovery, JWKS and the v2.0 token endpoint (client
//!   credentials), so that `azure-identity` obtains the project's ES256 tokens.
//! - [`keyvault`]: the Key Vault data plane at its real paths (the vault is the first label of
//!   the host), with the 401 challenge the SDK expects first.
//! - [`arm`]: Azure Resource Manager: `Microsoft.KeyVault/vaults` and
//!   `Microsoft.OperationalInsights` clusters, workspaces, linked services and operation
//!   statuses.
//! - [`monitor`]: Azure Monitor: data collection rules, the Logs Ingestion API and the Logs
//!   Query API (KQL).
//! - [`admin`]: `/_cmksim/…`: clock, chaos, the event log as Server-Sent Events, principals.
//! - [`dashboard`]: the live teaching dashboard at `/` (also served by `cmksim demo --web`).
//! - [`bench`]: `cmksim bench rest`, unwrapKey over HTTPS beside gRPC.
//! - [`client`]: a minimal HTTPS client with keep-alive (tests and `cmksim bench rest`).
//! - [`error`]: one error type whose body is Azure's `{"error":{"code","message","innererror"}}`.
//!
//! Time: the services run on a simulated clock, possibly scaled. Every time the door shows
//! (key attributes, `created`) is simulated time, like the gRPC API's; only token lifetimes are
//! announced in wall-clock seconds, because SDKs refresh tokens by their own wall clock.

#![forbid(unsafe_code)]

pub mod admin;
pub mod arm;
pub mod auth;
pub mod bench;
pub mod bootstrap;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod identity;
pub mod keyvault;
pub mod listener;
pub mod monitor;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use cmksim_identity::TokenVerifier;
use cmksim_proto::identity::v1 as idp;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::Clock;
use tokio::sync::watch;
use tonic::transport::Channel;

pub use bootstrap::Credentials;
pub use error::RestError;

/// Where the door finds the services, and what it serves with.
pub struct RestConfig {
    /// Key Vault (which also hosts the identity authority and the chaos control).
    pub keyvault_url: String,
    /// Cluster storage.
    pub storage_url: String,
    /// The ingestion front end.
    pub ingest_url: String,
    /// How to reach them (plain TCP, or TLS trusting a CA).
    pub network: Network,
    /// The simulated clock the services run on (same epoch and time scale).
    pub clock: Clock,
    /// Where `credentials.json` is kept.
    pub data_dir: PathBuf,
    /// The PEM file a client trusts for this listener (named in the credentials).
    pub ca_file: PathBuf,
    /// Seed of the door's own choices (the subscription id of the first start).
    pub seed: u64,
    /// The identity authority's administrator's credentials file (`identity-admin.json`, written
    /// by Key Vault on its first start): read on the door's first start only.
    pub admin_credentials: PathBuf,
}

/// The gRPC channels of the three services.
#[derive(Clone)]
pub struct Upstreams {
    /// Key Vault, the identity authority, the chaos control and Key Vault's event log.
    pub keyvault: Channel,
    /// Cluster storage (control and data plane) and its event log.
    pub storage: Channel,
    /// The ingestion front end (ingest, query, KQL) and its event log.
    pub ingest: Channel,
}

/// What every handler shares.
pub struct AppState {
    /// The services the door translates to.
    pub upstream: Upstreams,
    /// The services' simulated clock: tokens are checked and issued in its time.
    pub clock: Clock,
    /// The administrator of `credentials.json` (the admin API is theirs).
    pub credentials: Credentials,
    /// Verifies tokens for the calls the door authorises itself (ARM on storage, admin).
    pub verifier: TokenVerifier,
    /// `https://HOST:PORT` of this listener, as clients reach it.
    pub public_url: String,
    /// Turns true when the server stops, so that endless responses (event streams) end.
    pub stopping: watch::Receiver<bool>,
    /// The data collection rules (the door is their control plane).
    pub dcrs: monitor::dcr::DcrStore,
    /// Seed of the door's own choices (immutable ids of rules).
    pub seed: u64,
    /// The live dashboard at `/`: its sign-in links and sessions, and the events it follows.
    pub dashboard: Arc<dashboard::live::LiveBoard>,
    /// The door's own tokens (the administrator's principal of `credentials.json`), one source
    /// for the door's life, so that a token is reused until it is due for renewal
    /// ([`auth::door_channel`], the live dashboard's levers).
    pub door_tokens: Arc<cmksim_identity::TokenSource>,
}

/// A door ready to serve: upstreams connected (lazily), credentials bootstrapped.
pub struct RestServer {
    state: Arc<AppState>,
    stop_tx: watch::Sender<bool>,
    first_start: bool,
}

impl RestServer {
    /// Connects to the services and loads the credentials, creating them on the first start.
    /// `public_url` is the URL clients use (`https://127.0.0.1:PORT`, known once bound).
    pub async fn open(config: RestConfig, public_url: String) -> Result<RestServer, RestError> {
        let timeouts = ClientTimeouts::default();
        let channel = |url: &str| {
            config
                .network
                .channel(url, timeouts)
                .map_err(|e| RestError::startup(format!("{url}: {e}")))
        };
        // Read before the first start writes anything: a broken rules file refuses the start
        // with nothing created.
        let dcrs = monitor::dcr::DcrStore::open(&config.data_dir)?;
        let upstream = Upstreams {
            keyvault: channel(&config.keyvault_url)?,
            storage: channel(&config.storage_url)?,
            ingest: channel(&config.ingest_url)?,
        };
        let (credentials, first_start) = bootstrap::load_or_create(
            &config.data_dir,
            &upstream.keyvault,
            &public_url,
            &config.ca_file,
            config.seed,
            &config.admin_credentials,
        )
        .await?;
        let keys = idp::identity_client::IdentityClient::new(upstream.keyvault.clone())
            .get_signing_keys(idp::Empty {})
            .await
            .map_err(|e| RestError::startup(format!("identity signing keys: {}", e.message())))?
            .into_inner();
        let jwks: Vec<cmksim_identity::Jwk> = keys
            .keys
            .into_iter()
            .map(|k| cmksim_identity::Jwk {
                kid: k.kid,
                kty: k.kty,
                crv: k.crv,
                x: k.x,
                y: k.y,
            })
            .collect();
        let verifier = TokenVerifier::from_jwks(&jwks)
            .map_err(|e| RestError::startup(format!("identity signing keys: {e}")))?;
        let (stop_tx, stopping) = watch::channel(false);
        let dashboard = Arc::new(dashboard::live::LiveBoard::new(config.clock.epoch()));
        let door_tokens = cmksim_identity::TokenSource::new(
            upstream.keyvault.clone(),
            &credentials.client_id,
            &credentials.client_secret,
            config.clock.clone(),
        );
        Ok(RestServer {
            state: Arc::new(AppState {
                upstream,
                clock: config.clock,
                credentials,
                verifier,
                public_url,
                stopping,
                dcrs,
                seed: config.seed,
                dashboard,
                door_tokens,
            }),
            stop_tx,
            first_start,
        })
    }

    /// True when this start created the credentials (print them).
    pub fn first_start(&self) -> bool {
        self.first_start
    }

    /// The bootstrap credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.state.credentials
    }

    /// The live dashboard judges its invariants under `profile`, the behaviour profile the
    /// services run (with their overrides), instead of the default one.
    pub fn judge_dashboard_under(&self, profile: cmksim_sim::profile::Profile) {
        self.state.dashboard.judge_under(profile);
    }

    /// A new one-time link that signs a browser in to the live dashboard (print it once; it
    /// is spent on first use).
    pub fn dashboard_link(&self) -> Result<String, RestError> {
        let path = self
            .state
            .dashboard
            .new_login_path()
            .map_err(|e| RestError::startup(e.to_string()))?;
        Ok(format!("{}{path}", self.state.public_url))
    }

    /// Every route of the door.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves `listener` until `stop` resolves; then in-flight requests finish (bounded by
    /// [`listener::SHUTDOWN_GRACE`]) and event streams end.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let stop_tx = self.stop_tx;
        let stop = async move {
            stop.await;
            // Receivers may all be gone (no stream open): nothing to tell then.
            stop_tx.send_replace(true);
        };
        listener::serve(listener, listener::rest_tls(tls), router, stop).await
    }
}

/// Every route: identity, Key Vault, ARM, admin. Paths are normalised before routing
/// ([`keyvault::normalise_path`]: the SDKs' double slash and trailing slash).
pub fn router(state: Arc<AppState>) -> Router {
    use tower::ServiceExt;
    let routes = Router::new()
        .merge(identity::routes())
        .merge(keyvault::routes())
        .merge(arm::routes())
        .merge(monitor::routes())
        .merge(admin::routes())
        .merge(dashboard::routes())
        .merge(dashboard::live::routes())
        .fallback(error::not_found)
        .with_state(state);
    let normalised = routes.map_request(|mut request: axum::extract::Request| {
        if let Some(path) = keyvault::normalise_path(request.uri().path()) {
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{path}{query}").parse::<http::Uri>() {
                let mut parts = request.uri().clone().into_parts();
                parts.path_and_query = uri.path_and_query().cloned();
                if let Ok(uri) = http::Uri::from_parts(parts) {
                    *request.uri_mut() = uri;
                }
            }
        }
        request
    });
    Router::new().fallback_service(normalised)
}
