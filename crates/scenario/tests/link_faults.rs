//! Link quality as a timeline fault (`fault = { link = [a, b], latency, jitter, loss }`) and as
//! chaos kinds (`link-latency-storage-vault`, `link-loss-storage-vault`): what a valid step
//! reads into, each mistake reported at FILE:LINE:COLUMN, the chaos steps a schedule makes and
//! the regression file they are written back as (which validates again).

mod common;

use std::path::Path;
use std::time::Duration;

use cmksim_scenario::chaos::{self, ChaosFault, ChaosKind, FaultSpace, CHAOS_KINDS};
use cmksim_scenario::model::{Fault, Host, StepKind};
use cmksim_scenario::{validate_str, Scenario};
use cmksim_sim::net::LinkQuality;
use common::diagnostics::{assert_one, at, errors};

const HEAD: &str = r#"[scenario]
name = "t"
title = "T"
seed = 3
duration = "4h"

[[vaults]]
name = "link-kv"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "link-kv"
name = "cmk"
kty = "RSA"

[[access_policies]]
vault = "link-kv"
principal = "cluster:cluster1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "cluster1"
location = "westeurope"
key = { vault = "link-kv", name = "cmk", version = "latest" }
"#;

fn step(fault: &str, extra: &str) -> String {
    format!("{HEAD}\n[[timeline]]\nid = \"slow\"\nat = \"1h\"\nfault = {fault}\n{extra}")
}

/// The fault steps of a scenario's timeline, in order: (fault, duration).
fn fault_steps(scenario: &Scenario) -> Vec<(Fault, Option<Duration>)> {
    scenario
        .timeline
        .iter()
        .filter_map(|s| match &s.what {
            StepKind::Fault { fault, duration } => Some((*fault, *duration)),
            _ => None,
        })
        .collect()
}

