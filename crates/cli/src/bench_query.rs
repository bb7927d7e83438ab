//! `cmksim bench query`: a KQL query over a double-encrypted workspace, beside the decryption of
//! the same number of bytes in the same run (the floor any encrypted scan pays).
//!
//! Set-up: a storage `DataPlane` in a temporary directory (removed afterwards), a CMK-sealed,
//! double-encrypted account (the helpers of `cmksim bench storage`), and a `Heartbeat` table of
//! `--mib` MiB of stored blocks of up to 1 MiB: string columns `Computer` (`web-`, `db-`, `app-`
//! hosts), `Category`, `OSType`, a long `Level`, and `TimeGenerated` spread evenly over six hours
//! older than the hot window (so each block has one cold copy, as in `bench storage`'s scan).
//!
//! The measured query, one pass per round, in one process (no gRPC):
//!
//! ```text
//! Heartbeat
//! | where TimeGenerated between (datetime(+1h) .. datetime(+5h)) and Computer contains "web"
//! | summarize count() by Category, bin(TimeGenerated, 5m)
//! ```
//!
//! run with the summarize pushed down into the storage scan (issue 11): `cmksim_kql::parse`, the
//! query's projection (`Query::projection`: `TimeGenerated`, `Category`, `Computer`), leading
//! filter (`Query::row_filter`) and summarize plan (`Query::summarize_plan`), then
//! `DataPlane::summarize_rows` over the whole workspace (both AEAD layers opened for every
//! stored byte, each record decoded into the projected cells only, the filter evaluated and the
//! kept rows folded into per-block groups while the blocks are opened, the blocks' groups
//! merged in block order), then `SummarizePlan::finish`. The query is a `count()` by a
//! string column and a time bin (`SummarizePlan::counted_keys`), so each columnar block's kept
//! records are counted per dictionary code and bin rather than built as rows (see
//! `cmksim_storage::data::rows`), and a block whose times all lie inside the `between` skips
//! that test. Query MB/s = sealed bytes the scan read
//! (`ScanStats::bytes_read`) / wall seconds of the whole pass.
//!
//! This is the path the served query takes: for a query of this shape the front end asks
//! storage to summarize (`storage.v1.QueryRequest.kql_summarize`), the storage service runs
//! `DataPlane::summarize_rows` and answers the groups (`SummarizePlan::encode`, a few KiB),
//! and the front end decodes, merges and finishes them; what this benchmark leaves out is one
//! gRPC round trip and those few KiB. Beside it, each round also runs the same query the way
//! a query without a summarize plan runs (the "rows" path: `DataPlane::scan_rows` hands back
//! every kept row, copied, then `cmksim_kql::execute` groups them in a second pass; over gRPC
//! such a query is also refused past a million kept rows). Both paths must give the same
//! result.
//!
//! Threads: both scans open blocks on `tier::scan_threads()` threads (one core less than the
//! machine has, at least one: **one on the two-core machine** the README's figures come from);
//! the floor runs on one thread. The report states the scan's thread count; on a machine where
//! it is more than one, the ratio compares N threads with one and says so.
//!
//! The floor: the data plane does not expose its blocks' ciphertexts or keys, so the floor
//! re-seals a buffer of the same shape once (as many chunks as the scan read blocks, each of the
//! average stored block size less the two tags, AES-256-GCM inside ChaCha20-Poly1305 as the block
//! format does; README "Data at rest") and then, each round, copies every chunk out (as the scan
//! copies a block out of sled) and opens ChaCha20-Poly1305 then AES-256-GCM with ring. It leaves
//! out the per-block HKDF and header parsing, so it is a floor, not a model of the scan. Floor
//! MB/s = the same byte count / wall seconds. The two alternate over several rounds so machine
//! load hits both alike; the ratio is query MB/s / floor MB/s over all rounds (goal ≥ 0.5).
//!
//! Every pass is checked, not only timed: the scan must see every record written, and the sum of
//! the result's `count_` column must equal the matching records counted while filling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use cmksim_kql as kql;
use cmksim_sim::{Profile, SimTime};
use cmksim_storage::data::bench::{cmk_account, open_plane, sealing};
use cmksim_storage::data::tier::ScanRequest;
use cmksim_storage::data::{DataPlane, Record, RowScan, Value};
use ring::aead;
use serde::Serialize;

