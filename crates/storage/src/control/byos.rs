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

/// The two `dataSourceType`s of seed 000's `linkedStorageAccounts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DataSourceType {
    /// Saved searches.
    Query,
    /// Log-alert queries.
    Alerts,
}

impl DataSourceType {
    /// ARM's spelling (`linkedStorageAccounts/Query`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataSourceType::Query => "Query",
            DataSourceType::Alerts => "Alerts",
        }
    }

    /// The ARM name, case-insensitively; anything else is `None`.
    pub fn parse(text: &str) -> Option<DataSourceType> {
        match text.to_ascii_lowercase().as_str() {
            "query" => Some(DataSourceType::Query),
            "alerts" => Some(DataSourceType::Alerts),
            _ => None,
        }
    }
}

/// How a storage account is encrypted at rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "keySource")]
pub enum AccountEncryption {
    /// `Microsoft.Storage`: the Microsoft-managed key, always available.
    MicrosoftKey,
    /// `Microsoft.Keyvault`: the account key is wrapped by this Key Vault key.
    KeyVault { key_id: String },
}

/// Whether the service can use an account's key right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum KeyAccess {
    Accessible,
    /// The last check was refused (key disabled, access removed, key deleted) at `since`.
    Denied {
        since: SimTime,
    },
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
}

