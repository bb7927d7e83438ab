//! Object management: `C_GenerateKeyPair`, `C_GenerateKey`, `C_FindObjects`,
//! `C_GetAttributeValue`, `C_SetAttributeValue`, `C_DestroyObject`.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Module, Session, State};
use crate::error::Ckr;
use crate::mechanism::Mechanism;
use crate::mechanisms::rsa_keygen::{self, RsaKeySeed};
use crate::mechanisms::{aes, ec, rsa, LoadedKey, SharedKey};
use crate::object::{ObjectRecord, Origin, PublicPart, Template};
use crate::types::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle, SessionHandle};

/// A new object ready to insert: its record, its secret (to seal), its parsed key.
type NewObject = (ObjectRecord, Option<Zeroizing<Vec<u8>>>, SharedKey);

/// Key material generated for a pair, before it becomes two objects.
struct PairMaterial {
    key_type: KeyType,
    secret: Zeroizing<Vec<u8>>,
    public: PublicPart,
    private_key: LoadedKey,
    public_key: LoadedKey,
}

/// A pair's material as the first, locked phase of `C_GenerateKeyPair` leaves it.
enum PairToMake {
    /// Made already (EC: fast).
    Made(PairMaterial),
    /// To make outside the lock from this seed (RSA: slow).
    Rsa(RsaKeySeed),
}

impl State {
    /// Phase 1 of a creation: the session may create objects like these, and there is room.
    fn check_creation(
        &self,
        session: Session,
        templates: &[&Template],
        default_private: &[bool],
    ) -> Result<(), Ckr> {
        for (template, default_private) in templates.iter().zip(default_private) {
            let token = template.token.unwrap_or(false);
            let private = template.private.unwrap_or(*default_private);
            self.check_can_create(session, token, private)?;
        }
        self.check_room(templates.len())
    }

    /// Phase 2: inserts the objects, then makes token objects durable.
    fn insert_all(&mut self, session: SessionHandle, items: Vec<NewObject>) -> Result<(), Ckr> {
        self.check_room(items.len())?;
        let any_token = items.iter().any(|(record, _, _)| record.token);
        for (record, secret, loaded) in items {
            self.insert_object(
                record,
                secret.as_deref().map(|s| s.as_slice()),
                loaded,
                session,
            )?;
        }
        if any_token {
            self.store.flush()?;
        }
        Ok(())
    }
}

impl Module {
    /// `C_GenerateKeyPair` with `CKM_RSA_PKCS_KEY_PAIR_GEN` (public template needs
    /// `CKA_MODULUS_BITS` 2048/3072/4096; `CKA_PUBLIC_EXPONENT`, if given, must be 65537) or
    /// `CKM_EC_KEY_PAIR_GEN` (public template needs `CKA_EC_PARAMS` of P-256). Returns
    /// `(public, private)`.
    pub fn c_generate_key_pair(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        public_template: &[Attribute],
        private_template: &[Attribute],
    ) -> Result<(ObjectHandle, ObjectHandle), Ckr> {
        let public_t = Template::parse(public_template)?;
        let private_t = Template::parse(private_template)?;
        let material = {
            let mut s = self.begin()?;
            let live = s.session(session)?;
            s.check_creation(live, &[&public_t, &private_t], &[false, true])?;
            match mechanism {
                // The key's seed is drawn here, in call order; the key is made below.
                Mechanism::RsaPkcsKeyPairGen => PairToMake::Rsa(RsaKeySeed::draw(&mut s.rng)),
                Mechanism::EcKeyPairGen => {
                    PairToMake::Made(generate_ec(&public_t, &private_t, &mut s.rng)?)
                }
                _ => return Err(Ckr::MechanismInvalid),
            }
        };
        // RSA generation is slow (up to seconds for 4096 bits): outside the lock.
        let material = match material {
            PairToMake::Made(material) => material,
            PairToMake::Rsa(seed) => generate_rsa(&public_t, &private_t, &seed)?,
        };
        let mut s = self.begin()?;
        let live = s.session(session)?;
        s.check_creation(live, &[&public_t, &private_t], &[false, true])?;
        let public_handle = s.allocate_handle()?;
        let private_handle = s.allocate_handle()?;
        let key_type = material.key_type;
        let value_len = None;
        let public = ObjectRecord::new_key(
            public_handle,
            live.slot,
            ObjectClass::PublicKey,
            key_type,
            &public_t,
            Origin::Generated,
            material.public.clone(),
            value_len,
        )?;
        let private = ObjectRecord::new_key(
            private_handle,
            live.slot,
            ObjectClass::PrivateKey,
            key_type,
            &private_t,
            Origin::Generated,
            material.public,
            value_len,
        )?;
        s.insert_all(
            session,
            vec![
                (public, None, Arc::new(material.public_key)),
                (
                    private,
                    Some(material.secret),
                    Arc::new(material.private_key),
                ),
            ],
        )?;
        Ok((public_handle, private_handle))
    }

