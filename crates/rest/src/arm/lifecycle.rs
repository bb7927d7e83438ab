//! ARM routes of the data lifecycle (seed 003), translated to `storage.v1.Workspaces`:
//!
//! - `POST .../workspaces/{w}/purge` with `{"table", "filters": [{"column", "operator",
//!   "value"}]}` → 202, `x-ms-status-location: .../workspaces/{w}/operations/{purgeId}` and
//!   `{"operationId"}` (azure-mgmt-loganalytics `workspace_purge.purge` accepts only 202 and
//!   reads that header);
//! - `GET .../workspaces/{w}/operations/{purgeId}` → 200 `{"status": "pending"|"completed"}`;
//! - `DELETE .../workspaces/{w}/tables/{table}` → 200 (storage deletes the blocks before it
//!   answers);
//! - `PUT|PATCH|GET .../workspaces/{w}/tables/{table}`: the table resource's retention (issue
//!   14), `properties.retentionInDays` (days, or `-1` to follow the workspace's again; absent in
//!   a `PATCH`: unchanged), as azure-mgmt-loganalytics `tables.begin_create_or_update`,
//!   `begin_update` and `get` send and read it. Answers 200 with the table resource
//!   (`provisioningState: Succeeded`, so the SDK's poller ends at once). Only the retention is
//!   kept: a body with a `schema`, `plan` or `totalRetentionInDays` of another value is refused
//!   (400) rather than ignored;
//! - `PUT|GET|DELETE .../workspaces/{w}/providers/Microsoft.Authorization/locks/{name}`: the
//!   workspace's `CanNotDelete` management lock (ARM's lock resource shape; `DELETE` of a lock
//!   that is not there answers 204, as ARM does).
//!
//! Every rule (the lock refusing purge and table delete with `ScopeLocked`, the filter checks)
//! is storage's; this module only reshapes requests and answers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cmksim_proto::storage::v1 as stp;
use serde_json::{json, Value};

use super::{answer, Arm, Body, ResourceId, INSIGHTS_PROVIDER};
use crate::error::{RestError, RestResult};

fn client(arm: &Arm) -> stp::workspaces_client::WorkspacesClient<cmksim_identity::AuthChannel> {
    stp::workspaces_client::WorkspacesClient::new(arm.storage())
}

fn workspace_ref(id: &ResourceId) -> stp::WorkspaceRef {
    stp::WorkspaceRef {
        subscription_id: id.subscription.clone(),
        resource_group: id.resource_group.clone(),
        workspace_name: id.name.clone(),
    }
}

/// `POST .../purge`.
pub async fn purge(arm: &Arm, ws: &ResourceId, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    let table = body.string(&["table"])?.unwrap_or_default();
    let mut filters = Vec::new();
    for f in body.array(&["filters"])?.into_iter().flatten() {
        let f = Body::of(f);
        filters.push(stp::PurgeFilter {
            column: f.string(&["column"])?.unwrap_or_default(),
            operator: f.string(&["operator"])?.unwrap_or_default(),
            value_json: f.get(&["value"]).unwrap_or(&Value::Null).to_string(),
        });
    }
    let op = client(arm)
        .purge(stp::PurgeRequest {
            workspace: Some(workspace_ref(ws)),
            table,
            filters,
        })
        .await?
        .into_inner();
    let location = format!(
        "{}{}/operations/{}?api-version={}",
        arm.base_url(),
        ws.arm_id(INSIGHTS_PROVIDER, "workspaces"),
        op.purge_id,
        arm.api_version
    );
    let mut response = answer(StatusCode::ACCEPTED, json!({ "operationId": op.purge_id }));
    let value = HeaderValue::from_str(&location).map_err(|_| {
        RestError::new(
            500,
            "InternalServerError",
            "status location is not a header",
        )
    })?;
    response.headers_mut().insert("x-ms-status-location", value);
    Ok(response)
}

/// `GET .../operations/{purgeId}`.
pub async fn purge_status(arm: &Arm, ws: &ResourceId, purge_id: &str) -> RestResult<Response> {
    arm.caller()?;
    let op = client(arm)
        .get_purge_status(stp::PurgeStatusRequest {
            workspace: Some(workspace_ref(ws)),
            purge_id: purge_id.to_string(),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, json!({ "status": op.status })))
}

