//! `cmksim serve keyvault|storage|ingest|all`: the services as real gRPC servers on real TCP
//! (live mode).
//!
//! Time in live mode is the wall clock, scaled: `--time-scale 60` plays a simulated minute per
//! real second. Processes given the same `--epoch` (the wall-clock instant, in Unix
//! milliseconds, that counts as the simulated epoch) agree on the simulated time; `serve all`
//! runs the three services in one process on one shared clock.
//!
//! Start-up is two phases, so that bad input starts nothing: first the configuration is resolved
//! and checked ([`config`]: flags > `CMKSIM_*` environment > `--config` file > defaults; URLs,
//! time scale, profile and data directory), then the listeners are bound, and only then are the
//! services opened and served. Once a service listens, one line `listening SERVICE URL` goes to
//! stdout (logs go to stderr), so that a supervisor or a test can learn a port chosen by the OS
//! (`--listen 127.0.0.1:0`).
//!
//! Durability: every service flushes what it acknowledges before answering (sled's background
//! flusher is off), so a `kill -9` loses nothing acknowledged. SIGINT and SIGTERM stop
//! gracefully: the listeners close, in-flight calls finish, the storage stops its key loops and
//! flushes its control state, then the process exits 0. `serve all` stops ingest first, then
//! storage, then Key Vault, so no service loses its upstream while finishing a call. A server
//! that has not stopped [`SHUTDOWN_GRACE`] after the signal is abandoned (nothing acknowledged
//! depends on it).
//!
//! TLS (`--tls`, see [`config`] for where the certificate comes from): the gRPC listeners serve
//! TLS 1.2/1.3 with ALPN h2 (`listening SERVICE https://…`); a connection whose handshake fails
//! is logged and dropped, the server goes on. The Prometheus `/metrics` listener stays plain
//! HTTP. Storage and ingest reach an `https://` upstream trusting `--tls-ca`; `serve all --tls`
//! connects its services to each other over TLS, trusting its own certificate (or `--tls-ca`).

mod config;
mod data_lock;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use cmksim_sim::net::{ClientTimeouts, Network, TlsClient};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

use config::{
    check_url, local_url, loopback, service_url, CommonFlags, LogFormat, ProfileFlags, ServerTls,
    Settings, TlsCaFlag, TlsFlags, TlsMaterial, INGEST_PORT, KEYVAULT_PORT, STORAGE_PORT,
};

/// How long servers may take to stop after SIGINT/SIGTERM before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

#[derive(Args)]
pub struct ServeArgs {
    #[command(subcommand)]
    // Boxed: the flags of four services make a large value, and `Command` holds it inline.
    service: Box<Service>,
}

#[derive(Subcommand)]
enum Service {
    /// Key Vault, with the identity authority and the emulated HSM in the same process.
    Keyvault(KeyvaultCmd),
    /// Cluster storage (control plane, data plane, key loops against the Key Vault).
    Storage(StorageCmd),
    /// The ingestion front end (ingest, query, Prometheus /metrics).
    Ingest(IngestCmd),
    /// All three in one process on three ports, sharing one clock (and, with --rest-listen,
    /// the HTTPS front door).
    All(AllCmd),
    /// The Azure-compatible HTTPS front door alone, in front of running services.
    Rest(RestCmd),
}

#[derive(Args)]
struct KeyvaultCmd {
    /// Address to listen on. Default 127.0.0.1:50051.
    #[arg(long, env = "CMKSIM_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    tls: TlsFlags,
}

#[derive(Args)]
struct StorageCmd {
    /// Address to listen on. Default 127.0.0.1:50052.
    #[arg(long, env = "CMKSIM_LISTEN")]
    listen: Option<SocketAddr>,
    /// The Key Vault (and identity authority) URL. Default http://127.0.0.1:50051.
    #[arg(long, env = "CMKSIM_KEYVAULT", value_name = "URL")]
    keyvault: Option<String>,
    #[command(flatten)]
    alone: AloneFlags,
    /// The identity administrator's credentials file (the identity-admin.json Key Vault
    /// wrote): storage creates the managed identities of clusters and storage accounts as its
    /// own first-party principal, which the administrator makes at each start (the identity
    /// service then has to answer). Without it storage serves, but refuses to create clusters
    /// and storage accounts, in one sentence; --allow-anonymous does not change that.
    #[arg(long, env = "CMKSIM_ADMIN_CREDENTIALS", value_name = "FILE")]
    admin_credentials: Option<PathBuf>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    profile: ProfileFlags,
    #[command(flatten)]
    tls: TlsFlags,
    #[command(flatten)]
    tls_ca: TlsCaFlag,
}

/// Token checks of a service served alone (`serve storage`, `serve ingest`): like `serve all`,
/// every call needs a token, verified with the identity service's public keys and roles.
#[derive(Args)]
struct AloneFlags {
    /// The identity service (hosted by Key Vault) that verifies tokens. Default: the one
    /// `serve all` uses (storage: its --keyvault; ingest: http://127.0.0.1:50051). Storage asks
    /// it at the first guarded call (503 while it does not answer); ingest at its start, to
    /// make its own principal.
    #[arg(long, env = "CMKSIM_IDENTITY", value_name = "URL")]
    identity: Option<String>,
    /// Serve calls without a token (the behaviour before tokens were enforced; README: "What
    /// is and is not enforced").
    #[arg(long, env = "CMKSIM_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,
}

#[derive(Args)]
struct IngestCmd {
    /// Address to listen on. Default 127.0.0.1:50053.
    #[arg(long, env = "CMKSIM_LISTEN")]
    listen: Option<SocketAddr>,
    /// The storage service URL. Default http://127.0.0.1:50052.
    #[arg(long, env = "CMKSIM_STORAGE", value_name = "URL")]
    storage: Option<String>,
    /// Serve Prometheus text on http://ADDR/metrics (off by default).
    #[arg(long, env = "CMKSIM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    alone: AloneFlags,
    /// The identity administrator's credentials file (the identity-admin.json Key Vault
    /// wrote): ingest calls storage as its own service principal, which the administrator
    /// makes at each start. Needed unless --allow-anonymous.
    #[arg(long, env = "CMKSIM_ADMIN_CREDENTIALS", value_name = "FILE")]
    admin_credentials: Option<PathBuf>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    profile: ProfileFlags,
    #[command(flatten)]
    tls: TlsFlags,
    #[command(flatten)]
    tls_ca: TlsCaFlag,
}

