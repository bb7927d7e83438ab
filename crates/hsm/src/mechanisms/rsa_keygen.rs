//! RSA key generation from the run's randomness: the one generator of RSA key pairs, used by the
//! HSM's `C_GenerateKeyPair` and by Key Vault's software `RSA` keys.
//!
//! aws-lc generates RSA keys from its own OS-seeded generator, which cannot be seeded, so a
//! simulation's keys came from the operating system: a breach of "no global RNG" (the event log
//! stayed identical only because key material never reaches it). Here the caller's
//! [`RandomSource`] decides:
//!
//! - **seeded** (simulation): 32 bytes are drawn from the stream when the key is asked for
//!   ([`RsaKeySeed::draw`], a fixed draw, so the stream's later choices do not depend on how many
//!   candidates the prime search tried), and the primes come from a ChaCha20 stream over those
//!   bytes through [`super::prime_search`] (a sieve, then Miller-Rabin: probable primes, n of
//!   exactly the asked size, e = 65537); the `rsa` crate computes d and the CRT values from them
//!   and exports the key as PKCS#8, which aws-lc parses, checking it, and does every operation
//!   with (the `rsa` crate's private operations are not used: they are slower and not
//!   constant-time, RUSTSEC-2023-0071). The same seed gives the same key; a key
//!   made from those 32 bytes is remembered for the process ([`GENERATED_KEYS_REMEMBERED_MAX`]
//!   keys, least recently used evicted), so a run repeated with the same seed in one process (a
//!   determinism check, a benchmark's rounds, scenarios sharing a set-up) generates it once. The
//!   memo maps a seed to exactly the key the generator would make from it, so whether a key was
//!   remembered changes no bit of any run; different seeds never share a key. A caller that can
//!   tell which seed a key will be asked for soon (a simulated world, before its Key Vault has
//!   made its first key) starts that key on another thread with [`prepare_rsa`]: the memo's slot
//!   is taken at once, and a request for the same key meanwhile waits for that thread's answer
//!   instead of searching again, so the search overlaps the world's set-up on a second core.
//! - **the operating system's** (live mode): aws-lc's own generator, as before, and nothing is
//!   remembered (a live server's deleted keys must not linger in a process-wide map).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RsaPublicKeyComponents};
use cmksim_sim::lru::Lru;
use cmksim_sim::RandomSource;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rsa::pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

use super::prime_search;
use crate::error::Ckr;

/// Most generated keys remembered by the process (about 1.2 KB each for RSA-2048).
pub const GENERATED_KEYS_REMEMBERED_MAX: usize = 64;

/// Most keys prepared on threads of their own at once ([`prepare_rsa`]): a guess that was wrong
/// costs at most this many cores for one key search each.
pub const PREPARED_KEYS_IN_FLIGHT_MAX: usize = 1;

/// One remembered key: filled once, by whichever caller asked first; the others wait for it.
type Remembered = OnceLock<Result<GeneratedRsa, Ckr>>;

/// Where a new RSA key's randomness comes from, taken from the caller's source when the key is
/// asked for (under the caller's lock; the slow generation can then run outside it).
#[derive(Clone, PartialEq, Eq)]
pub enum RsaKeySeed {
    /// 32 bytes drawn from a seeded stream: the key is a function of them.
    Seeded([u8; 32]),
    /// The operating system's generator, through aws-lc.
    Os,
}

impl std::fmt::Debug for RsaKeySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaKeySeed::Seeded(_) => f.write_str("RsaKeySeed::Seeded(..)"),
            RsaKeySeed::Os => f.write_str("RsaKeySeed::Os"),
        }
    }
}

impl RsaKeySeed {
    /// Takes the seed of one key from `rng`: 32 bytes of a seeded stream, nothing from the OS's.
    pub fn draw(rng: &mut RandomSource) -> RsaKeySeed {
        if rng.is_seeded() {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            RsaKeySeed::Seeded(seed)
        } else {
            RsaKeySeed::Os
        }
    }
}

/// A new RSA key pair: the private key as PKCS#8 DER (aws-lc's encoding) and its public half.
#[derive(Clone)]
pub struct GeneratedRsa {
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub modulus: Vec<u8>,
    pub public_exponent: Vec<u8>,
}

impl std::fmt::Debug for GeneratedRsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedRsa")
            .field("modulus_bits", &(self.modulus.len() * 8))
            .finish_non_exhaustive()
    }
}

fn key_size(modulus_bits: u64) -> Result<KeySize, Ckr> {
    match modulus_bits {
        2048 => Ok(KeySize::Rsa2048),
        3072 => Ok(KeySize::Rsa3072),
        4096 => Ok(KeySize::Rsa4096),
        _ => Err(Ckr::KeySizeRange),
    }
}

