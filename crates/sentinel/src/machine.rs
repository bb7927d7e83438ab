//! The Sentinel state machine of one onboarded workspace: seed 002's rules as pure functions of
//! (state, input, time).
//!
//! Like the cluster storage's key-access machine (`cmksim_storage::keyloop::machine`) it does no
//! I/O, reads no clock and draws no randomness: every input carries `now`, every output is the
//! new state plus [`Effect`]s for the driver. It reuses that loop's vocabulary (a poll's
//! [`PollOutcome`], the [`DenialKind`]s, [`KeyRef`]/[`KeyTarget`]) but not its machine: Sentinel
//! has no ingest buffer, no hot tier and no outage grace, and it follows the *cluster's*
//! configured key rather than the vault's newest version.
//!
//! The rules, with the seed 002 sentence each comes from:
//! - Poll denied: [`State::Revoked`] at that poll ("either by deleting it or removing access for
//!   the dedicated cluster and Cosmos DB Resource Provider, Azure Sentinel will honor the change
//!   and behave as if the data is no longer available, within one hour"); polls are at most
//!   `poll_interval_max` (≤ 1 h) apart. The account key cache is dropped: stored data stays, but
//!   unreadable ("Previously stored data will not be deleted but will remain inaccessible").
//! - While revoked or restoring: "any operation that uses persistent storage resources such as
//!   data ingestion, persistent configuration changes, and incident creation, will be
//!   prevented"; "The only operation possible ... is account deletion" ([`Operation`]).
//! - Poll succeeds while revoked: [`State::Restoring`], back to [`State::Active`] exactly
//!   `restore_delay` later ("If access is restored after revocation, Azure Sentinel will restore
//!   access to the data within an hour"). Deterministic upper bound, as storage does.
//! - Transient failures change nothing: the seed names none for Sentinel; the cached account key
//!   keeps serving (the simulator's choice, said in the event).
//! - The cluster names another key version (rotation) or another key/vault (replacement):
//!   Sentinel keeps unwrapping with the key it has and moves `key_follow_delay` after it saw the
//!   change ("Azure Sentinel supports the new key within an hour"; "Sentinel will detect the key
//!   change ... within 1 hour"). Hence disabling the old version before that revokes Sentinel
//!   while Log Analytics (already on the new version) is fine — the reason for seed 002's "You
//!   can disable the previous version of the key after 24 hours, or after the Azure Key Vault
//!   audit logs no longer show any activity that uses the previous version". A move needs the
//!   account key in memory, so it waits while revoked.
//! - Unlinked from the CMK cluster, or the cluster made non-CMK, after CMK onboarding: accepted,
//!   with one [`SentinelEvent::Unsupported`] event carrying the seed's sentence; Sentinel keeps
//!   the key it has ("undefined and undesired behavior": the simulator picks the least surprising
//!   one and says so).
//! - Onboarded under the Microsoft-managed key, later on a CMK cluster: one
//!   [`SentinelEvent::MicrosoftKeyKept`] event; nothing else changes (nothing is polled).

use std::fmt;
use std::time::Duration;

use cmksim_sim::profile::SentinelProfile;
use cmksim_sim::{format_duration, SimTime};
use cmksim_storage::keyloop::{DenialKind, KeyRef, KeyTarget, PollOutcome};
use serde::{Deserialize, Serialize};

use crate::events::{SentinelEvent, MICROSOFT_KEY_KEPT, UNSUPPORTED_AFTER_CMK_ONBOARDING};

/// The state of one workspace's Sentinel store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Data readable, operations allowed.
    Active { since: SimTime },
    /// The Cosmos DB principal was denied: everything but deleting the workspace is refused.
    Revoked { since: SimTime, denial: DenialKind },
    /// Access is back; data returns at `restore_at`.
    Restoring { since: SimTime, restore_at: SimTime },
    /// The Sentinel workspace was deleted (terminal).
    Deleted { since: SimTime },
}

impl State {
    /// The state's name.
    pub fn name(&self) -> StateName {
        match self {
            State::Active { .. } => StateName::Active,
            State::Revoked { .. } => StateName::Revoked,
            State::Restoring { .. } => StateName::Restoring,
            State::Deleted { .. } => StateName::Deleted,
        }
    }

    /// Since when the state holds.
    pub fn since(&self) -> SimTime {
        match self {
            State::Active { since }
            | State::Revoked { since, .. }
            | State::Restoring { since, .. }
            | State::Deleted { since } => *since,
        }
    }
}

/// A state's name without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Active,
    Revoked,
    Restoring,
    Deleted,
}

