//! `cmksim bench keyvault`: unwrapKey throughput and latency over gRPC on loopback, against the
//! same key operation run in process, measured in the same run.
//!
//! [`run`] starts a real [`KeyVaultServer`] on `127.0.0.1:0` in a temporary directory, on a
//! tokio runtime of its own (two worker threads; the clients run on a second, one-thread
//! runtime, as callers in other processes would), creates a tenant, a principal, a premium
//! vault that grants it wrapKey/unwrapKey, and one 2048-bit key per row (`RSA-HSM`, `RSA`)
//! with `key_ops = [wrapKey, unwrapKey]`. It wraps a 32-byte value once, then measures
//! unwrapKey (`RSA-OAEP-256`) with [`KeyVaultBenchOptions::clients`] clients, each on its own
//! connection with one request in flight (so at most `clients` requests are in flight), for a
//! fixed time. The reference for each row is the same operation in process:
//! - `RSA-HSM`: `C_Decrypt` with `CKM_RSA_PKCS_OAEP`/SHA-256 on an RSA-2048 key of a
//!   [`cmksim_hsm::Module`] in its own temporary directory (what the server's HSM backend calls);
//! - `RSA`: [`crate::crypto::SoftwareKey::decrypt`] on a key parsed once (what the server does
//!   for a software key since it keeps parsed keys per version, [`crate::keycache`]).
//!
//! Beside both, every round measures the library floor: aws-lc's OAEP decryption on an RSA-2048
//! key parsed once, with nothing around it. Issue 15's goal is gRPC ≥ 0.8x that floor for both
//! rows (`floor_ratio`), which leaves the server 20% for gRPC, the token check, the state lock,
//! the audit record and the HSM emulation.
//!
//! Like for like: the server answers on [`SERVER_WORKER_THREADS`] worker threads, so the floor
//! and the in-process reference run on as many threads at once (before, they ran on one thread
//! while the server used every core it had, which made the ratio depend on the machine's load
//! and core count). The ratios are **per core**: operations per CPU-second of the threads that
//! did the work — the server runtime's threads (workers and its blocking pool, where the audit
//! flush runs) for gRPC, the measuring threads for the floor and the reference — so that what
//! the clients (in this process, on their own runtime) and other processes on the machine take
//! does not count on either side. CPU time is read from `/proc` (Linux; in clock ticks of
//! [`CLOCK_TICK`]); elsewhere the ratios fall back to wall-clock throughput, and the report
//! says which. The wall-clock throughputs are reported beside them.
//!
//! Not counted on the gRPC side: sled's global I/O pool (threads `sled-io-*`), which writes out
//! the audit log's group flushes. Its CPU belongs to the server; `perf` profiles of this bench
//! (issue 15, session 8) put it at 12-16% on top of the server runtime's threads, all of it the
//! audit flush (0.1% with the audit record disabled): counted, the per-core ratios would be
//! 0.86-0.89x of those printed. The audit record's share of the gap, measured by disabling its
//! parts in an experimental build (per-core ratio, both key types, load 4-10): every record
//! flushed (as shipped) 0.70-0.77x, appended but not flushed 0.81-0.84x, no record 0.85-0.89x.
//!
//! Load: the machine may be shared. Measuring goes in rounds; each round gives every
//! measurement a slice of `duration / rounds`, so load changes hit both sides of a ratio alike,
//! and the load average is recorded before and after. The goal is gRPC ≥ 0.8x in process.
//!
//! This is a measuring tool, not domain logic: it reads the real clock (`Instant`), draws key
//! material from the OS, and talks only to the server it started on the loopback address.
//! Every loop is bounded by time and by [`REQUESTS_PER_SLICE_MAX`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use serde::Serialize;
use tokio::sync::oneshot;

use cmksim_hsm::{Attribute, Mechanism, Module, ModuleConfig, SlotId, UserType};
use cmksim_identity::{audience, IdentityAuthority, PrincipalKind};
use cmksim_proto::keyvault::v1 as pb;
use cmksim_sim::{Clock, EventLog, RandomSource, SeedTree, SimTime};

use crate::client::KeyVaultClient;
use crate::model::EncryptionAlgorithm;
use crate::server::{KeyVaultConfig, KeyVaultServer};

