//! The Logs Query API: `POST /v1/workspaces/{workspaceId}/query` (and `GET` with `query=`), and
//! `POST /v1/$batch`, as `azure-monitor-query`'s `LogsQueryClient` sends them.
//!
//! The workspace is named by its `customerId` (the GUID of the workspace's Properties blade, as
//! in Azure) or by its ARM resource id; storage resolves the GUID. The body is
//! `{"query", "timespan", "workspaces"}`; the timespan is ISO 8601 (`PT3600.0S`, `P1D`,
//! `start/end`, `start/duration`, `duration/end`; a duration alone ends now, in simulated time).
//! The query runs in the ingest front end (`ingest.v1.Query/Kql`), which reads the tables it
//! names from every storage that holds the workspace's data: while a storage the query needs is
//! revoked or unavailable, the answer is the front end's error naming the cluster and its state
//! (403 revoked, 503 unavailable, 410 shredded), in the API's error shape.
//!
//! The answer is `{"tables":[{"name":"PrimaryResult","columns":[{"name","type"}],"rows":[...]}]}`
//! with Kusto's types; datetimes as RFC 3339 (`2020-07-05T12:00:00.000Z`), dynamic values as
//! JSON text, as the real service sends them. Tokens: the Log Analytics audience
//! (`https://api.loganalytics.io`, or the door's own URL, which is what the SDK asks for when its
//! endpoint is the door).
//!
//! The door's own refusals (a missing query, a bad timespan, an unknown workspace) use the API's
//! codes (`BadArgumentError`, `WorkspaceNotFoundError`) with the simulator's texts; a query's
//! refusal is the front end's error unchanged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cmksim_identity::{audience, Access, Action, Caller};
use cmksim_proto::common::v1::SimTime as PbTime;
use cmksim_proto::ingest::v1 as inp;
use cmksim_proto::storage::v1 as stp;
use cmksim_sim::SimTime;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::bearer;
use crate::error::{echo, RestError, RestResult};
use crate::AppState;

