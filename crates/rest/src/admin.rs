//! `/_cmksim/…`: the simulator's own API over HTTPS, for people and test programs that speak
//! HTTP rather than gRPC. LocalStack's `/_localstack/…` is the convention users know.
//!
//! - `GET /_cmksim/health`: 200 when the door serves (no token; for readiness probes).
//! - `GET /_cmksim/clock`: simulated now, epochs and time scale.
//! - `GET|PUT /_cmksim/chaos`: the Key Vault faults of gRPC `ChaosControl` (mode up, down,
//!   blackhole, error_rate, throttle; added latency) and, with `hsm`, an HSM fault.
//! - `GET /_cmksim/events`: the event log of the three services as Server-Sent Events (each
//!   event's JSON in one `data:` line), backlog first, then live, until the client leaves or the
//!   server stops; with them the live dashboard's levers (`"service": "dashboard"`, kind
//!   `dashboard.lever`).
//! - `POST /_cmksim/principals`: a new service principal with a client secret, so that a test can
//!   act as a second, less privileged identity.
//! - `POST|PUT /_cmksim/roleAssignments`: `{"principalId", "role", "scope"}` assigns a built-in
//!   role (its name, e.g. "Monitoring Metrics Publisher", or its definition id) at a scope (`/`,
//!   a subscription, a resource group or a resource id); answers the assignment in ARM's shape.
//!
//! Every route but health needs a management token. The simulator's own routes (clock, chaos,
//! events) need the administrator's ([`admin_caller`]); principals and role assignments forward
//! the caller's token to the identity service, which decides as Azure does (a directory
//! administrator creates principals; Owner or User Access Administrator at a covering scope
//! assigns and removes roles), so that one rule has one home.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cmksim_identity::audience;
use cmksim_proto::events::v1 as evp;
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_sim::SimTime;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::{Stream, StreamExt};

use crate::auth::{admin_caller, bearer, forward, management_caller};
use crate::error::{echo, RestError, RestResult};
use crate::AppState;

/// Events a slow reader may have pending before the door stops reading for it.
pub const EVENTS_BUFFER_MAX: usize = 4096;

/// The admin routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/_cmksim/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/_cmksim/clock", get(clock))
        .route(
            "/_cmksim/chaos",
            get(get_chaos).put(set_chaos).post(set_chaos),
        )
        .route("/_cmksim/events", get(events))
        .route("/_cmksim/principals", post(create_principal))
        .route(
            "/_cmksim/roleAssignments",
            post(create_role_assignment)
                .put(create_role_assignment)
                .delete(delete_role_assignment),
        )
}

/// A management token of the administrator, for the door's own look-ups (the tenant of a vault
/// for the 401 challenge) and its admin calls.
pub async fn admin_token(state: &AppState) -> RestResult<String> {
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    let token = identity
        .issue_token(idp::IssueTokenRequest {
            object_id: state.credentials.object_id.clone(),
            secret: state.credentials.client_secret.clone(),
            audience: audience::MANAGEMENT.to_string(),
            lifetime_seconds: 0,
        })
        .await?
        .into_inner();
    Ok(token.token)
}

async fn clock(State(state): State<Arc<AppState>>, headers: HeaderMap) -> RestResult<Json<Value>> {
    admin_caller(&state, &headers)?;
    let now = state.clock.now();
    Ok(Json(json!({
        "simulatedNow": now.to_rfc3339(),
        "simulatedNowUnixMs": now.unix_ms(),
        "simulatedEpoch": state.clock.epoch().to_rfc3339(),
        "wallEpochUnixMs": state.clock.wall_origin_unix_ms(),
        "timeScale": state.clock.time_scale(),
    })))
}

const MODES: [(&str, kvp::ChaosMode); 5] = [
    ("up", kvp::ChaosMode::Up),
    ("down", kvp::ChaosMode::Down),
    ("blackhole", kvp::ChaosMode::Blackhole),
    ("error_rate", kvp::ChaosMode::ErrorRate),
    ("throttle", kvp::ChaosMode::Throttle),
];

fn settings_json(s: &kvp::ChaosSettings) -> Value {
    let mode = MODES
        .iter()
        .find(|(_, m)| *m as i32 == s.mode)
        .map(|(name, _)| *name)
        .unwrap_or("up");
    json!({
        "mode": mode,
        "errorRate": s.error_rate,
        "retryAfterSeconds": s.retry_after_seconds,
        "addedLatencyMs": s.added_latency_ms,
    })
}

