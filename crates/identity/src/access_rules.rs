//! What each guarded gRPC method needs: the token audience, and the action and scope a role
//! must grant. One table for both sides: the servers' guard ([`crate::guard`]) checks it, and the
//! clients' token layer ([`crate::client`]) picks the audience of the token it attaches from it.
//!
//! The audiences follow Azure's split: the control plane (clusters, workspaces, links, table
//! declarations, storage accounts, linked storage accounts, saved searches) is Azure Resource
//! Manager's (`https://management.azure.com`); sending logs is
//! Azure Monitor's (`https://monitor.azure.com`, the Logs Ingestion API's scope); reading them
//! is Log Analytics' (`https://api.loganalytics.io`).
//!
//! The scope is read from the request itself (the ARM id it names), so a caller cannot name one
//! resource in the metadata and act on another. Two requests name no resource:
//! `FindWorkspace` (a customer id; the data it leads to is guarded by the query that follows)
//! needs only a valid token; the statistics and metrics over every tenant (`GetStats` without a
//! resource, ingest's `GetMetrics`) need a role at the root scope `/`, which only the
//! simulator's own service principals have. Health, reflection and the Events stream stay
//! open: they carry no tenant's data. Any other method of a guarded service is refused
//! (fail closed), so a new rpc is not open by accident.

use prost::Message;

use cmksim_proto::ingest::v1 as ipb;
use cmksim_proto::sentinel::v1 as sepb;
use cmksim_proto::storage::v1 as spb;

use crate::grpc_auth::AuthError;
use crate::roles::{Action, ROOT_SCOPE};
use crate::token::audience;

/// The services whose methods are guarded (gRPC path prefixes).
pub const GUARDED_SERVICES: [&str; 8] = [
    "/storage.v1.Clusters/",
    "/storage.v1.Workspaces/",
    "/storage.v1.DataPlane/",
    "/storage.v1.Lockbox/",
    "/storage.v1.Byos/",
    "/ingest.v1.Ingestion/",
    "/ingest.v1.Query/",
    "/sentinel.v1.Sentinel/",
];

/// The `identity.v1.Identity` methods that need a management token of a principal allowed to
/// administer (checked by the identity service itself, not by the guard layer): an
/// administrator's, or for `CreateManagedIdentity` a first-party resource provider's.
/// `CheckAccess` needs a valid token (the service checks it too: [`crate::service`]); the rest
/// (tokens, signing keys) stay open.
pub const IDENTITY_ADMIN_METHODS: [&str; 6] = [
    "CreateTenant",
    "CreatePrincipal",
    "DeletePrincipal",
    "CreateRoleAssignment",
    "DeleteRoleAssignment",
    "CreateManagedIdentity",
];

/// What a call needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub audience: &'static str,
    /// The action and the scope it is checked at; `None`: a valid token is enough.
    pub access: Option<(Action, String)>,
}

/// True when `path` belongs to a guarded service.
pub fn is_guarded(path: &str) -> bool {
    GUARDED_SERVICES.iter().any(|s| path.starts_with(s))
}

