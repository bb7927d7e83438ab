//! The Key Vault data model: vaults, access policies, keys and their versions, as plain data.
//!
//! Enums make the closed sets closed (SKU, key type, permission, key operation, algorithm), each
//! with its exact Azure spelling, so that a typo in a request is refused at the edge and never
//! reaches the state. Everything is serde-serialisable because the store persists these records
//! as they are; maps are `BTreeMap` so that listings and the event log are deterministic.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Defines an enum with an exact Azure spelling for each variant.
macro_rules! azure_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The Azure spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parses the Azure spelling (case-insensitive, as Azure accepts).
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str().eq_ignore_ascii_case(text))
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

azure_enum!(
    /// The vault's pricing tier: HSM-protected keys need premium.
    Sku { Standard => "standard", Premium => "premium" }
);

azure_enum!(
    /// Key permissions of an access policy (the full Azure list).
    KeyPermission {
        Get => "get", List => "list", Update => "update", Create => "create", Import => "import",
        Delete => "delete", Recover => "recover", Backup => "backup", Restore => "restore",
        Decrypt => "decrypt", Encrypt => "encrypt", UnwrapKey => "unwrapKey", WrapKey => "wrapKey",
        Verify => "verify", Sign => "sign", Purge => "purge", Rotate => "rotate",
        GetRotationPolicy => "getrotationpolicy", SetRotationPolicy => "setrotationpolicy",
        Release => "release",
    }
);

azure_enum!(
    /// Operations a key allows (`key_ops`).
    KeyOp {
        Encrypt => "encrypt", Decrypt => "decrypt", Sign => "sign", Verify => "verify",
        WrapKey => "wrapKey", UnwrapKey => "unwrapKey",
    }
);

azure_enum!(
    /// Key types.
    KeyType { Rsa => "RSA", RsaHsm => "RSA-HSM", Ec => "EC", EcHsm => "EC-HSM" }
);

azure_enum!(
    /// Encryption / key-wrap algorithms.
    EncryptionAlgorithm { RsaOaep => "RSA-OAEP", RsaOaep256 => "RSA-OAEP-256", Rsa15 => "RSA1_5" }
);

azure_enum!(
    /// Signature algorithms.
    SignatureAlgorithm { Rs256 => "RS256", Ps256 => "PS256", Es256 => "ES256" }
);

impl KeyType {
    /// True for keys that live in the HSM.
    pub fn is_hsm(self) -> bool {
        matches!(self, KeyType::RsaHsm | KeyType::EcHsm)
    }
    /// True for RSA keys (software or HSM).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa | KeyType::RsaHsm)
    }
    /// The operations a new key of this type allows when the caller names none.
    pub fn default_ops(self) -> Vec<KeyOp> {
        if self.is_rsa() {
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
    /// The operations this type can perform at all.
    pub fn supported_ops(self) -> &'static [KeyOp] {
        if self.is_rsa() {
            KeyOp::ALL
        } else {
            &[KeyOp::Sign, KeyOp::Verify]
        }
    }
}

/// One access policy: an object id and its key permissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    pub tenant_id: String,
    pub object_id: String,
    pub key_permissions: BTreeSet<KeyPermission>,
}

/// A vault's properties.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vault {
    pub name: String,
    pub location: String,
    pub tenant_id: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub sku: Sku,
    pub enable_soft_delete: bool,
    pub soft_delete_retention_days: u32,
    pub enable_purge_protection: bool,
    /// object id → policy.
    pub access_policies: BTreeMap<String, AccessPolicy>,
    pub created_ms: i64,
}

impl Vault {
    /// `https://{name}.vault.azure.net`
    pub fn uri(&self) -> String {
        format!("https://{}.vault.azure.net", self.name)
    }

    /// The recovery level Azure reports for objects in this vault: "Recoverable" with purge
    /// protection (purge refused until the retention has passed), "Recoverable+Purgeable" with
    /// soft delete only, "Purgeable" without soft delete.
    pub fn recovery_level(&self) -> &'static str {
        match (self.enable_soft_delete, self.enable_purge_protection) {
            (true, true) => "Recoverable",
            (true, false) => "Recoverable+Purgeable",
            (false, _) => "Purgeable",
        }
    }
}

/// When a soft-deleted object was deleted and when it will be purged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub deleted_ms: i64,
    pub scheduled_purge_ms: i64,
}

/// The public half of a key, as the JWK shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { x: Vec<u8>, y: Vec<u8> },
}

/// Where the private half lives. Never serialised into any API response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrivateMaterial {
    /// Held by the vault: PKCS#8 (RSA) or the 32-byte scalar (EC), sealed with AES-256-GCM under
    /// the vault service's master key (`nonce || ciphertext || tag`).
    Sealed(Vec<u8>),
    /// Held by the HSM: only the object's CKA_ID; the key never leaves the module.
    Hsm { cka_id: Vec<u8> },
}

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersion {
    pub version: String,
    pub kty: KeyType,
    /// RSA modulus size in bits (0 for EC).
    pub key_size_bits: u32,
    pub key_ops: Vec<KeyOp>,
    pub enabled: bool,
    pub nbf_ms: Option<i64>,
    pub exp_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub tags: BTreeMap<String, String>,
    pub public: PublicKey,
    pub private: PrivateMaterial,
}

impl KeyVersion {
    /// True when `now_ms` is inside `[nbf, exp)`.
    pub fn in_validity_period(&self, now_ms: i64) -> bool {
        self.nbf_ms.is_none_or(|nbf| now_ms >= nbf) && self.exp_ms.is_none_or(|exp| now_ms < exp)
    }
}

/// A key: its versions (oldest first) and, when soft-deleted, its deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub name: String,
    pub versions: Vec<KeyVersion>,
    pub deleted: Option<Deletion>,
}

impl Key {
    /// The newest version.
    pub fn newest(&self) -> Option<&KeyVersion> {
        self.versions.last()
    }
    /// A version by id, or the newest for an empty id.
    pub fn version(&self, version: &str) -> Option<&KeyVersion> {
        if version.is_empty() {
            self.newest()
        } else {
            self.versions.iter().find(|v| v.version == version)
        }
    }
}

/// A vault with its keys and, when soft-deleted, its deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultEntry {
    pub vault: Vault,
    pub deleted: Option<Deletion>,
    /// key name (lowercase) → key.
    pub keys: BTreeMap<String, Key>,
}
