//! How much work a scenario asks for, estimated before it runs, and the limits a run stays under.
//!
//! A file that validates can still ask for far too much: `records = 1000000, every = "1s"` over
//! 4 h is 14.4 billion records, which a run writes into its data directory at about 1 GB a
//! minute. `cmksim validate` and `cmksim run` therefore estimate three quantities from the
//! validated [`Scenario`] alone (no I/O, no clock) and refuse a scenario over a limit unless
//! `--force` is given:
//!
//! - **records**: what the agents send (each table of each agent sends `records` records every
//!   `every` from T+0 to the end, the model's stated rate; the driver sends a `Heartbeat` table
//!   one record per interval, so for it this is an upper bound) plus what `ingest` steps send
//!   (their `records` as written);
//! - **simulated time**: the world's set-up (the profile's provisioning, key update and link
//!   durations, which the driver waits for before T+0, when the world has clusters, cluster
//!   keys and links) plus the scenario's `duration`;
//! - **simulation steps**: the simulated time divided by the tick (`--tick-ms`, 100 ms by
//!   default): the turmoil harness advances the simulation one tick per step. Counted against
//!   the limit only for runs on fixed ticks (`run --engine turmoil`, and a run with the live
//!   dashboard, whose levers hook into turmoil's step loop); `run`'s default engine is the
//!   event-driven one, whose cost follows the events.
//!
//! The limits are [`RECORDS_MAX`], [`SIMULATED_DAYS_MAX`] and [`STEPS_MAX`]. What the library
//! (`scenarios/*.toml`) needs, measured with this estimator at the default tick
//! (`tests/work_library.rs` prints it): at most 8,408 records (`revocation`), 30.2 days of
//! simulated time (`bill-month-both-types`, a billing month, on the event-driven engine) and
//! 561,000 fixed-tick steps (`lockbox-approved-then-expired`; `revocation`'s run takes 309,613
//! steps against 309,000 estimated). The test holds the library to a thirtieth of the records
//! and steps limits and a third of the days limit; the 14-billion-record example is refused by
//! a factor of 1,440.
//!
//! A refusal is a [`Diagnostic`] at the line that contributes most: the agent table or `ingest`
//! step with the most records, or the `duration` of `[scenario]` for time and steps.

use std::path::Path;
use std::time::Duration;

use crate::errors::{Diagnostic, SourceMap};
use crate::model::{Action, Scenario, StepKind};
use crate::parse::parse_raw;

/// Most records a scenario may ingest (agents and `ingest` steps together). A record costs the
/// run about a hundred bytes in its data directory and a few microseconds of work, so this is
/// about a gigabyte and a few minutes.
pub const RECORDS_MAX: u64 = 10_000_000;
/// Most simulated time, set-up included, in days: past the longest soft-delete retention (90
/// days) with room for the set-up and a purge.
pub const SIMULATED_DAYS_MAX: u64 = 100;
/// Most simulation steps (ticks). At the default 100 ms tick this is 23 days of simulated
/// time; a longer scenario can use a coarser `--tick-ms`.
pub const STEPS_MAX: u64 = 20_000_000;
/// The simulation's default resolution, in milliseconds (what `cmksim run` uses without
/// `--tick-ms`, and what `cmksim validate` estimates with).
pub const TICK_DEFAULT_MS: u64 = 100;

const SECS_PER_DAY: u64 = 86_400;

/// The longest scenario [`fits_fixed_ticks`]: a fixed tick costs a step per tick whether
/// anything happens or not (a month at 100 ms is 26 million steps), while the event engine's
/// cost follows the events.
pub const FIXED_TICK_DURATION_MAX: Duration = Duration::from_secs(2 * SECS_PER_DAY);

/// Whether the fixed-tick engine (turmoil: `run --engine turmoil`, the live dashboard) runs
/// `scenario` at a reasonable cost: at most [`FIXED_TICK_DURATION_MAX`] long, and no step sets
/// a link's quality, which only the event-driven engine's network has. The library's tests run
/// these scenarios on turmoil, so that both engines stay covered (`cmksim run` itself runs
/// every scenario on the event-driven engine unless told otherwise).
pub fn fits_fixed_ticks(scenario: &Scenario) -> bool {
    let sets_links = scenario.timeline.iter().any(|step| {
        matches!(
            step.what,
            crate::model::StepKind::Fault {
                fault: crate::model::Fault::Link(..),
                ..
            }
        )
    });
    scenario.meta.duration <= FIXED_TICK_DURATION_MAX && !sets_links
}

