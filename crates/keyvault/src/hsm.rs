//! HSM-protected keys (`RSA-HSM`, `EC-HSM`): generated inside the emulated PKCS#11 module and
//! used there; the vault keeps only the object's CKA_ID (`vault/key/version`) and the public half.
//!
//! The module is opened on a subdirectory of the Key Vault data directory, so its token, PINs and
//! objects survive a restart with the vault. The vault service is the token's only user: its SO
//! and user PINs are derived from the vault service's master key (SHA-256 with a label), so they
//! are stable across restarts and never written anywhere. Private keys are created `SENSITIVE`,
//! not `EXTRACTABLE`: the module itself refuses to let them out.
//!
//! Key Vault algorithm → PKCS#11 mechanism: RSA-OAEP → `CKM_RSA_PKCS_OAEP` (SHA-1), RSA-OAEP-256
//! → `CKM_RSA_PKCS_OAEP` (SHA-256), RSA1_5 → `CKM_RSA_PKCS`, RS256 → `CKM_RSA_PKCS` over the
//! SHA-256 `DigestInfo`, PS256 → `CKM_RSA_PKCS_PSS` (SHA-256, 32-byte salt), ES256 →
//! `CKM_ECDSA` (`r || s`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use cmksim_hsm::{
    Attribute, AttributeType, Ckr, Fault, Mechanism, Module, ModuleConfig, ObjectClass,
    ObjectHandle, PssParams, SessionHandle, SlotId, UserType,
};
use cmksim_sim::RandomSource;

use crate::errors::KvError;
use crate::model::{EncryptionAlgorithm, KeyType, PrivateMaterial, PublicKey, SignatureAlgorithm};

const SLOT: SlotId = SlotId(0);
const TOKEN_LABEL: &str = "cmksim-keyvault";

/// The key identifier (`https://{vault}.vault.azure.net/keys/{name}/{version}`) of a CKA_ID
/// (`vault/key/version`), for error messages.
pub fn kid_of(cka_id: &[u8]) -> String {
    let id = String::from_utf8_lossy(cka_id);
    let parts: Vec<&str> = id.split('/').collect();
    match parts.as_slice() {
        [vault, name, version] => {
            format!("https://{vault}.vault.azure.net/keys/{name}/{version}")
        }
        _ => id.into_owned(),
    }
}

/// A PKCS#11 return code as the vault's answer, for a call on the key `cka_id`:
/// `CKR_DEVICE_ERROR` is a retryable server-side failure; `CKR_DEVICE_REMOVED` (a tampered,
/// not yet re-initialised token) means the key was zeroised.
fn ckr(call: &str, cka_id: &[u8], e: Ckr) -> KvError {
    match e {
        Ckr::EncryptedDataInvalid | Ckr::EncryptedDataLenRange => KvError::BadParameter {
            message: "The ciphertext could not be decrypted with this key and algorithm.".into(),
        },
        Ckr::DeviceError => KvError::HsmDeviceError {
            key: kid_of(cka_id),
            call: call.to_string(),
        },
        Ckr::DeviceRemoved => KvError::KeyMaterialDestroyed {
            key: kid_of(cka_id),
        },
        other => KvError::Internal {
            message: format!("HSM {call} failed: {other}"),
        },
    }
}

fn pin(master_key: &[u8; 32], label: &str) -> Zeroizing<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"cmksim/keyvault/hsm-pin/");
    ctx.update(label.as_bytes());
    ctx.update(master_key);
    Zeroizing::new(hex::encode(&ctx.finish().as_ref()[..16]))
}

/// The vault's logged-in session on the emulated HSM.
///
/// Faults: a device error or latency is the module's own ([`Module::set_fault`]); a tamper
/// ([`HsmKeys::tamper`]) zeroises every key and leaves the token uninitialised, after which the
/// vault re-initialises it at once (as it would at its next start), so that new HSM keys can be
/// created while the old ones are gone: their CKA_ID is found nowhere, and every operation on
/// them answers [`KvError::KeyMaterialDestroyed`], before and after a restart alike.
pub struct HsmKeys {
    /// Shared with the [`HsmKey`]s handed out, which use it outside the vault's lock (the
    /// module has its own lock and releases it before any cryptography).
    module: Arc<Module>,
    /// `None` while the token must be (re-)initialised and logged into (after a tamper whose
    /// re-initialisation failed, e.g. under a device error).
    session: Option<SessionHandle>,
    so_pin: Zeroizing<String>,
    user_pin: Zeroizing<String>,
    /// Set by every operation that went to the module since the last [`HsmKeys::take_used`]
    /// (the service then adds the module's latency before answering).
    used: bool,
}

