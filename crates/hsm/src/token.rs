//! Tokens: label, PINs (stored as salted PBKDF2 hashes), the consecutive-failure counters that
//! lock a PIN, and the tamper mark.
//!
//! A token record is small and persisted whole after every change, so that a lockout survives a
//! restart (otherwise restarting the device would be a way to guess PINs).

use std::num::NonZeroU32;

use rand::RngCore;
use ring::pbkdf2;
use serde::{Deserialize, Serialize};

use crate::error::Ckr;
use crate::types::UserType;

const PIN_SALT_LEN_BYTES: usize = 16;
const PIN_HASH_LEN_BYTES: usize = 32;
static PIN_KDF: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;

/// A salted PBKDF2-HMAC-SHA256 hash of a PIN.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PinHash {
    salt: Vec<u8>,
    iterations: u32,
    hash: Vec<u8>,
}

impl PinHash {
    pub(crate) fn new(pin: &str, iterations: u32, rng: &mut dyn RngCore) -> PinHash {
        let mut salt = vec![0u8; PIN_SALT_LEN_BYTES];
        rng.fill_bytes(&mut salt);
        let mut hash = vec![0u8; PIN_HASH_LEN_BYTES];
        pbkdf2::derive(
            PIN_KDF,
            iterations_nz(iterations),
            &salt,
            pin.as_bytes(),
            &mut hash,
        );
        PinHash {
            salt,
            iterations,
            hash,
        }
    }

    /// Constant-time comparison (ring's `verify`).
    fn matches(&self, pin: &str) -> bool {
        pbkdf2::verify(
            PIN_KDF,
            iterations_nz(self.iterations),
            &self.salt,
            pin.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

fn iterations_nz(iterations: u32) -> NonZeroU32 {
    NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN)
}

/// The persistent state of one token.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub(crate) label: String,
    pub(crate) initialized: bool,
    pub(crate) so_pin: Option<PinHash>,
    pub(crate) user_pin: Option<PinHash>,
    pub(crate) so_failures: u32,
    pub(crate) user_failures: u32,
    pub(crate) tampered: bool,
}

impl TokenRecord {
    /// Checks `pin` for `user`, counting consecutive failures. Once `attempts_max` failures are
    /// reached the PIN is locked: `CKR_PIN_LOCKED`, even for the right PIN. A right PIN before
    /// that resets the counter. The caller persists the record whatever the outcome.
    pub(crate) fn check_pin(
        &mut self,
        user: UserType,
        pin: &str,
        attempts_max: u32,
    ) -> Result<(), Ckr> {
        let (hash, failures) = match user {
            UserType::So => (self.so_pin.as_ref(), &mut self.so_failures),
            UserType::User => (self.user_pin.as_ref(), &mut self.user_failures),
            UserType::ContextSpecific => return Err(Ckr::UserTypeInvalid),
        };
        let hash = hash.ok_or(match user {
            UserType::User => Ckr::UserPinNotInitialized,
            _ => Ckr::TokenNotRecognized,
        })?;
        if *failures >= attempts_max {
            return Err(Ckr::PinLocked);
        }
        if hash.matches(pin) {
            *failures = 0;
            Ok(())
        } else {
            // The failing attempt itself answers PIN_INCORRECT; the next one finds it locked.
            *failures += 1;
            Err(Ckr::PinIncorrect)
        }
    }

    pub(crate) fn locked(&self, user: UserType, attempts_max: u32) -> bool {
        match user {
            UserType::So => self.so_failures >= attempts_max,
            _ => self.user_failures >= attempts_max,
        }
    }
}
