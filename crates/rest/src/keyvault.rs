//! The Key Vault data plane at its real paths and shapes (SPEC §9), translated to
//! `keyvault.v1.KeyVault`.
//!
//! The vault is the first label of the host: `https://contoso-kv.vault.azure.net/keys/k` (through
//! the door's CONNECT proxy) or `https://contoso-kv.localhost:PORT/keys/k` (where `*.localhost`
//! resolves). Key ids in answers carry the host the client used, because `CryptographyClient`
//! rebuilds its vault URL from a key id.
//!
//! What the SDK does that shapes this module:
//! - its first request has no `Authorization` header and no body, and expects 401 with
//!   `WWW-Authenticate: Bearer authorization="{authority}/{tenant}", resource=
//!   "https://vault.azure.net"` before anything else is validated; so the token is checked for
//!   presence before the body is parsed, and every 401 carries the challenge;
//! - a versionless key id gives a double slash (`/keys/{name}//unwrapkey`), and .NET sends
//!   `wrapKey` where Python sends `wrapkey`: paths are normalised before routing
//!   ([`normalise_path`]) and operation names compared without case;
//! - `api-version` is 7.x or 2025-07-01; another is refused as the real service does.
//!
//! Everything else (permissions, states, messages, the audit log) is the gRPC service's: the
//! door forwards the caller's token and returns the service's Azure error unchanged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use cmksim_proto::keyvault::v1 as kvp;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::{bearer, forward};
use crate::error::{echo, RestError, RestResult};
use crate::AppState;

/// The api-versions accepted (SPEC §9: 2025-07-01 is the SDK's default, 7.x still in use).
pub const API_VERSIONS: [&str; 8] = [
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
];
/// The newest, named in the refusal of an unknown one.
pub const API_VERSION_LATEST: &str = "2025-07-01";

/// The Key Vault data-plane routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/keys", get(list_keys))
        .route(
            "/keys/{name}",
            get(get_newest).patch(update_newest).delete(delete_key),
        )
        .route(
            "/keys/{name}/{second}",
            get(get_second).post(post_second).patch(update_version),
        )
        .route("/keys/{name}/{version}/{operation}", post(operation))
        .route(
            "/deletedkeys/{name}",
            get(get_deleted).delete(purge_deleted),
        )
        .route("/deletedkeys/{name}/recover", post(recover_deleted))
}

/// A path with empty segments removed and no trailing slash (`/keys/k//unwrapkey` →
/// `/keys/k/unwrapkey`), so that one route serves the SDKs' spellings.
pub fn normalise_path(path: &str) -> Option<String> {
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    Some(format!("/{}", segments.join("/")))
}

/// The host a request was sent to (`Host`, or the HTTP/2 `:authority`), as the client wrote it.
pub fn request_host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

/// The host of a request, from its `Host` header or its URI's authority.
pub struct RequestHost(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestHost {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let host = request_host(&parts.headers).or_else(|| {
            parts
                .uri
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        });
        Ok(RequestHost(host))
    }
}

/// The vault a host names: its first label, unless the host is an IP address or `localhost`.
pub fn vault_of_host(host: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then(|| first.to_string())
}

/// One data-plane request: the vault, the URL the client used for it, and its token.
struct Call {
    state: Arc<AppState>,
    vault: String,
    /// `https://{host}`: what key ids in the answer start with.
    base: String,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

impl Call {
    /// Checks the host and api-version; the token is checked by [`Call::authorised`].
    fn new(
        state: Arc<AppState>,
        host: RequestHost,
        headers: &HeaderMap,
        query: &ApiVersion,
    ) -> RestResult<Call> {
        let host = host.0.unwrap_or_default();
        let Some(vault) = vault_of_host(&host) else {
            return Err(RestError::bad_request(
                "BadParameter",
                format!(
                    "No vault is named by the host '{}': address a vault as \
                     https://{{vault}}.vault.azure.net through HTTPS_PROXY={}, or as \
                     https://{{vault}}.localhost:PORT (simulator's message).",
                    echo(&host),
                    state.credentials.https_proxy
                ),
            ));
        };
        let version = query.api_version.as_deref().unwrap_or("");
        if !API_VERSIONS.contains(&version) {
            return Err(RestError::bad_request(
                "BadParameter",
                format!(
                    "The specified version ({}) is not recognized. Consider using the latest \
                     supported version ({API_VERSION_LATEST}).",
                    echo(version)
                ),
            ));
        }
        Ok(Call {
            base: format!("https://{host}"),
            token: bearer(headers),
            vault,
            state,
        })
    }

