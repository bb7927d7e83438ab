//! `cmksim bench sim`: how fast the simulated world runs.
//!
//! A soak scenario is generated (one cluster with a customer-managed key, three linked
//! workspaces, one agent each sending a batch a minute, the storage polling Key Vault every
//! 6–60 s) and run for the given number of simulated days. The report gives simulated seconds
//! per wall second and the overhead ratio: wall time ÷ (unwraps × the time of one RSA-2048
//! OAEP-256 unwrap measured in the same run) — how much the simulation costs beyond the
//! cryptography it cannot avoid. The 4-hour revocation scenario of the library is timed too.
//! The unwrap time is sampled on a second thread all through the runs ([`ReferenceSampler`]), so
//! that the ratio compares the runs with the machine as it was while they ran.
//!
//! Beside it, the cost of one gRPC call on the engine's stack is sampled the same way
//! ([`CallReference`]: a health check over the in-memory network, client and server, with a
//! bearer token as every service call carries one), and the engine counts the calls the soak
//! made ([`crate::RunResult::grpc_calls`]). Together they give the floor of the calls: what a
//! simulator doing nothing but its unwraps and its calls (each at the smallest call's cost)
//! would take. Issue 12 asks for real tonic servers and clients, and SPEC §1 for signed JWTs,
//! so that floor is paid by design; what lies between it and the ratio is the services' own
//! work.
//!
//! Two more references complete the floor with what no design can skip. The token check
//! ([`TokenReference`]: the guard's `authenticate` of a bearer token it has seen before, the
//! cheapest path), one per call: every service call carries a token and is checked. The write
//! ([`WriteReference`]: one sled insert, as the services' stores do it in a simulated run): one
//! per stored batch (storage acknowledges a batch only once it is written; kill -9 loses no
//! acknowledged record) and one per unwrap (Key Vault's audit record, which the seeds' rotation
//! rule reads). The floor of the required parts is then unwraps + calls + token checks +
//! writes, each at its reference; it is given for the revocation scenario too, against its own
//! goal of 2x its unwraps.

use std::path::Path;
use std::time::{Duration, Instant};

use cmksim_sim::net::{ClientTimeouts, MemNet, Network};
use cmksim_sim::EventLog;
use serde::Serialize;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::{run_simulated, RunOptions};

/// What to measure.
#[derive(Clone, Debug)]
pub struct SimBenchOptions {
    /// Simulated days of the soak.
    pub days: u32,
    /// Simulation resolution for the soak.
    pub tick: Duration,
    /// The library scenario to time as well (none: skip).
    pub revocation_file: Option<std::path::PathBuf>,
    /// The engine that runs both.
    pub engine: crate::Engine,
}

/// One timed run.
#[derive(Clone, Debug, Serialize)]
pub struct TimedRun {
    pub name: String,
    pub simulated_seconds: f64,
    pub wall_seconds: f64,
    pub simulated_per_wall_second: f64,
    pub events: u64,
    pub unwraps: u64,
    pub steps: u64,
    /// gRPC calls made (the event-driven engine counts them; turmoil does not).
    pub grpc_calls: Option<u64>,
    /// Batches that storage stored (an `ingest.batch` event with `stored` > 0): each is at least
    /// one durable write before its acknowledgement.
    pub stored_batches: u64,
}

impl TimedRun {
    /// The writes no design of the run can skip: one per stored batch, one audit record per
    /// unwrap.
    pub fn required_writes(&self) -> u64 {
        self.stored_batches + self.unwraps
    }
}

/// The references' times, in microseconds, that a [`Floor`] is made of.
#[derive(Clone, Copy, Debug)]
struct ReferenceTimes {
    unwrap: f64,
    call: f64,
    token_check: f64,
    write: f64,
}

