//! The primes of a seeded RSA key: a search over a seeded stream, so that the same 32 bytes give
//! the same key on every machine (see [`super::rsa_keygen`]).
//!
//! The `rsa` crate's own search (`RsaPrivateKey::new`) draws a fresh candidate each time, sieves
//! it only by the primes up to 53, and confirms a probable prime with 20 Miller-Rabin rounds and a
//! Lucas test: about 1.5-3 G instructions for an RSA-2048 key, the largest part of a simulated
//! world's set-up. Here, for each prime:
//!
//! 1. one random start of exactly the prime's size, its two top bits set (so that n = p·q has
//!    exactly the asked size) and odd;
//! 2. a sieve over the next [`SIEVE_WINDOW_CANDIDATES`] odd numbers: every one divisible by an odd
//!    prime below [`SIEVE_PRIMES_BELOW`] is struck out, and so is every one that is 1 modulo
//!    e = 65537 (e must be coprime to p - 1). About one candidate in eleven survives;
//! 3. each survivor in order: a Miller-Rabin round to base 2 (it rejects nearly every composite
//!    with one modular exponentiation), then [`miller_rabin_rounds`] rounds to bases drawn from
//!    the stream: the counts aws-lc uses for its own RSA primes (FIPS 186-4 appendix F.1: an
//!    error probability below 2^-125 for a random candidate). The base-2 rounds, which draw
//!    nothing from the stream, are shared by two threads ([`first_passing_base_two`]), which
//!    find the same first survivor one thread would;
//! 4. a window without a prime (rare: about 5.8 primes are expected in one) takes a new start.
//!
//! q is drawn again while |p - q| <= 2^(prime bits - 100) (FIPS 186-4 B.3.3), which a random pair
//! practically never is. The modular exponentiations are aws-lc's ([`super::bignum`]; any
//! correct arithmetic gives the same answers, so which prime is found does not depend on it):
//! about 30 of them a prime on average instead of about 90. The sieve only strikes out
//! composites, so its bound changes how fast the first prime after the start is found, not which
//! prime it is.
//! Every loop has a bound; reaching one, or an arithmetic that fails (aws-lc could not allocate),
//! is reported as `CKR_DEVICE_ERROR` (neither happens on a working machine: a window without a
//! prime has a probability of about 0.3%, and 64 of them in a row practically none).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use rsa::BigUint;

use super::bignum::{self, BignumFailed, Modulus, Residue, MODULUS_BITS_MAX};
use crate::error::Ckr;

/// The sieve strikes out multiples of the odd primes below this (22,999 of them; against 2^16,
/// 9% fewer exponentiations for the revocation scenario's key, 0.76 G instructions against 0.83 G).
pub const SIEVE_PRIMES_BELOW: u32 = 1 << 18;

/// Odd candidates sieved from one random start (a span of 4,096 integers).
pub const SIEVE_WINDOW_CANDIDATES: usize = 2048;

/// Random starts tried for one prime before giving up (each fails with a probability near 0.3%).
const STARTS_PER_PRIME_MAX: usize = 64;

/// Draws of q tried before giving up on |p - q| being large enough.
const Q_DRAWS_MAX: usize = 16;

/// The public exponent of every generated key.
pub const PUBLIC_EXPONENT: u32 = 65537;

/// Miller-Rabin rounds to random bases for a candidate of `prime_bits` bits: aws-lc's
/// `BN_prime_checks_for_size` (FIPS 186-4 F.1, error below 2^-125 for a random candidate) for the
/// sizes generated here.
pub fn miller_rabin_rounds(prime_bits: usize) -> usize {
    if prime_bits >= 1345 {
        4
    } else {
        5
    }
}

