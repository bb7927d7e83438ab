//! The poll driver: the async task that feeds one cluster's [`KeyAccessMachine`].
//!
//! It owns no rules. It sleeps a uniform random 6–60 s (the profile's `poll_interval_min/max`,
//! drawn from the seeded stream `storage/<cluster>/poll-interval`) on the simulation [`Clock`],
//! wakes early for the machine's own deadlines (outage grace, resume time), calls unwrapKey
//! through a [`VaultAccess`] with a per-call timeout, feeds the classified result to the machine,
//! and carries out the machine's [`Effect`]s: events go to the [`EventLog`], key wrapping goes
//! back to the vault, and everything touching stored data goes to a [`KeyLoopHost`] that the
//! storage service implements. Both seams are traits so that the driver runs against a fake
//! vault and a fake host in tests, in paused tokio time. A poll whose wrapped AEK the host cannot
//! read (a damaged record) is fed to the machine as a transient failure of its own kind
//! (`stored_key_unreadable`), never skipped: a skipped poll would leave the cluster serving from
//! its cached AEK without ever asking the vault again, blind to a revocation.
//!
//! The machine sits behind a mutex shared with a [`KeyLoopHandle`], which the ingest, query
//! and control-plane paths use to ask questions and to report provisioning, key updates and
//! deletion; commands from the handle are applied at once and their non-event effects are
//! queued for the driver, which is woken through a `Notify`.
//!
//! Bounds (issue 15: every queue that grows with traffic has one):
//! - The shared queue holds only the effects of commands. A command is refused
//!   ([`KeyLoopError::Busy`]) while [`MAX_PENDING_EFFECTS`] effects wait, so the queue never holds
//!   more than [`PENDING_EFFECTS_MAX`]. Refusal, not dropping: an effect is a decision the
//!   machine already made (a buffer drain, a rewrap), and losing one would lose data, while a
//!   refused command is a typed error its caller reports or retries.
//! - The effects of the driver's own calls (a poll, a version check, a tick, a rewrap's result)
//!   never wait in that queue: the driver carries them out in the same wake-up, in the order the
//!   machine gave them ([`KeyLoopDriver::carry_out_all`]). Only a rewrap produces effects in
//!   turn, and its result holds no rewrap, so a chain is two rounds deep; [`MAX_EFFECT_ROUNDS`]
//!   bounds it anyway.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cmksim_sim::{Clock, EventLog, RandomSource, SimTime};
use rand::Rng;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::machine::KeyAccessMachine;
use super::outcome::{AccessFailure, PollOutcome, TransientFailure, TransientKind};
use super::state::{Effect, IngestDecision, KeyRef, KeyTarget, Refusal, State, StateName};

/// At most this many non-event effects wait for the driver (commands are rare; a full queue
/// means the driver is stuck, and the command is refused rather than lost).
pub const MAX_PENDING_EFFECTS: usize = 64;
/// The most non-event effects one command produces (`update_key`: one rewrap; `deleted`: the
/// cache and the hot tier dropped).
pub const COMMAND_EFFECTS_MAX: usize = 4;
/// The most effects the shared queue ever holds: a command is taken while fewer than
/// [`MAX_PENDING_EFFECTS`] wait, and adds at most [`COMMAND_EFFECTS_MAX`].
pub const PENDING_EFFECTS_MAX: usize = MAX_PENDING_EFFECTS - 1 + COMMAND_EFFECTS_MAX;
/// At most this many rounds of "effect → vault call → more effects" per wake-up.
pub const MAX_EFFECT_ROUNDS: usize = 8;
/// With nothing to poll and no deadline, the driver still wakes this often (simulated).
pub const IDLE_WAKE_INTERVAL: Duration = Duration::from_secs(60);

/// The AEK as stored: wrapped by the customer's key at a concrete version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedAek {
    pub target: KeyTarget,
    /// The JWE algorithm used (`RSA-OAEP-256`).
    pub algorithm: String,
    pub ciphertext: Vec<u8>,
}

