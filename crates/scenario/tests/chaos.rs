//! `[chaos]`: validation with positioned errors, the seeded draw, the scenario a schedule makes,
//! shrinking, and the regression file (which must validate again).

mod common;

use std::path::Path;
use std::time::Duration;

use cmksim_scenario::chaos::{
    self, ChaosFault, ChaosKind, FaultSpace, CHAOS_KINDS, SHRINK_ATTEMPTS_MAX,
};
use cmksim_scenario::model::{Action, Fault, Host, StepKind, VaultFault};
use cmksim_scenario::validate_str;
use common::diagnostics::{assert_one, at};

const BASE: &str = r#"
[scenario]
name = "chaos-base"
title = "Chaos base"
seed = 3
duration = "4h"

[[vaults]]
name = "chaos-kv"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "chaos-kv"
name = "cmk"
kty = "RSA"

[[access_policies]]
vault = "chaos-kv"
principal = "cluster:cluster1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "cluster1"
location = "westeurope"
key = { vault = "chaos-kv", name = "cmk", version = "latest" }

[[workspaces]]
name = "ws-01"
location = "westeurope"
link = "cluster1"

[[agents]]
name = "a1"
workspace = "ws-01"
tables = [{ table = "Heartbeat", every = "1m" }]

[[timeline]]
id = "look"
at = "3h"
action = "query"
workspace = "ws-01"
"#;

fn with_chaos(table: &str) -> String {
    format!("{BASE}\n[chaos]\n{table}")
}

fn space_of(text: &str) -> FaultSpace {
    let scenario = validate_str(Path::new("t.toml"), text).expect("valid");
    scenario.chaos.expect("a [chaos] table")
}

#[test]
fn defaults_fill_every_missing_key() {
    let space = space_of(&with_chaos(""));
    let defaults = FaultSpace::defaults(Duration::from_secs(4 * 3600));
    assert_eq!(space, defaults);
    assert_eq!(space.kinds, CHAOS_KINDS.to_vec());
    // 4h - 45m - 1h.
    assert_eq!(space.window_until, Duration::from_secs(2 * 3600 + 15 * 60));
    let plain = validate_str(Path::new("t.toml"), BASE).unwrap();
    assert!(plain.chaos.is_none());
}

#[test]
fn a_world_without_a_key_drops_the_key_faults_by_default_and_refuses_them_by_name() {
    let no_key = BASE.replace(
        "key = { vault = \"chaos-kv\", name = \"cmk\", version = \"latest\" }\n",
        "",
    );
    let text = format!("{no_key}\n[chaos]\n");
    let space = space_of(&text);
    assert!(!space.kinds.iter().any(|k| k.needs_key()));
    assert_eq!(space.kinds.len(), CHAOS_KINDS.len() - 2);
    let text = format!("{no_key}\n[chaos]\nfaults = [\"vault-down\", \"key-disable\"]\n");
    assert_one(
        &text,
        &at(&text, "\"key-disable\"", 0),
        "chaos fault `key-disable` needs a world cluster with a customer-managed key",
    );
}

