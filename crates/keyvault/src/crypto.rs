//! The vault's own cryptography: software keys, public-key operations, and sealing at rest.
//!
//! - Software RSA keys are aws-lc-rs key pairs kept as PKCS#8; EC P-256 keys are p256 scalars.
//!   Both are sealed with AES-256-GCM under the vault service's master key ([`Sealer`]) before
//!   they reach the store, with the key id as associated data so that a sealed blob cannot be
//!   moved to another key.
//! - Public-key operations (encrypt, wrapKey, verify) need only the public half, so they are the
//!   same for software and HSM keys and live here as pure functions over [`PublicKey`].
//! - Private operations on software keys (decrypt, unwrapKey, sign) open the sealed material,
//!   use it, and wipe it (`Zeroizing`).
//!
//! Sign and verify take a digest (Key Vault signs digests, not messages): RSA through
//! aws-lc-rs `sign_digest` / `verify_digest`, ECDSA through p256's prehash API.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, RsaKeyPair, UnparsedPublicKey};
use cmksim_hsm::RsaKeySeed;
use cmksim_sim::RandomSource;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::errors::KvError;
use crate::model::{EncryptionAlgorithm, KeyType, PublicKey, SignatureAlgorithm};

/// Length of a SHA-256 digest: the only digest RS256/PS256/ES256 accept.
pub const SHA256_DIGEST_BYTES: usize = 32;

fn internal(what: &str) -> KvError {
    KvError::Internal {
        message: format!("cryptographic failure: {what}"),
    }
}

fn bad(message: impl Into<String>) -> KvError {
    KvError::BadParameter {
        message: message.into(),
    }
}

