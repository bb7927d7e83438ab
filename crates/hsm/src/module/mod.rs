//! The device: [`Module`] and the state behind its lock.
//!
//! `Module` is `Send + Sync`; its state sits behind one `Mutex`, so a gRPC service can share it
//! in an `Arc`. Slow work runs outside the lock: a call checks sessions, login and attributes
//! under the lock, takes an `Arc` of the already-parsed key, releases the lock and only then
//! does the RSA/EC/AES operation (and key-pair generation, which can take a second for
//! RSA-4096). A call that creates objects takes the lock again to insert them and re-checks its
//! session, which may have been closed meanwhile.
//!
//! The `c_*` methods are split by topic: [`slots`] (slots, tokens, sessions, login),
//! [`objects`] (generation, search, attributes, destruction) and [`crypto`] (encrypt, decrypt,
//! sign, verify, wrap, unwrap).

mod crypto;
mod objects;
mod slots;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cmksim_sim::RandomSource;

use crate::config::ModuleConfig;
use crate::error::{Ckr, OpenError};
use crate::fault::Fault;
use crate::mechanisms::{ec, rsa, LoadedKey, SharedKey};
use crate::object::{ObjectRecord, PublicPart};
use crate::store::Store;
use crate::token::TokenRecord;
use crate::types::{KeyType, ObjectClass, ObjectHandle, SessionHandle, SlotId, UserType};

/// Handles are reserved durably in blocks of this many, so that creating a session object does
/// not cost a disk flush while a handle is still never reused after a restart.
const HANDLE_RESERVE_BLOCK: u64 = 1024;

/// The emulated PKCS#11 device. See the crate documentation for the flow.
pub struct Module {
    state: Mutex<State>,
}

/// An open session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    pub(crate) slot: u64,
    pub(crate) rw: bool,
}

pub(crate) struct State {
    pub(crate) config: ModuleConfig,
    pub(crate) store: Store,
    pub(crate) rng: RandomSource,
    pub(crate) tokens: Vec<TokenRecord>,
    /// Who is logged in on each token (PKCS#11 login state is per token, shared by its sessions).
    pub(crate) logins: Vec<Option<UserType>>,
    pub(crate) sessions: BTreeMap<SessionHandle, Session>,
    pub(crate) session_next: u64,
    pub(crate) objects: BTreeMap<ObjectHandle, ObjectRecord>,
    /// Parsed keys, filled at generation or first use; bounded by `objects_max` like `objects`.
    pub(crate) loaded: BTreeMap<ObjectHandle, SharedKey>,
    pub(crate) handle_next: u64,
    pub(crate) handle_reserved: u64,
    pub(crate) fault: Fault,
}

impl Module {
    /// Opens the device whose state lives in the directory `dir` (created if absent; see
    /// [`crate::store`] for its layout). `rng` supplies the master key, EC and AES keys, PIN
    /// salts (and 32 unused bytes per ECDSA signature); RSA keys and ECDSA nonces come from
    /// aws-lc's own generator.
    pub fn open(
        dir: impl AsRef<Path>,
        config: ModuleConfig,
        mut rng: RandomSource,
    ) -> Result<Module, OpenError> {
        config.validate().map_err(OpenError::Config)?;
        let store = Store::open(dir.as_ref(), &mut rng)?;
        let slot_count = config.slot_count as usize;
        let mut tokens = vec![TokenRecord::default(); slot_count];
        for (slot, record) in store.load_tokens()? {
            if let Some(token) = tokens.get_mut(slot as usize) {
                *token = record;
            }
        }
        let mut objects = BTreeMap::new();
        for (handle, record) in store.load_objects()? {
            if handle != record.handle.0 {
                return Err(OpenError::Corrupt(format!(
                    "object {handle} stored under another handle"
                )));
            }
            objects.insert(record.handle, record);
        }
        let handle_reserved = store.handle_reserved()?;
        Ok(Module {
            state: Mutex::new(State {
                config,
                store,
                rng,
                tokens,
                logins: vec![None; slot_count],
                sessions: BTreeMap::new(),
                session_next: 1,
                objects,
                loaded: BTreeMap::new(),
                handle_next: handle_reserved,
                handle_reserved,
                fault: Fault::None,
            }),
        })
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>, Ckr> {
        // A panic while holding the lock leaves the state unknown: the device is in error.
        self.state.lock().map_err(|_| Ckr::DeviceError)
    }

    /// Locks the state and applies the injected fault (`CKR_DEVICE_ERROR`).
    pub(crate) fn begin(&self) -> Result<MutexGuard<'_, State>, Ckr> {
        let state = self.lock()?;
        if state.fault == Fault::DeviceError {
            return Err(Ckr::DeviceError);
        }
        Ok(state)
    }

