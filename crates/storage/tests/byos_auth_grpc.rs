//! Queries in the customer's own storage are guarded like the rest of storage (issue 17, defect
//! 7): a real Key Vault (hosting the identity authority) and a real, guarded storage server on
//! 127.0.0.1:0. `storage.v1.Byos` — storage accounts, a workspace's linked storage accounts and
//! its saved searches — needs a management token of the workspace's tenant and a role: writing
//! is a Contributor's (Owner here), reading a Reader's. Before `storage.v1.Byos` was guarded,
//! every call below without a token or without a role was answered.

mod guarded;

use cmksim_identity::audience;
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::{Clock, EventLog, Profile, SimTime};
use guarded::{arm_code, assign, channel, principal, tenant, token, with_token, Guarded};
use tonic::Code;

const SUB: &str = "00000000-0000-0000-0000-0000000000c1";
const RG: &str = "rg1";
const WS: &str = "ws-byos";
const ACCOUNT: &str = "queries1";

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

/// Asserts `refused` is ARM's 403 naming `action`.
fn assert_forbidden(refused: &tonic::Status, action: &str) {
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(arm_code(refused), "AuthorizationFailed", "{refused:?}");
    assert!(refused.message().contains(action), "{}", refused.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_searches_and_storage_accounts_need_a_token_and_a_role() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::tokio(SimTime(1_700_000_000_000), 1.0);
    let services = Guarded::start(
        dir.path(),
        &clock,
        &EventLog::default(),
        &Profile::builtin("azure-2020").unwrap(),
    )
    .await;
    let st_uri = services.st_uri.clone();
    let mut identity = services.identity(&clock);

    // Tenant contoso: its owner (Owner of the subscription), a reader (Reader at the
    // workspace), a stranger (no role); tenant fabrikam's mallory owns nothing here.
    let contoso = tenant(&mut identity, "contoso").await;
    let fabrikam = tenant(&mut identity, "fabrikam").await;
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
    let owner_token = token(&mut identity, &owner, audience::MANAGEMENT).await;
    let reader_token = token(&mut identity, &reader, audience::MANAGEMENT).await;
    let stranger_token = token(&mut identity, &stranger, audience::MANAGEMENT).await;
    let mallory_token = token(&mut identity, &mallory, audience::MANAGEMENT).await;

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
