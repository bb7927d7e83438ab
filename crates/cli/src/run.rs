//! `cmksim run FILE`, `cmksim validate FILE…` and `cmksim demo`: scenarios from the command line.
//!
//! `run` validates the file, plays it in simulated time against the real services, or with
//! `--live` against running `cmksim serve` processes (narrating each event as it happens), judges the run (the scenario's expectations and the invariants of
//! SPEC §8), prints the summary, optionally writes the JSONL event log and the HTML report, and
//! exits 0 only when every expectation and invariant held (1 when one broke, 2 on bad input).
//! The `--events` and `--report` files are opened before the run starts, so an unwritable path
//! fails at once instead of after a run that may take minutes. `validate` and `run` refuse a
//! scenario whose estimated work is over the limits of `cmksim_scenario::work` unless
//! `--force`; a simulated run stopped by a signal removes its data directory ([`crate::cleanup`]).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::Args;
use cmksim_scenario::narrate::{NarrateOptions, Narrator};
use cmksim_scenario::{expect, oracle, report, summary, Scenario};
use cmksim_sim::{EventLog, SimTime};

#[derive(Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    file: PathBuf,
    /// Seed for every random choice (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Behaviour profile, replacing the scenario's (azure-2020, azure-2021 or azure-current).
    #[arg(long)]
    profile: Option<String>,
    /// Write the event log as JSON Lines.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Write a self-contained HTML report with a timeline chart.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Play at this many simulated seconds per real second (e.g. 600), for demos.
    #[arg(long)]
    speed: Option<f64>,
    /// Narrate every event, including each routine poll and batch.
    #[arg(long)]
    verbose: bool,
    /// Simulation resolution in milliseconds: timers and network deliveries happen on ticks
    /// (turmoil engine).
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// The simulation engine: events (the default: time jumps to the next timer) or turmoil
    /// (fixed ticks; what a run with the live dashboard uses).
    #[arg(long, value_parser = cmksim_world::Engine::parse, conflicts_with = "live")]
    engine: Option<cmksim_world::Engine>,
    /// Print only the summary.
    #[arg(long)]
    quiet: bool,
    /// Play against live services (`cmksim serve`) on their scaled wall clock instead of in
    /// simulated time; their `--time-scale` sets the pace.
    #[arg(long, conflicts_with_all = ["speed", "tick_ms"])]
    live: bool,
    /// Live mode: widen every `by`/`within` window and the profile's revocation and resume
    /// deadlines by this much simulated time when judging, for real latency multiplied by the
    /// time scale (default: 50 ms of real time, at least 1s; 30s at 600×).
    #[arg(long, value_name = "DURATION", requires = "live", value_parser = parse_duration)]
    tolerance: Option<std::time::Duration>,
    /// Live mode: the certificate (PEM) to trust for `https://` URLs, e.g. the `tls/cert.pem`
    /// that `cmksim serve --tls` wrote.
    #[arg(long, value_name = "FILE", requires = "live")]
    tls_ca: Option<PathBuf>,
    /// Live mode: the Key Vault (and identity) URL.
    #[arg(long, value_name = "URL", requires = "live", default_value = DEFAULT_KEYVAULT_URL)]
    keyvault: String,
    /// Live mode: the storage URL.
    #[arg(long, value_name = "URL", requires = "live", default_value = DEFAULT_STORAGE_URL)]
    storage: String,
    /// Live mode: the ingestion front end URL.
    #[arg(long, value_name = "URL", requires = "live", default_value = DEFAULT_INGEST_URL)]
    ingest: String,
    /// Live mode: the identity administrator's credentials file Key Vault wrote on its first
    /// start (`DATA_DIR/keyvault/identity/identity-admin.json` for `serve all`): the driver
    /// makes the world's principals and role assignments with its token.
    #[arg(
        long,
        value_name = "FILE",
        requires = "live",
        env = "CMKSIM_ADMIN_CREDENTIALS"
    )]
    admin_credentials: Option<PathBuf>,
    /// Run a scenario whose estimated work (records, simulated days, simulation steps) is over
    /// the limits of `cmksim_scenario::work`.
    #[arg(long)]
    force: bool,
    /// Serve the live dashboard of this (simulated) run here; set by `cmksim demo --web`.
    #[arg(skip)]
    web: Option<std::net::SocketAddr>,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    cmksim_sim::parse_duration(text).map_err(|e| e.to_string())
}