/// The largest answer read from the front end (the real service caps answers at 64 MB).
pub const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most queries in one `$batch` (the real service's limit).
pub const BATCH_REQUESTS_MAX: usize = 10;
/// Longest query text accepted (Kusto's own limit is larger; cmksim's parser takes 64 KiB).
pub const QUERY_BYTES_MAX: usize = 64 * 1024;

/// The body of a query.
#[derive(Debug, Default, Deserialize)]
pub struct QueryBody {
    pub query: Option<String>,
    pub timespan: Option<String>,
    pub workspaces: Option<Vec<String>>,
}

/// `GET /v1/workspaces/{id}/query?query=&timespan=`.
#[derive(Debug, Default, Deserialize)]
pub struct QueryParams {
    pub query: Option<String>,
    pub timespan: Option<String>,
}

/// The caller must hold a Log Analytics token (or an Azure Monitor one); returns who it is.
fn query_caller(state: &AppState, headers: &HeaderMap) -> RestResult<Caller> {
    let token = bearer(headers).ok_or_else(|| {
        RestError::new(
            401,
            "AuthorizationRequiredError",
            "Valid authentication was not provided",
        )
    })?;
    let now = state.clock.now();
    let log_analytics = state
        .verifier
        .verify(&token, audience::LOG_ANALYTICS, None, now);
    let monitor = state.verifier.verify(&token, audience::MONITOR, None, now);
    let claims = match (log_analytics, monitor) {
        (Ok(v), _) | (_, Ok(v)) => v.claims,
        (Err(e), Err(_)) => {
            return Err(RestError::new(
                401,
                "InvalidTokenError",
                format!("The provided authentication is not valid for this resource: {e}"),
            ))
        }
    };
    Ok(Caller {
        object_id: claims.oid,
        tenant_id: claims.tid,
        app_id: claims.appid,
    })
}

/// The caller must be allowed to read `workspace_id` (Log Analytics Reader, Reader,
/// Contributor or Owner at the workspace or above), or hold an approved, unexpired Customer
/// Lockbox request for it (storage decides: `cmksim_identity::LockboxGate`, asked with the
/// door's own token); the refusal is the Logs Query API's 403.
async fn may_query(state: &AppState, caller: &Caller, workspace_id: &str) -> RestResult<()> {
    if crate::auth::access(state, caller, Action::QueryRead, workspace_id).await? == Access::Granted
    {
        return Ok(());
    }
    let gate = cmksim_identity::LockboxGate::new(crate::auth::door_channel(
        state,
        state.upstream.storage.clone(),
    ));
    match gate.allows(&caller.object_id, workspace_id).await {
        Ok(Some(_request)) => Ok(()),
        Ok(None) => Err(RestError::new(
            403,
            "InsufficientAccessError",
            "The provided credentials have insufficient access to perform the requested \
             operation",
        )),
        Err(e) => Err(e.to_status().into()),
    }
}

/// Parses an ISO 8601 duration (`PT3600.0S`, `P1DT2H`, `PT0.5S`) into milliseconds. Years and
/// months are not durations of fixed length: refused.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P').or_else(|| text.strip_prefix('p'))?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut parts = 0;
    let mut take = |mut s: &str, units: &[(char, f64)]| -> Option<()> {
        while !s.is_empty() {
            let end = s.find(|c: char| c.is_ascii_alphabetic())?;
            let number: f64 = s[..end]
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
            let unit = s[end..].chars().next()?.to_ascii_uppercase();
            let (_, ms) = units.iter().find(|(u, _)| *u == unit)?;
            total += number * ms;
            parts += 1;
            s = &s[end + 1..];
        }
        Some(())
    };
    take(date, &[('W', 604_800_000.0), ('D', 86_400_000.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    }
    (parts > 0 && total <= i64::MAX as f64 / 2.0).then_some(total.round() as i64)
}

/// A timespan as `[from, to)` in simulated Unix ms; `now` ends a duration alone.
pub fn parse_timespan(text: &str, now: SimTime) -> Result<(i64, i64), String> {
    let point = |s: &str| SimTime::parse_rfc3339(s).map(|t| t.0);
    let span = match text.split_once('/') {
        None => {
            let d = parse_duration_ms(text)
                .ok_or_else(|| "expected an ISO 8601 duration such as PT1H".to_string())?;
            (now.0 - d, now.0 + 1)
        }
        Some((a, b)) => match (
            point(a),
            point(b),
            parse_duration_ms(a),
            parse_duration_ms(b),
        ) {
            (Ok(start), Ok(end), _, _) => (start, end),
            (Ok(start), _, _, Some(d)) => (start, start.saturating_add(d)),
            (_, Ok(end), Some(d), _) => (end.saturating_sub(d), end),
            _ => {
                return Err("expected start/end, start/duration or duration/end in ISO 8601".into())
            }
        },
    };
    if span.0 > span.1 {
        return Err("the start is after the end".into());
    }
    Ok(span)
}

/// The workspace's ARM id for a `customerId` GUID (or an ARM id given as is).
async fn workspace_arm_id(state: &AppState, workspace: &str) -> RestResult<String> {
    if workspace.starts_with('/') {
        return Ok(super::ingestion::workspace_id(workspace));
    }
    let mut client = stp::workspaces_client::WorkspacesClient::new(crate::auth::door_channel(
        state,
        state.upstream.storage.clone(),
    ));
    let found = client
        .find_workspace(stp::FindWorkspaceRequest {
            customer_id: workspace.to_string(),
        })
        .await;
    match found {
        Ok(ws) => Ok(ws.into_inner().id),
        Err(status) if status.code() == tonic::Code::NotFound => Err(RestError::new(
            404,
            "WorkspaceNotFoundError",
            format!("The workspace could not be found: {}", echo(workspace)),
        )),
        Err(status) => Err(status.into()),
    }
}

/// Runs one query and shapes the answer (or the error) as the API does.
async fn run_query(
    state: &AppState,
    caller: &Caller,
    workspace: &str,
    query: Option<String>,
    timespan: Option<String>,
    prefer: Prefer,
) -> RestResult<Value> {
    // Measured for `statistics.query.executionTime` only (presentation, never simulation).
    let started = std::time::Instant::now();
    let query = query.filter(|q| !q.trim().is_empty()).ok_or_else(|| {
        RestError::bad_request(
            "BadArgumentError",
            "The request had some invalid properties: 'query' is required.",
        )
    })?;
    if query.len() > QUERY_BYTES_MAX {
        return Err(RestError::bad_request(
            "BadArgumentError",
            format!(
                "The query is {} bytes; at most {QUERY_BYTES_MAX}.",
                query.len()
            ),
        ));
    }
    let (from, to) = match timespan.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let (from, to) = parse_timespan(t, state.clock.now()).map_err(|e| {
                RestError::bad_request(
                    "BadArgumentError",
                    format!("The timespan '{}' is not valid: {e}.", echo(t)),
                )
            })?;
            (Some(PbTime { unix_ms: from }), Some(PbTime { unix_ms: to }))
        }
        None => (None, None),
    };
    let workspace_id = workspace_arm_id(state, workspace).await?;
    may_query(state, caller, &workspace_id).await?;
    // The caller's role is checked above; the door reads as the Logs Query API's own front
    // end, with its own principal (a caller's Azure Monitor token is accepted here, and a
    // guarded ingest wants Log Analytics' audience).
    let mut client = inp::query_client::QueryClient::new(crate::auth::door_channel(
        state,
        state.upstream.ingest.clone(),
    ))
    .max_decoding_message_size(ANSWER_BYTES_MAX);
    let answer = client
        .kql(inp::KqlRequest {
            workspace_id,
            query,
            from,
            to,
        })
        .await?
        .into_inner();
    let mut tables = Vec::with_capacity(answer.tables.len());
    let mut dataset_statistics = Vec::with_capacity(answer.tables.len());
    for t in &answer.tables {
        let columns: Vec<Value> = t
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.r#type}))
            .collect();
        let rows: Value = serde_json::from_str(&t.rows_json).map_err(|e| {
            RestError::new(
                500,
                "InternalServerError",
                format!("The front end's rows are not JSON: {e}"),
            )
        })?;
        let row_count = rows.as_array().map_or(0, Vec::len);
        dataset_statistics
            .push(json!({"tableRowCount": row_count, "tableSize": t.rows_json.len()}));
        tables.push(json!({"name": t.name, "columns": columns, "rows": rows}));
    }
    let mut body = json!({ "tables": tables });
    if prefer.statistics {
        body["statistics"] = json!({
            "query": {
                "executionTime": started.elapsed().as_secs_f64(),
                "inputDatasetStatistics": {"rows": {"scanned": answer.rows_read}},
                "datasetStatistics": dataset_statistics,
            }
        });
    }
    if prefer.render && !answer.render_json.is_empty() {
        body["render"] = serde_json::from_str(&answer.render_json).map_err(|e| {
            RestError::new(
                500,
                "InternalServerError",
                format!("The front end's render is not JSON: {e}"),
            )
        })?;
    }
    Ok(body)
}

