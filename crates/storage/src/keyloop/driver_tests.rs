//! The poll driver against a fake Key Vault and a fake storage host, in paused tokio time:
//! simulated hours pass in milliseconds, and every poll, timeout and deadline is exact.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use zeroize::Zeroizing;

use super::*;
use crate::keyloop::driver::{KeyLoopError, MAX_PENDING_EFFECTS, PENDING_EFFECTS_MAX};

const V1: &str = "11111111111111111111111111111111";
const V2: &str = "22222222222222222222222222222222";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Up,
    Down,
    Hang,
}

struct VaultState {
    mode: Mode,
    /// Oldest first; the last is the newest.
    versions: Vec<String>,
    disabled: BTreeSet<String>,
}

#[derive(Clone)]
struct FakeVault(Arc<Mutex<VaultState>>);

impl FakeVault {
    fn new() -> FakeVault {
        FakeVault(Arc::new(Mutex::new(VaultState {
            mode: Mode::Up,
            versions: vec![V1.to_string()],
            disabled: BTreeSet::new(),
        })))
    }
    fn set_mode(&self, mode: Mode) {
        self.0.lock().unwrap().mode = mode;
    }
    fn set_enabled(&self, version: &str, enabled: bool) {
        let mut s = self.0.lock().unwrap();
        if enabled {
            s.disabled.remove(version);
        } else {
            s.disabled.insert(version.to_string());
        }
    }
    fn rotate(&self, version: &str) {
        self.0.lock().unwrap().versions.push(version.to_string());
    }
    async fn gate(&self) -> Result<(), AccessFailure> {
        let mode = self.0.lock().unwrap().mode;
        match mode {
            Mode::Up => Ok(()),
            Mode::Down => Err(AccessFailure::Transient(TransientFailure {
                kind: TransientKind::ConnectionRefused,
                detail: "connection refused".into(),
            })),
            Mode::Hang => std::future::pending().await,
        }
    }
    fn check_enabled(&self, version: &str) -> Result<(), AccessFailure> {
        if self.0.lock().unwrap().disabled.contains(version) {
            return Err(AccessFailure::Denial(DenialFailure {
                kind: DenialKind::KeyDisabled,
                http_status: 403,
                code: "Forbidden".into(),
                message: "Operation unwrapKey is not allowed on a disabled key.".into(),
            }));
        }
        Ok(())
    }
}

impl VaultAccess for FakeVault {
    async fn unwrap_aek(&self, wrapped: &WrappedAek) -> Result<UnwrappedAek, AccessFailure> {
        self.gate().await?;
        let version = wrapped.target.wrapped_version.clone();
        self.check_enabled(&version)?;
        let aek = wrapped.ciphertext[version.len()..].to_vec();
        Ok(UnwrappedAek {
            kid_version: version,
            aek: Zeroizing::new(aek),
        })
    }

    async fn wrap_aek(&self, key: &KeyRef, aek: &[u8]) -> Result<WrappedAek, AccessFailure> {
        self.gate().await?;
        let version = match &key.version {
            KeyVersionSpec::Pinned(v) => v.clone(),
            KeyVersionSpec::Versionless => self.0.lock().unwrap().versions.last().cloned().unwrap(),
        };
        self.check_enabled(&version)?;
        let mut ciphertext = version.as_bytes().to_vec();
        ciphertext.extend_from_slice(aek);
        Ok(WrappedAek {
            target: KeyTarget {
                key: key.clone(),
                wrapped_version: version,
            },
            algorithm: "RSA-OAEP-256".into(),
            ciphertext,
        })
    }

    async fn newest_version(&self, _vault: &str, _key: &str) -> Result<String, AccessFailure> {
        self.gate().await?;
        Ok(self.0.lock().unwrap().versions.last().cloned().unwrap())
    }
}

#[derive(Default)]
struct HostState {
    wrapped: Option<WrappedAek>,
    /// Set: the stored wrapping cannot be read (a corrupt record), with this error.
    unreadable: Option<String>,
    cached: Option<Vec<u8>>,
    applied: Vec<(SimTime, String)>,
}

#[derive(Default)]
struct FakeHost(Mutex<HostState>);