    /// Injects (or, with `Fault::None`, clears) a device fault.
    pub fn set_fault(&self, fault: Fault) {
        if let Ok(mut state) = self.lock() {
            state.fault = fault;
        }
    }

    /// The fault currently injected.
    pub fn fault(&self) -> Fault {
        self.lock().map(|s| s.fault).unwrap_or(Fault::DeviceError)
    }

    /// The latency the caller should add to each call (on the simulation clock): the module
    /// never sleeps itself.
    pub fn added_latency(&self) -> Duration {
        match self.fault() {
            Fault::Latency(latency) => latency,
            _ => Duration::ZERO,
        }
    }

    /// Tamper response: every key on every token is zeroised, for good. Object records and
    /// their sealed secrets are deleted from disk and the master key is replaced, so even old
    /// copies of sealed secrets can no longer be opened (crypto-shredding). Tokens report
    /// `tampered` and become uninitialised.
    ///
    /// Afterwards every call on a session of a tampered token, and `c_open_session` on it,
    /// answers `CKR_DEVICE_REMOVED`, until the SO re-initialises the token with `c_init_token`
    /// (which also drops the dead sessions). From then on the old object handles answer
    /// `CKR_OBJECT_HANDLE_INVALID` / `CKR_KEY_HANDLE_INVALID`: handles are never reused.
    pub fn tamper(&self) -> Result<(), Ckr> {
        let mut state = self.lock()?;
        let s = &mut *state;
        s.store.zeroise(&mut s.rng)?;
        s.objects.clear();
        s.loaded.clear();
        for (slot, token) in s.tokens.iter_mut().enumerate() {
            *token = TokenRecord {
                tampered: true,
                ..TokenRecord::default()
            };
            s.store.put_token(slot as u64, token)?;
        }
        s.logins.iter_mut().for_each(|login| *login = None);
        s.store.flush()
    }
}

impl State {
    /// The token index of `slot`, or `CKR_SLOT_ID_INVALID`.
    pub(crate) fn slot_index(&self, slot: SlotId) -> Result<usize, Ckr> {
        usize::try_from(slot.0)
            .ok()
            .filter(|i| *i < self.tokens.len())
            .ok_or(Ckr::SlotIdInvalid)
    }

    /// A live session on a working token.
    pub(crate) fn session(&self, handle: SessionHandle) -> Result<Session, Ckr> {
        let session = *self
            .sessions
            .get(&handle)
            .ok_or(Ckr::SessionHandleInvalid)?;
        if self.tokens[session.slot as usize].tampered {
            return Err(Ckr::DeviceRemoved);
        }
        Ok(session)
    }

    pub(crate) fn user_logged_in(&self, slot: u64) -> bool {
        self.logins[slot as usize] == Some(UserType::User)
    }

    /// An object visible to `session`: `invalid` when unknown or on another token,
    /// `CKR_USER_NOT_LOGGED_IN` for a private object without a user login.
    pub(crate) fn object(
        &self,
        session: Session,
        handle: ObjectHandle,
        invalid: Ckr,
    ) -> Result<&ObjectRecord, Ckr> {
        let object = self
            .objects
            .get(&handle)
            .filter(|o| o.slot == session.slot)
            .ok_or(invalid)?;
        if object.private && !self.user_logged_in(session.slot) {
            return Err(Ckr::UserNotLoggedIn);
        }
        Ok(object)
    }

