//! An in-memory fake of the storage contract, for the front end's own tests.
//!
//! It decides nothing the real storage would not answer: a test says where storage routes a
//! workspace's batches ([`MemoryStorage::set_route`], storage's `routed_to`, or a drop before any
//! storage when a link was accepted before the cluster finished provisioning) and what state a
//! cluster is in ([`ClusterState`]: healthy, unavailable → buffered, revoked, shredded); the fake
//! answers each record's outcome as storage does, and queries every storage the workspace's data
//! ever went to, refusing if one of them cannot serve reads (as `storage.v1.DataPlane/Query`
//! does). No encryption, no durability. Every list is bounded by `records_max`; the
//! destinations a workspace remembers are distinct, so at most one per cluster plus shared.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cmksim_sim::{Clock, SimTime};

use super::{AppendRequest, AppendResult, BackendError, StorageBackend, SummaryPart};
use crate::outcome::{DropReason, KeyProtection, Outcomes, RecordOutcome};
use crate::query::{filter_part, QuerySpec, StoragePart, Tier};
use crate::record::Record;
use crate::routing::Destination;
use crate::schema::{CustomTables, TableSchema};
use crate::BoxFuture;

/// A simulated cluster's key-access state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    Healthy,
    Unavailable,
    Revoked,
    Shredded,
}

impl ClusterState {
    /// The storage state's label (`cmksim_proto`'s `StorageStateName::label`).
    fn label(self) -> &'static str {
        use cmksim_proto::storage::v1::StorageStateName;
        match self {
            ClusterState::Healthy => StorageStateName::HealthyCmk.label(),
            ClusterState::Unavailable => StorageStateName::Unavailable.label(),
            ClusterState::Revoked => StorageStateName::Revoked.label(),
            ClusterState::Shredded => StorageStateName::Shredded.label(),
        }
    }
}

/// Where storage routes a workspace's batches now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    To(Destination),
    /// Dropped before any storage: linked to `cluster` before it finished provisioning.
    DropNotProvisioned {
        cluster: String,
    },
}

struct Cluster {
    state: ClusterState,
    key: KeyProtection,
    buffer: Vec<(SimTime, String, String, Record)>,
}

struct Workspace {
    route: Route,
    /// Distinct destinations that received the workspace's data, in first-use order.
    ever: Vec<Destination>,
}

type DataKey = (Destination, String, String);

struct Inner {
    workspaces: BTreeMap<String, Workspace>,
    clusters: BTreeMap<String, Cluster>,
    data: BTreeMap<DataKey, Vec<Record>>,
    records: usize,
    unreachable: bool,
    tables: CustomTables,
    /// Summarize reads answered with groups (what a test checks to know which path ran).
    summaries: u64,
}

/// The in-memory fake.
pub struct MemoryStorage {
    clock: Clock,
    hot_window: Duration,
    buffer_window: Duration,
    records_max: usize,
    inner: Mutex<Inner>,
}

