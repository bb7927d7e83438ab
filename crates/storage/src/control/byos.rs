//! Queries in the customer's own storage (BYOS, seed 000 "CMK for queries"): storage accounts as
//! resources, `linkedStorageAccounts` of type `Query` and `Alerts` on a workspace, and where saved
//! searches and log-alert queries live, and whether they can be read.
//!
//! The rules, with the sentence each comes from (seed 000):
//! - "the service uploads *saved-searches* and *log-alerts* queries to your storage account ...
//!   you control the storage account and the encryption-at-rest policy either using the same key
//!   that you use to encrypt data in Log Analytics cluster, or a different key": a storage
//!   account is encrypted with a Key Vault key or with the Microsoft key ([`AccountEncryption`]).
//! - "Make sure to create your Storage Account in the same region as your Log Analytics
//!   workspace is located": a link to an account in another region is refused.
//! - "You can associate a single storage account to workspace for the purpose of saving queries,
//!   but is can be used fro both *saved-searches* and *log-alerts* queries": one account per
//!   data source type (`storageAccountIds` with exactly one id); the same account may serve both.
//! - "Existing *saves searches* are removed from your workspace": linking `Query` removes the
//!   saved searches kept in the workspace, and the event says how many.
//! - "After the configuration, any new *saved search* query will be saved in your storage" (and
//!   "any new alert query" for `Alerts`): a query saved later lands in the linked account.
//! - Unlinking (`DELETE linkedStorageAccounts/{type}`, azure-mgmt-loganalytics'
//!   `linked_storage_accounts.delete`): the seeds say nothing of it. The simulator's choice:
//!   queries of that kind are saved in the workspace again from then on, and those kept in the
//!   account stay there, in the customer's storage, and are no longer the workspace's (the event
//!   says how many). Deleting a child resource of a locked workspace is refused, as ARM refuses
//!   it under a `CanNotDelete` lock.
//! - The customer controls the key: when the account's Key Vault key cannot be unwrapped (the
//!   service checks it like the cluster's, every `byos.key_check_interval`), what is stored there
//!   can be neither read nor written until access returns. An account under the Microsoft key
//!   is always readable.
//!
//! What is modelled here is where each query lives and whether it is readable; sealing the text
//! under the account key (AEK wrapped by the Key Vault key) is the storage server's, not this
//! module's. Pure functions of their inputs and `now`; every change returns its [`ByosEvent`]s.

use std::collections::BTreeMap;

use cmksim_sim::{EventKind, SimTime};
use serde::{Deserialize, Serialize};

/// At most this many storage accounts.
pub const STORAGE_ACCOUNTS_MAX: usize = 1_000;
/// A saved search's name and query are kept up to this many characters.
pub const SAVED_SEARCH_CHARS_MAX: usize = 10_000;

/// The two `dataSourceType`s of seed 000's `linkedStorageAccounts` (in `cmksim-sim`, so that
/// scenario validation parses them with the same words).
pub use cmksim_sim::governance::DataSourceType;

/// How a storage account is encrypted at rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "keySource")]
pub enum AccountEncryption {
    /// `Microsoft.Storage`: the Microsoft-managed key, always available.
    MicrosoftKey,
    /// `Microsoft.Keyvault`: the account key is wrapped by this Key Vault key (validated as
    /// the account's identity by [`super::keyvault::validate_key_update`], the cluster's rules).
    KeyVault { key: super::KeyRef },
}

impl AccountEncryption {
    /// ARM's `encryption.keySource`.
    pub fn key_source(&self) -> &'static str {
        match self {
            AccountEncryption::MicrosoftKey => KEY_SOURCE_MICROSOFT,
            AccountEncryption::KeyVault { .. } => KEY_SOURCE_KEY_VAULT,
        }
    }
}

/// `encryption.keySource` of an account under the Microsoft-managed key.
pub const KEY_SOURCE_MICROSOFT: &str = "Microsoft.Storage";
/// `encryption.keySource` of an account under a Key Vault key.
pub const KEY_SOURCE_KEY_VAULT: &str = "Microsoft.Keyvault";

/// Whether the service can use an account's key right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum KeyAccess {
    Accessible,
    /// The last check was refused (key disabled, access removed, key deleted) at `since`, with
    /// Key Vault's reason.
    Denied {
        since: SimTime,
        #[serde(default)]
        reason: String,
    },
}

impl KeyAccess {
    /// `accessible` or `denied` (the wire's `key_state`).
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyAccess::Accessible => "accessible",
            KeyAccess::Denied { .. } => "denied",
        }
    }
}

/// The system-assigned identity of a storage account: the principal that unwraps its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountIdentity {
    pub principal_id: String,
    pub tenant_id: String,
}

/// The account's data key as wrapped by its Key Vault key (`wrapKey`, never in plaintext here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrappedAccountKey {
    /// The key version that wrapped it (unwrapKey must name it).
    pub kid_version: String,
    pub algorithm: String,
    pub ciphertext_hex: String,
}

