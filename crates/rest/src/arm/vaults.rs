//! `Microsoft.KeyVault/vaults` (azure-mgmt-keyvault) over `keyvault.v1.KeyVault`.
//!
//! - `PUT` creates (`CreateVault`), recovers a soft-deleted vault (`properties.createMode:
//!   "recover"`, `RecoverDeletedVault`), or updates an existing one (`UpdateVault`, then the
//!   access policies brought to the body's list). The answer is final (`provisioningState:
//!   Succeeded`, no `Azure-AsyncOperation`): the SDK's `begin_create_or_update` polls by the body
//!   then, and a 200/201 that says `Succeeded` ends its poller at once.
//! - `GET`, `PATCH` (the same properties, any subset), `DELETE` (soft delete when enabled),
//!   the lists by resource group and subscription.
//! - `.../accessPolicies/{add|replace|remove}` (`update_access_policy`): ARM merges permissions
//!   per principal; Key Vault's gRPC sets or removes a principal's whole entry, so the door
//!   computes the entry from the vault it just read.
//! - `locations/{loc}/deletedVaults/{name}` `GET` and `/purge` `POST`.
//!
//! Key Vault checks the token (management audience, the vault's tenant) and answers every rule
//! with its own Azure error; the door forwards the caller's bearer token. What Key Vault's gRPC
//! cannot do (change a vault's SKU or tenant) the door refuses in so many words rather than
//! ignoring it.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_sim::SimTime;
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::{answer, resource_not_found, Arm, Body, PolicyKind, ResourceId, KEYVAULT_PROVIDER};
use crate::error::{echo, RestError, RestResult};

/// Most access policies read from one body (Key Vault keeps at most 1024 per vault).
pub const POLICIES_MAX: usize = 1024;
/// Most permissions read from one access policy.
pub const PERMISSIONS_MAX: usize = 64;

const VAULT_TYPE: &str = "Microsoft.KeyVault/vaults";

fn client(arm: &Arm) -> kvp::key_vault_client::KeyVaultClient<Channel> {
    kvp::key_vault_client::KeyVaultClient::new(arm.state.upstream.keyvault.clone())
}

fn vault_ref(name: &str) -> kvp::VaultRef {
    kvp::VaultRef {
        vault_name: name.to_string(),
    }
}

/// The SKU name as ARM spells it.
pub fn sku_name(sku: i32) -> &'static str {
    match kvp::Sku::try_from(sku) {
        Ok(kvp::Sku::Premium) => "premium",
        _ => "standard",
    }
}

/// `properties.sku.name` (`standard` | `premium`, any case); absent means standard.
pub fn sku_of(body: &Body) -> RestResult<kvp::Sku> {
    match body.string(&["properties", "sku", "name"])? {
        None => Ok(kvp::Sku::Standard),
        Some(name) if name.eq_ignore_ascii_case("standard") => Ok(kvp::Sku::Standard),
        Some(name) if name.eq_ignore_ascii_case("premium") => Ok(kvp::Sku::Premium),
        Some(name) => Err(RestError::bad_request(
            "BadRequest",
            format!(
                "The SKU name '{}' is not valid: a vault's SKU is 'standard' or 'premium'.",
                echo(&name)
            ),
        )),
    }
}

/// The access policies of `items` (`[{tenantId, objectId, permissions: {keys: [...]}}]`).
/// Permissions other than keys (secrets, certificates, storage) have no meaning in cmksim and
/// are not kept.
pub fn policies_of(items: &[Value]) -> RestResult<Vec<kvp::AccessPolicy>> {
    items
        .iter()
        .take(POLICIES_MAX)
        .map(|item| {
            let item = Body::of(item);
            let keys = item
                .array(&["permissions", "keys"])?
                .map(Vec::as_slice)
                .unwrap_or_default();
            let key_permissions = keys
                .iter()
                .take(PERMISSIONS_MAX)
                .map(|p| {
                    p.as_str().map(str::to_string).ok_or_else(|| {
                        RestError::bad_request(
                            "InvalidRequestContent",
                            "The request content was invalid and could not be deserialized: \
                             'permissions.keys' must be an array of strings.",
                        )
                    })
                })
                .collect::<RestResult<Vec<String>>>()?;
            Ok(kvp::AccessPolicy {
                tenant_id: item.string(&["tenantId"])?.unwrap_or_default(),
                object_id: item.string(&["objectId"])?.unwrap_or_default(),
                key_permissions,
            })
        })
        .collect()
}