/// A run against the floor of its required parts, each at its reference time.
#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    /// unwraps × unwrap time, in seconds.
    pub unwraps_seconds: f64,
    /// calls × call time, in seconds (0 when the engine does not count calls).
    pub calls_seconds: f64,
    /// calls × token check time, in seconds (0 alike).
    pub token_checks_seconds: f64,
    /// required writes × write time, in seconds.
    pub writes_seconds: f64,
    /// The sum ÷ the unwraps' time: the smallest overhead ratio the run could have.
    pub ratio: f64,
    /// The run's wall time ÷ the unwraps' time: its overhead ratio.
    pub wall_ratio: f64,
    /// The run's wall time ÷ the sum.
    pub wall_over_floor: f64,
}

impl Floor {
    fn of(run: &TimedRun, micros: &ReferenceTimes) -> Floor {
        let unwraps_seconds = (run.unwraps.max(1) as f64) * micros.unwrap / 1e6;
        let calls = run.grpc_calls.unwrap_or(0) as f64;
        let calls_seconds = calls * micros.call / 1e6;
        let token_checks_seconds = calls * micros.token_check / 1e6;
        let writes_seconds = (run.required_writes() as f64) * micros.write / 1e6;
        let sum = unwraps_seconds + calls_seconds + token_checks_seconds + writes_seconds;
        Floor {
            unwraps_seconds,
            calls_seconds,
            token_checks_seconds,
            writes_seconds,
            ratio: sum / unwraps_seconds,
            wall_ratio: run.wall_seconds / unwraps_seconds,
            wall_over_floor: run.wall_seconds / sum,
        }
    }

    fn row(&self, name: &str, goal: &str) -> String {
        format!(
            "{name} floor = unwraps {:.3} s + calls {:.3} s + token checks {:.3} s + required writes {:.3} s = {:.2}x its unwraps ({goal}); its wall time is {:.2}x its unwraps, {:.2}x the floor; beyond the floor, the services' own work: {:.2}\n",
            self.unwraps_seconds, self.calls_seconds, self.token_checks_seconds, self.writes_seconds, self.ratio, self.wall_ratio, self.wall_over_floor, self.wall_ratio - self.ratio
        )
    }
}

/// The benchmark's findings.
#[derive(Clone, Debug, Serialize)]
pub struct SimBenchReport {
    pub soak: TimedRun,
    /// One RSA-2048 OAEP-256 private-key unwrap, measured in this run (microseconds): the
    /// reference of [`SimBenchReport::unwrap`]'s samples ([`SampledTime::reference_micros`]).
    pub unwrap_micros: f64,
    /// The reference's samples, taken while the runs went.
    pub unwrap: SampledTime,
    /// One gRPC call on the engine's stack ([`CallReference`]), sampled alike.
    pub grpc_call: SampledTime,
    /// One token check as the services' guard makes it ([`TokenReference`]), sampled alike.
    pub token_check: SampledTime,
    /// One durable write as a simulated run makes it ([`WriteReference`]), sampled alike.
    pub write: SampledTime,
    /// wall ÷ (unwraps × unwrap time): the goal is ≤ 1.5.
    pub overhead_ratio: f64,
    /// The same at the median sample's unwrap time: lower, because the median counts samples
    /// that other threads slowed.
    pub overhead_ratio_at_median: f64,
    /// The soak against the floor of its required parts (unwraps, calls, token checks, writes).
    pub soak_floor: Floor,
    pub revocation: Option<TimedRun>,
    /// The revocation scenario against the same floor.
    pub revocation_floor: Option<Floor>,
}

