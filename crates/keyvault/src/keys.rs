//! Key rules: create, read, update, rotate, delete, recover, purge, scheduled purge, and the
//! checks in front of every cryptographic operation.
//!
//! Every request checks, in this order: the caller's access policy (after the token, which the
//! gRPC edge verified), the key's existence, its enabled flag, its validity period (outside
//! nbf/exp only decrypt, unwrapKey and verify are allowed), its `key_ops`, and the algorithm
//! against the key type. The order is part of the contract: a caller with no permission learns
//! nothing about which keys exist. [`KeyVaultState::prepare_operation`] runs those checks and
//! hands back the version to use; the private-key work itself is done by a [`KeyBackend`].

use std::collections::BTreeMap;

use rand::RngCore;

use cmksim_sim::{ids, SimTime};

use crate::backend::KeyBackend;
use crate::errors::KvError;
use crate::events::KeyVaultEvent;
use crate::model::{
    Deletion, EncryptionAlgorithm, Key, KeyOp, KeyPermission, KeyType, KeyVersion,
    SignatureAlgorithm, VaultEntry,
};
use crate::state::{
    Caller, Change, KeyVaultState, DAY_MS, MAX_KEYS_PER_VAULT, MAX_PURGES_PER_TICK,
    MAX_VERSIONS_PER_KEY,
};
use crate::validate;

/// A key creation request, as received.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    pub name: String,
    pub kty: String,
    pub key_size_bits: u32,
    pub curve: String,
    pub key_ops: Vec<String>,
    pub enabled: Option<bool>,
    pub nbf_ms: Option<i64>,
    pub exp_ms: Option<i64>,
    pub tags: BTreeMap<String, String>,
}

/// A key update request.
#[derive(Clone, Debug, Default)]
pub struct KeyPatch {
    pub enabled: Option<bool>,
    pub nbf_ms: Option<i64>,
    pub exp_ms: Option<i64>,
    pub clear_nbf: bool,
    pub clear_exp: bool,
    /// Non-empty: replaces key_ops.
    pub key_ops: Vec<String>,
    /// Non-empty: replaces the tags.
    pub tags: BTreeMap<String, String>,
}

/// One key version as the API shows it, with what it needs from its vault.
#[derive(Clone, Debug)]
pub struct KeyView {
    pub vault_uri: String,
    pub name: String,
    pub version: KeyVersion,
    pub recovery_level: &'static str,
    pub recoverable_days: u32,
    pub deleted: Option<Deletion>,
}

impl KeyView {
    fn new(entry: &VaultEntry, key: &Key, version: &KeyVersion) -> KeyView {
        KeyView {
            vault_uri: entry.vault.uri(),
            name: key.name.clone(),
            version: version.clone(),
            recovery_level: entry.vault.recovery_level(),
            recoverable_days: if entry.vault.enable_soft_delete {
                entry.vault.soft_delete_retention_days
            } else {
                0
            },
            deleted: key.deleted,
        }
    }
    /// `https://{vault}.vault.azure.net/keys/{name}/{version}`
    pub fn kid(&self) -> String {
        format!(
            "{}/keys/{}/{}",
            self.vault_uri, self.name, self.version.version
        )
    }
    /// `https://{vault}.vault.azure.net/deletedkeys/{name}`
    pub fn recovery_id(&self) -> String {
        format!("{}/deletedkeys/{}", self.vault_uri, self.name)
    }
}

/// Which key version a request names (version "" = newest).
#[derive(Clone, Copy, Debug)]
pub struct KeyAddr<'a> {
    pub vault: &'a str,
    pub name: &'a str,
    pub version: &'a str,
}

/// A validated algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Encryption(EncryptionAlgorithm),
    Signature(SignatureAlgorithm),
}

/// The permission an operation needs.
pub fn permission_for(op: KeyOp) -> KeyPermission {
    match op {
        KeyOp::Encrypt => KeyPermission::Encrypt,
        KeyOp::Decrypt => KeyPermission::Decrypt,
        KeyOp::Sign => KeyPermission::Sign,
        KeyOp::Verify => KeyPermission::Verify,
        KeyOp::WrapKey => KeyPermission::WrapKey,
        KeyOp::UnwrapKey => KeyPermission::UnwrapKey,
    }
}

