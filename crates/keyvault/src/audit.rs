//! The audit log: one record per request, success or failure, as Azure's `AuditEvent`
//! diagnostic log keeps them (operation names like `KeyUnwrap`, `KeyCreate`, `VaultPut`).
//!
//! It answers the rotation question of seed 002 — "is the old key version still used?" — by a
//! query on vault, key and version over a time range. Records are plain data; the store keeps them
//! ordered by time, and queries return at most [`MAX_AUDIT_QUERY_RECORDS`] records (newest
//! first) with the total number that matched.

use serde::{Deserialize, Serialize};

/// Most records one query returns.
pub const MAX_AUDIT_QUERY_RECORDS: usize = 1_000;
/// Records returned when the query names no limit.
pub const DEFAULT_AUDIT_QUERY_RECORDS: usize = 100;
/// Most records kept; the oldest are dropped beyond it.
pub const MAX_AUDIT_RECORDS: u64 = 2_000_000;
/// Most records one query examines (a bound on the scan, not on the answer).
pub const MAX_AUDIT_SCAN_RECORDS: usize = 2_000_000;

/// One audited request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time_ms: i64,
    /// The caller's object id ("" when the token was missing or invalid).
    pub principal_object_id: String,
    pub operation: String,
    pub vault: String,
    pub key: String,
    pub version: String,
    /// "Success" or the Azure error code.
    pub result: String,
    pub http_status: u16,
}

/// A query on the audit log. Empty strings match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub vault: String,
    pub key: String,
    pub version: String,
    pub from_ms: Option<i64>,
    /// Exclusive.
    pub to_ms: Option<i64>,
    /// 0 = default; capped at [`MAX_AUDIT_QUERY_RECORDS`].
    pub limit: usize,
}

impl AuditQuery {
    /// The effective limit.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_AUDIT_QUERY_RECORDS,
            n => n.min(MAX_AUDIT_QUERY_RECORDS),
        }
    }

    /// True when `record` matches (the time range is applied by the store's range scan too).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        (self.vault.is_empty() || self.vault.eq_ignore_ascii_case(&record.vault))
            && (self.key.is_empty() || self.key.eq_ignore_ascii_case(&record.key))
            && (self.version.is_empty() || self.version == record.version)
            && self.from_ms.is_none_or(|from| record.time_ms >= from)
            && self.to_ms.is_none_or(|to| record.time_ms < to)
    }
}

/// The answer to a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditAnswer {
    /// Newest first, at most the query's limit.
    pub records: Vec<AuditRecord>,
    pub total_matched: u64,
}