impl SimBenchReport {
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let row = |r: &TimedRun| {
            format!(
                "{:<28} {:>10.0} s simulated in {:>8.2} s wall = {:>9.0}x  ({} events, {} unwraps, {} steps{})\n",
                r.name, r.simulated_seconds, r.wall_seconds, r.simulated_per_wall_second, r.events, r.unwraps, r.steps,
                r.grpc_calls.map_or(String::new(), |n| format!(", {n} gRPC calls"))
            )
        };
        out.push_str(&row(&self.soak));
        if let Some(r) = &self.revocation {
            out.push_str(&row(r));
        }
        out.push_str(&format!(
            "unwrap (RSA-2048 OAEP-256, aws-lc, sampled while the runs went): {:.0} us (10th percentile of {} samples of {}; median {:.0}, {:.0}..{:.0} us)\noverhead ratio = wall / (unwraps x unwrap time) = {:.2} (goal <= 1.5); {:.2} at the median sample\n",
            self.unwrap_micros, self.unwrap.samples, SAMPLE_UNWRAPS, self.unwrap.median_micros, self.unwrap.min_micros, self.unwrap.max_micros, self.overhead_ratio, self.overhead_ratio_at_median
        ));
        let call = &self.grpc_call;
        out.push_str(&format!(
            "gRPC call (a health check with a bearer token over the in-memory network, client and server, sampled alike): {:.1} us (10th percentile of {} samples of {}; median {:.1}, {:.1}..{:.1} us)\n",
            call.reference_micros, call.samples, SAMPLE_CALLS, call.median_micros, call.min_micros, call.max_micros
        ));
        let check = &self.token_check;
        out.push_str(&format!(
            "token check (the guard's authenticate of a token it has seen, sampled alike): {:.2} us (10th percentile of {} samples of {}; median {:.2}, {:.2}..{:.2} us)\n",
            check.reference_micros, check.samples, SAMPLE_TOKEN_CHECKS, check.median_micros, check.min_micros, check.max_micros
        ));
        let write = &self.write;
        out.push_str(&format!(
            "durable write (a sled insert of {WRITE_BYTES} bytes, flushes deferred as in a simulated run, sampled alike): {:.2} us (10th percentile of {} samples of {}; median {:.2}, {:.2}..{:.2} us)\n",
            write.reference_micros, write.samples, SAMPLE_WRITES, write.median_micros, write.min_micros, write.max_micros
        ));
        out.push_str(&self.soak_floor.row(
            &format!("soak: {} required writes;", self.soak.required_writes()),
            "goal <= 1.5",
        ));
        if let (Some(r), Some(floor)) = (&self.revocation, &self.revocation_floor) {
            out.push_str(&floor.row(
                &format!("revocation: {} required writes;", r.required_writes()),
                "goal <= 2x, 0.3 s",
            ));
        }
        out
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimBenchError {
    #[error("soak scenario: {0}")]
    Scenario(String),
    #[error("run: {0}")]
    World(#[from] crate::WorldError),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("unwrap reference: {0}")]
    Reference(String),
}

/// The soak scenario, as TOML.
pub fn soak_scenario(days: u32) -> String {
    let mut s = format!(
        r#"[scenario]
name = "soak"
title = "Soak: {days} days of steady traffic"
story = "One cluster under a customer-managed key, three workspaces, an agent each."
seed = 1
duration = "{days}d"

[[tenants]]
name = "contoso"

[[vaults]]
name = "soak-kv"
location = "westeurope"
tenant = "contoso"
sku = "standard"
soft_delete = true
retention_days = 90
purge_protection = true

[[keys]]
vault = "soak-kv"
name = "soak-cmk"
kty = "RSA"
size = 2048

[[access_policies]]
vault = "soak-kv"
principal = "cluster:soakcluster"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "soakcluster"
location = "westeurope"
tenant = "contoso"
capacity = 1000
key = {{ vault = "soak-kv", name = "soak-cmk", version = "latest" }}
"#
    );
    for i in 1..=3 {
        s.push_str(&format!(
            "\n[[workspaces]]\nname = \"ws-soak-{i}\"\nlocation = \"westeurope\"\nlink = \"soakcluster\"\n\n[[agents]]\nname = \"agent-{i}\"\nworkspace = \"ws-soak-{i}\"\ntables = [{{ table = \"Heartbeat\", every = \"1m\" }}]\n"
        ));
    }
    s
}

fn timed(
    name: &str,
    scenario: &cmksim_scenario::Scenario,
    tick: Duration,
    engine: crate::Engine,
) -> Result<TimedRun, SimBenchError> {
    let events = EventLog::default();
    let options = RunOptions {
        tick,
        engine,
        ..RunOptions::default()
    };
    let started = Instant::now();
    let result = run_simulated(scenario, &options, &events)?;
    let wall = started.elapsed().as_secs_f64();
    let simulated = scenario.meta.duration.as_secs_f64();
    // The polls that unwrapped: a denied poll (the key disabled, the access removed) and a
    // transient one (the vault down or throttled) end at Key Vault before any RSA.
    let unwraps = events.of_kind("storage.poll.succeeded").len() as u64;
    let stored_batches = events
        .of_kind("ingest.batch")
        .iter()
        .filter(|e| e.data["stored"].as_u64().is_some_and(|n| n > 0))
        .count() as u64;
    Ok(TimedRun {
        name: name.to_string(),
        simulated_seconds: simulated,
        wall_seconds: wall,
        simulated_per_wall_second: simulated / wall.max(1e-9),
        events: events.recorded_events(),
        unwraps,
        steps: result.steps,
        grpc_calls: result.grpc_calls,
        stored_batches,
    })
}

/// One RSA-2048 key and a 32-byte key wrapped by it: what the reference unwraps.
struct UnwrapReference {
    private: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
    ciphertext: Vec<u8>,
    out: Vec<u8>,
}

impl UnwrapReference {
    fn new() -> Result<UnwrapReference, SimBenchError> {
        use aws_lc_rs::rsa::{
            KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
            OAEP_SHA256_MGF1SHA256,
        };
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(crypto)?;
        let public = OaepPublicEncryptingKey::new(private.public_key()).map_err(crypto)?;
        let private = OaepPrivateDecryptingKey::new(private).map_err(crypto)?;
        let mut ciphertext = vec![0u8; public.ciphertext_size()];
        let ciphertext = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut ciphertext, None)
            .map_err(crypto)?
            .to_vec();
        let out = vec![0u8; private.min_output_size()];
        Ok(UnwrapReference {
            private,
            ciphertext,
            out,
        })
    }
}

/// The port the call reference's server listens on (its own network: nothing else is there).
const CALL_PORT: u16 = 50051;

/// One gRPC call on the event-driven engine's stack: a tonic health check over the in-memory
/// network ([`cmksim_sim::net::MemNet`]), client and server on one current-thread runtime with a
/// paused clock, as the engine runs its hosts, carrying a bearer token as every service call
/// does (the services' own kind: an ES256 JWT from an [`cmksim_identity::token::Authority`]; SPEC
/// §1). HTTP/2 never indexes an `authorization` header (h2 follows nghttp2: it is sensitive), so
/// each call Huffman-codes the token at both ends. The smallest call that stack makes: the
/// soak's calls carry keys and records besides, so their cost is at least this.
struct CallReference {
    runtime: tokio::runtime::Runtime,
    client: HealthClient<tonic::transport::Channel>,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl CallReference {
    fn new(token: &BenchToken) -> Result<CallReference, SimBenchError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| SimBenchError::Reference(format!("the gRPC call's runtime: {e}")))?;
        let net = MemNet::new();
        let incoming = net.listen("reference-server", CALL_PORT);
        let channel = runtime.block_on(async {
            let (reporter, health) = tonic_health::server::health_reporter();
            // Bounded by the runtime: the server goes when the reference is dropped.
            tokio::spawn(async move {
                let _reporter = reporter;
                let served = tonic::transport::Server::builder()
                    .add_service(health)
                    .serve_with_incoming(incoming)
                    .await;
                if let Err(e) = served {
                    tracing::warn!("the gRPC call reference's server stopped: {e}");
                }
            });
            Network::Memory(net.host("reference-client")).channel(
                &format!("http://reference-server:{CALL_PORT}"),
                ClientTimeouts::default(),
            )
        });
        let client = HealthClient::new(
            channel.map_err(|e| SimBenchError::Reference(format!("the gRPC call: {e}")))?,
        );
        Ok(CallReference {
            runtime,
            client,
            bearer: token.bearer.clone(),
        })
    }
}

