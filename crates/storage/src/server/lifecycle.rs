//! The storage server's data lifecycle: the retention job, pending purges, table delete and the
//! workspace lock over gRPC (`storage.v1.Workspaces` Purge, GetPurgeStatus, DeleteTable,
//! PutLock, DeleteLock, GetLock; SetTableRetention and GetTableRetention in `grpc_workspaces`).
//!
//! **Retention job.** The control tick ([`super::effects::run_tick`]) calls
//! [`Core::lifecycle_tick`] after each tick. Every [`RETENTION_CHECK_INTERVAL`] (simulated) it
//! visits every workspace, in id order, and asks the data plane to remove the blocks older than
//! each table's retention — its own `retentionInDays` where it has one (issue 14), the
//! workspace's otherwise — in every account that holds the workspace's data (its region's shared
//! storage and every cluster it was ever linked to). The work is bounded: at most
//! [`RETENTION_BLOCKS_PER_TICK_MAX`] blocks per tick; when that bound stops a pass, the next runs
//! at the next tick (at most [`super::effects::TICK_CHECK_INTERVAL_MAX`] later). Removal needs
//! no key, so it runs whatever the key-access state is: seed 000, "Inaccessible data is governed
//! by the data-retention policy and will be purged when retention is reached". Each table's
//! removal is one `storage.retention.removed` event (records, blocks, time range, the table's
//! retention).
//!
//! **Purges** are completed by the same tick, in request order: in every account of the
//! workspace, matching records still in the outage buffer are removed, and every block of the
//! table is re-sealed without them under a new table key generation, the old one destroyed
//! ([`crate::data::lifecycle`], [`crate::data::shred`]). Blocks under
//! the customer's key need the account key in memory: while it is not (revoked, unavailable,
//! not yet unwrapped) the purge stays `pending` and is retried at the next tick (at most
//! [`PURGES_PER_TICK_MAX`] tried per tick).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tonic::{Code, Status};

use cmksim_proto::storage::v1 as pb;
use cmksim_sim::{EventKind, SimTime};

use crate::control::{
    purge_matches, Purge, PurgeFilter, PurgeOperator, ResourceKind, ResourceName, WorkspaceLock,
    LOCK_LEVEL_CAN_NOT_DELETE,
};
use crate::data::DataError;
use crate::service::status::{azure_status, control_status};

use super::core::{account_of, shared_account, Core};

/// How often the retention job visits every workspace (simulated).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(3_600);
/// Most blocks the retention job removes per tick, all workspaces together.
pub const RETENTION_BLOCKS_PER_TICK_MAX: usize = 4_096;
/// Most pending purges tried per tick.
pub const PURGES_PER_TICK_MAX: usize = 16;

const DAY: Duration = Duration::from_secs(86_400);

/// The lifecycle's events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum LifecycleEvent {
    /// Retention removed blocks of one table of a workspace in one storage.
    RetentionRemoved {
        workspace: String,
        table: String,
        /// `shared` or the cluster's ARM id.
        storage: String,
        retention_days: u32,
        records: u64,
        blocks: u64,
        from_ms: i64,
        to_ms: i64,
    },
    PurgeRequested {
        workspace: String,
        table: String,
        purge_id: String,
        filters: usize,
    },
    PurgeCompleted {
        workspace: String,
        table: String,
        purge_id: String,
        /// Every record removed, from blocks and from the outage buffer.
        records: u64,
        /// Of `records`, those removed from the outage buffer (never written to a block).
        buffered_records: u64,
    },
    /// A pending purge could not run yet (the data under the customer's key is unreadable).
    PurgeWaiting {
        workspace: String,
        purge_id: String,
        reason: String,
    },
    TableDeleted {
        workspace: String,
        table: String,
        records: u64,
        blocks: u64,
    },
}

use crate::control::short;