fn body_policies(body: &Body) -> RestResult<Option<Vec<kvp::AccessPolicy>>> {
    body.array(&["properties", "accessPolicies"])?
        .map(|items| policies_of(items))
        .transpose()
}

fn policy_json(policy: &kvp::AccessPolicy) -> Value {
    json!({
        "tenantId": policy.tenant_id,
        "objectId": policy.object_id,
        "permissions": {
            "keys": policy.key_permissions,
            "secrets": [],
            "certificates": [],
            "storage": [],
        },
    })
}

/// The vault's ARM id: where Key Vault recorded it, else where the client addressed it.
fn vault_id(vault: &kvp::Vault, url: &ResourceId) -> ResourceId {
    let or = |stored: &str, given: &str| {
        if stored.is_empty() {
            given.to_string()
        } else {
            stored.to_string()
        }
    };
    ResourceId {
        subscription: or(&vault.subscription_id, &url.subscription),
        resource_group: or(&vault.resource_group, &url.resource_group),
        name: vault.name.clone(),
    }
}

/// The vault as ARM answers it.
pub fn vault_json(vault: &kvp::Vault, url: &ResourceId) -> Value {
    let vault_uri = if vault.vault_uri.ends_with('/') {
        vault.vault_uri.clone()
    } else {
        format!("{}/", vault.vault_uri)
    };
    json!({
        "id": vault_id(vault, url).arm_id(KEYVAULT_PROVIDER, "vaults"),
        "name": vault.name,
        "type": VAULT_TYPE,
        "location": vault.location,
        "tags": BTreeMap::<String, String>::new(),
        "properties": {
            "tenantId": vault.tenant_id,
            "sku": {"family": "A", "name": sku_name(vault.sku)},
            "accessPolicies": vault.access_policies.iter().map(policy_json).collect::<Vec<_>>(),
            "vaultUri": vault_uri,
            "enableSoftDelete": vault.enable_soft_delete,
            "softDeleteRetentionInDays": vault.soft_delete_retention_in_days,
            "enablePurgeProtection": vault.enable_purge_protection,
            "enableRbacAuthorization": false,
            "publicNetworkAccess": "Enabled",
            "provisioningState": "Succeeded",
        },
    })
}

/// The deleted vault as ARM answers it.
pub fn deleted_vault_json(deleted: &kvp::DeletedVault, subscription: &str) -> Value {
    let vault = deleted.vault.clone().unwrap_or_default();
    let url = ResourceId {
        subscription: subscription.to_string(),
        resource_group: String::new(),
        name: vault.name.clone(),
    };
    json!({
        "id": format!(
            "/subscriptions/{subscription}/providers/{KEYVAULT_PROVIDER}/locations/{}/deletedVaults/{}",
            super::operations::region_segment(&vault.location),
            vault.name
        ),
        "name": vault.name,
        "type": "Microsoft.KeyVault/deletedVaults",
        "properties": {
            "vaultId": vault_id(&vault, &url).arm_id(KEYVAULT_PROVIDER, "vaults"),
            "location": vault.location,
            "deletionDate": SimTime(deleted.deleted_date_unix_ms).to_rfc3339(),
            "scheduledPurgeDate": SimTime(deleted.scheduled_purge_date_unix_ms).to_rfc3339(),
            "tags": {},
            "purgeProtectionEnabled": vault.enable_purge_protection,
        },
    })
}