impl Reference for CallReference {
    fn one(&mut self) -> Result<(), SimBenchError> {
        let (runtime, client) = (&self.runtime, &mut self.client);
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request
            .metadata_mut()
            .insert("authorization", self.bearer.clone());
        runtime
            .block_on(client.check(request))
            .map(|_| ())
            .map_err(|status| SimBenchError::Reference(format!("the gRPC call failed: {status}")))
    }
}

/// A bearer token of the services' kind (an ES256 JWT for a service principal, from an
/// authority of its own) and the verifier of that authority, for the call and token references.
struct BenchToken {
    verifier: cmksim_identity::TokenVerifier,
    /// `Bearer <token>`, as a request's `authorization` header carries it.
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl BenchToken {
    fn new() -> Result<BenchToken, SimBenchError> {
        use cmksim_identity::token::{audience, Authority};
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            SimBenchError::Reference(format!("the bench token's {what}: {e}"))
        };
        let tree = cmksim_sim::SeedTree::new(1);
        let mut rng = tree.source("bench/identity");
        let mut directory = cmksim_identity::Directory::default();
        let tenant = directory
            .create_tenant("bench", "", &mut rng)
            .map_err(|e| failed("tenant", &e))?
            .tenant_id;
        let (principal, _secret) = directory
            .create_principal(
                &tenant,
                "bench",
                cmksim_identity::PrincipalKind::ServicePrincipal,
                &mut rng,
            )
            .map_err(|e| failed("principal", &e))?;
        let authority = Authority::generate(&mut tree.source("bench/signing-key"));
        let (token, _expiry) = authority.issue(&principal, audience::VAULT, BENCH_NOW, 0);
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|e| failed("header", &e))?;
        Ok(BenchToken {
            verifier: authority.verifier(),
            bearer,
        })
    }
}

