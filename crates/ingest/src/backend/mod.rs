//! What the front end needs from cluster storage, and nothing more.
//!
//! Implementations: [`grpc::GrpcStorage`] (the storage service's `storage.v1` data plane and
//! workspaces API) and [`memory::MemoryStorage`] (an in-process fake of the same contract, for
//! the front end's own tests).
//!
//! The calls: appending a validated batch, with an outcome per record
//! ([`StorageBackend::append`]); querying a workspace's table across every storage that holds
//! its data ([`StorageBackend::query`]), or having each of them run a KQL query's summarize
//! where the rows lie ([`StorageBackend::summarize`]); and reading and declaring a custom table's columns
//! ([`StorageBackend::custom_table`], [`StorageBackend::declare_custom_table`]: storage keeps the
//! declarations, see [`crate::schema`]). Storage alone decides where a batch goes (shared
//! storage, a cluster, or nowhere: linked before the cluster finished provisioning) and what
//! becomes of each record; the front end validates, calls append once, and accounts what storage
//! answered. Keeping the interface this narrow is what lets the front end run against the
//! storage service over gRPC, or against the in-memory fake in tests, with the same code. The
//! trait returns boxed futures so it can be used as `Arc<dyn StorageBackend>`.

pub mod grpc;
pub mod memory;

use crate::outcome::Outcomes;
use crate::query::{QuerySpec, StoragePart};
use crate::record::Record;
use crate::routing::Destination;
use crate::schema::TableSchema;
use crate::BoxFuture;

/// A validated batch of one workspace's table.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub workspace: String,
    pub table: String,
    pub records: Vec<Record>,
}

/// What storage did with a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendResult {
    /// Where storage routed the batch; `None` when it was dropped before reaching any storage.
    pub routed_to: Option<Destination>,
    /// Every record's, in order (as runs).
    pub outcomes: Outcomes,
}

/// One storage's groups of a KQL summarize it ran where the data lies
/// ([`StorageBackend::summarize`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryPart {
    pub destination: Destination,
    /// The groups in `cmksim_kql`'s encoding (`SummarizePlan::decode` with the query's plan).
    pub groups: Vec<u8>,
    /// Records in the range this storage scanned, before the query's filter.
    pub scanned: u64,
    /// Rows the filter kept, per tier that served them.
    pub kept: std::collections::BTreeMap<crate::query::Tier, u64>,
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
    /// Storage refused the batch as malformed (a rule the front end's validation should have
    /// caught first); `message` is storage's.
    #[error("storage refused the batch: {message}")]
    Refused { message: String },
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
    /// Appends a validated batch; storage routes it and answers each record's outcome
    /// (`WorkspaceNotFound` for an unknown workspace).
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<AppendResult, BackendError>>;

    /// The matching rows of the query in each storage that holds the workspace's data (sorted by
    /// storage; at most the query's limit per part, in its order) with matched counts per tier.
    /// `schema` is the table's. Fails with `Inaccessible`, naming the storage and its state, if
    /// any of them cannot serve reads.
    fn query(
        &self,
        spec: QuerySpec,
        schema: TableSchema,
    ) -> BoxFuture<'_, Result<Vec<StoragePart>, BackendError>>;

    /// A KQL query's leading summarize run by storage over the query's table (`spec.kql` must
    /// be set): each storage's groups, sorted by storage. `Ok(None)`: this backend does not
    /// summarize, or not this query (the caller reads rows with [`StorageBackend::query`]
    /// instead). Fails as [`StorageBackend::query`] does. The default: `Ok(None)`.
    fn summarize(
        &self,
        _spec: QuerySpec,
        _schema: TableSchema,
    ) -> BoxFuture<'_, Result<Option<Vec<SummaryPart>>, BackendError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// The declared columns of custom table `table` of `workspace`, `None` when never declared
    /// (`WorkspaceNotFound` for an unknown workspace).
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

    /// Customer Lockbox's gate on the query path (`cmksim_identity::lockbox_gate`), asking this
    /// backend's storage service with the front end's own tokens; `None` (the default): a
    /// backend without Lockbox, so a query without a read role is refused.
    fn lockbox_gate(&self) -> Option<cmksim_identity::LockboxGate> {
        None
    }
}