/// The two primes of an RSA key of `modulus_bits` bits (even, at least 1024 in practice), drawn
/// from `stream`: p and q of `modulus_bits / 2` bits each, their top two bits set, both
/// probable primes with p - 1 and q - 1 coprime to [`PUBLIC_EXPONENT`], and far apart.
pub fn rsa_primes(
    stream: &mut ChaCha20Rng,
    modulus_bits: usize,
) -> Result<(BigUint, BigUint), Ckr> {
    if !modulus_bits.is_multiple_of(16) || !(256..=2 * MODULUS_BITS_MAX).contains(&modulus_bits) {
        return Err(Ckr::KeySizeRange);
    }
    let prime_bits = modulus_bits / 2;
    let p = probable_prime(stream, prime_bits)?;
    for _ in 0..Q_DRAWS_MAX {
        let q = probable_prime(stream, prime_bits)?;
        let distance = if p > q { &p - &q } else { &q - &p };
        if distance.bits() > prime_bits - 100 {
            return Ok((p, q));
        }
    }
    Err(Ckr::DeviceError)
}

/// A probable prime of exactly `prime_bits` bits (a multiple of 8), its top two bits set, that is
/// not 1 modulo [`PUBLIC_EXPONENT`].
fn probable_prime(stream: &mut ChaCha20Rng, prime_bits: usize) -> Result<BigUint, Ckr> {
    let rounds = miller_rabin_rounds(prime_bits);
    let mut start = vec![0u8; prime_bits / 8];
    for _ in 0..STARTS_PER_PRIME_MAX {
        stream.fill_bytes(&mut start);
        start[0] |= 0xc0;
        if let Some(last) = start.last_mut() {
            *last |= 1;
        }
        let candidates = window_survivors(&start);
        let mut from = 0;
        while let Some(found) = first_passing_base_two(&candidates[from..])? {
            let candidate = &candidates[from + found];
            // Only a base-2 round's survivor draws bases from the stream, so the stream's use,
            // and the prime found, are those of testing each survivor in turn.
            if let Some(mut test) = Test::new(candidate).map_err(device)? {
                if test
                    .random_bases(candidate, rounds, stream)
                    .map_err(device)?
                {
                    return Ok(candidate.clone());
                }
            }
            from += found + 1;
        }
    }
    Err(Ckr::DeviceError)
}

/// The survivors of the sieve in the window that opens at `start` (odd, big-endian), in order,
/// of exactly its size (the first past it ends them).
fn window_survivors(start: &[u8]) -> Vec<BigUint> {
    let base = BigUint::from_bytes_be(start);
    let bits = base.bits();
    sieve(start)
        .iter()
        .enumerate()
        .filter(|(_, struck)| !**struck)
        .map(|(offset, _)| &base + BigUint::from(2 * offset as u64))
        .take_while(|candidate| candidate.bits() == bits)
        .collect()
}

/// Threads that screen a window's candidates with the base-2 round at once.
const SCREENING_THREADS_MAX: usize = 2;

/// The index of the first of `candidates` that passes the Miller-Rabin round to base 2 (which
/// draws nothing from the stream), the same whether one thread or several look. Nearly every
/// exponentiation of a key search is one of these rounds, each candidate's independent of the
/// others', so up to [`SCREENING_THREADS_MAX`] threads share them: the k-th takes candidates k,
/// k + threads, … in order, and stops at the first that passes or once it is past a pass found
/// by another (every candidate before that pass is still tested by its thread, so the lowest
/// pass is found). A simulated world's key search mostly runs while the simulation waits for it
/// ([`super::rsa_keygen::prepare_rsa`]), so a second core is usually free. An arithmetic failure
/// on any thread is the search's error.
fn first_passing_base_two(candidates: &[BigUint]) -> Result<Option<usize>, Ckr> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, SCREENING_THREADS_MAX);
    if threads == 1 || candidates.len() < 2 * threads {
        return first_passing_in_order(candidates);
    }
    let found = AtomicUsize::new(usize::MAX);
    let failed = AtomicBool::new(false);
    let screen = |first: usize| {
        let mine = (first..candidates.len()).step_by(threads);
        let past_a_pass =
            |index: usize| index > found.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed);
        match first_passing_of(candidates, mine, past_a_pass) {
            Ok(Some(index)) => {
                found.fetch_min(index, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(BignumFailed) => failed.store(true, Ordering::Relaxed),
        }
    };
    let mut started_all = true;
    std::thread::scope(|scope| {
        for first in 1..threads {
            let screen = &screen;
            if std::thread::Builder::new()
                .spawn_scoped(scope, move || screen(first))
                .is_err()
            {
                started_all = false;
                return;
            }
        }
        screen(0);
    });
    if !started_all {
        // A thread that could not start left its candidates untested: one thread looks at all.
        return first_passing_in_order(candidates);
    }
    if failed.into_inner() {
        return Err(Ckr::DeviceError);
    }
    let found = found.into_inner();
    if found == usize::MAX {
        return Ok(None);
    }
    Ok(Some(found))
}

