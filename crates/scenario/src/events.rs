//! The event contract: the kinds and data fields the services and the runner emit, and that the
//! oracle, the narrator and the report read.
//!
//! The services record their own typed events (`cmksim_sim::EventKind`); these constants are
//! the agreement on the *names* and on the few `data` fields the judges depend on. A service may
//! put more in `data`; it must put at least what is listed here, as JSON strings or integers,
//! either at the top level of `data` or inside the single variant wrapper that serde's default
//! (externally tagged) enum serialisation produces, e.g. `{"KeyDisabled": {"vault": ...}}`
//! (see [`fields`]).
//!
//! | kind | source | data (required) |
//! |---|---|---|
//! | `scenario.started` | `scenario` | `name`, `seed`, `profile`, `duration_ms` |
//! | `scenario.step` | `scenario` | `step` (id or `#n`), `index`, `what` (action name, fault or `narrate`) |
//! | `scenario.step.ok` | `scenario` | `step`, `action` |
//! | `scenario.step.failed` | `scenario` | `step`, `action`, `error_code` (Azure code), `status` (HTTP), `message` |
//! | `scenario.narrate` | `scenario` | `step`, `text` |
//! | `scenario.fault.applied` | `scenario` | `step`, `fault` (e.g. `keyvault down`), `impairs_vault` (bool) |
//! | `scenario.fault.restored` | `scenario` | `step`, `fault` (the restoring fault, e.g. `keyvault up`) |
//! | `scenario.finished` | `scenario` | — |
//! | `keyvault.vault.{created,updated,deleted,recovered,purged}` | `keyvault` | `vault` |
//! | `keyvault.key.{created,rotated}` | `keyvault` | `vault`, `key`, `version` (the new one) |
//! | `keyvault.key.{enabled,disabled,updated}` | `keyvault` | `vault`, `key`, `version` |
//! | `keyvault.key.{deleted,recovered,purged}` | `keyvault` | `vault`, `key` |
//! | `scenario.identity` | `scenario` | `cluster`, `object_id` (the cluster's managed identity, once created) |
//! | `keyvault.policy.set` | `keyvault` | `vault`, `permissions` (array), and who: `cluster`, `principal` (`cluster:<name>`) or `object_id` |
//! | `keyvault.policy.removed` | `keyvault` | `vault`, and who: `cluster`, `principal` or `object_id` |
//! | `hsm.device.{error,ok}`, `hsm.tampered` | `hsm` | — (`keys_zeroised` for tamper) |
//! | `storage.cluster.{created,provisioned,deleted,recovered,purged}` | `storage/<cluster>` | `cluster` |
//! | `storage.cluster.key_updated` | `storage/<cluster>` | `cluster`, and `vault`, `key`, `version` (empty: versionless) or `new_key_id` (a key URI): the cluster's properties name the key; it is *in use* only after the rewrap below |
//! | `storage.key.{rewrapped,rewrap_failed}` | `storage/<cluster>` | `cluster`, `key` (rewrapped) or `to` and `error` (failed): whether the account key is now wrapped by the updated key |
//! | `storage.workspace.{link_requested,linked,unlinked}` | `storage/<cluster>` | `cluster`, `workspace` |
//! | `storage.poll.{succeeded,transient,denied}` | `storage/<cluster>` | `cluster`, `reason` (transient, denied), `version` (succeeded) |
//! | `storage.state.<state>` | `storage/<cluster>` | `cluster`, `from` (previous state), `reason` (`healthy_cmk` and `healthy_mmk` count as `healthy`) |
//! | `storage.blocks.verified` | `storage/<cluster>` | `cluster`, `blocks_checked`, `blocks_failed` (after each key update) |
//! | `storage.buffer.flushed` | `storage/<cluster>` | `cluster`, `workspace`, `records`, `ingested_from_ms` |
//! | `storage.buffer.expired` | `storage/<cluster>` | `cluster`, `workspace`, `records`, `ingested_from_ms` |
//! | `storage.hotcache.{deleted,rebuilt}` | `storage/<cluster>` | `cluster` |
//! | `storage.retention.removed` | `storage` | `workspace`, `workspace_id`, `table`, `storage` (`shared` or the cluster's ARM id), `retention_days`, `records`, `blocks`, `from_ms`, `to_ms` (one per table and storage) |
//! | `storage.purge.{requested,completed,waiting}` | `storage` | `workspace`, `workspace_id`, `purge_id`, `table` (requested, completed), `filters` (requested), `records` and `buffered_records` (completed: every record removed, and of them those still in the outage buffer), `reason` (waiting: the data is under an unavailable key) |
//! | `storage.table.deleted` | `storage` | `workspace`, `workspace_id`, `table`, `records`, `blocks` |
//! | `ingest.batch` | `ingest` | `workspace`, `table`, `route` (`cluster:<name>` or `shared`), `accepted`, `stored`, `buffered`, `dropped`, `reason` (when dropped > 0), `origin` (agent name or step) |
//! | `ingest.totals` | `ingest` | `workspace`, `accepted`, `stored`, `buffered`, `dropped` (final counters, once per workspace at the end) |
//! | `query.ok` | `ingest` | `workspace`, `records`, `record_workspaces` (array: the workspaces the returned records belong to) |
//! | `query.failed` | `ingest` | `workspace`, `reason`, `error_code` |
//! | `agent.{retrying,queued,dropped}` | `agent/<name>` | `agent`, `workspace`, `table`, `records` |
//! | `sentinel.onboarded` | `sentinel/<workspace key>` | `workspace`, `cluster`, `encryption` (`cmk`, `mmk`), `key` |
//! | `sentinel.state.{active,revoked,restoring,deleted}` | `sentinel/<workspace key>` | `workspace`, `from`, `to` |
//! | `sentinel.item.stored` | `sentinel/<workspace key>` | `workspace`, `item` (`incident`, `analytics_rule`, `watchlist`), `id` |
//! | `sentinel.operation.refused` | `sentinel/<workspace key>` | `workspace`, `operation` (`create_incident`, `change_configuration`, ...), `reason` |
//! | `sentinel.unsupported` | `sentinel/<workspace key>` | `workspace`, `cluster`, `change` (`unlinked`, `cluster_non_cmk`), `reason` (seed 002's sentence) |
//! | `scenario.audit` | `scenario` | `vault`, `key`, `version` (`v1`), `version_id`, `from_ms`, `until_ms`, `uses`, `first_use_ms`, `last_use_ms` (for `key_use` expectations) |
//!
//! Storage states are the words of [`crate::model::StorageState`]: `provisioning`, `healthy`,
//! `degraded`, `unavailable`, `revoked`, `resuming`, `shredded`, `deleted`. Drop and failure
//! reasons are the words in [`reason`].

