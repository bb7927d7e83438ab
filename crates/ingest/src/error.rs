//! Typed errors of the front end, each with the gRPC class, Azure code and HTTP status it maps to.
//!
//! A refused batch or query is refused whole: these errors are returned before anything is
//! applied. The mapping lives beside the variants (not in the gRPC adapter) so that a later REST
//! facade gives the same code, status and message; the adapter only turns [`ErrorClass`] into a
//! `tonic::Code`.
//!
//! Names from the request (workspace, table, column, type) are echoed through
//! [`cmksim_sim::text::echo`]: at most [`cmksim_sim::text::ECHO_CHARS_MAX`] characters each, so a
//! huge name cannot make a status too large for clients to read.

use cmksim_sim::text::echo;
use cmksim_sim::SimTime;

use crate::record::ColumnType;
use crate::routing::Destination;

/// The gRPC status class of an error (mapped 1:1 to `tonic::Code` by the adapter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    FailedPrecondition,
    Unavailable,
    Internal,
}

/// How an error is presented: class, Azure code, inner code, HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorShape {
    pub class: ErrorClass,
    pub code: &'static str,
    pub inner_code: &'static str,
    pub http_status: u32,
}

const fn shape(
    class: ErrorClass,
    code: &'static str,
    inner_code: &'static str,
    http_status: u32,
) -> ErrorShape {
    ErrorShape {
        class,
        code,
        inner_code,
        http_status,
    }
}

/// Why a batch (or a table declaration) was refused. Record indexes are 0-based.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("the batch has no records")]
    EmptyBatch,
    #[error("the batch is {bytes} bytes as a JSON body; the limit is {limit_bytes} bytes (1 MiB)")]
    BatchTooLarge { bytes: usize, limit_bytes: usize },
    #[error("workspace {workspace:?} was not found", workspace = echo(.workspace))]
    WorkspaceNotFound { workspace: String },
    #[error("table {table:?} is not a known table of workspace {workspace:?} (standard tables: Event, Heartbeat, Perf, Syslog; custom tables must be declared)", workspace = echo(.workspace), table = echo(.table))]
    UnknownTable { workspace: String, table: String },
    #[error("record {record_index}: column {column:?} is not a column of table {table:?}", table = echo(.table), column = echo(.column))]
    UnknownColumn {
        table: String,
        record_index: usize,
        column: String,
    },
    #[error("record {record_index}: column {column:?} of table {table:?} is {expected}, got a {got} value", table = echo(.table), column = echo(.column))]
    WrongColumnType {
        table: String,
        record_index: usize,
        column: String,
        expected: ColumnType,
        got: ColumnType,
    },
    #[error("record {record_index}: column {column:?} appears more than once", column = echo(.column))]
    DuplicateColumn { record_index: usize, column: String },
    #[error("record {record_index}: TimeGenerated is missing")]
    MissingTimeGenerated { record_index: usize },
    #[error("record {record_index}: TimeGenerated {time} is more than {future_skew_max_secs}s (future_skew_max) after the service time {now}")]
    TimeGeneratedInFuture {
        record_index: usize,
        time: SimTime,
        now: SimTime,
        future_skew_max_secs: u64,
    },
    #[error("record {record_index}: column {column:?} is dynamic but is not valid JSON: {reason}", column = echo(.column))]
    InvalidDynamic {
        record_index: usize,
        column: String,
        reason: String,
    },
    /// Storage refused the batch as malformed: a rule validation should have caught first.
    #[error("storage refused the batch: {message}")]
    StorageRefused { message: String },
    #[error("record {record_index}: column {column:?} is dynamic and nests {depth} levels deep; at most {depth_max} are accepted", column = echo(.column))]
    DynamicTooDeep {
        record_index: usize,
        column: String,
        depth: usize,
        depth_max: usize,
    },
    #[error("record {record_index}: column {column:?} is real but not finite (NaN or infinity cannot be stored)", column = echo(.column))]
    NonFiniteReal { record_index: usize, column: String },
    #[error("invalid custom table name {table:?}: {reason}", table = echo(.table))]
    InvalidTableName { table: String, reason: String },
    #[error("invalid column name {column:?} in table {table:?}: {reason}", table = echo(.table), column = echo(.column))]
    InvalidColumnName {
        table: String,
        column: String,
        reason: String,
    },
    #[error("column {column:?} of table {table:?} declares unknown type {type_name:?} (string, int, long, real, bool, datetime, dynamic, guid)", table = echo(.table), column = echo(.column), type_name = echo(.type_name))]
    UnknownColumnType {
        table: String,
        column: String,
        type_name: String,
    },
    #[error("column {column:?} of table {table:?} is declared twice", table = echo(.table), column = echo(.column))]
    DuplicateColumnDeclaration { table: String, column: String },
    #[error("column {column:?} of table {table:?} is registered as {registered}; it cannot be redeclared as {declared}", table = echo(.table), column = echo(.column))]
    ColumnTypeConflict {
        table: String,
        column: String,
        registered: ColumnType,
        declared: ColumnType,
    },
    #[error("table {table:?} is a standard table; its columns cannot be declared", table = echo(.table))]
    StandardTableDeclared { table: String },
    #[error("table {table:?} would have {columns} columns; the limit is {max}", table = echo(.table))]
    TooManyColumns {
        table: String,
        columns: usize,
        max: usize,
    },
    #[error("workspace {workspace:?} already has {max} custom tables, the limit", workspace = echo(.workspace))]
    TooManyCustomTables { workspace: String, max: usize },
    #[error("the storage service could not be reached: {reason}")]
    StorageUnreachable { reason: String },
    /// Storage, which keeps custom-table declarations, refused one the front end had checked
    /// (another front end declared the column with another type meanwhile, or a storage limit).
    #[error("{message}")]
    DeclarationRefused { message: String },
}

