//! The validated scenario: what a run executes and what the oracle judges.
//!
//! These types are the output of validation, never of serde directly: every name here has been
//! checked to refer to something that exists, every duration parsed, every step placed at an
//! absolute offset from the start. The runner can therefore execute a [`Scenario`] without
//! re-checking anything, and the oracle can read step times without resolving `after` chains.
//! Small closed vocabularies (key types, permissions, fault modes) are enums so that an illegal
//! value cannot be represented; their serde names are exactly the words of the file format.

use std::time::Duration;

use cmksim_sim::net::LinkQuality;
use cmksim_sim::Profile;
use serde::{Deserialize, Serialize};

/// A whole scenario, validated.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub meta: Meta,
    /// The behaviour profile with the scenario's overrides applied.
    pub profile: Profile,
    /// The raw `[profile]` overrides, as written (for the runner to hand to other processes).
    pub profile_overrides: Option<toml::Table>,
    pub world: World,
    pub agents: Vec<Agent>,
    /// Steps sorted by offset; steps at the same offset keep their order in the file.
    pub timeline: Vec<Step>,
    pub expectations: Vec<Expectation>,
    /// `[chaos]`: the fault space of `cmksim chaos` (ignored by `cmksim run`).
    pub chaos: Option<crate::chaos::FaultSpace>,
}

/// `[scenario]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub title: String,
    /// The teaching text shown before the run.
    pub story: String,
    pub seed: u64,
    /// `azure-2020` (default) or `azure-current`.
    pub profile_name: String,
    pub duration: Duration,
}

/// The world as it stands at T+0: everything here exists, is provisioned and linked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    pub tenants: Vec<Tenant>,
    pub principals: Vec<Principal>,
    pub vaults: Vec<Vault>,
    pub keys: Vec<Key>,
    pub access_policies: Vec<AccessPolicy>,
    pub clusters: Vec<Cluster>,
    pub workspaces: Vec<Workspace>,
    /// `[[sentinel]]`: workspaces onboarded to Microsoft Sentinel at T+0 (seed 002).
    pub sentinel: Vec<SentinelWorkspace>,
    /// `[[dcrs]]`: data collection rules, for `upload` steps.
    pub dcrs: Vec<Dcr>,
    /// `[[storage_accounts]]`: storage accounts for queries (seed 000 "CMK for queries", BYOS).
    pub storage_accounts: Vec<StorageAccount>,
}

/// A storage account (`Microsoft.Storage/storageAccounts`) that a workspace can link for its
/// saved searches (`Query`) or log-alert queries (`Alerts`), seed 000. Created at T+0 with its
/// system-assigned identity (written `storage:<name>` in an access policy); `key` puts it under
/// that Key Vault key once the policies are set, checked as its identity like a cluster's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageAccount {
    pub name: String,
    pub location: String,
    pub tenant: String,
    pub key: Option<KeyRef>,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

/// A data collection rule (`Microsoft.Insights/dataCollectionRules`) sending to one workspace:
/// what an `upload` step may send and which tables it lands in. The rules it obeys are
/// `cmksim_sim::dcr`'s, the HTTPS door's too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dcr {
    pub name: String,
    pub workspace: String,
    pub streams: Vec<DcrStream>,
    pub flows: Vec<DcrFlow>,
    /// The line that declares it.
    pub line: usize,
}

/// A declared `Custom-*` stream and its typed columns, in declaration order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcrStream {
    pub name: String,
    pub columns: Vec<(String, cmksim_sim::dcr::StreamType)>,
}

/// A data flow: its streams and the table they are written to (`Custom-X_CL` → `X_CL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcrFlow {
    pub streams: Vec<String>,
    pub table: String,
}

impl Dcr {
    /// The declaration of `stream`.
    pub fn stream(&self, stream: &str) -> Option<&DcrStream> {
        self.streams.iter().find(|s| s.name == stream)
    }

    /// The tables records of `stream` are written to, in flow order, each once.
    pub fn tables_of(&self, stream: &str) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for flow in self
            .flows
            .iter()
            .filter(|f| f.streams.iter().any(|s| s == stream))
        {
            if !tables.contains(&flow.table.as_str()) {
                tables.push(&flow.table);
            }
        }
        tables
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
}

/// A user principal (whoever drives the scenario, or a colleague whose access is revoked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub tenant: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sku {
    Standard,
    Premium,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vault {
    pub name: String,
    pub location: String,
    pub tenant: String,
    pub sku: Sku,
    pub soft_delete: bool,
    pub retention_days: u32,
    pub purge_protection: bool,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    #[serde(rename = "RSA")]
    Rsa,
    #[serde(rename = "RSA-HSM")]
    RsaHsm,
    #[serde(rename = "EC")]
    Ec,
    #[serde(rename = "EC-HSM")]
    EcHsm,
}

impl KeyType {
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa | KeyType::RsaHsm)
    }
    pub fn is_hsm(self) -> bool {
        matches!(self, KeyType::RsaHsm | KeyType::EcHsm)
    }
    /// The sizes the format accepts: RSA modulus bits, or 256 for P-256.
    pub fn sizes(self) -> &'static [u32] {
        if self.is_rsa() {
            &[2048, 3072, 4096]
        } else {
            &[256]
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::RsaHsm => "RSA-HSM",
            KeyType::Ec => "EC",
            KeyType::EcHsm => "EC-HSM",
        }
    }
}

