//! Azure Resource Manager: `Microsoft.KeyVault/vaults` and `Microsoft.OperationalInsights`
//! clusters, workspaces, linked services and operation statuses, translated to the Key Vault
//! and storage gRPC services.
//!
//! Why one catch-all route and a parser ([`ArmPath`]) rather than one axum route per path: ARM
//! paths are case-insensitive, and the seeds themselves spell them both ways
//! (`resourceGroups/.../Microsoft.OperationalInsights` in one request,
//! `resourcegroups/.../microsoft.operationalinsights` in the next), while axum matches literally.
//! The same parser reads the cluster id a linked service names (`writeAccessResourceId`).
//!
//! What the door does and what it leaves to the services:
//! - Key Vault checks its own tokens (management audience) and answers its own Azure errors: the
//!   door forwards the caller's bearer token ([`vaults`]).
//! - Storage: the door verifies the ARM token itself ([`crate::auth::management_caller`]), hands
//!   the caller's tenant to `CreateCluster` ([`clusters`], [`workspaces`]) and forwards the
//!   caller's token, so that a guarded storage checks the caller's tenant and role
//!   (`cmksim_identity::guard`).
//! - Every rule (names, SKUs, capacity, link limits, states) and its message is the service's;
//!   the door only reads bodies, picks the rpc and shapes the answer. Its own errors are ARM's
//!   (a missing `api-version`, a body that is not JSON, a method a resource does not have).
//! - Long operations answer with `Azure-AsyncOperation` ([`operations`]), whose status code
//!   (200 or 202) follows the storage's behaviour profile.
//!
//! Request bodies are read as JSON trees with case-insensitive property names ([`Body`]): ARM
//! ignores the case of property names, and the seeds send `Capacity`, `KeyVaultProperties` and
//! `WriteAccessResourceId`.

mod byos;
mod clusters;
mod dcrs;
mod lifecycle;
mod operations;
mod vaults;
mod workspaces;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use cmksim_keyvault::state::Caller;
use serde_json::Value;

use crate::auth::{bearer, forward, management_caller};
use crate::error::{echo, RestError, RestResult};
use crate::AppState;

pub use clusters::normalise_key_vault_uri;
pub use operations::{accept_status, RETRY_AFTER_SECONDS};

/// The Key Vault resource provider.
pub const KEYVAULT_PROVIDER: &str = "Microsoft.KeyVault";
/// The Log Analytics resource provider.
pub const INSIGHTS_PROVIDER: &str = "Microsoft.OperationalInsights";
/// Most path segments an ARM path the door serves has (a linked service: 10); longer paths are
/// refused before they are looked at.
pub const PATH_SEGMENTS_MAX: usize = 12;
/// Longest `api-version` value accepted (the longest real ones, `2020-03-01-preview`, have 18).
pub const API_VERSION_CHARS_MAX: usize = 32;
/// Most nesting levels a body path is looked up through.
const BODY_PATH_DEPTH_MAX: usize = 4;

/// The ARM routes: everything under `/subscriptions/`, dispatched by [`ArmPath`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/subscriptions/{*rest}", any(dispatch))
}

/// A resource in a resource group: subscription, resource group, name (as the client wrote them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl ResourceId {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}`.
    pub fn arm_id(&self, provider: &str, kind: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{provider}/{kind}/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// What `update_access_policy` does with the policies it sends (`.../accessPolicies/{kind}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Adds the permissions to the principal's entry (creating it).
    Add,
    /// Sets the principal's permissions to exactly these.
    Replace,
    /// Takes the permissions away; an entry left with none is removed.
    Remove,
}

impl PolicyKind {
    fn parse(segment: &str) -> Option<PolicyKind> {
        [
            ("add", PolicyKind::Add),
            ("replace", PolicyKind::Replace),
            ("remove", PolicyKind::Remove),
        ]
        .into_iter()
        .find(|(name, _)| segment.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }

    /// The path segment, as ARM names the policy resource.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Add => "add",
            PolicyKind::Replace => "replace",
            PolicyKind::Remove => "remove",
        }
    }
}