#[derive(Args)]
struct AllCmd {
    /// Base address: Key Vault listens on it, storage on the next port, ingest on the one
    /// after. Default 127.0.0.1:50051 (so 50051, 50052, 50053).
    #[arg(long, env = "CMKSIM_LISTEN")]
    listen: Option<SocketAddr>,
    /// Key Vault address (overrides the base).
    #[arg(long, env = "CMKSIM_KEYVAULT_LISTEN", value_name = "ADDR")]
    keyvault_listen: Option<SocketAddr>,
    /// Storage address (overrides the base).
    #[arg(long, env = "CMKSIM_STORAGE_LISTEN", value_name = "ADDR")]
    storage_listen: Option<SocketAddr>,
    /// Ingest address (overrides the base).
    #[arg(long, env = "CMKSIM_INGEST_LISTEN", value_name = "ADDR")]
    ingest_listen: Option<SocketAddr>,
    /// Serve Prometheus text on http://ADDR/metrics (off by default).
    #[arg(long, env = "CMKSIM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve the Azure-compatible HTTPS front door on ADDR (always TLS; off by default).
    #[arg(long, env = "CMKSIM_REST_LISTEN", value_name = "ADDR")]
    rest_listen: Option<SocketAddr>,
    /// Accepted for old scripts and does nothing: storage, ingest and Sentinel require tokens by
    /// default now (see --allow-anonymous).
    #[arg(
        long,
        env = "CMKSIM_REQUIRE_TOKENS",
        conflicts_with = "allow_anonymous"
    )]
    require_tokens: bool,
    /// Let storage, ingest and Sentinel serve calls without a token (the behaviour before
    /// tokens were enforced; README: "What is and is not enforced"). By default each call needs
    /// a token of the right audience and tenant and a role for it.
    #[arg(long, env = "CMKSIM_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    profile: ProfileFlags,
    /// TLS for all three services, one certificate (self-signed: DATA_DIR/tls). --tls-ca, if
    /// given, is what the services trust of each other (default: that certificate).
    #[command(flatten)]
    tls: TlsFlags,
    #[command(flatten)]
    tls_ca: TlsCaFlag,
}

#[derive(Args)]
struct RestCmd {
    /// Address to listen on (HTTPS, and CONNECT for HTTPS_PROXY). Default 127.0.0.1:8443.
    #[arg(long, env = "CMKSIM_REST_LISTEN", value_name = "ADDR")]
    rest_listen: Option<SocketAddr>,
    /// The Key Vault (and identity authority) URL. Default http://127.0.0.1:50051.
    #[arg(long, env = "CMKSIM_KEYVAULT", value_name = "URL")]
    keyvault: Option<String>,
    /// The storage service URL. Default http://127.0.0.1:50052.
    #[arg(long, env = "CMKSIM_STORAGE", value_name = "URL")]
    storage: Option<String>,
    /// The ingestion front end URL. Default http://127.0.0.1:50053.
    #[arg(long, env = "CMKSIM_INGEST", value_name = "URL")]
    ingest: Option<String>,
    /// The identity administrator's credentials file that Key Vault wrote on its first start,
    /// read on the door's first start. Default DATA_DIR/identity/identity-admin.json (a Key
    /// Vault served with the same --data-dir).
    #[arg(long, env = "CMKSIM_ADMIN_CREDENTIALS", value_name = "FILE")]
    admin_credentials: Option<PathBuf>,
    #[command(flatten)]
    common: CommonFlags,
    /// The door's certificate (it is always TLS; --tls is implied).
    #[command(flatten)]
    tls: TlsFlags,
    #[command(flatten)]
    tls_ca: TlsCaFlag,
}

/// The default port of the HTTPS front door.
pub const REST_PORT: u16 = 8443;

/// The HTTPS front door of a plan: where it listens, its certificate, what a client trusts.
struct RestPlan {
    listen: SocketAddr,
    tls: ServerTls,
    /// The PEM file clients trust (named in credentials.json).
    ca_file: PathBuf,
    /// Where credentials.json is kept.
    data_dir: PathBuf,
    /// The identity authority's administrator's credentials (read on the door's first start).
    admin_credentials: PathBuf,
    /// The services' behaviour profile (overrides applied), known to `serve all`: the live
    /// dashboard judges its invariants under it (`None`, a door alone: the default profile).
    dashboard_profile: Option<Profile>,
}

impl RestPlan {
    fn new(
        listen: SocketAddr,
        tls: ServerTls,
        trust: Option<PathBuf>,
        data_dir: PathBuf,
        admin_credentials: PathBuf,
    ) -> Self {
        let ca_file = match (&tls, trust) {
            (ServerTls::SelfSigned { dir, .. }, _) => dir.join("cert.pem"),
            (ServerTls::Files { .. }, Some(ca)) => ca,
            (ServerTls::Files { cert, .. }, None) => cert.clone(),
        };
        RestPlan {
            listen,
            tls,
            ca_file,
            data_dir,
            admin_credentials,
            dashboard_profile: None,
        }
    }
}

/// Settings every service resolves the same way.
struct Base {
    settings: Settings,
    clock: Clock,
    epoch_unix_ms: i64,
    seed: u64,
    log_format: LogFormat,
}

/// Layers the flags over the `--config` file and resolves what every service needs.
fn resolve(common: &CommonFlags, flags: Settings) -> anyhow::Result<Base> {
    let file = match &common.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let mut settings = flags.over(file);
    let time_scale = settings.time_scale()?;
    let epoch_unix_ms = settings.epoch.unwrap_or_else(Clock::wall_now_unix_ms);
    settings.time_scale = Some(time_scale);
    settings.epoch = Some(epoch_unix_ms);
    let seed = *settings.seed.get_or_insert(0);
    let log_format = *settings.log_format.get_or_insert(LogFormat::Text);
    Ok(Base {
        clock: Clock::wall(SimTime::DEFAULT_EPOCH, epoch_unix_ms, time_scale),
        settings,
        epoch_unix_ms,
        seed,
        log_format,
    })
}

