//! `cmksim bench ingest`: end-to-end gRPC ingest → storage → durable acknowledgement, beside the
//! storage data plane's own append rate measured in the same run.
//!
//! The three real services run in process on 127.0.0.1:0 (their own tokio runtime, a temporary
//! data directory, OS key material, a fast clock and fast control-plane durations), and the CMK
//! path is built over gRPC as an operator would (as `tests/live_crash.rs` does): tenant,
//! principal, tokens, a vault with soft delete and purge protection, an RSA key, a cluster, the
//! cluster identity's access policy, the key update, a linked workspace. Then N clients send
//! Heartbeat batches through `ingest.v1.Ingestion/Ingest` for a fixed time; only records the
//! answer calls *stored* count. The reference is `DataPlane::append` of the same records, in
//! the same batch size, from the same number of threads, on a CMK-sealed, double-encrypted
//! account in its own directory. The two alternate over several rounds so that machine load
//! affects both alike. Like for like: the direct records carry the `TenantId` column the
//! front end adds, and each side makes one append call per batch. Nothing here asserts on time. Each client
//! re-sends one batch, so it encodes it once (the servers decode and convert every call as
//! before) and decodes every answer whole (its outcomes arrive as runs of equal outcomes, issue
//! 15). Beside records/s, each side reports the process's CPU time per record (all
//! threads, from `/proc/self/stat`): on a shared machine other load moves records/s a lot and
//! the CPU a record costs much less, so the CPU ratio is the steadier comparison.
//!
//! **The two hops' floor.** Beside them, the same clients send the same batches through two
//! gRPC hops that do nothing but carry them: a relay (the generated `ingest.v1.Ingestion`
//! server, as the front end is) decodes each request and forwards it, re-encoded, to a sink that
//! decodes it and answers every record stored. That is the least any front end that validates a
//! decoded batch and hands it to a storage service over gRPC pays, before any validation,
//! conversion or append. Its CPU per record gives the ceiling of the CPU ratio: the direct
//! append's CPU per record ÷ (the floor's + the append's), the ratio end to end would reach if the
//! services' own work cost nothing beyond the hops and the append. A second floor has the relay
//! forward the request's bytes undecoded (the sink still decodes them once): the least any
//! design with two gRPC hops pays, one that forwards the client's records as bytes (issue 15's
//! "one record form on both hops") included — storage must decode the records at least once,
//! which the direct append, handed records already built, never does. A third has nothing
//! decode the records at all (the sink counts them by walking the request's top-level fields):
//! the transport of two hops alone.
//!
//! The REST path (issue 11): the HTTPS front door runs in process too, a data collection rule
//! sends `Custom-Heartbeat` to the workspace's `Heartbeat` table, and N clients POST gzip JSON
//! arrays of the same records to `/dataCollectionRules/{id}/streams/Custom-Heartbeat` on
//! keep-alive TLS connections, as `LogsIngestionClient.upload` does; only records the
//! `x-cmksim-outcome` header calls stored count. The anchor of both paths is the real service's
//! documented per-rule limit, 2 GB of JSON a minute (about 33 MB/s), measured here as the JSON
//! size of the records sent.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cmksim_proto::common::v1 as cp;
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::ingest::v1 as ip;
use cmksim_sim::{Clock, EventLog, Profile, RandomSource, SeedTree, SimTime};
use cmksim_storage::data::{DataPlane, Record as DataRecord, Sealing, Value as DataValue};
use prost::Message;
use serde::Serialize;
use tokio::sync::watch;
use tonic::transport::Channel;

/// The goal: end-to-end records/s at least this fraction of the direct append rate.
pub const GOAL_RATIO: f64 = 0.6;
/// The Logs Ingestion API's documented limit per data collection rule: 2 GB a minute, in MB/s.
pub const ANCHOR_JSON_MB_PER_S: f64 = 2_000.0 / 60.0;
/// Goals against the anchor: gRPC at least 1x, REST at least 0.5x.
pub const GOAL_GRPC_TO_ANCHOR: f64 = 1.0;
pub const GOAL_REST_TO_ANCHOR: f64 = 0.5;
const STREAM: &str = "Custom-Heartbeat";

/// The bench's world, built by the one set-up sequence ([`cmksim_setup::build_world`]).
const NAMES: cmksim_setup::WorldNames = cmksim_setup::WorldNames {
    sub: "00000000-0000-0000-0000-0000000000b1",
    rg: "bench",
    region: "westeurope",
    vault: "benchvault",
    key: "cmk",
    cluster: "benchcluster",
    workspace: "benchworkspace",
};
const SUB: &str = NAMES.sub;
const RG: &str = NAMES.rg;
const REGION: &str = NAMES.region;
const WORKSPACE: &str = NAMES.workspace;
const TABLE: &str = "Heartbeat";
/// Simulated seconds per real second: control-plane operations of a simulated minute take 0.1 s
/// while the key loop (6–60 simulated seconds between polls) stays light.
const TIME_SCALE: f64 = 600.0;
const PROFILE_OVERRIDES: [(&str, &str); 4] = [
    ("provisioning_duration", "1m"),
    ("key_update_duration", "1m"),
    ("link_duration", "1m"),
    ("unlink_duration", "1m"),
];
/// The bound on every wait of the set-up: 2,400 looks 25 ms apart.
const POLLING: cmksim_setup::Polling = cmksim_setup::Polling {
    interval: Duration::from_millis(25),
    polls_max: 2400,
};
/// Records are stamped this long before the simulated now (never in the future).
const RECORD_AGE_MS: i64 = 60_000;

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct IngestBenchOptions {
    /// Concurrent clients (end to end) and threads (direct append), one batch in flight each.
    pub clients: usize,
    /// Records per batch.
    pub batch_records: usize,
    /// Length of one measurement, per side and round.
    pub round_duration: Duration,
    /// Rounds, each measuring end to end then direct append.
    pub rounds: usize,
}

impl Default for IngestBenchOptions {
    fn default() -> Self {
        IngestBenchOptions {
            clients: 4,
            batch_records: 500,
            round_duration: Duration::from_secs(5),
            rounds: 3,
        }
    }
}

