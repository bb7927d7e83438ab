//! RSA with aws-lc-rs: OAEP (SHA-1/SHA-256) and PKCS#1 v1.5 encryption, PKCS#1 v1.5 and PSS
//! signatures with SHA-256. Key pairs are generated in [`super::rsa_keygen`].
//!
//! The private key is kept as PKCS#8 DER (sealed at rest by the store) and parsed once into the
//! three aws-lc views it is used through (OAEP, PKCS#1 v1.5 decryption, signing).

use aws_lc_rs::digest;
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaKeyPair, RsaPublicKeyComponents};
use zeroize::Zeroizing;

use crate::error::Ckr;
use crate::mechanism::{HashAlg, Mechanism, Mgf, OaepParams, PssParams};

/// The public exponent every generated key has (65537, F4).
pub(crate) const PUBLIC_EXPONENT_F4: [u8; 3] = [0x01, 0x00, 0x01];

/// DER prefix of a SHA-256 `DigestInfo` (RFC 8017 §9.2 note 1); the digest follows.
const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

const SHA256_LEN_BYTES: usize = 32;

/// A parsed private key.
pub(crate) struct RsaPrivate {
    oaep: OaepPrivateDecryptingKey,
    pkcs1: Pkcs1PrivateDecryptingKey,
    signing: RsaKeyPair,
    modulus_len_bytes: usize,
}

impl RsaPrivate {
    /// Parses PKCS#8 DER (as sealed in the store).
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<RsaPrivate, Ckr> {
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| Ckr::DeviceError)?;
        let modulus_len_bytes = decrypting.key_size_bytes();
        let oaep =
            OaepPrivateDecryptingKey::new(decrypting.clone()).map_err(|_| Ckr::DeviceError)?;
        let pkcs1 = Pkcs1PrivateDecryptingKey::new(decrypting).map_err(|_| Ckr::DeviceError)?;
        let signing = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| Ckr::DeviceError)?;
        Ok(RsaPrivate {
            oaep,
            pkcs1,
            signing,
            modulus_len_bytes,
        })
    }

    /// `C_Decrypt` (and the decryption inside `C_UnwrapKey`).
    pub(crate) fn decrypt(
        &self,
        mechanism: &Mechanism,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Ckr> {
        if ciphertext.len() != self.modulus_len_bytes {
            return Err(Ckr::EncryptedDataLenRange);
        }
        let mut out = Zeroizing::new(vec![0u8; self.modulus_len_bytes]);
        let plaintext_len = match mechanism {
            Mechanism::RsaPkcsOaep(params) => {
                let algorithm = oaep_algorithm(params)?;
                self.oaep
                    .decrypt(algorithm, ciphertext, &mut out, None)
                    .map_err(|_| Ckr::EncryptedDataInvalid)?
                    .len()
            }
            Mechanism::RsaPkcs => self
                .pkcs1
                .decrypt(ciphertext, &mut out)
                .map_err(|_| Ckr::EncryptedDataInvalid)?
                .len(),
            _ => return Err(Ckr::MechanismInvalid),
        };
        out.truncate(plaintext_len);
        Ok(out)
    }

    /// `C_Sign`.
    pub(crate) fn sign(&self, mechanism: &Mechanism, data: &[u8]) -> Result<Vec<u8>, Ckr> {
        let mut signature = vec![0u8; self.modulus_len_bytes];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match mechanism {
            Mechanism::Sha256RsaPkcs => self
                .signing
                .sign(&signature::RSA_PKCS1_SHA256, &rng, data, &mut signature)
                .map_err(|_| Ckr::DeviceError)?,
            Mechanism::Sha256RsaPkcsPss(params) => {
                check_pss(params)?;
                self.signing
                    .sign(&signature::RSA_PSS_SHA256, &rng, data, &mut signature)
                    .map_err(|_| Ckr::DeviceError)?
            }
            Mechanism::RsaPkcs => {
                let digest = digest_from_digest_info(data)?;
                self.signing
                    .sign_digest(&signature::RSA_PKCS1_SHA256, &digest, &mut signature)
                    .map_err(|_| Ckr::DeviceError)?
            }
            Mechanism::RsaPkcsPss(params) => {
                check_pss(params)?;
                let digest = import_sha256(data)?;
                self.signing
                    .sign_digest(&signature::RSA_PSS_SHA256, &digest, &mut signature)
                    .map_err(|_| Ckr::DeviceError)?
            }
            _ => return Err(Ckr::MechanismInvalid),
        }
        Ok(signature)
    }
}