/// The simulated time of the bench token's issue and checks.
const BENCH_NOW: cmksim_sim::SimTime = cmksim_sim::SimTime::DEFAULT_EPOCH;

/// One token check as every service's guard makes it ([`cmksim_identity::grpc_auth::authenticate`])
/// of a bearer token it has checked before: the remembered path, the cheapest there is.
struct TokenReference {
    verifier: cmksim_identity::TokenVerifier,
    metadata: tonic::metadata::MetadataMap,
}

impl TokenReference {
    fn new(token: &BenchToken) -> Result<TokenReference, SimBenchError> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("authorization", token.bearer.clone());
        let mut reference = TokenReference {
            verifier: token.verifier.clone(),
            metadata,
        };
        // The first check verifies the signature; the samples time the ones after it.
        reference.one()?;
        Ok(reference)
    }
}

impl Reference for TokenReference {
    fn one(&mut self) -> Result<(), SimBenchError> {
        cmksim_identity::grpc_auth::authenticate(
            &self.verifier,
            &self.metadata,
            cmksim_identity::token::audience::VAULT,
            BENCH_NOW,
        )
        .map(|_caller| ())
        .map_err(|e| SimBenchError::Reference(format!("the token check failed: {e}")))
    }
}

/// Bytes of each write of the write reference: about a one-record Heartbeat block (header,
/// wrapped data key, sealed record), and more than an audit record.
const WRITE_BYTES: usize = 512;

/// Keys the write reference cycles through: its database stops growing at 32 MiB (a long soak's
/// sampling would otherwise write 512 MiB), while a write stays an insert into a tree of tens of
/// thousands of entries, as the soak's own stores are.
const WRITE_KEYS_MAX: u64 = 1 << 16;

/// One durable write as a simulated run makes it: a sled insert into a database opened as every
/// store opens its own ([`cmksim_sim::durable::open`]), its flush deferred as a simulated world
/// defers it. The least a stored batch or an audit record costs.
struct WriteReference {
    tree: sled::Db,
    value: Vec<u8>,
    next_key: u64,
    /// Removed when the reference goes (after the database).
    _dir: tempfile::TempDir,
}

impl WriteReference {
    fn new() -> Result<WriteReference, SimBenchError> {
        let dir = tempfile::tempdir()
            .map_err(|e| SimBenchError::Reference(format!("the write's directory: {e}")))?;
        let tree = cmksim_sim::durable::open(dir.path())
            .map_err(|e| SimBenchError::Reference(format!("the write's database: {e}")))?;
        Ok(WriteReference {
            tree,
            value: vec![0x5a; WRITE_BYTES],
            next_key: 0,
            _dir: dir,
        })
    }
}

