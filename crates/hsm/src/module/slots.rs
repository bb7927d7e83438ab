//! Slots, tokens, sessions and login: `C_GetSlotList` to `C_SetPIN`.

use super::{Module, Session, State};
use crate::error::Ckr;
use crate::token::{PinHash, TokenRecord};
use crate::types::{SessionHandle, SlotId, TokenInfo, UserType};

/// Longest token label, in bytes (`CK_TOKEN_INFO.label` is 32 bytes).
const LABEL_LEN_MAX_BYTES: usize = 32;

impl State {
    fn check_pin_len(&self, pin: &str) -> Result<(), Ckr> {
        if (self.config.pin_len_min_bytes..=self.config.pin_len_max_bytes).contains(&pin.len()) {
            Ok(())
        } else {
            Err(Ckr::PinLenRange)
        }
    }

    /// Checks a PIN against the token's record, persisting the failure counter when it changed.
    fn verify_pin(&mut self, slot: usize, user: UserType, pin: &str) -> Result<(), Ckr> {
        let attempts_max = self.config.pin_attempts_max;
        let token = &mut self.tokens[slot];
        let before = (token.so_failures, token.user_failures);
        let result = token.check_pin(user, pin, attempts_max);
        if before != (token.so_failures, token.user_failures) {
            self.store.put_token(slot as u64, &self.tokens[slot])?;
            self.store.flush()?;
        }
        result
    }

    fn persist_token(&mut self, slot: usize) -> Result<(), Ckr> {
        self.store.put_token(slot as u64, &self.tokens[slot])?;
        self.store.flush()
    }

    fn sessions_on(&self, slot: u64) -> impl Iterator<Item = (&SessionHandle, &Session)> {
        self.sessions.iter().filter(move |(_, s)| s.slot == slot)
    }
}

impl Module {
    /// `C_GetSlotList`: every slot (each always holds a token).
    pub fn c_get_slot_list(&self) -> Result<Vec<SlotId>, Ckr> {
        let s = self.begin()?;
        Ok((0..s.tokens.len() as u64).map(SlotId).collect())
    }

    /// `C_GetTokenInfo`.
    pub fn c_get_token_info(&self, slot: SlotId) -> Result<TokenInfo, Ckr> {
        let s = self.begin()?;
        let index = s.slot_index(slot)?;
        let token = &s.tokens[index];
        let attempts_max = s.config.pin_attempts_max;
        Ok(TokenInfo {
            label: token.label.clone(),
            initialized: token.initialized,
            user_pin_initialized: token.user_pin.is_some(),
            user_pin_locked: token.locked(UserType::User, attempts_max),
            so_pin_locked: token.locked(UserType::So, attempts_max),
            user_pin_failures: token.user_failures,
            so_pin_failures: token.so_failures,
            tampered: token.tampered,
            session_count: s.sessions_on(slot.0).count() as u64,
            object_count: s
                .objects
                .values()
                .filter(|o| o.slot == slot.0 && o.token)
                .count() as u64,
            pin_len_min_bytes: s.config.pin_len_min_bytes,
            pin_len_max_bytes: s.config.pin_len_max_bytes,
        })
    }