/// [`first_passing_base_two`] on one thread.
fn first_passing_in_order(candidates: &[BigUint]) -> Result<Option<usize>, Ckr> {
    first_passing_of(candidates, 0..candidates.len(), |_| false).map_err(device)
}

/// The first of the candidates at `indices` (increasing) that passes the round to base 2, or
/// `None`; it stops early, with `None`, at an index that `give_up` refuses.
///
/// Where aws-lc runs two exponentiations at once on its fast path ([`bignum::pairs_run_fast`]),
/// two candidates of [`bignum::PAIRED_MODULUS_BITS`] bits (an RSA-2048 key's) are tested
/// together: the earlier's pass wins, so the answer is that of testing them one by one.
fn first_passing_of(
    candidates: &[BigUint],
    indices: impl Iterator<Item = usize>,
    give_up: impl Fn(usize) -> bool,
) -> Result<Option<usize>, BignumFailed> {
    let paired = bignum::pairs_run_fast();
    let pairable = |index: usize| candidates[index].bits() == bignum::PAIRED_MODULUS_BITS;
    let mut indices = indices.peekable();
    while let Some(index) = indices.next() {
        if give_up(index) {
            return Ok(None);
        }
        let partner = indices
            .peek()
            .copied()
            .filter(|&next| paired && pairable(index) && pairable(next));
        let Some(next) = partner else {
            if passes_base_two(&candidates[index])? {
                return Ok(Some(index));
            }
            continue;
        };
        indices.next();
        match passes_base_two_pair(&candidates[index], &candidates[next])? {
            (true, _) => return Ok(Some(index)),
            (false, true) => return Ok(Some(next)),
            (false, false) => {}
        }
    }
    Ok(None)
}

/// [`passes_base_two`] of two candidates of [`bignum::PAIRED_MODULUS_BITS`] bits at once.
fn passes_base_two_pair(m: &BigUint, n: &BigUint) -> Result<(bool, bool), BignumFailed> {
    let (Some(mut first), Some(mut second)) = (Test::new(m)?, Test::new(n)?) else {
        return Ok((passes_base_two(m)?, passes_base_two(n)?));
    };
    let (x, y) = bignum::pow_of_two_pair(
        (&mut first.field, &first.odd_part),
        (&mut second.field, &second.odd_part),
    )?;
    Ok((first.round(x)?, second.round(y)?))
}

/// Whether `n` passes the Miller-Rabin round to base 2 (false for an even or too small `n`).
fn passes_base_two(n: &BigUint) -> Result<bool, BignumFailed> {
    match Test::new(n)? {
        Some(mut test) => test.base_two(),
        None => Ok(false),
    }
}

/// aws-lc could not allocate: the device failed.
fn device(_: BignumFailed) -> Ckr {
    Ckr::DeviceError
}

/// Miller-Rabin for one odd candidate n >= 5: n - 1 = 2^twos · odd_part, in `field`.
struct Test {
    field: Modulus,
    odd_part: BigUint,
    twos: usize,
    one: Residue,
    minus_one: Residue,
}

impl Test {
    fn new(n: &BigUint) -> Result<Option<Test>, BignumFailed> {
        if n < &BigUint::from(5u32) {
            return Ok(None);
        }
        // None: even, or wider than any prime the search makes.
        let Some(field) = Modulus::new(n)? else {
            return Ok(None);
        };
        let n_minus_1 = n - BigUint::from(1u32);
        let Some(twos) = n_minus_1.trailing_zeros() else {
            return Ok(None);
        };
        Ok(Some(Test {
            odd_part: &n_minus_1 >> twos,
            twos,
            one: field.one()?,
            minus_one: field.minus_one()?,
            field,
        }))
    }

    /// The round to base 2.
    fn base_two(&mut self) -> Result<bool, BignumFailed> {
        let x = self.field.pow_of_two(&self.odd_part)?;
        self.round(x)
    }

