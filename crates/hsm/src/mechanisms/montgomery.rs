//! Modular exponentiation in fixed-width Montgomery form, for the Miller-Rabin rounds of the
//! seeded prime search ([`super::prime_search`]).
//!
//! Why: a simulated world's set-up generates its RSA keys from the run's seed, and the search
//! for their primes is nearly all modular exponentiation, one per surviving candidate. With
//! `num-bigint-dig`'s `modpow` the revocation scenario's key search took 1.42 G instructions
//! (callgrind), the largest part of the scenario's cost after its unwraps (issue 12); with this
//! module, 0.70 G. The modulus's limbs are laid out once, a product goes through `u128` into a
//! scratch array on the stack (no allocation inside an exponentiation), a square computes each
//! cross product once, the reduction is Montgomery's separated operand scanning, and the base-2
//! round, the one that rejects nearly every composite, doubles instead of multiplying.
//!
//! The arithmetic is the textbook one, so the answers are those of `num-bigint-dig` bit for bit
//! (tests compare them): which prime the search finds, and so every seeded key, is unchanged.
//! Not constant-time: it runs only in the search for a seeded key, whose secret is the run's
//! seed anyway (live mode's keys come from aws-lc's generator, and every private operation is
//! aws-lc's).
//!
//! Representation: an element is `limbs` little-endian 64-bit words holding x·R mod n, fully
//! reduced (< n), R = 2^(64·limbs); equal residues have equal words.

use rsa::BigUint;

/// Most 64-bit limbs of a modulus: 4,096 bits (the primes of a 4096-bit key have 2,048).
pub const MODULUS_LIMBS_MAX: usize = 64;

/// Arithmetic modulo one odd n > 1 in Montgomery form.
#[derive(Debug, Clone)]
pub struct Montgomery {
    /// n, little-endian limbs.
    n: Vec<u64>,
    /// -n^-1 mod 2^64.
    n0_inv_neg: u64,
    /// R mod n: 1 in Montgomery form.
    one: Vec<u64>,
    /// R^2 mod n: what takes a plain number into Montgomery form.
    r_squared: Vec<u64>,
}

impl Montgomery {
    /// The arithmetic modulo `n`; `None` when `n` is even, below 3, or wider than
    /// [`MODULUS_LIMBS_MAX`] limbs.
    pub fn new(n: &BigUint) -> Option<Montgomery> {
        let limbs = n.bits().div_ceil(64);
        if limbs == 0 || limbs > MODULUS_LIMBS_MAX || n < &BigUint::from(3u32) || is_even(n) {
            return None;
        }
        let n_limbs = to_limbs(n, limbs);
        let r_mod_n = (BigUint::from(1u32) << (64 * limbs)) % n;
        let r_squared = (BigUint::from(1u32) << (128 * limbs)) % n;
        Some(Montgomery {
            n0_inv_neg: inverse_mod_word(n_limbs[0]).wrapping_neg(),
            one: to_limbs(&r_mod_n, limbs),
            r_squared: to_limbs(&r_squared, limbs),
            n: n_limbs,
        })
    }

    /// 1 in Montgomery form.
    pub fn one(&self) -> &[u64] {
        &self.one
    }

    /// n - 1 in Montgomery form.
    pub fn minus_one(&self) -> Vec<u64> {
        let mut minus_one = self.n.clone();
        subtract_in_place(&mut minus_one, &self.one);
        minus_one
    }

    /// `x mod n` in Montgomery form.
    pub fn to_montgomery(&self, x: &BigUint) -> Vec<u64> {
        let mut element = to_limbs(&(x % self.modulus()), self.n.len());
        self.multiply(&mut element, &self.r_squared);
        element
    }

    fn modulus(&self) -> BigUint {
        from_limbs(&self.n)
    }

