//! The event-driven simulation engine: a run's cost follows its events, not simulated time.
//!
//! turmoil (the [`crate::harness`]'s other engine) steps every host every tick of simulated time
//! whether anything happens or not: 4 simulated hours are 144,000 steps of mostly idle hosts.
//! This engine runs the same services — their real tonic servers and clients — as tasks of one
//! current-thread tokio runtime whose clock is paused: when every task waits, tokio's
//! auto-advance moves the clock straight to the next timer, so an idle hour costs one jump.
//! The services talk over [`cmksim_sim::net::MemNet`], an in-memory network that applies the
//! scenario's network faults (partition, hold, crash, restart) and can give a link latency,
//! seeded jitter and loss ([`cmksim_sim::net::LinkQuality`]; no scenario step sets it yet).
//!
//! A crash is a crash: every connection with an end on it fails at once (so its in-flight
//! calls end and nobody reaches it), and the host's task is aborted where it stands, without the
//! graceful stop (storage does not save its stats, nothing is flushed on the way out). A server
//! future dropped mid-way aborts its own background tasks (key loops, control tick, poll task;
//! Key Vault's purge task ends when its stop channel goes). Its sled databases close with its
//! last task; a restart waits for the aborted task and [`STOP_YIELDS`] scheduler turns (in no
//! simulated time) for requests it was serving, then runs the host's start-up again on the same
//! directory, as after a process restart: what storage recovers is what it made durable.
//!
//! Durability: a host's flushes are deferred to its databases' close (a crash, or the run's
//! end), which writes out every completed write: a restarted host finds what it wrote before the
//! crash, as it did when every write was flushed in place, without a wait for sled's I/O threads
//! per write ([`cmksim_sim::durable`]).
//!
//! Determinism: one thread, one FIFO scheduler, no real I/O, no wall clock in the simulation
//! (pacing reads it only to slow a demo down): the same scenario and seed give the same event
//! log. Bounds: the run ends at the set-up budget + the scenario's duration + one hour of
//! simulated time, as with turmoil.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cmksim_scenario::Scenario;
use cmksim_sim::net::{ClientTimeouts, MemNet, Network};
use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

use crate::driver::{Driver, HarnessCommand};
use crate::harness::{RunOptions, RunResult, WorldError};

/// A host's software: started at the run's start and again on each restart.
type HostFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
/// The future given to a host's start resolves when the host must stop (a crash).
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;
type HostStart = Box<dyn Fn(Stop) -> HostFuture + Send + Sync>;

/// How often the progress callback is told how far the run is (simulated time).
const PROGRESS_EVERY: Duration = Duration::from_secs(200);

/// How often a paced run (`--speed`) matches its simulated time to the wall clock (simulated
/// time; the run sleeps at most [`PACE_SLEEP_MAX`] of wall time at each).
const PACE_EVERY: Duration = Duration::from_secs(1);
const PACE_SLEEP_MAX: Duration = Duration::from_millis(250);

/// Scheduler turns a crashed host's lingering request tasks get to end (in no simulated time)
/// before a restart reopens its databases.
pub const STOP_YIELDS: usize = 64;

/// One run of a host's software.
struct Incarnation {
    task: tokio::task::JoinHandle<()>,
    /// Dropping it tells the server to stop.
    stop: tokio::sync::oneshot::Sender<()>,
}