    /// `C_InitToken`: (re)initialises the token in `slot` with an SO PIN and a label. On an
    /// initialised token the SO PIN must match, and every token object is destroyed and the user
    /// PIN cleared. Refused (`CKR_SESSION_EXISTS`) while sessions are open, except on a tampered
    /// token, whose dead sessions are dropped.
    pub fn c_init_token(&self, slot: SlotId, so_pin: &str, label: &str) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let index = s.slot_index(slot)?;
        s.check_pin_len(so_pin)?;
        if label.len() > LABEL_LEN_MAX_BYTES {
            return Err(Ckr::ArgumentsBad);
        }
        let tampered = s.tokens[index].tampered;
        if tampered {
            s.sessions.retain(|_, session| session.slot != slot.0);
        } else if s.sessions_on(slot.0).next().is_some() {
            return Err(Ckr::SessionExists);
        }
        if s.tokens[index].initialized {
            s.verify_pin(index, UserType::So, so_pin)?;
        }
        let doomed: Vec<_> = s
            .objects
            .values()
            .filter(|o| o.slot == slot.0)
            .map(|o| o.handle)
            .collect();
        for handle in doomed {
            s.remove_object(handle)?;
        }
        let so_pin_hash = PinHash::new(so_pin, s.config.pin_kdf_iterations, &mut s.rng);
        s.tokens[index] = TokenRecord {
            label: label.to_string(),
            initialized: true,
            so_pin: Some(so_pin_hash),
            ..TokenRecord::default()
        };
        s.logins[index] = None;
        s.persist_token(index)
    }

    /// `C_OpenSession`: `rw` false opens a read-only session.
    pub fn c_open_session(&self, slot: SlotId, rw: bool) -> Result<SessionHandle, Ckr> {
        let mut s = self.begin()?;
        let index = s.slot_index(slot)?;
        if s.tokens[index].tampered {
            return Err(Ckr::DeviceRemoved);
        }
        if !s.tokens[index].initialized {
            return Err(Ckr::TokenNotRecognized);
        }
        if s.sessions.len() >= s.config.sessions_max {
            return Err(Ckr::SessionCount);
        }
        let handle = SessionHandle(s.session_next);
        s.session_next += 1;
        s.sessions.insert(handle, Session { slot: slot.0, rw });
        Ok(handle)
    }

    /// `C_CloseSession`: its session objects vanish; closing a token's last session logs out.
    pub fn c_close_session(&self, session: SessionHandle) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let closed = s
            .sessions
            .remove(&session)
            .ok_or(Ckr::SessionHandleInvalid)?;
        let owned: Vec<_> = s
            .objects
            .values()
            .filter(|o| o.owner == Some(session))
            .map(|o| o.handle)
            .collect();
        for handle in owned {
            s.remove_object(handle)?;
        }
        if s.sessions_on(closed.slot).next().is_none() {
            s.logins[closed.slot as usize] = None;
        }
        Ok(())
    }

    /// `C_Login`. Wrong PINs count towards the lockout (`pin_attempts_max` consecutive ones),
    /// after which the PIN answers `CKR_PIN_LOCKED`, even when right.
    pub fn c_login(&self, session: SessionHandle, user: UserType, pin: &str) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let session = s.session(session)?;
        let index = session.slot as usize;
        if user == UserType::ContextSpecific {
            return Err(Ckr::UserTypeInvalid);
        }
        match s.logins[index] {
            Some(current) if current == user => return Err(Ckr::UserAlreadyLoggedIn),
            Some(_) => return Err(Ckr::UserAnotherAlreadyLoggedIn),
            None => {}
        }
        if user == UserType::So && s.sessions_on(session.slot).any(|(_, other)| !other.rw) {
            return Err(Ckr::SessionReadOnlyExists);
        }
        s.verify_pin(index, user, pin)?;
        s.logins[index] = Some(user);
        Ok(())
    }

    /// `C_Logout`.
    pub fn c_logout(&self, session: SessionHandle) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let session = s.session(session)?;
        s.logins[session.slot as usize]
            .take()
            .ok_or(Ckr::UserNotLoggedIn)?;
        Ok(())
    }

    /// `C_InitPIN`: the SO, logged in on a read-write session, sets (or resets and unlocks) the
    /// user PIN.
    pub fn c_init_pin(&self, session: SessionHandle, pin: &str) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let session = s.session(session)?;
        let index = session.slot as usize;
        if s.logins[index] != Some(UserType::So) {
            return Err(Ckr::UserNotLoggedIn);
        }
        if !session.rw {
            return Err(Ckr::SessionReadOnly);
        }
        s.check_pin_len(pin)?;
        let hash = PinHash::new(pin, s.config.pin_kdf_iterations, &mut s.rng);
        s.tokens[index].user_pin = Some(hash);
        s.tokens[index].user_failures = 0;
        s.persist_token(index)
    }

    /// `C_SetPIN`: changes the PIN of the logged-in user (the normal user when nobody is logged
    /// in). Needs a read-write session; a wrong old PIN counts towards the lockout.
    pub fn c_set_pin(
        &self,
        session: SessionHandle,
        old_pin: &str,
        new_pin: &str,
    ) -> Result<(), Ckr> {
        let mut s = self.begin()?;
        let session = s.session(session)?;
        let index = session.slot as usize;
        if !session.rw {
            return Err(Ckr::SessionReadOnly);
        }
        s.check_pin_len(new_pin)?;
        let user = s.logins[index].unwrap_or(UserType::User);
        s.verify_pin(index, user, old_pin)?;
        let hash = Some(PinHash::new(
            new_pin,
            s.config.pin_kdf_iterations,
            &mut s.rng,
        ));
        match user {
            UserType::So => s.tokens[index].so_pin = hash,
            _ => s.tokens[index].user_pin = hash,
        }
        s.persist_token(index)
    }
}
