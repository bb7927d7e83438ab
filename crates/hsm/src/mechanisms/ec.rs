//! ECDSA on P-256. Key generation uses the `p256` crate with the handed-in random source (so a
//! seeded simulation produces the same keys every run); the stored secret is the 32-byte scalar.
//! Signing uses aws-lc-rs (`EcdsaKeyPair::sign_digest`, constant-time, about 10x faster than
//! `p256`'s signer): its nonce comes from aws-lc's own generator, so ECDSA signatures are not
//! reproducible run to run. Nothing depends on that: signatures are returned to the caller and
//! never reach the event log. Verification stays on `p256`.
//!
//! Encodings follow PKCS#11: `CKA_EC_PARAMS` is the DER OID of the curve, `CKA_EC_POINT` the DER
//! OCTET STRING wrapping the uncompressed point, and a `CKM_ECDSA` signature is `r || s`.

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::error::Ckr;

/// DER of the OID 1.2.840.10045.3.1.7 (prime256v1 / P-256).
pub const P256_EC_PARAMS_DER: [u8; 10] =
    [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Length of an uncompressed P-256 point (`04 || x || y`), in bytes.
const POINT_LEN_BYTES: usize = 65;
/// Length of the digest `CKM_ECDSA` signs, in bytes.
const DIGEST_LEN_BYTES: usize = 32;
/// Length of an `r || s` signature, in bytes.
const SIGNATURE_LEN_BYTES: usize = 64;

/// Generates a key; returns the 32-byte scalar and the uncompressed point.
pub(crate) fn generate(rng: &mut (impl RngCore + CryptoRng)) -> (Zeroizing<Vec<u8>>, Vec<u8>) {
    let key = SigningKey::random(rng);
    let scalar = Zeroizing::new(key.to_bytes().to_vec());
    let point = key
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    debug_assert_eq!(point.len(), POINT_LEN_BYTES);
    (scalar, point)
}

/// `CKA_EC_POINT` for an uncompressed point: `04 41 || point`.
pub(crate) fn ec_point_der(point: &[u8]) -> Vec<u8> {
    let mut der = vec![0x04, point.len() as u8];
    der.extend_from_slice(point);
    der
}

/// Builds the aws-lc signing key from the stored scalar (its public point is recomputed once
/// here with `p256`, which aws-lc checks against the scalar).
pub(crate) fn signing_key(scalar: &[u8]) -> Result<EcdsaKeyPair, Ckr> {
    let key = SigningKey::from_slice(scalar).map_err(|_| Ckr::DeviceError)?;
    let point = key.verifying_key().to_encoded_point(false);
    EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        scalar,
        point.as_bytes(),
    )
    .map_err(|_| Ckr::DeviceError)
}

/// Parses an uncompressed point.
pub(crate) fn verifying_key(point: &[u8]) -> Result<VerifyingKey, Ckr> {
    VerifyingKey::from_sec1_bytes(point).map_err(|_| Ckr::DeviceError)
}

/// `C_Sign` with `CKM_ECDSA` over a 32-byte digest (`r || s`). The nonce comes from aws-lc.
pub(crate) fn sign(key: &EcdsaKeyPair, digest: &[u8]) -> Result<Vec<u8>, Ckr> {
    if digest.len() != DIGEST_LEN_BYTES {
        return Err(Ckr::DataLenRange);
    }
    let digest = Digest::import_less_safe(digest, &SHA256).map_err(|_| Ckr::DataLenRange)?;
    let signature = key.sign_digest(&digest).map_err(|_| Ckr::DeviceError)?;
    debug_assert_eq!(signature.as_ref().len(), SIGNATURE_LEN_BYTES);
    Ok(signature.as_ref().to_vec())
}

/// `C_Verify` with `CKM_ECDSA`.
pub(crate) fn verify(key: &VerifyingKey, digest: &[u8], signature: &[u8]) -> Result<(), Ckr> {
    if digest.len() != DIGEST_LEN_BYTES {
        return Err(Ckr::DataLenRange);
    }
    if signature.len() != SIGNATURE_LEN_BYTES {
        return Err(Ckr::SignatureLenRange);
    }
    let signature = Signature::from_slice(signature).map_err(|_| Ckr::SignatureInvalid)?;
    key.verify_prehash(digest, &signature)
        .map_err(|_| Ckr::SignatureInvalid)
}
