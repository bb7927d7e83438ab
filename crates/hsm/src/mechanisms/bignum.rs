//! Arithmetic modulo an odd number with aws-lc's big numbers, for the Miller-Rabin rounds of the
//! seeded prime search ([`super::prime_search`]).
//!
//! Why: a simulated world's set-up generates its RSA keys from the run's seed, and the search
//! for their primes is nearly all modular exponentiation, one per candidate that survives the
//! sieve. The simulation waits for its first key (the library's revocation scenario waited 67 ms
//! of its 0.42 s for it, on a machine whose RSA-2048 unwrap took 236 µs), so the exponentiation's
//! speed is the set-up's. aws-lc, already linked for every RSA operation, has assembly for it:
//! a 1,024-bit round to base 2 in 258 µs against 511 µs for this project's former fixed-width
//! Rust (`montgomery.rs`, session 20), a key search in 68 ms of CPU against 114 ms. The answers
//! are those of any correct arithmetic (the tests compare them with `num-bigint-dig`, and a
//! seeded key's fingerprint is pinned in `rsa_keygen`), so which prime the search finds, and so
//! every seeded key, is unchanged.
//!
//! This module holds the project's only `unsafe` code (the crate denies it elsewhere, every
//! other crate forbids it): calls into `aws-lc-sys`, each with the rule it relies on written
//! beside it. Every aws-lc object is owned by one Rust value and freed
//! when it drops; none is shared between threads (the types hold raw pointers, so they are
//! neither `Send` nor `Sync`), and every return code is checked. A failed call (aws-lc could not
//! allocate) is an error the caller sees, never a panic.

#![allow(unsafe_code)]

use std::ptr::{null_mut, NonNull};

use aws_lc_sys as sys;
use rsa::BigUint;

/// aws-lc could not do what was asked (it failed to allocate): the search reports a device error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BignumFailed;

/// One aws-lc `BIGNUM`, owned.
struct Bn(NonNull<sys::BIGNUM>);

impl Bn {
    fn new() -> Result<Bn, BignumFailed> {
        // SAFETY: `BN_new` takes nothing and returns a fresh number or null.
        NonNull::new(unsafe { sys::BN_new() })
            .map(Bn)
            .ok_or(BignumFailed)
    }

    /// The number whose big-endian bytes are `bytes`.
    fn from_be(bytes: &[u8]) -> Result<Bn, BignumFailed> {
        // SAFETY: `bytes` is a valid slice for the call; a null `ret` asks for a fresh number,
        // returned (or null on failure) and owned by us from here on.
        NonNull::new(unsafe { sys::BN_bin2bn(bytes.as_ptr(), bytes.len(), null_mut()) })
            .map(Bn)
            .ok_or(BignumFailed)
    }

    fn from_biguint(x: &BigUint) -> Result<Bn, BignumFailed> {
        Bn::from_be(&x.to_bytes_be())
    }

    fn from_word(word: u64) -> Result<Bn, BignumFailed> {
        let bn = Bn::new()?;
        // SAFETY: `bn` is a valid number we own.
        check(unsafe { sys::BN_set_word(bn.0.as_ptr(), word) })?;
        Ok(bn)
    }

    fn ptr(&self) -> *const sys::BIGNUM {
        self.0.as_ptr()
    }

    fn ptr_mut(&mut self) -> *mut sys::BIGNUM {
        self.0.as_ptr()
    }

    fn equals(&self, other: &Bn) -> bool {
        // SAFETY: both are valid numbers; `BN_cmp` only reads them.
        unsafe { sys::BN_cmp(self.ptr(), other.ptr()) == 0 }
    }
}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: we own the number, and nothing else frees it.
        unsafe { sys::BN_free(self.0.as_ptr()) }
    }
}

/// aws-lc's scratch space for one chain of operations.
struct Ctx(NonNull<sys::BN_CTX>);

impl Ctx {
    fn new() -> Result<Ctx, BignumFailed> {
        // SAFETY: `BN_CTX_new` takes nothing and returns a fresh context or null.
        NonNull::new(unsafe { sys::BN_CTX_new() })
            .map(Ctx)
            .ok_or(BignumFailed)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: we own the context, and nothing else frees it.
        unsafe { sys::BN_CTX_free(self.0.as_ptr()) }
    }
}

