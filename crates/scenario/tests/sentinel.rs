//! Sentinel in scenario files (seed 002): the format reads into the model, mistakes are reported
//! at their `FILE:LINE:COLUMN`, and the new expectations and the oracle's unsupported check both
//! hold and break over hand-built event logs.

use cmksim_scenario::expect::evaluate;
use cmksim_scenario::model::{
    Action, IncidentOutcome, PrincipalRef, SentinelItem, SentinelState, StepKind, Subject, Timing,
};
use cmksim_scenario::oracle::sentinel_unsupported_flagged;
use cmksim_scenario::Outcome;
use cmksim_sim::{Event, EventLog, SimTime};
use serde_json::json;

mod common;
use common::diagnostics::{assert_one, at, valid as scenario};
use common::{m, START};

/// A world with one CMK workspace onboarded at T+0, and every Sentinel construct.
const FILE: &str = r#"[scenario]
name = "t"
title = "T"
duration = "6h"

[[vaults]]
name = "kvsec"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "kvsec"
name = "k"
kty = "RSA"

[[access_policies]]
vault = "kvsec"
principal = "cluster:cluster1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[access_policies]]
vault = "kvsec"
principal = "Azure Cosmos DB"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "cluster1"
location = "westeurope"
key = { vault = "kvsec", name = "k", version = "v1" }

[[workspaces]]
name = "soc-ws"
location = "westeurope"
link = "cluster1"

[[workspaces]]
name = "soc-ws2"
location = "westeurope"
link = "cluster1"

[[sentinel]]
workspace = "soc-ws"
incidents_every = "20m"

[[timeline]]
id = "register"
at = "10m"
action = "register-cosmos-db"

[[timeline]]
id = "onboard2"
at = "20m"
action = "onboard-sentinel"
workspace = "soc-ws2"
customer_managed_key = false
incidents_every = "1h"

[[timeline]]
id = "rule"
at = "30m"
action = "create-analytics-rule"
workspace = "soc-ws"

[[timeline]]
id = "revoke"
at = "1h"
action = "remove-access-policy"
vault = "kvsec"
principal = "Azure Cosmos DB"

[[timeline]]
id = "delete"
at = "3h"
action = "delete-sentinel-workspace"
workspace = "soc-ws"

[[expect]]
id = "revoked"
sentinel = "soc-ws"
sentinel_state = "revoked"
within = "1h"
after_step = "revoke"

[[expect]]
id = "refused"
incident_to = "soc-ws"
outcome = "refused"
by = "2h30m"

[[expect]]
id = "silent"
key_use = "kvsec/k"
version = "v1"
never = true
from = "4h"

[[expect]]
id = "unsupported"
sentinel_unsupported = "soc-ws2"
never = true
"#;

