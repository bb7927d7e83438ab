//! Token checking at a gRPC edge, in one place for every service: the bearer token of a call's
//! metadata, verified for the audience the call needs, becomes a [`Caller`]; every refusal is an
//! [`AuthError`] with the status code and the Azure error body a client acts on.
//!
//! Key Vault reads its token with [`bearer`] and answers with its own AKV messages; cluster
//! storage and the ingest front end are guarded by [`crate::guard`], which calls
//! [`authenticate`] and then asks the identity authority about the caller's roles.
//!
//! The refusals speak ARM's language, the one `az` and the SDKs show for these resources:
//! - no token: 401 `AuthenticationFailed`, "Authentication failed. The 'Authorization' header is
//!   missing." (ARM's text);
//! - a token that does not verify: 401 `InvalidAuthenticationToken`, "The access token is
//!   invalid." (ARM's text) with the reason after it (the simulator's addition);
//! - an expired token: 401 `ExpiredAuthenticationToken` (ARM's code, the simulator's text in
//!   ARM's form, with simulated times);
//! - another audience: 401 `InvalidAuthenticationTokenAudience` (ARM's text);
//! - a token of another tenant than the resource's subscription: 401
//!   `InvalidAuthenticationTokenTenant` (ARM's text);
//! - no role: 403 `AuthorizationFailed` (ARM's text).
//!
//! gRPC codes: 401s are UNAUTHENTICATED, 403s PERMISSION_DENIED; the Azure body travels as a
//! prost-encoded `common.v1.AzureError` in the status details, like every service's errors.

use cmksim_proto::common::v1::AzureError;
use cmksim_sim::text::echo;
use cmksim_sim::SimTime;
use prost::Message;
use tonic::{Code, Status};

use crate::roles::Action;
use crate::token::{issuer_for, TokenVerifier, VerifyError};

/// The bearer token in `metadata`, if any (scheme case-insensitive, surrounding blanks trimmed).
pub fn bearer(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Some(token.trim().to_string())
    } else {
        None
    }
}

/// Who made a call, as its verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub object_id: String,
    pub tenant_id: String,
    pub app_id: String,
}

/// Why a call was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("invalid token: {0}")]
    Invalid(VerifyError),
    #[error("token of tenant {token_tenant} for a subscription of tenant {subscription_tenant}")]
    WrongTenant {
        token_issuer: String,
        token_tenant: String,
        subscription_tenant: String,
    },
    #[error("{object_id} may not {action:?} at {scope}")]
    Forbidden {
        object_id: String,
        action: Action,
        scope: String,
    },
    /// The request could not be read to find its scope (not a gRPC message of its method).
    #[error("unreadable request: {0}")]
    UnreadableRequest(String),
    /// The identity authority could not be asked (keys or roles); the client may retry.
    #[error("identity authority unavailable: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The Azure error a client sees.
    pub fn azure(&self) -> AzureError {
        let (code, http_status, message) = match self {
            AuthError::MissingToken => (
                "AuthenticationFailed",
                401,
                "Authentication failed. The 'Authorization' header is missing.".to_string(),
            ),
            AuthError::Invalid(VerifyError::WrongAudience { expected, found }) => (
                "InvalidAuthenticationTokenAudience",
                401,
                format!(
                    "The access token has been obtained for wrong audience or resource '{}'. It \
                     should exactly match with one of the allowed audiences '{}'.",
                    echo(found),
                    expected
                ),
            ),
            AuthError::Invalid(VerifyError::Expired { exp_s, now_s }) => (
                "ExpiredAuthenticationToken",
                401,
                format!(
                    "The access token expiry time '{exp_s}' (Unix seconds, simulated) is \
                     earlier than the current time '{now_s}' (simulator's message)."
                ),
            ),
            AuthError::Invalid(reason) => (
                "InvalidAuthenticationToken",
                401,
                format!(
                    "The access token is invalid. ({})",
                    echo(&reason.to_string())
                ),
            ),
            AuthError::WrongTenant {
                token_issuer,
                subscription_tenant,
                ..
            } => (
                "InvalidAuthenticationTokenTenant",
                401,
                format!(
                    "The access token is from the wrong issuer '{}'. It must match the tenant \
                     '{}' associated with this subscription. Please use the authority (URL) \
                     'https://login.windows.net/{}' to get the token. Note, if the subscription \
                     is transferred to another tenant there is no impact to the services, but \
                     information about new tenant could take time to propagate (up to an \
                     hour). If you just transferred your subscription and see this error \
                     message, please try back later.",
                    echo(token_issuer),
                    issuer_for(subscription_tenant),
                    subscription_tenant
                ),
            ),
            AuthError::Forbidden {
                object_id,
                action,
                scope,
            } => (
                "AuthorizationFailed",
                403,
                format!(
                    "The client '{oid}' with object id '{oid}' does not have authorization to \
                     perform action '{}' over scope '{}' or the scope is invalid. If access was \
                     recently granted, please refresh your credentials.",
                    action.as_str(),
                    echo(scope),
                    oid = echo(object_id),
                ),
            ),
            AuthError::UnreadableRequest(reason) => (
                "BadRequest",
                400,
                format!(
                    "The request could not be read to find the resource it names: {} \
                     (simulator's message).",
                    echo(reason)
                ),
            ),
            AuthError::Unavailable(reason) => (
                "ServiceUnavailable",
                503,
                format!(
                    "The identity authority could not be reached to check the caller: {} \
                     (simulator's message).",
                    echo(reason)
                ),
            ),
        };
        AzureError {
            code: code.to_string(),
            message,
            http_status,
            inner_code: String::new(),
        }
    }

    /// The gRPC status: UNAUTHENTICATED for a 401, PERMISSION_DENIED for a 403.
    pub fn to_status(&self) -> Status {
        let body = self.azure();
        let code = match body.http_status {
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            400 => Code::InvalidArgument,
            _ => Code::Unavailable,
        };
        Status::with_details(code, body.message.clone(), body.encode_to_vec().into())
    }
}