/// Where `cmksim serve all` listens by default.
const DEFAULT_KEYVAULT_URL: &str = "http://127.0.0.1:50051";
const DEFAULT_STORAGE_URL: &str = "http://127.0.0.1:50052";
const DEFAULT_INGEST_URL: &str = "http://127.0.0.1:50053";

#[derive(Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Accept scenarios whose estimated work (records, simulated days, simulation steps) is over
    /// the limits of `cmksim_scenario::work` (reported, but not an error).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// A scenario of the library to run (its name, e.g. `revocation`); lists them when absent.
    name: Option<String>,
    /// Play at this many simulated seconds per real second.
    #[arg(long, default_value_t = 600.0)]
    speed: f64,
    /// Serve the live dashboard in the browser: swimlanes, narration, clock, play/pause and
    /// speed (60× to 3600×), levers on the running world and the verdicts. It stays up after
    /// the run until Ctrl-C.
    #[arg(long, requires = "name")]
    web: bool,
    /// Where the dashboard listens (`127.0.0.1:0`: a free port, printed).
    #[arg(
        long,
        value_name = "ADDR",
        requires = "web",
        default_value = "127.0.0.1:8080"
    )]
    listen: std::net::SocketAddr,
}

/// Loads and validates a scenario, printing every diagnostic.
fn load(file: &Path) -> Option<Scenario> {
    match cmksim_scenario::validate_file(file) {
        Ok(scenario) => Some(scenario),
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            None
        }
    }
}