/// Key Vault `key_ops`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyOp {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    WrapKey,
    UnwrapKey,
}

impl KeyOp {
    /// The operations a key gets when `ops` is not given.
    pub fn defaults(kty: KeyType) -> Vec<KeyOp> {
        if kty.is_rsa() {
            vec![
                KeyOp::Encrypt,
                KeyOp::Decrypt,
                KeyOp::Sign,
                KeyOp::Verify,
                KeyOp::WrapKey,
                KeyOp::UnwrapKey,
            ]
        } else {
            vec![KeyOp::Sign, KeyOp::Verify]
        }
    }
    /// Whether a key of this type can perform the operation at all.
    pub fn valid_for(self, kty: KeyType) -> bool {
        kty.is_rsa() || matches!(self, KeyOp::Sign | KeyOp::Verify)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub vault: String,
    pub name: String,
    pub kty: KeyType,
    pub size: u32,
    pub ops: Vec<KeyOp>,
    pub enabled: bool,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

/// Key permissions of an access policy (the Azure list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyPermission {
    Get,
    List,
    Create,
    Update,
    Import,
    Delete,
    Recover,
    Backup,
    Restore,
    Purge,
    WrapKey,
    UnwrapKey,
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Rotate,
    GetRotationPolicy,
    SetRotationPolicy,
    Release,
}

/// Who an access policy is for: a user, the system-assigned identity of a cluster (written
/// `cluster:<name>`: its object id only exists once the cluster does), or the Azure Cosmos DB
/// principal of the vault's tenant (written `Azure Cosmos DB`, seed 002 step 4: Sentinel's store
/// unwraps its account key as that principal).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalRef {
    User(String),
    Cluster(String),
    CosmosDb,
    /// The system-assigned identity of a `[[storage_accounts]]` account (`storage:<name>`).
    StorageAccount(String),
}

/// How a file names the Azure Cosmos DB principal (`principal = "Azure Cosmos DB"`): its display
/// name in the identity directory (`cmksim_sentinel::server::COSMOS_DB_PRINCIPAL_NAME`; a test
/// of the world crate checks the two agree). A user principal's name cannot contain spaces, so
/// the two cannot be confused.
pub const COSMOS_DB_PRINCIPAL: &str = "Azure Cosmos DB";