impl StateName {
    /// The state as the narration says it.
    pub fn words(self) -> &'static str {
        match self {
            StateName::Active => "active",
            StateName::Revoked => "revoked (data inaccessible)",
            StateName::Restoring => "restoring",
            StateName::Deleted => "deleted",
        }
    }

    /// The snake_case name (`active`, `revoked`, ...), as events and the gRPC API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Active => "active",
            StateName::Revoked => "revoked",
            StateName::Restoring => "restoring",
            StateName::Deleted => "deleted",
        }
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the workspace's Sentinel data is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// The Microsoft-managed key (onboarded without `customerManagedKey`).
    MicrosoftManagedKey,
    /// The account key is wrapped by this key, through the Cosmos DB principal.
    CustomerManagedKey(KeyTarget),
}

/// An operation on a workspace's Sentinel data (seed 002's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Incident creation, by hand or from ingested data.
    CreateIncident,
    /// A persistent configuration change (analytics rules, watchlists).
    ChangeConfiguration,
    /// Reading stored incidents, rules, watchlists.
    ReadData,
    /// Deleting the Sentinel workspace: the only operation left after a revocation.
    DeleteWorkspace,
}

impl Operation {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateIncident => "create_incident",
            Operation::ChangeConfiguration => "change_configuration",
            Operation::ReadData => "read_data",
            Operation::DeleteWorkspace => "delete_workspace",
        }
    }
}

/// Why an operation was refused (the simulator's wording: seed 002 gives none).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub state: StateName,
    pub message: String,
}

/// What the cluster side looks like to Sentinel at one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterObservation {
    /// The workspace is linked to `cluster`, whose key is `key` (`None`: no customer key).
    Linked {
        cluster: String,
        key: Option<KeyRef>,
    },
    /// The workspace is not linked to any cluster.
    Unlinked,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Event(SentinelEvent),
    /// Wrap the in-memory account key under `to` and store it, then report back with
    /// [`SentinelMachine::on_rewrap_completed`] or [`SentinelMachine::on_rewrap_failed`].
    Rewrap {
        to: KeyRef,
    },
    /// Forget the unwrapped account key (revocation).
    DropAccountKey,
}

/// A move to another key that Sentinel saw and has not made yet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingFollow {
    to: KeyRef,
    due_at: SimTime,
    in_flight: bool,
}

/// The Sentinel state machine of one onboarded workspace.
#[derive(Clone, Debug)]
pub struct SentinelMachine {
    workspace: String,
    cluster: String,
    config: SentinelProfile,
    state: State,
    encryption: Encryption,
    follow: Option<PendingFollow>,
    last_poll_at: Option<SimTime>,
    /// The unsupported change already reported (one event per change, not per poll).
    unsupported_reported: Option<&'static str>,
    microsoft_key_kept_reported: bool,
}

impl SentinelMachine {
    /// A workspace just onboarded (active) under `encryption`, linked to `cluster`.
    pub fn onboarded(
        workspace: &str,
        cluster: &str,
        config: &SentinelProfile,
        now: SimTime,
        encryption: Encryption,
    ) -> SentinelMachine {
        SentinelMachine {
            workspace: workspace.to_string(),
            cluster: cluster.to_string(),
            config: config.clone(),
            state: State::Active { since: now },
            encryption,
            follow: None,
            last_poll_at: None,
            unsupported_reported: None,
            microsoft_key_kept_reported: false,
        }
    }

    /// A restarted service takes back the persisted state (a revocation is not forgotten).
    pub fn restore(&mut self, persisted: State) {
        self.state = persisted;
    }

    /// The workspace name.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The cluster the workspace was linked to at onboarding.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// How the data is protected.
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// The key Sentinel is moving to, if it saw a change.
    pub fn following(&self) -> Option<&KeyRef> {
        self.follow.as_ref().map(|f| &f.to)
    }

    /// The profile values in force.
    pub fn config(&self) -> &SentinelProfile {
        &self.config
    }

    /// True when the driver should poll (a customer key, not deleted).
    pub fn wants_poll(&self) -> bool {
        matches!(self.encryption, Encryption::CustomerManagedKey(_))
            && self.state.name() != StateName::Deleted
    }

