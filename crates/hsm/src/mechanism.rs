//! Mechanisms (`CK_MECHANISM`): what operation, with which parameters.
//!
//! A mechanism is an enum whose variants carry their own parameters, so an OAEP call cannot
//! forget its hash and an ECDSA call cannot carry OAEP parameters. Parameters are kept as the
//! caller gave them (any hash, any MGF, any label) and validated when used, because answering
//! `CKR_MECHANISM_PARAM_INVALID` for a bad combination is part of the behaviour being emulated.
//!
//! RSA signing is offered in two shapes: `Sha256RsaPkcs` / `Sha256RsaPkcsPss` hash the message
//! inside the module (PKCS#11's `CKM_SHA256_RSA_PKCS*`), while `RsaPkcs` (over a SHA-256
//! `DigestInfo`) and `RsaPkcsPss` (over a 32-byte SHA-256 digest) sign a digest computed by the
//! caller, which is what Key Vault's `sign` (RS256 / PS256 over a digest) needs.

use serde::{Deserialize, Serialize};

/// A hash algorithm named in mechanism parameters (`CKM_SHA_1`, `CKM_SHA256`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlg {
    /// `CKM_SHA_1`
    Sha1,
    /// `CKM_SHA224`
    Sha224,
    /// `CKM_SHA256`
    Sha256,
    /// `CKM_SHA384`
    Sha384,
    /// `CKM_SHA512`
    Sha512,
}

/// A mask generation function (`CKG_MGF1_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mgf {
    /// `CKG_MGF1_SHA1`
    Mgf1Sha1,
    /// `CKG_MGF1_SHA224`
    Mgf1Sha224,
    /// `CKG_MGF1_SHA256`
    Mgf1Sha256,
    /// `CKG_MGF1_SHA384`
    Mgf1Sha384,
    /// `CKG_MGF1_SHA512`
    Mgf1Sha512,
}

/// `CK_RSA_PKCS_OAEP_PARAMS`. Supported: hash and MGF both SHA-1 or both SHA-256, empty
/// source data (label); anything else is `CKR_MECHANISM_PARAM_INVALID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OaepParams {
    /// `hashAlg`
    pub hash: HashAlg,
    /// `mgf`
    pub mgf: Mgf,
    /// `pSourceData` (the OAEP label, `CKZ_DATA_SPECIFIED`).
    pub source_data: Vec<u8>,
}

impl OaepParams {
    /// SHA-1 with MGF1-SHA-1, empty label (Key Vault's `RSA-OAEP`).
    pub fn sha1() -> OaepParams {
        OaepParams {
            hash: HashAlg::Sha1,
            mgf: Mgf::Mgf1Sha1,
            source_data: Vec::new(),
        }
    }

    /// SHA-256 with MGF1-SHA-256, empty label (Key Vault's `RSA-OAEP-256`).
    pub fn sha256() -> OaepParams {
        OaepParams {
            hash: HashAlg::Sha256,
            mgf: Mgf::Mgf1Sha256,
            source_data: Vec::new(),
        }
    }
}

/// `CK_RSA_PKCS_PSS_PARAMS`. Supported: SHA-256, MGF1-SHA-256, salt of 32 bytes (what aws-lc
/// produces and what Key Vault's PS256 uses); anything else is `CKR_MECHANISM_PARAM_INVALID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PssParams {
    /// `hashAlg`
    pub hash: HashAlg,
    /// `mgf`
    pub mgf: Mgf,
    /// `sLen`, in bytes.
    pub salt_len_bytes: u64,
}

impl PssParams {
    /// SHA-256, MGF1-SHA-256, 32-byte salt (Key Vault's `PS256`).
    pub fn sha256() -> PssParams {
        PssParams {
            hash: HashAlg::Sha256,
            mgf: Mgf::Mgf1Sha256,
            salt_len_bytes: 32,
        }
    }
}

