//! The control plane's typed errors and the seeds' error catalogue.
//!
//! Every refused call returns a [`ControlError`]: a precise variant for the program (what went
//! wrong, with the values involved) that [`ControlError::azure_error`] turns into the body the real
//! service would send: Azure error code, HTTP status and message. The messages of the seeds'
//! troubleshooting lists ("Error messages" in seed 000, 2020, and seed 001, 2021) are API facts and
//! are reproduced character for character, including the odd spacing ("in progress .") and the
//! typographic quotes; [`ErrorWording`] selects the list. The two lists differ in one message:
//! seed 000 says "association or disassociation" where seed 001 says "link or unlink".
//!
//! Seed 000 prints three messages with markdown links (`See [Key Vault
//! documentation](../../key-vault/general/overview-soft-delete.md)`): that is the page's markup,
//! not the API's text, and seed 001 renders the same messages without it. Every profile answers
//! with the link's label only (`See Key Vault documentation`). Seed 000's Get message ends with a
//! stray space in the source; it is trimmed (trailing whitespace is layout).
//!
//! Seed 001 adds two texts outside its list, both kept to the letter: the delete refused while
//! workspaces are linked ("You must unlink all workspaces from the cluster before deleting it.")
//! and the region refusal of double encryption ("<region> doesn’t support Double Encryption for
//! clusters."). It gives neither a status code; the ones chosen are documented on the variants.
//!
//! Message literals in the seeds name 1000, 100 (GB) and 30 days even when a profile configures
//! other values (azure-current: 100 GB/day minimum): the seeds' texts are kept to the letter and the
//! checks use the profile's values; the typed variant carries the real values.
//!
//! User input a message repeats (names, ids, regions) is cut by [`echo`] to
//! [`cmksim_sim::text::ECHO_CHARS_MAX`] characters when the body is rendered; the typed variant
//! keeps it whole.
//!
//! Conditions the seeds name but give no text for get a message written here, marked
//! "(simulator text)" on the variant. Conditions with two seed messages are chosen by context, as
//! documented on each variant.

use cmksim_sim::profile::ErrorWording;
use cmksim_sim::text::echo;
use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

/// What a caller receives in place of Azure's `{"error":{"code","message"}}` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureErrorBody {
    pub code: &'static str,
    pub http_status: u16,
    pub message: String,
}

/// The gRPC status family an error belongs to (ARCHITECTURE.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    ResourceExhausted,
    Internal,
}

/// Why a key could not be validated in Key Vault (all map to the seed's "Failed to validate key").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyValidationFailure {
    VaultNotFound,
    /// The cluster identity lacks a key permission (`get`, `wrapKey`, `unwrapKey`).
    MissingPermission(String),
    KeyNotFound,
    KeyDisabled,
    /// The key's own `key_ops` do not allow `wrapKey` or `unwrapKey` (the seeds give no message;
    /// "Failed to validate key" is the one for a key the cluster cannot use).
    KeyOperationNotAllowed(String),
    /// The key type is not RSA / RSA-HSM.
    NotRsa(String),
    /// Seed 000: vault, cluster and workspaces "must be in the same region". The seeds give no
    /// message for a region mismatch; "Failed to validate key" is the one that fits a key the
    /// cluster cannot use.
    RegionMismatch {
        vault: String,
        cluster: String,
    },
    /// Seed 000: "... and in the same Azure Active Directory (Azure AD) tenant". Same choice.
    TenantMismatch {
        vault: String,
        cluster: String,
    },
    /// An empty version under azure-2020 pins "the current version", but the key has none.
    NoCurrentVersion,
}

