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
        routed_to: Option<String>,
        accepted: u64,
        stored: u64,
        buffered: u64,
        dropped: BTreeMap<String, u64>,
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
        rows: u64,
        count: u64,
        served_by: BTreeMap<String, u64>,
    },
    QueryFailed {
        workspace: String,
        table: String,
        error: String,
        message: String,
    },
}

impl EventKind for IngestEvent {
    fn kind(&self) -> &'static str {
        match self {
            IngestEvent::BatchIngested { .. } => "ingest.batch",
            IngestEvent::BatchRejected { .. } => "ingest.batch.rejected",
            IngestEvent::TableRegistered { .. } => "ingest.table.registered",
            IngestEvent::QueryServed { .. } => "ingest.query",
            IngestEvent::QueryFailed { .. } => "ingest.query.failed",
        }
    }

    fn narrate(&self) -> String {
        match self {
            IngestEvent::BatchIngested {
                workspace,
                table,
                routed_to,
                accepted,
                stored,
                buffered,
                dropped,
                keys,
                ..
            } => {
                let to = routed_to.as_deref().unwrap_or("no storage");
                let mut text = format!(
                    "{accepted} {table} records for {workspace} routed to {to}: {stored} stored"
                );
                if !keys.is_empty() {
                    text.push_str(&format!(" under {}", keys.join(" and ")));
                }
                text.push_str(&format!(", {buffered} buffered"));
                for (reason, n) in dropped {
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
                rows,
                count,
                served_by,
            } => {
                let parts: Vec<String> =
                    served_by.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(
                    "query of {workspace}/{table}: {count} matching, {rows} returned ({})",
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