#[test]
fn every_sentinel_construct_reads_into_the_model() {
    let s = scenario(FILE);
    let entry = &s.world.sentinel[0];
    assert_eq!(entry.workspace, "soc-ws");
    assert!(
        entry.customer_managed_key,
        "customer_managed_key defaults to true"
    );
    assert_eq!(
        entry.incidents_every,
        Some(std::time::Duration::from_secs(1200))
    );
    assert!(s
        .world
        .access_policies
        .iter()
        .any(|p| p.principal == PrincipalRef::CosmosDb));
    let actions: Vec<&Action> = s
        .timeline
        .iter()
        .filter_map(|step| match &step.what {
            StepKind::Action(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(actions[0], &Action::RegisterCosmosDb);
    assert_eq!(
        actions[1],
        &Action::OnboardSentinel {
            workspace: "soc-ws2".into(),
            customer_managed_key: false,
            incidents_every: Some(std::time::Duration::from_secs(3600)),
        }
    );
    assert_eq!(
        actions[2],
        &Action::CreateSentinelItem {
            workspace: "soc-ws".into(),
            item: SentinelItem::AnalyticsRule,
        }
    );
    assert_eq!(actions[2].name(), "create-analytics-rule");
    assert_eq!(actions[4].name(), "delete-sentinel-workspace");
    assert_eq!(
        s.expectations[0].subject,
        Subject::Sentinel {
            workspace: "soc-ws".into(),
            state: SentinelState::Revoked,
        }
    );
    assert_eq!(
        s.expectations[1].subject,
        Subject::Incident {
            workspace: "soc-ws".into(),
            outcome: IncidentOutcome::Refused,
        }
    );
    let probes = s.audit_probes();
    assert_eq!(probes.len(), 1);
    assert_eq!((probes[0].version, probes[0].from.as_secs()), (1, 4 * 3600));
    assert_eq!(
        probes[0].until.as_secs(),
        6 * 3600,
        "until defaults to the end"
    );
    assert!(s.uses_sentinel());
}

#[test]
fn sentinel_mistakes_are_reported_at_their_place() {
    // A [[sentinel]] entry naming a workspace the world lacks.
    let text = FILE.replacen(
        "workspace = \"soc-ws\"\nincidents_every",
        "workspace = \"nope\"\nincidents_every",
        1,
    );
    assert_one(&text, &at(&text, "\"nope\"", 0), "unknown workspace `nope`");
    // An incident rate faster than one a minute.
    let text = FILE.replacen("incidents_every = \"20m\"", "incidents_every = \"30s\"", 1);
    assert_one(
        &text,
        &at(&text, "\"30s\"", 0),
        "incidents_every must be at least 1m",
    );
    // A parameter another action takes.
    let text = FILE.replacen(
        "action = \"create-analytics-rule\"",
        "action = \"create-analytics-rule\"\ncustomer_managed_key = true",
        1,
    );
    assert_one(
        &text,
        &at(&text, "customer_managed_key = true", 23),
        "`customer_managed_key` does not apply to action `create-analytics-rule`",
    );
    // A state word that is not Sentinel's: the TOML reader lists the valid ones.
    let text = FILE.replacen(
        "sentinel_state = \"revoked\"",
        "sentinel_state = \"healthy\"",
        1,
    );
    assert_one(&text, &at(&text, "\"healthy\"", 0), "active");
    // key_use names one version, and is judged with never.
    let text = FILE.replacen("version = \"v1\"\nnever", "version = \"latest\"\nnever", 1);
    assert_one(
        &text,
        &at(&text, "\"latest\"\nnever", 0),
        "`key_use` names one version",
    );
    let text = FILE.replacen("never = true\nfrom = \"4h\"", "by = \"4h\"", 1);
    assert_one(
        &text,
        &at(&text, "by = \"4h\"", 5),
        "`by` does not apply to a `key_use` expectation",
    );
    // `refused` is an incident outcome, not an ingest one.
    let text =
        format!("{FILE}\n[[expect]]\ningest_to = \"soc-ws\"\noutcome = \"refused\"\nby = \"1h\"\n");
    assert_one(
        &text,
        &at(&text, "\"refused\"\nby = \"1h\"", 0),
        "expected one of stored, buffered, dropped, expired",
    );
}

fn sentinel_event(log: &EventLog, at: SimTime, kind: &str, data: serde_json::Value) -> Event {
    log.record_raw(
        at,
        "sentinel/scenario/logs/ws",
        kind,
        kind.to_string(),
        data,
    )
}

fn step(log: &EventLog, at: SimTime, id: &str) {
    log.record_raw(
        at,
        "scenario",
        "scenario.step",
        id.to_string(),
        json!({ "step": id, "index": 1, "what": id }),
    );
}

/// A run: onboarded at T+0, the Cosmos DB policy removed at T+1h, revoked at `revoked_at`, an
/// incident refused at T+2h, an audit answer with `uses` uses of v1 from T+4h.
fn run(revoked_at: SimTime, uses: u64) -> Vec<Event> {
    let log = EventLog::default();
    log.record_raw(
        START,
        "scenario",
        "scenario.started",
        "start".into(),
        json!({}),
    );
    sentinel_event(
        &log,
        START,
        "sentinel.onboarded",
        json!({ "workspace": "soc-ws" }),
    );
    step(&log, m(60.0), "revoke");
    sentinel_event(
        &log,
        revoked_at,
        "sentinel.state.revoked",
        json!({ "StateChanged": { "workspace": "soc-ws", "from": "active", "to": "revoked" } }),
    );
    sentinel_event(
        &log,
        m(120.0),
        "sentinel.operation.refused",
        json!({ "workspace": "soc-ws", "operation": "create_incident", "reason": "revoked" }),
    );
    log.record_raw(
        m(360.0),
        "scenario",
        "scenario.audit",
        "audit".into(),
        json!({
            "vault": "kvsec", "key": "k", "version": "v1", "version_id": "abc",
            "from_ms": m(240.0).0, "until_ms": m(360.0).0, "uses": uses,
            "first_use_ms": if uses > 0 { Some(m(250.0).0) } else { None },
            "last_use_before_ms": m(200.0).0,
        }),
    );
    log.record_raw(
        m(360.0),
        "scenario",
        "scenario.finished",
        "end".into(),
        json!({}),
    );
    log.snapshot()
}

fn outcome(verdicts: &[cmksim_scenario::Verdict], id: &str) -> Outcome {
    verdicts
        .iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no verdict {id}"))
        .outcome
}

#[test]
fn sentinel_expectations_hold_and_break() {
    let s = scenario(FILE);
    let good = evaluate(&s, &run(m(70.0), 0));
    assert_eq!(outcome(&good, "revoked"), Outcome::Held, "{good:#?}");
    assert_eq!(outcome(&good, "refused"), Outcome::Held);
    assert_eq!(outcome(&good, "silent"), Outcome::Held);
    assert!(
        good[2].detail.contains("its last use was at T+03:20:00"),
        "{}",
        good[2].detail
    );
    // Revoked 1h30m after the step: outside the window; v1 still used after T+4h.
    let bad = evaluate(&s, &run(m(150.0), 3));
    assert_eq!(outcome(&bad, "revoked"), Outcome::Broken);
    assert_eq!(outcome(&bad, "silent"), Outcome::Broken);
    assert!(bad[2].detail.contains("3 uses"), "{}", bad[2].detail);
    // No audit answer at all is not silence.
    let none: Vec<Event> = run(m(70.0), 0)
        .into_iter()
        .filter(|e| e.kind != "scenario.audit")
        .collect();
    assert_eq!(outcome(&evaluate(&s, &none), "silent"), Outcome::Broken);
    // `at` reads the state in force at that moment.
    let text = format!("{FILE}\n[[expect]]\nid = \"at\"\nsentinel = \"soc-ws\"\nsentinel_state = \"active\"\nat = \"1h5m\"\n");
    let s2 = scenario(&text);
    assert_eq!(
        outcome(&evaluate(&s2, &run(m(70.0), 0)), "at"),
        Outcome::Held
    );
    assert_eq!(
        outcome(&evaluate(&s2, &run(m(62.0), 0)), "at"),
        Outcome::Broken
    );
    assert!(matches!(s2.expectations[4].timing, Timing::At(_)));
}

#[test]
fn the_oracle_flags_an_unsupported_configuration_unless_the_scenario_shows_it() {
    let log = EventLog::default();
    log.record_raw(
        START,
        "scenario",
        "scenario.started",
        "start".into(),
        json!({}),
    );
    sentinel_event(
        &log,
        m(90.0),
        "sentinel.unsupported",
        json!({ "workspace": "soc-ws", "cluster": "c1", "change": "unlinked", "reason": "seed" }),
    );
    let events = log.snapshot();
    // FILE shows the unsupported configuration of ws2 only: ws's is a finding.
    let s = scenario(FILE);
    let v = sentinel_unsupported_flagged(&s, &events);
    assert_eq!(v.outcome, Outcome::Broken, "{v:#?}");
    assert!(v.detail.contains("UNSUPPORTED"), "{}", v.detail);
    let shown = scenario(&FILE.replace(
        "sentinel_unsupported = \"soc-ws2\"",
        "sentinel_unsupported = \"soc-ws\"",
    ));
    let v = sentinel_unsupported_flagged(&shown, &events);
    assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    assert_eq!(v.evidence.len(), 1);
    let v = sentinel_unsupported_flagged(&s, &events[..1]);
    assert_eq!(v.outcome, Outcome::NotApplicable);
}
