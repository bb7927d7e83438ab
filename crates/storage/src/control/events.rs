//! The control plane's events and the effects the service must apply.
//!
//! Every state-changing call and every `tick` returns its events ([`ControlEvent`]) in an
//! [`Outcome`] rather than writing to an `EventLog` itself: the domain stays free of shared state,
//! and the service records them with its own source name (`storage/c1`) at the `now` it passed in
//! (or at the event's `at` for completions, which may lie before a late tick's `now`).
//!
//! [`ControlEffect`]s are the other half: what the data plane must do because the control plane
//! changed (rewrap the AEK after a key update, route a workspace's ingest to the cluster...).

use cmksim_sim::{format_duration, EventKind, SimTime};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::keyvault::KeyRef;

/// The result of an accepted call: its value, the effects to apply and the events to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<T> {
    pub value: T,
    pub effects: Vec<ControlEffect>,
    pub events: Vec<ControlEvent>,
}

impl<T> Outcome<T> {
    pub(crate) fn new(value: T) -> Outcome<T> {
        Outcome {
            value,
            effects: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// What the service must apply to the data plane. Cluster and workspace fields are ARM ids;
/// `at` is the simulated time the change took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlEffect {
    /// The cluster storage exists: linked workspaces' data can be stored from now on.
    ProvisioningSucceeded {
        cluster: String,
        cluster_id: String,
        at: SimTime,
    },
    /// Provisioning failed (injected fault): the cluster will never store data.
    ProvisioningFailed {
        cluster: String,
        cluster_id: String,
        at: SimTime,
    },
    /// Rewrap the AEK: unwrap with `old` (or the Microsoft-managed key when `None`), wrap with
    /// `new`. Data is never re-encrypted.
    KeyUpdateCompleted {
        cluster: String,
        cluster_id: String,
        old: Option<KeyRef>,
        new: KeyRef,
        at: SimTime,
    },
    /// New ingest of the workspace goes to the cluster.
    LinkCompleted {
        workspace: String,
        cluster: String,
        at: SimTime,
    },
    /// New ingest of the workspace goes to shared storage; old data stays on the cluster.
    UnlinkCompleted {
        workspace: String,
        cluster: String,
        at: SimTime,
    },
    /// Soft-deleted: data is kept (recoverable) until `purge_at`.
    ClusterDeleted {
        cluster: String,
        cluster_id: String,
        purge_at: SimTime,
        at: SimTime,
    },
    /// Recovered from soft delete, with its data; no workspace is linked.
    ClusterRecovered {
        cluster: String,
        cluster_id: String,
        at: SimTime,
    },
    /// Gone for good: its data is permanently unreadable.
    ClusterPurged {
        cluster: String,
        cluster_id: String,
        at: SimTime,
    },
}

/// A control-plane event for the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlEvent {
    ClusterCreated {
        cluster: String,
        location: String,
        capacity_gb_per_day: u32,
        operation: String,
        provisioning_seconds: u64,
    },
    ClusterProvisioned {
        cluster: String,
        after_seconds: u64,
        at: SimTime,
    },
    ClusterUpdated {
        cluster: String,
        change: String,
    },
    KeyUpdateStarted {
        cluster: String,
        key_id: String,
        operation: String,
    },
    KeyUpdated {
        cluster: String,
        old_key_id: Option<String>,
        new_key_id: String,
        at: SimTime,
    },
    ClusterDeleting {
        cluster: String,
        workspaces: Vec<String>,
        operation: String,
    },
    ClusterDeleted {
        cluster: String,
        purge_at: SimTime,
        at: SimTime,
    },
    ClusterRecovered {
        cluster: String,
    },
    ClusterPurged {
        cluster: String,
        at: SimTime,
    },
    WorkspaceCreated {
        workspace: String,
        location: String,
        retention_days: u32,
    },
    RetentionChanged {
        workspace: String,
        from_days: u32,
        to_days: u32,
    },
    WorkspaceLockChanged {
        workspace: String,
        locked: bool,
    },
    /// A table's retention changed (issue 14): `from_days`/`to_days` are the retention in force
    /// before and after; `as_default` when the table follows the workspace's again.
    TableRetentionChanged {
        workspace: String,
        table: String,
        from_days: u32,
        to_days: u32,
        as_default: bool,
    },
    LinkStarted {
        workspace: String,
        cluster: String,
        operation: String,
        drops_until_provisioned: bool,
    },
    Linked {
        workspace: String,
        cluster: String,
        at: SimTime,
    },
    UnlinkStarted {
        workspace: String,
        cluster: String,
        operation: String,
    },
    Unlinked {
        workspace: String,
        cluster: String,
        at: SimTime,
    },
    OperationFailed {
        operation: String,
        what: String,
        target: String,
        code: String,
        message: String,
    },
}

/// The last segment of an ARM id: the resource's name, for narration.
pub fn short(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

fn secs(s: u64) -> String {
    format_duration(Duration::from_secs(s))
}

impl EventKind for ControlEvent {
    fn kind(&self) -> &'static str {
        match self {
            ControlEvent::ClusterCreated { .. } => "storage.cluster.created",
            ControlEvent::ClusterProvisioned { .. } => "storage.cluster.provisioned",
            ControlEvent::ClusterUpdated { .. } => "storage.cluster.updated",
            ControlEvent::KeyUpdateStarted { .. } => "storage.cluster.key_update_started",
            ControlEvent::KeyUpdated { .. } => "storage.cluster.key_updated",
            ControlEvent::ClusterDeleting { .. } => "storage.cluster.deleting",
            ControlEvent::ClusterDeleted { .. } => "storage.cluster.deleted",
            ControlEvent::ClusterRecovered { .. } => "storage.cluster.recovered",
            ControlEvent::ClusterPurged { .. } => "storage.cluster.purged",
            ControlEvent::WorkspaceCreated { .. } => "storage.workspace.created",
            ControlEvent::RetentionChanged { .. } => "storage.workspace.retention_changed",
            ControlEvent::WorkspaceLockChanged { .. } => "storage.workspace.lock_changed",
            ControlEvent::TableRetentionChanged { .. } => "storage.table.retention_changed",
            ControlEvent::LinkStarted { .. } => "storage.workspace.link_requested",
            ControlEvent::Linked { .. } => "storage.workspace.linked",
            ControlEvent::UnlinkStarted { .. } => "storage.workspace.unlink_requested",
            ControlEvent::Unlinked { .. } => "storage.workspace.unlinked",
            ControlEvent::OperationFailed { .. } => "storage.operation.failed",
        }
    }

    fn narrate(&self) -> String {
        match self {
            ControlEvent::ClusterCreated { cluster, location, capacity_gb_per_day, provisioning_seconds, .. } => format!(
                "cluster {} created in {location} with {capacity_gb_per_day} GB/day; provisioning takes {}",
                short(cluster),
                secs(*provisioning_seconds)
            ),
            ControlEvent::ClusterProvisioned { cluster, after_seconds, .. } => format!(
                "cluster {} provisioning finished after {}; workspaces can now be linked",
                short(cluster),
                secs(*after_seconds)
            ),
            ControlEvent::ClusterUpdated { cluster, change } => format!("cluster {} updated: {change}", short(cluster)),
            ControlEvent::KeyUpdateStarted { cluster, key_id, .. } => {
                format!("cluster {} key update to {key_id} started; the cluster is Updating", short(cluster))
            }
            ControlEvent::KeyUpdated { cluster, old_key_id, new_key_id, .. } => format!(
                "cluster {} key update finished: its keyVaultProperties name {new_key_id} (was {}); the storage rewraps the account key under it next (data is not re-encrypted)",
                short(cluster),
                old_key_id.as_deref().unwrap_or("the Microsoft-managed key")
            ),
            ControlEvent::ClusterDeleting { cluster, workspaces, .. } if workspaces.is_empty() => {
                format!(
                    "cluster {} deleting: a long operation; soft-deleted when it completes",
                    short(cluster)
                )
            }
            ControlEvent::ClusterDeleting { cluster, workspaces, .. } => format!(
                "cluster {} deleting: unlinking {} workspace(s) first",
                short(cluster),
                workspaces.len()
            ),
            ControlEvent::ClusterDeleted { cluster, purge_at, .. } => format!(
                "cluster {} soft-deleted; its name stays reserved and it can be recovered until {purge_at}",
                short(cluster)
            ),
            ControlEvent::ClusterRecovered { cluster } => {
                format!("cluster {} recovered with its data; workspaces stay unlinked until linked again", short(cluster))
            }
            ControlEvent::ClusterPurged { cluster, .. } => format!(
                "cluster {} purged after its soft-delete period: its data is gone for good and the name is free",
                short(cluster)
            ),
            ControlEvent::WorkspaceCreated { workspace, location, retention_days } => {
                format!("workspace {} created in {location} with {retention_days} days retention", short(workspace))
            }
            ControlEvent::RetentionChanged { workspace, from_days, to_days } => {
                format!("workspace {} retention changed from {from_days} to {to_days} days", short(workspace))
            }
            ControlEvent::TableRetentionChanged { workspace, table, from_days, to_days, as_default } => format!(
                "table {table} of workspace {} retention changed from {from_days} to {to_days} days{}",
                short(workspace),
                if *as_default { " (the workspace's)" } else { "" }
            ),
            ControlEvent::WorkspaceLockChanged { workspace, locked } => match locked {
                true => format!("workspace {} locked: purge and retention changes are blocked", short(workspace)),
                false => format!("workspace {} unlocked", short(workspace)),
            },
            ControlEvent::LinkStarted { workspace, cluster, drops_until_provisioned, .. } => {
                let mut s = format!("workspace {} link to cluster {} started", short(workspace), short(cluster));
                if *drops_until_provisioned {
                    s.push_str("; the cluster is still provisioning, so data sent until it finishes is dropped");
                } else {
                    s.push_str("; data keeps going to shared storage until the link completes");
                }
                s
            }
            ControlEvent::Linked { workspace, cluster, .. } => format!(
                "workspace {} linked to cluster {}: new data is stored on the cluster",
                short(workspace),
                short(cluster)
            ),
            ControlEvent::UnlinkStarted { workspace, cluster, .. } => format!(
                "workspace {} unlink from cluster {} started; data keeps going to the cluster until it completes",
                short(workspace),
                short(cluster)
            ),
            ControlEvent::Unlinked { workspace, cluster, .. } => format!(
                "workspace {} unlinked from cluster {}: new data goes to shared storage, old data stays on the cluster",
                short(workspace),
                short(cluster)
            ),
            ControlEvent::OperationFailed { what, target, code, message, .. } => {
                format!("{what} of {} failed: {code}: {message}", short(target))
            }
        }
    }
}