impl FakeHost {
    fn applied(&self, label: &str) -> Vec<SimTime> {
        let s = self.0.lock().unwrap();
        s.applied
            .iter()
            .filter(|(_, l)| l == label)
            .map(|(t, _)| *t)
            .collect()
    }
}

impl KeyLoopHost for FakeHost {
    fn wrapped_aek(&self) -> Result<Option<WrappedAek>, HostError> {
        let s = self.0.lock().unwrap();
        match &s.unreadable {
            Some(error) => Err(HostError(error.clone())),
            None => Ok(s.wrapped.clone()),
        }
    }
    fn cached_aek(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.0.lock().unwrap().cached.clone().map(Zeroizing::new)
    }
    fn aek_unwrapped(&self, _now: SimTime, aek: Zeroizing<Vec<u8>>) {
        self.0.lock().unwrap().cached = Some(aek.to_vec());
    }
    fn store_wrapped_aek(&self, _now: SimTime, wrapped: WrappedAek) -> Result<(), HostError> {
        self.0.lock().unwrap().wrapped = Some(wrapped);
        Ok(())
    }
    fn apply(&self, now: SimTime, effect: &Effect) -> Result<(), HostError> {
        let mut s = self.0.lock().unwrap();
        if *effect == Effect::DropAekCache {
            s.cached = None;
        }
        s.applied.push((now, effect.label()));
        Ok(())
    }
}