/// One side's totals over all rounds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Side {
    /// Records acknowledged as stored.
    pub records: u64,
    /// Batches acknowledged.
    pub batches: u64,
    /// Bytes: the encoded protobuf `IngestRequest` (end to end) or the storage's encoded record
    /// payload (direct append).
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub p50_batch_ms: f64,
    pub p99_batch_ms: f64,
    /// CPU time of the whole process (every thread: servers, clients, append threads) while
    /// this side ran, per record acknowledged, in microseconds (Linux; `None` elsewhere).
    pub cpu_us_per_record: Option<f64>,
}

impl Side {
    /// The side's line of the table: records/s, MB/s, p50 and p99 batch milliseconds.
    fn row(&self, label: &str) -> String {
        format!(
            "{label:<34} {:>12.0} {:>9.2} {:>10.2} {:>10.2}\n",
            self.records_per_s, self.mb_per_s, self.p50_batch_ms, self.p99_batch_ms
        )
    }
}

/// What one round measured (records/s of each side).
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub end_to_end_records_per_s: f64,
    pub direct_records_per_s: f64,
}

/// The benchmark's answer.
#[derive(Clone, Debug, Serialize)]
pub struct IngestBenchReport {
    pub options: IngestBenchOptions,
    /// Encoded size of one record in the ingest request, in bytes (average).
    pub record_wire_bytes: f64,
    pub setup_seconds: f64,
    pub end_to_end: Side,
    pub direct_append: Side,
    /// The two hops alone (relay and sink that only decode, forward and answer).
    pub two_hop_floor: Side,
    /// Direct append's CPU per record ÷ (the floor's + direct append's): the highest
    /// [`IngestBenchReport::cpu_ratio`] two gRPC hops with a decode at each end allow.
    pub cpu_ratio_ceiling: Option<f64>,
    /// The two hops with the relay forwarding bytes (one decode, at the sink).
    pub bytes_floor: Side,
    /// As [`IngestBenchReport::cpu_ratio_ceiling`] over [`IngestBenchReport::bytes_floor`].
    pub cpu_ratio_ceiling_bytes: Option<f64>,
    /// The two hops carrying bytes that nothing decodes (the transport alone).
    pub raw_floor: Side,
    /// As [`IngestBenchReport::cpu_ratio_ceiling`] over [`IngestBenchReport::raw_floor`].
    pub cpu_ratio_ceiling_raw: Option<f64>,
    /// HTTPS Logs Ingestion uploads through the door (bytes: uncompressed JSON).
    pub rest: Side,
    /// JSON size of one record as `LogsIngestionClient` sends it, in bytes (average).
    pub record_json_bytes: f64,
    /// gRPC end to end in JSON MB/s (records/s × JSON bytes), ÷ the anchor.
    pub grpc_json_mb_per_s: f64,
    pub grpc_to_anchor: f64,
    /// REST in JSON MB/s ÷ the anchor.
    pub rest_to_anchor: f64,
    /// End-to-end records/s ÷ direct append records/s.
    pub ratio: f64,
    /// Direct append's CPU per record ÷ end to end's: the ratio the records/s ratio would have
    /// if both sides had the machine's cores to themselves (other load on a shared machine
    /// moves records/s, much less the CPU each record costs).
    pub cpu_ratio: Option<f64>,
    pub goal_ratio: f64,
    pub meets_goal: bool,
    /// Records sent end to end that were not acknowledged as stored (buffered, dropped, or in
    /// a failed call). Expected 0.
    pub not_stored: u64,
    pub failed_calls: u64,
    pub rounds: Vec<Round>,
    /// /proc/loadavg before and after (Linux), to judge how loaded the machine was.
    pub loadavg_before: Option<String>,
    pub loadavg_after: Option<String>,
}

impl IngestBenchReport {
    pub fn to_table(&self) -> String {
        let o = &self.options;
        let (e, d) = (&self.end_to_end, &self.direct_append);
        let mut s = format!(
            "ingest bench: {} clients × {} records/batch (~{:.0} B/record on the wire), {} rounds × {:.1} s per side; setup {:.1} s\n",
            o.clients,
            o.batch_records,
            self.record_wire_bytes,
            o.rounds,
            o.round_duration.as_secs_f64(),
            self.setup_seconds
        );
        s += &format!(
            "{:<34} {:>12} {:>9} {:>10} {:>10}\n",
            "", "records/s", "MB/s", "p50 ms", "p99 ms"
        );
        s += &e.row("end to end (gRPC → storage, ack)");
        s += &d.row("direct DataPlane::append (CMK)");
        s += &format!(
            "ratio (records/s) {:.2} (goal ≥ {:.1}: {})\n",
            self.ratio,
            self.goal_ratio,
            if self.meets_goal { "met" } else { "NOT met" }
        );
        if let (Some(ratio), Some(e_cpu), Some(d_cpu)) =
            (self.cpu_ratio, e.cpu_us_per_record, d.cpu_us_per_record)
        {
            s += &format!(
                "CPU per record: end to end {e_cpu:.2} µs, direct {d_cpu:.2} µs (process CPU time, all threads): ratio {ratio:.2}\n"
            );
        }
        let (f, b, r) = (&self.two_hop_floor, &self.bytes_floor, &self.raw_floor);
        s += &f.row("two hops alone (decode, forward)");
        s += &b.row("two hops, bytes forwarded");
        s += &r.row("two hops, nothing decoded");
        for (what, ceiling, side) in [
            ("a decode at each end", self.cpu_ratio_ceiling, f),
            (
                "bytes forwarded, one decode",
                self.cpu_ratio_ceiling_bytes,
                b,
            ),
            ("nothing decoded", self.cpu_ratio_ceiling_raw, r),
        ] {
            if let (Some(ceiling), Some(cpu)) = (ceiling, side.cpu_us_per_record) {
                s += &format!(
                    "two hops alone, {what}: {cpu:.2} µs of CPU per record: the CPU ratio's ceiling is {ceiling:.2}\n"
                );
            }
        }
        let per_round: Vec<String> = self
            .rounds
            .iter()
            .map(|r| {
                format!(
                    "{:.0}/{:.0}",
                    r.end_to_end_records_per_s, r.direct_records_per_s
                )
            })
            .collect();
        s += &format!(
            "rounds (end to end/direct records/s): {}\n",
            per_round.join(", ")
        );
        s += &format!(
            "records not stored: {}, failed calls: {}\n",
            self.not_stored, self.failed_calls
        );
        let r = &self.rest;
        s += &r.row("REST (HTTPS gzip JSON → storage)");
        s += &format!(
            "against the Logs Ingestion limit of {:.1} MB/s of JSON per rule ({:.0} B/record as JSON): \
             gRPC {:.1} MB/s = {:.2}x (goal ≥ {GOAL_GRPC_TO_ANCHOR}), REST {:.1} MB/s = {:.2}x (goal ≥ {GOAL_REST_TO_ANCHOR})\n",
            ANCHOR_JSON_MB_PER_S,
            self.record_json_bytes,
            self.grpc_json_mb_per_s,
            self.grpc_to_anchor,
            r.mb_per_s,
            self.rest_to_anchor
        );
        s += "MB/s: end to end counts the encoded IngestRequest, direct the storage record payload, REST the uncompressed JSON\n";
        if let (Some(a), Some(b)) = (&self.loadavg_before, &self.loadavg_after) {
            s += &format!("loadavg before: {a}; after: {b}\n");
        }
        s
    }
}

