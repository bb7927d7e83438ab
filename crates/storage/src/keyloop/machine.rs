//! The key access state machine: the rules of SPEC §5 as pure functions of (state, input, time).
//!
//! No I/O, no clock, no randomness: every input carries `now: SimTime`, every output is the new
//! state plus a list of [`Effect`]s for the driver to carry out. That is what lets a day of vault
//! trouble be tested in microseconds, row by row, and run identically in simulation and live.
//!
//! The rules, with the seed sentences they implement (seed 000 unless noted):
//! - Success: healthy, cache refreshed ("Storage caches AEK for short periods of time and goes
//!   back to Key Vault to unwrap periodically").
//! - Transient failure: [`State::Degraded`], still serving from the cached AEK ("allowing keys
//!   to stay in cache for a short while longer ... The query and ingestion capabilities continue
//!   without interruption").
//! - Failing for `outage_grace` (measured from the first failed poll): [`State::Unavailable`]
//!   ("unavailability of about 30 minutes will cause the Storage account to become unavailable.
//!   The query capability is unavailable and ingested data is cached for several hours using
//!   Microsoft key"). With no grace (profile azure-current) this never happens.
//! - Access back from Unavailable: healthy at once, buffer drained ("When access to Key Vault is
//!   restored, query becomes available and the temporary cached data is ingested to the
//!   data-store and encrypted with CMK"). The seed gives this path no delay, so there is none;
//!   [`State::Resuming`] follows only a revocation.
//! - Denial: [`State::Revoked`] at the poll that sees it ("always respect changes in key
//!   permissions within an hour or sooner ... Any new data ingested ... gets dropped ... queries
//!   to these workspaces fail"; the hot cache "gets deleted on key revocation").
//! - Success while revoked: [`State::Resuming`]; ingest and query resume exactly `resume_delay`
//!   after the successful poll ("once accessed, data ingestion and query resume within 30
//!   minutes"). We use the upper bound, deterministically, so drills see the worst case; the
//!   driver wakes at that instant. While resuming, new ingest is dropped (reason `resuming`):
//!   ingestion has not resumed yet, and the simulator says so instead of pretending.
//! - Rotation: a pinned version is what every poll unwraps with, so a new version in the vault
//!   changes nothing, and disabling the pinned version is a denial ("If you disable or delete
//!   your old key before updating the new key in the Cluster resource, you will get into key
//!   revocation state"). A versionless key (profile `versionless_keys`) is checked for a newer
//!   version every `version_follow_deadline / 4`, then the AEK is rewrapped (seed 002: "supports
//!   the new key within an hour"). A key update needs the AEK in memory, so it is refused while
//!   revoked or unavailable.
//! - Crypto-shredding (SPEC §3, §5): a denial that no change in the vault can undo — the HSM
//!   key material was zeroised (`HSMKeyMaterialDestroyed`), or the key was purged (404 and no
//!   deleted entry) — makes the AEK unrecoverable, hence every block of the account unreadable
//!   for good: [`State::Shredded`], from any state, terminal. New ingest is dropped (reason
//!   `shredded`), queries fail saying the data is gone for good, the hot tier is deleted and
//!   nothing is polled any more.

use std::time::Duration;

use cmksim_sim::profile::KeyAccessProfile;
use cmksim_sim::{format_duration, SimTime};

use super::events::KeyLoopEvent;
use super::outcome::{AccessFailure, DenialFailure, PollOutcome, TransientFailure};
use super::state::{
    DropReason, Effect, IngestDecision, KeyRef, KeyTarget, KeyVersionSpec, Refusal, ResumeFrom,
    State, StateName, StoreKey,
};

/// The key access state machine of one cluster's storage.
#[derive(Clone, Debug)]
pub struct KeyAccessMachine {
    cluster: String,
    config: KeyAccessProfile,
    state: State,
    /// The key wrapping the AEK; `None` while under the Microsoft-managed key.
    key: Option<KeyTarget>,
    /// A rewrap handed to the driver and not yet reported back.
    pending_rewrap: Option<KeyRef>,
    last_poll_at: Option<SimTime>,
    last_version_check_at: Option<SimTime>,
    /// When the outage buffer started taking records (cleared when drained).
    buffering_since: Option<SimTime>,
}