    /// The 401 challenge when the request carries no token (before its body is looked at).
    async fn authorised(&self) -> RestResult<()> {
        if self.token.is_some() {
            return Ok(());
        }
        Err(RestError::new(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        ))
    }

    /// `error`, with the challenge added to a 401.
    async fn fail(&self, error: RestError) -> Response {
        if error.status != 401 {
            return error.into_response();
        }
        let tenant = self.vault_tenant().await;
        let challenge = format!(
            "Bearer authorization=\"{}/{tenant}\", resource=\"{}\"",
            self.state.public_url,
            cmksim_identity::audience::VAULT
        );
        error
            .with_header("www-authenticate", challenge)
            .into_response()
    }

    /// The vault's tenant (the challenge names it), or the default tenant when the vault is
    /// unknown or not readable by the administrator.
    async fn vault_tenant(&self) -> String {
        let fallback = self.state.credentials.tenant_id.clone();
        let Ok(token) = crate::admin::admin_token(&self.state).await else {
            return fallback;
        };
        let mut client =
            kvp::key_vault_client::KeyVaultClient::new(self.state.upstream.keyvault.clone());
        match client
            .get_vault(forward(
                Some(&token),
                kvp::VaultRef {
                    vault_name: self.vault.clone(),
                },
            ))
            .await
        {
            Ok(vault) => vault.into_inner().tenant_id,
            Err(_) => fallback,
        }
    }

    fn client(&self) -> kvp::key_vault_client::KeyVaultClient<tonic::transport::Channel> {
        kvp::key_vault_client::KeyVaultClient::new(self.state.upstream.keyvault.clone())
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        forward(self.token.as_deref(), message)
    }

    fn key_ref(&self, name: &str, version: &str) -> kvp::KeyRef {
        kvp::KeyRef {
            vault_name: self.vault.clone(),
            key_name: name.to_string(),
            version: version.to_string(),
        }
    }

    /// A service URL (`https://{vault}.vault.azure.net/...`) as the client's host.
    fn rebase(&self, url: &str) -> String {
        match url.split_once("://") {
            Some((_, rest)) => match rest.find('/') {
                Some(slash) => format!("{}{}", self.base, &rest[slash..]),
                None => self.base.clone(),
            },
            None => url.to_string(),
        }
    }

    fn key_bundle(&self, bundle: &kvp::KeyBundle) -> Value {
        let mut key = Map::new();
        let mut attributes = Map::new();
        if let Some(k) = &bundle.key {
            key.insert("kid".into(), json!(self.rebase(&k.kid)));
            key.insert("kty".into(), json!(k.kty));
            key.insert("key_ops".into(), json!(k.key_ops));
            for (name, bytes) in [("n", &k.n), ("e", &k.e), ("x", &k.x), ("y", &k.y)] {
                if !bytes.is_empty() {
                    key.insert(name.into(), json!(B64.encode(bytes)));
                }
            }
            if !k.crv.is_empty() {
                key.insert("crv".into(), json!(k.crv));
            }
        }
        if let Some(a) = &bundle.attributes {
            attributes = key_attributes(a);
        }
        let mut out = json!({ "key": key, "attributes": attributes });
        if !bundle.tags.is_empty() {
            out["tags"] = json!(bundle.tags.iter().collect::<BTreeMap<_, _>>());
        }
        out
    }