/// A mechanism with its parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mechanism {
    /// `CKM_RSA_PKCS_KEY_PAIR_GEN`: 2048, 3072 or 4096 bits, public exponent 65537.
    RsaPkcsKeyPairGen,
    /// `CKM_RSA_PKCS`: PKCS#1 v1.5 encryption (Key Vault's `RSA1_5`), or signing a SHA-256
    /// `DigestInfo` (51 bytes) computed by the caller.
    RsaPkcs,
    /// `CKM_RSA_PKCS_OAEP`.
    RsaPkcsOaep(OaepParams),
    /// `CKM_RSA_PKCS_PSS`: PSS signature over a 32-byte SHA-256 digest computed by the caller.
    RsaPkcsPss(PssParams),
    /// `CKM_SHA256_RSA_PKCS`: PKCS#1 v1.5 signature, the module hashes the message.
    Sha256RsaPkcs,
    /// `CKM_SHA256_RSA_PKCS_PSS`: PSS signature, the module hashes the message.
    Sha256RsaPkcsPss(PssParams),
    /// `CKM_EC_KEY_PAIR_GEN`: P-256 only.
    EcKeyPairGen,
    /// `CKM_ECDSA`: over a 32-byte digest; the signature is `r || s` (64 bytes).
    Ecdsa,
    /// `CKM_AES_KEY_GEN`: `CKA_VALUE_LEN` 16 or 32.
    AesKeyGen,
    /// `CKM_AES_KEY_WRAP`: RFC 3394, default IV.
    AesKeyWrap,
    /// `CKM_AES_KEY_WRAP_KWP`: RFC 5649 (with padding).
    AesKeyWrapKwp,
}

impl Mechanism {
    /// `CKM_RSA_PKCS_OAEP` with SHA-1 (Key Vault's `RSA-OAEP`).
    pub fn rsa_oaep_sha1() -> Mechanism {
        Mechanism::RsaPkcsOaep(OaepParams::sha1())
    }

    /// `CKM_RSA_PKCS_OAEP` with SHA-256 (Key Vault's `RSA-OAEP-256`).
    pub fn rsa_oaep_sha256() -> Mechanism {
        Mechanism::RsaPkcsOaep(OaepParams::sha256())
    }

    /// The `CKM_*` value.
    pub fn code(&self) -> u64 {
        match self {
            Mechanism::RsaPkcsKeyPairGen => 0x0,
            Mechanism::RsaPkcs => 0x1,
            Mechanism::RsaPkcsOaep(_) => 0x9,
            Mechanism::RsaPkcsPss(_) => 0xD,
            Mechanism::Sha256RsaPkcs => 0x40,
            Mechanism::Sha256RsaPkcsPss(_) => 0x43,
            Mechanism::EcKeyPairGen => 0x1040,
            Mechanism::Ecdsa => 0x1041,
            Mechanism::AesKeyGen => 0x1080,
            Mechanism::AesKeyWrap => 0x2109,
            Mechanism::AesKeyWrapKwp => 0x210B,
        }
    }

    /// The PKCS#11 name, e.g. `"CKM_RSA_PKCS_OAEP"`.
    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::RsaPkcsKeyPairGen => "CKM_RSA_PKCS_KEY_PAIR_GEN",
            Mechanism::RsaPkcs => "CKM_RSA_PKCS",
            Mechanism::RsaPkcsOaep(_) => "CKM_RSA_PKCS_OAEP",
            Mechanism::RsaPkcsPss(_) => "CKM_RSA_PKCS_PSS",
            Mechanism::Sha256RsaPkcs => "CKM_SHA256_RSA_PKCS",
            Mechanism::Sha256RsaPkcsPss(_) => "CKM_SHA256_RSA_PKCS_PSS",
            Mechanism::EcKeyPairGen => "CKM_EC_KEY_PAIR_GEN",
            Mechanism::Ecdsa => "CKM_ECDSA",
            Mechanism::AesKeyGen => "CKM_AES_KEY_GEN",
            Mechanism::AesKeyWrap => "CKM_AES_KEY_WRAP",
            Mechanism::AesKeyWrapKwp => "CKM_AES_KEY_WRAP_KWP",
        }
    }
}
