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
