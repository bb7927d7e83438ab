//! Asynchronous operations: the "Azure-AsyncOperation" status resources of seeds 000/001 and the
//! typed record of what each running operation will do when it completes.
//!
//! A long operation (provisioning, key update, link, unlink, delete with linked workspaces) is a
//! record with a due time taken from the profile. Nothing completes by itself: the facade's
//! `tick(now)` completes every operation whose due time has passed, in a deterministic order, and
//! returns the effects the service must apply. The status resource shows exactly the seeds'
//! statuses: `InProgress`, `Updating`, `Deleting`, `Succeeded`, `Failed`.

use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

use super::keyvault::KeyRef;

/// How many finished operations are kept for status queries; the oldest are forgotten first.
pub const FINISHED_OPERATIONS_KEPT_MAX: usize = 4096;

/// The status of an asynchronous operation, as the status resource spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationStatus {
    InProgress,
    Updating,
    Deleting,
    Succeeded,
    Failed,
}

impl OperationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::InProgress => "InProgress",
            OperationStatus::Updating => "Updating",
            OperationStatus::Deleting => "Deleting",
            OperationStatus::Succeeded => "Succeeded",
            OperationStatus::Failed => "Failed",
        }
    }

    pub fn is_running(self) -> bool {
        matches!(
            self,
            OperationStatus::InProgress | OperationStatus::Updating | OperationStatus::Deleting
        )
    }
}

/// What an operation does when it completes. Cluster and workspace fields hold ARM ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    Provision {
        cluster: String,
    },
    KeyUpdate {
        cluster: String,
        old: Option<KeyRef>,
        new: KeyRef,
    },
    Link {
        workspace: String,
        cluster: String,
    },
    /// `for_delete`: one of the unlinks a cluster delete performs (seed 000).
    Unlink {
        workspace: String,
        cluster: String,
        for_delete: bool,
    },
    Delete {
        cluster: String,
    },
}

impl OperationKind {
    /// Completion order among operations due at the same instant: a delete completes after the
    /// unlinks it waits for.
    pub(crate) fn completion_rank(&self) -> u8 {
        match self {
            OperationKind::Delete { .. } => 1,
            _ => 0,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            OperationKind::Provision { .. } => "provisioning",
            OperationKind::KeyUpdate { .. } => "key update",
            OperationKind::Link { .. } => "link",
            OperationKind::Unlink { .. } => "unlink",
            OperationKind::Delete { .. } => "delete",
        }
    }
}

/// The `error` member of a failed operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationError {
    pub code: String,
    pub message: String,
}

/// One asynchronous operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The operation id (a GUID): the status resource's `name`.
    pub name: String,
    /// The status resource id (`/subscriptions/{sub}/providers/.../locations/{region}/operationStatuses/{id}`).
    pub id: String,
    pub subscription: String,
    pub kind: OperationKind,
    pub status: OperationStatus,
    pub start_time: SimTime,
    /// When the operation is scheduled to complete (while running).
    pub due_at: Option<SimTime>,
    pub end_time: Option<SimTime>,
    pub error: Option<OperationError>,
}

/// The status resource as seed 000 shows it (`startTime`/`endTime` in RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatusView {
    pub id: String,
    pub name: String,
    pub status: OperationStatus,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
}

impl Operation {
    pub fn view(&self) -> OperationStatusView {
        OperationStatusView {
            id: self.id.clone(),
            name: self.name.clone(),
            status: self.status,
            start_time: self.start_time.to_rfc3339(),
            end_time: self.end_time.map(SimTime::to_rfc3339),
            error: self.error.clone(),
        }
    }

    /// Marks the operation finished at `at` (its due time, not the tick's `now`: a late tick does
    /// not change when things happened).
    pub(crate) fn finish(&mut self, at: SimTime, error: Option<OperationError>) {
        self.status = if error.is_some() {
            OperationStatus::Failed
        } else {
            OperationStatus::Succeeded
        };
        self.due_at = None;
        self.end_time = Some(at);
        self.error = error;
    }
}
