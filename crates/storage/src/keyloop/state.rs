//! The vocabulary of the key access state machine: states, key references, effects, and the
//! answers it gives to ingest and query.
//!
//! Kept apart from the transitions ([`super::machine`]) so that the driver, the service and the
//! tests can name states and effects without reading the rules. States carry the times they
//! need (since when degraded, when resuming ends) so that an illegal combination, such as
//! "resuming without a resume time", cannot be written down.

use std::fmt;

use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

use super::events::KeyLoopEvent;
use super::outcome::DenialKind;

/// Which version of the customer's key the cluster names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum KeyVersionSpec {
    /// A fixed version (seed 000: "Rotation of CMK requires explicit update to the Cluster
    /// resource with the new key version").
    Pinned(String),
    /// An empty `keyVersion`: follow the newest version (profile `versionless_keys`).
    Versionless,
}

/// The customer's key as the cluster's `keyVaultProperties` name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeyRef {
    pub vault_name: String,
    pub key_name: String,
    pub version: KeyVersionSpec,
}

impl KeyRef {
    /// A key pinned to one version.
    pub fn pinned(vault_name: &str, key_name: &str, version: &str) -> KeyRef {
        KeyRef {
            vault_name: vault_name.to_string(),
            key_name: key_name.to_string(),
            version: KeyVersionSpec::Pinned(version.to_string()),
        }
    }

    /// A versionless key (follows the newest version where the profile allows it).
    pub fn versionless(vault_name: &str, key_name: &str) -> KeyRef {
        KeyRef {
            vault_name: vault_name.to_string(),
            key_name: key_name.to_string(),
            version: KeyVersionSpec::Versionless,
        }
    }

    /// The version to ask the vault for: the pinned one, or empty (newest).
    pub fn requested_version(&self) -> &str {
        match &self.version {
            KeyVersionSpec::Pinned(v) => v,
            KeyVersionSpec::Versionless => "",
        }
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            KeyVersionSpec::Pinned(v) => write!(f, "{}/{}/{}", self.vault_name, self.key_name, v),
            KeyVersionSpec::Versionless => {
                write!(f, "{}/{} (versionless)", self.vault_name, self.key_name)
            }
        }
    }
}

/// The key that wraps the AEK right now: the reference and the concrete version used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyTarget {
    pub key: KeyRef,
    pub wrapped_version: String,
}

impl fmt::Display for KeyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.key.vault_name, self.key.key_name, self.wrapped_version
        )
    }
}

/// Where access was restored from, while resuming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeFrom {
    Revoked,
}

/// The storage's key-access state (SPEC §5). Persisted by the storage so that a restart does
/// not forget a revocation (see `KeyAccessMachine::restore`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// The cluster is being provisioned; no storage yet.
    Provisioning { since: SimTime },
    /// Provisioned; no customer key configured: everything under the Microsoft-managed key.
    HealthyMmk { since: SimTime },
    /// The last poll unwrapped the AEK.
    HealthyCmk { since: SimTime },
    /// Polls fail transiently since `since`; serving from the cached AEK.
    Degraded { since: SimTime, failures: u32 },
    /// Unreachable longer than the outage grace: queries fail, ingest buffered under the MMK.
    Unavailable {
        since: SimTime,
        outage_since: SimTime,
    },
    /// The vault denied access: ingest dropped, queries fail, hot tier deleted.
    Revoked { since: SimTime, denial: DenialKind },
    /// Access restored after a revocation; ingest and query resume at `resume_at`.
    Resuming {
        since: SimTime,
        resume_at: SimTime,
        from: ResumeFrom,
        /// Set when polls fail transiently while resuming (becomes Degraded at resume).
        transient_since: Option<SimTime>,
    },
    /// The cluster was deleted.
    Deleted { since: SimTime },
    /// The key material is gone for good (HSM zeroised, key purged): the AEK can never be
    /// unwrapped again, so every block of the account is permanently unreadable
    /// (crypto-shredding). Terminal: nothing is polled any more.
    Shredded { since: SimTime, denial: DenialKind },
}

/// A state's name, without its data (for events, refusals and tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Provisioning,
    HealthyMmk,
    HealthyCmk,
    Degraded,
    Unavailable,
    Revoked,
    Resuming,
    Deleted,
    Shredded,
}

impl StateName {
    /// The wire's state (`storage.v1.StorageStateName`), whose label is the one spelling.
    pub fn to_pb(self) -> cmksim_proto::storage::v1::StorageStateName {
        use cmksim_proto::storage::v1::StorageStateName as Pb;
        match self {
            StateName::Provisioning => Pb::Provisioning,
            StateName::HealthyMmk => Pb::HealthyMmk,
            StateName::HealthyCmk => Pb::HealthyCmk,
            StateName::Degraded => Pb::Degraded,
            StateName::Unavailable => Pb::Unavailable,
            StateName::Revoked => Pb::Revoked,
            StateName::Resuming => Pb::Resuming,
            StateName::Deleted => Pb::Deleted,
            StateName::Shredded => Pb::Shredded,
        }
    }

