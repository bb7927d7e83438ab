//! The file as serde reads it: the TOML shape, with a source span on every value.
//!
//! Validation needs to point at the exact character of every mistake, so each field the checks
//! look at is a [`Spanned`] value. Everything is `deny_unknown_fields` (a misspelt key is an
//! error, not a silently ignored line) and nothing is `untagged` or `flatten` (serde would buffer
//! the values and lose their spans). Closed vocabularies are enums already here, so a wrong word
//! is reported by the TOML reader at its position with the list of valid words; durations and
//! names stay strings until validation, which knows how to report them precisely.

use serde::Deserialize;
use toml::Spanned;

use crate::model::{
    BillingType, Host, KeyOp, KeyPermission, KeyType, SentinelState, Sku, StorageState,
};

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub scenario: S<RawMeta>,
    /// Not `Spanned`: toml 0.8 cannot deserialise a `Table` inside `Spanned` (keys arrive as
    /// owned strings where the span wrapper wants borrowed ones); validation finds the header.
    #[serde(default)]
    pub profile: Option<toml::Table>,
    #[serde(default)]
    pub tenants: Vec<S<RawTenant>>,
    #[serde(default)]
    pub principals: Vec<S<RawPrincipal>>,
    #[serde(default)]
    pub vaults: Vec<S<RawVault>>,
    #[serde(default)]
    pub keys: Vec<S<RawKey>>,
    #[serde(default)]
    pub access_policies: Vec<S<RawPolicy>>,
    #[serde(default)]
    pub clusters: Vec<S<RawCluster>>,
    #[serde(default)]
    pub workspaces: Vec<S<RawWorkspace>>,
    #[serde(default)]
    pub agents: Vec<S<RawAgent>>,
    /// `[[sentinel]]`: workspaces onboarded to Microsoft Sentinel at T+0.
    #[serde(default)]
    pub sentinel: Vec<S<RawSentinel>>,
    /// `[[dcrs]]`: data collection rules (the Logs Ingestion API's) that `upload` steps use.
    #[serde(default)]
    pub dcrs: Vec<S<RawDcr>>,
    /// `[[storage_accounts]]`: storage accounts for queries (seed 000, BYOS).
    #[serde(default)]
    pub storage_accounts: Vec<S<RawStorageAccount>>,
    #[serde(default)]
    pub timeline: Vec<S<RawStep>>,
    #[serde(default)]
    pub expect: Vec<S<RawExpect>>,
    /// `[chaos]`: the fault space of a sweep (`cmksim chaos`).
    #[serde(default)]
    pub chaos: Option<S<RawChaos>>,
}

