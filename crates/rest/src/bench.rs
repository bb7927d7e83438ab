//! `cmksim bench rest`: Key Vault unwrapKey through the HTTPS front door (TLS, HTTP/1.1
//! keep-alive) beside the same call over gRPC and the door's router called in process, measured
//! in one run.
//!
//! [`run`] starts a real Key Vault server and the door on `127.0.0.1:0` (a two-thread runtime;
//! the clients run on a one-thread runtime of their own, as callers in other processes would),
//! creates a premium vault and an `RSA-HSM` 2048 key through the door's own bootstrap
//! credentials, wraps a 32-byte value once and measures `unwrapKey` (`RSA-OAEP-256`):
//! - **HTTPS**: `clients` connections, each with one request in flight, as an SDK does;
//! - **gRPC**: `clients` channels straight to Key Vault, the same request;
//! - **door in process**: the door's router called with `tower::ServiceExt::oneshot` (the REST
//!   translation and the gRPC call behind it, without TLS and without an HTTP socket), one
//!   request at a time per client task.
//!
//! The goal is HTTPS ≥ [`GOAL_RATIO`] × gRPC. Sides are interleaved in rounds so that machine
//! load hits them alike; the load average is recorded. This is a measuring tool: it reads the
//! real clock (`Instant`) and talks only to the servers it started. Every loop is bounded by
//! time and by [`REQUESTS_PER_SLICE_MAX`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cmksim_keyvault::bench::{load_average, percentile_us};
use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};
use serde::Serialize;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::auth::forward;
use crate::client::HttpsClient;
use crate::{RestConfig, RestServer};

/// Most requests one client makes in one slice.
pub const REQUESTS_PER_SLICE_MAX: u64 = 1_000_000;
/// Most concurrent clients.
pub const CLIENTS_MAX: usize = 64;
/// The goal: HTTPS throughput at least this fraction of gRPC's.
pub const GOAL_RATIO: f64 = 0.7;
/// The algorithm measured.
pub const ALGORITHM: &str = "RSA-OAEP-256";

const VAULT: &str = "benchvault";
const VAULT_HOST: &str = "benchvault.vault.azure.net";
const KEY: &str = "kek";
const PAYLOAD: [u8; 32] = [0x5A; 32];
const SERVER_WORKER_THREADS: usize = 2;

/// What to measure and for how long.
#[derive(Clone, Debug)]
pub struct RestBenchOptions {
    /// Measuring time per side, split over the rounds.
    pub duration: Duration,
    /// Rounds the sides are interleaved in (at least 1).
    pub rounds: u32,
    /// Concurrent clients, one request in flight each (1..=[`CLIENTS_MAX`]).
    pub clients: usize,
}

impl Default for RestBenchOptions {
    fn default() -> Self {
        RestBenchOptions {
            duration: Duration::from_secs(3),
            rounds: 3,
            clients: 4,
        }
    }
}

/// One side's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// unwrapKey answers per second, all clients together.
    pub ops_per_s: f64,
    /// Median latency seen by a client, microseconds.
    pub p50_us: u64,
    /// 99th-percentile latency, microseconds.
    pub p99_us: u64,
    /// Requests that failed.
    pub errors: u64,
}

/// The report (`--json` prints it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestBenchReport {
    pub algorithm: String,
    pub key: String,
    pub clients: usize,
    pub duration_ms: u64,
    pub rounds: u32,
    pub https: Side,
    pub grpc: Side,
    pub door_in_process: Side,
    /// HTTPS / gRPC (goal ≥ [`GOAL_RATIO`]).
    pub ratio_https_to_grpc: Option<f64>,
    pub load_average_before: Option<String>,
    pub load_average_after: Option<String>,
    /// What failed.
    pub notes: Vec<String>,
}

impl RestBenchReport {
    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let rows = [
            ("HTTPS (TLS, HTTP/1.1 keep-alive)", &self.https),
            ("gRPC (h2c, straight to Key Vault)", &self.grpc),
            ("door in process (no TLS, no socket)", &self.door_in_process),
        ];
        let mut lines = vec![format!(
            "{:<40} {:>10} {:>9} {:>9} {:>7}",
            format!("unwrapKey {} {}", self.key, self.algorithm),
            "ops/s",
            "p50 us",
            "p99 us",
            "errors"
        )];
        for (label, side) in rows {
            lines.push(format!(
                "{label:<40} {:>10.0} {:>9} {:>9} {:>7}",
                side.ops_per_s, side.p50_us, side.p99_us, side.errors
            ));
        }
        let ratio = self
            .ratio_https_to_grpc
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "-".into());
        let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "unknown".into());
        lines.push(format!(
            "HTTPS / gRPC: {ratio} (goal >= {GOAL_RATIO}); {} clients, one request in flight \
             each; {} ms per side in {} rounds; load average {} before, {} after",
            self.clients,
            self.duration_ms,
            self.rounds,
            load(&self.load_average_before),
            load(&self.load_average_after)
        ));
        for note in &self.notes {
            lines.push(format!("note: {note}"));
        }
        for line in lines {
            // Writing to a String cannot fail.
            writeln!(out, "{line}").expect("write to a String");
        }
        out
    }
}

