//! `cmksim chaos FILE`: a sweep of seeded random fault schedules over one scenario, judged by
//! the oracle, sharded for batch schedulers, and shrunk to a regression scenario (SPEC §11).
//!
//! For each seed, `cmksim_scenario::chaos` draws a fault schedule from the file's `[chaos]`
//! table (or the defaults) and makes the ordinary [`Scenario`] it stands for; this module runs
//! it with [`cmksim_world::harness::run_simulated`] — it knows nothing of the engine inside, so
//! replacing the engine keeps sweeps working — and judges it with every event-based invariant
//! of SPEC §8 ([`oracle::check_invariants`]) and, when the table asks for it, the file's own
//! expectations. Invariant 7 (determinism) is what `--replay` and its test check: the JSON line
//! of a seed carries the SHA-256 of its event log, and a replay of that seed writes a log with
//! the same hash. Invariant 5 (nothing secret on disk) is a property of the services' files,
//! not of events, and is not judged per seed.
//!
//! Output: one JSON line per seed (seed, faults, verdicts, the event log's size and hash, then
//! `wall_ms` as the last, separate field — the only one that differs between two sweeps), in
//! seed order within a shard, written as soon as every smaller seed of the shard is done; so
//! shards merge by concatenation (`cat shard-*.jsonl | sort -n -t: -k2` orders them).
//! `--shard I/N` takes the seeds whose position in the range is I modulo N, so any batch
//! scheduler (GNU parallel, a Kubernetes Indexed Job, a Slurm array) can split a sweep. A
//! summary table goes to stdout, a progress line to stderr when it is a terminal. Exit code 0
//! only when no seed broke a counted check (and every run completed); 1 otherwise; 2 on bad
//! input.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use cmksim_scenario::chaos::{self, ChaosFault, FaultSpace, SHRINK_ATTEMPTS_MAX};
use cmksim_scenario::{expect, oracle, Outcome, Scenario, Verdict};
use cmksim_sim::{Event, EventLog, SimTime};

/// Most seeds one invocation runs (a 4-hour scenario costs seconds per seed).
pub const SEEDS_MAX: u64 = 1_000_000;
/// Most worker threads.
pub const JOBS_MAX: usize = 64;

#[derive(Args)]
pub struct ChaosArgs {
    /// The scenario file (TOML); its `[chaos]` table is the fault space (defaults without it).
    file: PathBuf,
    /// The seeds to run, `A..B` (B excluded) or one number.
    #[arg(long, default_value = "0..100", value_parser = parse_seeds)]
    seeds: SeedRange,
    /// Runs at once (threads; default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard I of N (0 ≤ I < N): the seeds at positions ≡ I (mod N) of the range.
    #[arg(long, value_parser = parse_shard, value_name = "I/N")]
    shard: Option<Shard>,
    /// Write one JSON line per seed here (sorted by seed).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Run this one seed, print its verdicts and (with --events) write its event log: the
    /// same log, byte for byte, as the sweep's run of the seed.
    #[arg(long, value_name = "SEED", conflicts_with_all = ["seeds", "shard", "jobs", "out"])]
    replay: Option<u64>,
    /// With --replay: write the event log as JSON Lines.
    #[arg(long, value_name = "FILE", requires = "replay")]
    events: Option<PathBuf>,
    /// Shrink the first failing seed (or the replayed one) to the smallest fault schedule that
    /// breaks the same check, and write it as a scenario file.
    #[arg(long)]
    shrink: bool,
    /// Where --shrink writes `<name>-seed-<seed>.toml`.
    #[arg(long, value_name = "DIR", default_value = ".")]
    shrink_dir: PathBuf,
    /// Most runs --shrink makes.
    #[arg(long, default_value_t = 24)]
    shrink_attempts: usize,
    /// Simulation resolution in milliseconds (turmoil engine).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// The simulation engine: events (default; time jumps to the next timer) or turmoil.
    #[arg(long, value_parser = cmksim_world::Engine::parse)]
    engine: Option<cmksim_world::Engine>,
}