/// Every ARM path the door serves, parsed case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArmPath {
    /// `.../resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}`
    Vault(ResourceId),
    /// `.../providers/Microsoft.KeyVault/vaults`, in a resource group or a subscription.
    Vaults {
        subscription: String,
        resource_group: Option<String>,
    },
    /// `.../vaults/{name}/accessPolicies/{add|replace|remove}`
    VaultAccessPolicy { vault: ResourceId, kind: PolicyKind },
    /// `/subscriptions/{s}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{name}`
    DeletedVault {
        subscription: String,
        location: String,
        name: String,
    },
    /// The same, `/purge`.
    PurgeDeletedVault {
        subscription: String,
        location: String,
        name: String,
    },
    /// `.../resourceGroups/{rg}/providers/Microsoft.OperationalInsights/clusters/{name}`
    Cluster(ResourceId),
    /// `.../providers/Microsoft.OperationalInsights/clusters`, in a resource group or a
    /// subscription.
    Clusters {
        subscription: String,
        resource_group: Option<String>,
    },
    /// `.../resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}`
    Workspace(ResourceId),
    /// `.../workspaces/{w}/linkedServices/{name}`
    LinkedService { workspace: ResourceId, name: String },
    /// `.../workspaces/{w}/purge` (seed 003)
    WorkspacePurge(ResourceId),
    /// `.../workspaces/{w}/operations/{purgeId}`
    PurgeStatus { workspace: ResourceId, id: String },
    /// `.../workspaces/{w}/tables/{table}`
    Table {
        workspace: ResourceId,
        table: String,
    },
    /// `.../workspaces/{w}/providers/Microsoft.Authorization/locks/{name}`
    WorkspaceLock { workspace: ResourceId, name: String },
    /// `.../resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}` (BYOS)
    StorageAccount(ResourceId),
    /// `.../workspaces/{w}/linkedStorageAccounts/{Query|Alerts}`
    LinkedStorageAccount {
        workspace: ResourceId,
        data_source_type: String,
    },
    /// `.../workspaces/{w}/savedSearches/{id}`
    SavedSearch { workspace: ResourceId, id: String },
    /// `.../workspaces/{w}/savedSearches`
    SavedSearches(ResourceId),
    /// `.../resourceGroups/{rg}/providers/Microsoft.Insights/dataCollectionRules/{name}`
    DataCollectionRule(ResourceId),
    /// `.../providers/Microsoft.Insights/dataCollectionRules`, in a resource group or a
    /// subscription.
    DataCollectionRules {
        subscription: String,
        resource_group: Option<String>,
    },
    /// `/subscriptions/{s}/providers/Microsoft.OperationalInsights/locations/{loc}/
    /// operationStatuses/{id}`
    OperationStatus {
        subscription: String,
        location: String,
        operation_id: String,
    },
}

fn is(segment: &str, literal: &str) -> bool {
    segment.eq_ignore_ascii_case(literal)
}

