//! What one Key Vault call told the storage: success, a transient failure or a denial.
//!
//! The access loop must tell apart "the vault could not answer" (keep serving from the cached AEK,
//! seed 000: "Storage handles transient errors (timeouts, connection failures, DNS issues) by
//! allowing keys to stay in cache for a short while longer") from "the vault answered no" (seed
//! 000: "You can revoke access to data by disabling your key, or deleting the *Cluster* resource
//! access policy"). Everything the loop later decides rests on that split, so it lives in one
//! small classifier over the gRPC status and the `common.v1.AzureError` in its details, with the
//! Azure code refining the gRPC code (403 disabled key vs 403 missing permission, 404 key vs 404
//! vault).

use std::fmt;

use cmksim_proto::common::v1::AzureError;
use serde::{Deserialize, Serialize};
use tonic::Code;

/// Why a call could not be answered; the cached AEK keeps serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientKind {
    /// The call's deadline passed (gRPC DEADLINE_EXCEEDED, or our own per-call timeout).
    Timeout,
    /// The vault refused the connection (gRPC UNAVAILABLE from the transport).
    ConnectionRefused,
    /// The vault's name did not resolve.
    NameResolution,
    /// The vault answered 5xx (INTERNAL, or UNAVAILABLE with a 503 body).
    ServerError5xx,
    /// The vault throttled the caller (429, RESOURCE_EXHAUSTED).
    Throttled429,
    /// The call was cancelled (tonic's `Endpoint::timeout` surfaces as CANCELLED).
    Cancelled,
    /// No call was made: the wrapped key the call would carry could not be read from the
    /// host's own store (a storage error, or a record that no longer parses). The loop fails
    /// closed — as for a vault that cannot be reached, the cached key serves only for as long
    /// as the profile allows — instead of silently skipping its polls.
    StoredKeyUnreadable,
}

impl TransientKind {
    /// A short label for narration.
    pub fn label(self) -> &'static str {
        match self {
            TransientKind::Timeout => "timeout",
            TransientKind::ConnectionRefused => "connection refused",
            TransientKind::NameResolution => "name resolution failure",
            TransientKind::ServerError5xx => "server error (5xx)",
            TransientKind::Throttled429 => "throttled (429)",
            TransientKind::Cancelled => "call cancelled",
            TransientKind::StoredKeyUnreadable => "stored wrapped key unreadable",
        }
    }

    /// What failed, for narration: the vault, or (no call made) the host's own record.
    pub fn cause(self) -> &'static str {
        match self {
            TransientKind::StoredKeyUnreadable => "the stored wrapped key is unreadable",
            _ => "Key Vault unreachable",
        }
    }
}

/// Why the vault said no; storage is revoked at the next poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialKind {
    /// 403: the key (or the pinned version) is disabled.
    KeyDisabled,
    /// 403: the cluster identity lost unwrapKey (access policy removed or changed).
    PermissionRemoved,
    /// 404: no such key (or version).
    KeyNotFound,
    /// 404: the key was deleted (soft-deleted or purged).
    KeyDeleted,
    /// 404: the vault was deleted.
    VaultDeleted,
    /// 401/403: the cluster's managed identity no longer exists or cannot get a token.
    IdentityGone,
    /// 400: the vault refused the operation itself (e.g. the key can no longer unwrap this AEK).
    OperationRejected,
    /// 500 with inner code `HSMKeyMaterialDestroyed` (gRPC DATA_LOSS): the HSM holding the key
    /// was zeroised. Permanent: the storage is shredded.
    KeyMaterialDestroyed,
    /// 404, and the vault has no deleted entry for the key either: the key was purged.
    /// Permanent: the storage is shredded.
    KeyPurged,
}

impl DenialKind {
    /// The HTTP status the real vault gives for this denial.
    pub fn http_status(self) -> u16 {
        match self {
            DenialKind::KeyDisabled | DenialKind::PermissionRemoved => 403,
            DenialKind::KeyNotFound | DenialKind::KeyDeleted | DenialKind::VaultDeleted => 404,
            DenialKind::IdentityGone => 401,
            DenialKind::OperationRejected => 400,
            DenialKind::KeyMaterialDestroyed => 500,
            DenialKind::KeyPurged => 404,
        }
    }