/// How each seed's world is simulated: the engine, and turmoil's tick.
#[derive(Clone, Copy, Debug)]
pub struct Sim {
    pub tick: Duration,
    pub engine: cmksim_world::Engine,
}

/// `A..B`: the seeds A to B-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    let range = match text.split_once("..") {
        Some((a, b)) => {
            let start = a.trim().parse::<u64>().map_err(|e| format!("{a:?}: {e}"))?;
            let end = b.trim().parse::<u64>().map_err(|e| format!("{b:?}: {e}"))?;
            SeedRange { start, end }
        }
        None => {
            let one = text
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("{text:?}: {e}"))?;
            SeedRange {
                start: one,
                end: one.saturating_add(1),
            }
        }
    };
    if range.end <= range.start {
        return Err(format!(
            "{text:?}: the range is empty (write A..B with A < B)"
        ));
    }
    if range.end - range.start > SEEDS_MAX {
        return Err(format!("at most {SEEDS_MAX} seeds per invocation"));
    }
    Ok(range)
}

/// `--shard I/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected I/N, e.g. 0/4"))?;
    let index = i.trim().parse::<u64>().map_err(|e| format!("{i:?}: {e}"))?;
    let count = n.trim().parse::<u64>().map_err(|e| format!("{n:?}: {e}"))?;
    if count == 0 || index >= count {
        return Err(format!("{text:?}: need 0 <= I < N"));
    }
    Ok(Shard { index, count })
}

/// The seeds of a range that belong to a shard.
pub fn shard_seeds(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    let shard = shard.unwrap_or(Shard { index: 0, count: 1 });
    (range.start..range.end)
        .filter(|seed| (seed - range.start) % shard.count == shard.index)
        .collect()
}

/// One seed's run, judged.
#[derive(Clone, Debug)]
pub struct SeedRun {
    pub seed: u64,
    pub faults: Vec<ChaosFault>,
    /// The file's expectations, then the invariants.
    pub expectations: Vec<Verdict>,
    pub invariants: Vec<Verdict>,
    /// The ids of the counted checks that broke (invariants; expectations when judged).
    pub broken: Vec<String>,
    /// The run could not complete (the world failed): the message.
    pub error: Option<String>,
    /// The SHA-256 of the event log as `cmksim run --events` writes it (verdict events
    /// included): a sweep keeps the hash, not the log, so its memory does not grow with the
    /// logs of the seeds it ran (~1 MB each for a 4-hour scenario); `--replay` writes the log.
    pub events_sha256: String,
    pub events: usize,
    pub wall: Duration,
}

impl SeedRun {
    /// Whether this seed fails the sweep.
    pub fn failed(&self) -> bool {
        !self.broken.is_empty() || self.error.is_some()
    }

