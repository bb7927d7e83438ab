//! The Logs Ingestion API: `POST /dataCollectionRules/{immutableId}/streams/{stream}
//! ?api-version=2023-01-01`, as `azure-monitor-ingestion`'s `LogsIngestionClient.upload` sends it.
//!
//! A body is a JSON array of records, gzip or not (`Content-Encoding`). Its size is measured as
//! the SDK measures its chunks: the SDK packs records while the sum of their JSON sizes stays
//! under 1 MiB, so the separators and brackets push its own bodies slightly past 1 MiB; the door
//! therefore refuses (413) a wire body over 1 MiB, a decompressed body over
//! [`DECOMPRESSED_BYTES_MAX`] (decompression is bounded: a gzip bomb costs nothing), and records
//! whose summed sizes exceed 1 MiB. Each record is checked against the stream's declaration
//! (400 naming the record, the column and what was expected; a refused body applies nothing);
//! properties the stream does not declare are ignored, as the real service ignores them.
//!
//! Accepted records go to the ingest front end (`ingest.v1.Ingestion/Ingest`), once per route
//! of the rule (workspace and output table), declaring the custom table's columns with the
//! batch. The front end routes by link state: stored, buffered while the cluster's key is
//! unavailable, dropped while it is revoked. The real service answers 204 and is silent about
//! drops; cmksim answers 204 too, and tells the truth in an `x-cmksim-outcome` header
//! (`stored=N buffered=N dropped=N`, with drop reasons) and in the event log.
//!
//! Messages: the seeds and Azure's documentation give the status codes of these refusals but no
//! text; the messages here are the simulator's, written in the service's codes
//! (`InvalidStream`, `InvalidPayload`, `ContentLengthLimitExceeded`, `NotFound`).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cmksim_identity::{audience, Access, Action, Caller};
use cmksim_proto::common::v1::SimTime as PbTime;
use cmksim_proto::ingest::v1 as inp;
use cmksim_sim::SimTime;
use serde::Deserialize;
use serde_json::Value;

use super::dcr::{Dcr, StreamColumn, StreamType};
use crate::auth::bearer;
use crate::error::{echo, RestError, RestResult};
use crate::AppState;

/// Largest body on the wire (the documented limit of a Logs Ingestion call).
pub const WIRE_BYTES_MAX: usize = 1024 * 1024;
/// Largest decompressed body: 1 MiB of records plus the SDK's separators (two bytes a record at
/// most 1 MiB of tiny records would need, rounded up).
pub const DECOMPRESSED_BYTES_MAX: usize = 3 * 1024 * 1024;
/// Most bytes of records (each measured as compact JSON) in one call.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
/// The api-versions of the Logs Ingestion API.
pub const API_VERSIONS: [&str; 2] = ["2023-01-01", "2021-11-01-preview"];
/// The column every Log Analytics record has.
pub const TIME_GENERATED: &str = "TimeGenerated";