impl KeyAccessMachine {
    /// A new cluster's storage, provisioning.
    pub fn new(cluster: &str, config: &KeyAccessProfile, now: SimTime) -> KeyAccessMachine {
        KeyAccessMachine {
            cluster: cluster.to_string(),
            config: config.clone(),
            state: State::Provisioning { since: now },
            key: None,
            pending_rewrap: None,
            last_poll_at: None,
            last_version_check_at: None,
            buffering_since: None,
        }
    }

    /// The storage of an already provisioned cluster (service restart, recovery): healthy under
    /// `key`, or under the MMK when `None`. The driver polls at once to verify and refill the
    /// AEK cache.
    pub fn provisioned(
        cluster: &str,
        config: &KeyAccessProfile,
        now: SimTime,
        key: Option<KeyTarget>,
    ) -> KeyAccessMachine {
        let mut machine = KeyAccessMachine::new(cluster, config, now);
        machine.state = match key {
            Some(_) => State::HealthyCmk { since: now },
            None => State::HealthyMmk { since: now },
        };
        machine.key = key;
        machine
    }

    /// A restarted storage takes back the state it persisted before it stopped, when that
    /// state is one a restart must not forget: revoked (access was denied and has not been seen
    /// to return), resuming (the resume delay runs from when access returned, not from the
    /// restart), unavailable (the outage buffer keeps filling) and shredded. Any other persisted
    /// state is dropped: the machine stays healthy as [`Self::provisioned`] made it, and the
    /// immediate first poll tells the truth. Returns whether the state was taken.
    pub fn restore(&mut self, persisted: State) -> bool {
        if self.key.is_none() {
            return false;
        }
        match persisted {
            State::Unavailable { since, .. } => self.buffering_since = Some(since),
            State::Revoked { .. } | State::Resuming { .. } | State::Shredded { .. } => {}
            _ => return false,
        }
        self.state = persisted;
        true
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The current state's name.
    pub fn state_name(&self) -> StateName {
        self.state.name()
    }

    /// The key wrapping the AEK (`None`: the Microsoft-managed key).
    pub fn key(&self) -> Option<&KeyTarget> {
        self.key.as_ref()
    }

    /// The rewrap in progress, if any.
    pub fn pending_rewrap(&self) -> Option<&KeyRef> {
        self.pending_rewrap.as_ref()
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The profile values in force.
    pub fn config(&self) -> &KeyAccessProfile {
        &self.config
    }

    /// True when the driver should poll the vault (a customer key is configured and the
    /// cluster is not deleted).
    pub fn wants_poll(&self) -> bool {
        self.key.is_some()
            && matches!(
                self.state_name(),
                StateName::HealthyCmk
                    | StateName::Degraded
                    | StateName::Unavailable
                    | StateName::Revoked
                    | StateName::Resuming
            )
    }

    /// The next instant at which [`Self::on_tick`] changes something by itself (grace expiry,
    /// resume completion); the driver wakes then even between polls.
    pub fn next_deadline(&self) -> Option<SimTime> {
        match &self.state {
            State::Degraded { since, .. } => self.config.outage_grace.map(|g| since.add(g)),
            State::Resuming { resume_at, .. } => Some(*resume_at),
            _ => None,
        }
    }

    /// True when a versionless key is followed (profile `versionless_keys` and an empty
    /// `keyVersion`). Under a profile without versionless keys an empty version stays on the
    /// version resolved when the key was configured.
    pub fn follows_newest_version(&self) -> bool {
        self.config.versionless_keys
            && self
                .key
                .as_ref()
                .is_some_and(|k| k.key.version == KeyVersionSpec::Versionless)
    }

    /// How often a followed key is checked for a newer version: a quarter of the follow
    /// deadline, so detection (≤ interval + one poll) and the rewrap fit well inside it.
    pub fn version_check_interval(&self) -> Duration {
        self.config.version_follow_deadline / 4
    }

    /// True when the driver should ask the vault for the newest version now.
    pub fn version_check_due(&self, now: SimTime) -> bool {
        self.follows_newest_version()
            && self.pending_rewrap.is_none()
            && self.aek_in_memory()
            && self
                .last_version_check_at
                .is_none_or(|t| now.since(t) >= self.version_check_interval())
    }

    fn aek_in_memory(&self) -> bool {
        matches!(
            self.state_name(),
            StateName::HealthyMmk
                | StateName::HealthyCmk
                | StateName::Degraded
                | StateName::Resuming
        )
    }

    // ----- queries -------------------------------------------------------------------------

    /// What to do with a record ingested now: the current state decides. No instant is taken:
    /// a caller reads its clock, then the key loop may move on (a transition at a later
    /// instant) before the caller reads the machine, so a caller's `now` can precede the
    /// state's `since` without time going backwards; the call takes effect when it reads the
    /// machine, in the state it finds.
    pub fn ingest_decision(&self) -> IngestDecision {
        match &self.state {
            State::Provisioning { .. } => IngestDecision::Drop(DropReason::NotProvisioned),
            State::HealthyMmk { .. } => IngestDecision::Store { key: StoreKey::Mmk },
            State::HealthyCmk { .. } | State::Degraded { .. } => IngestDecision::Store {
                key: match &self.key {
                    Some(k) => StoreKey::Cmk(k.clone()),
                    None => StoreKey::Mmk,
                },
            },
            State::Unavailable { .. } => IngestDecision::Buffer,
            State::Revoked { .. } => IngestDecision::Drop(DropReason::Revoked),
            State::Resuming { .. } => IngestDecision::Drop(DropReason::Resuming),
            State::Deleted { .. } => IngestDecision::Drop(DropReason::ClusterDeleted),
            State::Shredded { .. } => IngestDecision::Drop(DropReason::Shredded),
        }
    }

    /// Whether a query may read this storage now, and if not, why: the current state decides,
    /// as for [`Self::ingest_decision`].
    pub fn query_allowed(&self) -> Result<(), Refusal> {
        let refuse = |reason: String| Err(self.refusal(reason));
        match &self.state {
            State::HealthyMmk { .. } | State::HealthyCmk { .. } | State::Degraded { .. } => Ok(()),
            State::Provisioning { since } => {
                refuse(format!("the cluster is provisioning since {since}"))
            }
            State::Unavailable { outage_since, .. } => refuse(format!(
                "Key Vault has been unreachable since {outage_since}, longer than the {} outage grace; queries fail until access returns",
                self.config.outage_grace.map(format_duration).unwrap_or_default()
            )),
            State::Revoked { since, denial } => refuse(format!(
                "access to the customer-managed key was revoked at {since} ({} {}); queries fail until access is restored",
                denial.http_status(),
                denial.default_code()
            )),
            State::Resuming { since, resume_at, .. } => refuse(format!(
                "access to the key returned at {since}; queries resume at {resume_at}"
            )),
            State::Deleted { since } => refuse(format!("the cluster was deleted at {since}")),
            State::Shredded { since, denial } => refuse(format!(
                "the data is permanently unreadable: {} at {since}, so the account key can never be unwrapped again (crypto-shredding); nothing can bring this data back",
                shred_cause(*denial)
            )),
        }
    }

    /// Whether the cluster's key may be changed now (the AEK must be in memory to rewrap it).
    pub fn key_update_allowed(&self) -> Result<(), Refusal> {
        if let Some(pending) = &self.pending_rewrap {
            return Err(self.refusal(format!("a key update to {pending} is in progress")));
        }
        match &self.state {
            State::HealthyMmk { .. }
            | State::HealthyCmk { .. }
            | State::Degraded { .. }
            | State::Resuming { .. } => Ok(()),
            State::Provisioning { .. } => {
                Err(self.refusal("the cluster is still provisioning".to_string()))
            }
            State::Unavailable { outage_since, .. } => Err(self.refusal(format!(
                "Key Vault has been unreachable since {outage_since}; the AEK cannot be unwrapped to rewrap it"
            ))),
            State::Revoked { denial, .. } => Err(self.refusal(format!(
                "access to the current key is revoked ({} {}); the AEK cannot be unwrapped to rewrap it under another key",
                denial.http_status(),
                denial.default_code()
            ))),
            State::Deleted { .. } => Err(self.refusal("the cluster is deleted".to_string())),
            State::Shredded { denial, .. } => Err(self.refusal(format!(
                "{}: the AEK is gone for good and cannot be rewrapped under another key",
                shred_cause(*denial)
            ))),
        }
    }

    fn refusal(&self, reason: String) -> Refusal {
        Refusal {
            state: self.state_name(),
            reason,
        }
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Provisioning finished: healthy under the Microsoft-managed key.
    pub fn on_provisioned(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let State::Provisioning { .. } = self.state {
            self.transition(
                now,
                State::HealthyMmk { since: now },
                "provisioning completed",
                "ingest is stored under the Microsoft-managed key".to_string(),
                0,
                &mut effects,
            );
        }
        effects
    }

    /// The customer's key was configured on the cluster for the first time.
    pub fn on_cmk_configured(&mut self, now: SimTime, key: KeyRef) -> Result<Vec<Effect>, Refusal> {
        self.request_rewrap(now, key, "customer-managed key configured on the cluster")
    }

    /// The cluster's key identifier was updated (new version, key or vault).
    pub fn on_key_update(&mut self, now: SimTime, key: KeyRef) -> Result<Vec<Effect>, Refusal> {
        self.request_rewrap(now, key, "key identifier updated on the cluster")
    }

    fn request_rewrap(
        &mut self,
        now: SimTime,
        to: KeyRef,
        why: &str,
    ) -> Result<Vec<Effect>, Refusal> {
        self.key_update_allowed()?;
        let _ = now;
        let from = match &self.key {
            Some(k) => k.to_string(),
            None => "the Microsoft-managed key".to_string(),
        };
        self.pending_rewrap = Some(to.clone());
        Ok(vec![
            Effect::Event(KeyLoopEvent::RewrapRequested {
                cluster: self.cluster.clone(),
                from,
                to: to.to_string(),
                why: why.to_string(),
            }),
            Effect::RewrapAek { to },
        ])
    }

    /// The driver wrapped the AEK under `target` and stored it durably.
    pub fn on_rewrap_completed(&mut self, now: SimTime, target: KeyTarget) -> Vec<Effect> {
        let pending = self.pending_rewrap.take();
        debug_assert!(
            pending.as_ref().is_none_or(
                |p| p.vault_name == target.key.vault_name && p.key_name == target.key.key_name
            ),
            "rewrap completed for a key that was not requested"
        );
        let mut effects = vec![Effect::Event(KeyLoopEvent::Rewrapped {
            cluster: self.cluster.clone(),
            key: target.to_string(),
        })];
        let described = target.to_string();
        self.key = Some(target);
        self.last_version_check_at = Some(now);
        if let State::HealthyMmk { .. } = self.state {
            self.transition(
                now,
                State::HealthyCmk { since: now },
                &format!("the AEK is wrapped by the customer's key {described}"),
                format!(
                    "new data is protected by the customer-managed key; the vault is polled every {}–{}",
                    format_duration(self.config.poll_interval_min),
                    format_duration(self.config.poll_interval_max)
                ),
                0,
                &mut effects,
            );
        }
        effects
    }

    /// The driver could not rewrap the AEK: the previous key stays in use.
    pub fn on_rewrap_failed(&mut self, now: SimTime, failure: &AccessFailure) -> Vec<Effect> {
        let to = self.pending_rewrap.take();
        self.last_version_check_at = Some(now);
        vec![Effect::Event(KeyLoopEvent::RewrapFailed {
            cluster: self.cluster.clone(),
            to: to.map(|k| k.to_string()).unwrap_or_default(),
            error: failure.to_string(),
        })]
    }

    /// The vault's newest version of a followed key, as read at `now`.
    pub fn on_newest_version(&mut self, now: SimTime, newest: &str) -> Vec<Effect> {
        self.last_version_check_at = Some(now);
        if !self.follows_newest_version() || self.pending_rewrap.is_some() || !self.aek_in_memory()
        {
            return Vec::new();
        }
        let Some(current) = self.key.clone() else {
            return Vec::new();
        };
        if current.wrapped_version == newest {
            return Vec::new();
        }
        self.pending_rewrap = Some(current.key.clone());
        vec![
            Effect::Event(KeyLoopEvent::NewVersionDetected {
                cluster: self.cluster.clone(),
                key: format!("{}/{}", current.key.vault_name, current.key.key_name),
                current_version: current.wrapped_version.clone(),
                newest_version: newest.to_string(),
            }),
            Effect::Event(KeyLoopEvent::RewrapRequested {
                cluster: self.cluster.clone(),
                from: current.to_string(),
                to: format!(
                    "{}/{}/{}",
                    current.key.vault_name, current.key.key_name, newest
                ),
                why: "a versionless key follows its newest version".to_string(),
            }),
            Effect::RewrapAek { to: current.key },
        ]
    }

    /// The result of one unwrapKey poll at `now`.
    pub fn on_poll(&mut self, now: SimTime, outcome: PollOutcome) -> Vec<Effect> {
        if !self.wants_poll() {
            return Vec::new();
        }
        let previous_poll = self.last_poll_at.replace(now);
        let mut effects = Vec::new();
        match outcome {
            PollOutcome::Success { kid_version } => {
                self.on_success(now, &kid_version, &mut effects)
            }
            PollOutcome::Transient(t) => self.on_transient(now, t, &mut effects),
            PollOutcome::Denial(d) => self.on_denial(now, d, previous_poll, &mut effects),
        }
        effects.extend(self.on_tick(now));
        effects
    }

    /// Time passed: outage grace expiry, resume completion, buffer expiry.
    pub fn on_tick(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        match self.state.clone() {
            State::Degraded { since, .. } => {
                if let Some(grace) = self.config.outage_grace {
                    if now.since(since) >= grace {
                        self.transition(
                            now,
                            State::Unavailable { since: now, outage_since: since },
                            &format!(
                                "Key Vault unreachable for {}, longer than the {} outage grace",
                                format_duration(now.since(since)),
                                format_duration(grace)
                            ),
                            format!(
                                "queries fail; new ingest is buffered under the Microsoft-managed key for up to {}",
                                format_duration(self.config.buffer_window)
                            ),
                            0,
                            &mut effects,
                        );
                        effects.push(Effect::DropAekCache);
                        self.buffering_since = Some(now);
                    }
                }
            }
            State::Resuming {
                since,
                resume_at,
                transient_since,
                ..
            } if now >= resume_at => {
                let next = match transient_since {
                    Some(t) => State::Degraded {
                        since: t,
                        failures: 1,
                    },
                    None => State::HealthyCmk { since: now },
                };
                self.transition(
                    now,
                    next,
                    &format!(
                        "the {} resume delay passed since access was restored at {since}",
                        format_duration(self.config.resume_delay)
                    ),
                    "ingest and query resumed; the hot cache is rebuilt".to_string(),
                    0,
                    &mut effects,
                );
                effects.push(Effect::RebuildHotTier);
                effects.push(Effect::DrainBuffer {
                    expired_before: now.sub(self.config.buffer_window),
                });
                self.buffering_since = None;
            }
            _ => {}
        }
        if let Some(buffering_since) = self.buffering_since {
            if now.since(buffering_since) >= self.config.buffer_window {
                effects.push(Effect::ExpireBuffer {
                    expired_before: now.sub(self.config.buffer_window),
                });
            }
        }
        effects
    }

    /// The cluster was deleted (soft delete): nothing is polled any more.
    pub fn on_deleted(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        // A shredded storage stays shredded: its data is gone whatever happens to the cluster.
        if !matches!(self.state_name(), StateName::Deleted | StateName::Shredded) {
            self.transition(
                now,
                State::Deleted { since: now },
                "the cluster was deleted",
                "ingest is dropped; stored data is kept until the cluster is purged".to_string(),
                0,
                &mut effects,
            );
            effects.push(Effect::DropAekCache);
            self.pending_rewrap = None;
        }
        effects
    }

    /// A soft-deleted cluster was recovered: healthy again under its key, verified by the
    /// next poll (which the driver makes at once).
    pub fn on_recovered(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state_name() == StateName::Deleted {
            let next = match self.key {
                Some(_) => State::HealthyCmk { since: now },
                None => State::HealthyMmk { since: now },
            };
            self.last_poll_at = None;
            self.transition(
                now,
                next,
                "the cluster was recovered",
                "ingest and query are back; the next poll verifies key access".to_string(),
                0,
                &mut effects,
            );
        }
        effects
    }

    // ----- poll outcomes -------------------------------------------------------------------

    fn on_success(&mut self, now: SimTime, kid_version: &str, effects: &mut Vec<Effect>) {
        effects.push(Effect::Event(KeyLoopEvent::PollSucceeded {
            cluster: self.cluster.clone(),
            key: self.key.as_ref().map(|k| k.to_string()).unwrap_or_default(),
            version: kid_version.to_string(),
        }));
        match self.state.clone() {
            State::Degraded { since, failures } => self.transition(
                now,
                State::HealthyCmk { since: now },
                &format!(
                    "Key Vault reachable again after {} ({failures} failed polls)",
                    format_duration(now.since(since))
                ),
                "ingest and query were served from the cached AEK throughout".to_string(),
                0,
                effects,
            ),
            State::Unavailable { outage_since, .. } => {
                self.transition(
                    now,
                    State::HealthyCmk { since: now },
                    &format!(
                        "Key Vault reachable again after {}",
                        format_duration(now.since(outage_since))
                    ),
                    "queries work again; the outage buffer is written under the customer-managed key".to_string(),
                    0,
                    effects,
                );
                effects.push(Effect::DrainBuffer {
                    expired_before: now.sub(self.config.buffer_window),
                });
                self.buffering_since = None;
            }
            State::Revoked { .. } => {
                // `planted_resume_lag` is zero except in the chaos sweep's planted-bug test.
                let resume_at = now.add(self.config.resume_delay + self.config.planted_resume_lag);
                self.transition(
                    now,
                    State::Resuming {
                        since: now,
                        resume_at,
                        from: ResumeFrom::Revoked,
                        transient_since: None,
                    },
                    "unwrapKey succeeded again: key access restored",
                    format!(
                        "ingest and query resume at {resume_at}; until then new ingest is dropped"
                    ),
                    0,
                    effects,
                );
            }
            State::Resuming {
                since,
                resume_at,
                from,
                ..
            } => {
                self.state = State::Resuming {
                    since,
                    resume_at,
                    from,
                    transient_since: None,
                };
            }
            _ => {}
        }
    }

    fn on_transient(&mut self, now: SimTime, failure: TransientFailure, effects: &mut Vec<Effect>) {
        let failing_since = match &self.state {
            State::Degraded { since, .. } => *since,
            State::Unavailable { outage_since, .. } => *outage_since,
            State::Resuming {
                transient_since: Some(t),
                ..
            } => *t,
            _ => now,
        };
        effects.push(Effect::Event(KeyLoopEvent::PollTransient {
            cluster: self.cluster.clone(),
            reason: failure.kind.label().to_string(),
            kind: failure.kind,
            detail: failure.detail.clone(),
            failing_for_ms: now.since(failing_since).as_millis() as u64,
        }));
        match self.state.clone() {
            State::HealthyCmk { .. } => self.transition(
                now,
                State::Degraded { since: now, failures: 1 },
                &format!("{} ({})", failure.kind.cause(), failure.kind.label()),
                match self.config.outage_grace {
                    Some(g) => format!(
                        "ingest and query continue from the cached AEK; unavailable if this lasts {}",
                        format_duration(g)
                    ),
                    None => "ingest and query continue from the cached AEK for as long as it lasts".to_string(),
                },
                0,
                effects,
            ),
            State::Degraded { since, failures } => {
                self.state = State::Degraded {
                    since,
                    failures: failures.saturating_add(1),
                };
            }
            State::Resuming {
                since,
                resume_at,
                from,
                transient_since,
            } => {
                self.state = State::Resuming {
                    since,
                    resume_at,
                    from,
                    transient_since: transient_since.or(Some(now)),
                };
            }
            _ => {}
        }
    }

    fn on_denial(
        &mut self,
        now: SimTime,
        denial: DenialFailure,
        previous_poll: Option<SimTime>,
        effects: &mut Vec<Effect>,
    ) {
        let permanent = denial.kind.is_permanent();
        effects.push(Effect::Event(KeyLoopEvent::PollDenied {
            cluster: self.cluster.clone(),
            reason: if permanent { "shredded" } else { "revoked" }.to_string(),
            kind: denial.kind,
            http_status: denial.http_status,
            code: denial.code.clone(),
            message: denial.message.clone(),
        }));
        if permanent {
            self.shred(now, &denial, effects);
            return;
        }
        let hot_tier_present = match self.state_name() {
            StateName::Revoked => return,
            StateName::Resuming => false,
            _ => true,
        };
        // The change in the vault happened after the previous poll; polls are at most
        // `poll_interval_max` apart, so a revocation is always honoured within the deadline.
        let detected_within = previous_poll.map(|p| now.since(p)).unwrap_or_default();
        debug_assert!(
            detected_within <= self.config.revocation_deadline,
            "revocation detected {detected_within:?} after the previous poll, beyond the deadline"
        );
        let label = if denial.code == denial.kind.default_code() {
            format!("{} {}", denial.http_status, denial.code)
        } else {
            format!(
                "{} {}/{}",
                denial.http_status,
                denial.code,
                denial.kind.default_code()
            )
        };
        self.transition(
            now,
            State::Revoked {
                since: now,
                denial: denial.kind,
            },
            &format!("Key Vault denied unwrapKey ({label})"),
            "new ingest will be dropped, queries fail, the hot cache is deleted".to_string(),
            detected_within.as_millis() as u64,
            effects,
        );
        // The key is forgotten first, then the hot copy goes: once the hot cache's deletion is
        // seen (its event), no read or purge can still use the account key.
        effects.push(Effect::DropAekCache);
        if hot_tier_present {
            effects.push(Effect::DeleteHotTier);
        }
    }

    /// The key material is gone for good: every block is permanently unreadable.
    fn shred(&mut self, now: SimTime, denial: &DenialFailure, effects: &mut Vec<Effect>) {
        let hot_tier_present = match self.state_name() {
            StateName::Shredded | StateName::Deleted => return,
            StateName::Revoked | StateName::Resuming => false,
            _ => true,
        };
        let label = if denial.code == denial.kind.default_code() {
            format!("{} {}", denial.http_status, denial.code)
        } else {
            format!(
                "{} {}/{}",
                denial.http_status,
                denial.code,
                denial.kind.default_code()
            )
        };
        self.transition(
            now,
            State::Shredded {
                since: now,
                denial: denial.kind,
            },
            &format!(
                "Key Vault answered unwrapKey with {label}: {}",
                shred_cause(denial.kind)
            ),
            "the account key can never be unwrapped again, so every block of this cluster is permanently unreadable (crypto-shredding); new ingest is dropped and queries fail for good".to_string(),
            0,
            effects,
        );
        self.pending_rewrap = None;
        // As for a revocation: the key first, then the hot copy.
        effects.push(Effect::DropAekCache);
        if hot_tier_present {
            effects.push(Effect::DeleteHotTier);
        }
    }

    fn transition(
        &mut self,
        now: SimTime,
        to: State,
        reason: &str,
        consequence: String,
        detected_within_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let from = self.state_name();
        let to_name = to.name();
        self.state = to;
        let _ = now;
        effects.push(Effect::Event(KeyLoopEvent::StateChanged {
            cluster: self.cluster.clone(),
            from,
            to: to_name,
            reason: reason.to_string(),
            consequence,
            detected_within_ms,
        }));
    }
}

/// Why the key material is gone, as a clause.
fn shred_cause(denial: super::outcome::DenialKind) -> &'static str {
    use super::outcome::DenialKind;
    match denial {
        DenialKind::KeyMaterialDestroyed => {
            "the HSM holding the customer-managed key was zeroised (tamper) and the key material destroyed"
        }
        DenialKind::KeyPurged => "the customer-managed key was purged from the vault",
        _ => "the customer-managed key is gone for good",
    }
}
