//! Judging a scenario's expectations against the events of its run.
//!
//! Pure functions: the validated scenario and the event log in, one [`Verdict`] per expectation
//! out, each with the events that decided it. Every subject reduces to "occurrences" (moments
//! where the thing is seen: the storage is in the state, a batch had the outcome, a query had
//! the outcome); every timing is a question about the first occurrence in a window, or about
//! none occurring. That keeps the semantics of `at`, `by`, `within` and `never` the same for
//! every subject, as the format reference promises.

use std::time::Duration;

use cmksim_sim::{Event, SimTime};

use crate::events::{self, str_field, u64_field};
use crate::history::RunSpan;
use crate::model::{
    Expectation, IncidentOutcome, IngestOutcome, RemovalCause, Scenario, Subject, Success, Timing,
};
use crate::verdict::{Evidence, Outcome, Verdict};

/// How long after `at` a probe query's event may be recorded (the query's own latency).
///
/// A KQL probe is judged exactly like a plain one: the front end records its `query.ok` /
/// `query.failed` with the workspace and the time, `records` being the result rows; the probe's
/// event is additionally the one whose `table` is the query's tables joined by ","
/// ([`crate::model::KqlQuery::event_table`]), so a plain query of another table at the same
/// moment is not taken for it.
pub const PROBE_SLACK_MS: i64 = 60_000;

/// The scenario as a live run is judged: every `by` and `within` window, and the profile's
/// revocation and resume deadlines, widened by `slack`.
///
/// In simulated time an RPC costs a tick; live, every millisecond of real latency or timer
/// lateness is `time_scale` milliseconds of simulated time (at 600×, a 20 ms call is 12
/// simulated seconds), and windows written to the second, like "healthy within 31m after
/// enable-key" (30 min resume + a 60 s poll), would fail for the network rather than for the
/// rule. The slack is reported with the verdicts.
pub fn widened(scenario: &Scenario, slack: Duration) -> Scenario {
    let mut widened = scenario.clone();
    for expectation in &mut widened.expectations {
        match &mut expectation.timing {
            Timing::By(by) => *by += slack,
            Timing::Within { within, .. } => *within += slack,
            Timing::At(_) | Timing::Never { .. } | Timing::Implicit => {}
        }
    }
    let key_access = &mut widened.profile.key_access;
    key_access.revocation_deadline += slack;
    key_access.resume_delay += slack;
    widened
}

/// Judges every expectation of the scenario, in file order.
pub fn evaluate(scenario: &Scenario, events: &[Event]) -> Vec<Verdict> {
    let run = RunSpan::of(events);
    scenario
        .expectations
        .iter()
        .map(|e| {
            if !e.applies_under(&scenario.meta.profile_name) {
                Verdict::new(
                    e.label(),
                    e.description.clone(),
                    Outcome::NotApplicable,
                    format!(
                        "{}; this run is {}",
                        e.profiles.describe(),
                        scenario.meta.profile_name
                    ),
                    vec![],
                )
            } else if let Subject::Bill { .. } = &e.subject {
                // The bill needs the scenario (prices, clusters, update steps), not only events.
                crate::bill::judge(scenario, e, events)
            } else {
                evaluate_one(e, events, run)
            }
        })
        .collect()
}

/// Judges one expectation.
pub fn evaluate_one(expectation: &Expectation, events: &[Event], run: RunSpan) -> Verdict {
    let (outcome, detail, evidence) = judge(expectation, events, run);
    Verdict::new(
        expectation.label(),
        expectation.description.clone(),
        outcome,
        detail,
        evidence,
    )
}

type Judgement = (Outcome, String, Vec<Evidence>);

fn at(run: RunSpan, offset: Duration) -> SimTime {
    run.start.add(offset)
}

fn label(run: RunSpan, t: SimTime) -> String {
    t.offset_label(run.start)
}

