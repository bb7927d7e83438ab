//! The vocabulary of the PKCS#11 interface: handles, user types, object classes, key types and
//! attributes.
//!
//! PKCS#11 passes attributes as untyped `(type, pointer, length)` triples. Here an attribute is a
//! Rust enum whose variant fixes the value's type ([`Attribute`]), and the bare type used for
//! queries is a separate enum ([`AttributeType`]). Both carry the real `CKA_*` numbers so that a
//! later C ABI is a table lookup. Handles are newtypes so that a session handle can never be
//! passed where an object handle is expected.

use serde::{Deserialize, Serialize};

/// A slot number (`CK_SLOT_ID`). Slots are numbered `0..slot_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SlotId(pub u64);

/// A session handle (`CK_SESSION_HANDLE`). Valid until closed; not persisted across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionHandle(pub u64);

/// An object handle (`CK_OBJECT_HANDLE`). Token objects keep their handle across restarts and a
/// handle is never reused, so a Key Vault may store it as the key's reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectHandle(pub u64);

/// Who logs in (`CK_USER_TYPE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserType {
    /// `CKU_SO`: the security officer, who initialises the token and the user PIN.
    So,
    /// `CKU_USER`: the normal user, who may use private objects.
    User,
    /// `CKU_CONTEXT_SPECIFIC`: not supported here (answers `CKR_USER_TYPE_INVALID`).
    ContextSpecific,
}

/// `CKA_CLASS` values this module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObjectClass {
    /// `CKO_PUBLIC_KEY` (2).
    PublicKey,
    /// `CKO_PRIVATE_KEY` (3).
    PrivateKey,
    /// `CKO_SECRET_KEY` (4).
    SecretKey,
}

impl ObjectClass {
    /// The `CK_OBJECT_CLASS` value.
    pub fn code(self) -> u64 {
        match self {
            ObjectClass::PublicKey => 2,
            ObjectClass::PrivateKey => 3,
            ObjectClass::SecretKey => 4,
        }
    }
}

/// `CKA_KEY_TYPE` values this module knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// `CKK_RSA` (0).
    Rsa,
    /// `CKK_EC` (3).
    Ec,
    /// `CKK_AES` (0x1F).
    Aes,
}

impl KeyType {
    /// The `CK_KEY_TYPE` value.
    pub fn code(self) -> u64 {
        match self {
            KeyType::Rsa => 0,
            KeyType::Ec => 3,
            KeyType::Aes => 0x1F,
        }
    }
}

/// An attribute type (`CK_ATTRIBUTE_TYPE`), used to ask for values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttributeType {
    /// `CKA_CLASS`
    Class,
    /// `CKA_KEY_TYPE`
    KeyType,
    /// `CKA_LABEL`
    Label,
    /// `CKA_ID`
    Id,
    /// `CKA_TOKEN`
    Token,
    /// `CKA_PRIVATE`
    Private,
    /// `CKA_SENSITIVE`
    Sensitive,
    /// `CKA_EXTRACTABLE`
    Extractable,
    /// `CKA_ALWAYS_SENSITIVE`
    AlwaysSensitive,
    /// `CKA_NEVER_EXTRACTABLE`
    NeverExtractable,
    /// `CKA_LOCAL`
    Local,
    /// `CKA_ENCRYPT`
    Encrypt,
    /// `CKA_DECRYPT`
    Decrypt,
    /// `CKA_SIGN`
    Sign,
    /// `CKA_VERIFY`
    Verify,
    /// `CKA_WRAP`
    Wrap,
    /// `CKA_UNWRAP`
    Unwrap,
    /// `CKA_MODULUS`
    Modulus,
    /// `CKA_PUBLIC_EXPONENT`
    PublicExponent,
    /// `CKA_PRIVATE_EXPONENT`
    PrivateExponent,
    /// `CKA_MODULUS_BITS`
    ModulusBits,
    /// `CKA_EC_PARAMS`
    EcParams,
    /// `CKA_EC_POINT`
    EcPoint,
    /// `CKA_VALUE_LEN`
    ValueLen,
    /// `CKA_VALUE`
    Value,
}

impl AttributeType {
    /// The `CKA_*` value.
    pub fn code(self) -> u64 {
        match self {
            AttributeType::Class => 0x0,
            AttributeType::Token => 0x1,
            AttributeType::Private => 0x2,
            AttributeType::Label => 0x3,
            AttributeType::Value => 0x11,
            AttributeType::KeyType => 0x100,
            AttributeType::Id => 0x102,
            AttributeType::Sensitive => 0x103,
            AttributeType::Encrypt => 0x104,
            AttributeType::Decrypt => 0x105,
            AttributeType::Wrap => 0x106,
            AttributeType::Unwrap => 0x107,
            AttributeType::Sign => 0x108,
            AttributeType::Verify => 0x10A,
            AttributeType::Modulus => 0x120,
            AttributeType::ModulusBits => 0x121,
            AttributeType::PublicExponent => 0x122,
            AttributeType::PrivateExponent => 0x123,
            AttributeType::ValueLen => 0x161,
            AttributeType::Extractable => 0x162,
            AttributeType::Local => 0x163,
            AttributeType::NeverExtractable => 0x164,
            AttributeType::AlwaysSensitive => 0x165,
            AttributeType::EcParams => 0x180,
            AttributeType::EcPoint => 0x181,
        }
    }
}

