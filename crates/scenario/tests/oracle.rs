//! Expectations and invariants judged over hand-built event logs: each one both holds and
//! breaks, with evidence.

use std::path::Path;

use cmksim_scenario::events::{self, reason, Emit};
use cmksim_scenario::expect::evaluate;
use cmksim_scenario::model::StorageState::{self, *};
use cmksim_scenario::oracle;
use cmksim_scenario::{validate_file, validate_str, Outcome, Scenario, Verdict};
use cmksim_sim::EventLog;

mod common;
use common::{flagship, m, Run, START};

fn library(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(name);
    validate_file(path).unwrap()
}

fn by_id<'v>(verdicts: &'v [Verdict], id: &str) -> &'v Verdict {
    verdicts
        .iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no verdict {id}"))
}

#[test]
fn flagship_expectations_hold_on_a_correct_run() {
    let scenario = library("revocation.toml");
    let events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let verdicts = evaluate(&scenario, &events);
    for v in &verdicts {
        assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    }
    let revoked = by_id(&verdicts, "revoked-within-1h");
    assert!(
        revoked.detail.contains("seen 30s after disable-key"),
        "{}",
        revoked.detail
    );
    assert_eq!(revoked.evidence.len(), 2);
    assert_eq!(revoked.evidence[1].kind, "storage.state.revoked");
    let invariants = oracle::check_invariants(&scenario, &events);
    for v in &invariants {
        assert!(v.held(), "{v:#?}");
    }
    assert_eq!(by_id(&invariants, "invariant-2").outcome, Outcome::Held);
    assert_eq!(by_id(&invariants, "invariant-3").outcome, Outcome::Held);
    assert_eq!(by_id(&invariants, "invariant-1").outcome, Outcome::Held);
    assert_eq!(
        by_id(&invariants, "invariant-6").outcome,
        Outcome::NotApplicable
    );
}

#[test]
fn late_revocation_breaks_the_expectation_and_invariant_2() {
    let scenario = library("revocation.toml");
    let events = flagship(Run {
        revoke_after: 70.0,
        resume_after: 30.0,
    });
    let verdicts = evaluate(&scenario, &events);
    let v = by_id(&verdicts, "revoked-within-1h");
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(
        v.detail
            .contains("not seen between T+01:00:00 and T+02:00:00"),
        "{}",
        v.detail
    );
    let inv = by_id(&oracle::check_invariants(&scenario, &events), "invariant-2").clone();
    assert_eq!(inv.outcome, Outcome::Broken, "{inv:#?}");
    assert!(
        inv.detail.contains("revoked only after 1h10m"),
        "{}",
        inv.detail
    );
    assert_eq!(inv.evidence[0].kind, "keyvault.key.disabled");
}

#[test]
fn slow_resume_breaks_the_expectation_and_invariant_3() {
    let scenario = library("revocation.toml");
    let events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 45.0,
    });
    let verdicts = evaluate(&scenario, &events);
    assert_eq!(by_id(&verdicts, "resumed").outcome, Outcome::Broken);
    let inv = by_id(&oracle::check_invariants(&scenario, &events), "invariant-3").clone();
    assert_eq!(inv.outcome, Outcome::Broken, "{inv:#?}");
    assert_eq!(inv.evidence[0].kind, events::POLL_OK);
    assert_eq!(inv.evidence[1].kind, "storage.state.healthy");
}

#[test]
fn a_live_run_is_judged_with_its_slack_and_only_that() {
    let scenario = library("revocation.toml");
    // Healthy 30 simulated seconds after the resume deadline (the fixture samples every 30 s):
    // 50 ms of real lateness at 600×.
    let events = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.2,
    });
    let strict = by_id(&oracle::check_invariants(&scenario, &events), "invariant-3").clone();
    assert_eq!(strict.outcome, Outcome::Broken, "{strict:#?}");
    let widened = cmksim_scenario::expect::widened(&scenario, std::time::Duration::from_secs(45));
    let live = by_id(&oracle::check_invariants(&widened, &events), "invariant-3").clone();
    assert_eq!(live.outcome, Outcome::Held, "{live:#?}");
    assert!(
        live.title.contains("30m45s"),
        "the slack shows: {}",
        live.title
    );
    // 15 minutes late is still late.
    let slow = flagship(Run {
        revoke_after: 0.5,
        resume_after: 45.0,
    });
    assert_eq!(
        by_id(&evaluate(&widened, &slow), "resumed").outcome,
        Outcome::Broken
    );
}