/// What the clients need: where the servers are and the credentials.
struct Setup {
    rest_addr: SocketAddr,
    ca_pem: Vec<u8>,
    kv_url: String,
    token: String,
    version: String,
    wrapped_b64: String,
    wrapped: Vec<u8>,
    router: axum::Router,
}

/// Runs the benchmark; failures are notes in the report, never panics.
pub fn run(options: &RestBenchOptions) -> RestBenchReport {
    let clients = options.clients.clamp(1, CLIENTS_MAX);
    let rounds = options.rounds.max(1);
    let mut report = RestBenchReport {
        algorithm: ALGORITHM.into(),
        key: "RSA-HSM 2048".into(),
        clients,
        duration_ms: options.duration.as_millis() as u64,
        rounds,
        ..RestBenchReport::default()
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            report.notes.push(format!("temporary directory: {e}"));
            return report;
        }
    };
    if let Err(e) = run_in(dir.path(), options.duration, clients, rounds, &mut report) {
        report.notes.push(e);
    }
    report
}

fn runtime(threads: usize, name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn run_in(
    dir: &std::path::Path,
    duration: Duration,
    clients: usize,
    rounds: u32,
    report: &mut RestBenchReport,
) -> Result<(), String> {
    cmksim_sim::net::install_crypto_provider();
    let servers = runtime(SERVER_WORKER_THREADS, "rest-bench-server")?;
    let client_runtime = runtime(1, "rest-bench-client")?;
    let (stop, stop_rx) = watch::channel(false);
    let setup = Arc::new(servers.block_on(start(dir, stop_rx))?);
    let result = client_runtime.block_on(measure(&setup, duration, clients, rounds, report));
    stop.send_replace(true);
    result
}

async fn until(mut stop: watch::Receiver<bool>) {
    crate::listener::stopped(&mut stop).await;
}

/// Key Vault and the door on loopback, a vault and key made through the bootstrap credentials.
async fn start(dir: &std::path::Path, stop: watch::Receiver<bool>) -> Result<Setup, String> {
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let kv = KeyVaultServer::open(
        &dir.join("kv"),
        clock.clone(),
        SeedTree::new(0),
        EventLog::default(),
        KeyVaultConfig {
            os_key_material: true,
            without_hsm: false,
            key_material_seed: None,
        },
    )
    .map_err(|e| format!("open Key Vault: {e}"))?;
    let kv_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let kv_url = format!(
        "http://{}",
        kv_listener.local_addr().map_err(|e| e.to_string())?
    );
    let kv_stop = until(stop.clone());
    tokio::spawn(async move {
        let incoming = cmksim_sim::net::tcp_incoming(kv_listener);
        if let Err(e) = kv.serve_with_incoming(incoming, kv_stop).await {
            tracing::warn!("bench Key Vault: {e}");
        }
    });
    let names = vec!["localhost".to_string(), "*.vault.azure.net".to_string()];
    let params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let ca_pem = cert.pem().into_bytes();
    std::fs::write(dir.join("cert.pem"), &ca_pem).map_err(|e| e.to_string())?;
    let tls = cmksim_sim::net::tls_server_config(&ca_pem, key.serialize_pem().as_bytes())
        .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let rest_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let config = RestConfig {
        keyvault_url: kv_url.clone(),
        storage_url: kv_url.clone(),
        ingest_url: kv_url.clone(),
        network: Network::Tcp,
        clock,
        data_dir: dir.to_path_buf(),
        ca_file: dir.join("cert.pem"),
        seed: 0,
        admin_credentials: cmksim_identity::authority::admin_credentials_path(
            &dir.join("kv").join("identity"),
        ),
    };
    let door = RestServer::open(config, format!("https://{rest_addr}"))
        .await
        .map_err(|e| format!("open the door: {e}"))?;
    let credentials = door.credentials().clone();
    let router = door.router();
    tokio::spawn(async move {
        if let Err(e) = door.serve(listener, tls, until(stop)).await {
            tracing::warn!("bench door: {e}");
        }
    });
    let channel = Network::Tcp
        .channel(&kv_url, ClientTimeouts::default())
        .map_err(|e| e.to_string())?;
    let identity = idp::identity_client::IdentityClient::new(channel.clone());
    let token = |audience: &str| {
        let request = idp::IssueTokenRequest {
            object_id: credentials.object_id.clone(),
            secret: credentials.client_secret.clone(),
            audience: audience.into(),
            lifetime_seconds: 0,
        };
        let mut identity = identity.clone();
        async move {
            identity
                .issue_token(request)
                .await
                .map(|t| t.into_inner().token)
                .map_err(|e| format!("token: {}", e.message()))
        }
    };
    let mgmt = token(cmksim_identity::audience::MANAGEMENT).await?;
    let vault_token = token(cmksim_identity::audience::VAULT).await?;
    let mut keyvault = kvp::key_vault_client::KeyVaultClient::new(channel);
    keyvault
        .create_vault(forward(
            Some(&mgmt),
            kvp::CreateVaultRequest {
                name: VAULT.into(),
                location: "eastus".into(),
                tenant_id: credentials.tenant_id.clone(),
                sku: kvp::Sku::Premium as i32,
                soft_delete_retention_in_days: Some(7),
                access_policies: vec![kvp::AccessPolicy {
                    tenant_id: credentials.tenant_id.clone(),
                    object_id: credentials.object_id.clone(),
                    key_permissions: ["create", "get", "wrapKey", "unwrapKey"]
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                }],
                ..Default::default()
            },
        ))
        .await
        .map_err(|e| format!("create vault: {}", e.message()))?;
    let bundle = keyvault
        .create_key(forward(
            Some(&vault_token),
            kvp::CreateKeyRequest {
                vault_name: VAULT.into(),
                key_name: KEY.into(),
                kty: "RSA-HSM".into(),
                key_size: 2048,
                key_ops: vec!["wrapKey".into(), "unwrapKey".into()],
                ..Default::default()
            },
        ))
        .await
        .map_err(|e| format!("create key: {}", e.message()))?
        .into_inner();
    let version = bundle
        .key
        .as_ref()
        .map(|k| cmksim_proto::kid::version_of(&k.kid))
        .unwrap_or_default();
    let wrapped = keyvault
        .wrap_key(forward(
            Some(&vault_token),
            kvp::KeyOperationRequest {
                key: Some(key_ref(&version)),
                algorithm: ALGORITHM.into(),
                value: PAYLOAD.to_vec(),
            },
        ))
        .await
        .map_err(|e| format!("wrap: {}", e.message()))?
        .into_inner()
        .value;
    Ok(Setup {
        rest_addr,
        ca_pem,
        kv_url,
        token: vault_token,
        version,
        wrapped_b64: B64.encode(&wrapped),
        wrapped,
        router,
    })
}

fn key_ref(version: &str) -> kvp::KeyRef {
    kvp::KeyRef {
        vault_name: VAULT.into(),
        key_name: KEY.into(),
        version: version.into(),
    }
}

/// Latencies and errors of one side, added up over the rounds.
#[derive(Default)]
struct Tally {
    ops: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Tally {
    fn side(mut self) -> Side {
        self.latencies_us.sort_unstable();
        Side {
            ops_per_s: if self.elapsed.is_zero() {
                0.0
            } else {
                self.ops as f64 / self.elapsed.as_secs_f64()
            },
            p50_us: percentile_us(&self.latencies_us, 0.50),
            p99_us: percentile_us(&self.latencies_us, 0.99),
            errors: self.errors,
        }
    }
}

/// The three kinds of client, one request in flight each.
enum Client {
    Https(HttpsClient),
    Grpc(kvp::key_vault_client::KeyVaultClient<tonic::transport::Channel>),
    InProcess(axum::Router),
}

impl Client {
    /// One unwrapKey; `Err` says what failed.
    async fn unwrap(&mut self, setup: &Setup) -> Result<(), String> {
        let path = format!("/keys/{KEY}/{}/unwrapkey?api-version=7.6", setup.version);
        let body = serde_json::json!({"alg": ALGORITHM, "value": setup.wrapped_b64}).to_string();
        match self {
            Client::Https(client) => {
                let answer = client
                    .json(
                        http::Method::POST,
                        &path,
                        Some(&setup.token),
                        Some(&serde_json::from_str(&body).map_err(|e| e.to_string())?),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                match answer.status.as_u16() {
                    200 => Ok(()),
                    status => Err(format!("HTTPS {status}: {}", answer.json())),
                }
            }
            Client::Grpc(client) => client
                .unwrap_key(forward(
                    Some(&setup.token),
                    kvp::KeyOperationRequest {
                        key: Some(key_ref(&setup.version)),
                        algorithm: ALGORITHM.into(),
                        value: setup.wrapped.clone(),
                    },
                ))
                .await
                .map(drop)
                .map_err(|e| format!("gRPC: {}", e.message())),
            Client::InProcess(router) => {
                let request = http::Request::builder()
                    .method(http::Method::POST)
                    .uri(&path)
                    .header(http::header::HOST, VAULT_HOST)
                    .header(
                        http::header::AUTHORIZATION,
                        format!("Bearer {}", setup.token),
                    )
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| format!("router: {e}"))?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    status => Err(format!("in process {status}")),
                }
            }
        }
    }
}

/// Every client unwraps for `budget`; a client stops at its first error.
async fn slice(clients: Vec<Client>, setup: &Arc<Setup>, budget: Duration) -> (Vec<Client>, Tally) {
    let start = Instant::now();
    let deadline = start + budget;
    let mut tasks = Vec::new();
    for mut client in clients {
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut error = None;
            while (latencies.len() as u64) < REQUESTS_PER_SLICE_MAX && Instant::now() < deadline {
                let sent = Instant::now();
                match client.unwrap(&setup).await {
                    Ok(()) => latencies.push(sent.elapsed().as_micros() as u64),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            (client, latencies, error)
        }));
    }
    let mut tally = Tally::default();
    let mut back = Vec::new();
    for task in tasks {
        if let Ok((client, latencies, error)) = task.await {
            tally.ops += latencies.len() as u64;
            tally.latencies_us.extend(latencies);
            if let Some(e) = error {
                tally.errors += 1;
                tracing::warn!("bench rest: {e}");
            }
            back.push(client);
        }
    }
    tally.elapsed = start.elapsed();
    (back, tally)
}