/// Every way a control-plane call can be refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    // ---- seed list "Cluster Create" ----
    #[error("invalid cluster name {0:?}")]
    InvalidClusterName(String),
    /// Malformed input: missing location, unknown billingType, a malformed ARM id...
    #[error("bad request body: {0}")]
    BadRequestBody(String),
    #[error("SKU name {0:?} is not capacityReservation")]
    InvalidSkuName(String),
    #[error("capacity given with SKU name {0:?}")]
    CapacityWithoutCapacityReservation(String),
    #[error("SKU has no capacity")]
    MissingCapacity,
    #[error("capacity {capacity_gb_per_day} GB/day outside {min_gb_per_day}..={max_gb_per_day}")]
    CapacityOutOfRange {
        capacity_gb_per_day: u32,
        min_gb_per_day: u32,
        max_gb_per_day: u32,
    },
    /// Listed under "Cluster Create" in both seeds, but raised by an update that decreases the
    /// capacity within `capacity_decrease_lock` of the last SKU update.
    #[error("capacity decrease locked until {until}")]
    CapacityLocked { until: SimTime },
    #[error("no SKU")]
    NoSku,
    /// Identity missing, empty, or of a type other than systemAssigned (the seeds' only message
    /// about identity; it says what to set).
    #[error("identity {0:?} is not systemAssigned")]
    IdentityNullOrEmpty(Option<String>),
    #[error("keyVaultProperties given at creation")]
    KeyVaultPropertiesOnCreation,
    /// A create (PUT) of a cluster whose asynchronous operation (provisioning, key update) has not
    /// succeeded yet: the "Cluster Create" list's wording.
    #[error("cluster {0} has an asynchronous operation in progress (create)")]
    CreateWhileOperationInProgress(String),

    // ---- seed list "Cluster Update" ----
    /// An update carrying keyVaultProperties (an asynchronous key update) while the cluster is
    /// deleting: "Async operation is in progress . Cluster must complete its operation before any
    /// update operation is performed." (Of the two deleting messages, the one naming an async
    /// operation answers the request that would start one.)
    #[error("cluster {0} is deleting (key update refused)")]
    DeletingAsyncInProgress(String),
    #[error("keyVaultProperties bad format: {0}")]
    KeyVaultPropertiesBadFormat(String),
    #[error("key validation failed: {0:?}")]
    KeyValidationFailed(KeyValidationFailure),
    #[error(
        "vault not recoverable (soft delete {soft_delete}, purge protection {purge_protection})"
    )]
    KeyNotRecoverable {
        soft_delete: bool,
        purge_protection: bool,
    },
    /// An update (PATCH) or a delete while provisioning or a key update is in progress: "Wait for
    /// the Async operation to complete and try again." (the "Cluster Update" list's wording).
    #[error("cluster {0} has an asynchronous operation in progress (update)")]
    OperationInProgress(String),
    /// Any other update (sku, billingType) or a delete while the cluster is deleting.
    #[error("cluster {0} is deleting")]
    ClusterDeleting(String),

    // ---- seed lists "Cluster Get" / "Cluster Delete" ----
    #[error("cluster {0} not found")]
    ClusterNotFound(String),
    #[error("cluster {0} is provisioning and cannot be deleted")]
    DeleteWhileProvisioning(String),

    // ---- seed lists "Workspace link / unlink" (association / disassociation) ----
    #[error("workspace {0} not found")]
    WorkspaceNotFound(String),
    #[error("workspace {0} has a link or unlink in progress")]
    LinkOperationInProgress(String),
    #[error("link target cluster {0} not found")]
    LinkClusterNotFound(String),
    /// Seed 001 (profile `delete_with_linked_workspaces = refuse`): "You must unlink all
    /// workspaces from the cluster before deleting it." The seed gives the sentence, not a status:
    /// 409 Conflict, like the other refusals of a request that conflicts with the resource's
    /// state (the delete while provisioning). `workspaces` are the linked ones, sorted.
    #[error("cluster {cluster} still has linked workspaces {workspaces:?}")]
    DeleteWithLinkedWorkspaces {
        cluster: String,
        workspaces: Vec<String>,
    },
    /// Seed 001: "<region> doesn’t support Double Encryption for clusters." for a create that
    /// leaves double encryption on in a region of the profile's
    /// `double_encryption_unsupported_regions`. The seed gives no status: 400, as the seed's
    /// remedy is a change of the request body (`"isDoubleEncryptionEnabled": false`). The region
    /// is echoed as the caller spelled it.
    #[error("double encryption not supported in {0:?}")]
    DoubleEncryptionNotSupported(String),
    /// Seed 001: "Double encryption setting can not be changed after the cluster has been
    /// created." for an update asking for another `isDoubleEncryptionEnabled` than the cluster
    /// has. The seed gives the sentence only: `InvalidParameter` 400 is the simulator's choice,
    /// like the region refusal's (a request body the service cannot honour).
    #[error("cluster {0}: double encryption is fixed at creation")]
    DoubleEncryptionImmutable(String),
    /// Profile `link_before_provisioned = reject` (seed 001: "linking a workspace can be performed
    /// only after the completion of the Log Analytics cluster provisioning"). The seeds give no
    /// dedicated text; the "Cluster Update" list's "Operation cannot be executed now. Wait for the
    /// Async operation to complete and try again." says exactly what to do.
    #[error("cluster {0} has not finished provisioning")]
    ClusterNotProvisioned(String),

    // ---- conditions the seeds name without a message (simulator text) ----
    /// (simulator text) Re-create of a name held by a soft-deleted cluster (seed 000: "you can't
    /// create a new cluster with that name"; 409 Conflict).
    #[error("cluster name {name} reserved until {purge_at}")]
    ClusterNameReserved { name: String, purge_at: SimTime },
    /// (simulator text) Create of a cluster that exists and is idle: use update (PATCH).
    #[error("cluster {0} already exists")]
    ClusterAlreadyExists(String),
    /// (simulator text) `max_active_per_region_subscription`.
    #[error("active cluster limit {max} reached in {subscription}/{location}")]
    ActiveClusterLimit {
        subscription: String,
        location: String,
        max: u32,
    },
    /// (simulator text) `max_reserved_per_region_subscription` (active + soft-deleted).
    #[error("reserved cluster limit {max} reached in {subscription}/{location}")]
    ReservedClusterLimit {
        subscription: String,
        location: String,
        max: u32,
    },
    /// (simulator text) `max_reserved_per_subscription` (active + soft-deleted, all regions;
    /// seed 001: "a limit of three clusters per subscription", an override of azure-2021).
    #[error("reserved cluster limit {max} reached in subscription {subscription}")]
    SubscriptionClusterLimit { subscription: String, max: u32 },
    /// (simulator text) Capacity not a multiple of `capacity_step_gb_per_day`.
    #[error("capacity {capacity_gb_per_day} not a multiple of {step_gb_per_day}")]
    CapacityStep {
        capacity_gb_per_day: u32,
        step_gb_per_day: u32,
    },
    /// (simulator text) A key update while the cluster's storage is revoked: the AEK cannot be
    /// unwrapped with the old KEK, so it cannot be rewrapped. The seeds have no text for this; the
    /// service, which knows the storage state, asks for the refusal.
    #[error("cluster {0} storage is revoked")]
    StorageRevoked(String),
    /// (simulator text) Workspace and cluster in different regions (seed 001: "Only workspaces
    /// that are in the same region as the cluster can be linked to the cluster").
    #[error("workspace region {workspace} differs from cluster region {cluster}")]
    RegionMismatch { workspace: String, cluster: String },
    /// (simulator text) Seed 000: "Workspace association to Cluster resource will fail if it is
    /// associated to another Cluster resource" (also when already linked to the same cluster).
    #[error("workspace {workspace} already linked to {cluster}")]
    WorkspaceAlreadyLinked { workspace: String, cluster: String },
    /// (simulator text) Unlink of a workspace that is not linked.
    #[error("workspace {0} is not linked")]
    WorkspaceNotLinked(String),
    /// (simulator text) Seed 001: "The number of workspace link operations on particular
    /// workspace is limited to 2 in a period of 30 days." Only links count, not unlinks.
    #[error("workspace {workspace}: {max} links in window, next allowed at {next_allowed}")]
    LinkOperationsLimit {
        workspace: String,
        max: u32,
        window_days: u64,
        next_allowed: SimTime,
    },
    /// (simulator text) Seed 001: "The maximum of linked workspaces to cluster is 1000".
    #[error("cluster {cluster} already has {max} workspaces")]
    WorkspacesPerClusterLimit { cluster: String, max: u32 },
    /// (simulator text)
    #[error("workspace {0} already exists")]
    WorkspaceAlreadyExists(String),
    /// (simulator text)
    #[error("invalid workspace name {0:?}")]
    InvalidWorkspaceName(String),
    /// ARM's refusal of a location that is no Azure region (`cmksim_sim::rules::AZURE_REGIONS`);
    /// the text follows ARM's `LocationNotAvailableForResourceType`.
    #[error("location {location:?} is no Azure region")]
    LocationNotAvailable {
        location: String,
        resource_type: &'static str,
    },
    /// (simulator text) Seed 003: 31 days by default, up to 730.
    #[error("retention {days} days outside {min_days}..={max_days}")]
    RetentionOutOfRange {
        days: u32,
        min_days: u32,
        max_days: u32,
    },
    /// Seed 003: a lock blocks purge, table delete and retention decreases. ARM's own refusal
    /// of an operation under a management lock: 409 `ScopeLocked`, its message shape (the scope
    /// and the locked scope are both the workspace; `operation` is `delete` or `write`).
    #[error("workspace {workspace} is locked ({operation} refused)")]
    WorkspaceLocked {
        workspace: String,
        operation: &'static str,
    },
    /// (simulator text) Recover of a cluster that is not soft-deleted.
    #[error("cluster {0} is not deleted")]
    ClusterNotDeleted(String),
    /// (simulator text)
    #[error("operation {0} not found")]
    OperationNotFound(String),
    /// (simulator text) A custom-table column declared again with another type: data stored
    /// under the old type would no longer match filters of the new one.
    #[error("column {column} of table {table} is {registered}; redeclared as {declared}")]
    ColumnTypeConflict {
        table: String,
        column: String,
        registered: String,
        declared: String,
    },
    /// (simulator text) A new custom table beyond the per-workspace bound.
    #[error("workspace {workspace} already has {max} custom tables")]
    TooManyCustomTables { workspace: String, max: usize },
    /// (simulator text) A custom table beyond Azure Monitor's 500 columns.
    #[error("table {table} would have more than {max} columns")]
    TooManyColumns { table: String, max: usize },
    /// (simulator text) A programming error of the caller: an update carrying keyVaultProperties
    /// without the Key Vault facts gathered for it.
    #[error("key update without Key Vault facts")]
    KeyFactsMissing,
}

