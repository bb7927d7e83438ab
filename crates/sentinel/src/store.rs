//! Sentinel's durable store (its "Cosmos DB"): one sled database holding, per onboarded
//! workspace, a record with the account key — wrapped by the customer's key for a CMK workspace,
//! as the Microsoft-managed key's stand-in otherwise — and the items (incidents, analytics
//! rules, watchlists) sealed with AES-256-GCM under that account key.
//!
//! Why an account key and not the customer's key itself: that is how the seed's "Data saved by
//! Azure Sentinel in storage resources other than Log Analytics will also be encrypted using the
//! customer managed key" works in Cosmos DB — the vault only ever wraps and unwraps a small key,
//! and a revocation makes every item unreadable at once without touching it ("Previously stored
//! data will not be deleted but will remain inaccessible").
//!
//! Under the Microsoft-managed key the simulator keeps the account key in the record itself: the
//! Microsoft side of key management is not modelled, only that no customer key is involved.
//!
//! Every write is flushed before it returns (sled's background flusher is off, ARCHITECTURE).
//! Keys of the `items` tree are `<workspace key>\0<kind>\0<id>`, so one workspace's items are one
//! prefix scan in id order.

use std::path::Path;

use cmksim_storage::keyloop::{KeyRef, KeyTarget, KeyVersionSpec, WrappedAek};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};

use crate::machine::State;

/// Most items one workspace may hold (a bound on the store and on one listing).
pub const MAX_ITEMS_PER_WORKSPACE: usize = 10_000;
/// Most bytes of one item's JSON body.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// The account key's length (AES-256).
pub const ACCOUNT_KEY_BYTES: usize = 32;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sentinel store: {0}")]
    Sled(#[from] sled::Error),
    #[error("sentinel store record: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(
        "sentinel store: an item of workspace {workspace} cannot be decrypted with its account key"
    )]
    Unsealable { workspace: String },
    #[error("sentinel store: {0}")]
    Invalid(String),
}

/// The kinds of Sentinel items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Incident,
    AnalyticsRule,
    Watchlist,
}

impl ItemKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Incident => "incident",
            ItemKind::AnalyticsRule => "analytics_rule",
            ItemKind::Watchlist => "watchlist",
        }
    }

    /// The kind named `name` (`incident`, `analytics_rule`, `watchlist`).
    pub fn parse(name: &str) -> Option<ItemKind> {
        match name {
            "incident" => Some(ItemKind::Incident),
            "analytics_rule" => Some(ItemKind::AnalyticsRule),
            "watchlist" => Some(ItemKind::Watchlist),
            _ => None,
        }
    }
}

/// How the account key is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredAccountKey {
    /// Wrapped by the customer's key (RSA-OAEP-256) at `wrapped_version`.
    Cmk {
        vault_name: String,
        key_name: String,
        /// The version the cluster named (empty: versionless).
        version: String,
        wrapped_version: String,
        algorithm: String,
        wrapped_hex: String,
    },
    /// The Microsoft-managed key's stand-in: the account key itself.
    Mmk { key_hex: String },
}

impl StoredAccountKey {
    /// The customer's key this account key is wrapped by (`None` under the Microsoft-managed
    /// key). Read from the record's names alone: a damaged wrapping does not turn a CMK
    /// workspace into an MMK one.
    pub fn target(&self) -> Option<KeyTarget> {
        match self {
            StoredAccountKey::Cmk {
                vault_name,
                key_name,
                version,
                wrapped_version,
                ..
            } => Some(KeyTarget {
                key: KeyRef {
                    vault_name: vault_name.clone(),
                    key_name: key_name.clone(),
                    version: if version.is_empty() {
                        KeyVersionSpec::Versionless
                    } else {
                        KeyVersionSpec::Pinned(version.clone())
                    },
                },
                wrapped_version: wrapped_version.clone(),
            }),
            StoredAccountKey::Mmk { .. } => None,
        }
    }

    /// The wrapped account key as the vault access takes it (`None` under the Microsoft-managed
    /// key); an error when the stored wrapping is not hex.
    pub fn wrapped(&self) -> Result<Option<WrappedAek>, StoreError> {
        let (
            Some(target),
            StoredAccountKey::Cmk {
                algorithm,
                wrapped_hex,
                ..
            },
        ) = (self.target(), self)
        else {
            return Ok(None);
        };
        let ciphertext = hex::decode(wrapped_hex).map_err(|_| {
            StoreError::Invalid(format!(
                "the stored wrapped account key ({} characters) is not hex",
                wrapped_hex.len()
            ))
        })?;
        Ok(Some(WrappedAek {
            target,
            algorithm: algorithm.clone(),
            ciphertext,
        }))
    }

