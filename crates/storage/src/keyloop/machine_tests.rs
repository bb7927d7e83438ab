//! Table-driven tests of every transition of the key access machine, and whole stories in
//! simulated time (outages shorter and longer than the grace, revocation and restore,
//! pinned and versionless rotation). All time is `SimTime`: a day runs in microseconds.

use std::time::Duration;

use cmksim_sim::profile::KeyAccessProfile;
use cmksim_sim::{Profile, SeedTree, SimTime};
use rand::Rng;

use super::*;

const V1: &str = "11111111111111111111111111111111";
const V2: &str = "22222222222222222222222222222222";

fn t0() -> SimTime {
    SimTime::DEFAULT_EPOCH
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn p2020() -> KeyAccessProfile {
    Profile::azure_2020().key_access
}

fn pcurrent() -> KeyAccessProfile {
    Profile::azure_current().key_access
}

fn labels(effects: &[Effect]) -> Vec<String> {
    effects.iter().map(Effect::label).collect()
}

/// A machine driven through real inputs into `state`, and the time it got there.
fn in_state(profile: &KeyAccessProfile, state: StateName) -> (KeyAccessMachine, SimTime) {
    let mut m = KeyAccessMachine::new("c1", profile, t0());
    let mut now = t0();
    if state == StateName::Provisioning {
        return (m, now);
    }
    now = now.add(Duration::from_secs(3 * 3600));
    m.on_provisioned(now);
    if state == StateName::HealthyMmk {
        return (m, now);
    }
    now = now.add(secs(60));
    m.on_cmk_configured(now, KeyRef::pinned("kv1", "k1", V1))
        .unwrap();
    m.on_rewrap_completed(
        now,
        KeyTarget {
            key: KeyRef::pinned("kv1", "k1", V1),
            wrapped_version: V1.into(),
        },
    );
    now = now.add(secs(30));
    m.on_poll(now, PollOutcome::success(V1));
    match state {
        StateName::HealthyCmk => {}
        StateName::Degraded => {
            now = now.add(secs(30));
            m.on_poll(now, PollOutcome::transient(TransientKind::Timeout));
        }
        StateName::Unavailable => {
            let grace = profile.outage_grace.expect("Unavailable needs a grace");
            now = now.add(secs(30));
            let start = now;
            while now.since(start) < grace {
                m.on_poll(
                    now,
                    PollOutcome::transient(TransientKind::ConnectionRefused),
                );
                now = now.add(secs(30));
            }
            m.on_poll(
                now,
                PollOutcome::transient(TransientKind::ConnectionRefused),
            );
        }
        StateName::Revoked => {
            now = now.add(secs(30));
            m.on_poll(now, PollOutcome::denial(DenialKind::KeyDisabled));
        }
        StateName::Resuming => {
            now = now.add(secs(30));
            m.on_poll(now, PollOutcome::denial(DenialKind::KeyDisabled));
            now = now.add(secs(30));
            m.on_poll(now, PollOutcome::success(V1));
        }
        StateName::Deleted => {
            now = now.add(secs(30));
            m.on_deleted(now);
        }
        StateName::Shredded => {
            now = now.add(secs(30));
            m.on_poll(now, PollOutcome::denial(DenialKind::KeyMaterialDestroyed));
        }
        StateName::Provisioning | StateName::HealthyMmk => unreachable!(),
    }
    assert_eq!(m.state_name(), state, "builder reached the wrong state");
    (m, now)
}

/// One row of the transition table: name, profile, from, input, expected state, effects.
type Row = (
    &'static str,
    KeyAccessProfile,
    StateName,
    Input,
    StateName,
    Vec<&'static str>,
);

#[derive(Clone, Debug)]
enum Input {
    Success,
    Transient,
    Denial,
    /// A tick this long after entering the state.
    Tick(Duration),
    Provisioned,
    Deleted,
    Recovered,
    /// unwrapKey: 500 `HSMKeyMaterialDestroyed` (the HSM was zeroised).
    Destroyed,
    /// unwrapKey: 404, and no deleted entry (the key was purged).
    Purged,
}

fn apply(m: &mut KeyAccessMachine, entered: SimTime, input: &Input) -> Vec<Effect> {
    let at = entered.add(secs(30));
    match input {
        Input::Success => m.on_poll(at, PollOutcome::success(V1)),
        Input::Transient => m.on_poll(at, PollOutcome::transient(TransientKind::Timeout)),
        Input::Denial => m.on_poll(at, PollOutcome::denial(DenialKind::KeyDisabled)),
        Input::Tick(d) => m.on_tick(entered.add(*d)),
        Input::Provisioned => m.on_provisioned(at),
        Input::Deleted => m.on_deleted(at),
        Input::Recovered => m.on_recovered(at),
        Input::Destroyed => m.on_poll(at, PollOutcome::denial(DenialKind::KeyMaterialDestroyed)),
        Input::Purged => m.on_poll(at, PollOutcome::denial(DenialKind::KeyPurged)),
    }
}

#[test]
fn every_transition_row() {
    use Input::*;
    use StateName as S;
    let revoke = [
        "event:storage.poll.denied",
        "event:storage.state.revoked",
        "DropAekCache",
        "DeleteHotTier",
    ];
    let deleted = ["event:storage.state.deleted", "DropAekCache"];
    let shred = [
        "event:storage.poll.denied",
        "event:storage.state.shredded",
        "DropAekCache",
        "DeleteHotTier",
    ];
    // From revoked or resuming the hot tier is already gone.
    let shred_cold = [
        "event:storage.poll.denied",
        "event:storage.state.shredded",
        "DropAekCache",
    ];
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        ("provisioned", p2020(), S::Provisioning, Provisioned, S::HealthyMmk, vec!["event:storage.state.healthy_mmk"]),
        ("no poll while provisioning", p2020(), S::Provisioning, Success, S::Provisioning, vec![]),
        ("delete while provisioning", p2020(), S::Provisioning, Deleted, S::Deleted, deleted.to_vec()),
        ("no CMK: polls ignored", p2020(), S::HealthyMmk, Success, S::HealthyMmk, vec![]),
        ("no CMK: denial ignored", p2020(), S::HealthyMmk, Denial, S::HealthyMmk, vec![]),
        ("provisioned twice", p2020(), S::HealthyMmk, Provisioned, S::HealthyMmk, vec![]),
        ("healthy poll", p2020(), S::HealthyCmk, Success, S::HealthyCmk, vec!["event:storage.poll.succeeded"]),
        ("first transient", p2020(), S::HealthyCmk, Transient, S::Degraded, vec!["event:storage.poll.transient", "event:storage.state.degraded"]),
        ("healthy denial", p2020(), S::HealthyCmk, Denial, S::Revoked, revoke.to_vec()),
        ("healthy tick", p2020(), S::HealthyCmk, Tick(mins(90)), S::HealthyCmk, vec![]),
        ("healthy delete", p2020(), S::HealthyCmk, Deleted, S::Deleted, deleted.to_vec()),
        ("recover when not deleted", p2020(), S::HealthyCmk, Recovered, S::HealthyCmk, vec![]),
        ("degraded recovers", p2020(), S::Degraded, Success, S::HealthyCmk, vec!["event:storage.poll.succeeded", "event:storage.state.healthy_cmk"]),
        ("degraded again", p2020(), S::Degraded, Transient, S::Degraded, vec!["event:storage.poll.transient"]),
        ("degraded denial", p2020(), S::Degraded, Denial, S::Revoked, revoke.to_vec()),
        ("degraded within grace", p2020(), S::Degraded, Tick(mins(29)), S::Degraded, vec![]),
        ("degraded past grace", p2020(), S::Degraded, Tick(mins(30)), S::Unavailable, vec!["event:storage.state.unavailable", "DropAekCache"]),
        ("no grace: never unavailable", pcurrent(), S::Degraded, Tick(Duration::from_secs(3 * 86_400)), S::Degraded, vec![]),
        ("unavailable recovers", p2020(), S::Unavailable, Success, S::HealthyCmk, vec!["event:storage.poll.succeeded", "event:storage.state.healthy_cmk", "DrainBuffer"]),
        ("unavailable still down", p2020(), S::Unavailable, Transient, S::Unavailable, vec!["event:storage.poll.transient"]),
        ("unavailable denial", p2020(), S::Unavailable, Denial, S::Revoked, revoke.to_vec()),
        ("unavailable within window", p2020(), S::Unavailable, Tick(mins(359)), S::Unavailable, vec![]),
        ("unavailable past window", p2020(), S::Unavailable, Tick(mins(360)), S::Unavailable, vec!["ExpireBuffer"]),
        ("unavailable delete", p2020(), S::Unavailable, Deleted, S::Deleted, deleted.to_vec()),
        ("access restored", p2020(), S::Revoked, Success, S::Resuming, vec!["event:storage.poll.succeeded", "event:storage.state.resuming"]),
        ("revoked, vault down", p2020(), S::Revoked, Transient, S::Revoked, vec!["event:storage.poll.transient"]),
        ("revoked stays", p2020(), S::Revoked, Denial, S::Revoked, vec!["event:storage.poll.denied"]),
        ("revoked tick", p2020(), S::Revoked, Tick(Duration::from_secs(86_400)), S::Revoked, vec![]),
        ("revoked delete", p2020(), S::Revoked, Deleted, S::Deleted, deleted.to_vec()),
        ("resuming poll", p2020(), S::Resuming, Success, S::Resuming, vec!["event:storage.poll.succeeded"]),
        ("resuming transient", p2020(), S::Resuming, Transient, S::Resuming, vec!["event:storage.poll.transient"]),
        ("re-revoked while resuming", p2020(), S::Resuming, Denial, S::Revoked, vec!["event:storage.poll.denied", "event:storage.state.revoked", "DropAekCache"]),
        ("resuming before delay", p2020(), S::Resuming, Tick(mins(29)), S::Resuming, vec![]),
        ("resumed at delay", p2020(), S::Resuming, Tick(mins(30)), S::HealthyCmk, vec!["event:storage.state.healthy_cmk", "RebuildHotTier", "DrainBuffer"]),
        ("deleted ignores polls", p2020(), S::Deleted, Success, S::Deleted, vec![]),
        ("deleted twice", p2020(), S::Deleted, Deleted, S::Deleted, vec![]),
        ("recovered", p2020(), S::Deleted, Recovered, S::HealthyCmk, vec!["event:storage.state.healthy_cmk"]),
        // Crypto-shredding: a permanent denial from any polling state; terminal.
        ("no CMK: destroyed ignored", p2020(), S::HealthyMmk, Destroyed, S::HealthyMmk, vec![]),
        ("healthy, HSM zeroised", p2020(), S::HealthyCmk, Destroyed, S::Shredded, shred.to_vec()),
        ("healthy, key purged", p2020(), S::HealthyCmk, Purged, S::Shredded, shred.to_vec()),
        ("degraded, HSM zeroised", p2020(), S::Degraded, Destroyed, S::Shredded, shred.to_vec()),
        ("unavailable, HSM zeroised", p2020(), S::Unavailable, Destroyed, S::Shredded, shred.to_vec()),
        ("revoked, key purged", p2020(), S::Revoked, Purged, S::Shredded, shred_cold.to_vec()),
        ("revoked, HSM zeroised", p2020(), S::Revoked, Destroyed, S::Shredded, shred_cold.to_vec()),
        ("resuming, HSM zeroised", p2020(), S::Resuming, Destroyed, S::Shredded, shred_cold.to_vec()),
        ("deleted ignores destroyed", p2020(), S::Deleted, Destroyed, S::Deleted, vec![]),
        ("shredded: no more polls", p2020(), S::Shredded, Success, S::Shredded, vec![]),
        ("shredded: denials ignored", p2020(), S::Shredded, Purged, S::Shredded, vec![]),
        ("shredded tick", p2020(), S::Shredded, Tick(Duration::from_secs(30 * 86_400)), S::Shredded, vec![]),
        ("shredded stays on delete", p2020(), S::Shredded, Deleted, S::Shredded, vec![]),
        ("shredded stays on recover", p2020(), S::Shredded, Recovered, S::Shredded, vec![]),
    ];
    for (name, profile, from, input, expected, effects) in rows {
        let (mut m, entered) = in_state(&profile, from);
        let got = apply(&mut m, entered, &input);
        assert_eq!(m.state_name(), expected, "row {name:?}: {from} + {input:?}");
        assert_eq!(labels(&got), effects, "row {name:?}: {from} + {input:?}");
    }
}