impl PrincipalRef {
    /// As written in the file: `alice` or `cluster:c1`.
    pub fn label(&self) -> String {
        match self {
            PrincipalRef::User(name) => name.clone(),
            PrincipalRef::Cluster(name) => format!("cluster:{name}"),
            PrincipalRef::CosmosDb => COSMOS_DB_PRINCIPAL.to_string(),
            PrincipalRef::StorageAccount(name) => format!("storage:{name}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    pub vault: String,
    pub principal: PrincipalRef,
    pub permissions: Vec<KeyPermission>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingType {
    Cluster,
    Workspaces,
}

/// Which version of a key is meant. Versions are random 32-hex strings chosen at run time, so a
/// file names them by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSel {
    /// No version: the cluster follows the newest version (only honoured where the profile has
    /// versionless keys; the service says no otherwise).
    Versionless,
    /// `latest`: the newest version at the moment the step runs (a pinned version).
    Latest,
    /// `v1`, `v2`, ...: the n-th version created (1-based).
    Nth(u32),
}

impl VersionSel {
    pub fn label(self) -> String {
        match self {
            VersionSel::Versionless => "versionless".to_string(),
            VersionSel::Latest => "latest".to_string(),
            VersionSel::Nth(n) => format!("v{n}"),
        }
    }
}

/// A cluster's `keyVaultProperties`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub vault: String,
    pub key: String,
    pub version: VersionSel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub tenant: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub capacity_gb_per_day: u32,
    pub billing_type: BillingType,
    pub double_encryption: bool,
    /// Applied once provisioned (world clusters are provisioned at T+0).
    pub key: Option<KeyRef>,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub name: String,
    pub location: String,
    pub retention_days: u32,
    /// Linked (link completed) at T+0.
    pub link: Option<String>,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

/// A simulated agent: each table sends `records` records every `every`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub workspace: String,
    pub tables: Vec<AgentTable>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentTable {
    pub table: String,
    pub every: Duration,
    pub records: u64,
}

/// One timeline step, placed at an absolute offset from the start.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Position in the file, from 1.
    pub index: usize,
    pub id: Option<String>,
    pub offset: Duration,
    pub what: StepKind,
    /// A teaching line printed at that moment.
    pub narrate: Option<String>,
    /// Line in the file, for messages.
    pub line: usize,
}

impl Step {
    /// The step's id, or `#n` for an anonymous step.
    pub fn label(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("#{}", self.index))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Action(Action),
    /// A fault, restored automatically after `duration` when given.
    Fault {
        fault: Fault,
        duration: Option<Duration>,
    },
    /// A step that only narrates.
    Narrate,
}

/// Every management operation a timeline can perform.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    CreateVault(Vault),
    UpdateVault {
        vault: String,
        soft_delete: Option<bool>,
        retention_days: Option<u32>,
        purge_protection: Option<bool>,
    },
    DeleteVault {
        vault: String,
    },
    RecoverVault {
        vault: String,
    },
    PurgeVault {
        vault: String,
    },
    CreateKey(Key),
    UpdateKey {
        vault: String,
        key: String,
        version: VersionSel,
        enabled: Option<bool>,
        /// Offsets from the scenario start.
        not_before: Option<Duration>,
        expires: Option<Duration>,
        ops: Option<Vec<KeyOp>>,
    },
    RotateKey {
        vault: String,
        key: String,
    },
    DeleteKey {
        vault: String,
        key: String,
    },
    RecoverKey {
        vault: String,
        key: String,
    },
    PurgeKey {
        vault: String,
        key: String,
    },
    SetAccessPolicy(AccessPolicy),
    RemoveAccessPolicy {
        vault: String,
        principal: PrincipalRef,
    },
    /// Starts provisioning (it takes the profile's provisioning duration).
    CreateCluster(Cluster),
    UpdateCluster {
        cluster: String,
        capacity_gb_per_day: Option<u32>,
        billing_type: Option<BillingType>,
        key: Option<KeyRef>,
    },
    DeleteCluster {
        cluster: String,
    },
    RecoverCluster {
        cluster: String,
    },
    CreateWorkspace(Workspace),
    LinkWorkspace {
        workspace: String,
        cluster: String,
    },
    UnlinkWorkspace {
        workspace: String,
    },
    SetWorkspaceRetention {
        workspace: String,
        retention_days: u32,
    },
    SetWorkspaceLock {
        workspace: String,
        locked: bool,
    },
    Ingest {
        workspace: String,
        table: String,
        records: u64,
    },
    /// A plain query of one table (default `Heartbeat`), or a KQL query when `kql` is set (then
    /// `table` is `None`: a KQL query names its own tables).
    Query {
        workspace: String,
        table: Option<String>,
        /// A KQL query to run instead of the plain one (`ingest.v1.Query/Kql`).
        kql: Option<KqlQuery>,
        /// Look back this far from the query time; the whole history when absent (for KQL: no
        /// time range beyond the query's own `TimeGenerated` filters).
        since: Option<Duration>,
    },
    /// Seed 002 step 3: register the Cosmos DB resource provider (`Microsoft.DocumentDB`) for
    /// the workspaces' subscription.
    RegisterCosmosDb,
    /// Seed 002 step 5: `PUT onboardingStates/default` (with `customerManagedKey`); once
    /// onboarded, incidents arrive every `incidents_every` when given.
    OnboardSentinel {
        workspace: String,
        customer_managed_key: bool,
        incidents_every: Option<Duration>,
    },
    /// One incident, analytics rule or watchlist saved in the workspace's Sentinel store.
    CreateSentinelItem {
        workspace: String,
        item: SentinelItem,
    },
    /// Deletes the Sentinel workspace: the only operation seed 002 allows after a revocation.
    DeleteSentinelWorkspace {
        workspace: String,
    },
    /// Customer Lockbox on a dedicated cluster (seeds 001, 003; refused in China).
    EnableLockbox {
        cluster: String,
    },
    /// A Microsoft support engineer asks to read a workspace's data; the step's id names the
    /// request for `lockbox-approve` / `lockbox-deny`.
    LockboxRequest {
        workspace: String,
    },
    /// The customer answers the request made by step `request`.
    LockboxDecide {
        request: String,
        approve: bool,
    },
    /// The support engineer queries the workspace through the ingest front end with its own
    /// token: it holds no role, so the front end lets the query in only under an approved,
    /// unexpired Lockbox request (otherwise 403 `AuthorizationFailed`, as without a role).
    SupportQuery {
        workspace: String,
    },
    /// Seed 003's purge API: remove the records of `table` whose `column` compares to `value`
    /// with `operator` (`==` by default); asynchronous (`storage.purge.requested`, then
    /// `storage.purge.completed`). Refused with `ScopeLocked` while the workspace is locked.
    Purge {
        workspace: String,
        table: String,
        column: String,
        operator: String,
        value: String,
    },
    /// Deletes a table's data (refused with `ScopeLocked` while the workspace is locked).
    DeleteTable {
        workspace: String,
        table: String,
    },
    /// The Logs Ingestion API: `records` synthetic records of a `[[dcrs]]` rule's stream (typed
    /// by its declaration), sent to the table of every data flow of that stream.
    Upload {
        dcr: String,
        stream: String,
        records: u64,
    },
    /// Seed 000's `PUT linkedStorageAccounts/{Query|Alerts}`: the workspace keeps that kind of
    /// query in the storage account from now on (linking `Query` removes its saved searches).
    LinkStorageAccount {
        workspace: String,
        account: String,
        /// `Query` or `Alerts`.
        data_source_type: String,
    },
    /// `PUT savedSearches/{search}` with the query `text`.
    SaveSearch {
        workspace: String,
        search: String,
        text: String,
    },
    /// Lists the workspace's saved searches (storage records `byos.saved_searches.read` with the
    /// count, or `byos.saved_searches.unreadable` naming the account whose key is refused).
    ReadSavedSearches {
        workspace: String,
    },
}

/// A KQL query written in a scenario (`kql = "..."` on a `query` step or expectation), parsed
/// by validation with `cmksim_kql::parse`, so a run never sends a query that cannot parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KqlQuery {
    /// The text as written, sent to the front end unchanged.
    pub text: String,
    /// The tables it reads, sorted and deduplicated (`cmksim_kql::Query::tables`).
    pub tables: Vec<String>,
}