/// The hosts of one event-driven world: how each starts, which run, and the network.
pub struct Hosts {
    net: MemNet,
    starts: BTreeMap<&'static str, HostStart>,
    running: Mutex<BTreeMap<&'static str, Incarnation>>,
    /// Crashed hosts' last tasks, which a restart waits for (their databases close with them).
    stopping: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// The first host failure (a host's software returned an error), which ends the run.
    failure: Arc<Mutex<Option<String>>>,
    failed: Arc<tokio::sync::Notify>,
    /// The simulated time elapsed at T+0, once the world is built.
    started: Mutex<Option<Duration>>,
    origin: tokio::time::Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hosts {
    /// The network the hosts and the driver share (the driver applies network faults to it).
    pub fn net(&self) -> &MemNet {
        &self.net
    }

    fn start(&self, name: &str) {
        let Some((&name, start)) = self.starts.get_key_value(name) else {
            return;
        };
        let previous = lock(&self.stopping).remove(name);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let software = start(Box::pin(async move {
            // Sent or dropped: either way the host stops.
            let _ = stopped.await;
        }));
        let failure = self.failure.clone();
        let failed = self.failed.clone();
        let task = tokio::spawn(async move {
            if let Some(previous) = previous {
                // Aborted by the crash: a cancelled task is its expected end.
                let _ = previous.await;
                // Requests the crashed incarnation was serving end at their next turn (its
                // connections and outgoing calls fail at once) and release its databases;
                // they get STOP_YIELDS turns, in no simulated time, before the reopen.
                for _ in 0..STOP_YIELDS {
                    tokio::task::yield_now().await;
                }
            }
            if let Err(e) = software.await {
                lock(&failure).get_or_insert(format!("host {name}: {e}"));
                failed.notify_one();
            }
        });
        lock(&self.running).insert(name, Incarnation { task, stop });
    }

    /// Crashes `host`: its connections fail and its software is aborted where it stands — no
    /// graceful stop, no save (a server dropped mid-way aborts its own background tasks).
    pub fn crash(&self, host: &str) {
        self.net.crash(host);
        let Some(incarnation) = lock(&self.running).remove(host) else {
            return;
        };
        // Aborted before its stop signal goes, so the task is dropped, never polled again.
        incarnation.task.abort();
        drop(incarnation.stop);
        lock(&self.stopping).insert(host.to_string(), incarnation.task);
    }

    /// Restarts `host` on its directory (crashing it first if it runs, as turmoil's bounce).
    pub fn restart(&self, host: &str) {
        if lock(&self.running).contains_key(host) {
            self.crash(host);
        }
        self.net.restart(host);
        self.start(host);
    }

    /// Applies a command of the driver's.
    pub(crate) fn command(&self, command: HarnessCommand) {
        match command {
            HarnessCommand::Crash(host) => self.crash(&host),
            HarnessCommand::Restart(host) => self.restart(&host),
            HarnessCommand::Started => *lock(&self.started) = Some(self.origin.elapsed()),
        }
    }
}

/// Runs `scenario` on the event-driven engine (see the module documentation); the services'
/// data directories go under `root`.
pub(crate) fn run(
    scenario: &Scenario,
    options: &RunOptions,
    events: &EventLog,
    root: &Path,
) -> Result<RunResult, WorldError> {
    let seed = options.seed.unwrap_or(scenario.meta.seed);
    let seeds = SeedTree::new(seed);
    let epoch = SimTime::DEFAULT_EPOCH;
    let total = options.setup_budget + scenario.meta.duration + Duration::from_secs(3600);
    // Every host runs on this thread: their flushes wait for the databases' close, which a crash
    // and the run's end bring (cmksim_sim::durable: nothing a run observes changes).
    let deferred = (!options.flush_in_place).then(cmksim_sim::durable::defer_on_this_thread);
    // The engine's steps: each time every task waits, the runtime parks and the paused clock
    // jumps to the next timer; one park is one step (turmoil's counterpart is its fixed tick).
    let steps = Arc::new(AtomicU64::new(0));
    let parks = steps.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .on_thread_park(move || {
            parks.fetch_add(1, Ordering::Relaxed);
        })
        .build()?;
    // Link jitter and loss draw from their own stream (nothing is drawn on perfect links).
    let net = MemNet::seeded(seeds.stream_seed("net/links"));
    let result = runtime.block_on(async {
        let clock = Clock::tokio(epoch, 1.0);
        // Tokens: storage, ingest and Sentinel check them; the driver provisions every principal.
        let auth = crate::auth::WorldAuth::new();
        let key_material_seed = crate::harness::key_material(scenario, options);
        let starts = host_starts(
            scenario,
            events,
            &clock,
            HostSeeds {
                run: seeds,
                key_material: key_material_seed,
            },
            &net,
            root,
            &auth,
        );
        let hosts = Arc::new(Hosts {
            net: net.clone(),
            starts,
            running: Mutex::default(),
            stopping: Mutex::default(),
            failure: Arc::default(),
            failed: Arc::default(),
            started: Mutex::default(),
            origin: tokio::time::Instant::now(),
        });
        for name in ["keyvault", "storage", "ingest", "sentinel"] {
            hosts.start(name);
        }
        if let Some(progress) = options.progress.clone() {
            let hosts = hosts.clone();
            let duration = scenario.meta.duration;
            // Bounded by the run: the task ends with the runtime.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    let started = *lock(&hosts.started);
                    progress(
                        started.map(|at| (hosts.origin.elapsed().saturating_sub(at), duration)),
                    );
                }
            });
        }
        if let Some(speed) = options.speed {
            tokio::spawn(pace(hosts.clone(), speed));
        }
        let driver = Driver::new(
            Arc::new(scenario.clone()),
            events.clone(),
            clock.clone(),
            crate::driver::Faults::Events(hosts.clone()),
            Network::Memory(net.host("driver")),
            &crate::driver::Endpoints::simulated(),
            seeds,
        )
        .map_err(|e| WorldError::Simulation(e.to_string()))?
        .with_auth(auth);
        let driven = async {
            driver.run().await.map_err(|e| WorldError::Setup {
                line: e.line,
                message: e.to_string(),
            })
        };
        tokio::select! {
            biased;
            () = hosts.failed.notified() => {
                let failure = lock(&hosts.failure).take().unwrap_or_default();
                Err(WorldError::Simulation(failure))
            }
            driven = tokio::time::timeout(total, driven) => match driven {
                Ok(result) => result,
                Err(_) => Err(WorldError::Simulation(format!(
                    "Ran for duration: {total:?} without completing"
                ))),
            },
        }
    });
    // Every host's task (and with it its databases) goes with the runtime, before the caller
    // removes the directories.
    drop(runtime);
    result.map(|()| RunResult {
        seed,
        steps: steps.load(Ordering::Relaxed),
        flushes_deferred: deferred.as_ref().map_or(0, |d| d.count()),
        grpc_calls: Some(net.requests_sent()),
    })
}