impl std::fmt::Debug for HsmKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKeys")
            .field("session", &self.session)
            .finish()
    }
}

/// The vault's module: the default device, with PIN hashes of the work factor for secrets a
/// machine drew ([`cmksim_identity::directory::SECRET_HASH_ITERATIONS`], not the device's 10,000
/// for PINs a person chose): the vault's PINs are 128 bits derived from its master key ([`pin`]).
/// A PIN is hashed when the token or PIN is set and checked at login; the vault logs in once per
/// session ([`HsmKeys::session`]), as a client of a real HSM does, never per operation. A token
/// initialised with another work factor keeps its own: each PIN hash records its iterations.
fn module_config() -> ModuleConfig {
    ModuleConfig {
        pin_kdf_iterations: cmksim_identity::directory::SECRET_HASH_ITERATIONS,
        ..ModuleConfig::default()
    }
}

/// A generic failure of the module outside any key (open, login).
fn setup(call: &str, e: Ckr) -> KvError {
    ckr(call, b"", e)
}

impl HsmKeys {
    /// Opens the module in `dir`, initialising its token on first use (or after a tamper), and
    /// logs in as user.
    pub fn open(dir: &Path, master_key: &[u8; 32], rng: RandomSource) -> Result<HsmKeys, KvError> {
        let module = Module::open(dir, module_config(), rng).map_err(|e| KvError::Internal {
            message: format!("HSM open failed: {e}"),
        })?;
        let mut keys = HsmKeys {
            module: Arc::new(module),
            session: None,
            so_pin: pin(master_key, "so"),
            user_pin: pin(master_key, "user"),
            used: false,
        };
        keys.session()?;
        Ok(keys)
    }

    /// The logged-in session, initialising the token and its user PIN when needed.
    fn session(&mut self) -> Result<SessionHandle, KvError> {
        if let Some(session) = self.session {
            return Ok(session);
        }
        let module = &self.module;
        let (so_pin, user_pin) = (self.so_pin.as_str(), self.user_pin.as_str());
        let info = module
            .c_get_token_info(SLOT)
            .map_err(|e| setup("C_GetTokenInfo", e))?;
        if !info.initialized {
            module
                .c_init_token(SLOT, so_pin, TOKEN_LABEL)
                .map_err(|e| setup("C_InitToken", e))?;
        }
        let info = module
            .c_get_token_info(SLOT)
            .map_err(|e| setup("C_GetTokenInfo", e))?;
        if !info.user_pin_initialized {
            let s = module
                .c_open_session(SLOT, true)
                .map_err(|e| setup("C_OpenSession", e))?;
            module
                .c_login(s, UserType::So, so_pin)
                .map_err(|e| setup("C_Login(SO)", e))?;
            module
                .c_init_pin(s, user_pin)
                .map_err(|e| setup("C_InitPIN", e))?;
            module.c_logout(s).map_err(|e| setup("C_Logout", e))?;
            module
                .c_close_session(s)
                .map_err(|e| setup("C_CloseSession", e))?;
        }
        let session = module
            .c_open_session(SLOT, true)
            .map_err(|e| setup("C_OpenSession", e))?;
        module
            .c_login(session, UserType::User, user_pin)
            .map_err(|e| setup("C_Login", e))?;
        self.session = Some(session);
        Ok(session)
    }

    /// The module (for fault injection and inspection by the caller).
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Injects (or clears, with [`Fault::None`]) a device fault.
    pub fn set_fault(&self, fault: Fault) {
        self.module.set_fault(fault);
    }

    /// The latency the module asks its callers to add (simulated time).
    pub fn added_latency(&self) -> Duration {
        self.module.added_latency()
    }

    /// True when an operation went to the module since the last call (and resets the flag).
    pub fn take_used(&mut self) -> bool {
        std::mem::take(&mut self.used)
    }