impl EventKind for LifecycleEvent {
    fn kind(&self) -> &'static str {
        match self {
            LifecycleEvent::RetentionRemoved { .. } => "storage.retention.removed",
            LifecycleEvent::PurgeRequested { .. } => "storage.purge.requested",
            LifecycleEvent::PurgeCompleted { .. } => "storage.purge.completed",
            LifecycleEvent::PurgeWaiting { .. } => "storage.purge.waiting",
            LifecycleEvent::TableDeleted { .. } => "storage.table.deleted",
        }
    }

    fn narrate(&self) -> String {
        match self {
            LifecycleEvent::RetentionRemoved { workspace, table, storage, retention_days, records, blocks, from_ms, to_ms } => format!(
                "retention ({retention_days} days) removed {records} records ({blocks} blocks) of {} {table} from {} storage, TimeGenerated {} .. {}",
                short(workspace),
                if storage == "shared" { "shared".to_string() } else { format!("cluster {}", short(storage)) },
                SimTime(*from_ms),
                SimTime(*to_ms)
            ),
            LifecycleEvent::PurgeRequested { workspace, table, purge_id, filters } => format!(
                "purge {purge_id} of {} {table} requested ({filters} filter(s)); pending",
                short(workspace)
            ),
            LifecycleEvent::PurgeCompleted { workspace, table, purge_id, records, buffered_records } => format!(
                "purge {purge_id} of {} {table} completed: {records} records are gone for good{}",
                short(workspace),
                if *buffered_records > 0 { format!(" ({buffered_records} of them still in the outage buffer)") } else { String::new() }
            ),
            LifecycleEvent::PurgeWaiting { workspace, purge_id, reason } => format!(
                "purge {purge_id} of {} stays pending: {reason}",
                short(workspace)
            ),
            LifecycleEvent::TableDeleted { workspace, table, records, blocks } => format!(
                "table {table} of {} deleted: {records} records in {blocks} blocks",
                short(workspace)
            ),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    azure_status(Code::Internal, "InternalServerError", 500, &e.to_string())
}

/// The accounts that may hold a workspace's data, shared first, then clusters in link order.
fn accounts_of(core: &Core, ws_id: &str, location: &str) -> Vec<(String, Option<String>)> {
    let mut out = vec![(shared_account(location), None)];
    let history = core.history();
    for d in history
        .get(&ws_id.to_ascii_lowercase())
        .into_iter()
        .flatten()
    {
        out.push((account_of(&d.cluster_id), Some(d.cluster.clone())));
    }
    out
}

impl Core {
    fn record_lifecycle(&self, at: SimTime, event: &LifecycleEvent) {
        super::events::record_event(&self.events, at, event);
    }

    /// Runs due retention (when `now >= retention_due`) and pending purges. Returns when the
    /// retention job is due next.
    pub fn lifecycle_tick(&self, retention_due: SimTime) -> SimTime {
        let now = self.now();
        self.run_pending_purges(now);
        if now < retention_due {
            return retention_due;
        }
        match self.retention_pass(now) {
            Ok(true) => now,
            Ok(false) => now.add(RETENTION_CHECK_INTERVAL),
            Err(e) => {
                tracing::error!("storage: the retention job failed (retried next tick): {e}");
                now
            }
        }
    }

    /// One bounded retention pass over every workspace. `Ok(true)` when the bound stopped it.
    fn retention_pass(&self, now: SimTime) -> Result<bool, DataError> {
        let plan = self.control().retention_plan();
        let mut budget = RETENTION_BLOCKS_PER_TICK_MAX;
        for (_, ws_id, location, days) in plan {
            // A table's own retention, or the workspace's (issue 14).
            let own = self.control().table_retentions(&ws_id);
            let days_of = |table: &str| own.get(table).copied().unwrap_or(days);
            let cutoff_of = |table: &str| now.sub(DAY * days_of(table));
            for (account, cluster) in accounts_of(self, &ws_id, &location) {
                if !self.data.account_exists(&account)? {
                    continue;
                }
                let pass = self
                    .data
                    .retention_pass_by_table(&account, &ws_id, &cutoff_of, budget, now)?;
                for r in &pass.removals {
                    budget -= r.blocks as usize;
                    self.record_lifecycle(
                        now,
                        &LifecycleEvent::RetentionRemoved {
                            workspace: ws_id.clone(),
                            table: r.table.clone(),
                            storage: cluster.clone().unwrap_or_else(|| "shared".into()),
                            retention_days: days_of(&r.table),
                            records: r.records,
                            blocks: r.blocks,
                            from_ms: r.from_ms,
                            to_ms: r.to_ms,
                        },
                    );
                }
                if pass.more || budget == 0 {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Tries the pending purges in request order (at most [`PURGES_PER_TICK_MAX`]).
    fn run_pending_purges(&self, now: SimTime) {
        let pending = self.control().pending_purges();
        for purge in pending.into_iter().take(PURGES_PER_TICK_MAX) {
            match self.run_purge(&purge, now) {
                Ok((records, buffered_records)) => {
                    let mut control = self.control();
                    control.complete_purge(&purge.id, now, records);
                    if let Err(e) = self.persist_control(control.state()) {
                        tracing::error!("storage: persisting a completed purge failed: {e}");
                    }
                    drop(control);
                    self.record_lifecycle(
                        now,
                        &LifecycleEvent::PurgeCompleted {
                            workspace: purge.workspace.clone(),
                            table: purge.table.clone(),
                            purge_id: purge.id.clone(),
                            records,
                            buffered_records,
                        },
                    );
                }
                Err(reason) => {
                    let first = {
                        let mut control = self.control();
                        let first = control.purge_waiting(&purge.id, now);
                        if first {
                            if let Err(e) = self.persist_control(control.state()) {
                                tracing::error!("storage: persisting a waiting purge failed: {e}");
                            }
                        }
                        first
                    };
                    // Once per purge: a long revocation would otherwise report it every tick.
                    if first {
                        self.record_lifecycle(
                            now,
                            &LifecycleEvent::PurgeWaiting {
                                workspace: purge.workspace.clone(),
                                purge_id: purge.id.clone(),
                                reason,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Removes a purge's records from every account of its workspace; the records removed (and
    /// of them, those removed from the outage buffer), or why it cannot run yet.
    fn run_purge(&self, purge: &Purge, now: SimTime) -> Result<(u64, u64), String> {
        let location = {
            let control = self.control();
            let Some(resource) =
                ResourceName::parse_arm_id(&purge.workspace, ResourceKind::Workspace)
            else {
                return Err("the workspace id is malformed".into());
            };
            match control.get_workspace(&resource) {
                Ok(ws) => ws.location.clone(),
                Err(e) => return Err(e.to_string()),
            }
        };
        let matches = |r: &crate::data::Record| purge_matches(&purge.filters, r);
        let (mut records, mut buffered) = (0, 0);
        for (account, cluster) in accounts_of(self, &purge.workspace, &location) {
            if !self
                .data
                .account_exists(&account)
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            let report = match &cluster {
                None => self.data.purge_records(
                    &account,
                    None,
                    &purge.workspace,
                    &purge.table,
                    &matches,
                    now,
                ),
                Some(arm_id) => {
                    let rt = self
                        .runtimes()
                        .into_iter()
                        .find(|rt| rt.account == account)
                        .ok_or_else(|| {
                            format!("cluster {} has no running storage", short(arm_id))
                        })?;
                    rt.host.with_aek(|aek| {
                        self.data.purge_records(
                            &account,
                            aek,
                            &purge.workspace,
                            &purge.table,
                            &matches,
                            now,
                        )
                    })
                }
            };
            match report {
                Ok(r) => {
                    records += r.records;
                    buffered += r.buffered_records;
                }
                Err(DataError::KeyUnavailable { .. }) => {
                    return Err(format!(
                        "the data on cluster {} is under the customer's key, which is not available now",
                        short(cluster.as_deref().unwrap_or(""))
                    ))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok((records, buffered))
    }
}

fn lock_to_pb(lock: Option<WorkspaceLock>) -> pb::WorkspaceLock {
    match lock {
        Some(l) => pb::WorkspaceLock {
            exists: true,
            name: l.name,
            level: LOCK_LEVEL_CAN_NOT_DELETE.into(),
            scope: l.scope,
        },
        None => pb::WorkspaceLock::default(),
    }
}

/// A table's retention on the wire.
pub fn table_retention_to_pb(r: &crate::control::TableRetention) -> pb::TableRetention {
    pb::TableRetention {
        table: r.table.clone(),
        retention_in_days: r.days,
        as_default: r.as_default,
    }
}

fn purge_to_pb(p: &Purge) -> pb::PurgeOperation {
    pb::PurgeOperation {
        purge_id: p.id.clone(),
        status: p.status.as_str().into(),
        records: p.records,
        requested_unix_ms: p.requested_at.0,
        completed_unix_ms: p.completed_at.map(|t| t.0),
    }
}

/// `Purge`: validates, records the request (pending) and wakes the tick.
pub fn purge(core: &Arc<Core>, r: pb::PurgeRequest) -> Result<pb::PurgeOperation, Status> {
    let resource = super::convert::workspace_name(r.workspace.as_ref());
    let bad = |m: String| azure_status(Code::InvalidArgument, "InvalidParameter", 400, &m);
    let mut filters = Vec::with_capacity(r.filters.len());
    for f in r.filters.iter().take(crate::control::PURGE_FILTERS_MAX + 1) {
        let operator = PurgeOperator::parse(&f.operator).ok_or_else(|| {
            bad(format!(
                "the purge filter operator {:?} is not one of ==, =~, !=, in, in~, <, <=, >, >=, between",
                cmksim_sim::text::echo(&f.operator)
            ))
        })?;
        let value = serde_json::from_str(&f.value_json).map_err(|e| {
            bad(format!(
                "the value of the filter on column {:?} is not JSON: {e}",
                cmksim_sim::text::echo(&f.column)
            ))
        })?;
        filters.push(PurgeFilter {
            column: f.column.clone(),
            operator,
            value,
        });
    }
    let now = core.now();
    let purge = {
        let mut control = core.control();
        let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
        let purge = control
            .request_purge(now, &resource, &r.table, filters, &mut *rng)
            .map_err(|e| control_status(&control, &e))?;
        core.persist_control(control.state()).map_err(internal)?;
        purge
    };
    core.record_lifecycle(
        now,
        &LifecycleEvent::PurgeRequested {
            workspace: purge.workspace.clone(),
            table: purge.table.clone(),
            purge_id: purge.id.clone(),
            filters: purge.filters.len(),
        },
    );
    core.tick_wake.notify_one();
    Ok(purge_to_pb(&purge))
}

/// `GetPurgeStatus`.
pub fn purge_status(core: &Core, r: pb::PurgeStatusRequest) -> Result<pb::PurgeOperation, Status> {
    let resource = super::convert::workspace_name(r.workspace.as_ref());
    let control = core.control();
    let purge = control
        .get_purge(&resource, &r.purge_id)
        .map_err(|e| control_status(&control, &e))?;
    Ok(purge_to_pb(purge))
}

/// `DeleteTable`: refused while locked; deletes every block of the table in every account, then
/// forgets the table's declaration and retention. The data goes first
/// ([`crate::control::ControlPlane::check_table_delete`]): a crash or a failure part way leaves
/// the table declared, with fewer blocks or none, and a retry finishes the job; never a table
/// the control plane has forgotten whose records are still on disk and still answer queries.
pub fn delete_table(core: &Core, r: pb::DeleteTableRequest) -> Result<pb::TableDeleted, Status> {
    let resource = super::convert::workspace_name(r.workspace.as_ref());
    let now = core.now();
    let (ws_id, location) = {
        let control = core.control();
        let ws_id = control
            .check_table_delete(&resource, &r.table)
            .map_err(|e| control_status(&control, &e))?;
        let location = control
            .get_workspace(&resource)
            .map_err(|e| control_status(&control, &e))?
            .location
            .clone();
        (ws_id, location)
    };
    let mut out = pb::TableDeleted {
        table: r.table.clone(),
        ..Default::default()
    };
    for (account, _) in accounts_of(core, &ws_id, &location) {
        if !core.data.account_exists(&account).map_err(internal)? {
            continue;
        }
        let removal = core
            .data
            .delete_table(&account, &ws_id, &r.table)
            .map_err(internal)?;
        out.records += removal.records;
        out.blocks += removal.blocks;
    }
    crate::data::lifecycle::crash_point();
    {
        let mut control = core.control();
        control.forget_table(&ws_id, &r.table);
        core.persist_control(control.state()).map_err(internal)?;
    }
    core.record_lifecycle(
        now,
        &LifecycleEvent::TableDeleted {
            workspace: ws_id,
            table: r.table,
            records: out.records,
            blocks: out.blocks,
        },
    );
    Ok(out)
}

/// `PutLock` / `DeleteLock` / `GetLock`.
pub fn lock(core: &Core, r: pb::LockRequest, put: bool) -> Result<pb::WorkspaceLock, Status> {
    let resource = super::convert::workspace_name(r.workspace.as_ref());
    let now = core.now();
    let (outcome, lock) = {
        let mut control = core.control();
        let outcome = if put {
            control.put_workspace_lock(now, &resource, &r.lock_name)
        } else {
            control
                .delete_workspace_lock(now, &resource, &r.lock_name)
                .map(|(_, out)| out)
        }
        .map_err(|e| control_status(&control, &e))?;
        core.persist_control(control.state()).map_err(internal)?;
        let lock = control
            .workspace_lock(&resource)
            .map_err(|e| control_status(&control, &e))?;
        (outcome, lock)
    };
    core.record_control(now, &outcome);
    Ok(lock_to_pb(lock))
}

/// `GetLock`.
pub fn get_lock(core: &Core, r: pb::WorkspaceRef) -> Result<pb::WorkspaceLock, Status> {
    let resource = super::convert::workspace_name(Some(&r));
    let control = core.control();
    let lock = control
        .workspace_lock(&resource)
        .map_err(|e| control_status(&control, &e))?;
    Ok(lock_to_pb(lock))
}