    /// `C_GenerateKey` with `CKM_AES_KEY_GEN` (`CKA_VALUE_LEN` 16 or 32 bytes, default 32).
    pub fn c_generate_key(
        &self,
        session: SessionHandle,
        mechanism: &Mechanism,
        template: &[Attribute],
    ) -> Result<ObjectHandle, Ckr> {
        if *mechanism != Mechanism::AesKeyGen {
            return Err(Ckr::MechanismInvalid);
        }
        let t = Template::parse(template)?;
        t.expect(ObjectClass::SecretKey, KeyType::Aes)?;
        if t.modulus_bits.is_some() || t.public_exponent.is_some() || t.ec_params.is_some() {
            return Err(Ckr::TemplateInconsistent);
        }
        let value_len = t.value_len.unwrap_or(32);
        if !aes::supported_len(value_len) {
            return Err(Ckr::KeySizeRange);
        }
        let mut s = self.begin()?;
        let live = s.session(session)?;
        s.check_creation(live, &[&t], &[true])?;
        let mut value = Zeroizing::new(vec![0u8; value_len as usize]);
        rand::RngCore::fill_bytes(&mut s.rng, &mut value);
        let handle = s.allocate_handle()?;
        let record = ObjectRecord::new_key(
            handle,
            live.slot,
            ObjectClass::SecretKey,
            KeyType::Aes,
            &t,
            Origin::Generated,
            PublicPart::None,
            Some(value_len),
        )?;
        let loaded = Arc::new(LoadedKey::Aes(value.clone()));
        s.insert_all(session, vec![(record, Some(value), loaded)])?;
        Ok(handle)
    }

    /// `C_FindObjectsInit` + `C_FindObjects` + `C_FindObjectsFinal` in one call: the handles of
    /// the objects on the session's token whose attributes equal every attribute of `template`,
    /// in handle order, at most `find_results_max`. Private objects are only found when the user
    /// is logged in; secret values never match.
    pub fn c_find_objects(
        &self,
        session: SessionHandle,
        template: &[Attribute],
    ) -> Result<Vec<ObjectHandle>, Ckr> {
        let s = self.begin()?;
        let live = s.session(session)?;
        let user = s.user_logged_in(live.slot);
        Ok(s.objects
            .values()
            .filter(|o| o.slot == live.slot && (user || !o.private) && o.matches(template))
            .map(|o| o.handle)
            .take(s.config.find_results_max)
            .collect())
    }

    /// `C_GetAttributeValue`: the values in the order asked. Fails as a whole on the first
    /// attribute that cannot be read (`CKR_ATTRIBUTE_SENSITIVE`, `CKR_ATTRIBUTE_TYPE_INVALID`).
    pub fn c_get_attribute_value(
        &self,
        session: SessionHandle,
        object: ObjectHandle,
        types: &[AttributeType],
    ) -> Result<Vec<Attribute>, Ckr> {
        let s = self.begin()?;
        let live = s.session(session)?;
        let record = s.object(live, object, Ckr::ObjectHandleInvalid)?;
        types
            .iter()
            .map(|t| {
                record.read(*t, || {
                    let sealed = record.sealed_secret.as_deref().ok_or(Ckr::DeviceError)?;
                    s.store.unseal(object, sealed)
                })
            })
            .collect()
    }