    /// The record of an account key wrapped by the vault.
    pub fn from_wrapped(wrapped: &WrappedAek) -> StoredAccountKey {
        StoredAccountKey::Cmk {
            vault_name: wrapped.target.key.vault_name.clone(),
            key_name: wrapped.target.key.key_name.clone(),
            version: wrapped.target.key.requested_version().to_string(),
            wrapped_version: wrapped.target.wrapped_version.clone(),
            algorithm: wrapped.algorithm.clone(),
            wrapped_hex: hex::encode(&wrapped.ciphertext),
        }
    }
}

/// One onboarded workspace, as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace_name: String,
    /// The tenant whose Cosmos DB principal unwraps the account key.
    pub tenant_id: String,
    pub cluster: String,
    pub onboarded_at_ms: i64,
    pub account_key: StoredAccountKey,
    /// The state of the machine, so that a restart does not forget a revocation.
    pub state: State,
}

impl WorkspaceRecord {
    /// The store key of this workspace.
    pub fn key(&self) -> String {
        workspace_key(
            &self.subscription_id,
            &self.resource_group,
            &self.workspace_name,
        )
    }
}

/// The store key of a workspace (case-insensitive, as ARM names are).
pub fn workspace_key(subscription_id: &str, resource_group: &str, workspace: &str) -> String {
    format!("{subscription_id}/{resource_group}/{workspace}").to_ascii_lowercase()
}

/// A tenant's Azure Cosmos DB principal, with the secret Sentinel acts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosmosPrincipalRecord {
    pub tenant_id: String,
    pub object_id: String,
    pub app_id: String,
    pub secret: String,
}

/// The sled database.
pub struct Store {
    db: sled::Db,
    workspaces: sled::Tree,
    items: sled::Tree,
    meta: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = cmksim_sim::durable::open(&dir.join("sentinel.sled"))?;
        Ok(Store {
            workspaces: db.open_tree("workspaces")?,
            items: db.open_tree("items")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    /// Every workspace record, in key order.
    pub fn workspaces(&self) -> Result<Vec<WorkspaceRecord>, StoreError> {
        self.workspaces
            .iter()
            .map(|entry| {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .collect()
    }

    /// One workspace record.
    pub fn workspace(&self, key: &str) -> Result<Option<WorkspaceRecord>, StoreError> {
        match self.workspaces.get(key.as_bytes())? {
            Some(value) => Ok(Some(serde_json::from_slice(&value)?)),
            None => Ok(None),
        }
    }

    /// Writes a workspace record (flushed).
    pub fn put_workspace(&self, record: &WorkspaceRecord) -> Result<(), StoreError> {
        self.workspaces
            .insert(record.key().as_bytes(), serde_json::to_vec(record)?)?;
        self.flush()
    }

    /// True when `namespace` is registered for `subscription_id`.
    pub fn provider_registered(
        &self,
        subscription_id: &str,
        namespace: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .meta
            .contains_key(provider_key(subscription_id, namespace))?)
    }

    /// Registers `namespace` for `subscription_id` (flushed).
    pub fn register_provider(
        &self,
        subscription_id: &str,
        namespace: &str,
    ) -> Result<(), StoreError> {
        self.meta
            .insert(provider_key(subscription_id, namespace), &b"Registered"[..])?;
        self.flush()
    }

    /// A tenant's Cosmos DB principal.
    pub fn cosmos_principal(
        &self,
        tenant_id: &str,
    ) -> Result<Option<CosmosPrincipalRecord>, StoreError> {
        match self.meta.get(format!("cosmos/{tenant_id}"))? {
            Some(value) => Ok(Some(serde_json::from_slice(&value)?)),
            None => Ok(None),
        }
    }

    /// Keeps a tenant's Cosmos DB principal (flushed).
    pub fn put_cosmos_principal(&self, record: &CosmosPrincipalRecord) -> Result<(), StoreError> {
        self.meta.insert(
            format!("cosmos/{}", record.tenant_id),
            serde_json::to_vec(record)?,
        )?;
        self.flush()
    }

    /// Seals `body` under `account_key` and stores it (flushed). `nonce` must never repeat for
    /// one account key: the caller draws it from its random source.
    pub fn put_item(
        &self,
        workspace: &str,
        kind: ItemKind,
        id: &str,
        body: &str,
        account_key: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<(), StoreError> {
        if body.len() > MAX_ITEM_BYTES {
            return Err(StoreError::Invalid(format!(
                "an item body is {} bytes, over the {MAX_ITEM_BYTES}-byte limit",
                body.len()
            )));
        }
        let key = item_key(workspace, kind, id);
        if !self.items.contains_key(&key)?
            && self.items.scan_prefix(item_prefix(workspace)).count() >= MAX_ITEMS_PER_WORKSPACE
        {
            return Err(StoreError::Invalid(format!(
                "workspace {workspace} holds {MAX_ITEMS_PER_WORKSPACE} items, the limit"
            )));
        }
        let sealing = sealing_key(account_key)?;
        let mut sealed = body.as_bytes().to_vec();
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key.as_slice()),
                &mut sealed,
            )
            .map_err(|_| StoreError::Invalid("sealing an item failed".to_string()))?;
        let mut value = nonce.to_vec();
        value.extend_from_slice(&sealed);
        self.items.insert(key, value)?;
        self.flush()
    }

    /// The items of a workspace (of one kind, or all), opened with `account_key`, in key order.
    pub fn items(
        &self,
        workspace: &str,
        kind: Option<ItemKind>,
        account_key: &[u8],
    ) -> Result<Vec<(ItemKind, String, String)>, StoreError> {
        let opening = sealing_key(account_key)?;
        let mut out = Vec::new();
        for entry in self
            .items
            .scan_prefix(item_prefix(workspace))
            .take(MAX_ITEMS_PER_WORKSPACE)
        {
            let (key, value) = entry?;
            let mut parts = key.splitn(3, |b| *b == 0);
            let (_, item_kind, id) = (parts.next(), parts.next(), parts.next());
            let item_kind = item_kind
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(ItemKind::parse)
                .ok_or_else(|| StoreError::Invalid("an item key without a kind".to_string()))?;
            if kind.is_some_and(|k| k != item_kind) {
                continue;
            }
            let id = String::from_utf8_lossy(id.unwrap_or_default()).to_string();
            let unsealable = || StoreError::Unsealable {
                workspace: workspace.to_string(),
            };
            if value.len() < NONCE_LEN {
                return Err(unsealable());
            }
            let (nonce, sealed) = value.split_at(NONCE_LEN);
            let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| unsealable())?;
            let mut sealed = sealed.to_vec();
            let plain = opening
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(&key[..]),
                    &mut sealed,
                )
                .map_err(|_| unsealable())?;
            out.push((item_kind, id, String::from_utf8_lossy(plain).to_string()));
        }
        Ok(out)
    }