impl Reference for WriteReference {
    fn one(&mut self) -> Result<(), SimBenchError> {
        self.next_key = (self.next_key + 1) % WRITE_KEYS_MAX;
        self.tree
            .insert(self.next_key.to_be_bytes(), self.value.as_slice())
            .map(|_previous| ())
            .map_err(|e| SimBenchError::Reference(format!("the write failed: {e}")))
    }
}

/// Something whose time the sampler measures, one operation at a time.
trait Reference {
    /// One operation.
    fn one(&mut self) -> Result<(), SimBenchError>;

    /// `count` (≥ 1) operations back to back: microseconds per operation.
    fn sample(&mut self, count: u32) -> Result<f64, SimBenchError> {
        assert!(count >= 1, "a sample is at least one operation");
        let started = Instant::now();
        for _ in 0..count {
            self.one()?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(count))
    }
}

impl Reference for UnwrapReference {
    fn one(&mut self) -> Result<(), SimBenchError> {
        self.private
            .decrypt(
                &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
                &self.ciphertext,
                &mut self.out,
                None,
            )
            .map(|_| ())
            .map_err(crypto)
    }
}

fn crypto(e: aws_lc_rs::error::Unspecified) -> SimBenchError {
    SimBenchError::Crypto(e.to_string())
}

/// Unwraps in one sample of the unwrap reference.
const SAMPLE_UNWRAPS: u32 = 8;
/// Calls in one sample of the call reference (about as long as a sample of unwraps).
const SAMPLE_CALLS: u32 = 64;
/// Checks in one sample of the token reference.
const SAMPLE_TOKEN_CHECKS: u32 = 256;
/// Writes in one sample of the write reference.
const SAMPLE_WRITES: u32 = 256;
/// Wall time between two samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Most samples kept of each reference (at one per `SAMPLE_EVERY`, about 34 minutes of runs);
/// later ones are not taken.
const SAMPLES_MAX: usize = 4_096;
/// Samples taken back to back before the runs start (so a short run has a reference too).
const SAMPLES_BEFORE: usize = 16;

/// The unwrap time and the call time, sampled on a thread of their own while the runs go
/// (every `SAMPLE_EVERY`, `SAMPLE_UNWRAPS` unwraps then `SAMPLE_CALLS` calls): a machine whose
/// speed drifts during a two-minute soak is measured as it was during the runs, not in one
/// half-second after them (on this project's shared 2-core host that one half-second read
/// 661–950 µs of unwrap in four runs of one week, and moved the 30-day ratio between 1.3 and
/// 2.5). The thread keeps a second core busy for about 2% of the time.
struct ReferenceSampler {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<Result<Samples, SimBenchError>>,
}

/// The sampler's samples, in microseconds, one list per reference.
struct Samples {
    unwraps: Vec<f64>,
    calls: Vec<f64>,
    token_checks: Vec<f64>,
    writes: Vec<f64>,
}

/// The references the sampler measures.
struct References {
    unwrap: UnwrapReference,
    call: CallReference,
    token_check: TokenReference,
    write: WriteReference,
}

impl References {
    /// One sample of each into `samples`.
    fn sample_into(&mut self, samples: &mut Samples) -> Result<(), SimBenchError> {
        samples.unwraps.push(self.unwrap.sample(SAMPLE_UNWRAPS)?);
        samples.calls.push(self.call.sample(SAMPLE_CALLS)?);
        samples
            .token_checks
            .push(self.token_check.sample(SAMPLE_TOKEN_CHECKS)?);
        samples.writes.push(self.write.sample(SAMPLE_WRITES)?);
        Ok(())
    }
}

