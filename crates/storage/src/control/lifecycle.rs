//! Data lifecycle rules (seed 003): purge requests, table delete and the workspace lock, as pure
//! domain logic. The data plane does the removal ([`crate::data::lifecycle`]); the storage
//! server's control tick runs retention and pending purges.
//!
//! - **Lock** (seed 003: "set a lock on your Log Analytics workspace to block all activities that
//!   could delete data: purge, table delete, and table- or workspace-level data retention changes.
//!   However, this lock can still be removed."). The lock is an ARM management lock
//!   (`Microsoft.Authorization/locks`, level `CanNotDelete`) on the workspace; one per workspace
//!   here, kept by name. Refused while locked, with ARM's `ScopeLocked` (409): purge, table
//!   delete, and a retention *decrease* — an increase deletes nothing, and the seed's sentence is
//!   about "activities that could delete data".
//! - **Purge** (the `workspaces/purge` API, api-version 2020-08-01): a table and filters
//!   (`column`, `operator`, `value`), all of which must match (AND). Asynchronous: the request
//!   answers an operation id at once (`pending`); the storage completes it at a later control
//!   tick when every block it must rewrite can be opened (a purge of data under a revoked key
//!   stays `pending`; retention still removes that data on time).
//! - **Table delete**: refused while locked; otherwise the storage deletes every block of the
//!   table and the table's custom declaration.
//!
//! Bounds: at most [`PURGE_FILTERS_MAX`] filters per request, at most [`PURGES_PENDING_MAX`]
//! pending purges per workspace (429 beyond, as Azure throttles purge requests), and at most
//! [`PURGES_KEPT_MAX`] finished purges remembered (the oldest are forgotten).

use std::collections::BTreeMap;

use cmksim_sim::{ids, SimTime};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{ControlError, ControlPlane, ResourceName};
use crate::data::{Record, Value};

/// The purge API's api-version.
pub const PURGE_API_VERSION: &str = "2020-08-01";
/// Most filters in one purge request.
pub const PURGE_FILTERS_MAX: usize = 16;
/// Most purges pending at once per workspace.
pub const PURGES_PENDING_MAX: usize = 50;
/// Most finished purges remembered (for `GET .../operations/{purgeId}`).
pub const PURGES_KEPT_MAX: usize = 1000;
/// The lock level the ARM lock resource carries.
pub const LOCK_LEVEL_CAN_NOT_DELETE: &str = "CanNotDelete";

/// A purge filter's operator, as the purge API spells them (KQL semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PurgeOperator {
    /// `==`
    Eq,
    /// `=~` (case-insensitive equality)
    EqCi,
    /// `!=`
    Ne,
    /// `in` (value is an array)
    In,
    /// `in~` (case-insensitive)
    InCi,
    /// `<`, `<=`, `>`, `>=`
    Lt,
    Le,
    Gt,
    Ge,
    /// `between` (value is `[low, high]`, inclusive)
    Between,
}

impl PurgeOperator {
    /// The operator for its API spelling.
    pub fn parse(text: &str) -> Option<PurgeOperator> {
        Some(match text.trim() {
            "==" => PurgeOperator::Eq,
            "=~" => PurgeOperator::EqCi,
            "!=" => PurgeOperator::Ne,
            "in" => PurgeOperator::In,
            "in~" => PurgeOperator::InCi,
            "<" => PurgeOperator::Lt,
            "<=" => PurgeOperator::Le,
            ">" => PurgeOperator::Gt,
            ">=" => PurgeOperator::Ge,
            "between" => PurgeOperator::Between,
            _ => return None,
        })
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeOperator::Eq => "==",
            PurgeOperator::EqCi => "=~",
            PurgeOperator::Ne => "!=",
            PurgeOperator::In => "in",
            PurgeOperator::InCi => "in~",
            PurgeOperator::Lt => "<",
            PurgeOperator::Le => "<=",
            PurgeOperator::Gt => ">",
            PurgeOperator::Ge => ">=",
            PurgeOperator::Between => "between",
        }
    }
}