/// aws-lc's Montgomery constants for one modulus.
struct Mont(NonNull<sys::BN_MONT_CTX>);

impl Drop for Mont {
    fn drop(&mut self) {
        // SAFETY: we own the constants, and nothing else frees them.
        unsafe { sys::BN_MONT_CTX_free(self.0.as_ptr()) }
    }
}

fn check(code: std::os::raw::c_int) -> Result<(), BignumFailed> {
    if code == 1 {
        Ok(())
    } else {
        Err(BignumFailed)
    }
}

/// A number below the [`Modulus`] it came from.
pub struct Residue(Bn);

/// Most bits of a modulus: 4,096 (the primes of an 8,192-bit key).
pub const MODULUS_BITS_MAX: usize = 4096;

/// Arithmetic modulo one odd n ≥ 3 of at most [`MODULUS_BITS_MAX`] bits.
pub struct Modulus {
    n: Bn,
    mont: Mont,
    ctx: Ctx,
}

impl Modulus {
    /// The arithmetic modulo `n`; `Ok(None)` when `n` is even, below 3, or wider than
    /// [`MODULUS_BITS_MAX`] bits.
    pub fn new(n: &BigUint) -> Result<Option<Modulus>, BignumFailed> {
        if n < &BigUint::from(3u32) || n.trailing_zeros() != Some(0) || n.bits() > MODULUS_BITS_MAX
        {
            return Ok(None);
        }
        let n = Bn::from_biguint(n)?;
        let ctx = Ctx::new()?;
        // SAFETY: `n` and `ctx` are valid and ours; the constants returned (or null) are ours.
        let mont =
            NonNull::new(unsafe { sys::BN_MONT_CTX_new_for_modulus(n.ptr(), ctx.0.as_ptr()) })
                .map(Mont)
                .ok_or(BignumFailed)?;
        Ok(Some(Modulus { n, mont, ctx }))
    }

    /// 1.
    pub fn one(&self) -> Result<Residue, BignumFailed> {
        Bn::from_word(1).map(Residue)
    }

    /// n - 1.
    pub fn minus_one(&self) -> Result<Residue, BignumFailed> {
        // SAFETY: `self.n` is a valid number; `BN_dup` returns a fresh copy (or null), ours.
        let copy = NonNull::new(unsafe { sys::BN_dup(self.n.ptr()) })
            .map(Bn)
            .ok_or(BignumFailed)?;
        // SAFETY: `copy` is a valid number we own; n ≥ 3, so n - 1 is positive.
        check(unsafe { sys::BN_sub_word(copy.0.as_ptr(), 1) })?;
        Ok(Residue(copy))
    }

    /// `base^exponent mod n`; an error unless `base < n`.
    pub fn pow(&mut self, base: &BigUint, exponent: &BigUint) -> Result<Residue, BignumFailed> {
        let base = Bn::from_biguint(base)?;
        self.pow_bn(&base, exponent)
    }

    /// `2^exponent mod n` (Miller-Rabin's base-2 round).
    pub fn pow_of_two(&mut self, exponent: &BigUint) -> Result<Residue, BignumFailed> {
        let two = Bn::from_word(2)?;
        self.pow_bn(&two, exponent)
    }

    fn pow_bn(&mut self, base: &Bn, exponent: &BigUint) -> Result<Residue, BignumFailed> {
        let exponent = Bn::from_biguint(exponent)?;
        let mut out = Bn::new()?;
        // SAFETY: every pointer is a valid number, context or set of constants that we own; the
        // constants are those of `self.n`. aws-lc refuses a base that is not below n (an error,
        // not undefined behaviour). `out` is distinct from the inputs. Not constant-time: the
        // search's secret is the run's seed anyway (see `super::rsa_keygen`).
        check(unsafe {
            sys::BN_mod_exp_mont(
                out.ptr_mut(),
                base.ptr(),
                exponent.ptr(),
                self.n.ptr(),
                self.ctx.0.as_ptr(),
                self.mont.0.as_ptr(),
            )
        })?;
        Ok(Residue(out))
    }

