//! Where private keys live and how they are used: the [`KeyBackend`] trait, and [`Crypto`], the
//! backend of the running service (software keys sealed under the master key, HSM keys in the
//! emulated HSM).
//!
//! The domain calls the backend through this trait so that its rules stay free of I/O and of
//! any particular key store: it asks for "a new RSA-HSM key" or "decrypt with this material" and
//! never sees a private key. `key_id` (`vault/key/version`) binds sealed material to its key and
//! is the CKA_ID of HSM objects.
//!
//! A private operation comes in two steps, so that the service holds its state lock only for the
//! first: [`Crypto::ready`] (under the lock: cheap when the key version is in the
//! [`crate::keycache`], else it unseals and parses, or finds the HSM object, once) hands back a
//! [`Ready`] key, whose [`Ready::decrypt`] and [`Ready::sign`] run without any lock of the vault.

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use cmksim_sim::RandomSource;

use crate::crypto::{self, Sealer, SoftwareKey};
use crate::errors::KvError;
use crate::hsm::{HsmKey, HsmKeys};
use crate::keycache::{KeyCache, PARSED_KEYS_MAX};
use crate::model::{EncryptionAlgorithm, KeyType, PrivateMaterial, PublicKey, SignatureAlgorithm};
use crate::state::Change;

/// Generates keys and performs private-key operations.
pub trait KeyBackend {
    /// A new key of `kty` (and `key_size_bits` for RSA).
    fn generate(
        &mut self,
        kty: KeyType,
        key_size_bits: u32,
        key_id: &str,
    ) -> Result<(PublicKey, PrivateMaterial), KvError>;
    /// Decrypt / unwrapKey.
    fn decrypt(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError>;
    /// Sign a digest.
    fn sign(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KvError>;
    /// Destroys a key's private material (purge). Best effort: a purged key is gone from the
    /// vault's records whatever happens here.
    fn destroy(&mut self, material: &PrivateMaterial);
    /// Checks that a key's material still exists and is reachable, before a public-key
    /// operation (wrapKey, encrypt, verify) computed from the public half: an HSM key is used
    /// through its HSM, so a device error or a zeroised HSM fails those too.
    fn check_usable(&mut self, material: &PrivateMaterial) -> Result<(), KvError>;
}

/// A key version ready for private operations, shared (`Arc`) between the cache and the
/// operations under way.
#[derive(Debug)]
pub enum Ready {
    /// A software key, unsealed and parsed.
    Software(SoftwareKey),
    /// An HSM key: where it is in the module (no key material).
    Hsm(HsmKey),
}

impl Ready {
    /// Decrypt / unwrapKey.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        match self {
            Ready::Software(key) => key.decrypt(alg, ciphertext),
            Ready::Hsm(key) => key.decrypt(alg, ciphertext),
        }
    }

    /// Sign a digest.
    pub fn sign(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KvError> {
        match self {
            Ready::Software(key) => key.sign(alg, digest),
            Ready::Hsm(key) => key.sign(alg, digest),
        }
    }

    /// The latency to add before answering after an operation with this key: the HSM's
    /// injected latency for an HSM key, none for a software key.
    pub fn added_latency(&self) -> Duration {
        match self {
            Ready::Software(_) => Duration::ZERO,
            Ready::Hsm(key) => key.added_latency(),
        }
    }

    fn is_hsm(&self) -> bool {
        matches!(self, Ready::Hsm(_))
    }
}

/// The service's backend.
pub struct Crypto {
    sealer: Sealer,
    rng: RandomSource,
    hsm: Option<HsmKeys>,
    /// Key versions ready for private operations, at most [`PARSED_KEYS_MAX`].
    ready: KeyCache<Ready>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("hsm", &self.hsm.is_some())
            .finish()
    }
}

impl Crypto {
    /// A backend sealing software keys under `master_key`, drawing nonces and EC keys from `rng`,
    /// with HSM keys in `hsm` (None: HSM key types are refused).
    pub fn new(
        master_key: &[u8; 32],
        rng: RandomSource,
        hsm: Option<HsmKeys>,
    ) -> Result<Crypto, KvError> {
        Ok(Crypto {
            sealer: Sealer::new(master_key)?,
            rng,
            hsm,
            ready: KeyCache::new(PARSED_KEYS_MAX),
        })
    }