/// A parsed public key.
pub(crate) struct RsaPublic {
    oaep: OaepPublicEncryptingKey,
    pkcs1: Pkcs1PublicEncryptingKey,
    pkcs1_sha256: ParsedPublicKey,
    pss_sha256: ParsedPublicKey,
    modulus_len_bytes: usize,
}

impl RsaPublic {
    /// Builds the key from `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT`.
    pub(crate) fn from_components(
        modulus: &[u8],
        public_exponent: &[u8],
    ) -> Result<RsaPublic, Ckr> {
        let components = RsaPublicKeyComponents {
            n: modulus,
            e: public_exponent,
        };
        let encrypting: PublicEncryptingKey =
            components.try_into().map_err(|_| Ckr::DeviceError)?;
        let modulus_len_bytes = encrypting.key_size_bytes();
        let oaep =
            OaepPublicEncryptingKey::new(encrypting.clone()).map_err(|_| Ckr::DeviceError)?;
        let pkcs1 = Pkcs1PublicEncryptingKey::new(encrypting).map_err(|_| Ckr::DeviceError)?;
        let pkcs1_sha256 = components
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| Ckr::DeviceError)?;
        let pss_sha256 = components
            .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
            .map_err(|_| Ckr::DeviceError)?;
        Ok(RsaPublic {
            oaep,
            pkcs1,
            pkcs1_sha256,
            pss_sha256,
            modulus_len_bytes,
        })
    }

    /// `C_Encrypt` (and the encryption inside `C_WrapKey`).
    pub(crate) fn encrypt(&self, mechanism: &Mechanism, plaintext: &[u8]) -> Result<Vec<u8>, Ckr> {
        let mut out = vec![0u8; self.modulus_len_bytes];
        let len = match mechanism {
            Mechanism::RsaPkcsOaep(params) => {
                let algorithm = oaep_algorithm(params)?;
                if plaintext.len() > self.oaep.max_plaintext_size(algorithm) {
                    return Err(Ckr::DataLenRange);
                }
                self.oaep
                    .encrypt(algorithm, plaintext, &mut out, None)
                    .map_err(|_| Ckr::DeviceError)?
                    .len()
            }
            Mechanism::RsaPkcs => {
                if plaintext.len() > self.pkcs1.max_plaintext_size() {
                    return Err(Ckr::DataLenRange);
                }
                self.pkcs1
                    .encrypt(plaintext, &mut out)
                    .map_err(|_| Ckr::DeviceError)?
                    .len()
            }
            _ => return Err(Ckr::MechanismInvalid),
        };
        out.truncate(len);
        Ok(out)
    }

    /// `C_Verify`.
    pub(crate) fn verify(&self, mechanism: &Mechanism, data: &[u8], sig: &[u8]) -> Result<(), Ckr> {
        if sig.len() != self.modulus_len_bytes {
            return Err(Ckr::SignatureLenRange);
        }
        let result = match mechanism {
            Mechanism::Sha256RsaPkcs => self.pkcs1_sha256.verify_sig(data, sig),
            Mechanism::Sha256RsaPkcsPss(params) => {
                check_pss(params)?;
                self.pss_sha256.verify_sig(data, sig)
            }
            Mechanism::RsaPkcs => self
                .pkcs1_sha256
                .verify_digest_sig(&digest_from_digest_info(data)?, sig),
            Mechanism::RsaPkcsPss(params) => {
                check_pss(params)?;
                self.pss_sha256
                    .verify_digest_sig(&import_sha256(data)?, sig)
            }
            _ => return Err(Ckr::MechanismInvalid),
        };
        result.map_err(|_| Ckr::SignatureInvalid)
    }
}