/// Where in the file a share of the work comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Table `table` (0-based, in file order) of agent `agent` (0-based, in file order).
    AgentTable { agent: usize, table: usize },
    /// The timeline step at this position in the file (1-based, [`crate::model::Step::index`]).
    Step { index: usize },
    /// The scenario's `duration` (time and steps grow with it).
    Duration,
}

/// The records one agent table or `ingest` step contributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub source: Source,
    pub records: u64,
    /// What it is, for messages (e.g. "agent `a1`, table `Perf` (5 records every 10s)").
    pub label: String,
}

/// The estimated work of one scenario at one tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// Records ingested over the whole run (saturating: an absurd file does not overflow).
    pub records: u64,
    /// Every source of records, largest first (ties in file order).
    pub contributions: Vec<Contribution>,
    /// Simulated time the world's set-up takes before T+0.
    pub setup: Duration,
    /// Set-up plus the scenario's duration.
    pub simulated: Duration,
    /// The tick the steps are counted with.
    pub tick: Duration,
    /// Simulation steps: `simulated / tick`, rounded up.
    pub steps: u64,
    /// Whether the run steps a fixed tick (the turmoil engine): only then do the steps count
    /// against [`STEPS_MAX`].
    pub fixed_tick: bool,
}

impl Estimate {
    /// The simulated time in days (for messages).
    pub fn simulated_days(&self) -> f64 {
        self.simulated.as_secs_f64() / SECS_PER_DAY as f64
    }

    /// The largest source of records, if any.
    pub fn largest(&self) -> Option<&Contribution> {
        self.contributions.first()
    }
}

/// Which limit an estimate is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`RECORDS_MAX`].
    Records,
    /// [`SIMULATED_DAYS_MAX`].
    SimulatedDays,
    /// [`STEPS_MAX`].
    Steps,
}

/// One limit exceeded: what was estimated, the limit, and the source that contributes most.
#[derive(Clone, Debug, PartialEq)]
pub struct Excess {
    pub limit: Limit,
    /// A sentence: the estimate against the limit, and the largest contributor.
    pub message: String,
    pub source: Source,
}

/// Estimates the work of a validated scenario when run at `tick` (must be positive), on fixed
/// ticks (the turmoil engine) when `fixed_tick`, else on the event-driven engine.
pub fn estimate(scenario: &Scenario, tick: Duration, fixed_tick: bool) -> Estimate {
    assert!(!tick.is_zero(), "the tick must be positive");
    let duration_ms = scenario.meta.duration.as_millis();
    let mut contributions: Vec<Contribution> = Vec::new();
    for (a, agent) in scenario.agents.iter().enumerate() {
        for (t, table) in agent.tables.iter().enumerate() {
            // Validation guarantees every >= 1 s; `max(1)` keeps this total anyway.
            let every_ms = table.every.as_millis().max(1);
            // A batch at T+0 and one every `every` after it, up to the end.
            let batches = duration_ms / every_ms + 1;
            let records = batches.saturating_mul(u128::from(table.records));
            contributions.push(Contribution {
                source: Source::AgentTable { agent: a, table: t },
                records: u64::try_from(records).unwrap_or(u64::MAX),
                label: format!(
                    "agent `{}`, table `{}` ({} records every {})",
                    agent.name,
                    table.table,
                    table.records,
                    cmksim_sim::format_duration(table.every)
                ),
            });
        }
    }
    for step in &scenario.timeline {
        if let StepKind::Action(Action::Ingest {
            workspace,
            table,
            records,
        }) = &step.what
        {
            contributions.push(Contribution {
                source: Source::Step { index: step.index },
                records: *records,
                label: format!(
                    "step {} (ingest of {records} `{table}` records to `{workspace}`)",
                    step.label()
                ),
            });
        }
        if let StepKind::Action(Action::Upload {
            dcr,
            stream,
            records,
        }) = &step.what
        {
            // Each table a flow sends the stream to gets every record.
            let tables = scenario
                .world
                .dcrs
                .iter()
                .find(|d| &d.name == dcr)
                .map_or(1, |d| d.tables_of(stream).len().max(1) as u64);
            contributions.push(Contribution {
                source: Source::Step { index: step.index },
                records: records.saturating_mul(tables),
                label: format!(
                    "step {} (upload of {records} `{stream}` records through `{dcr}`)",
                    step.label()
                ),
            });
        }
    }
    // Stable: equal contributions keep file order (agents before steps).
    contributions.sort_by_key(|c| std::cmp::Reverse(c.records));
    let records = contributions
        .iter()
        .fold(0u64, |sum, c| sum.saturating_add(c.records));

    let world = &scenario.world;
    let cluster = &scenario.profile.cluster;
    let mut setup = Duration::ZERO;
    if !world.clusters.is_empty() {
        setup += cluster.provisioning_duration;
    }
    if world.clusters.iter().any(|c| c.key.is_some()) {
        setup += cluster.key_update_duration;
    }
    if world.workspaces.iter().any(|w| w.link.is_some()) {
        setup += cluster.link_duration;
    }
    let simulated = setup.saturating_add(scenario.meta.duration);
    let steps = simulated.as_nanos().div_ceil(tick.as_nanos());
    Estimate {
        records,
        contributions,
        setup,
        simulated,
        tick,
        steps: u64::try_from(steps).unwrap_or(u64::MAX),
        fixed_tick,
    }
}