/// The `q` quantile (0..=1) of `sorted` by nearest rank, in milliseconds; 0 when empty.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Accumulates one side's measurements across rounds.
#[derive(Default)]
struct Tally {
    records: u64,
    batches: u64,
    bytes: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Process CPU seconds spent while the side ran (`None` when unknown).
    cpu_seconds: Option<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.records += other.records;
        self.batches += other.batches;
        self.bytes += other.bytes;
        self.latencies.extend(other.latencies);
    }

    fn side(mut self) -> Side {
        self.latencies.sort_unstable();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        Side {
            records: self.records,
            batches: self.batches,
            bytes: self.bytes,
            seconds: secs,
            records_per_s: self.records as f64 / secs,
            mb_per_s: self.bytes as f64 / secs / 1e6,
            p50_batch_ms: percentile_ms(&self.latencies, 0.50),
            p99_batch_ms: percentile_ms(&self.latencies, 0.99),
            cpu_us_per_record: self
                .cpu_seconds
                .filter(|_| self.records > 0)
                .map(|cpu| cpu * 1e6 / self.records as f64),
        }
    }

    /// Adds the CPU seconds one round of this side took (unknown stays unknown).
    fn add_cpu(&mut self, round: Option<f64>) {
        self.cpu_seconds = match (self.cpu_seconds, round) {
            (Some(total), Some(r)) => Some(total + r),
            (None, Some(r)) if self.elapsed.is_zero() => Some(r),
            _ => None,
        };
    }
}

