//! Reading a batch's outcomes, which the append and ingest answers carry as runs of equal
//! outcomes (`storage.v1.AppendResponse.runs`, `ingest.v1.IngestResponse.outcome_runs`).
//!
//! Why here: the runs are part of the contract, and every reader (the ingest front end, the
//! agents' driver, the REST door's `x-cmksim-outcome` header, tests) needs the same two
//! readings of them — record `i`'s outcome, and the dropped records by reason — so they are
//! written once, beside the messages.

use std::collections::BTreeMap;

use crate::ingest::v1 as ingest;
use crate::storage::v1 as storage;

/// Each record's outcome in request order: `count` items per run (a run whose outcome is unset
/// yields `None` for each of its records).
fn expand<'a, R: 'a, O: 'a>(
    runs: &'a [R],
    parts: impl Fn(&'a R) -> (Option<&'a O>, u64) + 'a,
) -> impl Iterator<Item = Option<&'a O>> + 'a {
    runs.iter().flat_map(move |run| {
        let (outcome, count) = parts(run);
        std::iter::repeat_n(outcome, usize::try_from(count).unwrap_or(usize::MAX))
    })
}

impl ingest::IngestResponse {
    /// Every record's outcome, in request order (one item per record).
    pub fn record_outcomes(&self) -> impl Iterator<Item = Option<&ingest::RecordOutcome>> + '_ {
        expand(&self.outcome_runs, |r| (r.outcome.as_ref(), r.count))
    }

    /// Dropped records by reason label (`revoked`, `not-provisioned`, ...), as the metrics and
    /// events name them.
    pub fn dropped_by_reason(&self) -> BTreeMap<String, u64> {
        let mut dropped = BTreeMap::new();
        for run in &self.outcome_runs {
            if let Some(ingest::record_outcome::Outcome::Dropped(d)) =
                run.outcome.as_ref().and_then(|o| o.outcome.as_ref())
            {
                *dropped.entry(d.reason_label.clone()).or_insert(0) += run.count;
            }
        }
        dropped
    }
}

impl storage::AppendResponse {
    /// Every record's outcome, in request order (one item per record).
    pub fn record_outcomes(&self) -> impl Iterator<Item = Option<&storage::RecordOutcome>> + '_ {
        expand(&self.runs, |r| (r.outcome.as_ref(), u64::from(r.count)))
    }

    /// The records the answer accounts (the runs' counts summed).
    pub fn records(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.count)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::v1::DropReason;

    fn dropped(reason: DropReason) -> ingest::RecordOutcome {
        ingest::RecordOutcome {
            outcome: Some(ingest::record_outcome::Outcome::Dropped(ingest::Dropped {
                storage: None,
                reason: reason as i32,
                reason_label: reason.label().to_string(),
                detail: String::new(),
            })),
        }
    }

    #[test]
    fn runs_read_record_by_record_and_by_reason() {
        let stored = ingest::RecordOutcome {
            outcome: Some(ingest::record_outcome::Outcome::Stored(
                ingest::Stored::default(),
            )),
        };
        let response = ingest::IngestResponse {
            outcome_runs: vec![
                ingest::OutcomeRun {
                    outcome: Some(stored.clone()),
                    count: 2,
                },
                ingest::OutcomeRun {
                    outcome: Some(dropped(DropReason::Revoked)),
                    count: 3,
                },
                ingest::OutcomeRun {
                    outcome: None,
                    count: 1,
                },
                ingest::OutcomeRun {
                    outcome: Some(dropped(DropReason::NotProvisioned)),
                    count: 1,
                },
            ],
            ..Default::default()
        };
        let each: Vec<_> = response.record_outcomes().collect();
        assert_eq!(each.len(), 7);
        assert_eq!(each[1], Some(&stored));
        assert_eq!(each[2], Some(&dropped(DropReason::Revoked)));
        assert_eq!(each[5], None);
        assert_eq!(
            response.dropped_by_reason(),
            BTreeMap::from([
                ("not-provisioned".to_string(), 1),
                ("revoked".to_string(), 3)
            ])
        );
        let append = storage::AppendResponse {
            runs: vec![
                storage::OutcomeRun {
                    outcome: None,
                    count: 4,
                },
                storage::OutcomeRun {
                    outcome: Some(storage::RecordOutcome::default()),
                    count: 2,
                },
            ],
            ..Default::default()
        };
        assert_eq!(append.records(), 6);
        assert_eq!(append.record_outcomes().filter(|o| o.is_some()).count(), 2);
    }
}