/// Seed 000 (2020) and seed 001 (2021) texts, in the lists' order.
mod text {
    pub const CLUSTER_NAME: &str = "Cluster name is not valid. Cluster name can contain characters a-z, A-Z, 0-9 and length of 3-63.";
    pub const BAD_BODY: &str = "The body of the request is null or in bad format.";
    pub const SKU_NAME: &str = "SKU name is invalid. Set SKU name to capacityReservation.";
    pub const CAPACITY_NOT_CR: &str = "Capacity was provided but SKU is not capacityReservation. Set SKU name to capacityReservation.";
    pub const MISSING_CAPACITY: &str =
        "Missing Capacity in SKU. Set Capacity value to 1000 or higher in steps of 100 (GB).";
    pub const CAPACITY_RANGE: &str = "Capacity in SKU is not in range. Should be minimum 1000 and up to the max allowed capacity which is available under ‘Usage and estimated cost’ in your workspace.";
    pub const CAPACITY_LOCKED: &str =
        "Capacity is locked for 30 days. Decreasing capacity is permitted 30 days after update.";
    pub const NO_SKU: &str = "No SKU was set. Set the SKU name to capacityReservation and Capacity value to 1000 or higher in steps of 100 (GB).";
    pub const IDENTITY: &str = "Identity is null or empty. Set Identity with systemAssigned type.";
    pub const KVP_ON_CREATE: &str =
        "KeyVaultProperties are set on creation. Update KeyVaultProperties after cluster creation.";
    pub const CREATE_ASYNC: &str = "Operation cannot be executed now. Async operation is in a state other than succeeded. Cluster must complete its operation before any update operation is performed.";
    pub const DELETING_ASYNC: &str = "Cluster is in deleting state. Async operation is in progress . Cluster must complete its operation before any update operation is performed.";
    // The next three: seed 001's text, which is seed 000's with each markdown link replaced by
    // its label (seed 000's "See [key identifier update](#update-cluster-...)." and so on).
    pub const KVP_FORMAT: &str =
        "KeyVaultProperties is not empty but has a bad format. See key identifier update.";
    pub const KEY_VALIDATE: &str = "Failed to validate key in Key Vault. Could be due to lack of permissions or when key doesn’t exist. Verify that you set key and access policy in Key Vault.";
    pub const NOT_RECOVERABLE: &str = "Key is not recoverable. Key Vault must be set to Soft-delete and Purge-protection. See Key Vault documentation";
    pub const UPDATE_ASYNC: &str =
        "Operation cannot be executed now. Wait for the Async operation to complete and try again.";
    pub const DELETING_WAIT: &str =
        "Cluster is in deleting state. Wait for the Async operation to complete and try again.";
    pub const GET_NOT_FOUND: &str = "Cluster not found, the cluster may have been deleted. If you try to create a cluster with that name and get conflict, the cluster is in soft-delete for 14 days. You can contact support to recover it, or use another name to create a new cluster.";
    pub const DELETE_PROVISIONING: &str = "Can't delete a cluster while in provisioning state. Wait for the Async operation to complete and try again.";
    pub const WORKSPACE_NOT_FOUND: &str =
        "Workspace not found. The workspace you specified doesn’t exist or was deleted.";
    pub const LINK_IN_PROCESS_000: &str =
        "Workspace association or disassociation operation in process.";
    pub const LINK_IN_PROCESS_001: &str = "Workspace link or unlink operation in process.";
    /// Seed 001, "Delete cluster".
    pub const DELETE_LINKED: &str =
        "You must unlink all workspaces from the cluster before deleting it.";
    /// Seed 001, "Limits and constraints"; the region goes before it.
    pub const DOUBLE_ENCRYPTION_REGION: &str = " doesn’t support Double Encryption for clusters.";
    /// Seed 001, "Limits and constraints" (every profile: the setting is fixed in Azure too).
    pub const DOUBLE_ENCRYPTION_IMMUTABLE: &str =
        "Double encryption setting can not be changed after the cluster has been created.";
    pub const LINK_CLUSTER_NOT_FOUND: &str = "Cluster not found, the cluster you specified doesn’t exist or was deleted. If you try to create a cluster with that name and get conflict, the cluster is in soft-delete for 14 days. You can contact support to recover it.";
}