/// One filter of a purge request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeFilter {
    pub column: String,
    pub operator: PurgeOperator,
    /// A JSON scalar, or an array for `in`, `in~` and `between`.
    pub value: serde_json::Value,
}

/// Compares a stored value with a filter scalar: numbers as numbers, datetimes with RFC 3339
/// text, strings as strings (case-folded when `ci`). `None` when the types do not compare.
fn compare(stored: &Value, wanted: &serde_json::Value, ci: bool) -> Option<std::cmp::Ordering> {
    use serde_json::Value as J;
    match (stored, wanted) {
        (Value::String(s), J::String(w)) if ci => Some(s.to_lowercase().cmp(&w.to_lowercase())),
        (Value::String(s), J::String(w)) => Some(s.as_str().cmp(w.as_str())),
        (Value::Long(n), J::Number(w)) => match w.as_i64() {
            Some(w) => Some(n.cmp(&w)),
            None => (*n as f64).partial_cmp(&w.as_f64()?),
        },
        (Value::Real(x), J::Number(w)) => x.partial_cmp(&w.as_f64()?),
        (Value::Bool(b), J::Bool(w)) => Some(b.cmp(w)),
        (Value::DateTime(ms), J::String(w)) => Some(ms.cmp(&SimTime::parse_rfc3339(w).ok()?.0)),
        (Value::DateTime(ms), J::Number(w)) => Some(ms.cmp(&w.as_i64()?)),
        _ => None,
    }
}

impl PurgeFilter {
    /// Checks the filter's shape: a column, and a value fitting the operator.
    fn validate(&self) -> Result<(), String> {
        if self.column.trim().is_empty() {
            return Err("a filter has no column".into());
        }
        let n = self.value.as_array().map(Vec::len);
        match (self.operator, n) {
            (PurgeOperator::In | PurgeOperator::InCi, Some(1..)) => Ok(()),
            (PurgeOperator::Between, Some(2)) => Ok(()),
            (PurgeOperator::In | PurgeOperator::InCi | PurgeOperator::Between, _) => Err(format!(
                "the operator {} of the filter on column {} needs an array value{}",
                self.operator.as_str(),
                cmksim_sim::text::echo(&self.column),
                if self.operator == PurgeOperator::Between {
                    " of two items"
                } else {
                    ""
                }
            )),
            (_, None) => Ok(()),
            (_, Some(_)) => Err(format!(
                "the operator {} of the filter on column {} needs a single value",
                self.operator.as_str(),
                cmksim_sim::text::echo(&self.column)
            )),
        }
    }

    /// Whether `record` matches. `TimeGenerated` is the record's time; a record without the
    /// column never matches (KQL: a comparison with null is false).
    pub fn matches(&self, record: &Record) -> bool {
        let time;
        let stored = if self.column == "TimeGenerated" {
            time = Value::DateTime(record.time_generated_ms);
            &time
        } else {
            match record.columns.get(&self.column) {
                Some(v) => v,
                None => return false,
            }
        };
        use std::cmp::Ordering::*;
        let cmp = |w: &serde_json::Value, ci: bool| compare(stored, w, ci);
        let items = || self.value.as_array().into_iter().flatten();
        match self.operator {
            PurgeOperator::Eq => cmp(&self.value, false) == Some(Equal),
            PurgeOperator::EqCi => cmp(&self.value, true) == Some(Equal),
            PurgeOperator::Ne => cmp(&self.value, false).is_some_and(|o| o != Equal),
            PurgeOperator::In => items().any(|w| cmp(w, false) == Some(Equal)),
            PurgeOperator::InCi => items().any(|w| cmp(w, true) == Some(Equal)),
            PurgeOperator::Lt => cmp(&self.value, false) == Some(Less),
            PurgeOperator::Le => matches!(cmp(&self.value, false), Some(Less | Equal)),
            PurgeOperator::Gt => cmp(&self.value, false) == Some(Greater),
            PurgeOperator::Ge => matches!(cmp(&self.value, false), Some(Greater | Equal)),
            PurgeOperator::Between => {
                let bounds: Vec<&serde_json::Value> = items().collect();
                bounds.len() == 2
                    && matches!(cmp(bounds[0], false), Some(Greater | Equal))
                    && matches!(cmp(bounds[1], false), Some(Less | Equal))
            }
        }
    }
}

