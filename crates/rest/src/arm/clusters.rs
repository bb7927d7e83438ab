//! `Microsoft.OperationalInsights/clusters` (seeds 000 and 001, SPEC §4) over `storage.v1.Clusters`.
//!
//! - `PUT` of a cluster that does not exist is `CreateCluster`; of one that exists it is
//!   `UpdateCluster`, like `PATCH` (ARM's PUT is create-or-update; the SDK's
//!   `begin_create_or_update` with `keyVaultProperties` is the key update).
//! - `GET`, `DELETE` (soft delete), and the lists by resource group and subscription.
//!
//! Storage checks no token: the door verifies the ARM token and gives the caller's tenant as the
//! tenant of the cluster's managed identity. Every rule of the seeds' lists (name, SKU, capacity,
//! identity, keyVaultProperties at creation, states) is storage's, answered with the seeds' exact
//! messages; the door passes each field as the client sent it, empty when absent, so that storage
//! sees what is missing. The only rewriting is `keyVaultUri` ([`normalise_key_vault_uri`]): a
//! vault reached through the door as `https://{vault}.localhost:PORT` is the vault
//! `https://{vault}.vault.azure.net` to storage.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use cmksim_proto::storage::v1 as stp;
use cmksim_sim::SimTime;
use serde_json::{json, Map, Value};

use super::operations::accepted;
use super::{answer, Arm, ArmPath, Body, ResourceId};
use crate::error::RestResult;

/// How many associated workspaces of one cluster are looked up for their `workspaceId`
/// (customer id); beyond this the entries carry only their name and resource id.
pub const ASSOCIATED_LOOKUPS_MAX: usize = 100;

fn client(arm: &Arm) -> stp::clusters_client::ClustersClient<cmksim_identity::AuthChannel> {
    stp::clusters_client::ClustersClient::new(arm.storage())
}

fn cluster_ref(id: &ResourceId) -> stp::ClusterRef {
    stp::ClusterRef {
        subscription_id: id.subscription.clone(),
        resource_group: id.resource_group.clone(),
        cluster_name: id.name.clone(),
    }
}

