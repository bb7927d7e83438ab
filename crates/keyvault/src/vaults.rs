//! Vault management rules: create, update, delete (soft), recover, purge, access policies.
//!
//! These follow ARM's Key Vault resource: names are global and case-insensitive, a soft-deleted
//! vault keeps its name reserved, soft delete and purge protection cannot be turned off once on,
//! retention is 7–90 days (objects already deleted keep the purge date they were given).
//! Management calls need a token of the vault's tenant; access policies do not apply to them (as
//! in Azure, where ARM RBAC governs them).

use std::collections::BTreeMap;

use cmksim_sim::SimTime;

use crate::backend::KeyBackend;
use crate::errors::{KvError, Plane};
use crate::events::KeyVaultEvent;
use crate::model::{AccessPolicy, Deletion, Sku, Vault, VaultEntry};
use crate::state::{Caller, Change, KeyVaultState, DAY_MS, MAX_VAULTS};
use crate::validate;

/// A vault creation request, already decoded.
#[derive(Clone, Debug)]
pub struct NewVault {
    pub name: String,
    pub location: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub sku: Sku,
    pub enable_soft_delete: Option<bool>,
    pub soft_delete_retention_days: Option<u32>,
    pub enable_purge_protection: bool,
    pub access_policies: Vec<AccessPolicy>,
}

/// A vault update request.
#[derive(Clone, Debug, Default)]
pub struct VaultPatch {
    pub enable_soft_delete: Option<bool>,
    pub enable_purge_protection: Option<bool>,
    pub soft_delete_retention_days: Option<u32>,
}

impl KeyVaultState {
    /// Creates a vault in the caller's tenant.
    pub fn create_vault(
        &mut self,
        now: SimTime,
        caller: &Caller,
        req: NewVault,
    ) -> Result<Vault, KvError> {
        validate::vault_name(&req.name)?;
        validate::text("location", &req.location, true)?;
        if !cmksim_sim::rules::is_azure_region(&req.location) {
            return Err(KvError::LocationNotAvailable {
                location: req.location.clone(),
            });
        }
        validate::text("subscriptionId", &req.subscription_id, false)?;
        validate::text("resourceGroup", &req.resource_group, false)?;
        let tenant_id = if req.tenant_id.is_empty() {
            caller.tenant_id.clone()
        } else {
            req.tenant_id.clone()
        };
        if tenant_id != caller.tenant_id {
            return Err(KvError::InvalidIssuer {
                plane: Plane::Management,
                expected_tenant: tenant_id,
                found_issuer: caller.issuer.clone(),
            });
        }
        let retention = validate::retention_days(
            req.soft_delete_retention_days
                .unwrap_or(validate::RETENTION_DEFAULT_DAYS),
        )?;
        let soft_delete = req.enable_soft_delete.unwrap_or(true);
        if req.enable_purge_protection && !soft_delete {
            return Err(KvError::BadRequest {
                message:
                    "Purge protection can only be enabled on a vault with soft delete enabled."
                        .into(),
            });
        }
        let mut policies = BTreeMap::new();
        for policy in req.access_policies.into_iter().take(1024) {
            if policy.tenant_id != tenant_id {
                return Err(KvError::BadRequest {
                    message: format!(
                        "The access policy for object {} names tenant {}, not the vault's tenant {tenant_id}.",
                        policy.object_id, policy.tenant_id
                    ),
                });
            }
            policies.insert(policy.object_id.clone(), policy);
        }
        let key = req.name.to_ascii_lowercase();
        match self.vaults.get(&key) {
            Some(existing) if existing.deleted.is_some() => {
                return Err(KvError::VaultDeletedButRecoverable { name: req.name })
            }
            Some(_) => return Err(KvError::VaultAlreadyExists { name: req.name }),
            None => {}
        }
        if self.vaults.len() >= MAX_VAULTS {
            return Err(KvError::BadRequest {
                message: format!("At most {MAX_VAULTS} vaults can exist in the simulator."),
            });
        }
        let vault = Vault {
            name: req.name,
            location: req.location,
            tenant_id,
            subscription_id: req.subscription_id,
            resource_group: req.resource_group,
            sku: req.sku,
            enable_soft_delete: soft_delete,
            soft_delete_retention_days: retention,
            enable_purge_protection: req.enable_purge_protection,
            access_policies: policies,
            created_ms: now.0,
        };
        self.effects.events.push(KeyVaultEvent::VaultCreated {
            vault: vault.name.clone(),
            location: vault.location.clone(),
            sku: vault.sku.as_str().into(),
            purge_protection: vault.enable_purge_protection,
            retention_days: retention,
        });
        for policy in vault.access_policies.values() {
            self.effects.events.push(KeyVaultEvent::PolicySet {
                vault: vault.name.clone(),
                object_id: policy.object_id.clone(),
                permissions: policy
                    .key_permissions
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            });
        }
        self.vaults.insert(
            key.clone(),
            VaultEntry {
                vault: vault.clone(),
                deleted: None,
                keys: BTreeMap::new(),
            },
        );
        self.effects.changes.insert(Change::Vault(key));
        Ok(vault)
    }

