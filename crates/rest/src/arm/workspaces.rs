//! `Microsoft.OperationalInsights/workspaces` and their `linkedServices/cluster` (seeds 000 and
//! 001, "Workspace association" / "Link workspace") over `storage.v1.Workspaces`.
//!
//! - Workspace `PUT` creates (`CreateWorkspace`) or, on an existing workspace, changes its
//!   retention (`UpdateRetention`), like `PATCH`; `GET` answers `customerId` (storage's stable
//!   GUID) and `features.clusterResourceId` once linked, as seed 000's GET shows.
//! - Workspace `DELETE` is refused (405): `storage.v1.Workspaces` has no delete.
//! - Linked service `PUT` with `properties.writeAccessResourceId` (the cluster's id) is
//!   `LinkWorkspace`, `DELETE` is `UnlinkWorkspace`, both asynchronous (up to 90 minutes); `GET`
//!   answers the link as a linked service whose `provisioningState` is `Updating` while linking,
//!   `Succeeded` once linked, `Deleting` while unlinking.
//!
//! Storage checks no token: the door verifies the ARM token. The link rules (same region, one
//! cluster, two links in 30 days, provisioning first, a malformed or unknown cluster id) are
//! storage's, with the seeds' messages.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use cmksim_proto::storage::v1 as stp;
use serde_json::{json, Value};

use super::operations::accepted;
use super::{answer, resource_not_found, Arm, ArmPath, Body, ResourceId, INSIGHTS_PROVIDER};
use crate::error::{echo, RestError, RestResult};

/// The only linked service the door serves (the one that links a workspace to a cluster).
pub const LINKED_SERVICE_CLUSTER: &str = "cluster";

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

/// The workspace as ARM answers it (seed 000's GET).
pub fn workspace_json(ws: &stp::Workspace) -> Value {
    let mut features = json!({});
    if !ws.cluster_resource_id.is_empty() {
        features["clusterResourceId"] = json!(ws.cluster_resource_id);
    }
    json!({
        "id": ws.id,
        "name": ws.name,
        "type": "Microsoft.OperationalInsights/workspaces",
        "location": ws.location,
        "tags": BTreeMap::<String, String>::new(),
        "properties": {
            "provisioningState": "Succeeded",
            "customerId": ws.customer_id,
            "retentionInDays": ws.retention_in_days,
            "features": features,
        },
    })
}

/// The linked service's `provisioningState` for storage's link state; `None` when the workspace
/// is not linked (no linked service exists).
pub fn link_provisioning_state(link_state: &str) -> Option<&'static str> {
    match link_state {
        "Linking" => Some("Updating"),
        "Linked" => Some("Succeeded"),
        "Unlinking" => Some("Deleting"),
        _ => None,
    }
}

/// The linked service of `ws`. `write_access_resource_id` is the cluster the client asked for,
/// shown while the link is in progress (storage names the cluster only once linked).
pub fn linked_service_json(
    ws: &stp::Workspace,
    state: &str,
    write_access_resource_id: &str,
) -> Value {
    let cluster = if ws.cluster_resource_id.is_empty() {
        write_access_resource_id
    } else {
        &ws.cluster_resource_id
    };
    let mut properties = json!({ "provisioningState": state });
    if !cluster.is_empty() {
        properties["writeAccessResourceId"] = json!(cluster);
    }
    json!({
        "id": format!("{}/linkedServices/{LINKED_SERVICE_CLUSTER}", ws.id),
        "name": LINKED_SERVICE_CLUSTER,
        "type": "Microsoft.OperationalInsights/workspaces/linkedServices",
        "properties": properties,
    })
}

/// The `ClusterRef` a `writeAccessResourceId` names. An id the door cannot read is passed as a
/// name with no scope, which storage refuses with the seeds' "bad format" message: whether an id
/// is acceptable is storage's decision, not a second copy of it here.
pub fn cluster_of(write_access_resource_id: &str) -> stp::ClusterRef {
    match ArmPath::parse(write_access_resource_id) {
        Some(ArmPath::Cluster(c)) => stp::ClusterRef {
            subscription_id: c.subscription,
            resource_group: c.resource_group,
            cluster_name: c.name,
        },
        _ => stp::ClusterRef {
            subscription_id: String::new(),
            resource_group: String::new(),
            cluster_name: write_access_resource_id.to_string(),
        },
    }
}