    /// Tamper response: the module zeroises every key, for good. Returns how many keys (key
    /// pairs) were zeroised. The token is then re-initialised for new keys (best effort: under
    /// a device error it is retried at the next use).
    pub fn tamper(&mut self) -> Result<u64, KvError> {
        let zeroised = match self.session() {
            Ok(session) => self
                .module
                .c_find_objects(session, &[Attribute::Class(ObjectClass::PrivateKey)])
                .map(|handles| handles.len() as u64)
                .unwrap_or_else(|_| {
                    // Under a device error the count cannot be read; the token's object count
                    // (public + private halves) still can.
                    self.module
                        .c_get_token_info(SLOT)
                        .map(|i| i.object_count / 2)
                        .unwrap_or(0)
                }),
            Err(_) => 0,
        };
        self.module
            .tamper()
            .map_err(|e| setup("tamper response", e))?;
        self.session = None;
        let _ = self.session();
        Ok(zeroised)
    }

    /// Generates a key pair inside the module.
    pub fn generate(
        &mut self,
        kty: KeyType,
        key_size_bits: u32,
        key_id: &str,
    ) -> Result<(PublicKey, PrivateMaterial), KvError> {
        let id = key_id.as_bytes().to_vec();
        self.used = true;
        let session = self.session_for(&id)?;
        let label = Attribute::Label(key_id.to_string());
        let common = |usage: Vec<Attribute>| {
            let mut t = vec![
                Attribute::Token(true),
                label.clone(),
                Attribute::Id(id.clone()),
            ];
            t.extend(usage);
            t
        };
        let private_template = |usage: Vec<Attribute>| {
            let mut t = common(usage);
            t.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ]);
            t
        };
        match kty {
            KeyType::RsaHsm => {
                let mut public_t = common(vec![Attribute::Encrypt(true), Attribute::Verify(true)]);
                public_t.push(Attribute::ModulusBits(u64::from(key_size_bits)));
                let private_t =
                    private_template(vec![Attribute::Decrypt(true), Attribute::Sign(true)]);
                let (public, _private) = self
                    .module
                    .c_generate_key_pair(
                        session,
                        &Mechanism::RsaPkcsKeyPairGen,
                        &public_t,
                        &private_t,
                    )
                    .map_err(|e| ckr("C_GenerateKeyPair", &id, e))?;
                let values = self
                    .module
                    .c_get_attribute_value(
                        session,
                        public,
                        &[AttributeType::Modulus, AttributeType::PublicExponent],
                    )
                    .map_err(|e| ckr("C_GetAttributeValue", &id, e))?;
                let (mut n, mut e) = (Vec::new(), Vec::new());
                for value in values {
                    match value {
                        Attribute::Modulus(v) => n = v,
                        Attribute::PublicExponent(v) => e = v,
                        _ => {}
                    }
                }
                if n.is_empty() || e.is_empty() {
                    return Err(KvError::Internal {
                        message: "HSM returned no RSA public key".into(),
                    });
                }
                Ok((PublicKey::Rsa { n, e }, PrivateMaterial::Hsm { cka_id: id }))
            }
            KeyType::EcHsm => {
                let mut public_t = common(vec![Attribute::Verify(true)]);
                public_t.push(Attribute::EcParams(cmksim_hsm::P256_EC_PARAMS_DER.to_vec()));
                let private_t = private_template(vec![Attribute::Sign(true)]);
                let (public, _private) = self
                    .module
                    .c_generate_key_pair(session, &Mechanism::EcKeyPairGen, &public_t, &private_t)
                    .map_err(|e| ckr("C_GenerateKeyPair", &id, e))?;
                let values = self
                    .module
                    .c_get_attribute_value(session, public, &[AttributeType::EcPoint])
                    .map_err(|e| ckr("C_GetAttributeValue", &id, e))?;
                let point = values
                    .into_iter()
                    .find_map(|a| {
                        if let Attribute::EcPoint(p) = a {
                            Some(p)
                        } else {
                            None
                        }
                    })
                    .unwrap_or_default();
                // CKA_EC_POINT = DER OCTET STRING (04 41) around the uncompressed point 04 || x || y.
                if point.len() != 67 || point[0] != 0x04 || point[2] != 0x04 {
                    return Err(KvError::Internal {
                        message: "HSM returned a malformed EC point".into(),
                    });
                }
                Ok((
                    PublicKey::Ec {
                        x: point[3..35].to_vec(),
                        y: point[35..67].to_vec(),
                    },
                    PrivateMaterial::Hsm { cka_id: id },
                ))
            }
            KeyType::Rsa | KeyType::Ec => Err(KvError::Internal {
                message: "software keys are not generated in the HSM".into(),
            }),
        }
    }

    /// The session, for an operation on the key `cka_id` (errors name that key).
    fn session_for(&mut self, cka_id: &[u8]) -> Result<SessionHandle, KvError> {
        self.session().map_err(|e| match e {
            KvError::HsmDeviceError { call, .. } => KvError::HsmDeviceError {
                key: kid_of(cka_id),
                call,
            },
            KvError::KeyMaterialDestroyed { .. } => KvError::KeyMaterialDestroyed {
                key: kid_of(cka_id),
            },
            other => other,
        })
    }

    fn find(
        &self,
        session: SessionHandle,
        class: ObjectClass,
        cka_id: &[u8],
    ) -> Result<Vec<ObjectHandle>, KvError> {
        self.module
            .c_find_objects(
                session,
                &[Attribute::Class(class), Attribute::Id(cka_id.to_vec())],
            )
            .map_err(|e| ckr("C_FindObjects", cka_id, e))
    }

    /// The key's private half. A key the vault knows but the HSM does not hold any more was
    /// zeroised (tamper): nothing else removes HSM objects while their key is in the vault.
    fn private_handle(&mut self, cka_id: &[u8]) -> Result<(SessionHandle, ObjectHandle), KvError> {
        self.used = true;
        let session = self.session_for(cka_id)?;
        let handle = self
            .find(session, ObjectClass::PrivateKey, cka_id)?
            .into_iter()
            .next()
            .ok_or_else(|| KvError::KeyMaterialDestroyed {
                key: kid_of(cka_id),
            })?;
        Ok((session, handle))
    }

    /// Checks that the module still holds the key, before a public-key operation (wrapKey,
    /// encrypt, verify) that the vault computes from the public half it keeps: an HSM key is
    /// used through the HSM, so a device error, latency or a zeroised key affect those too.
    pub fn check_present(&mut self, cka_id: &[u8]) -> Result<(), KvError> {
        self.private_handle(cka_id).map(|_| ())
    }

    /// The key `cka_id` ready for private operations: its private object found once, with the
    /// session to use it in. The vault caches it per key version ([`crate::keycache`]).
    pub fn ready(&mut self, cka_id: &[u8]) -> Result<HsmKey, KvError> {
        let (session, handle) = self.private_handle(cka_id)?;
        Ok(HsmKey {
            module: Arc::clone(&self.module),
            session,
            handle,
            cka_id: cka_id.to_vec(),
        })
    }

    /// Decrypt / unwrapKey inside the module.
    pub fn decrypt(
        &mut self,
        _kty: KeyType,
        cka_id: &[u8],
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        self.ready(cka_id)?.decrypt(alg, ciphertext)
    }

    /// Sign a digest inside the module.
    pub fn sign(
        &mut self,
        _kty: KeyType,
        cka_id: &[u8],
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KvError> {
        check_sign_digest(alg, digest)?;
        self.ready(cka_id)?.sign(alg, digest)
    }

    /// Destroys both halves of a key (purge).
    pub fn destroy(&mut self, cka_id: &[u8]) {
        let Ok(session) = self.session_for(cka_id) else {
            return;
        };
        for class in [ObjectClass::PrivateKey, ObjectClass::PublicKey] {
            for handle in self.find(session, class, cka_id).unwrap_or_default() {
                // The vault forgets the key whatever happens here: a failure leaves an orphan
                // object in the HSM, never a usable key in the vault, and is said so.
                if let Err(e) = self.module.c_destroy_object(session, handle) {
                    tracing::warn!(
                        "purge: C_DestroyObject of {} ({class:?}) failed with {e}; the object \
                         stays in the HSM, unreachable from the vault",
                        kid_of(cka_id)
                    );
                }
            }
        }
    }
}

