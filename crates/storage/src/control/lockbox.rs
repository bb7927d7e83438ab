//! Customer Lockbox on dedicated clusters (seeds 001 and 003, SPEC §10): a Microsoft support
//! engineer who needs a workspace's data asks the customer first, and only an approved request
//! that has not run out lets that engineer query.
//!
//! The rules, with the sentence each comes from:
//! - "To enable Customer Lockbox, you need a dedicated cluster" (seed 003): Lockbox is enabled per
//!   cluster, and a request names a workspace linked to such a cluster.
//! - "Lockbox isn't available in China currently" (seed 001): enabling is refused in the regions
//!   of the profile's `lockbox.unavailable_regions`, with that sentence.
//! - "Customers can control Microsoft support engineers access requests for data" (seed 001;
//!   seed 003: "review and approve or reject customer data access requests"): a request waits
//!   (`Pending`) for the customer, who approves or denies it; nobody answering makes it expire
//!   after `lockbox.request_expiry`; an approval lasts `lockbox.access_duration`.
//!
//! The state machine is [`RequestState`]; [`LockboxState`] holds the requests and applies every
//! transition as a pure function of `now` and its inputs (no clock, no I/O), returning the
//! [`LockboxEvent`]s for the timeline. Expiries happen in [`LockboxState::expire_due`], which the
//! control plane's tick calls; [`LockboxState::check_access`] also judges expiry by `now`
//! itself, so a late tick never lets an engineer in.

use std::collections::{BTreeMap, BTreeSet};

use cmksim_sim::governance::LockboxProfile;
use cmksim_sim::{EventKind, SimTime};
use serde::{Deserialize, Serialize};

/// At most this many requests are kept (answered ones are forgotten oldest first beyond it).
pub const LOCKBOX_REQUESTS_KEPT_MAX: usize = 1_000;
/// At most this many requests may wait for an answer at once, over all workspaces.
pub const LOCKBOX_PENDING_MAX: usize = 100;
/// A request's stated reason is kept up to this many characters.
pub const LOCKBOX_REASON_CHARS_MAX: usize = 200;

/// Seed 001's sentence, to the letter (the curly apostrophe of the seed is a plain one there).
pub const LOCKBOX_UNAVAILABLE_MESSAGE: &str = "Lockbox isn't available in China currently.";

/// Where a request stands. Every transition is in [`LockboxState`]; the terminal states are
/// `Denied`, `Expired` and `AccessEnded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RequestState {
    /// Waiting for the customer until `expires_at`.
    Pending { expires_at: SimTime },
    /// Approved at `at`: the engineer may query until `access_until` (exclusive).
    Approved { at: SimTime, access_until: SimTime },
    /// The customer refused.
    Denied { at: SimTime },
    /// Nobody answered before `at`.
    Expired { at: SimTime },
    /// The approved access ran out at `at`.
    AccessEnded { at: SimTime },
}

impl RequestState {
    /// The word events and the scenario file use.
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestState::Pending { .. } => "pending",
            RequestState::Approved { .. } => "approved",
            RequestState::Denied { .. } => "denied",
            RequestState::Expired { .. } => "expired",
            RequestState::AccessEnded { .. } => "access-ended",
        }
    }
}

/// One support engineer's request for one workspace's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockboxRequest {
    /// `lockbox-000001`, in the order requests were made.
    pub id: String,
    /// Lowercase ARM id of the workspace.
    pub workspace: String,
    /// Lowercase ARM id of the cluster it was linked to when asked.
    pub cluster: String,
    /// Object id of the engineer.
    pub requester: String,
    /// Why the engineer asks, clipped to [`LOCKBOX_REASON_CHARS_MAX`].
    pub reason: String,
    pub requested_at: SimTime,
    pub state: RequestState,
}

/// The customer's answer to a pending request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Why a Lockbox call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockboxError {
    #[error("{LOCKBOX_UNAVAILABLE_MESSAGE}")]
    UnavailableInRegion { region: String },
    #[error("Customer Lockbox is not enabled on cluster {cluster}.")]
    NotEnabled { cluster: String },
    #[error(
        "Customer Lockbox needs a dedicated cluster: workspace {workspace} is not linked to one."
    )]
    NoCluster { workspace: String },
    #[error("Lockbox request {id} was not found.")]
    RequestNotFound { id: String },
    #[error("Lockbox request {id} is {state}; only a pending request can be approved or denied.")]
    NotPending { id: String, state: &'static str },
    #[error("Too many Lockbox requests are waiting for an answer (at most {max}).")]
    TooManyPending { max: usize },
    #[error(
        "The provided credentials have insufficient access to perform the requested operation"
    )]
    NoApprovedRequest {
        workspace: String,
        requester: String,
    },
}