/// A small scenario for the remaining checks.
fn small(extra: &str) -> Scenario {
    let text = format!(
        "[scenario]\nname = \"s\"\ntitle = \"S\"\nduration = \"4h\"\n\
         [[vaults]]\nname = \"kv1\"\nlocation = \"westeurope\"\npurge_protection = true\n[[keys]]\nvault = \"kv1\"\nname = \"k\"\nkty = \"RSA\"\n\
         [[clusters]]\nname = \"cl1\"\nlocation = \"westeurope\"\nkey = {{ vault = \"kv1\", name = \"k\", version = \"latest\" }}\n\
         [[workspaces]]\nname = \"wsp1\"\nlocation = \"westeurope\"\nlink = \"cl1\"\n\
         [[workspaces]]\nname = \"wsp2\"\nlocation = \"westeurope\"\n\
         [[timeline]]\nid = \"s1\"\nat = \"1h\"\naction = \"link-workspace\"\nworkspace = \"wsp2\"\ncluster = \"cl1\"\n{extra}"
    );
    validate_str(Path::new("s.toml"), &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn log() -> EventLog {
    let log = EventLog::new(1000);
    Emit { log: &log }.started(START, "s", 1, "azure-2020", 4 * 3_600_000);
    log
}

#[test]
fn invariant_1_no_silent_loss() {
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(1.0), "wsp1", "T", (5, 2, 1), Some(reason::REVOKED));
    e.buffer(m(30.0), events::BUFFER_FLUSHED, "cl1", "wsp1", 2, m(1.0));
    assert_eq!(oracle::no_silent_loss(&l.snapshot()).outcome, Outcome::Held);
    // A drop without a reason, a batch that does not add up, and a buffer that releases more than it held.
    e.batch(m(2.0), "wsp1", "T", (1, 0, 1), None);
    l.record_raw(m(3.0), "ingest", events::INGEST_BATCH, "bad".into(),
        serde_json::json!({"workspace": "wsp1", "accepted": 10, "stored": 3, "buffered": 0, "dropped": 0}));
    e.buffer(m(40.0), events::BUFFER_FLUSHED, "cl1", "wsp1", 5, m(1.0));
    let v = oracle::no_silent_loss(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Broken);
    let notes: Vec<&str> = v.evidence.iter().map(|e| e.note.as_str()).collect();
    assert!(
        notes.iter().any(|n| n.contains("dropped without a reason")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("accepted 10 ≠ 3 stored")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("released 7 records but only 2")),
        "{notes:?}"
    );
    assert_eq!(
        oracle::no_silent_loss(&log().snapshot()).outcome,
        Outcome::NotApplicable
    );
}

/// Issue 14: a purge that took records still in the outage buffer counts them as leaving the
/// buffer, not as removed from what was written; a purge that claims more buffered records than
/// the buffer held breaks the invariant.
#[test]
fn invariant_1_counts_a_purge_of_buffered_records_against_the_buffer() {
    let purge = |l: &EventLog, records: u64, buffered: u64| {
        l.record_raw(m(50.0), "storage", events::PURGE_COMPLETED, "purge".into(),
            serde_json::json!({"workspace": "wsp1", "table": "T", "purge_id": "p1", "records": records, "buffered_records": buffered}));
    };
    // 1 stored, 4 buffered; the purge takes the stored one and 3 buffered; 1 is flushed.
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(1.0), "wsp1", "T", (1, 4, 0), None);
    purge(&l, 4, 3);
    e.buffer(m(60.0), events::BUFFER_FLUSHED, "cl1", "wsp1", 1, m(1.0));
    let v = oracle::no_silent_loss(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    // Counted against what was written, the same purge would have removed 4 of 1 written.
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(1.0), "wsp1", "T", (1, 4, 0), None);
    purge(&l, 4, 0);
    assert_eq!(
        oracle::no_silent_loss(&l.snapshot()).outcome,
        Outcome::Broken
    );
    // More buffered records purged than the buffer held.
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(1.0), "wsp1", "T", (1, 4, 0), None);
    purge(&l, 6, 5);
    let v = oracle::no_silent_loss(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.note.contains("released 5 records but only 4")),
        "{v:#?}"
    );
}