    /// True when the key material is gone for good: no change in the vault can ever give the
    /// AEK back (crypto-shredding), unlike a revocation.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            DenialKind::KeyMaterialDestroyed | DenialKind::KeyPurged
        )
    }

    /// The Azure code used when the vault sent none.
    pub fn default_code(self) -> &'static str {
        match self {
            DenialKind::KeyDisabled => "KeyDisabled",
            DenialKind::PermissionRemoved => "Forbidden",
            DenialKind::KeyNotFound => "KeyNotFound",
            DenialKind::KeyDeleted => "KeyDeleted",
            DenialKind::VaultDeleted => "VaultNotFound",
            DenialKind::IdentityGone => "Unauthorized",
            DenialKind::OperationRejected => "BadParameter",
            DenialKind::KeyMaterialDestroyed => "HSMKeyMaterialDestroyed",
            DenialKind::KeyPurged => "KeyPurged",
        }
    }
}

/// A transient failure with the detail the vault or transport gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransientFailure {
    pub kind: TransientKind,
    pub detail: String,
}

/// A denial with the Azure error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenialFailure {
    pub kind: DenialKind,
    pub http_status: u16,
    pub code: String,
    pub message: String,
}

/// A failed Key Vault (or identity) call, classified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AccessFailure {
    Transient(TransientFailure),
    Denial(DenialFailure),
}

impl fmt::Display for AccessFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessFailure::Transient(t) => write!(f, "{} ({})", t.kind.label(), t.detail),
            AccessFailure::Denial(d) => write!(f, "{} {}: {}", d.http_status, d.code, d.message),
        }
    }
}

/// The result of one poll (an unwrapKey of the AEK).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PollOutcome {
    /// The vault unwrapped the AEK with this key version.
    Success {
        kid_version: String,
    },
    Transient(TransientFailure),
    Denial(DenialFailure),
}

impl PollOutcome {
    /// A transient outcome with a generic detail (tests, fakes).
    pub fn transient(kind: TransientKind) -> PollOutcome {
        PollOutcome::Transient(TransientFailure {
            kind,
            detail: kind.label().to_string(),
        })
    }

    /// A denial with the default Azure code for its kind (tests, fakes).
    pub fn denial(kind: DenialKind) -> PollOutcome {
        PollOutcome::Denial(DenialFailure {
            kind,
            http_status: kind.http_status(),
            code: kind.default_code().to_string(),
            message: format!("{} (simulated)", kind.default_code()),
        })
    }

    /// A success for a key version.
    pub fn success(kid_version: &str) -> PollOutcome {
        PollOutcome::Success {
            kid_version: kid_version.to_string(),
        }
    }
}

impl From<AccessFailure> for PollOutcome {
    fn from(failure: AccessFailure) -> PollOutcome {
        match failure {
            AccessFailure::Transient(t) => PollOutcome::Transient(t),
            AccessFailure::Denial(d) => PollOutcome::Denial(d),
        }
    }
}

/// The `AzureError` in a status's details, when the server put one there (either encoding:
/// `cmksim_proto::azure::azure_error`).
pub fn azure_error(status: &tonic::Status) -> Option<AzureError> {
    cmksim_proto::azure::azure_error(status)
}