/// The goal: query MB/s at least this fraction of the decryption floor's MB/s.
pub const GOAL_RATIO: f64 = 0.5;
/// Bounds of `--mib`.
pub const WORKSPACE_MIB_MIN: u64 = 1;
pub const WORKSPACE_MIB_MAX: u64 = 4096;
/// Bounds of `--rounds`.
pub const ROUNDS_MAX: usize = 20;

const MIB: usize = 1024 * 1024;
/// Stored block size (the data plane's `block_max_bytes`), as in `bench storage`'s scan.
const BLOCK_BYTES: usize = MIB;
const ACCOUNT: &str = "cluster:bench";
const WORKSPACE: &str = "ws-bench";
const TABLE: &str = "Heartbeat";
const SPAN_MS: i64 = 6 * 3_600_000;
/// The query's `between`: from one hour after the first record to five hours after it.
const WINDOW_FROM_MS: i64 = 3_600_000;
const WINDOW_TO_MS: i64 = 5 * 3_600_000;
const HOST_KINDS: [&str; 3] = ["web", "db", "app"];
const HOSTS_PER_KIND: u64 = 500;
const CATEGORIES: [&str; 3] = ["Direct Agent", "OpsManager", "Azure Monitor Agent"];
const OS_TYPES: [&str; 2] = ["Linux", "Windows"];
/// The table's columns as the front end orders them: `TimeGenerated`, then the rest by name.
const COLUMNS: [(&str, kql::ColumnType); 5] = [
    ("TimeGenerated", kql::ColumnType::DateTime),
    ("Category", kql::ColumnType::String),
    ("Computer", kql::ColumnType::String),
    ("Level", kql::ColumnType::Long),
    ("OSType", kql::ColumnType::String),
];
/// Records of the probe batch that measures a record's stored size.
const PROBE_RECORDS: u64 = 30_000;
/// The workspace the probe batch goes to (not scanned).
const PROBE_WORKSPACE: &str = "ws-bench-probe";
/// How full the fill's batches make a block (the rest is room for the estimate's error).
const BLOCK_FILL: f64 = 0.9;
/// Header-sized AAD for the floor (the block header is the AAD of both layers).
const FLOOR_AAD_BYTES: usize = 128;
const TAG_BYTES: usize = 16;

/// What to measure.
#[derive(Clone, Debug, Serialize)]
pub struct QueryBenchOptions {
    /// Stored size of the workspace, in MiB.
    pub workspace_mib: u64,
    /// Rounds, each one query pass then one floor pass.
    pub rounds: usize,
}

/// One round's wall times.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// The query with its summarize in the scan (`DataPlane::summarize_rows`).
    pub query_seconds: f64,
    /// The part of `query_seconds` spent until the scan returned (parse, both AEAD layers, the
    /// projected decoding, the filter, the per-block groups); the rest is the result's finish.
    pub scan_seconds: f64,
    /// The same query through the rows path (`DataPlane::scan_rows` + `cmksim_kql::execute`).
    pub rows_seconds: f64,
    pub floor_seconds: f64,
}

/// The report (`--json` prints it; otherwise [`QueryBenchReport::to_table`]).
#[derive(Clone, Debug, Serialize)]
pub struct QueryBenchReport {
    pub options: QueryBenchOptions,
    pub query: String,
    /// Sealed bytes the scan read per pass (and the floor decrypted per pass).
    pub bytes: u64,
    pub blocks: u64,
    pub records: u64,
    /// Records the `where` matches, counted while filling.
    pub matching_records: u64,
    /// Rows of the result (groups of Category × 5-minute bin).
    pub result_rows: u64,
    /// Sum of the result's `count_` column; equals `matching_records`.
    pub result_count_total: u64,
    pub fill_seconds: f64,
    pub rounds: Vec<Round>,
    /// Threads the scans opened blocks on (the floor runs on one).
    pub scan_threads: usize,
    pub query_mb_per_s: f64,
    /// Records the query pass went through per second (every record of the workspace, kept or
    /// not): the figure to compare across block formats, whose sizes per record differ.
    pub query_records_per_s: f64,
    /// The rows path (`scan_rows` + `execute`), for comparison.
    pub rows_mb_per_s: f64,
    pub floor_mb_per_s: f64,
    /// query / floor (MB/s); goal ≥ [`GOAL_RATIO`].
    pub ratio: f64,
    /// rows path / floor.
    pub rows_ratio: f64,
    pub goal_ratio: f64,
    /// 1, 5 and 15-minute load averages at the end (absent off Linux).
    pub load_average: Option<String>,
}