/// Whether a record matches every filter of a purge (AND).
pub fn purge_matches(filters: &[PurgeFilter], record: &Record) -> bool {
    filters.iter().all(|f| f.matches(record))
}

/// A purge's status, as `GET .../operations/{purgeId}` answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PurgeStatus {
    Pending,
    Completed,
}

impl PurgeStatus {
    /// The API spelling (`pending`, `completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeStatus::Pending => "pending",
            PurgeStatus::Completed => "completed",
        }
    }
}

/// One purge request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Purge {
    /// The operation id (a GUID).
    pub id: String,
    /// Workspace ARM id as spelled at creation.
    pub workspace: String,
    pub table: String,
    pub filters: Vec<PurgeFilter>,
    pub status: PurgeStatus,
    pub requested_at: SimTime,
    pub completed_at: Option<SimTime>,
    /// Records removed (set on completion).
    pub records: u64,
    /// When the purge first could not run (its data under an unavailable key): reported once.
    #[serde(default)]
    pub waiting_since: Option<SimTime>,
}

/// The lifecycle part of the persisted control state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleState {
    /// Purges by operation id (lowercase).
    pub purges: BTreeMap<String, Purge>,
    /// The management lock on a workspace: workspace key → lock name.
    pub locks: BTreeMap<String, String>,
    /// Tables with a retention of their own: workspace key → table → days (at most
    /// [`TABLE_RETENTIONS_PER_WORKSPACE_MAX`] per workspace). A table not here follows its
    /// workspace's `retentionInDays`.
    #[serde(default)]
    pub table_retention: BTreeMap<String, BTreeMap<String, u32>>,
}

/// A table name the data plane can store ([`crate::data::store::check_name`], the one rule), or
/// the request's fault.
fn check_table_name(table: &str) -> Result<(), ControlError> {
    crate::data::store::check_name("table", table)
        .map_err(|e| ControlError::BadRequestBody(e.to_string()))
}

/// Most tables with a retention of their own per workspace (Azure Monitor's 500 custom tables).
pub const TABLE_RETENTIONS_PER_WORKSPACE_MAX: usize = 500;

/// A table's retention in force, as ARM's table resource reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRetention {
    pub table: String,
    /// `properties.retentionInDays`.
    pub days: u32,
    /// `properties.retentionInDaysAsDefault`: the workspace's retention (no value of its own).
    pub as_default: bool,
}

/// The ARM management lock on a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceLock {
    pub name: String,
    /// The workspace ARM id.
    pub scope: String,
}

impl ControlPlane {
    fn locked_refusal(&self, ws_id: &str, operation: &'static str) -> ControlError {
        ControlError::WorkspaceLocked {
            workspace: ws_id.to_string(),
            operation,
        }
    }

    /// The refusal of an operation that could delete data while `resource` is locked.
    pub(crate) fn check_not_locked(
        &self,
        resource: &ResourceName,
        operation: &'static str,
    ) -> Result<String, ControlError> {
        let ws = self.get_workspace(resource)?;
        match ws.locked {
            true => Err(self.locked_refusal(&ws.id, operation)),
            false => Ok(ws.id.clone()),
        }
    }

    /// Places the `CanNotDelete` lock `name` on the workspace (ARM `PUT .../locks/{name}`).
    /// One lock per workspace: putting it again under another name renames it.
    pub fn put_workspace_lock(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        name: &str,
    ) -> Result<super::Outcome<()>, ControlError> {
        if name.trim().is_empty() || name.len() > 90 {
            return Err(ControlError::BadRequestBody(format!(
                "lock name {:?} must have 1 to 90 characters",
                cmksim_sim::text::echo(name)
            )));
        }
        let key = self.get_workspace(resource)?.id.to_ascii_lowercase();
        let out = self.set_workspace_lock(now, resource, true)?;
        self.state.lifecycle.locks.insert(key, name.to_string());
        Ok(out)
    }

