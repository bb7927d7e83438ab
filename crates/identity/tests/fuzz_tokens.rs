//! Seeded fuzzing of the access-token parser and verifier (`TokenVerifier::verify`).
//!
//! Feeds: mutations of a real token issued by an `Authority` (bit flips within ASCII, byte
//! deletions, insertions of `.`, `=`, `-`, `_` and base64url characters, duplicated or swapped
//! parts, truncations), tokens re-assembled from real and random parts (a real header with random
//! claims, a random signature, ...), and random strings. Asserts: no panic; a mutated token is
//! never accepted (a mutation that leaves the token byte-identical is skipped); a refusal is a
//! `VerifyError` whose message is not empty. The unmutated token verifies, so the refusals are
//! the mutations' doing.
//!
//! The seed is fixed, so a failure reproduces. The default iteration count keeps the test at
//! about two seconds in the debug profile; a long run:
//! `CMKSIM_FUZZ_ITERATIONS=200000 cargo test -p cmksim-identity --test fuzz_tokens`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, and this project builds and tests on stable
//! only. This is the stable substitute: deterministic, bounded, and part of `cargo test`.

use cmksim_identity::{audience, Authority, Directory, PrincipalKind, TokenVerifier};
use cmksim_sim::{SeedTree, SimTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The fixed seed of every run.
const SEED: u64 = 0x70CE_4E55;
/// Inputs per run unless `CMKSIM_FUZZ_ITERATIONS` says otherwise.
const ITERATIONS_DEFAULT: u64 = 30_000;
const NOW: SimTime = SimTime::DEFAULT_EPOCH;
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const SIGNIFICANT: &[u8] = b".=-_+/ ";

fn iterations() -> u64 {
    std::env::var("CMKSIM_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS_DEFAULT)
}

fn random_base64(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| BASE64URL[rng.gen_range(0..BASE64URL.len())] as char)
        .collect()
}

fn mutate(rng: &mut ChaCha8Rng, token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for _ in 0..rng.gen_range(1..=3) {
        let at = rng.gen_range(0..=bytes.len());
        match rng.gen_range(0..7) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..7),
            1 if at < bytes.len() => {
                let to = (at + rng.gen_range(1..8)).min(bytes.len());
                bytes.drain(at..to);
            }
            2 => bytes.insert(at, SIGNIFICANT[rng.gen_range(0..SIGNIFICANT.len())]),
            3 => bytes.insert(at, BASE64URL[rng.gen_range(0..BASE64URL.len())]),
            4 => bytes.truncate(at),
            5 => {
                let parts: Vec<&str> = token.split('.').collect();
                let (i, j) = (rng.gen_range(0..3), rng.gen_range(0..3));
                let mut swapped = parts.clone();
                swapped.swap(i, j);
                if rng.gen() {
                    swapped.push(parts[i]);
                }
                bytes = swapped.join(".").into_bytes();
            }
            _ => {
                let parts: Vec<&str> = token.split('.').collect();
                let mut replaced: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                let i = rng.gen_range(0..3);
                let len = rng.gen_range(0..=parts[i].len() + 8);
                replaced[i] = random_base64(rng, len);
                bytes = replaced.join(".").into_bytes();
            }
        }
    }
    // Bit flips stay below 0x80, insertions are ASCII: the bytes are still UTF-8.
    String::from_utf8(bytes).expect("ASCII mutations of an ASCII token")
}

#[test]
fn mutated_and_random_tokens_never_panic_and_are_never_accepted() {
    let tree = SeedTree::new(SEED);
    let mut ids = tree.source("identity");
    let mut directory = Directory::default();
    let tenant = directory
        .create_tenant("t", "", &mut ids)
        .expect("a tenant")
        .tenant_id;
    let (principal, _) = directory
        .create_principal(&tenant, "app", PrincipalKind::ServicePrincipal, &mut ids)
        .expect("a principal");
    let authority = Authority::generate(&mut tree.source("identity/signing-key"));
    let (token, _) = authority.issue(&principal, audience::VAULT, NOW, 0);
    let local = authority.verifier();
    let remote = TokenVerifier::from_jwks(&[authority.jwk()]).expect("the authority's JWK");
    for verifier in [&local, &remote] {
        verifier
            .verify(&token, audience::VAULT, Some(&tenant), NOW)
            .expect("the unmutated token verifies");
    }

    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    for i in 0..iterations() {
        let candidate = if rng.gen_ratio(1, 10) {
            let len = rng.gen_range(0..400);
            let mut s = random_base64(&mut rng, len);
            for _ in 0..rng.gen_range(0..4) {
                let at = rng.gen_range(0..=s.len());
                s.insert(at, '.');
            }
            s
        } else {
            mutate(&mut rng, &token)
        };
        if candidate == token {
            continue;
        }
        let verifier = if i % 2 == 0 { &local } else { &remote };
        match verifier.verify(&candidate, audience::VAULT, Some(&tenant), NOW) {
            Ok(v) => panic!("a mutated token was accepted: {candidate:?} ({v:?})"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