#[test]
fn invariant_2_via_access_policy_and_stays_revoked() {
    let s = small("");
    let l = log();
    let e = Emit { log: &l };
    e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
    e.state(START, "cl1", None, Healthy, "start");
    e.policy(m(60.0), events::POLICY_SET, "kv1", "cluster:cl1", &["get"]); // lost wrapKey/unwrapKey
    e.state(m(61.0), "cl1", Some(Healthy), Revoked, "403");
    e.policy(
        m(90.0),
        events::POLICY_SET,
        "kv1",
        "cluster:cl1",
        &["get", "wrapKey", "unwrapKey"],
    );
    e.poll(m(91.0), "cl1", events::POLL_OK, "");
    e.state(m(100.0), "cl1", Some(Revoked), Healthy, "resumed");
    assert_eq!(
        oracle::revocation_honoured(&s, &l.snapshot()).outcome,
        Outcome::Held
    );

    // Leaving the revoked state before access returned breaks it.
    let l = log();
    let e = Emit { log: &l };
    e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
    e.state(START, "cl1", None, Healthy, "start");
    e.policy(m(60.0), events::POLICY_REMOVED, "kv1", "cluster:cl1", &[]);
    e.state(m(61.0), "cl1", Some(Healthy), Revoked, "403");
    e.state(m(70.0), "cl1", Some(Revoked), Healthy, "wrongly resumed");
    let v = oracle::revocation_honoured(&s, &l.snapshot());
    assert_eq!(v.outcome, Outcome::Broken, "{v:#?}");
    assert!(v
        .evidence
        .iter()
        .any(|x| x.note.contains("before access returned")));
}

#[test]
fn invariant_2_ignores_other_keys_and_old_versions() {
    let s = small("");
    let l = log();
    let e = Emit { log: &l };
    e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
    e.key(START, events::KEY_CREATED, "kv1", "other", "o1");
    e.state(START, "cl1", None, Healthy, "start");
    e.key(m(10.0), events::KEY_DISABLED, "kv1", "other", "o1");
    e.key(m(20.0), events::KEY_ROTATED, "kv1", "k", "v2");
    e.key(m(30.0), events::KEY_DISABLED, "kv1", "k", "v2"); // not the pinned v1
    l.record_raw(
        m(240.0),
        "scenario",
        events::SCENARIO_FINISHED,
        "done".into(),
        serde_json::json!({}),
    );
    let v = oracle::revocation_honoured(&s, &l.snapshot());
    assert_eq!(v.outcome, Outcome::NotApplicable, "{v:#?}");
}

#[test]
fn invariant_2_follows_a_key_update_only_once_the_rewrap_succeeded() {
    let s = small("");
    let run = |rewrap_ok: bool| {
        let l = log();
        let e = Emit { log: &l };
        e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
        e.key(START, events::KEY_CREATED, "kv1", "other", "o1");
        e.state(START, "cl1", None, Healthy, "start");
        e.key_updated(m(10.0), "cl1", "kv1", "other", "o1");
        if rewrap_ok {
            e.rewrapped(m(11.0), "cl1", "kv1/other/o1");
        } else {
            e.rewrap_failed(m(11.0), "cl1", "kv1/other/o1", "403 Forbidden");
        }
        e.key(m(30.0), events::KEY_DISABLED, "kv1", "k", "v1");
        l.record_raw(
            m(240.0),
            "scenario",
            events::SCENARIO_FINISHED,
            "done".into(),
            serde_json::json!({}),
        );
        oracle::revocation_honoured(&s, &l.snapshot())
    };
    // Rewrapped: the old key no longer matters.
    let v = run(true);
    assert_eq!(v.outcome, Outcome::NotApplicable, "{v:#?}");
    // The rewrap failed: the storage still unwraps with k/v1, so disabling it must revoke,
    // and a storage that stays healthy breaks the invariant.
    let v = run(false);
    assert_eq!(v.outcome, Outcome::Broken, "{v:#?}");
}

#[test]
fn invariant_3_skips_a_return_of_access_lost_again_before_the_deadline() {
    let s = small("");
    let delay_min = s.profile.key_access.resume_delay.as_secs_f64() / 60.0;
    let l = log();
    let e = Emit { log: &l };
    e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
    e.state(START, "cl1", None, Healthy, "start");
    e.state(m(60.0), "cl1", Some(Healthy), Revoked, "403");
    // Access returns, and is lost again within the resume delay.
    e.poll(m(90.0), "cl1", events::POLL_OK, "");
    e.state(m(90.0), "cl1", Some(Revoked), Resuming, "access back");
    e.state(
        m(90.0 + delay_min / 2.0),
        "cl1",
        Some(Resuming),
        Revoked,
        "403 again",
    );
    // It returns for good much later and resumes on time.
    let back = 90.0 + 3.0 * delay_min;
    e.poll(m(back), "cl1", events::POLL_OK, "");
    e.state(m(back), "cl1", Some(Revoked), Resuming, "access back");
    e.state(
        m(back + delay_min),
        "cl1",
        Some(Resuming),
        Healthy,
        "resumed",
    );
    l.record_raw(
        m(back + 4.0 * delay_min),
        "scenario",
        events::SCENARIO_FINISHED,
        "done".into(),
        serde_json::json!({}),
    );
    let v = oracle::resume_within_deadline(&s, &l.snapshot());
    assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    assert!(
        v.detail.starts_with("1 returns of access checked"),
        "{}",
        v.detail
    );
    assert!(v.detail.contains("lost again"), "{}", v.detail);
}

