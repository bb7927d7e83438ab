//! A scenario played against live services: separate processes, on the wall clock scaled.
//!
//! The same [`Driver`] as in simulated time builds the world and walks the timeline, over real
//! TCP to the URLs it is given, on a [`Clock::wall`] that agrees with the services' own: the run
//! first asks each service for its clock (`events.v1.Events/GetClock`) and refuses to start if
//! they disagree on the epoch or the time scale, or if a URL answers as the wrong service.
//! Each service's events are followed into the run's log as they happen, so the narration is
//! live; when the scenario ends the run waits (bounded) for the followers to catch up.
//!
//! What cannot be done live is refused before anything is created: faults that need the
//! simulated network (partition, hold, crash, restart). Kill the processes or cut the network
//! yourself for those; the run will see the consequences in the events.
//!
//! A failed world set-up is not rolled back, and a later run does not adopt what an earlier one
//! left: a cluster key's vault must have purge protection, and such a vault keeps its name
//! (globally unique) until its retention ends, so a rollback could never free every name; and
//! the earlier run's operator principals, whose secrets only that run knew, own what it created.
//! Instead the error says so and names what this run left on the services (read off the
//! services' own `*.created` events in the run's log), so that the next run's
//! `409 …AlreadyExists` is expected and the way out is plain: restart the services on empty
//! data directories, or rename the entities in the scenario.
//!
//! Nothing here is deterministic: the services run on real threads and the wall clock. The
//! oracle judges by simulated time, so [`in_time_order`] puts the merged log in time order
//! before it does.

use std::sync::Arc;
use std::time::Duration;

use cmksim_events::Follower;
use cmksim_proto::events::v1 as evp;
use cmksim_scenario::Scenario;
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, Event, EventLog, SeedTree, SimTime};

use crate::driver::{network_faults, Driver, Endpoints, Faults};

/// What a live run was.
#[derive(Clone, Debug)]
pub struct LiveRun {
    /// The seed actually used.
    pub seed: u64,
    /// The services' time scale (simulated seconds per real second).
    pub time_scale: f64,
    /// Per service, how many times the run saw it restart (a new process behind its URL).
    pub restarts_seen: Vec<(&'static str, u32)>,
}

impl LiveRun {
    /// Real latency this large is forgiven when judging (see [`LiveRun::tolerance`]).
    pub const REAL_LATENCY_FORGIVEN: Duration = Duration::from_millis(50);

    /// The slack a live run is judged with by default: 50 ms of real time in simulated time
    /// (30 s at 600×), at least 1 s. See `cmksim_scenario::expect::widened` for why.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs_f64(Self::REAL_LATENCY_FORGIVEN.as_secs_f64() * self.time_scale)
            .max(Duration::from_secs(1))
    }
}

/// How a live run is set up.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Overrides the scenario's seed (agents' records, the driver's choices).
    pub seed: Option<u64>,
    pub endpoints: Endpoints,
    pub network: Network,
    /// Simulated time allowed to build the world before T+0.
    pub setup_budget: Duration,
    /// The identity authority's bootstrap administrator (the file `cmksim serve` wrote): the
    /// driver makes the world's principals and role assignments with its token.
    pub admin: Option<cmksim_identity::AdminCredentials>,
}

/// Why a live run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("a live run makes the world's principals through the identity service, which needs its administrator's token: give --admin-credentials FILE (CMKSIM_ADMIN_CREDENTIALS), the identity-admin.json `cmksim serve` wrote in Key Vault's data directory (DATA_DIR/keyvault/identity/ for serve all)")]
    NoAdministrator,
    #[error("the scenario needs the simulated network, which live mode does not have:\n{0}\nrun it without --live, or apply these faults to the processes yourself")]
    NeedsSimulation(String),
    #[error("{service} at {url}: {reason}")]
    Unreachable {
        service: &'static str,
        url: String,
        reason: String,
    },
    #[error("{url} was given as the {expected} but answers as {actual:?}")]
    WrongService {
        expected: &'static str,
        url: String,
        actual: String,
    },
    #[error("the services disagree on the clock ({0}); start them with the same --epoch and --time-scale")]
    ClockMismatch(String),
    #[error("the {service} runs profile {actual:?} but the scenario uses {expected:?}; start the services with --profile {expected}, or run with --profile {actual}")]
    ProfileMismatch {
        service: &'static str,
        actual: String,
        expected: String,
    },
    #[error("{0} does not run on the wall clock (is it a live `cmksim serve`?)")]
    NotLive(String),
    #[error(transparent)]
    Endpoint(#[from] cmksim_sim::net::EndpointError),
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("world setup failed: {error}\n{}", left_behind(.left))]
    Setup {
        /// The refusal, as `STATUS CODE message`.
        error: String,
        /// What this run created before the failure (e.g. "vault `kv1`"), in order.
        left: Vec<String>,
    },
    #[error("the run did not finish within {0} of simulated time")]
    Timeout(String),
}