/// `DELETE .../tables/{table}`.
pub async fn delete_table(arm: &Arm, ws: &ResourceId, table: &str) -> RestResult<Response> {
    arm.caller()?;
    client(arm)
        .delete_table(stp::DeleteTableRequest {
            workspace: Some(workspace_ref(ws)),
            table: table.to_string(),
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// The table resource as ARM answers it, with the retention in force.
fn table_json(ws: &ResourceId, r: &stp::TableRetention) -> Value {
    json!({
        "id": format!("{}/tables/{}", ws.arm_id(INSIGHTS_PROVIDER, "workspaces"), r.table),
        "name": r.table,
        "type": "Microsoft.OperationalInsights/workspaces/tables",
        "properties": {
            "retentionInDays": r.retention_in_days,
            "totalRetentionInDays": r.retention_in_days,
            "archiveRetentionInDays": 0,
            "retentionInDaysAsDefault": r.as_default,
            "totalRetentionInDaysAsDefault": true,
            "plan": "Analytics",
            "provisioningState": "Succeeded"
        }
    })
}

/// `PUT|PATCH .../tables/{table}`: sets (or, with `-1`, clears) the table's own retention.
pub async fn put_table(
    arm: &Arm,
    method: &str,
    ws: &ResourceId,
    table: &str,
    body: &Body,
) -> RestResult<Response> {
    arm.caller()?;
    for unsupported in ["schema", "plan", "searchResults", "restoredLogs"] {
        let given = body.get(&["properties", unsupported]);
        let harmless = match (unsupported, given) {
            (_, None | Some(Value::Null)) => true,
            ("plan", Some(Value::String(p))) => p.eq_ignore_ascii_case("Analytics"),
            _ => false,
        };
        if !harmless {
            return Err(RestError::bad_request(
                "InvalidParameter",
                format!(
                    "cmksim keeps only properties.retentionInDays of a table; properties.{unsupported} is not supported (simulator's message)."
                ),
            ));
        }
    }
    let days = match body.get(&["properties", "retentionInDays"]) {
        None | Some(Value::Null) if method == "PATCH" => {
            // Nothing to change: answer the table as it is.
            return get_table(arm, ws, table).await;
        }
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(-1) => None,
            Some(d) if (1..=i64::from(u32::MAX)).contains(&d) => Some(d as u32),
            _ => {
                return Err(RestError::bad_request(
                    "InvalidParameter",
                    format!(
                        "properties.retentionInDays must be a number of days or -1, got {}.",
                        crate::error::echo(&v.to_string())
                    ),
                ))
            }
        },
    };
    let total = body.get(&["properties", "totalRetentionInDays"]);
    if let Some(t) = total.and_then(Value::as_i64) {
        if t != -1 && Some(t) != days.map(i64::from) {
            return Err(RestError::bad_request(
                "InvalidParameter",
                "cmksim has no long-term (archive) retention: properties.totalRetentionInDays must equal retentionInDays or be -1 (simulator's message).",
            ));
        }
    }
    let retention = client(arm)
        .set_table_retention(stp::SetTableRetentionRequest {
            workspace: Some(workspace_ref(ws)),
            table: table.to_string(),
            retention_in_days: days,
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, table_json(ws, &retention)))
}

/// `GET .../tables/{table}`: the table's retention in force.
pub async fn get_table(arm: &Arm, ws: &ResourceId, table: &str) -> RestResult<Response> {
    arm.caller()?;
    let retention = client(arm)
        .get_table_retention(stp::GetTableRequest {
            workspace: Some(workspace_ref(ws)),
            table: table.to_string(),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, table_json(ws, &retention)))
}

fn lock_json(ws: &ResourceId, lock: &stp::WorkspaceLock) -> Value {
    json!({
        "id": format!("{}/providers/Microsoft.Authorization/locks/{}", ws.arm_id(INSIGHTS_PROVIDER, "workspaces"), lock.name),
        "name": lock.name,
        "type": "Microsoft.Authorization/locks",
        "properties": { "level": lock.level, "notes": "" }
    })
}

/// `PUT|GET|DELETE .../providers/Microsoft.Authorization/locks/{name}`.
pub async fn lock(
    arm: &Arm,
    method: &str,
    ws: &ResourceId,
    name: &str,
    body: Option<&Body>,
) -> RestResult<Response> {
    arm.caller()?;
    let request = stp::LockRequest {
        workspace: Some(workspace_ref(ws)),
        lock_name: name.to_string(),
    };
    match method {
        "PUT" => {
            let level = body
                .map(|b| b.string(&["properties", "level"]))
                .transpose()?
                .flatten()
                .unwrap_or_default();
            if !level.eq_ignore_ascii_case("CanNotDelete") {
                return Err(RestError::bad_request(
                    "InvalidLockLevel",
                    "cmksim places only CanNotDelete locks on a workspace (properties.level) (simulator's message).",
                ));
            }
            let lock = client(arm).put_lock(request).await?.into_inner();
            Ok(answer(StatusCode::OK, lock_json(ws, &lock)))
        }
        "DELETE" => {
            let held = client(arm).get_lock(workspace_ref(ws)).await?.into_inner();
            if !held.exists || !held.name.eq_ignore_ascii_case(name) {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            client(arm).delete_lock(request).await?;
            Ok(StatusCode::OK.into_response())
        }
        _ => {
            let held = client(arm).get_lock(workspace_ref(ws)).await?.into_inner();
            if !held.exists || !held.name.eq_ignore_ascii_case(name) {
                return Err(RestError::new(
                    404,
                    "LockNotFound",
                    format!(
                        "The lock '{}' could not be found.",
                        crate::error::echo(name)
                    ),
                ));
            }
            Ok(answer(StatusCode::OK, lock_json(ws, &held)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ArmPath;

    const WS: &str = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/ws1";

    #[test]
    fn lifecycle_paths_parse_as_the_sdk_and_arm_spell_them() {
        let ws = |p: ArmPath| match p {
            ArmPath::WorkspacePurge(w) => (w.name, String::new()),
            ArmPath::PurgeStatus { workspace, id } => (workspace.name, id),
            ArmPath::Table { workspace, table } => (workspace.name, table),
            ArmPath::WorkspaceLock { workspace, name } => (workspace.name, name),
            other => panic!("unexpected {other:?}"),
        };
        let parse = |tail: &str| ArmPath::parse(&format!("{WS}{tail}")).map(ws);
        assert_eq!(parse("/purge"), Some(("ws1".into(), String::new())));
        assert_eq!(parse("/operations/abc"), Some(("ws1".into(), "abc".into())));
        assert_eq!(parse("/tables/T_CL"), Some(("ws1".into(), "T_CL".into())));
        assert_eq!(
            parse("/providers/microsoft.authorization/locks/no-delete"),
            Some(("ws1".into(), "no-delete".into()))
        );
        assert_eq!(parse("/providers/Microsoft.Other/locks/x"), None);
    }
}
