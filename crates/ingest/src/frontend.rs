//! The front end's application layer: validate → append (once) → account, and queries.
//!
//! Storage alone decides where a batch goes and what becomes of each record (see
//! [`crate::backend`]); the front end validates, hands the batch to storage in one call, and
//! accounts what storage answered (metrics, events). Queries likewise go to storage, which reads
//! every storage the workspace's data went to.
//!
//! Every step that decides something is a pure function of the modules beside this one; this
//! layer sequences them around the storage calls, keeps the shared state (metrics) and records
//! the events. A refused batch changes no table and no counter except the refusal counter.
//!
//! Custom-table declarations are kept by storage, not here (see [`crate::schema`]): a batch's
//! declaration is checked against the table as storage has it, its records are validated, and
//! only then is the declaration registered in storage, before the append. Declarations through
//! this front end are serialised by one async lock (held from reading the table to registering
//! it), so two batches get the typed conflict error rather than storage's refusal; batches
//! without a declaration never take it. The state mutex is never held across an await.

mod kql;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cmksim_sim::{Clock, EventLog, Profile, SimTime};

pub use kql::{KqlAnswer, KqlError, ReadLimit, KQL_KEPT_ROWS_MAX, KQL_PAGES_MAX, KQL_PAGE_ROWS};

use crate::backend::{AppendRequest, BackendError, StorageBackend};
use crate::error::{IngestError, QueryError};
use crate::events::IngestEvent;
use crate::metrics::IngestMetrics;
use crate::outcome::{DropReason, Outcomes, RecordOutcome};
use crate::query::{check_query, merge, QueryAnswer, QuerySpec};
use crate::record::{RawRecord, Value};

/// The column every stored row gets: the workspace it was ingested for (as in Azure Monitor).
pub const TENANT_ID_COLUMN: &str = "TenantId";

/// How events and the `TenantId` column name a workspace: its resource name (the last segment
/// of an ARM id), the name a person and a scenario use.
pub fn workspace_name(workspace_id: &str) -> &str {
    workspace_id.rsplit('/').next().unwrap_or(workspace_id)
}
use crate::routing::Destination;
use crate::schema::{check_declaration, is_custom_name, standard_table, Declaration, TableSchema};
use crate::validate::{check_size, validate_sized, IngestLimits};

/// The event source of the front end.
pub const EVENT_SOURCE: &str = "ingest";

/// A batch as received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestInput {
    pub workspace: String,
    pub table: String,
    pub records: Vec<RawRecord>,
    /// Custom-table column declarations carried with the batch: (name, type).
    pub declare_columns: Vec<(String, String)>,
}

/// The truth about an accepted batch.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestOutput {
    pub workspace: String,
    pub table: String,
    pub routed_to: Option<Destination>,
    /// Every input record's, in order (as runs).
    pub outcomes: Outcomes,
    pub ingested_at: SimTime,
}

#[derive(Default)]
struct State {
    metrics: IngestMetrics,
}

/// The ingestion front end.
pub struct Frontend {
    backend: Arc<dyn StorageBackend>,
    profile: Profile,
    limits: IngestLimits,
    clock: Clock,
    events: EventLog,
    state: Mutex<State>,
    declare_lock: tokio::sync::Mutex<()>,
}

