//! An in-memory storage backend: the front end's tests, and a way to run the front end alone.
//!
//! It models exactly what the front end observes of storage (SPEC §5), without encryption:
//! workspaces with a link state, clusters with a key and a state (`healthy`, `unavailable`,
//! `revoked`, `crypto-shredded`), shared storage under the MMK, a buffer while a cluster is
//! unavailable (written, in order, when it becomes healthy again; dropped as `buffer expired`
//! after the buffer window), and hot/cold tiers by age. Controls are plain methods a test calls.
//! Every list is bounded by `records_max`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cmksim_sim::{Clock, SimTime};

use super::{AppendRequest, AppendResult, BackendError, StorageBackend};
use crate::outcome::{DropReason, KeyProtection, RecordOutcome};
use crate::query::{filter_part, QuerySpec, StoragePart, Tier};
use crate::record::Record;
use crate::routing::{Destination, LinkState, WorkspaceRouting};
use crate::schema::{CustomTables, TableSchema};
use crate::BoxFuture;

/// A simulated cluster's key-access state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    Healthy,
    Unavailable,
    Revoked,
    CryptoShredded,
}

impl ClusterState {
    fn label(self) -> &'static str {
        match self {
            ClusterState::Healthy => "healthy",
            ClusterState::Unavailable => "unavailable",
            ClusterState::Revoked => "revoked",
            ClusterState::CryptoShredded => "crypto-shredded",
        }
    }
}

struct Cluster {
    state: ClusterState,
    key: KeyProtection,
    buffer: Vec<(SimTime, String, String, Record)>,
}

type DataKey = (Destination, String, String);

struct Inner {
    workspaces: BTreeMap<String, (LinkState, Vec<String>)>,
    clusters: BTreeMap<String, Cluster>,
    data: BTreeMap<DataKey, Vec<Record>>,
    records: usize,
    unreachable: bool,
    tables: CustomTables,
}

/// The in-memory storage.
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
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an unlinked workspace.
    pub fn add_workspace(&self, workspace: &str) {
        self.lock()
            .workspaces
            .insert(workspace.to_string(), (LinkState::Unlinked, Vec::new()));
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

    /// Sets a workspace's link state (a completed link remembers the cluster).
    pub fn set_link(&self, workspace: &str, link: LinkState) {
        let mut inner = self.lock();
        if let Some((state, ever)) = inner.workspaces.get_mut(workspace) {
            if let LinkState::Linked { cluster } = &link {
                if !ever.contains(cluster) {
                    ever.push(cluster.clone());
                }
            }
            *state = link;
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

    fn append_now(&self, request: AppendRequest) -> Result<Vec<RecordOutcome>, BackendError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.unreachable {
            return Err(Self::unreachable());
        }
        if !inner.workspaces.contains_key(&request.workspace) {
            return Err(BackendError::WorkspaceNotFound {
                workspace: request.workspace,
            });
        }
        let destination = request.destination.clone();
        let mut outcomes = Vec::with_capacity(request.records.len());
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
        Ok(outcomes)
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
                    ClusterState::CryptoShredded => {
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

    fn query_now(
        &self,
        destination: Destination,
        spec: QuerySpec,
    ) -> Result<StoragePart, BackendError> {
        let now = self.clock.now();
        let inner = self.lock();
        if inner.unreachable {
            return Err(Self::unreachable());
        }
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
        let hot_from = now.sub(self.hot_window);
        let rows = inner.data.get(&key).into_iter().flatten().map(|r| {
            let tier = if r.time_generated >= hot_from {
                Tier::Hot
            } else {
                Tier::Cold
            };
            (r.clone(), tier)
        });
        Ok(filter_part(destination.clone(), rows, &spec))
    }
}

impl StorageBackend for MemoryStorage {
    fn routing(&self, workspace: String) -> BoxFuture<'_, Result<WorkspaceRouting, BackendError>> {
        let inner = self.lock();
        let result = if inner.unreachable {
            Err(Self::unreachable())
        } else {
            match inner.workspaces.get(&workspace) {
                Some((link, ever)) => Ok(WorkspaceRouting {
                    workspace,
                    link: link.clone(),
                    clusters_ever: ever.clone(),
                }),
                None => Err(BackendError::WorkspaceNotFound { workspace }),
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendResult, BackendError>> {
        let routed_to = Some(request.destination.clone());
        let result = self.append_now(request).map(|outcomes| AppendResult {
            routed_to,
            outcomes,
        });
        Box::pin(std::future::ready(result))
    }

    fn query(
        &self,
        destinations: Vec<Destination>,
        spec: QuerySpec,
        _schema: TableSchema,
    ) -> BoxFuture<'_, Result<Vec<StoragePart>, BackendError>> {
        let result = destinations
            .into_iter()
            .map(|d| self.query_now(d, spec.clone()))
            .collect();
        Box::pin(std::future::ready(result))
    }

    fn custom_table(
        &self,
        workspace: String,
        table: String,
    ) -> BoxFuture<'_, Result<Option<TableSchema>, BackendError>> {
        let inner = self.lock();
        let result = if inner.unreachable {
            Err(Self::unreachable())
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