/// A storage account (`Microsoft.Storage/storageAccounts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccount {
    /// Lowercase ARM id.
    pub id: String,
    pub location: String,
    pub encryption: AccountEncryption,
    pub key_access: KeyAccess,
    /// Its system-assigned identity (absent only in model tests).
    #[serde(default)]
    pub identity: Option<AccountIdentity>,
    /// Its data key wrapped by the Key Vault key (`KeyVault` encryption only).
    #[serde(default)]
    pub wrapped_key: Option<WrappedAccountKey>,
    /// How many saved queries were sealed under it: the next one's key-derivation salt, so no
    /// two share a data key.
    #[serde(default)]
    pub sealed_count: u64,
}

impl StorageAccount {
    /// Can what is stored in it be read and written now?
    pub fn usable(&self) -> bool {
        match (&self.encryption, &self.key_access) {
            (AccountEncryption::MicrosoftKey, _) => true,
            (AccountEncryption::KeyVault { .. }, KeyAccess::Accessible) => true,
            (AccountEncryption::KeyVault { .. }, KeyAccess::Denied { .. }) => false,
        }
    }

    /// The refusal while its key is not accessible, naming the account, the key and why.
    pub fn refusal(&self) -> ByosError {
        let key = match &self.encryption {
            AccountEncryption::KeyVault { key } => key.key_id(),
            AccountEncryption::MicrosoftKey => "the Microsoft-managed key".to_string(),
        };
        let state = match &self.key_access {
            KeyAccess::Accessible => "accessible".to_string(),
            KeyAccess::Denied { since, reason } => format!("denied since {since}: {reason}"),
        };
        ByosError::KeyNotAccessible {
            account: short(&self.id).to_string(),
            key,
            state,
        }
    }
}

/// Where a saved query lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "in", content = "account")]
pub enum Place {
    /// In the workspace, under the Microsoft key.
    Workspace,
    /// In the customer's storage account (lowercase ARM id).
    Account(String),
}

/// A saved search or a log-alert query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedQuery {
    pub kind: DataSourceType,
    pub name: String,
    /// The text (with category and display name) in the workspace; empty when `sealed`.
    pub query: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub display_name: String,
    pub place: Place,
    pub saved_at: SimTime,
    /// In a storage account: the query, category and display name sealed under the account's
    /// data key (the storage server seals and opens; this module only keeps it).
    #[serde(default)]
    pub sealed: Option<SealedText>,
}

/// A saved query's content sealed under its account's data key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedText {
    /// The key-derivation salt (the account's `sealed_count` when it was sealed).
    pub seq: u64,
    pub nonce_hex: String,
    pub ciphertext_hex: String,
}

/// A query to save: what the caller sent, and its sealed form when its place is an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewQuery {
    pub kind: DataSourceType,
    pub name: String,
    pub category: String,
    pub display_name: String,
    pub query: String,
    pub sealed: Option<SealedText>,
}

/// Why a BYOS call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ByosError {
    #[error("Storage account {0} was not found.")]
    AccountNotFound(String),
    #[error("Storage account {0} already exists.")]
    AccountExists(String),
    #[error(
        "Exactly one storage account is required for data source type {kind}; {given} were given."
    )]
    OneAccount { kind: &'static str, given: usize },
    #[error("The storage account must be in the workspace's region {workspace_region}; {account} is in {account_region}.")]
    OtherRegion {
        account: String,
        account_region: String,
        workspace_region: String,
    },
    #[error("The storage account {account} cannot be used: its encryption key {key} is not accessible ({state}).")]
    KeyNotAccessible {
        account: String,
        key: String,
        state: String,
    },
    #[error("{0} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")]
    AccountNameInvalid(String),
    #[error("The saved search {name} was not found in workspace {workspace}.")]
    QueryNotFound { workspace: String, name: String },
    #[error("Invalid data source type {0}: it must be Query or Alerts.")]
    DataSourceTypeInvalid(String),
    #[error("The workspace {workspace} has no linked storage account of type {kind}.")]
    LinkNotFound {
        workspace: String,
        kind: &'static str,
    },
    #[error(
        "The storage account {account} changed while the query was being saved; save it again."
    )]
    PlaceChanged { account: String },
    #[error("At most {max} saved queries per workspace.")]
    TooManyQueries { max: u32 },
    #[error("At most {max} storage accounts.")]
    TooManyAccounts { max: usize },
}

impl ByosError {
    /// The Azure code and HTTP status the refusal is answered with.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            ByosError::AccountNotFound(_)
            | ByosError::QueryNotFound { .. }
            | ByosError::LinkNotFound { .. } => ("ResourceNotFound", 404),
            ByosError::AccountNameInvalid(_) => ("AccountNameInvalid", 400),
            ByosError::DataSourceTypeInvalid(_) => ("BadRequest", 400),
            ByosError::PlaceChanged { .. } => ("Conflict", 409),
            ByosError::AccountExists(_) => ("Conflict", 409),
            ByosError::OneAccount { .. } | ByosError::OtherRegion { .. } => ("BadRequest", 400),
            ByosError::KeyNotAccessible { .. } => ("KeyVaultAccessDenied", 403),
            ByosError::TooManyQueries { .. } | ByosError::TooManyAccounts { .. } => {
                ("QuotaExceeded", 409)
            }
        }
    }
}