impl LockboxError {
    /// The Azure error code and HTTP status this refusal is answered with.
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            LockboxError::UnavailableInRegion { .. } => ("LockboxNotAvailable", 400),
            LockboxError::NotEnabled { .. } | LockboxError::NoCluster { .. } => {
                ("LockboxNotEnabled", 400)
            }
            LockboxError::RequestNotFound { .. } => ("ResourceNotFound", 404),
            LockboxError::NotPending { .. } => ("Conflict", 409),
            LockboxError::TooManyPending { .. } => ("TooManyRequests", 429),
            // The Logs Query API's refusal (crates/rest, `may_query`).
            LockboxError::NoApprovedRequest { .. } => ("InsufficientAccessError", 403),
        }
    }
}

/// A Lockbox event for the timeline (source `storage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LockboxEvent {
    Enabled {
        cluster: String,
    },
    Requested {
        id: String,
        workspace: String,
        requester: String,
        reason: String,
        expires_at: SimTime,
    },
    Approved {
        id: String,
        workspace: String,
        access_until: SimTime,
    },
    Denied {
        id: String,
        workspace: String,
    },
    Expired {
        id: String,
        workspace: String,
        at: SimTime,
    },
    AccessEnded {
        id: String,
        workspace: String,
        at: SimTime,
    },
    AccessGranted {
        id: String,
        workspace: String,
        requester: String,
    },
    AccessRefused {
        workspace: String,
        requester: String,
    },
}

use crate::control::short;

impl EventKind for LockboxEvent {
    fn kind(&self) -> &'static str {
        match self {
            LockboxEvent::Enabled { .. } => "lockbox.enabled",
            LockboxEvent::Requested { .. } => "lockbox.requested",
            LockboxEvent::Approved { .. } => "lockbox.approved",
            LockboxEvent::Denied { .. } => "lockbox.denied",
            LockboxEvent::Expired { .. } => "lockbox.expired",
            LockboxEvent::AccessEnded { .. } => "lockbox.access_ended",
            LockboxEvent::AccessGranted { .. } => "lockbox.access_granted",
            LockboxEvent::AccessRefused { .. } => "lockbox.access_refused",
        }
    }

    fn narrate(&self) -> String {
        match self {
            LockboxEvent::Enabled { cluster } => format!(
                "Customer Lockbox enabled on cluster {}: support engineers must ask before reading its workspaces' data",
                short(cluster)
            ),
            LockboxEvent::Requested { id, workspace, reason, expires_at, .. } => format!(
                "Lockbox request {id}: a Microsoft support engineer asks to read workspace {} ({reason}); it waits for the customer until {expires_at}",
                short(workspace)
            ),
            LockboxEvent::Approved { id, workspace, access_until } => format!(
                "Lockbox request {id} approved: the engineer may query workspace {} until {access_until}",
                short(workspace)
            ),
            LockboxEvent::Denied { id, workspace } => {
                format!("Lockbox request {id} denied: the engineer gets no access to workspace {}", short(workspace))
            }
            LockboxEvent::Expired { id, workspace, .. } => format!(
                "Lockbox request {id} expired unanswered: no access to workspace {}",
                short(workspace)
            ),
            LockboxEvent::AccessEnded { id, workspace, .. } => format!(
                "Lockbox request {id}: the approved access to workspace {} has run out",
                short(workspace)
            ),
            LockboxEvent::AccessGranted { id, workspace, .. } => format!(
                "the support engineer queries workspace {} under Lockbox request {id}",
                short(workspace)
            ),
            LockboxEvent::AccessRefused { workspace, .. } => format!(
                "the support engineer's query of workspace {} is refused: no approved, unexpired Lockbox request",
                short(workspace)
            ),
        }
    }
}