impl ReferenceSampler {
    fn start() -> Result<ReferenceSampler, SimBenchError> {
        let token = BenchToken::new()?;
        let mut references = References {
            unwrap: UnwrapReference::new()?,
            call: CallReference::new(&token)?,
            token_check: TokenReference::new(&token)?,
            write: WriteReference::new()?,
        };
        let mut samples = Samples {
            unwraps: Vec::with_capacity(SAMPLES_MAX),
            calls: Vec::with_capacity(SAMPLES_MAX),
            token_checks: Vec::with_capacity(SAMPLES_MAX),
            writes: Vec::with_capacity(SAMPLES_MAX),
        };
        for _ in 0..SAMPLES_BEFORE {
            references.sample_into(&mut samples)?;
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-reference".into())
            .spawn(move || {
                while samples.unwraps.len() < SAMPLES_MAX {
                    match stopped.recv_timeout(SAMPLE_EVERY) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            references.sample_into(&mut samples)?;
                        }
                        // Stopped, or the bench is gone.
                        Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                Ok(samples)
            })
            .map_err(|e| SimBenchError::Reference(format!("cannot start its thread: {e}")))?;
        Ok(ReferenceSampler { stop, thread })
    }

    /// Stops sampling; what was measured: the unwrap, call, token check and write times.
    fn finish(self) -> Result<[SampledTime; 4], SimBenchError> {
        // The thread may have stopped on its own (SAMPLES_MAX reached); then nobody listens.
        if self.stop.send(()).is_err() {
            tracing::debug!("the bench references had already stopped sampling");
        }
        let samples = self
            .thread
            .join()
            .map_err(|_| SimBenchError::Reference("its thread panicked".into()))??;
        Ok([
            SampledTime::of(samples.unwraps),
            SampledTime::of(samples.calls),
            SampledTime::of(samples.token_checks),
            SampledTime::of(samples.writes),
        ])
    }
}

/// A reference's samples, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampledTime {
    /// The 10th percentile (nearest rank): the time the ratios use, in microseconds. Why not
    /// the median: the samples share the cores with the run's own threads (sled's I/O threads,
    /// the OS), so a slow sample is mostly interference, not the machine's speed, and the
    /// median flatters the ratio. A profile of a 10-day soak agrees with this percentile for
    /// the unwraps: their RSA was 52% of the process's CPU samples, an overhead of about 1.9.
    pub reference_micros: f64,
    pub median_micros: f64,
    pub min_micros: f64,
    pub max_micros: f64,
    pub samples: usize,
}

impl SampledTime {
    /// The summary of `samples` (at least one, each finite).
    fn of(mut samples: Vec<f64>) -> SampledTime {
        assert!(
            !samples.is_empty(),
            "the reference takes samples before the runs"
        );
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2.0
        };
        // Nearest rank: the ⌈n/10⌉-th smallest.
        let tenth = samples[n.div_ceil(10) - 1];
        SampledTime {
            reference_micros: tenth,
            median_micros: median,
            min_micros: samples[0],
            max_micros: samples[n - 1],
            samples: n,
        }
    }
}

