//! The turmoil simulation that hosts the services and the driver.
//!
//! Each service is a turmoil host whose state lives in its own directory of a temporary
//! directory, so that a crash (the host's runtime dropped mid-flight) and a restart (the host
//! started again on the same directory) keep exactly what sled made durable. The harness steps
//! the simulation itself rather than calling `run`, so that between two steps it can apply the
//! crash and restart requests the driver queued: those need the `Sim`, which a host cannot reach.
//!
//! Time: every host's [`Clock`] is `Clock::turmoil(epoch)`, one simulated timeline for all,
//! unaffected by restarts. The tick is the simulation's resolution; polls (6–60 s) and agents
//! (minutes) are far coarser than it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_scenario::Scenario;
use cmksim_sim::net::{turmoil_incoming, ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

use crate::driver::{Driver, HarnessCommand, HarnessCommands};

/// Told how far the run is: simulated time since T+0 and the scenario's duration (`None` while
/// the world is still being built).
pub type ProgressFn = Arc<dyn Fn(Option<(Duration, Duration)>) + Send + Sync>;

/// How often (in simulation steps) the progress callback is called.
const PROGRESS_EVERY_STEPS: u64 = 2_000;

/// How a simulated run is set up.
#[derive(Clone)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Simulation resolution.
    pub tick: Duration,
    /// Time allowed to build the world before T+0 (provisioning takes hours).
    pub setup_budget: Duration,
    /// Play at this many simulated seconds per real second (demos); `None`: as fast as possible.
    pub speed: Option<f64>,
    /// Called every few thousand steps with the run's progress (a progress bar).
    pub progress: Option<ProgressFn>,
    /// The live dashboard's hold on the run: its pace (replacing `speed` from T+0) and its
    /// levers. `None`: the run is exactly what it is without a dashboard.
    pub control: Option<crate::control::Control>,
    /// Which simulation engine runs the world.
    pub engine: Engine,
    /// Flush every acknowledged write in place, as live services do, instead of deferring the
    /// flushes to the databases' close ([`cmksim_sim::durable`]): the same run, slower; for the
    /// test that shows the deferral changes no event.
    pub flush_in_place: bool,
    /// The root seed of Key Vault's key material (`KeyVaultConfig::key_material_seed`); `None`:
    /// the scenario file's own seed, whatever `seed` says. A chaos sweep passes the swept
    /// scenario's seed, so that all its seeds run over the same keys and the RSA keys are
    /// generated once for the process, not once a seed (key material reaches no output).
    pub key_material_seed: Option<u64>,
}

/// The simulation engines (`--engine`). Both run the same services, driver and faults; they
/// differ in how simulated time passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// [`crate::engine`]: one paused tokio runtime that jumps to the next timer when every
    /// host is idle, over the in-memory network; cost follows events. A run with the live
    /// dashboard (`control`) uses turmoil, whose step loop the dashboard's pause and levers
    /// hook into. The same verdicts as turmoil on every library scenario, 4x faster on the
    /// revocation scenario (README, Benchmarks); the default of `cmksim run`, `chaos` and
    /// `bench sim`.
    Events,
    /// turmoil 0.7: every host stepped every `tick` of simulated time: `run --engine turmoil`,
    /// and every run with the dashboard. The default of [`RunOptions`] (the library's own
    /// callers choose per run; the dashboard's test compares a run with a control to one
    /// without, which must be the same engine).
    #[default]
    Turmoil,
}

impl Engine {
    /// The engine named `events` or `turmoil`.
    pub fn parse(name: &str) -> Result<Engine, String> {
        match name {
            "events" => Ok(Engine::Events),
            "turmoil" => Ok(Engine::Turmoil),
            other => Err(format!(
                "unknown engine {}: expected events or turmoil",
                cmksim_sim::text::echo(other)
            )),
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("seed", &self.seed)
            .field("tick", &self.tick)
            .field("setup_budget", &self.setup_budget)
            .field("speed", &self.speed)
            .field("progress", &self.progress.is_some())
            .field("control", &self.control.is_some())
            .field("engine", &self.engine)
            .field("flush_in_place", &self.flush_in_place)
            .finish()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            tick: Duration::from_millis(100),
            setup_budget: Duration::from_secs(12 * 3600),
            speed: None,
            progress: None,
            control: None,
            engine: Engine::default(),
            flush_in_place: false,
            key_material_seed: None,
        }
    }
}