/// Every cluster's Lockbox switch and every request, persisted with the control state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockboxState {
    /// Lowercase ARM ids of the clusters with Lockbox enabled.
    pub enabled: BTreeSet<String>,
    /// By id; ids sort in the order the requests were made.
    pub requests: BTreeMap<String, LockboxRequest>,
    /// The number of the last request made (ids never repeat, even after forgetting).
    pub last_number: u64,
}

impl LockboxState {
    /// Enables Lockbox on `cluster` (lowercase ARM id) in `location`. Enabling twice is no change
    /// and no event.
    pub fn enable(
        &mut self,
        profile: &LockboxProfile,
        cluster: &str,
        location: &str,
    ) -> Result<Vec<LockboxEvent>, LockboxError> {
        let region = cmksim_sim::rules::normalize_region(location);
        if profile.unavailable_regions.contains(&region) {
            return Err(LockboxError::UnavailableInRegion { region });
        }
        let cluster = cluster.to_ascii_lowercase();
        match self.enabled.insert(cluster.clone()) {
            true => Ok(vec![LockboxEvent::Enabled { cluster }]),
            false => Ok(Vec::new()),
        }
    }

    /// A support engineer (`requester`) asks for `workspace`'s data; `cluster` is the cluster the
    /// workspace is linked to (`None`: not linked). Returns the new request's id.
    pub fn request(
        &mut self,
        profile: &LockboxProfile,
        now: SimTime,
        workspace: &str,
        cluster: Option<&str>,
        requester: &str,
        reason: &str,
    ) -> Result<(String, Vec<LockboxEvent>), LockboxError> {
        let workspace = workspace.to_ascii_lowercase();
        let Some(cluster) = cluster.map(str::to_ascii_lowercase) else {
            return Err(LockboxError::NoCluster { workspace });
        };
        if !self.enabled.contains(&cluster) {
            return Err(LockboxError::NotEnabled { cluster });
        }
        let pending = self
            .requests
            .values()
            .filter(|r| matches!(r.state, RequestState::Pending { .. }))
            .count();
        if pending >= LOCKBOX_PENDING_MAX {
            return Err(LockboxError::TooManyPending {
                max: LOCKBOX_PENDING_MAX,
            });
        }
        self.last_number += 1;
        let id = format!("lockbox-{:06}", self.last_number);
        let expires_at = now.add(profile.request_expiry);
        let reason = cmksim_sim::text::clip(reason, LOCKBOX_REASON_CHARS_MAX).to_string();
        self.requests.insert(
            id.clone(),
            LockboxRequest {
                id: id.clone(),
                workspace: workspace.clone(),
                cluster,
                requester: requester.to_string(),
                reason: reason.clone(),
                requested_at: now,
                state: RequestState::Pending { expires_at },
            },
        );
        self.forget_old();
        let event = LockboxEvent::Requested {
            id: id.clone(),
            workspace,
            requester: requester.to_string(),
            reason,
            expires_at,
        };
        Ok((id, vec![event]))
    }

    /// The customer approves or denies request `id`. A request whose expiry has passed is
    /// expired first (its event comes before the refusal would), so an answer never revives it.
    pub fn decide(
        &mut self,
        profile: &LockboxProfile,
        now: SimTime,
        id: &str,
        decision: Decision,
    ) -> Result<Vec<LockboxEvent>, LockboxError> {
        let key = id.to_ascii_lowercase();
        let request = self
            .requests
            .get_mut(&key)
            .ok_or_else(|| LockboxError::RequestNotFound {
                id: cmksim_sim::text::echo(id).to_string(),
            })?;
        match (&request.state, decision) {
            (RequestState::Pending { expires_at }, _) if now >= *expires_at => {
                Err(LockboxError::NotPending {
                    id: key,
                    state: "expired",
                })
            }
            (RequestState::Pending { .. }, Decision::Approve) => {
                let access_until = now.add(profile.access_duration);
                request.state = RequestState::Approved {
                    at: now,
                    access_until,
                };
                Ok(vec![LockboxEvent::Approved {
                    id: key,
                    workspace: request.workspace.clone(),
                    access_until,
                }])
            }
            (RequestState::Pending { .. }, Decision::Deny) => {
                request.state = RequestState::Denied { at: now };
                Ok(vec![LockboxEvent::Denied {
                    id: key,
                    workspace: request.workspace.clone(),
                }])
            }
            (
                RequestState::Approved { .. }
                | RequestState::Denied { .. }
                | RequestState::Expired { .. }
                | RequestState::AccessEnded { .. },
                _,
            ) => Err(LockboxError::NotPending {
                id: key,
                state: request.state.as_str(),
            }),
        }
    }

