//! [`KvError`] ↔ gRPC [`Status`].
//!
//! A status carries the exact Azure message as its message, the
//! `common.v1.AzureError {code, message, http_status, inner_code}` in its details (the richer
//! error model, built and read by `cmksim_proto::azure` for every service), and the Azure
//! code as `x-ms-error-code` metadata (plus `retry-after` for 429), so that a client (or a later
//! REST facade) recovers exactly what Azure would have answered.

use tonic::metadata::MetadataValue;
use tonic::Status;

use cmksim_proto::common::v1::AzureError;

use crate::errors::KvError;

/// The status for an error.
pub fn to_status(error: &KvError) -> Status {
    let body = error.azure();
    let azure = AzureError {
        code: body.code.to_string(),
        message: body.message,
        http_status: u32::from(body.http_status),
        inner_code: body.inner_code.to_string(),
    };
    let mut status = cmksim_proto::azure::status(error.grpc_code(), &azure);
    if let Ok(value) = MetadataValue::try_from(body.code) {
        status.metadata_mut().insert("x-ms-error-code", value);
    }
    if let KvError::Throttled {
        retry_after_seconds,
    } = error
    {
        if let Ok(value) = MetadataValue::try_from(retry_after_seconds.to_string()) {
            status.metadata_mut().insert("retry-after", value);
        }
    }
    status
}

/// The Azure error carried by a status, if any: the one reading, `cmksim_proto`'s.
pub use cmksim_proto::azure::azure_error;