/// `[chaos]`: which faults a sweep draws, how many, how long, when (all optional; defaults in
/// `chaos::FaultSpace::defaults`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChaos {
    #[serde(default)]
    pub faults: Option<S<Vec<S<crate::chaos::ChaosKind>>>>,
    #[serde(default)]
    pub faults_min: Option<S<i64>>,
    #[serde(default)]
    pub faults_max: Option<S<i64>>,
    #[serde(default)]
    pub duration_min: Option<S<String>>,
    #[serde(default)]
    pub duration_max: Option<S<String>>,
    #[serde(default)]
    pub from: Option<S<String>>,
    #[serde(default)]
    pub until: Option<S<String>>,
    #[serde(default)]
    pub error_rate: Option<S<f64>>,
    #[serde(default)]
    pub latency: Option<S<String>>,
    #[serde(default)]
    pub link_latency: Option<S<String>>,
    #[serde(default)]
    pub link_jitter: Option<S<String>>,
    #[serde(default)]
    pub link_loss: Option<S<f64>>,
    #[serde(default)]
    pub judge_expectations: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: S<String>,
    pub title: S<String>,
    #[serde(default)]
    pub story: Option<S<String>>,
    #[serde(default)]
    pub seed: Option<S<i64>>,
    #[serde(default)]
    pub profile: Option<S<String>>,
    pub duration: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub name: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipal {
    pub name: S<String>,
    pub tenant: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    pub name: S<String>,
    pub location: S<String>,
    #[serde(default)]
    pub tenant: Option<S<String>>,
    #[serde(default)]
    pub sku: Option<S<Sku>>,
    #[serde(default)]
    pub soft_delete: Option<S<bool>>,
    #[serde(default)]
    pub retention_days: Option<S<i64>>,
    #[serde(default)]
    pub purge_protection: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub vault: S<String>,
    pub name: S<String>,
    pub kty: S<KeyType>,
    #[serde(default)]
    pub size: Option<S<i64>>,
    #[serde(default)]
    pub ops: Option<S<Vec<S<KeyOp>>>>,
    #[serde(default)]
    pub enabled: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub vault: S<String>,
    pub principal: S<String>,
    pub permissions: S<Vec<S<KeyPermission>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyRef {
    pub vault: S<String>,
    pub name: S<String>,
    #[serde(default)]
    pub version: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: S<String>,
    pub location: S<String>,
    #[serde(default)]
    pub tenant: Option<S<String>>,
    #[serde(default)]
    pub subscription: Option<S<String>>,
    #[serde(default)]
    pub resource_group: Option<S<String>>,
    #[serde(default)]
    pub capacity: Option<S<i64>>,
    #[serde(default)]
    pub billing_type: Option<S<BillingType>>,
    #[serde(default)]
    pub double_encryption: Option<S<bool>>,
    #[serde(default)]
    pub key: Option<S<RawKeyRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkspace {
    pub name: S<String>,
    pub location: S<String>,
    #[serde(default)]
    pub retention_days: Option<S<i64>>,
    #[serde(default)]
    pub link: Option<S<String>>,
}

/// `[[storage_accounts]]`: `name`, `location`, `tenant` (default the first), `key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorageAccount {
    pub name: S<String>,
    pub location: S<String>,
    #[serde(default)]
    pub tenant: Option<S<String>>,
    #[serde(default)]
    pub key: Option<S<RawKeyRef>>,
}

/// `[[sentinel]]`: `workspace`, `customer_managed_key` (default true), `incidents_every`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSentinel {
    pub workspace: S<String>,
    #[serde(default)]
    pub customer_managed_key: Option<S<bool>>,
    #[serde(default)]
    pub incidents_every: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub name: S<String>,
    pub workspace: S<String>,
    pub tables: S<Vec<S<RawAgentTable>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentTable {
    pub table: S<String>,
    pub every: S<String>,
    #[serde(default)]
    pub records: Option<S<i64>>,
}

/// `after = { step = "id", by = "10m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAfter {
    pub step: S<String>,
    pub by: S<String>,
}

/// The action names (see `model::ACTION_NAMES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionName {
    CreateVault,
    UpdateVault,
    DeleteVault,
    RecoverVault,
    PurgeVault,
    CreateKey,
    UpdateKey,
    RotateKey,
    DeleteKey,
    RecoverKey,
    PurgeKey,
    SetAccessPolicy,
    RemoveAccessPolicy,
    CreateCluster,
    UpdateCluster,
    DeleteCluster,
    RecoverCluster,
    CreateWorkspace,
    LinkWorkspace,
    UnlinkWorkspace,
    SetWorkspaceRetention,
    SetWorkspaceLock,
    Ingest,
    Query,
    RegisterCosmosDb,
    OnboardSentinel,
    CreateIncident,
    CreateAnalyticsRule,
    CreateWatchlist,
    DeleteSentinelWorkspace,
    EnableLockbox,
    LockboxRequest,
    LockboxApprove,
    LockboxDeny,
    SupportQuery,
    Purge,
    DeleteTable,
    Upload,
    LinkStorageAccount,
    SaveSearch,
    ReadSavedSearches,
}

/// `[[dcrs]]`: a data collection rule sending to one workspace.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDcr {
    pub name: S<String>,
    pub workspace: S<String>,
    pub streams: S<Vec<S<RawDcrStream>>>,
    pub flows: S<Vec<S<RawDcrFlow>>>,
}

/// A stream declaration: `{ name = "Custom-App", columns = [{ name = "Message", type = "string" }] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDcrStream {
    pub name: S<String>,
    pub columns: S<Vec<S<RawDcrColumn>>>,
}

/// A declared column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDcrColumn {
    pub name: S<String>,
    #[serde(rename = "type")]
    pub column_type: S<String>,
}

