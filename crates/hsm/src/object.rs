//! Objects (keys) and the rules of their attributes.
//!
//! An object is stored as typed fields rather than an attribute map, so that the invariants are
//! in the type: a public key has no secret, `CKA_ALWAYS_SENSITIVE` is computed, never set. The
//! secret part (PKCS#8 for RSA, the scalar for EC, the value for AES) exists here only sealed
//! under the master key; see [`crate::store`].
//!
//! This file answers three questions for `c_*` calls, without touching sessions or storage:
//! what a template means ([`Template`]), what an attribute reads as ([`ObjectRecord::read`]),
//! and whether an attribute may change ([`ObjectRecord::apply`]).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Ckr;
use crate::mechanisms::{ec, rsa};
use crate::types::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle, SessionHandle};

/// Usage flags (`CKA_ENCRYPT`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Usage {
    pub(crate) encrypt: bool,
    pub(crate) decrypt: bool,
    pub(crate) sign: bool,
    pub(crate) verify: bool,
    pub(crate) wrap: bool,
    pub(crate) unwrap: bool,
}

/// The operation a key is about to be used for (checked against [`Usage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    Wrap,
    Unwrap,
}

impl Usage {
    pub(crate) fn permits(&self, operation: Use) -> bool {
        match operation {
            Use::Encrypt => self.encrypt,
            Use::Decrypt => self.decrypt,
            Use::Sign => self.sign,
            Use::Verify => self.verify,
            Use::Wrap => self.wrap,
            Use::Unwrap => self.unwrap,
        }
    }
}

/// The public values of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PublicPart {
    None,
    Rsa {
        modulus: Vec<u8>,
        public_exponent: Vec<u8>,
    },
    Ec {
        point: Vec<u8>,
    },
}

/// One object as the module holds it (and, for token objects, as sled stores it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ObjectRecord {
    pub(crate) handle: ObjectHandle,
    pub(crate) slot: u64,
    pub(crate) class: ObjectClass,
    pub(crate) key_type: KeyType,
    pub(crate) label: String,
    pub(crate) id: Vec<u8>,
    pub(crate) token: bool,
    pub(crate) private: bool,
    pub(crate) sensitive: bool,
    pub(crate) extractable: bool,
    pub(crate) always_sensitive: bool,
    pub(crate) never_extractable: bool,
    pub(crate) local: bool,
    pub(crate) usage: Usage,
    pub(crate) public: PublicPart,
    pub(crate) value_len_bytes: Option<u64>,
    /// The secret part, sealed under the master key with the handle as nonce and AAD.
    pub(crate) sealed_secret: Option<Vec<u8>>,
    /// The session that owns a session object (`CKA_TOKEN` false); never persisted.
    #[serde(skip)]
    pub(crate) owner: Option<SessionHandle>,
}

/// A creation template, parsed: each attribute at most once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Template {
    pub(crate) class: Option<ObjectClass>,
    pub(crate) key_type: Option<KeyType>,
    pub(crate) label: Option<String>,
    pub(crate) id: Option<Vec<u8>>,
    pub(crate) token: Option<bool>,
    pub(crate) private: Option<bool>,
    pub(crate) sensitive: Option<bool>,
    pub(crate) extractable: Option<bool>,
    pub(crate) encrypt: Option<bool>,
    pub(crate) decrypt: Option<bool>,
    pub(crate) sign: Option<bool>,
    pub(crate) verify: Option<bool>,
    pub(crate) wrap: Option<bool>,
    pub(crate) unwrap: Option<bool>,
    pub(crate) modulus_bits: Option<u64>,
    pub(crate) public_exponent: Option<Vec<u8>>,
    pub(crate) ec_params: Option<Vec<u8>>,
    pub(crate) value_len: Option<u64>,
}

/// Most attributes one template may carry (there are 25 types; a longer one repeats itself).
const TEMPLATE_LEN_MAX: usize = 64;

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), Ckr> {
    if slot.is_some() {
        return Err(Ckr::TemplateInconsistent);
    }
    *slot = Some(value);
    Ok(())
}

