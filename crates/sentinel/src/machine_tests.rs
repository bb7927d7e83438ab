//! Table-driven tests of the onboarding rules and of the Sentinel state machine: each row a
//! sequence of inputs at simulated times and what must hold after it.

use std::time::Duration;

use cmksim_sim::profile::SentinelProfile;
use cmksim_sim::SimTime;
use cmksim_storage::keyloop::{DenialKind, KeyRef, KeyTarget, PollOutcome, TransientKind};

use crate::events::SentinelEvent;
use crate::machine::{
    ClusterObservation, Effect, Encryption, Operation, SentinelMachine, StateName,
};
use crate::onboarding::{
    decide, needs_probe, AccessProbe, ClusterFacts, OnboardingFacts, OnboardingPlan,
};

const MIN: i64 = 60_000;

fn t(minutes: i64) -> SimTime {
    SimTime(1_700_000_000_000 + minutes * MIN)
}

fn v1() -> KeyRef {
    KeyRef::pinned("kv1", "k1", "v1")
}

fn machine() -> SentinelMachine {
    SentinelMachine::onboarded(
        "ws1",
        "c1",
        &SentinelProfile::default(),
        t(0),
        Encryption::CustomerManagedKey(KeyTarget {
            key: v1(),
            wrapped_version: "v1".into(),
        }),
    )
}

fn facts() -> OnboardingFacts {
    OnboardingFacts {
        workspace: "ws1".into(),
        subscription_id: "sub1".into(),
        customer_managed_key: true,
        previously_onboarded: false,
        cluster: Some(ClusterFacts {
            name: "c1".into(),
            key: Some(v1()),
            identity_type: "SystemAssigned".into(),
        }),
        cosmos_db_registered: true,
        cosmos_db_access: Some(AccessProbe::Granted {
            version: "v1".into(),
        }),
    }
}

#[test]
fn onboarding_rules_in_the_seeds_order() {
    type Change = fn(&mut OnboardingFacts);
    /// `Ok(plan)` or `Err((code, HTTP status))`.
    type Want = Result<&'static str, (&'static str, u16)>;
    let rows: &[(&str, Change, Want)] = &[
        ("all five steps done", |_| {}, Ok("cmk")),
        (
            "non-CMK onboarding needs nothing",
            |f| {
                f.customer_managed_key = false;
                f.cluster = None;
                f.cosmos_db_registered = false;
                f.cosmos_db_access = None;
            },
            Ok("mmk"),
        ),
        (
            "CMK only for new workspaces",
            |f| f.previously_onboarded = true,
            Err(("CustomerManagedKeyOnlyForNewWorkspaces", 409)),
        ),
        (
            "non-CMK re-onboarding",
            |f| {
                f.previously_onboarded = true;
                f.customer_managed_key = false;
            },
            Err(("Conflict", 409)),
        ),
        (
            "not linked",
            |f| f.cluster = None,
            Err(("WorkspaceNotLinkedToCmkCluster", 400)),
        ),
        (
            "cluster without key",
            |f| f.cluster.as_mut().unwrap().key = None,
            Err(("ClusterWithoutCustomerManagedKey", 400)),
        ),
        (
            "user-assigned identity",
            |f| f.cluster.as_mut().unwrap().identity_type = "UserAssigned".into(),
            Err(("UnsupportedIdentityType", 400)),
        ),
        (
            "Cosmos DB provider not registered",
            |f| f.cosmos_db_registered = false,
            Err(("MissingSubscriptionRegistration", 409)),
        ),
        (
            "no access policy for the Cosmos DB principal",
            |f| {
                f.cosmos_db_access = Some(AccessProbe::Denied {
                    kind: DenialKind::PermissionRemoved,
                    http_status: 403,
                    code: "Forbidden".into(),
                })
            },
            Err(("CosmosDbKeyVaultAccessDenied", 403)),
        ),
        (
            "vault unreachable",
            |f| {
                f.cosmos_db_access = Some(AccessProbe::Unreachable {
                    detail: "timeout".into(),
                })
            },
            Err(("KeyVaultUnreachable", 503)),
        ),
        (
            "not linked wins over the provider",
            |f| {
                f.cluster = None;
                f.cosmos_db_registered = false;
            },
            Err(("WorkspaceNotLinkedToCmkCluster", 400)),
        ),
    ];
    for (name, change, want) in rows {
        let mut f = facts();
        change(&mut f);
        let got = decide(&f);
        match (want, &got) {
            (Ok("cmk"), Ok(OnboardingPlan::CustomerManagedKey { key, .. })) => {
                assert_eq!(key, &v1(), "{name}")
            }
            (Ok("mmk"), Ok(OnboardingPlan::MicrosoftManagedKey)) => {}
            (Err((code, status)), Err(refusal)) => {
                assert_eq!(refusal.code(), *code, "{name}");
                assert_eq!(refusal.http_status(), *status, "{name}");
                assert!(!refusal.to_string().is_empty(), "{name}");
            }
            _ => panic!("{name}: got {got:?}"),
        }
    }
}