    /// `rounds` rounds to bases drawn from `stream` in 2 ..= n - 2.
    fn random_bases(
        &mut self,
        n: &BigUint,
        rounds: usize,
        stream: &mut ChaCha20Rng,
    ) -> Result<bool, BignumFailed> {
        let bases_span = n - BigUint::from(3u32);
        let mut drawn = vec![0u8; n.bits().div_ceil(8) + 8];
        for _ in 0..rounds {
            stream.fill_bytes(&mut drawn);
            let base = BigUint::from(2u32) + BigUint::from_bytes_be(&drawn) % &bases_span;
            let x = self.field.pow(&base, &self.odd_part)?;
            if !self.round(x)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One round, from x = base^odd_part: whether n is still a probable prime.
    fn round(&mut self, mut x: Residue) -> Result<bool, BignumFailed> {
        if x.equals(&self.one) || x.equals(&self.minus_one) {
            return Ok(true);
        }
        for _ in 1..self.twos {
            self.field.square(&mut x)?;
            if x.equals(&self.minus_one) {
                return Ok(true);
            }
            if x.equals(&self.one) {
                return Ok(false);
            }
        }
        Ok(false)
    }
}

/// The odd primes below [`SIEVE_PRIMES_BELOW`], computed once a process (a sieve of
/// Eratosthenes; a constant table, not state).
fn small_odd_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| {
        let limit = SIEVE_PRIMES_BELOW as usize;
        let mut composite = vec![false; limit];
        let mut primes = Vec::new();
        for i in (3..limit).step_by(2) {
            if !composite[i] {
                primes.push(i as u32);
                for multiple in (i * i..limit).step_by(2 * i) {
                    composite[multiple] = true;
                }
            }
        }
        primes
    })
}

/// For the odd numbers `start + 2k`, k < [`SIEVE_WINDOW_CANDIDATES`] (`start` big-endian and
/// odd): whether each is struck out, that is divisible by an odd prime below
/// [`SIEVE_PRIMES_BELOW`] or 1 modulo [`PUBLIC_EXPONENT`].
fn sieve(start: &[u8]) -> Vec<bool> {
    let words: Vec<u32> = start
        .rchunks(4)
        .rev()
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u32, |word, byte| (word << 8) | u32::from(*byte))
        })
        .collect();
    let residue = |modulus: u32| -> u64 {
        let modulus = u64::from(modulus);
        words.iter().fold(0u64, |rest, word| {
            ((rest << 32) | u64::from(*word)) % modulus
        })
    };
    let mut struck = vec![false; SIEVE_WINDOW_CANDIDATES];
    // start + 2k = target (mod m)  <=>  k = (target - start) * 2^-1 (mod m), m odd.
    let mut strike = |modulus: u32, target: u64| {
        let m = u64::from(modulus);
        let half = m / 2 + 1; // 2^-1 modulo an odd m
        let first = (target + m - residue(modulus)) % m * half % m;
        for k in (first as usize..SIEVE_WINDOW_CANDIDATES).step_by(modulus as usize) {
            struck[k] = true;
        }
    };
    for &prime in small_odd_primes() {
        strike(prime, 0);
    }
    strike(PUBLIC_EXPONENT, 1);
    struck
}