/// Matches simulated time to the wall clock at `speed` simulated seconds per wall second, from
/// T+0 on. The wall clock only slows the run down; the simulation never reads it.
async fn pace(hosts: Arc<Hosts>, speed: f64) {
    let mut origin: Option<(std::time::Instant, Duration)> = None;
    // Bounded by the run: the task ends with the runtime.
    loop {
        tokio::time::sleep(PACE_EVERY).await;
        let Some(started) = *lock(&hosts.started) else {
            continue;
        };
        let (wall_start, sim_start) =
            *origin.get_or_insert_with(|| (std::time::Instant::now(), started));
        let simulated = hosts.origin.elapsed().saturating_sub(sim_start);
        let due = Duration::from_secs_f64(simulated.as_secs_f64() / speed);
        if let Some(wait) = due.checked_sub(wall_start.elapsed()) {
            std::thread::sleep(wait.min(PACE_SLEEP_MAX));
        }
    }
}

const KEYVAULT_PORT: u16 = 50051;
const STORAGE_PORT: u16 = 50052;
const INGEST_PORT: u16 = 50053;
const SENTINEL_PORT: u16 = 50054;

/// The seeds the hosts draw from: the run's tree, and the root of Key Vault's key material
/// (`RunOptions::key_material_seed`).
struct HostSeeds {
    run: SeedTree,
    key_material: u64,
}