/// The aws-lc OAEP algorithm for supported parameters, else `CKR_MECHANISM_PARAM_INVALID`.
fn oaep_algorithm(params: &OaepParams) -> Result<&'static aws_lc_rs::rsa::OaepAlgorithm, Ckr> {
    if !params.source_data.is_empty() {
        return Err(Ckr::MechanismParamInvalid);
    }
    match (params.hash, params.mgf) {
        (HashAlg::Sha1, Mgf::Mgf1Sha1) => Ok(&OAEP_SHA1_MGF1SHA1),
        (HashAlg::Sha256, Mgf::Mgf1Sha256) => Ok(&OAEP_SHA256_MGF1SHA256),
        _ => Err(Ckr::MechanismParamInvalid),
    }
}

fn check_pss(params: &PssParams) -> Result<(), Ckr> {
    let supported = params.hash == HashAlg::Sha256
        && params.mgf == Mgf::Mgf1Sha256
        && params.salt_len_bytes == SHA256_LEN_BYTES as u64;
    if supported {
        Ok(())
    } else {
        Err(Ckr::MechanismParamInvalid)
    }
}

fn import_sha256(data: &[u8]) -> Result<digest::Digest, Ckr> {
    if data.len() != SHA256_LEN_BYTES {
        return Err(Ckr::DataLenRange);
    }
    digest::Digest::import_less_safe(data, &digest::SHA256).map_err(|_| Ckr::DataLenRange)
}

/// `CKM_RSA_PKCS` signing here accepts a SHA-256 `DigestInfo` only (what RS256 over a digest
/// produces); other lengths are `CKR_DATA_LEN_RANGE`, other prefixes `CKR_DATA_INVALID`.
fn digest_from_digest_info(data: &[u8]) -> Result<digest::Digest, Ckr> {
    if data.len() != SHA256_DIGEST_INFO_PREFIX.len() + SHA256_LEN_BYTES {
        return Err(Ckr::DataLenRange);
    }
    let (prefix, digest) = data.split_at(SHA256_DIGEST_INFO_PREFIX.len());
    if prefix != SHA256_DIGEST_INFO_PREFIX {
        return Err(Ckr::DataInvalid);
    }
    import_sha256(digest)
}

/// The SHA-256 `DigestInfo` of `digest` (for callers of `CKM_RSA_PKCS` signing).
pub fn sha256_digest_info(digest: &[u8; 32]) -> Vec<u8> {
    let mut info = SHA256_DIGEST_INFO_PREFIX.to_vec();
    info.extend_from_slice(digest);
    info
}

/// Reads the private exponent `d` out of PKCS#8 DER (only for non-sensitive keys).
///
/// PKCS#8 `PrivateKeyInfo ::= SEQUENCE { version, algorithm, OCTET STRING { RSAPrivateKey } }`,
/// `RSAPrivateKey ::= SEQUENCE { version, n, e, d, ... }`.
pub(crate) fn private_exponent(pkcs8: &[u8]) -> Result<Vec<u8>, Ckr> {
    let outer = der_read(pkcs8, 0x30).ok_or(Ckr::DeviceError)?.0;
    let (_, rest) = der_read(outer, 0x02).ok_or(Ckr::DeviceError)?;
    let (_, rest) = der_read(rest, 0x30).ok_or(Ckr::DeviceError)?;
    let (rsa_key_der, _) = der_read(rest, 0x04).ok_or(Ckr::DeviceError)?;
    let mut body = der_read(rsa_key_der, 0x30).ok_or(Ckr::DeviceError)?.0;
    let mut d = &[][..];
    for _ in 0..4 {
        let (value, rest) = der_read(body, 0x02).ok_or(Ckr::DeviceError)?;
        d = value;
        body = rest;
    }
    let first_non_zero = d.iter().position(|b| *b != 0).unwrap_or(d.len());
    Ok(d[first_non_zero..].to_vec())
}

/// Reads one DER TLV with tag `tag`; returns (value, rest).
fn der_read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, mut rest) = rest.split_first()?;
    let len = if len_byte < 0x80 {
        usize::from(len_byte)
    } else {
        let len_len = usize::from(len_byte & 0x7f);
        if len_len == 0 || len_len > 4 || rest.len() < len_len {
            return None;
        }
        let len = rest[..len_len]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[len_len..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}