/// The audience a call to `path` needs (`None`: an open method or an unknown one).
pub fn audience_of(path: &str) -> Option<&'static str> {
    let (service, method) = split(path)?;
    Some(match (service, method) {
        ("storage.v1.DataPlane", "Append") => audience::MONITOR,
        ("ingest.v1.Ingestion", "Ingest" | "RegisterCustomTable") => audience::MONITOR,
        ("storage.v1.DataPlane", "Query") | ("ingest.v1.Query", _) => audience::LOG_ANALYTICS,
        ("storage.v1.Workspaces", "FindWorkspace") => audience::LOG_ANALYTICS,
        ("storage.v1.Clusters" | "storage.v1.Workspaces" | "storage.v1.DataPlane", _) => {
            audience::MANAGEMENT
        }
        ("ingest.v1.Ingestion", _) => audience::MANAGEMENT,
        // The query path's Lockbox gate is asked with the querying service's Log Analytics token.
        ("storage.v1.Lockbox", "AuthorizeLockboxQuery") => audience::LOG_ANALYTICS,
        // Customer Lockbox is ARM's (Microsoft.CustomerLockbox).
        ("storage.v1.Lockbox", _) => audience::MANAGEMENT,
        // Sentinel's API is ARM's (Microsoft.SecurityInsights).
        ("sentinel.v1.Sentinel", _) => audience::MANAGEMENT,
        // Storage accounts, linked storage accounts and saved searches are ARM resources
        // (Microsoft.Storage/storageAccounts, Microsoft.OperationalInsights/workspaces/
        // linkedStorageAccounts and savedSearches).
        ("storage.v1.Byos", _) => audience::MANAGEMENT,
        // The identity service checks its administrative calls itself (`crate::service`), with a
        // management token, as ARM checks role assignments.
        ("identity.v1.Identity", method) if IDENTITY_ADMIN_METHODS.contains(&method) => {
            audience::MANAGEMENT
        }
        // Any audience of the authority answers; a principal asking in its own name (the door,
        // about its callers) sends a management token.
        ("identity.v1.Identity", "CheckAccess") => audience::MANAGEMENT,
        _ => return None,
    })
}

fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

/// The `workspace_id = 1` of a batch of records (`storage.v1.AppendRequest`,
/// `ingest.v1.IngestRequest`) and nothing else: prost steps over the other fields without
/// decoding them, so the guard reads a batch's scope without decoding its records a second time
/// (the service decodes them once, after the guard). The test
/// `a_batch_scope_is_read_without_its_records` holds it to both generated messages.
#[derive(Clone, PartialEq, Message)]
struct BatchScope {
    #[prost(string, tag = "1")]
    workspace_id: String,
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, AuthError> {
    M::decode(bytes).map_err(|e| AuthError::UnreadableRequest(e.to_string()))
}

fn cluster_id(c: &Option<spb::ClusterRef>) -> String {
    let c = c.clone().unwrap_or_default();
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/clusters/{}",
        c.subscription_id, c.resource_group, c.cluster_name
    )
}

fn storage_account_id(a: &Option<spb::StorageAccountRef>) -> String {
    let a = a.clone().unwrap_or_default();
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{}",
        a.subscription_id, a.resource_group, a.account_name
    )
}

fn workspace_id(w: &Option<spb::WorkspaceRef>) -> String {
    let w = w.clone().unwrap_or_default();
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
        w.subscription_id, w.resource_group, w.workspace_name
    )
}