/// Loads and validates a scenario, then checks its estimated work at `tick` (on fixed ticks
/// when `fixed_tick`) against the limits of [`cmksim_scenario::work`]: over a limit, the
/// diagnostics are printed and the scenario is refused, unless `force` (then they are printed
/// as a warning).
fn load_within_limits(
    file: &Path,
    tick: std::time::Duration,
    fixed_tick: bool,
    force: bool,
) -> Option<Scenario> {
    let text = match cmksim_scenario::parse::read_source(file) {
        Ok(text) => text,
        Err(d) => {
            eprintln!("{d}");
            return None;
        }
    };
    let scenario = match cmksim_scenario::validate_str(file, &text) {
        Ok(scenario) => scenario,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            return None;
        }
    };
    let over = cmksim_scenario::work::check(file, &text, &scenario, tick, fixed_tick);
    for d in &over {
        if force {
            eprintln!("{d} (--force: going ahead)");
        } else {
            eprintln!("{d}");
        }
    }
    (over.is_empty() || force).then_some(scenario)
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let tick = std::time::Duration::from_millis(cmksim_scenario::work::TICK_DEFAULT_MS);
    for file in &args.files {
        // As `run` without options: the event-driven engine.
        match load_within_limits(file, tick, false, args.force) {
            Some(s) => outln!(
                "{}: ok ({} steps, {} expectations)",
                file.display(),
                s.timeline.len(),
                s.expectations.len()
            ),
            None => ok = false,
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.tick_ms),
        "--tick-ms must be between 1 and 10000"
    );
    let tick = std::time::Duration::from_millis(args.tick_ms);
    // The engine: the event-driven one unless told otherwise; a run with the dashboard steps
    // turmoil's fixed ticks (its pause and levers hook into turmoil's step loop).
    let engine = args.engine.unwrap_or(cmksim_world::Engine::Events);
    let fixed_tick = !args.live && (engine == cmksim_world::Engine::Turmoil || args.web.is_some());
    let Some(mut scenario) = load_within_limits(&args.file, tick, fixed_tick, args.force) else {
        return Ok(ExitCode::from(2));
    };
    if let Some(name) = &args.profile {
        scenario.profile =
            cmksim_sim::Profile::builtin_with_overrides(name, scenario.profile_overrides.as_ref())?;
        scenario.meta.profile_name = name.clone();
    }
    if let Some(speed) = args.speed {
        anyhow::ensure!(
            speed.is_finite() && speed > 0.0,
            "--speed must be a positive number"
        );
    }
    // Opened now: a path that cannot be written fails before the run, not after it.
    let events_file = args
        .events
        .as_deref()
        .map(|path| OutputFile::open("--events", path))
        .transpose()?;
    let report_file = args
        .report
        .as_deref()
        .map(|path| OutputFile::open("--report", path))
        .transpose()?;
    let color = std::io::stdout().is_terminal();
    if !args.quiet {
        outln!("{}\n", scenario.meta.title);
        for line in scenario.meta.story.lines() {
            outln!("  {line}");
        }
        outln!();
    }

    let events = EventLog::default();
    let bar = ProgressBar::new(std::io::stderr().is_terminal());
    if !args.quiet {
        let options = NarrateOptions {
            color,
            verbose: args.verbose,
        };
        events.add_sink(live_narrator(options, bar.clone()));
    }
    let mut judged = scenario.clone();
    let mut live_line = None;
    let mut web = None;
    let (seed, steps, events) = if args.live {
        let options = cmksim_world::live::LiveOptions {
            seed: args.seed,
            endpoints: cmksim_world::driver::Endpoints {
                keyvault: args.keyvault.clone(),
                storage: args.storage.clone(),
                ingest: args.ingest.clone(),
            },
            network: match &args.tls_ca {
                Some(path) => cmksim_sim::net::Network::Tls(Arc::new(
                    cmksim_sim::net::TlsClient::trusting_file(path)?,
                )),
                None => cmksim_sim::net::Network::Tcp,
            },
            setup_budget: cmksim_world::RunOptions::default().setup_budget,
            admin: match &args.admin_credentials {
                Some(path) => match cmksim_identity::AdminCredentials::load(path) {
                    Ok(admin) => Some(admin),
                    Err(e) => {
                        eprintln!("cmksim run --live: {e}");
                        return Ok(ExitCode::from(2));
                    }
                },
                None => None,
            },
        };
        let live = match cmksim_world::live::run_live(&scenario, &options, &events) {
            Ok(live) => live,
            Err(e) => {
                eprintln!("cmksim run --live: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let tolerance = args.tolerance.unwrap_or_else(|| live.tolerance());
        judged = expect::widened(&scenario, tolerance);
        let restarts: Vec<String> = live
            .restarts_seen
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(service, n)| format!("{service} restarted {n}×"))
            .collect();
        live_line = Some(format!(
            "live at {}× against {} · judged with {} of tolerance{}",
            live.time_scale,
            args.keyvault,
            cmksim_sim::format_duration(tolerance),
            restarts
                .iter()
                .map(|r| format!(" · {r}"))
                .collect::<String>()
        ));
        (live.seed, 0, cmksim_world::live::in_time_order(&events))
    } else {
        let mut options = cmksim_world::RunOptions {
            seed: args.seed,
            speed: args.speed,
            tick,
            progress: bar.enabled.then(|| bar.callback()),
            engine,
            ..Default::default()
        };
        if let Some(listen) = args.web {
            let control = cmksim_world::control::Control::new(cmksim_world::control::Pace {
                paused: false,
                speed: args.speed.unwrap_or(cmksim_world::control::SPEED_MIN),
            });
            let (dashboard, url) = crate::web::start(listen, &scenario, &events, control.clone())?;
            outln!("dashboard: {url}\n");
            options.control = Some(control);
            web = Some((dashboard, url));
        }
        // The signals are taken over before the directory exists, so that Ctrl-C, SIGTERM
        // (`timeout`, `kill`) and SIGHUP at any moment of the run remove it.
        let cleanup = crate::cleanup::SignalCleanup::install()?;
        let root = cmksim_world::harness::simulation_dir()?;
        let registered = cleanup.guard(root.path());
        let result =
            cmksim_world::harness::run_simulated_in(&scenario, &options, &events, root.path());
        // Removed while still registered: a signal during the removal finishes it.
        let removed = root.close();
        // A signal's clean-up under way ends the process, and may have removed the directory
        // first: its outcome, not this removal's, is the run's.
        cleanup.hold_if_stopping();
        drop(registered);
        removed.context("removing the run directory")?;
        let result = match result {
            // A refusal while building the world names the line that declared the entity.
            Err(cmksim_world::harness::WorldError::Setup {
                line: Some(line),
                message,
            }) => {
                bar.clear();
                eprintln!(
                    "{}:{line}: the world's set-up was refused: {message}",
                    args.file.display()
                );
                return Ok(ExitCode::from(2));
            }
            other => other?,
        };
        bar.clear();
        (result.seed, result.steps, events)
    };

    let snapshot = events.snapshot();
    let expectations = expect::evaluate(&judged, &snapshot);
    let invariants = oracle::check_invariants(&judged, &snapshot);
    let end = snapshot
        .last()
        .map(|e| e.at())
        .unwrap_or(SimTime::DEFAULT_EPOCH);
    for verdict in expectations.iter().chain(invariants.iter()) {
        let family = if expectations.iter().any(|e| std::ptr::eq(e, verdict)) {
            "expectation"
        } else {
            "invariant"
        };
        let (kind, message, data) = verdict.to_event_parts(family);
        events.record_raw(end, "oracle", &kind, message, data);
    }
    // The bill of every whole simulated day (seeds 000, 001), derived from the run's events.
    let bills = cmksim_scenario::bill::bill_run(&judged, &snapshot);
    for day in &bills {
        let (kind, message, data) = cmksim_scenario::bill::day_event(day, &judged.profile.bill);
        events.record_raw(end, "bill", &kind, message, data);
    }
    let snapshot = events.snapshot();
    let counts = summary::Counts::from_events(&snapshot);
    outln!();
    out!(
        "{}",
        summary::render_summary(&expectations, &invariants, &counts, color)
    );
    out!(
        "{}",
        cmksim_scenario::bill::render_bill(&bills, &judged.profile.bill)
    );
    match live_line {
        Some(live) => outln!("seed {seed} · {live} · {} events", snapshot.len()),
        // A run that took no step (none is counted when the world failed to start).
        None if steps == 0 => outln!("seed {seed} · {} events", snapshot.len()),
        None => outln!(
            "seed {seed} · {steps} simulation steps · {} events",
            snapshot.len()
        ),
    }

    if let Some(file) = events_file {
        let path = file.write(cmksim_scenario::narrate::render_jsonl(&snapshot).as_bytes())?;
        outln!("events: {}", path.display());
    }
    if let Some(file) = report_file {
        let input = report::ReportInput::new(&scenario, &snapshot, &expectations, &invariants);
        let path = file.write(report::render_html(&input).as_bytes())?;
        outln!("report: {}", path.display());
    }
    if let Some((dashboard, url)) = web {
        dashboard.finish(&expectations, &invariants);
        outln!("dashboard: the run has ended; {url} stays up until Ctrl-C");
        // The signal handler of the run ends the process; until then the page stays.
        loop {
            std::thread::park();
        }
    }
    Ok(ExitCode::from(
        summary::exit_code(&expectations, &invariants) as u8,
    ))
}

/// An output file of `run` (`--events`, `--report`), opened before the run so that a path that
/// cannot be written (no such directory, no permission) is refused at once. Opened without
/// truncation: an existing file keeps its content until the run's output replaces it.
struct OutputFile {
    path: PathBuf,
    file: std::fs::File,
}

impl OutputFile {
    fn open(flag: &str, path: &Path) -> anyhow::Result<OutputFile> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("{flag} {}: cannot write there", path.display()))?;
        Ok(OutputFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Replaces the file's content with `contents`; returns its path.
    fn write(mut self, contents: &[u8]) -> anyhow::Result<PathBuf> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all(contents))
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self.path)
    }
}