/// Classifies a failed Key Vault call (UnwrapKey, WrapKey, GetKey).
///
/// UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED, INTERNAL and UNKNOWN (and the
/// codes that mean a broken deployment rather than an answer about the key) are transient;
/// PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED and INVALID_ARGUMENT are denials, refined by the
/// Azure code and inner code. One 500 is not transient: inner code `HSMKeyMaterialDestroyed`
/// (sent as DATA_LOSS) says the key material was zeroised in the HSM, for good. A 404 cannot
/// tell a soft-deleted key from a purged one; [`refine_not_found`] does, with GetDeletedKey.
pub fn classify_key_vault_status(status: &tonic::Status) -> AccessFailure {
    let azure = azure_error(status);
    let code_of = |a: &Option<AzureError>| a.as_ref().map(|e| e.code.clone()).unwrap_or_default();
    let inner_of =
        |a: &Option<AzureError>| a.as_ref().map(|e| e.inner_code.clone()).unwrap_or_default();
    let (code, inner) = (code_of(&azure), inner_of(&azure));
    let message = azure
        .as_ref()
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.message().to_string());
    let lower = format!("{} {} {}", code, inner, message).to_ascii_lowercase();
    let denial = |kind: DenialKind| {
        AccessFailure::Denial(DenialFailure {
            kind,
            http_status: azure
                .as_ref()
                .map(|e| e.http_status as u16)
                .filter(|s| *s != 0)
                .unwrap_or(kind.http_status()),
            code: if code.is_empty() {
                kind.default_code().to_string()
            } else {
                code.clone()
            },
            message: message.clone(),
        })
    };
    if inner == KEY_MATERIAL_DESTROYED || code == KEY_MATERIAL_DESTROYED {
        return denial(DenialKind::KeyMaterialDestroyed);
    }
    match status.code() {
        Code::DataLoss => denial(DenialKind::KeyMaterialDestroyed),
        Code::PermissionDenied => {
            if inner == "KeyDisabled" || code == "KeyDisabled" || lower.contains("disabled") {
                denial(DenialKind::KeyDisabled)
            } else {
                denial(DenialKind::PermissionRemoved)
            }
        }
        Code::NotFound => {
            let vault_gone = code.contains("Vault")
                || code == "ResourceNotFound"
                || lower.contains("microsoft.keyvault/vaults")
                || lower.contains("vault not found");
            if vault_gone {
                denial(DenialKind::VaultDeleted)
            } else if inner.contains("Deleted") || code.contains("Deleted") {
                denial(DenialKind::KeyDeleted)
            } else {
                denial(DenialKind::KeyNotFound)
            }
        }
        Code::Unauthenticated => denial(DenialKind::IdentityGone),
        Code::InvalidArgument => denial(DenialKind::OperationRejected),
        Code::ResourceExhausted => transient(TransientKind::Throttled429, message),
        Code::DeadlineExceeded => transient(TransientKind::Timeout, message),
        Code::Cancelled => {
            if lower.contains("timeout") || lower.contains("timed out") {
                transient(TransientKind::Timeout, message)
            } else {
                transient(TransientKind::Cancelled, message)
            }
        }
        Code::Unavailable => {
            let served_5xx = azure.as_ref().is_some_and(|e| e.http_status >= 500);
            if served_5xx {
                transient(TransientKind::ServerError5xx, message)
            } else {
                transient(
                    transport_hint(&lower).unwrap_or(TransientKind::ConnectionRefused),
                    message,
                )
            }
        }
        _ => transient(
            transport_hint(&lower).unwrap_or(TransientKind::ServerError5xx),
            message,
        ),
    }
}

/// The inner code Key Vault gives when an HSM key's material was destroyed (tamper).
pub const KEY_MATERIAL_DESTROYED: &str = "HSMKeyMaterialDestroyed";

/// What GetDeletedKey said about a key whose unwrapKey answered 404.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletedKeyLookup {
    /// The key is soft-deleted (recoverable).
    SoftDeleted,
    /// GetDeletedKey answered 404 `KeyNotFound` ("Deleted Key not found"): no deleted entry.
    NoDeletedEntry,
    /// Any other answer (no permission, vault gone, transient): nothing learnt.
    Unknown,
}

/// The lookup result of a GetDeletedKey call.
pub fn deleted_key_lookup<T>(result: &Result<T, tonic::Status>) -> DeletedKeyLookup {
    match result {
        Ok(_) => DeletedKeyLookup::SoftDeleted,
        Err(status) if status.code() == Code::NotFound => match classify_key_vault_status(status) {
            AccessFailure::Denial(d) if d.kind == DenialKind::KeyNotFound => {
                DeletedKeyLookup::NoDeletedEntry
            }
            _ => DeletedKeyLookup::Unknown,
        },
        Err(_) => DeletedKeyLookup::Unknown,
    }
}

/// Refines a 404 denial of unwrapKey with what GetDeletedKey said: a key that is neither live
/// nor soft-deleted was purged (its versions existed: one of them wrapped the AEK), which is
/// permanent; a soft-deleted key is a revocation (`KeyDeleted`). A vault 404 stays as it is:
/// on the data plane a purged vault and a soft-deleted one answer alike, and only the
/// management plane (which the cluster identity cannot use) tells them apart.
pub fn refine_not_found(denial: DenialFailure, lookup: DeletedKeyLookup) -> DenialFailure {
    if !matches!(
        denial.kind,
        DenialKind::KeyNotFound | DenialKind::KeyDeleted
    ) {
        return denial;
    }
    match lookup {
        DeletedKeyLookup::SoftDeleted => DenialFailure {
            kind: DenialKind::KeyDeleted,
            ..denial
        },
        DeletedKeyLookup::NoDeletedEntry => DenialFailure {
            kind: DenialKind::KeyPurged,
            message: format!(
                "{} (the key has no deleted entry either: it was purged)",
                denial.message
            ),
            ..denial
        },
        DeletedKeyLookup::Unknown => denial,
    }
}