#[test]
fn invariant_3_counts_a_resume_into_degraded_as_a_resume() {
    // Chaos seed 34 of the revocation scenario: the resume delay ends while Key Vault answers
    // with an error rate, so storage resumes into `degraded` (serving from the cached AEK) and
    // is healthy only a minute later.
    let s = small("");
    let delay_min = s.profile.key_access.resume_delay.as_secs_f64() / 60.0;
    let run = |resumed_into: StorageState| {
        let l = log();
        let e = Emit { log: &l };
        e.key(START, events::KEY_CREATED, "kv1", "k", "v1");
        e.state(START, "cl1", None, Healthy, "start");
        e.state(m(60.0), "cl1", Some(Healthy), Revoked, "403");
        e.poll(m(90.0), "cl1", events::POLL_OK, "");
        e.state(m(90.0), "cl1", Some(Revoked), Resuming, "access back");
        e.state(
            m(90.0 + delay_min),
            "cl1",
            Some(Resuming),
            resumed_into,
            "resumed",
        );
        e.state(
            m(91.0 + delay_min),
            "cl1",
            Some(resumed_into),
            Healthy,
            "vault reachable again",
        );
        l.record_raw(
            m(90.0 + 4.0 * delay_min),
            "scenario",
            events::SCENARIO_FINISHED,
            "done".into(),
            serde_json::json!({}),
        );
        oracle::resume_within_deadline(&s, &l.snapshot())
    };
    assert_eq!(run(Degraded).outcome, Outcome::Held);
    // Still resuming at the deadline (healthy a minute late) breaks it.
    assert_eq!(run(Resuming).outcome, Outcome::Broken);
}

#[test]
fn invariant_4_short_outages() {
    let s = library("vault-blip-5m.toml");
    let make = |visible: bool| {
        let l = log();
        let e = Emit { log: &l };
        e.state(START, "cl1", None, Healthy, "start");
        e.fault(m(60.0), "blip", "keyvault down", true);
        e.poll(m(61.0), "cl1", events::POLL_TRANSIENT, "connection refused");
        if visible {
            e.query_failed(m(63.0), "wsp1", reason::UNAVAILABLE);
        } else {
            e.query_ok(m(63.0), "wsp1", 60, &["wsp1"]);
        }
        e.restored(m(65.0), "blip", "keyvault up");
        l.snapshot()
    };
    let held = oracle::short_outages_invisible(&s, &make(false));
    assert_eq!(held.outcome, Outcome::Held, "{held:#?}");
    let broken = oracle::short_outages_invisible(&s, &make(true));
    assert_eq!(broken.outcome, Outcome::Broken);
    assert_eq!(broken.evidence.last().unwrap().kind, "query.failed");
    // The 45-minute outage is longer than the grace: not this invariant's business.
    let l = log();
    let e = Emit { log: &l };
    e.fault(m(60.0), "down", "keyvault down", true);
    e.state(m(91.0), "cl1", Some(Healthy), Unavailable, "grace exceeded");
    e.fault(m(105.0), "back", "keyvault up", false);
    let v = oracle::short_outages_invisible(&library("outage-45m-buffering.toml"), &l.snapshot());
    assert_eq!(v.outcome, Outcome::NotApplicable, "{v:#?}");
}

#[test]
fn invariant_6_blocks_decrypt_after_key_update() {
    let make = |verified: Option<u64>| {
        let l = log();
        let e = Emit { log: &l };
        e.key_updated(m(90.0), "cl1", "kv1", "k", "v2");
        if let Some(failed) = verified {
            e.verified(m(91.0), "cl1", 1200, failed);
        }
        l.snapshot()
    };
    assert_eq!(
        oracle::blocks_decrypt_after_key_update(&make(Some(0))).outcome,
        Outcome::Held
    );
    let v = oracle::blocks_decrypt_after_key_update(&make(Some(3)));
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(v.evidence[1].note.contains("3 blocks failed"));
    let v = oracle::blocks_decrypt_after_key_update(&make(None));
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(v.evidence[0].note.contains("no storage.blocks.verified"));
}

