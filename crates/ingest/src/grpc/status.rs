//! Domain errors → gRPC statuses carrying the Azure error in the richer error model
//! (`cmksim_proto::azure`), so that a client (or a later REST facade) gets the Azure code, HTTP
//! status and exact message.

use cmksim_proto::common::v1::AzureError;
use tonic::{Code, Status};

use crate::error::{ErrorClass, ErrorShape, IngestError, QueryError};

fn code(class: ErrorClass) -> Code {
    match class {
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::ResourceExhausted => Code::ResourceExhausted,
        ErrorClass::FailedPrecondition => Code::FailedPrecondition,
        ErrorClass::Unavailable => Code::Unavailable,
        ErrorClass::Internal => Code::Internal,
    }
}

/// A status of the given shape and message, with the Azure error in its details.
pub fn status_of(shape: &ErrorShape, message: String) -> Status {
    let azure = AzureError {
        code: shape.code.to_string(),
        message: message.clone(),
        http_status: shape.http_status,
        inner_code: shape.inner_code.to_string(),
    };
    cmksim_proto::azure::status(code(shape.class), &azure)
}

/// A refused batch or declaration.
pub fn ingest_status(error: &IngestError) -> Status {
    status_of(&error.shape(), error.to_string())
}

/// A refused or failed query.
pub fn query_status(error: &QueryError) -> Status {
    status_of(&error.shape(), error.to_string())
}

/// The status for a failed KQL query.
pub fn kql_status(error: &crate::frontend::KqlError) -> Status {
    status_of(&error.shape(), error.to_string())
}

/// A malformed request (missing field or oneof): INVALID_ARGUMENT, `BadArgumentError`.
pub fn malformed(message: String) -> Status {
    status_of(
        &ErrorShape {
            class: ErrorClass::InvalidArgument,
            code: "BadArgumentError",
            inner_code: "MalformedRequest",
            http_status: 400,
        },
        message,
    )
}

/// The Azure error carried by a status, if any (for clients and tests).
pub use cmksim_proto::azure::azure_error;