    /// Bits of n.
    pub fn bits(&self) -> usize {
        // SAFETY: `self.n` is a valid number; `BN_num_bits` only reads it.
        unsafe { sys::BN_num_bits(self.n.ptr()) as usize }
    }

    /// `a · b mod n`, for `a` and `b` below n.
    fn multiply(&mut self, a: &Bn, b: &Residue) -> Result<Residue, BignumFailed> {
        let mut out = Bn::new()?;
        // SAFETY: valid numbers and context that we own; `out` is distinct from the inputs.
        check(unsafe {
            sys::BN_mod_mul(
                out.ptr_mut(),
                a.ptr(),
                b.0.ptr(),
                self.n.ptr(),
                self.ctx.0.as_ptr(),
            )
        })?;
        Ok(Residue(out))
    }

    /// `x = x² mod n`.
    pub fn square(&mut self, x: &mut Residue) -> Result<(), BignumFailed> {
        let mut out = Bn::new()?;
        // SAFETY: valid numbers and context that we own; `out` is distinct from `x`.
        check(unsafe {
            sys::BN_mod_sqr(out.ptr_mut(), x.0.ptr(), self.n.ptr(), self.ctx.0.as_ptr())
        })?;
        x.0 = out;
        Ok(())
    }
}

/// Bits of the moduli whose base-2 rounds [`pow_of_two_pair`] runs two at once: aws-lc pairs
/// exponentiations modulo 1,024-bit numbers (the primes of an RSA-2048 key) in AVX-512 IFMA, as
/// it does an RSA-2048 private-key operation's two halves.
pub const PAIRED_MODULUS_BITS: usize = 1024;

/// `log2(PAIRED_MODULUS_BITS)`: the low bits of an exponent that [`pow_of_two_pair`] leaves
/// out of the paired exponentiation.
const PAIRED_SHIFT_BITS: usize = 10;
const _: () = assert!(1 << PAIRED_SHIFT_BITS == PAIRED_MODULUS_BITS);

/// Whether this machine runs aws-lc's paired exponentiation on its fast path (AVX-512 IFMA with
/// 256-bit vectors, the features its dispatch asks for). Elsewhere the paired call is two
/// constant-time exponentiations, slower than two of [`Modulus::pow_of_two`], so the search
/// pairs nothing.
pub fn pairs_run_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `(2^e mod m, 2^f mod n)` for `(m, e)` and `(n, f)`: two base-2 rounds at once, for moduli of
/// [`PAIRED_MODULUS_BITS`] bits (others are an error).
///
/// aws-lc's paired exponentiation (`BN_mod_exp_mont_consttime_x2`) takes its fast path only for
/// a base and an exponent as wide as the modulus (16 words), and 2 is one word wide. So each
/// exponent e is split as e = 1024·h + l: 2^e = (2^1024 mod m)^h · 2^l, a full-width base to a
/// full-width exponent (paired), times a power of two below 2^1024 (ten squarings). An operand
/// that happens to be narrower (an exponent below 2^960, a base with a zero top word) takes
/// aws-lc's other path, two separate exponentiations: slower, the same answer.
pub fn pow_of_two_pair(
    first: (&mut Modulus, &BigUint),
    second: (&mut Modulus, &BigUint),
) -> Result<(Residue, Residue), BignumFailed> {
    let (m, e) = first;
    let (n, f) = second;
    if m.bits() != PAIRED_MODULUS_BITS || n.bits() != PAIRED_MODULUS_BITS {
        return Err(BignumFailed);
    }
    let shift = BigUint::from(PAIRED_MODULUS_BITS);
    let low_mask = BigUint::from(PAIRED_MODULUS_BITS - 1);
    let (base_m, base_n) = (m.pow_of_two(&shift)?, n.pow_of_two(&shift)?);
    let (high_e, high_f) = (
        Bn::from_biguint(&(e >> PAIRED_SHIFT_BITS))?,
        Bn::from_biguint(&(f >> PAIRED_SHIFT_BITS))?,
    );
    let (mut out_m, mut out_n) = (Bn::new()?, Bn::new()?);
    // SAFETY: every pointer is a valid number, context or set of constants that we own; each
    // modulus's constants are its own. The bases are residues of their moduli (aws-lc refuses
    // one that is not reduced: an error, not undefined behaviour). The outputs are distinct
    // from every input.
    check(unsafe {
        sys::BN_mod_exp_mont_consttime_x2(
            out_m.ptr_mut(),
            base_m.0.ptr(),
            high_e.ptr(),
            m.n.ptr(),
            m.mont.0.as_ptr(),
            out_n.ptr_mut(),
            base_n.0.ptr(),
            high_f.ptr(),
            n.n.ptr(),
            n.mont.0.as_ptr(),
            m.ctx.0.as_ptr(),
        )
    })?;
    let low_e = m.pow_of_two(&(e & &low_mask))?;
    let low_f = n.pow_of_two(&(f & &low_mask))?;
    Ok((m.multiply(&out_m, &low_e)?, n.multiply(&out_n, &low_f)?))
}