    /// Refuses to create an object the session may not create.
    pub(crate) fn check_can_create(
        &self,
        session: Session,
        token: bool,
        private: bool,
    ) -> Result<(), Ckr> {
        if token && !session.rw {
            return Err(Ckr::SessionReadOnly);
        }
        if private && !self.user_logged_in(session.slot) {
            return Err(Ckr::UserNotLoggedIn);
        }
        Ok(())
    }

    /// Refuses when `count` more objects would exceed `objects_max`.
    pub(crate) fn check_room(&self, count: usize) -> Result<(), Ckr> {
        if self.objects.len() + count > self.config.objects_max {
            return Err(Ckr::DeviceMemory);
        }
        Ok(())
    }

    /// A new object handle, never used before on this device (even across restarts).
    pub(crate) fn allocate_handle(&mut self) -> Result<ObjectHandle, Ckr> {
        if self.handle_next >= self.handle_reserved {
            let reserved = self
                .handle_next
                .checked_add(HANDLE_RESERVE_BLOCK)
                .ok_or(Ckr::DeviceMemory)?;
            self.store.set_handle_reserved(reserved)?;
            self.handle_reserved = reserved;
        }
        let handle = ObjectHandle(self.handle_next);
        self.handle_next += 1;
        Ok(handle)
    }

    /// Stores a new object: seals its secret, persists token objects (the caller flushes),
    /// keeps the parsed key for use.
    pub(crate) fn insert_object(
        &mut self,
        mut record: ObjectRecord,
        secret: Option<&[u8]>,
        loaded: SharedKey,
        owner: SessionHandle,
    ) -> Result<ObjectHandle, Ckr> {
        self.check_room(1)?;
        let handle = record.handle;
        if let Some(secret) = secret {
            record.sealed_secret = Some(self.store.seal(handle, secret)?);
        }
        if record.token {
            self.store.put_object(&record)?;
        } else {
            record.owner = Some(owner);
        }
        self.objects.insert(handle, record);
        self.loaded.insert(handle, loaded);
        Ok(handle)
    }

    /// The parsed key of `handle` (unsealing and parsing it on first use after a restart).
    pub(crate) fn load_key(&mut self, handle: ObjectHandle) -> Result<SharedKey, Ckr> {
        if let Some(key) = self.loaded.get(&handle) {
            return Ok(Arc::clone(key));
        }
        let record = self.objects.get(&handle).ok_or(Ckr::ObjectHandleInvalid)?;
        let secret = || -> Result<_, Ckr> {
            let sealed = record.sealed_secret.as_deref().ok_or(Ckr::DeviceError)?;
            self.store.unseal(handle, sealed)
        };
        let key = match (record.class, record.key_type, &record.public) {
            (ObjectClass::PrivateKey, KeyType::Rsa, _) => {
                LoadedKey::RsaPrivate(Box::new(rsa::RsaPrivate::from_pkcs8(&secret()?)?))
            }
            (ObjectClass::PrivateKey, KeyType::Ec, _) => {
                LoadedKey::EcPrivate(Box::new(ec::signing_key(&secret()?)?))
            }
            (ObjectClass::SecretKey, KeyType::Aes, _) => LoadedKey::Aes(secret()?),
            (
                ObjectClass::PublicKey,
                KeyType::Rsa,
                PublicPart::Rsa {
                    modulus,
                    public_exponent,
                },
            ) => LoadedKey::RsaPublic(Box::new(rsa::RsaPublic::from_components(
                modulus,
                public_exponent,
            )?)),
            (ObjectClass::PublicKey, KeyType::Ec, PublicPart::Ec { point }) => {
                LoadedKey::EcPublic(Box::new(ec::verifying_key(point)?))
            }
            _ => return Err(Ckr::DeviceError),
        };
        let key = Arc::new(key);
        self.loaded.insert(handle, Arc::clone(&key));
        Ok(key)
    }

    /// Removes an object from memory and, for a token object, from disk (the caller flushes).
    pub(crate) fn remove_object(&mut self, handle: ObjectHandle) -> Result<(), Ckr> {
        if let Some(record) = self.objects.remove(&handle) {
            self.loaded.remove(&handle);
            if record.token {
                self.store.remove_object(handle)?;
            }
        }
        Ok(())
    }
}
