//! Queries in the customer's own storage (seed 000 "CMK for queries", BYOS) against the real
//! storage server, Key Vault and identity authority over gRPC: a storage account's key is
//! validated as the account's own identity with the cluster's rules, linking `Query` removes the
//! workspace's saved searches, later ones are sealed in the account, and they are unreadable
//! (naming the account and the key's state) while the key is disabled, readable again after.

mod common;

use cmksim_proto::storage::v1 as pb;
use common::*;
use tonic::Code;

fn account_ref(name: &str) -> pb::StorageAccountRef {
    pb::StorageAccountRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        account_name: name.into(),
    }
}

fn account_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{name}")
}

fn save(ws: &str, name: &str, query: &str) -> pb::SaveQueryRequest {
    pb::SaveQueryRequest {
        workspace: Some(World::ws_ref(ws)),
        kind: "Query".into(),
        name: name.into(),
        category: "ops".into(),
        display_name: format!("{name} (display)"),
        query: query.into(),
    }
}

fn list(ws: &str) -> pb::ListSavedQueriesRequest {
    pb::ListSavedQueriesRequest {
        workspace: Some(World::ws_ref(ws)),
        kind: "Query".into(),
    }
}

fn kvp(version: &str) -> pb::KeyVaultProperties {
    pb::KeyVaultProperties {
        key_vault_uri: "https://kv1.vault.azure.net".into(),
        key_name: "queries".into(),
        key_version: version.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_searches_follow_the_link_and_the_account_key() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world.vault("kv1", true).await;
    let version = world.key("kv1", "queries").await;
    world.workspace("ws-one").await;
    let mut byos = pb::byos_client::ByosClient::new(world.storage_channel.clone());

    // Two saved searches in the workspace, before any link.
    for (name, q) in [
        ("errors", "Event | where Level == 1"),
        ("slow", "Perf | take 5"),
    ] {
        let saved = byos
            .save_query(save("ws-one", name, q))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(saved.place, "workspace");
    }

    // The account, then its key: refused until its identity may use the key.
    let created = byos
        .put_storage_account(pb::PutStorageAccountRequest {
            account: Some(account_ref("queries1")),
            location: "West Europe".into(),
            tenant_id: world.tenant.clone(),
            key_source: String::new(),
            key_vault_properties: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.key_source, "Microsoft.Storage");
    assert!(!created.principal_id.is_empty());
    let with_key = pb::PutStorageAccountRequest {
        account: Some(account_ref("queries1")),
        location: "westeurope".into(),
        tenant_id: world.tenant.clone(),
        key_source: "Microsoft.Keyvault".into(),
        key_vault_properties: Some(kvp(&version)),
    };
    let refused = byos
        .put_storage_account(with_key.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("Failed to validate key"),
        "{}",
        refused.message()
    );
    world
        .grant(
            "kv1",
            &created.principal_id,
            &["get", "wrapKey", "unwrapKey"],
        )
        .await;
    let encrypted = byos
        .put_storage_account(with_key)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(encrypted.key_source, "Microsoft.Keyvault");
    assert_eq!(encrypted.key_state, "accessible");

    // The seed's rules: one account, the workspace's region.
    let two = byos
        .link_storage_account(pb::LinkStorageAccountRequest {
            workspace: Some(World::ws_ref("ws-one")),
            data_source_type: "Query".into(),
            storage_account_ids: vec![account_id("queries1"), account_id("queries1")],
        })
        .await
        .unwrap_err();
    assert_eq!(two.code(), Code::InvalidArgument);
    let linked = byos
        .link_storage_account(pb::LinkStorageAccountRequest {
            workspace: Some(World::ws_ref("ws-one")),
            data_source_type: "query".into(),
            storage_account_ids: vec![account_id("queries1")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        linked.saved_searches_removed, 2,
        "seed 000: existing ones are removed"
    );
    assert!(byos
        .list_saved_queries(list("ws-one"))
        .await
        .unwrap()
        .into_inner()
        .queries
        .is_empty());

    // A new one lands in the account, sealed: its text is nowhere in the control state.
    let secret = "SecurityEvent | where Account == 'contoso\\\\breakglass'";
    let saved = byos
        .save_query(save("ws-one", "breakglass", secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        saved.place.to_ascii_lowercase(),
        account_id("queries1").to_ascii_lowercase()
    );
    let got = byos
        .get_saved_query(pb::SavedQueryRef {
            workspace: Some(World::ws_ref("ws-one")),
            kind: "Query".into(),
            name: "breakglass".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.query.as_str(), got.category.as_str()), (secret, "ops"));

    // The key disabled: unreadable and unwritable, the error names the account and the key.
    world
        .set_key_enabled("kv1", "queries", &version, false)
        .await;
    let unreadable = byos.list_saved_queries(list("ws-one")).await.unwrap_err();
    assert_eq!(unreadable.code(), Code::PermissionDenied, "{unreadable:?}");
    assert!(
        unreadable.message().contains("queries1"),
        "{}",
        unreadable.message()
    );
    assert!(
        unreadable
            .message()
            .contains("kv1.vault.azure.net/keys/queries"),
        "{}",
        unreadable.message()
    );
    assert!(
        unreadable.message().contains("denied since"),
        "{}",
        unreadable.message()
    );
    let unwritable = byos
        .save_query(save("ws-one", "later", "Heartbeat"))
        .await
        .unwrap_err();
    assert_eq!(unwritable.code(), Code::PermissionDenied);
    assert_eq!(world.events_of("byos.key.lost").len(), 1);

    // Back: readable again, the same text.
    world
        .set_key_enabled("kv1", "queries", &version, true)
        .await;
    let back = byos
        .list_saved_queries(list("ws-one"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.queries.len(), 1);
    assert_eq!(back.queries[0].query, secret);
    assert_eq!(world.events_of("byos.key.restored").len(), 1);
    assert_eq!(world.events_of("byos.saved_searches.removed").len(), 1);

    // A restart keeps the account, its identity, its wrapped key and the sealed query.
    world.restart_storage().await;
    let mut byos = pb::byos_client::ByosClient::new(world.storage_channel.clone());
    let after_restart = byos
        .list_saved_queries(list("ws-one"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_restart.queries.len(), 1);
    assert_eq!(after_restart.queries[0].query, secret);

    // Sealed at rest: the query text is not in the control store's files.
    world.stop_servers().await;
    let mut found = false;
    for entry in walk(&world.storage_dir()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        if bytes
            .windows(b"breakglass'".len())
            .any(|w| w == b"breakglass'")
        {
            found = true;
        }
    }
    assert!(!found, "the sealed query text is on disk in plaintext");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: the data directory of one test holds a few dozen files.
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_in_another_region_or_with_a_bad_name_is_refused() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world.workspace("ws-two").await;
    let mut byos = pb::byos_client::ByosClient::new(world.storage_channel.clone());
    let bad = byos
        .put_storage_account(pb::PutStorageAccountRequest {
            account: Some(account_ref("Bad_Name")),
            location: "westeurope".into(),
            tenant_id: world.tenant.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad
        .message()
        .starts_with("Bad_Name is not a valid storage account name."));
    byos.put_storage_account(pb::PutStorageAccountRequest {
        account: Some(account_ref("faraway1")),
        location: "eastus".into(),
        tenant_id: world.tenant.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let far = byos
        .link_storage_account(pb::LinkStorageAccountRequest {
            workspace: Some(World::ws_ref("ws-two")),
            data_source_type: "Alerts".into(),
            storage_account_ids: vec![account_id("faraway1")],
        })
        .await
        .unwrap_err();
    assert_eq!(far.code(), Code::InvalidArgument);
    assert!(far.message().contains("westeurope"), "{}", far.message());
    world.shutdown().await;
}

/// `DELETE linkedStorageAccounts/{type}` over gRPC: refused while the workspace is locked;
/// then the workspace's saved searches kept in the account leave the workspace (they stay in
/// the account), new ones are saved in the workspace, the event says how many stayed behind,
/// and unlinking again changes nothing. Before `UnlinkStorageAccount`, a link was for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinking_sends_new_saved_searches_back_to_the_workspace() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world.workspace("ws-three").await;
    let mut byos = pb::byos_client::ByosClient::new(world.storage_channel.clone());
    byos.put_storage_account(pb::PutStorageAccountRequest {
        account: Some(account_ref("plainqueries1")),
        location: "westeurope".into(),
        tenant_id: world.tenant.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let unlink = pb::LinkedStorageAccountRef {
        workspace: Some(World::ws_ref("ws-three")),
        data_source_type: "Query".into(),
    };
    let nothing = byos
        .unlink_storage_account(unlink.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!nothing.unlinked, "nothing linked yet");
    byos.link_storage_account(pb::LinkStorageAccountRequest {
        workspace: Some(World::ws_ref("ws-three")),
        data_source_type: "Query".into(),
        storage_account_ids: vec![account_id("plainqueries1")],
    })
    .await
    .unwrap();
    for name in ["errors", "slow"] {
        byos.save_query(save("ws-three", name, "Event | take 1"))
            .await
            .unwrap();
    }

    // Locked: refused, and the link stays.
    let lock = pb::LockRequest {
        workspace: Some(World::ws_ref("ws-three")),
        lock_name: "keep".into(),
    };
    world.workspaces.put_lock(lock.clone()).await.unwrap();
    let refused = byos
        .unlink_storage_account(unlink.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("cannot perform delete operation"),
        "{}",
        refused.message()
    );
    byos.get_linked_storage_account(unlink.clone())
        .await
        .expect("still linked");
    world.workspaces.delete_lock(lock).await.unwrap();

    let done = byos
        .unlink_storage_account(unlink.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(done.unlinked);
    assert_eq!(
        done.storage_account_id,
        account_id("plainqueries1").to_ascii_lowercase()
    );
    assert_eq!(done.queries_left_in_account, 2);
    let gone = byos
        .get_linked_storage_account(unlink.clone())
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let listed = byos.list_saved_queries(list("ws-three")).await.unwrap();
    assert!(listed.into_inner().queries.is_empty());
    byos.save_query(save("ws-three", "after", "Perf | take 1"))
        .await
        .unwrap();
    let listed = byos
        .list_saved_queries(list("ws-three"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.queries.len(), 1);
    assert_eq!(listed.queries[0].name, "after");
    let events = world.events_of("byos.unlinked");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["queries_left"], 2, "{events:?}");
    let again = byos
        .unlink_storage_account(unlink)
        .await
        .unwrap()
        .into_inner();
    assert!(!again.unlinked);
    assert_eq!(
        world.events_of("byos.unlinked").len(),
        1,
        "no change, no event"
    );
    world.shutdown().await;
}