    /// snake_case, as in event kinds (`storage.state.healthy_cmk`): [`Self::to_pb`]'s label.
    pub fn as_str(self) -> &'static str {
        self.to_pb().label()
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl State {
    /// The state's name.
    pub fn name(&self) -> StateName {
        match self {
            State::Provisioning { .. } => StateName::Provisioning,
            State::HealthyMmk { .. } => StateName::HealthyMmk,
            State::HealthyCmk { .. } => StateName::HealthyCmk,
            State::Degraded { .. } => StateName::Degraded,
            State::Unavailable { .. } => StateName::Unavailable,
            State::Revoked { .. } => StateName::Revoked,
            State::Resuming { .. } => StateName::Resuming,
            State::Deleted { .. } => StateName::Deleted,
            State::Shredded { .. } => StateName::Shredded,
        }
    }

    /// When the storage entered this state.
    pub fn since(&self) -> SimTime {
        match self {
            State::Provisioning { since }
            | State::HealthyMmk { since }
            | State::HealthyCmk { since }
            | State::Degraded { since, .. }
            | State::Unavailable { since, .. }
            | State::Revoked { since, .. }
            | State::Resuming { since, .. }
            | State::Deleted { since }
            | State::Shredded { since, .. } => *since,
        }
    }
}

/// What the driver must do after a transition, in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Effect {
    /// Record this event.
    Event(KeyLoopEvent),
    /// Wrap the in-memory AEK under `to` (WrapKey), store it, and report
    /// `on_rewrap_completed` / `on_rewrap_failed`. Data is never re-encrypted.
    RewrapAek { to: KeyRef },
    /// Forget the unwrapped AEK held in memory (revoked, or the cache outlived the grace).
    DropAekCache,
    /// Delete the hot tier (seed 000: the hot cache "gets deleted on key revocation").
    DeleteHotTier,
    /// Rebuild the hot tier from the cold tier (after access returned).
    RebuildHotTier,
    /// Write the outage buffer under the CMK, in order, exactly once; entries buffered before
    /// `expired_before` are dropped and counted as expired.
    DrainBuffer { expired_before: SimTime },
    /// Drop and count buffered entries older than `expired_before` (buffer window passed).
    ExpireBuffer { expired_before: SimTime },
}

impl Effect {
    /// A short label for tables: `event:<kind>` or the effect's name.
    pub fn label(&self) -> String {
        use cmksim_sim::EventKind;
        match self {
            Effect::Event(e) => format!("event:{}", e.kind()),
            Effect::RewrapAek { .. } => "RewrapAek".to_string(),
            Effect::DropAekCache => "DropAekCache".to_string(),
            Effect::DeleteHotTier => "DeleteHotTier".to_string(),
            Effect::RebuildHotTier => "RebuildHotTier".to_string(),
            Effect::DrainBuffer { .. } => "DrainBuffer".to_string(),
            Effect::ExpireBuffer { .. } => "ExpireBuffer".to_string(),
        }
    }
}

/// Which key protects a stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StoreKey {
    /// The Microsoft-managed key (no CMK yet).
    Mmk,
    /// The customer's key, at the version that wraps the AEK.
    Cmk(KeyTarget),
}

/// Why ingest is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Seed 000: "Any new data ingested ... gets dropped and won't be recoverable".
    Revoked,
    /// Access returned but ingestion has not resumed yet.
    Resuming,
    /// Seed 000: "Data sent to your workspace prior to the completion will be dropped".
    NotProvisioned,
    /// The cluster was deleted.
    ClusterDeleted,
    /// Buffered longer than the buffer window.
    BufferExpired,
    /// The key material is gone for good (HSM zeroised, key purged): nothing could ever read
    /// the record back.
    Shredded,
}

impl DropReason {
    /// The wire's reason (`common.v1.DropReason`), whose label is the one spelling.
    pub fn to_pb(self) -> cmksim_proto::common::v1::DropReason {
        use cmksim_proto::common::v1::DropReason as Pb;
        match self {
            DropReason::Revoked => Pb::Revoked,
            DropReason::Resuming => Pb::Resuming,
            DropReason::NotProvisioned => Pb::NotProvisioned,
            DropReason::ClusterDeleted => Pb::ClusterDeleted,
            DropReason::BufferExpired => Pb::BufferExpired,
            DropReason::Shredded => Pb::Shredded,
        }
    }

    /// The reason's label (`not-provisioned`, ...): [`Self::to_pb`]'s.
    pub fn as_str(self) -> &'static str {
        self.to_pb().label()
    }
}

/// What to do with a record ingested now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum IngestDecision {
    Store {
        key: StoreKey,
    },
    /// Keep it in the outage buffer under the MMK until access returns.
    Buffer,
    Drop(DropReason),
}

/// Why a query (or a key update) is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("storage is {state}: {reason}")]
pub struct Refusal {
    pub state: StateName,
    pub reason: String,
}