/// True when the vault Key Vault recorded lives where the URL says (a vault created over gRPC
/// without subscription or resource group lives everywhere).
fn addressed_here(vault: &kvp::Vault, id: &ResourceId) -> bool {
    let same = |stored: &str, given: &str| stored.is_empty() || stored.eq_ignore_ascii_case(given);
    same(&vault.subscription_id, &id.subscription)
        && same(&vault.resource_group, &id.resource_group)
}

/// The vault at `id`, or ARM's 404 when it is in another resource group.
async fn read(arm: &Arm, id: &ResourceId) -> RestResult<kvp::Vault> {
    let vault = client(arm)
        .get_vault(arm.request(vault_ref(&id.name)))
        .await?
        .into_inner();
    if !addressed_here(&vault, id) {
        return Err(resource_not_found(VAULT_TYPE, &id.name, &id.resource_group));
    }
    Ok(vault)
}

fn unsupported_change(field: &str, from: &str, to: &str) -> RestError {
    RestError::new(
        409,
        "Conflict",
        format!(
            "cmksim cannot change the {field} of an existing vault ('{}' to '{}'); delete and \
             purge the vault, then create it again (simulator's message).",
            echo(from),
            echo(to)
        ),
    )
}

/// Applies the properties of a PUT or PATCH body to an existing vault.
async fn update_existing(arm: &Arm, vault: kvp::Vault, body: &Body) -> RestResult<kvp::Vault> {
    if body.has(&["properties", "sku", "name"]) {
        let wanted = sku_of(body)?;
        if wanted as i32 != vault.sku {
            return Err(unsupported_change(
                "SKU",
                sku_name(vault.sku),
                sku_name(wanted as i32),
            ));
        }
    }
    if let Some(tenant) = body.string(&["properties", "tenantId"])? {
        if !tenant.eq_ignore_ascii_case(&vault.tenant_id) {
            return Err(unsupported_change("tenantId", &vault.tenant_id, &tenant));
        }
    }
    let mut kv = client(arm);
    let flags = kvp::UpdateVaultRequest {
        vault_name: vault.name.clone(),
        enable_soft_delete: body.bool(&["properties", "enableSoftDelete"])?,
        enable_purge_protection: body.bool(&["properties", "enablePurgeProtection"])?,
        soft_delete_retention_in_days: body.u32(&["properties", "softDeleteRetentionInDays"])?,
    };
    let mut vault = if flags.enable_soft_delete.is_some()
        || flags.enable_purge_protection.is_some()
        || flags.soft_delete_retention_in_days.is_some()
    {
        kv.update_vault(arm.request(flags)).await?.into_inner()
    } else {
        vault
    };
    if let Some(wanted) = body_policies(body)? {
        vault = replace_policies(arm, vault, &wanted).await?;
    }
    Ok(vault)
}

fn same_permissions(a: &[String], b: &[String]) -> bool {
    let set = |p: &[String]| {
        p.iter()
            .map(|s| s.to_ascii_lowercase())
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a) == set(b)
}

/// Brings the vault's access policies to exactly `wanted` (ARM's PUT and PATCH replace the list).
async fn replace_policies(
    arm: &Arm,
    vault: kvp::Vault,
    wanted: &[kvp::AccessPolicy],
) -> RestResult<kvp::Vault> {
    let mut kv = client(arm);
    let mut current = vault.clone();
    for policy in wanted {
        let unchanged = vault.access_policies.iter().any(|p| {
            p.object_id == policy.object_id
                && p.tenant_id == policy.tenant_id
                && same_permissions(&p.key_permissions, &policy.key_permissions)
        });
        if !unchanged {
            current = kv
                .set_access_policy(arm.request(kvp::SetAccessPolicyRequest {
                    vault_name: vault.name.clone(),
                    policy: Some(policy.clone()),
                }))
                .await?
                .into_inner();
        }
    }
    for old in &vault.access_policies {
        if !wanted.iter().any(|p| p.object_id == old.object_id) {
            current = kv
                .remove_access_policy(arm.request(kvp::RemoveAccessPolicyRequest {
                    vault_name: vault.name.clone(),
                    object_id: old.object_id.clone(),
                }))
                .await?
                .into_inner();
        }
    }
    Ok(current)
}