struct Rig {
    handle: KeyLoopHandle,
    vault: FakeVault,
    host: Arc<FakeHost>,
    events: EventLog,
    clock: Clock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(profile: Profile, key: KeyRef, seed: u64) -> Rig {
        let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
        let events = EventLog::default();
        let vault = FakeVault::new();
        let host = Arc::new(FakeHost::default());
        host.0.lock().unwrap().cached = Some(vec![7u8; 32]);
        let machine = KeyAccessMachine::provisioned("c1", &profile.key_access, clock.now(), None);
        let rng = SeedTree::new(seed).source("storage/c1/poll-interval");
        let (driver, handle) = KeyLoopDriver::new(
            machine,
            vault.clone(),
            host.clone(),
            clock.clone(),
            rng,
            events.clone(),
            DriverConfig::default(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(driver.run(async move {
            let _ = stopped.await;
        }));
        handle.update_key(clock.now(), key).unwrap();
        let rig = Rig {
            handle,
            vault,
            host,
            events,
            clock,
            stop: Some(stop),
            task,
        };
        rig.sleep(Duration::from_secs(1)).await;
        assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
        rig
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn first(&self, kind: &str) -> Option<SimTime> {
        self.events.of_kind(kind).first().map(|e| e.at())
    }

    async fn stop(mut self) -> EventLog {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
        self.events
    }
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[tokio::test(start_paused = true)]
async fn denial_revokes_at_next_poll_and_access_resumes_after_the_delay() {
    let profile = Profile::azure_2020();
    let rig = Rig::start(profile.clone(), KeyRef::pinned("kv1", "k1", V1), 1).await;
    rig.sleep(mins(5)).await;
    assert!(rig.events.of_kind("storage.poll.succeeded").len() >= 5);

    let disabled_at = rig.clock.now();
    rig.vault.set_enabled(V1, false);
    rig.sleep(Duration::from_secs(61)).await;
    assert_eq!(rig.handle.state_name(), StateName::Revoked);
    let revoked_at = rig.first("storage.state.revoked").unwrap();
    assert!(revoked_at.since(disabled_at) <= Duration::from_secs(60));
    assert_eq!(rig.host.applied("DeleteHotTier"), vec![revoked_at]);
    assert!(
        rig.host.0.lock().unwrap().cached.is_none(),
        "AEK cache dropped"
    );
    assert_eq!(
        rig.handle.ingest_decision(),
        IngestDecision::Drop(DropReason::Revoked)
    );
    assert!(rig.handle.key_update_allowed().is_err());
    let message = &rig.events.of_kind("storage.state.revoked")[0].message;
    assert!(message.contains("403 Forbidden/KeyDisabled"), "{message}");

    rig.sleep(mins(20)).await;
    rig.vault.set_enabled(V1, true);
    let enabled_at = rig.clock.now();
    rig.sleep(mins(45)).await;
    let restored_at = rig.first("storage.state.resuming").unwrap();
    assert!(restored_at.since(enabled_at) <= Duration::from_secs(60));
    let resumed = rig.events.of_kind("storage.state.healthy_cmk");
    let resumed_at = resumed.last().unwrap().at();
    assert_eq!(resumed_at, restored_at.add(profile.key_access.resume_delay));
    assert_eq!(rig.host.applied("RebuildHotTier"), vec![resumed_at]);
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn outage_of_45_minutes_under_2020_makes_storage_unavailable_then_drains_once() {
    let profile = Profile::azure_2020();
    let rig = Rig::start(profile.clone(), KeyRef::pinned("kv1", "k1", V1), 2).await;
    rig.sleep(mins(2)).await;
    rig.vault.set_mode(Mode::Down);
    rig.sleep(mins(45)).await;
    assert_eq!(rig.handle.state_name(), StateName::Unavailable);
    assert_eq!(rig.handle.ingest_decision(), IngestDecision::Buffer);
    assert!(rig.handle.query_allowed().is_err());
    let degraded_at = rig.first("storage.state.degraded").unwrap();
    let unavailable_at = rig.first("storage.state.unavailable").unwrap();
    assert_eq!(unavailable_at, degraded_at.add(mins(30)));
    rig.vault.set_mode(Mode::Up);
    rig.sleep(mins(5)).await;
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    assert_eq!(rig.host.applied("DrainBuffer").len(), 1);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_stored_wrapping_fails_the_polls_instead_of_skipping_them() {
    let profile = Profile::azure_2020();
    let rig = Rig::start(profile.clone(), KeyRef::pinned("kv1", "k1", V1), 4).await;
    rig.sleep(mins(2)).await;
    rig.host.0.lock().unwrap().unreadable = Some("the wrapped AEK of acct is corrupt".into());
    rig.sleep(mins(45)).await;
    // Failed closed, as for a vault that cannot be reached: the cached AEK served for the
    // profile's grace, then storage became unavailable.
    assert_eq!(rig.handle.state_name(), StateName::Unavailable);
    let transient = rig.events.of_kind("storage.poll.transient");
    assert!(transient.len() > 20, "{}", transient.len());
    assert_eq!(transient[0].data["kind"], "stored_key_unreadable");
    assert_eq!(
        transient[0].data["detail"],
        "the wrapped AEK of acct is corrupt"
    );
    let degraded_at = rig.first("storage.state.degraded").unwrap();
    assert_eq!(
        rig.first("storage.state.unavailable"),
        Some(degraded_at.add(mins(30)))
    );
    rig.host.0.lock().unwrap().unreadable = None;
    rig.sleep(mins(5)).await;
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_vault_times_out_as_transient_and_never_interrupts_under_current() {
    let rig = Rig::start(Profile::azure_current(), KeyRef::pinned("kv1", "k1", V1), 3).await;
    rig.vault.set_mode(Mode::Hang);
    rig.sleep(mins(90)).await;
    assert_eq!(rig.handle.state_name(), StateName::Degraded);
    assert!(rig.handle.query_allowed().is_ok());
    let transient = rig.events.of_kind("storage.poll.transient");
    assert!(transient.len() > 50);
    assert_eq!(transient[0].data["kind"], "timeout", "{:?}", transient[0]);
    assert!(rig.first("storage.state.unavailable").is_none());
    rig.vault.set_mode(Mode::Up);
    rig.sleep(mins(2)).await;
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn versionless_key_follows_rotation_within_the_deadline() {
    let profile = Profile::azure_current();
    let rig = Rig::start(profile.clone(), KeyRef::versionless("kv1", "k1"), 4).await;
    assert_eq!(rig.handle.key().unwrap().wrapped_version, V1);
    rig.sleep(mins(10)).await;
    rig.vault.rotate(V2);
    let rotated_at = rig.clock.now();
    rig.sleep(mins(61)).await;
    assert_eq!(rig.handle.key().unwrap().wrapped_version, V2);
    assert_eq!(
        rig.host
            .wrapped_aek()
            .unwrap()
            .unwrap()
            .target
            .wrapped_version,
        V2
    );
    let followed_at = rig
        .events
        .of_kind("storage.key.rewrapped")
        .last()
        .unwrap()
        .at();
    assert!(followed_at.since(rotated_at) <= profile.key_access.version_follow_deadline);
    // Disabling the old version after the follow changes nothing.
    rig.vault.set_enabled(V1, false);
    rig.sleep(mins(5)).await;
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pinned_key_ignores_rotation_until_updated() {
    let rig = Rig::start(Profile::azure_2020(), KeyRef::pinned("kv1", "k1", V1), 5).await;
    rig.vault.rotate(V2);
    rig.sleep(mins(120)).await;
    assert_eq!(rig.handle.key().unwrap().wrapped_version, V1);
    rig.handle
        .update_key(rig.clock.now(), KeyRef::pinned("kv1", "k1", V2))
        .unwrap();
    rig.sleep(Duration::from_secs(1)).await;
    assert_eq!(rig.handle.key().unwrap().wrapped_version, V2);
    rig.vault.set_enabled(V1, false);
    rig.sleep(mins(5)).await;
    assert_eq!(rig.handle.state_name(), StateName::HealthyCmk);
    rig.stop().await;
}

#[tokio::test(start_paused = true)]
async fn polls_are_6_to_60_seconds_apart_and_the_log_is_reproducible() {
    async fn once(seed: u64) -> String {
        let rig = Rig::start(Profile::azure_2020(), KeyRef::pinned("kv1", "k1", V1), seed).await;
        rig.sleep(mins(60)).await;
        let events = rig.stop().await;
        let polls = events.of_kind("storage.poll.succeeded");
        for pair in polls.windows(2) {
            let gap = pair[1].at().since(pair[0].at());
            assert!(
                gap >= Duration::from_secs(6) && gap <= Duration::from_secs(60),
                "{gap:?}"
            );
        }
        events.to_jsonl()
    }
    let a = once(9).await;
    assert_eq!(a, once(9).await);
    assert_ne!(a, once(10).await);
}

#[tokio::test(start_paused = true)]
async fn commands_are_refused_at_the_queue_bound_and_taken_again_once_the_driver_drains() {
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let events = EventLog::default();
    let host = Arc::new(FakeHost::default());
    let machine =
        KeyAccessMachine::provisioned("c1", &Profile::azure_2020().key_access, clock.now(), None);
    let (mut driver, handle) = KeyLoopDriver::new(
        machine,
        FakeVault::new(),
        host.clone(),
        clock.clone(),
        SeedTree::new(1).source("storage/c1/poll-interval"),
        events.clone(),
        DriverConfig::default(),
    );
    // The driver is stuck (never stepped): each delete queues one DropAekCache.
    let mut taken = 0usize;
    let mut refused = 0usize;
    for _ in 0..(2 * MAX_PENDING_EFFECTS) {
        match handle.deleted(clock.now()) {
            Ok(()) => {
                taken += 1;
                // Recovery queues nothing; the 64th delete fills the queue, so it is refused.
                match handle.recovered(clock.now()) {
                    Ok(()) | Err(KeyLoopError::Busy { .. }) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            Err(KeyLoopError::Busy { cluster }) => {
                assert_eq!(cluster, "c1");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
        assert!(handle.pending_effects() <= PENDING_EFFECTS_MAX);
    }
    assert_eq!(taken, MAX_PENDING_EFFECTS);
    assert_eq!(refused, MAX_PENDING_EFFECTS);
    assert_eq!(handle.pending_effects(), MAX_PENDING_EFFECTS);
    // Refused, never dropped: every taken command's effect is carried out, once.
    driver.step().await;
    assert_eq!(handle.pending_effects(), 0);
    assert_eq!(host.applied("DropAekCache").len(), MAX_PENDING_EFFECTS);
    handle.recovered(clock.now()).unwrap();
    handle.deleted(clock.now()).unwrap();
    assert_eq!(handle.pending_effects(), 1);
}