/// The query string of an upload: only `api-version` is read.
#[derive(Deserialize)]
pub struct ApiVersion {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

/// `POST /dataCollectionRules/{immutableId}/streams/{stream}`.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Path((immutable_id, stream)): Path<(String, String)>,
    Query(query): Query<ApiVersion>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match upload_inner(&state, &immutable_id, &stream, &query, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn upload_inner(
    state: &AppState,
    immutable_id: &str,
    stream: &str,
    query: &ApiVersion,
    headers: &HeaderMap,
    body: &Bytes,
) -> RestResult<Response> {
    let version = query.api_version.as_deref().unwrap_or("");
    if !API_VERSIONS.contains(&version) {
        return Err(RestError::bad_request(
            "InvalidApiVersion",
            format!(
                "The api-version '{}' is not supported; use {}.",
                echo(version),
                API_VERSIONS[0]
            ),
        ));
    }
    let caller = monitor_caller(state, headers)?;
    let dcr = state.dcrs.by_immutable_id(immutable_id).ok_or_else(|| {
        RestError::new(
            404,
            "NotFound",
            format!(
                "Data collection rule with immutable Id '{}' not found.",
                echo(immutable_id)
            ),
        )
    })?;
    may_ingest(state, &caller, &dcr).await?;
    let columns = dcr.streams.get(stream).ok_or_else(|| {
        RestError::bad_request(
            "InvalidStream",
            format!(
                "Stream '{}' is not declared in data collection rule '{}'.",
                echo(stream),
                dcr.immutable_id
            ),
        )
    })?;
    let routes = dcr.routes(stream);
    if routes.is_empty() {
        return Err(RestError::bad_request(
            "InvalidStream",
            format!(
                "Stream '{}' has no data flow in data collection rule '{}'.",
                echo(stream),
                dcr.immutable_id
            ),
        ));
    }
    let text = decode_body(headers, body)?;
    let records = parse_records(&text, columns, state.clock.now())?;
    let mut outcome = Outcome::default();
    // The caller's role is on the rule; the door writes into the rule's workspaces as Azure
    // Monitor's pipeline does, with its own principal.
    let mut ingestion = inp::ingestion_client::IngestionClient::new(crate::auth::door_channel(
        state,
        state.upstream.ingest.clone(),
    ));
    let declared = declarations(columns);
    for route in &routes {
        let custom = route.table.ends_with("_CL");
        let answer = ingestion
            .ingest(inp::IngestRequest {
                workspace_id: workspace_id(&route.workspace_resource_id),
                table: route.table.clone(),
                records: records.clone(),
                declare_columns: if custom { declared.clone() } else { Vec::new() },
            })
            .await?
            .into_inner();
        outcome.add(&answer);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&outcome.header()) {
        response.headers_mut().insert("x-cmksim-outcome", value);
    }
    tracing::debug!(dcr = %dcr_label(&dcr), stream, outcome = %outcome.header(), "logs ingestion");
    Ok(response)
}

fn dcr_label(dcr: &Dcr) -> String {
    format!("{} ({})", dcr.name, dcr.immutable_id)
}

/// The workspace as the ingest front end names it: its ARM id, in the canonical spelling
/// (`resourceGroups`, `Microsoft.OperationalInsights`) whatever case the rule used.
pub fn workspace_id(resource_id: &str) -> String {
    match crate::arm::ArmPath::parse(resource_id) {
        Some(crate::arm::ArmPath::Workspace(ws)) => {
            ws.arm_id(crate::arm::INSIGHTS_PROVIDER, "workspaces")
        }
        _ => resource_id.to_string(),
    }
}

/// The caller must hold a role granting `Microsoft.Insights/Telemetry/Write` on the rule
/// (Monitoring Metrics Publisher, or Owner, at the rule or above), as the real service asks.
/// The refusal is the real service's 403 `OperationFailed` (its text, as its troubleshooting
/// guides quote it; `ConfigurationId` is the simulator's immutable id, the real one is internal).
pub async fn may_ingest(state: &AppState, caller: &Caller, dcr: &Dcr) -> RestResult<()> {
    let access = crate::auth::access(state, caller, Action::TelemetryWrite, &dcr.id).await?;
    if access == Access::Granted {
        return Ok(());
    }
    Err(RestError::new(
        403,
        "OperationFailed",
        format!(
            "The authentication token provided does not have access to ingest data for the data \
             collection rule with immutable Id '{id}' PipelineAccessResult: AccessGranted: \
             False, IsRbacPresent: False, IsDcrDceBindingValid: , DcrArmId: {arm}, Message: \
             Required authorization action was not found for tenantId {tid} objectId {oid} on \
             resourceId {arm} ConfigurationId: {id}..",
            id = dcr.immutable_id,
            arm = echo(&dcr.id),
            tid = echo(&caller.tenant_id),
            oid = echo(&caller.object_id),
        ),
    ))
}

/// The caller must hold a token for Azure Monitor (`https://monitor.azure.com`); returns who
/// it is.
pub fn monitor_caller(state: &AppState, headers: &HeaderMap) -> RestResult<Caller> {
    let token = bearer(headers).ok_or_else(|| {
        RestError::new(
            401,
            "InvalidAuthenticationToken",
            "The request has no bearer token for https://monitor.azure.com (simulator's \
             message).",
        )
    })?;
    let claims = state
        .verifier
        .verify(&token, audience::MONITOR, None, state.clock.now())
        .map_err(|e| {
            RestError::new(
                401,
                "InvalidAuthenticationToken",
                format!("The access token is not valid for https://monitor.azure.com: {e}"),
            )
        })?
        .claims;
    Ok(Caller {
        object_id: claims.oid,
        tenant_id: claims.tid,
        app_id: claims.appid,
    })
}

/// The body as text: gunzipped when it says so, bounded before and after.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> RestResult<String> {
    let too_large = |what: String| RestError::new(413, "ContentLengthLimitExceeded", what);
    if body.len() > WIRE_BYTES_MAX {
        return Err(too_large(format!(
            "The request body is {} bytes; the limit is {WIRE_BYTES_MAX} bytes (1 MiB).",
            body.len()
        )));
    }
    let gzip = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let bytes = if gzip {
        let mut out = Vec::new();
        let limit = DECOMPRESSED_BYTES_MAX as u64 + 1;
        flate2::read::GzDecoder::new(&body[..])
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| {
                RestError::bad_request(
                    "InvalidContentEncoding",
                    format!("The body says Content-Encoding: gzip but is not gzip: {e}"),
                )
            })?;
        if out.len() > DECOMPRESSED_BYTES_MAX {
            return Err(too_large(format!(
                "The decompressed body is over {DECOMPRESSED_BYTES_MAX} bytes."
            )));
        }
        out
    } else {
        body.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| {
        RestError::bad_request("InvalidPayload", "The request body is not UTF-8 JSON.")
    })
}