use cmksim_sim::{Event, EventLog, SimTime};
use serde_json::{json, Value};

use crate::model::StorageState;

pub const SCENARIO_STARTED: &str = "scenario.started";
pub const SCENARIO_STEP: &str = "scenario.step";
pub const SCENARIO_STEP_OK: &str = "scenario.step.ok";
pub const SCENARIO_STEP_FAILED: &str = "scenario.step.failed";
pub const SCENARIO_NARRATE: &str = "scenario.narrate";
pub const FAULT_APPLIED: &str = "scenario.fault.applied";
pub const FAULT_RESTORED: &str = "scenario.fault.restored";
pub const SCENARIO_FINISHED: &str = "scenario.finished";
/// The runner ties a cluster to its managed identity's object id (so that policy events that
/// only carry `object_id` can be attributed).
pub const SCENARIO_IDENTITY: &str = "scenario.identity";

pub const VAULT_CREATED: &str = "keyvault.vault.created";
pub const VAULT_UPDATED: &str = "keyvault.vault.updated";
pub const VAULT_DELETED: &str = "keyvault.vault.deleted";
pub const VAULT_RECOVERED: &str = "keyvault.vault.recovered";
pub const VAULT_PURGED: &str = "keyvault.vault.purged";
pub const KEY_CREATED: &str = "keyvault.key.created";
pub const KEY_ROTATED: &str = "keyvault.key.rotated";
pub const KEY_ENABLED: &str = "keyvault.key.enabled";
pub const KEY_DISABLED: &str = "keyvault.key.disabled";
pub const KEY_UPDATED: &str = "keyvault.key.updated";
pub const KEY_DELETED: &str = "keyvault.key.deleted";
pub const KEY_RECOVERED: &str = "keyvault.key.recovered";
pub const KEY_PURGED: &str = "keyvault.key.purged";
pub const POLICY_SET: &str = "keyvault.policy.set";
pub const POLICY_REMOVED: &str = "keyvault.policy.removed";