/// CPU time used by this process so far (user + system, every thread), in seconds: fields 14
/// and 15 of `/proc/self/stat`, in clock ticks of `USER_HZ` (100 on Linux). `None` where there
/// is no such file.
fn process_cpu_seconds() -> Option<f64> {
    cpu_seconds_of_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The CPU seconds a `/proc/{pid}/stat` line gives (see [`process_cpu_seconds`]).
fn cpu_seconds_of_stat(stat: &str) -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// The CPU seconds between two readings of [`process_cpu_seconds`].
fn cpu_between(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Runs the benchmark (builds its own runtimes; call from synchronous code).
pub fn run(options: &IngestBenchOptions) -> anyhow::Result<IngestBenchReport> {
    anyhow::ensure!(options.clients > 0 && options.batch_records > 0 && options.rounds > 0);
    let loadavg_before = loadavg();
    let dir = tempfile::Builder::new()
        .prefix("cmksim-bench-ingest")
        .tempdir()
        .context("creating the temporary directory")?;
    let servers_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-servers")
        .build()?;
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("bench-clients")
        .build()?;

    let profile = profile()?;
    let clock = {
        let _guard = servers_rt.enter();
        Clock::tokio(SimTime::DEFAULT_EPOCH, TIME_SCALE)
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let services = servers_rt.block_on(start_services(
        dir.path(),
        &clock,
        &profile,
        &stop_rx,
        &servers_rt,
    ))?;
    let admin = cmksim_identity::AdminCredentials::load(
        &cmksim_identity::authority::admin_credentials_path(
            &dir.path().join("keyvault").join("identity"),
        ),
    )?;
    clients_rt.block_on(build_world(&services.keyvault, &services.storage, &admin))?;
    let door = servers_rt.block_on(start_door(dir.path(), &clock, &services, &stop_rx))?;
    let floors = servers_rt.block_on(start_two_hop_floors(&stop_rx))?;
    let door = clients_rt.block_on(door.with_rule())?;
    let setup_seconds = started.elapsed().as_secs_f64();

    let plane = DataPlane::open(&dir.path().join("direct"), RandomSource::Os, &profile)?;
    let aek = direct_account(&plane, &clock)?;

    let mut e2e = Tally::default();
    let mut floor = Tally::default();
    let mut bytes_floor = Tally::default();
    let mut raw_floor = Tally::default();
    let mut direct = Tally::default();
    let mut rest = Tally::default();
    let (mut not_stored, mut failed_calls) = (0u64, 0u64);
    let mut rounds = Vec::new();
    let mut record_wire_bytes = 0.0;
    for _ in 0..options.rounds {
        let cpu_before = process_cpu_seconds();
        let r = clients_rt.block_on(end_to_end_round(&services.ingest, &clock, options))?;
        e2e.add_cpu(cpu_between(cpu_before, process_cpu_seconds()));
        record_wire_bytes = r.tally.bytes as f64 / (r.sent.max(1)) as f64;
        not_stored += r.sent - r.tally.records;
        failed_calls += r.failed_calls;
        let e_rate = r.tally.records as f64 / r.tally.elapsed.as_secs_f64();
        e2e.elapsed += r.tally.elapsed;
        e2e.add(r.tally);

        for (url, tally) in [
            (&floors.decoding, &mut floor),
            (&floors.bytes, &mut bytes_floor),
            (&floors.raw, &mut raw_floor),
        ] {
            let cpu_before = process_cpu_seconds();
            let r = clients_rt.block_on(end_to_end_round(url, &clock, options))?;
            tally.add_cpu(cpu_between(cpu_before, process_cpu_seconds()));
            failed_calls += r.failed_calls;
            tally.elapsed += r.tally.elapsed;
            tally.add(r.tally);
        }

        let cpu_before = process_cpu_seconds();
        let t = direct_round(&plane, &aek, &clock, options)?;
        direct.add_cpu(cpu_between(cpu_before, process_cpu_seconds()));
        let d_rate = t.records as f64 / t.elapsed.as_secs_f64();
        direct.elapsed += t.elapsed;
        direct.add(t);

        let r = clients_rt.block_on(rest_round(&door, &clock, options))?;
        not_stored += r.sent - r.tally.records;
        failed_calls += r.failed_calls;
        rest.elapsed += r.tally.elapsed;
        rest.add(r.tally);
        rounds.push(Round {
            end_to_end_records_per_s: e_rate,
            direct_records_per_s: d_rate,
        });
    }
    drop(plane);

    let _ = stop_tx.send(true);
    servers_rt.block_on(async {
        for task in services.tasks.into_iter().chain(floors.tasks) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    });
    servers_rt.shutdown_timeout(Duration::from_secs(5));
    clients_rt.shutdown_timeout(Duration::from_secs(1));

    let end_to_end = e2e.side();
    let direct_append = direct.side();
    let two_hop_floor = floor.side();
    let bytes_floor = bytes_floor.side();
    let raw_floor = raw_floor.side();
    let rest = rest.side();
    let ceiling = |floor: &Side| match (floor.cpu_us_per_record, direct_append.cpu_us_per_record) {
        (Some(f), Some(d)) if f + d > 0.0 => Some(d / (f + d)),
        _ => None,
    };
    let cpu_ratio_ceiling = ceiling(&two_hop_floor);
    let cpu_ratio_ceiling_bytes = ceiling(&bytes_floor);
    let cpu_ratio_ceiling_raw = ceiling(&raw_floor);
    let ratio = end_to_end.records_per_s / direct_append.records_per_s.max(1e-9);
    let cpu_ratio = match (
        end_to_end.cpu_us_per_record,
        direct_append.cpu_us_per_record,
    ) {
        (Some(e), Some(d)) if e > 0.0 => Some(d / e),
        _ => None,
    };
    let record_json_bytes = door.json_bytes_per_record(options.batch_records);
    let grpc_json_mb_per_s = end_to_end.records_per_s * record_json_bytes / 1e6;
    Ok(IngestBenchReport {
        options: options.clone(),
        record_wire_bytes,
        setup_seconds,
        end_to_end,
        direct_append,
        two_hop_floor,
        cpu_ratio_ceiling,
        bytes_floor,
        cpu_ratio_ceiling_bytes,
        raw_floor,
        cpu_ratio_ceiling_raw,
        grpc_to_anchor: grpc_json_mb_per_s / ANCHOR_JSON_MB_PER_S,
        rest_to_anchor: rest.mb_per_s / ANCHOR_JSON_MB_PER_S,
        rest,
        record_json_bytes,
        grpc_json_mb_per_s,
        ratio,
        cpu_ratio,
        goal_ratio: GOAL_RATIO,
        meets_goal: ratio >= GOAL_RATIO,
        not_stored,
        failed_calls,
        rounds,
        loadavg_before,
        loadavg_after: loadavg(),
    })
}

fn profile() -> anyhow::Result<Profile> {
    let mut cluster = toml::Table::new();
    for (k, v) in PROFILE_OVERRIDES {
        cluster.insert(k.into(), toml::Value::String(v.into()));
    }
    let mut table = toml::Table::new();
    table.insert("cluster".into(), toml::Value::Table(cluster));
    Ok(Profile::builtin_with_overrides("azure-2020", Some(&table))?)
}

// ---- services ---------------------------------------------------------------------------

struct Services {
    keyvault: String,
    storage: String,
    ingest: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn listener() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let l = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", l.local_addr()?);
    Ok((l, url))
}

fn until(stop: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = stop.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

async fn start_services(
    dir: &Path,
    clock: &Clock,
    profile: &Profile,
    stop: &watch::Receiver<bool>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Services> {
    let (kv_l, kv_url) = listener().await?;
    let (st_l, st_url) = listener().await?;
    let (in_l, in_url) = listener().await?;
    let keyvault = cmksim_keyvault::KeyVaultServer::open(
        &dir.join("keyvault"),
        clock.clone(),
        SeedTree::new(1),
        EventLog::default(),
        cmksim_keyvault::KeyVaultConfig {
            os_key_material: true,
            without_hsm: true,
            key_material_seed: None,
        },
    )?;
    let mut config = cmksim_storage::StorageConfig::new(
        dir.join("storage"),
        clock.clone(),
        SeedTree::new(1),
        EventLog::default(),
        profile.clone(),
        cmksim_sim::net::Network::Tcp,
        &kv_url,
    );
    config.os_key_material = true;
    let config = config.with_principal_of(&keyvault.identity())?;
    let storage = cmksim_storage::StorageServer::open(config)?;
    let ingest = cmksim_ingest::IngestServer::new(
        clock.clone(),
        EventLog::default(),
        profile.clone(),
        &st_url,
    )?;
    let mut tasks = Vec::new();
    let s = until(stop);
    tasks.push(rt.spawn(async move {
        if let Err(e) = keyvault
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(kv_l), s)
            .await
        {
            eprintln!("bench: keyvault: {e}");
        }
    }));
    let s = until(stop);
    tasks.push(rt.spawn(async move {
        if let Err(e) = storage
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(st_l), s)
            .await
        {
            eprintln!("bench: storage: {e}");
        }
    }));
    let s = until(stop);
    tasks.push(rt.spawn(async move {
        if let Err(e) = ingest
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(in_l), s)
            .await
        {
            eprintln!("bench: ingest: {e}");
        }
    }));
    Ok(Services {
        keyvault: kv_url,
        storage: st_url,
        ingest: in_url,
        tasks,
    })
}

// ---- the two hops' floor -----------------------------------------------------------------

/// A hop of the first floor, behind the generated server (which decodes each batch): the
/// relay forwards the batch, re-encoded by the generated client, and returns the sink's answer;
/// the sink answers every record stored.
enum DecodingHop {
    Relay(ip::ingestion_client::IngestionClient<Channel>),
    Sink,
}

fn not_in_the_floor() -> tonic::Status {
    tonic::Status::unimplemented("the two-hop floor carries Ingest only")
}

#[tonic::async_trait]
impl ip::ingestion_server::Ingestion for DecodingHop {
    async fn ingest(
        &self,
        request: tonic::Request<ip::IngestRequest>,
    ) -> Result<tonic::Response<ip::IngestResponse>, tonic::Status> {
        match self {
            DecodingHop::Relay(sink) => sink.clone().ingest(request.into_inner()).await,
            DecodingHop::Sink => {
                let records = request.get_ref().records.len() as u64;
                Ok(tonic::Response::new(ip::IngestResponse {
                    accepted: records,
                    stored: records,
                    ..Default::default()
                }))
            }
        }
    }

    async fn register_custom_table(
        &self,
        _request: tonic::Request<ip::RegisterCustomTableRequest>,
    ) -> Result<tonic::Response<ip::RegisterCustomTableResponse>, tonic::Status> {
        Err(not_in_the_floor())
    }

    async fn get_metrics(
        &self,
        _request: tonic::Request<ip::GetMetricsRequest>,
    ) -> Result<tonic::Response<ip::GetMetricsResponse>, tonic::Status> {
        Err(not_in_the_floor())
    }
}

/// The floors' entry points (each a relay's URL) and their servers' tasks.
struct Floors {
    /// Decoded and re-encoded by the relay, decoded by the sink.
    decoding: String,
    /// Forwarded as bytes, decoded by the sink.
    bytes: String,
    /// Forwarded as bytes, never decoded.
    raw: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the floors' servers on 127.0.0.1:0 (on the servers' runtime, as the services): a
/// decoding sink with a relay that decodes and re-encodes and one that forwards bytes, and a
/// sink that never decodes behind a relay that forwards bytes. The tasks end when `stop` is set.
async fn start_two_hop_floors(stop: &watch::Receiver<bool>) -> anyhow::Result<Floors> {
    let (sink_l, sink_url) = listener().await?;
    let (relay_l, relay_url) = listener().await?;
    let (bytes_l, bytes_url) = listener().await?;
    let (raw_sink_l, raw_sink_url) = listener().await?;
    let (raw_l, raw_url) = listener().await?;
    let relay = DecodingHop::Relay(ip::ingestion_client::IngestionClient::new(channel(
        &sink_url,
    )?));
    let bytes_relay = RawHop::Forward(tonic::client::Grpc::new(channel(&sink_url)?));
    let raw_relay = RawHop::Forward(tonic::client::Grpc::new(channel(&raw_sink_url)?));
    let tasks = vec![
        tokio::spawn(serve_floor(
            "sink",
            sink_l,
            ip::ingestion_server::IngestionServer::new(DecodingHop::Sink),
            until(stop),
        )),
        tokio::spawn(serve_floor(
            "relay",
            relay_l,
            ip::ingestion_server::IngestionServer::new(relay),
            until(stop),
        )),
        tokio::spawn(serve_floor(
            "bytes relay",
            bytes_l,
            bytes_relay,
            until(stop),
        )),
        tokio::spawn(serve_floor(
            "raw sink",
            raw_sink_l,
            RawHop::Answer,
            until(stop),
        )),
        tokio::spawn(serve_floor("raw relay", raw_l, raw_relay, until(stop))),
    ];
    Ok(Floors {
        decoding: relay_url,
        bytes: bytes_url,
        raw: raw_url,
        tasks,
    })
}

/// A hop of the floors that never decodes a request: it forwards `Ingest` requests and answers
/// as the bytes they are, or answers every record stored after counting the request's records
/// (a walk over its top-level fields, no record decoded).
#[derive(Clone)]
enum RawHop {
    Forward(tonic::client::Grpc<Channel>),
    Answer,
}

impl tonic::server::NamedService for RawHop {
    const NAME: &'static str = ip::ingestion_server::SERVICE_NAME;
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for RawHop {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let hop = RawCall(self.clone());
        Box::pin(async move {
            if request.uri().path() != "/ingest.v1.Ingestion/Ingest" {
                return Ok(not_in_the_floor().into_http());
            }
            Ok(tonic::server::Grpc::new(RawBytes::default())
                .unary(hop, request)
                .await)
        })
    }
}

/// One call of a [`RawHop`].
struct RawCall(RawHop);

impl tonic::server::UnaryService<prost::bytes::Bytes> for RawCall {
    type Response = prost::bytes::Bytes;
    type Future = tonic::codegen::BoxFuture<tonic::Response<prost::bytes::Bytes>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<prost::bytes::Bytes>) -> Self::Future {
        let hop = self.0.clone();
        Box::pin(async move {
            match hop {
                RawHop::Forward(mut sink) => {
                    sink.ready().await.map_err(|e| {
                        tonic::Status::unavailable(format!("the floor's sink: {e}"))
                    })?;
                    let path = http::uri::PathAndQuery::from_static("/ingest.v1.Ingestion/Ingest");
                    sink.unary(
                        tonic::Request::new(request.into_inner()),
                        path,
                        RawBytes::default(),
                    )
                    .await
                }
                RawHop::Answer => {
                    let records = count_records(request.get_ref())?;
                    let answer = ip::IngestResponse {
                        accepted: records,
                        stored: records,
                        ..Default::default()
                    };
                    Ok(tonic::Response::new(answer.encode_to_vec().into()))
                }
            }
        })
    }
}

/// The records of an encoded `IngestRequest` (field 3), counted without decoding them.
fn count_records(mut request: &[u8]) -> Result<u64, tonic::Status> {
    let bad = |e: prost::DecodeError| tonic::Status::invalid_argument(e.to_string());
    let mut records = 0u64;
    while !request.is_empty() {
        let (tag, wire_type) = prost::encoding::decode_key(&mut request).map_err(bad)?;
        if tag == 3 {
            records += 1;
        }
        prost::encoding::skip_field(
            wire_type,
            tag,
            &mut request,
            prost::encoding::DecodeContext::default(),
        )
        .map_err(bad)?;
    }
    Ok(records)
}

/// One of the floors' servers: the service alone, no layers.
async fn serve_floor<S>(
    name: &'static str,
    listener: tokio::net::TcpListener,
    service: S,
    stop: impl std::future::Future<Output = ()>,
) where
    S: tonic::codegen::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(cmksim_sim::net::tcp_incoming(listener), stop)
        .await;
    if let Err(e) = served {
        eprintln!("bench: the floor's {name}: {e}");
    }
}

