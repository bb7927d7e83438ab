//! A seeded identity authority draws new ids and secrets after a restart. Before, every open of
//! the same seed restarted the same stream: the third principal made after a restart took the
//! object id, application id and secret of the first one made before it, and replaced it in the
//! directory (a simulated Key Vault restarted mid-run does exactly that). Same seed and same
//! restarts still give the same values (the simulation's determinism).

use std::collections::BTreeSet;

use cmksim_identity::{audience, IdentityAuthority, PrincipalKind};
use cmksim_sim::{SeedTree, SimTime};

const PER_OPEN: usize = 6;
const OPENS: usize = 4;

/// Opens the store in `dir` `OPENS` times with the same seed and makes `PER_OPEN` principals each
/// time; returns (object id, app id, secret) of each, in order.
fn run(dir: &std::path::Path) -> (String, Vec<(String, String, String)>) {
    let mut made = Vec::new();
    let mut tenant = String::new();
    for open in 0..OPENS {
        let mut a = IdentityAuthority::open(dir, SeedTree::new(7).source("identity")).unwrap();
        if open == 0 {
            tenant = a.create_tenant("contoso", "").unwrap().tenant_id;
        }
        for i in 0..PER_OPEN {
            let (p, secret) = a
                .create_principal(
                    &tenant,
                    &format!("open{open}-app{i}"),
                    PrincipalKind::ServicePrincipal,
                )
                .unwrap();
            made.push((p.object_id, p.app_id, secret));
        }
    }
    (tenant, made)
}

#[test]
fn principals_made_after_a_restart_are_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_, made) = run(dir.path());
    let mut seen = BTreeSet::new();
    for (oid, app, secret) in &made {
        for value in [oid, app, secret] {
            assert!(seen.insert(value.clone()), "{value} was drawn twice");
        }
    }
    // Every principal is still there, under its own name, and its secret still gets a token.
    let a = IdentityAuthority::open(dir.path(), SeedTree::new(7).source("identity")).unwrap();
    assert_eq!(
        a.directory()
            .principals
            .values()
            .filter(|p| p.display_name.starts_with("open"))
            .count(),
        OPENS * PER_OPEN
    );
    for (i, (oid, _, secret)) in made.iter().enumerate() {
        let principal = &a.directory().principals[oid];
        assert_eq!(
            principal.display_name,
            format!("open{}-app{}", i / PER_OPEN, i % PER_OPEN)
        );
        a.issue_token(
            oid,
            secret,
            audience::MANAGEMENT,
            0,
            SimTime(1_700_000_000_000),
        )
        .unwrap();
    }

    // Deterministic: another directory, the same seed and the same restarts, the same values.
    let again = tempfile::tempdir().unwrap();
    let (_, made_again) = run(again.path());
    let ids = |m: &[(String, String, String)]| -> Vec<String> {
        m.iter().map(|(oid, _, _)| oid.clone()).collect()
    };
    assert_eq!(ids(&made), ids(&made_again));
}
