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