    /// `base^exponent` for `base` in Montgomery form (left to right, four bits at a time).
    pub fn pow(&self, base: &[u64], exponent: &BigUint) -> Vec<u64> {
        const WINDOW_BITS: usize = 4;
        let mut powers = vec![self.one.clone()];
        for k in 1..(1 << WINDOW_BITS) {
            let mut next = powers[k - 1].clone();
            self.multiply(&mut next, base);
            powers.push(next);
        }
        let bits = exponent_bits(exponent);
        let mut acc = self.one.clone();
        let windows = bits.len().div_ceil(WINDOW_BITS);
        for window in (0..windows).rev() {
            let mut digit = 0usize;
            for bit in (0..WINDOW_BITS).rev() {
                let index = window * WINDOW_BITS + bit;
                self.square(&mut acc);
                digit = (digit << 1) | usize::from(bits.get(index).copied().unwrap_or(false));
            }
            if digit != 0 {
                self.multiply(&mut acc, &powers[digit]);
            }
        }
        acc
    }

    /// `2^exponent` in Montgomery form: a squaring per bit and a doubling per set bit, no
    /// multiplication (Miller-Rabin's base-2 round).
    pub fn pow_of_two(&self, exponent: &BigUint) -> Vec<u64> {
        let mut acc = self.one.clone();
        for bit in exponent_bits(exponent).iter().rev() {
            self.square(&mut acc);
            if *bit {
                self.double(&mut acc);
            }
        }
        acc
    }

    /// `acc = acc² · R^-1 mod n`.
    pub fn square(&self, acc: &mut [u64]) {
        // The widths the search uses get code of their own, with the limb count a constant
        // (no bounds checks inside the loops): 16% fewer instructions for a key search.
        match self.n.len() {
            16 => self.square_limbs(acc, 16),
            24 => self.square_limbs(acc, 24),
            32 => self.square_limbs(acc, 32),
            limbs => self.square_limbs(acc, limbs),
        }
    }

    /// `acc = acc · other · R^-1 mod n`.
    pub fn multiply(&self, acc: &mut [u64], other: &[u64]) {
        match self.n.len() {
            16 => self.multiply_limbs(acc, other, 16),
            24 => self.multiply_limbs(acc, other, 24),
            32 => self.multiply_limbs(acc, other, 32),
            limbs => self.multiply_limbs(acc, other, limbs),
        }
    }

    #[inline(always)]
    fn square_limbs(&self, acc: &mut [u64], limbs: usize) {
        let acc = &mut acc[..limbs];
        let mut wide = [0u64; WIDE_LIMBS_MAX];
        let t = &mut wide[..2 * limbs];
        // The products a[i]·a[j], i < j, once each...
        for i in 0..limbs {
            let a_i = u128::from(acc[i]);
            let mut carry = 0u64;
            for (t_word, &a_j) in t[2 * i + 1..i + limbs].iter_mut().zip(&acc[i + 1..]) {
                let sum = u128::from(*t_word) + a_i * u128::from(a_j) + u128::from(carry);
                *t_word = sum as u64;
                carry = (sum >> 64) as u64;
            }
            t[i + limbs] = carry;
        }
        // ...doubled, then the squares a[i]² on the diagonal.
        let mut shifted_out = 0u64;
        for word in t.iter_mut() {
            let next = *word >> 63;
            *word = (*word << 1) | shifted_out;
            shifted_out = next;
        }
        let mut carry = 0u64;
        for (pair, &a_i) in t.chunks_exact_mut(2).zip(acc.iter()) {
            let square = u128::from(a_i) * u128::from(a_i);
            let low = u128::from(pair[0]) + u128::from(square as u64) + u128::from(carry);
            pair[0] = low as u64;
            let high = u128::from(pair[1]) + (square >> 64) + (low >> 64);
            pair[1] = high as u64;
            carry = (high >> 64) as u64;
        }
        debug_assert_eq!(carry, 0, "a square of limbs words fits in 2·limbs words");
        self.reduce_limbs(&mut wide, acc, limbs);
    }