async fn measure(
    setup: &Arc<Setup>,
    duration: Duration,
    clients: usize,
    rounds: u32,
    report: &mut RestBenchReport,
) -> Result<(), String> {
    let mut https = Vec::new();
    let mut grpc = Vec::new();
    let mut door = Vec::new();
    for _ in 0..clients {
        let client = HttpsClient::connect(setup.rest_addr, VAULT_HOST, &setup.ca_pem)
            .await
            .map_err(|e| format!("HTTPS connect: {e}"))?;
        https.push(Client::Https(client));
        let channel = Network::Tcp
            .channel(&setup.kv_url, ClientTimeouts::default())
            .map_err(|e| e.to_string())?;
        grpc.push(Client::Grpc(kvp::key_vault_client::KeyVaultClient::new(
            channel,
        )));
        door.push(Client::InProcess(setup.router.clone()));
    }
    // Warm-up: one call per client (connections, the parsed key, the challenge cache).
    for side in [&mut https, &mut grpc, &mut door] {
        for client in side.iter_mut() {
            client
                .unwrap(setup)
                .await
                .map_err(|e| format!("warm-up: {e}"))?;
        }
    }
    let budget = duration / rounds;
    let (mut t_https, mut t_grpc, mut t_door) =
        (Tally::default(), Tally::default(), Tally::default());
    report.load_average_before = load_average();
    for _ in 0..rounds {
        for (side, tally) in [
            (&mut https, &mut t_https),
            (&mut grpc, &mut t_grpc),
            (&mut door, &mut t_door),
        ] {
            let (back, measured) = slice(std::mem::take(side), setup, budget).await;
            *side = back;
            tally.ops += measured.ops;
            tally.elapsed += measured.elapsed;
            tally.errors += measured.errors;
            tally.latencies_us.extend(measured.latencies_us);
        }
    }
    report.load_average_after = load_average();
    report.https = t_https.side();
    report.grpc = t_grpc.side();
    report.door_in_process = t_door.side();
    report.ratio_https_to_grpc =
        (report.grpc.ops_per_s > 0.0).then(|| report.https.ops_per_s / report.grpc.ops_per_s);
    for (name, side) in [
        ("HTTPS", &report.https),
        ("gRPC", &report.grpc),
        ("door in process", &report.door_in_process),
    ] {
        if side.errors > 0 {
            report.notes.push(format!(
                "{name}: {} client(s) stopped on an error (see the log)",
                side.errors
            ));
        }
    }
    Ok(())
}