    /// A list item: the key id without its version (a key) or with it (a version).
    fn key_item(&self, bundle: &kvp::KeyBundle, versionless: bool) -> Value {
        let mut kid = bundle
            .key
            .as_ref()
            .map(|k| self.rebase(&k.kid))
            .unwrap_or_default();
        if versionless {
            if let Some((name, _version)) = kid.rsplit_once('/') {
                kid = name.to_string();
            }
        }
        let mut item = json!({
            "kid": kid,
            "attributes": bundle.attributes.as_ref().map(key_attributes).unwrap_or_default(),
        });
        if !bundle.tags.is_empty() {
            item["tags"] = json!(bundle.tags.iter().collect::<BTreeMap<_, _>>());
        }
        item
    }

    fn deleted_bundle(&self, deleted: &kvp::DeletedKeyBundle) -> Value {
        let mut out = deleted
            .key
            .as_ref()
            .map(|k| self.key_bundle(k))
            .unwrap_or_else(|| json!({}));
        out["recoveryId"] = json!(self.rebase(&deleted.recovery_id));
        out["deletedDate"] = json!(seconds(deleted.deleted_date_unix_ms));
        out["scheduledPurgeDate"] = json!(seconds(deleted.scheduled_purge_date_unix_ms));
        out
    }
}

fn seconds(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(1000)
}

fn key_attributes(a: &kvp::KeyAttributes) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("enabled".into(), json!(a.enabled));
    if let Some(nbf) = a.nbf_unix_ms {
        out.insert("nbf".into(), json!(seconds(nbf)));
    }
    if let Some(exp) = a.exp_unix_ms {
        out.insert("exp".into(), json!(seconds(exp)));
    }
    out.insert("created".into(), json!(seconds(a.created_unix_ms)));
    out.insert("updated".into(), json!(seconds(a.updated_unix_ms)));
    out.insert("recoveryLevel".into(), json!(a.recovery_level));
    out.insert("recoverableDays".into(), json!(a.recoverable_days));
    out.insert("exportable".into(), json!(false));
    out
}

/// Parses a JSON body (`{}` when empty) into `T`, as Azure's 400 when it does not fit.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> RestResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        RestError::bad_request(
            "BadParameter",
            format!(
                "The request body is not valid JSON for this operation: {}",
                echo(&e.to_string())
            ),
        )
    })
}

/// base64url, with or without padding.
fn decode(field: &str, value: &str) -> RestResult<Vec<u8>> {
    B64.decode(value.trim_end_matches('=')).map_err(|_| {
        RestError::bad_request(
            "BadParameter",
            format!("Property '{field}' is not a valid base64url string."),
        )
    })
}

#[derive(Default, Deserialize)]
struct Attributes {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(Default, Deserialize)]
struct CreateBody {
    kty: Option<String>,
    key_size: Option<u32>,
    crv: Option<String>,
    key_ops: Option<Vec<String>>,
    attributes: Option<Attributes>,
    tags: Option<HashMap<String, String>>,
}

#[derive(Default, Deserialize)]
struct UpdateBody {
    key_ops: Option<Vec<String>>,
    attributes: Option<Attributes>,
    tags: Option<HashMap<String, String>>,
}

#[derive(Default, Deserialize)]
struct OperationBody {
    alg: Option<String>,
    value: Option<String>,
    digest: Option<String>,
}

/// Builds the call, checks the token's presence, runs `f`; every failure goes through
/// [`Call::fail`] (the challenge on a 401).
macro_rules! data_plane {
    ($state:expr, $host:expr, $headers:expr, $query:expr, |$call:ident| $body:expr) => {{
        let $call = match Call::new($state, $host, &$headers, &$query) {
            Ok(call) => call,
            Err(e) => return e.into_response(),
        };
        if let Err(e) = $call.authorised().await {
            return $call.fail(e).await;
        }
        let result: RestResult<Response> = async { $body }.await;
        match result {
            Ok(response) => response,
            Err(e) => $call.fail(e).await,
        }
    }};
}

async fn list_keys(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        let keys = call
            .client()
            .list_keys(call.request(kvp::VaultRef {
                vault_name: call.vault.clone(),
            }))
            .await?
            .into_inner()
            .keys;
        let value: Vec<Value> = keys.iter().map(|k| call.key_item(k, true)).collect();
        Ok(Json(json!({ "value": value, "nextLink": null })).into_response())
    })
}