// ---- the CMK world over gRPC (as tests/live_crash.rs) -----------------------------------

fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect_lazy())
}

fn workspace_id() -> String {
    NAMES.workspace_id()
}

async fn build_world(
    kv_url: &str,
    storage_url: &str,
    admin: &cmksim_identity::AdminCredentials,
) -> anyhow::Result<()> {
    cmksim_setup::build_world(
        &NAMES,
        channel(kv_url)?,
        channel(storage_url)?,
        admin,
        POLLING,
    )
    .await?;
    Ok(())
}

// ---- records ------------------------------------------------------------------------------

/// The Heartbeat columns of record `i` of client `client` (the same on both sides).
fn heartbeat_columns(client: usize, i: usize) -> [(&'static str, String); 9] {
    [
        ("Computer", format!("vm-{client:02}-{i:05}.contoso.example")),
        ("Category", "Direct Agent".into()),
        ("OSType", "Linux".into()),
        ("OSName", "Ubuntu".into()),
        ("Version", "1.14.23-0".into()),
        (
            "ComputerIP",
            format!("10.{client}.{}.{}", i / 256 % 256, i % 256),
        ),
        (
            "SourceComputerId",
            format!("3f0c7a52-1b9e-4d6a-9c1e-{client:04}{i:08}"),
        ),
        ("Solutions", "\"security\", \"changeTracking\"".into()),
        ("RemoteIPCountry", "Netherlands".into()),
    ]
}

fn ingest_batch(client: usize, n: usize, at_ms: i64) -> ip::IngestRequest {
    ip::IngestRequest {
        workspace_id: workspace_id(),
        table: TABLE.into(),
        records: (0..n)
            .map(|i| ip::Record {
                time_generated: Some(cp::SimTime { unix_ms: at_ms }),
                columns: heartbeat_columns(client, i)
                    .into_iter()
                    .map(|(name, v)| ip::Column {
                        name: name.into(),
                        value: Some(ip::Value {
                            kind: Some(ip::value::Kind::StringValue(v)),
                        }),
                    })
                    .collect(),
            })
            .collect(),
        declare_columns: Vec::new(),
    }
}

/// The same records as the storage receives them from the front end (with `TenantId`).
fn data_batch(client: usize, n: usize, at_ms: i64) -> Vec<DataRecord> {
    (0..n)
        .map(|i| {
            let mut r = DataRecord::new(TABLE, at_ms);
            for (name, v) in heartbeat_columns(client, i) {
                r.columns.insert(name.into(), DataValue::String(v));
            }
            r.columns
                .insert("TenantId".into(), DataValue::String(WORKSPACE.into()));
            r
        })
        .collect()
}

// ---- measurements ---------------------------------------------------------------------------

struct E2eRound {
    tally: Tally,
    sent: u64,
    failed_calls: u64,
}

async fn end_to_end_round(
    ingest_url: &str,
    clock: &Clock,
    options: &IngestBenchOptions,
) -> anyhow::Result<E2eRound> {
    let at_ms = clock.now().unix_ms() - RECORD_AGE_MS;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..options.clients {
        let mut client =
            tonic::client::Grpc::new(channel(ingest_url)?).max_decoding_message_size(64 << 20);
        // The client re-sends one batch: it is encoded once, not cloned and encoded per call.
        let request = prost::bytes::Bytes::from(
            ingest_batch(c, options.batch_records, at_ms).encode_to_vec(),
        );
        let request_bytes = request.len() as u64;
        let n = options.batch_records as u64;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let (mut sent, mut failed) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let result = ingest_encoded(&mut client, request.clone()).await;
                let took = began.elapsed();
                sent += n;
                match result {
                    Ok(response) => {
                        let stored = response.into_inner().stored;
                        t.records += stored;
                        t.bytes += request_bytes;
                        t.batches += 1;
                        t.latencies.push(took);
                    }
                    Err(e) => {
                        failed += 1;
                        if failed == 1 {
                            eprintln!("bench: ingest call failed: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (t, sent, failed)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(options.round_duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut round = E2eRound {
        tally: Tally::default(),
        sent: 0,
        failed_calls: 0,
    };
    for task in tasks {
        let (t, sent, failed) = task.await?;
        round.tally.add(t);
        round.sent += sent;
        round.failed_calls += failed;
    }
    // Every client finishes its batch in flight: the round ends when the last answer came.
    round.tally.elapsed = started.elapsed();
    Ok(round)
}

/// `ingest.v1.Ingestion/Ingest`, the request already encoded, the answer decoded whole (as
/// the generated client would).
async fn ingest_encoded(
    client: &mut tonic::client::Grpc<Channel>,
    request: prost::bytes::Bytes,
) -> Result<tonic::Response<ip::IngestResponse>, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("ingest channel: {e}")))?;
    let path = http::uri::PathAndQuery::from_static("/ingest.v1.Ingestion/Ingest");
    client
        .unary(tonic::Request::new(request), path, EncodedIngest::default())
        .await
}

/// A codec whose requests are already encoded (written as they are) and whose answers are
/// `D`: decoded whole ([`ingest_encoded`], the generated client's way), or kept as bytes (the
/// floors' relays and sink, [`RawBytes`]).
struct PreEncoded<D>(std::marker::PhantomData<fn() -> D>);

impl<D> Default for PreEncoded<D> {
    fn default() -> Self {
        PreEncoded(std::marker::PhantomData)
    }
}

/// Bytes in, bytes out: nothing decoded.
type RawBytes = PreEncoded<prost::bytes::Bytes>;
/// The encoded `IngestRequest` in, its answer decoded.
type EncodedIngest = PreEncoded<ip::IngestResponse>;

/// How [`PreEncoded`] reads an answer.
trait FromWire: Sized + Send + 'static {
    fn from_wire(src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Self, tonic::Status>;
}

impl FromWire for prost::bytes::Bytes {
    fn from_wire(src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Self, tonic::Status> {
        use prost::bytes::Buf;
        Ok(src.copy_to_bytes(src.remaining()))
    }
}

impl FromWire for ip::IngestResponse {
    fn from_wire(src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Self, tonic::Status> {
        ip::IngestResponse::decode(src)
            .map_err(|e| tonic::Status::internal(format!("decoding the answer: {e}")))
    }
}

impl<D: FromWire> tonic::codec::Codec for PreEncoded<D> {
    type Encode = prost::bytes::Bytes;
    type Decode = D;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self::default()
    }

    fn decoder(&mut self) -> Self {
        Self::default()
    }
}

impl<D: FromWire> tonic::codec::Encoder for PreEncoded<D> {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: prost::bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl<D: FromWire> tonic::codec::Decoder for PreEncoded<D> {
    type Item = D;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<D>, tonic::Status> {
        D::from_wire(src).map(Some)
    }
}

/// A double-encrypted account with the AEK recorded as wrapped by a customer key (the wrapped
/// bytes are a stand-in: appends never unwrap).
fn direct_account(plane: &DataPlane, clock: &Clock) -> anyhow::Result<cmksim_storage::data::Aek> {
    let account = "cluster:direct";
    plane.create_account(account, true, clock.now())?;
    let aek = plane.unwrap_with_mmk(account)?;
    plane.set_kek_wrapping(
        account,
        &aek,
        "https://benchvault.vault.azure.net/keys/cmk",
        "v1",
        &[0u8; 256],
    )?;
    Ok(aek)
}

fn direct_round(
    plane: &DataPlane,
    aek: &cmksim_storage::data::Aek,
    clock: &Clock,
    options: &IngestBenchOptions,
) -> anyhow::Result<Tally> {
    let at_ms = clock.now().unix_ms() - RECORD_AGE_MS;
    let stop = AtomicBool::new(false);
    let workspace = workspace_id();
    let started = Instant::now();
    let tallies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..options.clients)
            .map(|c| {
                let (stop, workspace) = (&stop, &workspace);
                scope.spawn(move || -> anyhow::Result<Tally> {
                    let records = data_batch(c, options.batch_records, at_ms);
                    let sealing = Sealing::Cmk {
                        aek,
                        kid: "https://benchvault.vault.azure.net/keys/cmk",
                        version: "v1",
                    };
                    let mut t = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let began = Instant::now();
                        let receipt = plane.append(
                            "cluster:direct",
                            sealing,
                            workspace,
                            TABLE,
                            &records,
                            clock.now(),
                        )?;
                        t.latencies.push(began.elapsed());
                        t.records += receipt.records;
                        t.bytes += receipt.payload_bytes;
                        t.batches += 1;
                    }
                    Ok(t)
                })
            })
            .collect();
        std::thread::sleep(options.round_duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| h.join().expect("append thread panicked"))
            .collect::<anyhow::Result<Vec<Tally>>>()
    })?;
    let mut total = Tally {
        elapsed: started.elapsed(),
        ..Tally::default()
    };
    for t in tallies {
        total.add(t);
    }
    Ok(total)
}