/// Runs the benchmark.
pub fn run(options: &SimBenchOptions) -> Result<SimBenchReport, SimBenchError> {
    let soak =
        cmksim_scenario::validate_str(Path::new("soak.toml"), &soak_scenario(options.days.max(1)))
            .map_err(|d| {
                SimBenchError::Scenario(
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
    let sampler = ReferenceSampler::start()?;
    let soak_run = timed("soak", &soak, options.tick, options.engine)?;
    let revocation = match &options.revocation_file {
        Some(path) => {
            let scenario = cmksim_scenario::validate_file(path).map_err(|d| {
                SimBenchError::Scenario(
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            Some(timed(
                "revocation (library)",
                &scenario,
                RunOptions::default().tick,
                options.engine,
            )?)
        }
        None => None,
    };
    let [unwrap, grpc_call, token_check, write] = sampler.finish()?;
    let unwrap_micros = unwrap.reference_micros;
    let unwraps_micros = |micros: f64| (soak_run.unwraps.max(1) as f64) * micros;
    let ratio = |micros: f64| soak_run.wall_seconds * 1e6 / unwraps_micros(micros);
    let overhead_ratio = ratio(unwrap_micros);
    let overhead_ratio_at_median = ratio(unwrap.median_micros);
    let micros = ReferenceTimes {
        unwrap: unwrap_micros,
        call: grpc_call.reference_micros,
        token_check: token_check.reference_micros,
        write: write.reference_micros,
    };
    let floor_of = |run: &TimedRun| Floor::of(run, &micros);
    let soak_floor = floor_of(&soak_run);
    let revocation_floor = revocation.as_ref().map(floor_of);
    Ok(SimBenchReport {
        soak: soak_run,
        unwrap_micros,
        unwrap,
        grpc_call,
        token_check,
        write,
        overhead_ratio,
        overhead_ratio_at_median,
        soak_floor,
        revocation,
        revocation_floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_summary_is_the_tenth_percentile_the_median_and_the_range_of_its_samples() {
        let odd = SampledTime::of(vec![900.0, 700.0, 650.0]);
        assert_eq!(
            odd,
            SampledTime {
                reference_micros: 650.0,
                median_micros: 700.0,
                min_micros: 650.0,
                max_micros: 900.0,
                samples: 3
            }
        );
        let even = SampledTime::of(vec![800.0, 600.0, 700.0, 2_000.0]);
        assert_eq!(even.median_micros, 750.0);
        assert_eq!(even.reference_micros, 600.0);
        // Twenty samples 1..=20: the 10th percentile is the second smallest.
        let twenty = SampledTime::of((1..=20).rev().map(f64::from).collect());
        assert_eq!((twenty.reference_micros, twenty.median_micros), (2.0, 10.5));
        assert_eq!((even.min_micros, even.max_micros), (600.0, 2_000.0));
    }

    #[test]
    fn the_sampler_measures_before_the_runs_and_stops_when_asked() {
        let sampler = ReferenceSampler::start().unwrap();
        for time in sampler.finish().unwrap() {
            assert!(time.samples >= SAMPLES_BEFORE && time.samples <= SAMPLES_MAX);
            assert!(time.min_micros > 0.0 && time.min_micros <= time.reference_micros);
            assert!(time.reference_micros <= time.median_micros);
            assert!(time.median_micros <= time.max_micros && time.max_micros.is_finite());
        }
    }

    #[test]
    fn the_floor_adds_the_calls_and_the_required_writes_to_the_unwraps() {
        let run = |grpc_calls| TimedRun {
            name: "r".into(),
            simulated_seconds: 3_600.0,
            wall_seconds: 1.76,
            simulated_per_wall_second: 3_600.0 / 1.76,
            events: 0,
            unwraps: 1_000,
            steps: 0,
            grpc_calls,
            stored_batches: 3_000,
        };
        let micros = ReferenceTimes {
            unwrap: 700.0,
            call: 45.0,
            token_check: 2.5,
            write: 5.0,
        };
        // 1,000 unwraps of 700 us, 4,000 calls of 45 us, 4,000 token checks of 2.5 us and 4,000
        // writes of 5 us: 0.7 s, 0.18 s, 0.01 s and 0.02 s.
        let floor = Floor::of(&run(Some(4_000)), &micros);
        assert!((floor.ratio - 0.91 / 0.7).abs() < 1e-12, "{floor:?}");
        assert!((floor.wall_ratio - 1.76 / 0.7).abs() < 1e-12, "{floor:?}");
        assert!(
            (floor.wall_over_floor - 1.76 / 0.91).abs() < 1e-12,
            "{floor:?}"
        );
        assert!((floor.calls_seconds - 0.18).abs() < 1e-12);
        assert!((floor.token_checks_seconds - 0.01).abs() < 1e-12);
        // An engine that does not count calls: the floor is the unwraps and the writes.
        let uncounted = Floor::of(&run(None), &micros);
        assert!(
            (uncounted.ratio - 0.72 / 0.7).abs() < 1e-12,
            "{uncounted:?}"
        );
        assert_eq!(
            uncounted.calls_seconds + uncounted.token_checks_seconds,
            0.0
        );
    }

    #[test]
    fn the_soak_scenario_is_valid() {
        let scenario =
            cmksim_scenario::validate_str(Path::new("soak.toml"), &soak_scenario(30)).unwrap();
        assert_eq!(scenario.meta.duration, Duration::from_secs(30 * 86_400));
        assert_eq!(scenario.agents.len(), 3);
        assert_eq!(scenario.world.workspaces.len(), 3);
    }
}