#[test]
fn invariant_8_no_cross_workspace_records() {
    let l = log();
    let e = Emit { log: &l };
    e.query_ok(m(10.0), "wsp1", 3, &["wsp1"]);
    assert_eq!(
        oracle::no_cross_workspace_records(&l.snapshot()).outcome,
        Outcome::Held
    );
    e.query_ok(m(11.0), "wsp1", 3, &["wsp1", "wsp2"]);
    let v = oracle::no_cross_workspace_records(&l.snapshot());
    assert_eq!(v.outcome, Outcome::Broken);
    assert_eq!(v.evidence[0].note, "query of wsp1 returned records of wsp2");
}

#[test]
fn invariant_7_determinism() {
    let a = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    let b = flagship(Run {
        revoke_after: 0.5,
        resume_after: 30.0,
    });
    assert_eq!(oracle::deterministic(&a, &b).outcome, Outcome::Held);
    let c = flagship(Run {
        revoke_after: 1.0,
        resume_after: 30.0,
    });
    let v = oracle::deterministic(&a, &c);
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(v.detail.starts_with("the logs differ at event"));
}

#[test]
fn step_expectations() {
    let s = small("[[expect]]\nstep = \"s1\"\noutcome = \"fails\"\nerror_code = \"Conflict\"\n");
    let l = log();
    Emit { log: &l }.step_failed(
        m(60.0),
        "s1",
        "link-workspace",
        "Conflict",
        409,
        "name reserved",
    );
    assert_eq!(evaluate(&s, &l.snapshot())[0].outcome, Outcome::Held);
    let l = log();
    Emit { log: &l }.step_failed(m(60.0), "s1", "link-workspace", "BadRequest", 400, "no");
    let v = &evaluate(&s, &l.snapshot())[0];
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(v
        .detail
        .contains("failed with \"BadRequest\", expected \"Conflict\""));
    assert!(evaluate(&s, &log().snapshot())[0]
        .detail
        .contains("no result was recorded"));
}

#[test]
fn never_and_by_expectations() {
    let s = small(
        "[[expect]]\nstorage = \"cl1\"\nstate = \"unavailable\"\nnever = true\nfrom = \"30m\"\n\
         [[expect]]\ningest_to = \"wsp1\"\noutcome = \"buffered\"\nby = \"2h\"\n",
    );
    let l = log();
    let e = Emit { log: &l };
    e.state(START, "cl1", None, Healthy, "start");
    e.state(
        m(10.0),
        "cl1",
        Some(Healthy),
        Unavailable,
        "before the window",
    );
    e.state(m(20.0), "cl1", Some(Unavailable), Healthy, "back");
    e.batch(m(100.0), "wsp1", "T", (0, 4, 0), None);
    let v = evaluate(&s, &l.snapshot());
    assert_eq!(
        (v[0].outcome, v[1].outcome),
        (Outcome::Held, Outcome::Held),
        "{v:#?}"
    );
    e.state(m(150.0), "cl1", Some(Healthy), Unavailable, "in the window");
    let v = evaluate(&s, &l.snapshot());
    assert_eq!(v[0].outcome, Outcome::Broken);
    assert_eq!(v[0].detail, "seen at T+02:30:00");
    // Unavailable already in force when the window opens counts as seen.
    let l = log();
    let e = Emit { log: &l };
    e.state(m(20.0), "cl1", None, Unavailable as StorageState, "x");
    assert_eq!(evaluate(&s, &l.snapshot())[0].outcome, Outcome::Broken);
    assert_eq!(evaluate(&s, &l.snapshot())[1].outcome, Outcome::Broken);
}