    /// A vault's properties.
    pub fn get_vault(&self, caller: &Caller, name: &str) -> Result<&Vault, KvError> {
        Ok(&self.manage(caller, name)?.vault)
    }

    /// The live vaults of the caller's tenant, by name.
    pub fn list_vaults(&self, caller: &Caller) -> Vec<&Vault> {
        self.vaults
            .values()
            .filter(|e| e.deleted.is_none() && e.vault.tenant_id == caller.tenant_id)
            .map(|e| &e.vault)
            .collect()
    }

    /// Updates soft delete, purge protection and retention, refusing to turn either off.
    pub fn update_vault(
        &mut self,
        caller: &Caller,
        name: &str,
        patch: VaultPatch,
    ) -> Result<Vault, KvError> {
        let entry = self.manage(caller, name)?;
        let mut vault = entry.vault.clone();
        if let Some(soft_delete) = patch.enable_soft_delete {
            if vault.enable_soft_delete && !soft_delete {
                return Err(KvError::SoftDeleteCannotBeDisabled);
            }
            vault.enable_soft_delete = soft_delete;
        }
        if let Some(purge_protection) = patch.enable_purge_protection {
            if vault.enable_purge_protection && !purge_protection {
                return Err(KvError::PurgeProtectionCannotBeDisabled);
            }
            if purge_protection && !vault.enable_soft_delete {
                return Err(KvError::BadRequest {
                    message:
                        "Purge protection can only be enabled on a vault with soft delete enabled."
                            .into(),
                });
            }
            vault.enable_purge_protection = purge_protection;
        }
        if let Some(days) = patch.soft_delete_retention_days {
            vault.soft_delete_retention_days = validate::retention_days(days)?;
        }
        let key = name.to_ascii_lowercase();
        let event = KeyVaultEvent::VaultUpdated {
            vault: vault.name.clone(),
            soft_delete: vault.enable_soft_delete,
            purge_protection: vault.enable_purge_protection,
            retention_days: vault.soft_delete_retention_days,
        };
        if let Some(entry) = self.vaults.get_mut(&key) {
            entry.vault = vault.clone();
        }
        self.record(Change::Vault(key), Some(event));
        Ok(vault)
    }

    /// Deletes a vault: soft (recoverable, name reserved) when soft delete is on, else purged.
    pub fn delete_vault(
        &mut self,
        now: SimTime,
        caller: &Caller,
        name: &str,
        backend: &mut dyn KeyBackend,
    ) -> Result<(Vault, Deletion), KvError> {
        let entry = self.manage(caller, name)?;
        let vault = entry.vault.clone();
        let deletion = Deletion {
            deleted_ms: now.0,
            scheduled_purge_ms: now.0 + i64::from(vault.soft_delete_retention_days) * DAY_MS,
        };
        let key = name.to_ascii_lowercase();
        if !vault.enable_soft_delete {
            self.purge_vault_now(&key, false, backend);
            return Ok((
                vault,
                Deletion {
                    deleted_ms: now.0,
                    scheduled_purge_ms: now.0,
                },
            ));
        }
        if let Some(entry) = self.vaults.get_mut(&key) {
            entry.deleted = Some(deletion);
        }
        self.record(
            Change::Vault(key),
            Some(KeyVaultEvent::VaultDeleted {
                vault: vault.name.clone(),
                scheduled_purge_ms: deletion.scheduled_purge_ms,
            }),
        );
        Ok((vault, deletion))
    }

