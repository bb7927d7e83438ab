//! Token handling at the edge: the `authorization: Bearer …` metadata → a verified [`Caller`],
//! or the 401 Azure would answer.
//!
//! Management calls want audience `https://management.azure.com`, key calls
//! `https://vault.azure.net`. The tenant is checked later, against the vault the call names
//! (a token is valid or not for a *vault*, not in general).

use cmksim_identity::{audience, TokenVerifier, VerifyError};
use cmksim_sim::SimTime;

use crate::errors::{KvError, Plane};
use crate::state::Caller;

/// The bearer token in `metadata`, if any: the one reading for every gRPC service
/// (`cmksim_identity::grpc_auth`).
pub use cmksim_identity::grpc_auth::bearer;

/// Verifies the call's token for `plane` at `now`.
pub fn authenticate(
    verifier: &TokenVerifier,
    metadata: &tonic::metadata::MetadataMap,
    plane: Plane,
    now: SimTime,
) -> Result<Caller, KvError> {
    let token = bearer(metadata).ok_or(KvError::MissingToken { plane })?;
    let expected = match plane {
        Plane::Data => audience::VAULT,
        Plane::Management => audience::MANAGEMENT,
    };
    let verified = verifier
        .verify(&token, expected, None, now)
        .map_err(|e| match e {
            VerifyError::Malformed(reason) => KvError::MalformedToken { plane, reason },
            VerifyError::UnknownKid { encoded_header, .. } => KvError::UnknownSigningKey {
                plane,
                encoded_header,
            },
            VerifyError::InvalidSignature => KvError::InvalidSignature { plane },
            VerifyError::WrongAudience { found, .. } => KvError::InvalidAudience { plane, found },
            VerifyError::WrongTenant { expected, found } => KvError::InvalidIssuer {
                plane,
                expected_tenant: expected
                    .trim_start_matches("https://sts.windows.net/")
                    .trim_end_matches('/')
                    .to_string(),
                found_issuer: found,
            },
            VerifyError::Expired { exp_s, now_s } => KvError::TokenExpired {
                plane,
                exp_unix_s: exp_s,
                now_unix_s: now_s,
            },
            VerifyError::NotYetValid { .. } => KvError::TokenNotYetValid { plane },
        })?;
    let claims = verified.claims;
    Ok(Caller {
        object_id: claims.oid,
        tenant_id: claims.tid,
        app_id: claims.appid,
        issuer: claims.iss,
    })
}