impl ArmPath {
    /// Parses a path (`/subscriptions/...`); `None` when the door serves no such resource.
    pub fn parse(path: &str) -> Option<ArmPath> {
        let s: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if s.len() < 4 || s.len() > PATH_SEGMENTS_MAX || !is(s[0], "subscriptions") {
            return None;
        }
        let subscription = s[1].to_string();
        if is(s[2], "resourceGroups") {
            if s.len() < 7 || !is(s[4], "providers") {
                return None;
            }
            let resource_group = s[3].to_string();
            let id = |name: &str| ResourceId {
                subscription: subscription.clone(),
                resource_group: resource_group.clone(),
                name: name.to_string(),
            };
            let (kv, insights) = (is(s[5], KEYVAULT_PROVIDER), is(s[5], INSIGHTS_PROVIDER));
            let monitor = is(s[5], dcrs::MONITOR_PROVIDER);
            let storage = is(s[5], byos::STORAGE_PROVIDER);
            return match &s[6..] {
                [t, name] if storage && is(t, byos::STORAGE_ACCOUNTS) => {
                    Some(ArmPath::StorageAccount(id(name)))
                }
                [t, name, l, kind]
                    if insights && is(t, "workspaces") && is(l, "linkedStorageAccounts") =>
                {
                    Some(ArmPath::LinkedStorageAccount {
                        workspace: id(name),
                        data_source_type: kind.to_string(),
                    })
                }
                [t, name, l, search]
                    if insights && is(t, "workspaces") && is(l, "savedSearches") =>
                {
                    Some(ArmPath::SavedSearch {
                        workspace: id(name),
                        id: search.to_string(),
                    })
                }
                [t, name, l] if insights && is(t, "workspaces") && is(l, "savedSearches") => {
                    Some(ArmPath::SavedSearches(id(name)))
                }
                [t] if monitor && is(t, dcrs::DCR_TYPE) => Some(ArmPath::DataCollectionRules {
                    subscription: subscription.clone(),
                    resource_group: Some(resource_group.clone()),
                }),
                [t, name] if monitor && is(t, dcrs::DCR_TYPE) => {
                    Some(ArmPath::DataCollectionRule(id(name)))
                }
                [t] if kv && is(t, "vaults") => Some(ArmPath::Vaults {
                    subscription: subscription.clone(),
                    resource_group: Some(resource_group.clone()),
                }),
                [t, name] if kv && is(t, "vaults") => Some(ArmPath::Vault(id(name))),
                [t, name, ap, kind] if kv && is(t, "vaults") && is(ap, "accessPolicies") => {
                    Some(ArmPath::VaultAccessPolicy {
                        vault: id(name),
                        kind: PolicyKind::parse(kind)?,
                    })
                }
                [t] if insights && is(t, "clusters") => Some(ArmPath::Clusters {
                    subscription: subscription.clone(),
                    resource_group: Some(resource_group.clone()),
                }),
                [t, name] if insights && is(t, "clusters") => Some(ArmPath::Cluster(id(name))),
                [t, name] if insights && is(t, "workspaces") => Some(ArmPath::Workspace(id(name))),
                [t, name, ls, link]
                    if insights && is(t, "workspaces") && is(ls, "linkedServices") =>
                {
                    Some(ArmPath::LinkedService {
                        workspace: id(name),
                        name: link.to_string(),
                    })
                }
                [t, name, p] if insights && is(t, "workspaces") && is(p, "purge") => {
                    Some(ArmPath::WorkspacePurge(id(name)))
                }
                [t, name, o, op] if insights && is(t, "workspaces") && is(o, "operations") => {
                    Some(ArmPath::PurgeStatus {
                        workspace: id(name),
                        id: op.to_string(),
                    })
                }
                [t, name, tb, table] if insights && is(t, "workspaces") && is(tb, "tables") => {
                    Some(ArmPath::Table {
                        workspace: id(name),
                        table: table.to_string(),
                    })
                }
                [t, name, p, auth, l, lock]
                    if insights
                        && is(t, "workspaces")
                        && is(p, "providers")
                        && is(auth, "Microsoft.Authorization")
                        && is(l, "locks") =>
                {
                    Some(ArmPath::WorkspaceLock {
                        workspace: id(name),
                        name: lock.to_string(),
                    })
                }
                _ => None,
            };
        }
        if !is(s[2], "providers") {
            return None;
        }
        let (kv, insights) = (is(s[3], KEYVAULT_PROVIDER), is(s[3], INSIGHTS_PROVIDER));
        let monitor = is(s[3], dcrs::MONITOR_PROVIDER);
        match &s[4..] {
            [t] if monitor && is(t, dcrs::DCR_TYPE) => Some(ArmPath::DataCollectionRules {
                subscription,
                resource_group: None,
            }),
            [t] if kv && is(t, "vaults") => Some(ArmPath::Vaults {
                subscription,
                resource_group: None,
            }),
            [l, location, d, name] if kv && is(l, "locations") && is(d, "deletedVaults") => {
                Some(ArmPath::DeletedVault {
                    subscription,
                    location: location.to_string(),
                    name: name.to_string(),
                })
            }
            [l, location, d, name, p]
                if kv && is(l, "locations") && is(d, "deletedVaults") && is(p, "purge") =>
            {
                Some(ArmPath::PurgeDeletedVault {
                    subscription,
                    location: location.to_string(),
                    name: name.to_string(),
                })
            }
            [t] if insights && is(t, "clusters") => Some(ArmPath::Clusters {
                subscription,
                resource_group: None,
            }),
            [l, location, o, id]
                if insights && is(l, "locations") && is(o, "operationStatuses") =>
            {
                Some(ArmPath::OperationStatus {
                    subscription,
                    location: location.to_string(),
                    operation_id: id.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// The `api-version` of a query string: required on every ARM request (ARM's own 400 when
/// missing). Its value is not compared with a list: the SDKs' defaults move with every release,
/// and a simulator that refused a new one would break users for nothing. It must look like one
/// (letters, digits, `.`, `-`), because it is repeated in the `Azure-AsyncOperation` URL.
pub fn api_version(query: Option<&str>) -> RestResult<String> {
    let value = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(name, _)| *name == "api-version")
        .map(|(_, value)| value)
        .unwrap_or("");
    if value.is_empty() {
        return Err(RestError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    }
    let well_formed = value.len() <= API_VERSION_CHARS_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !well_formed {
        return Err(RestError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{}' is invalid.", echo(value)),
        ));
    }
    Ok(value.to_string())
}

/// A request body as a JSON tree whose property names are matched without case.
#[derive(Clone, Debug, PartialEq)]
pub struct Body(Value);

/// ARM's 400 for a body it cannot read.
fn invalid_content(detail: &str) -> RestError {
    RestError::bad_request(
        "InvalidRequestContent",
        format!(
            "The request content was invalid and could not be deserialized: '{}'.",
            echo(detail)
        ),
    )
}

impl Body {
    /// Parses a body; an empty one is `null` (every property absent: the service then says
    /// what is missing).
    pub fn parse(bytes: &[u8]) -> RestResult<Body> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Value::Null));
        }
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| invalid_content(&e.to_string()))
    }