    fn deleted_vault(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(&VaultEntry, Deletion), KvError> {
        let not_found = || KvError::DeletedVaultNotFound {
            name: name.to_string(),
        };
        let entry = self
            .vaults
            .get(&name.to_ascii_lowercase())
            .ok_or_else(not_found)?;
        let deletion = entry.deleted.ok_or_else(not_found)?;
        Self::check_tenant(entry, caller, Plane::Management)?;
        Ok((entry, deletion))
    }

    /// A soft-deleted vault.
    pub fn get_deleted_vault(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(Vault, Deletion), KvError> {
        let (entry, deletion) = self.deleted_vault(caller, name)?;
        Ok((entry.vault.clone(), deletion))
    }

    /// Recovers a soft-deleted vault with all its keys.
    pub fn recover_vault(&mut self, caller: &Caller, name: &str) -> Result<Vault, KvError> {
        let (entry, _) = self.deleted_vault(caller, name)?;
        let vault = entry.vault.clone();
        let key = name.to_ascii_lowercase();
        if let Some(entry) = self.vaults.get_mut(&key) {
            entry.deleted = None;
        }
        self.record(
            Change::Vault(key),
            Some(KeyVaultEvent::VaultRecovered {
                vault: vault.name.clone(),
            }),
        );
        Ok(vault)
    }

    /// Purges a soft-deleted vault; refused under purge protection until its scheduled date.
    pub fn purge_vault(
        &mut self,
        now: SimTime,
        caller: &Caller,
        name: &str,
        backend: &mut dyn KeyBackend,
    ) -> Result<(), KvError> {
        let (entry, deletion) = self.deleted_vault(caller, name)?;
        if entry.vault.enable_purge_protection && now.0 < deletion.scheduled_purge_ms {
            return Err(KvError::PurgeProtected {
                vault: entry.vault.name.clone(),
                location: entry.vault.location.clone(),
            });
        }
        self.purge_vault_now(&name.to_ascii_lowercase(), false, backend);
        Ok(())
    }

    /// Removes a vault and destroys every key version in it.
    pub(crate) fn purge_vault_now(
        &mut self,
        key: &str,
        automatic: bool,
        backend: &mut dyn KeyBackend,
    ) {
        let Some(entry) = self.vaults.remove(key) else {
            return;
        };
        for k in entry.keys.values() {
            for version in &k.versions {
                backend.destroy(&version.private);
            }
        }
        self.record(
            Change::VaultRemoved(key.to_string()),
            Some(KeyVaultEvent::VaultPurged {
                vault: entry.vault.name.clone(),
                automatic,
            }),
        );
    }

    /// Sets (replaces) the access policy of `policy.object_id`.
    pub fn set_access_policy(
        &mut self,
        caller: &Caller,
        name: &str,
        policy: AccessPolicy,
    ) -> Result<Vault, KvError> {
        let entry = self.manage(caller, name)?;
        if policy.object_id.is_empty() {
            return Err(KvError::BadRequest {
                message: "The access policy must name an objectId.".into(),
            });
        }
        if policy.tenant_id != entry.vault.tenant_id {
            return Err(KvError::BadRequest {
                message: format!(
                    "The access policy for object {} names tenant {}, not the vault's tenant {}.",
                    policy.object_id, policy.tenant_id, entry.vault.tenant_id
                ),
            });
        }
        if entry.vault.access_policies.len() >= 1024
            && !entry.vault.access_policies.contains_key(&policy.object_id)
        {
            return Err(KvError::BadRequest {
                message: "A vault can have at most 1024 access policies.".into(),
            });
        }
        let key = name.to_ascii_lowercase();
        let event = KeyVaultEvent::PolicySet {
            vault: entry.vault.name.clone(),
            object_id: policy.object_id.clone(),
            permissions: policy
                .key_permissions
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
        };
        let entry = self.vaults.get_mut(&key).ok_or_else(|| KvError::Internal {
            message: "vault vanished".into(),
        })?;
        entry
            .vault
            .access_policies
            .insert(policy.object_id.clone(), policy);
        let vault = entry.vault.clone();
        self.record(Change::Vault(key), Some(event));
        Ok(vault)
    }

    /// Removes the access policy of `object_id` (no error if it had none, as in Azure).
    pub fn remove_access_policy(
        &mut self,
        caller: &Caller,
        name: &str,
        object_id: &str,
    ) -> Result<Vault, KvError> {
        self.manage(caller, name)?;
        let key = name.to_ascii_lowercase();
        let entry = self.vaults.get_mut(&key).ok_or_else(|| KvError::Internal {
            message: "vault vanished".into(),
        })?;
        let removed = entry.vault.access_policies.remove(object_id).is_some();
        let vault = entry.vault.clone();
        if removed {
            self.record(
                Change::Vault(key),
                Some(KeyVaultEvent::PolicyRemoved {
                    vault: vault.name.clone(),
                    object_id: object_id.to_string(),
                }),
            );
        }
        Ok(vault)
    }
}