/// When a step actually ran: its `scenario.step` event, else its planned offset.
fn step_time(events: &[Event], run: RunSpan, step: &str, planned: Duration) -> SimTime {
    events
        .iter()
        .find(|e| e.kind == events::SCENARIO_STEP && str_field(e, "step") == Some(step))
        .map(Event::at)
        .unwrap_or_else(|| at(run, planned))
}

fn judge(x: &Expectation, events: &[Event], run: RunSpan) -> Judgement {
    match (&x.subject, &x.timing) {
        (
            Subject::Step {
                step,
                outcome,
                error_code,
            },
            _,
        ) => judge_step(events, step, *outcome, error_code.as_deref()),
        (Subject::NoLossBefore { offset, workspace }, _) => {
            judge_no_loss(events, run, at(run, *offset), workspace.as_deref())
        }
        (Subject::KeyUse { .. }, _) => judge_key_use(x, events, run),
        (Subject::Bill { .. }, _) => (
            Outcome::NotApplicable,
            "a bill expectation is judged with its scenario (expect::evaluate)".into(),
            vec![],
        ),
        (subject, Timing::At(offset)) => {
            let t = at(run, *offset);
            if let Some(owner) = StateSubject::of(subject) {
                return owner.judge_at(events, run, t);
            }
            // A probe query made at `t`: the first query of the workspace from `t` (for
            // a KQL probe, the first that read exactly the tables its query names).
            let kql_table = match subject {
                Subject::Query { kql: Some(kql), .. } => Some(kql.event_table()),
                _ => None,
            };
            let probe = events.iter().find(|e| {
                is_query(e)
                    && e.at_ms >= t.0
                    && e.at_ms <= t.0 + PROBE_SLACK_MS
                    && str_field(e, "workspace") == subject_workspace(subject)
                    && kql_table
                        .as_deref()
                        .is_none_or(|table| str_field(e, "table") == Some(table))
            });
            match probe {
                Some(e) if matches(subject, e) => (
                    Outcome::Held,
                    format!("the query at {} {}", label(run, e.at()), e.message),
                    vec![Evidence::of(e, "the probe query")],
                ),
                Some(e) => (
                    Outcome::Broken,
                    format!("the query at {}: {}", label(run, e.at()), e.message),
                    vec![Evidence::of(e, "the probe query")],
                ),
                None => (
                    Outcome::Broken,
                    format!(
                        "no query of the workspace was recorded at {}",
                        label(run, t)
                    ),
                    vec![],
                ),
            }
        }
        (subject, Timing::By(offset)) => {
            let until = at(run, *offset);
            match first_occurrence(subject, events, run.start, until) {
                Some((t, ev)) => (
                    Outcome::Held,
                    format!("seen at {}, by {}", label(run, t), label(run, until)),
                    ev,
                ),
                None => (
                    Outcome::Broken,
                    format!("not seen by {}", label(run, until)),
                    last_relevant(subject, events, until),
                ),
            }
        }
        (
            subject,
            Timing::Within {
                step,
                step_offset,
                within,
            },
        ) => {
            let from = step_time(events, run, step, *step_offset);
            let until = from.add(*within);
            let mut ev: Vec<Evidence> = events
                .iter()
                .find(|e| e.kind == events::SCENARIO_STEP && str_field(e, "step") == Some(step))
                .map(|e| vec![Evidence::of(e, "the step")])
                .unwrap_or_default();
            match first_occurrence(subject, events, from, until) {
                Some((t, found)) => {
                    ev.extend(found);
                    (
                        Outcome::Held,
                        format!(
                            "seen {} after {step} (at {}; allowed {})",
                            cmksim_sim::format_duration(t.since(from)),
                            label(run, t),
                            cmksim_sim::format_duration(*within)
                        ),
                        ev,
                    )
                }
                None => {
                    ev.extend(last_relevant(subject, events, until));
                    let why = if run.end < until {
                        format!(
                            "the run ended at {} before the window closed",
                            label(run, run.end)
                        )
                    } else {
                        format!(
                            "not seen between {} and {}",
                            label(run, from),
                            label(run, until)
                        )
                    };
                    (Outcome::Broken, why, ev)
                }
            }
        }
        (subject, Timing::Never { from, until }) => {
            let (from, until) = (at(run, *from), at(run, *until));
            match first_occurrence(subject, events, from, until) {
                Some((t, ev)) => (Outcome::Broken, format!("seen at {}", label(run, t)), ev),
                None => (
                    Outcome::Held,
                    format!(
                        "not seen between {} and {}",
                        label(run, from),
                        label(run, until)
                    ),
                    vec![],
                ),
            }
        }
        (_, Timing::Implicit) => (
            Outcome::Broken,
            "this expectation has no time (a validation bug)".to_string(),
            vec![],
        ),
    }
}

