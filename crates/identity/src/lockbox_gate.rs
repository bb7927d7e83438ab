//! The query path's Customer Lockbox gate (seeds 001 and 003: "only an approved, unexpired
//! request lets that principal query"): when a principal that holds no read role at a
//! workspace queries it, the query is let through only if storage's Customer Lockbox has an
//! approved, unexpired request of that principal for that workspace, on a cluster with Lockbox
//! enabled. Otherwise the caller gets the refusal a principal without a role gets.
//!
//! Why here, and why over gRPC: storage owns the Lockbox state and decides
//! (`storage.v1.Lockbox/AuthorizeLockboxQuery`, which records the access used as
//! `lockbox.access_granted`); the query path has two doors that check roles — the ingest front
//! end's guard ([`crate::Guard::with_lockbox`]) and the HTTPS door's Logs Query API — and both
//! ask through this one type, so the rule "no role: ask Lockbox, else refuse" has one home. The
//! asking service calls with its own token (it reads every workspace: query read at the root
//! scope) and names the querying principal in the body. Nothing is remembered: an access that
//! runs out, or a request denied, refuses the very next query.

use cmksim_proto::storage::v1 as spb;
use tonic::Code;

use crate::client::AuthChannel;
use crate::grpc_auth::AuthError;

/// Asks storage's Customer Lockbox whether a principal without a role may query a workspace.
#[derive(Clone, Debug)]
pub struct LockboxGate {
    /// Storage's channel, carrying the asking service's own tokens.
    storage: AuthChannel,
}

impl LockboxGate {
    /// A gate asking the storage service on `storage` (a channel with the asking service's
    /// tokens: its principal needs query read at the root scope).
    pub fn new(storage: AuthChannel) -> LockboxGate {
        LockboxGate { storage }
    }

    /// The id of the approved, unexpired Lockbox request under which `principal_object_id` may
    /// query `workspace_id` (an ARM id), or `None` when there is none (or the workspace is
    /// unknown to storage). Storage that cannot be asked is [`AuthError::Unavailable`]: the
    /// query is refused then too (fail closed), and the client may retry.
    pub async fn allows(
        &self,
        principal_object_id: &str,
        workspace_id: &str,
    ) -> Result<Option<String>, AuthError> {
        let answer = spb::lockbox_client::LockboxClient::new(self.storage.clone())
            .authorize_lockbox_query(spb::LockboxQueryCheck {
                workspace_id: workspace_id.to_string(),
                principal_object_id: principal_object_id.to_string(),
            })
            .await;
        match answer {
            Ok(granted) => Ok(Some(granted.into_inner().request_id)),
            Err(status) if matches!(status.code(), Code::PermissionDenied | Code::NotFound) => {
                Ok(None)
            }
            Err(status) => Err(AuthError::Unavailable(format!(
                "Customer Lockbox could not be asked: {}",
                cmksim_sim::text::echo(status.message())
            ))),
        }
    }
}