/// The ingest front end's declaration of the stream's columns (TimeGenerated is implicit).
fn declarations(columns: &[StreamColumn]) -> Vec<inp::ColumnDeclaration> {
    columns
        .iter()
        .filter(|c| c.name != TIME_GENERATED)
        .map(|c| inp::ColumnDeclaration {
            name: c.name.clone(),
            r#type: c.column_type.table_type().to_string(),
        })
        .collect()
}

/// Parses and checks every record against the declaration; the first bad record refuses the
/// whole body.
pub fn parse_records(
    text: &str,
    columns: &[StreamColumn],
    now: SimTime,
) -> RestResult<Vec<inp::Record>> {
    let invalid = |message: String| RestError::bad_request("InvalidPayload", message);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "The request body is not JSON: {} (line {}, column {}).",
            echo(&e.to_string()),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Array(items) = value else {
        return Err(invalid(
            "The request body must be a JSON array of records.".into(),
        ));
    };
    let mut record_bytes = 0usize;
    let mut records = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(object) = item else {
            return Err(invalid(format!("Record {index} is not a JSON object.")));
        };
        record_bytes += item.to_string().len();
        if record_bytes > RECORD_BYTES_MAX {
            return Err(RestError::new(
                413,
                "ContentLengthLimitExceeded",
                format!("The records of one call may total at most {RECORD_BYTES_MAX} bytes."),
            ));
        }
        let by_name: BTreeMap<&str, &Value> = object.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut time_generated = now;
        let mut out = Vec::new();
        for column in columns {
            let value = by_name
                .get(column.name.as_str())
                .copied()
                .or_else(|| {
                    object
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&column.name))
                        .map(|(_, v)| v)
                })
                .filter(|v| !v.is_null());
            let Some(value) = value else {
                continue;
            };
            let typed = typed_value(value, column.column_type).map_err(|expected| {
                invalid(format!(
                    "Record {index}: column '{}' is declared {} but the value is {}; expected \
                     {expected}.",
                    column.name,
                    column.column_type.name(),
                    echo(&value.to_string())
                ))
            })?;
            if column.name == TIME_GENERATED {
                if let Some(inp::value::Kind::DatetimeValue(t)) = &typed.kind {
                    time_generated = SimTime(t.unix_ms);
                    continue;
                }
            }
            out.push(inp::Column {
                name: column.name.clone(),
                value: Some(typed),
            });
        }
        records.push(inp::Record {
            time_generated: Some(PbTime {
                unix_ms: time_generated.0,
            }),
            columns: out,
        });
    }
    Ok(records)
}