/// What the call to `path` with the encoded request `message` needs; `Ok(None)` for a method
/// that is not guarded. An unknown method of a guarded service is refused.
pub fn need_of(path: &str, message: &[u8]) -> Result<Option<Need>, AuthError> {
    if !is_guarded(path) {
        return Ok(None);
    }
    let unknown = || {
        AuthError::UnreadableRequest(format!(
            "{} has no access rule",
            cmksim_sim::text::echo(path)
        ))
    };
    let (service, method) = split(path).ok_or_else(unknown)?;
    let aud = audience_of(path).ok_or_else(unknown)?;
    use Action::*;
    let access: Option<(Action, String)> = match (service, method) {
        ("storage.v1.Clusters", "CreateCluster") => Some((
            ClustersWrite,
            cluster_id(&decode::<spb::CreateClusterRequest>(message)?.cluster),
        )),
        ("storage.v1.Clusters", "UpdateCluster") => Some((
            ClustersWrite,
            cluster_id(&decode::<spb::UpdateClusterRequest>(message)?.cluster),
        )),
        ("storage.v1.Clusters", "DeleteCluster" | "RecoverCluster") => Some((
            ClustersWrite,
            cluster_id(&Some(decode::<spb::ClusterRef>(message)?)),
        )),
        ("storage.v1.Clusters", "GetCluster") | ("storage.v1.DataPlane", "GetStorageState") => {
            Some((
                ClustersRead,
                cluster_id(&Some(decode::<spb::ClusterRef>(message)?)),
            ))
        }
        ("storage.v1.Clusters", "ListClustersByResourceGroup") => {
            let r = decode::<spb::ListClustersByResourceGroupRequest>(message)?;
            Some((
                ClustersRead,
                format!(
                    "/subscriptions/{}/resourceGroups/{}",
                    r.subscription_id, r.resource_group
                ),
            ))
        }
        ("storage.v1.Clusters", "ListClustersBySubscription") => {
            let r = decode::<spb::ListClustersBySubscriptionRequest>(message)?;
            Some((
                ClustersRead,
                format!("/subscriptions/{}", r.subscription_id),
            ))
        }
        ("storage.v1.Clusters", "GetOperationStatus") => {
            let r = decode::<spb::OperationRef>(message)?;
            Some((
                ClustersRead,
                format!("/subscriptions/{}", r.subscription_id),
            ))
        }
        ("storage.v1.Workspaces", "CreateWorkspace") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::CreateWorkspaceRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "UpdateRetention") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::UpdateRetentionRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "SetLock") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::SetLockRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "LinkWorkspace") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::LinkWorkspaceRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "UnlinkWorkspace") => Some((
            WorkspacesWrite,
            workspace_id(&Some(decode::<spb::WorkspaceRef>(message)?)),
        )),
        ("storage.v1.Workspaces", "GetWorkspace") => Some((
            WorkspacesRead,
            workspace_id(&Some(decode::<spb::WorkspaceRef>(message)?)),
        )),
        // Declaring a custom table's columns goes with sending its records.
        ("storage.v1.Workspaces", "DeclareTable") => Some((
            TelemetryWrite,
            workspace_id(&decode::<spb::DeclareTableRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "GetTable") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::GetTableRequest>(message)?.workspace),
        )),
        // Data lifecycle (seed 003): deleting data and locks are workspace writes.
        ("storage.v1.Workspaces", "Purge") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::PurgeRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "GetPurgeStatus") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::PurgeStatusRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "DeleteTable") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::DeleteTableRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "PutLock" | "DeleteLock") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::LockRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "GetLock") => Some((
            WorkspacesRead,
            workspace_id(&Some(decode::<spb::WorkspaceRef>(message)?)),
        )),
        // A table's retention (issue 14): setting it is a workspace write (the lock refuses a
        // decrease in storage), reading it a workspace read.
        ("storage.v1.Workspaces", "SetTableRetention") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::SetTableRetentionRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "GetTableRetention") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::GetTableRequest>(message)?.workspace),
        )),
        ("storage.v1.Workspaces", "FindWorkspace") => None,
        // Customer Lockbox (seeds 001, 003): enabling it is a cluster write; the customer's
        // answer a workspace write at the workspace the request is for (Owner or Contributor);
        // a support engineer's request and access check need only a valid token, because the
        // requester is the token's principal (the guard hands the caller on to storage).
        ("storage.v1.Lockbox", "EnableLockbox") => Some((
            ClustersWrite,
            cluster_id(&Some(decode::<spb::ClusterRef>(message)?)),
        )),
        ("storage.v1.Lockbox", "DecideLockboxRequest") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::LockboxDecision>(message)?.workspace),
        )),
        ("storage.v1.Lockbox", "RequestLockboxAccess" | "CheckLockboxAccess") => None,
        // Asked on behalf of another principal (`crate::lockbox_gate`): only a service that
        // reads every workspace (ingest's and the door's principals) may ask.
        ("storage.v1.Lockbox", "AuthorizeLockboxQuery") => {
            Some((QueryRead, ROOT_SCOPE.to_string()))
        }
        // Queries in the customer's own storage (BYOS): a storage account is written and read at
        // its own ARM id; a workspace's linked storage accounts and saved searches (or log-alert
        // queries) are the workspace's sub-resources, written and read at the workspace.
        ("storage.v1.Byos", "PutStorageAccount") => Some((
            StorageAccountsWrite,
            storage_account_id(&decode::<spb::PutStorageAccountRequest>(message)?.account),
        )),
        ("storage.v1.Byos", "GetStorageAccount") => Some((
            StorageAccountsRead,
            storage_account_id(&Some(decode::<spb::StorageAccountRef>(message)?)),
        )),
        ("storage.v1.Byos", "LinkStorageAccount") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::LinkStorageAccountRequest>(message)?.workspace),
        )),
        // Unlinking deletes a child resource of the workspace: a workspace write.
        ("storage.v1.Byos", "UnlinkStorageAccount") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::LinkedStorageAccountRef>(message)?.workspace),
        )),
        ("storage.v1.Byos", "GetLinkedStorageAccount") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::LinkedStorageAccountRef>(message)?.workspace),
        )),
        ("storage.v1.Byos", "SaveQuery") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<spb::SaveQueryRequest>(message)?.workspace),
        )),
        ("storage.v1.Byos", "GetSavedQuery") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::SavedQueryRef>(message)?.workspace),
        )),
        ("storage.v1.Byos", "ListSavedQueries") => Some((
            WorkspacesRead,
            workspace_id(&decode::<spb::ListSavedQueriesRequest>(message)?.workspace),
        )),
        ("storage.v1.DataPlane", "Append") => {
            Some((TelemetryWrite, decode::<BatchScope>(message)?.workspace_id))
        }
        ("storage.v1.DataPlane", "Query") => Some((
            QueryRead,
            decode::<spb::QueryRequest>(message)?.workspace_id,
        )),
        ("storage.v1.DataPlane", "GetStats") => {
            let r = decode::<spb::StatsRequest>(message)?;
            let scope = match (r.workspace_id.is_empty(), r.cluster_resource_id.is_empty()) {
                (false, _) => r.workspace_id,
                (true, false) if r.cluster_resource_id != "shared" => r.cluster_resource_id,
                _ => ROOT_SCOPE.to_string(),
            };
            Some((ClustersRead, scope))
        }
        ("ingest.v1.Ingestion", "Ingest") => {
            Some((TelemetryWrite, decode::<BatchScope>(message)?.workspace_id))
        }
        ("ingest.v1.Ingestion", "RegisterCustomTable") => Some((
            TelemetryWrite,
            decode::<ipb::RegisterCustomTableRequest>(message)?.workspace_id,
        )),
        ("ingest.v1.Ingestion", "GetMetrics") => Some((ClustersRead, ROOT_SCOPE.to_string())),
        ("ingest.v1.Query", "Query") => Some((
            QueryRead,
            decode::<ipb::QueryRequest>(message)?.workspace_id,
        )),
        ("ingest.v1.Query", "Kql") => {
            Some((QueryRead, decode::<ipb::KqlRequest>(message)?.workspace_id))
        }
        // Sentinel (seed 002): registering a resource provider is a write at the subscription;
        // a tenant's Cosmos DB principal is public knowledge (a valid token is enough); the rest
        // acts on a workspace's Sentinel data, as workspace writes and reads.
        ("sentinel.v1.Sentinel", "RegisterResourceProvider") => {
            let r = decode::<sepb::RegisterResourceProviderRequest>(message)?;
            Some((
                WorkspacesWrite,
                format!("/subscriptions/{}", r.subscription_id),
            ))
        }
        ("sentinel.v1.Sentinel", "GetCosmosDbPrincipal") => None,
        ("sentinel.v1.Sentinel", "Onboard") => Some((
            WorkspacesWrite,
            workspace_id(&decode::<sepb::OnboardRequest>(message)?.workspace),
        )),
        ("sentinel.v1.Sentinel", "DeleteWorkspace") => Some((
            WorkspacesWrite,
            workspace_id(&Some(decode::<spb::WorkspaceRef>(message)?)),
        )),
        ("sentinel.v1.Sentinel", "CreateIncident" | "SaveAnalyticsRule" | "SaveWatchlist") => {
            Some((
                WorkspacesWrite,
                workspace_id(&decode::<sepb::SaveItemRequest>(message)?.workspace),
            ))
        }
        ("sentinel.v1.Sentinel", "GetOnboardingState") => Some((
            WorkspacesRead,
            workspace_id(&Some(decode::<spb::WorkspaceRef>(message)?)),
        )),
        ("sentinel.v1.Sentinel", "ListItems") => Some((
            WorkspacesRead,
            workspace_id(&decode::<sepb::ListItemsRequest>(message)?.workspace),
        )),
        _ => return Err(unknown()),
    };
    Ok(Some(Need {
        audience: aud,
        access,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_scope_is_read_without_its_records() {
        let workspace = "/subscriptions/s/resourceGroups/r/providers/x/workspaces/w".to_string();
        let record = spb::Record {
            time_unix_ms: 1,
            ..Default::default()
        };
        let append = spb::AppendRequest {
            workspace_id: workspace.clone(),
            table: "T".into(),
            records: vec![record; 3],
        };
        let ingest = ipb::IngestRequest {
            workspace_id: workspace.clone(),
            table: "T".into(),
            records: vec![ipb::Record::default(); 3],
            declare_columns: vec![ipb::ColumnDeclaration::default()],
        };
        let batches = [
            ("/storage.v1.DataPlane/Append", append.encode_to_vec()),
            ("/ingest.v1.Ingestion/Ingest", ingest.encode_to_vec()),
        ];
        for (path, bytes) in batches {
            assert_eq!(
                decode::<BatchScope>(&bytes).unwrap().workspace_id,
                workspace
            );
            let need = need_of(path, &bytes).unwrap().unwrap();
            let expected = Some((Action::TelemetryWrite, workspace.clone()));
            assert_eq!(need.access, expected, "{path}");
        }
    }

    #[test]
    fn the_scope_comes_from_the_request_and_unknown_methods_fail_closed() {
        let append = spb::AppendRequest {
            workspace_id: "/subscriptions/s/resourceGroups/r/providers/x/workspaces/w".into(),
            ..Default::default()
        };
        let need = need_of("/storage.v1.DataPlane/Append", &append.encode_to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(need.audience, audience::MONITOR);
        assert_eq!(
            need.access,
            Some((Action::TelemetryWrite, append.workspace_id.clone()))
        );
        let list = spb::ListClustersBySubscriptionRequest {
            subscription_id: "s".into(),
        };
        let need = need_of(
            "/storage.v1.Clusters/ListClustersBySubscription",
            &list.encode_to_vec(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(need.audience, audience::MANAGEMENT);
        assert_eq!(
            need.access,
            Some((Action::ClustersRead, "/subscriptions/s".into()))
        );
        assert!(matches!(
            need_of("/storage.v1.DataPlane/Drop", &[]),
            Err(AuthError::UnreadableRequest(_))
        ));
        assert!(matches!(
            need_of("/ingest.v1.Query/Kql", &[0xff, 0xff]),
            Err(AuthError::UnreadableRequest(_))
        ));
        assert_eq!(need_of("/grpc.health.v1.Health/Check", &[]).unwrap(), None);
        assert_eq!(
            audience_of("/ingest.v1.Query/Kql"),
            Some(audience::LOG_ANALYTICS)
        );
        assert_eq!(audience_of("/events.v1.Events/Follow"), None);
        let onboard = sepb::OnboardRequest {
            workspace: Some(spb::WorkspaceRef {
                subscription_id: "s".into(),
                resource_group: "r".into(),
                workspace_name: "w".into(),
            }),
            customer_managed_key: true,
        };
        let need = need_of("/sentinel.v1.Sentinel/Onboard", &onboard.encode_to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(need.audience, audience::MANAGEMENT);
        assert_eq!(
            need.access,
            Some((
                Action::WorkspacesWrite,
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/\
                 workspaces/w"
                    .into()
            ))
        );
        assert!(need_of("/sentinel.v1.Sentinel/Drop", &[]).is_err());
    }

    #[test]
    fn lockbox_decisions_need_the_customers_role_and_requests_a_token() {
        let workspace = spb::WorkspaceRef {
            subscription_id: "s".into(),
            resource_group: "r".into(),
            workspace_name: "w".into(),
        };
        let decision = spb::LockboxDecision {
            request_id: "q".into(),
            approve: true,
            workspace: Some(workspace.clone()),
        };
        let path = "/storage.v1.Lockbox/DecideLockboxRequest";
        assert!(is_guarded(path));
        let need = need_of(path, &decision.encode_to_vec()).unwrap().unwrap();
        assert_eq!(need.audience, audience::MANAGEMENT);
        assert_eq!(
            need.access,
            Some((Action::WorkspacesWrite, workspace_id(&Some(workspace))))
        );
        // A decision without its workspace names no resource a role could cover.
        let bare = spb::LockboxDecision::default().encode_to_vec();
        let need = need_of(path, &bare).unwrap().unwrap();
        let (_, scope) = need.access.unwrap();
        assert!(crate::roles::scope_segments(&scope).is_none(), "{scope}");
        for method in ["RequestLockboxAccess", "CheckLockboxAccess"] {
            let need = need_of(&format!("/storage.v1.Lockbox/{method}"), &[])
                .unwrap()
                .unwrap();
            assert_eq!(need.access, None, "{method}: a valid token is enough");
        }
        // The query path's gate, asked by a service on a querying principal's behalf.
        let path = "/storage.v1.Lockbox/AuthorizeLockboxQuery";
        let need = need_of(path, &[]).unwrap().unwrap();
        assert_eq!(need.audience, audience::LOG_ANALYTICS);
        assert_eq!(
            need.access,
            Some((Action::QueryRead, ROOT_SCOPE.to_string()))
        );
        assert!(need_of("/storage.v1.Lockbox/Drop", &[]).is_err());
    }

    #[test]
    fn byos_is_arms_and_reads_its_scope_from_the_request() {
        let workspace = spb::WorkspaceRef {
            subscription_id: "s".into(),
            resource_group: "r".into(),
            workspace_name: "w".into(),
        };
        let ws = workspace_id(&Some(workspace.clone()));
        let save = spb::SaveQueryRequest {
            workspace: Some(workspace.clone()),
            ..Default::default()
        };
        let path = "/storage.v1.Byos/SaveQuery";
        assert!(is_guarded(path));
        let need = need_of(path, &save.encode_to_vec()).unwrap().unwrap();
        assert_eq!(need.audience, audience::MANAGEMENT);
        assert_eq!(need.access, Some((Action::WorkspacesWrite, ws.clone())));
        let unlink = spb::LinkedStorageAccountRef {
            workspace: Some(workspace.clone()),
            data_source_type: "Query".into(),
        };
        let need = need_of(
            "/storage.v1.Byos/UnlinkStorageAccount",
            &unlink.encode_to_vec(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(need.access, Some((Action::WorkspacesWrite, ws.clone())));
        let list = spb::ListSavedQueriesRequest {
            workspace: Some(workspace),
            kind: "Query".into(),
        };
        let need = need_of("/storage.v1.Byos/ListSavedQueries", &list.encode_to_vec())
            .unwrap()
            .unwrap();
        assert_eq!(need.access, Some((Action::WorkspacesRead, ws)));
        let account = spb::StorageAccountRef {
            subscription_id: "s".into(),
            resource_group: "r".into(),
            account_name: "a".into(),
        };
        let need = need_of(
            "/storage.v1.Byos/GetStorageAccount",
            &account.encode_to_vec(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            need.access,
            Some((
                Action::StorageAccountsRead,
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a"
                    .into()
            ))
        );
        // Read is a Reader's, write a Contributor's (not Log Analytics Contributor's).
        assert!(crate::Role::Reader.allows(Action::StorageAccountsRead));
        assert!(!crate::Role::Reader.allows(Action::StorageAccountsWrite));
        assert!(crate::Role::Contributor.allows(Action::StorageAccountsWrite));
        assert!(!crate::Role::LogAnalyticsContributor.allows(Action::StorageAccountsWrite));
        assert!(need_of("/storage.v1.Byos/Drop", &[]).is_err());
    }
}