/// An AEK the vault just unwrapped, with the key version that did it.
pub struct UnwrappedAek {
    pub kid_version: String,
    pub aek: Zeroizing<Vec<u8>>,
}

/// The Key Vault operations the loop needs. Errors are already classified.
pub trait VaultAccess: Send + Sync + 'static {
    /// unwrapKey of the stored AEK with the version that wrapped it.
    fn unwrap_aek(
        &self,
        wrapped: &WrappedAek,
    ) -> impl Future<Output = Result<UnwrappedAek, AccessFailure>> + Send;
    /// wrapKey of the AEK under `key` (empty version: the newest).
    fn wrap_aek(
        &self,
        key: &KeyRef,
        aek: &[u8],
    ) -> impl Future<Output = Result<WrappedAek, AccessFailure>> + Send;
    /// The newest version of a key (GetKey with an empty version).
    fn newest_version(
        &self,
        vault_name: &str,
        key_name: &str,
    ) -> impl Future<Output = Result<String, AccessFailure>> + Send;
}

/// A host operation that failed (a sled write, a missing AEK).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage host: {0}")]
pub struct HostError(pub String);

/// What the storage service does for the loop: it holds the wrapped AEK (durably) and the
/// unwrapped one (in memory only), and carries out the data effects.
pub trait KeyLoopHost: Send + Sync + 'static {
    /// The AEK as wrapped by the customer's key, or `None` when there is nothing to poll for
    /// (the MMK wraps it, or the account is gone). An error when the stored wrapping cannot be
    /// read: the driver then records the poll as failed rather than skipping it.
    fn wrapped_aek(&self) -> Result<Option<WrappedAek>, HostError>;
    /// The unwrapped AEK in memory, if cached (needed to rewrap it).
    fn cached_aek(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// A poll unwrapped the AEK: refresh the in-memory cache.
    fn aek_unwrapped(&self, now: SimTime, aek: Zeroizing<Vec<u8>>);
    /// Store a newly wrapped AEK durably (flushed before this returns).
    fn store_wrapped_aek(&self, now: SimTime, wrapped: WrappedAek) -> Result<(), HostError>;
    /// Carry out a data effect (`DropAekCache`, `DeleteHotTier`, `RebuildHotTier`,
    /// `DrainBuffer`, `ExpireBuffer`). Events and rewraps are handled by the driver.
    fn apply(&self, now: SimTime, effect: &Effect) -> Result<(), HostError>;
    /// The machine's state changed: keep it durably, so that a restarted storage resumes
    /// from it (a revocation, a resume in progress or an outage is not forgotten).
    fn persist_state(&self, _state: &State) -> Result<(), HostError> {
        Ok(())
    }
}

/// Driver settings that are not behaviour (those come from the profile).
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Per Key Vault call, in tokio time (real time in live mode, virtual in simulation): a
    /// hung vault becomes a transient `Timeout` after this.
    pub call_timeout_real: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            call_timeout_real: Duration::from_secs(5),
        }
    }
}

/// Why a command from the handle was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLoopError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the key loop of {cluster} has {MAX_PENDING_EFFECTS} effects waiting; try again")]
    Busy { cluster: String },
}

struct Shared {
    machine: Mutex<KeyAccessMachine>,
    pending: Mutex<VecDeque<Effect>>,
    wake: Notify,
    events: EventLog,
    source: String,
}

impl Shared {
    fn machine(&self) -> MutexGuard<'_, KeyAccessMachine> {
        // A panic while holding the lock cannot leave the machine half-updated in a way later
        // calls cannot handle (every transition assigns whole states), so take it over.
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, VecDeque<Effect>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a command's events at once and queues the rest for the driver (which the caller
    /// then wakes).
    fn dispatch(&self, now: SimTime, effects: Vec<Effect>) {
        let mut pending = self.pending();
        let mut queued = 0usize;
        for effect in effects {
            match effect {
                Effect::Event(event) => {
                    self.events.record(now, &self.source, &event);
                }
                other => {
                    queued += 1;
                    pending.push_back(other);
                }
            }
        }
        debug_assert!(
            queued <= COMMAND_EFFECTS_MAX && pending.len() <= PENDING_EFFECTS_MAX,
            "a command queued {queued} effects; {} wait",
            pending.len()
        );
    }
}