/// `PUT`: create, or change the retention of an existing workspace.
pub async fn put(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    let retention = body.u32(&["properties", "retentionInDays"])?;
    let mut workspaces = client(arm);
    match workspaces.get_workspace(workspace_ref(id)).await {
        Ok(existing) => {
            let ws = existing.into_inner();
            let ws = match retention.filter(|days| *days != ws.retention_in_days) {
                Some(days) => update_retention(arm, id, days).await?,
                None => ws,
            };
            return Ok(answer(StatusCode::OK, workspace_json(&ws)));
        }
        Err(status) if status.code() == tonic::Code::NotFound => {}
        Err(status) => return Err(status.into()),
    }
    let ws = workspaces
        .create_workspace(stp::CreateWorkspaceRequest {
            workspace: Some(workspace_ref(id)),
            location: body.string(&["location"])?.unwrap_or_default(),
            retention_in_days: retention.unwrap_or(0),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::CREATED, workspace_json(&ws)))
}

async fn update_retention(arm: &Arm, id: &ResourceId, days: u32) -> RestResult<stp::Workspace> {
    Ok(client(arm)
        .update_retention(stp::UpdateRetentionRequest {
            workspace: Some(workspace_ref(id)),
            retention_in_days: days,
        })
        .await?
        .into_inner())
}

/// `PATCH`: retention.
pub async fn patch(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    let ws = match body.u32(&["properties", "retentionInDays"])? {
        Some(days) => update_retention(arm, id, days).await?,
        None => client(arm)
            .get_workspace(workspace_ref(id))
            .await?
            .into_inner(),
    };
    Ok(answer(StatusCode::OK, workspace_json(&ws)))
}

/// `GET`.
pub async fn get(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let ws = client(arm)
        .get_workspace(workspace_ref(id))
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, workspace_json(&ws)))
}

/// `DELETE`: refused, storage keeps workspaces for good.
pub async fn delete(arm: &Arm, _id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    Err(RestError::new(
        405,
        "OperationNotSupported",
        "cmksim does not delete workspaces (storage.v1.Workspaces has no delete); unlink the \
         workspace from its cluster with DELETE .../linkedServices/cluster instead (simulator's \
         message).",
    ))
}

fn only_cluster_links(name: &str) -> RestResult<()> {
    if name.eq_ignore_ascii_case(LINKED_SERVICE_CLUSTER) {
        return Ok(());
    }
    Err(RestError::bad_request(
        "InvalidParameter",
        format!(
            "cmksim serves only the linked service 'cluster' (a workspace's link to a dedicated \
             cluster), not '{}' (simulator's message).",
            echo(name)
        ),
    ))
}

/// `PUT .../linkedServices/cluster`: link the workspace to `properties.writeAccessResourceId`.
pub async fn link(arm: &Arm, id: &ResourceId, name: &str, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    only_cluster_links(name)?;
    let target = body
        .string(&["properties", "writeAccessResourceId"])?
        .unwrap_or_default();
    let op = client(arm)
        .link_workspace(stp::LinkWorkspaceRequest {
            workspace: Some(workspace_ref(id)),
            cluster: Some(cluster_of(&target)),
        })
        .await?
        .into_inner();
    let ws = op.workspace.unwrap_or_default();
    let state = link_provisioning_state(&ws.link_state).unwrap_or("Succeeded");
    let body = linked_service_json(&ws, state, &target);
    accepted(
        arm,
        &id.subscription,
        &ws.location,
        &op.operation_id,
        Some(body),
    )
    .await
}