/// `PUT`: create, recover (`createMode: recover`), or update.
pub async fn put(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    let mut kv = client(arm);
    let create_mode = body.string(&["properties", "createMode"])?;
    if create_mode.is_some_and(|m| m.eq_ignore_ascii_case("recover")) {
        let vault = kv
            .recover_deleted_vault(arm.request(vault_ref(&id.name)))
            .await?
            .into_inner();
        return Ok(answer(StatusCode::OK, vault_json(&vault, id)));
    }
    match kv.get_vault(arm.request(vault_ref(&id.name))).await {
        Ok(existing) => {
            let existing = existing.into_inner();
            // A vault of the same name elsewhere: Key Vault's own "already exists" (names are
            // global) comes from the create below.
            if addressed_here(&existing, id) {
                let vault = update_existing(arm, existing, body).await?;
                return Ok(answer(StatusCode::OK, vault_json(&vault, id)));
            }
        }
        Err(status) if status.code() == tonic::Code::NotFound => {}
        Err(status) => return Err(status.into()),
    }
    let request = kvp::CreateVaultRequest {
        name: id.name.clone(),
        location: body.string(&["location"])?.unwrap_or_default(),
        tenant_id: body
            .string(&["properties", "tenantId"])?
            .unwrap_or_default(),
        sku: sku_of(body)? as i32,
        enable_soft_delete: body.bool(&["properties", "enableSoftDelete"])?,
        soft_delete_retention_in_days: body.u32(&["properties", "softDeleteRetentionInDays"])?,
        enable_purge_protection: body
            .bool(&["properties", "enablePurgeProtection"])?
            .unwrap_or(false),
        access_policies: body_policies(body)?.unwrap_or_default(),
        subscription_id: id.subscription.clone(),
        resource_group: id.resource_group.clone(),
    };
    let vault = kv.create_vault(arm.request(request)).await?.into_inner();
    Ok(answer(StatusCode::CREATED, vault_json(&vault, id)))
}

/// `GET`.
pub async fn get(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    let vault = read(arm, id).await?;
    Ok(answer(StatusCode::OK, vault_json(&vault, id)))
}

/// `PATCH`: any subset of the properties.
pub async fn patch(arm: &Arm, id: &ResourceId, body: &Body) -> RestResult<Response> {
    let vault = read(arm, id).await?;
    let vault = update_existing(arm, vault, body).await?;
    Ok(answer(StatusCode::OK, vault_json(&vault, id)))
}