impl KqlQuery {
    /// The `table` field of the `query.ok` / `query.failed` event the front end records for this
    /// query: its tables joined by "," (the front end's spelling, in
    /// `cmksim_ingest::frontend::kql`). The oracle uses it to tell a KQL probe's event from a
    /// plain query's.
    pub fn event_table(&self) -> String {
        self.tables.join(",")
    }
}

/// The action names of the file format, in the order of [`Action`].
pub const ACTION_NAMES: [&str; 41] = [
    "create-vault",
    "update-vault",
    "delete-vault",
    "recover-vault",
    "purge-vault",
    "create-key",
    "update-key",
    "rotate-key",
    "delete-key",
    "recover-key",
    "purge-key",
    "set-access-policy",
    "remove-access-policy",
    "create-cluster",
    "update-cluster",
    "delete-cluster",
    "recover-cluster",
    "create-workspace",
    "link-workspace",
    "unlink-workspace",
    "set-workspace-retention",
    "set-workspace-lock",
    "ingest",
    "query",
    "register-cosmos-db",
    "onboard-sentinel",
    "create-incident",
    "create-analytics-rule",
    "create-watchlist",
    "delete-sentinel-workspace",
    "enable-lockbox",
    "lockbox-request",
    "lockbox-approve",
    "lockbox-deny",
    "support-query",
    "purge",
    "delete-table",
    "upload",
    "link-storage-account",
    "save-search",
    "read-saved-searches",
];

impl Action {
    /// The action's name in the file format.
    pub fn name(&self) -> &'static str {
        let index = match self {
            Action::CreateVault(_) => 0,
            Action::UpdateVault { .. } => 1,
            Action::DeleteVault { .. } => 2,
            Action::RecoverVault { .. } => 3,
            Action::PurgeVault { .. } => 4,
            Action::CreateKey(_) => 5,
            Action::UpdateKey { .. } => 6,
            Action::RotateKey { .. } => 7,
            Action::DeleteKey { .. } => 8,
            Action::RecoverKey { .. } => 9,
            Action::PurgeKey { .. } => 10,
            Action::SetAccessPolicy(_) => 11,
            Action::RemoveAccessPolicy { .. } => 12,
            Action::CreateCluster(_) => 13,
            Action::UpdateCluster { .. } => 14,
            Action::DeleteCluster { .. } => 15,
            Action::RecoverCluster { .. } => 16,
            Action::CreateWorkspace(_) => 17,
            Action::LinkWorkspace { .. } => 18,
            Action::UnlinkWorkspace { .. } => 19,
            Action::SetWorkspaceRetention { .. } => 20,
            Action::SetWorkspaceLock { .. } => 21,
            Action::Ingest { .. } => 22,
            Action::Query { .. } => 23,
            Action::RegisterCosmosDb => 24,
            Action::OnboardSentinel { .. } => 25,
            Action::CreateSentinelItem { item, .. } => match item {
                SentinelItem::Incident => 26,
                SentinelItem::AnalyticsRule => 27,
                SentinelItem::Watchlist => 28,
            },
            Action::DeleteSentinelWorkspace { .. } => 29,
            Action::EnableLockbox { .. } => 30,
            Action::LockboxRequest { .. } => 31,
            Action::LockboxDecide { approve: true, .. } => 32,
            Action::LockboxDecide { approve: false, .. } => 33,
            Action::SupportQuery { .. } => 34,
            Action::Purge { .. } => 35,
            Action::DeleteTable { .. } => 36,
            Action::Upload { .. } => 37,
            Action::LinkStorageAccount { .. } => 38,
            Action::SaveSearch { .. } => 39,
            Action::ReadSavedSearches { .. } => 40,
        };
        ACTION_NAMES[index]
    }
}

/// A service host of the simulation (a turmoil host, a process, a container).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    Keyvault,
    Storage,
    Ingest,
    Identity,
}

impl Host {
    pub fn as_str(self) -> &'static str {
        match self {
            Host::Keyvault => "keyvault",
            Host::Storage => "storage",
            Host::Ingest => "ingest",
            Host::Identity => "identity",
        }
    }
}

/// How Key Vault misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VaultFault {
    /// Refuses connections (fails fast).
    Down,
    /// Accepts nothing and answers nothing (requests time out).
    Blackhole,
    /// Answers 429.
    Throttle,
    /// Answers 5xx to this fraction of requests (0 < rate ≤ 1).
    ErrorRate(f64),
    /// Answers after this extra delay.
    Latency(Duration),
    /// Back to normal.
    Up,
}

/// How the emulated HSM misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HsmFault {
    DeviceError,
    /// All keys zeroised: the data under them is gone forever.
    Tamper,
    Latency(Duration),
    Ok,
}