/// The shared, cheap-to-clone view of one cluster's key loop.
#[derive(Clone)]
pub struct KeyLoopHandle {
    shared: Arc<Shared>,
}

impl KeyLoopHandle {
    /// A snapshot of the state.
    pub fn state(&self) -> State {
        self.shared.machine().state().clone()
    }

    /// The state's name.
    pub fn state_name(&self) -> StateName {
        self.shared.machine().state_name()
    }

    /// The key wrapping the AEK (`None`: the MMK).
    pub fn key(&self) -> Option<KeyTarget> {
        self.shared.machine().key().cloned()
    }

    /// The rewrap in progress, if any.
    pub fn pending_rewrap(&self) -> Option<KeyRef> {
        self.shared.machine().pending_rewrap().cloned()
    }

    /// What to do with a record ingested now (see [`KeyAccessMachine::ingest_decision`]).
    pub fn ingest_decision(&self) -> IngestDecision {
        self.shared.machine().ingest_decision()
    }

    /// How many effects of commands wait for the driver (at most [`PENDING_EFFECTS_MAX`]).
    pub fn pending_effects(&self) -> usize {
        self.shared.pending().len()
    }

    /// Whether a query may read this storage now (see [`KeyAccessMachine::query_allowed`]).
    pub fn query_allowed(&self) -> Result<(), Refusal> {
        self.shared.machine().query_allowed()
    }

    /// Whether the key may be changed now (refused while revoked or unavailable).
    pub fn key_update_allowed(&self) -> Result<(), Refusal> {
        self.shared.machine().key_update_allowed()
    }

    /// Provisioning finished.
    pub fn provisioned(&self, now: SimTime) -> Result<(), KeyLoopError> {
        self.command(now, |m| Ok(m.on_provisioned(now)))
    }

    /// Configure or change the customer's key; the driver rewraps the AEK.
    pub fn update_key(&self, now: SimTime, key: KeyRef) -> Result<(), KeyLoopError> {
        self.command(now, |m| {
            if m.key().is_none() {
                m.on_cmk_configured(now, key)
            } else {
                m.on_key_update(now, key)
            }
        })
    }

    /// The cluster was deleted.
    pub fn deleted(&self, now: SimTime) -> Result<(), KeyLoopError> {
        self.command(now, |m| Ok(m.on_deleted(now)))
    }

    /// The cluster was recovered.
    pub fn recovered(&self, now: SimTime) -> Result<(), KeyLoopError> {
        self.command(now, |m| Ok(m.on_recovered(now)))
    }

