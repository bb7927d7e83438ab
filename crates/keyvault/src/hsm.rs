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

use zeroize::Zeroizing;

use cmksim_hsm::{
    Attribute, AttributeType, Ckr, Mechanism, Module, ModuleConfig, ObjectClass, ObjectHandle,
    PssParams, SessionHandle, SlotId, UserType,
};
use cmksim_sim::RandomSource;

use crate::errors::KvError;
use crate::model::{EncryptionAlgorithm, KeyType, PrivateMaterial, PublicKey, SignatureAlgorithm};

const SLOT: SlotId = SlotId(0);
const TOKEN_LABEL: &str = "cmksim-keyvault";

fn ckr(call: &str, e: Ckr) -> KvError {
    match e {
        Ckr::EncryptedDataInvalid | Ckr::EncryptedDataLenRange => KvError::BadParameter {
            message: "The ciphertext could not be decrypted with this key and algorithm.".into(),
        },
        other => KvError::Internal {
            message: format!("HSM {call} failed: {other}"),
        },
    }
}

fn pin(master_key: &[u8; 32], label: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"cmksim/keyvault/hsm-pin/");
    ctx.update(label.as_bytes());
    ctx.update(master_key);
    hex::encode(&ctx.finish().as_ref()[..16])
}

/// The vault's logged-in session on the emulated HSM.
pub struct HsmKeys {
    module: Module,
    session: SessionHandle,
}

impl std::fmt::Debug for HsmKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKeys")
            .field("session", &self.session)
            .finish()
    }
}

impl HsmKeys {
    /// Opens the module in `dir`, initialising its token on first use, and logs in as user.
    pub fn open(dir: &Path, master_key: &[u8; 32], rng: RandomSource) -> Result<HsmKeys, KvError> {
        let module =
            Module::open(dir, ModuleConfig::default(), rng).map_err(|e| KvError::Internal {
                message: format!("HSM open failed: {e}"),
            })?;
        let (so_pin, user_pin) = (pin(master_key, "so"), pin(master_key, "user"));
        let info = module
            .c_get_token_info(SLOT)
            .map_err(|e| ckr("C_GetTokenInfo", e))?;
        if !info.initialized {
            module
                .c_init_token(SLOT, &so_pin, TOKEN_LABEL)
                .map_err(|e| ckr("C_InitToken", e))?;
        }
        if !info.user_pin_initialized {
            let s = module
                .c_open_session(SLOT, true)
                .map_err(|e| ckr("C_OpenSession", e))?;
            module
                .c_login(s, UserType::So, &so_pin)
                .map_err(|e| ckr("C_Login(SO)", e))?;
            module
                .c_init_pin(s, &user_pin)
                .map_err(|e| ckr("C_InitPIN", e))?;
            module.c_logout(s).map_err(|e| ckr("C_Logout", e))?;
            module
                .c_close_session(s)
                .map_err(|e| ckr("C_CloseSession", e))?;
        }
        let session = module
            .c_open_session(SLOT, true)
            .map_err(|e| ckr("C_OpenSession", e))?;
        module
            .c_login(session, UserType::User, &user_pin)
            .map_err(|e| ckr("C_Login", e))?;
        Ok(HsmKeys { module, session })
    }

    /// The module (for fault injection and inspection by the caller).
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Generates a key pair inside the module.
    pub fn generate(
        &mut self,
        kty: KeyType,
        key_size_bits: u32,
        key_id: &str,
    ) -> Result<(PublicKey, PrivateMaterial), KvError> {
        let id = key_id.as_bytes().to_vec();
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
                        self.session,
                        &Mechanism::RsaPkcsKeyPairGen,
                        &public_t,
                        &private_t,
                    )
                    .map_err(|e| ckr("C_GenerateKeyPair", e))?;
                let values = self
                    .module
                    .c_get_attribute_value(
                        self.session,
                        public,
                        &[AttributeType::Modulus, AttributeType::PublicExponent],
                    )
                    .map_err(|e| ckr("C_GetAttributeValue", e))?;
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
                    .c_generate_key_pair(
                        self.session,
                        &Mechanism::EcKeyPairGen,
                        &public_t,
                        &private_t,
                    )
                    .map_err(|e| ckr("C_GenerateKeyPair", e))?;
                let values = self
                    .module
                    .c_get_attribute_value(self.session, public, &[AttributeType::EcPoint])
                    .map_err(|e| ckr("C_GetAttributeValue", e))?;
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

    fn find(&self, class: ObjectClass, cka_id: &[u8]) -> Result<Vec<ObjectHandle>, KvError> {
        self.module
            .c_find_objects(
                self.session,
                &[Attribute::Class(class), Attribute::Id(cka_id.to_vec())],
            )
            .map_err(|e| ckr("C_FindObjects", e))
    }

    fn private_handle(&self, cka_id: &[u8]) -> Result<ObjectHandle, KvError> {
        self.find(ObjectClass::PrivateKey, cka_id)?
            .into_iter()
            .next()
            .ok_or_else(|| KvError::Internal {
                message: format!("HSM has no private key {}", String::from_utf8_lossy(cka_id)),
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
        let handle = self.private_handle(cka_id)?;
        let mechanism = match alg {
            EncryptionAlgorithm::RsaOaep => Mechanism::rsa_oaep_sha1(),
            EncryptionAlgorithm::RsaOaep256 => Mechanism::rsa_oaep_sha256(),
            EncryptionAlgorithm::Rsa15 => Mechanism::RsaPkcs,
        };
        self.module
            .c_decrypt(self.session, &mechanism, handle, ciphertext)
            .map(Zeroizing::new)
            .map_err(|e| ckr("C_Decrypt", e))
    }

    /// Sign a digest inside the module.
    pub fn sign(
        &mut self,
        _kty: KeyType,
        cka_id: &[u8],
        alg: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, KvError> {
        if digest.len() != crate::crypto::SHA256_DIGEST_BYTES {
            return Err(KvError::BadParameter {
                message: format!(
                    "The digest must be 32 bytes (SHA-256) for {alg}; got {} bytes.",
                    digest.len()
                ),
            });
        }
        let mut digest_bytes = [0u8; 32];
        digest_bytes.copy_from_slice(digest);
        let handle = self.private_handle(cka_id)?;
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
            .c_sign(self.session, &mechanism, handle, &data)
            .map_err(|e| ckr("C_Sign", e))
    }

    /// Destroys both halves of a key (purge).
    pub fn destroy(&mut self, cka_id: &[u8]) {
        for class in [ObjectClass::PrivateKey, ObjectClass::PublicKey] {
            for handle in self.find(class, cka_id).unwrap_or_default() {
                // Best effort: a failure leaves an orphan object in the HSM, never a usable key
                // in the vault.
                let _ = self.module.c_destroy_object(self.session, handle);
            }
        }
    }
}