/// A fault injected by a timeline step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    Keyvault(VaultFault),
    Partition(Host, Host),
    Repair(Host, Host),
    /// Messages between the two hosts are held (delivered on release).
    Hold(Host, Host),
    Release(Host, Host),
    Crash(Host),
    Restart(Host),
    Hsm(HsmFault),
    /// The link between the two hosts gets this quality (latency, seeded jitter, loss) from now
    /// on; a perfect quality (the default) restores it. Only the event-driven engine's network
    /// has link quality.
    Link(Host, Host, LinkQuality),
}

impl Fault {
    /// The fault that undoes this one (for a step's `duration`); `None` when it cannot be
    /// undone (tamper) or is itself a restoration.
    pub fn restoring(&self) -> Option<Fault> {
        match *self {
            Fault::Keyvault(VaultFault::Up) => None,
            Fault::Keyvault(_) => Some(Fault::Keyvault(VaultFault::Up)),
            Fault::Partition(a, b) => Some(Fault::Repair(a, b)),
            Fault::Hold(a, b) => Some(Fault::Release(a, b)),
            Fault::Crash(h) => Some(Fault::Restart(h)),
            Fault::Hsm(HsmFault::DeviceError) | Fault::Hsm(HsmFault::Latency(_)) => {
                Some(Fault::Hsm(HsmFault::Ok))
            }
            Fault::Link(a, b, quality) if quality != LinkQuality::default() => {
                Some(Fault::Link(a, b, LinkQuality::default()))
            }
            Fault::Link(..) => None,
            Fault::Hsm(HsmFault::Tamper | HsmFault::Ok)
            | Fault::Repair(..)
            | Fault::Release(..)
            | Fault::Restart(_) => None,
        }
    }

    /// Whether this fault makes Key Vault unreachable or unreliable (the `impairs_vault` of a
    /// `scenario.fault.applied` event, which invariant 4 reads); restorations are not. A
    /// partition or hold cuts Key Vault off from whichever host it names; a link of less than
    /// perfect quality to Key Vault impairs it too (its loss fails calls, its latency may
    /// outlast a client's timeout), so invariant 4 checks that a short one is invisible.
    pub fn impairs_vault(&self) -> bool {
        match *self {
            Fault::Keyvault(VaultFault::Latency(_) | VaultFault::Up) => false,
            Fault::Keyvault(
                VaultFault::Down
                | VaultFault::Blackhole
                | VaultFault::Throttle
                | VaultFault::ErrorRate(_),
            ) => true,
            Fault::Partition(a, b) | Fault::Hold(a, b) => [a, b].contains(&Host::Keyvault),
            Fault::Link(a, b, quality) => {
                [a, b].contains(&Host::Keyvault) && quality != LinkQuality::default()
            }
            Fault::Crash(h) => h == Host::Keyvault,
            Fault::Repair(..) | Fault::Release(..) | Fault::Restart(_) | Fault::Hsm(_) => false,
        }
    }

    /// How the fault is named in events, narration and messages, e.g. `keyvault down`,
    /// `partition storage keyvault` (the one spelling: the event log's `fault`).
    pub fn describe(&self) -> String {
        let pair = |verb: &str, a: Host, b: Host| format!("{verb} {} {}", a.as_str(), b.as_str());
        match *self {
            Fault::Keyvault(VaultFault::Down) => "keyvault down".into(),
            Fault::Keyvault(VaultFault::Blackhole) => "keyvault blackhole".into(),
            Fault::Keyvault(VaultFault::Throttle) => "keyvault throttle".into(),
            Fault::Keyvault(VaultFault::ErrorRate(rate)) => format!("keyvault error-rate {rate}"),
            Fault::Keyvault(VaultFault::Latency(d)) => {
                format!("keyvault latency {}", cmksim_sim::format_duration(d))
            }
            Fault::Keyvault(VaultFault::Up) => "keyvault up".into(),
            Fault::Partition(a, b) => pair("partition", a, b),
            Fault::Repair(a, b) => pair("repair", a, b),
            Fault::Hold(a, b) => pair("hold", a, b),
            Fault::Release(a, b) => pair("release", a, b),
            Fault::Crash(h) => format!("crash {}", h.as_str()),
            Fault::Restart(h) => format!("restart {}", h.as_str()),
            Fault::Hsm(HsmFault::DeviceError) => "hsm device-error".into(),
            Fault::Hsm(HsmFault::Tamper) => "hsm tamper".into(),
            Fault::Hsm(HsmFault::Latency(d)) => {
                format!("hsm latency {}", cmksim_sim::format_duration(d))
            }
            Fault::Hsm(HsmFault::Ok) => "hsm ok".into(),
            Fault::Link(a, b, quality) => {
                format!(
                    "link {} {} {}",
                    a.as_str(),
                    b.as_str(),
                    link_quality(quality)
                )
            }
        }
    }
}

/// A link's quality in words: `latency 2s jitter 500ms loss 0.1` (the parts that are not
/// zero), or `perfect`.
pub fn link_quality(quality: LinkQuality) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !quality.latency.is_zero() {
        parts.push(format!(
            "latency {}",
            cmksim_sim::format_duration(quality.latency)
        ));
    }
    if !quality.jitter.is_zero() {
        parts.push(format!(
            "jitter {}",
            cmksim_sim::format_duration(quality.jitter)
        ));
    }
    if quality.loss > 0.0 {
        parts.push(format!("loss {}", quality.loss));
    }
    if parts.is_empty() {
        "perfect".into()
    } else {
        parts.join(" ")
    }
}