    /// The number of items a workspace holds (readable or not).
    pub fn item_count(&self, workspace: &str) -> u64 {
        self.items.scan_prefix(item_prefix(workspace)).count() as u64
    }

    /// Removes a workspace's items (the Sentinel workspace was deleted); returns how many.
    pub fn delete_items(&self, workspace: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        for entry in self
            .items
            .scan_prefix(item_prefix(workspace))
            .take(MAX_ITEMS_PER_WORKSPACE)
        {
            let (key, _) = entry?;
            self.items.remove(key)?;
            removed += 1;
        }
        self.flush()?;
        Ok(removed)
    }
}

fn provider_key(subscription_id: &str, namespace: &str) -> String {
    format!("provider/{subscription_id}/{namespace}").to_ascii_lowercase()
}

fn item_prefix(workspace: &str) -> Vec<u8> {
    let mut k = workspace.as_bytes().to_vec();
    k.push(0);
    k
}

fn item_key(workspace: &str, kind: ItemKind, id: &str) -> Vec<u8> {
    let mut k = item_prefix(workspace);
    k.extend_from_slice(kind.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn sealing_key(account_key: &[u8]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, account_key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Invalid("the account key is not 32 bytes".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_open_only_with_their_account_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = [7u8; ACCOUNT_KEY_BYTES];
        store
            .put_item(
                "ws",
                ItemKind::Incident,
                "i1",
                "{\"title\":\"x\"}",
                &key,
                [1; NONCE_LEN],
            )
            .unwrap();
        store
            .put_item("ws", ItemKind::Watchlist, "w1", "{}", &key, [2; NONCE_LEN])
            .unwrap();
        let all = store.items("ws", None, &key).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0],
            (ItemKind::Incident, "i1".into(), "{\"title\":\"x\"}".into())
        );
        let incidents = store.items("ws", Some(ItemKind::Watchlist), &key).unwrap();
        assert_eq!(incidents.len(), 1);
        assert!(matches!(
            store.items("ws", None, &[8u8; ACCOUNT_KEY_BYTES]),
            Err(StoreError::Unsealable { .. })
        ));
        assert_eq!(store.item_count("ws"), 2);
        assert_eq!(store.delete_items("ws").unwrap(), 2);
        assert_eq!(store.item_count("ws"), 0);
    }

    #[test]
    fn an_oversized_item_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let body = "x".repeat(MAX_ITEM_BYTES + 1);
        assert!(store
            .put_item(
                "ws",
                ItemKind::Incident,
                "i",
                &body,
                &[0; 32],
                [0; NONCE_LEN]
            )
            .is_err());
    }
}
