//! Domain errors as gRPC statuses, with the Azure error body in the details.
//!
//! ARCHITECTURE.md "Errors": at the gRPC edge an error becomes a status code carrying the Azure
//! code, the HTTP status the real service would give and the exact message of the seeds, so
//! that a later REST facade returns the same bodies. The body travels in the richer error model
//! (`cmksim_proto::azure`: a `google.rpc.Status` with an `ErrorInfo` and the
//! `common.v1.AzureError`), which is what the key loop's classifier (and every other client)
//! decodes.

use tonic::{Code, Status};

use crate::control::{ControlError, ControlPlane, ErrorClass};
use crate::keyloop::{Refusal, StateName};

/// A status with an Azure error body (in the richer error model: `cmksim_proto::azure`).
pub fn azure_status(code: Code, azure_code: &str, http_status: u16, message: &str) -> Status {
    cmksim_proto::azure::azure_status(code, azure_code, u32::from(http_status), "", message)
}

/// The gRPC code of a control-plane error class.
pub fn class_code(class: ErrorClass) -> Code {
    match class {
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::AlreadyExists => Code::AlreadyExists,
        ErrorClass::FailedPrecondition => Code::FailedPrecondition,
        ErrorClass::ResourceExhausted => Code::ResourceExhausted,
        ErrorClass::Internal => Code::Internal,
    }
}

/// A control-plane error, worded as the profile says (seed 000 or 001).
pub fn control_status(control: &ControlPlane, error: &ControlError) -> Status {
    let body = control.azure_error(error);
    azure_status(
        class_code(error.class()),
        body.code,
        body.http_status,
        &body.message,
    )
}

/// A key-loop refusal (query or key update while revoked, unavailable, resuming...).
///
/// Revoked and resuming storage refuse like an access denial the customer caused (403);
/// unavailable storage like a service that cannot reach its dependency (503, retryable);
/// provisioning and deleted clusters like a conflict with the resource's state (409).
pub fn refusal_status(refusal: &Refusal) -> Status {
    let (code, azure_code, http) = match refusal.state {
        StateName::Revoked | StateName::Resuming => {
            (Code::FailedPrecondition, "KeyAccessRevoked", 403)
        }
        StateName::Unavailable => (Code::Unavailable, "KeyVaultUnavailable", 503),
        _ => (Code::FailedPrecondition, "Conflict", 409),
    };
    azure_status(code, azure_code, http, &refusal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyloop::{classify_key_vault_status, AccessFailure};

    #[test]
    fn refusals_carry_an_azure_body_that_round_trips() {
        let refusal = Refusal {
            state: StateName::Unavailable,
            reason: "Key Vault has been unreachable".into(),
        };
        let status = refusal_status(&refusal);
        assert_eq!(status.code(), Code::Unavailable);
        let body = cmksim_proto::azure::azure_error(&status).unwrap();
        assert_eq!(
            (body.code.as_str(), body.http_status),
            ("KeyVaultUnavailable", 503)
        );
        assert_eq!(
            body.message,
            "storage is unavailable: Key Vault has been unreachable"
        );
        // Our own statuses classify as the key loop expects.
        assert!(matches!(
            classify_key_vault_status(&status),
            AccessFailure::Transient(_)
        ));
    }
}