#[test]
fn the_probe_is_asked_only_when_every_earlier_step_is_done() {
    assert_eq!(needs_probe(&facts()), Some(v1()));
    let mut f = facts();
    f.cosmos_db_registered = false;
    assert_eq!(needs_probe(&f), None);
    let mut f = facts();
    f.customer_managed_key = false;
    assert_eq!(needs_probe(&f), None);
}

#[test]
fn refusal_messages_name_the_step_and_clip_user_input() {
    let mut f = facts();
    f.workspace = "w".repeat(500);
    f.cluster = None;
    let message = decide(&f).unwrap_err().to_string();
    assert!(
        message.contains("not linked to a dedicated Log Analytics cluster"),
        "{message}"
    );
    assert!(
        message.len() < 400,
        "the workspace name is clipped: {message}"
    );
    let mut f = facts();
    f.cosmos_db_access = Some(AccessProbe::Denied {
        kind: DenialKind::PermissionRemoved,
        http_status: 403,
        code: "Forbidden".into(),
    });
    let message = decide(&f).unwrap_err().to_string();
    assert!(message.contains("get, wrapKey and unwrapKey"), "{message}");
}

/// One input to the machine.
#[derive(Clone)]
enum In {
    Poll(i64, PollOutcome),
    Cluster(i64, ClusterObservation),
    Tick(i64),
    RewrapOk(i64, &'static str),
    RewrapFailed(i64),
    Delete(i64),
}

fn run(inputs: &[In]) -> (SentinelMachine, Vec<Effect>) {
    let mut m = machine();
    let mut all = Vec::new();
    for input in inputs {
        let effects = match input.clone() {
            In::Poll(at, o) => m.on_poll(t(at), o),
            In::Cluster(at, c) => m.on_cluster_observed(t(at), c),
            In::Tick(at) => m.on_tick(t(at)),
            In::RewrapOk(at, version) => m.on_rewrap_completed(
                t(at),
                KeyTarget {
                    key: KeyRef::pinned("kv1", "k1", version),
                    wrapped_version: version.into(),
                },
            ),
            In::RewrapFailed(at) => m.on_rewrap_failed(t(at), "403 Forbidden"),
            In::Delete(at) => m.on_deleted(t(at)),
        };
        all.extend(effects);
    }
    (m, all)
}

fn kinds(effects: &[Effect]) -> Vec<String> {
    use cmksim_sim::EventKind;
    effects
        .iter()
        .map(|e| match e {
            Effect::Event(ev) => ev.kind().to_string(),
            Effect::Rewrap { to } => format!("rewrap {to}"),
            Effect::DropAccountKey => "drop".to_string(),
        })
        .collect()
}

fn linked(version: &str) -> ClusterObservation {
    ClusterObservation::Linked {
        cluster: "c1".into(),
        key: Some(KeyRef::pinned("kv1", "k1", version)),
    }
}

#[test]
fn state_machine_table() {
    use In::*;
    let ok = || PollOutcome::success("v1");
    let denied = || PollOutcome::denial(DenialKind::KeyDisabled);
    struct Row {
        name: &'static str,
        inputs: Vec<In>,
        state: StateName,
        key: &'static str,
        /// Effect kinds that must appear, in order (others may be between them).
        effects: &'static [&'static str],
        allowed: &'static [Operation],
    }
    const ALL: &[Operation] = &[
        Operation::CreateIncident,
        Operation::ChangeConfiguration,
        Operation::ReadData,
        Operation::DeleteWorkspace,
    ];
    let only_delete: &'static [Operation] = &[Operation::DeleteWorkspace];
    let rows = vec![
        Row {
            name: "healthy polls",
            inputs: vec![Poll(10, ok()), Poll(20, ok())],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &["sentinel.poll.succeeded", "sentinel.poll.succeeded"],
            allowed: ALL,
        },
        Row {
            name: "transient failure changes nothing",
            inputs: vec![Poll(10, PollOutcome::transient(TransientKind::Timeout))],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &["sentinel.poll.transient"],
            allowed: ALL,
        },
        Row {
            name: "denial revokes at that poll",
            inputs: vec![Poll(10, ok()), Poll(25, denied())],
            state: StateName::Revoked,
            key: "kv1/k1/v1",
            effects: &["sentinel.poll.denied", "sentinel.state.revoked", "drop"],
            allowed: only_delete,
        },
        Row {
            name: "access back: restoring, not yet active",
            inputs: vec![Poll(10, denied()), Poll(20, ok()), Tick(59)],
            state: StateName::Restoring,
            key: "kv1/k1/v1",
            effects: &["sentinel.state.revoked", "sentinel.state.restoring"],
            allowed: only_delete,
        },
        Row {
            name: "restored restore_delay after the poll",
            inputs: vec![Poll(10, denied()), Poll(20, ok()), Tick(60)],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &["sentinel.state.restoring", "sentinel.state.active"],
            allowed: ALL,
        },
        Row {
            name: "denied again while restoring",
            inputs: vec![Poll(10, denied()), Poll(20, ok()), Poll(30, denied())],
            state: StateName::Revoked,
            key: "kv1/k1/v1",
            effects: &["sentinel.state.restoring", "sentinel.state.revoked"],
            allowed: only_delete,
        },
        Row {
            name: "rotation followed key_follow_delay after it was seen",
            inputs: vec![
                Cluster(10, linked("v2")),
                Tick(39),
                Tick(40),
                RewrapOk(40, "v2"),
            ],
            state: StateName::Active,
            key: "kv1/k1/v2",
            effects: &[
                "sentinel.key.change_detected",
                "rewrap kv1/k1/v2",
                "sentinel.key.rewrapped",
            ],
            allowed: ALL,
        },
        Row {
            name: "old version disabled before the follow: revoked",
            inputs: vec![Cluster(10, linked("v2")), Poll(15, denied()), Tick(40)],
            state: StateName::Revoked,
            key: "kv1/k1/v1",
            effects: &["sentinel.key.change_detected", "sentinel.state.revoked"],
            allowed: only_delete,
        },
        Row {
            name: "the follow waits for the restore",
            inputs: vec![
                Cluster(10, linked("v2")),
                Poll(15, denied()),
                Poll(50, ok()),
                Tick(95),
            ],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &[
                "sentinel.state.restoring",
                "sentinel.state.active",
                "rewrap kv1/k1/v2",
            ],
            allowed: ALL,
        },
        Row {
            name: "a failed follow is retried",
            inputs: vec![
                Cluster(10, linked("v2")),
                Tick(40),
                RewrapFailed(40),
                Tick(47),
                Tick(48),
            ],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &[
                "rewrap kv1/k1/v2",
                "sentinel.key.rewrap_failed",
                "rewrap kv1/k1/v2",
            ],
            allowed: ALL,
        },
        Row {
            name: "replacement by another key",
            inputs: vec![Cluster(
                10,
                ClusterObservation::Linked {
                    cluster: "c1".into(),
                    key: Some(KeyRef::pinned("kv2", "k9", "x1")),
                },
            )],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &["sentinel.key.change_detected"],
            allowed: ALL,
        },
        Row {
            name: "unlink after CMK onboarding: unsupported, once",
            inputs: vec![
                Cluster(10, ClusterObservation::Unlinked),
                Cluster(20, ClusterObservation::Unlinked),
                Poll(21, ok()),
            ],
            state: StateName::Active,
            key: "kv1/k1/v1",
            effects: &["sentinel.unsupported", "sentinel.poll.succeeded"],
            allowed: ALL,
        },
        Row {
            name: "deleted while revoked",
            inputs: vec![Poll(10, denied()), Delete(20), Poll(30, ok())],
            state: StateName::Deleted,
            key: "kv1/k1/v1",
            effects: &["sentinel.state.revoked", "sentinel.state.deleted"],
            allowed: &[],
        },
    ];
    for row in rows {
        let (m, effects) = run(&row.inputs);
        assert_eq!(m.state().name(), row.state, "{}", row.name);
        assert_eq!(m.key_label(), row.key, "{}", row.name);
        let got = kinds(&effects);
        let mut at = 0;
        for want in row.effects {
            match got[at..].iter().position(|k| k == want) {
                Some(i) => at += i + 1,
                None => panic!("{}: {want} missing (in order) from {got:?}", row.name),
            }
        }
        for &op in ALL {
            assert_eq!(
                m.check(op).is_ok(),
                row.allowed.contains(&op),
                "{}: {op:?}",
                row.name
            );
        }
    }
}