impl QueryBenchReport {
    /// A plain-text table of the figures.
    pub fn to_table(&self) -> String {
        let mb = |b: u64| b as f64 / MIB as f64;
        let mut out = format!(
            "query bench: {:.0} MiB stored in {} blocks, {} records ({} match), filled in {:.1} s\n",
            mb(self.bytes),
            self.blocks,
            self.records,
            self.matching_records,
            self.fill_seconds
        );
        out.push_str(&format!("{}\n", self.query));
        out.push_str(&format!(
            "{:<8} {:>12} {:>12} {:>12} {:>12} {:>8}\n",
            "round", "query s", "(scan s)", "rows path s", "floor s", "ratio"
        ));
        for (i, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "{:<8} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>8.2}\n",
                i + 1,
                r.query_seconds,
                r.scan_seconds,
                r.rows_seconds,
                r.floor_seconds,
                r.floor_seconds / r.query_seconds.max(1e-9)
            ));
        }
        out.push_str(&format!(
            "rows path (scan_rows + execute): {:.1} MB/s, ratio {:.2}\n",
            self.rows_mb_per_s, self.rows_ratio
        ));
        out.push_str(&format!(
            "query (scan + decode + summarize in the scan, {} thread(s)): {:.1} MB/s; floor \
             (ChaCha20-Poly1305 + AES-256-GCM open, 1 thread): {:.1} MB/s; ratio {:.2} (goal >= {:.1}{})\n",
            self.scan_threads,
            self.query_mb_per_s,
            self.floor_mb_per_s,
            self.ratio,
            self.goal_ratio,
            if self.ratio >= self.goal_ratio {
                ""
            } else {
                ", not met"
            }
        ));
        out.push_str(&format!(
            "query records/s: {:.0} ({:.1} stored bytes per record)\n",
            self.query_records_per_s,
            self.bytes as f64 / self.records.max(1) as f64
        ));
        out.push_str(&format!(
            "result: {} rows, count_ total {}; load average {}\n",
            self.result_rows,
            self.result_count_total,
            self.load_average.as_deref().unwrap_or("(unknown)")
        ));
        out
    }
}

/// Runs the benchmark in a temporary directory (removed afterwards).
pub fn run(options: &QueryBenchOptions) -> anyhow::Result<QueryBenchReport> {
    ensure!(
        (WORKSPACE_MIB_MIN..=WORKSPACE_MIB_MAX).contains(&options.workspace_mib),
        "the workspace must be between {WORKSPACE_MIB_MIN} and {WORKSPACE_MIB_MAX} MiB"
    );
    ensure!(
        (1..=ROUNDS_MAX).contains(&options.rounds),
        "rounds must be between 1 and {ROUNDS_MAX}"
    );
    let dir = tempfile::Builder::new()
        .prefix("cmksim-bench-query-")
        .tempdir()
        .context("creating the benchmark's temporary directory")?;
    let report = run_in(options, dir.path());
    dir.close()
        .context("removing the benchmark's temporary directory")?;
    report
}