async fn get_chaos(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> RestResult<Json<Value>> {
    admin_caller(&state, &headers)?;
    let mut chaos =
        kvp::chaos_control_client::ChaosControlClient::new(state.upstream.keyvault.clone());
    let settings = chaos.get_chaos(kvp::Empty {}).await?.into_inner();
    Ok(Json(json!({ "keyvault": settings_json(&settings) })))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyVaultChaos {
    mode: Option<String>,
    error_rate: Option<f64>,
    retry_after_seconds: Option<u32>,
    added_latency_ms: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HsmChaos {
    mode: String,
    latency_ms: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosBody {
    keyvault: Option<KeyVaultChaos>,
    hsm: Option<HsmChaos>,
}

async fn set_chaos(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> RestResult<Json<Value>> {
    admin_caller(&state, &headers)?;
    let body: ChaosBody = serde_json::from_slice(&bytes).map_err(|e| {
        RestError::bad_request(
            "BadRequest",
            format!(
                "chaos: expected {{\"keyvault\": {{\"mode\": \"up|down|blackhole|error_rate|throttle\", \
                 \"errorRate\", \"retryAfterSeconds\", \"addedLatencyMs\"}}, \"hsm\": {{\"mode\": \
                 \"ok|device-error|latency|tamper\", \"latencyMs\"}}}}: {}",
                echo(&e.to_string())
            ),
        )
    })?;
    let token = admin_token(&state).await?;
    let mut chaos =
        kvp::chaos_control_client::ChaosControlClient::new(state.upstream.keyvault.clone());
    let mut out = json!({});
    if let Some(kv) = body.keyvault {
        let mode = match kv.mode.as_deref() {
            None => kvp::ChaosMode::Up,
            Some(name) => MODES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    RestError::bad_request(
                        "BadRequest",
                        format!(
                            "chaos: unknown Key Vault mode '{}' (up, down, blackhole, error_rate, \
                             throttle)",
                            echo(name)
                        ),
                    )
                })?,
        };
        let settings = chaos
            .set_chaos(forward(
                Some(&token),
                kvp::ChaosSettings {
                    mode: mode as i32,
                    error_rate: kv.error_rate.unwrap_or(0.0),
                    retry_after_seconds: kv.retry_after_seconds.unwrap_or(0),
                    added_latency_ms: kv.added_latency_ms.unwrap_or(0),
                },
            ))
            .await?
            .into_inner();
        out["keyvault"] = settings_json(&settings);
    }
    if let Some(hsm) = body.hsm {
        let status = chaos
            .set_hsm_fault(forward(
                Some(&token),
                kvp::HsmFaultRequest {
                    mode: hsm.mode,
                    latency_ms: hsm.latency_ms.unwrap_or(0),
                },
            ))
            .await?
            .into_inner();
        out["hsm"] = json!({
            "mode": status.mode,
            "latencyMs": status.latency_ms,
            "keysZeroised": status.keys_zeroised,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrincipalBody {
    display_name: String,
}

async fn create_principal(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> RestResult<Response> {
    management_caller(&state, &headers)?;
    let token = bearer(&headers);
    let body: PrincipalBody = serde_json::from_slice(&bytes).map_err(|e| {
        RestError::bad_request(
            "BadRequest",
            format!(
                "principals: expected {{\"displayName\": \"...\"}}: {}",
                echo(&e.to_string())
            ),
        )
    })?;
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    let created = identity
        .create_principal(forward(
            token.as_deref(),
            idp::CreatePrincipalRequest {
                tenant_id: state.credentials.tenant_id.clone(),
                display_name: body.display_name,
                kind: idp::PrincipalKind::ServicePrincipal as i32,
            },
        ))
        .await?
        .into_inner();
    let principal = created
        .principal
        .ok_or_else(|| RestError::startup("the identity authority returned no principal"))?;
    Ok((
        http::StatusCode::CREATED,
        Json(json!({
            "tenantId": principal.tenant_id,
            "clientId": principal.app_id,
            "clientSecret": created.secret,
            "objectId": principal.object_id,
            "displayName": principal.display_name,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleAssignmentBody {
    principal_id: String,
    role: String,
    scope: String,
}

async fn create_role_assignment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> RestResult<Response> {
    management_caller(&state, &headers)?;
    let token = bearer(&headers);
    let body: RoleAssignmentBody = serde_json::from_slice(&bytes).map_err(|e| {
        RestError::bad_request(
            "BadRequest",
            format!(
                "roleAssignments: expected {{\"principalId\": \"...\", \"role\": \"...\", \
                 \"scope\": \"...\"}}: {}",
                echo(&e.to_string())
            ),
        )
    })?;
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    let assignment = identity
        .create_role_assignment(forward(
            token.as_deref(),
            idp::CreateRoleAssignmentRequest {
                scope: body.scope,
                role: body.role,
                principal_id: body.principal_id,
                name: String::new(),
            },
        ))
        .await?
        .into_inner();
    Ok((
        http::StatusCode::CREATED,
        Json(role_assignment_json(&assignment)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleAssignmentId {
    id: String,
}

/// `DELETE /_cmksim/roleAssignments` with `{"id": "<the assignment's id>"}`: removes it (200 and
/// the removed assignment, as ARM answers a DELETE; 404 when there is none). From then on it
/// grants nothing.
async fn delete_role_assignment(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> RestResult<Response> {
    management_caller(&state, &headers)?;
    let token = bearer(&headers);
    let body: RoleAssignmentId = serde_json::from_slice(&bytes).map_err(|e| {
        RestError::bad_request(
            "BadRequest",
            format!(
                "roleAssignments: expected {{\"id\": \"/subscriptions/.../providers/\
                 Microsoft.Authorization/roleAssignments/...\"}}: {}",
                echo(&e.to_string())
            ),
        )
    })?;
    let mut identity = idp::identity_client::IdentityClient::new(state.upstream.keyvault.clone());
    let removed = identity
        .delete_role_assignment(forward(
            token.as_deref(),
            idp::DeleteRoleAssignmentRequest { id: body.id },
        ))
        .await?
        .into_inner();
    Ok((http::StatusCode::OK, Json(role_assignment_json(&removed))).into_response())
}

/// A role assignment as ARM shows it (`Microsoft.Authorization/roleAssignments`).
pub fn role_assignment_json(a: &idp::RoleAssignment) -> Value {
    let subscription = cmksim_identity::roles::subscription_of(&a.scope).unwrap_or_default();
    json!({
        "id": a.id,
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!(
                "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
                a.role_definition_guid
            ),
            "roleDefinitionName": a.role,
            "principalId": a.principal_id,
            "principalType": "ServicePrincipal",
            "scope": a.scope,
        }
    })
}

/// One service's events, as JSON values, ending when its stream ends.
async fn service_events(
    state: &AppState,
    service: &'static str,
) -> RestResult<impl Stream<Item = Value> + Send + 'static> {
    let channel = match service {
        "keyvault" => state.upstream.keyvault.clone(),
        "storage" => state.upstream.storage.clone(),
        _ => state.upstream.ingest.clone(),
    };
    let mut client = evp::events_client::EventsClient::new(channel);
    let stream = client
        .subscribe(evp::SubscribeRequest { after_seq: 0 })
        .await?
        .into_inner();
    Ok(stream.map_while(move |item| {
        let event = item.ok()?;
        let data: Value = serde_json::from_str(&event.data_json).unwrap_or(Value::Null);
        Some(json!({
            "service": service,
            "seq": event.seq,
            "at": SimTime(event.at_ms).to_rfc3339(),
            "atMs": event.at_ms,
            "source": event.source,
            "kind": event.kind,
            "message": event.message,
            "data": data,
        }))
    }))
}

async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap) -> RestResult<Response> {
    admin_caller(&state, &headers)?;
    let keyvault = service_events(&state, "keyvault").await?;
    let storage = service_events(&state, "storage").await?;
    let ingest = service_events(&state, "ingest").await?;
    // The live dashboard's levers, recorded in its own log, join the stream as "dashboard".
    let levers = state.dashboard.lever_events(EVENTS_BUFFER_MAX);
    let merged = keyvault.merge(storage).merge(ingest).merge(levers);
    // A task forwards the merged streams into a bounded channel until the client leaves (the
    // receiver is dropped) or the server stops.
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(EVENTS_BUFFER_MAX);
    let mut stopping = state.stopping.clone();
    tokio::spawn(async move {
        tokio::pin!(merged);
        loop {
            tokio::select! {
                () = crate::listener::stopped(&mut stopping) => break,
                item = merged.next() => match item {
                    Some(value) => {
                        if tx.send(value).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    let events = tokio_stream::wrappers::ReceiverStream::new(rx).map(|value| {
        Ok::<_, Infallible>(SseEvent::default().event("cmksim").data(value.to_string()))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