    /// Removes the lock `name` (ARM `DELETE .../locks/{name}`); `Ok(false)` when the workspace
    /// has no lock of that name (ARM answers 204 then).
    pub fn delete_workspace_lock(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        name: &str,
    ) -> Result<(bool, super::Outcome<()>), ControlError> {
        let key = self.get_workspace(resource)?.id.to_ascii_lowercase();
        let held = self.workspace_lock(resource)?;
        if held.is_none_or(|l| !l.name.eq_ignore_ascii_case(name)) {
            return Ok((false, super::Outcome::new(())));
        }
        let out = self.set_workspace_lock(now, resource, false)?;
        self.state.lifecycle.locks.remove(&key);
        Ok((true, out))
    }

    /// The workspace's lock, if any (a lock set through `SetLock` without a name is `lock`).
    pub fn workspace_lock(
        &self,
        resource: &ResourceName,
    ) -> Result<Option<WorkspaceLock>, ControlError> {
        let ws = self.get_workspace(resource)?;
        Ok(ws.locked.then(|| WorkspaceLock {
            name: self
                .state
                .lifecycle
                .locks
                .get(&ws.id.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| "lock".to_string()),
            scope: ws.id.clone(),
        }))
    }

    /// Accepts a purge request (pending) and returns its operation id. Refused while locked
    /// (`ScopeLocked`), for an empty table or no filters, a malformed filter (400), or beyond
    /// [`PURGES_PENDING_MAX`] pending purges of the workspace.
    pub fn request_purge(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        table: &str,
        filters: Vec<PurgeFilter>,
        rng: &mut impl RngCore,
    ) -> Result<Purge, ControlError> {
        let ws_id = self.check_not_locked(resource, "delete")?;
        if table.trim().is_empty() {
            return Err(ControlError::BadRequestBody(
                "the purge body names no table".into(),
            ));
        }
        if filters.is_empty() || filters.len() > PURGE_FILTERS_MAX {
            return Err(ControlError::BadRequestBody(format!(
                "a purge needs 1 to {PURGE_FILTERS_MAX} filters, got {}",
                filters.len()
            )));
        }
        for f in &filters {
            f.validate().map_err(ControlError::BadRequestBody)?;
        }
        let pending = self
            .state
            .lifecycle
            .purges
            .values()
            .filter(|p| {
                p.status == PurgeStatus::Pending && p.workspace.eq_ignore_ascii_case(&ws_id)
            })
            .count();
        if pending >= PURGES_PENDING_MAX {
            return Err(ControlError::BadRequestBody(format!(
                "workspace {} already has {PURGES_PENDING_MAX} purges pending; wait for one to complete",
                cmksim_sim::text::echo(&ws_id)
            )));
        }
        let mut id = ids::guid(rng);
        for _ in 0..8 {
            if !self.state.lifecycle.purges.contains_key(&id) {
                break;
            }
            id = ids::guid(rng);
        }
        let purge = Purge {
            id: id.clone(),
            workspace: ws_id,
            table: table.to_string(),
            filters,
            status: PurgeStatus::Pending,
            requested_at: now,
            completed_at: None,
            records: 0,
            waiting_since: None,
        };
        self.state
            .lifecycle
            .purges
            .insert(id.to_ascii_lowercase(), purge.clone());
        self.forget_old_purges();
        Ok(purge)
    }

    /// A purge of `resource` by operation id (ARM's 404 `ResourceNotFound` otherwise).
    pub fn get_purge(&self, resource: &ResourceName, id: &str) -> Result<&Purge, ControlError> {
        let ws = self.get_workspace(resource)?;
        self.state
            .lifecycle
            .purges
            .get(&id.to_ascii_lowercase())
            .filter(|p| p.workspace.eq_ignore_ascii_case(&ws.id))
            .ok_or_else(|| ControlError::OperationNotFound(id.to_string()))
    }