// ---- the REST path: the HTTPS front door and a data collection rule ------------------------

/// The door, in process, and what its uploads need.
struct Door {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    credentials: cmksim_rest::Credentials,
    keyvault: String,
    /// The rule's immutable id, once made.
    rule: String,
}

async fn start_door(
    dir: &Path,
    clock: &Clock,
    services: &Services,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Door> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(names)?.self_signed(&key)?;
    let ca_pem = cert.pem().into_bytes();
    let data_dir = dir.join("rest");
    std::fs::create_dir_all(&data_dir)?;
    std::fs::write(data_dir.join("cert.pem"), &ca_pem)?;
    let tls = cmksim_sim::net::tls_server_config(&ca_pem, key.serialize_pem().as_bytes())?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let config = cmksim_rest::RestConfig {
        keyvault_url: services.keyvault.clone(),
        storage_url: services.storage.clone(),
        ingest_url: services.ingest.clone(),
        network: cmksim_sim::net::Network::Tcp,
        clock: clock.clone(),
        data_dir: data_dir.clone(),
        ca_file: data_dir.join("cert.pem"),
        seed: 1,
        admin_credentials: cmksim_identity::authority::admin_credentials_path(
            &dir.join("keyvault").join("identity"),
        ),
    };
    let server = cmksim_rest::RestServer::open(config, format!("https://{addr}")).await?;
    let credentials = server.credentials().clone();
    tokio::spawn(server.serve(listener, tls, until(stop)));
    Ok(Door {
        addr,
        ca_pem,
        credentials,
        keyvault: services.keyvault.clone(),
        rule: String::new(),
    })
}