    /// The JSON line: deterministic apart from `wall_ms`, the last field.
    pub fn json_line(&self) -> String {
        let verdict = |v: &Verdict| {
            serde_json::json!({
                "id": v.id,
                "outcome": v.outcome,
                "detail": v.detail,
            })
        };
        let line = serde_json::json!({
            "seed": self.seed,
            "faults": self.faults,
            "broken": self.broken,
            "error": self.error,
            "invariants": self.invariants.iter().map(verdict).collect::<Vec<_>>(),
            "expectations": self.expectations.iter().map(verdict).collect::<Vec<_>>(),
            "events": self.events,
            "events_sha256": self.events_sha256,
        });
        // `json!` keeps insertion order only with serde_json's `preserve_order`; the object is
        // written by hand so the order is fixed and `wall_ms` comes last.
        let mut text = line.to_string();
        text.pop(); // the closing brace
        text.push_str(&format!(",\"wall_ms\":{}}}", self.wall.as_millis()));
        text
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one fault schedule of `scenario` with `seed` and judges it. `space` decides whether
/// the file's expectations count.
pub fn run_schedule(
    scenario: &Scenario,
    space: &FaultSpace,
    faults: &[ChaosFault],
    seed: u64,
    sim: Sim,
) -> anyhow::Result<SeedRun> {
    run_schedule_logged(scenario, space, faults, seed, sim).map(|(run, _log)| run)
}

/// [`run_schedule`], with the run's event log as `cmksim run --events` writes it.
pub fn run_schedule_logged(
    scenario: &Scenario,
    space: &FaultSpace,
    faults: &[ChaosFault],
    seed: u64,
    sim: Sim,
) -> anyhow::Result<(SeedRun, String)> {
    let started = Instant::now();
    let applied = chaos::apply(scenario, space, faults, seed)?;
    let events = EventLog::default();
    let options = cmksim_world::RunOptions {
        seed: Some(seed),
        tick: sim.tick,
        engine: sim.engine,
        // Every seed of the sweep over the same keys: the swept file's seed, not the applied
        // copy's (which carries the run's seed for the shrunk file).
        key_material_seed: Some(scenario.meta.seed),
        ..Default::default()
    };
    let error = cmksim_world::run_simulated(&applied, &options, &events)
        .err()
        .map(|e| e.to_string());
    let snapshot = events.snapshot();
    let expectations = expect::evaluate(&applied, &snapshot);
    let invariants = oracle::check_invariants(&applied, &snapshot);
    // The verdicts are recorded as `cmksim run` records them, so the log is the same one.
    let end = snapshot
        .last()
        .map(Event::at)
        .unwrap_or(SimTime::DEFAULT_EPOCH);
    for (family, verdicts) in [("expectation", &expectations), ("invariant", &invariants)] {
        for verdict in verdicts {
            let (kind, message, data) = verdict.to_event_parts(family);
            events.record_raw(end, "oracle", &kind, message, data);
        }
    }
    let snapshot = events.snapshot();
    let counted = invariants
        .iter()
        .chain(expectations.iter().filter(|_| space.judge_expectations));
    let broken = counted
        .filter(|v| v.outcome == Outcome::Broken)
        .map(|v| v.id.clone())
        .collect();
    let log = cmksim_scenario::narrate::render_jsonl(&snapshot);
    let run = SeedRun {
        seed,
        faults: faults.to_vec(),
        expectations,
        invariants,
        broken,
        error,
        events_sha256: sha256_hex(log.as_bytes()),
        events: snapshot.len(),
        wall: started.elapsed(),
    };
    Ok((run, log))
}

/// Draws and runs one seed.
pub fn run_seed(
    scenario: &Scenario,
    space: &FaultSpace,
    seed: u64,
    sim: Sim,
) -> anyhow::Result<SeedRun> {
    let faults = chaos::draw(space, seed);
    run_schedule(scenario, space, &faults, seed, sim)
}

/// What [`sweep`] calls after each run: the run, and every seed's slot (in seed order, `None`
/// while not finished) so that lines can be written in order.
pub type OnDone<'a> = dyn Fn(&SeedRun, &[Option<SeedRun>]) -> anyhow::Result<()> + Sync + 'a;

/// Runs `seeds` on `jobs` threads; `done` is told each finished run in completion order
/// (under a lock, so it may write). Returns the runs sorted by seed.
pub fn sweep(
    scenario: &Scenario,
    space: &FaultSpace,
    seeds: &[u64],
    jobs: usize,
    sim: Sim,
    done: &OnDone<'_>,
) -> anyhow::Result<Vec<SeedRun>> {
    let jobs = jobs.clamp(1, JOBS_MAX).min(seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<SeedRun>>> = Mutex::new(vec![None; seeds.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                // Bounded: each pass takes a distinct index below seeds.len().
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds.len() {
                    break;
                }
                let result = run_seed(scenario, space, seeds[i], sim);
                let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
                let outcome = result.and_then(|run| {
                    slots[i] = Some(run);
                    match &slots[i] {
                        Some(run) => done(run, &slots),
                        None => Ok(()),
                    }
                });
                if let Err(e) = outcome {
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    next.store(seeds.len(), Ordering::Relaxed);
                    break;
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(slots
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

/// Shrinks a failing seed's schedule while its first broken check still breaks.
pub fn shrink_seed(
    scenario: &Scenario,
    space: &FaultSpace,
    failing: &SeedRun,
    attempts_max: usize,
    sim: Sim,
) -> anyhow::Result<(chaos::Shrunk, String)> {
    let target = failing
        .broken
        .first()
        .cloned()
        .context("the seed broke no check: nothing to shrink")?;
    let mut run_error: Option<anyhow::Error> = None;
    let shrunk = chaos::shrink(
        &failing.faults,
        space,
        attempts_max.min(SHRINK_ATTEMPTS_MAX),
        |candidate| match run_schedule(scenario, space, candidate, failing.seed, sim) {
            Ok(run) => run.broken.contains(&target),
            Err(e) => {
                run_error.get_or_insert(e);
                false
            }
        },
    );
    if let Some(e) = run_error {
        return Err(e.context("a shrinking run failed"));
    }
    Ok((shrunk, target))
}

/// The progress line on stderr (a terminal only).
struct Progress {
    enabled: bool,
    started: Instant,
    total: usize,
    finished: AtomicUsize,
    failed: AtomicUsize,
}

impl Progress {
    fn tick(&self, run: &SeedRun) {
        let finished = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        if run.failed() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.enabled {
            let rate = finished as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\r\x1b[2K[{finished}/{}] {} failing · {rate:.2} seeds/s",
                self.total,
                self.failed.load(Ordering::Relaxed)
            );
        }
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

fn load(file: &Path) -> Option<(String, Scenario)> {
    let text = match cmksim_scenario::parse::read_source(file) {
        Ok(text) => text,
        Err(d) => {
            eprintln!("{d}");
            return None;
        }
    };
    match cmksim_scenario::validate_str(file, &text) {
        Ok(scenario) => Some((text, scenario)),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            None
        }
    }
}

/// The summary table: per check, how many seeds held, broke, or did not exercise it.
pub fn summary_table(runs: &[SeedRun], wall: Duration, jobs: usize) -> String {
    let mut rows: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for run in runs {
        for v in run.invariants.iter().chain(run.expectations.iter()) {
            let row = rows.entry(v.id.clone()).or_default();
            match v.outcome {
                Outcome::Held => row[0] += 1,
                Outcome::Broken => row[1] += 1,
                Outcome::NotApplicable => row[2] += 1,
            }
        }
    }
    let mut out = format!(
        "{:<28} {:>8} {:>8} {:>14}\n",
        "check", "held", "broken", "not applicable"
    );
    for (id, [held, broken, na]) in &rows {
        out.push_str(&format!("{id:<28} {held:>8} {broken:>8} {na:>14}\n"));
    }
    let failing: Vec<&SeedRun> = runs.iter().filter(|r| r.failed()).collect();
    let secs = wall.as_secs_f64().max(1e-3);
    out.push_str(&format!(
        "{} seeds, {} failing · {:.1} s wall on {jobs} jobs · {:.3} seeds/s ({:.3} per job)\n",
        runs.len(),
        failing.len(),
        secs,
        runs.len() as f64 / secs,
        runs.len() as f64 / secs / jobs as f64
    ));
    const LISTED_MAX: usize = 20;
    for run in failing.iter().take(LISTED_MAX) {
        let what = match &run.error {
            Some(e) => format!("run failed: {}", cmksim_sim::text::echo(e)),
            None => format!("broke {}", run.broken.join(", ")),
        };
        let faults: Vec<String> = run.faults.iter().map(ChaosFault::describe).collect();
        out.push_str(&format!(
            "  seed {}: {what} · {}\n",
            run.seed,
            faults.join("; ")
        ));
    }
    if failing.len() > LISTED_MAX {
        out.push_str(&format!(
            "  … and {} more (see --out)\n",
            failing.len() - LISTED_MAX
        ));
    }
    out
}

pub fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.tick_ms),
        "--tick-ms must be between 1 and 10000"
    );
    anyhow::ensure!(
        (1..=SHRINK_ATTEMPTS_MAX).contains(&args.shrink_attempts),
        "--shrink-attempts must be between 1 and {SHRINK_ATTEMPTS_MAX}"
    );
    let sim = Sim {
        tick: Duration::from_millis(args.tick_ms),
        engine: args.engine.unwrap_or(cmksim_world::Engine::Events),
    };
    let Some((text, scenario)) = load(&args.file) else {
        return Ok(ExitCode::from(2));
    };
    let space = FaultSpace::of(&scenario);
    if let Some(seed) = args.replay {
        return replay(&args, &text, &scenario, &space, seed, sim);
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(
        (1..=JOBS_MAX).contains(&jobs),
        "--jobs must be between 1 and {JOBS_MAX}"
    );
    let seeds = shard_seeds(args.seeds, args.shard);
    anyhow::ensure!(!seeds.is_empty(), "this shard has no seeds in the range");
    let out = args
        .out
        .as_deref()
        .map(|path| {
            std::fs::File::create(path)
                .with_context(|| format!("--out {}: cannot write there", path.display()))
        })
        .transpose()?
        .map(std::io::BufWriter::new);
    let out = Mutex::new((out, 0usize));
    let progress = Progress {
        enabled: std::io::stderr().is_terminal(),
        started: Instant::now(),
        total: seeds.len(),
        finished: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let runs = sweep(&scenario, &space, &seeds, jobs, sim, &|run, slots| {
        progress.tick(run);
        // Lines go out in seed order: every finished run at the front of the shard.
        let mut guard = out.lock().unwrap_or_else(|p| p.into_inner());
        let (writer, written) = &mut *guard;
        if let Some(writer) = writer {
            while let Some(Some(ready)) = slots.get(*written) {
                writeln!(writer, "{}", ready.json_line()).context("writing --out")?;
                *written += 1;
            }
            writer.flush().context("writing --out")?;
        }
        Ok(())
    })?;
    progress.clear();
    let wall = started.elapsed();
    out!("{}", summary_table(&runs, wall, jobs));
    if let (Some(path), (Some(mut writer), _)) = (
        &args.out,
        out.into_inner().unwrap_or_else(|p| p.into_inner()),
    ) {
        writer.flush().context("writing --out")?;
        outln!("results: {}", path.display());
    }
    let first_failing = runs.iter().find(|r| !r.broken.is_empty());
    if args.shrink {
        match first_failing {
            Some(failing) => write_shrunk(&args, &text, &scenario, &space, failing, sim)?,
            None => outln!("shrink: no seed broke a check"),
        }
    }
    Ok(if runs.iter().any(SeedRun::failed) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn replay(
    args: &ChaosArgs,
    text: &str,
    scenario: &Scenario,
    space: &FaultSpace,
    seed: u64,
    sim: Sim,
) -> anyhow::Result<ExitCode> {
    let faults = chaos::draw(space, seed);
    let (run, log) = run_schedule_logged(scenario, space, &faults, seed, sim)?;
    for fault in &run.faults {
        outln!("fault: {}", fault.describe());
    }
    let color = std::io::stdout().is_terminal();
    let counts = cmksim_scenario::summary::Counts::from_events(
        &log.lines()
            .filter_map(|l| serde_json::from_str::<Event>(l).ok())
            .collect::<Vec<_>>(),
    );
    out!(
        "{}",
        cmksim_scenario::summary::render_summary(
            &run.expectations,
            &run.invariants,
            &counts,
            color
        )
    );
    if let Some(error) = &run.error {
        outln!("the run failed: {error}");
    }
    outln!("{}", run.json_line());
    if let Some(path) = &args.events {
        std::fs::write(path, log.as_bytes())
            .with_context(|| format!("--events {}: cannot write there", path.display()))?;
        outln!("events: {}", path.display());
    }
    if args.shrink {
        if run.broken.is_empty() {
            outln!("shrink: seed {seed} broke no check");
        } else {
            write_shrunk(args, text, scenario, space, &run, sim)?;
        }
    }
    Ok(if run.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_shrunk(
    args: &ChaosArgs,
    text: &str,
    scenario: &Scenario,
    space: &FaultSpace,
    failing: &SeedRun,
    sim: Sim,
) -> anyhow::Result<()> {
    let (shrunk, target) = shrink_seed(scenario, space, failing, args.shrink_attempts, sim)?;
    let title = failing
        .invariants
        .iter()
        .chain(failing.expectations.iter())
        .find(|v| v.id == target)
        .map(|v| format!("{}: {}", v.id, v.title))
        .unwrap_or_else(|| target.clone());
    let file = chaos::regression_file(
        text,
        scenario,
        space,
        &shrunk.faults,
        failing.seed,
        &[title],
    )?;
    let path = args
        .shrink_dir
        .join(format!("{}-seed-{}.toml", scenario.meta.name, failing.seed));
    std::fs::write(&path, file.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    outln!(
        "shrunk seed {} ({target}) from {} to {} fault(s) in {} runs{}: {}",
        failing.seed,
        failing.faults.len(),
        shrunk.faults.len(),
        shrunk.attempts,
        if shrunk.exhausted {
            " (attempt bound reached)"
        } else {
            ""
        },
        path.display()
    );
    for fault in &shrunk.faults {
        outln!("  {}", fault.describe());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The planted bug: the storage resumes one minute after the resume delay
    //! (`KeyAccessProfile::planted_resume_lag`, a field only tests set). A small sweep must find
    //! it through invariant 3 and shrink the failing schedule to at most two faults; the same
    //! seed without the bug must hold. Costs about a dozen simulated runs (see the report).

    use super::*;

    /// A short world: one cluster with a key, one workspace, one agent; no timeline of its own.
    const PLANTED: &str = r#"
[scenario]
name = "planted-late-resume"
title = "A sweep finds a storage that resumes a minute late"
seed = 1
duration = "1h45m"

[[vaults]]
name = "planted-kv"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "planted-kv"
name = "cmk"
kty = "RSA"

[[access_policies]]
vault = "planted-kv"
principal = "cluster:planted1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "planted1"
location = "westeurope"
key = { vault = "planted-kv", name = "cmk", version = "latest" }

[[workspaces]]
name = "ws-planted"
location = "westeurope"
link = "planted1"

[[agents]]
name = "app"
workspace = "ws-planted"
tables = [{ table = "Heartbeat", every = "1m" }]

[chaos]
faults = ["key-disable", "vault-latency"]
faults_min = 3
faults_max = 3
duration_min = "2m"
duration_max = "10m"
from = "15m"
until = "45m"
"#;

    /// The default engine (the event-driven one) at the default tick.
    const SIM: Sim = Sim {
        tick: Duration::from_millis(TICK_MS),
        engine: cmksim_world::Engine::Events,
    };
    const TICK_MS: u64 = 100;
    /// Two seeds of the sweep (see `seeds`).
    const SEEDS_RUN: usize = 2;
    /// Enough to drop one of three faults whichever is first (see the module doc).
    const SHRINK_ATTEMPTS: usize = 3;

    /// The first seeds whose drawn schedule disables the key exactly once. Two key-disables
    /// close together trip a false alarm of the oracle's invariant 3 today (a second revocation
    /// during the resume delay is counted as a resume that never came), which would hide the
    /// planted bug behind noise; picking seeds is pure (the draw only), so it costs no run.
    fn seeds(space: &FaultSpace) -> Vec<u64> {
        (0..1_000)
            .filter(|seed| {
                chaos::draw(space, *seed)
                    .iter()
                    .filter(|f| f.kind == cmksim_scenario::chaos::ChaosKind::KeyDisable)
                    .count()
                    == 1
            })
            .take(SEEDS_RUN)
            .collect()
    }

    fn scenario(planted: bool) -> Scenario {
        let mut scenario =
            cmksim_scenario::validate_str(Path::new("planted.toml"), PLANTED).expect("valid");
        if planted {
            scenario.profile.key_access.planted_resume_lag = Duration::from_secs(60);
        }
        scenario
    }

    #[test]
    fn a_small_sweep_finds_the_planted_late_resume_and_shrinks_it() {
        let buggy = scenario(true);
        let space = FaultSpace::of(&buggy);
        let seeds = seeds(&space);
        assert_eq!(seeds.len(), SEEDS_RUN);
        let runs = sweep(&buggy, &space, &seeds, 2, SIM, &|_, _| Ok(())).unwrap();
        assert_eq!(runs.iter().map(|r| r.seed).collect::<Vec<_>>(), seeds);
        let failing = runs
            .iter()
            .find(|r| r.broken.contains(&"invariant-3".to_string()))
            .unwrap_or_else(|| {
                panic!(
                    "no seed found the bug:\n{}",
                    summary_table(&runs, Duration::ZERO, 1)
                )
            });
        assert!(failing.error.is_none());

        // The same seed without the bug holds: the sweep found the bug, not noise.
        let clean = run_seed(&scenario(false), &space, failing.seed, SIM).unwrap();
        assert_eq!(clean.faults, failing.faults);
        assert!(clean.broken.is_empty(), "{:?}", clean.invariants);

        let (shrunk, target) = shrink_seed(&buggy, &space, failing, SHRINK_ATTEMPTS, SIM).unwrap();
        assert_eq!(target, "invariant-3");
        assert!(shrunk.attempts <= SHRINK_ATTEMPTS);
        assert!(
            shrunk.faults.len() <= 2 && shrunk.faults.len() < failing.faults.len(),
            "{:?} from {:?}",
            shrunk.faults,
            failing.faults
        );
        assert!(shrunk
            .faults
            .iter()
            .any(|f| f.kind == cmksim_scenario::chaos::ChaosKind::KeyDisable));

        // The regression file is an ordinary scenario carrying exactly the shrunk schedule.
        let file = chaos::regression_file(
            PLANTED,
            &buggy,
            &space,
            &shrunk.faults,
            failing.seed,
            &["invariant-3".into()],
        )
        .unwrap();
        let again = cmksim_scenario::validate_str(Path::new("regression.toml"), &file)
            .unwrap_or_else(|d| panic!("{d:?}\n{file}"));
        assert!(again.chaos.is_none());
        assert_eq!(again.meta.seed, failing.seed);
        let chaos_steps = again
            .timeline
            .iter()
            .filter(|s| s.id.as_deref().is_some_and(|id| id.starts_with("chaos-")))
            .count();
        assert!((1..=4).contains(&chaos_steps), "{file}");
    }

    #[test]
    fn seeds_and_shards_parse_and_partition_the_range() {
        assert_eq!(parse_seeds("3..7"), Ok(SeedRange { start: 3, end: 7 }));
        assert_eq!(parse_seeds("5"), Ok(SeedRange { start: 5, end: 6 }));
        assert!(parse_seeds("7..7").is_err());
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("0/0").is_err());
        let range = SeedRange { start: 10, end: 21 };
        let mut all: Vec<u64> = (0..3)
            .flat_map(|i| shard_seeds(range, Some(Shard { index: i, count: 3 })))
            .collect();
        assert_eq!(
            shard_seeds(range, Some(Shard { index: 1, count: 3 })),
            [11, 14, 17, 20]
        );
        all.sort();
        assert_eq!(all, (10..21).collect::<Vec<_>>());
    }
}
