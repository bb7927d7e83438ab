//! ARM routes of queries in the customer's own storage (seed 000 "CMK for queries", BYOS),
//! translated to `storage.v1.Byos`:
//!
//! - `PUT|GET .../providers/Microsoft.Storage/storageAccounts/{name}`: a minimal storage account
//!   (location, a system-assigned identity in the caller's tenant, `properties.encryption` with
//!   `keySource` `Microsoft.Storage` or `Microsoft.Keyvault` and `keyvaultproperties`
//!   {`keyvaulturi`, `keyname`, `keyversion`}, the spelling of Microsoft.Storage's API);
//! - `PUT|GET|DELETE .../workspaces/{w}/linkedStorageAccounts/{Query|Alerts}` with
//!   `properties.storageAccountIds` (azure-mgmt-loganalytics `linked_storage_accounts`; its
//!   `delete` takes 200 only, so a DELETE of a type not linked answers 200 too);
//! - `PUT|GET .../workspaces/{w}/savedSearches/{id}` and `GET .../savedSearches` (its
//!   `saved_searches`: `{"properties": {"category", "displayName", "query"}}`; the list is one
//!   `{"value": [...]}`, not paged).
//!
//! Every rule (one account per type, same region, the key checks, sealing, readability) is
//! storage's; this module only reshapes requests and answers.

use axum::http::StatusCode;
use axum::response::Response;
use cmksim_proto::storage::v1 as stp;
use serde_json::{json, Value};

use super::{answer, Arm, Body, ResourceId, INSIGHTS_PROVIDER};
use crate::error::RestResult;

/// The provider and type of a storage account.
pub const STORAGE_PROVIDER: &str = "Microsoft.Storage";
pub const STORAGE_ACCOUNTS: &str = "storageAccounts";

fn client(arm: &Arm) -> stp::byos_client::ByosClient<cmksim_identity::AuthChannel> {
    stp::byos_client::ByosClient::new(arm.storage())
}

fn workspace_ref(id: &ResourceId) -> stp::WorkspaceRef {
    stp::WorkspaceRef {
        subscription_id: id.subscription.clone(),
        resource_group: id.resource_group.clone(),
        workspace_name: id.name.clone(),
    }
}

fn account_ref(id: &ResourceId) -> stp::StorageAccountRef {
    stp::StorageAccountRef {
        subscription_id: id.subscription.clone(),
        resource_group: id.resource_group.clone(),
        account_name: id.name.clone(),
    }
}

fn account_json(id: &ResourceId, a: &stp::StorageAccount) -> Value {
    let mut encryption =
        json!({ "keySource": a.key_source, "services": { "blob": { "enabled": true } } });
    if let Some(k) = &a.key_vault_properties {
        encryption["keyvaultproperties"] = json!({
            "keyvaulturi": k.key_vault_uri,
            "keyname": k.key_name,
            "keyversion": k.key_version,
        });
    }
    json!({
        "id": id.arm_id(STORAGE_PROVIDER, STORAGE_ACCOUNTS),
        "name": id.name,
        "type": format!("{STORAGE_PROVIDER}/{STORAGE_ACCOUNTS}"),
        "location": a.location,
        "kind": "StorageV2",
        "sku": { "name": "Standard_LRS", "tier": "Standard" },
        "identity": { "type": "SystemAssigned", "principalId": a.principal_id, "tenantId": a.tenant_id },
        "properties": {
            "provisioningState": "Succeeded",
            "encryption": encryption,
            // cmksim's own: whether the account's key could be unwrapped at its last check.
            "keyState": a.key_state,
        }
    })
}

/// `PUT .../storageAccounts/{name}`.
pub async fn put_account(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    let caller = arm.caller()?;
    let key_source = body
        .string(&["properties", "encryption", "keySource"])?
        .unwrap_or_default();
    let kvp = ["properties", "encryption", "keyvaultproperties"];
    let field = |name: &str| body.string(&[kvp[0], kvp[1], kvp[2], name]);
    let key_vault_properties = body.has(&kvp).then_some(()).map(|()| -> RestResult<_> {
        Ok(stp::KeyVaultProperties {
            key_vault_uri: field("keyvaulturi")?.unwrap_or_default(),
            key_name: field("keyname")?.unwrap_or_default(),
            key_version: field("keyversion")?.unwrap_or_default(),
        })
    });
    let account = client(arm)
        .put_storage_account(stp::PutStorageAccountRequest {
            account: Some(account_ref(id)),
            location: body.string(&["location"])?.unwrap_or_default(),
            tenant_id: caller.tenant_id.clone(),
            key_source,
            key_vault_properties: key_vault_properties.transpose()?,
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, account_json(id, &account)))
}

/// `GET .../storageAccounts/{name}`.
pub async fn get_account(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let account = client(arm)
        .get_storage_account(account_ref(id))
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, account_json(id, &account)))
}

fn linked_json(ws: &ResourceId, l: &stp::LinkedStorageAccount) -> Value {
    json!({
        "id": format!("{}/linkedStorageAccounts/{}", ws.arm_id(INSIGHTS_PROVIDER, "workspaces"), l.data_source_type),
        "name": l.data_source_type,
        "type": "Microsoft.OperationalInsights/workspaces/linkedStorageAccounts",
        "properties": {
            "dataSourceType": l.data_source_type,
            "storageAccountIds": l.storage_account_ids,
        }
    })
}

