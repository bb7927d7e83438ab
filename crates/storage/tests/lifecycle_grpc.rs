//! Seed 003's data lifecycle against the real storage server over gRPC: the workspace lock
//! refuses a purge and a table delete with ARM's `ScopeLocked`; a purge of data under a revoked
//! key stays pending (reported once) and completes after access returns; the purged records are
//! gone from queries; a table delete removes the rest.

mod common;

use cmksim_proto::storage::v1 as pb;
use common::*;
use tonic::Code;

fn purge_request(ws: &str, value: &str) -> pb::PurgeRequest {
    pb::PurgeRequest {
        workspace: Some(World::ws_ref(ws)),
        table: "Heartbeat".into(),
        filters: vec![pb::PurgeFilter {
            column: "Computer".into(),
            operator: "==".into(),
            value_json: serde_json::Value::from(value).to_string(),
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_refuses_then_purge_waits_while_revoked_and_completes_after() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault("kv1", true).await;
    let v1 = w.key("kv1", "k1").await;
    w.provisioned_cluster("cl1", "kv1").await;
    w.workspace("wsp1").await;
    w.link("wsp1", "cl1").await;
    w.update_key_and_wait("cl1", "kv1", "k1", &v1, &v1).await;
    let stored = w.append("wsp1", &bodies("rec", 5)).await;
    assert_eq!(stored_count(&stored), 5);
    let mut workspaces = pb::workspaces_client::WorkspacesClient::new(w.storage_channel.clone());

    // The lock: purge and table delete refused with ScopeLocked (409), nothing pending.
    let lock = workspaces
        .put_lock(pb::LockRequest {
            workspace: Some(World::ws_ref("wsp1")),
            lock_name: "no-delete".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lock.exists);
    assert_eq!(
        (lock.name.as_str(), lock.level.as_str()),
        ("no-delete", "CanNotDelete")
    );
    let refused = workspaces
        .purge(purge_request("wsp1", "rec-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let body = cmksim_proto::azure::azure_error(&refused).unwrap();
    assert_eq!((body.code.as_str(), body.http_status), ("ScopeLocked", 409));
    let refused = workspaces
        .delete_table(pb::DeleteTableRequest {
            workspace: Some(World::ws_ref("wsp1")),
            table: "Heartbeat".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        cmksim_proto::azure::azure_error(&refused).unwrap().code,
        "ScopeLocked"
    );
    let unlocked = workspaces
        .delete_lock(pb::LockRequest {
            workspace: Some(World::ws_ref("wsp1")),
            lock_name: "no-delete".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!unlocked.exists);

    // Revoked: the purge is accepted but cannot rewrite blocks under the disabled key.
    w.set_key_enabled("kv1", "k1", &v1, false).await;
    w.wait_state("cl1", &["revoked"]).await;
    let op = workspaces
        .purge(purge_request("wsp1", "rec-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(op.status, "pending");
    let waiting = w.wait_event("storage.purge.waiting").await;
    assert_eq!(waiting.len(), 1, "reported once");
    assert_eq!(waiting[0].data["purge_id"], op.purge_id);
    let status = |ws: &mut pb::workspaces_client::WorkspacesClient<_>| {
        let request = pb::PurgeStatusRequest {
            workspace: Some(World::ws_ref("wsp1")),
            purge_id: op.purge_id.clone(),
        };
        let mut ws = ws.clone();
        async move { ws.get_purge_status(request).await.unwrap().into_inner() }
    };
    assert_eq!(status(&mut workspaces).await.status, "pending");

    // Access back: the purge completes; the record is gone from queries, the others remain.
    w.set_key_enabled("kv1", "k1", &v1, true).await;
    w.wait_state("cl1", &["healthy_cmk"]).await;
    let completed = w.wait_event("storage.purge.completed").await;
    assert_eq!(completed[0].data["records"], 1);
    let done = status(&mut workspaces).await;
    assert_eq!((done.status.as_str(), done.records), ("completed", 1));
    assert_eq!(w.wait_event("storage.purge.waiting").await.len(), 1);
    let q = w.query("wsp1").await.unwrap();
    let names: Vec<&str> = q
        .records
        .iter()
        .map(|r| computer(r.record.as_ref().unwrap()))
        .collect();
    assert_eq!(names, ["rec-0", "rec-2", "rec-3", "rec-4"]);

    // Table delete: every block of the table, no key needed.
    let deleted = workspaces
        .delete_table(pb::DeleteTableRequest {
            workspace: Some(World::ws_ref("wsp1")),
            table: "Heartbeat".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.records, 4);
    assert!(w.query("wsp1").await.unwrap().records.is_empty());
    w.shutdown().await;
}