fn run_in(options: &QueryBenchOptions, dir: &std::path::Path) -> anyhow::Result<QueryBenchReport> {
    let now = SimTime::DEFAULT_EPOCH.add(Duration::from_secs(100 * 86_400));
    let hot_window = Profile::azure_2020().data.hot_tier_window;
    let base_ms = now.sub(hot_window).sub(Duration::from_secs(86_400)).0 - SPAN_MS;
    let plane = open_plane(dir, BLOCK_BYTES, 0)?;
    let aek = cmk_account(&plane, ACCOUNT, now)?;

    let started = Instant::now();
    let fill = fill(&plane, &aek, options.workspace_mib, base_ms, now)?;
    let fill_seconds = started.elapsed().as_secs_f64();

    let text = format!(
        "{TABLE}\n| where TimeGenerated between (datetime({}) .. datetime({})) and Computer contains \"web\"\n\
         | summarize count() by Category, bin(TimeGenerated, 5m)",
        kql::format_datetime(base_ms + WINDOW_FROM_MS),
        kql::format_datetime(base_ms + WINDOW_TO_MS)
    );
    let scan_to = SimTime(fill.last_ms + 1);

    // One untimed pass warms the caches and sizes the floor.
    let pass = |path: Path| query_pass(path, &plane, &aek, &text, SimTime(base_ms), scan_to, now);
    let first = pass(Path::Summarize)?;
    ensure!(
        first.records == fill.records,
        "the scan saw {} records of the {} written",
        first.records,
        fill.records
    );
    ensure!(
        first.count_total == fill.matching,
        "the query counted {} matching records, the fill wrote {}",
        first.count_total,
        fill.matching
    );
    let floor = Floor::new(first.blocks, first.bytes)?;
    floor.pass()?;

    let (mut rounds, mut query_s, mut rows_s, mut floor_s) = (Vec::new(), 0.0, 0.0, 0.0);
    for _ in 0..options.rounds {
        let started = Instant::now();
        let summarized = pass(Path::Summarize)?;
        let query_seconds = started.elapsed().as_secs_f64().max(1e-9);
        let started = Instant::now();
        let rows = pass(Path::Rows)?;
        let rows_seconds = started.elapsed().as_secs_f64().max(1e-9);
        for other in [&summarized, &rows] {
            ensure!(
                other.bytes == first.bytes && other.result == first.result,
                "a pass differs from the first: {other:?} vs {first:?}"
            );
        }
        let started = Instant::now();
        floor.pass()?;
        let floor_seconds = started.elapsed().as_secs_f64().max(1e-9);
        query_s += query_seconds;
        rows_s += rows_seconds;
        floor_s += floor_seconds;
        rounds.push(Round {
            query_seconds,
            scan_seconds: summarized.scan_seconds,
            rows_seconds,
            floor_seconds,
        });
    }
    let total_mb = first.bytes as f64 / MIB as f64 * options.rounds as f64;
    let (query_mb_per_s, floor_mb_per_s) = (total_mb / query_s, total_mb / floor_s);
    let rows_mb_per_s = total_mb / rows_s;
    Ok(QueryBenchReport {
        options: options.clone(),
        query: text,
        bytes: first.bytes,
        blocks: first.blocks,
        records: fill.records,
        matching_records: fill.matching,
        result_rows: first.result.rows.len() as u64,
        result_count_total: first.count_total,
        fill_seconds,
        rounds,
        scan_threads: cmksim_storage::data::tier::scan_threads(),
        query_mb_per_s,
        query_records_per_s: fill.records as f64 * options.rounds as f64 / query_s,
        rows_mb_per_s,
        floor_mb_per_s,
        ratio: query_mb_per_s / floor_mb_per_s,
        rows_ratio: rows_mb_per_s / floor_mb_per_s,
        goal_ratio: GOAL_RATIO,
        load_average: cmksim_keyvault::bench::load_average(),
    })
}

/// What the fill wrote.
struct Fill {
    records: u64,
    /// Records the query's `where` matches.
    matching: u64,
    last_ms: i64,
}

/// The `n`th Heartbeat-like record at `time_ms`.
fn heartbeat(n: u64, time_ms: i64) -> Record {
    let kind = HOST_KINDS[(n % 3) as usize];
    Record::new(TABLE, time_ms)
        .with(
            "Computer",
            Value::String(format!("{kind}-{:04}", (n / 3) % HOSTS_PER_KIND)),
        )
        .with(
            "Category",
            Value::String(CATEGORIES[((n / 2) % 3) as usize].to_string()),
        )
        .with(
            "OSType",
            Value::String(OS_TYPES[((n / 5) % 2) as usize].to_string()),
        )
        .with("Level", Value::Long((n % 5) as i64))
}