pub const HSM_DEVICE_ERROR: &str = "hsm.device.error";
pub const HSM_DEVICE_OK: &str = "hsm.device.ok";
pub const HSM_TAMPERED: &str = "hsm.tampered";

pub const CLUSTER_CREATED: &str = "storage.cluster.created";
pub const CLUSTER_PROVISIONED: &str = "storage.cluster.provisioned";
pub const CLUSTER_DELETED: &str = "storage.cluster.deleted";
pub const CLUSTER_RECOVERED: &str = "storage.cluster.recovered";
pub const CLUSTER_PURGED: &str = "storage.cluster.purged";
pub const CLUSTER_KEY_UPDATED: &str = "storage.cluster.key_updated";
/// The account key is now wrapped by the key the last `key_updated` named: from here on it is
/// the key the storage uses.
pub const KEY_REWRAPPED: &str = "storage.key.rewrapped";
/// Rewrapping under the updated key failed: the previous key stays in use.
pub const KEY_REWRAP_FAILED: &str = "storage.key.rewrap_failed";
pub const WORKSPACE_LINK_REQUESTED: &str = "storage.workspace.link_requested";
pub const WORKSPACE_LINKED: &str = "storage.workspace.linked";
pub const WORKSPACE_UNLINKED: &str = "storage.workspace.unlinked";
pub const POLL_OK: &str = "storage.poll.succeeded";
pub const POLL_TRANSIENT: &str = "storage.poll.transient";
pub const POLL_DENIED: &str = "storage.poll.denied";
/// Prefix of the state transitions: `storage.state.<state>`.
pub const STATE_PREFIX: &str = "storage.state.";
pub const BLOCKS_VERIFIED: &str = "storage.blocks.verified";
pub const BUFFER_FLUSHED: &str = "storage.buffer.flushed";
pub const BUFFER_EXPIRED: &str = "storage.buffer.expired";
pub const HOTCACHE_DELETED: &str = "storage.hotcache.deleted";
pub const HOTCACHE_REBUILT: &str = "storage.hotcache.rebuilt";
/// Seed 003's lifecycle: records removed by retention, a purge, a table delete.
pub const RETENTION_REMOVED: &str = "storage.retention.removed";
pub const PURGE_REQUESTED: &str = "storage.purge.requested";
pub const PURGE_COMPLETED: &str = "storage.purge.completed";
/// A read of a workspace's saved searches (seed 000, BYOS): `workspace`, `count`.
pub const SAVED_SEARCHES_READ: &str = "byos.saved_searches.read";
/// A read refused because the storage account's key is: `workspace`, `account`.
pub const SAVED_SEARCHES_UNREADABLE: &str = "byos.saved_searches.unreadable";
pub const TABLE_DELETED: &str = "storage.table.deleted";

pub const INGEST_BATCH: &str = "ingest.batch";
pub const INGEST_TOTALS: &str = "ingest.totals";
pub const QUERY_OK: &str = "query.ok";
pub const QUERY_FAILED: &str = "query.failed";

pub const AGENT_RETRYING: &str = "agent.retrying";
pub const AGENT_QUEUED: &str = "agent.queued";
pub const AGENT_DROPPED: &str = "agent.dropped";

/// The words used in `reason` fields (drops, failed queries, denied polls).
pub mod reason {
    /// Storage revoked (key disabled, deleted, permission removed).
    pub const REVOKED: &str = "revoked";
    /// Storage unavailable (Key Vault unreachable beyond the grace).
    pub const UNAVAILABLE: &str = "unavailable";
    /// Buffered longer than the buffer window.
    pub const BUFFER_EXPIRED: &str = "buffer-expired";
    /// Linked before provisioning completed (2020 profile: dropped, unrecoverably).
    pub const NOT_PROVISIONED: &str = "not-provisioned";
    /// The cluster was deleted.
    pub const CLUSTER_DELETED: &str = "cluster-deleted";
    /// The key material is gone (purged, HSM zeroised).
    pub const SHREDDED: &str = "shredded";
}

/// The key permissions a cluster identity needs (SPEC §4): without any of them, access is denied.
pub const CLUSTER_REQUIRED_PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];

/// The storage state an event records, if it is a `storage.state.*` event. `healthy_cmk`
/// (under the customer's key) and `healthy_mmk` (under the Microsoft key, before CMK is
/// configured) are both `healthy` for expectations and invariants.
pub fn storage_state(event: &Event) -> Option<StorageState> {
    match event.kind.strip_prefix(STATE_PREFIX)? {
        "healthy_cmk" | "healthy_mmk" => Some(StorageState::Healthy),
        other => StorageState::from_name(other),
    }
}