/// A subject that is a state something is in (a cluster's storage, a workspace's Sentinel),
/// judged one way whichever it is: the state event in force at a moment, or the first event
/// entering the wanted state in a window (being in it when the window opens counts).
struct StateSubject<'s> {
    /// The cluster or the workspace the expectation names.
    owner: &'s str,
    /// The owner in sentences: `cluster1`, `Sentinel of ws-01`.
    name: String,
    wanted: &'static str,
    /// The sentence, up to the moment, when no state of the owner was recorded by then.
    none_by: String,
    /// The state `event` sets for `owner` (None: not one of its state events).
    state: fn(&Event, &str) -> Option<&'static str>,
}

impl<'s> StateSubject<'s> {
    fn of(subject: &'s Subject) -> Option<StateSubject<'s>> {
        match subject {
            Subject::Storage { cluster, state } => Some(StateSubject {
                owner: cluster,
                name: cluster.clone(),
                wanted: state.as_str(),
                none_by: format!("no storage state of {cluster} recorded by"),
                state: |e, cluster| {
                    if events::cluster_of(e) == Some(cluster) {
                        events::storage_state(e).map(|s| s.as_str())
                    } else {
                        None
                    }
                },
            }),
            Subject::Sentinel { workspace, state } => Some(StateSubject {
                owner: workspace,
                name: format!("Sentinel of {workspace}"),
                wanted: state.as_str(),
                none_by: format!("{workspace} was not onboarded to Sentinel by"),
                state: |e, workspace| {
                    if events::sentinel_workspace(e) == Some(workspace) {
                        events::sentinel_state(e).map(|s| s.as_str())
                    } else {
                        None
                    }
                },
            }),
            _ => None,
        }
    }

    fn state_of(&self, e: &Event) -> Option<&'static str> {
        (self.state)(e, self.owner)
    }

    /// The event that set the owner's state in force at `at`.
    fn in_force_at<'e>(&self, events: &'e [Event], at: SimTime) -> Option<&'e Event> {
        events
            .iter()
            .rev()
            .find(|e| e.at_ms <= at.0 && self.state_of(e).is_some())
    }

    /// `at`: the state in force at `t` is the wanted one.
    fn judge_at(&self, events: &[Event], run: RunSpan, t: SimTime) -> Judgement {
        let name = &self.name;
        match self.in_force_at(events, t) {
            Some(e) if self.state_of(e) == Some(self.wanted) => (
                Outcome::Held,
                format!("{name} is {} at {}", self.wanted, label(run, t)),
                vec![Evidence::of(e, "state in force at that moment")],
            ),
            Some(e) => (
                Outcome::Broken,
                format!(
                    "{name} is {} at {}, not {}",
                    self.state_of(e).unwrap_or("?"),
                    label(run, t),
                    self.wanted
                ),
                vec![Evidence::of(e, "state in force at that moment")],
            ),
            None => (
                Outcome::Broken,
                format!("{} {}", self.none_by, label(run, t)),
                vec![],
            ),
        }
    }

    /// The first moment in `[from, until]` the owner is in the wanted state.
    fn first_in(
        &self,
        events: &[Event],
        from: SimTime,
        until: SimTime,
    ) -> Option<(SimTime, Vec<Evidence>)> {
        if let Some(e) = self.in_force_at(events, from) {
            if self.state_of(e) == Some(self.wanted) {
                return Some((from, vec![Evidence::of(e, "already in that state")]));
            }
        }
        events
            .iter()
            .filter(|e| e.at_ms > from.0 && e.at_ms <= until.0)
            .find(|e| self.state_of(e) == Some(self.wanted))
            .map(|e| (e.at(), vec![Evidence::of(e, "state entered")]))
    }
}