    fn command(
        &self,
        now: SimTime,
        f: impl FnOnce(&mut KeyAccessMachine) -> Result<Vec<Effect>, Refusal>,
    ) -> Result<(), KeyLoopError> {
        if self.shared.pending().len() >= MAX_PENDING_EFFECTS {
            return Err(KeyLoopError::Busy {
                cluster: self.shared.machine().cluster().to_string(),
            });
        }
        let effects = f(&mut self.shared.machine())?;
        self.shared.dispatch(now, effects);
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// The poll task of one cluster's storage.
pub struct KeyLoopDriver<V, H> {
    shared: Arc<Shared>,
    vault: V,
    host: Arc<H>,
    clock: Clock,
    rng: RandomSource,
    config: DriverConfig,
    next_poll_at: SimTime,
    /// The state last handed to [`KeyLoopHost::persist_state`].
    persisted: Option<State>,
}

impl<V: VaultAccess, H: KeyLoopHost> KeyLoopDriver<V, H> {
    /// A driver around `machine`; `rng` should be the stream `storage/<cluster>/poll-interval`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        machine: KeyAccessMachine,
        vault: V,
        host: Arc<H>,
        clock: Clock,
        rng: RandomSource,
        events: EventLog,
        config: DriverConfig,
    ) -> (KeyLoopDriver<V, H>, KeyLoopHandle) {
        let source = format!("storage/{}", machine.cluster());
        let next_poll_at = clock.now();
        let persisted = Some(machine.state().clone());
        let shared = Arc::new(Shared {
            machine: Mutex::new(machine),
            pending: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            events,
            source,
        });
        let handle = KeyLoopHandle {
            shared: shared.clone(),
        };
        let driver = KeyLoopDriver {
            shared,
            vault,
            host,
            clock,
            rng,
            config,
            next_poll_at,
            persisted,
        };
        (driver, handle)
    }

    /// Runs until `shutdown` completes. The first poll is immediate (it refills the cache).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.step().await;
            let wake_at = self.next_wake();
            tokio::select! {
                // Biased: a pending wake is taken before a due timer, the same way every time
                // (determinism of simulated runs; tokio's default order is random).
                biased;
                _ = &mut shutdown => break,
                _ = self.shared.wake.notified() => {}
                _ = self.clock.sleep_until(wake_at) => {}
            }
        }
    }

    /// One wake-up: queued effects, a poll if due, a version check if due, deadlines.
    pub async fn step(&mut self) {
        self.drain_pending().await;
        let now = self.clock.now();
        if self.shared.machine().wants_poll() && now >= self.next_poll_at {
            let effects = self.poll().await;
            self.carry_out_all(effects).await;
            self.next_poll_at = self.clock.now().add(self.poll_interval());
        }
        let now = self.clock.now();
        let due = self.shared.machine().version_check_due(now);
        if due {
            let effects = self.check_version().await;
            self.carry_out_all(effects).await;
        }
        let now = self.clock.now();
        let effects = self.shared.machine().on_tick(now);
        self.carry_out_all(effects).await;
        self.drain_pending().await;
        self.persist_state();
    }

    /// Hands the machine's state to the host if it changed since the last time (a failure is
    /// logged and retried at the next wake-up).
    fn persist_state(&mut self) {
        let state = self.shared.machine().state().clone();
        if self.persisted.as_ref() == Some(&state) {
            return;
        }
        match self.host.persist_state(&state) {
            Ok(()) => self.persisted = Some(state),
            Err(e) => {
                tracing::warn!(cluster = %self.shared.source, "key loop state not persisted: {}", e.0)
            }
        }
    }

    /// When the driver should wake next: the next poll or the machine's deadline.
    pub fn next_wake(&self) -> SimTime {
        let machine = self.shared.machine();
        let poll_at = if machine.wants_poll() {
            self.next_poll_at
        } else {
            self.clock.now().add(IDLE_WAKE_INTERVAL)
        };
        machine.next_deadline().map_or(poll_at, |d| d.min(poll_at))
    }

    fn poll_interval(&mut self) -> Duration {
        let machine = self.shared.machine();
        let min_ms = machine.config().poll_interval_min.as_millis() as u64;
        let max_ms = machine.config().poll_interval_max.as_millis() as u64;
        drop(machine);
        Duration::from_millis(self.rng.gen_range(min_ms..=max_ms.max(min_ms)))
    }

    /// One unwrapKey poll; returns the machine's effects.
    async fn poll(&mut self) -> Vec<Effect> {
        let outcome = match self.host.wrapped_aek() {
            Ok(None) => return Vec::new(),
            Ok(Some(wrapped)) => match self.bounded(self.vault.unwrap_aek(&wrapped)).await {
                Ok(unwrapped) => {
                    let version = unwrapped.kid_version.clone();
                    self.host.aek_unwrapped(self.clock.now(), unwrapped.aek);
                    PollOutcome::Success {
                        kid_version: version,
                    }
                }
                Err(failure) => failure.into(),
            },
            Err(e) => PollOutcome::Transient(TransientFailure {
                kind: TransientKind::StoredKeyUnreadable,
                detail: e.0,
            }),
        };
        let now = self.clock.now();
        self.shared.machine().on_poll(now, outcome)
    }

    /// One newest-version check; returns the machine's effects.
    async fn check_version(&mut self) -> Vec<Effect> {
        let Some(key) = self.shared.machine().key().cloned() else {
            return Vec::new();
        };
        let result = self
            .bounded(
                self.vault
                    .newest_version(&key.key.vault_name, &key.key.key_name),
            )
            .await;
        let now = self.clock.now();
        match result {
            Ok(newest) => self.shared.machine().on_newest_version(now, &newest),
            // Access itself is judged by unwrapKey; a failed GetKey only delays the follow.
            Err(_) => Vec::new(),
        }
    }

    /// Carries out the effects commands queued (one batch: what waits now; a command taken
    /// meanwhile wakes the driver again).
    async fn drain_pending(&mut self) {
        let batch: Vec<Effect> = self.shared.pending().drain(..).collect();
        self.carry_out_all(batch).await;
    }

    /// Carries out `effects` and what they produce in turn, in order, in at most
    /// [`MAX_EFFECT_ROUNDS`] rounds (see the module doc: a chain is two rounds deep). Nothing is
    /// dropped: what a machine bug might leave after the last round goes to the shared queue
    /// for the next wake-up.
    pub async fn carry_out_all(&mut self, effects: Vec<Effect>) {
        let mut round = effects;
        for _ in 0..MAX_EFFECT_ROUNDS {
            if round.is_empty() {
                return;
            }
            let mut next = Vec::new();
            for effect in round {
                next.extend(self.carry_out(effect).await);
            }
            round = next;
        }
        debug_assert!(
            round.is_empty(),
            "an effect chain longer than {MAX_EFFECT_ROUNDS} rounds"
        );
        if !round.is_empty() {
            tracing::error!(source = %self.shared.source, left = round.len(), "effect chain longer than {MAX_EFFECT_ROUNDS} rounds; the rest waits for the next wake-up");
            self.shared.pending().extend(round);
            self.shared.wake.notify_one();
        }
    }

    /// Carries out one effect; returns what the machine answered to it (a rewrap's result).
    async fn carry_out(&mut self, effect: Effect) -> Vec<Effect> {
        let now = self.clock.now();
        match effect {
            Effect::Event(event) => {
                self.shared.events.record(now, &self.shared.source, &event);
                Vec::new()
            }
            Effect::RewrapAek { to } => self.rewrap(to).await,
            other => {
                if let Err(error) = self.host.apply(now, &other) {
                    tracing::error!(source = %self.shared.source, %error, effect = %other.label(), "storage effect failed");
                }
                Vec::new()
            }
        }
    }

    /// Wraps the cached AEK under `to` and stores it; returns the machine's answer.
    async fn rewrap(&mut self, to: KeyRef) -> Vec<Effect> {
        let result = match self.host.cached_aek() {
            None => Err(AccessFailure::Transient(TransientFailure {
                kind: TransientKind::Cancelled,
                detail: "the AEK is not in memory".to_string(),
            })),
            Some(aek) => self.bounded(self.vault.wrap_aek(&to, &aek)).await,
        };
        let now = self.clock.now();
        match result {
            Ok(wrapped) => {
                let target = wrapped.target.clone();
                match self.host.store_wrapped_aek(now, wrapped) {
                    Ok(()) => self.shared.machine().on_rewrap_completed(now, target),
                    Err(e) => self.shared.machine().on_rewrap_failed(
                        now,
                        &AccessFailure::Transient(TransientFailure {
                            kind: TransientKind::Cancelled,
                            detail: e.to_string(),
                        }),
                    ),
                }
            }
            Err(failure) => self.shared.machine().on_rewrap_failed(now, &failure),
        }
    }

    /// A vault call bounded by the per-call timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, AccessFailure>>,
    ) -> Result<T, AccessFailure> {
        match tokio::time::timeout(self.config.call_timeout_real, call).await {
            Ok(result) => result,
            Err(_) => Err(AccessFailure::Transient(TransientFailure {
                kind: TransientKind::Timeout,
                detail: format!(
                    "no answer within {} ms",
                    self.config.call_timeout_real.as_millis()
                ),
            })),
        }
    }
}