impl IngestError {
    /// The presentation of this error.
    pub fn shape(&self) -> ErrorShape {
        use ErrorClass::*;
        use IngestError::*;
        match self {
            EmptyBatch => shape(InvalidArgument, "BadArgumentError", "EmptyBatch", 400),
            BatchTooLarge { .. } => shape(
                ResourceExhausted,
                "ContentLengthLimitExceeded",
                "BatchTooLarge",
                413,
            ),
            WorkspaceNotFound { .. } => {
                shape(NotFound, "WorkspaceNotFoundError", "WorkspaceNotFound", 404)
            }
            UnknownTable { .. } => shape(InvalidArgument, "BadArgumentError", "UnknownTable", 400),
            UnknownColumn { .. } => {
                shape(InvalidArgument, "BadArgumentError", "UnknownColumn", 400)
            }
            WrongColumnType { .. } => {
                shape(InvalidArgument, "BadArgumentError", "WrongColumnType", 400)
            }
            DuplicateColumn { .. } => {
                shape(InvalidArgument, "BadArgumentError", "DuplicateColumn", 400)
            }
            MissingTimeGenerated { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "MissingTimeGenerated",
                400,
            ),
            TimeGeneratedInFuture { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "TimeGeneratedInFuture",
                400,
            ),
            StorageRefused { .. } => {
                shape(InvalidArgument, "BadArgumentError", "StorageRefused", 400)
            }
            InvalidDynamic { .. } | DynamicTooDeep { .. } => {
                shape(InvalidArgument, "BadArgumentError", "InvalidDynamic", 400)
            }
            NonFiniteReal { .. } => {
                shape(InvalidArgument, "BadArgumentError", "NonFiniteReal", 400)
            }
            InvalidTableName { .. } => {
                shape(InvalidArgument, "BadArgumentError", "InvalidTableName", 400)
            }
            InvalidColumnName { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "InvalidColumnName",
                400,
            ),
            UnknownColumnType { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "UnknownColumnType",
                400,
            ),
            DuplicateColumnDeclaration { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "DuplicateColumnDeclaration",
                400,
            ),
            ColumnTypeConflict { .. } => {
                shape(FailedPrecondition, "Conflict", "ColumnTypeConflict", 409)
            }
            StandardTableDeclared { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "StandardTableDeclared",
                400,
            ),
            TooManyColumns { .. } => {
                shape(ResourceExhausted, "LimitExceeded", "TooManyColumns", 400)
            }
            TooManyCustomTables { .. } => shape(
                ResourceExhausted,
                "LimitExceeded",
                "TooManyCustomTables",
                400,
            ),
            StorageUnreachable { .. } => {
                shape(Unavailable, "ServiceUnavailable", "StorageUnreachable", 503)
            }
            DeclarationRefused { .. } => {
                shape(FailedPrecondition, "Conflict", "DeclarationRefused", 409)
            }
        }
    }
}