/// A BYOS event for the timeline (source `storage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ByosEvent {
    AccountCreated {
        account: String,
        location: String,
        key: String,
    },
    Linked {
        workspace: String,
        data_source_type: String,
        account: String,
    },
    /// The link of one type removed; `queries_left` of the workspace's queries of that type
    /// stay in the account.
    Unlinked {
        workspace: String,
        data_source_type: String,
        account: String,
        queries_left: u64,
    },
    /// Seed 000: "Existing saves searches are removed from your workspace".
    SavedSearchesRemoved {
        workspace: String,
        removed: u64,
    },
    QuerySaved {
        workspace: String,
        data_source_type: String,
        name: String,
        place: String,
    },
    KeyAccessLost {
        account: String,
        #[serde(default)]
        reason: String,
    },
    KeyAccessRestored {
        account: String,
    },
    /// A read of a workspace's saved queries of one kind returned `count` of them.
    SavedQueriesRead {
        workspace: String,
        data_source_type: String,
        count: u64,
    },
    /// A read refused because the account they are kept in cannot unwrap its key.
    SavedQueriesUnreadable {
        workspace: String,
        data_source_type: String,
        account: String,
    },
}

/// What a query of that `dataSourceType` is called in a narration.
fn noun(data_source_type: &str) -> &'static str {
    match DataSourceType::parse(data_source_type) {
        Some(DataSourceType::Alerts) => "log-alert query",
        _ => "saved search",
    }
}

fn short(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl EventKind for ByosEvent {
    fn kind(&self) -> &'static str {
        match self {
            ByosEvent::AccountCreated { .. } => "byos.account.created",
            ByosEvent::Linked { .. } => "byos.linked",
            ByosEvent::Unlinked { .. } => "byos.unlinked",
            ByosEvent::SavedSearchesRemoved { .. } => "byos.saved_searches.removed",
            ByosEvent::QuerySaved { .. } => "byos.query.saved",
            ByosEvent::KeyAccessLost { .. } => "byos.key.lost",
            ByosEvent::KeyAccessRestored { .. } => "byos.key.restored",
            ByosEvent::SavedQueriesRead { .. } => "byos.saved_searches.read",
            ByosEvent::SavedQueriesUnreadable { .. } => "byos.saved_searches.unreadable",
        }
    }

    fn narrate(&self) -> String {
        match self {
            ByosEvent::AccountCreated { account, location, key } => {
                format!("storage account {} created in {location}, encrypted with {key}", short(account))
            }
            ByosEvent::Linked { workspace, data_source_type, account } => format!(
                "workspace {} keeps its {} queries in storage account {} from now on",
                short(workspace),
                data_source_type,
                short(account)
            ),
            ByosEvent::Unlinked { workspace, data_source_type, account, queries_left } => format!(
                "workspace {} unlinked from storage account {} ({data_source_type}): from now on a new {} is saved in the workspace; {queries_left} stay in the account, no longer the workspace's",
                short(workspace),
                short(account),
                noun(data_source_type)
            ),
            ByosEvent::SavedSearchesRemoved { workspace, removed } => format!(
                "{removed} saved search(es) removed from workspace {}, as the seed warns: they were not copied to the storage account",
                short(workspace)
            ),
            ByosEvent::QuerySaved { workspace, data_source_type, name, place } => format!(
                "{} {name} of workspace {} saved in {place}",
                noun(data_source_type),
                short(workspace)
            ),
            ByosEvent::KeyAccessLost { account, reason } => format!(
                "storage account {}: its key can no longer be unwrapped ({reason}); the queries stored there are unreadable",
                short(account)
            ),
            ByosEvent::KeyAccessRestored { account } => format!(
                "storage account {}: its key is accessible again; its queries are readable",
                short(account)
            ),
            ByosEvent::SavedQueriesRead { workspace, data_source_type, count } => format!(
                "{count} {}(s) of workspace {} read",
                noun(data_source_type),
                short(workspace)
            ),
            ByosEvent::SavedQueriesUnreadable { workspace, data_source_type, account } => format!(
                "the {}s of workspace {} cannot be read: storage account {} cannot unwrap its key",
                noun(data_source_type),
                short(workspace),
                short(account)
            ),
        }
    }
}

/// Every storage account, link and saved query, persisted with the control state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ByosState {
    /// By lowercase ARM id.
    pub accounts: BTreeMap<String, StorageAccount>,
    /// Lowercase workspace id → type → lowercase account id.
    pub links: BTreeMap<String, BTreeMap<DataSourceType, String>>,
    /// Lowercase workspace id → its saved queries, in the order saved.
    pub queries: BTreeMap<String, Vec<SavedQuery>>,
}