fn pick(wording: ErrorWording, seed000: &'static str, seed001: &'static str) -> &'static str {
    match wording {
        ErrorWording::Seed000 => seed000,
        ErrorWording::Seed001 => seed001,
    }
}

impl ControlError {
    /// The body the real service would return, in the wording of the profile's seed.
    pub fn azure_error(&self, wording: ErrorWording) -> AzureErrorBody {
        use ControlError as E;
        let (code, http_status, message): (&'static str, u16, String) = match self {
            E::InvalidClusterName(_) => ("InvalidParameter", 400, text::CLUSTER_NAME.into()),
            E::BadRequestBody(_) => ("BadRequest", 400, text::BAD_BODY.into()),
            E::InvalidSkuName(_) => ("InvalidParameter", 400, text::SKU_NAME.into()),
            E::CapacityWithoutCapacityReservation(_) => ("InvalidParameter", 400, text::CAPACITY_NOT_CR.into()),
            E::MissingCapacity => ("InvalidParameter", 400, text::MISSING_CAPACITY.into()),
            E::CapacityOutOfRange { .. } => ("InvalidParameter", 400, text::CAPACITY_RANGE.into()),
            E::CapacityLocked { .. } => ("InvalidParameter", 400, text::CAPACITY_LOCKED.into()),
            E::NoSku => ("InvalidParameter", 400, text::NO_SKU.into()),
            E::IdentityNullOrEmpty(_) => ("InvalidParameter", 400, text::IDENTITY.into()),
            E::KeyVaultPropertiesOnCreation => ("InvalidParameter", 400, text::KVP_ON_CREATE.into()),
            E::CreateWhileOperationInProgress(_) => ("BadRequest", 400, text::CREATE_ASYNC.into()),
            E::DeletingAsyncInProgress(_) => ("BadRequest", 400, text::DELETING_ASYNC.into()),
            E::KeyVaultPropertiesBadFormat(_) => ("InvalidParameter", 400, text::KVP_FORMAT.into()),
            E::KeyValidationFailed(_) => ("BadRequest", 400, text::KEY_VALIDATE.into()),
            E::KeyNotRecoverable { .. } => ("BadRequest", 400, text::NOT_RECOVERABLE.into()),
            E::OperationInProgress(_) | E::ClusterNotProvisioned(_) => ("BadRequest", 400, text::UPDATE_ASYNC.into()),
            E::ClusterDeleting(_) => ("BadRequest", 400, text::DELETING_WAIT.into()),
            E::ClusterNotFound(_) => ("ResourceNotFound", 404, text::GET_NOT_FOUND.into()),
            E::DeleteWhileProvisioning(_) => ("Conflict", 409, text::DELETE_PROVISIONING.into()),
            E::DeleteWithLinkedWorkspaces { .. } => ("Conflict", 409, text::DELETE_LINKED.into()),
            E::DoubleEncryptionNotSupported(location) => ("InvalidParameter", 400, format!(
                "{}{}", echo(location), text::DOUBLE_ENCRYPTION_REGION
            )),
            E::DoubleEncryptionImmutable(_) => ("InvalidParameter", 400, text::DOUBLE_ENCRYPTION_IMMUTABLE.into()),
            E::WorkspaceNotFound(_) => ("ResourceNotFound", 404, text::WORKSPACE_NOT_FOUND.into()),
            E::LinkOperationInProgress(_) => {
                ("Conflict", 409, pick(wording, text::LINK_IN_PROCESS_000, text::LINK_IN_PROCESS_001).into())
            }
            E::LinkClusterNotFound(_) => ("BadRequest", 400, text::LINK_CLUSTER_NOT_FOUND.into()),
            E::ClusterNameReserved { name, purge_at } => { let name = echo(name); ("Conflict", 409, format!(
                "Cluster name '{name}' is reserved: a cluster with this name was deleted and is in soft-delete until {purge_at}. Recover it, or use another name to create a new cluster."
            )) }
            E::ClusterAlreadyExists(name) => { let name = echo(name); ("Conflict", 409, format!(
                "Cluster '{name}' already exists. Use an update (PATCH) to change its sku, billingType or keyVaultProperties."
            )) }
            E::ActiveClusterLimit { subscription, location, max } => { let location = echo(location); let subscription = echo(subscription); ("Conflict", 409, format!(
                "The max number of active clusters per region and subscription is {max}. Subscription '{subscription}' already has {max} active clusters in region '{location}'. Delete a cluster or use another region or subscription."
            )) }
            E::ReservedClusterLimit { subscription, location, max } => { let location = echo(location); let subscription = echo(subscription); ("Conflict", 409, format!(
                "The max number of reserved clusters (active or recently deleted) per region and subscription is {max}. Subscription '{subscription}' already has {max} reserved clusters in region '{location}'. Deleted clusters are released after their soft-delete period."
            )) }
            E::SubscriptionClusterLimit { subscription, max } => { let subscription = echo(subscription); ("Conflict", 409, format!(
                "There is a limit of {max} clusters per subscription, active and soft-deleted counted together. Subscription '{subscription}' already has {max}. Deleted clusters are released after their soft-delete period."
            )) }
            E::CapacityStep { step_gb_per_day, .. } => ("InvalidParameter", 400, format!(
                "Capacity in SKU is not a multiple of {step_gb_per_day}. Set Capacity value in steps of {step_gb_per_day} (GB)."
            )),
            E::StorageRevoked(name) => { let name = echo(name); ("Conflict", 409, format!(
                "The key of cluster '{name}' is revoked: its storage cannot unwrap the account key with the current key, so it cannot be rewrapped with a new one. Restore access to the current key in Key Vault, wait for the storage to resume, then update the key."
            )) }
            E::RegionMismatch { workspace, cluster } => { let cluster = echo(cluster); let workspace = echo(workspace); ("InvalidParameter", 400, format!(
                "Workspace region '{workspace}' differs from cluster region '{cluster}'. Only workspaces in the cluster's region can be linked to it."
            )) }
            E::WorkspaceAlreadyLinked { workspace, cluster } => { let cluster = echo(cluster); let workspace = echo(workspace); ("Conflict", 409, format!(
                "Workspace '{workspace}' is already linked to cluster '{cluster}'. Unlink it before linking it to a cluster."
            )) }
            E::WorkspaceNotLinked(ws) => { let ws = echo(ws); ("ResourceNotFound", 404, format!(
                "Workspace '{ws}' is not linked to a cluster."
            )) }
            E::LinkOperationsLimit { workspace, max, window_days, next_allowed } => { let workspace = echo(workspace); ("Conflict", 409, format!(
                "The number of workspace link operations on particular workspace is limited to {max} in a period of {window_days} days. Workspace '{workspace}' can be linked again at {next_allowed}."
            )) }
            E::WorkspacesPerClusterLimit { cluster, max } => { let cluster = echo(cluster); ("Conflict", 409, format!(
                "The maximum of linked workspaces to cluster is {max}. Cluster '{cluster}' has reached it; unlink a workspace first."
            )) }
            E::WorkspaceAlreadyExists(ws) => ("Conflict", 409, format!("Workspace '{}' already exists.", echo(ws))),
            E::LocationNotAvailable { location, resource_type } => ("LocationNotAvailableForResourceType", 400, format!(
                "The provided location '{}' is not available for resource type '{resource_type}'. List of available regions for the resource type is '{}'.",
                echo(location),
                cmksim_sim::rules::AZURE_REGIONS.join(",")
            )),
            E::InvalidWorkspaceName(ws) => { let ws = echo(ws); ("InvalidParameter", 400, format!(
                "Workspace name '{ws}' is not valid. Workspace name can contain characters a-z, A-Z, 0-9 and '-', must start and end with a letter or digit, and have a length of 4-63."
            )) }
            E::RetentionOutOfRange { min_days, max_days, .. } => ("InvalidParameter", 400, format!(
                "Retention in days is not in range. Set a value from {min_days} to {max_days} days."
            )),
            // The id of a stored workspace (its parts were validated at creation): not clipped.
            E::WorkspaceLocked { workspace: ws, operation } => { ("ScopeLocked", 409, format!(
                "The scope '{ws}' cannot perform {operation} operation because following scope(s) are locked: '{ws}'. Please remove the lock and try again."
            )) }
            E::ClusterNotDeleted(name) => { let name = echo(name); ("Conflict", 409, format!(
                "Cluster '{name}' is not in soft-delete; there is nothing to recover."
            )) }
            E::OperationNotFound(id) => ("ResourceNotFound", 404, format!("Operation '{}' not found.", echo(id))),
            E::ColumnTypeConflict { table, column, registered, declared } => { let column = echo(column); let declared = echo(declared); let registered = echo(registered); let table = echo(table); ("Conflict", 409, format!(
                "Column '{column}' of table '{table}' is registered as {registered}; it cannot be redeclared as {declared}. A column's type never changes once declared: declare a column with a new name instead."
            )) }
            E::TooManyCustomTables { workspace, max } => { let workspace = echo(workspace); ("Conflict", 409, format!(
                "Workspace '{workspace}' already has {max} custom tables, the most it can have."
            )) }
            E::TooManyColumns { table, max } => { let table = echo(table); ("InvalidParameter", 400, format!(
                "Table '{table}' would have more than {max} columns, the most a table can have."
            )) }
            E::KeyFactsMissing => ("InternalServerError", 500, "Key Vault facts were not gathered for the key update.".into()),
        };
        AzureErrorBody {
            code,
            http_status,
            message,
        }
    }