#[test]
fn unsupported_counts_once_per_change_and_the_event_carries_the_seed_sentence() {
    let (_, effects) = run(&[
        In::Cluster(10, ClusterObservation::Unlinked),
        In::Cluster(20, ClusterObservation::Unlinked),
    ]);
    let unsupported: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(SentinelEvent::Unsupported { reason, change, .. }) => {
                Some((reason.clone(), change.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(unsupported.len(), 1);
    assert!(unsupported[0]
        .0
        .starts_with("Once a workspace is onboarded as a CMK workspace"));
    assert_eq!(unsupported[0].1, "unlinked");
}

#[test]
fn a_non_cmk_workspace_later_on_a_cmk_cluster_keeps_the_microsoft_key() {
    let mut m = SentinelMachine::onboarded(
        "ws2",
        "",
        &SentinelProfile::default(),
        t(0),
        Encryption::MicrosoftManagedKey,
    );
    assert!(!m.wants_poll());
    let first = m.on_cluster_observed(t(5), linked("v1"));
    let second = m.on_cluster_observed(t(6), linked("v1"));
    assert!(
        matches!(&first[..], [Effect::Event(SentinelEvent::MicrosoftKeyKept { reason, .. })] if reason.contains("Microsoft Managed Key instead"))
    );
    assert!(second.is_empty());
    assert_eq!(m.encryption(), &Encryption::MicrosoftManagedKey);
}

#[test]
fn bounds_hold_for_the_default_profile() {
    let p = SentinelProfile::default();
    let hour = Duration::from_secs(3600);
    assert!(p.poll_interval_max <= p.revocation_deadline && p.revocation_deadline <= hour);
    assert!(
        p.poll_interval_max + p.restore_delay <= hour,
        "restore within 1 h"
    );
    assert!(
        p.poll_interval_max + p.key_follow_delay <= hour,
        "key change followed within 1 h"
    );
}

#[test]
fn a_scenario_may_override_one_sentinel_value() {
    let table: toml::Table = "[sentinel]\nrestore_delay = \"10m\"\n".parse().unwrap();
    let profile = cmksim_sim::Profile::builtin_with_overrides("azure-2020", Some(&table)).unwrap();
    assert_eq!(profile.sentinel.restore_delay, Duration::from_secs(600));
    assert_eq!(
        profile.sentinel.poll_interval_max,
        SentinelProfile::default().poll_interval_max
    );
}
