//! The events Sentinel writes to the run's event log (`sentinel.*`).
//!
//! One typed event per onboarding, per poll result of the Cosmos DB principal, per state change
//! of a workspace's Sentinel store, per key change it follows, per stored or refused item, and
//! one for each of seed 002's unsupported configurations. Each narrates itself in a sentence a
//! person following a drill can read, and carries the typed fields the oracle checks (the key
//! version in use, how long a revocation took to be honoured).

use cmksim_sim::EventKind;
use cmksim_storage::keyloop::TransientKind;
use serde::Serialize;

use crate::machine::StateName;

/// Seed 002's reason for the unsupported unlink / non-CMK cluster, to the letter.
pub const UNSUPPORTED_AFTER_CMK_ONBOARDING: &str = "Once a workspace is onboarded as a CMK workspace, setting it as a non-CMK workspace by de-linking it from the dedicated Log Analytics CMK cluster, or setting the dedicated Log Analytics cluster as non-CMK is not supported and might lead to undefined and undesired behavior.";

/// Seed 002's sentence on a non-CMK workspace later linked to a CMK cluster, to the letter.
pub const MICROSOFT_KEY_KEPT: &str = "Once a workspace was onboarded to Azure Sentinel as a non-CMK workspace, linking it to a CMK Log Analytics cluster, or setting the Log Analytic cluster its currently linked to, as a CMK cluster, is not supported, and will lead to its Azure Sentinel data being encrypted by a Microsoft Managed Key instead of the Customer Managed Key.";

/// An event of Sentinel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum SentinelEvent {
    Onboarded {
        workspace: String,
        cluster: String,
        /// `cmk` or `mmk`.
        encryption: String,
        /// The key wrapping the account key (`vault/key/version`), empty under the MMK.
        key: String,
    },
    OnboardingRefused {
        workspace: String,
        code: String,
        message: String,
    },
    PollSucceeded {
        workspace: String,
        key: String,
        version: String,
    },
    PollTransient {
        workspace: String,
        /// Why the poll failed (a vault that did not answer, or the stored wrapping unreadable).
        kind: TransientKind,
        detail: String,
    },
    PollDenied {
        workspace: String,
        http_status: u16,
        code: String,
        message: String,
    },
    StateChanged {
        workspace: String,
        from: StateName,
        to: StateName,
        reason: String,
        consequence: String,
        /// For revocations: milliseconds between the previous poll and the denial.
        detected_within_ms: u64,
    },
    KeyChangeDetected {
        workspace: String,
        from: String,
        to: String,
        /// `rotation` (another version of the same key) or `replacement` (another key or vault).
        change: String,
        /// When Sentinel moves to the new key (RFC 3339).
        follow_at: String,
    },
    Rewrapped {
        workspace: String,
        from: String,
        to: String,
        /// The version now wrapping the account key.
        version: String,
    },
    RewrapFailed {
        workspace: String,
        to: String,
        error: String,
    },
    Unsupported {
        workspace: String,
        cluster: String,
        /// What changed: `unlinked` or `cluster_non_cmk`.
        change: String,
        /// Seed 002's sentence.
        reason: String,
    },
    MicrosoftKeyKept {
        workspace: String,
        cluster: String,
        reason: String,
    },
    ItemStored {
        workspace: String,
        /// `incident`, `analytics_rule` or `watchlist`.
        item: String,
        id: String,
    },
    OperationRefused {
        workspace: String,
        operation: String,
        reason: String,
    },
    WorkspaceDeleted {
        workspace: String,
        items_left_unreadable: u64,
    },
}

