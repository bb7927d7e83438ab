//! Queries in the customer's own storage are guarded like the rest of storage (issue 17, defect
//! 7): a real Key Vault (hosting the identity authority) and a real, guarded storage server on
//! 127.0.0.1:0. `storage.v1.Byos` — storage accounts, a workspace's linked storage accounts and
//! its saved searches — needs a management token of the workspace's tenant and a role: writing
//! is a Contributor's (Owner here), reading a Reader's. Before `storage.v1.Byos` was guarded,
//! every call below without a token or without a role was answered.

use cmksim_identity::{audience, AdminCredentials, Guard};
use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
use cmksim_proto::common::v1 as cpb;
use cmksim_proto::identity::v1 as idpb;
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::net::Network;
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use cmksim_storage::{StorageConfig, StorageServer};
use tonic::transport::Channel;
use tonic::Code;

const SUB: &str = "00000000-0000-0000-0000-0000000000c1";
const RG: &str = "rg1";
const WS: &str = "ws-byos";
const ACCOUNT: &str = "queries1";

type Identity = idpb::identity_client::IdentityClient<cmksim_identity::AuthChannel>;

fn channel(uri: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(uri.to_string())
        .unwrap()
        .connect_lazy()
}

fn with_token<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn ws_ref() -> pb::WorkspaceRef {
    pb::WorkspaceRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        workspace_name: WS.into(),
    }
}

fn account_ref() -> pb::StorageAccountRef {
    pb::StorageAccountRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        account_name: ACCOUNT.into(),
    }
}

fn save(name: &str) -> pb::SaveQueryRequest {
    pb::SaveQueryRequest {
        workspace: Some(ws_ref()),
        kind: "Query".into(),
        name: name.into(),
        category: "ops".into(),
        display_name: name.into(),
        query: "Event | take 5".into(),
    }
}

fn list() -> pb::ListSavedQueriesRequest {
    pb::ListSavedQueriesRequest {
        workspace: Some(ws_ref()),
        kind: "Query".into(),
    }
}

fn arm_code(status: &tonic::Status) -> String {
    use prost::Message;
    cpb::AzureError::decode(status.details())
        .map(|e| e.code)
        .unwrap_or_default()
}

/// Asserts `refused` is ARM's 403 naming `action`.
fn assert_forbidden(refused: &tonic::Status, action: &str) {
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(arm_code(refused), "AuthorizationFailed", "{refused:?}");
    assert!(refused.message().contains(action), "{}", refused.message());
}

struct Principal {
    oid: String,
    secret: String,
}