fn is_query(e: &Event) -> bool {
    e.kind == events::QUERY_OK || e.kind == events::QUERY_FAILED
}

fn subject_workspace(subject: &Subject) -> Option<&str> {
    match subject {
        Subject::Ingest { workspace, .. } | Subject::Query { workspace, .. } => Some(workspace),
        _ => None,
    }
}

/// Whether one event is an occurrence of an ingest or query subject.
fn matches(subject: &Subject, e: &Event) -> bool {
    match subject {
        Subject::Ingest {
            workspace,
            outcome: IngestOutcome::Expired,
            ..
        } => {
            e.kind == events::BUFFER_EXPIRED
                && str_field(e, "workspace") == Some(workspace)
                && u64_field(e, "records") > 0
        }
        Subject::Ingest {
            workspace,
            outcome,
            reason,
        } => {
            e.kind == events::INGEST_BATCH
                && str_field(e, "workspace") == Some(workspace)
                && u64_field(e, outcome.as_str()) > 0
                && (*outcome != IngestOutcome::Dropped
                    || reason.is_none()
                    || str_field(e, "reason") == reason.as_deref())
        }
        // `kql` chose the probe's event already (only `at` expectations carry it).
        Subject::Query {
            workspace,
            outcome,
            min_records,
            reason,
            kql: _,
        } => {
            str_field(e, "workspace") == Some(workspace)
                && match outcome {
                    Success::Succeeds => {
                        e.kind == events::QUERY_OK
                            && min_records.is_none_or(|m| u64_field(e, "records") >= m)
                    }
                    Success::Fails => {
                        e.kind == events::QUERY_FAILED
                            && (reason.is_none() || str_field(e, "reason") == reason.as_deref())
                    }
                }
        }
        Subject::Incident { workspace, outcome } => {
            events::sentinel_workspace(e) == Some(workspace)
                && match outcome {
                    IncidentOutcome::Stored => {
                        e.kind == events::SENTINEL_ITEM_STORED
                            && str_field(e, "item") == Some("incident")
                    }
                    IncidentOutcome::Refused => {
                        e.kind == events::SENTINEL_OPERATION_REFUSED
                            && str_field(e, "operation") == Some(events::SENTINEL_CREATE_INCIDENT)
                    }
                }
        }
        Subject::SentinelUnsupported { workspace } => {
            e.kind == events::SENTINEL_UNSUPPORTED
                && events::sentinel_workspace(e) == Some(workspace)
        }
        Subject::Removed {
            workspace,
            cause,
            min_records,
        } => {
            e.kind == removal_kind(*cause)
                && str_field(e, "workspace") == Some(workspace)
                && u64_field(e, "records") >= *min_records
        }
        Subject::SavedSearches {
            workspace,
            readable,
            min_records,
        } => {
            str_field(e, "workspace") == Some(workspace)
                && match readable {
                    true => {
                        e.kind == events::SAVED_SEARCHES_READ
                            && u64_field(e, "count") >= *min_records
                    }
                    false => e.kind == events::SAVED_SEARCHES_UNREADABLE,
                }
        }
        _ => false,
    }
}

/// The event kind of a removal.
fn removal_kind(cause: RemovalCause) -> &'static str {
    match cause {
        RemovalCause::Retention => events::RETENTION_REMOVED,
        RemovalCause::Purge => events::PURGE_COMPLETED,
    }
}

