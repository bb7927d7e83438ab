//! The driver's Customer Lockbox steps (seeds 001 and 003): enable Lockbox on a cluster, a
//! support engineer's request, the customer's answer, and the engineer's query.
//!
//! Storage decides everything (`storage.v1.Lockbox`); the driver only remembers which request
//! each `lockbox-request` step made, so that `lockbox-approve`/`lockbox-deny` can name the step
//! instead of an id chosen at run time. The engineer is a real principal
//! ([`cmksim_identity::directory::SUPPORT_ENGINEER_NAME`], no role), made by the identity
//! administrator at the first `lockbox-request` step, and asks with its own token: storage takes
//! the requester from the token. The customer's answer goes with the driver's token and names the
//! workspace, where storage's guard checks the customer's role. The engineer's query goes to the
//! ingest front end with the engineer's own token, as any query does: the engineer holds no role,
//! so the front end's guard lets it through only when storage's Lockbox has an approved,
//! unexpired request of that engineer for that workspace (`cmksim_identity::LockboxGate`), and
//! otherwise refuses it as it refuses anyone without a role (403 `AuthorizationFailed`).

use cmksim_identity::directory::{SUPPORT_ENGINEER_NAME, SUPPORT_ENGINEER_OBJECT_ID};
use cmksim_proto::storage::v1 as sp;
use cmksim_scenario::model::Action;
use cmksim_sim::SimTime;

use super::{Driver, StepError};

impl Driver {
    /// Applies a Lockbox action; `label` is the step's (a request is remembered by it).
    pub(super) async fn lockbox_step(
        &mut self,
        label: &str,
        action: &Action,
    ) -> Result<(), StepError> {
        match action {
            Action::EnableLockbox { cluster } => {
                let reference = self.cluster_ref(cluster)?;
                self.lockbox.enable_lockbox(reference).await?;
                Ok(())
            }
            Action::LockboxRequest { workspace } => {
                self.provision_engineer().await?;
                let request = self.engineer_request(workspace, label);
                let answer = self
                    .engineer_lockbox
                    .request_lockbox_access(request)
                    .await?
                    .into_inner();
                self.lockbox_requests.insert(
                    label.to_string(),
                    (answer.request_id, Self::workspace_ref(workspace)),
                );
                Ok(())
            }
            Action::LockboxDecide { request, approve } => {
                let (request_id, workspace) = self
                    .lockbox_requests
                    .get(request)
                    .cloned()
                    .ok_or_else(|| StepError {
                        code: "UnknownLockboxRequest".into(),
                        status: None,
                        line: None,
                        message: format!(
                            "step {} made no Lockbox request (it did not run or was refused)",
                            cmksim_sim::text::echo(request)
                        ),
                    })?;
                self.lockbox
                    .decide_lockbox_request(sp::LockboxDecision {
                        request_id,
                        approve: *approve,
                        workspace: Some(workspace),
                    })
                    .await?;
                Ok(())
            }
            Action::SupportQuery { workspace } => {
                self.provision_engineer().await?;
                let request =
                    super::traffic::probe_request(workspace, SimTime(0), self.clock.now());
                self.engineer_query.query(request).await?;
                Ok(())
            }
            other => Err(StepError {
                code: "NotALockboxAction".into(),
                status: None,
                line: None,
                message: format!("{} is not a Lockbox action", other.name()),
            }),
        }
    }

    fn engineer_request(&self, workspace: &str, label: &str) -> sp::LockboxAccessRequest {
        sp::LockboxAccessRequest {
            workspace: Some(Self::workspace_ref(workspace)),
            // What an unguarded storage (`--allow-anonymous`) takes; a guarded one takes the
            // token's principal, the same engineer.
            requester_object_id: self
                .engineer
                .get()
                .map_or(SUPPORT_ENGINEER_OBJECT_ID, |(id, _)| id)
                .to_string(),
            reason: format!("scenario step {label}"),
        }
    }

    /// Makes the support engineer's principal (once), through the identity administrator.
    async fn provision_engineer(&mut self) -> Result<(), StepError> {
        if self.engineer.get().is_none() {
            let admin = crate::auth::admin_channel(
                self.identity_channel.clone(),
                &self.admin,
                self.clock.clone(),
            );
            crate::auth::provision(admin, SUPPORT_ENGINEER_NAME, &[], &self.engineer).await?;
        }
        Ok(())
    }
}