async fn get_newest(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
) -> Response {
    data_plane!(state, host, headers, query, |call| get_key(
        &call, &name, ""
    )
    .await)
}

async fn get_key(call: &Call, name: &str, version: &str) -> RestResult<Response> {
    let bundle = call
        .client()
        .get_key(call.request(call.key_ref(name, version)))
        .await?
        .into_inner();
    Ok(Json(call.key_bundle(&bundle)).into_response())
}

/// `GET /keys/{name}/versions` or `GET /keys/{name}/{version}`.
async fn get_second(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path((name, second)): Path<(String, String)>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        if second != "versions" {
            return get_key(&call, &name, &second).await;
        }
        let keys = call
            .client()
            .list_key_versions(call.request(call.key_ref(&name, "")))
            .await?
            .into_inner()
            .keys;
        let value: Vec<Value> = keys.iter().map(|k| call.key_item(k, false)).collect();
        Ok(Json(json!({ "value": value, "nextLink": null })).into_response())
    })
}

/// `POST /keys/{name}/create`, `/rotate`, or an operation on the newest version
/// (`/keys/{name}//unwrapkey`, normalised).
async fn post_second(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path((name, second)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        match second.to_ascii_lowercase().as_str() {
            "create" => create_key(&call, &name, &bytes).await,
            "rotate" => {
                let bundle = call
                    .client()
                    .rotate_key(call.request(call.key_ref(&name, "")))
                    .await?
                    .into_inner();
                Ok(Json(call.key_bundle(&bundle)).into_response())
            }
            op => key_operation(&call, &name, "", op, &bytes).await,
        }
    })
}