/// A `key_use` expectation: the runner's `scenario.audit` answer for the same key, version and
/// window says how many wraps and unwraps Key Vault audited.
fn judge_key_use(x: &Expectation, events: &[Event], run: RunSpan) -> Judgement {
    let (
        Subject::KeyUse {
            vault,
            key,
            version,
        },
        Timing::Never { from, until },
    ) = (&x.subject, &x.timing)
    else {
        return (
            Outcome::Broken,
            "a key_use expectation without `never` (a validation bug)".to_string(),
            vec![],
        );
    };
    let (from_ms, until_ms) = (at(run, *from).0, at(run, *until).0);
    let version_label = format!("v{version}");
    let answer = events.iter().find(|e| {
        e.kind == events::SCENARIO_AUDIT
            && str_field(e, "vault") == Some(vault)
            && str_field(e, "key") == Some(key)
            && str_field(e, "version") == Some(version_label.as_str())
            && events::fields(e).get("from_ms").and_then(|v| v.as_i64()) == Some(from_ms)
    });
    let Some(e) = answer else {
        return (
            Outcome::Broken,
            format!("no audit answer for {vault}/{key} {version_label} was recorded"),
            vec![],
        );
    };
    let uses = u64_field(e, "uses");
    let window = format!(
        "between {} and {}",
        label(run, SimTime(from_ms)),
        label(run, SimTime(until_ms))
    );
    if uses == 0 {
        let last = events::fields(e)
            .get("last_use_before_ms")
            .and_then(|v| v.as_i64())
            .map(|t| format!("; its last use was at {}", label(run, SimTime(t))))
            .unwrap_or_default();
        (
            Outcome::Held,
            format!("Key Vault audited no use of {vault}/{key} {version_label} {window}{last}"),
            vec![Evidence::of(e, "the audit log's answer")],
        )
    } else {
        let first = events::fields(e)
            .get("first_use_ms")
            .and_then(|v| v.as_i64())
            .map(|t| format!(", the first at {}", label(run, SimTime(t))))
            .unwrap_or_default();
        (
            Outcome::Broken,
            format!(
                "Key Vault audited {uses} uses of {vault}/{key} {version_label} {window}{first}"
            ),
            vec![Evidence::of(e, "the audit log's answer")],
        )
    }
}

/// The first moment in `[from, until]` the subject is seen, with its evidence.
fn first_occurrence(
    subject: &Subject,
    events: &[Event],
    from: SimTime,
    until: SimTime,
) -> Option<(SimTime, Vec<Evidence>)> {
    if let Some(owner) = StateSubject::of(subject) {
        return owner.first_in(events, from, until);
    }
    events
        .iter()
        .filter(|e| e.at_ms >= from.0 && e.at_ms <= until.0)
        .find(|e| matches(subject, e))
        .map(|e| (e.at(), vec![Evidence::of(e, "seen")]))
}

/// For a broken expectation: the last related event before `until` (what was seen instead).
fn last_relevant(subject: &Subject, events: &[Event], until: SimTime) -> Vec<Evidence> {
    let owner = StateSubject::of(subject);
    let related = |e: &&Event| match subject {
        Subject::Storage { .. } | Subject::Sentinel { .. } => {
            owner.as_ref().is_some_and(|o| o.state_of(e).is_some())
        }
        Subject::Ingest { workspace, .. } => {
            (e.kind == events::INGEST_BATCH || e.kind == events::BUFFER_EXPIRED)
                && str_field(e, "workspace") == Some(workspace)
        }
        Subject::Query { workspace, .. } => {
            is_query(e) && str_field(e, "workspace") == Some(workspace)
        }
        Subject::Incident { workspace, .. } => {
            (e.kind == events::SENTINEL_ITEM_STORED || e.kind == events::SENTINEL_OPERATION_REFUSED)
                && events::sentinel_workspace(e) == Some(workspace)
        }
        Subject::Removed {
            workspace, cause, ..
        } => e.kind == removal_kind(*cause) && str_field(e, "workspace") == Some(workspace),
        Subject::SavedSearches { workspace, .. } => {
            (e.kind == events::SAVED_SEARCHES_READ || e.kind == events::SAVED_SEARCHES_UNREADABLE)
                && str_field(e, "workspace") == Some(workspace)
        }
        _ => false,
    };
    events
        .iter()
        .filter(|e| e.at_ms <= until.0)
        .rfind(related)
        .map(|e| vec![Evidence::of(e, "last seen instead")])
        .unwrap_or_default()
}