    #[inline(always)]
    fn multiply_limbs(&self, acc: &mut [u64], other: &[u64], limbs: usize) {
        let acc = &mut acc[..limbs];
        let mut wide = [0u64; WIDE_LIMBS_MAX];
        for (i, &b_i) in other[..limbs].iter().enumerate() {
            let b_i = u128::from(b_i);
            let mut carry = 0u64;
            for (t_word, &a_j) in wide[i..i + limbs].iter_mut().zip(acc.iter()) {
                let sum = u128::from(*t_word) + u128::from(a_j) * b_i + u128::from(carry);
                *t_word = sum as u64;
                carry = (sum >> 64) as u64;
            }
            wide[i + limbs] = carry;
        }
        self.reduce_limbs(&mut wide, acc, limbs);
    }

    /// `acc = 2·acc mod n`.
    fn double(&self, acc: &mut [u64]) {
        let mut carry = 0u64;
        for limb in acc.iter_mut() {
            let next_carry = *limb >> 63;
            *limb = (*limb << 1) | carry;
            carry = next_carry;
        }
        if carry != 0 || !less_than(acc, &self.n) {
            subtract_in_place(acc, &self.n);
        }
    }

    /// Montgomery reduction (separated operand scanning): `out = t · R^-1 mod n` for a product
    /// t < n² in `t[..2·limbs]`.
    #[inline(always)]
    fn reduce_limbs(&self, t: &mut [u64; WIDE_LIMBS_MAX], out: &mut [u64], limbs: usize) {
        let n = &self.n[..limbs];
        let mut top_carry = 0u64;
        for i in 0..limbs {
            let m = u128::from(t[i].wrapping_mul(self.n0_inv_neg));
            let mut carry = 0u64;
            for (t_word, &n_j) in t[i..i + limbs].iter_mut().zip(n) {
                let sum = u128::from(*t_word) + m * u128::from(n_j) + u128::from(carry);
                *t_word = sum as u64;
                carry = (sum >> 64) as u64;
            }
            // The carry out of t[i + limbs] goes to t[i + 1 + limbs]: the next step's slot.
            let sum = u128::from(t[i + limbs]) + u128::from(carry) + u128::from(top_carry);
            t[i + limbs] = sum as u64;
            top_carry = (sum >> 64) as u64;
        }
        // t / R < 2n: at most one subtraction.
        out.copy_from_slice(&t[limbs..2 * limbs]);
        if top_carry != 0 || !less_than(out, n) {
            subtract_in_place(out, n);
        }
    }
}

/// Words of a double-width product.
const WIDE_LIMBS_MAX: usize = 2 * MODULUS_LIMBS_MAX;

fn is_even(n: &BigUint) -> bool {
    n.to_bytes_le().first().is_none_or(|low| low & 1 == 0)
}

/// `x`'s little-endian 64-bit limbs, `limbs` of them (`x` must fit).
fn to_limbs(x: &BigUint, limbs: usize) -> Vec<u64> {
    let bytes = x.to_bytes_le();
    let mut words = vec![0u64; limbs];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        *word = chunk
            .iter()
            .rev()
            .fold(0u64, |word, byte| (word << 8) | u64::from(*byte));
    }
    words
}

fn from_limbs(words: &[u64]) -> BigUint {
    let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_le_bytes()).collect();
    BigUint::from_bytes_le(&bytes)
}

/// The bits of `exponent`, least significant first, up to its top set bit.
fn exponent_bits(exponent: &BigUint) -> Vec<bool> {
    let bytes = exponent.to_bytes_le();
    let mut bits: Vec<bool> = bytes
        .iter()
        .flat_map(|byte| (0..8).map(move |bit| byte >> bit & 1 == 1))
        .collect();
    while bits.last() == Some(&false) {
        bits.pop();
    }
    bits
}

/// n0^-1 mod 2^64 for an odd n0 (Newton's iteration: each step doubles the correct low bits,
/// from the 3 that `n0` itself gets right).
fn inverse_mod_word(n0: u64) -> u64 {
    debug_assert!(n0 & 1 == 1);
    let mut inverse = n0;
    for _ in 0..5 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(n0.wrapping_mul(inverse)));
    }
    inverse
}