/// Why a query was refused or failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("workspace {workspace:?} was not found", workspace = echo(.workspace))]
    WorkspaceNotFound { workspace: String },
    #[error("table {table:?} is not a known table of workspace {workspace:?}", workspace = echo(.workspace), table = echo(.table))]
    UnknownTable { workspace: String, table: String },
    #[error("column {column:?} is not a column of table {table:?}", table = echo(.table), column = echo(.column))]
    UnknownColumn { table: String, column: String },
    #[error("filter on column {column:?} ({column_type}) cannot use {operator}: {reason}", column = echo(.column))]
    FilterTypeMismatch {
        column: String,
        column_type: ColumnType,
        operator: String,
        reason: String,
    },
    #[error("the time range is empty or inverted: from {from} is not before to {to}")]
    InvalidTimeRange { from: SimTime, to: SimTime },
    #[error("limit {limit} is above the maximum of {max} rows")]
    LimitTooLarge { limit: u32, max: u32 },
    #[error("{filters} filters exceed the maximum of {max}")]
    TooManyFilters { filters: usize, max: usize },
    #[error("the query needs {destination}, which is {state}: {detail}")]
    StorageInaccessible {
        destination: Destination,
        state: String,
        detail: String,
    },
    #[error("the storage service could not be reached: {reason}")]
    StorageUnreachable { reason: String },
}

impl QueryError {
    /// The `reason` of the `query.failed` event: the storage state's one spelling
    /// (`cmksim_proto`'s `StorageStateName::label`: `revoked`, `unavailable`, `resuming`,
    /// `shredded`, ...) when storage refused the read, the words scenario expectations and the
    /// oracle match (`reason = "revoked"`); otherwise the error's inner code (`UnknownTable`,
    /// `StorageUnreachable`, ...). The full sentence is the event's `message`.
    pub fn reason(&self) -> String {
        match self {
            QueryError::StorageInaccessible { state, .. } => state.clone(),
            other => other.shape().inner_code.to_string(),
        }
    }

    /// The presentation of this error.
    pub fn shape(&self) -> ErrorShape {
        use ErrorClass::*;
        use QueryError::*;
        match self {
            WorkspaceNotFound { .. } => {
                shape(NotFound, "WorkspaceNotFoundError", "WorkspaceNotFound", 404)
            }
            UnknownTable { .. } => shape(InvalidArgument, "BadArgumentError", "UnknownTable", 400),
            UnknownColumn { .. } => {
                shape(InvalidArgument, "BadArgumentError", "UnknownColumn", 400)
            }
            FilterTypeMismatch { .. } => shape(
                InvalidArgument,
                "BadArgumentError",
                "FilterTypeMismatch",
                400,
            ),
            InvalidTimeRange { .. } => {
                shape(InvalidArgument, "BadArgumentError", "InvalidTimeRange", 400)
            }
            LimitTooLarge { .. } => {
                shape(InvalidArgument, "BadArgumentError", "LimitTooLarge", 400)
            }
            TooManyFilters { .. } => {
                shape(InvalidArgument, "BadArgumentError", "TooManyFilters", 400)
            }
            StorageInaccessible { state, .. } => {
                if state.eq_ignore_ascii_case("shredded") {
                    // Gone for good: the cluster's key material was destroyed or purged.
                    shape(
                        FailedPrecondition,
                        "ClusterStorageInaccessible",
                        "Shredded",
                        410,
                    )
                } else if state.eq_ignore_ascii_case("revoked") {
                    shape(
                        FailedPrecondition,
                        "ClusterStorageInaccessible",
                        "Revoked",
                        403,
                    )
                } else {
                    shape(
                        Unavailable,
                        "ClusterStorageInaccessible",
                        "Unavailable",
                        503,
                    )
                }
            }
            StorageUnreachable { .. } => {
                shape(Unavailable, "ServiceUnavailable", "StorageUnreachable", 503)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_names_are_cut_to_a_stated_length() {
        let long = "T".repeat(1_000_000);
        let error = IngestError::UnknownTable {
            workspace: long.clone(),
            table: long.clone(),
        };
        let message = error.to_string();
        assert!(message.len() < 1_000, "{} bytes", message.len());
        assert!(message.contains("… (1000000 characters)"));
        let query = QueryError::UnknownColumn {
            table: long.clone(),
            column: long,
        };
        assert!(query.to_string().len() < 1_000);
    }
}