/// Refuses a digest that is not 32 bytes (SHA-256), before the HSM is asked anything.
pub(crate) fn check_sign_digest(alg: SignatureAlgorithm, digest: &[u8]) -> Result<(), KvError> {
    if digest.len() != crate::crypto::SHA256_DIGEST_BYTES {
        return Err(KvError::BadParameter {
            message: format!(
                "The digest must be 32 bytes (SHA-256) for {alg}; got {} bytes.",
                digest.len()
            ),
        });
    }
    Ok(())
}

/// An HSM key found in the module, usable without the vault's lock: the module, the vault's
/// session and the private object's handle. It holds no key material.
///
/// A handle outlives its object only if the token is zeroised (tamper) or the key purged after
/// the handle was taken; the module then answers `CKR_OBJECT_HANDLE_INVALID` or
/// `CKR_SESSION_HANDLE_INVALID`, which this reports as [`KvError::KeyMaterialDestroyed`], as a
/// fresh lookup would. The vault drops cached `HsmKey`s on tamper and purge, so only an
/// operation already under way when that happens sees it.
pub struct HsmKey {
    module: Arc<Module>,
    session: SessionHandle,
    handle: ObjectHandle,
    cka_id: Vec<u8>,
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKey")
            .field("session", &self.session)
            .field("handle", &self.handle)
            .finish()
    }
}