/// `a < b` for numbers of the same limb count.
fn less_than(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo 2^(64·limbs).
fn subtract_in_place(a: &mut [u64], b: &[u64]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (difference, under) = x.overflowing_sub(y);
        let (difference, under_again) = difference.overflowing_sub(u64::from(borrow));
        *x = difference;
        borrow = under || under_again;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    impl Montgomery {
        /// Leaves Montgomery form: the plain residue.
        fn to_plain(&self, element: &[u64]) -> BigUint {
            let mut plain = element.to_vec();
            let mut unit = vec![0u64; self.n.len()];
            unit[0] = 1;
            self.multiply(&mut plain, &unit);
            from_limbs(&plain)
        }
    }

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
    fn the_word_inverse_is_an_inverse() {
        for n0 in [1u64, 3, 0xffff_ffff_ffff_ffff, 0x1234_5678_9abc_def1] {
            assert_eq!(n0.wrapping_mul(inverse_mod_word(n0)), 1, "{n0:x}");
        }
    }

    #[test]
    fn exponentiation_agrees_with_num_bigint_on_random_moduli_of_every_width() {
        let mut stream = ChaCha20Rng::from_seed([9; 32]);
        // One limb up to the widest, the sizes the search uses among them (128 bytes for an
        // RSA-2048 key's primes, 192 for RSA-3072's).
        for bytes in [1usize, 7, 8, 9, 16, 64, 128, 192, 256, 512] {
            for _ in 0..3 {
                let n = random_odd_modulus(&mut stream, bytes);
                if n < BigUint::from(3u32) {
                    continue;
                }
                let field = Montgomery::new(&n).expect("an odd modulus in range");
                let base = random_below(&mut stream, bytes + 3);
                let exponent = random_below(&mut stream, bytes);
                let element = field.to_montgomery(&base);
                assert_eq!(field.to_plain(&element), &base % &n);
                assert_eq!(
                    field.to_plain(&field.pow(&element, &exponent)),
                    base.modpow(&exponent, &n),
                    "{bytes} bytes"
                );
                assert_eq!(
                    field.to_plain(&field.pow_of_two(&exponent)),
                    BigUint::from(2u32).modpow(&exponent, &n),
                    "{bytes} bytes"
                );
            }
        }
    }

    #[test]
    fn edge_values_reduce_fully() {
        // n just below a limb boundary: carries out of the top limb on every doubling.
        let n = (BigUint::from(1u32) << 128) - BigUint::from(1u32);
        let field = Montgomery::new(&n).unwrap();
        let minus_one = field.minus_one();
        assert_eq!(field.to_plain(&minus_one), &n - BigUint::from(1u32));
        assert_eq!(field.to_plain(field.one()), BigUint::from(1u32));
        let mut square = minus_one.clone();
        field.square(&mut square);
        assert_eq!(square, field.one().to_vec(), "(n - 1)^2 = 1 mod n");
        for exponent in [0u32, 1, 2, 127, 128, 129, 1000] {
            let exponent = BigUint::from(exponent);
            assert_eq!(
                field.to_plain(&field.pow_of_two(&exponent)),
                BigUint::from(2u32).modpow(&exponent, &n)
            );
            assert_eq!(
                field.to_plain(&field.pow(&minus_one, &exponent)),
                (&n - BigUint::from(1u32)).modpow(&exponent, &n)
            );
        }
    }

    #[test]
    fn even_tiny_and_oversized_moduli_are_refused() {
        assert!(Montgomery::new(&BigUint::from(0u32)).is_none());
        assert!(Montgomery::new(&BigUint::from(1u32)).is_none());
        assert!(Montgomery::new(&BigUint::from(2u32)).is_none());
        assert!(Montgomery::new(&BigUint::from(1u32 << 20)).is_none());
        assert!(Montgomery::new(&BigUint::from(3u32)).is_some());
        let widest = (BigUint::from(1u32) << (64 * MODULUS_LIMBS_MAX)) - BigUint::from(1u32);
        assert!(Montgomery::new(&widest).is_some());
        let too_wide = (BigUint::from(1u32) << (64 * MODULUS_LIMBS_MAX)) + BigUint::from(1u32);
        assert!(Montgomery::new(&too_wide).is_none());
    }
}
