//! The agent's sending state machine (seed 003), free of I/O: time is an argument.
//!
//! Seed 003: when the service cannot be reached "the collected data is stored locally in a
//! temporary cache ... They try to resend the data every eight minutes for two hours. ... If the
//! service can't process the data after two hours, the agents will queue the data. If the queue
//! becomes full, the agent starts dropping data types, starting with performance data."
//!
//! Phases ([`Phase`]): `Connected` uploads every `send_interval`. The first failed send starts
//! `Retrying`: one attempt every `retry_interval`; a failure at or after `retry_for` since the
//! first failure moves the data to `Queueing`. While queueing the agent keeps probing every
//! `retry_interval` (the seed does not say how queued data leaves the queue; probing at the retry
//! interval is what lets it drain when the service returns). A successful send returns to
//! `Connected` and drains what is held, `batch_records_max` records per attempt.
//!
//! Bounds and drop order: the temporary cache and the queue are one store bounded by
//! `queue_capacity_records` (records in flight count too; the seed names only the queue's limit,
//! and an unbounded cache would break the house rule of a limit on every queue). When the store
//! is over capacity the agent drops the oldest record of `drop_first_table` (Perf); when none is
//! left, the oldest record of any other table. Oldest-first keeps the most recent picture of the
//! machine. A batch the service refuses (INVALID_ARGUMENT etc.) cannot succeed by retrying and is
//! dropped with the service's reason.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cmksim_sim::profile::AgentProfile;
use cmksim_sim::SimTime;

use super::events::AgentEvent;
use crate::record::Record;

/// The timings and bounds of one agent (from `Profile.agent` and the agent's config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentPolicy {
    pub retry_interval: Duration,
    pub retry_for: Duration,
    pub queue_capacity_records: u64,
    pub drop_first_table: String,
    pub send_interval: Duration,
    pub batch_records_max: usize,
}

impl AgentPolicy {
    /// The policy of a profile, with the agent's own upload cadence.
    pub fn from_profile(
        profile: &AgentProfile,
        send_interval: Duration,
        batch_records_max: usize,
    ) -> AgentPolicy {
        AgentPolicy {
            retry_interval: profile.retry_interval,
            retry_for: profile.retry_for,
            queue_capacity_records: profile.queue_capacity_records,
            drop_first_table: profile.drop_first_table.clone(),
            send_interval,
            batch_records_max: batch_records_max.max(1),
        }
    }
}

/// Where the agent is in its sending cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connected,
    Retrying {
        failing_since: SimTime,
        attempts: u32,
    },
    Queueing {
        failing_since: SimTime,
        attempts: u32,
    },
}

/// One batch of an attempt: records of one table, in collection order.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentBatch {
    pub table: String,
    pub records: Vec<Record>,
}

/// The batches of one upload attempt, to be sent in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub batches: Vec<AgentBatch>,
}

/// What happened to one batch of an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum BatchResult {
    /// The service took it; its per-record outcomes.
    Delivered {
        stored: u64,
        buffered: u64,
        dropped: BTreeMap<String, u64>,
    },
    /// The service could not take data (unavailable, timeout): retry later.
    Failed { reason: String },
    /// The service refused the batch: retrying cannot help.
    Rejected { reason: String },
    /// Not sent because an earlier batch of the attempt failed.
    NotSent,
}

/// Running totals, for tests, reports and the no-silent-loss check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    pub collected: u64,
    pub delivered: u64,
    /// Dropped by the agent, by (table, reason).
    pub dropped: BTreeMap<(String, String), u64>,
    pub failed_attempts: u64,
}