/// How long, in real time, the followers may take to deliver the last events.
const CATCH_UP_POLLS_MAX: u32 = 500;

/// Plays `scenario` against the live services, recording every event (the driver's and the
/// services') into `events`.
pub fn run_live(
    scenario: &Scenario,
    options: &LiveOptions,
    events: &EventLog,
) -> Result<LiveRun, LiveError> {
    let refused = network_faults(scenario);
    if !refused.is_empty() {
        let lines: Vec<String> = refused
            .iter()
            .map(|(line, label, fault)| format!("  line {line}: step {label}: {fault}"))
            .collect();
        return Err(LiveError::NeedsSimulation(lines.join("\n")));
    }
    if options.admin.is_none() {
        return Err(LiveError::NoAdministrator);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(scenario, options, events))
}

async fn run(
    scenario: &Scenario,
    options: &LiveOptions,
    events: &EventLog,
) -> Result<LiveRun, LiveError> {
    let seed = options.seed.unwrap_or(scenario.meta.seed);
    let timeouts = ClientTimeouts::default();
    let services: [(&'static str, &String); 3] = [
        ("keyvault", &options.endpoints.keyvault),
        ("storage", &options.endpoints.storage),
        ("ingest", &options.endpoints.ingest),
    ];
    let mut channels = Vec::new();
    let mut clocks = Vec::new();
    for (service, url) in services {
        let unreachable = |reason: String| LiveError::Unreachable {
            service,
            url: url.clone(),
            reason,
        };
        let channel = options
            .network
            .clone()
            .channel(url, timeouts)
            .map_err(|e| unreachable(e.to_string()))?;
        let info = evp::events_client::EventsClient::new(channel.clone())
            .get_clock(evp::GetClockRequest {})
            .await
            .map_err(|status| {
                unreachable(match status.code() {
                    tonic::Code::Unavailable => format!(
                        "cannot connect ({}); is `cmksim serve {service}` running there?",
                        status.message()
                    ),
                    code => format!("{code:?}: {}", status.message()),
                })
            })?
            .into_inner();
        if info.service != service {
            return Err(LiveError::WrongService {
                expected: service,
                url: url.clone(),
                actual: info.service,
            });
        }
        if service != "keyvault" && info.profile != scenario.meta.profile_name {
            return Err(LiveError::ProfileMismatch {
                service,
                actual: info.profile,
                expected: scenario.meta.profile_name.clone(),
            });
        }
        if info.wall_epoch_unix_ms == 0 {
            return Err(LiveError::NotLive(format!("{service} at {url}")));
        }
        channels.push(channel);
        clocks.push(info);
    }
    let clock = agreed_clock(&clocks)?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Followed from the clocks just read, so that nothing the world setup records is missed.
    let followers: Vec<Follower> = channels
        .into_iter()
        .zip(&clocks)
        .map(|(channel, info)| {
            cmksim_events::follow(channel, info, events.clone(), stop_rx.clone())
        })
        .collect();

    let admin = options.admin.as_ref().ok_or(LiveError::NoAdministrator)?;
    let driver = Driver::new(
        Arc::new(scenario.clone()),
        events.clone(),
        clock.clone(),
        Faults::Live,
        options.network.clone(),
        &options.endpoints,
        SeedTree::new(seed),
    )?
    .with_admin(admin);
    let budget = options.setup_budget + scenario.meta.duration + Duration::from_secs(3600);
    let played = tokio::time::timeout(clock.to_real(budget), driver.run()).await;
    for follower in &followers {
        if !follower.catch_up(CATCH_UP_POLLS_MAX).await {
            tracing::warn!("a service's last events did not arrive in time");
        }
    }
    let _ = stop_tx.send(true);
    match played {
        Err(_) => Err(LiveError::Timeout(cmksim_sim::format_duration(budget))),
        Ok(Err(e)) => Err(LiveError::Setup {
            error: e.to_string(),
            left: created_by(&events.snapshot()),
        }),
        Ok(Ok(())) => Ok(LiveRun {
            seed,
            time_scale: clock.time_scale(),
            restarts_seen: services
                .iter()
                .zip(&followers)
                .map(|((service, _), f)| (*service, f.progress().restarts_seen))
                .collect(),
        }),
    }
}

/// The services' events that create an entity a later run would collide with, and the field
/// that names it.
const CREATION_EVENTS: [(&str, &str, &str); 4] = [
    (cmksim_scenario::events::VAULT_CREATED, "vault", "vault"),
    (cmksim_scenario::events::KEY_CREATED, "key", "key"),
    (
        cmksim_scenario::events::CLUSTER_CREATED,
        "cluster",
        "cluster",
    ),
    ("storage.workspace.created", "workspace", "workspace"),
];

/// What the services created during this run, from their `*.created` events: e.g. "vault
/// `kv1`", "key `kv1/logs-cmk`" (in the order created; a rotation's new version is no new key).
fn created_by(events: &[Event]) -> Vec<String> {
    let mut left: Vec<String> = Vec::new();
    for event in events {
        let Some((_, what, field)) = CREATION_EVENTS.iter().find(|(k, _, _)| *k == event.kind)
        else {
            continue;
        };
        let name = event.data[*field].as_str().unwrap_or("?");
        let entity = match (*what, event.data["vault"].as_str()) {
            ("key", Some(vault)) => format!("key `{vault}/{name}`"),
            _ => format!("{what} `{name}`"),
        };
        if !left.contains(&entity) {
            left.push(entity);
        }
    }
    left
}

/// The second half of a set-up failure: that nothing is rolled back, what this run left, and
/// how to run again.
fn left_behind(left: &[String]) -> String {
    let created = if left.is_empty() {
        "this run created no vault, key, cluster or workspace before the failure".to_string()
    } else {
        format!("this run left {} on the services", left.join(", "))
    };
    format!(
        "set-up is not rolled back, and a later run does not adopt what exists (a vault under \
         purge protection keeps its name until its retention ends): {created}; a name that \
         already exists (409 …AlreadyExists) was left by an earlier run or created by hand. To \
         run a scenario with these names again, restart the services on empty data \
         directories, or rename them in the scenario."
    )
}

/// The one clock the three services share, or why they do not.
fn agreed_clock(clocks: &[evp::ClockInfo]) -> Result<Clock, LiveError> {
    let first = &clocks[0];
    for other in &clocks[1..] {
        if other.wall_epoch_unix_ms != first.wall_epoch_unix_ms
            || other.sim_epoch_unix_ms != first.sim_epoch_unix_ms
            || other.time_scale != first.time_scale
        {
            let describe = |c: &evp::ClockInfo| {
                format!(
                    "{}: --epoch {} --time-scale {}",
                    c.service, c.wall_epoch_unix_ms, c.time_scale
                )
            };
            return Err(LiveError::ClockMismatch(format!(
                "{}; {}",
                describe(first),
                describe(other)
            )));
        }
    }
    Ok(Clock::wall(
        SimTime(first.sim_epoch_unix_ms),
        first.wall_epoch_unix_ms,
        first.time_scale,
    ))
}

/// The events of a live run in a new log, in simulated-time order (stable: events at the same
/// millisecond keep their arrival order) and numbered afresh from 1. The followers deliver each
/// service's events in order, but the three services' interleave as the network pleases, and
/// the oracle reads "after" as "later in the log".
pub fn in_time_order(events: &EventLog) -> EventLog {
    let mut sorted = events.snapshot();
    sorted.sort_by_key(|e| e.at_ms);
    let ordered = EventLog::new(sorted.len().max(EventLog::DEFAULT_CAPACITY_EVENTS));
    for Event {
        at_ms,
        source,
        kind,
        message,
        data,
        ..
    } in sorted
    {
        ordered.record_raw(SimTime(at_ms), &source, &kind, message, data);
    }
    ordered
}