/// Most requests (or in-process operations) one client makes in one slice.
pub const REQUESTS_PER_SLICE_MAX: u64 = 1_000_000;
/// Most concurrent clients.
pub const CLIENTS_MAX: usize = 64;
/// The algorithm measured.
pub const ALGORITHM: &str = "RSA-OAEP-256";
/// The goal: gRPC throughput at least this fraction of the in-process rate, and of the aws-lc
/// floor (issue 15).
pub const GOAL_RATIO: f64 = 0.8;

const KEY_SIZE_BITS: u32 = 2048;
const PAYLOAD: [u8; 32] = [0x5A; 32];
const VAULT: &str = "benchvault";
const HSM_PIN: &str = "bench-pin-1234";
/// Worker threads of the server's runtime (the machine this was sized for has two cores); the
/// floor and the in-process reference run on as many threads.
pub const SERVER_WORKER_THREADS: usize = 2;
/// The server runtime's thread name (15 bytes: Linux keeps at most 15 of a thread's name).
const SERVER_THREAD_NAME: &str = "kv-bench-server";
/// Linux's `USER_HZ`: `/proc` counts a thread's CPU time in ticks of this length.
pub const CLOCK_TICK: Duration = Duration::from_millis(10);
/// Worker threads of the clients' runtime.
const CLIENT_WORKER_THREADS: usize = 1;

/// What to measure and for how long.
#[derive(Clone, Debug)]
pub struct KeyVaultBenchOptions {
    /// Measuring time per row for each side (gRPC, in process), split over the rounds.
    pub duration: Duration,
    /// Rounds the measuring is interleaved in (at least 1).
    pub rounds: u32,
    /// Concurrent gRPC clients, one request in flight each (1..=[`CLIENTS_MAX`]).
    pub clients: usize,
    /// Also measure a software `RSA` key.
    pub software: bool,
}

impl Default for KeyVaultBenchOptions {
    fn default() -> Self {
        KeyVaultBenchOptions {
            duration: Duration::from_secs(3),
            rounds: 3,
            clients: 4,
            software: true,
        }
    }
}

/// One row: a key type's unwrapKey over gRPC beside the same operation in process.
#[derive(Clone, Debug, Serialize)]
pub struct KeyVaultBenchRow {
    /// What was measured.
    pub label: String,
    /// The key type (`RSA-HSM`, `RSA`).
    pub kty: String,
    /// unwrapKey answers per second over gRPC (all clients together).
    pub grpc_ops_per_s: f64,
    /// Median unwrapKey latency seen by a client, in microseconds.
    pub grpc_p50_us: u64,
    /// 99th-percentile unwrapKey latency, in microseconds.
    pub grpc_p99_us: u64,
    /// Requests that failed (each is also a note).
    pub grpc_errors: u64,
    /// CPU time the server's threads spent on the gRPC measurement, in seconds (absent off
    /// Linux).
    pub grpc_server_cpu_s: Option<f64>,
    /// The same operation in process on [`SERVER_WORKER_THREADS`] threads, operations per
    /// second (wall clock).
    pub in_process_ops_per_s: f64,
    /// What the in-process figure runs.
    pub in_process: String,
    /// gRPC / in process, per core (see the module documentation; goal ≥ [`GOAL_RATIO`]).
    pub ratio: Option<f64>,
    /// aws-lc's OAEP decryption on a key parsed once (the library floor) on
    /// [`SERVER_WORKER_THREADS`] threads, operations per second (wall clock), measured in the
    /// same rounds.
    pub library_floor_ops_per_s: Option<f64>,
    /// gRPC / library floor, per core (goal ≥ [`GOAL_RATIO`], issue 15).
    pub floor_ratio: Option<f64>,
    /// gRPC / library floor in wall-clock throughput, the same concurrency on both sides.
    pub floor_ratio_wall: Option<f64>,
    /// True when the ratios are per core (CPU time was readable); false: wall clock.
    pub per_core: bool,
}

