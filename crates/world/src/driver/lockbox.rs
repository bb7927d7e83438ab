//! The driver's Customer Lockbox steps (seeds 001 and 003): enable Lockbox on a cluster, a
//! support engineer's request, the customer's answer, and the engineer's query.
//!
//! Storage decides everything (`storage.v1.Lockbox`); the driver only remembers which request
//! each `lockbox-request` step made, so that `lockbox-approve`/`lockbox-deny` can name the step
//! instead of an id chosen at run time. The engineer is the identity directory's well-known
//! principal ([`cmksim_identity::directory::SUPPORT_ENGINEER_OBJECT_ID`]). Its query is judged by
//! storage's Lockbox first (403 `InsufficientAccessError` without an approved, unexpired
//! request); only then does it reach the front end.

use cmksim_identity::directory::SUPPORT_ENGINEER_OBJECT_ID;
use cmksim_proto::storage::v1 as sp;
use cmksim_scenario::model::Action;

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
                let answer = self
                    .lockbox
                    .request_lockbox_access(Self::engineer_request(workspace, label))
                    .await?
                    .into_inner();
                self.lockbox_requests
                    .insert(label.to_string(), answer.request_id);
                Ok(())
            }
            Action::LockboxDecide { request, approve } => {
                let request_id =
                    self.lockbox_requests
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
                    })
                    .await?;
                Ok(())
            }
            Action::SupportQuery { workspace } => {
                self.lockbox
                    .check_lockbox_access(Self::engineer_request(workspace, label))
                    .await?;
                self.query_step(workspace, None, None).await
            }
            other => Err(StepError {
                code: "NotALockboxAction".into(),
                status: None,
                line: None,
                message: format!("{} is not a Lockbox action", other.name()),
            }),
        }
    }

    fn engineer_request(workspace: &str, label: &str) -> sp::LockboxAccessRequest {
        sp::LockboxAccessRequest {
            workspace: Some(Self::workspace_ref(workspace)),
            requester_object_id: SUPPORT_ENGINEER_OBJECT_ID.to_string(),
            reason: format!("scenario step {label}"),
        }
    }
}