/// The storage states a cluster goes through (the event kinds `storage.state.<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageState {
    /// Created, not yet provisioned.
    Provisioning,
    /// Key access works (under the CMK, or the MMK before a key is configured).
    Healthy,
    /// Transient key-access failures, serving from the cached AEK.
    Degraded,
    /// Key Vault unreachable longer than the grace: queries fail, ingest is buffered.
    Unavailable,
    /// Access denied: ingest dropped, queries fail, hot cache deleted.
    Revoked,
    /// Access is back; ingest and query resume after the resume delay.
    Resuming,
    /// The key material is gone for good (KEK purged, HSM zeroised, cluster purged).
    Shredded,
    /// The cluster is (soft-)deleted.
    Deleted,
}

/// All storage states, in lane order.
pub const STORAGE_STATES: [StorageState; 8] = [
    StorageState::Provisioning,
    StorageState::Healthy,
    StorageState::Degraded,
    StorageState::Unavailable,
    StorageState::Revoked,
    StorageState::Resuming,
    StorageState::Shredded,
    StorageState::Deleted,
];

impl StorageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageState::Provisioning => "provisioning",
            StorageState::Healthy => "healthy",
            StorageState::Degraded => "degraded",
            StorageState::Unavailable => "unavailable",
            StorageState::Revoked => "revoked",
            StorageState::Resuming => "resuming",
            StorageState::Shredded => "shredded",
            StorageState::Deleted => "deleted",
        }
    }

    pub fn from_name(name: &str) -> Option<StorageState> {
        STORAGE_STATES.iter().copied().find(|s| s.as_str() == name)
    }
}

/// What happened to ingested records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestOutcome {
    Stored,
    Buffered,
    Dropped,
    /// Buffered records dropped later because they outlived the buffer window
    /// (`storage.buffer.expired`).
    Expired,
}

impl IngestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Stored => "stored",
            IngestOutcome::Buffered => "buffered",
            IngestOutcome::Dropped => "dropped",
            IngestOutcome::Expired => "expired",
        }
    }
}

/// Whether a query (or a step) succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Success {
    Succeeds,
    Fails,
}

impl Success {
    pub fn as_str(self) -> &'static str {
        match self {
            Success::Succeeds => "succeeds",
            Success::Fails => "fails",
        }
    }
}

/// One `[[expect]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// Position in the file, from 1.
    pub index: usize,
    pub id: Option<String>,
    /// Human text; a default is derived from the subject when absent.
    pub description: String,
    pub subject: Subject,
    pub timing: Timing,
    pub line: usize,
    /// `profiles` / `unless_profiles`: under which behaviour profiles it is judged (a seed 001
    /// difference written in the scenario file itself).
    pub profiles: ProfileFilter,
}

impl Expectation {
    pub fn label(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| format!("expect#{}", self.index))
    }

    /// Whether a run under `profile` judges this expectation.
    pub fn applies_under(&self, profile: &str) -> bool {
        self.profiles.applies_to(profile)
    }
}

/// Under which behaviour profiles an expectation is judged. A scenario written for one profile
/// states where another profile's source differs: `profiles = ["azure-2021"]` on what only
/// seed 001 makes true, `unless_profiles = ["azure-2021"]` on what seed 001 makes false.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProfileFilter {
    /// Every profile (neither key given).
    #[default]
    All,
    /// `profiles = [...]`: only under these.
    Only(Vec<String>),
    /// `unless_profiles = [...]`: under every profile but these.
    Except(Vec<String>),
}

impl ProfileFilter {
    pub fn applies_to(&self, profile: &str) -> bool {
        match self {
            ProfileFilter::All => true,
            ProfileFilter::Only(names) => names.iter().any(|n| n == profile),
            ProfileFilter::Except(names) => !names.iter().any(|n| n == profile),
        }
    }

    /// `only under azure-2021` / `not under azure-2021`, for verdicts; empty for `All`.
    pub fn describe(&self) -> String {
        match self {
            ProfileFilter::All => String::new(),
            ProfileFilter::Only(names) => format!("judged only under {}", names.join(", ")),
            ProfileFilter::Except(names) => format!("not judged under {}", names.join(", ")),
        }
    }
}

