//! The dedicated-cluster control plane (SPEC §4, seeds 000 and 001) as pure domain logic.
//!
//! [`ControlPlane`] is the facade the storage service wires to gRPC. It owns the profile and a
//! [`ControlState`] (clusters, workspaces, asynchronous operations) that is `Serialize +
//! Deserialize + Clone`, so the service persists it in sled as one JSON document. Nothing here does
//! I/O, reads a clock or draws from a global generator: every call takes `now` and its inputs, ids
//! come from the [`rand::RngCore`] handed in, and Key Vault facts are gathered by the caller.
//!
//! Every call validates fully before it mutates, so a refused call leaves the state exactly as it
//! was. An accepted call returns an [`Outcome`] with its value, the [`ControlEffect`]s the data
//! plane must apply, and the [`ControlEvent`]s for the timeline. Long operations finish in
//! [`ControlPlane::tick`]; [`ControlPlane::next_due`] says when the next one is due.
//!
//! Layout: `cluster` (cluster lifecycle), `workspace` (workspaces, links, routing), `operation`
//! (status resources), `keyvault` (key update validation), `limits` (SKU and counting rules),
//! `names` (syntax of names and ids), `tables` (custom-table declarations), `lifecycle` (purge, table delete, the workspace lock), `errors` (typed errors and the seeds' catalogue), `events`
//! (events and effects), `tick` (completion of due operations and purges).

pub mod byos;
mod cluster;
mod errors;
mod events;
mod keyvault;
mod lifecycle;
mod limits;
pub mod lockbox;
mod names;
mod operation;
mod tables;
mod tick;
mod workspace;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_catalogue;
#[cfg(test)]
mod tests_lifecycle;

use std::collections::BTreeMap;

use cmksim_sim::{ids, Profile, SimTime};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use cluster::{
    BillingType, Cluster, ClusterCreate, ClusterIdentity, ClusterPatch, KeyUpdateContext,
    ProvisioningState, Sku, SoftDeleted, IDENTITY_TYPE_SYSTEM_ASSIGNED,
};
pub use errors::{AzureErrorBody, ControlError, ErrorClass, KeyValidationFailure};
pub use events::{short, ControlEffect, ControlEvent, Outcome};
pub use keyvault::{
    KeyRef, KeyVaultFacts, KeyVaultPropertiesInput, ACCEPTED_KEY_TYPES, REQUIRED_KEY_OPERATIONS,
    REQUIRED_KEY_PERMISSIONS,
};
pub use lifecycle::{
    purge_matches, LifecycleState, Purge, PurgeFilter, PurgeOperator, PurgeStatus, TableRetention,
    WorkspaceLock, LOCK_LEVEL_CAN_NOT_DELETE, PURGE_API_VERSION, PURGE_FILTERS_MAX,
    TABLE_RETENTIONS_PER_WORKSPACE_MAX,
};
pub use limits::{SkuInput, SKU_NAME_CAPACITY_RESERVATION};
pub use names::{vault_name_from_uri, ResourceKind, ResourceName};
pub use operation::{
    Operation, OperationError, OperationKind, OperationStatus, OperationStatusView,
};
pub use tables::{
    TableColumns, TableDeclared, WorkspaceTables, CUSTOM_TABLES_PER_WORKSPACE_MAX,
    CUSTOM_TABLE_COLUMNS_MAX,
};
pub use workspace::{LinkState, Routing, Workspace, WorkspaceCreate};

/// How many times a fresh GUID is drawn when it collides with an existing operation id.
const GUID_DRAWS_MAX: usize = 8;

/// Everything the control plane knows, keyed by lowercase ARM id (operations by GUID).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlState {
    pub clusters: BTreeMap<String, Cluster>,
    pub workspaces: BTreeMap<String, Workspace>,
    pub operations: BTreeMap<String, Operation>,
    /// Custom-table declarations by workspace key ([`tables`]); absent in state written before
    /// storage kept them.
    #[serde(default)]
    pub tables: BTreeMap<String, WorkspaceTables>,
    /// Customer Lockbox: enabled clusters and support engineers' requests ([`lockbox`]).
    #[serde(default)]
    pub lockbox: lockbox::LockboxState,
    /// Storage accounts, `linkedStorageAccounts` and saved queries ([`byos`]).
    #[serde(default)]
    pub byos: byos::ByosState,
    /// Purge requests and workspace lock names ([`lifecycle`]); absent in older state.
    #[serde(default)]
    pub lifecycle: LifecycleState,
}

/// The control-plane facade.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlPlane {
    profile: Profile,
    state: ControlState,
}

impl ControlPlane {
    /// An empty control plane under `profile`.
    pub fn new(profile: Profile) -> ControlPlane {
        ControlPlane {
            profile,
            state: ControlState::default(),
        }
    }

    /// A control plane resumed from persisted state.
    pub fn from_state(profile: Profile, state: ControlState) -> ControlPlane {
        ControlPlane { profile, state }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The state to persist.
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// The body an error gets in this profile's wording.
    pub fn azure_error(&self, error: &ControlError) -> AzureErrorBody {
        error.azure_error(self.profile.error_wording)
    }

    /// The status resource of an asynchronous operation, by subscription and operation id.
    pub fn get_operation(
        &self,
        subscription: &str,
        operation_id: &str,
    ) -> Result<OperationStatusView, ControlError> {
        self.state
            .operations
            .get(&operation_id.to_ascii_lowercase())
            .filter(|op| op.subscription.eq_ignore_ascii_case(subscription))
            .map(Operation::view)
            .ok_or_else(|| ControlError::OperationNotFound(operation_id.to_string()))
    }

    /// Records a new operation, scoped to `(subscription, location)` like its status resource id,
    /// and returns its id. Call only after validation.
    fn start_operation(
        &mut self,
        now: SimTime,
        rng: &mut impl RngCore,
        (subscription, location): (&str, &str),
        kind: OperationKind,
        status: OperationStatus,
        due_at: Option<SimTime>,
    ) -> String {
        let mut name = ids::guid(rng);
        for _ in 0..GUID_DRAWS_MAX {
            if !self.state.operations.contains_key(&name) {
                break;
            }
            name = ids::guid(rng);
        }
        assert!(
            !self.state.operations.contains_key(&name),
            "operation id collision after {GUID_DRAWS_MAX} draws"
        );
        let op = Operation {
            id: names::operation_status_id(
                subscription,
                &keyvault::normalize_region(location),
                &name,
            ),
            name: name.clone(),
            subscription: subscription.to_string(),
            kind,
            status,
            start_time: now,
            due_at,
            end_time: None,
            error: None,
        };
        self.state.operations.insert(name.clone(), op);
        self.forget_old_operations();
        name
    }

    /// Keeps at most [`operation::FINISHED_OPERATIONS_KEPT_MAX`] finished operations.
    fn forget_old_operations(&mut self) {
        let mut finished: Vec<(SimTime, String)> = self
            .state
            .operations
            .values()
            .filter(|op| !op.status.is_running())
            .map(|op| (op.end_time.unwrap_or(op.start_time), op.name.clone()))
            .collect();
        if finished.len() <= operation::FINISHED_OPERATIONS_KEPT_MAX {
            return;
        }
        finished.sort();
        let excess = finished.len() - operation::FINISHED_OPERATIONS_KEPT_MAX;
        for (_, name) in finished.into_iter().take(excess) {
            self.state.operations.remove(&name);
        }
    }
}
