//! The events the key access loop writes to the run's event log.
//!
//! One typed event per poll result (`storage.poll.succeeded|transient|denied`), per state
//! transition (`storage.state.<new state>`) and per key-wrapping step (`storage.key.*`). Each
//! narrates itself in a sentence a person following a drill can read ("storage c1: Key Vault
//! denied unwrapKey (403 KeyDisabled): storage revoked; new ingest will be dropped"), and carries
//! the typed fields the oracle checks (e.g. how long after the previous poll a revocation was
//! detected).

use cmksim_sim::EventKind;
use serde::Serialize;

use super::outcome::{DenialKind, TransientKind};
use super::state::StateName;

/// An event of the key access loop.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum KeyLoopEvent {
    PollSucceeded {
        cluster: String,
        key: String,
        version: String,
    },
    PollTransient {
        cluster: String,
        /// The event contract's `reason` word: the transient kind's label.
        reason: String,
        kind: TransientKind,
        detail: String,
        /// How long polls have been failing, in simulated milliseconds.
        failing_for_ms: u64,
    },
    PollDenied {
        cluster: String,
        /// The event contract's `reason` word: `revoked`.
        reason: String,
        kind: DenialKind,
        http_status: u16,
        code: String,
        message: String,
    },
    StateChanged {
        cluster: String,
        from: StateName,
        to: StateName,
        /// Why (the cause, as a clause): "Key Vault denied unwrapKey (403 KeyDisabled)".
        reason: String,
        /// What it means for ingest and query: "new ingest will be dropped".
        consequence: String,
        /// For revocations: milliseconds between the previous poll and the denial (the
        /// vault change happened in that window); otherwise 0.
        detected_within_ms: u64,
    },
    RewrapRequested {
        cluster: String,
        from: String,
        to: String,
        why: String,
    },
    Rewrapped {
        cluster: String,
        key: String,
    },
    RewrapFailed {
        cluster: String,
        to: String,
        error: String,
    },
    NewVersionDetected {
        cluster: String,
        key: String,
        current_version: String,
        newest_version: String,
    },
}

impl EventKind for KeyLoopEvent {
    fn kind(&self) -> &'static str {
        match self {
            KeyLoopEvent::PollSucceeded { .. } => "storage.poll.succeeded",
            KeyLoopEvent::PollTransient { .. } => "storage.poll.transient",
            KeyLoopEvent::PollDenied { .. } => "storage.poll.denied",
            KeyLoopEvent::StateChanged { to, .. } => match to {
                StateName::Provisioning => "storage.state.provisioning",
                StateName::HealthyMmk => "storage.state.healthy_mmk",
                StateName::HealthyCmk => "storage.state.healthy_cmk",
                StateName::Degraded => "storage.state.degraded",
                StateName::Unavailable => "storage.state.unavailable",
                StateName::Revoked => "storage.state.revoked",
                StateName::Resuming => "storage.state.resuming",
                StateName::Deleted => "storage.state.deleted",
                StateName::Shredded => "storage.state.shredded",
            },
            KeyLoopEvent::RewrapRequested { .. } => "storage.key.rewrap_requested",
            KeyLoopEvent::Rewrapped { .. } => "storage.key.rewrapped",
            KeyLoopEvent::RewrapFailed { .. } => "storage.key.rewrap_failed",
            KeyLoopEvent::NewVersionDetected { .. } => "storage.key.new_version_detected",
        }
    }

    fn narrate(&self) -> String {
        match self {
            KeyLoopEvent::PollSucceeded { cluster, key, .. } => {
                format!("storage {cluster}: unwrapKey with {key} succeeded; AEK cache refreshed")
            }
            KeyLoopEvent::PollTransient {
                cluster,
                kind,
                detail,
                failing_for_ms,
                ..
            } => format!(
                "storage {cluster}: {} ({}: {detail}) for {}s; serving from the cached AEK",
                kind.cause(),
                kind.label(),
                failing_for_ms / 1000
            ),
            KeyLoopEvent::PollDenied {
                cluster,
                http_status,
                code,
                message,
                ..
            } => format!("storage {cluster}: Key Vault denied unwrapKey ({http_status} {code}): {message}"),
            KeyLoopEvent::StateChanged {
                cluster,
                to,
                reason,
                consequence,
                ..
            } => format!("storage {cluster}: {reason}: storage {}; {consequence}", words(*to)),
            KeyLoopEvent::RewrapRequested { cluster, from, to, why } => {
                format!("storage {cluster}: {why}: rewrapping the AEK from {from} to {to} (data is not re-encrypted)")
            }
            KeyLoopEvent::Rewrapped { cluster, key } => {
                format!("storage {cluster}: the AEK is now wrapped by {key}")
            }
            KeyLoopEvent::RewrapFailed { cluster, to, error } => {
                format!("storage {cluster}: rewrapping the AEK under {to} failed: {error}; the previous key stays in use")
            }
            KeyLoopEvent::NewVersionDetected {
                cluster,
                key,
                current_version,
                newest_version,
            } => format!(
                "storage {cluster}: key {key} has a newer version {newest_version} (AEK wrapped by {current_version}); following it"
            ),
        }
    }
}

fn words(state: StateName) -> &'static str {
    match state {
        StateName::Provisioning => "provisioning",
        StateName::HealthyMmk => "healthy under the Microsoft-managed key",
        StateName::HealthyCmk => "healthy under the customer-managed key",
        StateName::Degraded => "degraded",
        StateName::Unavailable => "unavailable",
        StateName::Revoked => "revoked",
        StateName::Resuming => "resuming",
        StateName::Deleted => "deleted",
        StateName::Shredded => "shredded (data permanently unreadable)",
    }
}