#[test]
fn ingest_and_query_per_state() {
    use StateName as S;
    let cmk = IngestDecision::Store {
        key: StoreKey::Cmk(KeyTarget {
            key: KeyRef::pinned("kv1", "k1", V1),
            wrapped_version: V1.into(),
        }),
    };
    #[rustfmt::skip]
    let rows: Vec<(S, IngestDecision, bool)> = vec![
        (S::Provisioning, IngestDecision::Drop(DropReason::NotProvisioned), false),
        (S::HealthyMmk, IngestDecision::Store { key: StoreKey::Mmk }, true),
        (S::HealthyCmk, cmk.clone(), true),
        (S::Degraded, cmk, true),
        (S::Unavailable, IngestDecision::Buffer, false),
        (S::Revoked, IngestDecision::Drop(DropReason::Revoked), false),
        (S::Resuming, IngestDecision::Drop(DropReason::Resuming), false),
        (S::Deleted, IngestDecision::Drop(DropReason::ClusterDeleted), false),
        (S::Shredded, IngestDecision::Drop(DropReason::Shredded), false),
    ];
    for (state, ingest, query_ok) in rows {
        let (m, _) = in_state(&p2020(), state);
        assert_eq!(m.ingest_decision(), ingest, "{state}");
        let query = m.query_allowed();
        assert_eq!(query.is_ok(), query_ok, "{state}: {query:?}");
        if let Err(refusal) = query {
            assert_eq!(refusal.state, state);
            assert!(!refusal.reason.is_empty());
        }
    }
}