/// What an expectation is about.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// `storage = "c1"`, `state = "revoked"`.
    Storage {
        cluster: String,
        state: StorageState,
    },
    /// `ingest_to = "ws1"`, `outcome = "dropped"`, optional `reason`: a batch to the workspace
    /// had records with that outcome (`expired`: buffered records of it expired).
    Ingest {
        workspace: String,
        outcome: IngestOutcome,
        reason: Option<String>,
    },
    /// `query = "ws1"`, `outcome = "fails" | "succeeds"`, optional `min_records`, `reason`, and
    /// `kql` (only with `at`: the probe the runner makes then runs that query, and `min_records`
    /// counts its result rows).
    Query {
        workspace: String,
        outcome: Success,
        min_records: Option<u64>,
        reason: Option<String>,
        kql: Option<KqlQuery>,
    },
    /// `step = "id"`, `outcome = "succeeds" | "fails"`, optional `error_code`: the management
    /// operation's answer.
    Step {
        step: String,
        outcome: Success,
        error_code: Option<String>,
    },
    /// `no_loss_before = "2h"` (optional `workspace`): no record accepted before that offset is
    /// dropped, and every record buffered before it is written by the end.
    NoLossBefore {
        offset: Duration,
        workspace: Option<String>,
    },
    /// `sentinel = "ws1"`, `sentinel_state = "revoked"`: the state of the workspace's Sentinel
    /// store (events `sentinel.onboarded`, `sentinel.state.<state>`).
    Sentinel {
        workspace: String,
        state: SentinelState,
    },
    /// `incident_to = "ws1"`, `outcome = "stored" | "refused"`: an incident creation in the
    /// workspace's Sentinel was accepted (`sentinel.item.stored`) or refused by the state
    /// machine (`sentinel.operation.refused`).
    Incident {
        workspace: String,
        outcome: IncidentOutcome,
    },
    /// `sentinel_unsupported = "ws1"`: seed 002's unsupported configuration was reached for the
    /// workspace (`sentinel.unsupported`). Writing it also tells the oracle the scenario shows
    /// it on purpose.
    SentinelUnsupported { workspace: String },
    /// `key_use = "kv1/k1"`, `version = "v1"`, `never = true`, `from`: Key Vault's per-version
    /// audit shows no wrap or unwrap with that version in the window (seed 002: "after the Azure
    /// Key Vault audit logs no longer show any activity that uses the previous version"). The
    /// runner asks the audit at the end of the run and records `scenario.audit`.
    KeyUse {
        vault: String,
        key: String,
        /// The n-th version created (1-based).
        version: u32,
    },
    /// `retention_removed = "ws1"` (or `purged = "ws1"`), optional `min_records`: storage
    /// removed at least that many records (default 1) of the workspace in one removal
    /// (`storage.retention.removed` per table and storage; `storage.purge.completed`).
    Removed {
        workspace: String,
        cause: RemovalCause,
        min_records: u64,
    },
    /// `saved_searches = "ws1"`, `outcome = "readable" | "unreadable"`, optional `min_records`:
    /// a read of the workspace's saved searches returned at least that many (default 0)
    /// (`byos.saved_searches.read`), or was refused because the storage account's key was
    /// (`byos.saved_searches.unreadable`), seed 000 "CMK for queries".
    SavedSearches {
        workspace: String,
        readable: bool,
        min_records: u64,
    },
    /// `bill = "c1"`, `day = 3`, `payer = "c1" | "<workspace>"`, `amount = "1960.00"`: on that
    /// day of the run that payer's line of the cluster's bill is exactly that amount
    /// ([`crate::bill`]).
    Bill {
        cluster: String,
        day: u64,
        payer: String,
        amount_micros: u64,
    },
}

/// Why records were removed (seed 003's lifecycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalCause {
    /// Retention (`storage.retention.removed`).
    Retention,
    /// A completed purge (`storage.purge.completed`).
    Purge,
}

impl RemovalCause {
    /// The expectation key that names it.
    pub fn key(self) -> &'static str {
        match self {
            RemovalCause::Retention => "retention_removed",
            RemovalCause::Purge => "purged",
        }
    }
}

/// When an expectation must hold. Offsets are from the scenario start.
#[derive(Clone, Debug, PartialEq)]
pub enum Timing {
    /// `at = "5h"`: at that instant (a storage state; a query the runner makes then).
    At(Duration),
    /// `by = "4h"`: first true at or before that offset.
    By(Duration),
    /// `within = "1h"` + `after_step = "id"`: first true within that long after the step.
    Within {
        step: String,
        step_offset: Duration,
        within: Duration,
    },
    /// `never = true` (optional `from`, `until`): not once in that window.
    Never { from: Duration, until: Duration },
    /// Step results and `no_loss_before` carry their own time.
    Implicit,
}

/// A query the runner makes for a `query … at` expectation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueryProbe {
    /// When, from the start.
    pub offset: Duration,
    pub workspace: String,
    /// The KQL text to run (`ingest.v1.Query/Kql`, no time range beyond the query's own); `None`:
    /// the plain query of the workspace's Heartbeat rows since the start.
    pub kql: Option<String>,
}

/// One scheduled moment of a run: a step, or the automatic end of a fault with a `duration`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled<'a> {
    pub offset: Duration,
    pub step: &'a Step,
    pub what: ScheduledKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScheduledKind {
    /// Run the step as written.
    Run,
    /// Undo the step's fault (its `duration` has passed).
    Restore(Fault),
}

