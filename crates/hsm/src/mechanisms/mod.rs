//! The cryptography behind the mechanisms, one file per key family, free of sessions and
//! attributes: each function takes key material and bytes and returns bytes or the exact `CKR_*`
//! code PKCS#11 prescribes for that failure. Keeping the mapping from library errors to return
//! codes here, next to the library call, is what makes the refusal codes precise (the point where
//! common software tokens go wrong).
//!
//! - [`rsa`]: aws-lc-rs (constant-time, about 3x faster than the `rsa` crate for private
//!   operations, and free of RUSTSEC-2023-0071). OAEP/PSS padding draws from aws-lc's own
//!   OS-seeded generator (it reaches no output that a run compares).
//! - [`rsa_keygen`]: RSA key pairs from the caller's randomness (seeded in simulation: the same
//!   seed, the same key), then parsed and used by aws-lc; [`prime_search`] finds a seeded key's
//!   primes, with [`bignum`]'s exponentiation (aws-lc's) for its Miller-Rabin rounds.
//! - [`ec`]: key generation with the `p256` crate and randomness handed in (deterministic under a
//!   seeded source); signing with aws-lc-rs, whose nonces come from aws-lc's own generator.
//! - [`aes`]: AES key wrap (RFC 3394) and key wrap with padding (RFC 5649) from aws-lc-rs.

pub(crate) mod aes;
pub(crate) mod bignum;
pub(crate) mod ec;
pub(crate) mod prime_search;
pub(crate) mod rsa;
pub(crate) mod rsa_keygen;

use std::sync::Arc;

/// A key ready for use: unsealed and parsed once, then shared (behind an `Arc`) by calls that run
/// outside the module lock. Dropping it zeroises the secret parts.
pub(crate) enum LoadedKey {
    RsaPrivate(Box<rsa::RsaPrivate>),
    RsaPublic(Box<rsa::RsaPublic>),
    EcPrivate(Box<aws_lc_rs::signature::EcdsaKeyPair>),
    EcPublic(Box<p256::ecdsa::VerifyingKey>),
    Aes(aes::AesKey),
}

/// A shared loaded key.
pub(crate) type SharedKey = Arc<LoadedKey>;
