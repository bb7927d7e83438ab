//! Verdicts: the judgement of one expectation or invariant, with the events that prove it.
//!
//! An expectation or invariant that is merely "true" or "false" teaches nothing and cannot be
//! debugged. A [`Verdict`] carries the events that decided it (their sequence numbers and times)
//! and a sentence saying why, so the summary, the report and the event log can all show the
//! evidence. `NotApplicable` is distinct from `Held`: "no revocation happened, so the deadline
//! was not tested" must not read as a pass of the revocation deadline.

use cmksim_sim::{Event, SimTime};
use serde::Serialize;

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Held,
    Broken,
    /// Nothing in this run exercised the check.
    NotApplicable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Held => "held",
            Outcome::Broken => "broken",
            Outcome::NotApplicable => "not applicable",
        }
    }
}

/// One event cited as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub seq: u64,
    pub at_ms: i64,
    pub source: String,
    pub kind: String,
    /// Why this event matters to the verdict.
    pub note: String,
}

impl Evidence {
    pub fn of(event: &Event, note: impl Into<String>) -> Evidence {
        Evidence {
            seq: event.seq,
            at_ms: event.at_ms,
            source: event.source.clone(),
            kind: event.kind.clone(),
            note: note.into(),
        }
    }

    /// `T+01:02:03 #42 storage.state.revoked (note)`.
    pub fn line(&self, start: SimTime) -> String {
        format!(
            "{} #{} {} {}",
            SimTime(self.at_ms).offset_label(start),
            self.seq,
            self.kind,
            self.note
        )
    }
}

/// The judgement of one expectation or invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `expect#1`, an expectation's id, or `invariant-2`.
    pub id: String,
    /// What was checked, in words.
    pub title: String,
    pub outcome: Outcome,
    /// Why it held or broke.
    pub detail: String,
    /// At most [`Verdict::EVIDENCE_MAX`] events, in log order.
    pub evidence: Vec<Evidence>,
}

impl Verdict {
    /// Most evidence events kept per verdict (a long soak can produce thousands).
    pub const EVIDENCE_MAX: usize = 12;

    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
        mut evidence: Vec<Evidence>,
    ) -> Verdict {
        evidence.sort_by_key(|e| e.seq);
        evidence.dedup_by_key(|e| e.seq);
        evidence.truncate(Verdict::EVIDENCE_MAX);
        Verdict {
            id: id.into(),
            title: title.into(),
            outcome,
            detail: detail.into(),
            evidence,
        }
    }

    pub fn held(&self) -> bool {
        self.outcome != Outcome::Broken
    }

    /// The event the runner records for this verdict: (kind, message, data). `family` is
    /// `expectation` or `invariant`.
    pub fn to_event_parts(&self, family: &str) -> (String, String, serde_json::Value) {
        let state = match self.outcome {
            Outcome::Held => "held",
            Outcome::Broken => "broken",
            Outcome::NotApplicable => "not-applicable",
        };
        let kind = format!("oracle.{family}.{state}");
        let message = format!(
            "{} {}: {} ({})",
            family,
            self.id,
            self.outcome.as_str(),
            self.title
        );
        let data = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        (kind, message, data)
    }
}

/// Whether every verdict held (or did not apply): the run's exit status.
pub fn all_held(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(Verdict::held)
}