impl Door {
    async fn token(&self, audience: &str) -> anyhow::Result<String> {
        let mut identity = idp::identity_client::IdentityClient::new(channel(&self.keyvault)?);
        Ok(identity
            .issue_token(idp::IssueTokenRequest {
                object_id: self.credentials.object_id.clone(),
                secret: self.credentials.client_secret.clone(),
                audience: audience.into(),
                lifetime_seconds: 0,
            })
            .await
            .context("door token")?
            .into_inner()
            .token)
    }

    /// Makes the rule `Custom-Heartbeat` → `Heartbeat` of the workspace, through ARM.
    async fn with_rule(mut self) -> anyhow::Result<Door> {
        let token = self.token(cmksim_identity::audience::MANAGEMENT).await?;
        let columns: Vec<serde_json::Value> = std::iter::once(("TimeGenerated", "datetime"))
            .chain(heartbeat_columns(0, 0).iter().map(|(n, _)| (*n, "string")))
            .map(|(name, kind)| serde_json::json!({"name": name, "type": kind}))
            .collect();
        let body = serde_json::json!({
            "location": REGION,
            "kind": "Direct",
            "properties": {
                "streamDeclarations": {STREAM: {"columns": columns}},
                "destinations": {"logAnalytics": [{"name": "la", "workspaceResourceId": workspace_id()}]},
                "dataFlows": [{"streams": [STREAM], "destinations": ["la"], "outputStream": "Microsoft-Heartbeat"}],
            }
        });
        let mut client =
            cmksim_rest::client::HttpsClient::connect(self.addr, "localhost", &self.ca_pem).await?;
        let path = format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Insights/dataCollectionRules/bench?api-version=2023-03-11"
        );
        let answer = client
            .json(http::Method::PUT, &path, Some(&token), Some(&body))
            .await?;
        if answer.status != http::StatusCode::OK {
            bail!("creating the rule: {} {}", answer.status, answer.json());
        }
        self.rule = answer.json()["properties"]["immutableId"]
            .as_str()
            .context("the rule's immutableId")?
            .to_string();
        Ok(self)
    }

    /// JSON size of one record as the SDK sends it.
    fn json_bytes_per_record(&self, n: usize) -> f64 {
        rest_body(0, n, 0).len() as f64 / n.max(1) as f64
    }
}