/// The `vault/key/version` id that binds sealed material and names HSM objects.
pub fn key_id(vault: &str, key: &str, version: &str) -> String {
    format!(
        "{}/{}/{}",
        vault.to_ascii_lowercase(),
        key.to_ascii_lowercase(),
        version
    )
}

fn not_found(name: &str, version: &str) -> KvError {
    KvError::KeyNotFound {
        name_id: if version.is_empty() {
            name.to_string()
        } else {
            format!("{name}/{version}")
        },
    }
}

fn parse_algorithm(op: KeyOp, kty: KeyType, alg: &str) -> Result<Algorithm, KvError> {
    let unsupported = || KvError::BadParameter {
        message: format!(
            "Algorithm '{alg}' is not supported for operation {op} with key type {kty}."
        ),
    };
    match op {
        KeyOp::Encrypt | KeyOp::Decrypt | KeyOp::WrapKey | KeyOp::UnwrapKey => {
            let parsed = EncryptionAlgorithm::parse(alg).ok_or_else(unsupported)?;
            if !kty.is_rsa() {
                return Err(unsupported());
            }
            Ok(Algorithm::Encryption(parsed))
        }
        KeyOp::Sign | KeyOp::Verify => {
            let parsed = SignatureAlgorithm::parse(alg).ok_or_else(unsupported)?;
            let fits = match parsed {
                SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256 => kty.is_rsa(),
                SignatureAlgorithm::Es256 => !kty.is_rsa(),
            };
            if fits {
                Ok(Algorithm::Signature(parsed))
            } else {
                Err(unsupported())
            }
        }
    }
}