    /// The value at `path` (property names without case); `null` counts as absent.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let mut at = &self.0;
        for name in path.iter().take(BODY_PATH_DEPTH_MAX) {
            at = at
                .as_object()?
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)?;
        }
        (!at.is_null()).then_some(at)
    }

    fn wrong_type(path: &[&str], what: &str) -> RestError {
        invalid_content(&format!("property '{}' must be {what}", path.join(".")))
    }

    /// A string property.
    pub fn string(&self, path: &[&str]) -> RestResult<Option<String>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Body::wrong_type(path, "a string")),
        }
    }

    /// An unsigned 32-bit property (a JSON number, or a string of digits as some tools send).
    pub fn u32(&self, path: &[&str]) -> RestResult<Option<u32>> {
        let parsed = match self.get(path) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
            Some(_) => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| Body::wrong_type(path, "a whole number from 0 to 4294967295"))
    }

    /// A boolean property.
    pub fn bool(&self, path: &[&str]) -> RestResult<Option<bool>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Body::wrong_type(path, "true or false")),
        }
    }

    /// An array property.
    pub fn array(&self, path: &[&str]) -> RestResult<Option<&Vec<Value>>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(Body::wrong_type(path, "an array")),
        }
    }

    /// `tags`: an object of strings.
    pub fn tags(&self) -> RestResult<HashMap<String, String>> {
        let Some(value) = self.get(&["tags"]) else {
            return Ok(HashMap::new());
        };
        let wrong = || Body::wrong_type(&["tags"], "an object of strings");
        value
            .as_object()
            .ok_or_else(wrong)?
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(wrong)?.to_string())))
            .collect()
    }

    /// True when the property is present (and not `null`).
    pub fn has(&self, path: &[&str]) -> bool {
        self.get(path).is_some()
    }

    /// A sub-tree as a body of its own (each item of an array, for instance).
    /// The whole body as JSON.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// A body from a JSON value already parsed (tests and callers that build one).
    pub fn of(value: &Value) -> Body {
        Body(value.clone())
    }
}

/// A JSON answer with a status.
pub fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// ARM's 404 for a resource that is not there, in ARM's words.
pub fn resource_not_found(kind: &str, name: &str, resource_group: &str) -> RestError {
    RestError::new(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{kind}/{}' under resource group '{}' was not found. For more details \
             please go to https://aka.ms/ARMResourceNotFoundFix",
            echo(name),
            echo(resource_group)
        ),
    )
}