/// How each service host starts (and restarts) in the event-driven world: the same servers,
/// settings and token checks as the turmoil hosts ([`crate::harness`]), over the in-memory
/// network.
fn host_starts(
    scenario: &Scenario,
    events: &EventLog,
    clock: &Clock,
    seeds: HostSeeds,
    net: &MemNet,
    root: &Path,
    auth: &crate::auth::WorldAuth,
) -> BTreeMap<&'static str, HostStart> {
    let HostSeeds {
        run: seeds,
        key_material: key_material_seed,
    } = seeds;
    let mut starts: BTreeMap<&'static str, HostStart> = BTreeMap::new();
    let identity = crate::driver::KEYVAULT_URI;
    let text = |e: cmksim_sim::net::EndpointError| e.to_string();

    let kv_dir: PathBuf = root.join("keyvault");
    let (kv_events, kv_clock, kv_net) = (events.clone(), clock.clone(), net.clone());
    let kv_auth = auth.clone();
    starts.insert(
        "keyvault",
        Box::new(move |stop: Stop| {
            let incoming = kv_net.listen("keyvault", KEYVAULT_PORT);
            let (dir, events, clock) = (kv_dir.clone(), kv_events.clone(), kv_clock.clone());
            let auth = kv_auth.clone();
            Box::pin(async move {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                let config = cmksim_keyvault::KeyVaultConfig {
                    os_key_material: false,
                    without_hsm: false,
                    key_material_seed: Some(key_material_seed),
                };
                let server =
                    cmksim_keyvault::KeyVaultServer::open(&dir, clock, seeds, events, config)
                        .map_err(|e| e.to_string())?;
                auth.set_admin(&server);
                server
                    .serve_with_incoming(incoming, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );

    let storage_dir: PathBuf = root.join("storage");
    let (st_events, st_clock, st_net) = (events.clone(), clock.clone(), net.clone());
    let (st_profile, st_auth) = (scenario.profile.clone(), auth.clone());
    starts.insert(
        "storage",
        Box::new(move |stop: Stop| {
            let incoming = st_net.listen("storage", STORAGE_PORT);
            let network = Network::Memory(st_net.host("storage"));
            let guard = st_auth.guard(&network, identity, st_clock.clone());
            let config = cmksim_storage::server::StorageConfig {
                data_dir: storage_dir.clone(),
                clock: st_clock.clone(),
                seeds,
                events: st_events.clone(),
                profile: st_profile.clone(),
                network,
                keyvault_uri: crate::driver::KEYVAULT_URI.to_string(),
                identity_uri: crate::driver::KEYVAULT_URI.to_string(),
                os_key_material: false,
                client_timeouts: ClientTimeouts::default(),
                principal: st_auth.storage.clone(),
            };
            Box::pin(async move {
                std::fs::create_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
                let server = cmksim_storage::server::StorageServer::open(config)
                    .map_err(|e| e.to_string())?
                    .with_guard(guard.map_err(text)?);
                server
                    .serve_with_incoming(incoming, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );

    let (in_events, in_clock, in_net) = (events.clone(), clock.clone(), net.clone());
    let (in_profile, in_auth) = (scenario.profile.clone(), auth.clone());
    starts.insert(
        "ingest",
        Box::new(move |stop: Stop| {
            let incoming = in_net.listen("ingest", INGEST_PORT);
            let network = Network::Memory(in_net.host("ingest"));
            let (events, clock, profile) =
                (in_events.clone(), in_clock.clone(), in_profile.clone());
            let tokens = in_auth.ingest_tokens(&network, identity, clock.clone());
            let guard = in_auth.guard(&network, identity, clock.clone());
            Box::pin(async move {
                let channel = network
                    .channel(crate::driver::STORAGE_URI, ClientTimeouts::default())
                    .map_err(text)?;
                let backend = Arc::new(cmksim_ingest::backend::grpc::GrpcStorage::with_tokens(
                    channel,
                    tokens.map_err(text)?,
                ));
                let server =
                    cmksim_ingest::IngestServer::with_backend(clock, events, profile, backend)
                        .with_guard(guard.map_err(text)?);
                server
                    .serve_with_incoming(incoming, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );

    let sentinel_dir: PathBuf = root.join("sentinel");
    let (se_events, se_clock, se_net) = (events.clone(), clock.clone(), net.clone());
    let (se_profile, se_auth) = (scenario.profile.clone(), auth.clone());
    starts.insert(
        "sentinel",
        Box::new(move |stop: Stop| {
            let incoming = se_net.listen("sentinel", SENTINEL_PORT);
            let network = Network::Memory(se_net.host("sentinel"));
            let tokens = se_auth.sentinel_tokens(&network, identity, se_clock.clone());
            let guard = se_auth.guard(&network, identity, se_clock.clone());
            let mut config = cmksim_sentinel::SentinelConfig::new(
                sentinel_dir.clone(),
                se_clock.clone(),
                seeds,
                se_events.clone(),
                se_profile.clone(),
                network,
                crate::driver::KEYVAULT_URI,
                crate::driver::STORAGE_URI,
            );
            Box::pin(async move {
                config.guard = Some(guard.map_err(text)?);
                config.storage_tokens = Some(tokens.map_err(text)?);
                let server =
                    cmksim_sentinel::SentinelServer::open(config).map_err(|e| e.to_string())?;
                server
                    .serve_with_incoming(incoming, stop)
                    .await
                    .map_err(|e| e.to_string())
            })
        }),
    );
    starts
}