/// What a caller asks for beyond the rows, in `Prefer` (`include-statistics=true`,
/// `include-render=true`, comma-separated; `wait=N` and anything else are ignored, as a
/// preference may be).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefer {
    pub statistics: bool,
    pub render: bool,
}

impl Prefer {
    /// Reads a `Prefer` value.
    pub fn parse(value: &str) -> Prefer {
        let mut prefer = Prefer::default();
        for item in value.split(',').map(str::trim) {
            if item.eq_ignore_ascii_case("include-statistics=true") {
                prefer.statistics = true;
            } else if item.eq_ignore_ascii_case("include-render=true") {
                prefer.render = true;
            }
        }
        prefer
    }

    fn from_headers(headers: &HeaderMap) -> Prefer {
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(Prefer::parse)
            .fold(Prefer::default(), Prefer::or)
    }

    /// What either asks for.
    fn or(self, other: Prefer) -> Prefer {
        Prefer {
            statistics: self.statistics || other.statistics,
            render: self.render || other.render,
        }
    }
}

/// `POST /v1/workspaces/{workspaceId}/query`.
pub async fn post_query(
    State(state): State<Arc<AppState>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let result = async {
        let caller = query_caller(&state, &headers)?;
        let body: QueryBody = serde_json::from_slice(&bytes).map_err(|e| {
            RestError::bad_request(
                "BadArgumentError",
                format!(
                    "The request body is not valid JSON: {}",
                    echo(&e.to_string())
                ),
            )
        })?;
        let prefer = Prefer::from_headers(&headers);
        run_query(
            &state,
            &caller,
            &workspace,
            body.query,
            body.timespan,
            prefer,
        )
        .await
    }
    .await;
    answer(result)
}

/// `GET /v1/workspaces/{workspaceId}/query?query=...&timespan=...`.
pub async fn get_query(
    State(state): State<Arc<AppState>>,
    Path(workspace): Path<String>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let caller = query_caller(&state, &headers)?;
        let prefer = Prefer::from_headers(&headers);
        run_query(
            &state,
            &caller,
            &workspace,
            params.query,
            params.timespan,
            prefer,
        )
        .await
    }
    .await;
    answer(result)
}