impl ByosState {
    /// Creates a storage account.
    pub fn create_account(
        &mut self,
        id: &str,
        location: &str,
        encryption: AccountEncryption,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let key = id.to_ascii_lowercase();
        if self.accounts.contains_key(&key) {
            return Err(ByosError::AccountExists(cmksim_sim::text::echo(id)));
        }
        if self.accounts.len() >= STORAGE_ACCOUNTS_MAX {
            return Err(ByosError::TooManyAccounts {
                max: STORAGE_ACCOUNTS_MAX,
            });
        }
        let location = cmksim_sim::rules::normalize_region(location);
        let described = describe(&encryption);
        self.accounts.insert(
            key.clone(),
            StorageAccount {
                id: key.clone(),
                location: location.clone(),
                encryption,
                key_access: KeyAccess::Accessible,
                identity: None,
                wrapped_key: None,
                sealed_count: 0,
            },
        );
        Ok(vec![ByosEvent::AccountCreated {
            account: key,
            location,
            key: described,
        }])
    }

    /// `PUT linkedStorageAccounts/{type}` with `storageAccountIds`: exactly one account, in the
    /// workspace's region. Linking `Query` removes the saved searches kept in the workspace.
    pub fn link(
        &mut self,
        workspace: &str,
        workspace_location: &str,
        kind: DataSourceType,
        account_ids: &[String],
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let [account_id] = account_ids else {
            return Err(ByosError::OneAccount {
                kind: kind.as_str(),
                given: account_ids.len(),
            });
        };
        let account_key = account_id.to_ascii_lowercase();
        let account = self
            .accounts
            .get(&account_key)
            .ok_or_else(|| ByosError::AccountNotFound(cmksim_sim::text::echo(account_id)))?;
        let workspace_region = cmksim_sim::rules::normalize_region(workspace_location);
        if account.location != workspace_region {
            return Err(ByosError::OtherRegion {
                account: short(&account_key).to_string(),
                account_region: account.location.clone(),
                workspace_region,
            });
        }
        let workspace = workspace.to_ascii_lowercase();
        let mut events = vec![ByosEvent::Linked {
            workspace: workspace.clone(),
            data_source_type: kind.as_str().to_string(),
            account: account_key.clone(),
        }];
        self.links
            .entry(workspace.clone())
            .or_default()
            .insert(kind, account_key);
        if kind == DataSourceType::Query {
            let saved = self.queries.entry(workspace.clone()).or_default();
            let before = saved.len();
            saved.retain(|q| !(q.kind == DataSourceType::Query && q.place == Place::Workspace));
            let removed = (before - saved.len()) as u64;
            if removed > 0 {
                events.push(ByosEvent::SavedSearchesRemoved { workspace, removed });
            }
        }
        Ok(events)
    }

    /// `DELETE linkedStorageAccounts/{type}`: removes the link of `kind`; the workspace's
    /// queries of that kind kept in the account leave the workspace (they stay in the account).
    /// Returns the account unlinked (`None`: nothing was linked, no change, no event).
    pub fn unlink(
        &mut self,
        workspace: &str,
        kind: DataSourceType,
    ) -> (Option<String>, Vec<ByosEvent>) {
        let workspace = workspace.to_ascii_lowercase();
        let Some(account) = self
            .links
            .get_mut(&workspace)
            .and_then(|links| links.remove(&kind))
        else {
            return (None, Vec::new());
        };
        if self.links.get(&workspace).is_some_and(BTreeMap::is_empty) {
            self.links.remove(&workspace);
        }
        let mut queries_left = 0u64;
        if let Some(saved) = self.queries.get_mut(&workspace) {
            let before = saved.len();
            saved.retain(|q| !(q.kind == kind && q.place == Place::Account(account.clone())));
            queries_left = (before - saved.len()) as u64;
        }
        let event = ByosEvent::Unlinked {
            workspace,
            data_source_type: kind.as_str().to_string(),
            account: account.clone(),
            queries_left,
        };
        (Some(account), vec![event])
    }

    /// The account linked to `workspace` for `kind`, if any.
    pub fn linked(&self, workspace: &str, kind: DataSourceType) -> Option<&StorageAccount> {
        let account = self
            .links
            .get(&workspace.to_ascii_lowercase())?
            .get(&kind)?;
        self.accounts.get(account)
    }

    /// Where a query of `kind` saved now for `workspace` goes: the linked account (refused
    /// while its key is not accessible), else the workspace.
    pub fn place_for(&self, workspace: &str, kind: DataSourceType) -> Result<Place, ByosError> {
        let workspace = workspace.to_ascii_lowercase();
        match self.links.get(&workspace).and_then(|l| l.get(&kind)) {
            None => Ok(Place::Workspace),
            Some(account) => {
                let found = self
                    .accounts
                    .get(account)
                    .ok_or_else(|| ByosError::AccountNotFound(account.clone()))?;
                if !found.usable() {
                    return Err(found.refusal());
                }
                Ok(Place::Account(account.clone()))
            }
        }
    }

    /// Saves a query of `kind` for `workspace`: in the linked account when there is one (refused
    /// while its key is not accessible), else in the workspace.
    pub fn save(
        &mut self,
        now: SimTime,
        max_per_workspace: u32,
        workspace: &str,
        kind: DataSourceType,
        name: &str,
        query: &str,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let place = self.place_for(workspace, kind)?;
        let new = NewQuery {
            kind,
            name: name.to_string(),
            category: String::new(),
            display_name: String::new(),
            query: query.to_string(),
            sealed: None,
        };
        self.save_at(now, max_per_workspace, workspace, place, new)
    }