    /// `C_SetAttributeValue` (see [`ObjectRecord::apply`] for what may change).
    pub fn c_set_attribute_value(
        &self,
        session: SessionHandle,
        object: ObjectHandle,
        template: &[Attribute],
    ) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let live = s.session(session)?;
        let mut record = s.object(live, object, Ckr::ObjectHandleInvalid)?.clone();
        if record.token && !live.rw {
            return Err(Ckr::SessionReadOnly);
        }
        record.apply(template)?;
        if record.token {
            s.store.put_object(&record)?;
            s.store.flush()?;
        }
        s.objects.insert(object, record);
        Ok(())
    }

    /// `C_DestroyObject`. Its handle is never reused.
    pub fn c_destroy_object(
        &self,
        session: SessionHandle,
        object: ObjectHandle,
    ) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let live = s.session(session)?;
        let token = s.object(live, object, Ckr::ObjectHandleInvalid)?.token;
        if token && !live.rw {
            return Err(Ckr::SessionReadOnly);
        }
        s.remove_object(object)?;
        if token {
            s.store.flush()?;
        }
        Ok(())
    }
}

fn generate_rsa(
    public_t: &Template,
    private_t: &Template,
    seed: &RsaKeySeed,
) -> Result<PairMaterial, Ckr> {
    public_t.expect(ObjectClass::PublicKey, KeyType::Rsa)?;
    private_t.expect(ObjectClass::PrivateKey, KeyType::Rsa)?;
    if public_t.ec_params.is_some()
        || private_t.ec_params.is_some()
        || private_t.modulus_bits.is_some()
    {
        return Err(Ckr::TemplateInconsistent);
    }
    let bits = public_t.modulus_bits.ok_or(Ckr::TemplateIncomplete)?;
    if let Some(exponent) = &public_t.public_exponent {
        let trimmed: Vec<u8> = exponent.iter().copied().skip_while(|b| *b == 0).collect();
        if trimmed != rsa::PUBLIC_EXPONENT_F4 {
            return Err(Ckr::AttributeValueInvalid);
        }
    }
    let generated = rsa_keygen::generate_rsa(bits, seed)?;
    let private_key =
        LoadedKey::RsaPrivate(Box::new(rsa::RsaPrivate::from_pkcs8(&generated.pkcs8)?));
    let public_key = LoadedKey::RsaPublic(Box::new(rsa::RsaPublic::from_components(
        &generated.modulus,
        &generated.public_exponent,
    )?));
    Ok(PairMaterial {
        key_type: KeyType::Rsa,
        secret: generated.pkcs8,
        public: PublicPart::Rsa {
            modulus: generated.modulus,
            public_exponent: generated.public_exponent,
        },
        private_key,
        public_key,
    })
}

fn generate_ec(
    public_t: &Template,
    private_t: &Template,
    rng: &mut cmksim_sim::RandomSource,
) -> Result<PairMaterial, Ckr> {
    public_t.expect(ObjectClass::PublicKey, KeyType::Ec)?;
    private_t.expect(ObjectClass::PrivateKey, KeyType::Ec)?;
    if public_t.modulus_bits.is_some()
        || public_t.public_exponent.is_some()
        || private_t.ec_params.is_some()
    {
        return Err(Ckr::TemplateInconsistent);
    }
    let params = public_t.ec_params.as_ref().ok_or(Ckr::TemplateIncomplete)?;
    if params.as_slice() != ec::P256_EC_PARAMS_DER {
        return Err(Ckr::CurveNotSupported);
    }
    let (scalar, point) = ec::generate(rng);
    let private_key = LoadedKey::EcPrivate(Box::new(ec::signing_key(&scalar)?));
    let public_key = LoadedKey::EcPublic(Box::new(ec::verifying_key(&point)?));
    Ok(PairMaterial {
        key_type: KeyType::Ec,
        secret: scalar,
        public: PublicPart::Ec { point },
        private_key,
        public_key,
    })
}