impl HsmKey {
    fn error(&self, call: &str, e: Ckr) -> KvError {
        match e {
            Ckr::ObjectHandleInvalid | Ckr::SessionHandleInvalid | Ckr::UserNotLoggedIn => {
                KvError::KeyMaterialDestroyed {
                    key: kid_of(&self.cka_id),
                }
            }
            other => ckr(call, &self.cka_id, other),
        }
    }

    /// The latency the module asks its callers to add after this key's operation.
    pub fn added_latency(&self) -> Duration {
        self.module.added_latency()
    }

    /// Decrypt / unwrapKey inside the module.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        let mechanism = match alg {
            EncryptionAlgorithm::RsaOaep => Mechanism::rsa_oaep_sha1(),
            EncryptionAlgorithm::RsaOaep256 => Mechanism::rsa_oaep_sha256(),
            EncryptionAlgorithm::Rsa15 => Mechanism::RsaPkcs,
        };
        self.module
            .c_decrypt(self.session, &mechanism, self.handle, ciphertext)
            .map(Zeroizing::new)
            .map_err(|e| self.error("C_Decrypt", e))
    }

    /// Sign a SHA-256 digest inside the module.
    pub fn sign(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KvError> {
        check_sign_digest(alg, digest)?;
        let mut digest_bytes = [0u8; 32];
        digest_bytes.copy_from_slice(digest);
        let (mechanism, data) = match alg {
            SignatureAlgorithm::Rs256 => (
                Mechanism::RsaPkcs,
                cmksim_hsm::sha256_digest_info(&digest_bytes),
            ),
            SignatureAlgorithm::Ps256 => {
                (Mechanism::RsaPkcsPss(PssParams::sha256()), digest.to_vec())
            }
            SignatureAlgorithm::Es256 => (Mechanism::Ecdsa, digest.to_vec()),
        };
        self.module
            .c_sign(self.session, &mechanism, self.handle, &data)
            .map_err(|e| self.error("C_Sign", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_hsm::UserType;

    #[test]
    fn a_token_whose_pins_were_hashed_with_another_work_factor_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let master_key = [3u8; 32];
        {
            // The token as an earlier vault left it: PIN hashes of the device's default 10,000.
            let module = Module::open(
                dir.path(),
                ModuleConfig::default(),
                RandomSource::from_seed([1; 32]),
            )
            .unwrap();
            let (so_pin, user_pin) = (pin(&master_key, "so"), pin(&master_key, "user"));
            module.c_init_token(SLOT, &so_pin, TOKEN_LABEL).unwrap();
            let session = module.c_open_session(SLOT, true).unwrap();
            module.c_login(session, UserType::So, &so_pin).unwrap();
            module.c_init_pin(session, &user_pin).unwrap();
            module.c_close_session(session).unwrap();
        }
        assert_ne!(
            module_config().pin_kdf_iterations,
            ModuleConfig::default().pin_kdf_iterations
        );
        let keys = HsmKeys::open(dir.path(), &master_key, RandomSource::from_seed([2; 32]));
        assert!(keys.is_ok_and(|k| k.session.is_some()));
    }
}