/// A data flow: `{ streams = ["Custom-App"], output = "Custom-App_CL" }` (`output` defaults to
/// the flow's first stream).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDcrFlow {
    pub streams: S<Vec<S<String>>>,
    #[serde(default)]
    pub output: Option<S<String>>,
}

/// One `[[timeline]]` step. Action parameters are flat keys of the step; which ones an action
/// takes is checked in validation (so that the message can name the action).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    #[serde(default)]
    pub id: Option<S<String>>,
    #[serde(default)]
    pub at: Option<S<String>>,
    #[serde(default)]
    pub after: Option<S<RawAfter>>,
    #[serde(default)]
    pub action: Option<S<ActionName>>,
    #[serde(default)]
    pub fault: Option<S<RawFault>>,
    #[serde(default)]
    pub narrate: Option<S<String>>,
    #[serde(default)]
    pub duration: Option<S<String>>,
    // Action parameters.
    #[serde(default)]
    pub vault: Option<S<String>>,
    #[serde(default)]
    pub key: Option<S<String>>,
    #[serde(default)]
    pub version: Option<S<String>>,
    #[serde(default)]
    pub cluster: Option<S<String>>,
    #[serde(default)]
    pub workspace: Option<S<String>>,
    #[serde(default)]
    pub principal: Option<S<String>>,
    #[serde(default)]
    pub permissions: Option<S<Vec<S<KeyPermission>>>>,
    #[serde(default)]
    pub enabled: Option<S<bool>>,
    #[serde(default)]
    pub not_before: Option<S<String>>,
    #[serde(default)]
    pub expires: Option<S<String>>,
    #[serde(default)]
    pub ops: Option<S<Vec<S<KeyOp>>>>,
    #[serde(default)]
    pub location: Option<S<String>>,
    #[serde(default)]
    pub tenant: Option<S<String>>,
    #[serde(default)]
    pub sku: Option<S<Sku>>,
    #[serde(default)]
    pub soft_delete: Option<S<bool>>,
    #[serde(default)]
    pub retention_days: Option<S<i64>>,
    #[serde(default)]
    pub purge_protection: Option<S<bool>>,
    #[serde(default)]
    pub kty: Option<S<KeyType>>,
    #[serde(default)]
    pub size: Option<S<i64>>,
    #[serde(default)]
    pub capacity: Option<S<i64>>,
    #[serde(default)]
    pub billing_type: Option<S<BillingType>>,
    #[serde(default)]
    pub double_encryption: Option<S<bool>>,
    #[serde(default)]
    pub subscription: Option<S<String>>,
    #[serde(default)]
    pub resource_group: Option<S<String>>,
    #[serde(default)]
    pub table: Option<S<String>>,
    #[serde(default)]
    pub records: Option<S<i64>>,
    #[serde(default)]
    pub locked: Option<S<bool>>,
    #[serde(default)]
    pub since: Option<S<String>>,
    #[serde(default)]
    pub kql: Option<S<String>>,
    #[serde(default)]
    pub customer_managed_key: Option<S<bool>>,
    #[serde(default)]
    pub incidents_every: Option<S<String>>,
    /// `lockbox-approve` / `lockbox-deny`: the id of the `lockbox-request` step answered.
    #[serde(default)]
    pub request: Option<S<String>>,
    /// `purge`: the filter (`column`, `operator` (default `==`), `value`).
    #[serde(default)]
    pub column: Option<S<String>>,
    #[serde(default)]
    pub operator: Option<S<String>>,
    #[serde(default)]
    pub value: Option<S<String>>,
    /// `upload`: the `[[dcrs]]` rule and its stream.
    #[serde(default)]
    pub dcr: Option<S<String>>,
    #[serde(default)]
    pub stream: Option<S<String>>,
    /// `link-storage-account`: the `[[storage_accounts]]` account and `Query` or `Alerts`.
    #[serde(default)]
    pub account: Option<S<String>>,
    #[serde(default)]
    pub data_source_type: Option<S<String>>,
    /// `save-search`: the saved search's id and its query text.
    #[serde(default)]
    pub search: Option<S<String>>,
    #[serde(default)]
    pub text: Option<S<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VaultMode {
    Down,
    Blackhole,
    Throttle,
    ErrorRate,
    Latency,
    Up,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HsmMode {
    DeviceError,
    Tamper,
    Latency,
    Ok,
}

/// `fault = { ... }`: exactly one of the target keys, plus the mode's parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    #[serde(default)]
    pub keyvault: Option<S<VaultMode>>,
    #[serde(default)]
    pub hsm: Option<S<HsmMode>>,
    #[serde(default)]
    pub error_rate: Option<S<f64>>,
    #[serde(default)]
    pub latency: Option<S<String>>,
    #[serde(default)]
    pub partition: Option<S<Vec<S<Host>>>>,
    #[serde(default)]
    pub repair: Option<S<Vec<S<Host>>>>,
    #[serde(default)]
    pub hold: Option<S<Vec<S<Host>>>>,
    #[serde(default)]
    pub release: Option<S<Vec<S<Host>>>>,
    #[serde(default)]
    pub crash: Option<S<Host>>,
    #[serde(default)]
    pub restart: Option<S<Host>>,
    /// `link = ["storage", "keyvault"]`: the link's quality from now on (`latency`, `jitter`,
    /// `loss`; none of them: a perfect link again).
    #[serde(default)]
    pub link: Option<S<Vec<S<Host>>>>,
    #[serde(default)]
    pub jitter: Option<S<String>>,
    #[serde(default)]
    pub loss: Option<S<f64>>,
}