fn answer(result: RestResult<Value>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => {
            let body = error_body(&e);
            let mut response = e.into_response();
            *response.body_mut() = axum::body::Body::from(body.to_string());
            response
        }
    }
}

/// The API's error shape: `azure-monitor-query` builds its error model from the innermost
/// `innererror.message`, so the message is repeated there.
fn error_body(e: &RestError) -> Value {
    let mut error = json!({"code": e.code, "message": e.message});
    if let Some(inner) = &e.inner_code {
        error["innererror"] = json!({"code": inner, "message": e.message});
    }
    json!({ "error": error })
}

#[derive(Deserialize)]
struct BatchRequest {
    id: Option<Value>,
    body: Option<QueryBody>,
    workspace: Option<String>,
    /// Per-request headers (`LogsBatchQuery` puts its `Prefer` here).
    headers: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Batch {
    requests: Vec<BatchRequest>,
}

/// `POST /v1/$batch`: each request answered in `responses`, matched by `id`; a failed one
/// carries its error as its body, the batch itself succeeds.
pub async fn batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let result = async {
        let caller = query_caller(&state, &headers)?;
        let batch: Batch = serde_json::from_slice(&bytes).map_err(|e| {
            RestError::bad_request(
                "BadArgumentError",
                format!("The batch is not valid: {}", echo(&e.to_string())),
            )
        })?;
        if batch.requests.len() > BATCH_REQUESTS_MAX {
            return Err(RestError::bad_request(
                "BadArgumentError",
                format!("A batch holds at most {BATCH_REQUESTS_MAX} requests."),
            ));
        }
        let mut responses = Vec::new();
        for request in batch.requests {
            let body = request.body.unwrap_or_default();
            let workspace = request.workspace.unwrap_or_default();
            let prefer = request
                .headers
                .iter()
                .flatten()
                .filter(|(name, _)| name.eq_ignore_ascii_case("prefer"))
                .map(|(_, value)| Prefer::parse(value))
                .fold(Prefer::default(), Prefer::or);
            let answered = run_query(
                &state,
                &caller,
                &workspace,
                body.query,
                body.timespan,
                prefer,
            )
            .await;
            let (status, body) = match answered {
                Ok(body) => (200, body),
                Err(e) => (e.status, error_body(&e)),
            };
            responses.push(json!({"id": request.id, "status": status, "body": body}));
        }
        Ok(json!({ "responses": responses }))
    }
    .await;
    answer(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_reads_what_the_sdk_sends() {
        // azure-monitor-query writes "include-statistics=true,include-render=true" (and a
        // "wait=N" first when a server timeout is given).
        assert_eq!(
            Prefer::parse("wait=600,include-statistics=true,include-render=true"),
            Prefer {
                statistics: true,
                render: true
            }
        );
        assert_eq!(
            Prefer::parse("include-render=true"),
            Prefer {
                statistics: false,
                render: true
            }
        );
        assert_eq!(Prefer::parse("include-statistics=false"), Prefer::default());
    }

    #[test]
    fn iso_durations_as_the_sdk_writes_them() {
        assert_eq!(parse_duration_ms("PT3600.0S"), Some(3_600_000));
        assert_eq!(parse_duration_ms("PT0.5S"), Some(500));
        assert_eq!(parse_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_duration_ms("P1DT2H30M"), Some(95_400_000));
        assert_eq!(parse_duration_ms("P2W"), Some(1_209_600_000));
        for bad in ["", "P", "PT", "1H", "P1Y", "PT-5S", "PT5X", "P1H"] {
            assert_eq!(parse_duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn timespans_in_every_form() {
        let now = SimTime(1_593_907_200_000);
        assert_eq!(
            parse_timespan("PT1H", now),
            Ok((now.0 - 3_600_000, now.0 + 1))
        );
        assert_eq!(
            parse_timespan("2020-07-05T00:00:00Z/2020-07-05T01:00:00.000Z", now),
            Ok((now.0, now.0 + 3_600_000))
        );
        assert_eq!(
            parse_timespan("2020-07-05T00:00:00Z/PT300.0S", now),
            Ok((now.0, now.0 + 300_000))
        );
        assert_eq!(
            parse_timespan("PT300S/2020-07-05T00:00:00Z", now),
            Ok((now.0 - 300_000, now.0))
        );
        assert!(parse_timespan("2020-07-05T01:00:00Z/2020-07-05T00:00:00Z", now).is_err());
        assert!(parse_timespan("yesterday", now).is_err());
    }
}