/// A JSON array of `n` Heartbeat records, as `LogsIngestionClient` would send them.
fn rest_body(client: usize, n: usize, at_ms: i64) -> Vec<u8> {
    let at = SimTime(at_ms).to_rfc3339();
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let mut record = serde_json::Map::new();
            record.insert(
                "TimeGenerated".into(),
                serde_json::Value::String(at.clone()),
            );
            for (name, v) in heartbeat_columns(client, i) {
                record.insert(name.into(), serde_json::Value::String(v));
            }
            serde_json::Value::Object(record)
        })
        .collect();
    serde_json::Value::Array(records).to_string().into_bytes()
}

async fn rest_round(
    door: &Door,
    clock: &Clock,
    options: &IngestBenchOptions,
) -> anyhow::Result<E2eRound> {
    use std::io::Write;
    let at_ms = clock.now().unix_ms() - RECORD_AGE_MS;
    let token = door.token(cmksim_identity::audience::MONITOR).await?;
    let path = format!(
        "/dataCollectionRules/{}/streams/{STREAM}?api-version=2023-01-01",
        door.rule
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..options.clients {
        let json = rest_body(c, options.batch_records, at_ms);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&json)?;
        let body = cmksim_rest::client::Bytes::from(gz.finish()?);
        let mut client =
            cmksim_rest::client::HttpsClient::connect(door.addr, "localhost", &door.ca_pem).await?;
        let (path, token, stop) = (path.clone(), format!("Bearer {token}"), stop.clone());
        let (n, json_bytes) = (options.batch_records as u64, json.len() as u64);
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let (mut sent, mut failed) = (0u64, 0u64);
            let headers = [
                ("authorization", token.as_str()),
                ("content-encoding", "gzip"),
            ];
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let result = client
                    .send(http::Method::POST, &path, &headers, Some(body.clone()))
                    .await;
                let took = began.elapsed();
                sent += n;
                let stored = match &result {
                    Ok(a) if a.status == http::StatusCode::NO_CONTENT => a
                        .headers
                        .get("x-cmksim-outcome")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            v.split_whitespace()
                                .find_map(|kv| kv.strip_prefix("stored="))
                        })
                        .and_then(|n| n.parse::<u64>().ok()),
                    _ => None,
                };
                match stored {
                    Some(stored) => {
                        t.records += stored;
                        t.bytes += json_bytes;
                        t.batches += 1;
                        t.latencies.push(took);
                    }
                    None => {
                        failed += 1;
                        if failed == 1 {
                            eprintln!("bench: REST upload failed: {result:?}");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (t, sent, failed)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(options.round_duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut round = E2eRound {
        tally: Tally::default(),
        sent: 0,
        failed_calls: 0,
    };
    for task in tasks {
        let (t, sent, failed) = task.await?;
        round.tally.add(t);
        round.sent += sent;
        round.failed_calls += failed;
    }
    round.tally.elapsed = started.elapsed();
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        assert_eq!(percentile_ms(&ms(&[7]), 0.99), 7.0);
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&sorted, 0.0), 1.0);
        assert_eq!(percentile_ms(&ms(&[1, 2, 3, 4]), 0.5), 2.0);
    }

    #[test]
    fn both_sides_carry_the_same_columns() {
        let wire = ingest_batch(3, 2, 1_000);
        let data = data_batch(3, 2, 1_000);
        assert_eq!(wire.records.len(), 2);
        for (w, d) in wire.records.iter().zip(&data) {
            for c in &w.columns {
                let Some(ip::Value {
                    kind: Some(ip::value::Kind::StringValue(s)),
                }) = &c.value
                else {
                    panic!("string column expected");
                };
                assert_eq!(d.columns.get(&c.name), Some(&DataValue::String(s.clone())));
            }
            assert_eq!(d.columns.len(), w.columns.len() + 1, "plus TenantId");
        }
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "42 (bench ) x) S 1 42 42 0 -1 4194304 10 0 0 0 250 130 0 0 20 0 7 0";
        assert_eq!(cpu_seconds_of_stat(line), Some(3.8));
        assert_eq!(cpu_seconds_of_stat("42 (cut) S 1 2"), None);
        assert_eq!(cpu_seconds_of_stat("no name here"), None);
        assert_eq!(cpu_between(Some(1.0), Some(3.5)), Some(2.5));
        assert_eq!(cpu_between(None, Some(3.5)), None);
    }

    #[test]
    fn profile_overrides_apply() {
        let p = profile().unwrap();
        assert_eq!(p.cluster.provisioning_duration, Duration::from_secs(60));
    }

    #[test]
    fn records_are_counted_without_decoding_and_damage_is_an_error() {
        let mut batch = ingest_batch(1, 7, 1_000);
        batch.declare_columns.push(ip::ColumnDeclaration {
            name: "Extra".into(),
            r#type: "string".into(),
        });
        let bytes = batch.encode_to_vec();
        assert_eq!(count_records(&bytes).unwrap(), 7);
        assert_eq!(count_records(&[]).unwrap(), 0);
        let cut = &bytes[..bytes.len() - 3];
        assert!(count_records(cut).is_err(), "a record cut short");
    }

    /// Each floor carries a batch both ways and answers what its sink counted, over real
    /// servers on 127.0.0.1:0.
    #[test]
    fn every_floor_carries_a_batch_to_its_sink_and_back() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let floors = rt.block_on(start_two_hop_floors(&stop_rx)).unwrap();
        let batch = prost::bytes::Bytes::from(ingest_batch(2, 9, 1_000).encode_to_vec());
        for url in [&floors.decoding, &floors.bytes, &floors.raw] {
            let answer = rt
                .block_on(async {
                    let mut client = tonic::client::Grpc::new(channel(url)?);
                    anyhow::Ok(ingest_encoded(&mut client, batch.clone()).await?)
                })
                .unwrap()
                .into_inner();
            assert_eq!((answer.accepted, answer.stored), (9, 9), "{url}");
        }
        stop_tx.send(true).unwrap();
        rt.block_on(async {
            for task in floors.tasks {
                tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .expect("the floor's server stops")
                    .unwrap();
            }
        });
    }
}