    /// Pending purges in request order (time, then id).
    pub fn pending_purges(&self) -> Vec<Purge> {
        let mut p: Vec<Purge> = self
            .state
            .lifecycle
            .purges
            .values()
            .filter(|p| p.status == PurgeStatus::Pending)
            .cloned()
            .collect();
        p.sort_by(|a, b| (a.requested_at, &a.id).cmp(&(b.requested_at, &b.id)));
        p
    }

    /// Marks a purge completed with the records it removed. The filter values are cleared: the
    /// values a user purged (often the personal data itself) are not kept once the data is gone.
    pub fn complete_purge(&mut self, id: &str, at: SimTime, records: u64) {
        if let Some(p) = self
            .state
            .lifecycle
            .purges
            .get_mut(&id.to_ascii_lowercase())
        {
            p.status = PurgeStatus::Completed;
            p.completed_at = Some(at);
            p.records = records;
            for f in &mut p.filters {
                f.value = serde_json::Value::Null;
            }
        }
    }

    /// Notes that a pending purge could not run at `at`; true the first time (the caller reports
    /// it then, not at every tick of a long revocation).
    pub fn purge_waiting(&mut self, id: &str, at: SimTime) -> bool {
        match self
            .state
            .lifecycle
            .purges
            .get_mut(&id.to_ascii_lowercase())
        {
            Some(p) if p.waiting_since.is_none() => {
                p.waiting_since = Some(at);
                true
            }
            _ => false,
        }
    }

    /// Whether a table delete may go ahead: the workspace exists and is not locked, and the table
    /// is named as the data plane names tables. Returns the workspace ARM id and changes nothing.
    /// The server deletes the table's data next and only then calls [`Self::forget_table`], so a
    /// crash between the two leaves the table declared and empty (a retry finishes the job),
    /// never forgotten with its records still on disk. A lock put in between does not undo a
    /// delete already accepted here.
    pub fn check_table_delete(
        &self,
        resource: &ResourceName,
        table: &str,
    ) -> Result<String, ControlError> {
        let ws_id = self.check_not_locked(resource, "delete")?;
        if table.trim().is_empty() {
            return Err(ControlError::BadRequestBody("no table named".into()));
        }
        check_table_name(table)?;
        Ok(ws_id)
    }

    /// Forgets a deleted table's custom declaration and its retention of its own (nothing when
    /// the workspace or the table is unknown).
    pub fn forget_table(&mut self, ws_id: &str, table: &str) {
        if let Some(tables) = self.state.tables.get_mut(&ws_id.to_ascii_lowercase()) {
            tables.remove(table);
        }
        let key = ws_id.to_ascii_lowercase();
        if let Some(retentions) = self.state.lifecycle.table_retention.get_mut(&key) {
            retentions.remove(table);
            if retentions.is_empty() {
                self.state.lifecycle.table_retention.remove(&key);
            }
        }
    }

    /// The retention in force for `table` of the workspace: its own, or the workspace's.
    pub fn table_retention(
        &self,
        resource: &ResourceName,
        table: &str,
    ) -> Result<TableRetention, ControlError> {
        let ws = self.get_workspace(resource)?;
        let own = self
            .state
            .lifecycle
            .table_retention
            .get(&ws.id.to_ascii_lowercase())
            .and_then(|t| t.get(table))
            .copied();
        Ok(TableRetention {
            table: table.to_string(),
            days: own.unwrap_or(ws.retention_days),
            as_default: own.is_none(),
        })
    }