/// Everything a service needs, checked; building one starts nothing.
// One plan is built per process, so the size difference between variants (a profile in some,
// not in others) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Keyvault {
        listen: SocketAddr,
        data_dir: PathBuf,
    },
    Storage {
        listen: SocketAddr,
        data_dir: PathBuf,
        keyvault: String,
        profile: Profile,
        /// The identity service (hosted by Key Vault).
        identity: String,
        /// Whether storage checks tokens with it (false: --allow-anonymous).
        guarded: bool,
        /// The administrator's credentials file, which makes storage's own principal (`None`:
        /// storage has none and refuses to create managed identities).
        admin_credentials: Option<PathBuf>,
    },
    Ingest {
        listen: SocketAddr,
        storage: String,
        metrics_listen: Option<SocketAddr>,
        profile: Profile,
        /// The identity service that checks tokens and the administrator's credentials file
        /// (the administrator makes ingest's principal; `None`: --allow-anonymous).
        auth: Option<(String, Option<PathBuf>)>,
    },
    All {
        keyvault_listen: SocketAddr,
        storage_listen: SocketAddr,
        ingest_listen: SocketAddr,
        metrics_listen: Option<SocketAddr>,
        data_dir: PathBuf,
        profile: Profile,
        rest: Option<RestPlan>,
        require_tokens: bool,
    },
    Rest {
        rest: RestPlan,
        keyvault: String,
        storage: String,
        ingest: String,
    },
}

/// The TLS side of a plan: what the server serves with, what its client side trusts.
struct TlsPlan {
    server: Option<ServerTls>,
    /// `--tls-ca`.
    trust: Option<PathBuf>,
    /// `serve all`: the services reach each other over TLS when they serve it.
    internal: bool,
}

/// The TLS side, ready (files read or made): loaded after `--print-config`, before any bind.
struct Tls {
    server: Option<TlsMaterial>,
    /// How this process's client side connects upstream.
    network: Network,
}

impl TlsPlan {
    fn load(&self) -> anyhow::Result<Tls> {
        let server = self
            .server
            .as_ref()
            .map(config::load_server_tls)
            .transpose()?;
        let trust = match (&self.trust, &server) {
            (Some(ca), _) => Some(config::load_trust(ca)?),
            (None, Some(material)) if self.internal => Some(
                TlsClient::trusting_pem(material.cert_pem.clone())
                    .context("TLS: the server certificate as a trust anchor")?,
            ),
            _ => None,
        };
        let network = match trust {
            Some(client) => Network::Tls(Arc::new(client)),
            None => Network::Tcp,
        };
        Ok(Tls { server, network })
    }
}