/// `GET .../linkedServices/cluster`.
pub async fn get_link(arm: &Arm, id: &ResourceId, name: &str) -> RestResult<Response> {
    arm.caller()?;
    only_cluster_links(name)?;
    let ws = client(arm)
        .get_workspace(workspace_ref(id))
        .await?
        .into_inner();
    let Some(state) = link_provisioning_state(&ws.link_state) else {
        return Err(resource_not_found(
            &format!("{INSIGHTS_PROVIDER}/workspaces/{}/linkedServices", id.name),
            LINKED_SERVICE_CLUSTER,
            &id.resource_group,
        ));
    };
    Ok(answer(StatusCode::OK, linked_service_json(&ws, state, "")))
}

/// `DELETE .../linkedServices/cluster`: unlink. The answer carries the linked service (the SDK's
/// `begin_delete` reads a body when it finishes without polling).
pub async fn unlink(arm: &Arm, id: &ResourceId, name: &str) -> RestResult<Response> {
    arm.caller()?;
    only_cluster_links(name)?;
    let op = client(arm)
        .unlink_workspace(workspace_ref(id))
        .await?
        .into_inner();
    let ws = op.workspace.unwrap_or_default();
    let state = link_provisioning_state(&ws.link_state).unwrap_or("Succeeded");
    let body = linked_service_json(&ws, state, "");
    accepted(
        arm,
        &id.subscription,
        &ws.location,
        &op.operation_id,
        Some(body),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1";

    fn ws(link_state: &str, cluster: &str) -> stp::Workspace {
        stp::Workspace {
            id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws1".into(),
            name: "ws1".into(),
            location: "westeurope".into(),
            customer_id: "0a1b2c3d-0000-4000-8000-000000000001".into(),
            retention_in_days: 31,
            locked: false,
            cluster_resource_id: cluster.into(),
            link_state: link_state.into(),
        }
    }

    #[test]
    fn workspace_json_shows_the_cluster_only_once_linked() {
        let linked = workspace_json(&ws("Linked", CLUSTER));
        assert_eq!(linked["type"], "Microsoft.OperationalInsights/workspaces");
        assert_eq!(
            linked["properties"]["customerId"],
            "0a1b2c3d-0000-4000-8000-000000000001"
        );
        assert_eq!(linked["properties"]["retentionInDays"], 31);
        assert_eq!(linked["properties"]["provisioningState"], "Succeeded");
        assert_eq!(
            linked["properties"]["features"]["clusterResourceId"],
            CLUSTER
        );
        let alone = workspace_json(&ws("None", ""));
        assert!(alone["properties"]["features"]
            .get("clusterResourceId")
            .is_none());
    }

    #[test]
    fn the_link_state_is_the_linked_services_provisioning_state() {
        assert_eq!(link_provisioning_state("Linking"), Some("Updating"));
        assert_eq!(link_provisioning_state("Linked"), Some("Succeeded"));
        assert_eq!(link_provisioning_state("Unlinking"), Some("Deleting"));
        assert_eq!(link_provisioning_state("None"), None);
        let linking = linked_service_json(&ws("Linking", ""), "Updating", CLUSTER);
        assert_eq!(linking["name"], "cluster");
        assert_eq!(linking["properties"]["writeAccessResourceId"], CLUSTER);
        assert!(linking["id"]
            .as_str()
            .unwrap()
            .ends_with("/workspaces/ws1/linkedServices/cluster"));
        let unknown = linked_service_json(&ws("Linking", ""), "Updating", "");
        assert!(unknown["properties"].get("writeAccessResourceId").is_none());
    }

    #[test]
    fn a_cluster_id_is_read_in_any_case_and_a_bad_one_goes_to_storage_as_is() {
        let lower = cluster_of(
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.operationalinsights/clusters/c1",
        );
        assert_eq!(
            (
                lower.subscription_id.as_str(),
                lower.resource_group.as_str(),
                lower.cluster_name.as_str()
            ),
            ("s", "rg", "c1")
        );
        let bad = cluster_of("not-an-id");
        assert_eq!(
            (
                bad.subscription_id.as_str(),
                bad.resource_group.as_str(),
                bad.cluster_name.as_str()
            ),
            ("", "", "not-an-id")
        );
        let workspace_id = cluster_of(&ws("None", "").id);
        assert_eq!(
            workspace_id.subscription_id, "",
            "a workspace id names no cluster"
        );
    }
}