#[test]
fn no_loss_before() {
    let s = small("[[expect]]\nno_loss_before = \"2h\"\nworkspace = \"wsp1\"\n");
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(60.0), "wsp1", "T", (0, 10, 0), None);
    e.batch(m(150.0), "wsp1", "T", (0, 0, 3), Some(reason::REVOKED)); // after the deadline
    e.batch(m(70.0), "wsp2", "T", (0, 0, 3), Some(reason::REVOKED)); // another workspace
    e.buffer(m(130.0), events::BUFFER_FLUSHED, "cl1", "wsp1", 10, m(60.0));
    assert_eq!(evaluate(&s, &l.snapshot())[0].outcome, Outcome::Held);
    let l = log();
    let e = Emit { log: &l };
    e.batch(m(60.0), "wsp1", "T", (0, 10, 0), None);
    e.buffer(m(200.0), events::BUFFER_EXPIRED, "cl1", "wsp1", 10, m(60.0));
    let v = &evaluate(&s, &l.snapshot())[0];
    assert_eq!(v.outcome, Outcome::Broken);
    assert!(v
        .evidence
        .iter()
        .any(|x| x.kind == "storage.buffer.expired"));
}

/// The services serialise their event enums externally tagged (`{"KeyDisabled": {...}}`), name
/// policies by object id, healthy states `healthy_cmk`/`healthy_mmk` and key updates by key URI:
/// the oracle reads all of these.
#[test]
fn reads_the_services_event_shapes() {
    use serde_json::json;
    let s = small("");
    let l = log();
    let raw = |t: f64, source: &str, kind: &str, data: serde_json::Value| {
        l.record_raw(m(t), source, kind, kind.to_string(), data);
    };
    raw(
        0.0,
        "keyvault",
        "keyvault.key.created",
        json!({"KeyCreated": {"vault": "kv1", "key": "k", "version": "aa11", "kty": "RSA"}}),
    );
    raw(
        0.0,
        "scenario",
        events::SCENARIO_IDENTITY,
        json!({"cluster": "cl1", "object_id": "0000-c1"}),
    );
    raw(
        0.0,
        "storage/c1",
        "storage.state.healthy_cmk",
        json!({"StateChanged": {"cluster": "cl1", "from": "Provisioning", "to": "HealthyCmk"}}),
    );
    raw(
        60.0,
        "keyvault",
        "keyvault.policy.removed",
        json!({"PolicyRemoved": {"vault": "kv1", "object_id": "0000-c1"}}),
    );
    raw(
        60.5,
        "storage/c1",
        "storage.poll.denied",
        json!({"PollDenied": {"cluster": "cl1", "http_status": 403}}),
    );
    raw(
        60.5,
        "storage/c1",
        "storage.state.revoked",
        json!({"StateChanged": {"cluster": "cl1", "from": "HealthyCmk", "to": "Revoked"}}),
    );
    raw(
        90.0,
        "keyvault",
        "keyvault.policy.set",
        json!({"PolicySet": {"vault": "kv1", "object_id": "0000-c1", "permissions": ["get", "wrapKey", "unwrapKey"]}}),
    );
    raw(
        90.5,
        "storage/c1",
        "storage.poll.succeeded",
        json!({"PollSucceeded": {"cluster": "cl1", "key": "k", "version": "aa11"}}),
    );
    raw(
        100.0,
        "storage/c1",
        "storage.state.healthy_cmk",
        json!({"StateChanged": {"cluster": "cl1", "from": "Resuming", "to": "HealthyCmk"}}),
    );
    // The cluster moves to another key, named by URI; disabling the old one no longer matters.
    raw(
        120.0,
        "storage/c1",
        "storage.cluster.key_updated",
        json!({"keyUpdated": {"cluster": "cl1", "new_key_id": "https://kv.vault.azure.net/keys/k2/bb22"}}),
    );
    raw(
        120.5,
        "storage/c1",
        "storage.key.rewrapped",
        json!({"Rewrapped": {"cluster": "cl1", "key": "https://kv.vault.azure.net/keys/k2/bb22"}}),
    );
    raw(
        130.0,
        "keyvault",
        "keyvault.key.disabled",
        json!({"KeyDisabled": {"vault": "kv1", "key": "k", "version": "aa11"}}),
    );
    raw(240.0, "scenario", events::SCENARIO_FINISHED, json!({}));
    let events = l.snapshot();
    let v = oracle::revocation_honoured(&s, &events);
    assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    assert!(v.detail.starts_with("1 denials checked"), "{}", v.detail);
    let v = oracle::resume_within_deadline(&s, &events);
    assert_eq!(v.outcome, Outcome::Held, "{v:#?}");
    assert_eq!(
        events::parse_key_id("https://kv.vault.azure.net/keys/k2/bb22"),
        Some(("kv".into(), "k2".into(), "bb22".into()))
    );
    assert_eq!(
        events::parse_key_id("kv/k"),
        Some(("kv".into(), "k".into(), String::new()))
    );
}