    /// Sets a table's own retention (`Some(days)`, within the profile's workspace retention
    /// bounds) or makes it follow the workspace's again (`None`; ARM's `retentionInDays: -1`).
    /// While the workspace is locked a change that *decreases* the retention in force is refused
    /// with `ScopeLocked`, as for the workspace's (seed 003: "table- or workspace-level data
    /// retention changes"); an increase deletes nothing and is allowed.
    pub fn set_table_retention(
        &mut self,
        resource: &ResourceName,
        table: &str,
        days: Option<u32>,
    ) -> Result<super::Outcome<TableRetention>, ControlError> {
        if table.trim().is_empty() {
            return Err(ControlError::BadRequestBody("no table named".into()));
        }
        check_table_name(table)?;
        let before = self.table_retention(resource, table)?;
        let ws = self.get_workspace(resource)?;
        let (ws_id, ws_days, locked) = (ws.id.clone(), ws.retention_days, ws.locked);
        if let Some(days) = days {
            self.check_retention(days)?;
        }
        let after_days = days.unwrap_or(ws_days);
        if locked && after_days < before.days {
            return Err(ControlError::WorkspaceLocked {
                workspace: ws_id,
                operation: "write",
            });
        }
        let key = ws_id.to_ascii_lowercase();
        let tables = self
            .state
            .lifecycle
            .table_retention
            .entry(key.clone())
            .or_default();
        match days {
            Some(days) => {
                if !tables.contains_key(table) && tables.len() >= TABLE_RETENTIONS_PER_WORKSPACE_MAX
                {
                    return Err(ControlError::BadRequestBody(format!(
                        "workspace {} already has {TABLE_RETENTIONS_PER_WORKSPACE_MAX} tables with a retention of their own",
                        cmksim_sim::text::echo(&ws_id)
                    )));
                }
                tables.insert(table.to_string(), days);
            }
            None => {
                tables.remove(table);
            }
        }
        if tables.is_empty() {
            self.state.lifecycle.table_retention.remove(&key);
        }
        let after = TableRetention {
            table: table.to_string(),
            days: after_days,
            as_default: days.is_none(),
        };
        let mut out = super::Outcome::new(after.clone());
        if (before.days, before.as_default) != (after.days, after.as_default) {
            out.events.push(super::ControlEvent::TableRetentionChanged {
                workspace: ws_id,
                table: table.to_string(),
                from_days: before.days,
                to_days: after.days,
                as_default: after.as_default,
            });
        }
        Ok(out)
    }

