//! The front end's events: every batch accepted or refused, every table registered, every query
//! served or failed. Batch events carry the per-batch counts and the workspace's running totals,
//! which is how the metrics appear in a simulation's event log.

use std::collections::BTreeMap;

use cmksim_sim::EventKind;
use serde::Serialize;

use crate::metrics::WorkspaceCounters;

/// An ingest front-end event (source `ingest`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum IngestEvent {
    BatchIngested {
        workspace: String,
        table: String,
        /// `shared`, `cluster:<name>` (`Destination::label`), or `none` when nothing took the batch.
        route: String,
        accepted: u64,
        stored: u64,
        buffered: u64,
        /// Records dropped, all reasons together.
        dropped: u64,
        /// The drop reasons, comma-separated (empty when nothing was dropped).
        reason: String,
        dropped_by_reason: BTreeMap<String, u64>,
        /// The keys that protect the stored records (`the Microsoft-managed key`, `CMK … version …`).
        keys: Vec<String>,
        totals: WorkspaceCounters,
    },
    BatchRejected {
        workspace: String,
        table: String,
        records: u64,
        error: String,
        message: String,
    },
    TableRegistered {
        workspace: String,
        table: String,
        columns: BTreeMap<String, String>,
    },
    QueryServed {
        workspace: String,
        table: String,
        /// Rows returned.
        records: u64,
        /// The workspaces (`TenantId`) the returned rows belong to: only the queried one.
        record_workspaces: Vec<String>,
        count: u64,
        served_by: BTreeMap<String, u64>,
    },
    QueryFailed {
        workspace: String,
        table: String,
        error_code: String,
        /// The storage state when storage refused the read (`revoked`, `unavailable`, ...),
        /// else the inner error code: what expectations match (`QueryError::reason`).
        reason: String,
        /// The whole sentence of the error.
        message: String,
    },
}

impl EventKind for IngestEvent {
    fn kind(&self) -> &'static str {
        match self {
            IngestEvent::BatchIngested { .. } => "ingest.batch",
            IngestEvent::BatchRejected { .. } => "ingest.batch.rejected",
            IngestEvent::TableRegistered { .. } => "ingest.table.registered",
            IngestEvent::QueryServed { .. } => "query.ok",
            IngestEvent::QueryFailed { .. } => "query.failed",
        }
    }

    fn narrate(&self) -> String {
        match self {
            IngestEvent::BatchIngested {
                workspace,
                table,
                route,
                accepted,
                stored,
                buffered,
                dropped_by_reason,
                keys,
                ..
            } => {
                let to = if route == "none" {
                    "no storage"
                } else {
                    route.as_str()
                };
                let mut text = format!(
                    "{accepted} {table} records for {workspace} routed to {to}: {stored} stored"
                );
                if !keys.is_empty() {
                    text.push_str(&format!(" under {}", keys.join(" and ")));
                }
                text.push_str(&format!(", {buffered} buffered"));
                for (reason, n) in dropped_by_reason {
                    text.push_str(&format!(", {n} dropped ({reason})"));
                }
                text
            }
            IngestEvent::BatchRejected {
                workspace,
                table,
                records,
                message,
                ..
            } => format!("batch of {records} {table} records for {workspace} refused: {message}"),
            IngestEvent::TableRegistered {
                workspace,
                table,
                columns,
            } => format!(
                "custom table {table} registered in {workspace} with {} columns",
                columns.len()
            ),
            IngestEvent::QueryServed {
                workspace,
                table,
                records,
                count,
                served_by,
                ..
            } => {
                let parts: Vec<String> =
                    served_by.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(
                    "query of {workspace}/{table}: {count} matching, {records} returned ({})",
                    if parts.is_empty() {
                        "no data".to_string()
                    } else {
                        parts.join(", ")
                    }
                )
            }
            IngestEvent::QueryFailed {
                workspace,
                table,
                message,
                ..
            } => format!("query of {workspace}/{table} failed: {message}"),
        }
    }
}