async fn principal(identity: &mut Identity, tenant: &str, name: &str) -> Principal {
    let created = identity
        .create_principal(idpb::CreatePrincipalRequest {
            tenant_id: tenant.into(),
            display_name: name.into(),
            kind: idpb::PrincipalKind::ServicePrincipal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    Principal {
        oid: created.principal.unwrap().object_id,
        secret: created.secret,
    }
}

async fn assign(identity: &mut Identity, scope: &str, role: &str, who: &Principal) {
    identity
        .create_role_assignment(idpb::CreateRoleAssignmentRequest {
            scope: scope.into(),
            role: role.into(),
            principal_id: who.oid.clone(),
            name: String::new(),
        })
        .await
        .unwrap();
}

async fn management_token(identity: &mut Identity, who: &Principal) -> String {
    identity
        .issue_token(idpb::IssueTokenRequest {
            object_id: who.oid.clone(),
            secret: who.secret.clone(),
            audience: audience::MANAGEMENT.into(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// Key Vault (its identity authority's administrator) and a guarded storage server.
async fn start(dir: &std::path::Path, clock: &Clock) -> (AdminCredentials, String, String) {
    let events = EventLog::default();
    let kv_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kv_uri = format!("http://{}", kv_listener.local_addr().unwrap());
    let kv = KeyVaultServer::open(
        &dir.join("kv"),
        clock.clone(),
        SeedTree::new(7),
        events.clone(),
        KeyVaultConfig {
            os_key_material: false,
            without_hsm: false,
        },
    )
    .unwrap();
    let admin = kv
        .identity()
        .lock()
        .unwrap()
        .admin_credentials()
        .cloned()
        .expect("made on the first start");
    tokio::spawn(async move {
        kv.serve_with_incoming(
            cmksim_sim::net::tcp_incoming(kv_listener),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    let st_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let st_uri = format!("http://{}", st_listener.local_addr().unwrap());
    let storage = StorageServer::open(StorageConfig::new(
        dir.join("storage"),
        clock.clone(),
        SeedTree::new(11),
        events,
        Profile::builtin("azure-2020").unwrap(),
        Network::Tcp,
        &kv_uri,
    ))
    .unwrap()
    .with_guard(Guard::remote(channel(&kv_uri), clock.clone()));
    tokio::spawn(async move {
        storage
            .serve_with_incoming(
                cmksim_sim::net::tcp_incoming(st_listener),
                std::future::pending(),
            )
            .await
            .unwrap();
    });
    (admin, kv_uri, st_uri)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_searches_and_storage_accounts_need_a_token_and_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::tokio(SimTime(1_700_000_000_000), 1.0);
    let (admin, kv_uri, st_uri) = start(dir.path(), &clock).await;
    let mut identity = Identity::new(admin.channel(channel(&kv_uri), clock.clone()));

    // Tenant contoso: its owner (Owner of the subscription), a reader (Reader at the
    // workspace), a stranger (no role); tenant fabrikam's mallory owns nothing here.
    let contoso = identity
        .create_tenant(idpb::CreateTenantRequest {
            name: "contoso".into(),
            tenant_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant_id;
    let fabrikam = identity
        .create_tenant(idpb::CreateTenantRequest {
            name: "fabrikam".into(),
            tenant_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant_id;
    let owner = principal(&mut identity, &contoso, "owner").await;
    let reader = principal(&mut identity, &contoso, "reader").await;
    let stranger = principal(&mut identity, &contoso, "stranger").await;
    let mallory = principal(&mut identity, &fabrikam, "mallory").await;
    assign(
        &mut identity,
        &format!("/subscriptions/{SUB}"),
        "Owner",
        &owner,
    )
    .await;
    let ws_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/{WS}"
    );
    assign(&mut identity, &ws_id, "Reader", &reader).await;
    let owner_token = management_token(&mut identity, &owner).await;
    let reader_token = management_token(&mut identity, &reader).await;
    let stranger_token = management_token(&mut identity, &stranger).await;
    let mallory_token = management_token(&mut identity, &mallory).await;

    pb::workspaces_client::WorkspacesClient::new(channel(&st_uri))
        .create_workspace(with_token(
            Some(&owner_token),
            pb::CreateWorkspaceRequest {
                workspace: Some(ws_ref()),
                location: "westeurope".into(),
                retention_in_days: 0,
            },
        ))
        .await
        .expect("the owner creates the workspace");
    let mut byos = pb::byos_client::ByosClient::new(channel(&st_uri));

    // Without a token: ARM's 401, and nothing saved.
    let refused = byos
        .save_query(with_token(None, save("anonymous")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(arm_code(&refused), "AuthenticationFailed");
    let refused = byos
        .list_saved_queries(with_token(None, list()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The owner saves a search.
    byos.save_query(with_token(Some(&owner_token), save("errors")))
        .await
        .expect("the owner saves a search");

    // Another tenant's token: ARM's 401 InvalidAuthenticationTokenTenant, not a role check.
    let refused = byos
        .list_saved_queries(with_token(Some(&mallory_token), list()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(arm_code(&refused), "InvalidAuthenticationTokenTenant");

    // A principal of the tenant without a role at the workspace: 403 naming the action.
    let refused = byos
        .list_saved_queries(with_token(Some(&stranger_token), list()))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.OperationalInsights/workspaces/read");
    let refused = byos
        .get_saved_query(with_token(
            Some(&stranger_token),
            pb::SavedQueryRef {
                workspace: Some(ws_ref()),
                kind: "Query".into(),
                name: "errors".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.OperationalInsights/workspaces/read");

    // A Reader reads the saved searches but does not write them, nor link an account.
    let listed = byos
        .list_saved_queries(with_token(Some(&reader_token), list()))
        .await
        .expect("a Reader lists the saved searches")
        .into_inner();
    let names: Vec<&str> = listed.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["errors"], "nothing was saved by a refused call");
    let read = byos
        .get_saved_query(with_token(
            Some(&reader_token),
            pb::SavedQueryRef {
                workspace: Some(ws_ref()),
                kind: "Query".into(),
                name: "errors".into(),
            },
        ))
        .await
        .expect("a Reader reads a saved search")
        .into_inner();
    assert_eq!(read.query, "Event | take 5");
    let refused = byos
        .save_query(with_token(Some(&reader_token), save("by-reader")))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.OperationalInsights/workspaces/write");
    let account_id = format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
    );
    let refused = byos
        .link_storage_account(with_token(
            Some(&reader_token),
            pb::LinkStorageAccountRequest {
                workspace: Some(ws_ref()),
                data_source_type: "Query".into(),
                storage_account_ids: vec![account_id.clone()],
            },
        ))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.OperationalInsights/workspaces/write");

    // Storage accounts: written by the owner at the account, not by a Reader of the workspace
    // (nor read by it: its role is at the workspace, not the account).
    let put = pb::PutStorageAccountRequest {
        account: Some(account_ref()),
        location: "westeurope".into(),
        tenant_id: contoso.clone(),
        key_source: String::new(),
        key_vault_properties: None,
    };
    let refused = byos
        .put_storage_account(with_token(Some(&reader_token), put.clone()))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.Storage/storageAccounts/write");
    let refused = byos
        .put_storage_account(with_token(None, put.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    byos.put_storage_account(with_token(Some(&owner_token), put))
        .await
        .expect("the owner creates the account");
    let refused = byos
        .get_storage_account(with_token(Some(&reader_token), account_ref()))
        .await
        .unwrap_err();
    assert_forbidden(&refused, "Microsoft.Storage/storageAccounts/read");
    let account = byos
        .get_storage_account(with_token(Some(&owner_token), account_ref()))
        .await
        .expect("the owner reads the account")
        .into_inner();
    assert_eq!(account.tenant_id, contoso);

    // The owner links it (its saved searches leave the workspace, seed 000); the Reader reads
    // the link.
    let linked = byos
        .link_storage_account(with_token(
            Some(&owner_token),
            pb::LinkStorageAccountRequest {
                workspace: Some(ws_ref()),
                data_source_type: "Query".into(),
                storage_account_ids: vec![account_id.clone()],
            },
        ))
        .await
        .expect("the owner links the account")
        .into_inner();
    assert_eq!(linked.saved_searches_removed, 1);
    let link = byos
        .get_linked_storage_account(with_token(
            Some(&reader_token),
            pb::LinkedStorageAccountRef {
                workspace: Some(ws_ref()),
                data_source_type: "Query".into(),
            },
        ))
        .await
        .expect("a Reader reads the link")
        .into_inner();
    assert_eq!(link.storage_account_ids.len(), 1, "{link:?}");
    assert!(
        link.storage_account_ids[0].eq_ignore_ascii_case(&account_id),
        "{link:?}"
    );
}
