//! The Key Vault domain state and the checks every request shares.
//!
//! [`KeyVaultState`] holds every vault (with its keys) in memory; the rules live in
//! `impl KeyVaultState` blocks split by subject ([`crate::vaults`], [`crate::keys`]). Functions
//! take `now` and the caller and return a typed result; none does I/O. A successful mutation
//! leaves behind its *effects* (which records changed, which events happened), which the service
//! drains with [`KeyVaultState::take_effects`] to write through to the store and the event log.
//! A refused request validates everything before it touches anything, so it leaves no effect.

use std::collections::{BTreeMap, BTreeSet};

use crate::errors::{KvError, Plane};
use crate::events::KeyVaultEvent;
use crate::model::{KeyPermission, VaultEntry};

/// Bounds that keep the state finite.
pub const MAX_VAULTS: usize = 10_000;
pub const MAX_KEYS_PER_VAULT: usize = 25_000;
pub const MAX_VERSIONS_PER_KEY: usize = 500;
/// Most objects one `purge_due` call purges; the rest wait for the next tick.
pub const MAX_PURGES_PER_TICK: usize = 1_000;
pub const DAY_MS: i64 = 86_400_000;

/// Who is calling, from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub object_id: String,
    pub tenant_id: String,
    pub app_id: String,
    pub issuer: String,
}

/// A record that changed and must be written through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The vault's properties or deletion (not its keys).
    Vault(String),
    VaultRemoved(String),
    /// One key (all versions) of a vault: (vault, key), lowercase.
    Key(String, String),
    KeyRemoved(String, String),
}

/// What a successful mutation left behind.
#[derive(Debug, Default)]
pub struct Effects {
    pub changes: BTreeSet<Change>,
    pub events: Vec<KeyVaultEvent>,
}

/// Every vault, by lowercase name.
#[derive(Debug, Default)]
pub struct KeyVaultState {
    pub(crate) vaults: BTreeMap<String, VaultEntry>,
    pub(crate) effects: Effects,
}

impl KeyVaultState {
    /// A state rebuilt from stored vaults.
    pub fn from_vaults(vaults: impl IntoIterator<Item = VaultEntry>) -> KeyVaultState {
        KeyVaultState {
            vaults: vaults
                .into_iter()
                .map(|v| (v.vault.name.to_ascii_lowercase(), v))
                .collect(),
            effects: Effects::default(),
        }
    }

    /// Takes the effects of the mutations since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    /// A vault entry (deleted or not), for the store.
    pub fn entry(&self, vault: &str) -> Option<&VaultEntry> {
        self.vaults.get(&vault.to_ascii_lowercase())
    }

    pub(crate) fn record(&mut self, change: Change, event: Option<KeyVaultEvent>) {
        self.effects.changes.insert(change);
        if let Some(event) = event {
            self.effects.events.push(event);
        }
    }

    /// A live (not deleted) vault, or 404.
    pub(crate) fn live_vault(&self, vault: &str) -> Result<&VaultEntry, KvError> {
        match self.vaults.get(&vault.to_ascii_lowercase()) {
            Some(entry) if entry.deleted.is_none() => Ok(entry),
            Some(entry) => Err(KvError::VaultNotFound {
                name: vault.to_string(),
                resource_group: entry.vault.resource_group.clone(),
            }),
            None => Err(KvError::VaultNotFound {
                name: vault.to_string(),
                resource_group: String::new(),
            }),
        }
    }

    /// The tenant check: the token's tenant must be the vault's.
    pub(crate) fn check_tenant(
        entry: &VaultEntry,
        caller: &Caller,
        plane: Plane,
    ) -> Result<(), KvError> {
        if caller.tenant_id == entry.vault.tenant_id {
            Ok(())
        } else {
            Err(KvError::InvalidIssuer {
                plane,
                expected_tenant: entry.vault.tenant_id.clone(),
                found_issuer: caller.issuer.clone(),
            })
        }
    }

    /// Management access: the vault exists and the caller is of its tenant.
    pub(crate) fn manage(&self, caller: &Caller, vault: &str) -> Result<&VaultEntry, KvError> {
        let entry = self.live_vault(vault)?;
        Self::check_tenant(entry, caller, Plane::Management)?;
        Ok(entry)
    }

    /// Data-plane access: the vault exists, the caller is of its tenant and its access policy
    /// grants `permission`.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        vault: &str,
        permission: KeyPermission,
    ) -> Result<&VaultEntry, KvError> {
        let entry = self.live_vault(vault)?;
        Self::check_tenant(entry, caller, Plane::Data)?;
        let granted = entry
            .vault
            .access_policies
            .get(&caller.object_id)
            .is_some_and(|p| {
                p.tenant_id == caller.tenant_id && p.key_permissions.contains(&permission)
            });
        if granted {
            Ok(entry)
        } else {
            Err(KvError::AccessDenied(Box::new(
                crate::errors::AccessDenied {
                    app_id: caller.app_id.clone(),
                    object_id: caller.object_id.clone(),
                    issuer: caller.issuer.clone(),
                    permission: permission.as_str().to_string(),
                    vault: entry.vault.name.clone(),
                    location: entry.vault.location.clone(),
                },
            )))
        }
    }
}