    /// Ends every request whose time is up at `now`: pending ones expire, approved ones lose
    /// their access. Each event carries the moment it was due, which may lie before `now`.
    pub fn expire_due(&mut self, now: SimTime) -> Vec<LockboxEvent> {
        let mut events = Vec::new();
        for request in self.requests.values_mut() {
            match request.state {
                RequestState::Pending { expires_at } if expires_at <= now => {
                    request.state = RequestState::Expired { at: expires_at };
                    events.push(LockboxEvent::Expired {
                        id: request.id.clone(),
                        workspace: request.workspace.clone(),
                        at: expires_at,
                    });
                }
                RequestState::Approved { access_until, .. } if access_until <= now => {
                    request.state = RequestState::AccessEnded { at: access_until };
                    events.push(LockboxEvent::AccessEnded {
                        id: request.id.clone(),
                        workspace: request.workspace.clone(),
                        at: access_until,
                    });
                }
                RequestState::Pending { .. }
                | RequestState::Approved { .. }
                | RequestState::Denied { .. }
                | RequestState::Expired { .. }
                | RequestState::AccessEnded { .. } => {}
            }
        }
        events
    }

    /// When the next request's time is up, if any is waiting or approved.
    pub fn next_due(&self) -> Option<SimTime> {
        self.requests
            .values()
            .filter_map(|r| match r.state {
                RequestState::Pending { expires_at } => Some(expires_at),
                RequestState::Approved { access_until, .. } => Some(access_until),
                RequestState::Denied { .. }
                | RequestState::Expired { .. }
                | RequestState::AccessEnded { .. } => None,
            })
            .min()
    }

    /// May `requester` read `workspace` at `now`? Only under a request of theirs for that
    /// workspace that is approved and whose access has not run out (judged by `now`, whatever the
    /// tick has done), on a cluster that still has Lockbox enabled.
    pub fn check_access(
        &self,
        now: SimTime,
        workspace: &str,
        requester: &str,
    ) -> Result<&LockboxRequest, LockboxError> {
        let workspace = workspace.to_ascii_lowercase();
        self.requests
            .values()
            .find(|r| {
                r.workspace == workspace
                    && r.requester == requester
                    && self.enabled.contains(&r.cluster)
                    && matches!(r.state, RequestState::Approved { access_until, .. } if now < access_until)
            })
            .ok_or(LockboxError::NoApprovedRequest {
                workspace,
                requester: requester.to_string(),
            })
    }

    /// True when `requester` has asked for `workspace`'s data at least once (a request kept, in
    /// any state): the refusal of such a principal's query is a Lockbox step of the timeline.
    pub fn has_asked(&self, workspace: &str, requester: &str) -> bool {
        self.requests
            .values()
            .any(|r| r.workspace.eq_ignore_ascii_case(workspace) && r.requester == requester)
    }

    /// Keeps at most [`LOCKBOX_REQUESTS_KEPT_MAX`] requests, forgetting answered ones oldest
    /// first (pending ones are bounded by [`LOCKBOX_PENDING_MAX`]).
    fn forget_old(&mut self) {
        while self.requests.len() > LOCKBOX_REQUESTS_KEPT_MAX {
            let oldest = self
                .requests
                .values()
                .find(|r| {
                    !matches!(
                        r.state,
                        RequestState::Pending { .. } | RequestState::Approved { .. }
                    )
                })
                .map(|r| r.id.clone());
            match oldest {
                Some(id) => {
                    self.requests.remove(&id);
                }
                None => break,
            }
        }
    }
}

/// The control plane's Lockbox calls: they find the cluster and the workspace's link, then let
/// [`LockboxState`] decide.
impl super::ControlPlane {
    /// Enables Customer Lockbox on a cluster.
    pub fn enable_lockbox(
        &mut self,
        cluster: &super::ResourceName,
    ) -> Result<Vec<LockboxEvent>, LockboxOrControlError> {
        let found = self.get_cluster(cluster)?;
        let (id, location) = (found.id.clone(), found.location.clone());
        Ok(self
            .state
            .lockbox
            .enable(&self.profile.lockbox, &id, &location)?)
    }