#[test]
fn key_updates_per_state() {
    use StateName as S;
    let rows = [
        (S::Provisioning, false),
        (S::HealthyMmk, true),
        (S::HealthyCmk, true),
        (S::Degraded, true),
        (S::Unavailable, false),
        (S::Revoked, false),
        (S::Resuming, true),
        (S::Deleted, false),
        (S::Shredded, false),
    ];
    for (state, allowed) in rows {
        let (mut m, now) = in_state(&p2020(), state);
        assert_eq!(m.key_update_allowed().is_ok(), allowed, "{state}");
        let result = m.on_key_update(now, KeyRef::pinned("kv1", "k1", V2));
        match result {
            Ok(effects) => {
                assert!(allowed, "{state}");
                assert_eq!(
                    labels(&effects),
                    ["event:storage.key.rewrap_requested", "RewrapAek"]
                );
                // One update at a time.
                assert!(m
                    .on_key_update(now, KeyRef::pinned("kv1", "k1", V2))
                    .is_err());
            }
            Err(refusal) => {
                assert!(!allowed, "{state}");
                assert_eq!(refusal.state, state);
            }
        }
    }
    let (m, _) = in_state(&p2020(), S::Revoked);
    let refusal = m.key_update_allowed().unwrap_err();
    assert!(refusal.reason.contains("revoked"), "{refusal}");
}