impl StorageAccount {
    /// Can what is stored in it be read and written now?
    pub fn usable(&self) -> bool {
        match (&self.encryption, self.key_access) {
            (AccountEncryption::MicrosoftKey, _) => true,
            (AccountEncryption::KeyVault { .. }, KeyAccess::Accessible) => true,
            (AccountEncryption::KeyVault { .. }, KeyAccess::Denied { .. }) => false,
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
    pub query: String,
    pub place: Place,
    pub saved_at: SimTime,
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
    #[error("The storage account {account} cannot be used: its encryption key is not accessible.")]
    KeyNotAccessible { account: String },
    #[error("At most {max} saved queries per workspace.")]
    TooManyQueries { max: u32 },
    #[error("At most {max} storage accounts.")]
    TooManyAccounts { max: usize },
}

impl ByosError {
    /// The Azure code and HTTP status the refusal is answered with.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            ByosError::AccountNotFound(_) => ("ResourceNotFound", 404),
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
    },
    KeyAccessRestored {
        account: String,
    },
}

fn short(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

impl EventKind for ByosEvent {
    fn kind(&self) -> &'static str {
        match self {
            ByosEvent::AccountCreated { .. } => "byos.account.created",
            ByosEvent::Linked { .. } => "byos.linked",
            ByosEvent::SavedSearchesRemoved { .. } => "byos.saved_searches.removed",
            ByosEvent::QuerySaved { .. } => "byos.query.saved",
            ByosEvent::KeyAccessLost { .. } => "byos.key.lost",
            ByosEvent::KeyAccessRestored { .. } => "byos.key.restored",
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
            ByosEvent::SavedSearchesRemoved { workspace, removed } => format!(
                "{removed} saved search(es) removed from workspace {}, as the seed warns: they were not copied to the storage account",
                short(workspace)
            ),
            ByosEvent::QuerySaved { workspace, data_source_type, name, place } => format!(
                "{data_source_type} query {name} of workspace {} saved in {place}",
                short(workspace)
            ),
            ByosEvent::KeyAccessLost { account } => format!(
                "storage account {}: its key can no longer be unwrapped; the queries stored there are unreadable",
                short(account)
            ),
            ByosEvent::KeyAccessRestored { account } => format!(
                "storage account {}: its key is accessible again; its queries are readable",
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
        let described = match &encryption {
            AccountEncryption::MicrosoftKey => "the Microsoft-managed key".to_string(),
            AccountEncryption::KeyVault { key_id } => format!("Key Vault key {key_id}"),
        };
        self.accounts.insert(
            key.clone(),
            StorageAccount {
                id: key.clone(),
                location: location.clone(),
                encryption,
                key_access: KeyAccess::Accessible,
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
        let workspace = workspace.to_ascii_lowercase();
        let place = match self.links.get(&workspace).and_then(|l| l.get(&kind)) {
            None => Place::Workspace,
            Some(account) => {
                let usable = self
                    .accounts
                    .get(account)
                    .is_some_and(StorageAccount::usable);
                if !usable {
                    return Err(ByosError::KeyNotAccessible {
                        account: short(account).to_string(),
                    });
                }
                Place::Account(account.clone())
            }
        };
        let saved = self.queries.entry(workspace.clone()).or_default();
        if saved.len() >= max_per_workspace as usize {
            return Err(ByosError::TooManyQueries {
                max: max_per_workspace,
            });
        }
        let name = cmksim_sim::text::clip(name, SAVED_SEARCH_CHARS_MAX);
        let place_text = match &place {
            Place::Workspace => "the workspace (Microsoft key)".to_string(),
            Place::Account(a) => format!("storage account {}", short(a)),
        };
        saved.push(SavedQuery {
            kind,
            name: name.clone(),
            query: cmksim_sim::text::clip(query, SAVED_SEARCH_CHARS_MAX),
            place,
            saved_at: now,
        });
        Ok(vec![ByosEvent::QuerySaved {
            workspace,
            data_source_type: kind.as_str().to_string(),
            name,
            place: place_text,
        }])
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
            let ok = match &q.place {
                Place::Workspace => true,
                Place::Account(a) => self.accounts.get(a).is_some_and(StorageAccount::usable),
            };
            match ok {
                true => readable.push(q),
                false => unreadable += 1,
            }
        }
        (readable, unreadable)
    }

    /// The result of a key check of `account` (the service's poll): events only on a change.
    pub fn key_checked(
        &mut self,
        now: SimTime,
        account: &str,
        accessible: bool,
    ) -> Result<Vec<ByosEvent>, ByosError> {
        let key = account.to_ascii_lowercase();
        let found = self
            .accounts
            .get_mut(&key)
            .ok_or_else(|| ByosError::AccountNotFound(cmksim_sim::text::echo(account)))?;
        let event = match (found.key_access, accessible) {
            (KeyAccess::Accessible, false) => {
                found.key_access = KeyAccess::Denied { since: now };
                Some(ByosEvent::KeyAccessLost { account: key })
            }
            (KeyAccess::Denied { .. }, true) => {
                found.key_access = KeyAccess::Accessible;
                Some(ByosEvent::KeyAccessRestored { account: key })
            }
            (KeyAccess::Accessible, true) | (KeyAccess::Denied { .. }, false) => None,
        };
        Ok(event.into_iter().collect())
    }

    /// The accounts whose key the service must check (the Key Vault ones), in id order.
    pub fn accounts_to_check(&self) -> Vec<(&str, &str)> {
        self.accounts
            .values()
            .filter_map(|a| match &a.encryption {
                AccountEncryption::KeyVault { key_id } => Some((a.id.as_str(), key_id.as_str())),
                AccountEncryption::MicrosoftKey => None,
            })
            .collect()
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
                key_id: "https://kv.vault.azure.net/keys/q".into(),
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
    fn a_revoked_account_key_makes_its_queries_unreadable_and_unwritable_until_it_returns() {
        let mut s = state();
        s.link(WS, "westeurope", DataSourceType::Query, &[SA.to_string()])
            .unwrap();
        s.save(t(0), MAX, WS, DataSourceType::Query, "a", "Event")
            .unwrap();
        s.save(t(0), MAX, WS, DataSourceType::Query, "b", "Perf")
            .unwrap();
        let lost = s.key_checked(t(5), SA, false).unwrap();
        assert_eq!(lost, vec![ByosEvent::KeyAccessLost { account: SA.into() }]);
        assert!(
            s.key_checked(t(6), SA, false).unwrap().is_empty(),
            "no change, no event"
        );
        assert_eq!(s.list(WS, DataSourceType::Query), (vec![], 2));
        let refused = s
            .save(t(7), MAX, WS, DataSourceType::Query, "c", "Syslog")
            .unwrap_err();
        assert_eq!(refused.code_and_status(), ("KeyVaultAccessDenied", 403));
        let back = s.key_checked(t(9), SA, true).unwrap();
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
            s.save(t(i), 3, WS, DataSourceType::Query, "q", "Event")
                .unwrap();
        }
        assert_eq!(
            s.save(t(4), 3, WS, DataSourceType::Query, "q", "Event")
                .unwrap_err(),
            ByosError::TooManyQueries { max: 3 }
        );
        let e = s
            .create_account(SA, "westeurope", AccountEncryption::MicrosoftKey)
            .unwrap_err();
        assert_eq!(e.code_and_status(), ("Conflict", 409));
    }
}