/// The limits an estimate is over (empty when it is within all of them).
pub fn excesses(estimate: &Estimate) -> Vec<Excess> {
    let mut out = Vec::new();
    if estimate.records > RECORDS_MAX {
        // More records than zero means there is a contribution.
        let (source, from) = match estimate.largest() {
            Some(c) => (
                c.source,
                format!("{} of them from {}", grouped(c.records), c.label),
            ),
            None => (Source::Duration, String::new()),
        };
        out.push(Excess {
            limit: Limit::Records,
            message: format!(
                "this scenario would ingest about {} records (estimate), over the limit of {} \
                 (RECORDS_MAX); {from}",
                grouped(estimate.records),
                grouped(RECORDS_MAX)
            ),
            source,
        });
    }
    if estimate.simulated > Duration::from_secs(SIMULATED_DAYS_MAX * SECS_PER_DAY) {
        out.push(Excess {
            limit: Limit::SimulatedDays,
            message: format!(
                "this scenario would simulate about {:.1} days (estimate: {} of set-up and this \
                 duration), over the limit of {SIMULATED_DAYS_MAX} days (SIMULATED_DAYS_MAX)",
                estimate.simulated_days(),
                cmksim_sim::format_duration(estimate.setup)
            ),
            source: Source::Duration,
        });
    }
    if estimate.fixed_tick && estimate.steps > STEPS_MAX {
        out.push(Excess {
            limit: Limit::Steps,
            message: format!(
                "this scenario would take about {} simulation steps (estimate: {} of simulated \
                 time at a {} tick), over the limit of {} (STEPS_MAX); a coarser --tick-ms takes \
                 fewer",
                grouped(estimate.steps),
                cmksim_sim::format_duration(estimate.simulated),
                cmksim_sim::format_duration(estimate.tick),
                grouped(STEPS_MAX)
            ),
            source: Source::Duration,
        });
    }
    out
}

/// Checks a validated scenario against the limits at `tick` (on fixed ticks when
/// `fixed_tick`, as [`estimate`]): one diagnostic per limit exceeded, at the line of the source
/// that contributes most. `path` and `text` are the file the scenario was validated from
/// (re-read here for the positions: the model keeps no spans for agents).
pub fn check(
    path: &Path,
    text: &str,
    scenario: &Scenario,
    tick: Duration,
    fixed_tick: bool,
) -> Vec<Diagnostic> {
    let excesses = excesses(&estimate(scenario, tick, fixed_tick));
    if excesses.is_empty() {
        return Vec::new();
    }
    let map = SourceMap::new(path, text);
    // The text validated, so it parses; should it not, the whole file is named instead.
    let raw = parse_raw(&map).ok();
    excesses
        .into_iter()
        .map(|excess| {
            let message = format!("{}; --force runs it anyway", excess.message);
            let span = raw.as_ref().and_then(|raw| match excess.source {
                Source::AgentTable { agent, table } => {
                    let t = raw
                        .agents
                        .get(agent)?
                        .get_ref()
                        .tables
                        .get_ref()
                        .get(table)?;
                    Some(match &t.get_ref().records {
                        Some(records) => records.span(),
                        None => t.span(),
                    })
                }
                Source::Step { index } => {
                    let step = raw.timeline.get(index.checked_sub(1)?)?;
                    Some(match &step.get_ref().records {
                        Some(records) => records.span(),
                        None => step.span(),
                    })
                }
                Source::Duration => Some(raw.scenario.get_ref().duration.span()),
            });
            match span {
                Some(span) => map.span(&span, message),
                None => Diagnostic::whole_file(path, message),
            }
        })
        .collect()
}

