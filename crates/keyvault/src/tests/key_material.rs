//! Key material's root seed (`KeyVaultConfig::key_material_seed`): runs with different seeds
//! share the scenario's keys when it is given, and follow their own seed when it is not.

use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

use super::{create_key, world, Harness};
use crate::server::{first_rsa_key_seed, KeyVaultConfig, KeyVaultServer};
use cmksim_proto::keyvault::v1 as pb;

/// The master key a vault opened with `run_seed` and `key_material_seed` drew (its first draw
/// from the key-material stream, written to `master.key`).
fn master_key(run_seed: u64, key_material_seed: Option<u64>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let config = KeyVaultConfig {
        key_material_seed,
        ..KeyVaultConfig::default()
    };
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let server = KeyVaultServer::open(
        dir.path(),
        clock,
        SeedTree::new(run_seed),
        EventLog::default(),
        config,
    )
    .unwrap();
    drop(server);
    std::fs::read(dir.path().join("master.key")).unwrap()
}

#[tokio::test]
async fn runs_of_one_scenario_share_its_key_material_and_otherwise_follow_their_seed() {
    assert_eq!(master_key(1, Some(42)), master_key(2, Some(42)));
    assert_ne!(master_key(1, Some(42)), master_key(1, Some(43)));
    assert_ne!(master_key(1, None), master_key(2, None));
    assert_eq!(master_key(1, None), master_key(1, None));
}

#[tokio::test]
async fn the_first_rsa_key_a_fresh_vault_makes_is_the_one_prepared_for_it() {
    // The guess `prepare_first_rsa_key` starts a search for must be the key the vault makes:
    // otherwise a simulated world pays for its first key twice (once on the second core).
    let dir = tempfile::tempdir().unwrap();
    let seed = 31;
    let mut h = Harness::start(dir.path(), seed, super::clock()).await;
    let w = world(&mut h, "kvprepared", pb::Sku::Premium, true).await;
    let made = create_key(&mut h, &w, "cmk", "RSA").await;
    let guessed = cmksim_hsm::generate_rsa(2048, &first_rsa_key_seed(seed)).unwrap();
    assert_eq!(made.key.as_ref().unwrap().n, guessed.modulus);
    h.stop().await;
}