fn judge_step(
    events: &[Event],
    step: &str,
    outcome: Success,
    error_code: Option<&str>,
) -> Judgement {
    let result = events.iter().find(|e| {
        (e.kind == events::SCENARIO_STEP_OK || e.kind == events::SCENARIO_STEP_FAILED)
            && str_field(e, "step") == Some(step)
    });
    let Some(e) = result else {
        return (
            Outcome::Broken,
            format!("no result was recorded for step {step}"),
            vec![],
        );
    };
    let succeeded = e.kind == events::SCENARIO_STEP_OK;
    let ev = vec![Evidence::of(e, "the step's answer")];
    match (outcome, succeeded) {
        (Success::Succeeds, true) => (Outcome::Held, format!("step {step} succeeded"), ev),
        (Success::Succeeds, false) => (Outcome::Broken, e.message.clone(), ev),
        (Success::Fails, true) => (
            Outcome::Broken,
            format!("step {step} succeeded, but was expected to fail"),
            ev,
        ),
        (Success::Fails, false) => {
            let code = str_field(e, "error_code").unwrap_or("");
            match error_code {
                Some(expected) if expected != code => (
                    Outcome::Broken,
                    format!("step {step} failed with {code:?}, expected {expected:?}"),
                    ev,
                ),
                _ => (Outcome::Held, e.message.clone(), ev),
            }
        }
    }
}

fn judge_no_loss(
    events: &[Event],
    run: RunSpan,
    before: SimTime,
    workspace: Option<&str>,
) -> Judgement {
    let in_scope = |e: &Event| workspace.is_none() || str_field(e, "workspace") == workspace;
    let mut broken: Vec<Evidence> = Vec::new();
    let mut buffered_before: std::collections::BTreeMap<String, u64> = Default::default();
    let mut flushed: std::collections::BTreeMap<String, u64> = Default::default();
    let mut accepted = 0u64;
    for e in events.iter().filter(|e| in_scope(e)) {
        let ws = str_field(e, "workspace").unwrap_or("").to_string();
        match e.kind.as_str() {
            events::INGEST_BATCH if e.at_ms < before.0 => {
                accepted += u64_field(e, "accepted");
                if u64_field(e, "dropped") > 0 {
                    broken.push(Evidence::of(
                        e,
                        "records accepted before the deadline were dropped",
                    ));
                }
                *buffered_before.entry(ws).or_default() += u64_field(e, "buffered");
            }
            events::BUFFER_FLUSHED => *flushed.entry(ws).or_default() += u64_field(e, "records"),
            events::BUFFER_EXPIRED
                if events::fields(e)
                    .get("ingested_from_ms")
                    .and_then(|v| v.as_i64())
                    .is_some_and(|t| t < before.0) =>
            {
                broken.push(Evidence::of(
                    e,
                    "buffered records from before the deadline expired",
                ));
            }
            _ => {}
        }
    }
    for (ws, buffered) in &buffered_before {
        let written = flushed.get(ws).copied().unwrap_or(0);
        if written < *buffered {
            let last = events.iter().rev().find(|e| {
                e.kind == events::INGEST_BATCH
                    && str_field(e, "workspace") == Some(ws)
                    && e.at_ms < before.0
            });
            if let Some(e) = last {
                broken.push(Evidence::of(
                    e,
                    format!("{buffered} records of {ws} buffered before the deadline, only {written} written by the end"),
                ));
            }
        }
    }
    if broken.is_empty() {
        (
            Outcome::Held,
            format!(
                "{accepted} records accepted before {}; none dropped, every buffered one written",
                label(run, before)
            ),
            vec![],
        )
    } else {
        (
            Outcome::Broken,
            format!("records accepted before {} were lost", label(run, before)),
            broken,
        )
    }
}