impl EventKind for SentinelEvent {
    fn kind(&self) -> &'static str {
        match self {
            SentinelEvent::Onboarded { .. } => "sentinel.onboarded",
            SentinelEvent::OnboardingRefused { .. } => "sentinel.onboarding_refused",
            SentinelEvent::PollSucceeded { .. } => "sentinel.poll.succeeded",
            SentinelEvent::PollTransient { .. } => "sentinel.poll.transient",
            SentinelEvent::PollDenied { .. } => "sentinel.poll.denied",
            SentinelEvent::StateChanged { to, .. } => match to {
                StateName::Active => "sentinel.state.active",
                StateName::Revoked => "sentinel.state.revoked",
                StateName::Restoring => "sentinel.state.restoring",
                StateName::Deleted => "sentinel.state.deleted",
            },
            SentinelEvent::KeyChangeDetected { .. } => "sentinel.key.change_detected",
            SentinelEvent::Rewrapped { .. } => "sentinel.key.rewrapped",
            SentinelEvent::RewrapFailed { .. } => "sentinel.key.rewrap_failed",
            SentinelEvent::Unsupported { .. } => "sentinel.unsupported",
            SentinelEvent::MicrosoftKeyKept { .. } => "sentinel.microsoft_key_kept",
            SentinelEvent::ItemStored { .. } => "sentinel.item.stored",
            SentinelEvent::OperationRefused { .. } => "sentinel.operation.refused",
            SentinelEvent::WorkspaceDeleted { .. } => "sentinel.workspace.deleted",
        }
    }

    fn narrate(&self) -> String {
        match self {
            SentinelEvent::Onboarded { workspace, cluster, encryption, key } => match encryption.as_str() {
                "cmk" => format!("sentinel {workspace}: onboarded with a customer-managed key: its Cosmos DB store's account key is wrapped by {key} (cluster {cluster}) through the Azure Cosmos DB principal"),
                _ => format!("sentinel {workspace}: onboarded without a customer-managed key: its Sentinel data is under a Microsoft-managed key"),
            },
            SentinelEvent::OnboardingRefused { workspace, code, message } => {
                format!("sentinel {workspace}: onboarding refused ({code}): {message}")
            }
            SentinelEvent::PollSucceeded { workspace, key, .. } => {
                format!("sentinel {workspace}: the Cosmos DB principal unwrapped the account key with {key}")
            }
            SentinelEvent::PollTransient { workspace, kind: TransientKind::StoredKeyUnreadable, detail } => {
                format!("sentinel {workspace}: no unwrapKey was asked: the stored wrapped account key is unreadable ({detail}); the cached account key keeps serving")
            }
            SentinelEvent::PollTransient { workspace, detail, .. } => {
                format!("sentinel {workspace}: Key Vault did not answer the Cosmos DB principal ({detail}); the cached account key keeps serving")
            }
            SentinelEvent::PollDenied { workspace, http_status, code, message } => {
                format!("sentinel {workspace}: Key Vault denied the Cosmos DB principal's unwrapKey ({http_status} {code}): {message}")
            }
            SentinelEvent::StateChanged { workspace, to, reason, consequence, .. } => {
                format!("sentinel {workspace}: {reason}: Sentinel {}; {consequence}", to.words())
            }
            SentinelEvent::KeyChangeDetected { workspace, from, to, change, follow_at } => {
                format!("sentinel {workspace}: the cluster now names {to} instead of {from} ({change}); Sentinel moves its Cosmos DB store to it at {follow_at}, and keeps using {from} until then")
            }
            SentinelEvent::Rewrapped { workspace, from, to, .. } => {
                format!("sentinel {workspace}: the Cosmos DB account key is now wrapped by {to} (was {from}); {from} is no longer used by Sentinel")
            }
            SentinelEvent::RewrapFailed { workspace, to, error } => {
                format!("sentinel {workspace}: moving to {to} failed: {error}; the previous key stays in use")
            }
            SentinelEvent::Unsupported { workspace, cluster, change, reason } => {
                let what = match change.as_str() {
                    "unlinked" => format!("workspace unlinked from CMK cluster {cluster}"),
                    _ => format!("cluster {cluster} no longer has a customer-managed key"),
                };
                format!("sentinel {workspace}: UNSUPPORTED configuration ({what}), accepted as the service would: {reason}")
            }
            SentinelEvent::MicrosoftKeyKept { workspace, cluster, .. } => {
                format!("sentinel {workspace}: now on CMK cluster {cluster}, but onboarded to Sentinel without a customer-managed key: its Sentinel data stays under the Microsoft-managed key")
            }
            SentinelEvent::ItemStored { workspace, item, id } => {
                format!("sentinel {workspace}: {} {id} stored", item.replace('_', " "))
            }
            SentinelEvent::OperationRefused { workspace, operation, reason } => {
                format!("sentinel {workspace}: {} refused: {reason}", operation.replace('_', " "))
            }
            SentinelEvent::WorkspaceDeleted { workspace, items_left_unreadable } => {
                format!("sentinel {workspace}: the Sentinel workspace was deleted ({items_left_unreadable} stored items removed with it)")
            }
        }
    }
}
