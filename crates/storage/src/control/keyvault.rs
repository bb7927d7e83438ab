//! Key update validation (SPEC §4): the facts the service gathers from Key Vault, and the pure
//! function that decides whether a cluster may use the key.
//!
//! The control plane does no I/O, so the service asks Key Vault (as the cluster's identity) and
//! hands the answers in as [`KeyVaultFacts`]. The checks run in this order, and the first failure
//! decides the message:
//! 1. format of `keyVaultUri` (`https://{vault}.vault.azure.net[/]`), `keyName`, `keyVersion`
//!    (empty or 32 hex) → "KeyVaultProperties is not empty but has a bad format.";
//! 2. vault exists, identity has `get` (seed 000: "'Get' key Access Policy is missing ... the
//!    operation will fail"), key (and the requested version) exists → "Failed to validate key";
//! 3. soft delete and purge protection → "Key is not recoverable.";
//! 4. `wrapKey`/`unwrapKey` permissions, the key's own allowed operations (`key_ops`) include
//!    `wrapKey` and `unwrapKey`, key enabled, key type RSA/RSA-HSM, vault region = cluster
//!    region, vault tenant = cluster identity tenant → "Failed to validate key" (the seeds have
//!    no text for key operations, a region or a tenant mismatch; this is the message of a key
//!    the cluster cannot use). Without the `key_ops` check, a key allowing only e.g. `sign` was
//!    accepted, and the rewrap that followed failed with 403, leaving the data under the
//!    Microsoft-managed key while the cluster claimed the new one.
//!
//! An empty `keyVersion`: under azure-2020 (`versionless_keys = false`) it pins the newest version
//! at update time (seed 000: "select the current version of your key"); under azure-current it is
//! kept empty and the storage follows the newest version (SPEC §5).

use std::collections::BTreeSet;

use cmksim_sim::Profile;
use serde::{Deserialize, Serialize};

use super::errors::{ControlError, KeyValidationFailure};
use super::names;

/// Key permissions the cluster identity needs (seed 000: Get, Wrap Key, Unwrap Key).
pub const REQUIRED_KEY_PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];
/// Operations the key itself must allow (its `key_ops`): the storage wraps and unwraps the AEK.
pub const REQUIRED_KEY_OPERATIONS: [&str; 2] = ["wrapKey", "unwrapKey"];
/// Key types a cluster accepts.
pub const ACCEPTED_KEY_TYPES: [&str; 2] = ["RSA", "RSA-HSM"];

/// The key a cluster uses: the stored `keyVaultProperties`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Normalised `https://{vault}.vault.azure.net/` (lowercase vault name, trailing slash).
    pub key_vault_uri: String,
    pub key_name: String,
    /// `None`: versionless, the storage follows the newest version (azure-current only).
    pub key_version: Option<String>,
}

impl KeyRef {
    /// `https://v.vault.azure.net/keys/k/version` (or without version when versionless).
    pub fn key_id(&self) -> String {
        match &self.key_version {
            Some(v) => format!("{}keys/{}/{}", self.key_vault_uri, self.key_name, v),
            None => format!("{}keys/{}", self.key_vault_uri, self.key_name),
        }
    }
}

/// `keyVaultProperties` as the caller sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultPropertiesInput {
    pub key_vault_uri: String,
    pub key_name: String,
    pub key_version: String,
}

impl KeyVaultPropertiesInput {
    /// All three fields empty: treated as "no keyVaultProperties" (the seed's message is about
    /// properties that are "not empty but" malformed).
    pub fn is_empty(&self) -> bool {
        self.key_vault_uri.is_empty() && self.key_name.is_empty() && self.key_version.is_empty()
    }
}

/// What Key Vault says about the vault and the key, gathered by the service as the cluster's
/// identity just before the update. When a version was requested, `key_exists`, `key_enabled` and
/// `key_kty` describe that version; otherwise the newest one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVaultFacts {
    pub vault_exists: bool,
    pub vault_location: String,
    pub vault_tenant: String,
    pub soft_delete: bool,
    pub purge_protection: bool,
    /// The cluster identity's key permissions in the vault's access policy (`get`, `wrapKey`, ...).
    pub identity_permissions: BTreeSet<String>,
    pub key_exists: bool,
    pub key_enabled: bool,
    pub key_kty: String,
    /// The operations the key allows (its `key_ops`, e.g. `wrapKey`, `sign`).
    #[serde(default)]
    pub key_ops: BTreeSet<String>,
    /// The key's newest version (what "the current version" means in seed 000).
    pub newest_version: Option<String>,
}