/// Appends `mib` MiB of stored blocks of Heartbeat records, spread over [`SPAN_MS`] from
/// `base_ms`.
fn fill(
    plane: &DataPlane,
    aek: &cmksim_storage::data::Aek,
    mib: u64,
    base_ms: i64,
    now: SimTime,
) -> anyhow::Result<Fill> {
    // The stored size of a record, from a probe batch appended to another workspace of the
    // same plane (the columnar payload's size depends on how the values repeat, so it is
    // measured, not computed); times spread over the span by it, batches sized to fill a block.
    let probe: Vec<Record> = (0..PROBE_RECORDS)
        .map(|i| heartbeat(i, base_ms + SPAN_MS + i as i64))
        .collect();
    let receipt = plane.append(ACCOUNT, sealing(aek), PROBE_WORKSPACE, TABLE, &probe, now)?;
    let record_bytes = (receipt.stored_bytes as f64 / PROBE_RECORDS as f64).max(1.0);
    let per_block = ((BLOCK_BYTES as f64 * BLOCK_FILL) / record_bytes).max(1.0) as u64;
    let target_bytes = mib * MIB as u64;
    let records_estimate = (target_bytes as f64 / record_bytes).max(1.0) as u64;
    let step_ms = (SPAN_MS / records_estimate as i64).max(1);
    // Batches fill blocks to about BLOCK_FILL of 1 MiB: twice the size in batches always
    // suffices.
    let batches_max = 2 * mib + 2;
    let (window_from, window_to) = (base_ms + WINDOW_FROM_MS, base_ms + WINDOW_TO_MS);
    let (mut written, mut n, mut matching, mut last_ms) = (0u64, 0u64, 0u64, base_ms);
    for _ in 0..batches_max {
        if written >= target_bytes {
            break;
        }
        let batch: Vec<Record> = (n..n + per_block)
            .map(|i| heartbeat(i, base_ms + i as i64 * step_ms))
            .collect();
        for r in &batch {
            let t = r.time_generated_ms;
            if (window_from..=window_to).contains(&t)
                && r.columns
                    .get("Computer")
                    .is_some_and(|c| matches!(c, Value::String(s) if s.contains("web")))
            {
                matching += 1;
            }
            last_ms = t;
        }
        let receipt = plane.append(ACCOUNT, sealing(aek), WORKSPACE, TABLE, &batch, now)?;
        written += receipt.stored_bytes;
        n += per_block;
    }
    Ok(Fill {
        records: n,
        matching,
        last_ms,
    })
}

/// What one query pass saw.
#[derive(Debug)]
struct Pass {
    blocks: u64,
    bytes: u64,
    records: u64,
    result: kql::Table,
    count_total: u64,
    scan_seconds: f64,
}

/// How a pass runs the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `DataPlane::summarize_rows` (the summarize in the scan), then `SummarizePlan::finish`.
    Summarize,
    /// `DataPlane::scan_rows` (kept rows copied out), then `cmksim_kql::execute`.
    Rows,
}

/// The measured work: parse the query, take its projection and leading filters, then either
/// fold the kept rows into the query's groups in the scan ([`Path::Summarize`]: both AEAD layers
/// opened, only the columns the query reads decoded, the filters and the groups evaluated while
/// the blocks are opened) or hand them back and execute the whole query over them
/// ([`Path::Rows`]).
fn query_pass(
    path: Path,
    plane: &DataPlane,
    aek: &cmksim_storage::data::Aek,
    text: &str,
    from: SimTime,
    to: SimTime,
    now: SimTime,
) -> anyhow::Result<Pass> {
    let started = Instant::now();
    let query = kql::parse(text).map_err(|e| anyhow::anyhow!("the benchmark's query: {e}"))?;
    let all: Vec<kql::Column> = COLUMNS
        .iter()
        .map(|(name, column_type)| kql::Column {
            name: name.to_string(),
            column_type: *column_type,
        })
        .collect();
    let columns = query.projection(TABLE, &all).unwrap_or(all);
    let filter = query
        .row_filter(TABLE, &columns)
        .map_err(|e| anyhow::anyhow!("the benchmark's query: {e}"))?;
    let request = ScanRequest {
        account: ACCOUNT,
        aek: Some(aek),
        workspace: WORKSPACE,
        table: TABLE,
        from,
        to,
        now,
    };
    let scan = RowScan {
        columns: &columns,
        filter: filter.as_ref(),
        now_ms: now.unix_ms(),
    };
    let bad_query = |e: kql::ExecError| anyhow::anyhow!("the benchmark's query: {e}");
    let (stats, scan_seconds, result) = match path {
        Path::Summarize => {
            let plan = query
                .summarize_plan(TABLE, &columns)
                .map_err(bad_query)?
                .context("the benchmark's query has no summarize plan")?;
            let done = plane.summarize_rows(&request, &scan, &plan)?;
            let scan_seconds = started.elapsed().as_secs_f64();
            let stats = done.stats;
            let result = plan.finish(done.groups, now.unix_ms()).map_err(bad_query)?;
            (stats, scan_seconds, result)
        }
        Path::Rows => {
            let mut rows = Vec::new();
            let stats = plane.scan_rows(&request, &scan, &mut |_, _, _, row| rows.push(row))?;
            let scan_seconds = started.elapsed().as_secs_f64();
            let table = kql::Table {
                name: TABLE.to_string(),
                columns,
                rows,
            };
            let tables = BTreeMap::from([(TABLE.to_string(), table)]);
            let result = kql::execute(&query, &tables, now.unix_ms()).map_err(bad_query)?;
            (stats, scan_seconds, result)
        }
    };
    let records = stats.records;
    let count_at = result
        .columns
        .iter()
        .position(|c| c.name == "count_")
        .context("the result has no count_ column")?;
    let mut count_total = 0u64;
    for row in &result.rows {
        match row.get(count_at) {
            Some(kql::Value::Long(n)) if *n >= 0 => count_total += *n as u64,
            other => anyhow::bail!("a count_ cell is not a count: {other:?}"),
        }
    }
    Ok(Pass {
        blocks: stats.blocks_read,
        bytes: stats.bytes_read,
        records,
        result,
        count_total,
        scan_seconds,
    })
}

