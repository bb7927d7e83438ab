//! The module's errors: PKCS#11 return values, one variant per `CKR_*` code.
//!
//! Every `c_*` call returns `Result<_, Ckr>`. The variants carry the exact PKCS#11 names because
//! callers (the Key Vault, the scenario oracle, a teacher reading the timeline) compare them with
//! what a real HSM would answer: `Display` prints the name (`CKR_PIN_INCORRECT`) and [`Ckr::code`]
//! the numeric value from `pkcs11t.h`, so that a later C ABI can return it unchanged.
//!
//! Opening the device is not a PKCS#11 call (a real device is just there), so it has its own
//! error, [`OpenError`], which keeps the underlying I/O or database cause.

use std::fmt;

/// A PKCS#11 return value other than `CKR_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ckr {
    /// `CKR_ARGUMENTS_BAD` (0x07): an argument is malformed (e.g. an ECDSA input that is not a
    /// 32-byte digest).
    ArgumentsBad,
    /// `CKR_ATTRIBUTE_READ_ONLY` (0x10).
    AttributeReadOnly,
    /// `CKR_ATTRIBUTE_SENSITIVE` (0x11).
    AttributeSensitive,
    /// `CKR_ATTRIBUTE_TYPE_INVALID` (0x12).
    AttributeTypeInvalid,
    /// `CKR_ATTRIBUTE_VALUE_INVALID` (0x13).
    AttributeValueInvalid,
    /// `CKR_DATA_INVALID` (0x20).
    DataInvalid,
    /// `CKR_DATA_LEN_RANGE` (0x21).
    DataLenRange,
    /// `CKR_DEVICE_ERROR` (0x30): an injected device fault, or the persistent store failed.
    DeviceError,
    /// `CKR_DEVICE_MEMORY` (0x31): the object limit of the device is reached.
    DeviceMemory,
    /// `CKR_DEVICE_REMOVED` (0x32): the device was tampered with and zeroised.
    DeviceRemoved,
    /// `CKR_ENCRYPTED_DATA_INVALID` (0x40).
    EncryptedDataInvalid,
    /// `CKR_ENCRYPTED_DATA_LEN_RANGE` (0x41).
    EncryptedDataLenRange,
    /// `CKR_KEY_HANDLE_INVALID` (0x60).
    KeyHandleInvalid,
    /// `CKR_KEY_SIZE_RANGE` (0x62).
    KeySizeRange,
    /// `CKR_KEY_TYPE_INCONSISTENT` (0x63).
    KeyTypeInconsistent,
    /// `CKR_KEY_FUNCTION_NOT_PERMITTED` (0x68).
    KeyFunctionNotPermitted,
    /// `CKR_KEY_NOT_WRAPPABLE` (0x69).
    KeyNotWrappable,
    /// `CKR_KEY_UNEXTRACTABLE` (0x6A).
    KeyUnextractable,
    /// `CKR_MECHANISM_INVALID` (0x70).
    MechanismInvalid,
    /// `CKR_MECHANISM_PARAM_INVALID` (0x71).
    MechanismParamInvalid,
    /// `CKR_OBJECT_HANDLE_INVALID` (0x82).
    ObjectHandleInvalid,
    /// `CKR_PIN_INCORRECT` (0xA0).
    PinIncorrect,
    /// `CKR_PIN_LEN_RANGE` (0xA2).
    PinLenRange,
    /// `CKR_PIN_LOCKED` (0xA4).
    PinLocked,
    /// `CKR_SESSION_COUNT` (0xB1): the session limit of the device is reached.
    SessionCount,
    /// `CKR_SESSION_HANDLE_INVALID` (0xB3).
    SessionHandleInvalid,
    /// `CKR_SESSION_READ_ONLY` (0xB5).
    SessionReadOnly,
    /// `CKR_SESSION_EXISTS` (0xB6): `C_InitToken` while sessions are open.
    SessionExists,
    /// `CKR_SESSION_READ_ONLY_EXISTS` (0xB7): SO login while a read-only session is open.
    SessionReadOnlyExists,
    /// `CKR_SIGNATURE_INVALID` (0xC0).
    SignatureInvalid,
    /// `CKR_SIGNATURE_LEN_RANGE` (0xC1).
    SignatureLenRange,
    /// `CKR_TEMPLATE_INCOMPLETE` (0xD0).
    TemplateIncomplete,
    /// `CKR_TEMPLATE_INCONSISTENT` (0xD1).
    TemplateInconsistent,
    /// `CKR_TOKEN_NOT_RECOGNIZED` (0xE1): the token in the slot is not initialised.
    TokenNotRecognized,
    /// `CKR_UNWRAPPING_KEY_HANDLE_INVALID` (0xF0).
    UnwrappingKeyHandleInvalid,
    /// `CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT` (0xF2).
    UnwrappingKeyTypeInconsistent,
    /// `CKR_USER_ALREADY_LOGGED_IN` (0x100).
    UserAlreadyLoggedIn,
    /// `CKR_USER_NOT_LOGGED_IN` (0x101).
    UserNotLoggedIn,
    /// `CKR_USER_PIN_NOT_INITIALIZED` (0x102).
    UserPinNotInitialized,
    /// `CKR_USER_TYPE_INVALID` (0x103).
    UserTypeInvalid,
    /// `CKR_USER_ANOTHER_ALREADY_LOGGED_IN` (0x104).
    UserAnotherAlreadyLoggedIn,
    /// `CKR_WRAPPED_KEY_INVALID` (0x110).
    WrappedKeyInvalid,
    /// `CKR_WRAPPED_KEY_LEN_RANGE` (0x112).
    WrappedKeyLenRange,
    /// `CKR_WRAPPING_KEY_HANDLE_INVALID` (0x113).
    WrappingKeyHandleInvalid,
    /// `CKR_WRAPPING_KEY_TYPE_INCONSISTENT` (0x115).
    WrappingKeyTypeInconsistent,
    /// `CKR_SLOT_ID_INVALID` (0x03).
    SlotIdInvalid,
    /// `CKR_CURVE_NOT_SUPPORTED` (0x140).
    CurveNotSupported,
}