/// Verifies the bearer token of `metadata` for `audience` at `now`; the tenant is checked later,
/// against the resource the call names.
pub fn authenticate(
    verifier: &TokenVerifier,
    metadata: &tonic::metadata::MetadataMap,
    audience: &str,
    now: SimTime,
) -> Result<(Caller, String), AuthError> {
    let token = bearer(metadata).ok_or(AuthError::MissingToken)?;
    let verified = verifier
        .verify(&token, audience, None, now)
        .map_err(AuthError::Invalid)?;
    let claims = verified.claims;
    Ok((
        Caller {
            object_id: claims.oid,
            tenant_id: claims.tid,
            app_id: claims.appid,
        },
        claims.iss,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{audience, Authority};
    use crate::{Directory, PrincipalKind};
    use cmksim_sim::SeedTree;

    fn metadata(value: &str) -> tonic::metadata::MetadataMap {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn bearer_reads_only_a_bearer_scheme() {
        assert_eq!(bearer(&metadata("Bearer abc ")), Some("abc".into()));
        assert_eq!(bearer(&metadata("bearer abc")), Some("abc".into()));
        assert_eq!(bearer(&metadata("Basic abc")), None);
        assert_eq!(bearer(&metadata("Bearer  ")), None);
        assert_eq!(bearer(&tonic::metadata::MetadataMap::new()), None);
    }

    #[test]
    fn refusals_carry_arm_codes_and_grpc_codes() {
        let tree = SeedTree::new(3);
        let mut rng = tree.source("identity");
        let mut d = Directory::default();
        let tenant = d.create_tenant("t", "", &mut rng).unwrap().tenant_id;
        let (p, _) = d
            .create_principal(&tenant, "app", PrincipalKind::ServicePrincipal, &mut rng)
            .unwrap();
        let authority = Authority::generate(&mut tree.source("identity/signing-key"));
        let now = SimTime::DEFAULT_EPOCH;
        let (token, _) = authority.issue(&p, audience::MONITOR, now, 0);
        let verifier = authority.verifier();

        let missing = authenticate(
            &verifier,
            &tonic::metadata::MetadataMap::new(),
            audience::MONITOR,
            now,
        )
        .unwrap_err();
        assert_eq!(missing.to_status().code(), Code::Unauthenticated);
        assert_eq!(missing.azure().code, "AuthenticationFailed");

        let wrong = authenticate(
            &verifier,
            &metadata(&format!("Bearer {token}")),
            audience::LOG_ANALYTICS,
            now,
        )
        .unwrap_err();
        assert_eq!(wrong.azure().code, "InvalidAuthenticationTokenAudience");

        let (caller, issuer) = authenticate(
            &verifier,
            &metadata(&format!("Bearer {token}")),
            audience::MONITOR,
            now,
        )
        .unwrap();
        assert_eq!(caller.object_id, p.object_id);
        assert_eq!(issuer, issuer_for(&tenant));

        let forbidden = AuthError::Forbidden {
            object_id: p.object_id.clone(),
            action: Action::QueryRead,
            scope: "/subscriptions/s".into(),
        };
        let status = forbidden.to_status();
        assert_eq!(status.code(), Code::PermissionDenied);
        let body = AzureError::decode(status.details()).unwrap();
        assert_eq!(body.http_status, 403);
        assert!(body
            .message
            .contains("'Microsoft.OperationalInsights/workspaces/query/read'"));
        let long = AuthError::WrongTenant {
            token_issuer: "x".repeat(100_000),
            token_tenant: "a".into(),
            subscription_tenant: "b".into(),
        };
        assert!(
            long.azure().message.len() < 2_000,
            "echoed input is clipped"
        );
    }
}