fn only_fault(text: &str) -> (Fault, Option<Duration>) {
    let scenario = validate_str(Path::new("t.toml"), text)
        .unwrap_or_else(|d| panic!("{:?}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>()));
    let faults = fault_steps(&scenario);
    assert_eq!(faults.len(), 1, "{faults:?}");
    faults[0]
}

#[test]
fn a_link_step_reads_into_its_quality_and_is_undone_by_a_perfect_link() {
    let text = step(
        r#"{ link = ["storage", "keyvault"], latency = "300ms", jitter = "100ms", loss = 0.05 }"#,
        "duration = \"10m\"\n",
    );
    let quality = LinkQuality {
        latency: Duration::from_millis(300),
        jitter: Duration::from_millis(100),
        loss: 0.05,
    };
    let (fault, duration) = only_fault(&text);
    assert_eq!(fault, Fault::Link(Host::Storage, Host::Keyvault, quality));
    assert_eq!(duration, Some(Duration::from_secs(600)));
    assert_eq!(
        fault.restoring(),
        Some(Fault::Link(
            Host::Storage,
            Host::Keyvault,
            LinkQuality::default()
        ))
    );
    assert_eq!(
        fault.describe(),
        "link storage keyvault latency 300ms jitter 100ms loss 0.05"
    );
    assert!(fault.impairs_vault(), "a bad link to Key Vault impairs it");
    let ingest = Fault::Link(Host::Ingest, Host::Storage, quality);
    assert!(
        !ingest.impairs_vault(),
        "a link that does not reach Key Vault"
    );

    // Only latency: the rest stays perfect.
    let (fault, _) = only_fault(&step(
        r#"{ link = ["ingest", "storage"], latency = "45s" }"#,
        "",
    ));
    assert_eq!(
        fault,
        Fault::Link(
            Host::Ingest,
            Host::Storage,
            LinkQuality {
                latency: Duration::from_secs(45),
                ..LinkQuality::default()
            }
        )
    );

    // None of the three: a perfect link, itself a restoration (it takes no duration).
    let (fault, _) = only_fault(&step(r#"{ link = ["storage", "keyvault"] }"#, ""));
    assert_eq!(
        fault,
        Fault::Link(Host::Storage, Host::Keyvault, LinkQuality::default())
    );
    assert_eq!(fault.restoring(), None);
    assert!(!fault.impairs_vault());
    assert_eq!(fault.describe(), "link storage keyvault perfect");
}

#[test]
fn link_mistakes_are_reported_where_they_are() {
    let text = step(r#"{ link = ["storage", "keyvault"], loss = 1.5 }"#, "");
    assert_one(
        &text,
        &at(&text, "1.5", 0),
        "a link's loss must be between 0 and 1, not 1.5",
    );
    let text = step(r#"{ link = ["storage", "keyvault"], loss = -0.1 }"#, "");
    assert_one(
        &text,
        &at(&text, "-0.1", 0),
        "a link's loss must be between 0 and 1, not -0.1",
    );
    let text = step(r#"{ link = ["storage", "storage"], latency = "1s" }"#, "");
    assert_one(
        &text,
        &at(&text, "[\"storage\", \"storage\"]", 0),
        "link takes two different hosts",
    );
    let text = step(r#"{ link = ["storage", "keyvault"], jitter = "soon" }"#, "");
    assert_one(&text, &at(&text, "\"soon\"", 1), "jitter: invalid duration");
    let text = step(
        r#"{ partition = ["storage", "keyvault"], jitter = "1s" }"#,
        "",
    );
    assert_one(
        &text,
        &at(&text, "\"1s\"", 0),
        "`jitter` goes with link = [...]",
    );
    let text = step(r#"{ keyvault = "down", loss = 0.5 }"#, "");
    assert_one(&text, &at(&text, "0.5", 0), "`loss` goes with link = [...]");
    let text = step(
        r#"{ link = ["storage", "keyvault"], partition = ["storage", "keyvault"] }"#,
        "",
    );
    assert_one(
        &text,
        &at(&text, "[\"storage\", \"keyvault\"], partition", 0),
        "a fault names one target; `link` is a second one",
    );
    let text = step(
        r#"{ link = ["storage", "keyvault"] }"#,
        "duration = \"5m\"\n",
    );
    assert_one(
        &text,
        &at(&text, "\"5m\"", 0),
        "`link storage keyvault perfect` cannot be undone automatically, so it takes no duration",
    );
    // The identity authority shares the Key Vault host: no fault reaches it alone.
    for fault in [
        r#"{ partition = ["storage", "identity"] }"#,
        r#"{ link = ["identity", "storage"] }"#,
        r#"{ crash = "identity" }"#,
    ] {
        let text = step(fault, "");
        assert_one(
            &text,
            &at(&text, "\"identity\"", 0),
            "identity has no host of its own: the identity authority runs in the Key Vault host",
        );
    }
    let text = step(r#"{ link = ["storage", "nowhere"] }"#, "");
    assert!(
        errors(&text)
            .iter()
            .any(|e| e.contains("unknown variant `nowhere`")),
        "{:?}",
        errors(&text)
    );
}

fn with_chaos(table: &str) -> String {
    format!(
        "{HEAD}\n[[workspaces]]\nname = \"ws-01\"\nlocation = \"westeurope\"\nlink = \"cluster1\"\n\n[chaos]\n{table}"
    )
}

#[test]
fn the_chaos_space_draws_link_kinds_only_when_named() {
    assert!(
        !CHAOS_KINDS.contains(&ChaosKind::LinkLatencyStorageVault)
            && !CHAOS_KINDS.contains(&ChaosKind::LinkLossStorageVault),
        "the default space keeps its draws"
    );
    let text = with_chaos(
        "faults = [\"link-latency-storage-vault\", \"link-loss-storage-vault\"]\n\
         link_latency = \"45s\"\nlink_jitter = \"0s\"\nlink_loss = 0.25\n",
    );
    let scenario = validate_str(Path::new("t.toml"), &text).expect("valid");
    let space: FaultSpace = scenario.chaos.clone().expect("a [chaos] table");
    assert_eq!(
        space.kinds,
        [
            ChaosKind::LinkLatencyStorageVault,
            ChaosKind::LinkLossStorageVault
        ]
    );
    assert_eq!(space.link_latency, Duration::from_secs(45));
    assert_eq!(space.link_jitter, Duration::ZERO);
    assert_eq!(space.link_loss, 0.25);

    let faults = [
        ChaosFault {
            kind: ChaosKind::LinkLatencyStorageVault,
            start: Duration::from_secs(900),
            duration: Duration::from_secs(120),
        },
        ChaosFault {
            kind: ChaosKind::LinkLossStorageVault,
            start: Duration::from_secs(1800),
            duration: Duration::from_secs(60),
        },
    ];
    let applied = chaos::apply(&scenario, &space, &faults, 9).unwrap();
    let steps = fault_steps(&applied);
    let slow = LinkQuality {
        latency: Duration::from_secs(45),
        ..LinkQuality::default()
    };
    let lossy = LinkQuality {
        loss: 0.25,
        ..LinkQuality::default()
    };
    assert_eq!(
        steps,
        [
            (
                Fault::Link(Host::Storage, Host::Keyvault, slow),
                Some(Duration::from_secs(120))
            ),
            (
                Fault::Link(Host::Storage, Host::Keyvault, lossy),
                Some(Duration::from_secs(60))
            ),
        ]
    );

    // Written back as a person would write it, and read back into the same steps.
    let file = chaos::regression_file(&text, &scenario, &space, &faults, 9, &[]).unwrap();
    assert!(
        file.contains(r#"fault = { link = ["storage", "keyvault"], latency = "45s" }"#),
        "{file}"
    );
    assert!(
        file.contains(r#"fault = { link = ["storage", "keyvault"], loss = 0.25 }"#),
        "{file}"
    );
    let again = validate_str(Path::new("regression.toml"), &file)
        .unwrap_or_else(|d| panic!("{d:?}\n{file}"));
    assert_eq!(fault_steps(&again), steps);
}

#[test]
fn a_bad_chaos_link_value_is_reported_where_it_is() {
    let text = with_chaos("link_loss = 1.5\n");
    assert_one(
        &text,
        &at(&text, "1.5", 0),
        "chaos link_loss: a link's loss must be between 0 and 1, not 1.5",
    );
    let text = with_chaos("link_latency = \"fast\"\n");
    assert_one(
        &text,
        &at(&text, "\"fast\"", 1),
        "chaos link_latency: invalid duration",
    );
}