impl Ckr {
    /// Every variant, for tables and tests.
    pub const ALL: [Ckr; 47] = [
        Ckr::ArgumentsBad,
        Ckr::AttributeReadOnly,
        Ckr::AttributeSensitive,
        Ckr::AttributeTypeInvalid,
        Ckr::AttributeValueInvalid,
        Ckr::DataInvalid,
        Ckr::DataLenRange,
        Ckr::DeviceError,
        Ckr::DeviceMemory,
        Ckr::DeviceRemoved,
        Ckr::EncryptedDataInvalid,
        Ckr::EncryptedDataLenRange,
        Ckr::KeyHandleInvalid,
        Ckr::KeySizeRange,
        Ckr::KeyTypeInconsistent,
        Ckr::KeyFunctionNotPermitted,
        Ckr::KeyNotWrappable,
        Ckr::KeyUnextractable,
        Ckr::MechanismInvalid,
        Ckr::MechanismParamInvalid,
        Ckr::ObjectHandleInvalid,
        Ckr::PinIncorrect,
        Ckr::PinLenRange,
        Ckr::PinLocked,
        Ckr::SessionCount,
        Ckr::SessionHandleInvalid,
        Ckr::SessionReadOnly,
        Ckr::SessionExists,
        Ckr::SessionReadOnlyExists,
        Ckr::SignatureInvalid,
        Ckr::SignatureLenRange,
        Ckr::TemplateIncomplete,
        Ckr::TemplateInconsistent,
        Ckr::TokenNotRecognized,
        Ckr::UnwrappingKeyHandleInvalid,
        Ckr::UnwrappingKeyTypeInconsistent,
        Ckr::UserAlreadyLoggedIn,
        Ckr::UserNotLoggedIn,
        Ckr::UserPinNotInitialized,
        Ckr::UserTypeInvalid,
        Ckr::UserAnotherAlreadyLoggedIn,
        Ckr::WrappedKeyInvalid,
        Ckr::WrappedKeyLenRange,
        Ckr::WrappingKeyHandleInvalid,
        Ckr::WrappingKeyTypeInconsistent,
        Ckr::SlotIdInvalid,
        Ckr::CurveNotSupported,
    ];

