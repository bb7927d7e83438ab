//! Bearer tokens at the door: forwarding them to the services that check their own (Key Vault),
//! and checking them here for the calls whose service does not (ARM on cluster storage, the
//! admin API).
//!
//! The door checks a token exactly as Key Vault checks a management-plane token — it calls the
//! same function (`cmksim_keyvault::auth::authenticate`), so the 401 messages are the same
//! text, not a second copy of them.

use axum::http::HeaderMap;
use cmksim_identity::AuthChannel;
use cmksim_keyvault::state::Caller;
use cmksim_keyvault::Plane;

use crate::error::RestError;
use crate::AppState;

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_string())
}

/// `message` as a gRPC request carrying the caller's token (or none).
pub fn forward<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        if let Ok(value) = format!("Bearer {token}").parse() {
            request.metadata_mut().insert("authorization", value);
        }
    }
    request
}

/// The caller of a management-plane (ARM) request, its token verified at the simulated now.
pub fn management_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, RestError> {
    let metadata = tonic::metadata::MetadataMap::from_headers(headers.clone());
    cmksim_keyvault::auth::authenticate(
        &state.verifier,
        &metadata,
        Plane::Management,
        state.clock.now(),
    )
    .map_err(|e| {
        let body = e.azure();
        let error = RestError::from_azure(cmksim_proto::common::v1::AzureError {
            code: body.code.to_string(),
            message: body.message,
            http_status: u32::from(body.http_status),
            inner_code: body.inner_code.to_string(),
        });
        // ARM's challenge: where to get a token, and that this one was not good. The SDKs act
        // on it only when it carries a CAE `claims` challenge, which it never does here.
        let challenge = format!(
            "Bearer authorization_uri=\"{}/\", error=\"invalid_token\", error_description=\"{}\"",
            state.public_url,
            error.message.replace('"', "'")
        );
        match error.status {
            401 => error.with_header("www-authenticate", challenge),
            _ => error,
        }
    })
}

/// The identity authority's decision on `caller` doing `action` at `scope` (Azure RBAC as
/// `cmksim_identity::roles` reduces it), for the checks the door makes itself: the Logs
/// Ingestion API's role on a data collection rule, which lives in the door. The door asks in
/// its own name ([`door_channel`]: the administrator, whose User Access Administrator role at
/// `/` reads role assignments everywhere), as `CheckAccess` about another principal needs.
pub async fn access(
    state: &AppState,
    caller: &cmksim_identity::Caller,
    action: cmksim_identity::Action,
    scope: &str,
) -> Result<cmksim_identity::Access, RestError> {
    use cmksim_proto::identity::v1 as idp;
    let identity = door_channel(state, state.upstream.keyvault.clone());
    let answer = idp::identity_client::IdentityClient::new(identity)
        .check_access(idp::CheckAccessRequest {
            object_id: caller.object_id.clone(),
            tenant_id: caller.tenant_id.clone(),
            action: action.as_str().to_string(),
            scope: scope.to_string(),
        })
        .await?
        .into_inner();
    Ok(match idp::AccessDecision::try_from(answer.decision) {
        Ok(idp::AccessDecision::Granted) => cmksim_identity::Access::Granted,
        Ok(idp::AccessDecision::WrongTenant) => cmksim_identity::Access::WrongTenant {
            subscription_tenant: answer.subscription_tenant_id,
        },
        _ => cmksim_identity::Access::Denied,
    })
}

/// `channel` carrying the door's own tokens (the administrator's principal of
/// `credentials.json`): for the calls the door makes as Azure Monitor's own front end once it has
/// checked the caller itself (Logs Ingestion on a rule, Logs Query on a workspace). The tokens
/// come from the door's one source ([`AppState::door_tokens`]): a token is issued once and
/// reused until three quarters of its lifetime have passed, not issued again on every call.
pub fn door_channel(state: &AppState, channel: tonic::transport::Channel) -> AuthChannel {
    AuthChannel::new(channel, Some(state.door_tokens.clone()))
}

/// The caller, who must be the administrator of `credentials.json` (the admin API).
pub fn admin_caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, RestError> {
    let caller = management_caller(state, headers)?;
    if caller.object_id != state.credentials.object_id {
        return Err(RestError::new(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{}' is not the cmksim administrator: the /_cmksim API needs the \
                 token of the principal in credentials.json (simulator's message).",
                crate::error::echo(&caller.object_id)
            ),
        ));
    }
    Ok(caller)
}