/// What a run produced (the events are in the caller's log).
#[derive(Debug)]
pub struct RunResult {
    /// The seed actually used.
    pub seed: u64,
    /// Simulation steps taken (a measure of work, for `bench sim` and `run`'s summary):
    /// turmoil's ticks; on the event-driven engine, the times every task waited and the paused
    /// clock jumped to the next timer.
    pub steps: u64,
    /// The services' flushes deferred to their databases' close ([`cmksim_sim::durable`]; 0
    /// with [`RunOptions::flush_in_place`]).
    pub flushes_deferred: u64,
    /// The gRPC calls the run's hosts made to each other, driver included (the event-driven
    /// engine counts them on its network: [`cmksim_sim::net::MemNet::requests_sent`]; turmoil's
    /// network does not count, so `None` there).
    pub grpc_calls: Option<u64>,
}

/// Why a run could not complete.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("temporary directory: {0}")]
    TempDir(#[from] std::io::Error),
    #[error("simulation: {0}")]
    Simulation(String),
    /// A service refused a call that builds the scenario's world; `line` is the scenario line
    /// that declared the entity, when the refusal was about one.
    #[error("world setup failed: {message}")]
    Setup {
        line: Option<usize>,
        message: String,
    },
}

const KEYVAULT_PORT: u16 = 50051;
const STORAGE_PORT: u16 = 50052;
const INGEST_PORT: u16 = 50053;
const SENTINEL_PORT: u16 = 50054;

/// The environment variable naming the directory in which a run's data directory is created
/// (`cmksim-sim-XXXXXX`, removed when the run ends, or on Ctrl-C or SIGTERM during `cmksim
/// run`). When unset or empty: `/dev/shm` when the machine has it, else the system's temporary
/// directory (`TMPDIR`).
pub const TMPDIR_ENV: &str = "CMKSIM_TMPDIR";

/// The root seed of the run's key material: the options' or else the scenario's own seed, not
/// the run's (`KeyVaultConfig::key_material_seed`). When the scenario's first key is a software
/// RSA key, its search starts now, on another thread
/// ([`cmksim_keyvault::prepare_first_rsa_key`]), so that it overlaps the world's set-up instead
/// of following it; the key is the same either way.
pub(crate) fn key_material(scenario: &Scenario, options: &RunOptions) -> u64 {
    let seed = options.key_material_seed.unwrap_or(scenario.meta.seed);
    if let Some(first) = scenario.world.keys.first() {
        if first.kty == cmksim_scenario::model::KeyType::Rsa {
            cmksim_keyvault::prepare_first_rsa_key(seed, first.size);
        }
    }
    seed
}

/// Creates the services' data directories' parent for one run: in `$CMKSIM_TMPDIR` when set,
/// else on tmpfs (`/dev/shm`) when the machine has it: the directories die with the run anyway,
/// and what a database writes out when it closes (a simulated crash keeps every write made
/// before it: [`cmksim_sim::durable`]) no longer waits for a disk. The directory is removed when the returned guard is dropped (not when the process is killed by a
/// signal: `cmksim run` removes it itself then).
pub fn simulation_dir() -> std::io::Result<tempfile::TempDir> {
    let builder = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("cmksim-sim-");
        builder
    };
    if let Some(base) = std::env::var_os(TMPDIR_ENV).filter(|v| !v.is_empty()) {
        // Asked for explicitly: no fallback, a failure names the directory.
        return builder.tempdir_in(&base).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create a run directory in {TMPDIR_ENV}={}: {e}",
                    std::path::Path::new(&base).display()
                ),
            )
        });
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return Ok(dir);
        }
    }
    builder.tempdir()
}

