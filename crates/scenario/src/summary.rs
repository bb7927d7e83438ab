//! The end-of-run summary: expectations, invariants and counts as a plain table, and the exit
//! code that says whether everything held.
//!
//! The table is what a person reads after the narrated timeline scrolled by, and what CI logs
//! keep: fixed-width columns, no colour unless asked, counts per workspace and per cluster so a
//! drop or a denied poll cannot hide in a total.

use std::collections::BTreeMap;

use cmksim_sim::Event;

use crate::events::{self, cluster_of, str_field, u64_field};
use crate::verdict::{Outcome, Verdict};

/// Exit code of a run whose verdicts all held (or did not apply).
pub const EXIT_HELD: i32 = 0;
/// Exit code of a run where an expectation or invariant broke.
pub const EXIT_BROKEN: i32 = 1;

/// Record counts of one workspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    pub batches: u64,
    pub accepted: u64,
    pub stored: u64,
    pub buffered: u64,
    pub dropped: u64,
    pub queries_ok: u64,
    pub queries_failed: u64,
}

/// Poll results of one cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollCounts {
    pub ok: u64,
    pub transient: u64,
    pub denied: u64,
}

/// Counts over a run's events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub workspaces: BTreeMap<String, IngestCounts>,
    pub clusters: BTreeMap<String, PollCounts>,
}

impl Counts {
    pub fn from_events(events: &[Event]) -> Counts {
        let mut c = Counts {
            events: events.len() as u64,
            ..Counts::default()
        };
        for e in events {
            let ws = || str_field(e, "workspace").unwrap_or("").to_string();
            match e.kind.as_str() {
                events::INGEST_BATCH => {
                    let w = c.workspaces.entry(ws()).or_default();
                    w.batches += 1;
                    w.accepted += u64_field(e, "accepted");
                    w.stored += u64_field(e, "stored");
                    w.buffered += u64_field(e, "buffered");
                    w.dropped += u64_field(e, "dropped");
                }
                events::QUERY_OK => c.workspaces.entry(ws()).or_default().queries_ok += 1,
                events::QUERY_FAILED => c.workspaces.entry(ws()).or_default().queries_failed += 1,
                events::POLL_OK | events::POLL_TRANSIENT | events::POLL_DENIED => {
                    let p = c
                        .clusters
                        .entry(cluster_of(e).unwrap_or("").to_string())
                        .or_default();
                    match e.kind.as_str() {
                        events::POLL_OK => p.ok += 1,
                        events::POLL_TRANSIENT => p.transient += 1,
                        _ => p.denied += 1,
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// 0 when every verdict held or did not apply, 1 otherwise.
pub fn exit_code(expectations: &[Verdict], invariants: &[Verdict]) -> i32 {
    if expectations.iter().chain(invariants).all(Verdict::held) {
        EXIT_HELD
    } else {
        EXIT_BROKEN
    }
}

fn mark(outcome: Outcome, color: bool) -> String {
    let (text, code) = match outcome {
        Outcome::Held => ("HELD  ", "\x1b[32m"),
        Outcome::Broken => ("BROKEN", "\x1b[1;31m"),
        Outcome::NotApplicable => ("n/a   ", "\x1b[2m"),
    };
    if color {
        format!("{code}{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The summary table.
pub fn render_summary(
    expectations: &[Verdict],
    invariants: &[Verdict],
    counts: &Counts,
    color: bool,
) -> String {
    let mut out = String::new();
    let section = |out: &mut String, name: &str, verdicts: &[Verdict]| {
        out.push_str(&format!("{name}\n"));
        if verdicts.is_empty() {
            out.push_str("  (none)\n");
        }
        for v in verdicts {
            out.push_str(&format!(
                "  {}  {:<14} {}\n",
                mark(v.outcome, color),
                v.id,
                v.title
            ));
            out.push_str(&format!("          {:<14} {}\n", "", v.detail));
        }
    };
    section(&mut out, "Expectations", expectations);
    section(&mut out, "Invariants", invariants);
    if !counts.workspaces.is_empty() {
        out.push_str("Ingest and query\n");
        out.push_str(&format!(
            "  {:<16} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}\n",
            "workspace",
            "batches",
            "accepted",
            "stored",
            "buffered",
            "dropped",
            "query ok",
            "failed"
        ));
        for (ws, w) in &counts.workspaces {
            out.push_str(&format!(
                "  {:<16} {:>8} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}\n",
                ws,
                w.batches,
                w.accepted,
                w.stored,
                w.buffered,
                w.dropped,
                w.queries_ok,
                w.queries_failed
            ));
        }
    }
    if !counts.clusters.is_empty() {
        out.push_str("Key Vault polls\n");
        out.push_str(&format!(
            "  {:<16} {:>8} {:>10} {:>8}\n",
            "cluster", "ok", "transient", "denied"
        ));
        for (c, p) in &counts.clusters {
            out.push_str(&format!(
                "  {:<16} {:>8} {:>10} {:>8}\n",
                c, p.ok, p.transient, p.denied
            ));
        }
    }
    let broken = expectations
        .iter()
        .chain(invariants)
        .filter(|v| !v.held())
        .count();
    out.push_str(&format!(
        "{} events; {}\n",
        counts.events,
        if broken == 0 {
            "every expectation and invariant held".to_string()
        } else {
            format!("{broken} broken")
        }
    ));
    out
}