    /// Saves `new` at `place`, which must still be where [`ByosState::place_for`] puts it (the
    /// caller sealed it for that place). A query of the same kind and name is replaced
    /// (`PUT savedSearches/{id}`); the replacement lands where new queries go now.
    pub fn save_at(
        &mut self,
        now: SimTime,
        max_per_workspace: u32,
        workspace: &str,
        place: Place,
        new: NewQuery,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let current = self.place_for(workspace, new.kind)?;
        if current != place {
            let account = match current {
                Place::Account(a) => short(&a).to_string(),
                Place::Workspace => "(none)".to_string(),
            };
            return Err(ByosError::PlaceChanged { account });
        }
        if let (Place::Account(a), Some(sealed)) = (&place, &new.sealed) {
            if let Some(account) = self.accounts.get_mut(a) {
                account.sealed_count = account.sealed_count.max(sealed.seq + 1);
            }
        }
        let workspace = workspace.to_ascii_lowercase();
        let saved = self.queries.entry(workspace.clone()).or_default();
        let name = cmksim_sim::text::clip(&new.name, SAVED_SEARCH_CHARS_MAX);
        let existing = saved
            .iter()
            .position(|q| q.kind == new.kind && q.name.eq_ignore_ascii_case(&name));
        if existing.is_none() && saved.len() >= max_per_workspace as usize {
            return Err(ByosError::TooManyQueries {
                max: max_per_workspace,
            });
        }
        let place_text = match &place {
            Place::Workspace => "the workspace (Microsoft key)".to_string(),
            Place::Account(a) => format!("storage account {}", short(a)),
        };
        let sealed = new.sealed.is_some();
        let clip = |text: &str| match sealed {
            true => String::new(),
            false => cmksim_sim::text::clip(text, SAVED_SEARCH_CHARS_MAX),
        };
        let entry = SavedQuery {
            kind: new.kind,
            name: name.clone(),
            query: clip(&new.query),
            category: clip(&new.category),
            display_name: clip(&new.display_name),
            place,
            saved_at: now,
            sealed: new.sealed,
        };
        match existing {
            Some(i) => saved[i] = entry,
            None => saved.push(entry),
        }
        Ok(vec![ByosEvent::QuerySaved {
            workspace,
            data_source_type: new.kind.as_str().to_string(),
            name,
            place: place_text,
        }])
    }

    /// One saved query by kind and name (case-insensitive), readable or not.
    pub fn find(&self, workspace: &str, kind: DataSourceType, name: &str) -> Option<&SavedQuery> {
        self.queries
            .get(&workspace.to_ascii_lowercase())?
            .iter()
            .find(|q| q.kind == kind && q.name.eq_ignore_ascii_case(name))
    }

    /// Whether `query` can be read now: `Err` names its account and the key's state.
    pub fn readable(&self, query: &SavedQuery) -> Result<(), ByosError> {
        match &query.place {
            Place::Workspace => Ok(()),
            Place::Account(a) => match self.accounts.get(a) {
                Some(account) if account.usable() => Ok(()),
                Some(account) => Err(account.refusal()),
                None => Err(ByosError::AccountNotFound(a.clone())),
            },
        }
    }

    /// The workspace's saved queries of `kind` that can be read now, and how many cannot (their
    /// account's key is not accessible).
    pub fn list(&self, workspace: &str, kind: DataSourceType) -> (Vec<&SavedQuery>, usize) {
        let workspace = workspace.to_ascii_lowercase();
        let mut readable = Vec::new();
        let mut unreadable = 0;
        for q in self.queries.get(&workspace).into_iter().flatten() {
            if q.kind != kind {
                continue;
            }
            match self.readable(q) {
                Ok(()) => readable.push(q),
                Err(_) => unreadable += 1,
            }
        }
        (readable, unreadable)
    }

    /// The result of a key check of `account` (the service's poll, or an unwrap at use): `Err`
    /// carries Key Vault's reason. Events only on a change.
    pub fn key_checked(
        &mut self,
        now: SimTime,
        account: &str,
        result: Result<(), String>,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let key = account.to_ascii_lowercase();
        let found = self
            .accounts
            .get_mut(&key)
            .ok_or_else(|| ByosError::AccountNotFound(cmksim_sim::text::echo(account)))?;
        let event = match (&found.key_access, result) {
            (KeyAccess::Accessible, Err(reason)) => {
                found.key_access = KeyAccess::Denied {
                    since: now,
                    reason: reason.clone(),
                };
                Some(ByosEvent::KeyAccessLost {
                    account: key,
                    reason,
                })
            }
            (KeyAccess::Denied { .. }, Ok(())) => {
                found.key_access = KeyAccess::Accessible;
                Some(ByosEvent::KeyAccessRestored { account: key })
            }
            (KeyAccess::Accessible, Ok(())) | (KeyAccess::Denied { .. }, Err(_)) => None,
        };
        Ok(event.into_iter().collect())
    }