impl MemoryStorage {
    /// Storage reading time from `clock`, with the profile's hot-tier and buffer windows.
    pub fn new(clock: Clock, hot_window: Duration, buffer_window: Duration) -> MemoryStorage {
        MemoryStorage {
            clock,
            hot_window,
            buffer_window,
            records_max: 1_000_000,
            inner: Mutex::new(Inner {
                workspaces: BTreeMap::new(),
                clusters: BTreeMap::new(),
                data: BTreeMap::new(),
                records: 0,
                unreachable: false,
                tables: CustomTables::default(),
                summaries: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many summarize reads this fake answered with groups.
    pub fn summaries_answered(&self) -> u64 {
        self.lock().summaries
    }

    /// Adds a workspace whose batches go to shared storage.
    pub fn add_workspace(&self, workspace: &str) {
        self.lock().workspaces.insert(
            workspace.to_string(),
            Workspace {
                route: Route::To(Destination::Shared),
                ever: Vec::new(),
            },
        );
    }

    /// Adds a healthy cluster whose data is protected by `key`.
    pub fn add_cluster(&self, name: &str, key: KeyProtection) {
        self.lock().clusters.insert(
            name.to_string(),
            Cluster {
                state: ClusterState::Healthy,
                key,
                buffer: Vec::new(),
            },
        );
    }

    /// Sets where storage routes the workspace's next batches.
    pub fn set_route(&self, workspace: &str, route: Route) {
        if let Some(ws) = self.lock().workspaces.get_mut(workspace) {
            ws.route = route;
        }
    }

    /// Sets a cluster's state; becoming healthy writes the buffer in order (or drops what
    /// outlived the buffer window).
    pub fn set_cluster_state(&self, name: &str, state: ClusterState) {
        let now = self.clock.now();
        let buffer_window = self.buffer_window;
        let mut inner = self.lock();
        let Some(cluster) = inner.clusters.get_mut(name) else {
            return;
        };
        cluster.state = state;
        if state != ClusterState::Healthy {
            return;
        }
        let buffer = std::mem::take(&mut cluster.buffer);
        for (at, ws, table, record) in buffer {
            if now.since(at) <= buffer_window {
                let key = (Destination::Cluster(name.to_string()), ws, table);
                inner.data.entry(key).or_default().push(record);
            }
        }
    }

    /// Makes every call fail as if the storage service could not be reached.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// Stored records of a workspace's table in one storage (for tests).
    pub fn stored(&self, destination: &Destination, workspace: &str, table: &str) -> Vec<Record> {
        let key = (
            destination.clone(),
            workspace.to_string(),
            table.to_string(),
        );
        self.lock().data.get(&key).cloned().unwrap_or_default()
    }

    fn unreachable() -> BackendError {
        BackendError::Unreachable {
            reason: "connection refused".into(),
        }
    }

    fn append_now(&self, request: AppendRequest) -> Result<AppendResult, BackendError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.unreachable {
            return Err(Self::unreachable());
        }
        let Some(ws) = inner.workspaces.get(&request.workspace) else {
            return Err(BackendError::WorkspaceNotFound {
                workspace: request.workspace,
            });
        };
        let destination = match &ws.route {
            Route::To(destination) => destination.clone(),
            Route::DropNotProvisioned { cluster } => {
                let reason = DropReason::NotProvisioned;
                let dropped = RecordOutcome::Dropped {
                    destination: None,
                    reason,
                    detail: format!(
                        "{}: cluster {cluster} has not finished provisioning; data sent before it completes is dropped and not recoverable",
                        reason.label()
                    ),
                };
                return Ok(AppendResult {
                    routed_to: None,
                    outcomes: Outcomes::uniform(dropped, request.records.len() as u64),
                });
            }
        };
        let mut outcomes = Outcomes::new();
        for record in request.records {
            let outcome = if inner.records >= self.records_max {
                RecordOutcome::Dropped {
                    destination: Some(destination.clone()),
                    reason: DropReason::StorageError,
                    detail: format!("in-memory storage full ({} records)", self.records_max),
                }
            } else {
                self.place(
                    &mut inner,
                    now,
                    &destination,
                    &request.workspace,
                    &request.table,
                    record,
                )
            };
            outcomes.push(outcome);
        }
        if let Some(ws) = inner.workspaces.get_mut(&request.workspace) {
            if !ws.ever.contains(&destination) {
                ws.ever.push(destination.clone());
            }
        }
        Ok(AppendResult {
            routed_to: Some(destination),
            outcomes,
        })
    }

    fn place(
        &self,
        inner: &mut Inner,
        now: SimTime,
        destination: &Destination,
        workspace: &str,
        table: &str,
        record: Record,
    ) -> RecordOutcome {
        let key = (
            destination.clone(),
            workspace.to_string(),
            table.to_string(),
        );
        let protection = match destination {
            Destination::Shared => KeyProtection::Mmk,
            Destination::Cluster(name) => {
                let Some(cluster) = inner.clusters.get_mut(name) else {
                    return RecordOutcome::Dropped {
                        destination: Some(destination.clone()),
                        reason: DropReason::StorageError,
                        detail: format!("cluster {name} does not exist"),
                    };
                };
                match cluster.state {
                    ClusterState::Healthy => cluster.key.clone(),
                    ClusterState::Unavailable => {
                        cluster.buffer.push((
                            now,
                            workspace.to_string(),
                            table.to_string(),
                            record,
                        ));
                        inner.records += 1;
                        return RecordOutcome::Buffered {
                            destination: destination.clone(),
                        };
                    }
                    ClusterState::Revoked => {
                        return RecordOutcome::Dropped {
                            destination: Some(destination.clone()),
                            reason: DropReason::Revoked,
                            detail: format!("cluster {name} cannot access its key (revoked)"),
                        }
                    }
                    ClusterState::Shredded => {
                        return RecordOutcome::Dropped {
                            destination: Some(destination.clone()),
                            reason: DropReason::Shredded,
                            detail: format!("cluster {name}'s key material is gone for good"),
                        }
                    }
                }
            }
        };
        inner.data.entry(key).or_default().push(record);
        inner.records += 1;
        RecordOutcome::Stored {
            destination: destination.clone(),
            key: protection,
        }
    }

    /// Every storage the workspace's data went to, plus shared storage and the current route,
    /// sorted; refused whole if a cluster among them cannot serve reads.
    fn query_now(&self, spec: QuerySpec) -> Result<Vec<StoragePart>, BackendError> {
        let now = self.clock.now();
        let inner = self.lock();
        if inner.unreachable {
            return Err(Self::unreachable());
        }
        let Some(ws) = inner.workspaces.get(&spec.workspace) else {
            return Err(BackendError::WorkspaceNotFound {
                workspace: spec.workspace.clone(),
            });
        };
        let mut destinations = ws.ever.clone();
        destinations.push(Destination::Shared);
        if let Route::To(current) = &ws.route {
            destinations.push(current.clone());
        }
        destinations.sort();
        destinations.dedup();
        let hot_from = now.sub(self.hot_window);
        let mut parts = Vec::with_capacity(destinations.len());
        for destination in destinations {
            if let Destination::Cluster(name) = &destination {
                if let Some(cluster) = inner.clusters.get(name) {
                    if cluster.state != ClusterState::Healthy {
                        return Err(BackendError::Inaccessible {
                            destination: destination.clone(),
                            state: cluster.state.label().to_string(),
                            detail: format!(
                                "cluster {name}'s storage is {} and cannot serve queries",
                                cluster.state.label()
                            ),
                        });
                    }
                }
            }
            let key = (
                destination.clone(),
                spec.workspace.clone(),
                spec.table.clone(),
            );
            let rows = inner.data.get(&key).into_iter().flatten().map(|r| {
                let tier = if r.time_generated >= hot_from {
                    Tier::Hot
                } else {
                    Tier::Cold
                };
                (r.clone(), tier)
            });
            parts.push(filter_part(destination.clone(), rows, &spec));
        }
        Ok(parts)
    }

    /// The summarize storage runs for a KQL query (`storage.v1`'s `kql_summarize`), over this
    /// fake's rows: per storage, every row in the range in time order (the order its query
    /// answers), filtered by the query's leading `where`s and folded into the plan's groups.
    /// `None` for a query without a plan, as storage answers rows then.
    fn summarize_now(&self, mut spec: QuerySpec) -> Result<Option<Vec<SummaryPart>>, BackendError> {
        let Some(read) = spec.kql.clone() else {
            return Ok(None);
        };
        let refused = |message: String| BackendError::Refused { message };
        let query = cmksim_kql::parse(&read.text).map_err(|e| refused(format!("kql: {e}")))?;
        let columns = read
            .columns
            .iter()
            .map(|(name, t)| {
                cmksim_kql::ColumnType::from_name(t)
                    .map(|t| cmksim_kql::Column::new(name.clone(), t))
                    .ok_or_else(|| refused(format!("kql column {name:?}: unknown type")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bad = |e: cmksim_kql::ExecError| refused(format!("kql: {e}"));
        let Some(plan) = query.summarize_plan(&spec.table, &columns).map_err(bad)? else {
            return Ok(None);
        };
        let filter = query.row_filter(&spec.table, &columns).map_err(bad)?;
        // Every row of the range: the fake holds them all in memory anyway.
        spec.limit = u32::MAX;
        let mut parts = Vec::new();
        for part in self.query_now(spec)? {
            let mut groups = plan.groups();
            let mut kept = BTreeMap::new();
            for (seq, (record, tier)) in (0u64..).zip(&part.rows) {
                let cells = record.kql_cells(&columns);
                if filter.as_ref().is_none_or(|f| f.keeps(&cells, read.now_ms)) {
                    let at = cmksim_kql::RowAt {
                        time_ms: record.time_generated.unix_ms(),
                        part: 0,
                        seq,
                    };
                    plan.add(&mut groups, &cells, read.now_ms, at);
                    *kept.entry(*tier).or_insert(0) += 1;
                }
            }
            parts.push(SummaryPart {
                destination: part.destination,
                groups: plan.encode(&groups),
                scanned: part.scanned,
                kept,
            });
        }
        self.lock().summaries += 1;
        Ok(Some(parts))
    }
}

impl StorageBackend for MemoryStorage {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendResult, BackendError>> {
        Box::pin(std::future::ready(self.append_now(request)))
    }

    fn query(
        &self,
        spec: QuerySpec,
        _schema: TableSchema,
    ) -> BoxFuture<'_, Result<Vec<StoragePart>, BackendError>> {
        Box::pin(std::future::ready(self.query_now(spec)))
    }

    fn summarize(
        &self,
        spec: QuerySpec,
        _schema: TableSchema,
    ) -> BoxFuture<'_, Result<Option<Vec<SummaryPart>>, BackendError>> {
        Box::pin(std::future::ready(self.summarize_now(spec)))
    }

    fn custom_table(
        &self,
        workspace: String,
        table: String,
    ) -> BoxFuture<'_, Result<Option<TableSchema>, BackendError>> {
        let inner = self.lock();
        let result = if inner.unreachable {
            Err(Self::unreachable())
        } else if !inner.workspaces.contains_key(&workspace) {
            Err(BackendError::WorkspaceNotFound { workspace })
        } else {
            Ok(inner
                .tables
                .lookup(&workspace, &table)
                .filter(|schema| schema.kind == crate::schema::TableKind::Custom))
        };
        Box::pin(std::future::ready(result))
    }

    fn declare_custom_table(
        &self,
        workspace: String,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<TableSchema, BackendError>> {
        let mut inner = self.lock();
        let columns: Vec<(String, String)> = schema
            .columns
            .iter()
            .map(|(c, t)| (c.clone(), t.name().to_string()))
            .collect();
        let result = if inner.unreachable {
            Err(Self::unreachable())
        } else if !inner.workspaces.contains_key(&workspace) {
            Err(BackendError::WorkspaceNotFound { workspace })
        } else {
            match inner
                .tables
                .check_declaration(&workspace, &schema.name, &columns)
            {
                Ok(declaration) => {
                    let registered = declaration.schema.clone();
                    inner.tables.apply(declaration);
                    Ok(registered)
                }
                Err(error) => Err(BackendError::DeclarationRefused {
                    message: error.to_string(),
                }),
            }
        };
        Box::pin(std::future::ready(result))
    }
}
