//! Every scenario of the library, run in simulated time against the real services, must end with
//! every expectation and every invariant held; and the same scenario and seed must give the same
//! event log, byte for byte.

mod common;

use std::path::PathBuf;

use cmksim_scenario::{oracle, Scenario};
use cmksim_sim::{Event, EventLog};
use cmksim_world::{run_simulated, RunOptions};

fn run(name: &str) -> (Scenario, Vec<Event>) {
    let scenario = common::load(name);
    let events = EventLog::default();
    // The scenarios that fit fixed ticks run on turmoil (the engine of `--engine turmoil` and
    // the dashboard; `tests/engine.rs` runs every one on the event-driven engine, `run`'s
    // default); a month of 100 ms ticks would be 26 million steps, so the longer ones run on
    // the event-driven engine here too.
    let options = match cmksim_scenario::work::fits_fixed_ticks(&scenario) {
        true => RunOptions::default(),
        false => RunOptions {
            engine: cmksim_world::Engine::Events,
            ..RunOptions::default()
        },
    };
    run_simulated(&scenario, &options, &events).unwrap_or_else(|e| panic!("{name}: {e}"));
    (scenario, events.snapshot())
}

fn assert_passes(name: &str) {
    let (scenario, events) = run(name);
    common::assert_all_held(name, &scenario, &events);
}

macro_rules! library {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                assert_passes($file);
            }
        )*

        #[test]
        fn the_tests_cover_the_whole_library() {
            let mut covered = vec![$($file),*];
            covered.sort();
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                .filter(|n| n != "README")
                .collect();
            files.sort();
            assert_eq!(files, covered, "every scenario of the library has a test here");
        }
    };
}

library! {
    revocation => "revocation",
    restart_while_revoked => "restart-while-revoked",
    revocation_access_policy => "revocation-access-policy",
    key_soft_delete_recover => "key-soft-delete-recover",
    rotation_pinned => "rotation-pinned",
    rotation_old_version_disabled => "rotation-old-version-disabled",
    rotation_versionless => "rotation-versionless",
    vault_blip_5m => "vault-blip-5m",
    outage_45m_buffering => "outage-45m-buffering",
    outage_longer_than_buffer => "outage-longer-than-buffer",
    partition_storage_vault => "partition-storage-vault",
    link_latency_storage_vault => "link-latency-storage-vault",
    hsm_tamper => "hsm-tamper",
    cluster_delete_recover => "cluster-delete-recover",
    unlink_query_both_sides => "unlink-query-both-sides",
    third_link_refused => "third-link-refused",
    link_before_provisioning => "link-before-provisioning",
    kql_dashboard => "kql-dashboard",
    sentinel_onboarding => "sentinel-onboarding",
    sentinel_revocation_both => "sentinel-revocation-both",
    sentinel_rotation_too_early => "sentinel-rotation-too-early",
    sentinel_unsupported_unlink => "sentinel-unsupported-unlink",
    lockbox_approved_then_expired => "lockbox-approved-then-expired",
    bill_month_both_types => "bill-month-both-types",
    retention_while_revoked => "retention-while-revoked",
    purge_blocked_by_lock => "purge-blocked-by-lock",
    dcr_custom_table => "dcr-custom-table",
    byos_saved_searches_lost_with_key => "byos-saved-searches-lost-with-key",
}

#[test]
fn same_scenario_and_seed_give_a_byte_identical_event_log() {
    let (_, first) = run("vault-blip-5m");
    let (_, second) = run("vault-blip-5m");
    let jsonl = cmksim_scenario::narrate::render_jsonl;
    assert!(
        first.len() > 100,
        "a real run records many events ({})",
        first.len()
    );
    assert_eq!(jsonl(&first), jsonl(&second));
    let verdict = oracle::deterministic(&first, &second);
    assert!(verdict.held(), "{}", verdict.detail);
}
