//! Where private keys live and how they are used: the [`KeyBackend`] trait, and [`Crypto`], the
//! backend of the running service (software keys sealed under the master key, HSM keys in the
//! emulated HSM).
//!
//! The domain calls the backend through this trait so that its rules stay free of I/O and of
//! any particular key store: it asks for "a new RSA-HSM key" or "decrypt with this material" and
//! never sees a private key. `key_id` (`vault/key/version`) binds sealed material to its key and
//! is the CKA_ID of HSM objects.

use zeroize::Zeroizing;

use cmksim_sim::RandomSource;

use crate::crypto::{self, Sealer};
use crate::errors::KvError;
use crate::hsm::HsmKeys;
use crate::model::{EncryptionAlgorithm, KeyType, PrivateMaterial, PublicKey, SignatureAlgorithm};

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

/// The service's backend.
pub struct Crypto {
    sealer: Sealer,
    rng: RandomSource,
    hsm: Option<HsmKeys>,
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
        })
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
        match material {
            PrivateMaterial::Sealed(sealed) => {
                let secret = self.sealer.open(key_id, sealed)?;
                crypto::software_decrypt(&secret, alg, ciphertext)
            }
            PrivateMaterial::Hsm { cka_id } => self.hsm()?.decrypt(kty, cka_id, alg, ciphertext),
        }
    }

    fn sign(
        &mut self,
        kty: KeyType,
        material: &PrivateMaterial,
        key_id: &str,
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KvError> {
        match material {
            PrivateMaterial::Sealed(sealed) => {
                let secret = self.sealer.open(key_id, sealed)?;
                crypto::software_sign(kty, &secret, alg, digest)
            }
            PrivateMaterial::Hsm { cka_id } => self.hsm()?.sign(kty, cka_id, alg, digest),
        }
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
