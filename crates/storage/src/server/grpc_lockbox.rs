//! `storage.v1.Lockbox`: Customer Lockbox over gRPC (the rules are in
//! [`crate::control::lockbox`]; this adapter finds the time, persists, and records the events).
//!
//! The control tick calls [`Core::lockbox_tick`] so that a request nobody answered, or an access
//! that ran out, is in the event log at most one tick ([`super::effects::TICK_CHECK_INTERVAL_MAX`])
//! after it was due; [`LockboxService::check_lockbox_access`] judges by the time of the call
//! itself, so a late tick never lets an engineer in.
//!
//! Who asks: behind the guard (the default), the requester of a request and of an access check
//! is the principal of the call's token ([`requester`]), never the body's `requester_object_id`
//! (which an unguarded server, `--allow-anonymous`, still takes); a decision names the
//! workspace, where the guard checked the customer's role, and a request of another workspace
//! is not found.
//!
//! The query path's gate ([`LockboxService::authorize_lockbox_query`], asked by ingest's guard
//! and the HTTPS door through `cmksim_identity::LockboxGate`) is the same decision for a
//! principal named in the body: the caller is the querying service, not the engineer. A grant is
//! recorded as `lockbox.access_granted` (the request used for a query); a refusal as
//! `lockbox.access_refused` only for a principal that has asked Lockbox for that workspace —
//! anyone else without a role is refused by the guard as usual, and is no Lockbox step.

use std::sync::Arc;

use cmksim_proto::storage::v1 as pb;
use tonic::{Code, Request, Response, Status};

use crate::control::lockbox::{
    Decision, LockboxError, LockboxEvent, LockboxOrControlError, RequestState,
};
use crate::service::status::{azure_status, control_status};

use super::convert::{cluster_name, workspace_name};
use super::core::Core;
use super::grpc_data::parse_workspace;

pub struct LockboxService {
    pub core: Arc<Core>,
}

/// The requester of a Lockbox call: the caller the guard verified, or (no guard) the body's.
fn requester<T>(request: &Request<T>, body_requester: &str) -> String {
    match request.extensions().get::<cmksim_identity::Caller>() {
        Some(caller) => caller.object_id.clone(),
        None => body_requester.to_string(),
    }
}

fn lockbox_status(error: &LockboxError) -> Status {
    let (code, http) = error.code_and_status();
    let grpc = match http {
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        _ => Code::InvalidArgument,
    };
    azure_status(grpc, code, http, &error.to_string())
}

fn answer(id: &str, state: &RequestState) -> pb::LockboxAnswer {
    let until = match state {
        RequestState::Pending { expires_at } => expires_at.unix_ms(),
        RequestState::Approved { access_until, .. } => access_until.unix_ms(),
        RequestState::Denied { .. }
        | RequestState::Expired { .. }
        | RequestState::AccessEnded { .. } => 0,
    };
    pb::LockboxAnswer {
        request_id: id.to_string(),
        state: state.as_str().to_string(),
        until_unix_ms: until,
    }
}

impl Core {
    fn record_lockbox(&self, now: cmksim_sim::SimTime, events: &[LockboxEvent]) {
        for event in events {
            super::events::record_event(&self.events, now, event);
        }
    }

    /// Ends the Lockbox requests whose time is up, persists and records them (control tick).
    pub fn lockbox_tick(&self) {
        let now = self.now();
        let events = {
            let mut control = self.control();
            if control.lockbox().next_due().is_none_or(|due| due > now) {
                return;
            }
            let events = control.expire_lockbox_requests(now);
            if let Err(e) = self.persist_control(control.state()) {
                tracing::error!("storage: persisting the Lockbox state failed: {e}");
            }
            events
        };
        self.record_lockbox(now, &events);
    }

    /// Whether `who` may query `resource` now, recorded (a refusal only when `record_refusal`
    /// says so for the request's workspace and requester): the answer for an approved request,
    /// else 403 `InsufficientAccessError`.
    fn lockbox_access(
        &self,
        resource: &crate::control::ResourceName,
        who: &str,
        record_refusal: impl FnOnce(&crate::control::lockbox::LockboxState, &str) -> bool,
    ) -> Result<pb::LockboxAnswer, Status> {
        let now = self.now();
        let (decision, event) = {
            let control = self.control();
            let (decision, event) =
                control
                    .check_lockbox_access(now, resource, who)
                    .map_err(|e| match e {
                        LockboxOrControlError::Lockbox(e) => lockbox_status(&e),
                        LockboxOrControlError::Control(e) => control_status(&control, &e),
                    })?;
            let record = match (&decision, &event) {
                (Ok(_), _) => true,
                (Err(_), LockboxEvent::AccessRefused { workspace, .. }) => {
                    record_refusal(control.lockbox(), workspace)
                }
                (Err(_), _) => true,
            };
            // The request found is in the state (the lock is still held).
            let decision = decision.map(|id| match control.lockbox().requests.get(&id) {
                Some(found) => answer(&id, &found.state),
                None => answer(&id, &RequestState::AccessEnded { at: now }),
            });
            (decision, record.then_some(event))
        };
        if let Some(event) = event {
            self.record_lockbox(now, std::slice::from_ref(&event));
        }
        decision.map_err(|e| lockbox_status(&e))
    }