    /// A support engineer asks for a workspace's data; returns the request id.
    pub fn request_lockbox_access(
        &mut self,
        now: SimTime,
        workspace: &super::ResourceName,
        requester: &str,
        reason: &str,
    ) -> Result<(String, Vec<LockboxEvent>), LockboxOrControlError> {
        let ws = self.get_workspace(workspace)?;
        let (id, cluster) = (ws.id.clone(), ws.cluster_resource_id().map(str::to_string));
        Ok(self.state.lockbox.request(
            &self.profile.lockbox,
            now,
            &id,
            cluster.as_deref(),
            requester,
            reason,
        )?)
    }

    /// The customer approves or denies a request.
    pub fn decide_lockbox_request(
        &mut self,
        now: SimTime,
        id: &str,
        decision: Decision,
    ) -> Result<Vec<LockboxEvent>, LockboxOrControlError> {
        let mut events = self.state.lockbox.expire_due(now);
        events.extend(
            self.state
                .lockbox
                .decide(&self.profile.lockbox, now, id, decision)?,
        );
        Ok(events)
    }

    /// Whether `requester` may query `workspace` now (the event says which way it went). The
    /// request must be for the cluster the workspace is linked to now: a workspace moved off
    /// the cluster the customer approved for is not readable under that approval.
    pub fn check_lockbox_access(
        &self,
        now: SimTime,
        workspace: &super::ResourceName,
        requester: &str,
    ) -> Result<(Result<String, LockboxError>, LockboxEvent), LockboxOrControlError> {
        let ws = self.get_workspace(workspace)?;
        let linked_to = ws.cluster_resource_id().map(str::to_ascii_lowercase);
        let found = self
            .state
            .lockbox
            .check_access(now, &ws.id, requester)
            .and_then(|r| match linked_to.as_deref() == Some(r.cluster.as_str()) {
                true => Ok(r),
                false => Err(LockboxError::NoApprovedRequest {
                    workspace: ws.id.to_ascii_lowercase(),
                    requester: requester.to_string(),
                }),
            });
        Ok(match found {
            Ok(r) => (
                Ok(r.id.clone()),
                LockboxEvent::AccessGranted {
                    id: r.id.clone(),
                    workspace: r.workspace.clone(),
                    requester: requester.to_string(),
                },
            ),
            Err(e) => (
                Err(e),
                LockboxEvent::AccessRefused {
                    workspace: ws.id.to_ascii_lowercase(),
                    requester: requester.to_string(),
                },
            ),
        })
    }

    /// The Lockbox state (requests and enabled clusters).
    pub fn lockbox(&self) -> &LockboxState {
        &self.state.lockbox
    }

    /// Ends the requests whose time is up (called with the control tick).
    pub fn expire_lockbox_requests(&mut self, now: SimTime) -> Vec<LockboxEvent> {
        self.state.lockbox.expire_due(now)
    }
}