    /// The gRPC status family of this error.
    pub fn class(&self) -> ErrorClass {
        use ControlError as E;
        match self {
            E::ClusterNotFound(_)
            | E::WorkspaceNotFound(_)
            | E::WorkspaceNotLinked(_)
            | E::OperationNotFound(_) => ErrorClass::NotFound,
            E::ClusterNameReserved { .. }
            | E::ClusterAlreadyExists(_)
            | E::WorkspaceAlreadyExists(_) => ErrorClass::AlreadyExists,
            E::ActiveClusterLimit { .. }
            | E::ReservedClusterLimit { .. }
            | E::SubscriptionClusterLimit { .. }
            | E::LinkOperationsLimit { .. }
            | E::WorkspacesPerClusterLimit { .. }
            | E::TooManyCustomTables { .. } => ErrorClass::ResourceExhausted,
            E::CreateWhileOperationInProgress(_)
            | E::DeletingAsyncInProgress(_)
            | E::OperationInProgress(_)
            | E::ClusterDeleting(_)
            | E::DeleteWhileProvisioning(_)
            | E::DeleteWithLinkedWorkspaces { .. }
            | E::LinkOperationInProgress(_)
            | E::ClusterNotProvisioned(_)
            | E::CapacityLocked { .. }
            | E::KeyValidationFailed(_)
            | E::KeyNotRecoverable { .. }
            | E::StorageRevoked(_)
            | E::WorkspaceAlreadyLinked { .. }
            | E::WorkspaceLocked { .. }
            | E::ClusterNotDeleted(_)
            | E::ColumnTypeConflict { .. } => ErrorClass::FailedPrecondition,
            E::KeyFactsMissing => ErrorClass::Internal,
            _ => ErrorClass::InvalidArgument,
        }
    }
}