impl Template {
    /// Parses a creation template. Attributes the device computes (`CKA_LOCAL`,
    /// `CKA_ALWAYS_SENSITIVE`, `CKA_NEVER_EXTRACTABLE`) are `CKR_ATTRIBUTE_READ_ONLY`; key values
    /// the device generates (`CKA_VALUE`, `CKA_MODULUS`, ...) are `CKR_TEMPLATE_INCONSISTENT`.
    pub(crate) fn parse(attributes: &[Attribute]) -> Result<Template, Ckr> {
        if attributes.len() > TEMPLATE_LEN_MAX {
            return Err(Ckr::ArgumentsBad);
        }
        let mut t = Template::default();
        for attribute in attributes {
            match attribute.clone() {
                Attribute::Class(v) => set_once(&mut t.class, v)?,
                Attribute::KeyType(v) => set_once(&mut t.key_type, v)?,
                Attribute::Label(v) => set_once(&mut t.label, v)?,
                Attribute::Id(v) => set_once(&mut t.id, v)?,
                Attribute::Token(v) => set_once(&mut t.token, v)?,
                Attribute::Private(v) => set_once(&mut t.private, v)?,
                Attribute::Sensitive(v) => set_once(&mut t.sensitive, v)?,
                Attribute::Extractable(v) => set_once(&mut t.extractable, v)?,
                Attribute::Encrypt(v) => set_once(&mut t.encrypt, v)?,
                Attribute::Decrypt(v) => set_once(&mut t.decrypt, v)?,
                Attribute::Sign(v) => set_once(&mut t.sign, v)?,
                Attribute::Verify(v) => set_once(&mut t.verify, v)?,
                Attribute::Wrap(v) => set_once(&mut t.wrap, v)?,
                Attribute::Unwrap(v) => set_once(&mut t.unwrap, v)?,
                Attribute::ModulusBits(v) => set_once(&mut t.modulus_bits, v)?,
                Attribute::PublicExponent(v) => set_once(&mut t.public_exponent, v)?,
                Attribute::EcParams(v) => set_once(&mut t.ec_params, v)?,
                Attribute::ValueLen(v) => set_once(&mut t.value_len, v)?,
                Attribute::Local(_)
                | Attribute::AlwaysSensitive(_)
                | Attribute::NeverExtractable(_) => return Err(Ckr::AttributeReadOnly),
                Attribute::Modulus(_)
                | Attribute::PrivateExponent(_)
                | Attribute::EcPoint(_)
                | Attribute::Value(_) => return Err(Ckr::TemplateInconsistent),
            }
        }
        Ok(t)
    }

    /// Checks that the template does not contradict the class and key type being created.
    pub(crate) fn expect(&self, class: ObjectClass, key_type: KeyType) -> Result<(), Ckr> {
        if self.class.is_some_and(|c| c != class) || self.key_type.is_some_and(|k| k != key_type) {
            return Err(Ckr::TemplateInconsistent);
        }
        Ok(())
    }
}

/// How a new key came to be: generated on the device, or unwrapped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Generated,
    Unwrapped,
}