/// `DELETE`: soft delete (or purge when soft delete is off), 200 with no body.
pub async fn delete(arm: &Arm, id: &ResourceId) -> RestResult<Response> {
    read(arm, id).await?;
    client(arm)
        .delete_vault(arm.request(vault_ref(&id.name)))
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET .../vaults` of a resource group or subscription: `{"value": [...]}`.
pub async fn list(
    arm: &Arm,
    subscription: &str,
    resource_group: Option<&str>,
) -> RestResult<Response> {
    let vaults = client(arm)
        .list_vaults(arm.request(kvp::ListVaultsRequest {}))
        .await?
        .into_inner()
        .vaults;
    let value: Vec<Value> = vaults
        .iter()
        .filter(|v| v.subscription_id.eq_ignore_ascii_case(subscription))
        .filter(|v| resource_group.is_none_or(|rg| v.resource_group.eq_ignore_ascii_case(rg)))
        .map(|v| {
            let url = ResourceId {
                subscription: v.subscription_id.clone(),
                resource_group: v.resource_group.clone(),
                name: v.name.clone(),
            };
            vault_json(v, &url)
        })
        .collect();
    Ok(answer(StatusCode::OK, json!({ "value": value })))
}

/// The permissions a principal ends with after `kind` (`None`: the entry is removed).
pub fn merged_permissions(
    kind: PolicyKind,
    existing: Option<&[String]>,
    given: &[String],
) -> Option<Vec<String>> {
    let contains = |list: &[String], p: &str| list.iter().any(|q| q.eq_ignore_ascii_case(p));
    match kind {
        PolicyKind::Replace => Some(given.to_vec()),
        PolicyKind::Add => {
            let mut out = existing.unwrap_or_default().to_vec();
            for p in given {
                if !contains(&out, p) {
                    out.push(p.clone());
                }
            }
            Some(out)
        }
        PolicyKind::Remove => {
            let kept: Vec<String> = existing
                .unwrap_or_default()
                .iter()
                .filter(|p| !contains(given, p))
                .cloned()
                .collect();
            (!kept.is_empty()).then_some(kept)
        }
    }
}

/// `PUT .../accessPolicies/{kind}` (`update_access_policy`).
pub async fn update_access_policy(
    arm: &Arm,
    id: &ResourceId,
    kind: PolicyKind,
    body: &Body,
) -> RestResult<Response> {
    let vault = read(arm, id).await?;
    let given = body_policies(body)?.unwrap_or_default();
    let mut kv = client(arm);
    for policy in &given {
        let existing = vault
            .access_policies
            .iter()
            .find(|p| p.object_id == policy.object_id)
            .map(|p| p.key_permissions.as_slice());
        if kind == PolicyKind::Remove && existing.is_none() {
            continue;
        }
        match merged_permissions(kind, existing, &policy.key_permissions) {
            Some(key_permissions) => {
                kv.set_access_policy(arm.request(kvp::SetAccessPolicyRequest {
                    vault_name: vault.name.clone(),
                    policy: Some(kvp::AccessPolicy {
                        key_permissions,
                        ..policy.clone()
                    }),
                }))
                .await?;
            }
            None => {
                kv.remove_access_policy(arm.request(kvp::RemoveAccessPolicyRequest {
                    vault_name: vault.name.clone(),
                    object_id: policy.object_id.clone(),
                }))
                .await?;
            }
        }
    }
    Ok(answer(
        StatusCode::OK,
        json!({
            "id": format!(
                "{}/accessPolicies/{}",
                vault_id(&vault, id).arm_id(KEYVAULT_PROVIDER, "vaults"),
                kind.as_str()
            ),
            "name": kind.as_str(),
            "type": "Microsoft.KeyVault/vaults/accessPolicies",
            "location": vault.location,
            "properties": {"accessPolicies": given.iter().map(policy_json).collect::<Vec<_>>()},
        }),
    ))
}

/// `GET .../locations/{loc}/deletedVaults/{name}`.
pub async fn get_deleted(
    arm: &Arm,
    subscription: &str,
    _location: &str,
    name: &str,
) -> RestResult<Response> {
    let deleted = client(arm)
        .get_deleted_vault(arm.request(vault_ref(name)))
        .await?
        .into_inner();
    Ok(answer(
        StatusCode::OK,
        deleted_vault_json(&deleted, subscription),
    ))
}

/// `POST .../deletedVaults/{name}/purge`: 200 with no body (the SDK's poller ends at once).
pub async fn purge(arm: &Arm, name: &str) -> RestResult<Response> {
    client(arm)
        .purge_deleted_vault(arm.request(vault_ref(name)))
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn access_policy_kinds_merge_as_arm_does() {
        let existing = strings(&["get", "wrapKey"]);
        assert_eq!(
            merged_permissions(
                PolicyKind::Add,
                Some(&existing),
                &strings(&["WrapKey", "unwrapKey"])
            ),
            Some(strings(&["get", "wrapKey", "unwrapKey"]))
        );
        assert_eq!(
            merged_permissions(PolicyKind::Add, None, &strings(&["get"])),
            Some(strings(&["get"]))
        );
        assert_eq!(
            merged_permissions(PolicyKind::Replace, Some(&existing), &strings(&["sign"])),
            Some(strings(&["sign"]))
        );
        assert_eq!(
            merged_permissions(PolicyKind::Remove, Some(&existing), &strings(&["WRAPKEY"])),
            Some(strings(&["get"]))
        );
        assert_eq!(
            merged_permissions(
                PolicyKind::Remove,
                Some(&existing),
                &strings(&["get", "wrapKey"])
            ),
            None,
            "an entry left with no permission is removed"
        );
    }

    #[test]
    fn policies_and_sku_are_read_from_the_sdk_body() {
        let body = Body::parse(
            br#"{"location":"westeurope","properties":{"tenantId":"t","sku":{"family":"A","name":"Premium"},
                 "accessPolicies":[{"tenantId":"t","objectId":"o","permissions":{"keys":["get","unwrapKey"],"secrets":["get"]}}]}}"#,
        )
        .unwrap();
        assert_eq!(sku_of(&body).unwrap(), kvp::Sku::Premium);
        let policies = body_policies(&body).unwrap().unwrap();
        assert_eq!(
            policies,
            vec![kvp::AccessPolicy {
                tenant_id: "t".into(),
                object_id: "o".into(),
                key_permissions: strings(&["get", "unwrapKey"]),
            }]
        );
        let bad = Body::parse(br#"{"properties":{"sku":{"name":"gold"}}}"#).unwrap();
        assert_eq!(sku_of(&bad).unwrap_err().status, 400);
        assert_eq!(
            sku_of(&Body::parse(b"{}").unwrap()).unwrap(),
            kvp::Sku::Standard
        );
        let not_strings =
            Body::parse(br#"{"properties":{"accessPolicies":[{"permissions":{"keys":[1]}}]}}"#)
                .unwrap();
        assert_eq!(
            body_policies(&not_strings).unwrap_err().code,
            "InvalidRequestContent"
        );
    }

    #[test]
    fn vault_json_is_arms_shape() {
        let vault = kvp::Vault {
            name: "contoso-kv".into(),
            vault_uri: "https://contoso-kv.vault.azure.net".into(),
            location: "westeurope".into(),
            tenant_id: "t".into(),
            sku: kvp::Sku::Premium as i32,
            enable_soft_delete: true,
            soft_delete_retention_in_days: 7,
            enable_purge_protection: true,
            access_policies: vec![kvp::AccessPolicy {
                tenant_id: "t".into(),
                object_id: "o".into(),
                key_permissions: strings(&["get"]),
            }],
            subscription_id: String::new(),
            resource_group: String::new(),
        };
        let url = ResourceId {
            subscription: "s".into(),
            resource_group: "rg".into(),
            name: "contoso-kv".into(),
        };
        let json = vault_json(&vault, &url);
        assert_eq!(
            json["id"],
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-kv"
        );
        assert_eq!(json["type"], "Microsoft.KeyVault/vaults");
        let p = &json["properties"];
        assert_eq!(p["vaultUri"], "https://contoso-kv.vault.azure.net/");
        assert_eq!(p["sku"], json!({"family": "A", "name": "premium"}));
        assert_eq!(p["provisioningState"], "Succeeded");
        assert_eq!(p["softDeleteRetentionInDays"], 7);
        assert_eq!(
            p["accessPolicies"][0]["permissions"]["keys"],
            json!(["get"])
        );
        assert!(
            addressed_here(&vault, &url),
            "a vault with no recorded scope lives everywhere"
        );
        let elsewhere = kvp::Vault {
            resource_group: "other".into(),
            ..vault.clone()
        };
        assert!(!addressed_here(&elsewhere, &url));
        let deleted = deleted_vault_json(
            &kvp::DeletedVault {
                vault: Some(vault),
                deleted_date_unix_ms: 0,
                scheduled_purge_date_unix_ms: 7 * 86_400_000,
            },
            "s",
        );
        assert_eq!(
            deleted["id"],
            "/subscriptions/s/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/contoso-kv"
        );
        assert_eq!(
            deleted["properties"]["scheduledPurgeDate"],
            "1970-01-08T00:00:00.000Z"
        );
        assert_eq!(deleted["properties"]["purgeProtectionEnabled"], true);
    }
}