    /// The PKCS#11 name and numeric value (`pkcs11t.h`, v2.40/v3.0).
    fn name_and_code(self) -> (&'static str, u64) {
        match self {
            Ckr::ArgumentsBad => ("CKR_ARGUMENTS_BAD", 0x07),
            Ckr::AttributeReadOnly => ("CKR_ATTRIBUTE_READ_ONLY", 0x10),
            Ckr::AttributeSensitive => ("CKR_ATTRIBUTE_SENSITIVE", 0x11),
            Ckr::AttributeTypeInvalid => ("CKR_ATTRIBUTE_TYPE_INVALID", 0x12),
            Ckr::AttributeValueInvalid => ("CKR_ATTRIBUTE_VALUE_INVALID", 0x13),
            Ckr::DataInvalid => ("CKR_DATA_INVALID", 0x20),
            Ckr::DataLenRange => ("CKR_DATA_LEN_RANGE", 0x21),
            Ckr::DeviceError => ("CKR_DEVICE_ERROR", 0x30),
            Ckr::DeviceMemory => ("CKR_DEVICE_MEMORY", 0x31),
            Ckr::DeviceRemoved => ("CKR_DEVICE_REMOVED", 0x32),
            Ckr::EncryptedDataInvalid => ("CKR_ENCRYPTED_DATA_INVALID", 0x40),
            Ckr::EncryptedDataLenRange => ("CKR_ENCRYPTED_DATA_LEN_RANGE", 0x41),
            Ckr::KeyHandleInvalid => ("CKR_KEY_HANDLE_INVALID", 0x60),
            Ckr::KeySizeRange => ("CKR_KEY_SIZE_RANGE", 0x62),
            Ckr::KeyTypeInconsistent => ("CKR_KEY_TYPE_INCONSISTENT", 0x63),
            Ckr::KeyFunctionNotPermitted => ("CKR_KEY_FUNCTION_NOT_PERMITTED", 0x68),
            Ckr::KeyNotWrappable => ("CKR_KEY_NOT_WRAPPABLE", 0x69),
            Ckr::KeyUnextractable => ("CKR_KEY_UNEXTRACTABLE", 0x6A),
            Ckr::MechanismInvalid => ("CKR_MECHANISM_INVALID", 0x70),
            Ckr::MechanismParamInvalid => ("CKR_MECHANISM_PARAM_INVALID", 0x71),
            Ckr::ObjectHandleInvalid => ("CKR_OBJECT_HANDLE_INVALID", 0x82),
            Ckr::PinIncorrect => ("CKR_PIN_INCORRECT", 0xA0),
            Ckr::PinLenRange => ("CKR_PIN_LEN_RANGE", 0xA2),
            Ckr::PinLocked => ("CKR_PIN_LOCKED", 0xA4),
            Ckr::SessionCount => ("CKR_SESSION_COUNT", 0xB1),
            Ckr::SessionHandleInvalid => ("CKR_SESSION_HANDLE_INVALID", 0xB3),
            Ckr::SessionReadOnly => ("CKR_SESSION_READ_ONLY", 0xB5),
            Ckr::SessionExists => ("CKR_SESSION_EXISTS", 0xB6),
            Ckr::SessionReadOnlyExists => ("CKR_SESSION_READ_ONLY_EXISTS", 0xB7),
            Ckr::SignatureInvalid => ("CKR_SIGNATURE_INVALID", 0xC0),
            Ckr::SignatureLenRange => ("CKR_SIGNATURE_LEN_RANGE", 0xC1),
            Ckr::TemplateIncomplete => ("CKR_TEMPLATE_INCOMPLETE", 0xD0),
            Ckr::TemplateInconsistent => ("CKR_TEMPLATE_INCONSISTENT", 0xD1),
            Ckr::TokenNotRecognized => ("CKR_TOKEN_NOT_RECOGNIZED", 0xE1),
            Ckr::UnwrappingKeyHandleInvalid => ("CKR_UNWRAPPING_KEY_HANDLE_INVALID", 0xF0),
            Ckr::UnwrappingKeyTypeInconsistent => ("CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT", 0xF2),
            Ckr::UserAlreadyLoggedIn => ("CKR_USER_ALREADY_LOGGED_IN", 0x100),
            Ckr::UserNotLoggedIn => ("CKR_USER_NOT_LOGGED_IN", 0x101),
            Ckr::UserPinNotInitialized => ("CKR_USER_PIN_NOT_INITIALIZED", 0x102),
            Ckr::UserTypeInvalid => ("CKR_USER_TYPE_INVALID", 0x103),
            Ckr::UserAnotherAlreadyLoggedIn => ("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", 0x104),
            Ckr::WrappedKeyInvalid => ("CKR_WRAPPED_KEY_INVALID", 0x110),
            Ckr::WrappedKeyLenRange => ("CKR_WRAPPED_KEY_LEN_RANGE", 0x112),
            Ckr::WrappingKeyHandleInvalid => ("CKR_WRAPPING_KEY_HANDLE_INVALID", 0x113),
            Ckr::WrappingKeyTypeInconsistent => ("CKR_WRAPPING_KEY_TYPE_INCONSISTENT", 0x115),
            Ckr::SlotIdInvalid => ("CKR_SLOT_ID_INVALID", 0x03),
            Ckr::CurveNotSupported => ("CKR_CURVE_NOT_SUPPORTED", 0x140),
        }
    }

    /// The PKCS#11 name, e.g. `"CKR_PIN_INCORRECT"`.
    pub fn name(self) -> &'static str {
        self.name_and_code().0
    }

    /// The numeric `CK_RV` value, e.g. `0xA0` for `CKR_PIN_INCORRECT`.
    pub fn code(self) -> u64 {
        self.name_and_code().1
    }
}

impl fmt::Display for Ckr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Ckr {}

/// Why [`crate::Module::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory or the master-key file could not be read or written.
    #[error("HSM data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The sled database could not be opened or read.
    #[error("HSM store: {0}")]
    Store(#[from] sled::Error),
    /// The stored state is not what this version writes (corrupt, or written by another version).
    #[error("HSM store is corrupt: {0}")]
    Corrupt(String),
    /// The configuration is outside its documented limits.
    #[error("HSM configuration: {0}")]
    Config(String),
}
