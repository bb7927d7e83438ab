//! Single-part cryptographic calls: `C_Encrypt`, `C_Decrypt`, `C_Sign`, `C_Verify`,
//! `C_WrapKey`, `C_UnwrapKey`.
//!
//! Each call checks, in PKCS#11's order: session, key handle, login, that the mechanism exists
//! for the operation (`CKR_MECHANISM_INVALID`), that the key fits the mechanism
//! (`CKR_KEY_TYPE_INCONSISTENT`), that the key's usage flag allows it
//! (`CKR_KEY_FUNCTION_NOT_PERMITTED`); then it releases the lock and runs the mechanism, which
//! checks parameters and data.

use std::sync::Arc;

use rand::RngCore;
use zeroize::Zeroizing;

use super::Module;
use crate::error::Ckr;
use crate::mechanism::Mechanism;
use crate::mechanisms::{aes, ec, LoadedKey, SharedKey};
use crate::object::{ObjectRecord, Origin, PublicPart, Template, Use};
use crate::types::{Attribute, KeyType, ObjectClass, ObjectHandle, SessionHandle};

/// Bytes drawn from the module's random source per ECDSA signature (kept for stream stability).
const ECDSA_SEED_LEN_BYTES: usize = 32;

/// The class and key type `mechanism` needs for `operation`, or `CKR_MECHANISM_INVALID`.
fn required_key(operation: Use, mechanism: &Mechanism) -> Result<(ObjectClass, KeyType), Ckr> {
    use Mechanism as M;
    let rsa_public = (ObjectClass::PublicKey, KeyType::Rsa);
    let rsa_private = (ObjectClass::PrivateKey, KeyType::Rsa);
    let aes = (ObjectClass::SecretKey, KeyType::Aes);
    match (operation, mechanism) {
        (Use::Encrypt | Use::Wrap, M::RsaPkcs | M::RsaPkcsOaep(_)) => Ok(rsa_public),
        (Use::Decrypt | Use::Unwrap, M::RsaPkcs | M::RsaPkcsOaep(_)) => Ok(rsa_private),
        (Use::Wrap | Use::Unwrap, M::AesKeyWrap | M::AesKeyWrapKwp) => Ok(aes),
        (Use::Sign, M::RsaPkcs | M::RsaPkcsPss(_) | M::Sha256RsaPkcs | M::Sha256RsaPkcsPss(_)) => {
            Ok(rsa_private)
        }
        (
            Use::Verify,
            M::RsaPkcs | M::RsaPkcsPss(_) | M::Sha256RsaPkcs | M::Sha256RsaPkcsPss(_),
        ) => Ok(rsa_public),
        (Use::Sign, M::Ecdsa) => Ok((ObjectClass::PrivateKey, KeyType::Ec)),
        (Use::Verify, M::Ecdsa) => Ok((ObjectClass::PublicKey, KeyType::Ec)),
        _ => Err(Ckr::MechanismInvalid),
    }
}

/// The error codes a call uses for its key argument.
#[derive(Clone, Copy)]
struct KeyErrors {
    handle_invalid: Ckr,
    type_inconsistent: Ckr,
}

const KEY: KeyErrors = KeyErrors {
    handle_invalid: Ckr::KeyHandleInvalid,
    type_inconsistent: Ckr::KeyTypeInconsistent,
};
const WRAPPING_KEY: KeyErrors = KeyErrors {
    handle_invalid: Ckr::WrappingKeyHandleInvalid,
    type_inconsistent: Ckr::WrappingKeyTypeInconsistent,
};
const UNWRAPPING_KEY: KeyErrors = KeyErrors {
    handle_invalid: Ckr::UnwrappingKeyHandleInvalid,
    type_inconsistent: Ckr::UnwrappingKeyTypeInconsistent,
};

