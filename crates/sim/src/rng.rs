//! Seeded randomness.
//!
//! A scenario has one root seed. Every component that makes random choices (a poll-interval
//! timer, an id generator, an error-rate fault) asks the [`SeedTree`] for a stream by name; the
//! stream's seed is SHA-256 of the root seed and the name, so streams are independent and adding a
//! component, or drawing more from one stream, never shifts another's choices. That is what keeps
//! the event log byte-identical across runs while the scenario library grows.
//!
//! [`RandomSource`] is what services are handed: a seeded stream in simulation, or the operating
//! system's generator for key material in live mode.

use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The root of a scenario's randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedTree {
    root_seed: u64,
}

impl SeedTree {
    /// A tree rooted at `root_seed` (the scenario's `--seed`).
    pub fn new(root_seed: u64) -> SeedTree {
        SeedTree { root_seed }
    }

    /// The root seed.
    pub fn root_seed(&self) -> u64 {
        self.root_seed
    }

    /// The 32-byte seed of the stream called `name`.
    pub fn stream_seed(&self, name: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"cmksim/seed-tree/v1\0");
        ctx.update(&self.root_seed.to_le_bytes());
        ctx.update(name.as_bytes());
        let digest = ctx.finish();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(digest.as_ref());
        seed
    }

    /// An independent deterministic stream for the component called `name`
    /// (by convention `service/instance/purpose`, e.g. `storage/c1/poll-interval`).
    pub fn stream(&self, name: &str) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.stream_seed(name))
    }

    /// A [`RandomSource`] over the stream called `name`.
    pub fn source(&self, name: &str) -> RandomSource {
        RandomSource::Seeded(Box::new(self.stream(name)))
    }
}

/// A cryptographically strong generator handed to a service: seeded in simulation, the
/// operating system's in live mode.
#[derive(Debug)]
pub enum RandomSource {
    /// A deterministic ChaCha20 stream from a [`SeedTree`].
    Seeded(Box<ChaCha20Rng>),
    /// The operating system's generator (getrandom).
    Os,
}

impl RandomSource {
    /// A deterministic source from a raw 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> RandomSource {
        RandomSource::Seeded(Box::new(ChaCha20Rng::from_seed(seed)))
    }

    /// True when the stream is deterministic.
    pub fn is_seeded(&self) -> bool {
        matches!(self, RandomSource::Seeded(_))
    }
}

impl RngCore for RandomSource {
    fn next_u32(&mut self) -> u32 {
        match self {
            RandomSource::Seeded(rng) => rng.next_u32(),
            RandomSource::Os => rand_core::OsRng.next_u32(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        match self {
            RandomSource::Seeded(rng) => rng.next_u64(),
            RandomSource::Os => rand_core::OsRng.next_u64(),
        }
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self {
            RandomSource::Seeded(rng) => rng.fill_bytes(dest),
            RandomSource::Os => rand_core::OsRng.fill_bytes(dest),
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        match self {
            RandomSource::Seeded(rng) => rng.try_fill_bytes(dest),
            RandomSource::Os => rand_core::OsRng.try_fill_bytes(dest),
        }
    }
}

impl CryptoRng for RandomSource {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_seed_same_stream() {
        let a: [u64; 4] = SeedTree::new(7).stream("storage/c1/poll").gen();
        let b: [u64; 4] = SeedTree::new(7).stream("storage/c1/poll").gen();
        assert_eq!(a, b);
    }

    #[test]
    fn streams_are_independent_by_name_and_seed() {
        let tree = SeedTree::new(7);
        let a: u64 = tree.stream("a").gen();
        let b: u64 = tree.stream("b").gen();
        let a_other_seed: u64 = SeedTree::new(8).stream("a").gen();
        assert_ne!(a, b);
        assert_ne!(a, a_other_seed);
    }

    #[test]
    fn drawing_from_one_stream_does_not_shift_another() {
        let tree = SeedTree::new(42);
        let first_b: u64 = tree.stream("b").gen();
        let mut a = tree.stream("a");
        for _ in 0..100 {
            let _: u64 = a.gen();
        }
        let second_b: u64 = tree.stream("b").gen();
        assert_eq!(first_b, second_b);
    }

    #[test]
    fn os_source_fills() {
        let mut os = RandomSource::Os;
        let mut buf = [0u8; 32];
        os.fill_bytes(&mut buf);
        assert_ne!(buf, [0u8; 32]);
        assert!(!os.is_seeded());
    }
}