/// The whole report (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct KeyVaultBenchReport {
    /// Measuring time per row and side, in milliseconds.
    pub duration_ms: u64,
    /// Rounds the measuring was interleaved in.
    pub rounds: u32,
    /// Concurrent gRPC clients (= requests in flight at most).
    pub clients: usize,
    /// The algorithm measured.
    pub algorithm: String,
    /// `/proc/loadavg` before measuring (1, 5, 15-minute load; absent off Linux).
    pub load_average_before: Option<String>,
    /// `/proc/loadavg` after measuring.
    pub load_average_after: Option<String>,
    /// The rows (`RSA-HSM`, then `RSA` when asked for).
    pub rows: Vec<KeyVaultBenchRow>,
    /// What failed.
    pub notes: Vec<String>,
}

impl KeyVaultBenchReport {
    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<34} {:>10} {:>9} {:>9} {:>11} {:>8} {:>12} {:>9} {:>9}",
            "unwrapKey RSA-OAEP-256 (ops/s)",
            "gRPC",
            "p50 us",
            "p99 us",
            "in-process",
            "ratio",
            "aws-lc floor",
            "vs floor",
            "wall",
        );
        for row in &self.rows {
            let ratio = row
                .ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into());
            let floor = row
                .library_floor_ops_per_s
                .map(|f| format!("{f:.0}"))
                .unwrap_or_else(|| "-".into());
            let floor_ratio = row
                .floor_ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into());
            let floor_ratio_wall = row
                .floor_ratio_wall
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:<34} {:>10.0} {:>9} {:>9} {:>11.0} {:>8} {:>12} {:>9} {:>9}",
                row.label,
                row.grpc_ops_per_s,
                row.grpc_p50_us,
                row.grpc_p99_us,
                row.in_process_ops_per_s,
                ratio,
                floor,
                floor_ratio,
                floor_ratio_wall
            );
        }
        let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "unknown".into());
        let per_core = self.rows.iter().all(|r| r.per_core);
        let _ = writeln!(
            out,
            "ratio and vs floor: {}; the server on {SERVER_WORKER_THREADS} worker threads, in-process and floor on {SERVER_WORKER_THREADS} threads; wall: ops/s over ops/s at that concurrency",
            if per_core {
                "per core (ops per CPU-second of the server's threads / of the measuring threads)"
            } else {
                "wall clock (CPU time unreadable here)"
            }
        );
        let _ = writeln!(
            out,
            "{} clients (one request in flight each) on 127.0.0.1; {} ms per row and side in {} rounds; load average {} before, {} after; goal ratio >= {GOAL_RATIO}",
            self.clients,
            self.duration_ms,
            self.rounds,
            load(&self.load_average_before),
            load(&self.load_average_after)
        );
        for row in &self.rows {
            let _ = writeln!(out, "in-process {}: {}", row.kty, row.in_process);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// Runs the benchmark (it takes about `2 * duration` per row plus key generation) and returns
/// the report; failures are notes in it, never panics.
pub fn run(options: &KeyVaultBenchOptions) -> KeyVaultBenchReport {
    let clients = options.clients.clamp(1, CLIENTS_MAX);
    let rounds = options.rounds.max(1);
    let mut report = KeyVaultBenchReport {
        duration_ms: options.duration.as_millis() as u64,
        rounds,
        clients,
        algorithm: ALGORITHM.to_string(),
        load_average_before: None,
        load_average_after: None,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    let dir = std::env::temp_dir().join(format!(
        "cmksim-keyvault-bench-{}-{}",
        std::process::id(),
        SystemNanos::now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = run_in(&dir, options, clients, rounds, &mut report) {
        report.notes.push(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// Nanoseconds of the wall clock, only to make the temporary directory's name unique.
struct SystemNanos;

impl SystemNanos {
    fn now() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }
}

/// The 1, 5 and 15-minute load averages of `/proc/loadavg` (absent off Linux), so that a
/// benchmark says how busy the machine was.
pub fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// A key under test: where it is and a value wrapped under it.
struct Target {
    kty: &'static str,
    key_name: &'static str,
    version: String,
    wrapped: Vec<u8>,
}

/// gRPC measurements of one row, added up over the rounds.
struct GrpcTally {
    ops: u64,
    elapsed: Duration,
    /// CPU time of the server's threads (absent where unreadable).
    server_cpu: Option<Duration>,
    latencies_us: Vec<u64>,
    errors: u64,
}

impl Default for GrpcTally {
    fn default() -> GrpcTally {
        GrpcTally {
            ops: 0,
            elapsed: Duration::ZERO,
            server_cpu: Some(Duration::ZERO),
            latencies_us: Vec::new(),
            errors: 0,
        }
    }
}

/// In-process operations counted over some time, with the CPU time of the threads that did
/// them (absent where `/proc` cannot be read).
#[derive(Clone, Copy)]
struct Tally {
    ops: u64,
    elapsed: Duration,
    cpu: Option<Duration>,
}

impl Default for Tally {
    /// Nothing counted yet (CPU time zero: a slice whose CPU time is unreadable makes it `None`).
    fn default() -> Tally {
        Tally {
            ops: 0,
            elapsed: Duration::ZERO,
            cpu: Some(Duration::ZERO),
        }
    }
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
    }

    /// Operations per CPU-second, when the CPU time was read.
    fn ops_per_cpu_s(self) -> Option<f64> {
        self.cpu
            .filter(|cpu| !cpu.is_zero())
            .map(|cpu| self.ops as f64 / cpu.as_secs_f64())
    }

    fn ops_per_s(self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.ops as f64 / self.elapsed.as_secs_f64()
        }
    }
}

fn slice<E>(budget: Duration, mut op: impl FnMut() -> Result<(), E>) -> Result<Tally, E> {
    let start = Instant::now();
    let mut ops = 0;
    while ops < REQUESTS_PER_SLICE_MAX {
        op()?;
        ops += 1;
        if start.elapsed() >= budget {
            break;
        }
    }
    Ok(Tally {
        ops,
        elapsed: start.elapsed(),
        cpu: None,
    })
}

/// Runs `op` on `threads` threads at once for `budget` each (as [`slice`]); the tally's
/// elapsed time is the wall time of the slowest thread, its CPU time the sum of the threads'.
fn slice_on_threads<E: Send>(
    threads: usize,
    budget: Duration,
    op: impl Fn() -> Result<(), E> + Sync,
) -> Result<Tally, E> {
    let start = Instant::now();
    let results: Vec<Result<Tally, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let op = &op;
                scope.spawn(move || {
                    let cpu_before = this_thread_cpu();
                    let mut tally = slice(budget, op)?;
                    tally.cpu = cpu_before
                        .zip(this_thread_cpu())
                        .map(|(before, after)| after.saturating_sub(before));
                    Ok(tally)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut total = Tally {
        ops: 0,
        elapsed: start.elapsed(),
        cpu: Some(Duration::ZERO),
    };
    for result in results {
        let tally = result?;
        total.ops += tally.ops;
        total.cpu = total.cpu.zip(tally.cpu).map(|(a, b)| a + b);
    }
    Ok(total)
}

/// User + system CPU time from a `/proc/.../stat` line (fields 14 and 15, in [`CLOCK_TICK`]s).
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The name (field 2) is in parentheses and may hold spaces: count fields after its end.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(CLOCK_TICK * u32::try_from(ticks).ok()?)
}

/// The CPU time of the calling thread (Linux; `None` elsewhere).
fn this_thread_cpu() -> Option<Duration> {
    stat_cpu(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// The CPU time of this process's threads named `name` (Linux; `None` elsewhere). A thread that
/// ends between two readings takes its time with it: the server runtime keeps its threads.
fn threads_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        // A thread may end while the directory is read: it is skipped.
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(path.join("stat")) {
            total += stat_cpu(&stat)?;
        }
    }
    Some(total)
}

/// The nearest-rank percentile (`fraction` in 0..=1) of sorted values; 0 for none.
pub fn percentile_us(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The in-process side of each row.
enum Reference {
    Hsm {
        module: Box<Module>,
        session: cmksim_hsm::SessionHandle,
        key: cmksim_hsm::ObjectHandle,
        wrapped: Vec<u8>,
    },
    Software {
        key: Box<crate::crypto::SoftwareKey>,
        wrapped: Vec<u8>,
    },
}

/// The library floor: aws-lc's OAEP decryption with a key parsed once, nothing around it.
struct Floor {
    parsed: Box<OaepPrivateDecryptingKey>,
    wrapped: Vec<u8>,
}

impl Floor {
    fn new() -> Result<Floor, String> {
        let e = |_| "aws-lc floor key: aws-lc failed".to_string();
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(e)?;
        let public = OaepPublicEncryptingKey::new(key.public_key()).map_err(e)?;
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &PAYLOAD, &mut wrapped, None)
            .map_err(e)?
            .len();
        wrapped.truncate(len);
        Ok(Floor {
            parsed: Box::new(OaepPrivateDecryptingKey::new(key).map_err(e)?),
            wrapped,
        })
    }

    /// The floor on [`SERVER_WORKER_THREADS`] threads (each call writes into a buffer of its
    /// own: 256 bytes, nothing beside the RSA operation).
    fn run_slice(&self, budget: Duration) -> Result<Tally, String> {
        slice_on_threads(SERVER_WORKER_THREADS, budget, || {
            let mut out = [0u8; KEY_SIZE_BITS as usize / 8];
            self.parsed
                .decrypt(&OAEP_SHA256_MGF1SHA256, &self.wrapped, &mut out, None)
                .map(drop)
        })
        .map_err(|_| "aws-lc floor failed".to_string())
    }
}

impl Reference {
    fn hsm(dir: &Path) -> Result<Reference, String> {
        let e = |e: cmksim_hsm::Ckr| format!("in-process HSM: {e}");
        let module = Module::open(dir, ModuleConfig::default(), RandomSource::Os)
            .map_err(|e| format!("in-process HSM: {e}"))?;
        module
            .c_init_token(SlotId(0), HSM_PIN, "bench")
            .map_err(e)?;
        let session = module.c_open_session(SlotId(0), true).map_err(e)?;
        module.c_login(session, UserType::So, HSM_PIN).map_err(e)?;
        module.c_init_pin(session, HSM_PIN).map_err(e)?;
        module.c_logout(session).map_err(e)?;
        module
            .c_login(session, UserType::User, HSM_PIN)
            .map_err(e)?;
        let (public, key) = module
            .c_generate_key_pair(
                session,
                &Mechanism::RsaPkcsKeyPairGen,
                &[Attribute::ModulusBits(u64::from(KEY_SIZE_BITS))],
                &[],
            )
            .map_err(e)?;
        let wrapped = module
            .c_encrypt(session, &Mechanism::rsa_oaep_sha256(), public, &PAYLOAD)
            .map_err(e)?;
        Ok(Reference::Hsm {
            module: Box::new(module),
            session,
            key,
            wrapped,
        })
    }

    fn software() -> Result<Reference, String> {
        let e = |_| "in-process software key: aws-lc failed".to_string();
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(e)?;
        let pkcs8 = key.as_der().map_err(e)?.as_ref().to_vec();
        let public = OaepPublicEncryptingKey::new(key.public_key()).map_err(e)?;
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &PAYLOAD, &mut wrapped, None)
            .map_err(e)?
            .len();
        wrapped.truncate(len);
        let key = crate::crypto::SoftwareKey::parse(crate::model::KeyType::Rsa, &pkcs8)
            .map_err(|e| format!("in-process software key: {e}"))?;
        Ok(Reference::Software {
            key: Box::new(key),
            wrapped,
        })
    }

    fn describe(&self) -> String {
        match self {
            Reference::Hsm { .. } => {
                "cmksim_hsm::Module::c_decrypt, CKM_RSA_PKCS_OAEP SHA-256, RSA-2048 (own module)"
                    .into()
            }
            Reference::Software { .. } => {
                "crypto::SoftwareKey::decrypt (parsed once, as the server's key cache does), RSA-2048"
                    .into()
            }
        }
    }

    /// The reference slice, on [`SERVER_WORKER_THREADS`] threads.
    fn run_slice(&self, budget: Duration) -> Result<Tally, String> {
        match self {
            Reference::Hsm {
                module,
                session,
                key,
                wrapped,
            } => {
                let mechanism = Mechanism::rsa_oaep_sha256();
                slice_on_threads(SERVER_WORKER_THREADS, budget, || {
                    module
                        .c_decrypt(*session, &mechanism, *key, wrapped)
                        .map(drop)
                })
                .map_err(|e| format!("in-process HSM: {e}"))
            }
            Reference::Software { key, wrapped } => {
                slice_on_threads(SERVER_WORKER_THREADS, budget, || {
                    key.decrypt(EncryptionAlgorithm::RsaOaep256, wrapped)
                        .map(drop)
                })
                .map_err(|e| format!("in-process software: {e}"))
            }
        }
    }
}

fn run_in(
    dir: &Path,
    options: &KeyVaultBenchOptions,
    clients: usize,
    rounds: u32,
    report: &mut KeyVaultBenchReport,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_WORKER_THREADS)
        .thread_name(SERVER_THREAD_NAME)
        // Idle blocking threads (the audit flush's) stay, so their CPU time stays countable.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_WORKER_THREADS)
        .thread_name("kv-bench-client")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let server_dir: PathBuf = dir.join("server");
    let (addr, token, stop, task, identity) = runtime.block_on(start_server(&server_dir))?;
    // Keep the identity authority alive as long as the server (tokens are checked against it).
    let _identity = identity;
    let result = (|| {
        let mut kinds: Vec<&'static str> = vec!["RSA-HSM"];
        if options.software {
            kinds.push("RSA");
        }
        let targets = client_runtime.block_on(async {
            let mut client = KeyVaultClient::connect(format!("http://{addr}"), token.clone())
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut targets = Vec::new();
            for kty in &kinds {
                targets.push(create_target(&mut client, kty).await?);
            }
            Ok::<_, String>(targets)
        })?;
        let mut references = Vec::new();
        for kty in &kinds {
            references.push(if *kty == "RSA-HSM" {
                Reference::hsm(&dir.join("reference-hsm"))?
            } else {
                Reference::software()?
            });
        }
        // One connection per client, opened once.
        let connections = client_runtime.block_on(async {
            let mut connections = Vec::new();
            for _ in 0..clients {
                connections.push(
                    KeyVaultClient::connect(format!("http://{addr}"), token.clone())
                        .await
                        .map_err(|e| format!("connect: {e}"))?,
                );
            }
            Ok::<_, String>(connections)
        })?;
        // Warm-up: one request per client and key (connections, caches, parsed keys).
        client_runtime.block_on(async {
            for target in &targets {
                for client in &connections {
                    let mut client = client.clone();
                    client
                        .unwrap_key(
                            VAULT,
                            target.key_name,
                            &target.version,
                            ALGORITHM,
                            &target.wrapped,
                        )
                        .await
                        .map_err(|e| format!("warm-up unwrapKey {}: {e}", target.kty))?;
                }
            }
            Ok::<_, String>(())
        })?;

        let floor = Floor::new()?;
        let budget = options.duration / rounds;
        let mut grpc: Vec<GrpcTally> = targets.iter().map(|_| GrpcTally::default()).collect();
        let mut in_process = vec![Tally::default(); targets.len()];
        let mut floors: Vec<Option<Tally>> = vec![None; targets.len()];
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        report.load_average_before = load_average();
        for _ in 0..rounds {
            for (i, target) in targets.iter().enumerate() {
                let cpu_before = threads_cpu(SERVER_THREAD_NAME);
                let slice =
                    client_runtime.block_on(grpc_slice(&connections, target, budget, &errors));
                let server_cpu = cpu_before
                    .zip(threads_cpu(SERVER_THREAD_NAME))
                    .map(|(before, after)| after.saturating_sub(before));
                let tally = &mut grpc[i];
                tally.server_cpu = tally.server_cpu.zip(server_cpu).map(|(a, b)| a + b);
                tally.ops += slice.ops;
                tally.elapsed += slice.elapsed;
                tally.errors += slice.errors;
                tally.latencies_us.extend(slice.latencies_us);
                in_process[i].add(references[i].run_slice(budget)?);
                floors[i]
                    .get_or_insert_with(Tally::default)
                    .add(floor.run_slice(budget)?);
            }
        }
        report.load_average_after = load_average();
        for (i, target) in targets.iter().enumerate() {
            let tally = &mut grpc[i];
            tally.latencies_us.sort_unstable();
            let grpc_ops_per_s = if tally.elapsed.is_zero() {
                0.0
            } else {
                tally.ops as f64 / tally.elapsed.as_secs_f64()
            };
            let in_process_ops_per_s = in_process[i].ops_per_s();
            let grpc_per_cpu_s = tally
                .server_cpu
                .filter(|cpu| !cpu.is_zero())
                .map(|cpu| tally.ops as f64 / cpu.as_secs_f64());
            let floor = floors[i];
            // Per core where every side's CPU time was read; wall clock otherwise.
            let per_core = grpc_per_cpu_s.is_some()
                && in_process[i].ops_per_cpu_s().is_some()
                && floor.and_then(Tally::ops_per_cpu_s).is_some();
            let versus = |reference: Option<Tally>| -> Option<f64> {
                let reference = reference?;
                if per_core {
                    Some(grpc_per_cpu_s? / reference.ops_per_cpu_s()?)
                } else {
                    let r = reference.ops_per_s();
                    (r > 0.0).then(|| grpc_ops_per_s / r)
                }
            };
            report.rows.push(KeyVaultBenchRow {
                label: format!("{} {KEY_SIZE_BITS} unwrapKey", target.kty),
                kty: target.kty.to_string(),
                grpc_ops_per_s,
                grpc_p50_us: percentile_us(&tally.latencies_us, 0.50),
                grpc_p99_us: percentile_us(&tally.latencies_us, 0.99),
                grpc_errors: tally.errors,
                grpc_server_cpu_s: tally.server_cpu.map(|cpu| cpu.as_secs_f64()),
                in_process_ops_per_s,
                in_process: references[i].describe(),
                ratio: versus(Some(in_process[i])),
                library_floor_ops_per_s: floor.map(Tally::ops_per_s),
                floor_ratio: versus(floor),
                floor_ratio_wall: floor
                    .map(Tally::ops_per_s)
                    .filter(|f| *f > 0.0)
                    .map(|f| grpc_ops_per_s / f),
                per_core,
            });
        }
        let mut errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
        errors.dedup();
        report.notes.extend(errors.into_iter().take(5));
        Ok(())
    })();
    let _ = stop.send(());
    let served = runtime.block_on(task);
    if let Ok(Err(e)) = served {
        report.notes.push(format!("server: {e}"));
    }
    result
}

type ServerTask = tokio::task::JoinHandle<Result<(), crate::server::ServerError>>;

/// Opens the server in `dir`, serves it on 127.0.0.1:0, and creates the tenant, principal and
/// premium vault; returns the address and the principal's vault-plane token.
async fn start_server(
    dir: &Path,
) -> Result<
    (
        SocketAddr,
        String,
        oneshot::Sender<()>,
        ServerTask,
        Arc<Mutex<IdentityAuthority>>,
    ),
    String,
> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let config = KeyVaultConfig {
        os_key_material: true,
        without_hsm: false,
        key_material_seed: None,
    };
    let server = KeyVaultServer::open(
        dir,
        clock.clone(),
        SeedTree::new(0),
        EventLog::default(),
        config,
    )
    .map_err(|e| format!("open Key Vault: {e}"))?;
    let identity = server.identity();
    let (tenant, oid, secret) = {
        let mut id = identity.lock().map_err(|_| "identity lock poisoned")?;
        let tenant = id
            .create_tenant("bench", "")
            .map_err(|e| format!("tenant: {e}"))?
            .tenant_id;
        let (principal, secret) = id
            .create_principal(&tenant, "bench", PrincipalKind::ServicePrincipal)
            .map_err(|e| format!("principal: {e}"))?;
        (tenant, principal.object_id, secret)
    };
    let token_for = |aud: &str| -> Result<String, String> {
        let id = identity.lock().map_err(|_| "identity lock poisoned")?;
        id.issue_token(&oid, &secret, aud, 0, clock.now())
            .map(|(token, _)| token)
            .map_err(|e| format!("token: {e}"))
    };
    let management = token_for(audience::MANAGEMENT)?;
    let vault_token = token_for(audience::VAULT)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_with_incoming(
        cmksim_sim::net::tcp_incoming(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut client = KeyVaultClient::connect(format!("http://{addr}"), management)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = client.request(pb::CreateVaultRequest {
        name: VAULT.into(),
        location: "eastus".into(),
        tenant_id: tenant.clone(),
        sku: pb::Sku::Premium as i32,
        soft_delete_retention_in_days: Some(7),
        access_policies: vec![pb::AccessPolicy {
            tenant_id: tenant,
            object_id: oid.clone(),
            key_permissions: ["create", "get", "wrapKey", "unwrapKey"]
                .iter()
                .map(|p| p.to_string())
                .collect(),
        }],
        ..Default::default()
    });
    client
        .raw()
        .create_vault(request)
        .await
        .map_err(|e| format!("create vault: {e}"))?;
    Ok((addr, vault_token, stop, task, identity))
}

/// Creates the row's key with the wrap/unwrap policy and wraps the payload under it.
async fn create_target(client: &mut KeyVaultClient, kty: &'static str) -> Result<Target, String> {
    let key_name = if kty == "RSA-HSM" {
        "kek-hsm"
    } else {
        "kek-soft"
    };
    let request = client.request(pb::CreateKeyRequest {
        vault_name: VAULT.into(),
        key_name: key_name.into(),
        kty: kty.into(),
        key_size: KEY_SIZE_BITS,
        key_ops: vec!["wrapKey".into(), "unwrapKey".into()],
        ..Default::default()
    });
    let bundle = client
        .raw()
        .create_key(request)
        .await
        .map_err(|e| format!("create {kty} key: {e}"))?
        .into_inner();
    let version = bundle
        .key
        .as_ref()
        .map(|k| cmksim_proto::kid::version_of(&k.kid))
        .unwrap_or_default();
    let wrapped = client
        .wrap_key(VAULT, key_name, &version, ALGORITHM, &PAYLOAD)
        .await
        .map_err(|e| format!("wrapKey {kty}: {e}"))?
        .value;
    Ok(Target {
        kty,
        key_name,
        version,
        wrapped,
    })
}

/// All clients unwrap for `budget`, one request in flight each.
async fn grpc_slice(
    connections: &[KeyVaultClient],
    target: &Target,
    budget: Duration,
    errors: &Arc<Mutex<Vec<String>>>,
) -> GrpcTally {
    let start = Instant::now();
    let deadline = start + budget;
    let mut tasks = Vec::new();
    for connection in connections {
        let mut client = connection.clone();
        let key_name = target.key_name;
        let version = target.version.clone();
        let wrapped = target.wrapped.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let mut failed = 0u64;
            let mut ops = 0u64;
            while ops < REQUESTS_PER_SLICE_MAX && Instant::now() < deadline {
                let sent = Instant::now();
                match client
                    .unwrap_key(VAULT, key_name, &version, ALGORITHM, &wrapped)
                    .await
                {
                    Ok(_) => {
                        ops += 1;
                        latencies_us.push(sent.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        failed += 1;
                        if let Ok(mut errors) = errors.lock() {
                            errors.push(format!("unwrapKey failed: {e}"));
                        }
                        // A failing server is not hammered: one error ends this client's slice.
                        break;
                    }
                }
            }
            (ops, failed, latencies_us)
        }));
    }
    let mut tally = GrpcTally::default();
    for task in tasks {
        if let Ok((ops, failed, latencies)) = task.await {
            tally.ops += ops;
            tally.errors += failed;
            tally.latencies_us.extend(latencies);
        }
    }
    tally.elapsed = start.elapsed();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_from_a_stat_line_whose_name_has_spaces() {
        // pid (name) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
        let stat = "42 (kv bench) x) S 1 42 42 0 -1 4194560 10 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(stat_cpu(stat), Some(CLOCK_TICK * 280));
        assert_eq!(stat_cpu("42 (short) S 1"), None);
    }

    #[test]
    fn a_slice_without_cpu_time_makes_the_tally_wall_clock_only() {
        let mut tally = Tally::default();
        tally.add(Tally {
            ops: 10,
            elapsed: Duration::from_secs(1),
            cpu: Some(Duration::from_millis(500)),
        });
        assert_eq!(tally.ops_per_cpu_s(), Some(20.0));
        tally.add(Tally {
            ops: 10,
            elapsed: Duration::from_secs(1),
            cpu: None,
        });
        assert_eq!((tally.ops, tally.ops_per_cpu_s()), (20, None));
        assert_eq!(tally.ops_per_s(), 10.0);
    }

    #[test]
    fn threads_on_their_own_report_their_cpu_time() {
        let tally = slice_on_threads(2, Duration::from_millis(30), || {
            std::hint::black_box((0..1000u64).sum::<u64>());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(tally.ops > 0);
        if cfg!(target_os = "linux") {
            assert!(tally.cpu.is_some(), "Linux has /proc/thread-self/stat");
        }
    }
}