/// The fields of an event's data: `data` itself, or, when a service serialised its event enum
/// externally tagged (`{"KeyDisabled": {...}}`, serde's default), the object inside that single
/// variant wrapper.
pub fn fields(event: &Event) -> &Value {
    match event.data.as_object() {
        Some(map) if map.len() == 1 => match map.values().next() {
            Some(inner) if inner.is_object() => inner,
            _ => &event.data,
        },
        _ => &event.data,
    }
}

/// A string field of an event's data.
pub fn str_field<'e>(event: &'e Event, field: &str) -> Option<&'e str> {
    fields(event).get(field).and_then(Value::as_str)
}

/// An integer field of an event's data (0 when absent).
pub fn u64_field(event: &Event, field: &str) -> u64 {
    fields(event)
        .get(field)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// A boolean field of an event's data.
pub fn bool_field(event: &Event, field: &str) -> Option<bool> {
    fields(event).get(field).and_then(Value::as_bool)
}

/// The cluster an event is about: `data.cluster`, else the `storage/<cluster>` source.
pub fn cluster_of(event: &Event) -> Option<&str> {
    str_field(event, "cluster").or_else(|| event.source.strip_prefix("storage/"))
}

/// (vault, key, version) of a key identifier: a Key Vault URI
/// `https://{vault}.vault.azure.net/keys/{key}/{version}` (parsed by the one kid parser,
/// [`cmksim_proto::kid::KeyId`]) or the scenario shorthand `{vault}/{key}[/{version}]`.
/// The version is empty for a versionless identifier.
pub fn parse_key_id(key_id: &str) -> Option<(String, String, String)> {
    if key_id.contains("://") {
        let kid = cmksim_proto::kid::KeyId::parse(key_id)?;
        return Some((kid.vault, kid.name, kid.version));
    }
    let mut parts = key_id.split('/');
    let vault = parts.next()?.to_string();
    let key = parts.next()?.to_string();
    let version = parts.next().unwrap_or("").to_string();
    Some((vault, key, version))
}

/// The key a `storage.cluster.key_updated` event moves to: `vault`/`key`/`version` fields, or
/// a `new_key_id` (or `key_id`) identifier.
pub fn updated_key(event: &Event) -> Option<(String, String, String)> {
    if let (Some(vault), Some(key)) = (str_field(event, "vault"), str_field(event, "key")) {
        let version = str_field(event, "version").unwrap_or("").to_string();
        return Some((vault.to_string(), key.to_string(), version));
    }
    str_field(event, "new_key_id")
        .or_else(|| str_field(event, "key_id"))
        .and_then(parse_key_id)
}

/// The cluster whose managed identity a policy event is about: its `cluster` field, a
/// `principal` of the form `cluster:<name>`, or an `object_id` that some event (e.g. the
/// runner's `scenario.identity`) tied to a cluster with `cluster` + `object_id` fields.
pub fn policy_cluster<'e>(events: &'e [Event], event: &'e Event) -> Option<&'e str> {
    if let Some(c) = str_field(event, "cluster") {
        return Some(c);
    }
    if let Some(c) = str_field(event, "principal").and_then(|p| p.strip_prefix("cluster:")) {
        return Some(c);
    }
    let object_id = str_field(event, "object_id")?;
    events
        .iter()
        .filter(|e| str_field(e, "object_id") == Some(object_id))
        .find_map(|e| str_field(e, "cluster"))
}

/// Helpers that record contract events with the right kind, source and data (used by the
/// runner, by tests, and as an executable example for the services).
pub struct Emit<'l> {
    pub log: &'l EventLog,
}