impl Frontend {
    /// A front end over `backend`.
    pub fn new(
        clock: Clock,
        events: EventLog,
        profile: Profile,
        backend: Arc<dyn StorageBackend>,
    ) -> Frontend {
        Frontend {
            backend,
            profile,
            limits: IngestLimits::default(),
            clock,
            events,
            state: Mutex::new(State::default()),
            declare_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The behaviour profile the front end follows.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The validation bounds.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> IngestMetrics {
        self.lock().metrics.clone()
    }

    /// The counters as Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.lock().metrics.render_prometheus()
    }

    /// Ingests a batch: the truth per record, or a refusal with nothing applied.
    pub async fn ingest(&self, input: IngestInput) -> Result<IngestOutput, IngestError> {
        let now = self.clock.now();
        let (workspace, table, records) = (
            input.workspace.clone(),
            input.table.clone(),
            input.records.len() as u64,
        );
        let result = self.ingest_at(input, now).await;
        if let Err(error) = &result {
            let code = error.shape().inner_code;
            self.lock().metrics.count_rejected(&workspace, code);
            let event = IngestEvent::BatchRejected {
                workspace: workspace_name(&workspace).to_string(),
                table,
                records,
                error: code.to_string(),
                message: error.to_string(),
            };
            self.events.record(now, EVENT_SOURCE, &event);
        }
        result
    }

    async fn ingest_at(
        &self,
        input: IngestInput,
        now: SimTime,
    ) -> Result<IngestOutput, IngestError> {
        check_size(&input.records, &self.limits)?;
        let IngestInput {
            workspace,
            table,
            records,
            declare_columns,
        } = input;
        let _declaring = if declare_columns.is_empty() {
            None
        } else {
            Some(self.declare_lock.lock().await)
        };
        let (schema, declaration) = if declare_columns.is_empty() {
            let schema = self
                .table_schema(&workspace, &table)
                .await
                .map_err(ingest_backend_error)?
                .ok_or_else(|| IngestError::UnknownTable {
                    workspace: workspace.clone(),
                    table: table.clone(),
                })?;
            (schema, None)
        } else {
            let d = self
                .check_declaration(&workspace, &table, &declare_columns)
                .await?;
            (d.schema.clone(), Some(d))
        };
        let mut records = validate_sized(&schema, records, now, &self.limits)?;
        // Registered (durably, in storage) before any record that uses it is appended.
        if let Some(d) = declaration.as_ref().filter(|d| d.changes) {
            self.backend
                .declare_custom_table(d.workspace.clone(), d.schema.clone())
                .await
                .map_err(ingest_backend_error)?;
        }
        // Like the real service, every stored row carries the workspace it was ingested for
        // (`TenantId`, the workspace id): a query can then prove whose rows it returned.
        let tenant = workspace_name(&workspace);
        for record in &mut records {
            record.columns.insert(
                TENANT_ID_COLUMN.to_string(),
                Value::String(tenant.to_string()),
            );
        }
        let count = records.len();
        let request = AppendRequest {
            workspace: workspace.clone(),
            table: table.clone(),
            records,
        };
        let result = self
            .backend
            .append(request)
            .await
            .map_err(ingest_backend_error)?;
        let routed_to = result.routed_to;
        let mut outcomes = result.outcomes;
        complete_outcomes(&mut outcomes, count, routed_to.as_ref());
        self.commit(
            &workspace,
            &table,
            &schema,
            declaration,
            routed_to.as_ref(),
            &outcomes,
            now,
        );
        Ok(IngestOutput {
            workspace,
            table,
            routed_to,
            outcomes,
            ingested_at: now,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        workspace: &str,
        table: &str,
        schema: &TableSchema,
        declaration: Option<Declaration>,
        routed_to: Option<&Destination>,
        outcomes: &Outcomes,
        now: SimTime,
    ) {
        let mut state = self.lock();
        if let Some(d) = declaration {
            if d.changes {
                let columns = schema
                    .columns
                    .iter()
                    .map(|(c, t)| (c.clone(), t.name().to_string()))
                    .collect();
                self.events.record(
                    now,
                    EVENT_SOURCE,
                    &IngestEvent::TableRegistered {
                        workspace: workspace.to_string(),
                        table: table.to_string(),
                        columns,
                    },
                );
            }
        }
        state.metrics.count_outcomes(workspace, outcomes);
        let totals = state
            .metrics
            .records
            .get(workspace)
            .cloned()
            .unwrap_or_default();
        drop(state);
        let mut dropped = BTreeMap::new();
        let mut keys = Vec::new();
        let (mut stored, mut buffered) = (0, 0);
        for run in outcomes.runs() {
            match &run.outcome {
                RecordOutcome::Stored { key, .. } => {
                    stored += run.count;
                    // Compared as keys, formatted once each (not once per record).
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                RecordOutcome::Buffered { .. } => buffered += run.count,
                RecordOutcome::Dropped { reason, .. } => {
                    *dropped.entry(reason.label().to_string()).or_insert(0) += run.count
                }
            }
        }
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        let dropped_total: u64 = dropped.values().sum();
        let reason = dropped.keys().cloned().collect::<Vec<_>>().join(",");
        let event = IngestEvent::BatchIngested {
            workspace: workspace_name(workspace).to_string(),
            table: table.to_string(),
            route: routed_to
                .map(|d| d.label())
                .unwrap_or_else(|| "none".to_string()),
            accepted: outcomes.len(),
            stored,
            buffered,
            dropped: dropped_total,
            reason,
            dropped_by_reason: dropped,
            keys,
            totals,
        };
        self.events.record(now, EVENT_SOURCE, &event);
    }

    /// The schema of `table` for `workspace`: a standard table's, or a custom table's as storage
    /// has it declared; `None` for any other name.
    async fn table_schema(
        &self,
        workspace: &str,
        table: &str,
    ) -> Result<Option<TableSchema>, BackendError> {
        if let Some(schema) = standard_table(table) {
            return Ok(Some(schema));
        }
        if !is_custom_name(table) {
            return Ok(None);
        }
        self.backend
            .custom_table(workspace.to_string(), table.to_string())
            .await
    }

    /// Checks a declaration against the table as storage has it (call with `declare_lock`
    /// held); changes nothing.
    async fn check_declaration(
        &self,
        workspace: &str,
        table: &str,
        columns: &[(String, String)],
    ) -> Result<Declaration, IngestError> {
        // A standard or wrongly named table has no declaration to read: check_declaration
        // refuses it by name.
        let existing = if standard_table(table).is_none() && is_custom_name(table) {
            self.backend
                .custom_table(workspace.to_string(), table.to_string())
                .await
                .map_err(ingest_backend_error)?
        } else {
            None
        };
        check_declaration(existing.as_ref(), workspace, table, columns)
    }

    /// Declares (or extends) a custom table of a workspace.
    pub async fn register_custom_table(
        &self,
        workspace: &str,
        table: &str,
        columns: &[(String, String)],
    ) -> Result<(TableSchema, bool), IngestError> {
        let now = self.clock.now();
        let _declaring = self.declare_lock.lock().await;
        let d = self.check_declaration(workspace, table, columns).await?;
        let (schema, changed) = (d.schema.clone(), d.changes);
        if changed {
            self.backend
                .declare_custom_table(d.workspace, d.schema)
                .await
                .map_err(ingest_backend_error)?;
            let columns = schema
                .columns
                .iter()
                .map(|(c, t)| (c.clone(), t.name().to_string()))
                .collect();
            self.events.record(
                now,
                EVENT_SOURCE,
                &IngestEvent::TableRegistered {
                    workspace: workspace.to_string(),
                    table: table.to_string(),
                    columns,
                },
            );
        }
        Ok((schema, changed))
    }

    /// Queries a workspace across every storage that holds its data.
    pub async fn query(&self, spec: QuerySpec) -> Result<QueryAnswer, QueryError> {
        let now = self.clock.now();
        let result = self.query_inner(&spec).await;
        let (label, event) = match &result {
            Ok(answer) => (
                "ok".to_string(),
                IngestEvent::QueryServed {
                    workspace: workspace_name(&spec.workspace).to_string(),
                    table: spec.table.clone(),
                    records: answer.rows.len() as u64,
                    record_workspaces: answer
                        .rows
                        .iter()
                        .filter_map(|row| match row.record.columns.get(TENANT_ID_COLUMN) {
                            Some(Value::String(ws)) => Some(ws.clone()),
                            _ => None,
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    count: answer.count,
                    served_by: answer
                        .served_by
                        .iter()
                        .map(|((d, t), n)| (format!("{} ({})", d.label(), t.label()), *n))
                        .collect(),
                },
            ),
            Err(e) => (
                e.shape().inner_code.to_string(),
                IngestEvent::QueryFailed {
                    workspace: workspace_name(&spec.workspace).to_string(),
                    table: spec.table.clone(),
                    error_code: e.shape().inner_code.to_string(),
                    reason: e.reason(),
                    message: e.to_string(),
                },
            ),
        };
        self.lock().metrics.count_query(&spec.workspace, &label);
        self.events.record(now, EVENT_SOURCE, &event);
        result
    }

    async fn query_inner(&self, spec: &QuerySpec) -> Result<QueryAnswer, QueryError> {
        let schema = self
            .table_schema(&spec.workspace, &spec.table)
            .await
            .map_err(query_backend_error)?
            .ok_or_else(|| QueryError::UnknownTable {
                workspace: workspace_name(&spec.workspace).to_string(),
                table: spec.table.clone(),
            })?;
        check_query(spec, &schema)?;
        // Storage answers its parts sorted by storage, so the answer is deterministic.
        let parts = self
            .backend
            .query(spec.clone(), schema)
            .await
            .map_err(query_backend_error)?;
        Ok(merge(spec, parts))
    }
}

/// Storage returned fewer or more outcomes than records: the missing ones are accounted as
/// dropped (never silently lost), the extra ones ignored.
fn complete_outcomes(outcomes: &mut Outcomes, count: usize, destination: Option<&Destination>) {
    let count = count as u64;
    outcomes.truncate(count);
    let missing = count - outcomes.len();
    outcomes.push_run(
        RecordOutcome::Dropped {
            destination: destination.cloned(),
            reason: DropReason::StorageError,
            detail: "storage returned no outcome for this record".into(),
        },
        missing,
    );
}

fn ingest_backend_error(e: BackendError) -> IngestError {
    match e {
        BackendError::WorkspaceNotFound { workspace } => {
            IngestError::WorkspaceNotFound { workspace }
        }
        BackendError::Inaccessible { .. } | BackendError::Unreachable { .. } => {
            IngestError::StorageUnreachable {
                reason: e.to_string(),
            }
        }
        BackendError::DeclarationRefused { message } => IngestError::DeclarationRefused { message },
        BackendError::Refused { message } => IngestError::StorageRefused { message },
    }
}

fn query_backend_error(e: BackendError) -> QueryError {
    match e {
        BackendError::WorkspaceNotFound { workspace } => {
            QueryError::WorkspaceNotFound { workspace }
        }
        BackendError::Inaccessible {
            destination,
            state,
            detail,
        } => QueryError::StorageInaccessible {
            destination,
            state,
            detail,
        },
        BackendError::Unreachable { reason } => QueryError::StorageUnreachable { reason },
        // A query declares nor appends nothing; should storage ever answer so, it is
        // storage's fault.
        BackendError::DeclarationRefused { message } | BackendError::Refused { message } => {
            QueryError::StorageUnreachable { reason: message }
        }
    }
}
