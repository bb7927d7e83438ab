//! The storage server's own events, and how control-plane events are recorded.
//!
//! The event contract (`crates/scenario/src/events.rs`) wants `cluster` to be the cluster's
//! **name** in every storage event and the source to be `storage/<name>`. The control plane's
//! events carry ARM ids (it is keyed by them), so [`record_control`] rewrites them at the edge:
//! `cluster` becomes the name and the ARM id moves to `cluster_resource_id`; likewise `workspace`
//! becomes the workspace's name and its ARM id moves to `workspace_id`. Names are what ingest's
//! events and the scenarios use.

use cmksim_sim::{EventKind, EventLog, SimTime};
use serde::Serialize;
use serde_json::Value;

use crate::control::ControlEvent;

/// An event of the storage server (beside the control plane's and the key loop's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StorageEvent {
    /// After a rewrap: every stored block of the account was opened with the AEK.
    BlocksVerified {
        cluster: String,
        cluster_resource_id: String,
        blocks_checked: u64,
        blocks_failed: u64,
    },
    BufferFlushed {
        cluster: String,
        workspace: String,
        records: u64,
        ingested_from_ms: i64,
    },
    BufferExpired {
        cluster: String,
        workspace: String,
        records: u64,
        ingested_from_ms: i64,
    },
    HotCacheDeleted {
        cluster: String,
        blocks: u64,
    },
    HotCacheRebuilt {
        cluster: String,
        blocks: u64,
    },
    /// The storage process started again and took back the key loop's persisted state.
    StateRestored {
        cluster: String,
        state: String,
        since_ms: i64,
    },
    /// The cluster's data became permanently unreadable.
    Shredded {
        cluster: String,
        cluster_resource_id: String,
        from: String,
        reason: String,
    },
}

impl EventKind for StorageEvent {
    fn kind(&self) -> &'static str {
        match self {
            StorageEvent::BlocksVerified { .. } => "storage.blocks.verified",
            StorageEvent::BufferFlushed { .. } => "storage.buffer.flushed",
            StorageEvent::BufferExpired { .. } => "storage.buffer.expired",
            StorageEvent::HotCacheDeleted { .. } => "storage.hotcache.deleted",
            StorageEvent::HotCacheRebuilt { .. } => "storage.hotcache.rebuilt",
            StorageEvent::Shredded { .. } => "storage.state.shredded",
            StorageEvent::StateRestored { .. } => "storage.restarted",
        }
    }

    fn narrate(&self) -> String {
        match self {
            StorageEvent::BlocksVerified {
                cluster,
                blocks_checked,
                blocks_failed,
                ..
            } => match blocks_failed {
                0 => format!("storage {cluster}: all {blocks_checked} stored blocks still decrypt after the rewrap"),
                n => format!("storage {cluster}: {n} of {blocks_checked} stored blocks FAILED to decrypt after the rewrap"),
            },
            StorageEvent::BufferFlushed {
                cluster,
                workspace,
                records,
                ..
            } => format!(
                "storage {cluster}: {records} buffered records of {} written under the customer-managed key",
                short(workspace)
            ),
            StorageEvent::BufferExpired {
                cluster,
                workspace,
                records,
                ..
            } => format!(
                "storage {cluster}: {records} buffered records of {} dropped: older than the buffer window",
                short(workspace)
            ),
            StorageEvent::HotCacheDeleted { cluster, blocks } => format!(
                "storage {cluster}: hot cache deleted ({blocks} blocks); queries would read the cold tier once access returns"
            ),
            StorageEvent::HotCacheRebuilt { cluster, blocks } => {
                format!("storage {cluster}: hot cache rebuilt ({blocks} blocks)")
            }
            StorageEvent::StateRestored {
                cluster,
                state,
                since_ms,
            } => format!(
                "storage {cluster}: restarted; it was {state} since {} and still is until a poll says otherwise",
                SimTime(*since_ms)
            ),
            StorageEvent::Shredded { cluster, reason, .. } => format!(
                "storage {cluster}: data permanently unreadable ({reason}); nothing can decrypt it any more"
            ),
        }
    }
}

use crate::control::short;

/// Records a storage-server event with the contract's field conventions (see the module doc).
pub fn record_storage(log: &EventLog, now: SimTime, event: &StorageEvent) {
    record_normalised(log, now, event)
}

/// Records a control-plane event with the contract's field conventions.
pub fn record_control(log: &EventLog, now: SimTime, event: &ControlEvent) {
    record_normalised(log, now, event)
}

/// Records any other storage event (the lifecycle's) with the same conventions.
pub fn record_event<E: EventKind + Serialize>(log: &EventLog, now: SimTime, event: &E) {
    record_normalised(log, now, event)
}

fn record_normalised<E: EventKind + Serialize>(log: &EventLog, now: SimTime, event: &E) {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    let mut data = match value {
        Value::Object(map) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v).unwrap(),
        other => other,
    };
    let mut source = "storage".to_string();
    let mut at = now;
    if let Value::Object(map) = &mut data {
        if let Some(Value::String(cluster)) = map.get("cluster").cloned() {
            let name = short(&cluster).to_string();
            source = format!("storage/{name}");
            map.insert("cluster".into(), Value::String(name));
            map.insert("cluster_resource_id".into(), Value::String(cluster));
        }
        if let Some(Value::String(ws)) = map.get("workspace").cloned() {
            map.insert("workspace".into(), Value::String(short(&ws).to_string()));
            map.insert("workspace_id".into(), Value::String(ws));
        }
        if let Some(t) = map.get("at").and_then(Value::as_i64) {
            at = SimTime(t);
        }
    }
    log.record_raw(at, &source, event.kind(), event.narrate(), data);
}