    /// The accounts whose key the service must check (the Key Vault ones), in id order.
    pub fn accounts_to_check(&self) -> Vec<(&str, &super::KeyRef)> {
        self.accounts
            .values()
            .filter_map(|a| match &a.encryption {
                AccountEncryption::KeyVault { key } => Some((a.id.as_str(), key)),
                AccountEncryption::MicrosoftKey => None,
            })
            .collect()
    }
}

fn describe(encryption: &AccountEncryption) -> String {
    match encryption {
        AccountEncryption::MicrosoftKey => "the Microsoft-managed key".to_string(),
        AccountEncryption::KeyVault { key } => format!("Key Vault key {}", key.key_id()),
    }
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}`.
pub fn storage_account_id(subscription: &str, resource_group: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{name}")
}

/// Azure's storage account name rule (3 to 24 lowercase letters and digits), in `cmksim-sim`
/// so that scenario validation applies the same one.
pub use cmksim_sim::governance::is_valid_storage_account_name as is_valid_account_name;

/// A BYOS call refused by BYOS's own rules or because its workspace or key is refused by the
/// control plane's (workspace not found, the cluster's key validation).
#[derive(Debug, thiserror::Error)]
pub enum ByosOrControlError {
    #[error(transparent)]
    Byos(#[from] ByosError),
    #[error(transparent)]
    Control(#[from] super::ControlError),
}

/// The control plane's BYOS calls: they find the workspace (its id and region) and validate an
/// account's Key Vault key with the cluster's rules, then let [`ByosState`] decide.
impl super::ControlPlane {
    /// The BYOS state (accounts, links, saved queries).
    pub fn byos(&self) -> &ByosState {
        &self.state.byos
    }

    /// Creates a storage account under the Microsoft key with its system-assigned identity.
    pub fn create_storage_account(
        &mut self,
        subscription: &str,
        resource_group: &str,
        name: &str,
        location: &str,
        identity: AccountIdentity,
    ) -> Result<Vec<ByosEvent>, ByosOrControlError> {
        self.validate_storage_account(name, location)?;
        let id = storage_account_id(subscription, resource_group, name);
        let events =
            self.state
                .byos
                .create_account(&id, location, AccountEncryption::MicrosoftKey)?;
        if let Some(account) = self.state.byos.accounts.get_mut(&id.to_ascii_lowercase()) {
            account.identity = Some(identity);
        }
        Ok(events)
    }

    /// The checks of a create that need no Key Vault: the name and the region.
    pub fn validate_storage_account(
        &self,
        name: &str,
        location: &str,
    ) -> Result<(), ByosOrControlError> {
        if !is_valid_account_name(name) {
            return Err(ByosError::AccountNameInvalid(cmksim_sim::text::echo(name)).into());
        }
        if location.trim().is_empty() {
            return Err(super::ControlError::BadRequestBody("location is required".into()).into());
        }
        Ok(())
    }

    /// Validates a Key Vault key for the account `id` with the facts gathered as its identity
    /// (the cluster's rules and messages, [`super::keyvault::validate_key_update`]); returns
    /// the key to store.
    pub fn validate_account_key(
        &self,
        id: &str,
        input: &super::KeyVaultPropertiesInput,
        facts: &super::KeyVaultFacts,
    ) -> Result<super::KeyRef, ByosOrControlError> {
        let account = self.storage_account(id)?;
        let tenant = account
            .identity
            .as_ref()
            .map(|i| i.tenant_id.as_str())
            .unwrap_or_default();
        Ok(super::keyvault::validate_key_update(
            &self.profile,
            &account.location,
            tenant,
            input,
            facts,
        )?)
    }

    /// Puts the account under `key`, its data key wrapped as `wrapped`; the key is accessible.
    pub fn set_account_key(
        &mut self,
        id: &str,
        key: super::KeyRef,
        wrapped: WrappedAccountKey,
    ) -> Result<Vec<ByosEvent>, ByosOrControlError> {
        let account = self
            .state
            .byos
            .accounts
            .get_mut(&id.to_ascii_lowercase())
            .ok_or_else(|| ByosError::AccountNotFound(cmksim_sim::text::echo(id)))?;
        let encryption = AccountEncryption::KeyVault { key };
        let event = ByosEvent::AccountCreated {
            account: account.id.clone(),
            location: account.location.clone(),
            key: describe(&encryption),
        };
        account.encryption = encryption;
        account.wrapped_key = Some(wrapped);
        account.key_access = KeyAccess::Accessible;
        Ok(vec![event])
    }

    /// A storage account by ARM id.
    pub fn storage_account(&self, id: &str) -> Result<&StorageAccount, ByosError> {
        self.state
            .byos
            .accounts
            .get(&id.to_ascii_lowercase())
            .ok_or_else(|| ByosError::AccountNotFound(cmksim_sim::text::echo(id)))
    }

    /// `PUT linkedStorageAccounts/{type}` on a workspace; returns how many saved searches the
    /// link removed with the events.
    pub fn link_storage_account(
        &mut self,
        workspace: &super::ResourceName,
        kind: DataSourceType,
        account_ids: &[String],
    ) -> Result<(u64, Vec<ByosEvent>), ByosOrControlError> {
        let ws = self.get_workspace(workspace)?;
        let (id, location) = (ws.id.clone(), ws.location.clone());
        let events = self.state.byos.link(&id, &location, kind, account_ids)?;
        let removed = events
            .iter()
            .map(|e| match e {
                ByosEvent::SavedSearchesRemoved { removed, .. } => *removed,
                _ => 0,
            })
            .sum();
        Ok((removed, events))
    }

    /// `DELETE linkedStorageAccounts/{type}` on a workspace (refused while it is locked):
    /// the account unlinked (`None`: none was) and how many queries stay behind in it.
    pub fn unlink_storage_account(
        &mut self,
        workspace: &super::ResourceName,
        kind: DataSourceType,
    ) -> Result<(Option<String>, u64, Vec<ByosEvent>), ByosOrControlError> {
        let id = self.check_not_locked(workspace, "delete")?;
        let (account, events) = self.state.byos.unlink(&id, kind);
        let left = events
            .iter()
            .map(|e| match e {
                ByosEvent::Unlinked { queries_left, .. } => *queries_left,
                _ => 0,
            })
            .sum();
        Ok((account, left, events))
    }

    /// The workspace's lowercase id (for the BYOS state's keys), or its not-found error.
    pub fn byos_workspace(
        &self,
        workspace: &super::ResourceName,
    ) -> Result<String, ByosOrControlError> {
        Ok(self.get_workspace(workspace)?.id.to_ascii_lowercase())
    }

    /// Saves `new` at `place` for the workspace (see [`ByosState::save_at`]).
    pub fn save_query(
        &mut self,
        now: SimTime,
        workspace: &str,
        place: Place,
        new: NewQuery,
    ) -> Result<Vec<ByosEvent>, ByosOrControlError> {
        let max = self.profile.byos.saved_searches_per_workspace_max;
        Ok(self.state.byos.save_at(now, max, workspace, place, new)?)
    }

    /// Records the result of a check of an account's key.
    pub fn account_key_checked(
        &mut self,
        now: SimTime,
        account: &str,
        result: Result<(), String>,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        self.state.byos.key_checked(now, account, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws1";
    const SA: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/queries1";
    const SA_MMK: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/plain1";
    const MAX: u32 = 250;

    fn t(minutes: u64) -> SimTime {
        SimTime::DEFAULT_EPOCH.add(std::time::Duration::from_secs(minutes * 60))
    }

    fn state() -> ByosState {
        let mut s = ByosState::default();
        s.create_account(
            SA,
            "West Europe",
            AccountEncryption::KeyVault {
                key: crate::control::KeyRef {
                    key_vault_uri: "https://kv.vault.azure.net/".into(),
                    key_name: "q".into(),
                    key_version: None,
                },
            },
        )
        .unwrap();
        s.create_account(SA_MMK, "westeurope", AccountEncryption::MicrosoftKey)
            .unwrap();
        s
    }

    #[test]
    fn the_link_rules_of_the_seed() {
        let mut s = state();
        s.create_account(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/far",
            "eastus",
            AccountEncryption::MicrosoftKey,
        )
        .unwrap();
        type Case<'a> = (Vec<&'a str>, Result<(), (&'a str, u16)>);
        let cases: Vec<Case> = vec![
            (vec![], Err(("BadRequest", 400))),
            (vec![SA, SA_MMK], Err(("BadRequest", 400))),
            (
                vec!["/subscriptions/s/resourcegroups/rg/providers/microsoft.storage/storageaccounts/far"],
                Err(("BadRequest", 400)),
            ),
            (vec!["/subscriptions/s/x/nope"], Err(("ResourceNotFound", 404))),
            (vec![SA], Ok(())),
        ];
        for (ids, want) in cases {
            let ids: Vec<String> = ids.into_iter().map(String::from).collect();
            let got = s
                .link(WS, "westeurope", DataSourceType::Query, &ids)
                .map(drop)
                .map_err(|e| e.code_and_status());
            assert_eq!(got, want, "{ids:?}");
        }
        // One account may serve both types (seed 000).
        s.link(WS, "westeurope", DataSourceType::Alerts, &[SA.to_string()])
            .unwrap();
        assert_eq!(s.links[WS].len(), 2);
        // The control state is persisted as JSON: the state must round-trip.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ByosState>(&json).unwrap(), s);
    }

    #[test]
    fn linking_query_removes_the_workspaces_saved_searches_and_new_ones_go_to_the_account() {
        let mut s = state();
        s.save(
            t(0),
            MAX,
            WS,
            DataSourceType::Query,
            "errors",
            "Event | where Level == 1",
        )
        .unwrap();
        s.save(
            t(1),
            MAX,
            WS,
            DataSourceType::Query,
            "slow",
            "Perf | take 5",
        )
        .unwrap();
        s.save(
            t(2),
            MAX,
            WS,
            DataSourceType::Alerts,
            "cpu",
            "Perf | where v > 90",
        )
        .unwrap();
        let events = s
            .link(WS, "westeurope", DataSourceType::Query, &[SA.to_string()])
            .unwrap();
        assert_eq!(
            events[1],
            ByosEvent::SavedSearchesRemoved {
                workspace: WS.into(),
                removed: 2
            }
        );
        assert!(s.list(WS, DataSourceType::Query).0.is_empty());
        assert_eq!(s.list(WS, DataSourceType::Alerts).0.len(), 1, "alerts stay");
        s.save(
            t(3),
            MAX,
            WS,
            DataSourceType::Query,
            "new",
            "Heartbeat | count",
        )
        .unwrap();
        let (readable, _) = s.list(WS, DataSourceType::Query);
        assert_eq!(readable[0].place, Place::Account(SA.into()));
    }

    #[test]
    fn unlinking_leaves_the_accounts_queries_there_and_new_ones_go_to_the_workspace() {
        let mut s = state();
        assert_eq!(
            s.unlink(WS, DataSourceType::Query),
            (None, Vec::new()),
            "nothing linked: no change, no event"
        );
        s.link(WS, "westeurope", DataSourceType::Query, &[SA.to_string()])
            .unwrap();
        s.link(WS, "westeurope", DataSourceType::Alerts, &[SA.to_string()])
            .unwrap();
        for name in ["a", "b"] {
            s.save(t(0), MAX, WS, DataSourceType::Query, name, "Event")
                .unwrap();
        }
        s.save(t(0), MAX, WS, DataSourceType::Alerts, "cpu", "Perf")
            .unwrap();
        let (account, events) = s.unlink(&WS.to_ascii_uppercase(), DataSourceType::Query);
        assert_eq!(account.as_deref(), Some(SA));
        assert_eq!(
            events,
            vec![ByosEvent::Unlinked {
                workspace: WS.into(),
                data_source_type: "Query".into(),
                account: SA.into(),
                queries_left: 2
            }]
        );
        assert_eq!(events[0].kind(), "byos.unlinked");
        assert_eq!(s.list(WS, DataSourceType::Query), (vec![], 0));
        assert!(s.linked(WS, DataSourceType::Query).is_none());
        // The other type keeps its link and its queries.
        assert_eq!(s.list(WS, DataSourceType::Alerts).0.len(), 1);
        assert!(s.linked(WS, DataSourceType::Alerts).is_some());
        s.save(t(1), MAX, WS, DataSourceType::Query, "c", "Syslog")
            .unwrap();
        assert_eq!(
            s.list(WS, DataSourceType::Query).0[0].place,
            Place::Workspace
        );
        assert_eq!(s.unlink(WS, DataSourceType::Query).0, None, "twice");
        s.unlink(WS, DataSourceType::Alerts);
        assert!(s.links.is_empty(), "no empty entry left behind");
    }

    #[test]
    fn a_revoked_account_key_makes_its_queries_unreadable_and_unwritable_until_it_returns() {
        let mut s = state();
        s.link(WS, "westeurope", DataSourceType::Query, &[SA.to_string()])
            .unwrap();
        s.save(t(0), MAX, WS, DataSourceType::Query, "a", "Event")
            .unwrap();
        s.save(t(0), MAX, WS, DataSourceType::Query, "b", "Perf")
            .unwrap();
        let lost = s.key_checked(t(5), SA, Err("disabled".into())).unwrap();
        assert_eq!(
            lost,
            vec![ByosEvent::KeyAccessLost {
                account: SA.into(),
                reason: "disabled".into()
            }]
        );
        assert!(
            s.key_checked(t(6), SA, Err("disabled".into()))
                .unwrap()
                .is_empty(),
            "no change, no event"
        );
        assert_eq!(s.list(WS, DataSourceType::Query), (vec![], 2));
        let refused = s
            .save(t(7), MAX, WS, DataSourceType::Query, "c", "Syslog")
            .unwrap_err();
        assert_eq!(refused.code_and_status(), ("KeyVaultAccessDenied", 403));
        let back = s.key_checked(t(9), SA, Ok(())).unwrap();
        assert_eq!(
            back,
            vec![ByosEvent::KeyAccessRestored { account: SA.into() }]
        );
        assert_eq!(s.list(WS, DataSourceType::Query).0.len(), 2);
        // An account under the Microsoft key never needs a check.
        assert_eq!(s.accounts_to_check().len(), 1);
    }

    #[test]
    fn bounds_hold() {
        let mut s = state();
        for i in 0..3 {
            s.save(
                t(i),
                3,
                WS,
                DataSourceType::Query,
                &format!("q{i}"),
                "Event",
            )
            .unwrap();
        }
        assert_eq!(
            s.save(t(4), 3, WS, DataSourceType::Query, "q3", "Event")
                .unwrap_err(),
            ByosError::TooManyQueries { max: 3 }
        );
        // PUT savedSearches/{id} of an existing id replaces it: no new entry, within the bound.
        s.save(t(5), 3, WS, DataSourceType::Query, "Q1", "Perf")
            .unwrap();
        let (readable, _) = s.list(WS, DataSourceType::Query);
        assert_eq!(readable.len(), 3);
        assert_eq!(readable[1].query, "Perf");
        let e = s
            .create_account(SA, "westeurope", AccountEncryption::MicrosoftKey)
            .unwrap_err();
        assert_eq!(e.code_and_status(), ("Conflict", 409));
    }
}