impl KeyVaultState {
    fn view_of(&self, vault_key: &str, key_key: &str, version: &str) -> Result<KeyView, KvError> {
        let entry = self
            .vaults
            .get(vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let key = entry.keys.get(key_key).ok_or_else(|| KvError::Internal {
            message: "key vanished".into(),
        })?;
        let v = key.version(version).ok_or_else(|| KvError::Internal {
            message: "version vanished".into(),
        })?;
        Ok(KeyView::new(entry, key, v))
    }

    fn live_key<'a>(entry: &'a VaultEntry, name: &str) -> Option<&'a Key> {
        entry
            .keys
            .get(&name.to_ascii_lowercase())
            .filter(|k| k.deleted.is_none())
    }

    fn new_version_id(key: Option<&Key>, rng: &mut impl RngCore) -> String {
        // A collision of 128 random bits is not going to happen; the bound keeps the loop finite.
        let mut version = ids::key_version(rng);
        for _ in 0..8 {
            if key.is_none_or(|k| k.versions.iter().all(|v| v.version != version)) {
                break;
            }
            version = ids::key_version(rng);
        }
        version
    }

    /// Creates a key, or a new version of an existing key (as Azure's CreateKey does).
    pub fn create_key(
        &mut self,
        now: SimTime,
        caller: &Caller,
        vault: &str,
        req: NewKey,
        backend: &mut dyn KeyBackend,
        rng: &mut impl RngCore,
    ) -> Result<KeyView, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::Create)?;
        validate::key_name(&req.name)?;
        let kty = validate::key_type(&req.kty)?;
        let key_size_bits = validate::key_params(kty, req.key_size_bits, &req.curve)?;
        let key_ops = validate::key_ops(&req.key_ops, kty)?;
        validate::tags(&req.tags)?;
        validate::validity(req.nbf_ms, req.exp_ms)?;
        if !cmksim_sim::rules::key_type_allowed_in_vault(
            kty.is_hsm(),
            entry.vault.sku == crate::model::Sku::Premium,
        ) {
            return Err(KvError::HsmRequiresPremium {
                kty: kty.as_str().into(),
                vault: entry.vault.name.clone(),
            });
        }
        let lower = req.name.to_ascii_lowercase();
        let existing = entry.keys.get(&lower);
        if existing.is_some_and(|k| k.deleted.is_some()) {
            return Err(KvError::KeyDeletedButRecoverable { name: req.name });
        }
        if existing.is_none() && entry.keys.len() >= MAX_KEYS_PER_VAULT {
            return Err(KvError::BadParameter {
                message: format!("A vault can hold at most {MAX_KEYS_PER_VAULT} keys."),
            });
        }
        if existing.is_some_and(|k| k.versions.len() >= MAX_VERSIONS_PER_KEY) {
            return Err(KvError::BadParameter {
                message: format!("A key can have at most {MAX_VERSIONS_PER_KEY} versions."),
            });
        }
        let version_id = Self::new_version_id(existing, rng);
        let vault_name = entry.vault.name.clone();
        let (public, private) =
            backend.generate(kty, key_size_bits, &key_id(vault, &req.name, &version_id))?;
        let version = KeyVersion {
            version: version_id.clone(),
            kty,
            key_size_bits,
            key_ops,
            enabled: req.enabled.unwrap_or(true),
            nbf_ms: req.nbf_ms,
            exp_ms: req.exp_ms,
            created_ms: now.0,
            updated_ms: now.0,
            tags: req.tags,
            public,
            private,
        };
        let vault_key = vault.to_ascii_lowercase();
        let entry = self
            .vaults
            .get_mut(&vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let key = entry.keys.entry(lower.clone()).or_insert_with(|| Key {
            name: req.name.clone(),
            versions: Vec::new(),
            deleted: None,
        });
        key.versions.push(version);
        let view = self.view_of(&vault_key, &lower, &version_id)?;
        self.record(
            Change::Key(vault_key, lower),
            Some(KeyVaultEvent::KeyCreated {
                vault: vault_name,
                key: req.name,
                version: version_id.clone(),
                kty: kty.as_str().into(),
            }),
        );
        Ok(view)
    }

    /// A key version (empty = newest). A disabled key can still be read.
    pub fn get_key(
        &self,
        caller: &Caller,
        vault: &str,
        name: &str,
        version: &str,
    ) -> Result<KeyView, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::Get)?;
        validate::key_version(version)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, version))?;
        let v = key
            .version(version)
            .ok_or_else(|| not_found(name, version))?;
        Ok(KeyView::new(entry, key, v))
    }

    /// The newest version of every live key, by name.
    pub fn list_keys(&self, caller: &Caller, vault: &str) -> Result<Vec<KeyView>, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::List)?;
        Ok(entry
            .keys
            .values()
            .filter(|k| k.deleted.is_none())
            .filter_map(|k| k.newest().map(|v| KeyView::new(entry, k, v)))
            .collect())
    }

    /// Every version of a live key, oldest first.
    pub fn list_key_versions(
        &self,
        caller: &Caller,
        vault: &str,
        name: &str,
    ) -> Result<Vec<KeyView>, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::List)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, ""))?;
        Ok(key
            .versions
            .iter()
            .map(|v| KeyView::new(entry, key, v))
            .collect())
    }

    /// Updates one version's attributes.
    pub fn update_key(
        &mut self,
        now: SimTime,
        caller: &Caller,
        vault: &str,
        name: &str,
        version: &str,
        patch: KeyPatch,
    ) -> Result<KeyView, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::Update)?;
        validate::key_version(version)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, version))?;
        let current = key
            .version(version)
            .ok_or_else(|| not_found(name, version))?;
        let mut updated = current.clone();
        if !patch.key_ops.is_empty() {
            updated.key_ops = validate::key_ops(&patch.key_ops, updated.kty)?;
        }
        if patch.clear_nbf {
            updated.nbf_ms = None;
        } else if patch.nbf_ms.is_some() {
            updated.nbf_ms = patch.nbf_ms;
        }
        if patch.clear_exp {
            updated.exp_ms = None;
        } else if patch.exp_ms.is_some() {
            updated.exp_ms = patch.exp_ms;
        }
        validate::validity(updated.nbf_ms, updated.exp_ms)?;
        if !patch.tags.is_empty() {
            validate::tags(&patch.tags)?;
            updated.tags = patch.tags;
        }
        if let Some(enabled) = patch.enabled {
            updated.enabled = enabled;
        }
        updated.updated_ms = now.0;
        let event = match (current.enabled, updated.enabled) {
            (true, false) => KeyVaultEvent::KeyDisabled {
                vault: entry.vault.name.clone(),
                key: key.name.clone(),
                version: updated.version.clone(),
            },
            (false, true) => KeyVaultEvent::KeyEnabled {
                vault: entry.vault.name.clone(),
                key: key.name.clone(),
                version: updated.version.clone(),
            },
            _ => KeyVaultEvent::KeyUpdated {
                vault: entry.vault.name.clone(),
                key: key.name.clone(),
                version: updated.version.clone(),
            },
        };
        let (vault_key, key_key) = (vault.to_ascii_lowercase(), name.to_ascii_lowercase());
        let entry = self
            .vaults
            .get_mut(&vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let key = entry
            .keys
            .get_mut(&key_key)
            .ok_or_else(|| KvError::Internal {
                message: "key vanished".into(),
            })?;
        let slot = key
            .versions
            .iter_mut()
            .find(|v| v.version == updated.version)
            .ok_or_else(|| KvError::Internal {
                message: "version vanished".into(),
            })?;
        *slot = updated.clone();
        let view = self.view_of(&vault_key, &key_key, &updated.version)?;
        self.record(Change::Key(vault_key, key_key), Some(event));
        Ok(view)
    }

    /// A new version with the newest version's type, size and operations.
    pub fn rotate_key(
        &mut self,
        now: SimTime,
        caller: &Caller,
        vault: &str,
        name: &str,
        backend: &mut dyn KeyBackend,
        rng: &mut impl RngCore,
    ) -> Result<KeyView, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::Rotate)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, ""))?;
        let newest = key.newest().ok_or_else(|| not_found(name, ""))?;
        if key.versions.len() >= MAX_VERSIONS_PER_KEY {
            return Err(KvError::BadParameter {
                message: format!("A key can have at most {MAX_VERSIONS_PER_KEY} versions."),
            });
        }
        let version_id = Self::new_version_id(Some(key), rng);
        let (kty, size, ops, tags, previous) = (
            newest.kty,
            newest.key_size_bits,
            newest.key_ops.clone(),
            newest.tags.clone(),
            newest.version.clone(),
        );
        let (vault_name, key_name) = (entry.vault.name.clone(), key.name.clone());
        let (public, private) = backend.generate(kty, size, &key_id(vault, name, &version_id))?;
        let version = KeyVersion {
            version: version_id.clone(),
            kty,
            key_size_bits: size,
            key_ops: ops,
            enabled: true,
            nbf_ms: None,
            exp_ms: None,
            created_ms: now.0,
            updated_ms: now.0,
            tags,
            public,
            private,
        };
        let (vault_key, key_key) = (vault.to_ascii_lowercase(), name.to_ascii_lowercase());
        let entry = self
            .vaults
            .get_mut(&vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let key = entry
            .keys
            .get_mut(&key_key)
            .ok_or_else(|| KvError::Internal {
                message: "key vanished".into(),
            })?;
        key.versions.push(version);
        let view = self.view_of(&vault_key, &key_key, &version_id)?;
        self.record(
            Change::Key(vault_key, key_key),
            Some(KeyVaultEvent::KeyRotated {
                vault: vault_name,
                key: key_name,
                version: version_id.clone(),
                previous_version: previous,
            }),
        );
        Ok(view)
    }

    /// Deletes a key: soft (recoverable until the vault's retention has passed) or, without
    /// soft delete, purged at once.
    pub fn delete_key(
        &mut self,
        now: SimTime,
        caller: &Caller,
        vault: &str,
        name: &str,
        backend: &mut dyn KeyBackend,
    ) -> Result<KeyView, KvError> {
        let entry = self.authorize(caller, vault, KeyPermission::Delete)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, ""))?;
        let newest = key.newest().ok_or_else(|| not_found(name, ""))?;
        let deletion = Deletion {
            deleted_ms: now.0,
            scheduled_purge_ms: now.0 + i64::from(entry.vault.soft_delete_retention_days) * DAY_MS,
        };
        let mut view = KeyView::new(entry, key, newest);
        view.deleted = Some(deletion);
        let soft = entry.vault.enable_soft_delete;
        let (vault_key, key_key) = (vault.to_ascii_lowercase(), name.to_ascii_lowercase());
        if !soft {
            view.deleted = Some(Deletion {
                deleted_ms: now.0,
                scheduled_purge_ms: now.0,
            });
            self.purge_key_now(&vault_key, &key_key, false, backend);
            return Ok(view);
        }
        let entry = self
            .vaults
            .get_mut(&vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let vault_name = entry.vault.name.clone();
        let key = entry
            .keys
            .get_mut(&key_key)
            .ok_or_else(|| KvError::Internal {
                message: "key vanished".into(),
            })?;
        key.deleted = Some(deletion);
        let key_name = key.name.clone();
        self.record(
            Change::Key(vault_key, key_key),
            Some(KeyVaultEvent::KeyDeleted {
                vault: vault_name,
                key: key_name,
                scheduled_purge_ms: deletion.scheduled_purge_ms,
            }),
        );
        Ok(view)
    }

    fn deleted_key<'a>(
        &'a self,
        caller: &Caller,
        vault: &str,
        name: &str,
        permission: KeyPermission,
    ) -> Result<(&'a VaultEntry, &'a Key), KvError> {
        let entry = self.authorize(caller, vault, permission)?;
        let key = entry
            .keys
            .get(&name.to_ascii_lowercase())
            .filter(|k| k.deleted.is_some())
            .ok_or_else(|| KvError::DeletedKeyNotFound {
                name: name.to_string(),
            })?;
        Ok((entry, key))
    }

    /// A soft-deleted key (its newest version).
    pub fn get_deleted_key(
        &self,
        caller: &Caller,
        vault: &str,
        name: &str,
    ) -> Result<KeyView, KvError> {
        let (entry, key) = self.deleted_key(caller, vault, name, KeyPermission::Get)?;
        let newest = key.newest().ok_or_else(|| KvError::DeletedKeyNotFound {
            name: name.to_string(),
        })?;
        Ok(KeyView::new(entry, key, newest))
    }

    /// Recovers a soft-deleted key with all its versions.
    pub fn recover_deleted_key(
        &mut self,
        caller: &Caller,
        vault: &str,
        name: &str,
    ) -> Result<KeyView, KvError> {
        let (entry, key) = self.deleted_key(caller, vault, name, KeyPermission::Recover)?;
        let (vault_name, key_name) = (entry.vault.name.clone(), key.name.clone());
        let (vault_key, key_key) = (vault.to_ascii_lowercase(), name.to_ascii_lowercase());
        let entry = self
            .vaults
            .get_mut(&vault_key)
            .ok_or_else(|| KvError::Internal {
                message: "vault vanished".into(),
            })?;
        let key = entry
            .keys
            .get_mut(&key_key)
            .ok_or_else(|| KvError::Internal {
                message: "key vanished".into(),
            })?;
        key.deleted = None;
        let key = &entry.keys[&key_key];
        let newest = key.newest().ok_or_else(|| KvError::Internal {
            message: "key has no versions".into(),
        })?;
        let view = KeyView::new(entry, key, newest);
        self.record(
            Change::Key(vault_key, key_key),
            Some(KeyVaultEvent::KeyRecovered {
                vault: vault_name,
                key: key_name,
            }),
        );
        Ok(view)
    }

    /// Purges a soft-deleted key; refused under purge protection until its scheduled date.
    pub fn purge_deleted_key(
        &mut self,
        now: SimTime,
        caller: &Caller,
        vault: &str,
        name: &str,
        backend: &mut dyn KeyBackend,
    ) -> Result<(), KvError> {
        let (entry, key) = self.deleted_key(caller, vault, name, KeyPermission::Purge)?;
        let scheduled = key
            .deleted
            .map(|d| d.scheduled_purge_ms)
            .unwrap_or(i64::MAX);
        if entry.vault.enable_purge_protection && now.0 < scheduled {
            return Err(KvError::PurgeProtected {
                vault: entry.vault.name.clone(),
                location: entry.vault.location.clone(),
            });
        }
        self.purge_key_now(
            &vault.to_ascii_lowercase(),
            &name.to_ascii_lowercase(),
            false,
            backend,
        );
        Ok(())
    }

    fn purge_key_now(
        &mut self,
        vault_key: &str,
        key_key: &str,
        automatic: bool,
        backend: &mut dyn KeyBackend,
    ) {
        let Some(entry) = self.vaults.get_mut(vault_key) else {
            return;
        };
        let Some(key) = entry.keys.remove(key_key) else {
            return;
        };
        for version in &key.versions {
            backend.destroy(&version.private);
        }
        let vault_name = entry.vault.name.clone();
        self.record(
            Change::KeyRemoved(vault_key.to_string(), key_key.to_string()),
            Some(KeyVaultEvent::KeyPurged {
                vault: vault_name,
                key: key.name,
                automatic,
            }),
        );
    }

    /// Purges every soft-deleted vault and key whose scheduled purge date has come (at most
    /// [`MAX_PURGES_PER_TICK`] per call). Returns how many were purged.
    pub fn purge_due(&mut self, now: SimTime, backend: &mut dyn KeyBackend) -> usize {
        let mut due_vaults = Vec::new();
        let mut due_keys = Vec::new();
        for (vault_key, entry) in &self.vaults {
            match entry.deleted {
                Some(d) if d.scheduled_purge_ms <= now.0 => due_vaults.push(vault_key.clone()),
                Some(_) => {}
                None => {
                    for (key_key, key) in &entry.keys {
                        if key.deleted.is_some_and(|d| d.scheduled_purge_ms <= now.0) {
                            due_keys.push((vault_key.clone(), key_key.clone()));
                        }
                    }
                }
            }
        }
        let mut purged = 0;
        for vault_key in due_vaults.into_iter().take(MAX_PURGES_PER_TICK) {
            self.purge_vault_now(&vault_key, true, backend);
            purged += 1;
        }
        for (vault_key, key_key) in due_keys.into_iter().take(MAX_PURGES_PER_TICK - purged) {
            self.purge_key_now(&vault_key, &key_key, true, backend);
            purged += 1;
        }
        purged
    }

    /// The earliest scheduled purge, so the background task knows when to wake.
    pub fn next_purge_ms(&self) -> Option<i64> {
        self.vaults
            .values()
            .flat_map(|entry| {
                entry
                    .deleted
                    .map(|d| d.scheduled_purge_ms)
                    .into_iter()
                    .chain(
                        entry
                            .keys
                            .values()
                            .filter_map(|k| k.deleted.map(|d| d.scheduled_purge_ms)),
                    )
            })
            .min()
    }

    /// Runs the checks in front of a cryptographic operation, in Azure's order, and returns the
    /// version to use and the parsed algorithm.
    pub fn prepare_operation(
        &self,
        now: SimTime,
        caller: &Caller,
        key: KeyAddr<'_>,
        op: KeyOp,
        alg: &str,
    ) -> Result<(KeyView, Algorithm), KvError> {
        let KeyAddr {
            vault,
            name,
            version,
        } = key;
        let entry = self.authorize(caller, vault, permission_for(op))?;
        validate::key_version(version)?;
        let key = Self::live_key(entry, name).ok_or_else(|| not_found(name, version))?;
        let v = key
            .version(version)
            .ok_or_else(|| not_found(name, version))?;
        if !v.enabled {
            return Err(KvError::KeyDisabled {
                operation: op.as_str().into(),
            });
        }
        let allowed_outside_validity =
            matches!(op, KeyOp::Decrypt | KeyOp::UnwrapKey | KeyOp::Verify);
        if !allowed_outside_validity && !v.in_validity_period(now.0) {
            return Err(KvError::KeyNotYetValidOrExpired {
                operation: op.as_str().into(),
            });
        }
        if !v.key_ops.contains(&op) {
            return Err(KvError::KeyOperationForbidden {
                operation: op.as_str().into(),
            });
        }
        let algorithm = parse_algorithm(op, v.kty, alg)?;
        Ok((KeyView::new(entry, key, v), algorithm))
    }
}