impl Scenario {
    /// The timeline with automatic fault restorations inserted, in execution order (stable: a
    /// restoration at the same offset as a step runs after the steps written for that offset).
    pub fn schedule(&self) -> Vec<Scheduled<'_>> {
        let mut out: Vec<Scheduled<'_>> = Vec::with_capacity(self.timeline.len());
        for step in &self.timeline {
            out.push(Scheduled {
                offset: step.offset,
                step,
                what: ScheduledKind::Run,
            });
        }
        for step in &self.timeline {
            if let StepKind::Fault {
                fault,
                duration: Some(duration),
            } = &step.what
            {
                if let Some(restore) = fault.restoring() {
                    out.push(Scheduled {
                        offset: step.offset + *duration,
                        step,
                        what: ScheduledKind::Restore(restore),
                    });
                }
            }
        }
        // sort_by_key is stable: runs precede restorations at equal offsets.
        out.sort_by_key(|s| s.offset);
        out
    }

    /// Queries the runner must make for `query` expectations with `at`, sorted by offset, one
    /// per distinct (offset, workspace, KQL text).
    pub fn query_probes(&self) -> Vec<QueryProbe> {
        let mut probes: Vec<QueryProbe> = self
            .expectations
            .iter()
            .filter(|e| e.applies_under(&self.meta.profile_name))
            .filter_map(|e| match (&e.subject, &e.timing) {
                (Subject::Query { workspace, kql, .. }, Timing::At(at)) => Some(QueryProbe {
                    offset: *at,
                    workspace: workspace.clone(),
                    kql: kql.as_ref().map(|k| k.text.clone()),
                }),
                _ => None,
            })
            .collect();
        probes.sort();
        probes.dedup();
        probes
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.timeline.iter().find(|s| s.id.as_deref() == Some(id))
    }

    /// The key a cluster starts with (world clusters only).
    pub fn initial_cluster_key(&self, cluster: &str) -> Option<&KeyRef> {
        self.world
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.key.as_ref())
    }
}

/// `[[sentinel]]`: a workspace onboarded to Microsoft Sentinel when the world stands (seed 002,
/// steps 3–5 done by the runner: the Cosmos DB provider registered, then onboarding; step 4, the
/// access policy for `Azure Cosmos DB`, is the file's own `[[access_policies]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelWorkspace {
    pub workspace: String,
    /// `customer_managed_key` (default true): onboarded under the cluster's key.
    pub customer_managed_key: bool,
    /// One incident every this long from T+0 to the end (like an agent's rate).
    pub incidents_every: Option<Duration>,
    /// The line that declares it (for a refusal at world set-up).
    pub line: usize,
}

/// What a Sentinel step saves (the `item` field of `sentinel.item.stored`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentinelItem {
    Incident,
    AnalyticsRule,
    Watchlist,
}

impl SentinelItem {
    pub fn as_str(self) -> &'static str {
        match self {
            SentinelItem::Incident => "incident",
            SentinelItem::AnalyticsRule => "analytics_rule",
            SentinelItem::Watchlist => "watchlist",
        }
    }
}

/// The states of a workspace's Sentinel store, as its events name them
/// (`sentinel.state.<name>`; `cmksim_sentinel::StateName` is the service's own enum, and a test
/// of the world crate checks the words agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentinelState {
    /// Onboarded and the account key unwraps: everything works.
    Active,
    /// Key access lost and honoured: incidents, configuration changes and reads are refused.
    Revoked,
    /// Access is back; the data returns within the profile's restore delay.
    Restoring,
    /// The Sentinel workspace was deleted.
    Deleted,
}

/// All Sentinel states.
pub const SENTINEL_STATES: [SentinelState; 4] = [
    SentinelState::Active,
    SentinelState::Revoked,
    SentinelState::Restoring,
    SentinelState::Deleted,
];

impl SentinelState {
    pub fn as_str(self) -> &'static str {
        match self {
            SentinelState::Active => "active",
            SentinelState::Revoked => "revoked",
            SentinelState::Restoring => "restoring",
            SentinelState::Deleted => "deleted",
        }
    }

    pub fn from_name(name: &str) -> Option<SentinelState> {
        SENTINEL_STATES.iter().copied().find(|s| s.as_str() == name)
    }
}

/// Whether an incident creation was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentOutcome {
    Stored,
    Refused,
}

impl IncidentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentOutcome::Stored => "stored",
            IncidentOutcome::Refused => "refused",
        }
    }
}

/// A question the runner asks Key Vault's audit log at the end of a run, for a `key_use`
/// expectation: were there wraps or unwraps with this key version in `[from, until]`?
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditProbe {
    pub vault: String,
    pub key: String,
    /// The n-th version (1-based).
    pub version: u32,
    /// Offsets from the start.
    pub from: Duration,
    pub until: Duration,
}

impl Scenario {
    /// The audit questions of `key_use` expectations, sorted, one per distinct window.
    pub fn audit_probes(&self) -> Vec<AuditProbe> {
        let mut probes: Vec<AuditProbe> = self
            .expectations
            .iter()
            .filter(|e| e.applies_under(&self.meta.profile_name))
            .filter_map(|e| match (&e.subject, &e.timing) {
                (
                    Subject::KeyUse {
                        vault,
                        key,
                        version,
                    },
                    Timing::Never { from, until },
                ) => Some(AuditProbe {
                    vault: vault.clone(),
                    key: key.clone(),
                    version: *version,
                    from: *from,
                    until: *until,
                }),
                _ => None,
            })
            .collect();
        probes.sort();
        probes.dedup();
        probes
    }

    /// Whether the scenario uses Sentinel at all (world entries or steps).
    pub fn uses_sentinel(&self) -> bool {
        !self.world.sentinel.is_empty()
            || self.timeline.iter().any(|s| {
                matches!(
                    &s.what,
                    StepKind::Action(
                        Action::RegisterCosmosDb
                            | Action::OnboardSentinel { .. }
                            | Action::CreateSentinelItem { .. }
                            | Action::DeleteSentinelWorkspace { .. }
                    )
                )
            })
    }
}