async fn create_key(call: &Call, name: &str, bytes: &Bytes) -> RestResult<Response> {
    let b: CreateBody = body(bytes)?;
    let attributes = b.attributes.unwrap_or_default();
    let bundle = call
        .client()
        .create_key(call.request(kvp::CreateKeyRequest {
            vault_name: call.vault.clone(),
            key_name: name.to_string(),
            kty: b.kty.unwrap_or_default(),
            key_size: b.key_size.unwrap_or(0),
            curve: b.crv.unwrap_or_default(),
            key_ops: b.key_ops.unwrap_or_default(),
            enabled: attributes.enabled,
            nbf_unix_ms: attributes.nbf.map(|s| s.saturating_mul(1000)),
            exp_unix_ms: attributes.exp.map(|s| s.saturating_mul(1000)),
            tags: b.tags.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(call.key_bundle(&bundle)).into_response())
}

async fn update_newest(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Response {
    data_plane!(state, host, headers, query, |call| update_key(
        &call, &name, "", &bytes
    )
    .await)
}

async fn update_version(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path((name, version)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    data_plane!(state, host, headers, query, |call| update_key(
        &call, &name, &version, &bytes
    )
    .await)
}

async fn update_key(call: &Call, name: &str, version: &str, bytes: &Bytes) -> RestResult<Response> {
    let b: UpdateBody = body(bytes)?;
    let attributes = b.attributes.unwrap_or_default();
    let bundle = call
        .client()
        .update_key(call.request(kvp::UpdateKeyRequest {
            key: Some(call.key_ref(name, version)),
            enabled: attributes.enabled,
            nbf_unix_ms: attributes.nbf.map(|s| s.saturating_mul(1000)),
            exp_unix_ms: attributes.exp.map(|s| s.saturating_mul(1000)),
            key_ops: b.key_ops.unwrap_or_default(),
            clear_nbf: false,
            clear_exp: false,
            tags: b.tags.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    Ok(Json(call.key_bundle(&bundle)).into_response())
}

async fn delete_key(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        let deleted = call
            .client()
            .delete_key(call.request(call.key_ref(&name, "")))
            .await?
            .into_inner();
        Ok(Json(call.deleted_bundle(&deleted)).into_response())
    })
}

async fn get_deleted(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        let deleted = call
            .client()
            .get_deleted_key(call.request(call.key_ref(&name, "")))
            .await?
            .into_inner();
        Ok(Json(call.deleted_bundle(&deleted)).into_response())
    })
}

async fn purge_deleted(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        call.client()
            .purge_deleted_key(call.request(call.key_ref(&name, "")))
            .await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn recover_deleted(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path(name): Path<String>,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        let bundle = call
            .client()
            .recover_deleted_key(call.request(call.key_ref(&name, "")))
            .await?
            .into_inner();
        Ok(Json(call.key_bundle(&bundle)).into_response())
    })
}

async fn operation(
    State(state): State<Arc<AppState>>,
    host: RequestHost,
    headers: HeaderMap,
    Query(query): Query<ApiVersion>,
    Path((name, version, op)): Path<(String, String, String)>,
    bytes: Bytes,
) -> Response {
    data_plane!(state, host, headers, query, |call| {
        key_operation(&call, &name, &version, &op.to_ascii_lowercase(), &bytes).await
    })
}

/// wrapkey, unwrapkey, encrypt, decrypt, sign, verify (lowercase).
async fn key_operation(
    call: &Call,
    name: &str,
    version: &str,
    op: &str,
    bytes: &Bytes,
) -> RestResult<Response> {
    let key = Some(call.key_ref(name, version));
    let b: OperationBody = body(bytes)?;
    let alg = b.alg.unwrap_or_default();
    let value = || decode("value", b.value.as_deref().unwrap_or(""));
    let mut client = call.client();
    let result = |kid: String, value: Vec<u8>| {
        Json(json!({"kid": call.rebase(&kid), "value": B64.encode(value)})).into_response()
    };
    let request = |value: Vec<u8>| kvp::KeyOperationRequest {
        key: key.clone(),
        algorithm: alg.clone(),
        value,
    };
    Ok(match op {
        "wrapkey" | "unwrapkey" | "encrypt" | "decrypt" => {
            let message = call.request(request(value()?));
            let answer = match op {
                "wrapkey" => client.wrap_key(message).await?,
                "unwrapkey" => client.unwrap_key(message).await?,
                "encrypt" => client.encrypt(message).await?,
                _ => client.decrypt(message).await?,
            }
            .into_inner();
            result(answer.kid, answer.value)
        }
        "sign" => {
            let r = client
                .sign(call.request(kvp::SignRequest {
                    key: key.clone(),
                    algorithm: alg.clone(),
                    digest: value()?,
                }))
                .await?
                .into_inner();
            result(r.kid, r.signature)
        }
        "verify" => {
            let digest = decode("digest", b.digest.as_deref().unwrap_or(""))?;
            let r = client
                .verify(call.request(kvp::VerifyRequest {
                    key: key.clone(),
                    algorithm: alg.clone(),
                    digest,
                    signature: value()?,
                }))
                .await?
                .into_inner();
            Json(json!({ "value": r.valid })).into_response()
        }
        other => {
            return Err(RestError::new(
                404,
                "NotFound",
                format!("Key Vault has no operation '{}' on keys.", echo(other)),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_only_when_they_need_it() {
        assert_eq!(normalise_path("/keys/k/v/unwrapkey"), None);
        assert_eq!(
            normalise_path("/keys/k//unwrapkey").as_deref(),
            Some("/keys/k/unwrapkey")
        );
        assert_eq!(normalise_path("/keys/k/").as_deref(), Some("/keys/k"));
        assert_eq!(normalise_path("/"), None);
    }

    #[test]
    fn the_vault_is_the_first_label_of_a_named_host() {
        assert_eq!(
            vault_of_host("contoso-kv.vault.azure.net").as_deref(),
            Some("contoso-kv")
        );
        assert_eq!(
            vault_of_host("contoso-kv.localhost:8443").as_deref(),
            Some("contoso-kv")
        );
        assert_eq!(vault_of_host("127.0.0.1:8443"), None);
        assert_eq!(vault_of_host("localhost:8443"), None);
        assert_eq!(vault_of_host("[::1]:8443"), None);
        assert_eq!(vault_of_host("singlelabel"), None);
    }
}