/// A Lockbox call refused by Lockbox's own rules or because its cluster or workspace is unknown.
#[derive(Debug, thiserror::Error)]
pub enum LockboxOrControlError {
    #[error(transparent)]
    Lockbox(#[from] LockboxError),
    #[error(transparent)]
    Control(#[from] super::ControlError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CLUSTER: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/clusters/c1";
    const WS: &str =
        "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/w1";
    const ENGINEER: &str = "support-engineer";

    fn profile() -> LockboxProfile {
        cmksim_sim::Profile::azure_2020().lockbox
    }

    fn t(hours: u64) -> SimTime {
        SimTime::DEFAULT_EPOCH.add(Duration::from_secs(hours * 3600))
    }

    fn enabled() -> LockboxState {
        let mut s = LockboxState::default();
        s.enable(&profile(), CLUSTER, "westeurope").unwrap();
        s
    }

    #[test]
    fn china_is_refused_with_the_seed_sentence() {
        let mut s = LockboxState::default();
        let e = s.enable(&profile(), CLUSTER, "China North 2").unwrap_err();
        assert_eq!(e.to_string(), "Lockbox isn't available in China currently.");
        assert_eq!(e.code_and_status(), ("LockboxNotAvailable", 400));
        assert!(s.enabled.is_empty());
        assert_eq!(
            s.enable(&profile(), CLUSTER, "westeurope").unwrap().len(),
            1
        );
        assert!(
            s.enable(&profile(), CLUSTER, "westeurope")
                .unwrap()
                .is_empty(),
            "twice: no event"
        );
    }

    #[test]
    fn a_request_needs_a_linked_workspace_on_a_lockbox_cluster() {
        let mut s = LockboxState::default();
        let p = profile();
        assert!(matches!(
            s.request(&p, t(0), WS, None, ENGINEER, "ticket 1"),
            Err(LockboxError::NoCluster { .. })
        ));
        assert!(matches!(
            s.request(&p, t(0), WS, Some(CLUSTER), ENGINEER, "ticket 1"),
            Err(LockboxError::NotEnabled { .. })
        ));
        assert!(
            s.requests.is_empty() && s.last_number == 0,
            "a refusal changes nothing"
        );
    }

    /// The state machine as a table: (hours after the request, decision or tick, the state
    /// afterwards, may the engineer query at that hour).
    #[test]
    fn transitions_in_simulated_time() {
        enum Step {
            Decide(Decision),
            Tick,
        }
        use Step::*;
        /// (hour, step, the state afterwards or the refusal's state, may the engineer query).
        type Row = (u64, Step, Result<&'static str, &'static str>, bool);
        let cases: Vec<(&str, Vec<Row>)> = vec![
            (
                "approved then expired",
                vec![
                    (1, Decide(Decision::Approve), Ok("approved"), true),
                    (8, Tick, Ok("approved"), true),
                    (9, Tick, Ok("access-ended"), false),
                    (10, Decide(Decision::Deny), Err("access-ended"), false),
                ],
            ),
            (
                "denied",
                vec![
                    (2, Decide(Decision::Deny), Ok("denied"), false),
                    (3, Decide(Decision::Approve), Err("denied"), false),
                ],
            ),
            (
                "unanswered",
                vec![
                    (95, Tick, Ok("pending"), false),
                    (96, Tick, Ok("expired"), false),
                    (97, Decide(Decision::Approve), Err("expired"), false),
                ],
            ),
            (
                "approved too late, before the tick",
                vec![(96, Decide(Decision::Approve), Err("expired"), false)],
            ),
        ];
        for (name, steps) in cases {
            let mut s = enabled();
            let p = profile();
            let (id, events) = s
                .request(&p, t(0), WS, Some(CLUSTER), ENGINEER, "ticket 42")
                .unwrap();
            assert_eq!(id, "lockbox-000001");
            assert_eq!(events[0].kind(), "lockbox.requested");
            assert!(
                s.check_access(t(0), WS, ENGINEER).is_err(),
                "{name}: pending grants nothing"
            );
            for (hour, step, expected, may_query) in steps {
                let now = t(hour);
                let result = match step {
                    Decide(d) => {
                        let mut ev = s.expire_due(now);
                        match s.decide(&p, now, &id, d) {
                            Ok(more) => {
                                ev.extend(more);
                                Ok(s.requests[&id].state.as_str())
                            }
                            Err(LockboxError::NotPending { state, .. }) => Err(state),
                            Err(e) => panic!("{name}: {e}"),
                        }
                    }
                    Tick => {
                        s.expire_due(now);
                        Ok(s.requests[&id].state.as_str())
                    }
                };
                assert_eq!(result, expected, "{name} at {hour}h");
                assert_eq!(
                    s.check_access(now, WS, ENGINEER).is_ok(),
                    may_query,
                    "{name} at {hour}h"
                );
            }
        }
    }

    #[test]
    fn access_is_judged_by_now_even_without_a_tick_and_only_for_the_requester() {
        let mut s = enabled();
        let p = profile();
        let (id, _) = s
            .request(&p, t(0), WS, Some(CLUSTER), ENGINEER, "r")
            .unwrap();
        let ev = s.decide(&p, t(1), &id, Decision::Approve).unwrap();
        assert_eq!(
            ev,
            vec![LockboxEvent::Approved {
                id: id.clone(),
                workspace: WS.into(),
                access_until: t(9)
            }]
        );
        assert!(s.check_access(t(8), WS, ENGINEER).is_ok());
        assert!(s.check_access(t(8), WS, "someone-else").is_err());
        assert!(s
            .check_access(t(8), &WS.replace("w1", "w2"), ENGINEER)
            .is_err());
        let e = s.check_access(t(9), WS, ENGINEER).unwrap_err();
        assert_eq!(e.code_and_status(), ("InsufficientAccessError", 403));
        assert_eq!(s.next_due(), Some(t(9)));
        let ended = s.expire_due(t(12));
        assert_eq!(
            ended,
            vec![LockboxEvent::AccessEnded {
                id,
                workspace: WS.into(),
                at: t(9)
            }],
            "the event carries the due time"
        );
        assert_eq!(s.next_due(), None);
    }

    /// An approval is for the cluster the workspace was linked to when asked: once the
    /// workspace is moved to another cluster, or unlinked, it lets nobody in.
    #[test]
    fn an_approval_ends_when_the_workspace_leaves_its_cluster() {
        use super::super::test_support::{cluster_name, World};
        let mut w = World::new(cmksim_sim::Profile::azure_2020());
        for c in ["clusterone", "clustertwo"] {
            w.provisioned(c);
            w.cp.enable_lockbox(&cluster_name(c)).unwrap();
        }
        w.workspace("ws-one");
        w.linked("ws-one", "clusterone");
        let ws = super::super::test_support::ws_name("ws-one");
        let (id, _) =
            w.cp.request_lockbox_access(w.now, &ws, ENGINEER, "ticket")
                .unwrap();
        w.cp.decide_lockbox_request(w.now, &id, Decision::Approve)
            .unwrap();
        let (granted, event) = w.cp.check_lockbox_access(w.now, &ws, ENGINEER).unwrap();
        assert_eq!(granted.unwrap(), id);
        assert_eq!(event.kind(), "lockbox.access_granted");
        w.unlink("ws-one").unwrap();
        w.advance(w.cp.profile().cluster.unlink_duration);
        w.linked("ws-one", "clustertwo");
        let until = match w.cp.lockbox().requests[&id].state {
            RequestState::Approved { access_until, .. } => access_until,
            ref other => panic!("{other:?}"),
        };
        assert!(w.now < until, "still within the approval's 8 hours");
        let (refused, event) = w.cp.check_lockbox_access(w.now, &ws, ENGINEER).unwrap();
        assert_eq!(
            refused.unwrap_err().code_and_status(),
            ("InsufficientAccessError", 403)
        );
        assert_eq!(event.kind(), "lockbox.access_refused");
        assert!(w
            .cp
            .lockbox()
            .has_asked(ws_id(&w, "ws-one").as_str(), ENGINEER));
        assert!(!w
            .cp
            .lockbox()
            .has_asked(ws_id(&w, "ws-one").as_str(), "someone-else"));
    }

    fn ws_id(w: &super::super::test_support::World, name: &str) -> String {
        w.cp.get_workspace(&super::super::test_support::ws_name(name))
            .unwrap()
            .id
            .clone()
    }

    #[test]
    fn pending_requests_are_bounded_and_ids_never_repeat() {
        let mut s = enabled();
        let p = profile();
        for _ in 0..LOCKBOX_PENDING_MAX {
            s.request(&p, t(0), WS, Some(CLUSTER), ENGINEER, "r")
                .unwrap();
        }
        assert!(matches!(
            s.request(&p, t(0), WS, Some(CLUSTER), ENGINEER, "r"),
            Err(LockboxError::TooManyPending {
                max: LOCKBOX_PENDING_MAX
            })
        ));
        assert_eq!(s.expire_due(t(200)).len(), LOCKBOX_PENDING_MAX);
        let (id, _) = s
            .request(&p, t(200), WS, Some(CLUSTER), ENGINEER, &"x".repeat(500))
            .unwrap();
        assert_eq!(id, format!("lockbox-{:06}", LOCKBOX_PENDING_MAX + 1));
        let reason = &s.requests[&id].reason;
        assert!(
            reason.starts_with(&"x".repeat(LOCKBOX_REASON_CHARS_MAX)),
            "{reason}"
        );
        assert!(reason.ends_with("(500 characters)"), "{reason}");
    }
}
