//! [`KvError`] ↔ gRPC [`Status`].
//!
//! A status carries the exact Azure message as its message, the encoded
//! `common.v1.AzureError {code, message, http_status, inner_code}` as its details, and the Azure
//! code as `x-ms-error-code` metadata (plus `retry-after` for 429), so that a client (or a later
//! REST facade) recovers exactly what Azure would have answered.

use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::Status;

use cmksim_proto::common::v1::AzureError;

use crate::errors::KvError;

/// The status for an error.
pub fn to_status(error: &KvError) -> Status {
    let body = error.azure();
    let details = AzureError {
        code: body.code.to_string(),
        message: body.message.clone(),
        http_status: u32::from(body.http_status),
        inner_code: body.inner_code.to_string(),
    }
    .encode_to_vec();
    let mut status = Status::with_details(error.grpc_code(), body.message, details.into());
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

/// The Azure error carried by a status, if any.
pub fn azure_error(status: &Status) -> Option<AzureError> {
    if status.details().is_empty() {
        return None;
    }
    AzureError::decode(status.details()).ok()
}
