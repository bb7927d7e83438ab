//! sled persistence for the identity authority.
//!
//! Layout (one sled database in the identity data directory):
//! - tree `tenants`: tenant id → JSON [`Tenant`]
//! - tree `principals`: object id → JSON [`Principal`] (secret only as salt + PBKDF2 hash)
//! - tree `role_assignments`: lower-case assignment id → JSON [`RoleAssignment`]
//! - tree `subscriptions`: lower-case subscription id → the tenant id it belongs to
//! - tree `authority`: `signing-key` → the 32-byte P-256 private scalar of the token signer;
//!   `opens` → how many times the store was reopened (u64, little-endian), so that a seeded
//!   authority draws new ids and secrets after a restart ([`crate::IdentityAuthority::open`]).
//!
//! The signing key is stored unencrypted inside the data directory: the data directory is the
//! simulator's trust boundary (like a real STS's key store), it never leaves it, and encrypting it
//! under a key kept in the same directory would add no protection. sled's background flusher is
//! off (it runs on wall time); every write is flushed before the caller is answered.

use std::path::Path;

use crate::directory::{Directory, Principal, Tenant};
use crate::roles::RoleAssignment;

const SIGNING_KEY: &[u8] = b"signing-key";
const OPENS: &[u8] = b"opens";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("identity store: {0}")]
    Sled(#[from] sled::Error),
    #[error("identity store: corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// The sled database of one identity authority.
pub struct IdentityStore {
    db: sled::Db,
    tenants: sled::Tree,
    principals: sled::Tree,
    role_assignments: sled::Tree,
    subscriptions: sled::Tree,
    authority: sled::Tree,
}

impl IdentityStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<IdentityStore, StoreError> {
        let db = cmksim_sim::durable::open(dir)?;
        Ok(IdentityStore {
            tenants: db.open_tree("tenants")?,
            principals: db.open_tree("principals")?,
            role_assignments: db.open_tree("role_assignments")?,
            subscriptions: db.open_tree("subscriptions")?,
            authority: db.open_tree("authority")?,
            db,
        })
    }

    /// Loads the whole directory.
    pub fn load_directory(&self) -> Result<Directory, StoreError> {
        let mut directory = Directory::default();
        for entry in self.tenants.iter() {
            let (key, value) = entry?;
            let tenant: Tenant = decode(&key, &value)?;
            directory.tenants.insert(tenant.tenant_id.clone(), tenant);
        }
        for entry in self.principals.iter() {
            let (key, value) = entry?;
            let principal: Principal = decode(&key, &value)?;
            directory
                .principals
                .insert(principal.object_id.clone(), principal);
        }
        for entry in self.role_assignments.iter() {
            let (key, value) = entry?;
            let assignment: RoleAssignment = decode(&key, &value)?;
            directory
                .role_assignments
                .insert(assignment.id.to_ascii_lowercase(), assignment);
        }
        for entry in self.subscriptions.iter() {
            let (key, value) = entry?;
            directory.subscriptions.insert(
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
        Ok(directory)
    }

    /// The stored signing key, if any.
    pub fn load_signing_key(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        Ok(self
            .authority
            .get(SIGNING_KEY)?
            .map(|v| zeroize::Zeroizing::new(v.to_vec())))
    }

    /// Stores the signing key and flushes.
    pub fn save_signing_key(&self, scalar: &[u8]) -> Result<(), StoreError> {
        self.authority.insert(SIGNING_KEY, scalar)?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    /// Counts one more reopening of the store and flushes; returns how many came before this one
    /// (0 the first time; a store written before the count existed starts at 0 too).
    pub fn count_reopen(&self) -> Result<u64, StoreError> {
        let before = match self.authority.get(OPENS)? {
            None => 0,
            Some(bytes) => {
                let raw: [u8; 8] = bytes.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    key: "opens".into(),
                    reason: format!("{} bytes, not 8", bytes.len()),
                })?;
                u64::from_le_bytes(raw)
            }
        };
        self.authority
            .insert(OPENS, &before.saturating_add(1).to_le_bytes())?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(before)
    }

    /// Writes a tenant and flushes.
    pub fn save_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        self.tenants
            .insert(tenant.tenant_id.as_bytes(), encode(tenant))?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    /// Writes a role assignment and the tenant of its subscription (none at the root scope; an
    /// existing binding is kept), and flushes.
    pub fn save_role_assignment(
        &self,
        assignment: &RoleAssignment,
        subscription: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(subscription) = subscription {
            if self.subscriptions.get(subscription.as_bytes())?.is_none() {
                self.subscriptions
                    .insert(subscription.as_bytes(), assignment.tenant_id.as_bytes())?;
            }
        }
        self.role_assignments.insert(
            assignment.id.to_ascii_lowercase().as_bytes(),
            encode(assignment),
        )?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    /// Removes a role assignment (by its id, lower-cased) and flushes.
    pub fn remove_role_assignment(&self, id: &str) -> Result<(), StoreError> {
        self.role_assignments
            .remove(id.to_ascii_lowercase().as_bytes())?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    /// Writes a principal and flushes.
    pub fn save_principal(&self, principal: &Principal) -> Result<(), StoreError> {
        self.principals
            .insert(principal.object_id.as_bytes(), encode(principal))?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data structs always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}
