//! Counters of what the front end did with every record, per workspace and outcome, rendered as
//! Prometheus text (exposition format 0.0.4) for live mode and as events in simulation.
//!
//! Every counter is keyed by a `BTreeMap`, so the rendering is sorted by metric, then label values,
//! and byte-identical for the same history. The counters also carry invariant 1 of SPEC §8:
//! [`IngestMetrics::balance`] checks accepted = stored + buffered + dropped for every workspace.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::outcome::{Outcomes, RecordOutcome};

/// Per-workspace record counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkspaceCounters {
    pub accepted: u64,
    pub stored: u64,
    pub buffered: u64,
    /// Dropped records by reason label.
    pub dropped: BTreeMap<String, u64>,
}

impl WorkspaceCounters {
    /// All dropped records.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// The front end's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IngestMetrics {
    pub records: BTreeMap<String, WorkspaceCounters>,
    /// Refused batches by (workspace, inner error code).
    pub batches_rejected: BTreeMap<(String, String), u64>,
    /// Queries by (workspace, result: `ok` or an inner error code).
    pub queries: BTreeMap<(String, String), u64>,
}

impl IngestMetrics {
    /// Counts an accepted batch's outcomes.
    pub fn count_outcomes(&mut self, workspace: &str, outcomes: &Outcomes) {
        let counters = self.records.entry(workspace.to_string()).or_default();
        counters.accepted += outcomes.len();
        for run in outcomes.runs() {
            match &run.outcome {
                RecordOutcome::Stored { .. } => counters.stored += run.count,
                RecordOutcome::Buffered { .. } => counters.buffered += run.count,
                RecordOutcome::Dropped { reason, .. } => {
                    *counters
                        .dropped
                        .entry(reason.label().to_string())
                        .or_insert(0) += run.count
                }
            }
        }
    }

    /// Counts a refused batch.
    pub fn count_rejected(&mut self, workspace: &str, code: &str) {
        *self
            .batches_rejected
            .entry((workspace.to_string(), code.to_string()))
            .or_insert(0) += 1;
    }

    /// Counts a query and its result.
    pub fn count_query(&mut self, workspace: &str, result: &str) {
        *self
            .queries
            .entry((workspace.to_string(), result.to_string()))
            .or_insert(0) += 1;
    }

    /// Invariant 1 (no silent loss): the workspaces where accepted ≠ stored + buffered + dropped.
    pub fn balance(&self) -> Result<(), Vec<String>> {
        let broken: Vec<String> = self
            .records
            .iter()
            .filter(|(_, c)| c.accepted != c.stored + c.buffered + c.dropped_total())
            .map(|(ws, _)| ws.clone())
            .collect();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }

    /// The counters in Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cmksim_ingest_records_total Records by workspace and outcome (accepted = stored + buffered + dropped).\n");
        out.push_str("# TYPE cmksim_ingest_records_total counter\n");
        for (ws, c) in &self.records {
            let mut line = |outcome: &str, reason: Option<&str>, value: u64| {
                let mut labels = vec![("outcome", outcome.to_string())];
                if let Some(reason) = reason {
                    labels.push(("reason", reason.to_string()));
                }
                labels.push(("workspace", ws.clone()));
                sample(&mut out, "cmksim_ingest_records_total", &labels, value);
            };
            line("accepted", None, c.accepted);
            line("buffered", None, c.buffered);
            for (reason, n) in &c.dropped {
                line("dropped", Some(reason), *n);
            }
            line("stored", None, c.stored);
        }
        out.push_str("# HELP cmksim_ingest_batches_rejected_total Batches refused whole, by workspace and error.\n");
        out.push_str("# TYPE cmksim_ingest_batches_rejected_total counter\n");
        for ((ws, code), n) in &self.batches_rejected {
            let labels = [("error", code.clone()), ("workspace", ws.clone())];
            sample(
                &mut out,
                "cmksim_ingest_batches_rejected_total",
                &labels,
                *n,
            );
        }
        out.push_str("# HELP cmksim_query_total Queries by workspace and result.\n");
        out.push_str("# TYPE cmksim_query_total counter\n");
        for ((ws, result), n) in &self.queries {
            let labels = [("result", result.clone()), ("workspace", ws.clone())];
            sample(&mut out, "cmksim_query_total", &labels, *n);
        }
        out
    }
}

/// One sample line; labels must be given sorted by name.
fn sample(out: &mut String, name: &str, labels: &[(&str, String)], value: u64) {
    debug_assert!(labels.windows(2).all(|w| w[0].0 < w[1].0), "labels sorted");
    out.push_str(name);
    out.push('{');
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{label}=\"{}\"", escape_label(value));
    }
    let _ = writeln!(out, "}} {value}");
}

/// Label-value escaping of format 0.0.4: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{DropReason, KeyProtection};
    use crate::routing::Destination;

    #[test]
    fn renders_sorted_and_balanced() {
        let mut m = IngestMetrics::default();
        let stored = RecordOutcome::Stored {
            destination: Destination::Shared,
            key: KeyProtection::Mmk,
        };
        let dropped = RecordOutcome::Dropped {
            destination: Some(Destination::Cluster("c1".into())),
            reason: DropReason::Revoked,
            detail: String::new(),
        };
        m.count_outcomes("ws2", &Outcomes::uniform(stored.clone(), 1));
        m.count_outcomes("ws1", &[stored, dropped].into_iter().collect());
        m.count_rejected("ws1", "UnknownTable");
        m.count_query("ws\"1", "ok");
        assert_eq!(m.balance(), Ok(()));
        let text = m.render_prometheus();
        let expected_records = "\
cmksim_ingest_records_total{outcome=\"accepted\",workspace=\"ws1\"} 2
cmksim_ingest_records_total{outcome=\"buffered\",workspace=\"ws1\"} 0
cmksim_ingest_records_total{outcome=\"dropped\",reason=\"revoked\",workspace=\"ws1\"} 1
cmksim_ingest_records_total{outcome=\"stored\",workspace=\"ws1\"} 1
cmksim_ingest_records_total{outcome=\"accepted\",workspace=\"ws2\"} 1
";
        assert!(text.contains(expected_records), "{text}");
        assert!(text.contains(
            "cmksim_ingest_batches_rejected_total{error=\"UnknownTable\",workspace=\"ws1\"} 1\n"
        ));
        assert!(text.contains("cmksim_query_total{result=\"ok\",workspace=\"ws\\\"1\"} 1\n"));
        assert_eq!(text, m.clone().render_prometheus());
        m.records.get_mut("ws1").unwrap().accepted += 1;
        assert_eq!(m.balance(), Err(vec!["ws1".to_string()]));
    }
}
