//! The world harness end to end with the Key Vault alone: a scenario is validated, its world
//! built over gRPC on turmoil's simulated network, its timeline played in virtual time, and the
//! same seed gives the same event log byte for byte.

use cmksim_sim::EventLog;
use cmksim_world::{run_simulated, RunOptions};

const SCENARIO: &str = r#"
[scenario]
name = "kv-only"
title = "Key Vault alone"
story = "A key is disabled, a vault outage comes and goes, a deleted key name is reused."
seed = 11
duration = "2h"

[[tenants]]
name = "contoso"

[[principals]]
name = "alice"
tenant = "contoso"

[[vaults]]
name = "contoso-kv"
location = "westeurope"
tenant = "contoso"
sku = "premium"
soft_delete = true
retention_days = 7
purge_protection = true

[[keys]]
vault = "contoso-kv"
name = "logs-cmk"
kty = "RSA-HSM"
size = 2048

[[access_policies]]
vault = "contoso-kv"
principal = "alice"
permissions = ["get", "wrapKey", "unwrapKey"]

[[timeline]]
id = "disable"
at = "10m"
action = "update-key"
vault = "contoso-kv"
key = "logs-cmk"
enabled = false
narrate = "The security team disables the key."

[[timeline]]
at = "20m"
fault = { keyvault = "down" }
duration = "5m"

[[timeline]]
id = "delete"
at = "40m"
action = "delete-key"
vault = "contoso-kv"
key = "logs-cmk"

[[timeline]]
id = "reuse"
at = "50m"
action = "create-key"
vault = "contoso-kv"
key = "logs-cmk"
kty = "RSA"
size = 2048
"#;

fn run_once() -> Vec<cmksim_sim::Event> {
    let scenario = cmksim_scenario::validate_str(std::path::Path::new("kv-only.toml"), SCENARIO)
        .expect("valid scenario");
    let events = EventLog::default();
    run_simulated(&scenario, &RunOptions::default(), &events).expect("the run completes");
    events.snapshot()
}

fn kinds(events: &[cmksim_sim::Event]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn keyvault_world_plays_the_timeline_and_is_deterministic() {
    let first = run_once();
    let kinds = kinds(&first);
    assert!(kinds.contains(&"scenario.started"), "{kinds:?}");
    assert!(kinds.contains(&"keyvault.key.disabled"), "{kinds:?}");
    assert!(kinds.contains(&"scenario.fault.applied"), "{kinds:?}");
    assert!(kinds.contains(&"scenario.fault.restored"), "{kinds:?}");
    assert!(kinds.contains(&"keyvault.key.deleted"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"scenario.finished"));

    // Reusing a soft-deleted key name is refused with Azure's 409.
    let reuse = first
        .iter()
        .find(|e| e.kind == "scenario.step.failed" && e.data["step"] == "reuse")
        .expect("the reuse step fails");
    assert_eq!(reuse.data["status"], 409);
    assert_eq!(reuse.data["error_code"], "Conflict");

    // The disable step happened 10 minutes after T+0, in virtual time.
    let started = first
        .iter()
        .find(|e| e.kind == "scenario.started")
        .unwrap()
        .at_ms;
    let disabled = first
        .iter()
        .find(|e| e.kind == "keyvault.key.disabled")
        .unwrap()
        .at_ms;
    let offset_ms = disabled - started;
    assert!(
        (600_000..610_000).contains(&offset_ms),
        "disabled at +{offset_ms} ms"
    );

    let second = run_once();
    let jsonl = |events: &[cmksim_sim::Event]| cmksim_scenario::narrate::render_jsonl(events);
    assert_eq!(
        jsonl(&first),
        jsonl(&second),
        "same scenario and seed, same event log"
    );
}