/// `keyVaultUri` as storage knows vaults: `https://{vault}.vault.azure.net[/]` and
/// `https://{vault}.localhost[:PORT][/]` (the door's own address for a vault) become
/// `https://{vault}.vault.azure.net`. Anything else is passed unchanged, for storage to accept or
/// refuse with the seeds' "KeyVaultProperties is not empty but has a bad format".
pub fn normalise_key_vault_uri(uri: &str) -> String {
    let unchanged = || uri.to_string();
    let trimmed = uri.trim();
    let Some(scheme) = trimmed.get(..8) else {
        return unchanged();
    };
    if !scheme.eq_ignore_ascii_case("https://") {
        return unchanged();
    }
    let host = trimmed[8..].trim_end_matches('/');
    if host.contains('/') || host.contains('?') || host.contains('#') {
        return unchanged();
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
    .to_ascii_lowercase();
    if !(name.ends_with(".vault.azure.net") || name.ends_with(".localhost")) {
        return unchanged();
    }
    match crate::keyvault::vault_of_host(host) {
        Some(vault) => format!("https://{vault}.vault.azure.net"),
        None => unchanged(),
    }
}

/// `properties.keyVaultProperties`, when the body has it.
fn key_vault_properties(body: &Body) -> RestResult<Option<stp::KeyVaultProperties>> {
    const AT: [&str; 2] = ["properties", "keyVaultProperties"];
    if !body.has(&AT) {
        return Ok(None);
    }
    let field = |name: &str| body.string(&[AT[0], AT[1], name]);
    Ok(Some(stp::KeyVaultProperties {
        key_vault_uri: normalise_key_vault_uri(&field("keyVaultUri")?.unwrap_or_default()),
        key_name: field("keyName")?.unwrap_or_default(),
        key_version: field("keyVersion")?.unwrap_or_default(),
    }))
}

/// The `CreateCluster` request of a PUT body, every field as sent (empty when absent).
pub fn create_request(
    id: &ResourceId,
    body: &Body,
    tenant_id: &str,
) -> RestResult<stp::CreateClusterRequest> {
    let sku = if body.has(&["sku"]) {
        Some(stp::Sku {
            name: body.string(&["sku", "name"])?.unwrap_or_default(),
            capacity_gb_per_day: body.u32(&["sku", "capacity"])?.unwrap_or(0),
        })
    } else {
        None
    };
    Ok(stp::CreateClusterRequest {
        cluster: Some(cluster_ref(id)),
        location: body.string(&["location"])?.unwrap_or_default(),
        tenant_id: tenant_id.to_string(),
        sku,
        billing_type: body
            .string(&["properties", "billingType"])?
            .unwrap_or_default(),
        identity_type: body.string(&["identity", "type"])?.unwrap_or_default(),
        key_vault_properties: key_vault_properties(body)?,
        is_double_encryption_enabled: body.bool(&["properties", "isDoubleEncryptionEnabled"])?,
        tags: body.tags()?,
    })
}

/// The `UpdateCluster` request of a PATCH (or a PUT on an existing cluster): capacity,
/// billing type, key vault properties, tags.
pub fn update_request(id: &ResourceId, body: &Body) -> RestResult<stp::UpdateClusterRequest> {
    Ok(stp::UpdateClusterRequest {
        cluster: Some(cluster_ref(id)),
        capacity_gb_per_day: body.u32(&["sku", "capacity"])?,
        billing_type: body.string(&["properties", "billingType"])?,
        key_vault_properties: key_vault_properties(body)?,
        tags: body.tags()?,
        // Storage refuses a change (seed 001: fixed at creation); the door only forwards it.
        is_double_encryption_enabled: body.bool(&["properties", "isDoubleEncryptionEnabled"])?,
    })
}

/// One entry of `associatedWorkspaces`; `customer_id` when it could be looked up.
pub fn associated_workspace(resource_id: &str, customer_id: Option<&str>) -> Value {
    let name = resource_id.rsplit('/').next().unwrap_or_default();
    let mut entry = json!({"workspaceName": name, "resourceId": resource_id});
    if let Some(customer_id) = customer_id {
        entry["workspaceId"] = json!(customer_id);
    }
    entry
}

/// The cluster as ARM answers it (seed 000's GET, with the SDK model's property names).
pub fn cluster_json(cluster: &stp::Cluster, associated: Vec<Value>) -> Value {
    let identity = cluster.identity.clone().unwrap_or_default();
    let sku = cluster.sku.clone().unwrap_or_default();
    let mut properties = Map::new();
    properties.insert("clusterId".into(), json!(cluster.cluster_id));
    properties.insert(
        "provisioningState".into(),
        json!(cluster.provisioning_state),
    );
    properties.insert("billingType".into(), json!(cluster.billing_type));
    properties.insert(
        "isDoubleEncryptionEnabled".into(),
        json!(cluster.is_double_encryption_enabled),
    );
    if let Some(k) = &cluster.key_vault_properties {
        properties.insert(
            "keyVaultProperties".into(),
            json!({"keyVaultUri": k.key_vault_uri, "keyName": k.key_name, "keyVersion": k.key_version}),
        );
    }
    properties.insert("associatedWorkspaces".into(), Value::Array(associated));
    properties.insert(
        "createdDate".into(),
        json!(SimTime(cluster.created_unix_ms).to_rfc3339()),
    );
    json!({
        "id": cluster.id,
        "name": cluster.name,
        "type": "Microsoft.OperationalInsights/clusters",
        "location": cluster.location,
        "tags": cluster.tags.iter().collect::<BTreeMap<_, _>>(),
        "identity": {
            "type": identity.r#type,
            "principalId": identity.principal_id,
            "tenantId": identity.tenant_id,
        },
        "sku": {"name": sku.name, "capacity": sku.capacity_gb_per_day},
        "properties": properties,
    })
}

/// The cluster's JSON with its associated workspaces' customer ids looked up (bounded).
async fn cluster_answer(arm: &Arm, cluster: &stp::Cluster) -> Value {
    let mut workspaces = stp::workspaces_client::WorkspacesClient::new(arm.storage());
    let mut associated = Vec::with_capacity(cluster.associated_workspaces.len());
    for (index, resource_id) in cluster.associated_workspaces.iter().enumerate() {
        let mut customer_id = None;
        if index < ASSOCIATED_LOOKUPS_MAX {
            if let Some(ArmPath::Workspace(w)) = ArmPath::parse(resource_id) {
                let reference = stp::WorkspaceRef {
                    subscription_id: w.subscription,
                    resource_group: w.resource_group,
                    workspace_name: w.name,
                };
                // A workspace gone between the two reads is listed without its customer id.
                if let Ok(ws) = workspaces.get_workspace(reference).await {
                    customer_id = Some(ws.into_inner().customer_id);
                }
            }
        }
        associated.push(associated_workspace(resource_id, customer_id.as_deref()));
    }
    cluster_json(cluster, associated)
}

/// Answers a `ClusterOperation`: the cluster, and the operation's headers when it is running.
async fn operation_answer(
    arm: &Arm,
    id: &ResourceId,
    op: stp::ClusterOperation,
) -> RestResult<Response> {
    let cluster = op.cluster.unwrap_or_default();
    let body = cluster_answer(arm, &cluster).await;
    accepted(
        arm,
        &id.subscription,
        &cluster.location,
        &op.operation_id,
        Some(body),
    )
    .await
}

/// `PUT`: create, or update an existing cluster.
pub async fn put(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    let caller = arm.caller()?;
    let mut clusters = client(arm);
    match clusters.get_cluster(cluster_ref(id)).await {
        Ok(_) => return update(arm, id, body).await,
        Err(status) if status.code() == tonic::Code::NotFound => {}
        Err(status) => return Err(status.into()),
    }
    let request = create_request(id, body, &caller.tenant_id)?;
    let op = clusters.create_cluster(request).await?.into_inner();
    operation_answer(arm, id, op).await
}

/// `PATCH`: capacity, billing type, key update, tags.
pub async fn patch(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    arm.caller()?;
    update(arm, id, body).await
}

async fn update(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    let request = update_request(id, body)?;
    let op = client(arm).update_cluster(request).await?.into_inner();
    operation_answer(arm, id, op).await
}

/// `GET`.
pub async fn get(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let cluster = client(arm).get_cluster(cluster_ref(id)).await?.into_inner();
    Ok(answer(StatusCode::OK, cluster_answer(arm, &cluster).await))
}

/// `DELETE`: soft delete; asynchronous while linked workspaces are unlinked.
pub async fn delete(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let op = client(arm)
        .delete_cluster(cluster_ref(id))
        .await?
        .into_inner();
    let location = op
        .cluster
        .as_ref()
        .map(|c| c.location.clone())
        .unwrap_or_default();
    accepted(arm, &id.subscription, &location, &op.operation_id, None).await
}

/// `GET .../clusters` of a resource group or a subscription: `{"value": [...]}`.
pub async fn list(
    arm: &Arm,
    subscription: &str,
    resource_group: Option<&str>,
) -> RestResult<Response> {
    arm.caller()?;
    let mut clusters = client(arm);
    let list = match resource_group {
        Some(rg) => clusters
            .list_clusters_by_resource_group(stp::ListClustersByResourceGroupRequest {
                subscription_id: subscription.to_string(),
                resource_group: rg.to_string(),
            })
            .await?
            .into_inner(),
        None => clusters
            .list_clusters_by_subscription(stp::ListClustersBySubscriptionRequest {
                subscription_id: subscription.to_string(),
            })
            .await?
            .into_inner(),
    };
    let mut value = Vec::with_capacity(list.clusters.len());
    for cluster in &list.clusters {
        value.push(cluster_answer(arm, cluster).await);
    }
    Ok(answer(StatusCode::OK, json!({ "value": value })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ResourceId {
        ResourceId {
            subscription: "s".into(),
            resource_group: "rg".into(),
            name: "c1".into(),
        }
    }

    #[test]
    fn key_vault_uris_of_the_door_and_of_azure_name_the_same_vault() {
        for uri in [
            "https://contoso-kv.vault.azure.net",
            "https://contoso-kv.vault.azure.net/",
            "https://contoso-kv.localhost:8443",
            "https://contoso-kv.localhost:8443/",
            "https://contoso-kv.localhost",
            "HTTPS://contoso-kv.VAULT.azure.net",
        ] {
            assert_eq!(
                normalise_key_vault_uri(uri),
                "https://contoso-kv.vault.azure.net",
                "{uri}"
            );
        }
        for uri in [
            "http://contoso-kv.vault.azure.net",
            "https://contoso-kv.vault.azure.net/keys/k/v",
            "https://contoso-kv.example.com",
            "https://127.0.0.1:8443",
            "https://localhost:8443",
            "contoso-kv",
            "",
        ] {
            assert_eq!(
                normalise_key_vault_uri(uri),
                uri,
                "left for storage to judge: {uri}"
            );
        }
    }

    #[test]
    fn a_create_body_passes_every_field_as_sent() {
        let body = Body::parse(
            br#"{"location":"westeurope","identity":{"type":"systemAssigned"},
                 "sku":{"name":"capacityReservation","Capacity":1000},
                 "properties":{"billingType":"cluster","isDoubleEncryptionEnabled":false},
                 "tags":{"team":"sec"}}"#,
        )
        .unwrap();
        let r = create_request(&id(), &body, "tenant-1").unwrap();
        assert_eq!(r.location, "westeurope");
        assert_eq!(r.tenant_id, "tenant-1");
        assert_eq!(r.identity_type, "systemAssigned");
        assert_eq!(
            r.sku,
            Some(stp::Sku {
                name: "capacityReservation".into(),
                capacity_gb_per_day: 1000
            })
        );
        assert_eq!(r.billing_type, "cluster");
        assert_eq!(r.is_double_encryption_enabled, Some(false));
        assert_eq!(r.key_vault_properties, None);
        assert_eq!(r.tags.get("team").map(String::as_str), Some("sec"));
        assert_eq!(r.cluster.unwrap().cluster_name, "c1");
    }

    #[test]
    fn what_is_missing_stays_missing_for_storage_to_name() {
        let r = create_request(&id(), &Body::parse(b"").unwrap(), "t").unwrap();
        assert_eq!(
            (r.location.as_str(), r.sku, r.identity_type.as_str()),
            ("", None, "")
        );
        let sdk = Body::parse(
            br#"{"location":"eastus","identity":{"type":"SystemAssigned"},"sku":{"name":"CapacityReservation"}}"#,
        )
        .unwrap();
        let r = create_request(&id(), &sdk, "t").unwrap();
        assert_eq!(
            r.sku.unwrap().capacity_gb_per_day,
            0,
            "no capacity: storage's 'Missing Capacity'"
        );
        assert_eq!(r.is_double_encryption_enabled, None);
    }

    #[test]
    fn an_update_carries_the_key_with_the_vault_normalised() {
        let body = Body::parse(
            br#"{"properties":{"keyVaultProperties":{"keyVaultUri":"https://kv1.localhost:8443/",
                 "keyName":"k","keyVersion":""}}}"#,
        )
        .unwrap();
        let r = update_request(&id(), &body).unwrap();
        assert_eq!(
            r.key_vault_properties,
            Some(stp::KeyVaultProperties {
                key_vault_uri: "https://kv1.vault.azure.net".into(),
                key_name: "k".into(),
                key_version: String::new(),
            })
        );
        assert_eq!((r.capacity_gb_per_day, r.billing_type), (None, None));
        let capacity = update_request(
            &id(),
            &Body::parse(br#"{"sku":{"capacity":1100}}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(capacity.capacity_gb_per_day, Some(1100));
        assert_eq!(capacity.key_vault_properties, None);
    }

    #[test]
    fn cluster_json_has_the_sdk_models_names() {
        let cluster = stp::Cluster {
            id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1".into(),
            name: "c1".into(),
            location: "westeurope".into(),
            cluster_id: "cid".into(),
            provisioning_state: "ProvisioningAccount".into(),
            sku: Some(stp::Sku {
                name: "CapacityReservation".into(),
                capacity_gb_per_day: 1000,
            }),
            billing_type: "Cluster".into(),
            identity: Some(stp::ClusterIdentity {
                r#type: "SystemAssigned".into(),
                principal_id: "p".into(),
                tenant_id: "t".into(),
            }),
            key_vault_properties: Some(stp::KeyVaultProperties {
                key_vault_uri: "https://kv.vault.azure.net".into(),
                key_name: "k".into(),
                key_version: "v1".into(),
            }),
            is_double_encryption_enabled: true,
            associated_workspaces: vec![],
            tags: Default::default(),
            created_unix_ms: 1_593_927_384_900,
            deleted_unix_ms: None,
            purge_unix_ms: None,
        };
        let ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws1";
        let json = cluster_json(&cluster, vec![associated_workspace(ws, Some("guid"))]);
        assert_eq!(json["type"], "Microsoft.OperationalInsights/clusters");
        assert_eq!(
            json["identity"],
            json!({"type": "SystemAssigned", "principalId": "p", "tenantId": "t"})
        );
        assert_eq!(
            json["sku"],
            json!({"name": "CapacityReservation", "capacity": 1000})
        );
        let p = &json["properties"];
        assert_eq!(p["clusterId"], "cid");
        assert_eq!(p["provisioningState"], "ProvisioningAccount");
        assert_eq!(p["billingType"], "Cluster");
        assert_eq!(p["isDoubleEncryptionEnabled"], true);
        assert_eq!(
            p["keyVaultProperties"],
            json!({"keyVaultUri": "https://kv.vault.azure.net", "keyName": "k", "keyVersion": "v1"})
        );
        assert_eq!(
            p["associatedWorkspaces"],
            json!([{"workspaceId": "guid", "workspaceName": "ws1", "resourceId": ws}])
        );
        assert_eq!(p["createdDate"], "2020-07-05T05:36:24.900Z");
        let bare = cluster_json(
            &stp::Cluster {
                key_vault_properties: None,
                ..cluster
            },
            vec![],
        );
        assert!(bare["properties"].get("keyVaultProperties").is_none());
    }
}