#[test]
fn bad_values_are_reported_at_their_place() {
    let text = with_chaos("faults = [\"vault-down\", \"vault-down\"]\n");
    assert_one(
        &text,
        &at(&text, "\"vault-down\"]", 0),
        "duplicate chaos fault `vault-down`",
    );
    let text = with_chaos("faults = [\"vault-melts\"]\n");
    assert_one(&text, &at(&text, "\"vault-melts\"", 0), "unknown variant");
    let text = with_chaos("faults_min = 3\nfaults_max = 2\n");
    assert_one(
        &text,
        &at(&text, "2\n", 0),
        "chaos faults_min (3) must not exceed faults_max (2)",
    );
    let text = with_chaos("faults_max = 99\n");
    assert_one(
        &text,
        &at(&text, "99", 0),
        "chaos faults_max must be between 0 and 32, got 99",
    );
    let text = with_chaos("duration_min = \"10x\"\n");
    assert_one(
        &text,
        &at(&text, "10x", 2),
        "chaos duration_min: invalid duration",
    );
    let text = with_chaos("duration_min = \"2h\"\nduration_max = \"1h\"\n");
    assert_one(
        &text,
        &at(&text, "\"1h\"", 0),
        "chaos duration_min (2h) must not exceed duration_max (1h)",
    );
    let text = with_chaos("until = \"5h\"\n");
    assert_one(
        &text,
        &at(&text, "\"5h\"", 0),
        "chaos until at T+05:00:00 is after the end of the scenario",
    );
    let text = with_chaos("from = \"2h\"\nuntil = \"1h\"\n");
    assert_one(
        &text,
        &at(&text, "\"1h\"", 0),
        "chaos from (T+02:00:00) must not be after until (T+01:00:00)",
    );
    let text = with_chaos("error_rate = 1.5\n");
    assert_one(
        &text,
        &at(&text, "1.5", 0),
        "chaos error_rate must be more than 0 and at most 1, got 1.5",
    );
    let text = with_chaos("colour = \"red\"\n");
    assert_one(&text, &at(&text, "colour", 0), "unknown field `colour`");
    let text = with_chaos("").replace("id = \"look\"", "id = \"chaos-1\"");
    assert_one(
        &text,
        &at(&text, "\"chaos-1\"", 0),
        "ids starting with `chaos-` are the sweep's own steps",
    );
}

#[test]
fn the_draw_is_a_function_of_the_seed_and_stays_inside_the_space() {
    let space = space_of(&with_chaos(
        "faults_min = 2\nfaults_max = 5\nduration_min = \"2m\"\nduration_max = \"20m\"\nfrom = \"30m\"\nuntil = \"2h\"\n",
    ));
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..200 {
        let faults = chaos::draw(&space, seed);
        assert_eq!(faults, chaos::draw(&space, seed), "seed {seed}");
        assert!((2..=5).contains(&faults.len()), "seed {seed}: {faults:?}");
        assert!(
            faults.windows(2).all(|w| w[0].start <= w[1].start),
            "sorted by start: {faults:?}"
        );
        for f in &faults {
            assert!(space.kinds.contains(&f.kind));
            assert!(f.start >= Duration::from_secs(1800) && f.start <= Duration::from_secs(7200));
            assert!(
                f.duration >= Duration::from_secs(120) && f.duration <= Duration::from_secs(1200)
            );
        }
        distinct.insert(format!("{faults:?}"));
    }
    // Not a constant: 200 seeds give (nearly) 200 schedules.
    assert!(distinct.len() > 190, "{}", distinct.len());
}

#[test]
fn a_schedule_becomes_ordinary_steps_merged_into_the_timeline() {
    let text = with_chaos("");
    let scenario = validate_str(Path::new("t.toml"), &text).unwrap();
    let space = scenario.chaos.clone().unwrap();
    let faults = vec![
        ChaosFault {
            kind: ChaosKind::KeyDisable,
            start: Duration::from_secs(3600),
            duration: Duration::from_secs(600),
        },
        ChaosFault {
            kind: ChaosKind::VaultDown,
            start: Duration::from_secs(3 * 3600),
            duration: Duration::from_secs(300),
        },
    ];
    let applied = chaos::apply(&scenario, &space, &faults, 42).unwrap();
    assert_eq!(applied.meta.seed, 42);
    let ids: Vec<String> = applied.timeline.iter().map(|s| s.label()).collect();
    // The file's step at 3h precedes the chaos step at the same offset.
    assert_eq!(ids, ["chaos-1", "chaos-1-end", "look", "chaos-2"]);
    assert!(matches!(
        applied.timeline[0].what,
        StepKind::Action(Action::UpdateKey {
            enabled: Some(false),
            ..
        })
    ));
    assert_eq!(applied.timeline[1].offset, Duration::from_secs(4200));
    assert_eq!(
        applied.timeline[3].what,
        StepKind::Fault {
            fault: Fault::Keyvault(VaultFault::Down),
            duration: Some(Duration::from_secs(300)),
        }
    );
    let partition = chaos::apply(
        &scenario,
        &space,
        &[ChaosFault {
            kind: ChaosKind::PartitionStorageVault,
            start: Duration::from_secs(60),
            duration: Duration::from_secs(60),
        }],
        1,
    )
    .unwrap();
    assert!(partition.timeline.iter().any(|s| matches!(
        s.what,
        StepKind::Fault {
            fault: Fault::Partition(Host::Storage, Host::Keyvault),
            ..
        }
    )));
}

