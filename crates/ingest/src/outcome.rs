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

/// Why a record was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// The cluster's key access is revoked (SPEC §5): new ingest is dropped and counted.
    Revoked,
    /// Linked before the cluster finished provisioning (2020 profile, seed 000).
    NotProvisioned,
    /// Buffered while storage was unavailable, for longer than the buffer window.
    BufferExpired,
    /// The cluster's key material is gone for good (purged, HSM zeroised).
    CryptoShredded,
    /// Access restored after a revocation, but ingest has not resumed yet (resume delay).
    Resuming,
    /// The cluster was deleted.
    ClusterDeleted,
    /// The outage buffer was full.
    BufferFull,
    /// Storage reported a failure for this record (the detail says which).
    StorageError,
}

impl DropReason {
    /// The label used in responses, metrics and events.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Revoked => "revoked",
            DropReason::NotProvisioned => "not-provisioned",
            DropReason::BufferExpired => "buffer-expired",
            DropReason::CryptoShredded => "shredded",
            DropReason::Resuming => "resuming",
            DropReason::ClusterDeleted => "cluster-deleted",
            DropReason::BufferFull => "buffer-full",
            DropReason::StorageError => "storage-error",
        }
    }
}

/// One record's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