/// Classifies a failed identity call (IssueToken for the cluster's managed identity): an
/// identity that no longer exists or whose secret no longer works is a denial (`IdentityGone`);
/// anything else is transient.
pub fn classify_identity_status(status: &tonic::Status) -> AccessFailure {
    match status.code() {
        Code::NotFound | Code::PermissionDenied | Code::Unauthenticated | Code::InvalidArgument => {
            AccessFailure::Denial(DenialFailure {
                kind: DenialKind::IdentityGone,
                http_status: 401,
                code: azure_error(status)
                    .map(|e| e.code)
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "Unauthorized".to_string()),
                message: format!(
                    "the cluster's managed identity cannot obtain a token: {}",
                    status.message()
                ),
            })
        }
        _ => match classify_key_vault_status(status) {
            AccessFailure::Denial(d) => transient(TransientKind::ServerError5xx, d.message),
            transient_failure => transient_failure,
        },
    }
}

fn transient(kind: TransientKind, detail: String) -> AccessFailure {
    AccessFailure::Transient(TransientFailure { kind, detail })
}

/// Transport errors arrive as UNAVAILABLE/UNKNOWN with hyper's text; the text tells which.
fn transport_hint(lower: &str) -> Option<TransientKind> {
    if lower.contains("dns") || lower.contains("resolve") || lower.contains("name resolution") {
        Some(TransientKind::NameResolution)
    } else if lower.contains("refused") || lower.contains("tcp connect") {
        Some(TransientKind::ConnectionRefused)
    } else if lower.contains("timeout") || lower.contains("timed out") {
        Some(TransientKind::Timeout)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn status(code: Code, azure: Option<(&str, u32, &str)>, message: &str) -> tonic::Status {
        match azure {
            None => tonic::Status::new(code, message),
            Some((c, http, inner)) => {
                let body = AzureError {
                    code: c.to_string(),
                    message: message.to_string(),
                    http_status: http,
                    inner_code: inner.to_string(),
                };
                tonic::Status::with_details(code, message, body.encode_to_vec().into())
            }
        }
    }

    fn kind(f: AccessFailure) -> String {
        match f {
            AccessFailure::Transient(t) => format!("transient:{:?}", t.kind),
            AccessFailure::Denial(d) => format!("denial:{:?}:{}:{}", d.kind, d.http_status, d.code),
        }
    }

    #[test]
    fn classifies_every_status_row() {
        let rows: Vec<(tonic::Status, &str)> = vec![
            (status(Code::Unavailable, None, "tcp connect error: Connection refused"), "transient:ConnectionRefused"),
            (status(Code::Unavailable, None, "dns error: failed to lookup address"), "transient:NameResolution"),
            (status(Code::Unavailable, Some(("ServiceUnavailable", 503, "")), "try later"), "transient:ServerError5xx"),
            (status(Code::DeadlineExceeded, None, "deadline"), "transient:Timeout"),
            (status(Code::Cancelled, None, "Timeout expired"), "transient:Timeout"),
            (status(Code::Cancelled, None, "operation was canceled"), "transient:Cancelled"),
            (status(Code::ResourceExhausted, Some(("Throttled", 429, "")), "Retry-After: 5"), "transient:Throttled429"),
            (status(Code::Internal, Some(("InternalError", 500, "")), "boom"), "transient:ServerError5xx"),
            (status(Code::Unknown, None, "transport error"), "transient:ServerError5xx"),
            (status(Code::PermissionDenied, Some(("Forbidden", 403, "KeyDisabled")), "Operation unwrapKey is not allowed on a disabled key."), "denial:KeyDisabled:403:Forbidden"),
            (status(Code::PermissionDenied, Some(("Forbidden", 403, "AccessDenied")), "The user, group or application does not have keys unwrapKey permission"), "denial:PermissionRemoved:403:Forbidden"),
            (status(Code::PermissionDenied, None, "no unwrapKey permission"), "denial:PermissionRemoved:403:Forbidden"),
            (status(Code::NotFound, Some(("KeyNotFound", 404, "")), "A key with (name/id) k was not found in this key vault."), "denial:KeyNotFound:404:KeyNotFound"),
            (status(Code::NotFound, Some(("KeyNotFound", 404, "KeyDeleted")), "key is deleted"), "denial:KeyDeleted:404:KeyNotFound"),
            (status(Code::NotFound, Some(("VaultNotFound", 404, "")), "vault v not found"), "denial:VaultDeleted:404:VaultNotFound"),
            (status(Code::NotFound, Some(("ResourceNotFound", 404, "")), "The Resource 'Microsoft.KeyVault/vaults/kv1' under resource group 'rg' was not found."), "denial:VaultDeleted:404:ResourceNotFound"),
            (status(Code::Unauthenticated, Some(("Unauthorized", 401, "")), "[TokenExpired] Error validating token: 'S2S12086'."), "denial:IdentityGone:401:Unauthorized"),
            (status(Code::Unauthenticated, Some(("Unauthorized", 401, "")), "token expired"), "denial:IdentityGone:401:Unauthorized"),
            (status(Code::InvalidArgument, None, "bad ciphertext"), "denial:OperationRejected:400:BadParameter"),
            (status(Code::DataLoss, Some(("InternalError", 500, "HSMKeyMaterialDestroyed")), "The key material of k was destroyed"), "denial:KeyMaterialDestroyed:500:InternalError"),
            (status(Code::Internal, Some(("InternalError", 500, "HSMKeyMaterialDestroyed")), "The key material of k was destroyed"), "denial:KeyMaterialDestroyed:500:InternalError"),
            (status(Code::DataLoss, None, "gone"), "denial:KeyMaterialDestroyed:500:HSMKeyMaterialDestroyed"),
            (status(Code::Internal, Some(("InternalError", 500, "HSMDeviceError")), "The HSM holding key k reported a device error"), "transient:ServerError5xx"),
        ];
        for (status, expected) in rows {
            let got = kind(classify_key_vault_status(&status));
            assert_eq!(got, expected, "{status:?}");
        }
    }

    #[test]
    fn permanent_denials() {
        assert!(DenialKind::KeyMaterialDestroyed.is_permanent());
        assert!(DenialKind::KeyPurged.is_permanent());
        for kind in [
            DenialKind::KeyDisabled,
            DenialKind::PermissionRemoved,
            DenialKind::KeyNotFound,
            DenialKind::KeyDeleted,
            DenialKind::VaultDeleted,
            DenialKind::IdentityGone,
            DenialKind::OperationRejected,
        ] {
            assert!(!kind.is_permanent(), "{kind:?}");
        }
    }

    #[test]
    fn a_404_is_refined_by_the_deleted_key_lookup() {
        let not_found = || match classify_key_vault_status(&status(
            Code::NotFound,
            Some(("KeyNotFound", 404, "")),
            "A key with (name/id) k/v was not found in this key vault.",
        )) {
            AccessFailure::Denial(d) => d,
            other => panic!("{other:?}"),
        };
        let deleted_entry: Result<(), tonic::Status> = Ok(());
        let no_entry: Result<(), tonic::Status> = Err(status(
            Code::NotFound,
            Some(("KeyNotFound", 404, "")),
            "Deleted Key not found: k",
        ));
        let vault_gone: Result<(), tonic::Status> = Err(status(
            Code::NotFound,
            Some(("ResourceNotFound", 404, "")),
            "The Resource 'Microsoft.KeyVault/vaults/kv' under resource group '' was not found.",
        ));
        let no_permission: Result<(), tonic::Status> = Err(status(
            Code::PermissionDenied,
            Some(("Forbidden", 403, "AccessDenied")),
            "no keys get permission",
        ));
        let rows = [
            (
                &deleted_entry,
                DeletedKeyLookup::SoftDeleted,
                DenialKind::KeyDeleted,
            ),
            (
                &no_entry,
                DeletedKeyLookup::NoDeletedEntry,
                DenialKind::KeyPurged,
            ),
            (
                &vault_gone,
                DeletedKeyLookup::Unknown,
                DenialKind::KeyNotFound,
            ),
            (
                &no_permission,
                DeletedKeyLookup::Unknown,
                DenialKind::KeyNotFound,
            ),
        ];
        for (result, lookup, kind) in rows {
            assert_eq!(deleted_key_lookup(result), lookup);
            assert_eq!(refine_not_found(not_found(), lookup).kind, kind);
        }
        // A vault 404 and a 403 are never refined.
        let vault = DenialFailure {
            kind: DenialKind::VaultDeleted,
            http_status: 404,
            code: "ResourceNotFound".into(),
            message: "gone".into(),
        };
        assert_eq!(
            refine_not_found(vault.clone(), DeletedKeyLookup::NoDeletedEntry),
            vault
        );
    }

    #[test]
    fn identity_failures_are_identity_gone_or_transient() {
        let gone = classify_identity_status(&tonic::Status::not_found("principal deleted"));
        assert_eq!(kind(gone), "denial:IdentityGone:401:Unauthorized");
        let down = classify_identity_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!(kind(down), "transient:ConnectionRefused");
    }
}