    /// The key version `key_id` ready for private operations: from the cache, or unsealed and
    /// parsed (software) or found in the module (HSM) and cached. The caller has run every check
    /// of the operation against the state first: the cache never decides who may use a key.
    pub fn ready(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
    ) -> Result<Arc<Ready>, KvError> {
        if let Some(ready) = self.ready.get(key_id) {
            return Ok(ready);
        }
        let ready = Arc::new(match material {
            PrivateMaterial::Sealed(sealed) => {
                let secret = self.sealer.open(key_id, sealed)?;
                Ready::Software(SoftwareKey::parse(kty, &secret)?)
            }
            PrivateMaterial::Hsm { cka_id } => Ready::Hsm(self.hsm()?.ready(cka_id)?),
        });
        self.ready.insert(key_id, Arc::clone(&ready));
        Ok(ready)
    }

    /// As [`Crypto::ready`], for signing `digest` with `alg`: an HSM key's digest is checked
    /// before the HSM is asked anything (a wrong digest length is the caller's error whatever
    /// state the HSM is in).
    pub fn ready_to_sign(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Arc<Ready>, KvError> {
        if let PrivateMaterial::Hsm { .. } = material {
            crate::hsm::check_sign_digest(alg, digest)?;
        }
        self.ready(kty, material, key_id)
    }

    /// Drops the ready keys a change of the vault's records makes stale: every version of a
    /// changed or removed key, every key of a changed or removed vault.
    pub fn forget(&mut self, change: &Change) {
        match change {
            Change::Key(vault, key) | Change::KeyRemoved(vault, key) => {
                self.ready.remove_prefix(&format!("{vault}/{key}/"));
            }
            Change::Vault(vault) | Change::VaultRemoved(vault) => {
                self.ready.remove_prefix(&format!("{vault}/"));
            }
        }
    }

    /// HSM tamper response ([`HsmKeys::tamper`]): zeroises the module and drops every ready HSM
    /// key (their sessions and objects are gone). Returns how many keys were zeroised.
    pub fn tamper_hsm(&mut self) -> Result<u64, KvError> {
        let zeroised = self.hsm()?.tamper();
        // Dropped whatever the module answered: a failed tamper response may have zeroised part
        // of the token, and a dropped entry only costs a new lookup.
        self.ready.remove_where(Ready::is_hsm);
        zeroised
    }

    /// True if the key version `key_id` is ready in the cache (tests of its invalidation).
    pub fn is_ready(&self, key_id: &str) -> bool {
        self.ready.contains(key_id)
    }

    /// Opens sealed software material (tests check that it never appears in a response).
    #[cfg(test)]
    pub(crate) fn open_sealed(
        &self,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        self.sealer.open(key_id, sealed)
    }

    /// The HSM, when one is attached (fault injection).
    pub fn hsm_keys(&mut self) -> Option<&mut HsmKeys> {
        self.hsm.as_mut()
    }

    /// The latency to add before answering, when the last operations went to the HSM (and
    /// resets that mark): the module never sleeps itself, the async service does, on the
    /// simulation clock.
    pub fn take_hsm_latency(&mut self) -> std::time::Duration {
        match self.hsm.as_mut() {
            Some(hsm) => {
                if hsm.take_used() {
                    hsm.added_latency()
                } else {
                    std::time::Duration::ZERO
                }
            }
            None => std::time::Duration::ZERO,
        }
    }

    fn hsm(&mut self) -> Result<&mut HsmKeys, KvError> {
        self.hsm.as_mut().ok_or_else(|| KvError::Internal {
            message: "no HSM is attached to this Key Vault".into(),
        })
    }
}

impl KeyBackend for Crypto {
    fn generate(
        &mut self,
        kty: KeyType,
        key_size_bits: u32,
        key_id: &str,
    ) -> Result<(PublicKey, PrivateMaterial), KvError> {
        if kty.is_hsm() {
            return self.hsm()?.generate(kty, key_size_bits, key_id);
        }
        let (public, secret) = crypto::generate_software(kty, key_size_bits, &mut self.rng)?;
        let sealed = self.sealer.seal(key_id, &secret, &mut self.rng)?;
        Ok((public, PrivateMaterial::Sealed(sealed)))
    }

    fn decrypt(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        self.ready(kty, material, key_id)?.decrypt(alg, ciphertext)
    }

    fn sign(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KvError> {
        self.ready_to_sign(kty, material, key_id, alg, digest)?
            .sign(alg, digest)
    }

    fn destroy(&mut self, material: &PrivateMaterial) {
        if let (PrivateMaterial::Hsm { cka_id }, Some(hsm)) = (material, self.hsm.as_mut()) {
            hsm.destroy(cka_id);
        }
    }

    fn check_usable(&mut self, material: &PrivateMaterial) -> Result<(), KvError> {
        match material {
            PrivateMaterial::Sealed(_) => Ok(()),
            PrivateMaterial::Hsm { cka_id } => self.hsm()?.check_present(cka_id),
        }
    }
}