fn fault(kind: ChaosKind, start_min: u64, duration_min: u64) -> ChaosFault {
    ChaosFault {
        kind,
        start: Duration::from_secs(start_min * 60),
        duration: Duration::from_secs(duration_min * 60),
    }
}

#[test]
fn shrinking_keeps_only_what_still_fails_within_its_bound() {
    let space = space_of(&with_chaos("duration_min = \"1m\""));
    let faults = vec![
        fault(ChaosKind::VaultDown, 20, 30),
        fault(ChaosKind::KeyDisable, 40, 40),
        fault(ChaosKind::StorageCrash, 60, 10),
    ];
    // The "bug": any key-disable of at least 5 minutes fails.
    let fails = |s: &[ChaosFault]| {
        s.iter()
            .any(|f| f.kind == ChaosKind::KeyDisable && f.duration >= Duration::from_secs(300))
    };
    let mut runs = 0;
    let shrunk = chaos::shrink(&faults, &space, SHRINK_ATTEMPTS_MAX, |s| {
        runs += 1;
        fails(s)
    });
    assert_eq!(shrunk.faults.len(), 1);
    assert_eq!(shrunk.faults[0].kind, ChaosKind::KeyDisable);
    // Halved 40 → 20 → 10 → 5 minutes; 2m30s no longer fails.
    assert_eq!(shrunk.faults[0].duration, Duration::from_secs(300));
    assert!(fails(&shrunk.faults));
    assert_eq!(shrunk.attempts, runs);
    assert!(!shrunk.exhausted);
    // The bound holds.
    let bounded = chaos::shrink(&faults, &space, 2, fails);
    assert_eq!(bounded.attempts, 2);
    assert!(bounded.exhausted);
}

#[test]
fn the_regression_file_validates_and_carries_the_schedule() {
    let text = with_chaos("faults_max = 2\n");
    let scenario = validate_str(Path::new("t.toml"), &text).unwrap();
    let space = scenario.chaos.clone().unwrap();
    let faults = vec![
        fault(ChaosKind::AccessPolicyRemove, 30, 20),
        fault(ChaosKind::VaultErrorRate, 90, 5),
        fault(ChaosKind::PartitionIngestStorage, 100, 5),
    ];
    let file = chaos::regression_file(
        &text,
        &scenario,
        &space,
        &faults,
        77,
        &["invariant-3: after access returns, ingest and query resume within 30m".into()],
    )
    .unwrap();
    assert!(!file.contains("[chaos]"), "{file}");
    assert!(file.contains("# Broke invariant-3"), "{file}");
    let again = validate_str(Path::new("regression.toml"), &file)
        .unwrap_or_else(|d| panic!("{d:?}\n{file}"));
    assert_eq!(again.meta.seed, 77);
    assert!(again.chaos.is_none());
    // The written steps are exactly the steps the sweep ran.
    let applied = chaos::apply(&scenario, &space, &faults, 77).unwrap();
    let strip = |s: &cmksim_scenario::model::Step| (s.id.clone(), s.offset, s.what.clone());
    assert_eq!(
        again.timeline.iter().map(strip).collect::<Vec<_>>(),
        applied.timeline.iter().map(strip).collect::<Vec<_>>()
    );
}