/// A one-line progress bar on stderr (a terminal only), drawn once a run has lasted a second.
/// The wall clock here only decides whether to draw: it never reaches the simulation.
#[derive(Clone)]
struct ProgressBar {
    enabled: bool,
    started: std::time::Instant,
    drawn: Arc<std::sync::atomic::AtomicBool>,
}

impl ProgressBar {
    const WIDTH: usize = 30;

    fn new(enabled: bool) -> ProgressBar {
        ProgressBar {
            enabled,
            started: std::time::Instant::now(),
            drawn: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    fn callback(&self) -> cmksim_world::harness::ProgressFn {
        let bar = self.clone();
        Arc::new(move |at| bar.draw(at))
    }

    fn draw(&self, at: Option<(std::time::Duration, std::time::Duration)>) {
        if !self.enabled || self.started.elapsed() < std::time::Duration::from_secs(1) {
            return;
        }
        let line = match at {
            None => "building the world (provisioning, key update, links)…".to_string(),
            Some((done, total)) => {
                let fraction = (done.as_secs_f64() / total.as_secs_f64().max(1.0)).clamp(0.0, 1.0);
                let filled = (fraction * Self::WIDTH as f64).round() as usize;
                format!(
                    "[{}{}] {:>3.0}%  {} of {}",
                    "#".repeat(filled),
                    "-".repeat(Self::WIDTH - filled),
                    fraction * 100.0,
                    SimTime(0).add(done).offset_label(SimTime(0)),
                    cmksim_sim::format_duration(total)
                )
            }
        };
        eprint!("\r\x1b[2K{line}");
        self.drawn.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Removes the bar (before a narrated line, and at the end).
    fn clear(&self) {
        if self.drawn.swap(false, std::sync::atomic::Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}

/// A sink that prints each event as a narrated line. Events before T+0 (the world being built)
/// are held back and printed, relative to T+0, once the scenario starts.
fn live_narrator(options: NarrateOptions, bar: ProgressBar) -> cmksim_sim::event::EventSink {
    struct State {
        narrator: Option<Narrator>,
        held: Vec<cmksim_sim::Event>,
    }
    let state = Arc::new(Mutex::new(State {
        narrator: None,
        held: Vec::new(),
    }));
    Box::new(move |event| {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        if state.narrator.is_none() {
            if event.kind != "scenario.started" {
                // Bounded: world setup records a few hundred events at most.
                if state.held.len() < 10_000 {
                    state.held.push(event.clone());
                }
                return;
            }
            let mut narrator = Narrator::new(event.at(), options);
            bar.clear();
            for held in std::mem::take(&mut state.held) {
                if let Some(line) = narrator.line(&held) {
                    outln!("{line}");
                }
            }
            state.narrator = Some(narrator);
        }
        if let Some(line) = state.narrator.as_mut().and_then(|n| n.line(event)) {
            bar.clear();
            outln!("{line}");
        }
    })
}

/// The scenario library directory: `./scenarios` when run from the repository.
fn library_dir() -> PathBuf {
    PathBuf::from("scenarios")
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = library_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading the scenario library {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let path = e.path();
            if path.extension()? != "toml" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let Some(name) = args.name else {
        outln!("The scenario library ({}):", dir.display());
        for name in &names {
            let title = load(&dir.join(format!("{name}.toml")))
                .map(|s| s.meta.title)
                .unwrap_or_default();
            outln!("  {name:<32} {title}");
        }
        outln!("\nRun one with: cmksim demo NAME   (or cmksim run scenarios/NAME.toml)");
        return Ok(ExitCode::SUCCESS);
    };
    anyhow::ensure!(
        names.contains(&name),
        "no scenario named {name:?} in {}",
        dir.display()
    );
    use cmksim_world::control::{SPEED_MAX, SPEED_MIN};
    anyhow::ensure!(
        !args.web || (SPEED_MIN..=SPEED_MAX).contains(&args.speed),
        "--speed with --web must be between {SPEED_MIN} and {SPEED_MAX} (the dashboard's range)"
    );
    run(RunArgs {
        file: dir.join(format!("{name}.toml")),
        seed: None,
        profile: None,
        events: None,
        report: None,
        speed: Some(args.speed),
        verbose: false,
        quiet: false,
        tick_ms: 100,
        engine: None,
        live: false,
        tolerance: None,
        tls_ca: None,
        keyvault: DEFAULT_KEYVAULT_URL.into(),
        storage: DEFAULT_STORAGE_URL.into(),
        ingest: DEFAULT_INGEST_URL.into(),
        admin_credentials: None,
        force: false,
        web: args.web.then_some(args.listen),
    })
}