/// Sealed chunks of the scan's shape, opened with both layers each pass.
struct Floor {
    inner: aead::LessSafeKey,
    outer: aead::LessSafeKey,
    aad: Vec<u8>,
    chunks: Vec<Vec<u8>>,
}

impl Floor {
    /// `blocks` chunks of `bytes / blocks` sealed bytes each (AES-256-GCM inside
    /// ChaCha20-Poly1305), sealed once.
    fn new(blocks: u64, bytes: u64) -> anyhow::Result<Floor> {
        ensure!(blocks > 0, "the scan read no blocks");
        let key = |alg, byte| {
            aead::UnboundKey::new(alg, &[byte; 32])
                .map(aead::LessSafeKey::new)
                .map_err(|_| anyhow::anyhow!("a 32-byte key for a 256-bit AEAD"))
        };
        let inner = key(&aead::AES_256_GCM, 0x11)?;
        let outer = key(&aead::CHACHA20_POLY1305, 0x22)?;
        let aad = vec![0xA5; FLOOR_AAD_BYTES];
        let plain_bytes = ((bytes / blocks) as usize).saturating_sub(2 * TAG_BYTES);
        let mut chunks = Vec::with_capacity(blocks as usize);
        for i in 0..blocks {
            let mut chunk = vec![(i % 251) as u8; plain_bytes];
            for key in [&inner, &outer] {
                key.seal_in_place_append_tag(nonce(i), aead::Aad::from(&aad[..]), &mut chunk)
                    .map_err(|_| anyhow::anyhow!("sealing a floor chunk"))?;
            }
            chunks.push(chunk);
        }
        Ok(Floor {
            inner,
            outer,
            aad,
            chunks,
        })
    }

    /// Copies out and opens every chunk: ChaCha20-Poly1305, then AES-256-GCM.
    fn pass(&self) -> anyhow::Result<()> {
        for (i, chunk) in self.chunks.iter().enumerate() {
            let mut buf = chunk.clone();
            let middle = self
                .outer
                .open_in_place(nonce(i as u64), aead::Aad::from(&self.aad[..]), &mut buf)
                .map_err(|_| anyhow::anyhow!("opening a floor chunk's outer layer"))?;
            let plain = self
                .inner
                .open_in_place(nonce(i as u64), aead::Aad::from(&self.aad[..]), middle)
                .map_err(|_| anyhow::anyhow!("opening a floor chunk's inner layer"))?;
            std::hint::black_box(plain);
        }
        Ok(())
    }
}

fn nonce(i: u64) -> aead::Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&i.to_be_bytes());
    aead::Nonce::assume_unique_for_key(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mib_bench_runs_end_to_end_and_its_counts_agree() {
        let options = QueryBenchOptions {
            workspace_mib: 1,
            rounds: 2,
        };
        let report = run(&options).unwrap();
        assert_eq!(report.rounds.len(), 2);
        assert!(report.blocks >= 1 && report.bytes >= MIB as u64);
        assert!(report.records > 0);
        assert!(report.matching_records > 0 && report.matching_records < report.records);
        assert_eq!(report.result_count_total, report.matching_records);
        // Three categories over four hours of 5-minute bins, at most.
        assert!(report.result_rows > 0 && report.result_rows <= 3 * 49);
        assert!(report.ratio > 0.0 && report.query_mb_per_s > 0.0);
        assert!(report.to_table().contains("ratio"));
        assert!(serde_json::to_string(&report)
            .unwrap()
            .contains("\"ratio\""));
        assert!(run(&QueryBenchOptions {
            workspace_mib: 0,
            rounds: 1
        })
        .is_err());
    }
}