impl Residue {
    /// Whether two residues (of one modulus) are the same number.
    pub fn equals(&self, other: &Residue) -> bool {
        self.0.equals(&other.0)
    }

    /// The residue as a plain number.
    #[cfg(test)]
    fn to_biguint(&self) -> BigUint {
        // SAFETY: `self.0` is a valid number; `BN_num_bytes` only reads it.
        let len = unsafe { sys::BN_num_bytes(self.0.ptr()) } as usize;
        let mut bytes = vec![0u8; len];
        // SAFETY: `bytes` has room for exactly `len` bytes, the number's size.
        check(unsafe { sys::BN_bn2bin_padded(bytes.as_mut_ptr(), len, self.0.ptr()) })
            .expect("a residue fits its own size");
        BigUint::from_bytes_be(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn random_below(stream: &mut ChaCha20Rng, bytes: usize) -> BigUint {
        let mut buffer = vec![0u8; bytes];
        stream.fill_bytes(&mut buffer);
        BigUint::from_bytes_be(&buffer)
    }

    fn random_odd_modulus(stream: &mut ChaCha20Rng, bytes: usize) -> BigUint {
        let mut buffer = vec![0u8; bytes];
        stream.fill_bytes(&mut buffer);
        buffer[0] |= 0x80;
        if let Some(last) = buffer.last_mut() {
            *last |= 1;
        }
        BigUint::from_bytes_be(&buffer)
    }

    #[test]
    fn exponentiation_agrees_with_num_bigint_on_random_moduli_of_every_width() {
        let mut stream = ChaCha20Rng::from_seed([9; 32]);
        // One byte up to the widest, the sizes the search uses among them (128 bytes for an
        // RSA-2048 key's primes, 192 for RSA-3072's).
        for bytes in [1usize, 7, 8, 9, 16, 64, 128, 192, 256, 512] {
            for _ in 0..3 {
                let n = random_odd_modulus(&mut stream, bytes);
                if n < BigUint::from(3u32) {
                    continue;
                }
                let mut field = Modulus::new(&n).unwrap().expect("an odd modulus in range");
                let base = random_below(&mut stream, bytes + 3) % &n;
                let exponent = random_below(&mut stream, bytes);
                assert_eq!(
                    field.pow(&base, &exponent).unwrap().to_biguint(),
                    base.modpow(&exponent, &n),
                    "{bytes} bytes"
                );
                assert_eq!(
                    field.pow_of_two(&exponent).unwrap().to_biguint(),
                    BigUint::from(2u32).modpow(&exponent, &n),
                    "{bytes} bytes"
                );
                let mut square = field.pow(&base, &exponent).unwrap();
                field.square(&mut square).unwrap();
                assert_eq!(
                    square.to_biguint(),
                    base.modpow(&(&exponent * 2u32), &n),
                    "{bytes} bytes"
                );
            }
        }
    }

    #[test]
    fn paired_powers_of_two_agree_with_num_bigint_whatever_the_exponents_width() {
        let mut stream = ChaCha20Rng::from_seed([11; 32]);
        let bytes = PAIRED_MODULUS_BITS / 8;
        // Full-width exponents (the fast path where the machine has it), an exponent that is a
        // multiple of 1,024 and one below it (a zero part each), and one narrower than 960
        // bits (aws-lc's other path).
        let mut exponents: Vec<BigUint> =
            (0..6).map(|_| random_below(&mut stream, bytes)).collect();
        exponents.extend([
            BigUint::from(1u32) << 1000,
            BigUint::from(1023u32),
            BigUint::from(0u32),
            random_below(&mut stream, 100),
        ]);
        for pair in exponents.chunks(2) {
            let (m, n) = (
                random_odd_modulus(&mut stream, bytes),
                random_odd_modulus(&mut stream, bytes),
            );
            let mut fm = Modulus::new(&m).unwrap().expect("an odd modulus in range");
            let mut fn_ = Modulus::new(&n).unwrap().expect("an odd modulus in range");
            let (e, f) = (&pair[0] % &m, &pair[1]);
            let (x, y) = pow_of_two_pair((&mut fm, &e), (&mut fn_, f)).unwrap();
            let two = BigUint::from(2u32);
            assert_eq!(x.to_biguint(), two.modpow(&e, &m), "e = {e:x}");
            assert_eq!(y.to_biguint(), two.modpow(f, &n), "f = {f:x}");
            // The results are residues like any other: they compare with the field's own.
            assert!(x.equals(&fm.pow_of_two(&e).unwrap()));
        }
        // Moduli of another width are refused, not miscomputed.
        let small = random_odd_modulus(&mut stream, 64);
        let mut fs = Modulus::new(&small).unwrap().unwrap();
        let big = random_odd_modulus(&mut stream, bytes);
        let mut fb = Modulus::new(&big).unwrap().unwrap();
        let one = BigUint::from(1u32);
        assert!(pow_of_two_pair((&mut fs, &one), (&mut fb, &one)).is_err());
    }

    #[test]
    fn edge_values_reduce_fully() {
        let n = (BigUint::from(1u32) << 128) - BigUint::from(1u32);
        let mut field = Modulus::new(&n).unwrap().unwrap();
        let one = field.one().unwrap();
        let mut minus_one = field.minus_one().unwrap();
        assert_eq!(minus_one.to_biguint(), &n - BigUint::from(1u32));
        assert_eq!(one.to_biguint(), BigUint::from(1u32));
        assert!(!minus_one.equals(&one));
        for exponent in [0u32, 1, 2, 127, 128, 129, 1000] {
            let exponent = BigUint::from(exponent);
            assert_eq!(
                field.pow_of_two(&exponent).unwrap().to_biguint(),
                BigUint::from(2u32).modpow(&exponent, &n)
            );
            assert_eq!(
                field
                    .pow(&(&n - BigUint::from(1u32)), &exponent)
                    .unwrap()
                    .to_biguint(),
                (&n - BigUint::from(1u32)).modpow(&exponent, &n)
            );
        }
        field.square(&mut minus_one).unwrap();
        assert!(minus_one.equals(&one), "(n - 1)^2 = 1 mod n");
        // A base that is not below n is refused, not reduced or misread.
        assert_eq!(
            field.pow(&n, &BigUint::from(3u32)).err(),
            Some(BignumFailed)
        );
    }

    #[test]
    fn even_tiny_and_oversized_moduli_are_refused() {
        let refused = |n: BigUint| Modulus::new(&n).unwrap().is_none();
        assert!(refused(BigUint::from(0u32)));
        assert!(refused(BigUint::from(1u32)));
        assert!(refused(BigUint::from(2u32)));
        assert!(refused(BigUint::from(1u32 << 20)));
        assert!(!refused(BigUint::from(3u32)));
        let widest = (BigUint::from(1u32) << MODULUS_BITS_MAX) - BigUint::from(1u32);
        assert!(!refused(widest));
        let too_wide = (BigUint::from(1u32) << MODULUS_BITS_MAX) + BigUint::from(1u32);
        assert!(refused(too_wide));
    }
}