/// Checks the input's syntax only: the part that needs no Key Vault facts.
pub fn validate_format(input: &KeyVaultPropertiesInput) -> Result<String, ControlError> {
    let bad = |why: &str| ControlError::KeyVaultPropertiesBadFormat(why.to_string());
    let vault = names::vault_name_from_uri(&input.key_vault_uri)
        .ok_or_else(|| bad("keyVaultUri is not https://{vault}.vault.azure.net"))?;
    if !names::is_valid_key_name(&input.key_name) {
        return Err(bad("keyName is not 1-127 letters, digits and hyphens"));
    }
    if !names::is_valid_key_version_input(&input.key_version) {
        return Err(bad(
            "keyVersion is neither empty nor 32 hexadecimal characters",
        ));
    }
    Ok(vault)
}

/// Validates a key update for a cluster in `cluster_location` whose identity lives in
/// `cluster_tenant`, and returns the key to store.
pub fn validate_key_update(
    profile: &Profile,
    cluster_location: &str,
    cluster_tenant: &str,
    input: &KeyVaultPropertiesInput,
    facts: &KeyVaultFacts,
) -> Result<KeyRef, ControlError> {
    let vault = validate_format(input)?;
    let fail = |why: KeyValidationFailure| Err(ControlError::KeyValidationFailed(why));
    let has = |perm: &str| {
        facts
            .identity_permissions
            .iter()
            .any(|p| p.eq_ignore_ascii_case(perm))
    };
    if !facts.vault_exists {
        return fail(KeyValidationFailure::VaultNotFound);
    }
    if !has("get") {
        return fail(KeyValidationFailure::MissingPermission("get".into()));
    }
    if !facts.key_exists {
        return fail(KeyValidationFailure::KeyNotFound);
    }
    if !cmksim_sim::rules::is_key_recoverable(facts.soft_delete, facts.purge_protection) {
        return Err(ControlError::KeyNotRecoverable {
            soft_delete: facts.soft_delete,
            purge_protection: facts.purge_protection,
        });
    }
    if let Some(missing) = REQUIRED_KEY_PERMISSIONS.iter().find(|p| !has(p)) {
        return fail(KeyValidationFailure::MissingPermission((*missing).into()));
    }
    if let Some(missing) = REQUIRED_KEY_OPERATIONS
        .iter()
        .find(|op| !facts.key_ops.iter().any(|k| k.eq_ignore_ascii_case(op)))
    {
        return fail(KeyValidationFailure::KeyOperationNotAllowed(
            (*missing).into(),
        ));
    }
    if !facts.key_enabled {
        return fail(KeyValidationFailure::KeyDisabled);
    }
    if !ACCEPTED_KEY_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&facts.key_kty))
    {
        return fail(KeyValidationFailure::NotRsa(facts.key_kty.clone()));
    }
    if !same_region(&facts.vault_location, cluster_location) {
        return fail(KeyValidationFailure::RegionMismatch {
            vault: facts.vault_location.clone(),
            cluster: cluster_location.to_string(),
        });
    }
    if !facts.vault_tenant.eq_ignore_ascii_case(cluster_tenant) {
        return fail(KeyValidationFailure::TenantMismatch {
            vault: facts.vault_tenant.clone(),
            cluster: cluster_tenant.to_string(),
        });
    }
    let key_version = if !input.key_version.is_empty() {
        Some(input.key_version.to_ascii_lowercase())
    } else if profile.key_access.versionless_keys {
        None
    } else {
        match &facts.newest_version {
            Some(v) => Some(v.to_ascii_lowercase()),
            None => return fail(KeyValidationFailure::NoCurrentVersion),
        }
    };
    Ok(KeyRef {
        key_vault_uri: format!("https://{vault}.vault.azure.net/"),
        key_name: input.key_name.clone(),
        key_version,
    })
}

// Region comparison is shared with `cmksim validate`, so it lives in `cmksim-sim`.
pub use cmksim_sim::rules::{normalize_region, same_region};