impl Module {
    /// Checks everything about using `key` for `operation` with `mechanism` and returns the
    /// parsed key (the lock is released on return).
    fn key_for(
        &self,
        session: SessionHandle,
        key: ObjectHandle,
        operation: Use,
        mechanism: &Mechanism,
        errors: KeyErrors,
    ) -> Result<SharedKey, Ckr> {
        let mut s = self.begin()?;
        let live = s.session(session)?;
        let record = s.object(live, key, errors.handle_invalid)?;
        let (class, key_type) = required_key(operation, mechanism)?;
        if record.class != class || record.key_type != key_type {
            return Err(errors.type_inconsistent);
        }
        if !record.usage.permits(operation) {
            return Err(Ckr::KeyFunctionNotPermitted);
        }
        s.load_key(key)
    }

    /// `C_Encrypt` (single part): RSA OAEP or PKCS#1 v1.5 with a public key.
    pub fn c_encrypt(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        key: ObjectHandle,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Ckr> {
        let loaded = self.key_for(session, key, Use::Encrypt, mechanism, KEY)?;
        match &*loaded {
            LoadedKey::RsaPublic(k) => k.encrypt(mechanism, plaintext),
            _ => Err(Ckr::KeyTypeInconsistent),
        }
    }

    /// `C_Decrypt` (single part): RSA OAEP or PKCS#1 v1.5 with a private key. A ciphertext of
    /// the wrong length is `CKR_ENCRYPTED_DATA_LEN_RANGE`; one that fails to decrypt is
    /// `CKR_ENCRYPTED_DATA_INVALID`.
    pub fn c_decrypt(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        key: ObjectHandle,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Ckr> {
        let loaded = self.key_for(session, key, Use::Decrypt, mechanism, KEY)?;
        match &*loaded {
            LoadedKey::RsaPrivate(k) => k.decrypt(mechanism, ciphertext).map(|p| p.to_vec()),
            _ => Err(Ckr::KeyTypeInconsistent),
        }
    }

    /// `C_Sign` (single part): RSA (see [`Mechanism`] for message vs digest input) or ECDSA over
    /// a 32-byte digest (`r || s`).
    pub fn c_sign(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
    ) -> Result<Vec<u8>, Ckr> {
        let loaded = self.key_for(session, key, Use::Sign, mechanism, KEY)?;
        match &*loaded {
            LoadedKey::RsaPrivate(k) => k.sign(mechanism, data),
            LoadedKey::EcPrivate(k) => {
                // The nonce comes from aws-lc's generator (see `mechanisms::ec`). The module
                // still draws the 32 bytes it used to seed the signer with, so that a seeded
                // module's random stream, and every key generated after a signature, stays what
                // it was before signing moved to aws-lc.
                let mut unused_seed = Zeroizing::new([0u8; ECDSA_SEED_LEN_BYTES]);
                self.begin()?.rng.fill_bytes(unused_seed.as_mut());
                ec::sign(k, data)
            }
            _ => Err(Ckr::KeyTypeInconsistent),
        }
    }

    /// `C_Verify` (single part): `Ok(())` or `CKR_SIGNATURE_INVALID` /
    /// `CKR_SIGNATURE_LEN_RANGE`.
    pub fn c_verify(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        key: ObjectHandle,
        data: &[u8],
        signature: &[u8],
    ) -> Result<(), Ckr> {
        let loaded = self.key_for(session, key, Use::Verify, mechanism, KEY)?;
        match &*loaded {
            LoadedKey::RsaPublic(k) => k.verify(mechanism, data, signature),
            LoadedKey::EcPublic(k) => ec::verify(k, data, signature),
            _ => Err(Ckr::KeyTypeInconsistent),
        }
    }

    /// `C_WrapKey`: wraps the secret (AES) key `key` with an RSA public key (OAEP, PKCS#1 v1.5)
    /// or an AES key (`CKM_AES_KEY_WRAP`, `CKM_AES_KEY_WRAP_KWP`). The key must be extractable
    /// (`CKR_KEY_UNEXTRACTABLE`); private keys are not wrappable here (`CKR_KEY_NOT_WRAPPABLE`).
    pub fn c_wrap_key(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        wrapping_key: ObjectHandle,
        key: ObjectHandle,
    ) -> Result<Vec<u8>, Ckr> {
        let wrapping = self.key_for(session, wrapping_key, Use::Wrap, mechanism, WRAPPING_KEY)?;
        let value = {
            let mut s = self.begin()?;
            let live = s.session(session)?;
            let record = s.object(live, key, Ckr::KeyHandleInvalid)?;
            if record.class != ObjectClass::SecretKey {
                return Err(Ckr::KeyNotWrappable);
            }
            if !record.extractable {
                return Err(Ckr::KeyUnextractable);
            }
            match &*s.load_key(key)? {
                LoadedKey::Aes(value) => value.clone(),
                _ => return Err(Ckr::KeyNotWrappable),
            }
        };
        match &*wrapping {
            LoadedKey::RsaPublic(k) => k.encrypt(mechanism, &value),
            LoadedKey::Aes(k) => aes::wrap(mechanism, k, &value),
            _ => Err(Ckr::WrappingKeyTypeInconsistent),
        }
    }

    /// `C_UnwrapKey`: unwraps `wrapped` with an RSA private key (OAEP, PKCS#1 v1.5) or an AES
    /// key (KW, KWP) into a new AES secret-key object built from `template` (class and key type
    /// default to `CKO_SECRET_KEY`/`CKK_AES`). A blob of impossible length is
    /// `CKR_WRAPPED_KEY_LEN_RANGE`; one that fails its integrity check (or does not hold a 16 or
    /// 32-byte key) is `CKR_WRAPPED_KEY_INVALID`. The new key is neither `CKA_LOCAL` nor
    /// `CKA_ALWAYS_SENSITIVE` nor `CKA_NEVER_EXTRACTABLE`.
    pub fn c_unwrap_key(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        unwrapping_key: ObjectHandle,
        wrapped: &[u8],
        template: &[Attribute],
    ) -> Result<ObjectHandle, Ckr> {
        let t = Template::parse(template)?;
        t.expect(ObjectClass::SecretKey, KeyType::Aes)?;
        let unwrapping = self.key_for(
            session,
            unwrapping_key,
            Use::Unwrap,
            mechanism,
            UNWRAPPING_KEY,
        )?;
        {
            let s = self.begin()?;
            let live = s.session(session)?;
            s.check_can_create(live, t.token.unwrap_or(false), t.private.unwrap_or(true))?;
            s.check_room(1)?;
        }
        let value = match &*unwrapping {
            LoadedKey::RsaPrivate(k) => k.decrypt(mechanism, wrapped).map_err(|e| match e {
                Ckr::EncryptedDataLenRange => Ckr::WrappedKeyLenRange,
                Ckr::EncryptedDataInvalid => Ckr::WrappedKeyInvalid,
                other => other,
            })?,
            LoadedKey::Aes(k) => aes::unwrap(mechanism, k, wrapped)?,
            _ => return Err(Ckr::UnwrappingKeyTypeInconsistent),
        };
        let value_len = value.len() as u64;
        if !aes::supported_len(value_len) {
            return Err(Ckr::WrappedKeyInvalid);
        }
        if t.value_len.is_some_and(|wanted| wanted != value_len) {
            return Err(Ckr::TemplateInconsistent);
        }
        let mut s = self.begin()?;
        let live = s.session(session)?;
        s.check_can_create(live, t.token.unwrap_or(false), t.private.unwrap_or(true))?;
        let handle = s.allocate_handle()?;
        let record = ObjectRecord::new_key(
            handle,
            live.slot,
            ObjectClass::SecretKey,
            KeyType::Aes,
            &t,
            Origin::Unwrapped,
            PublicPart::None,
            Some(value_len),
        )?;
        let token = record.token;
        let loaded = Arc::new(LoadedKey::Aes(value.clone()));
        s.insert_object(record, Some(&value), loaded, session)?;
        if token {
            s.store.flush()?;
        }
        Ok(handle)
    }
}