/// One ARM request: the shared state, the headers (token, host) and the api-version.
pub(crate) struct Arm {
    state: Arc<AppState>,
    headers: HeaderMap,
    api_version: String,
}

impl Arm {
    /// `message` carrying the caller's bearer token, for a service that checks it (Key Vault).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        forward(bearer(&self.headers).as_deref(), message)
    }

    /// The storage channel, forwarding the caller's token: storage checks it and the caller's
    /// role when it is guarded (`cmksim_identity::guard`).
    fn storage(&self) -> cmksim_identity::AuthChannel {
        cmksim_identity::AuthChannel::forwarding(
            self.state.upstream.storage.clone(),
            bearer(&self.headers),
        )
    }

    /// The caller, its ARM token verified here (the door's own ARM errors come first).
    fn caller(&self) -> RestResult<Caller> {
        management_caller(&self.state, &self.headers)
    }

    /// `https://{host the client used}`.
    fn base_url(&self) -> String {
        crate::identity::base_url(&self.state, &self.headers)
    }
}

fn method_not_allowed(method: &Method) -> RestError {
    RestError::new(
        405,
        "MethodNotAllowed",
        format!(
            "The requested resource does not support http method '{}'.",
            echo(method.as_str())
        ),
    )
}

async fn dispatch(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(path) = ArmPath::parse(uri.path()) else {
        return crate::error::not_found(method, uri).await.into_response();
    };
    let api_version = match api_version(query.as_deref()) {
        Ok(version) => version,
        Err(e) => return e.into_response(),
    };
    let arm = Arm {
        state,
        headers,
        api_version,
    };
    route(&arm, &method, path, &bytes)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn route(arm: &Arm, method: &Method, path: ArmPath, bytes: &Bytes) -> RestResult<Response> {
    use ArmPath as P;
    let body = || Body::parse(bytes);
    match (method.as_str(), path) {
        ("PUT", P::Vault(id)) => vaults::put(arm, &id, &body()?).await,
        ("GET", P::Vault(id)) => vaults::get(arm, &id).await,
        ("PATCH", P::Vault(id)) => vaults::patch(arm, &id, &body()?).await,
        ("DELETE", P::Vault(id)) => vaults::delete(arm, &id).await,
        (
            "GET",
            P::Vaults {
                subscription,
                resource_group,
            },
        ) => vaults::list(arm, &subscription, resource_group.as_deref()).await,
        ("PUT", P::VaultAccessPolicy { vault, kind }) => {
            vaults::update_access_policy(arm, &vault, kind, &body()?).await
        }
        (
            "GET",
            P::DeletedVault {
                subscription,
                location,
                name,
            },
        ) => vaults::get_deleted(arm, &subscription, &location, &name).await,
        ("POST", P::PurgeDeletedVault { name, .. }) => vaults::purge(arm, &name).await,
        ("PUT", P::Cluster(id)) => clusters::put(arm, &id, &body()?).await,
        ("PATCH", P::Cluster(id)) => clusters::patch(arm, &id, &body()?).await,
        ("GET", P::Cluster(id)) => clusters::get(arm, &id).await,
        ("DELETE", P::Cluster(id)) => clusters::delete(arm, &id).await,
        (
            "GET",
            P::Clusters {
                subscription,
                resource_group,
            },
        ) => clusters::list(arm, &subscription, resource_group.as_deref()).await,
        ("PUT", P::Workspace(id)) => workspaces::put(arm, &id, &body()?).await,
        ("PATCH", P::Workspace(id)) => workspaces::patch(arm, &id, &body()?).await,
        ("GET", P::Workspace(id)) => workspaces::get(arm, &id).await,
        ("DELETE", P::Workspace(id)) => workspaces::delete(arm, &id).await,
        ("PUT", P::LinkedService { workspace, name }) => {
            workspaces::link(arm, &workspace, &name, &body()?).await
        }
        ("GET", P::LinkedService { workspace, name }) => {
            workspaces::get_link(arm, &workspace, &name).await
        }
        ("DELETE", P::LinkedService { workspace, name }) => {
            workspaces::unlink(arm, &workspace, &name).await
        }
        ("POST", P::WorkspacePurge(ws)) => lifecycle::purge(arm, &ws, &body()?).await,
        ("GET", P::PurgeStatus { workspace, id }) => {
            lifecycle::purge_status(arm, &workspace, &id).await
        }
        ("DELETE", P::Table { workspace, table }) => {
            lifecycle::delete_table(arm, &workspace, &table).await
        }
        (m @ ("PUT" | "PATCH"), P::Table { workspace, table }) => {
            lifecycle::put_table(arm, m, &workspace, &table, &body()?).await
        }
        ("GET", P::Table { workspace, table }) => {
            lifecycle::get_table(arm, &workspace, &table).await
        }
        (m @ ("PUT" | "GET" | "DELETE"), P::WorkspaceLock { workspace, name }) => {
            let body = if m == "PUT" { Some(body()?) } else { None };
            lifecycle::lock(arm, m, &workspace, &name, body.as_ref()).await
        }
        ("PUT", P::StorageAccount(id)) => byos::put_account(arm, &id, &body()?).await,
        ("GET", P::StorageAccount(id)) => byos::get_account(arm, &id).await,
        (
            "PUT",
            P::LinkedStorageAccount {
                workspace,
                data_source_type,
            },
        ) => byos::link(arm, &workspace, &data_source_type, &body()?).await,
        (
            "GET",
            P::LinkedStorageAccount {
                workspace,
                data_source_type,
            },
        ) => byos::get_link(arm, &workspace, &data_source_type).await,
        (
            "DELETE",
            P::LinkedStorageAccount {
                workspace,
                data_source_type,
            },
        ) => byos::unlink(arm, &workspace, &data_source_type).await,
        ("PUT", P::SavedSearch { workspace, id }) => {
            byos::put_search(arm, &workspace, &id, &body()?).await
        }
        ("GET", P::SavedSearch { workspace, id }) => byos::get_search(arm, &workspace, &id).await,
        ("GET", P::SavedSearches(workspace)) => byos::list_searches(arm, &workspace).await,
        ("PUT", P::DataCollectionRule(id)) => dcrs::put(arm, &id, &body()?).await,
        ("GET", P::DataCollectionRule(id)) => dcrs::get(arm, &id).await,
        ("DELETE", P::DataCollectionRule(id)) => dcrs::delete(arm, &id).await,
        (
            "GET",
            P::DataCollectionRules {
                subscription,
                resource_group,
            },
        ) => dcrs::list(arm, &subscription, resource_group.as_deref()).await,
        (
            "GET",
            P::OperationStatus {
                subscription,
                operation_id,
                ..
            },
        ) => operations::status(arm, &subscription, &operation_id).await,
        _ => Err(method_not_allowed(method)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rid(s: &str, rg: &str, n: &str) -> ResourceId {
        ResourceId {
            subscription: s.into(),
            resource_group: rg.into(),
            name: n.into(),
        }
    }

    #[test]
    fn paths_parse_without_case_as_the_seeds_spell_them() {
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1"
            ),
            Some(ArmPath::Cluster(rid("s1", "rg", "c1")))
        );
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s1/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws/linkedservices/cluster"
            ),
            Some(ArmPath::LinkedService {
                workspace: rid("s1", "rg", "ws"),
                name: "cluster".into()
            })
        );
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s1/providers/microsoft.operationalInsights/locations/westeurope/operationstatuses/op-1"
            ),
            Some(ArmPath::OperationStatus {
                subscription: "s1".into(),
                location: "westeurope".into(),
                operation_id: "op-1".into()
            })
        );
        assert_eq!(
            ArmPath::parse("/subscriptions/s1/providers/Microsoft.OperationalInsights/clusters"),
            Some(ArmPath::Clusters {
                subscription: "s1".into(),
                resource_group: None
            })
        );
    }

    #[test]
    fn key_vault_paths_parse() {
        let vault = rid("s", "rg", "kv1");
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
            ),
            Some(ArmPath::Vault(vault.clone()))
        );
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/accessPolicies/Add"
            ),
            Some(ArmPath::VaultAccessPolicy {
                vault,
                kind: PolicyKind::Add
            })
        );
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv1/purge"
            ),
            Some(ArmPath::PurgeDeletedVault {
                subscription: "s".into(),
                location: "eastus".into(),
                name: "kv1".into()
            })
        );
        assert_eq!(
            ArmPath::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults"
            ),
            Some(ArmPath::Vaults {
                subscription: "s".into(),
                resource_group: Some("rg".into())
            })
        );
    }

    #[test]
    fn paths_the_door_does_not_serve_are_none() {
        for path in [
            "/subscriptions/s",
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/blobServices/default",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/accessPolicies/merge",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c/x",
            "/tenants/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c",
        ] {
            assert_eq!(ArmPath::parse(path), None, "{path}");
        }
        let long = format!("/subscriptions/s{}", "/x".repeat(PATH_SEGMENTS_MAX));
        assert_eq!(ArmPath::parse(&long), None);
    }

    #[test]
    fn a_resource_id_round_trips_through_the_parser() {
        let id = rid("s", "rg", "c1");
        let arm_id = id.arm_id(INSIGHTS_PROVIDER, "clusters");
        assert_eq!(ArmPath::parse(&arm_id), Some(ArmPath::Cluster(id)));
    }

    #[test]
    fn api_version_is_required_and_must_look_like_one() {
        let missing = api_version(None).unwrap_err();
        assert_eq!(missing.status, 400);
        assert_eq!(missing.code, "MissingApiVersionParameter");
        assert_eq!(
            missing.message,
            "The api-version query parameter (?api-version=) is required for all requests."
        );
        assert_eq!(
            api_version(Some("api-version=")).unwrap_err().code,
            "MissingApiVersionParameter"
        );
        assert_eq!(
            api_version(Some("x=1&api-version=2025-07-01")).unwrap(),
            "2025-07-01"
        );
        assert_eq!(
            api_version(Some("api-version=2099-01-01-preview")).unwrap(),
            "2099-01-01-preview"
        );
        assert_eq!(
            api_version(Some("api-version=a%0Db")).unwrap_err().code,
            "InvalidApiVersionParameter"
        );
    }

    #[test]
    fn body_properties_are_found_without_case_and_typed() {
        let body = Body::parse(
            br#"{"sku":{"name":"capacityReservation","Capacity":1000},
                 "properties":{"KeyVaultProperties":{"KeyVaultUri":"https://kv.vault.azure.net"},
                               "billingType":null, "isDoubleEncryptionEnabled": true},
                 "tags":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(body.u32(&["sku", "capacity"]).unwrap(), Some(1000));
        assert_eq!(
            body.string(&["properties", "keyVaultProperties", "keyVaultUri"])
                .unwrap()
                .as_deref(),
            Some("https://kv.vault.azure.net")
        );
        assert_eq!(
            body.string(&["properties", "billingType"]).unwrap(),
            None,
            "null is absent"
        );
        assert_eq!(
            body.bool(&["properties", "isDoubleEncryptionEnabled"])
                .unwrap(),
            Some(true)
        );
        assert_eq!(body.tags().unwrap().get("a").map(String::as_str), Some("b"));
        let wrong = body.string(&["sku", "capacity"]).unwrap_err();
        assert_eq!(wrong.code, "InvalidRequestContent");
        assert!(
            wrong.message.contains("'sku.capacity' must be a string"),
            "{}",
            wrong.message
        );
    }

    #[test]
    fn an_empty_body_is_null_and_a_malformed_one_is_arms_400() {
        assert_eq!(Body::parse(b"  ").unwrap(), Body(Value::Null));
        assert!(!Body::parse(b"").unwrap().has(&["location"]));
        let e = Body::parse(b"{\"location\": ").unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (400, "InvalidRequestContent"));
        assert!(
            e.message.starts_with("The request content was invalid"),
            "{}",
            e.message
        );
        let long = format!("{{\"{}\"", "x".repeat(10_000));
        assert!(Body::parse(long.as_bytes()).unwrap_err().message.len() < 400);
        let array = Body::parse(&serde_json::to_vec(&json!([1, 2])).unwrap()).unwrap();
        assert!(
            !array.has(&["location"]),
            "a body that is no object has no properties"
        );
    }
}
