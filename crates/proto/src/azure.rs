//! Azure errors on gRPC statuses, in the richer error model that stock gRPC clients read.
//!
//! Every cmksim service answers a refusal with a status whose `grpc-status-details-bin` trailer
//! is a `google.rpc.Status` (the same code and message) whose details hold, in this order:
//! a `google.rpc.ErrorInfo` (reason = the Azure error code, domain [`ERROR_DOMAIN`], metadata
//! `http_status` and, when Azure sends one, `inner_code`) and the full `common.v1.AzureError`
//! (code, exact message, HTTP status, inner code) for the REST facade and the key loop.
//! A Python, Go or Java client that knows only the standard model sees the code, the message
//! and the `ErrorInfo`; ours read the `AzureError` back with [`azure_error`].
//!
//! One home for building and reading these statuses, so that no service spells them its own
//! way. [`azure_error`] also reads the older encoding (the raw `AzureError` as the details), so
//! that a service not yet moved here stays readable.

use prost::Message;
use tonic::codegen::Bytes;
use tonic::{Code, Status};
use tonic_types::pb;

use crate::common::v1::AzureError;

/// `ErrorInfo.domain` of every cmksim error.
pub const ERROR_DOMAIN: &str = "cmksim";
/// The `Any` type URL of a `google.rpc.ErrorInfo`.
pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";
/// The `Any` type URL of a `common.v1.AzureError`.
pub const AZURE_ERROR_TYPE_URL: &str = "type.googleapis.com/common.v1.AzureError";
/// `ErrorInfo.metadata` key of the HTTP status the real service gives (decimal).
pub const METADATA_HTTP_STATUS: &str = "http_status";
/// `ErrorInfo.metadata` key of Azure's `innererror.code` (absent when there is none).
pub const METADATA_INNER_CODE: &str = "inner_code";

/// A status with `code`, the error's message, and the error in the richer error model.
pub fn status(code: Code, error: &AzureError) -> Status {
    // At most two entries; the map's order only affects the encoded bytes, which no output
    // prints.
    let mut metadata = std::collections::HashMap::with_capacity(2);
    metadata.insert(
        METADATA_HTTP_STATUS.to_string(),
        error.http_status.to_string(),
    );
    if !error.inner_code.is_empty() {
        metadata.insert(METADATA_INNER_CODE.to_string(), error.inner_code.clone());
    }
    let info = pb::ErrorInfo {
        reason: error.code.clone(),
        domain: ERROR_DOMAIN.to_string(),
        metadata,
    };
    let rich = pb::Status {
        code: code as i32,
        message: error.message.clone(),
        details: vec![
            prost_types::Any {
                type_url: ERROR_INFO_TYPE_URL.to_string(),
                value: info.encode_to_vec(),
            },
            prost_types::Any {
                type_url: AZURE_ERROR_TYPE_URL.to_string(),
                value: error.encode_to_vec(),
            },
        ],
    };
    Status::with_details(
        code,
        error.message.clone(),
        Bytes::from(rich.encode_to_vec()),
    )
}

/// A status from its parts (the common case of [`status`]).
pub fn azure_status(
    code: Code,
    azure_code: &str,
    http_status: u32,
    inner_code: &str,
    message: &str,
) -> Status {
    status(
        code,
        &AzureError {
            code: azure_code.to_string(),
            message: message.to_string(),
            http_status,
            inner_code: inner_code.to_string(),
        },
    )
}

/// The Azure error a status carries, if any: from the richer error model's details, else from
/// the older raw encoding. `None` for a status without one (a transport failure, say).
pub fn azure_error(status: &Status) -> Option<AzureError> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    if let Ok(rich) = pb::Status::decode(details) {
        if let Some(any) = rich
            .details
            .iter()
            .find(|any| any.type_url == AZURE_ERROR_TYPE_URL)
        {
            return AzureError::decode(any.value.as_slice())
                .ok()
                .filter(|e| !e.code.is_empty());
        }
    }
    AzureError::decode(details)
        .ok()
        .filter(|e| !e.code.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    fn sample() -> Status {
        azure_status(
            Code::NotFound,
            "KeyNotFound",
            404,
            "KeyDisabled",
            "A key with (name/id) k1 was not found in this key vault.",
        )
    }

    #[test]
    fn a_stock_client_reads_the_code_and_the_error_info() {
        let status = sample();
        // What a standard client does with the trailer: decode it as google.rpc.Status.
        let rich = pb::Status::decode(status.details()).expect("a google.rpc.Status");
        assert_eq!(rich.code, Code::NotFound as i32);
        assert_eq!(
            rich.message,
            "A key with (name/id) k1 was not found in this key vault."
        );
        assert_eq!(rich.details.len(), 2);
        // And what tonic-types' extractor makes of it.
        let details = status.get_error_details();
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "KeyNotFound");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata[METADATA_HTTP_STATUS], "404");
        assert_eq!(info.metadata[METADATA_INNER_CODE], "KeyDisabled");
    }

    #[test]
    fn the_azure_error_round_trips_and_the_old_encoding_still_reads() {
        let error = azure_error(&sample()).expect("the AzureError");
        assert_eq!(error.code, "KeyNotFound");
        assert_eq!(error.http_status, 404);
        assert_eq!(error.inner_code, "KeyDisabled");
        let old = Status::with_details(Code::NotFound, "gone", Bytes::from(error.encode_to_vec()));
        assert_eq!(azure_error(&old), Some(error));
        assert_eq!(
            azure_error(&Status::unavailable("connection refused")),
            None
        );
    }
}