/// `14400000000` as `14,400,000,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNAWAY: &str = r#"
[scenario]
name = "runaway"
title = "Too much"
duration = "4h"

[[workspaces]]
name = "ws-ops"
location = "westeurope"

[[agents]]
name = "vm1"
workspace = "ws-ops"
tables = [
  { table = "Heartbeat", every = "1m" },
  { table = "Event", every = "1s", records = 1000000 },
]
"#;

    fn tick() -> Duration {
        Duration::from_millis(TICK_DEFAULT_MS)
    }

    #[test]
    fn the_runaway_example_is_refused_at_its_agent_table() {
        let path = Path::new("runaway.toml");
        let scenario = crate::validate_str(path, RUNAWAY).expect("valid");
        let estimate = estimate(&scenario, tick(), false);
        // 4 h at one batch a second: 14,401 batches of a million, plus 241 heartbeats.
        assert_eq!(estimate.records, 14_401_000_000 + 241);
        assert!(estimate.records / RECORDS_MAX >= 1_440);
        let diags = check(path, RUNAWAY, &scenario, tick(), false);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let text = diags[0].to_string();
        assert!(
            text.starts_with(
                "runaway.toml:16:46: this scenario would ingest about 14,401,000,241 records"
            ),
            "{text}"
        );
        assert!(text.contains("10,000,000 (RECORDS_MAX)"), "{text}");
        assert!(text.contains("agent `vm1`, table `Event`"), "{text}");
        assert!(text.contains("--force"), "{text}");
    }

    #[test]
    fn long_time_is_refused_at_the_duration() {
        let text = RUNAWAY
            .replace("records = 1000000", "records = 1")
            .replace("\"4h\"", "\"150d\"")
            .replace("every = \"1s\"", "every = \"1h\"")
            .replace("every = \"1m\"", "every = \"1h\"");
        let path = Path::new("long.toml");
        let scenario = crate::validate_str(path, &text).expect("valid");
        let diags = check(path, &text, &scenario, tick(), false);
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        // 150 days on the event-driven engine: the days are over their limit, the steps of a
        // fixed tick are not counted.
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("long.toml:5:12: this scenario would simulate about 150.0 days")
        );
        // On fixed ticks, 130 million steps are over theirs too.
        let fixed = check(path, &text, &scenario, tick(), true);
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        assert!(
            fixed[1].to_string().contains("simulation steps"),
            "{fixed:?}"
        );
    }

    #[test]
    fn steps_count_for_fixed_tick_runs_only() {
        // Two days at a 10 µs tick: 17 billion steps on fixed ticks.
        let text = RUNAWAY
            .replace("records = 1000000", "records = 1")
            .replace("\"4h\"", "\"2d\"")
            .replace("every = \"1s\"", "every = \"1h\"")
            .replace("every = \"1m\"", "every = \"1h\"");
        let path = Path::new("ticks.toml");
        let scenario = crate::validate_str(path, &text).expect("valid");
        let fine = check(path, &text, &scenario, Duration::from_micros(10), true);
        assert_eq!(fine.len(), 1, "{fine:?}");
        assert!(fine[0].to_string().contains("simulation steps"), "{fine:?}");
        // A coarser tick brings the steps under their limit.
        assert!(check(path, &text, &scenario, tick(), true).is_empty());
        // On the event-driven engine there are no steps to count.
        assert!(check(path, &text, &scenario, Duration::from_micros(10), false).is_empty());
        // Two days fit fixed ticks; a day longer does not.
        assert!(fits_fixed_ticks(&scenario));
        let longer = text.replace("\"2d\"", "\"3d\"");
        let scenario = crate::validate_str(path, &longer).expect("valid");
        assert!(!fits_fixed_ticks(&scenario));
    }

    #[test]
    fn ingest_steps_count_and_name_their_step() {
        let text = format!(
            "{}\n[[timeline]]\nid = \"flood\"\nat = \"1h\"\naction = \"ingest\"\nworkspace = \"ws-ops\"\ntable = \"Event\"\nrecords = 1000000\n",
            RUNAWAY.replace("records = 1000000", "records = 1")
        );
        let path = Path::new("steps.toml");
        let scenario = crate::validate_str(path, &text).expect("valid");
        let estimate = estimate(&scenario, tick(), false);
        assert_eq!(
            estimate.largest().map(|c| c.source),
            Some(Source::Step { index: 1 })
        );
        assert_eq!(estimate.records, 1_000_000 + 14_401 + 241);
        assert!(excesses(&estimate).is_empty());
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(14_401_000_241), "14,401,000,241");
    }
}