/// Generates an RSA key of `modulus_bits` (2048, 3072 or 4096; else `CKR_KEY_SIZE_RANGE`) from
/// `seed`. Slow (tens to hundreds of milliseconds): call it outside any lock.
pub fn generate_rsa(modulus_bits: u64, seed: &RsaKeySeed) -> Result<GeneratedRsa, Ckr> {
    let size = key_size(modulus_bits)?;
    match seed {
        RsaKeySeed::Os => {
            let key = PrivateDecryptingKey::generate(size).map_err(|_| Ckr::DeviceError)?;
            let der = key.as_der().map_err(|_| Ckr::DeviceError)?;
            from_pkcs8(der.as_ref())
        }
        RsaKeySeed::Seeded(bytes) => slot(modulus_bits, bytes)
            .get_or_init(|| from_seed(modulus_bits, bytes))
            .clone(),
    }
}

/// Starts generating the key of `modulus_bits` from `seed` on a thread of its own and returns
/// at once, so that a [`generate_rsa`] of the same key later finds it made or being made (it
/// then waits for it rather than search again). Only seeded keys are prepared (an OS key is
/// never remembered); nothing is started for a size the generator refuses, a key remembered
/// already, or when [`PREPARED_KEYS_IN_FLIGHT_MAX`] keys are being prepared. Returns whether a
/// thread was started. A key prepared and never asked for costs only the search's time on
/// another core: the memo holds exactly the key the seed gives, so no run's output changes.
pub fn prepare_rsa(modulus_bits: u64, seed: &RsaKeySeed) -> bool {
    static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
    let RsaKeySeed::Seeded(bytes) = seed else {
        return false;
    };
    if key_size(modulus_bits).is_err() || remembered().contains(&memo_key(modulus_bits, bytes)) {
        return false;
    }
    let taken = IN_FLIGHT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        (n < PREPARED_KEYS_IN_FLIGHT_MAX).then_some(n + 1)
    });
    if taken.is_err() {
        return false;
    }
    /// Gives the place back however the preparing thread ends (or if it never starts).
    struct InFlight;
    impl Drop for InFlight {
        fn drop(&mut self) {
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let place = InFlight;
    let bytes = *bytes;
    std::thread::Builder::new()
        .name("rsa-prepare".into())
        .spawn(move || {
            let _place = place;
            // The answer stays in the memo, where the request for this key will find it.
            slot(modulus_bits, &bytes).get_or_init(|| from_seed(modulus_bits, &bytes));
        })
        .is_ok()
}

fn memo_key(modulus_bits: u64, bytes: &[u8; 32]) -> String {
    format!("{modulus_bits}/{}", hex::encode(bytes))
}

/// The memo's slot for the key of `bytes`, taken (empty) if the key was not remembered.
fn slot(modulus_bits: u64, bytes: &[u8; 32]) -> Arc<Remembered> {
    let key = memo_key(modulus_bits, bytes);
    let mut memo = remembered();
    if let Some(known) = memo.get(&key) {
        return known;
    }
    let fresh = Arc::new(Remembered::new());
    memo.insert(&key, fresh.clone());
    fresh
}

/// The key whose primes [`prime_search::rsa_primes`] finds in a ChaCha20 stream over `bytes`, in
/// aws-lc's PKCS#8.
fn from_seed(modulus_bits: u64, bytes: &[u8; 32]) -> Result<GeneratedRsa, Ckr> {
    let bits = usize::try_from(modulus_bits).map_err(|_| Ckr::KeySizeRange)?;
    let mut stream = ChaCha20Rng::from_seed(*bytes);
    let (p, q) = prime_search::rsa_primes(&mut stream, bits)?;
    let e = rsa::BigUint::from(prime_search::PUBLIC_EXPONENT);
    let key = rsa::RsaPrivateKey::from_p_q(p, q, e).map_err(|_| Ckr::DeviceError)?;
    let document = key.to_pkcs8_der().map_err(|_| Ckr::DeviceError)?;
    // Parsed (and so checked) by aws-lc, and re-encoded the way aws-lc encodes its own keys.
    let parsed =
        PrivateDecryptingKey::from_pkcs8(document.as_bytes()).map_err(|_| Ckr::DeviceError)?;
    let der = parsed.as_der().map_err(|_| Ckr::DeviceError)?;
    from_pkcs8(der.as_ref())
}

fn from_pkcs8(pkcs8: &[u8]) -> Result<GeneratedRsa, Ckr> {
    let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| Ckr::DeviceError)?;
    let components = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    Ok(GeneratedRsa {
        pkcs8: Zeroizing::new(pkcs8.to_vec()),
        modulus: components.n,
        public_exponent: components.e,
    })
}