impl AgentStats {
    /// All records the agent dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

#[derive(Clone, Debug)]
struct Held {
    table: String,
    record: Record,
}

/// The agent's sending state machine.
#[derive(Debug)]
pub struct AgentMachine {
    agent: String,
    workspace: String,
    policy: AgentPolicy,
    phase: Phase,
    next_attempt_at: SimTime,
    next_seq: u64,
    held: BTreeMap<u64, Held>,
    /// Sequence numbers of held records of `drop_first_table`.
    drop_first: BTreeSet<u64>,
    in_flight: Vec<(String, Vec<(u64, Held)>)>,
    stats: AgentStats,
}

impl AgentMachine {
    /// A connected agent whose first upload is due at `start + send_interval`.
    pub fn new(agent: &str, workspace: &str, policy: AgentPolicy, start: SimTime) -> AgentMachine {
        AgentMachine {
            agent: agent.to_string(),
            workspace: workspace.to_string(),
            next_attempt_at: start.add(policy.send_interval),
            policy,
            phase: Phase::Connected,
            next_seq: 0,
            held: BTreeMap::new(),
            drop_first: BTreeSet::new(),
            in_flight: Vec::new(),
            stats: AgentStats::default(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn stats(&self) -> &AgentStats {
        &self.stats
    }

    /// Records held (cache or queue), in flight excluded.
    pub fn held_records(&self) -> u64 {
        self.held.len() as u64
    }

    /// Held records per table.
    pub fn held_by_table(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for h in self.held.values() {
            *out.entry(h.table.clone()).or_insert(0) += 1;
        }
        out
    }

    /// When the machine next wants to send (`None` when nothing is held).
    pub fn next_wake(&self) -> Option<SimTime> {
        (!self.held.is_empty() && self.in_flight.is_empty()).then_some(self.next_attempt_at)
    }

    fn in_flight_records(&self) -> usize {
        self.in_flight.iter().map(|(_, r)| r.len()).sum()
    }

    /// Adds collected records; queues them while queueing, drops when over capacity.
    pub fn collect(&mut self, _now: SimTime, records: Vec<(String, Record)>) -> Vec<AgentEvent> {
        let count = records.len() as u64;
        self.stats.collected += count;
        for (table, record) in records {
            let seq = self.next_seq;
            self.next_seq += 1;
            if table == self.policy.drop_first_table {
                self.drop_first.insert(seq);
            }
            self.held.insert(seq, Held { table, record });
        }
        let mut events = Vec::new();
        if count > 0 && matches!(self.phase, Phase::Queueing { .. }) {
            events.push(self.queued_event(count, "collected while the service cannot take data"));
        }
        events.extend(self.enforce_capacity());
        events
    }

    fn queued_event(&self, records: u64, why: &str) -> AgentEvent {
        AgentEvent::Queued {
            agent: self.agent.clone(),
            workspace: self.workspace.clone(),
            records,
            queue_records: self.held.len() as u64,
            queue_capacity_records: self.policy.queue_capacity_records,
            why: why.to_string(),
        }
    }

    fn enforce_capacity(&mut self) -> Vec<AgentEvent> {
        let capacity = self.policy.queue_capacity_records as usize;
        let mut drops: BTreeMap<(String, bool), u64> = BTreeMap::new();
        // Bounded: each pass removes one held record.
        while self.held.len() + self.in_flight_records() > capacity {
            let (seq, first) = match self.drop_first.pop_first() {
                Some(seq) => (seq, true),
                None => match self.held.keys().next() {
                    Some(seq) => (*seq, false),
                    None => break,
                },
            };
            if let Some(h) = self.held.remove(&seq) {
                *drops.entry((h.table, first)).or_insert(0) += 1;
            }
        }
        drops
            .into_iter()
            .map(|((table, first), records)| {
                let reason = if first {
                    format!(
                        "queue full ({} records): {} data is dropped first, oldest first",
                        self.policy.queue_capacity_records, self.policy.drop_first_table
                    )
                } else {
                    format!(
                        "queue full ({} records) and no {} data left: oldest records dropped",
                        self.policy.queue_capacity_records, self.policy.drop_first_table
                    )
                };
                *self
                    .stats
                    .dropped
                    .entry((table.clone(), "queue full".to_string()))
                    .or_insert(0) += records;
                AgentEvent::Dropped {
                    agent: self.agent.clone(),
                    workspace: self.workspace.clone(),
                    table,
                    records,
                    reason,
                }
            })
            .collect()
    }

    /// Takes the next attempt's batches if an upload is due at `now`.
    pub fn begin_attempt(&mut self, now: SimTime) -> Option<Attempt> {
        if !self.in_flight.is_empty() || self.held.is_empty() || now < self.next_attempt_at {
            return None;
        }
        let seqs: Vec<u64> = self
            .held
            .keys()
            .take(self.policy.batch_records_max)
            .copied()
            .collect();
        let mut order: Vec<String> = Vec::new();
        let mut by_table: BTreeMap<String, Vec<(u64, Held)>> = BTreeMap::new();
        for seq in seqs {
            if let Some(h) = self.held.remove(&seq) {
                self.drop_first.remove(&seq);
                if !by_table.contains_key(&h.table) {
                    order.push(h.table.clone());
                }
                by_table.entry(h.table.clone()).or_default().push((seq, h));
            }
        }
        self.in_flight = order
            .into_iter()
            .filter_map(|t| by_table.remove(&t).map(|r| (t, r)))
            .collect();
        let batches = self
            .in_flight
            .iter()
            .map(|(table, records)| AgentBatch {
                table: table.clone(),
                records: records.iter().map(|(_, h)| h.record.clone()).collect(),
            })
            .collect();
        Some(Attempt { batches })
    }

    /// Applies the results of the attempt (one per batch, in order) at `now`.
    ///
    /// # Panics
    /// If no attempt is in flight or the result count differs from the batch count (a driver bug).
    pub fn finish_attempt(&mut self, now: SimTime, results: Vec<BatchResult>) -> Vec<AgentEvent> {
        assert_eq!(results.len(), self.in_flight.len(), "one result per batch");
        let prior_failures = match self.phase {
            Phase::Connected => 0,
            Phase::Retrying { attempts, .. } | Phase::Queueing { attempts, .. } => attempts,
        };
        let mut events = Vec::new();
        let mut failure: Option<String> = None;
        let in_flight = std::mem::take(&mut self.in_flight);
        for ((table, records), result) in in_flight.into_iter().zip(results) {
            let n = records.len() as u64;
            match result {
                BatchResult::Delivered {
                    stored,
                    buffered,
                    dropped,
                } => {
                    self.stats.delivered += n;
                    events.push(AgentEvent::Delivered {
                        agent: self.agent.clone(),
                        workspace: self.workspace.clone(),
                        table,
                        records: n,
                        stored,
                        buffered,
                        dropped,
                        after_failed_attempts: prior_failures,
                    });
                }
                BatchResult::Rejected { reason } => {
                    *self
                        .stats
                        .dropped
                        .entry((table.clone(), "rejected".to_string()))
                        .or_insert(0) += n;
                    events.push(AgentEvent::Dropped {
                        agent: self.agent.clone(),
                        workspace: self.workspace.clone(),
                        table,
                        records: n,
                        reason: format!("refused by the service: {reason}"),
                    });
                }
                BatchResult::Failed { reason } => {
                    failure.get_or_insert(reason);
                    self.restore(records);
                }
                BatchResult::NotSent => self.restore(records),
            }
        }
        match failure {
            None => {
                self.phase = Phase::Connected;
                self.next_attempt_at = if self.held.is_empty() {
                    now.add(self.policy.send_interval)
                } else {
                    now
                };
            }
            Some(reason) => {
                self.stats.failed_attempts += 1;
                events.extend(self.on_failure(now, reason));
            }
        }
        events.extend(self.enforce_capacity());
        events
    }

    fn restore(&mut self, records: Vec<(u64, Held)>) {
        for (seq, h) in records {
            if h.table == self.policy.drop_first_table {
                self.drop_first.insert(seq);
            }
            self.held.insert(seq, h);
        }
    }

    fn on_failure(&mut self, now: SimTime, reason: String) -> Vec<AgentEvent> {
        self.next_attempt_at = now.add(self.policy.retry_interval);
        let (failing_since, attempts, queueing) = match self.phase {
            Phase::Connected => (now, 1, false),
            Phase::Retrying {
                failing_since,
                attempts,
            } => (failing_since, attempts + 1, false),
            Phase::Queueing {
                failing_since,
                attempts,
            } => (failing_since, attempts + 1, true),
        };
        let mut events = Vec::new();
        if !queueing && now.since(failing_since) >= self.policy.retry_for {
            self.phase = Phase::Queueing {
                failing_since,
                attempts,
            };
            let why = format!(
                "the service could not take data for {}s (retry_for)",
                self.policy.retry_for.as_secs()
            );
            events.push(self.queued_event(self.held.len() as u64, &why));
            return events;
        }
        self.phase = if queueing {
            Phase::Queueing {
                failing_since,
                attempts,
            }
        } else {
            Phase::Retrying {
                failing_since,
                attempts,
            }
        };
        events.push(AgentEvent::Retry {
            agent: self.agent.clone(),
            workspace: self.workspace.clone(),
            attempt: attempts,
            reason,
            records_held: self.held.len() as u64,
            next_attempt_at: self.next_attempt_at,
            retry_until: (!queueing).then(|| failing_since.add(self.policy.retry_for)),
        });
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Value;
    use cmksim_sim::EventKind;
    use cmksim_sim::Profile;

    const MIN: u64 = 60;

    fn policy(capacity: u64) -> AgentPolicy {
        let mut p = Profile::azure_2020().agent;
        p.queue_capacity_records = capacity;
        AgentPolicy::from_profile(&p, Duration::from_secs(MIN), 100)
    }

    fn at(minutes: u64) -> SimTime {
        SimTime(0).add(Duration::from_secs(minutes * MIN))
    }

    fn rec(table: &str, minute: u64) -> (String, Record) {
        (
            table.to_string(),
            Record::new(at(minute)).with("Computer", Value::String("vm".into())),
        )
    }

    fn fail(m: &mut AgentMachine, now: SimTime) -> Vec<AgentEvent> {
        let attempt = m.begin_attempt(now).expect("an attempt is due");
        let mut results = vec![BatchResult::Failed {
            reason: "unavailable".into(),
        }];
        results.resize(attempt.batches.len(), BatchResult::NotSent);
        m.finish_attempt(now, results)
    }

    #[test]
    fn retries_every_interval_for_the_retry_period_then_queues() {
        let mut m = AgentMachine::new("a1", "ws1", policy(10_000), at(0));
        m.collect(at(0), vec![rec("Heartbeat", 0)]);
        assert!(
            m.begin_attempt(at(0)).is_none(),
            "not due before send_interval"
        );
        let events = fail(&mut m, at(1));
        assert_eq!(events[0].kind(), "agent.retry");
        assert!(matches!(m.phase(), Phase::Retrying { attempts: 1, .. }));
        let mut retry_times = Vec::new();
        // 15 retries at 8, 16, ..., 120 minutes after the first failure.
        for k in 1..=15u64 {
            let now = at(1 + 8 * k);
            assert!(
                m.begin_attempt(SimTime(now.0 - 1)).is_none(),
                "not before the interval"
            );
            let events = fail(&mut m, now);
            retry_times.push(now);
            if k < 15 {
                assert_eq!(events[0].kind(), "agent.retry", "attempt {k}");
            } else {
                assert_eq!(events[0].kind(), "agent.queued");
                assert!(events[0].narrate().contains("retry_for"));
            }
        }
        assert!(matches!(m.phase(), Phase::Queueing { attempts: 16, .. }));
        // Collected while queueing: queued events.
        let events = m.collect(at(125), vec![rec("Heartbeat", 125)]);
        assert_eq!(events[0].kind(), "agent.queued");
        // The service returns: the next probe delivers everything, in order, and reconnects.
        let attempt = m.begin_attempt(at(129)).unwrap();
        let times: Vec<SimTime> = attempt.batches[0]
            .records
            .iter()
            .map(|r| r.time_generated)
            .collect();
        assert_eq!(times, vec![at(0), at(125)]);
        let events = m.finish_attempt(
            at(129),
            vec![BatchResult::Delivered {
                stored: 2,
                buffered: 0,
                dropped: BTreeMap::new(),
            }],
        );
        assert_eq!(events[0].kind(), "agent.delivered");
        assert!(events[0].narrate().contains("after 16 failed attempts"));
        assert_eq!(m.phase(), Phase::Connected);
        assert_eq!(m.stats().delivered, 2);
    }

    #[test]
    fn full_queue_drops_perf_first_then_the_oldest() {
        let mut m = AgentMachine::new("a1", "ws1", policy(4), at(0));
        m.collect(
            at(0),
            vec![
                rec("Heartbeat", 0),
                rec("Perf", 0),
                rec("Event", 0),
                rec("Perf", 1),
            ],
        );
        assert!(m.stats().dropped.is_empty());
        let events = m.collect(at(2), vec![rec("Heartbeat", 2)]);
        assert_eq!(events.len(), 1);
        assert!(
            matches!(&events[0], AgentEvent::Dropped { table, records: 1, .. } if table == "Perf")
        );
        let events = m.collect(at(3), vec![rec("Heartbeat", 3), rec("Perf", 3)]);
        // Two over: the remaining old Perf (minute 1) and the new Perf (minute 3) go first.
        assert!(
            matches!(&events[0], AgentEvent::Dropped { table, records: 2, .. } if table == "Perf")
        );
        assert_eq!(m.held_by_table().get("Perf"), None);
        // No Perf left: the oldest other record (the Heartbeat of minute 0) goes.
        let events = m.collect(at(4), vec![rec("Event", 4)]);
        assert!(
            matches!(&events[0], AgentEvent::Dropped { table, records: 1, reason, .. }
            if table == "Heartbeat" && reason.contains("oldest"))
        );
        assert_eq!(m.held_records(), 4);
        assert_eq!(
            m.stats().collected,
            m.stats().dropped_total() + m.held_records()
        );
    }

    #[test]
    fn rejected_batches_are_dropped_and_partial_attempts_keep_order() {
        let mut m = AgentMachine::new("a1", "ws1", policy(100), at(0));
        m.collect(
            at(0),
            vec![rec("Heartbeat", 0), rec("Perf", 0), rec("Event", 0)],
        );
        let attempt = m.begin_attempt(at(1)).unwrap();
        let tables: Vec<&str> = attempt.batches.iter().map(|b| b.table.as_str()).collect();
        assert_eq!(tables, vec!["Heartbeat", "Perf", "Event"]);
        let events = m.finish_attempt(
            at(1),
            vec![
                BatchResult::Rejected {
                    reason: "UnknownColumn".into(),
                },
                BatchResult::Failed {
                    reason: "unavailable".into(),
                },
                BatchResult::NotSent,
            ],
        );
        let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, vec!["agent.dropped", "agent.retry"]);
        assert_eq!(m.held_records(), 2);
        let attempt = m.begin_attempt(at(9)).unwrap();
        let tables: Vec<&str> = attempt.batches.iter().map(|b| b.table.as_str()).collect();
        assert_eq!(tables, vec!["Perf", "Event"]);
    }
}