/// AES-256-GCM under the vault service's master key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer over a 32-byte master key.
    pub fn new(master_key: &[u8; 32]) -> Result<Sealer, KvError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, master_key).map_err(|_| internal("master key"))?;
        Ok(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `nonce || ciphertext || tag`, bound to `aad`.
    pub fn seal(
        &self,
        aad: &str,
        plaintext: &[u8],
        rng: &mut impl RngCore,
    ) -> Result<Vec<u8>, KvError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| internal("seal"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Opens a sealed blob; fails if it was altered or sealed for another `aad`.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KvError> {
        if sealed.len() < NONCE_LEN {
            return Err(internal("sealed material too short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| internal("nonce"))?;
        let mut buffer = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buffer)
            .map_err(|_| internal("sealed key material failed authentication"))?
            .len();
        buffer.truncate(len);
        Ok(buffer)
    }
}

/// A new software key: its public half and its secret (PKCS#8 for RSA, the scalar for EC), from
/// `rng` — the run's seeded stream in simulation (the same seed gives the same key), the
/// operating system's in live mode. RSA keys come from the one RSA generator,
/// [`cmksim_hsm::generate_rsa`], which the HSM's keys come from too.
pub fn generate_software(
    kty: KeyType,
    key_size_bits: u32,
    rng: &mut RandomSource,
) -> Result<(PublicKey, Zeroizing<Vec<u8>>), KvError> {
    match kty {
        KeyType::Rsa => {
            if !matches!(key_size_bits, 2048 | 3072 | 4096) {
                return Err(bad(format!("Invalid key size {key_size_bits}.")));
            }
            let seed = RsaKeySeed::draw(rng);
            let generated = cmksim_hsm::generate_rsa(u64::from(key_size_bits), &seed)
                .map_err(|_| internal("RSA generation"))?;
            Ok((
                PublicKey::Rsa {
                    n: generated.modulus,
                    e: generated.public_exponent,
                },
                generated.pkcs8,
            ))
        }
        KeyType::Ec => {
            let signing = p256::ecdsa::SigningKey::random(rng);
            Ok((
                ec_public(signing.verifying_key()),
                Zeroizing::new(signing.to_bytes().to_vec()),
            ))
        }
        KeyType::RsaHsm | KeyType::EcHsm => Err(internal("HSM keys are generated in the HSM")),
    }
}

fn ec_public(key: &p256::ecdsa::VerifyingKey) -> PublicKey {
    let point = key.to_encoded_point(false);
    PublicKey::Ec {
        x: point.x().map(|x| x[..].to_vec()).unwrap_or_default(),
        y: point.y().map(|y| y[..].to_vec()).unwrap_or_default(),
    }
}

/// DER length octets.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn der_uint(value: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
    let mut body = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(&trimmed);
    der(0x02, &body)
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
fn rsa_pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = der_uint(n);
    body.extend(der_uint(e));
    der(0x30, &body)
}

/// X.509 SubjectPublicKeyInfo for an RSA key.
fn rsa_spki_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend(rsa_pkcs1_der(n, e));
    let mut body = ALG.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// Encrypt / wrapKey with a public RSA key.
pub fn public_encrypt(
    public: &PublicKey,
    alg: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, KvError> {
    let PublicKey::Rsa { n, e } = public else {
        return Err(bad(format!(
            "Algorithm {alg} is not supported by an EC key."
        )));
    };
    let key =
        PublicEncryptingKey::from_der(&rsa_spki_der(n, e)).map_err(|_| internal("public key"))?;
    let too_long = || {
        bad(format!(
            "The value is too long for algorithm {alg} with this key."
        ))
    };
    match alg {
        EncryptionAlgorithm::RsaOaep | EncryptionAlgorithm::RsaOaep256 => {
            let algorithm = if alg == EncryptionAlgorithm::RsaOaep {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let key = OaepPublicEncryptingKey::new(key).map_err(|_| internal("OAEP key"))?;
            if plaintext.len() > key.max_plaintext_size(algorithm) {
                return Err(too_long());
            }
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key
                .encrypt(algorithm, plaintext, &mut out, None)
                .map_err(|_| too_long())?
                .len();
            out.truncate(len);
            Ok(out)
        }
        EncryptionAlgorithm::Rsa15 => {
            let key = Pkcs1PublicEncryptingKey::new(key).map_err(|_| internal("PKCS#1 key"))?;
            if plaintext.len() > key.max_plaintext_size() {
                return Err(too_long());
            }
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key
                .encrypt(plaintext, &mut out)
                .map_err(|_| too_long())?
                .len();
            out.truncate(len);
            Ok(out)
        }
    }
}

/// A software key parsed once from its secret, ready for any number of private operations:
/// the aws-lc views of an RSA key (OAEP and PKCS#1 v1.5 decryption, signing), or the p256 EC
/// signing key. Parsing PKCS#8 costs about as much as the RSA decryption itself, so the service
/// keeps these per key version ([`crate::keycache`]). Immutable, `Send + Sync`: used outside the
/// service's lock.
pub enum SoftwareKey {
    Rsa {
        oaep: OaepPrivateDecryptingKey,
        pkcs1: Pkcs1PrivateDecryptingKey,
        signing: RsaKeyPair,
        modulus_bytes: usize,
    },
    Ec(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SoftwareKey::Rsa { .. } => "SoftwareKey::Rsa(..)",
            SoftwareKey::Ec(_) => "SoftwareKey::Ec(..)",
        })
    }
}

impl SoftwareKey {
    /// Parses a software key's secret: PKCS#8 for `RSA`, the 32-byte scalar for `EC`.
    pub fn parse(kty: KeyType, secret: &[u8]) -> Result<SoftwareKey, KvError> {
        match kty {
            KeyType::Rsa => {
                let key = PrivateDecryptingKey::from_pkcs8(secret)
                    .map_err(|_| internal("private key"))?;
                let modulus_bytes = key.key_size_bytes();
                Ok(SoftwareKey::Rsa {
                    oaep: OaepPrivateDecryptingKey::new(key.clone())
                        .map_err(|_| internal("OAEP key"))?,
                    pkcs1: Pkcs1PrivateDecryptingKey::new(key)
                        .map_err(|_| internal("PKCS#1 key"))?,
                    signing: RsaKeyPair::from_pkcs8(secret).map_err(|_| internal("private key"))?,
                    modulus_bytes,
                })
            }
            KeyType::Ec => Ok(SoftwareKey::Ec(
                p256::ecdsa::SigningKey::from_slice(secret).map_err(|_| internal("EC key"))?,
            )),
            KeyType::RsaHsm | KeyType::EcHsm => Err(internal("HSM keys are used in the HSM")),
        }
    }

    fn kty(&self) -> KeyType {
        match self {
            SoftwareKey::Rsa { .. } => KeyType::Rsa,
            SoftwareKey::Ec(_) => KeyType::Ec,
        }
    }

    /// Decrypt / unwrapKey (RSA keys only).
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KvError> {
        let SoftwareKey::Rsa {
            oaep,
            pkcs1,
            modulus_bytes,
            ..
        } = self
        else {
            return Err(internal("private key"));
        };
        let invalid = || bad("The ciphertext could not be decrypted with this key and algorithm.");
        let mut out = Zeroizing::new(vec![0u8; *modulus_bytes]);
        let len = match alg {
            EncryptionAlgorithm::RsaOaep | EncryptionAlgorithm::RsaOaep256 => {
                let algorithm = if alg == EncryptionAlgorithm::RsaOaep {
                    &OAEP_SHA1_MGF1SHA1
                } else {
                    &OAEP_SHA256_MGF1SHA256
                };
                oaep.decrypt(algorithm, ciphertext, &mut out, None)
                    .map_err(|_| invalid())?
                    .len()
            }
            EncryptionAlgorithm::Rsa15 => pkcs1
                .decrypt(ciphertext, &mut out)
                .map_err(|_| invalid())?
                .len(),
        };
        out.truncate(len);
        Ok(out)
    }

    /// Sign a SHA-256 digest (RS256/PS256 with an RSA key, ES256 with an EC key).
    pub fn sign(&self, alg: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>, KvError> {
        match (self, alg) {
            (
                SoftwareKey::Rsa { signing, .. },
                SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256,
            ) => {
                let digest = sha256_digest(digest)?;
                let encoding: &'static dyn signature::RsaEncoding =
                    if alg == SignatureAlgorithm::Rs256 {
                        &signature::RSA_PKCS1_SHA256
                    } else {
                        &signature::RSA_PSS_SHA256
                    };
                let mut out = vec![0u8; signing.public_modulus_len()];
                signing
                    .sign_digest(encoding, &digest, &mut out)
                    .map_err(|_| internal("RSA signature"))?;
                Ok(out)
            }
            (SoftwareKey::Ec(key), SignatureAlgorithm::Es256) => {
                if digest.len() != SHA256_DIGEST_BYTES {
                    return Err(bad(format!(
                        "The digest must be {SHA256_DIGEST_BYTES} bytes (SHA-256) for ES256; got {} bytes.",
                        digest.len()
                    )));
                }
                let signature: p256::ecdsa::Signature = key
                    .sign_prehash(digest)
                    .map_err(|_| internal("ECDSA signature"))?;
                Ok(signature.to_bytes().to_vec())
            }
            _ => Err(bad(format!(
                "Algorithm {alg} is not supported by key type {}.",
                self.kty()
            ))),
        }
    }
}

/// Decrypt / unwrapKey with a software RSA key (PKCS#8), parsing it for this one call.
pub fn software_decrypt(
    pkcs8: &[u8],
    alg: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KvError> {
    SoftwareKey::parse(KeyType::Rsa, pkcs8)?.decrypt(alg, ciphertext)
}

fn sha256_digest(digest: &[u8]) -> Result<Digest, KvError> {
    if digest.len() != SHA256_DIGEST_BYTES {
        return Err(bad(format!(
            "The digest must be {SHA256_DIGEST_BYTES} bytes (SHA-256) for this algorithm; got {} bytes.",
            digest.len()
        )));
    }
    Digest::import_less_safe(digest, &SHA256).map_err(|_| internal("digest"))
}

/// Sign a SHA-256 digest with a software key (`secret` = PKCS#8 for RSA, scalar for EC), parsing
/// it for this one call.
pub fn software_sign(
    kty: KeyType,
    secret: &[u8],
    alg: SignatureAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, KvError> {
    if !matches!(kty, KeyType::Rsa | KeyType::Ec) {
        return Err(bad(format!(
            "Algorithm {alg} is not supported by key type {kty}."
        )));
    }
    SoftwareKey::parse(kty, secret)?.sign(alg, digest)
}

/// Verify a signature over a SHA-256 digest with the public key.
pub fn public_verify(
    public: &PublicKey,
    alg: SignatureAlgorithm,
    digest: &[u8],
    signature_bytes: &[u8],
) -> Result<bool, KvError> {
    match (public, alg) {
        (PublicKey::Rsa { n, e }, SignatureAlgorithm::Rs256 | SignatureAlgorithm::Ps256) => {
            let digest = sha256_digest(digest)?;
            let params: &'static signature::RsaParameters = if alg == SignatureAlgorithm::Rs256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            let key = UnparsedPublicKey::new(params, rsa_pkcs1_der(n, e));
            Ok(key.verify_digest(&digest, signature_bytes).is_ok())
        }
        (PublicKey::Ec { x, y }, SignatureAlgorithm::Es256) => {
            if digest.len() != SHA256_DIGEST_BYTES {
                return Err(bad(format!(
                    "The digest must be {SHA256_DIGEST_BYTES} bytes (SHA-256) for ES256; got {} bytes.",
                    digest.len()
                )));
            }
            let mut sec1 = vec![4u8];
            sec1.extend_from_slice(x);
            sec1.extend_from_slice(y);
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| internal("EC public key"))?;
            let Ok(signature) = p256::ecdsa::Signature::from_slice(signature_bytes) else {
                return Ok(false);
            };
            Ok(key.verify_prehash(digest, &signature).is_ok())
        }
        (PublicKey::Rsa { .. }, _) => Err(bad(format!(
            "Algorithm {alg} is not supported by an RSA key."
        ))),
        (PublicKey::Ec { .. }, _) => Err(bad(format!(
            "Algorithm {alg} is not supported by an EC key."
        ))),
    }
}

/// SHA-256 of `data` (tests and clients build digests with it).
pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&SHA256, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::SeedTree;

    #[test]
    fn rsa_software_round_trips_every_algorithm() {
        let mut rng = SeedTree::new(1).source("t");
        let (public, secret) = generate_software(KeyType::Rsa, 2048, &mut rng).unwrap();
        let dek = [7u8; 32];
        for alg in EncryptionAlgorithm::ALL {
            let wrapped = public_encrypt(&public, *alg, &dek).unwrap();
            assert_eq!(wrapped.len(), 256);
            assert_eq!(
                &software_decrypt(&secret, *alg, &wrapped).unwrap()[..],
                &dek
            );
        }
        let digest = sha256(b"hello");
        for alg in [SignatureAlgorithm::Rs256, SignatureAlgorithm::Ps256] {
            let sig = software_sign(KeyType::Rsa, &secret, alg, &digest).unwrap();
            assert!(public_verify(&public, alg, &digest, &sig).unwrap());
            assert!(!public_verify(&public, alg, &sha256(b"other"), &sig).unwrap());
        }
    }

    #[test]
    fn rsa_software_keys_follow_the_seed() {
        let key = |root: u64| {
            let mut rng = SeedTree::new(root).source("keyvault/key-material");
            let (public, _secret) = generate_software(KeyType::Rsa, 2048, &mut rng).unwrap();
            let PublicKey::Rsa { n, .. } = public else {
                panic!("an RSA key has an RSA public key")
            };
            n
        };
        let first = key(11);
        assert_eq!(first.len(), 256);
        assert_eq!(key(11), first, "the same seed gives the same key");
        assert_ne!(key(12), first, "another seed gives another key");
        let mut rng = SeedTree::new(11).source("keyvault/key-material");
        assert_eq!(
            generate_software(KeyType::Rsa, 1024, &mut rng)
                .unwrap_err()
                .to_string(),
            bad("Invalid key size 1024.").to_string()
        );
    }

    #[test]
    fn ec_software_signs_and_verifies() {
        let mut rng = SeedTree::new(1).source("t");
        let (public, secret) = generate_software(KeyType::Ec, 0, &mut rng).unwrap();
        let digest = sha256(b"hello");
        let sig = software_sign(KeyType::Ec, &secret, SignatureAlgorithm::Es256, &digest).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(public_verify(&public, SignatureAlgorithm::Es256, &digest, &sig).unwrap());
        assert!(public_encrypt(&public, EncryptionAlgorithm::RsaOaep, &[1]).is_err());
        assert!(software_sign(KeyType::Ec, &secret, SignatureAlgorithm::Es256, &[0; 31]).is_err());
    }

    #[test]
    fn sealing_is_bound_to_its_aad() {
        let mut rng = SeedTree::new(1).source("t");
        let sealer = Sealer::new(&[9u8; 32]).unwrap();
        let sealed = sealer.seal("v/k/1", b"secret", &mut rng).unwrap();
        assert_eq!(&sealer.open("v/k/1", &sealed).unwrap()[..], b"secret");
        assert!(sealer.open("v/k/2", &sealed).is_err());
    }
}
