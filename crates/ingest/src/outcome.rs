//! The truth about each record: stored (under which key), buffered, or dropped (why).
//!
//! The real service answers success and drops silently; the simulator answers per record, and the
//! same outcome feeds the response, the metrics and the event log, so the three always agree
//! (invariant 1: accepted = stored + buffered + dropped).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::routing::Destination;

/// Which key protects a stored record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyProtection {
    /// The Microsoft-managed key.
    Mmk,
    /// The customer's key: its key id (vault URI + name) and version.
    Cmk { kid: String, version: String },
}

impl fmt::Display for KeyProtection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProtection::Mmk => f.write_str("the Microsoft-managed key"),
            KeyProtection::Cmk { kid, version } => write!(f, "CMK {kid} version {version}"),
        }
    }
}

/// Why a record was dropped: the contract's enum (`common.v1.DropReason`), whose
/// [`DropReason::label`] is the one spelling in responses, metrics and events.
pub use cmksim_proto::common::v1::DropReason;

/// One record's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    Stored {
        destination: Destination,
        key: KeyProtection,
    },
    /// Held by storage (under the MMK) while the cluster is unavailable.
    Buffered { destination: Destination },
    Dropped {
        destination: Option<Destination>,
        reason: DropReason,
        detail: String,
    },
}

impl RecordOutcome {
    /// `stored`, `buffered` or `dropped`.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordOutcome::Stored { .. } => "stored",
            RecordOutcome::Buffered { .. } => "buffered",
            RecordOutcome::Dropped { .. } => "dropped",
        }
    }
}

/// `count` consecutive records of a batch with one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutcomeRun {
    pub outcome: RecordOutcome,
    pub count: u64,
}

/// A batch's outcomes, every record's in request order, kept as runs of equal outcomes.
///
/// Why runs (issue 15): a batch's records nearly always share one outcome (all stored under the
/// same key, or all dropped for one reason), and one outcome per record — built by storage,
/// encoded, decoded, converted and encoded again for the caller — cost more than the append it
/// reported. Runs keep the per-record truth exact: record `i`'s outcome is the one of the run
/// covering position `i` ([`Outcomes::get`]). Bound: at most one run per record, and two
/// neighbouring runs always differ ([`Outcomes::push_run`] merges equal ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    runs: Vec<OutcomeRun>,
    records: u64,
}

impl Outcomes {
    /// No records.
    pub fn new() -> Outcomes {
        Outcomes::default()
    }

    /// `count` records with the same outcome.
    pub fn uniform(outcome: RecordOutcome, count: u64) -> Outcomes {
        let mut outcomes = Outcomes::new();
        outcomes.push_run(outcome, count);
        outcomes
    }

    /// Appends one record's outcome.
    pub fn push(&mut self, outcome: RecordOutcome) {
        self.push_run(outcome, 1);
    }

    /// Appends `count` records with `outcome` (nothing when `count` is 0); merged into the last
    /// run when it has the same outcome.
    pub fn push_run(&mut self, outcome: RecordOutcome, count: u64) {
        if count == 0 {
            return;
        }
        self.records += count;
        match self.runs.last_mut() {
            Some(last) if last.outcome == outcome => last.count += count,
            _ => self.runs.push(OutcomeRun { outcome, count }),
        }
    }

    /// The records accounted (the runs' counts summed).
    pub fn len(&self) -> u64 {
        self.records
    }

    /// No record accounted.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The runs, in request order.
    pub fn runs(&self) -> &[OutcomeRun] {
        &self.runs
    }

    /// Records whose outcome is of `kind` (`stored`, `buffered` or `dropped`).
    pub fn count(&self, kind: &str) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.outcome.kind() == kind)
            .map(|r| r.count)
            .sum()
    }

    /// Record `index`'s outcome (`None` past the last record).
    pub fn get(&self, index: u64) -> Option<&RecordOutcome> {
        let mut start = 0;
        for run in &self.runs {
            if index < start + run.count {
                return Some(&run.outcome);
            }
            start += run.count;
        }
        None
    }

    /// Every record's outcome, in request order (one item per record).
    pub fn iter(&self) -> impl Iterator<Item = &RecordOutcome> + '_ {
        self.runs
            .iter()
            .flat_map(|r| std::iter::repeat_n(&r.outcome, r.count as usize))
    }

    /// Keeps the first `records` records' outcomes.
    pub fn truncate(&mut self, records: u64) {
        if records >= self.records {
            return;
        }
        let mut kept = 0;
        let mut runs = 0;
        for run in &mut self.runs {
            if kept >= records {
                break;
            }
            run.count = run.count.min(records - kept);
            kept += run.count;
            runs += 1;
        }
        self.runs.truncate(runs);
        self.records = records;
    }
}

impl FromIterator<RecordOutcome> for Outcomes {
    fn from_iter<I: IntoIterator<Item = RecordOutcome>>(iter: I) -> Outcomes {
        let mut outcomes = Outcomes::new();
        for outcome in iter {
            outcomes.push(outcome);
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> RecordOutcome {
        RecordOutcome::Stored {
            destination: Destination::Shared,
            key: KeyProtection::Mmk,
        }
    }

    fn dropped(reason: DropReason) -> RecordOutcome {
        RecordOutcome::Dropped {
            destination: None,
            reason,
            detail: reason.label().to_string(),
        }
    }

    #[test]
    fn runs_merge_equal_neighbours_and_answer_every_record() {
        let per_record = vec![
            stored(),
            stored(),
            dropped(DropReason::Revoked),
            dropped(DropReason::Revoked),
            dropped(DropReason::Revoked),
            dropped(DropReason::BufferFull),
            stored(),
        ];
        let outcomes: Outcomes = per_record.iter().cloned().collect();
        assert_eq!(outcomes.len(), 7);
        assert_eq!(
            outcomes.runs().iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![2, 3, 1, 1]
        );
        assert_eq!(outcomes.iter().cloned().collect::<Vec<_>>(), per_record);
        for (i, o) in per_record.iter().enumerate() {
            assert_eq!(outcomes.get(i as u64), Some(o));
        }
        assert_eq!(outcomes.get(7), None);
        assert_eq!(
            (
                outcomes.count("stored"),
                outcomes.count("dropped"),
                outcomes.count("buffered")
            ),
            (3, 4, 0)
        );
        let mut cut = outcomes.clone();
        cut.truncate(4);
        assert_eq!(cut.iter().cloned().collect::<Vec<_>>(), per_record[..4]);
        assert_eq!(cut.runs().len(), 2);
        let mut empty = Outcomes::uniform(stored(), 0);
        assert!(empty.is_empty() && empty.runs().is_empty());
        empty.truncate(0);
        assert!(empty.is_empty());
    }
}
