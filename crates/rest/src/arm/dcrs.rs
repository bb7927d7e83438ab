//! `Microsoft.Insights/dataCollectionRules` over the door's own rule store
//! ([`crate::monitor::dcr`]): `PUT` checks the rule (its destinations must be workspaces storage
//! knows) and keeps it, keeping the `immutableId` of an earlier version; `GET`, `DELETE` and the
//! lists answer from the store.

use axum::http::StatusCode;
use axum::response::Response;
use cmksim_proto::storage::v1 as stp;
use serde_json::{json, Value};

use super::{answer, resource_not_found, Arm, ArmPath, Body, ResourceId};
use crate::error::{echo, RestError, RestResult};
use crate::monitor::dcr::{immutable_id, Dcr};

/// The provider of data collection rules.
pub const MONITOR_PROVIDER: &str = "Microsoft.Insights";
/// The resource type segment.
pub const DCR_TYPE: &str = "dataCollectionRules";

fn arm_id(id: &ResourceId) -> String {
    id.arm_id(MONITOR_PROVIDER, DCR_TYPE)
}

/// `PUT`: create or replace (200 for both, as ARM answers rules).
pub async fn put(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    let resource = arm_id(id);
    let kept = arm.state.dcrs.get(&resource);
    let immutable = kept
        .as_ref()
        .map(|d| d.immutable_id.clone())
        .unwrap_or_else(|| immutable_id(arm.state.seed, &resource));
    let dcr = Dcr::from_arm(&resource, &id.name, body.value(), immutable)?;
    for destination in &dcr.destinations {
        check_workspace(arm, &destination.workspace_resource_id).await?;
    }
    arm.state.dcrs.put(dcr.clone())?;
    Ok(answer(StatusCode::OK, dcr.to_arm(&arm.base_url())))
}

/// The workspace a destination names must exist in storage.
async fn check_workspace(arm: &Arm, workspace_resource_id: &str) -> RestResult<()> {
    let refused = || {
        RestError::bad_request(
            "InvalidPayload",
            format!(
                "Destination workspace '{}' does not exist or is not a Log Analytics workspace \
                 resource id.",
                echo(workspace_resource_id)
            ),
        )
    };
    let Some(ArmPath::Workspace(ws)) = ArmPath::parse(workspace_resource_id) else {
        return Err(refused());
    };
    let mut client = stp::workspaces_client::WorkspacesClient::new(arm.storage());
    let found = client
        .get_workspace(stp::WorkspaceRef {
            subscription_id: ws.subscription,
            resource_group: ws.resource_group,
            workspace_name: ws.name,
        })
        .await;
    match found {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::NotFound => Err(refused()),
        Err(status) => Err(status.into()),
    }
}

pub async fn get(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let dcr = arm
        .state
        .dcrs
        .get(&arm_id(id))
        .ok_or_else(|| not_found(id))?;
    Ok(answer(StatusCode::OK, dcr.to_arm(&arm.base_url())))
}

fn not_found(id: &ResourceId) -> RestError {
    resource_not_found(
        &format!("{MONITOR_PROVIDER}/{DCR_TYPE}"),
        &id.name,
        &id.resource_group,
    )
}

/// `DELETE`: 200 when there was a rule, 204 when there was none (ARM's answers).
pub async fn delete(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let status = match arm.state.dcrs.delete(&arm_id(id))? {
        true => StatusCode::OK,
        false => StatusCode::NO_CONTENT,
    };
    Ok(axum::response::IntoResponse::into_response(status))
}

pub async fn list(
    arm: &Arm,
    subscription: &str,
    resource_group: Option<&str>,
) -> RestResult<Response> {
    arm.caller()?;
    let prefix = match resource_group {
        Some(rg) => format!("/subscriptions/{subscription}/resourceGroups/{rg}/"),
        None => format!("/subscriptions/{subscription}/"),
    };
    let base = arm.base_url();
    let value: Vec<Value> = arm
        .state
        .dcrs
        .list(&prefix)
        .iter()
        .filter(|d| {
            d.id.to_ascii_lowercase()
                .contains("/providers/microsoft.insights/")
        })
        .map(|d| d.to_arm(&base))
        .collect();
    Ok(answer(StatusCode::OK, json!({ "value": value })))
}
