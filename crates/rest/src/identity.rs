//! Entra-shaped identity endpoints: OpenID discovery, JWKS and the v2.0 token endpoint, so that
//! `azure-identity`'s `ClientSecretCredential` (authority pointed at cmksim) obtains the
//! project's ES256 tokens through MSAL unmodified.
//!
//! The flow MSAL follows: `GET {authority}/{tenant}/v2.0/.well-known/openid-configuration`, then
//! `POST` the form `grant_type=client_credentials&client_id&client_secret&scope` to the
//! `token_endpoint` it names. Instance discovery (`/common/discovery/instance`) is answered too,
//! for clients that do not disable it. Every URL in a discovery document is built from the host
//! the client used, so the same answers work at `https://127.0.0.1:PORT` and, through the
//! door's CONNECT proxy, at `https://login.microsoftonline.com`.
//!
//! The scope names the audience: `https://vault.azure.net/.default` (Key Vault),
//! `https://management.azure.com/.default` (ARM) or `https://monitor.azure.com/.default`
//! (Azure Monitor). Lifetimes: SDKs refresh a token by their own wall clock from
//! `expires_in`, while the services check `exp` in simulated time. So a token announced as
//! valid for `L` wall seconds is issued for `L × time scale` simulated seconds; `L` is one hour,
//! or less when the authority's longest lifetime would not cover an hour at this scale.
//!
//! Refusals have Entra's OAuth shape `{"error","error_description","error_codes"}` with its
//! AADSTS codes and the text of their public descriptions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use cmksim_identity::{audience, MAX_TOKEN_LIFETIME_SECONDS};
use cmksim_proto::identity::v1 as idp;
use serde_json::{json, Value};

use crate::error::echo;
use crate::AppState;

/// The longest lifetime announced to a client, in wall-clock seconds (Entra's default hour).
pub const TOKEN_WALL_SECONDS_MAX: u64 = 3_600;
/// The shortest: below this a client would fetch a token for every request.
pub const TOKEN_WALL_SECONDS_MIN: u64 = 60;

/// The identity routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/common/discovery/instance", get(instance_discovery))
}

/// `https://{host the client used}`.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    match crate::keyvault::request_host(headers) {
        Some(host) => format!("https://{host}"),
        None => state.public_url.clone(),
    }
}

async fn openid_configuration(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let base = base_url(&state, &headers);
    let t = echo(&tenant);
    let host = base.trim_start_matches("https://").to_string();
    Json(json!({
        "token_endpoint": format!("{base}/{t}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "jwks_uri": format!("{base}/{t}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{t}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{t}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{t}/oauth2/v2.0/logout"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid"],
        "tenant_region_scope": null,
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
    }))
    .into_response()
}

async fn instance_discovery(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    let host = base.trim_start_matches("https://").to_string();
    Json(json!({
        "tenant_discovery_endpoint":
            format!("{base}/{}/v2.0/.well-known/openid-configuration", state.credentials.tenant_id),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }))
    .into_response()
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    match identity.get_signing_keys(idp::Empty {}).await {
        Ok(keys) => {
            let keys: Vec<Value> = keys
                .into_inner()
                .keys
                .into_iter()
                .map(|k| {
                    json!({"kty": k.kty, "use": "sig", "alg": "ES256", "kid": k.kid,
                           "crv": k.crv, "x": k.x, "y": k.y})
                })
                .collect();
            Json(json!({ "keys": keys })).into_response()
        }
        Err(status) => crate::error::RestError::from(status).into_response(),
    }
}

/// An OAuth error in Entra's shape.
fn oauth_error(status: StatusCode, error: &str, code: u32, description: String) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
    });
    (status, Json(body)).into_response()
}

/// The audience a `scope` asks for (`https://vault.azure.net/.default` → the vault audience).
/// `door_urls` are the URLs the door answers at: `azure-monitor-query` asks for a token for its
/// endpoint (`https://127.0.0.1:PORT/.default`), which is the Log Analytics audience here.
pub fn audience_of_scope(scope: &str, door_urls: &[&str]) -> Option<&'static str> {
    let resource = scope
        .split_whitespace()
        .find(|s| s.ends_with("/.default"))?
        .trim_end_matches("/.default")
        .trim_end_matches('/');
    let resource = match resource {
        "https://management.core.windows.net" => audience::MANAGEMENT,
        "https://api.loganalytics.azure.com" => audience::LOG_ANALYTICS,
        door if door_urls.iter().any(|u| u.trim_end_matches('/') == door) => {
            audience::LOG_ANALYTICS
        }
        other => other,
    };
    audience::ALL.into_iter().find(|a| *a == resource)
}