impl ObjectRecord {
    /// Builds a new key object from its template, with this device's defaults: token false;
    /// private, sensitive and non-extractable for private and secret keys (an HSM's defaults,
    /// stricter than PKCS#11's token-specific ones); every usage flag the key type supports on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_key(
        handle: ObjectHandle,
        slot: u64,
        class: ObjectClass,
        key_type: KeyType,
        template: &Template,
        origin: Origin,
        public: PublicPart,
        value_len_bytes: Option<u64>,
    ) -> Result<ObjectRecord, Ckr> {
        template.expect(class, key_type)?;
        let is_public = class == ObjectClass::PublicKey;
        let is_private = class == ObjectClass::PrivateKey;
        let is_secret = class == ObjectClass::SecretKey;
        let rsa = key_type == KeyType::Rsa;
        let aes = key_type == KeyType::Aes;
        // Attributes that do not exist for this class are CKR_ATTRIBUTE_TYPE_INVALID.
        let not_for_public = [
            template.sensitive,
            template.extractable,
            template.decrypt,
            template.sign,
            template.unwrap,
        ];
        let not_for_private = [template.encrypt, template.verify, template.wrap];
        if (is_public && not_for_public.iter().any(Option::is_some))
            || (is_private && not_for_private.iter().any(Option::is_some))
            || (is_secret && (template.sign.is_some() || template.verify.is_some()))
        {
            return Err(Ckr::AttributeTypeInvalid);
        }
        let sensitive = template.sensitive.unwrap_or(!is_public);
        let extractable = template.extractable.unwrap_or(is_public);
        let local = origin == Origin::Generated;
        let usage = Usage {
            encrypt: template.encrypt.unwrap_or(is_public && rsa || aes),
            decrypt: template.decrypt.unwrap_or(is_private && rsa || aes),
            sign: template.sign.unwrap_or(is_private),
            verify: template.verify.unwrap_or(is_public),
            wrap: template.wrap.unwrap_or(is_public && rsa || aes),
            unwrap: template.unwrap.unwrap_or(is_private && rsa || aes),
        };
        Ok(ObjectRecord {
            handle,
            slot,
            class,
            key_type,
            label: template.label.clone().unwrap_or_default(),
            id: template.id.clone().unwrap_or_default(),
            token: template.token.unwrap_or(false),
            private: template.private.unwrap_or(!is_public),
            sensitive: sensitive && !is_public,
            extractable,
            always_sensitive: local && sensitive && !is_public,
            never_extractable: local && !extractable,
            local,
            usage,
            public,
            value_len_bytes,
            sealed_secret: None,
            owner: None,
        })
    }

    /// True when `attribute` exists for this object's class and key type.
    fn has(&self, attribute: AttributeType) -> bool {
        use AttributeType as A;
        let public = self.class == ObjectClass::PublicKey;
        let private = self.class == ObjectClass::PrivateKey;
        let secret = self.class == ObjectClass::SecretKey;
        let rsa = self.key_type == KeyType::Rsa;
        let ec = self.key_type == KeyType::Ec;
        match attribute {
            A::Class | A::KeyType | A::Label | A::Id | A::Token | A::Private | A::Local => true,
            A::Sensitive | A::Extractable | A::AlwaysSensitive | A::NeverExtractable => !public,
            A::Encrypt | A::Wrap => public || secret,
            A::Decrypt | A::Unwrap => private || secret,
            A::Sign => private,
            A::Verify => public,
            A::Modulus | A::PublicExponent => rsa,
            A::ModulusBits => rsa && public,
            A::PrivateExponent => rsa && private,
            A::EcParams => ec,
            A::EcPoint => ec && public,
            A::ValueLen => secret,
            A::Value => secret || (ec && private),
        }
    }

    /// Reads one attribute. Secret values (`CKA_VALUE`, `CKA_PRIVATE_EXPONENT`) need `unseal`
    /// and are `CKR_ATTRIBUTE_SENSITIVE` unless the key is neither sensitive nor unextractable.
    pub(crate) fn read(
        &self,
        attribute: AttributeType,
        unseal: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, Ckr>,
    ) -> Result<Attribute, Ckr> {
        use AttributeType as A;
        if !self.has(attribute) {
            return Err(Ckr::AttributeTypeInvalid);
        }
        let value = match attribute {
            A::Class => Attribute::Class(self.class),
            A::KeyType => Attribute::KeyType(self.key_type),
            A::Label => Attribute::Label(self.label.clone()),
            A::Id => Attribute::Id(self.id.clone()),
            A::Token => Attribute::Token(self.token),
            A::Private => Attribute::Private(self.private),
            A::Local => Attribute::Local(self.local),
            A::Sensitive => Attribute::Sensitive(self.sensitive),
            A::Extractable => Attribute::Extractable(self.extractable),
            A::AlwaysSensitive => Attribute::AlwaysSensitive(self.always_sensitive),
            A::NeverExtractable => Attribute::NeverExtractable(self.never_extractable),
            A::Encrypt => Attribute::Encrypt(self.usage.encrypt),
            A::Decrypt => Attribute::Decrypt(self.usage.decrypt),
            A::Sign => Attribute::Sign(self.usage.sign),
            A::Verify => Attribute::Verify(self.usage.verify),
            A::Wrap => Attribute::Wrap(self.usage.wrap),
            A::Unwrap => Attribute::Unwrap(self.usage.unwrap),
            A::Modulus | A::PublicExponent | A::ModulusBits => match &self.public {
                PublicPart::Rsa {
                    modulus,
                    public_exponent,
                } => match attribute {
                    A::Modulus => Attribute::Modulus(modulus.clone()),
                    A::PublicExponent => Attribute::PublicExponent(public_exponent.clone()),
                    _ => Attribute::ModulusBits(modulus_bits(modulus)),
                },
                _ => return Err(Ckr::DeviceError),
            },
            A::EcParams => Attribute::EcParams(ec::P256_EC_PARAMS_DER.to_vec()),
            A::EcPoint => match &self.public {
                PublicPart::Ec { point } => Attribute::EcPoint(ec::ec_point_der(point)),
                _ => return Err(Ckr::DeviceError),
            },
            A::ValueLen => Attribute::ValueLen(self.value_len_bytes.unwrap_or(0)),
            A::Value | A::PrivateExponent => {
                if self.sensitive || !self.extractable {
                    return Err(Ckr::AttributeSensitive);
                }
                let secret = unseal()?;
                if attribute == A::PrivateExponent {
                    Attribute::PrivateExponent(rsa::private_exponent(&secret)?)
                } else {
                    Attribute::Value(secret.to_vec())
                }
            }
        };
        Ok(value)
    }

    /// True when every attribute of `template` reads as given (secret ones never match).
    pub(crate) fn matches(&self, template: &[Attribute]) -> bool {
        template.iter().all(|wanted| {
            let secret = || Err(Ckr::AttributeSensitive);
            self.read(wanted.attribute_type(), secret)
                .is_ok_and(|actual| &actual == wanted)
        })
    }

    /// Applies `C_SetAttributeValue`, all or nothing. Only `CKA_LABEL`, `CKA_ID` and the usage
    /// flags change freely; `CKA_SENSITIVE` may only be turned on and `CKA_EXTRACTABLE` only off
    /// (PKCS#11 §4.9); everything else is `CKR_ATTRIBUTE_READ_ONLY`.
    pub(crate) fn apply(&mut self, template: &[Attribute]) -> Result<(), Ckr> {
        if template.len() > TEMPLATE_LEN_MAX {
            return Err(Ckr::ArgumentsBad);
        }
        let mut next = self.clone();
        for attribute in template {
            if !self.has(attribute.attribute_type()) {
                return Err(Ckr::AttributeTypeInvalid);
            }
            match attribute.clone() {
                Attribute::Label(v) => next.label = v,
                Attribute::Id(v) => next.id = v,
                Attribute::Encrypt(v) => next.usage.encrypt = v,
                Attribute::Decrypt(v) => next.usage.decrypt = v,
                Attribute::Sign(v) => next.usage.sign = v,
                Attribute::Verify(v) => next.usage.verify = v,
                Attribute::Wrap(v) => next.usage.wrap = v,
                Attribute::Unwrap(v) => next.usage.unwrap = v,
                Attribute::Sensitive(true) => next.sensitive = true,
                Attribute::Extractable(false) => next.extractable = false,
                _ => return Err(Ckr::AttributeReadOnly),
            }
        }
        *self = next;
        Ok(())
    }
}

/// `CKA_MODULUS_BITS` of a big-endian modulus without leading zeros.
fn modulus_bits(modulus: &[u8]) -> u64 {
    match modulus.first() {
        Some(first) => (modulus.len() as u64 - 1) * 8 + u64::from(8 - first.leading_zeros()),
        None => 0,
    }
}
