//! What the front end needs from cluster storage, and nothing more.
//!
//! Implementations: [`grpc::GrpcStorage`] (the storage service's `storage.v1` data plane and
//! workspaces API) and [`memory::MemoryStorage`] (in-process, for tests).
//!
//! Five calls: the workspace's link state ([`StorageBackend::routing`]), appending a batch to
//! one storage with an outcome per record ([`StorageBackend::append`]), querying one storage's
//! part of a workspace ([`StorageBackend::query`]), and reading and declaring a custom table's
//! columns ([`StorageBackend::custom_table`], [`StorageBackend::declare_custom_table`]: storage
//! keeps the declarations, see [`crate::schema`]). Keeping the interface this narrow
//! is what lets the front end run against the storage service over gRPC, or against the
//! in-memory [`memory::MemoryStorage`] in tests, with the same code. The trait returns boxed
//! futures so it can be used as `Arc<dyn StorageBackend>`.

pub mod grpc;
pub mod memory;

use crate::outcome::RecordOutcome;
use crate::query::{QuerySpec, StoragePart};
use crate::record::Record;
use crate::routing::{Destination, WorkspaceRouting};
use crate::schema::TableSchema;
use crate::BoxFuture;

/// A batch for one storage.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub destination: Destination,
    pub workspace: String,
    pub table: String,
    pub records: Vec<Record>,
}

/// What storage did with a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendResult {
    /// Where storage actually routed the batch (it may decide itself); `None` when dropped
    /// before reaching any storage.
    pub routed_to: Option<Destination>,
    /// One per record, in order.
    pub outcomes: Vec<RecordOutcome>,
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
    /// Storage refused a custom-table declaration (a column's type changed since the front end
    /// read the table, or a storage limit); `message` is storage's.
    #[error("storage refused the declaration: {message}")]
    DeclarationRefused { message: String },
}

/// The front end's view of cluster storage.
pub trait StorageBackend: Send + Sync + 'static {
    /// The workspace's link state (`WorkspaceNotFound` for an unknown workspace).
    fn routing(&self, workspace: String) -> BoxFuture<'_, Result<WorkspaceRouting, BackendError>>;

    /// Appends a batch to the storage the front end routed it to (a backend whose storage
    /// routes by itself reports where it went in [`AppendResult::routed_to`]).
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendResult, BackendError>>;

    /// The matching rows of the query in each of `destinations` (sorted; at most the query's
    /// limit per part, in its order) with matched counts per tier. `schema` is the table's, for
    /// backends whose storage does not keep column types. Fails with `Inaccessible`, naming the
    /// storage and its state, if any of them cannot serve reads.
    fn query(
        &self,
        destinations: Vec<Destination>,
        spec: QuerySpec,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<Vec<StoragePart>, BackendError>>;

    /// The declared columns of custom table `table` of `workspace`, `None` when never declared.
    fn custom_table(
        &self,
        workspace: String,
        table: String,
    ) -> BoxFuture<'_, Result<Option<TableSchema>, BackendError>>;

    /// Registers `schema`'s columns for its table in `workspace` (storage adds what is new and
    /// refuses, with `DeclarationRefused`, a column whose type differs); answers the table as
    /// registered.
    fn declare_custom_table(
        &self,
        workspace: String,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<TableSchema, BackendError>>;
}