    /// Runs a Lockbox mutation: the control lock held, persisted before the answer.
    fn lockbox_mutate<T>(
        &self,
        f: impl FnOnce(
            &mut crate::control::ControlPlane,
            cmksim_sim::SimTime,
        ) -> Result<(T, Vec<LockboxEvent>), LockboxOrControlError>,
    ) -> Result<T, Status> {
        let now = self.now();
        let (value, events) = {
            let mut control = self.control();
            let (value, events) = f(&mut control, now).map_err(|e| match e {
                LockboxOrControlError::Lockbox(e) => lockbox_status(&e),
                LockboxOrControlError::Control(e) => control_status(&control, &e),
            })?;
            self.persist_control(control.state()).map_err(|e| {
                azure_status(Code::Internal, "InternalServerError", 500, &e.to_string())
            })?;
            (value, events)
        };
        self.record_lockbox(now, &events);
        Ok(value)
    }
}

#[tonic::async_trait]
impl pb::lockbox_server::Lockbox for LockboxService {
    async fn enable_lockbox(
        &self,
        request: Request<pb::ClusterRef>,
    ) -> Result<Response<pb::LockboxAnswer>, Status> {
        let resource = cluster_name(Some(request.get_ref()));
        self.core.lockbox_mutate(|c, _| {
            let events = c.enable_lockbox(&resource)?;
            Ok(((), events))
        })?;
        Ok(Response::new(pb::LockboxAnswer {
            request_id: String::new(),
            state: "enabled".into(),
            until_unix_ms: 0,
        }))
    }

    async fn request_lockbox_access(
        &self,
        request: Request<pb::LockboxAccessRequest>,
    ) -> Result<Response<pb::LockboxAnswer>, Status> {
        let who = requester(&request, &request.get_ref().requester_object_id);
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let answer = self.core.lockbox_mutate(|c, now| {
            let (id, events) = c.request_lockbox_access(now, &resource, &who, &r.reason)?;
            let state = c.lockbox().requests[&id].state.clone();
            Ok((answer(&id, &state), events))
        })?;
        Ok(Response::new(answer))
    }

    async fn decide_lockbox_request(
        &self,
        request: Request<pb::LockboxDecision>,
    ) -> Result<Response<pb::LockboxAnswer>, Status> {
        let r = request.into_inner();
        let decision = match r.approve {
            true => Decision::Approve,
            false => Decision::Deny,
        };
        let answer = self.core.lockbox_mutate(|c, now| {
            let key = r.request_id.to_ascii_lowercase();
            // The customer's role was checked at this workspace: the request must be for it.
            if let Some(workspace) = r.workspace.as_ref() {
                let ws = c.get_workspace(&workspace_name(Some(workspace)))?;
                let same = c
                    .lockbox()
                    .requests
                    .get(&key)
                    .is_some_and(|q| q.workspace.eq_ignore_ascii_case(&ws.id));
                if !same {
                    return Err(LockboxError::RequestNotFound {
                        id: cmksim_sim::text::echo(&r.request_id).to_string(),
                    }
                    .into());
                }
            }
            let events = c.decide_lockbox_request(now, &r.request_id, decision)?;
            let state = c.lockbox().requests[&key].state.clone();
            Ok((answer(&key, &state), events))
        })?;
        Ok(Response::new(answer))
    }

    async fn check_lockbox_access(
        &self,
        request: Request<pb::LockboxAccessRequest>,
    ) -> Result<Response<pb::LockboxAnswer>, Status> {
        let who = requester(&request, &request.get_ref().requester_object_id);
        let resource = workspace_name(request.get_ref().workspace.as_ref());
        let answer = self.core.lockbox_access(&resource, &who, |_, _| true)?;
        Ok(Response::new(answer))
    }

    async fn authorize_lockbox_query(
        &self,
        request: Request<pb::LockboxQueryCheck>,
    ) -> Result<Response<pb::LockboxAnswer>, Status> {
        let r = request.into_inner();
        let resource = parse_workspace(&r.workspace_id)?;
        let who = r.principal_object_id;
        let answer = self
            .core
            .lockbox_access(&resource, &who, |lockbox, workspace| {
                lockbox.has_asked(workspace, &who)
            })?;
        Ok(Response::new(answer))
    }
}
