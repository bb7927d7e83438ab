//! What the front end needs from cluster storage, and nothing more.
//!
//! Three calls: the workspace's link state ([`StorageBackend::routing`]), appending a batch to
//! one storage with an outcome per record ([`StorageBackend::append`]), and querying one
//! storage's part of a workspace ([`StorageBackend::query`]). Keeping the interface this narrow
//! is what lets the front end run against the storage service over gRPC, or against the
//! in-memory [`memory::MemoryStorage`] in tests, with the same code. The trait returns boxed
//! futures so it can be used as `Arc<dyn StorageBackend>`.

pub mod memory;

use crate::outcome::RecordOutcome;
use crate::query::{QuerySpec, StoragePart};
use crate::record::Record;
use crate::routing::{Destination, WorkspaceRouting};
use crate::BoxFuture;

/// A batch for one storage.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub destination: Destination,
    pub workspace: String,
    pub table: String,
    pub records: Vec<Record>,
}

/// Why storage could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("workspace {workspace:?} was not found")]
    WorkspaceNotFound { workspace: String },
    /// The storage cannot serve reads: `state` is e.g. `revoked` or `unavailable`.
    #[error("{destination} is {state}: {detail}")]
    Inaccessible {
        destination: Destination,
        state: String,
        detail: String,
    },
    /// The storage service could not be reached or answered with a transport-level failure.
    #[error("storage unreachable: {reason}")]
    Unreachable { reason: String },
}

/// The front end's view of cluster storage.
pub trait StorageBackend: Send + Sync + 'static {
    /// The workspace's link state (`WorkspaceNotFound` for an unknown workspace).
    fn routing(&self, workspace: String) -> BoxFuture<'_, Result<WorkspaceRouting, BackendError>>;

    /// Appends a batch to one storage; one outcome per record, in order.
    fn append(
        &self,
        request: AppendRequest,
    ) -> BoxFuture<'_, Result<Vec<RecordOutcome>, BackendError>>;

    /// One storage's matching rows for the query (at most the query's limit, in its order) and
    /// its matched counts per tier.
    fn query(
        &self,
        destination: Destination,
        spec: QuerySpec,
    ) -> BoxFuture<'_, Result<StoragePart, BackendError>>;
}