impl Emit<'_> {
    fn raw(&self, at: SimTime, source: &str, kind: &str, message: String, data: Value) -> Event {
        self.log.record_raw(at, source, kind, message, data)
    }

    pub fn started(
        &self,
        at: SimTime,
        name: &str,
        seed: u64,
        profile: &str,
        duration_ms: u64,
    ) -> Event {
        self.raw(
            at,
            "scenario",
            SCENARIO_STARTED,
            format!("scenario {name} starts (seed {seed}, profile {profile})"),
            json!({"name": name, "seed": seed, "profile": profile, "duration_ms": duration_ms}),
        )
    }

    pub fn step(&self, at: SimTime, step: &str, index: usize, what: &str) -> Event {
        self.raw(
            at,
            "scenario",
            SCENARIO_STEP,
            format!("step {step}: {what}"),
            json!({"step": step, "index": index, "what": what}),
        )
    }

    pub fn step_ok(&self, at: SimTime, step: &str, action: &str) -> Event {
        self.raw(
            at,
            "scenario",
            SCENARIO_STEP_OK,
            format!("{action} succeeded"),
            json!({"step": step, "action": action}),
        )
    }

    pub fn step_failed(
        &self,
        at: SimTime,
        step: &str,
        action: &str,
        error_code: &str,
        status: u16,
        message: &str,
    ) -> Event {
        self.raw(
            at,
            "scenario",
            SCENARIO_STEP_FAILED,
            format!("{action} failed: {status} {error_code}: {message}"),
            json!({"step": step, "action": action, "error_code": error_code, "status": status, "message": message}),
        )
    }

    pub fn narrate(&self, at: SimTime, step: &str, text: &str) -> Event {
        self.raw(
            at,
            "scenario",
            SCENARIO_NARRATE,
            text.to_string(),
            json!({"step": step, "text": text}),
        )
    }

    pub fn fault(&self, at: SimTime, step: &str, fault: &str, impairs_vault: bool) -> Event {
        self.raw(
            at,
            "scenario",
            FAULT_APPLIED,
            format!("fault: {fault}"),
            json!({"step": step, "fault": fault, "impairs_vault": impairs_vault}),
        )
    }

    pub fn restored(&self, at: SimTime, step: &str, fault: &str) -> Event {
        self.raw(
            at,
            "scenario",
            FAULT_RESTORED,
            format!("fault restored: {fault}"),
            json!({"step": step, "fault": fault}),
        )
    }

    pub fn key(&self, at: SimTime, kind: &str, vault: &str, key: &str, version: &str) -> Event {
        let verb = kind.rsplit('.').next().unwrap_or(kind);
        self.raw(
            at,
            "keyvault",
            kind,
            format!("key {key} in vault {vault} {verb}"),
            json!({"vault": vault, "key": key, "version": version}),
        )
    }

    pub fn policy(
        &self,
        at: SimTime,
        kind: &str,
        vault: &str,
        principal: &str,
        permissions: &[&str],
    ) -> Event {
        let mut data = json!({"vault": vault, "principal": principal, "permissions": permissions});
        if let Some(cluster) = principal.strip_prefix("cluster:") {
            data["cluster"] = json!(cluster);
        }
        self.raw(
            at,
            "keyvault",
            kind,
            format!(
                "access policy of {principal} on {vault}: {}",
                permissions.join(", ")
            ),
            data,
        )
    }

    pub fn state(
        &self,
        at: SimTime,
        cluster: &str,
        from: Option<StorageState>,
        to: StorageState,
        reason: &str,
    ) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            &format!("{STATE_PREFIX}{}", to.as_str()),
            format!("storage of {cluster} is {} ({reason})", to.as_str()),
            json!({"cluster": cluster, "from": from.map(|s| s.as_str()), "reason": reason}),
        )
    }

    pub fn poll(&self, at: SimTime, cluster: &str, kind: &str, reason: &str) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            kind,
            format!(
                "{cluster} polled Key Vault: {}",
                kind.rsplit('.').next().unwrap_or(kind)
            ),
            json!({"cluster": cluster, "reason": reason}),
        )
    }

    pub fn key_updated(
        &self,
        at: SimTime,
        cluster: &str,
        vault: &str,
        key: &str,
        version: &str,
    ) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            CLUSTER_KEY_UPDATED,
            format!("{cluster} key update finished: its properties name key {key} from {vault}"),
            json!({"cluster": cluster, "vault": vault, "key": key, "version": version}),
        )
    }

    /// The storage's account key is now wrapped by `key` (what the key loop records after a
    /// key update's rewrap succeeds).
    pub fn rewrapped(&self, at: SimTime, cluster: &str, key: &str) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            KEY_REWRAPPED,
            format!("storage {cluster}: the AEK is now wrapped by {key}"),
            json!({"cluster": cluster, "key": key}),
        )
    }

    /// Rewrapping under `to` failed; the previous key stays in use.
    pub fn rewrap_failed(&self, at: SimTime, cluster: &str, to: &str, error: &str) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            KEY_REWRAP_FAILED,
            format!("storage {cluster}: rewrapping the AEK under {to} failed: {error}"),
            json!({"cluster": cluster, "to": to, "error": error}),
        )
    }

    pub fn verified(&self, at: SimTime, cluster: &str, checked: u64, failed: u64) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            BLOCKS_VERIFIED,
            format!("{cluster}: {checked} blocks checked, {failed} failed to decrypt"),
            json!({"cluster": cluster, "blocks_checked": checked, "blocks_failed": failed}),
        )
    }

    pub fn buffer(
        &self,
        at: SimTime,
        kind: &str,
        cluster: &str,
        workspace: &str,
        records: u64,
        ingested_from: SimTime,
    ) -> Event {
        self.raw(
            at,
            &format!("storage/{cluster}"),
            kind,
            format!("{records} buffered records of {workspace} {}", kind.rsplit('.').next().unwrap_or(kind)),
            json!({"cluster": cluster, "workspace": workspace, "records": records, "ingested_from_ms": ingested_from.0}),
        )
    }

    /// One batch: `counts` = (stored, buffered, dropped); accepted is their sum.
    pub fn batch(
        &self,
        at: SimTime,
        workspace: &str,
        table: &str,
        counts: (u64, u64, u64),
        reason: Option<&str>,
    ) -> Event {
        let (stored, buffered, dropped) = counts;
        let mut data = json!({
            "workspace": workspace, "table": table, "route": "shared",
            "accepted": stored + buffered + dropped,
            "stored": stored, "buffered": buffered, "dropped": dropped, "origin": "test",
        });
        if let Some(reason) = reason {
            data["reason"] = json!(reason);
        }
        self.raw(
            at,
            "ingest",
            INGEST_BATCH,
            format!("{workspace}/{table}: {stored} stored, {buffered} buffered, {dropped} dropped"),
            data,
        )
    }

    pub fn query_ok(
        &self,
        at: SimTime,
        workspace: &str,
        records: u64,
        record_workspaces: &[&str],
    ) -> Event {
        self.raw(
            at,
            "ingest",
            QUERY_OK,
            format!("query of {workspace} returned {records} records"),
            json!({"workspace": workspace, "records": records, "record_workspaces": record_workspaces}),
        )
    }

    pub fn query_failed(&self, at: SimTime, workspace: &str, reason: &str) -> Event {
        self.raw(
            at,
            "ingest",
            QUERY_FAILED,
            format!("query of {workspace} failed: {reason}"),
            json!({"workspace": workspace, "reason": reason, "error_code": "StorageUnavailable"}),
        )
    }
}