/// `PUT .../linkedStorageAccounts/{type}`.
pub async fn link(
    arm: &Arm,
    ws: &ResourceId,
    data_source_type: &str,
    body: &Body,
) -> RestResult<Response> {
    arm.caller()?;
    let mut ids = Vec::new();
    for v in body
        .array(&["properties", "storageAccountIds"])?
        .into_iter()
        .flatten()
    {
        ids.push(v.as_str().unwrap_or_default().to_string());
    }
    let linked = client(arm)
        .link_storage_account(stp::LinkStorageAccountRequest {
            workspace: Some(workspace_ref(ws)),
            data_source_type: data_source_type.to_string(),
            storage_account_ids: ids,
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, linked_json(ws, &linked)))
}

/// `GET .../linkedStorageAccounts/{type}`.
pub async fn get_link(arm: &Arm, ws: &ResourceId, data_source_type: &str) -> RestResult<Response> {
    arm.caller()?;
    let linked = client(arm)
        .get_linked_storage_account(stp::LinkedStorageAccountRef {
            workspace: Some(workspace_ref(ws)),
            data_source_type: data_source_type.to_string(),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, linked_json(ws, &linked)))
}

/// `DELETE .../linkedStorageAccounts/{type}`: 200 and no body, whether a link was removed or
/// none was there (the operation's REST spec has 200 only).
pub async fn unlink(arm: &Arm, ws: &ResourceId, data_source_type: &str) -> RestResult<Response> {
    arm.caller()?;
    client(arm)
        .unlink_storage_account(stp::LinkedStorageAccountRef {
            workspace: Some(workspace_ref(ws)),
            data_source_type: data_source_type.to_string(),
        })
        .await?;
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}

fn search_json(ws: &ResourceId, q: &stp::SavedQuery) -> Value {
    json!({
        "id": format!("{}/savedSearches/{}", ws.arm_id(INSIGHTS_PROVIDER, "workspaces"), q.name),
        "name": q.name,
        "type": "Microsoft.OperationalInsights/savedSearches",
        "etag": format!("W/\"datetime'{}'\"", q.saved_unix_ms),
        "properties": {
            "category": q.category,
            "displayName": q.display_name,
            "query": q.query,
            "version": 2,
        }
    })
}

/// The kind of query a `savedSearches` route stores: saved searches (`Query`).
const SAVED_SEARCH_KIND: &str = "Query";

/// `PUT .../savedSearches/{id}`.
pub async fn put_search(
    arm: &Arm,
    ws: &ResourceId,
    name: &str,
    body: &Body,
) -> RestResult<Response> {
    arm.caller()?;
    let property = |p: &str| body.string(&["properties", p]);
    let saved = client(arm)
        .save_query(stp::SaveQueryRequest {
            workspace: Some(workspace_ref(ws)),
            kind: SAVED_SEARCH_KIND.into(),
            name: name.to_string(),
            category: property("category")?.unwrap_or_default(),
            display_name: property("displayName")?.unwrap_or_default(),
            query: property("query")?.unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, search_json(ws, &saved)))
}

/// `GET .../savedSearches/{id}`.
pub async fn get_search(arm: &Arm, ws: &ResourceId, name: &str) -> RestResult<Response> {
    arm.caller()?;
    let found = client(arm)
        .get_saved_query(stp::SavedQueryRef {
            workspace: Some(workspace_ref(ws)),
            kind: SAVED_SEARCH_KIND.into(),
            name: name.to_string(),
        })
        .await?
        .into_inner();
    Ok(answer(StatusCode::OK, search_json(ws, &found)))
}

/// `GET .../savedSearches`.
pub async fn list_searches(arm: &Arm, ws: &ResourceId) -> RestResult<Response> {
    arm.caller()?;
    let list = client(arm)
        .list_saved_queries(stp::ListSavedQueriesRequest {
            workspace: Some(workspace_ref(ws)),
            kind: SAVED_SEARCH_KIND.into(),
        })
        .await?
        .into_inner();
    let value: Vec<Value> = list.queries.iter().map(|q| search_json(ws, q)).collect();
    Ok(answer(StatusCode::OK, json!({ "value": value })))
}

#[cfg(test)]
mod tests {
    use super::super::ArmPath;

    const WS: &str = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.OperationalInsights/workspaces/ws1";

    #[test]
    fn byos_paths_parse_as_the_sdk_spells_them() {
        let p = |path: &str| ArmPath::parse(path);
        match p(
            "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/q1",
        ) {
            Some(ArmPath::StorageAccount(id)) => assert_eq!(id.name, "q1"),
            other => panic!("{other:?}"),
        }
        match p(&format!("{WS}/linkedStorageAccounts/Query")) {
            Some(ArmPath::LinkedStorageAccount {
                workspace,
                data_source_type,
            }) => {
                assert_eq!(
                    (workspace.name.as_str(), data_source_type.as_str()),
                    ("ws1", "Query")
                )
            }
            other => panic!("{other:?}"),
        }
        match p(&format!("{WS}/savedSearches/my-search")) {
            Some(ArmPath::SavedSearch { workspace, id }) => {
                assert_eq!((workspace.name.as_str(), id.as_str()), ("ws1", "my-search"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p(&format!("{WS}/savedsearches")),
            Some(ArmPath::SavedSearches(_))
        ));
        assert_eq!(
            p("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Storage/other/q1"),
            None
        );
    }
}