fn remembered() -> std::sync::MutexGuard<'static, Lru<Remembered>> {
    static REMEMBERED: OnceLock<Mutex<Lru<Remembered>>> = OnceLock::new();
    REMEMBERED
        .get_or_init(|| Mutex::new(Lru::new(GENERATED_KEYS_REMEMBERED_MAX)))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mechanism::Mechanism;
    use crate::mechanisms::rsa::{RsaPrivate, RsaPublic};
    use cmksim_sim::SeedTree;

    fn seeded(root: u64) -> RsaKeySeed {
        RsaKeySeed::draw(&mut SeedTree::new(root).source("keyvault/key-material"))
    }

    #[test]
    fn the_same_seed_gives_the_same_key_and_different_seeds_different_keys() {
        let a = generate_rsa(2048, &seeded(7)).unwrap();
        // Generated again, not remembered: the generator itself is a function of the seed.
        let RsaKeySeed::Seeded(bytes) = seeded(7) else {
            panic!("a seeded source gives a seeded key seed")
        };
        let again = from_seed(2048, &bytes).unwrap();
        assert_eq!(a.modulus, again.modulus);
        assert_eq!(a.pkcs8, again.pkcs8);
        // And remembered: the same answer.
        assert_eq!(generate_rsa(2048, &seeded(7)).unwrap().pkcs8, a.pkcs8);
        let b = generate_rsa(2048, &seeded(8)).unwrap();
        assert_ne!(a.modulus, b.modulus);
    }

    #[test]
    fn a_prepared_key_is_the_key_the_seed_gives_and_is_prepared_once() {
        let seed = seeded(23);
        let RsaKeySeed::Seeded(bytes) = seed.clone() else {
            panic!("a seeded source gives a seeded key seed")
        };
        assert!(
            !prepare_rsa(2048, &RsaKeySeed::Os),
            "OS keys are never prepared"
        );
        assert!(!prepare_rsa(1024, &seed), "a refused size is not prepared");
        assert!(prepare_rsa(2048, &seed));
        // Asked for while (or after) it is prepared: the same key as a search of its own.
        let asked = generate_rsa(2048, &seed).unwrap();
        assert_eq!(asked.pkcs8, from_seed(2048, &bytes).unwrap().pkcs8);
        assert!(
            !prepare_rsa(2048, &seed),
            "a remembered key is not prepared again"
        );
    }

    #[test]
    fn a_seed_gives_the_key_it_gave_before() {
        // The key of a fixed seed, pinned: a change to the prime search shows here (it changes
        // every simulated world's keys, though no output depends on a key's bits).
        let RsaKeySeed::Seeded(bytes) = seeded(7) else {
            panic!("a seeded source gives a seeded key seed")
        };
        let key = from_seed(2048, &bytes).unwrap();
        let fingerprint = ring::digest::digest(&ring::digest::SHA256, &key.modulus);
        assert_eq!(
            hex::encode(fingerprint.as_ref()),
            "9ad94ebf25f2e4aea1bb44a47beeaf202af4d2dfe4ad19b77bec090ed3f316e3"
        );
    }

    #[test]
    fn a_seeded_key_is_an_rsa_key_of_the_stated_size_that_unwraps_what_it_wrapped() {
        for bits in [2048u64, 3072] {
            let key = generate_rsa(bits, &seeded(bits)).unwrap();
            assert_eq!(key.modulus.len() * 8, bits as usize);
            assert!(key.modulus[0] & 0x80 != 0, "n has exactly {bits} bits");
            assert_eq!(key.public_exponent, [1, 0, 1]);
            let public = RsaPublic::from_components(&key.modulus, &key.public_exponent).unwrap();
            let private = RsaPrivate::from_pkcs8(&key.pkcs8).unwrap();
            let dek = [0x5au8; 32];
            let wrapped = public.encrypt(&Mechanism::rsa_oaep_sha256(), &dek).unwrap();
            let unwrapped = private
                .decrypt(&Mechanism::rsa_oaep_sha256(), &wrapped)
                .unwrap();
            assert_eq!(unwrapped.as_slice(), dek);
        }
    }

    #[test]
    fn drawing_a_seed_takes_a_fixed_32_bytes_and_nothing_from_the_os_source() {
        let mut rng = SeedTree::new(3).source("s");
        assert!(matches!(RsaKeySeed::draw(&mut rng), RsaKeySeed::Seeded(_)));
        let mut after = [0u8; 8];
        rng.fill_bytes(&mut after);
        let mut reference = SeedTree::new(3).source("s");
        let mut skipped = [0u8; 40];
        reference.fill_bytes(&mut skipped);
        assert_eq!(after, skipped[32..]);
        assert_eq!(RsaKeySeed::draw(&mut RandomSource::Os), RsaKeySeed::Os);
    }

    #[test]
    fn unsupported_sizes_are_refused_before_any_work() {
        assert_eq!(
            generate_rsa(1024, &seeded(1)).unwrap_err(),
            Ckr::KeySizeRange
        );
        assert_eq!(
            generate_rsa(2049, &RsaKeySeed::Os).unwrap_err(),
            Ckr::KeySizeRange
        );
    }
}