/// Sentinel (seed 002): a workspace onboarded (its store is then `active`).
pub const SENTINEL_ONBOARDED: &str = "sentinel.onboarded";
/// Prefix of Sentinel's state transitions: `sentinel.state.<state>`.
pub const SENTINEL_STATE_PREFIX: &str = "sentinel.state.";
pub const SENTINEL_ITEM_STORED: &str = "sentinel.item.stored";
pub const SENTINEL_OPERATION_REFUSED: &str = "sentinel.operation.refused";
/// Seed 002's unsupported configuration (unlink, or a non-CMK cluster, after CMK onboarding).
pub const SENTINEL_UNSUPPORTED: &str = "sentinel.unsupported";
/// The runner's answer from Key Vault's audit log for a `key_use` expectation.
pub const SCENARIO_AUDIT: &str = "scenario.audit";
/// The `operation` word of a refused incident creation.
pub const SENTINEL_CREATE_INCIDENT: &str = "create_incident";

/// The Sentinel state an event puts the workspace in: `sentinel.onboarded` is `active`, a
/// `sentinel.state.<state>` event its state; any other event `None`.
pub fn sentinel_state(e: &Event) -> Option<crate::model::SentinelState> {
    if e.kind == SENTINEL_ONBOARDED {
        return Some(crate::model::SentinelState::Active);
    }
    e.kind
        .strip_prefix(SENTINEL_STATE_PREFIX)
        .and_then(crate::model::SentinelState::from_name)
}

/// The workspace a `sentinel.*` event is about.
pub fn sentinel_workspace(e: &Event) -> Option<&str> {
    if e.kind.starts_with("sentinel.") {
        str_field(e, "workspace")
    } else {
        None
    }
}