    /// The next instant at which [`Self::on_tick`] changes something by itself.
    pub fn next_deadline(&self) -> Option<SimTime> {
        let restore = match &self.state {
            State::Restoring { restore_at, .. } => Some(*restore_at),
            _ => None,
        };
        let follow = self
            .follow
            .as_ref()
            .filter(|f| !f.in_flight && self.state.name() == StateName::Active)
            .map(|f| f.due_at);
        match (restore, follow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `operation` may run now.
    pub fn check(&self, operation: Operation) -> Result<(), Refusal> {
        let refuse = |message: String| {
            Err(Refusal {
                state: self.state.name(),
                message,
            })
        };
        match (&self.state, operation) {
            (State::Active { .. }, _) => Ok(()),
            (State::Revoked { .. } | State::Restoring { .. }, Operation::DeleteWorkspace) => Ok(()),
            (State::Revoked { since, denial }, _) => refuse(format!(
                "The customer-managed key of workspace {} is revoked since {since} ({} {}): the Sentinel data is inaccessible, and the only operation possible is deleting the workspace.",
                self.workspace,
                denial.http_status(),
                denial.default_code()
            )),
            (State::Restoring { since, restore_at }, _) => refuse(format!(
                "Access to the customer-managed key of workspace {} returned at {since}; Azure Sentinel restores access to the data at {restore_at}.",
                self.workspace
            )),
            (State::Deleted { since }, _) => refuse(format!(
                "The Sentinel workspace {} was deleted at {since}.",
                self.workspace
            )),
        }
    }

    /// The result of one unwrapKey poll by the Cosmos DB principal.
    pub fn on_poll(&mut self, now: SimTime, outcome: PollOutcome) -> Vec<Effect> {
        if !self.wants_poll() {
            return Vec::new();
        }
        let previous_poll = self.last_poll_at.replace(now);
        let mut effects = Vec::new();
        let key = self.key_label();
        match outcome {
            PollOutcome::Success { kid_version } => {
                effects.push(Effect::Event(SentinelEvent::PollSucceeded {
                    workspace: self.workspace.clone(),
                    key,
                    version: kid_version,
                }));
                if let State::Revoked { .. } = self.state {
                    let restore_at = now.add(self.config.restore_delay);
                    self.transition(
                        State::Restoring {
                            since: now,
                            restore_at,
                        },
                        "unwrapKey by the Cosmos DB principal succeeded again".to_string(),
                        format!("the data comes back at {restore_at}; until then every operation but deleting the workspace is refused"),
                        0,
                        &mut effects,
                    );
                }
            }
            PollOutcome::Transient(t) => {
                effects.push(Effect::Event(SentinelEvent::PollTransient {
                    workspace: self.workspace.clone(),
                    kind: t.kind,
                    detail: format!("{}: {}", t.kind.label(), t.detail),
                }));
            }
            PollOutcome::Denial(d) => {
                effects.push(Effect::Event(SentinelEvent::PollDenied {
                    workspace: self.workspace.clone(),
                    http_status: d.http_status,
                    code: d.code.clone(),
                    message: d.message.clone(),
                }));
                match self.state.name() {
                    StateName::Revoked | StateName::Deleted => {}
                    StateName::Active | StateName::Restoring => {
                        let detected_within =
                            previous_poll.map(|p| now.since(p)).unwrap_or_default();
                        debug_assert!(
                            detected_within <= self.config.revocation_deadline,
                            "a revocation honoured {detected_within:?} after the previous poll"
                        );
                        self.transition(
                            State::Revoked { since: now, denial: d.kind },
                            format!("Key Vault denied the Cosmos DB principal unwrapKey with {key} ({} {})", d.http_status, d.code),
                            "incident creation and persistent configuration changes are refused, stored data stays but is inaccessible; only deleting the workspace is possible".to_string(),
                            detected_within.as_millis() as u64,
                            &mut effects,
                        );
                        effects.push(Effect::DropAccountKey);
                    }
                }
            }
        }
        effects.extend(self.on_tick(now));
        effects
    }

    /// What the cluster side looks like now (the driver observes it at every poll).
    pub fn on_cluster_observed(&mut self, now: SimTime, seen: ClusterObservation) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state.name() == StateName::Deleted {
            return effects;
        }
        let current = match &self.encryption {
            Encryption::MicrosoftManagedKey => {
                if let ClusterObservation::Linked {
                    cluster,
                    key: Some(_),
                } = &seen
                {
                    if !self.microsoft_key_kept_reported {
                        self.microsoft_key_kept_reported = true;
                        effects.push(Effect::Event(SentinelEvent::MicrosoftKeyKept {
                            workspace: self.workspace.clone(),
                            cluster: cluster.clone(),
                            reason: MICROSOFT_KEY_KEPT.to_string(),
                        }));
                    }
                }
                return effects;
            }
            Encryption::CustomerManagedKey(target) => target.key.clone(),
        };
        let (change, cluster) = match &seen {
            ClusterObservation::Unlinked => ("unlinked", self.cluster.clone()),
            ClusterObservation::Linked { cluster, key: None } => {
                ("cluster_non_cmk", cluster.clone())
            }
            ClusterObservation::Linked {
                key: Some(key),
                cluster,
            } => {
                self.unsupported_reported = None;
                self.cluster = cluster.clone();
                let already = self.follow.as_ref().is_some_and(|f| &f.to == key);
                if *key != current && !already {
                    let due_at = now.add(self.config.key_follow_delay);
                    let change = if key.vault_name == current.vault_name
                        && key.key_name == current.key_name
                    {
                        "rotation"
                    } else {
                        "replacement"
                    };
                    effects.push(Effect::Event(SentinelEvent::KeyChangeDetected {
                        workspace: self.workspace.clone(),
                        from: self.key_label(),
                        to: key.to_string(),
                        change: change.to_string(),
                        follow_at: due_at.to_rfc3339(),
                    }));
                    self.follow = Some(PendingFollow {
                        to: key.clone(),
                        due_at,
                        in_flight: false,
                    });
                } else if *key == current {
                    // The cluster went back to the key Sentinel uses: nothing to follow.
                    self.follow = None;
                }
                effects.extend(self.on_tick(now));
                return effects;
            }
        };
        if self.unsupported_reported != Some(change) {
            self.unsupported_reported = Some(change);
            effects.push(Effect::Event(SentinelEvent::Unsupported {
                workspace: self.workspace.clone(),
                cluster,
                change: change.to_string(),
                reason: UNSUPPORTED_AFTER_CMK_ONBOARDING.to_string(),
            }));
        }
        effects
    }

    /// Time passed: restore completion, a due key move.
    pub fn on_tick(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let State::Restoring { since, restore_at } = self.state {
            if now >= restore_at {
                self.transition(
                    State::Active { since: now },
                    format!(
                        "the {} restore delay passed since access returned at {since}",
                        format_duration(self.config.restore_delay)
                    ),
                    "the data is accessible again; incidents and configuration changes are accepted".to_string(),
                    0,
                    &mut effects,
                );
            }
        }
        if self.state.name() == StateName::Active {
            if let Some(follow) = self.follow.as_mut() {
                if !follow.in_flight && now >= follow.due_at {
                    follow.in_flight = true;
                    effects.push(Effect::Rewrap {
                        to: follow.to.clone(),
                    });
                }
            }
        }
        effects
    }

    /// The account key is now wrapped by `target` (stored durably by the driver).
    pub fn on_rewrap_completed(&mut self, _now: SimTime, target: KeyTarget) -> Vec<Effect> {
        let from = self.key_label();
        if self.follow.as_ref().is_some_and(|f| f.to == target.key) {
            self.follow = None;
        }
        self.encryption = Encryption::CustomerManagedKey(target.clone());
        vec![Effect::Event(SentinelEvent::Rewrapped {
            workspace: self.workspace.clone(),
            from,
            to: target.to_string(),
            version: target.wrapped_version,
        })]
    }

    /// The move failed; it is tried again `key_follow_delay / 4` later (bounded by the polls).
    pub fn on_rewrap_failed(&mut self, now: SimTime, error: &str) -> Vec<Effect> {
        let retry = self.config.key_follow_delay / 4;
        let mut effects = Vec::new();
        if let Some(follow) = self.follow.as_mut() {
            follow.in_flight = false;
            follow.due_at = now.add(retry.max(Duration::from_secs(60)));
            effects.push(Effect::Event(SentinelEvent::RewrapFailed {
                workspace: self.workspace.clone(),
                to: follow.to.to_string(),
                error: error.to_string(),
            }));
        }
        effects
    }

    /// The Sentinel workspace was deleted.
    pub fn on_deleted(&mut self, now: SimTime) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state.name() != StateName::Deleted {
            self.transition(
                State::Deleted { since: now },
                "the Sentinel workspace was deleted".to_string(),
                "nothing is polled any more".to_string(),
                0,
                &mut effects,
            );
            effects.push(Effect::DropAccountKey);
            self.follow = None;
        }
        effects
    }

    /// The key in use as `vault/key/version` (empty under the MMK).
    pub fn key_label(&self) -> String {
        match &self.encryption {
            Encryption::CustomerManagedKey(t) => t.to_string(),
            Encryption::MicrosoftManagedKey => String::new(),
        }
    }

    fn transition(
        &mut self,
        to: State,
        reason: String,
        consequence: String,
        detected_within_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let from = self.state.name();
        let to_name = to.name();
        self.state = to;
        effects.push(Effect::Event(SentinelEvent::StateChanged {
            workspace: self.workspace.clone(),
            from,
            to: to_name,
            reason,
            consequence,
            detected_within_ms,
        }));
    }
}