/// Miller-Rabin: one round to base 2, then `rounds` to bases drawn from `stream` in
/// [2, n - 2], each an exponentiation modulo n ([`Modulus`]). False means composite (every even
/// n but 2, and every n wider than [`MODULUS_BITS_MAX`] bits, which no key size asks for);
/// true, a probable prime. The search applies the same two steps to each candidate, with the
/// base-2 rounds of a window shared between threads; this whole test of one number is the
/// tests' entry point.
#[cfg(test)]
fn miller_rabin(n: &BigUint, rounds: usize, stream: &mut ChaCha20Rng) -> bool {
    if n < &BigUint::from(5u32) {
        return n == &BigUint::from(2u32) || n == &BigUint::from(3u32);
    }
    match Test::new(n).expect("the arithmetic allocates") {
        Some(mut test) => {
            test.base_two().expect("the arithmetic allocates")
                && test
                    .random_bases(n, rounds, stream)
                    .expect("the arithmetic allocates")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn stream(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    /// An independent check: Fermat to bases 3, 5, 7 and 11 (a random composite fails it).
    fn passes_fermat(n: &BigUint) -> bool {
        let one = BigUint::from(1u32);
        let n_minus_1 = n - &one;
        [3u32, 5, 7, 11]
            .iter()
            .all(|base| BigUint::from(*base).modpow(&n_minus_1, n) == one)
    }

    fn is_prime_by_division(n: u64) -> bool {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    }

    #[test]
    fn the_small_primes_are_the_odd_primes_below_the_bound() {
        let primes = small_odd_primes();
        assert_eq!(primes.len(), 22_999);
        assert_eq!(&primes[..5], &[3, 5, 7, 11, 13]);
        assert_eq!(primes.last(), Some(&262_139));
        assert!(primes
            .iter()
            .take(200)
            .all(|p| is_prime_by_division(u64::from(*p))));
    }

    #[test]
    fn miller_rabin_agrees_with_trial_division_on_small_odd_numbers() {
        // Among them the strong pseudoprimes to base 2 (2047, 3277, 4033, 4681, 8321, ...),
        // which the drawn bases must reject.
        let mut rng = stream(1);
        for n in (5u64..20_000).step_by(2) {
            assert_eq!(
                miller_rabin(&BigUint::from(n), 5, &mut rng),
                is_prime_by_division(n),
                "{n}"
            );
        }
    }

    #[test]
    fn miller_rabin_knows_large_primes_and_their_odd_neighbours() {
        // RFC 3526's 1536-bit and 2048-bit MODP primes.
        let modp_1536 = BigUint::parse_bytes(
            b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
            16,
        )
        .unwrap();
        let modp_2048 = BigUint::parse_bytes(
            b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
            16,
        )
        .unwrap();
        let mut rng = stream(2);
        for prime in [&modp_1536, &modp_2048] {
            assert!(miller_rabin(prime, 4, &mut rng));
            for offset in [2u32, 4, 6, 8, 10] {
                let neighbour = prime - BigUint::from(offset);
                assert_eq!(
                    miller_rabin(&neighbour, 4, &mut rng),
                    passes_fermat(&neighbour),
                );
            }
        }
        // A product of two primes is composite.
        let product = &modp_1536 * &modp_1536;
        assert!(!miller_rabin(&product, 4, &mut rng));
    }

    #[test]
    fn the_sieve_strikes_exactly_the_small_multiples_and_the_ones_that_are_1_mod_e() {
        let mut rng = stream(3);
        let mut start = vec![0u8; 128];
        rng.fill_bytes(&mut start);
        start[0] |= 0xc0;
        start[127] |= 1;
        let struck = sieve(&start);
        let base = BigUint::from_bytes_be(&start);
        let e = BigUint::from(PUBLIC_EXPONENT);
        let survivors = struck.iter().filter(|s| !**s).count();
        // About 9% of odd numbers have no odd prime factor below 2^18.
        assert!((120..300).contains(&survivors), "{survivors} survivors");
        // Checked one by one on a sample of offsets (every 16th), struck or not.
        for k in (0..SIEVE_WINDOW_CANDIDATES).step_by(16) {
            let candidate = &base + BigUint::from(2 * k as u64);
            let divisible = small_odd_primes()
                .iter()
                .any(|p| (&candidate % BigUint::from(*p)) == BigUint::from(0u32));
            let one_mod_e = &candidate % &e == BigUint::from(1u32);
            assert_eq!(struck[k], divisible || one_mod_e, "offset {k}");
        }
        // A start that is 1 modulo e is struck out for that alone (p - 1 would share e).
        let mut one_mod_e = &base - ((&base - BigUint::from(1u32)) % &e);
        if &one_mod_e % 2u32 == BigUint::from(0u32) {
            one_mod_e -= &e;
        }
        let has_small_factor = |n: &BigUint| {
            small_odd_primes()
                .iter()
                .any(|p| (n % BigUint::from(*p)) == BigUint::from(0u32))
        };
        let step = BigUint::from(2 * PUBLIC_EXPONENT);
        for _ in 0..1000 {
            if !has_small_factor(&one_mod_e) {
                break;
            }
            one_mod_e += &step;
        }
        assert!(!has_small_factor(&one_mod_e));
        assert_eq!(&one_mod_e % &e, BigUint::from(1u32));
        assert!(sieve(&one_mod_e.to_bytes_be())[0]);
    }

    #[test]
    fn screening_on_two_threads_finds_the_first_base_two_pass_one_thread_finds() {
        // Odd 256-bit numbers from a few starts, unsieved: about one in ninety passes. The
        // suffixes from each of the first hundred places (and the last, and the empty list) put
        // the first pass at every distance from where each thread starts, or leave none.
        for seed in 0..3u8 {
            let mut start = [0u8; 32];
            stream(seed).fill_bytes(&mut start);
            start[0] |= 0xc0;
            start[31] |= 1;
            let base = BigUint::from_bytes_be(&start);
            let candidates: Vec<BigUint> =
                (0..400u32).map(|k| &base + BigUint::from(2 * k)).collect();
            let passes: Vec<bool> = candidates
                .iter()
                .map(|c| passes_base_two(c).unwrap())
                .collect();
            assert!(
                passes[100..].iter().any(|p| *p),
                "seed {seed}: no prime near the end"
            );
            for from in (0..100).chain([candidates.len() - 1, candidates.len()]) {
                assert_eq!(
                    first_passing_base_two(&candidates[from..]).unwrap(),
                    passes[from..].iter().position(|p| *p),
                    "seed {seed}, from {from}"
                );
            }
        }
        assert_eq!(first_passing_base_two(&[]), Ok(None));
    }

    #[test]
    fn paired_rounds_find_the_first_pass_that_rounds_one_by_one_find() {
        // Survivors of the sieve of 1,024-bit windows, the candidates an RSA-2048 search tests
        // (in pairs, on a machine with AVX-512 IFMA), against each tested alone. The suffixes
        // put the first pass at every distance from a pair's start, or leave none.
        for seed in 3..5u8 {
            let mut start = [0u8; 128];
            stream(seed).fill_bytes(&mut start);
            start[0] |= 0xc0;
            start[127] |= 1;
            let mut candidates = window_survivors(&start);
            candidates.truncate(64);
            let passes: Vec<bool> = candidates
                .iter()
                .map(|c| passes_base_two(c).unwrap())
                .collect();
            assert!(passes.iter().filter(|p| **p).count() >= 2, "seed {seed}");
            for from in (0..candidates.len()).chain([candidates.len()]) {
                let expected = passes[from..].iter().position(|p| *p);
                let tail = &candidates[from..];
                assert_eq!(
                    first_passing_in_order(tail).unwrap(),
                    expected,
                    "seed {seed}, from {from}"
                );
                assert_eq!(
                    first_passing_base_two(tail).unwrap(),
                    expected,
                    "seed {seed}, from {from}"
                );
            }
        }
    }

    #[test]
    fn the_primes_are_prime_of_the_size_asked_far_apart_and_coprime_to_e_minus_1() {
        for modulus_bits in [2048usize, 3072] {
            let (p, q) = rsa_primes(&mut stream(4), modulus_bits).unwrap();
            let e = BigUint::from(PUBLIC_EXPONENT);
            for prime in [&p, &q] {
                assert_eq!(prime.bits(), modulus_bits / 2);
                assert!(passes_fermat(prime));
                assert_ne!(prime % &e, BigUint::from(1u32));
            }
            assert_eq!((&p * &q).bits(), modulus_bits);
            let distance = if p > q { &p - &q } else { &q - &p };
            assert!(distance.bits() > modulus_bits / 2 - 100);
            // A function of the stream.
            assert_eq!(rsa_primes(&mut stream(4), modulus_bits).unwrap(), (p, q));
        }
        assert_eq!(rsa_primes(&mut stream(4), 2040), Err(Ckr::KeySizeRange));
        // Primes wider than the arithmetic's bound are refused before any work.
        let widest = 2 * MODULUS_BITS_MAX;
        assert_eq!(
            rsa_primes(&mut stream(4), widest + 16),
            Err(Ckr::KeySizeRange)
        );
    }
}
