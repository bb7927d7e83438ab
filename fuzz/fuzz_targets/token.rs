//! libFuzzer target: the access-token parser and verifier (`TokenVerifier::verify`), with a
//! verifier made from the authority itself and one made from its published JWK (as Key Vault
//! and the other services build it).
//!
//! The input is the token text. Checked, as in `crates/identity/tests/fuzz_tokens.rs`: no
//! panic; nothing but the authority's own token is ever accepted; a refusal has a message.

#![no_main]

use std::sync::OnceLock;

use cmksim_identity::{audience, Authority, Directory, PrincipalKind, TokenVerifier};
use cmksim_sim::{SeedTree, SimTime};
use libfuzzer_sys::fuzz_target;

const NOW: SimTime = SimTime::DEFAULT_EPOCH;
/// The seed of the authority and directory (the seeded test's).
const SEED: u64 = 0x70CE_4E55;

struct Setup {
    token: String,
    tenant: String,
    verifiers: [TokenVerifier; 2],
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
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
        let remote = TokenVerifier::from_jwks(&[authority.jwk()]).expect("the authority's JWK");
        Setup {
            token,
            tenant,
            verifiers: [authority.verifier(), remote],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let Ok(candidate) = std::str::from_utf8(data) else {
        return;
    };
    for verifier in &setup.verifiers {
        match verifier.verify(candidate, audience::VAULT, Some(&setup.tenant), NOW) {
            Ok(v) => assert!(
                candidate == setup.token,
                "a token the authority never issued was accepted: {candidate:?} ({v:?})"
            ),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