/// The lifetime announced to a client (wall seconds) at `time_scale`.
pub fn token_wall_seconds(time_scale: f64) -> u64 {
    let fits = (MAX_TOKEN_LIFETIME_SECONDS as f64 / time_scale.max(f64::MIN_POSITIVE)).floor();
    (fits.min(TOKEN_WALL_SECONDS_MAX as f64) as u64).max(TOKEN_WALL_SECONDS_MIN)
}

async fn token(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let grant = field("grant_type");
    if grant != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{}'. cmksim supports \
                 client_credentials.",
                echo(grant)
            ),
        );
    }
    // client_secret_basic: the pair in an Authorization: Basic header.
    let (client_id, secret) = match basic_credentials(&headers) {
        Some(pair) => pair,
        None => (
            field("client_id").to_string(),
            field("client_secret").to_string(),
        ),
    };
    if client_id.is_empty() || secret.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id' and \
             'client_secret'."
                .to_string(),
        );
    }
    let scope = field("scope");
    let base = base_url(&state, &headers);
    let Some(audience) = audience_of_scope(scope, &[&base, &state.public_url]) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {} is not valid. Client credential flows must have \
                 a scope value with /.default suffixed to the resource identifier (one of {}).",
                echo(scope),
                audience::ALL.join(", ")
            ),
        );
    };
    let wall_seconds = token_wall_seconds(state.clock.time_scale());
    let simulated_seconds = (wall_seconds as f64 * state.clock.time_scale()) as u64;
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    let issued = identity
        .issue_token(idp::IssueTokenRequest {
            object_id: client_id.clone(),
            secret,
            audience: audience.to_string(),
            lifetime_seconds: simulated_seconds.min(MAX_TOKEN_LIFETIME_SECONDS),
        })
        .await;
    let not_found = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory '{}'. You may \
                 have sent your authentication request to the wrong tenant.",
                echo(&client_id),
                echo(&tenant)
            ),
        )
    };
    let token = match issued {
        Ok(token) => token.into_inner().token,
        Err(status) => {
            return match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{}'.",
                        echo(&client_id)
                    ),
                ),
                tonic::Code::NotFound | tonic::Code::FailedPrecondition => not_found(),
                _ => crate::error::RestError::from(status).into_response(),
            };
        }
    };
    // The tenant in the path must be the principal's (or one of the multi-tenant aliases).
    let tid = state
        .verifier
        .verify(&token, audience, None, state.clock.now())
        .map(|v| v.claims.tid)
        .unwrap_or_default();
    let alias = matches!(tenant.as_str(), "common" | "organizations");
    if !alias && tid != tenant {
        return not_found();
    }
    Json(json!({
        "token_type": "Bearer",
        "expires_in": wall_seconds,
        "ext_expires_in": wall_seconds,
        "access_token": token,
    }))
    .into_response()
}

/// `Authorization: Basic base64(client_id:client_secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_the_audiences_of_the_simulated_world() {
        let door = ["https://127.0.0.1:8443"];
        let of = |scope: &str| audience_of_scope(scope, &door);
        assert_eq!(
            of("https://vault.azure.net/.default"),
            Some(audience::VAULT)
        );
        assert_eq!(
            of("https://management.azure.com//.default"),
            Some(audience::MANAGEMENT)
        );
        assert_eq!(
            of("https://management.core.windows.net/.default"),
            Some(audience::MANAGEMENT)
        );
        assert_eq!(
            of("https://monitor.azure.com/.default offline_access"),
            Some(audience::MONITOR)
        );
        assert_eq!(
            of("https://api.loganalytics.io/.default"),
            Some(audience::LOG_ANALYTICS)
        );
        assert_eq!(
            of("https://127.0.0.1:8443/.default"),
            Some(audience::LOG_ANALYTICS)
        );
        assert_eq!(of("https://127.0.0.1:9999/.default"), None);
        assert_eq!(of("https://graph.microsoft.com/.default"), None);
        assert_eq!(of("https://vault.azure.net"), None);
    }

    #[test]
    fn announced_lifetimes_fit_the_authority_at_every_scale() {
        assert_eq!(token_wall_seconds(1.0), 3_600);
        assert_eq!(token_wall_seconds(600.0), 3_600);
        for scale in [1.0, 60.0, 600.0, 3_600.0, 86_400.0, 1e9] {
            let wall = token_wall_seconds(scale);
            assert!(wall >= TOKEN_WALL_SECONDS_MIN);
            let fits = (wall as f64 * scale) as u64 <= MAX_TOKEN_LIFETIME_SECONDS;
            assert!(fits || wall == TOKEN_WALL_SECONDS_MIN, "scale {scale}");
        }
    }
}