/// Runs a validated scenario in simulated time, recording every event into `events`; the
/// services' data live in a fresh [`simulation_dir`], removed at the end.
pub fn run_simulated(
    scenario: &Scenario,
    options: &RunOptions,
    events: &EventLog,
) -> Result<RunResult, WorldError> {
    let root = simulation_dir()?;
    run_simulated_in(scenario, options, events, root.path())
}

/// [`run_simulated`] with the services' data directories under `root` (which the caller
/// created and removes: `cmksim run` knows it, to remove it on a signal).
pub fn run_simulated_in(
    scenario: &Scenario,
    options: &RunOptions,
    events: &EventLog,
    root: &std::path::Path,
) -> Result<RunResult, WorldError> {
    if options.engine == Engine::Events && options.control.is_none() {
        return crate::engine::run(scenario, options, events, root);
    }
    // Link quality lives on the event-driven engine's network only: refused before anything
    // runs, naming the steps, rather than a run whose faults half apply.
    let links = crate::driver::link_faults(scenario);
    if !links.is_empty() {
        let steps: Vec<String> = links
            .iter()
            .map(|(line, label, fault)| format!("line {line}: step {label}: {fault}"))
            .collect();
        return Err(WorldError::Simulation(format!(
            "link faults need the event-driven engine (--engine events, no --web): {}",
            steps.join("; ")
        )));
    }
    let seed = options.seed.unwrap_or(scenario.meta.seed);
    let seeds = SeedTree::new(seed);
    let epoch = SimTime::DEFAULT_EPOCH;
    // Every host runs on this thread (turmoil's): flushes wait for the databases' close, which
    // a crash (the host's runtime dropped) and the run's end bring (cmksim_sim::durable).
    let deferred = (!options.flush_in_place).then(cmksim_sim::durable::defer_on_this_thread);
    let commands: HarnessCommands = Arc::new(Mutex::new(Vec::new()));
    // Tokens: storage, ingest and Sentinel check them; the driver provisions every principal.
    let auth = crate::auth::WorldAuth::new();
    let boxed = |e: cmksim_sim::net::EndpointError| Box::new(e) as Box<dyn std::error::Error>;

    let total = options.setup_budget + scenario.meta.duration + Duration::from_secs(3600);
    let mut sim = turmoil::Builder::new()
        .simulation_duration(total)
        .tick_duration(options.tick)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .rng_seed(seed)
        .build();

    let kv_dir: PathBuf = root.join("keyvault");
    let key_material_seed = key_material(scenario, options);
    {
        let events = events.clone();
        let auth = auth.clone();
        sim.host("keyvault", move || {
            let dir = kv_dir.clone();
            let events = events.clone();
            let auth = auth.clone();
            async move {
                std::fs::create_dir_all(&dir)?;
                let config = cmksim_keyvault::KeyVaultConfig {
                    os_key_material: false,
                    without_hsm: false,
                    key_material_seed: Some(key_material_seed),
                };
                let server = cmksim_keyvault::KeyVaultServer::open(
                    &dir,
                    Clock::turmoil(epoch),
                    seeds,
                    events,
                    config,
                )
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                auth.set_admin(&server);
                server
                    .serve_with_incoming(
                        turmoil_incoming(KEYVAULT_PORT),
                        std::future::pending::<()>(),
                    )
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                Ok(())
            }
        });
    }

    let storage_dir: PathBuf = root.join("storage");
    {
        let events = events.clone();
        let profile = scenario.profile.clone();
        let auth = auth.clone();
        sim.host("storage", move || {
            let guard = auth.guard(
                &Network::Turmoil,
                crate::driver::KEYVAULT_URI,
                Clock::turmoil(epoch),
            );
            let config = cmksim_storage::server::StorageConfig {
                data_dir: storage_dir.clone(),
                clock: Clock::turmoil(epoch),
                seeds,
                events: events.clone(),
                profile: profile.clone(),
                network: Network::Turmoil,
                keyvault_uri: crate::driver::KEYVAULT_URI.to_string(),
                identity_uri: crate::driver::KEYVAULT_URI.to_string(),
                os_key_material: false,
                client_timeouts: ClientTimeouts::default(),
                principal: auth.storage.clone(),
            };
            async move {
                std::fs::create_dir_all(&config.data_dir)?;
                let server = cmksim_storage::server::StorageServer::open(config)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?
                    .with_guard(guard.map_err(boxed)?);
                server
                    .serve_with_incoming(
                        turmoil_incoming(STORAGE_PORT),
                        std::future::pending::<()>(),
                    )
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                Ok(())
            }
        });
    }

    {
        let events = events.clone();
        let profile = scenario.profile.clone();
        let auth = auth.clone();
        sim.host("ingest", move || {
            let events = events.clone();
            let profile = profile.clone();
            let auth = auth.clone();
            async move {
                let (identity, clock) = (crate::driver::KEYVAULT_URI, Clock::turmoil(epoch));
                let tokens = auth.ingest_tokens(&Network::Turmoil, identity, clock.clone());
                let guard = auth
                    .guard(&Network::Turmoil, identity, clock)
                    .map_err(boxed)?;
                let channel = Network::Turmoil
                    .channel(crate::driver::STORAGE_URI, ClientTimeouts::default())
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                let backend = Arc::new(cmksim_ingest::backend::grpc::GrpcStorage::with_tokens(
                    channel,
                    tokens.map_err(boxed)?,
                ));
                let server = cmksim_ingest::IngestServer::with_backend(
                    Clock::turmoil(epoch),
                    events,
                    profile,
                    backend,
                )
                .with_guard(guard);
                server
                    .serve_with_incoming(
                        turmoil_incoming(INGEST_PORT),
                        std::future::pending::<()>(),
                    )
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                Ok(())
            }
        });
    }

    let sentinel_dir: PathBuf = root.join("sentinel");
    {
        let events = events.clone();
        let profile = scenario.profile.clone();
        let auth = auth.clone();
        sim.host("sentinel", move || {
            let (identity, clock) = (crate::driver::KEYVAULT_URI, Clock::turmoil(epoch));
            let tokens = auth.sentinel_tokens(&Network::Turmoil, identity, clock.clone());
            let guard = auth.guard(&Network::Turmoil, identity, clock);
            let mut config = cmksim_sentinel::SentinelConfig::new(
                sentinel_dir.clone(),
                Clock::turmoil(epoch),
                seeds,
                events.clone(),
                profile.clone(),
                Network::Turmoil,
                crate::driver::KEYVAULT_URI,
                crate::driver::STORAGE_URI,
            );
            async move {
                config.guard = Some(guard.map_err(boxed)?);
                config.storage_tokens = Some(tokens.map_err(boxed)?);
                let server = cmksim_sentinel::SentinelServer::open(config)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                server
                    .serve_with_incoming(
                        turmoil_incoming(SENTINEL_PORT),
                        std::future::pending::<()>(),
                    )
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
                Ok(())
            }
        });
    }

    // The driver's set-up refusal, kept typed beside turmoil's stringly client error.
    let setup_failure: Arc<Mutex<Option<WorldError>>> = Arc::default();
    let driver_failure = setup_failure.clone();
    let driver_scenario = Arc::new(scenario.clone());
    let driver_events = events.clone();
    let driver_commands = commands.clone();
    let levers = options
        .control
        .as_ref()
        .and_then(|control| control.take_receiver());
    sim.client("driver", async move {
        let mut driver = Driver::new(
            driver_scenario,
            driver_events,
            Clock::turmoil(epoch),
            crate::driver::Faults::Simulated(driver_commands),
            Network::Turmoil,
            &crate::driver::Endpoints::simulated(),
            seeds,
        )
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        driver = driver.with_auth(auth);
        if let Some(queue) = levers {
            driver = driver.with_levers(queue);
        }
        driver.run().await.map_err(|e| {
            let message = e.to_string();
            *driver_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(WorldError::Setup {
                line: e.line,
                message: message.clone(),
            });
            format!("world setup failed: {message}")
        })?;
        Ok(())
    });

    let mut steps: u64 = 0;
    // Pacing reads the wall clock only to slow the presentation down; it never feeds the
    // simulation, which sees turmoil's virtual time alone.
    let mut paced_from: Option<(std::time::Instant, Duration)> = None;
    // The dashboard's speed, once the run is paced by it.
    let mut paced_speed: Option<f64> = None;
    loop {
        let done = sim.step().map_err(|e| {
            match setup_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                Some(setup) => setup,
                None => WorldError::Simulation(e.to_string()),
            }
        })?;
        steps += 1;
        let pending: Vec<HarnessCommand> =
            std::mem::take(&mut *commands.lock().unwrap_or_else(|p| p.into_inner()));
        for command in pending {
            match command {
                HarnessCommand::Crash(host) => sim.crash(host),
                HarnessCommand::Restart(host) => sim.bounce(host),
                HarnessCommand::Started => {
                    paced_from = Some((std::time::Instant::now(), sim.elapsed()))
                }
            }
        }
        if done {
            break;
        }
        if let Some(progress) = &options.progress {
            if steps.is_multiple_of(PROGRESS_EVERY_STEPS) {
                let at = paced_from.map(|(_, sim_start)| {
                    (
                        sim.elapsed().saturating_sub(sim_start),
                        scenario.meta.duration,
                    )
                });
                progress(at);
            }
        }
        if let Some(control) = &options.control {
            control.publish_now(epoch.add(sim.elapsed()).unix_ms());
            if paced_from.is_some() {
                paced_from = Some(follow_pace(control, paced_from, &mut paced_speed, &sim));
                // The pages watching the run: not more than a simulated minute ahead of the
                // slowest (crate::pacer; bounded wait).
                control.hold_for_pages(epoch.add(sim.elapsed()).unix_ms());
            }
        }
        let speed = paced_speed.or(options.speed);
        if let (Some(speed), Some((wall_start, sim_start))) = (speed, paced_from) {
            let simulated = sim.elapsed().saturating_sub(sim_start);
            let due = Duration::from_secs_f64(simulated.as_secs_f64() / speed);
            if let Some(wait) = due.checked_sub(wall_start.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(250)));
            }
        }
    }
    Ok(RunResult {
        seed,
        steps,
        flushes_deferred: deferred.as_ref().map_or(0, |d| d.count()),
        grpc_calls: None,
    })
}

/// How long a paused run sleeps between two looks at its pace (wall time).
const PAUSED_POLL: Duration = Duration::from_millis(50);

/// Applies the dashboard's pace between two steps: while paused, waits (the simulation does not
/// step, so simulated time stands still); on resuming or on a new speed, restarts the pacing
/// from this moment so that the run neither races to catch up nor lags. Returns the pacing
/// origin (wall instant, simulated elapsed).
fn follow_pace(
    control: &crate::control::Control,
    paced_from: Option<(std::time::Instant, Duration)>,
    paced_speed: &mut Option<f64>,
    sim: &turmoil::Sim<'_>,
) -> (std::time::Instant, Duration) {
    let mut pace = control.pace();
    let mut rebase = *paced_speed != Some(pace.speed);
    // Unbounded on purpose: a paused demo waits for its teacher; each look costs one sleep.
    while pace.paused {
        rebase = true;
        std::thread::sleep(PAUSED_POLL);
        pace = control.pace();
    }
    *paced_speed = Some(pace.speed);
    match paced_from {
        Some(origin) if !rebase => origin,
        _ => (std::time::Instant::now(), sim.elapsed()),
    }
}