/// An attribute with its value (`CK_ATTRIBUTE`), used in templates and answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attribute {
    /// `CKA_CLASS`
    Class(ObjectClass),
    /// `CKA_KEY_TYPE`
    KeyType(KeyType),
    /// `CKA_LABEL` (UTF-8)
    Label(String),
    /// `CKA_ID`
    Id(Vec<u8>),
    /// `CKA_TOKEN`: true for a persistent token object, false for a session object.
    Token(bool),
    /// `CKA_PRIVATE`: true when only a logged-in user may see and use the object.
    Private(bool),
    /// `CKA_SENSITIVE`
    Sensitive(bool),
    /// `CKA_EXTRACTABLE`
    Extractable(bool),
    /// `CKA_ALWAYS_SENSITIVE` (read-only)
    AlwaysSensitive(bool),
    /// `CKA_NEVER_EXTRACTABLE` (read-only)
    NeverExtractable(bool),
    /// `CKA_LOCAL` (read-only): generated on the token.
    Local(bool),
    /// `CKA_ENCRYPT`
    Encrypt(bool),
    /// `CKA_DECRYPT`
    Decrypt(bool),
    /// `CKA_SIGN`
    Sign(bool),
    /// `CKA_VERIFY`
    Verify(bool),
    /// `CKA_WRAP`
    Wrap(bool),
    /// `CKA_UNWRAP`
    Unwrap(bool),
    /// `CKA_MODULUS`: big-endian, no leading zeros.
    Modulus(Vec<u8>),
    /// `CKA_PUBLIC_EXPONENT`: big-endian, no leading zeros.
    PublicExponent(Vec<u8>),
    /// `CKA_PRIVATE_EXPONENT`: big-endian (only readable for a non-sensitive key).
    PrivateExponent(Vec<u8>),
    /// `CKA_MODULUS_BITS`
    ModulusBits(u64),
    /// `CKA_EC_PARAMS`: DER of the curve OID (only P-256: `06 08 2A 86 48 CE 3D 03 01 07`).
    EcParams(Vec<u8>),
    /// `CKA_EC_POINT`: DER OCTET STRING of the uncompressed point (`04 41 04 x y`).
    EcPoint(Vec<u8>),
    /// `CKA_VALUE_LEN`: secret key length in bytes.
    ValueLen(u64),
    /// `CKA_VALUE`: a secret key's value (only readable when not sensitive and extractable).
    Value(Vec<u8>),
}

impl Attribute {
    /// The attribute's type.
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            Attribute::Class(_) => AttributeType::Class,
            Attribute::KeyType(_) => AttributeType::KeyType,
            Attribute::Label(_) => AttributeType::Label,
            Attribute::Id(_) => AttributeType::Id,
            Attribute::Token(_) => AttributeType::Token,
            Attribute::Private(_) => AttributeType::Private,
            Attribute::Sensitive(_) => AttributeType::Sensitive,
            Attribute::Extractable(_) => AttributeType::Extractable,
            Attribute::AlwaysSensitive(_) => AttributeType::AlwaysSensitive,
            Attribute::NeverExtractable(_) => AttributeType::NeverExtractable,
            Attribute::Local(_) => AttributeType::Local,
            Attribute::Encrypt(_) => AttributeType::Encrypt,
            Attribute::Decrypt(_) => AttributeType::Decrypt,
            Attribute::Sign(_) => AttributeType::Sign,
            Attribute::Verify(_) => AttributeType::Verify,
            Attribute::Wrap(_) => AttributeType::Wrap,
            Attribute::Unwrap(_) => AttributeType::Unwrap,
            Attribute::Modulus(_) => AttributeType::Modulus,
            Attribute::PublicExponent(_) => AttributeType::PublicExponent,
            Attribute::PrivateExponent(_) => AttributeType::PrivateExponent,
            Attribute::ModulusBits(_) => AttributeType::ModulusBits,
            Attribute::EcParams(_) => AttributeType::EcParams,
            Attribute::EcPoint(_) => AttributeType::EcPoint,
            Attribute::ValueLen(_) => AttributeType::ValueLen,
            Attribute::Value(_) => AttributeType::Value,
        }
    }
}

/// What `C_GetTokenInfo` reports (the subset of `CK_TOKEN_INFO` this module tracks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token label (empty while not initialised).
    pub label: String,
    /// `CKF_TOKEN_INITIALIZED`.
    pub initialized: bool,
    /// `CKF_USER_PIN_INITIALIZED`.
    pub user_pin_initialized: bool,
    /// `CKF_USER_PIN_LOCKED`.
    pub user_pin_locked: bool,
    /// `CKF_SO_PIN_LOCKED`.
    pub so_pin_locked: bool,
    /// Consecutive wrong user PINs so far (`CKF_USER_PIN_COUNT_LOW` when non-zero).
    pub user_pin_failures: u32,
    /// Consecutive wrong SO PINs so far.
    pub so_pin_failures: u32,
    /// The device was tampered with: every key on it has been zeroised.
    pub tampered: bool,
    /// Open sessions on this token.
    pub session_count: u64,
    /// Token objects stored on this token.
    pub object_count: u64,
    /// `ulMinPinLen` / `ulMaxPinLen`, in bytes.
    pub pin_len_min_bytes: usize,
    /// See `pin_len_min_bytes`.
    pub pin_len_max_bytes: usize,
}
