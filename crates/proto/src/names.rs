//! The one spelling of the contract's enumerations in text: drop reasons and storage states.
//!
//! The wire carries the enums; responses, metrics, events and scenario expectations carry
//! these labels. Drop reasons are kebab-case (`not-provisioned`, `buffer-expired`: the words
//! scenario files use); storage states are snake_case (`healthy_cmk`: the suffix of the
//! `storage.state.*` events).

use crate::common::v1::DropReason;
use crate::storage::v1::StorageStateName;

/// Every drop reason a record can have (not `Unspecified`).
pub const DROP_REASONS: [DropReason; 8] = [
    DropReason::Revoked,
    DropReason::Resuming,
    DropReason::NotProvisioned,
    DropReason::ClusterDeleted,
    DropReason::BufferExpired,
    DropReason::BufferFull,
    DropReason::Shredded,
    DropReason::StorageError,
];

impl DropReason {
    /// The label in responses, metrics, events and scenario files.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Unspecified => "unspecified",
            DropReason::Revoked => "revoked",
            DropReason::Resuming => "resuming",
            DropReason::NotProvisioned => "not-provisioned",
            DropReason::ClusterDeleted => "cluster-deleted",
            DropReason::BufferExpired => "buffer-expired",
            DropReason::BufferFull => "buffer-full",
            DropReason::Shredded => "shredded",
            DropReason::StorageError => "storage-error",
        }
    }

    /// The reason a label names.
    pub fn from_label(label: &str) -> Option<DropReason> {
        DROP_REASONS.into_iter().find(|r| r.label() == label)
    }
}

/// Every storage state (not `Unspecified`).
pub const STORAGE_STATES: [StorageStateName; 9] = [
    StorageStateName::Provisioning,
    StorageStateName::HealthyMmk,
    StorageStateName::HealthyCmk,
    StorageStateName::Degraded,
    StorageStateName::Unavailable,
    StorageStateName::Revoked,
    StorageStateName::Resuming,
    StorageStateName::Deleted,
    StorageStateName::Shredded,
];

impl StorageStateName {
    /// The state's name in events (`storage.state.<label>`) and messages.
    pub fn label(self) -> &'static str {
        match self {
            StorageStateName::Unspecified => "unspecified",
            StorageStateName::Provisioning => "provisioning",
            StorageStateName::HealthyMmk => "healthy_mmk",
            StorageStateName::HealthyCmk => "healthy_cmk",
            StorageStateName::Degraded => "degraded",
            StorageStateName::Unavailable => "unavailable",
            StorageStateName::Revoked => "revoked",
            StorageStateName::Resuming => "resuming",
            StorageStateName::Deleted => "deleted",
            StorageStateName::Shredded => "shredded",
        }
    }

    /// The state a label names.
    pub fn from_label(label: &str) -> Option<StorageStateName> {
        STORAGE_STATES.into_iter().find(|s| s.label() == label)
    }

    /// Whether a cluster in this state serves reads (queries).
    pub fn serves_reads(self) -> bool {
        !matches!(
            self,
            StorageStateName::Unavailable
                | StorageStateName::Revoked
                | StorageStateName::Resuming
                | StorageStateName::Deleted
                | StorageStateName::Shredded
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_unique() {
        for r in DROP_REASONS {
            assert_eq!(DropReason::from_label(r.label()), Some(r));
        }
        for s in STORAGE_STATES {
            assert_eq!(StorageStateName::from_label(s.label()), Some(s));
        }
        assert_eq!(DropReason::NotProvisioned.label(), "not-provisioned");
        assert_eq!(DropReason::from_label("not_provisioned"), None);
    }
}
