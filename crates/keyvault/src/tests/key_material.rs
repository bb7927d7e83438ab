//! Key material's root seed (`KeyVaultConfig::key_material_seed`): runs with different seeds
//! share the scenario's keys when it is given, and follow their own seed when it is not.

use cmksim_sim::{Clock, EventLog, SeedTree, SimTime};

use crate::server::{KeyVaultConfig, KeyVaultServer};

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