    /// The tables of a workspace (by ARM id, any case) with a retention of their own, by name.
    pub fn table_retentions(&self, ws_id: &str) -> BTreeMap<String, u32> {
        self.state
            .lifecycle
            .table_retention
            .get(&ws_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Every workspace with its retention, in id order (the retention job's work list).
    pub fn retention_plan(&self) -> Vec<(ResourceName, String, String, u32)> {
        self.state
            .workspaces
            .values()
            .map(|w| {
                (
                    w.resource.clone(),
                    w.id.clone(),
                    w.location.clone(),
                    w.retention_days,
                )
            })
            .collect()
    }

    fn forget_old_purges(&mut self) {
        let mut finished: Vec<(SimTime, String)> = self
            .state
            .lifecycle
            .purges
            .iter()
            .filter(|(_, p)| p.status == PurgeStatus::Completed)
            .map(|(k, p)| (p.completed_at.unwrap_or(p.requested_at), k.clone()))
            .collect();
        if finished.len() <= PURGES_KEPT_MAX {
            return;
        }
        finished.sort();
        let excess = finished.len() - PURGES_KEPT_MAX;
        for (_, key) in finished.into_iter().take(excess) {
            self.state.lifecycle.purges.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use cmksim_sim::{EventKind, Profile};
    use serde_json::json;

    use super::super::test_support::{ws_name, World};
    use super::super::ResourceKind;
    use super::*;

    fn filter(column: &str, op: &str, value: serde_json::Value) -> PurgeFilter {
        PurgeFilter {
            column: column.into(),
            operator: PurgeOperator::parse(op).unwrap(),
            value,
        }
    }

    #[test]
    fn filters_follow_kql_comparisons() {
        let r = Record::new(
            "T",
            SimTime::parse_rfc3339("2026-01-02T00:00:00Z").unwrap().0,
        )
        .with("User", Value::String("Alice".into()))
        .with("N", Value::Long(5));
        assert!(filter("User", "==", json!("Alice")).matches(&r));
        assert!(!filter("User", "==", json!("alice")).matches(&r));
        assert!(filter("User", "=~", json!("alice")).matches(&r));
        assert!(filter("User", "in~", json!(["bob", "ALICE"])).matches(&r));
        assert!(filter("N", "between", json!([5, 9])).matches(&r));
        assert!(!filter("N", ">", json!(5)).matches(&r));
        assert!(filter("TimeGenerated", "<", json!("2026-01-03T00:00:00Z")).matches(&r));
        assert!(
            !filter("Missing", "!=", json!("x")).matches(&r),
            "null compares false"
        );
        assert!(filter("N", "in", json!(3)).validate().is_err());
        assert!(filter("N", "between", json!([1])).validate().is_err());
    }

    /// Issue 14: a table's own retention defaults to the workspace's, follows it until set,
    /// is bounded like the workspace's, and the lock refuses a decrease (of the retention in
    /// force, also by going back to a shorter workspace default) but not an increase.
    #[test]
    fn table_retention_defaults_to_the_workspace_and_the_lock_refuses_a_decrease() {
        let mut w = World::new(Profile::azure_2020());
        w.workspace("wks1");
        let ws = ws_name("wks1");
        let ws_days = w.cp.get_workspace(&ws).unwrap().retention_days;
        let t = w.cp.table_retention(&ws, "T").unwrap();
        assert_eq!((t.days, t.as_default), (ws_days, true));
        let out = w.cp.set_table_retention(&ws, "T", Some(90)).unwrap();
        assert_eq!((out.value.days, out.value.as_default), (90, false));
        assert_eq!(out.events[0].kind(), "storage.table.retention_changed");
        assert_eq!(
            w.cp.table_retentions(&ws.arm_id(ResourceKind::Workspace))
                .get("T"),
            Some(&90)
        );
        // Another table still follows the workspace, also after the workspace changes.
        w.cp.update_retention(w.now, &ws, 60).unwrap();
        assert_eq!(w.cp.table_retention(&ws, "U").unwrap().days, 60);
        assert_eq!(w.cp.table_retention(&ws, "T").unwrap().days, 90);
        assert!(matches!(
            w.cp.set_table_retention(&ws, "T", Some(5)),
            Err(ControlError::RetentionOutOfRange { .. })
        ));
        w.cp.put_workspace_lock(w.now, &ws, "no-delete").unwrap();
        let refused = w.cp.set_table_retention(&ws, "T", Some(30)).unwrap_err();
        let body = w.cp.azure_error(&refused);
        assert_eq!((body.code, body.http_status), ("ScopeLocked", 409));
        // Back to the workspace's 60 days is a decrease from 90: refused too.
        assert!(matches!(
            w.cp.set_table_retention(&ws, "T", None),
            Err(ControlError::WorkspaceLocked { .. })
        ));
        assert_eq!(
            w.cp.table_retention(&ws, "T").unwrap().days,
            90,
            "nothing changed"
        );
        // An increase deletes nothing: allowed while locked; setting the same value is no event.
        let up = w.cp.set_table_retention(&ws, "T", Some(120)).unwrap();
        assert_eq!(up.value.days, 120);
        assert!(w
            .cp
            .set_table_retention(&ws, "T", Some(120))
            .unwrap()
            .events
            .is_empty());
        w.cp.delete_workspace_lock(w.now, &ws, "no-delete").unwrap();
        let back = w.cp.set_table_retention(&ws, "T", None).unwrap();
        assert_eq!((back.value.days, back.value.as_default), (60, true));
        assert!(w
            .cp
            .table_retentions(&ws.arm_id(ResourceKind::Workspace))
            .is_empty());
        // A table delete forgets the table's retention.
        w.cp.set_table_retention(&ws, "T", Some(200)).unwrap();
        let ws_id = w.cp.check_table_delete(&ws, "T").unwrap();
        w.cp.forget_table(&ws_id, "T");
        assert!(w.cp.table_retention(&ws, "T").unwrap().as_default);
        // The state round-trips (the control state is persisted as JSON).
        w.cp.set_table_retention(&ws, "V", Some(400)).unwrap();
        let json = serde_json::to_string(&w.cp.state().lifecycle).unwrap();
        let back: LifecycleState = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.table_retention.values().next().unwrap().get("V"),
            Some(&400)
        );
    }

    #[test]
    fn a_lock_refuses_purge_and_table_delete_until_it_is_removed() {
        let mut w = World::new(Profile::azure_2020());
        w.workspace("wks1");
        let ws = ws_name("wks1");
        w.cp.put_workspace_lock(w.now, &ws, "no-delete").unwrap();
        assert_eq!(w.cp.workspace_lock(&ws).unwrap().unwrap().name, "no-delete");
        let refused =
            w.cp.request_purge(
                w.now,
                &ws,
                "T",
                vec![filter("User", "==", json!("a"))],
                &mut w.rng,
            )
            .unwrap_err();
        let body = w.cp.azure_error(&refused);
        assert_eq!((body.code, body.http_status), ("ScopeLocked", 409));
        assert_eq!(
            body.message,
            format!("The scope '{0}' cannot perform delete operation because following scope(s) are locked: '{0}'. Please remove the lock and try again.", ws.arm_id(ResourceKind::Workspace))
        );
        assert!(matches!(
            w.cp.check_table_delete(&ws, "T"),
            Err(ControlError::WorkspaceLocked { .. })
        ));
        // Another lock name does not remove it.
        assert!(!w.cp.delete_workspace_lock(w.now, &ws, "other").unwrap().0);
        assert!(
            w.cp.delete_workspace_lock(w.now, &ws, "no-delete")
                .unwrap()
                .0
        );
        assert_eq!(w.cp.workspace_lock(&ws).unwrap(), None);
        let purge =
            w.cp.request_purge(
                w.now,
                &ws,
                "T",
                vec![filter("User", "==", json!("a"))],
                &mut w.rng,
            )
            .unwrap();
        assert_eq!(
            w.cp.get_purge(&ws, &purge.id).unwrap().status,
            PurgeStatus::Pending
        );
        assert_eq!(w.cp.pending_purges().len(), 1);
        assert!(
            w.cp.purge_waiting(&purge.id, w.now),
            "reported the first time"
        );
        assert!(!w.cp.purge_waiting(&purge.id, w.now), "and only then");
        w.cp.complete_purge(&purge.id, w.now, 3);
        let done = w.cp.get_purge(&ws, &purge.id).unwrap();
        assert_eq!((done.status, done.records), (PurgeStatus::Completed, 3));
        assert_eq!(
            done.filters[0].value,
            serde_json::Value::Null,
            "the purged value is not kept"
        );
        assert!(w.cp.pending_purges().is_empty());
        w.cp.check_table_delete(&ws, "T").unwrap();
    }

    #[test]
    fn purge_requests_are_validated_and_bounded() {
        let mut w = World::new(Profile::azure_2020());
        w.workspace("wks1");
        let ws = ws_name("wks1");
        let f = || vec![filter("User", "==", json!("a"))];
        assert!(w.cp.request_purge(w.now, &ws, "", f(), &mut w.rng).is_err());
        assert!(w
            .cp
            .request_purge(w.now, &ws, "T", vec![], &mut w.rng)
            .is_err());
        for _ in 0..PURGES_PENDING_MAX {
            w.cp.request_purge(w.now, &ws, "T", f(), &mut w.rng)
                .unwrap();
        }
        assert!(w
            .cp
            .request_purge(w.now, &ws, "T", f(), &mut w.rng)
            .is_err());
    }
}