fn plan(service: Service) -> anyhow::Result<(Base, Plan, TlsPlan)> {
    match service {
        Service::Keyvault(cmd) => {
            let flags = Settings {
                listen: cmd.listen,
                ..Settings::from_flags(&cmd.common, None)
            }
            .with_tls_flags(&cmd.tls, None);
            let mut base = resolve(&cmd.common, flags)?;
            let s = &mut base.settings;
            let listen = *s.listen.get_or_insert(loopback(KEYVAULT_PORT));
            let data_dir = s.data_dir()?;
            let tls = TlsPlan {
                server: s.server_tls("keyvault", Some(data_dir.join("tls")))?,
                trust: None,
                internal: false,
            };
            Ok((base, Plan::Keyvault { listen, data_dir }, tls))
        }
        Service::Storage(cmd) => {
            let flags = Settings {
                listen: cmd.listen,
                keyvault: cmd.keyvault.clone(),
                ..Settings::from_flags(&cmd.common, Some(&cmd.profile))
            }
            .with_tls_flags(&cmd.tls, Some(&cmd.tls_ca));
            let mut base = resolve(&cmd.common, flags)?;
            let s = &mut base.settings;
            let listen = *s.listen.get_or_insert(loopback(STORAGE_PORT));
            let keyvault = check_url(
                "--keyvault",
                s.keyvault
                    .get_or_insert_with(|| local_url(loopback(KEYVAULT_PORT))),
            )?;
            let profile = s.profile()?;
            s.profile.get_or_insert_with(|| profile.name.clone());
            let data_dir = s.data_dir()?;
            let tls = TlsPlan {
                server: s.server_tls("storage", Some(data_dir.join("tls")))?,
                trust: s.client_trust("--keyvault", &keyvault)?,
                internal: false,
            };
            let identity = match &cmd.alone.identity {
                Some(url) => check_url("--identity", url)?,
                None => keyvault.clone(),
            };
            Ok((
                base,
                Plan::Storage {
                    listen,
                    data_dir,
                    keyvault,
                    profile,
                    identity,
                    guarded: !cmd.alone.allow_anonymous,
                    admin_credentials: cmd.admin_credentials.clone(),
                },
                tls,
            ))
        }
        Service::Ingest(cmd) => {
            let flags = Settings {
                listen: cmd.listen,
                storage: cmd.storage.clone(),
                metrics_listen: cmd.metrics_listen,
                ..Settings::from_flags(&cmd.common, Some(&cmd.profile))
            }
            .with_tls_flags(&cmd.tls, Some(&cmd.tls_ca));
            let mut base = resolve(&cmd.common, flags)?;
            let s = &mut base.settings;
            let listen = *s.listen.get_or_insert(loopback(INGEST_PORT));
            let storage = check_url(
                "--storage",
                s.storage
                    .get_or_insert_with(|| local_url(loopback(STORAGE_PORT))),
            )?;
            let profile = s.profile()?;
            s.profile.get_or_insert_with(|| profile.name.clone());
            // The front end keeps no durable state; a data directory, if given, is only checked
            // (and holds a self-signed TLS certificate when there is no --tls-dir).
            let tls_dir = match s.data_dir.is_some() {
                true => Some(s.data_dir()?.join("tls")),
                false => None,
            };
            let metrics_listen = s.metrics_listen;
            let tls = TlsPlan {
                server: s.server_tls("ingest", tls_dir)?,
                trust: s.client_trust("--storage", &storage)?,
                internal: false,
            };
            let auth = match cmd.alone.allow_anonymous {
                true => None,
                false => {
                    let identity = match &cmd.alone.identity {
                        Some(url) => check_url("--identity", url)?,
                        None => local_url(loopback(KEYVAULT_PORT)),
                    };
                    // Checked when serving (after --print-config and the TLS files).
                    Some((identity, cmd.admin_credentials.clone()))
                }
            };
            Ok((
                base,
                Plan::Ingest {
                    listen,
                    storage,
                    metrics_listen,
                    profile,
                    auth,
                },
                tls,
            ))
        }
        Service::All(cmd) => {
            let flags = Settings {
                listen: cmd.listen,
                keyvault_listen: cmd.keyvault_listen,
                storage_listen: cmd.storage_listen,
                ingest_listen: cmd.ingest_listen,
                metrics_listen: cmd.metrics_listen,
                rest_listen: cmd.rest_listen,
                ..Settings::from_flags(&cmd.common, Some(&cmd.profile))
            }
            .with_tls_flags(&cmd.tls, Some(&cmd.tls_ca));
            let mut base = resolve(&cmd.common, flags)?;
            let s = &mut base.settings;
            let listen = *s.listen.get_or_insert(loopback(KEYVAULT_PORT));
            let next = |offset: u16| -> anyhow::Result<SocketAddr> {
                // Port 0 asks the OS for each port; otherwise the next ports up.
                if listen.port() == 0 {
                    return Ok(listen);
                }
                let port = listen.port().checked_add(offset).with_context(|| {
                    format!("--listen {listen}: no room for three consecutive ports")
                })?;
                Ok(SocketAddr::new(listen.ip(), port))
            };
            let keyvault_listen = *s.keyvault_listen.get_or_insert(next(0)?);
            let storage_listen = *s.storage_listen.get_or_insert(next(1)?);
            let ingest_listen = *s.ingest_listen.get_or_insert(next(2)?);
            let profile = s.profile()?;
            s.profile.get_or_insert_with(|| profile.name.clone());
            let data_dir = s.data_dir()?;
            config::check_writable_dir(&data_dir.join("keyvault"))?;
            config::check_writable_dir(&data_dir.join("storage"))?;
            let metrics_listen = s.metrics_listen;
            let tls = TlsPlan {
                server: s.server_tls("all", Some(data_dir.join("tls")))?,
                trust: s.tls_ca.clone(),
                internal: true,
            };
            let rest = match s.rest_listen {
                Some(listen) => Some(RestPlan::new(
                    listen,
                    s.rest_tls("all", Some(data_dir.join("tls")))?,
                    s.tls_ca.clone(),
                    data_dir.clone(),
                    cmksim_identity::authority::admin_credentials_path(
                        &data_dir.join("keyvault").join("identity"),
                    ),
                )),
                None => None,
            };
            Ok((
                base,
                Plan::All {
                    keyvault_listen,
                    storage_listen,
                    ingest_listen,
                    metrics_listen,
                    data_dir,
                    profile,
                    rest,
                    // --require-tokens is the default (kept as an alias; it conflicts with
                    // --allow-anonymous).
                    require_tokens: cmd.require_tokens || !cmd.allow_anonymous,
                },
                tls,
            ))
        }
        Service::Rest(cmd) => {
            let flags = Settings {
                rest_listen: cmd.rest_listen,
                keyvault: cmd.keyvault.clone(),
                storage: cmd.storage.clone(),
                ingest: cmd.ingest.clone(),
                ..Settings::from_flags(&cmd.common, None)
            }
            .with_tls_flags(&cmd.tls, Some(&cmd.tls_ca));
            let mut base = resolve(&cmd.common, flags)?;
            let s = &mut base.settings;
            let listen = *s.rest_listen.get_or_insert(loopback(REST_PORT));
            let upstream = |flag: &str, value: &mut Option<String>, port: u16| {
                check_url(flag, value.get_or_insert_with(|| local_url(loopback(port))))
            };
            let keyvault = upstream("--keyvault", &mut s.keyvault, KEYVAULT_PORT)?;
            let storage = upstream("--storage", &mut s.storage, STORAGE_PORT)?;
            let ingest = upstream("--ingest", &mut s.ingest, INGEST_PORT)?;
            let data_dir = s.data_dir()?;
            let mut trust = None;
            for (flag, url) in [
                ("--keyvault", &keyvault),
                ("--storage", &storage),
                ("--ingest", &ingest),
            ] {
                trust = trust.or(s.client_trust(flag, url)?);
            }
            // Default: a Key Vault served with the same --data-dir.
            let admin_credentials = cmd.admin_credentials.clone().unwrap_or_else(|| {
                cmksim_identity::authority::admin_credentials_path(&data_dir.join("identity"))
            });
            let rest = RestPlan::new(
                listen,
                s.rest_tls("rest", Some(data_dir.join("tls")))?,
                s.tls_ca.clone(),
                data_dir,
                admin_credentials,
            );
            let tls = TlsPlan {
                server: None,
                trust,
                internal: false,
            };
            Ok((
                base,
                Plan::Rest {
                    rest,
                    keyvault,
                    storage,
                    ingest,
                },
                tls,
            ))
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let print_config = match args.service.as_ref() {
        Service::Keyvault(c) => c.common.print_config,
        Service::Storage(c) => c.common.print_config,
        Service::Ingest(c) => c.common.print_config,
        Service::All(c) => c.common.print_config,
        Service::Rest(c) => c.common.print_config,
    };
    let (base, plan, tls) = plan(*args.service)?;
    if print_config {
        out!("{}", toml::to_string(&base.settings)?);
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(base.log_format);
    cmksim_sim::net::install_crypto_provider();
    let tls = tls.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(base, plan, tls))?;
    Ok(ExitCode::SUCCESS)
}

/// Binds `addr` (nothing is served yet).
async fn bind(service: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{service}: cannot listen on {addr}"))
}

/// Tells stdout where a service listens (one line, flushed), and the log.
fn announce(service: &str, listener: &TcpListener, tls: bool) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let url = service_url(addr, tls);
    let mut out = std::io::stdout().lock();
    // A closed stdout (its reader went away) must not stop the service: the line is lost and
    // the log says why; the service goes on.
    if let Err(error) = writeln!(out, "listening {service} {url}").and_then(|()| out.flush()) {
        tracing::warn!(service, %url, %error, "could not write the listening line to stdout");
    }
    tracing::info!(service, %addr, tls, "listening");
    Ok(addr)
}

/// `$server.serve_with_incoming(…)` on the connections of `$listener`: after a TLS handshake
/// when `$tls` (an `Option<&TlsMaterial>`) is set, plain TCP otherwise. A macro because the two
/// streams have different types and the servers are generic over them.
macro_rules! serve_on {
    ($server:expr, $listener:expr, $tls:expr, $stop:expr) => {
        match $tls {
            Some(tls) => {
                $server
                    .serve_with_incoming(
                        cmksim_sim::net::tls_incoming($listener, tls.server.clone()),
                        $stop,
                    )
                    .await
            }
            None => {
                $server
                    .serve_with_incoming(cmksim_sim::net::tcp_incoming($listener), $stop)
                    .await
            }
        }
    };
}

/// An event log whose events go to the tracing log.
fn event_log() -> EventLog {
    let events = EventLog::default();
    events.add_sink(Box::new(|event| {
        tracing::info!(target: "cmksim::event", source = %event.source, kind = %event.kind, "{}", event.message)
    }));
    events
}

/// A future that resolves once `flag` is true.
fn until(flag: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = flag.clone();
    async move {
        let _ = rx.wait_for(|set| *set).await;
    }
}

async fn serve(base: Base, plan: Plan, tls: Tls) -> anyhow::Result<()> {
    let server_tls = tls.server.as_ref();
    let network = &tls.network;
    let clock = base.clock.clone();
    tracing::info!(
        epoch_unix_ms = base.epoch_unix_ms,
        time_scale = clock.time_scale(),
        simulated_now = %clock.now(),
        "live clock (give every process the same --epoch and --time-scale)"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: finishing in-flight calls");
            stop_tx.send_replace(true);
        });
    }
    let served = async {
        match plan {
            Plan::Keyvault { listen, data_dir } => {
                let listener = bind("keyvault", listen).await?;
                let server = open_keyvault(&data_dir, &base)?;
                announce("keyvault", &listener, server_tls.is_some())?;
                announce_admin(&server, &data_dir);
                serve_on!(server, listener, server_tls, until(&stop_rx))?;
            }
            Plan::Storage {
                listen,
                data_dir,
                keyvault,
                profile,
                identity,
                guarded,
                admin_credentials,
            } => {
                // Before anything listens: unreadable credentials start nothing.
                let admin = match admin_credentials {
                    Some(file) => Some(cmksim_identity::AdminCredentials::load(&file)?),
                    None => None,
                };
                let listener = bind("storage", listen).await?;
                let server = open_storage(&data_dir, &base, profile, (&keyvault, None), network)?;
                let principal = server.principal();
                match admin {
                    Some(admin) => {
                        let provider = (cmksim_identity::directory::STORAGE_PROVIDER_NAME, &[][..]);
                        let (_, object_id, secret) =
                            own_principal("storage", &identity, &admin, network, &clock, provider)
                                .await?;
                        principal.set(&object_id, &secret);
                    }
                    None => tracing::warn!(
                        "storage has no principal of its own (no --admin-credentials): it refuses \
                         to create clusters and storage accounts"
                    ),
                }
                let server = match guarded {
                    // Not asked now: the guard fetches the keys at the first guarded call, so
                    // storage may start before Key Vault (a call meanwhile gets 503).
                    true => {
                        let channel = network.channel(&identity, ClientTimeouts::default())?;
                        tracing::info!(identity = %identity, "storage requires tokens and roles");
                        server.with_guard(cmksim_identity::Guard::remote(channel, clock.clone()))
                    }
                    false => {
                        tracing::warn!("storage serves calls without a token (--allow-anonymous)");
                        server
                    }
                };
                announce("storage", &listener, server_tls.is_some())?;
                serve_on!(server, listener, server_tls, until(&stop_rx))?;
            }
            Plan::Ingest {
                listen,
                storage,
                metrics_listen,
                profile,
                auth,
            } => {
                // Before anything listens: a start that cannot check tokens starts nothing.
                let auth = match auth {
                    Some((_, None)) => anyhow::bail!(
                        "serve ingest checks tokens and calls storage as its own service \
                         principal, which the identity administrator makes: give \
                         --admin-credentials FILE (the identity-admin.json Key Vault wrote on \
                         its first start), or --allow-anonymous to serve without token checks"
                    ),
                    Some((url, Some(file))) => {
                        Some((url, cmksim_identity::AdminCredentials::load(&file)?))
                    }
                    None => None,
                };
                let listener = bind("ingest", listen).await?;
                let metrics = match metrics_listen {
                    Some(addr) => Some(bind("metrics", addr).await?),
                    None => None,
                };
                let server = match auth {
                    Some((url, admin)) => {
                        let principal = ("cmksim-ingest", &INGEST_ROLES[..]);
                        let (channel, object_id, secret) =
                            own_principal("ingest", &url, &admin, network, &clock, principal)
                                .await?;
                        let tokens = cmksim_identity::TokenSource::new(
                            channel.clone(),
                            &object_id,
                            &secret,
                            clock.clone(),
                        );
                        let storage_channel =
                            network.channel(&storage, ClientTimeouts::default())?;
                        tracing::info!(identity = %url, "ingest requires tokens and roles");
                        cmksim_ingest::IngestServer::with_backend(
                            base.clock.clone(),
                            event_log(),
                            profile,
                            Arc::new(cmksim_ingest::backend::grpc::GrpcStorage::with_tokens(
                                storage_channel,
                                tokens,
                            )),
                        )
                        .with_guard(cmksim_identity::Guard::remote(channel, clock.clone()))
                    }
                    None => {
                        tracing::warn!("ingest serves calls without a token (--allow-anonymous)");
                        open_ingest(&base, profile, &storage, network)?
                    }
                };
                announce("ingest", &listener, server_tls.is_some())?;
                serve_ingest(server, listener, metrics, &stop_rx, server_tls).await?;
            }
            Plan::All {
                keyvault_listen,
                storage_listen,
                ingest_listen,
                metrics_listen,
                data_dir,
                profile,
                rest,
                require_tokens,
            } => {
                let listens = AllListens {
                    services: [keyvault_listen, storage_listen, ingest_listen],
                    metrics: metrics_listen,
                    rest,
                    require_tokens,
                };
                serve_all(
                    &base,
                    listens,
                    &data_dir,
                    profile,
                    &tls,
                    (&stop_tx, &stop_rx),
                )
                .await?;
            }
            Plan::Rest {
                rest,
                keyvault,
                storage,
                ingest,
            } => {
                let listener = bind("rest", rest.listen).await?;
                let urls = [keyvault, storage, ingest];
                serve_rest(&base, rest, listener, urls, network, until(&stop_rx)).await?;
            }
        }
        anyhow::Ok(())
    };
    let grace = async {
        until(&stop_rx).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = served => result?,
        _ = grace => {
            tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "servers did not stop in time; exiting");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn open_keyvault(
    data_dir: &std::path::Path,
    base: &Base,
) -> anyhow::Result<cmksim_keyvault::KeyVaultServer> {
    data_lock::hold("keyvault", data_dir)?;
    let config = cmksim_keyvault::KeyVaultConfig {
        os_key_material: true,
        without_hsm: false,
        key_material_seed: None,
    };
    let server = cmksim_keyvault::KeyVaultServer::open(
        data_dir,
        base.clock.clone(),
        SeedTree::new(base.seed),
        event_log(),
        config,
    )?;
    tracing::info!(data_dir = %data_dir.display(), "Key Vault opened");
    Ok(server)
}

/// On the identity authority's first start, its bootstrap administrator's credentials: printed
/// once to stdout after the `listening` lines (like the dashboard's sign-in link) and kept in
/// its file (mode 0600). Every principal and role assignment is made with this administrator's
/// token.
fn announce_admin(server: &cmksim_keyvault::KeyVaultServer, data_dir: &std::path::Path) {
    let identity = server.identity();
    let authority = identity.lock().unwrap_or_else(|p| p.into_inner());
    let (true, Some(admin)) = (authority.admin_created(), authority.admin_credentials()) else {
        return;
    };
    let path = cmksim_identity::authority::admin_credentials_path(&data_dir.join("identity"));
    let lines = [
        format!(
            "# cmksim: the identity administrator's credentials (shown once; kept in {})",
            path.display()
        ),
        format!("export CMKSIM_ADMIN_CREDENTIALS='{}'", path.display()),
        format!("export AZURE_TENANT_ID='{}'", admin.tenant_id),
        format!("export AZURE_CLIENT_ID='{}'", admin.client_id),
        format!("export AZURE_CLIENT_SECRET='{}'", admin.client_secret),
    ];
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the service: the credentials stay in their file.
    if let Err(error) = lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
    {
        tracing::warn!(%error, path = %path.display(), "could not print the administrator's credentials");
    }
}

/// Cluster storage on `data_dir`; `authority`, when this process hosts the identity authority
/// (`serve all`), makes storage's first-party principal there (`serve storage` alone makes it
/// through the identity API, with --admin-credentials).
fn open_storage(
    data_dir: &std::path::Path,
    base: &Base,
    profile: Profile,
    (keyvault, authority): (
        &str,
        Option<&std::sync::Mutex<cmksim_identity::IdentityAuthority>>,
    ),
    network: &Network,
) -> anyhow::Result<cmksim_storage::StorageServer> {
    data_lock::hold("storage", data_dir)?;
    tracing::info!(data_dir = %data_dir.display(), keyvault, profile = %profile.name, "storage opening");
    let mut config = cmksim_storage::StorageConfig::new(
        data_dir,
        base.clock.clone(),
        SeedTree::new(base.seed),
        event_log(),
        profile,
        network.clone(),
        keyvault,
    );
    config.os_key_material = true;
    let config = match authority {
        Some(authority) => config.with_principal_of(authority)?,
        None => config,
    };
    Ok(cmksim_storage::StorageServer::open(config)?)
}

/// The ingest front end's roles at `/` (Azure Monitor's pipeline writes into and reads every
/// customer's workspace), the same in `serve all` and `serve ingest`.
const INGEST_ROLES: [cmksim_identity::Role; 2] = [
    cmksim_identity::Role::MonitoringMetricsPublisher,
    cmksim_identity::Role::LogAnalyticsReader,
];

/// A channel to the identity service at `url` that checks `service`'s tokens, once it has
/// answered (its signing keys): a service that cannot check tokens refuses to start.
async fn reach_identity(
    service: &str,
    url: &str,
    network: &Network,
) -> anyhow::Result<tonic::transport::Channel> {
    let channel = network.channel(url, ClientTimeouts::default())?;
    let answer = cmksim_proto::identity::v1::identity_client::IdentityClient::new(channel.clone())
        .get_signing_keys(cmksim_proto::identity::v1::Empty {})
        .await;
    if let Err(status) = answer {
        anyhow::bail!(
            "serve {service} checks tokens with the identity service at {url}, which does not \
             answer ({}): start `cmksim serve keyvault` there, give --identity URL, or \
             --allow-anonymous to serve without token checks",
            status.message()
        );
    }
    Ok(channel)
}

/// The principal `name` with `roles` at `/` that `service`, served alone, makes at its start as
/// the identity administrator `admin`, through the identity service at `url` (which must
/// answer): the identity channel and the principal's `(object id, secret)`.
async fn own_principal(
    service: &str,
    url: &str,
    admin: &cmksim_identity::AdminCredentials,
    network: &Network,
    clock: &Clock,
    (name, roles): (&str, &[cmksim_identity::Role]),
) -> anyhow::Result<(tonic::transport::Channel, String, String)> {
    let channel = reach_identity(service, url, network).await?;
    let (object_id, secret) = cmksim_identity::provision_service_principal(
        admin.channel(channel.clone(), clock.clone()),
        name,
        roles,
    )
    .await
    .map_err(|status| {
        anyhow::anyhow!(
            "serve {service}: the identity administrator of --admin-credentials could not make \
             {service}'s principal at {url}: {}",
            status.message()
        )
    })?;
    Ok((channel, object_id, secret))
}

/// The ingest front end over a storage channel built here (so that it may be TLS).
fn open_ingest(
    base: &Base,
    profile: Profile,
    storage: &str,
    network: &Network,
) -> anyhow::Result<cmksim_ingest::IngestServer> {
    let channel = network.channel(storage, ClientTimeouts::default())?;
    Ok(cmksim_ingest::IngestServer::with_backend(
        base.clock.clone(),
        event_log(),
        profile,
        Arc::new(cmksim_ingest::backend::grpc::GrpcStorage::new(channel)),
    ))
}

async fn serve_ingest(
    server: cmksim_ingest::IngestServer,
    listener: TcpListener,
    metrics: Option<TcpListener>,
    stop: &watch::Receiver<bool>,
    tls: Option<&TlsMaterial>,
) -> anyhow::Result<()> {
    let metrics_task = match metrics {
        Some(listener) => {
            announce("metrics", &listener, false)?;
            let server = server.clone();
            let stop = until(stop);
            Some(tokio::spawn(async move {
                server.serve_metrics(listener, stop).await
            }))
        }
        None => None,
    };
    let result = serve_on!(server, listener, tls, until(stop));
    if let Some(task) = metrics_task {
        match task.await {
            Ok(Err(e)) => tracing::warn!("metrics listener: {e}"),
            Err(e) => tracing::warn!("metrics listener task: {e}"),
            Ok(Ok(())) => {}
        }
    }
    Ok(result?)
}

/// What `serve all` listens on: the three services, and optionally `/metrics` and the door.
struct AllListens {
    services: [SocketAddr; 3],
    metrics: Option<SocketAddr>,
    rest: Option<RestPlan>,
    /// Guard storage, ingest and Sentinel (the default; off with `--allow-anonymous`).
    require_tokens: bool,
}

/// The three services in one process: bound first (all or nothing), then served; stopped
/// ingest → storage → Key Vault.
async fn serve_all(
    base: &Base,
    listens: AllListens,
    data_dir: &std::path::Path,
    profile: Profile,
    tls: &Tls,
    (stop_tx, stop_rx): (&Arc<watch::Sender<bool>>, &watch::Receiver<bool>),
) -> anyhow::Result<()> {
    let AllListens {
        services: [keyvault_listen, storage_listen, ingest_listen],
        metrics: metrics_listen,
        rest,
        require_tokens,
    } = listens;
    let server_tls = tls.server.as_ref();
    let on = server_tls.is_some();
    let kv_listener = bind("keyvault", keyvault_listen).await?;
    let st_listener = bind("storage", storage_listen).await?;
    let in_listener = bind("ingest", ingest_listen).await?;
    let se_listener = bind("sentinel", sentinel_listen(ingest_listen)).await?;
    let metrics = match metrics_listen {
        Some(addr) => Some(bind("metrics", addr).await?),
        None => None,
    };
    let rest = match rest {
        Some(mut plan) => {
            plan.dashboard_profile = Some(profile.clone());
            let listener = bind("rest", plan.listen).await?;
            Some((plan, listener))
        }
        None => None,
    };
    let keyvault = open_keyvault(&data_dir.join("keyvault"), base)?;
    let kv_url = service_url(kv_listener.local_addr()?, on);
    let storage = open_storage(
        &data_dir.join("storage"),
        base,
        profile.clone(),
        (&kv_url, Some(&keyvault.identity())),
        &tls.network,
    )?;
    let st_url = service_url(st_listener.local_addr()?, on);
    let in_url = service_url(in_listener.local_addr()?, on);
    // Sentinel's principal and guard (with tokens required), before it opens.
    // Sentinel's principal always (it registers tenants' Cosmos DB principals in its own name,
    // which the identity service requires even with --allow-anonymous); its guard with tokens
    // required.
    let sentinel_auth = {
        let authority = keyvault.identity();
        let tokens = service_principal(
            &authority,
            base,
            &kv_url,
            &tls.network,
            (
                cmksim_identity::directory::SENTINEL_PROVIDER_NAME,
                &[cmksim_identity::Role::Reader],
            ),
        )?;
        let guard = require_tokens.then(|| {
            cmksim_identity::Guard::new(
                Arc::new(cmksim_identity::guard::LocalAccess(authority.clone())),
                base.clock.clone(),
            )
        });
        (guard, tokens)
    };
    let sentinel = open_sentinel(
        &data_dir.join("sentinel"),
        base,
        profile.clone(),
        [&kv_url, &st_url],
        &tls.network,
        sentinel_auth,
    )?;
    let (storage, ingest) = if require_tokens {
        let authority = keyvault.identity();
        let tokens = service_principal(
            &authority,
            base,
            &kv_url,
            &tls.network,
            ("cmksim-ingest", &INGEST_ROLES),
        )?;
        let guard = || {
            cmksim_identity::Guard::new(
                Arc::new(cmksim_identity::guard::LocalAccess(authority.clone())),
                base.clock.clone(),
            )
        };
        let channel = tls.network.channel(&st_url, ClientTimeouts::default())?;
        let ingest = cmksim_ingest::IngestServer::with_backend(
            base.clock.clone(),
            event_log(),
            profile,
            Arc::new(cmksim_ingest::backend::grpc::GrpcStorage::with_tokens(
                channel, tokens,
            )),
        );
        tracing::info!("storage, ingest and Sentinel require tokens and roles");
        (storage.with_guard(guard()), ingest.with_guard(guard()))
    } else {
        tracing::warn!(
            "storage, ingest and Sentinel serve calls without a token (--allow-anonymous)"
        );
        (storage, open_ingest(base, profile, &st_url, &tls.network)?)
    };
    announce("keyvault", &kv_listener, on)?;
    announce("storage", &st_listener, on)?;
    announce("ingest", &in_listener, on)?;
    announce("sentinel", &se_listener, on)?;

    // Stopped front to back: the door, then ingest, then storage, then Key Vault, so that no
    // service loses its upstream while finishing a call.
    let (rest_done_tx, rest_done) = watch::channel(rest.is_none());
    let (ingest_stop_tx, ingest_stop) = watch::channel(false);
    let (ingest_done_tx, ingest_done) = watch::channel(false);
    let (storage_done_tx, storage_done) = watch::channel(false);
    // Sentinel asks storage and Key Vault: it stops with ingest, before storage.
    let (sentinel_done_tx, sentinel_done) = watch::channel(false);
    let sentinel_fut = async {
        let result = serve_on!(sentinel, se_listener, server_tls, until(stop_rx));
        if result.is_err() {
            stop_tx.send_replace(true);
        }
        sentinel_done_tx.send_replace(true);
        result.context("sentinel")
    };
    let rest_fut = async {
        let Some((plan, listener)) = rest else {
            return Ok(());
        };
        let urls = [kv_url.clone(), st_url.clone(), in_url];
        let result = serve_rest(base, plan, listener, urls, &tls.network, until(stop_rx)).await;
        if result.is_err() {
            stop_tx.send_replace(true);
        }
        rest_done_tx.send_replace(true);
        result.context("rest")
    };
    let ingest_gate = {
        let (stop, rest_done) = (until(stop_rx), until(&rest_done));
        async move {
            stop.await;
            rest_done.await;
            ingest_stop_tx.send_replace(true);
        }
    };
    let ingest_fut = async {
        let result = serve_ingest(ingest, in_listener, metrics, &ingest_stop, server_tls).await;
        if result.is_err() {
            stop_tx.send_replace(true);
        }
        ingest_done_tx.send_replace(true);
        result.context("ingest")
    };
    let storage_stop = {
        let (stop, ingest_done) = (until(stop_rx), until(&ingest_done));
        let sentinel_done = until(&sentinel_done);
        async move {
            stop.await;
            ingest_done.await;
            sentinel_done.await;
        }
    };
    let storage_fut = async {
        let result = serve_on!(storage, st_listener, server_tls, storage_stop);
        if result.is_err() {
            stop_tx.send_replace(true);
        }
        storage_done_tx.send_replace(true);
        result.context("storage")
    };
    let keyvault_stop = {
        let (stop, storage_done) = (until(stop_rx), until(&storage_done));
        async move {
            stop.await;
            storage_done.await;
        }
    };
    let keyvault_fut = async {
        // Polled after ingest's future (tokio::join! polls in order), so that these lines come
        // after every `listening` line, `/metrics`'s included.
        announce_admin(&keyvault, &data_dir.join("keyvault"));
        let result = serve_on!(keyvault, kv_listener, server_tls, keyvault_stop);
        if result.is_err() {
            stop_tx.send_replace(true);
        }
        result.context("keyvault")
    };
    let (r, (), i, s, k, se) = tokio::join!(
        rest_fut,
        ingest_gate,
        ingest_fut,
        storage_fut,
        keyvault_fut,
        sentinel_fut
    );
    r.and(i).and(s).and(k).and(se)
}

/// Where `serve all` serves Sentinel: the port after ingest's (the OS's choice when ingest's
/// is 0, or when ingest's is the last port).
fn sentinel_listen(ingest_listen: SocketAddr) -> SocketAddr {
    match ingest_listen.port() {
        0 | u16::MAX => SocketAddr::new(ingest_listen.ip(), 0),
        port => SocketAddr::new(ingest_listen.ip(), port + 1),
    }
}

/// Sentinel (seed 002) over Key Vault and storage at `[keyvault, storage]`, with its guard (if
/// tokens are required) and its own principal's tokens (for storage and the identity service).
fn open_sentinel(
    data_dir: &std::path::Path,
    base: &Base,
    profile: Profile,
    [keyvault, storage]: [&str; 2],
    network: &Network,
    (guard, tokens): (
        Option<cmksim_identity::Guard>,
        Arc<cmksim_identity::TokenSource>,
    ),
) -> anyhow::Result<cmksim_sentinel::SentinelServer> {
    tracing::info!(data_dir = %data_dir.display(), keyvault, storage, "sentinel opening");
    let mut config = cmksim_sentinel::SentinelConfig::new(
        data_dir,
        base.clock.clone(),
        SeedTree::new(base.seed),
        event_log(),
        profile,
        network.clone(),
        keyvault,
        storage,
    );
    config.os_key_material = true;
    config.guard = guard;
    config.storage_tokens = Some(tokens);
    Ok(cmksim_sentinel::SentinelServer::open(config)?)
}

/// A service's own principal `(name, roles)` when tokens are required: a service principal of
/// the tenant `cmksim-services` (made on the first such start), with `roles` at the root scope
/// — the ingest front end's Monitoring Metrics Publisher and Log Analytics Reader (Azure
/// Monitor's pipeline writes into and reads every customer's workspace), Sentinel's Reader. A
/// new principal each start: its secret is shown only at creation and kept nowhere.
fn service_principal(
    authority: &std::sync::Mutex<cmksim_identity::IdentityAuthority>,
    base: &Base,
    keyvault_url: &str,
    network: &Network,
    (name, roles): (&str, &[cmksim_identity::Role]),
) -> anyhow::Result<Arc<cmksim_identity::TokenSource>> {
    let (principal, secret) = authority
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .create_service_principal(name, roles)?;
    let identity = network.channel(keyvault_url, ClientTimeouts::default())?;
    Ok(cmksim_identity::TokenSource::new(
        identity,
        &principal.object_id,
        &secret,
        base.clock.clone(),
    ))
}

/// The HTTPS front door in front of the services at `urls` (Key Vault, storage, ingest): its
/// certificate read (or made), its credentials loaded (or, on the first start, created and
/// printed as `export` lines), then served until `stop`.
async fn serve_rest(
    base: &Base,
    plan: RestPlan,
    listener: TcpListener,
    [keyvault, storage, ingest]: [String; 3],
    network: &Network,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let material = config::load_server_tls(&plan.tls)?;
    let public_url = service_url(listener.local_addr()?, true);
    let config = cmksim_rest::RestConfig {
        keyvault_url: keyvault,
        storage_url: storage,
        ingest_url: ingest,
        network: network.clone(),
        clock: base.clock.clone(),
        data_dir: plan.data_dir.clone(),
        ca_file: plan.ca_file.clone(),
        seed: base.seed,
        admin_credentials: plan.admin_credentials.clone(),
    };
    let server = cmksim_rest::RestServer::open(config, public_url)
        .await
        .context("the HTTPS front door")?;
    if let Some(profile) = plan.dashboard_profile.clone() {
        server.judge_dashboard_under(profile);
    }
    announce("rest", &listener, true)?;
    if server.first_start() {
        let path = plan.data_dir.join(cmksim_rest::bootstrap::CREDENTIALS_FILE);
        let mut lines = vec![format!(
            "# cmksim: the administrator's credentials (shown once; kept in {})",
            path.display()
        )];
        lines.extend(server.credentials().exports());
        let mut out = std::io::stdout().lock();
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    // The live dashboard's one-time sign-in link (spent on first use; a new one:
    // POST /_cmksim/dashboard/links with the administrator's token). Printed here only.
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "dashboard: {} (one-time sign-in link to the live dashboard)",
            server.dashboard_link()?
        )?;
        out.flush()?;
    }
    server
        .serve(listener, material.server, stop)
        .await
        .context("serving the HTTPS front door")?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // Never std::io::stderr itself: a closed stderr would panic the service (log_writer).
        .with_writer(crate::log_writer::LossyStderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