/// One `[[expect]]`: a subject key, a predicate, a timing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    #[serde(default)]
    pub id: Option<S<String>>,
    #[serde(default)]
    pub description: Option<S<String>>,
    // Subjects.
    #[serde(default)]
    pub storage: Option<S<String>>,
    #[serde(default)]
    pub ingest_to: Option<S<String>>,
    #[serde(default)]
    pub query: Option<S<String>>,
    #[serde(default)]
    pub step: Option<S<String>>,
    #[serde(default)]
    pub no_loss_before: Option<S<String>>,
    #[serde(default)]
    pub sentinel: Option<S<String>>,
    #[serde(default)]
    pub incident_to: Option<S<String>>,
    #[serde(default)]
    pub sentinel_unsupported: Option<S<String>>,
    /// `vault/key` (with `version`).
    #[serde(default)]
    pub key_use: Option<S<String>>,
    /// Seed 003's lifecycle: a retention removal / a completed purge of this workspace.
    #[serde(default)]
    pub retention_removed: Option<S<String>>,
    #[serde(default)]
    pub purged: Option<S<String>>,
    /// The bill of a cluster (seeds 000, 001), with `day`, `payer` and `amount`.
    #[serde(default)]
    pub bill: Option<S<String>>,
    /// Seed 000's queries in the customer's storage: a read of this workspace's saved searches.
    #[serde(default)]
    pub saved_searches: Option<S<String>>,
    #[serde(default)]
    pub day: Option<S<i64>>,
    #[serde(default)]
    pub payer: Option<S<String>>,
    #[serde(default)]
    pub amount: Option<S<String>>,
    // Predicates.
    #[serde(default)]
    pub sentinel_state: Option<S<SentinelState>>,
    #[serde(default)]
    pub version: Option<S<String>>,
    #[serde(default)]
    pub state: Option<S<StorageState>>,
    #[serde(default)]
    pub outcome: Option<S<String>>,
    #[serde(default)]
    pub reason: Option<S<String>>,
    #[serde(default)]
    pub min_records: Option<S<i64>>,
    #[serde(default)]
    pub error_code: Option<S<String>>,
    #[serde(default)]
    pub workspace: Option<S<String>>,
    /// With `query`: the KQL the probe runs.
    #[serde(default)]
    pub kql: Option<S<String>>,
    // Timing.
    #[serde(default)]
    pub at: Option<S<String>>,
    #[serde(default)]
    pub by: Option<S<String>>,
    #[serde(default)]
    pub within: Option<S<String>>,
    #[serde(default)]
    pub after_step: Option<S<String>>,
    #[serde(default)]
    pub never: Option<S<bool>>,
    #[serde(default)]
    pub from: Option<S<String>>,
    #[serde(default)]
    pub until: Option<S<String>>,
    // Where it applies.
    #[serde(default)]
    pub profiles: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub unless_profiles: Option<S<Vec<S<String>>>>,
}