#[test]
fn shredding_says_the_data_is_gone_for_good() {
    let (m, _) = in_state(&p2020(), StateName::Shredded);
    assert!(!m.wants_poll());
    assert_eq!(m.next_deadline(), None);
    let refusal = m.query_allowed().unwrap_err();
    assert_eq!(refusal.state, StateName::Shredded);
    assert!(
        refusal.reason.contains("permanently unreadable") && refusal.reason.contains("zeroised"),
        "{refusal}"
    );
    // The state event narrates it.
    let (mut m, at) = in_state(&p2020(), StateName::HealthyCmk);
    let effects = m.on_poll(at.add(secs(30)), PollOutcome::denial(DenialKind::KeyPurged));
    let message = effects
        .iter()
        .find_map(|e| match e {
            Effect::Event(ev @ KeyLoopEvent::StateChanged { .. }) => {
                Some(cmksim_sim::EventKind::narrate(ev))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(message, "storage c1: Key Vault answered unwrapKey with 404 KeyPurged: the customer-managed key was purged from the vault: storage shredded (data permanently unreadable); the account key can never be unwrapped again, so every block of this cluster is permanently unreadable (crypto-shredding); new ingest is dropped and queries fail for good");
    let denied = effects
        .iter()
        .find_map(|e| match e {
            Effect::Event(KeyLoopEvent::PollDenied { reason, .. }) => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(denied, "shredded");
    let refusal = m.query_allowed().unwrap_err();
    assert!(refusal.reason.contains("purged"), "{refusal}");
}

#[test]
fn cmk_configuration_rewraps_then_goes_healthy_cmk() {
    let (mut m, now) = in_state(&p2020(), StateName::HealthyMmk);
    let effects = m
        .on_cmk_configured(now, KeyRef::pinned("kv1", "k1", V1))
        .unwrap();
    assert_eq!(
        effects[1],
        Effect::RewrapAek {
            to: KeyRef::pinned("kv1", "k1", V1)
        }
    );
    // Until the rewrap is done, data stays under the MMK and nothing is polled.
    assert_eq!(
        m.ingest_decision(),
        IngestDecision::Store { key: StoreKey::Mmk }
    );
    assert!(!m.wants_poll());
    let target = KeyTarget {
        key: KeyRef::pinned("kv1", "k1", V1),
        wrapped_version: V1.into(),
    };
    let effects = m.on_rewrap_completed(now.add(secs(1)), target.clone());
    assert_eq!(
        labels(&effects),
        [
            "event:storage.key.rewrapped",
            "event:storage.state.healthy_cmk"
        ]
    );
    assert_eq!(m.key(), Some(&target));
    assert!(m.wants_poll());
}

#[test]
fn failed_rewrap_keeps_the_previous_key() {
    let (mut m, now) = in_state(&p2020(), StateName::HealthyCmk);
    m.on_key_update(now, KeyRef::pinned("kv2", "k9", V2))
        .unwrap();
    let failure = AccessFailure::Denial(DenialFailure {
        kind: DenialKind::PermissionRemoved,
        http_status: 403,
        code: "Forbidden".into(),
        message: "no wrapKey".into(),
    });
    let effects = m.on_rewrap_failed(now.add(secs(1)), &failure);
    assert_eq!(labels(&effects), ["event:storage.key.rewrap_failed"]);
    assert_eq!(m.key().unwrap().wrapped_version, V1);
    assert_eq!(m.state_name(), StateName::HealthyCmk);
    assert!(m.key_update_allowed().is_ok());
}

/// Polls at seeded 6–60 s intervals from `start` until `end`, each answered by `answer(now)`;
/// ticks at the machine's own deadlines like the driver does. Returns every state seen.
fn run(
    m: &mut KeyAccessMachine,
    start: SimTime,
    end: SimTime,
    seed: u64,
    mut answer: impl FnMut(SimTime) -> PollOutcome,
    mut each: impl FnMut(&KeyAccessMachine, SimTime, &[Effect]),
) -> SimTime {
    let mut rng = SeedTree::new(seed).stream("test/poll-interval");
    let (lo, hi) = (
        m.config().poll_interval_min.as_millis() as i64,
        m.config().poll_interval_max.as_millis() as i64,
    );
    let mut now = start;
    let mut next_poll = start;
    let mut steps = 0u32;
    while now < end {
        steps += 1;
        assert!(steps < 1_000_000, "runaway loop");
        let wake = m
            .next_deadline()
            .map_or(next_poll, |d| d.min(next_poll))
            .max(now);
        now = wake;
        let effects = if now >= next_poll {
            next_poll = SimTime(now.0 + rng.gen_range(lo..=hi));
            let outcome = answer(now);
            m.on_poll(now, outcome)
        } else {
            m.on_tick(now)
        };
        each(m, now, &effects);
        if wake == now && now < next_poll && m.next_deadline() == Some(now) {
            now = SimTime(now.0 + 1);
        }
    }
    now
}

#[test]
fn vault_down_ten_minutes_never_interrupts() {
    for profile in [p2020(), pcurrent()] {
        let (mut m, start) = in_state(&profile, StateName::HealthyCmk);
        let down_from = start.add(mins(5));
        let down_until = down_from.add(mins(10));
        run(
            &mut m,
            start,
            start.add(mins(60)),
            7,
            |now| {
                if now >= down_from && now < down_until {
                    PollOutcome::transient(TransientKind::ConnectionRefused)
                } else {
                    PollOutcome::success(V1)
                }
            },
            |m, _, _| {
                assert!(
                    matches!(m.state_name(), StateName::HealthyCmk | StateName::Degraded),
                    "{}",
                    m.state_name()
                );
                assert!(m.query_allowed().is_ok());
                assert!(matches!(m.ingest_decision(), IngestDecision::Store { .. }));
            },
        );
        assert_eq!(m.state_name(), StateName::HealthyCmk);
    }
}

#[test]
fn vault_down_45_minutes_under_2020_buffers_and_recovers() {
    let profile = p2020();
    let (mut m, start) = in_state(&profile, StateName::HealthyCmk);
    let down_from = start.add(mins(5));
    let down_until = down_from.add(mins(45));
    let mut first_failure = None;
    let mut unavailable_at = None;
    let mut recovered = Vec::new();
    run(
        &mut m,
        start,
        start.add(mins(120)),
        11,
        |now| {
            if now >= down_from && now < down_until {
                PollOutcome::transient(TransientKind::Timeout)
            } else {
                PollOutcome::success(V1)
            }
        },
        |m, now, effects| {
            if m.state_name() == StateName::Degraded && first_failure.is_none() {
                first_failure = Some(now);
            }
            if m.state_name() == StateName::Unavailable {
                unavailable_at.get_or_insert(now);
                assert_eq!(m.ingest_decision(), IngestDecision::Buffer);
                assert!(m.query_allowed().is_err());
            }
            for e in effects {
                if let Effect::DrainBuffer { expired_before } = e {
                    recovered.push((now, *expired_before));
                }
            }
        },
    );
    let first_failure = first_failure.unwrap();
    // Unavailable exactly when the grace has passed since the first failed poll (≈30 min).
    assert_eq!(unavailable_at.unwrap(), first_failure.add(mins(30)));
    assert!(first_failure.since(down_from) <= secs(60));
    // Recovered at the first poll after the vault came back, draining exactly once.
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let (at, expired_before) = recovered[0];
    assert!(at >= down_until && at.since(down_until) <= secs(60));
    assert_eq!(expired_before, at.sub(profile.buffer_window));
    assert_eq!(m.state_name(), StateName::HealthyCmk);
}

#[test]
fn vault_down_45_minutes_under_current_never_unavailable() {
    let (mut m, start) = in_state(&pcurrent(), StateName::HealthyCmk);
    let down_until = start.add(mins(45));
    run(
        &mut m,
        start,
        start.add(mins(90)),
        3,
        |now| {
            if now < down_until {
                PollOutcome::transient(TransientKind::ServerError5xx)
            } else {
                PollOutcome::success(V1)
            }
        },
        |m, _, _| {
            assert_ne!(m.state_name(), StateName::Unavailable);
            assert!(m.query_allowed().is_ok());
        },
    );
    assert_eq!(m.state_name(), StateName::HealthyCmk);
}

#[test]
fn outage_longer_than_the_buffer_window_expires_the_oldest() {
    let (mut m, start) = in_state(&p2020(), StateName::HealthyCmk);
    let mut expiries = 0;
    run(
        &mut m,
        start,
        start.add(mins(8 * 60)),
        5,
        |_| PollOutcome::transient(TransientKind::NameResolution),
        |_, _, effects| {
            expiries += effects
                .iter()
                .filter(|e| matches!(e, Effect::ExpireBuffer { .. }))
                .count();
        },
    );
    assert_eq!(m.state_name(), StateName::Unavailable);
    // Buffering began ≈30 min in; the window (6 h) passed ≈6h30 in; expiry runs from then on.
    assert!(expiries > 0);
}

#[test]
fn denial_revokes_at_next_poll_and_restore_resumes_after_the_delay() {
    let profile = p2020();
    let (mut m, start) = in_state(&profile, StateName::HealthyCmk);
    let disabled_at = start.add(mins(10));
    let enabled_at = start.add(mins(70));
    let mut revoked_at = None;
    let mut restored_at = None;
    let mut resumed_at = None;
    let mut detected_within_ms = 0;
    run(
        &mut m,
        start,
        start.add(mins(150)),
        21,
        |now| {
            if now >= disabled_at && now < enabled_at {
                PollOutcome::denial(DenialKind::KeyDisabled)
            } else {
                PollOutcome::success(V1)
            }
        },
        |m, now, effects| {
            for e in effects {
                if let Effect::Event(KeyLoopEvent::StateChanged {
                    to,
                    detected_within_ms: d,
                    ..
                }) = e
                {
                    match to {
                        StateName::Revoked => {
                            revoked_at = Some(now);
                            detected_within_ms = *d;
                        }
                        StateName::Resuming => restored_at = Some(now),
                        StateName::HealthyCmk if restored_at.is_some() => resumed_at = Some(now),
                        _ => {}
                    }
                }
            }
            if m.state_name() == StateName::Revoked {
                assert_eq!(
                    m.ingest_decision(),
                    IngestDecision::Drop(DropReason::Revoked)
                );
                assert!(m.query_allowed().is_err());
            }
        },
    );
    let revoked_at = revoked_at.unwrap();
    assert!(revoked_at.since(disabled_at) <= profile.poll_interval_max);
    assert!(revoked_at.since(disabled_at) <= profile.revocation_deadline);
    assert!(detected_within_ms <= profile.poll_interval_max.as_millis() as u64);
    let restored_at = restored_at.unwrap();
    assert!(restored_at.since(enabled_at) <= profile.poll_interval_max);
    assert_eq!(resumed_at.unwrap(), restored_at.add(profile.resume_delay));
    assert_eq!(m.state_name(), StateName::HealthyCmk);
}

#[test]
fn pinned_rotation_changes_nothing_and_disabling_the_old_version_revokes() {
    let (mut m, start) = in_state(&p2020(), StateName::HealthyCmk);
    // A new version exists in the vault; the machine does not follow a pinned key.
    assert!(!m.version_check_due(start));
    assert!(m.on_newest_version(start, V2).is_empty());
    let mut now = start;
    for _ in 0..10 {
        now = now.add(secs(45));
        m.on_poll(now, PollOutcome::success(V1));
    }
    assert_eq!(m.key().unwrap().wrapped_version, V1);
    // Disabling the pinned (old) version before updating the cluster is a revocation...
    now = now.add(secs(45));
    m.on_poll(now, PollOutcome::denial(DenialKind::KeyDisabled));
    assert_eq!(m.state_name(), StateName::Revoked);
    // ...and the cluster cannot be updated to the new version while revoked.
    assert!(m
        .on_key_update(now, KeyRef::pinned("kv1", "k1", V2))
        .is_err());
}

#[test]
fn pinned_update_after_rotation_rewraps() {
    let (mut m, now) = in_state(&p2020(), StateName::HealthyCmk);
    m.on_key_update(now, KeyRef::pinned("kv1", "k1", V2))
        .unwrap();
    let target = KeyTarget {
        key: KeyRef::pinned("kv1", "k1", V2),
        wrapped_version: V2.into(),
    };
    m.on_rewrap_completed(now.add(secs(2)), target);
    assert_eq!(m.key().unwrap().wrapped_version, V2);
    assert_eq!(m.state_name(), StateName::HealthyCmk);
    // The old version can now be disabled: polls unwrap with V2.
    let effects = m.on_poll(now.add(secs(40)), PollOutcome::success(V2));
    assert_eq!(labels(&effects), ["event:storage.poll.succeeded"]);
}

#[test]
fn versionless_key_follows_the_newest_version_within_the_deadline() {
    let profile = pcurrent();
    let mut m = KeyAccessMachine::provisioned("c1", &profile, t0(), None);
    let key = KeyRef::versionless("kv1", "k1");
    m.on_cmk_configured(t0(), key.clone()).unwrap();
    m.on_rewrap_completed(
        t0(),
        KeyTarget {
            key: key.clone(),
            wrapped_version: V1.into(),
        },
    );
    assert!(m.follows_newest_version());
    let rotated_at = t0().add(mins(7));
    let mut followed_at = None;
    let mut now = t0();
    let mut steps = 0;
    while followed_at.is_none() {
        steps += 1;
        assert!(steps < 10_000);
        now = now.add(secs(37));
        let wrapped = m.key().unwrap().wrapped_version.clone();
        m.on_poll(now, PollOutcome::success(&wrapped));
        if m.version_check_due(now) {
            let newest = if now >= rotated_at { V2 } else { V1 };
            let effects = m.on_newest_version(now, newest);
            if newest == V2 {
                assert_eq!(
                    labels(&effects),
                    [
                        "event:storage.key.new_version_detected",
                        "event:storage.key.rewrap_requested",
                        "RewrapAek"
                    ]
                );
                assert!(!m.version_check_due(now));
                m.on_rewrap_completed(
                    now.add(secs(1)),
                    KeyTarget {
                        key: key.clone(),
                        wrapped_version: V2.into(),
                    },
                );
                followed_at = Some(now.add(secs(1)));
            } else {
                assert!(effects.is_empty());
            }
        }
    }
    assert!(followed_at.unwrap().since(rotated_at) <= profile.version_follow_deadline);
    assert_eq!(m.key().unwrap().wrapped_version, V2);
}

#[test]
fn versionless_reference_is_not_followed_under_2020() {
    let mut m = KeyAccessMachine::provisioned("c1", &p2020(), t0(), None);
    let key = KeyRef::versionless("kv1", "k1");
    m.on_cmk_configured(t0(), key.clone()).unwrap();
    m.on_rewrap_completed(
        t0(),
        KeyTarget {
            key,
            wrapped_version: V1.into(),
        },
    );
    assert!(!m.follows_newest_version());
    assert!(!m.version_check_due(t0().add(mins(120))));
    assert!(m.on_newest_version(t0().add(mins(120)), V2).is_empty());
}

#[test]
fn narration_reads_like_the_brief() {
    let (mut m, now) = in_state(&p2020(), StateName::HealthyCmk);
    let effects = m.on_poll(
        now.add(secs(30)),
        PollOutcome::denial(DenialKind::KeyDisabled),
    );
    let message = effects
        .iter()
        .find_map(|e| match e {
            Effect::Event(ev @ KeyLoopEvent::StateChanged { .. }) => {
                Some(cmksim_sim::EventKind::narrate(ev))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(message, "storage c1: Key Vault denied unwrapKey (403 KeyDisabled): storage revoked; new ingest will be dropped, queries fail, the hot cache is deleted");
}

/// Random interleavings of vault answers: the invariants hold whatever the order.
#[test]
fn invariants_hold_under_random_vault_behaviour() {
    for (seed, profile) in (0..40u64).map(|s| (s, if s % 2 == 0 { p2020() } else { pcurrent() })) {
        let (mut m, start) = in_state(&profile, StateName::HealthyCmk);
        let mut rng = SeedTree::new(seed).stream("test/poll-interval");
        // Vault behaviour changes every 1–40 minutes.
        let mut phases = Vec::new();
        let mut at = start;
        for _ in 0..30 {
            at = at.add(secs(rng.gen_range(60..2400)));
            phases.push((at, rng.gen_range(0..3u8)));
        }
        let end = at;
        let mut last_denial_change: Option<SimTime> = None;
        let mut last_restore: Option<SimTime> = None;
        run(
            &mut m,
            start,
            end,
            seed,
            |now| {
                let phase = phases
                    .iter()
                    .rev()
                    .find(|(t, _)| *t <= now)
                    .map_or(0, |p| p.1);
                match phase {
                    0 => PollOutcome::success(V1),
                    1 => PollOutcome::transient(TransientKind::Timeout),
                    _ => PollOutcome::denial(DenialKind::PermissionRemoved),
                }
            },
            |m, now, effects| {
                if profile.outage_grace.is_none() {
                    assert_ne!(m.state_name(), StateName::Unavailable);
                }
                for e in effects {
                    if let Effect::Event(KeyLoopEvent::StateChanged {
                        to,
                        from,
                        detected_within_ms,
                        ..
                    }) = e
                    {
                        if *to == StateName::Revoked {
                            assert!(*detected_within_ms <= 60_000);
                            last_denial_change = Some(now);
                        }
                        if *to == StateName::Resuming {
                            last_restore = Some(now);
                        }
                        if *from == StateName::Resuming && *to != StateName::Revoked {
                            assert_eq!(now, last_restore.unwrap().add(profile.resume_delay));
                        }
                    }
                }
            },
        );
        let _ = last_denial_change;
    }
}

/// The machine a restarted storage builds for a CMK cluster.
fn restarted(profile: &KeyAccessProfile, now: SimTime) -> KeyAccessMachine {
    KeyAccessMachine::provisioned(
        "c1",
        profile,
        now,
        Some(KeyTarget {
            key: KeyRef::pinned("kv1", "k1", V1),
            wrapped_version: V1.into(),
        }),
    )
}

#[test]
fn a_restart_keeps_a_revocation_and_a_resume_in_progress() {
    // Revoked before the restart: still revoked; access returning then starts the full delay.
    let (before, at) = in_state(&p2020(), StateName::Revoked);
    let restart = at.add(mins(5));
    let mut m = restarted(&p2020(), restart);
    assert!(m.restore(before.state().clone()));
    assert_eq!(m.state_name(), StateName::Revoked);
    assert!(matches!(
        m.ingest_decision(),
        IngestDecision::Drop(DropReason::Revoked)
    ));
    m.on_poll(restart, PollOutcome::success(V1));
    assert_eq!(m.state_name(), StateName::Resuming);
    assert_eq!(m.next_deadline(), Some(restart.add(p2020().resume_delay)));

    // Resuming before the restart: the deadline is the one set when access returned.
    let (before, at) = in_state(&p2020(), StateName::Resuming);
    let deadline = before.next_deadline().unwrap();
    let mut m = restarted(&p2020(), at.add(mins(1)));
    assert!(m.restore(before.state().clone()));
    assert_eq!(m.next_deadline(), Some(deadline));
    m.on_tick(deadline);
    assert_eq!(m.state_name(), StateName::HealthyCmk);
}

#[test]
fn a_restart_keeps_an_outage_but_not_a_passing_state() {
    let (before, at) = in_state(&p2020(), StateName::Unavailable);
    let mut m = restarted(&p2020(), at.add(mins(1)));
    assert!(m.restore(before.state().clone()));
    assert!(matches!(m.ingest_decision(), IngestDecision::Buffer));
    // Degraded and healthy are re-learned from the first poll, not restored.
    for state in [StateName::Degraded, StateName::HealthyCmk] {
        let (before, at) = in_state(&p2020(), state);
        let mut m = restarted(&p2020(), at);
        assert!(!m.restore(before.state().clone()), "{state:?}");
        assert_eq!(m.state_name(), StateName::HealthyCmk);
    }
    // Under the Microsoft-managed key there is no customer key to have been revoked.
    let (before, at) = in_state(&p2020(), StateName::Revoked);
    let mut mmk = KeyAccessMachine::provisioned("c1", &p2020(), at, None);
    assert!(!mmk.restore(before.state().clone()));
    assert_eq!(mmk.state_name(), StateName::HealthyMmk);
}