/// A JSON value as a column of `column_type`, or what was expected.
fn typed_value(value: &Value, column_type: StreamType) -> Result<inp::Value, &'static str> {
    use inp::value::Kind;
    let kind = match column_type {
        StreamType::String => Kind::StringValue(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        StreamType::Int | StreamType::Long => match value {
            Value::Number(n) => Kind::LongValue(n.as_i64().ok_or("a whole number")?),
            Value::String(s) => Kind::LongValue(s.trim().parse().map_err(|_| "a whole number")?),
            _ => return Err("a whole number"),
        },
        StreamType::Real => match value {
            Value::Number(n) => Kind::RealValue(n.as_f64().ok_or("a number")?),
            Value::String(s) => Kind::RealValue(s.trim().parse().map_err(|_| "a number")?),
            _ => return Err("a number"),
        },
        StreamType::Boolean => match value {
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Kind::BoolValue(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Kind::BoolValue(false),
            _ => return Err("true or false"),
        },
        StreamType::Datetime => match value {
            Value::String(s) => Kind::DatetimeValue(PbTime {
                unix_ms: SimTime::parse_rfc3339(s)
                    .map_err(|_| "an ISO 8601 date-time such as 2020-07-05T12:00:00Z")?
                    .0,
            }),
            _ => return Err("an ISO 8601 date-time string"),
        },
        StreamType::Dynamic => Kind::DynamicJson(value.to_string()),
    };
    Ok(inp::Value { kind: Some(kind) })
}

/// What the front end did with the records, over every route.
#[derive(Default)]
struct Outcome {
    stored: u64,
    buffered: u64,
    dropped: u64,
    reasons: BTreeMap<String, u64>,
}

impl Outcome {
    fn add(&mut self, answer: &inp::IngestResponse) {
        self.stored += answer.stored;
        self.buffered += answer.buffered;
        self.dropped += answer.dropped;
        for (reason, n) in answer.dropped_by_reason() {
            *self.reasons.entry(reason).or_default() += n;
        }
    }

    /// `stored=N buffered=N dropped=N` and `dropped.<reason>=N` for each reason.
    fn header(&self) -> String {
        let mut text = format!(
            "stored={} buffered={} dropped={}",
            self.stored, self.buffered, self.dropped
        );
        for (reason, n) in &self.reasons {
            let reason: String = reason
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            text.push_str(&format!(" dropped.{reason}={n}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Vec<StreamColumn> {
        [
            ("TimeGenerated", StreamType::Datetime),
            ("Computer", StreamType::String),
            ("Level", StreamType::Long),
            ("Ok", StreamType::Boolean),
            ("Props", StreamType::Dynamic),
        ]
        .into_iter()
        .map(|(name, column_type)| StreamColumn {
            name: name.into(),
            column_type,
        })
        .collect()
    }

    #[test]
    fn records_are_typed_by_the_declaration_and_unknown_properties_ignored() {
        let now = SimTime(1_000);
        let text = r#"[{"TimeGenerated": "2020-07-05T00:00:00Z", "Computer": "a", "Level": 3,
                        "Ok": true, "Props": {"x": [1]}, "Other": 1},
                       {"Computer": "b"}]"#;
        let records = parse_records(text, &columns(), now).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].time_generated.as_ref().unwrap().unix_ms,
            1_593_907_200_000
        );
        assert_eq!(
            records[0].columns.len(),
            4,
            "TimeGenerated is the record's time"
        );
        assert_eq!(records[1].time_generated.as_ref().unwrap().unix_ms, 1_000);
        assert_eq!(records[1].columns.len(), 1);
    }

    #[test]
    fn a_bad_body_or_record_is_refused_whole_with_its_place() {
        let now = SimTime(0);
        for (text, expected) in [
            ("{}", "JSON array"),
            ("[1]", "Record 0 is not a JSON object"),
            (
                "[{\"Level\": \"x\"}]",
                "Record 0: column 'Level' is declared long",
            ),
            ("[{}, {\"TimeGenerated\": \"yesterday\"}]", "Record 1"),
            ("[{\"Ok\": 2}]", "expected true or false"),
            ("[{\"Computer\": ", "not JSON"),
        ] {
            let e = parse_records(text, &columns(), now).unwrap_err();
            assert_eq!(e.status, 400, "{text}");
            assert!(e.message.contains(expected), "{text}: {}", e.message);
        }
    }

    #[test]
    fn gzip_is_bounded_and_plain_bodies_pass() {
        use std::io::Write;
        let mut headers = HeaderMap::new();
        assert_eq!(
            decode_body(&headers, &Bytes::from_static(b"[]")).unwrap(),
            "[]"
        );
        headers.insert("content-encoding", HeaderValue::from_static("gzip"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&vec![b' '; DECOMPRESSED_BYTES_MAX + 10])
            .unwrap();
        let bomb = Bytes::from(gz.finish().unwrap());
        assert!(bomb.len() < WIRE_BYTES_MAX, "a small body that inflates");
        assert_eq!(decode_body(&headers, &bomb).unwrap_err().status, 413);
        assert_eq!(
            decode_body(&headers, &Bytes::from_static(b"not gzip"))
                .unwrap_err()
                .status,
            400
        );
        let big = Bytes::from(vec![b' '; WIRE_BYTES_MAX + 1]);
        assert_eq!(
            decode_body(&HeaderMap::new(), &big).unwrap_err().status,
            413
        );
    }
}
