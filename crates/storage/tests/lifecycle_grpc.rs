//! Seed 003's data lifecycle against the real storage server over gRPC: the workspace lock
//! refuses a purge and a table delete with ARM's `ScopeLocked`; a purge of data under a revoked
//! key stays pending (reported once) and completes after access returns; the purged records are
//! gone from queries; a table delete removes the rest. A table's own retention (issue 14): the
//! retention job honours it and the lock refuses its decrease.

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
    // The state shows before its effects are carried out; the hot cache's deletion comes after
    // the account key is forgotten, so once it is seen the purge cannot use the key.
    w.wait_event("storage.hotcache.deleted").await;
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

/// Records of `table` whose TimeGenerated is `days_old` days before now.
async fn append_old(w: &mut World, table: &str, days_old: u64, n: usize) {
    let at = w
        .now()
        .sub(std::time::Duration::from_secs(86_400 * days_old))
        .0;
    let answer = w
        .data
        .append(pb::AppendRequest {
            workspace_id: World::ws_id("wsp1"),
            table: table.into(),
            records: (0..n)
                .map(|i| pb::Record {
                    time_unix_ms: at + i as i64,
                    columns: vec![column(
                        "Computer",
                        pb::value::Kind::StringValue(format!("{table}-{i}")),
                    )],
                })
                .collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored_count(&answer), n);
}

async fn count_of(w: &mut World, table: &str) -> usize {
    w.data
        .query(pb::QueryRequest {
            workspace_id: World::ws_id("wsp1"),
            table: table.into(),
            from_unix_ms: 0,
            to_unix_ms: i64::MAX,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
        .len()
}

fn set_retention(table: &str, days: Option<u32>) -> pb::SetTableRetentionRequest {
    pb::SetTableRetentionRequest {
        workspace: Some(World::ws_ref("wsp1")),
        table: table.into(),
        retention_in_days: days,
    }
}

/// Issue 14: a table's own retention over gRPC — it defaults to the workspace's, the retention
/// job honours it (a table kept longer than its workspace, then one shortened below the data's
/// age), and the lock refuses a decrease (also back to a shorter workspace default) but not an
/// increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_retention_is_honoured_by_the_retention_job_and_guarded_by_the_lock() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.workspace("wsp1").await;
    let mut workspaces = pb::workspaces_client::WorkspacesClient::new(w.storage_channel.clone());
    let get = |table: &str| pb::GetTableRequest {
        workspace: Some(World::ws_ref("wsp1")),
        table: table.into(),
    };
    let perf = workspaces
        .get_table_retention(get("Perf"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((perf.retention_in_days, perf.as_default), (31, true));
    let hb = workspaces
        .set_table_retention(set_retention("Heartbeat", Some(60)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((hb.retention_in_days, hb.as_default), (60, false));
    let out_of_range = workspaces
        .set_table_retention(set_retention("Heartbeat", Some(1)))
        .await
        .unwrap_err();
    assert_eq!(out_of_range.code(), Code::InvalidArgument);
    // A table name the data plane cannot store is the request's fault (400), with the name
    // echoed bounded, and changes nothing; a table delete used to answer these with an internal
    // error after forgetting the table.
    let too_long = "T".repeat(300);
    for bad in [too_long.as_str(), "Heart\0beat"] {
        let refused = workspaces
            .delete_table(pb::DeleteTableRequest {
                workspace: Some(World::ws_ref("wsp1")),
                table: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}");
        assert!(refused.message().len() < 300, "{}", refused.message());
        let refused = workspaces
            .set_table_retention(set_retention(bad, Some(60)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad:?}");
    }
    let still = workspaces
        .get_table_retention(get("Heartbeat"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((still.retention_in_days, still.as_default), (60, false));

    // 40 days old: past the workspace's 31 days, within Heartbeat's own 60.
    append_old(&mut w, "Heartbeat", 40, 3).await;
    append_old(&mut w, "Perf", 40, 4).await;
    let removed = w.wait_event("storage.retention.removed").await;
    assert_eq!(removed[0].data["table"], "Perf");
    assert_eq!(removed[0].data["retention_days"], 31);
    assert_eq!(removed[0].data["records"], 4);
    assert_eq!(count_of(&mut w, "Perf").await, 0);
    assert_eq!(count_of(&mut w, "Heartbeat").await, 3);

    // The lock: a decrease refused (ScopeLocked 409), also back to the workspace's 31 days.
    workspaces
        .put_lock(pb::LockRequest {
            workspace: Some(World::ws_ref("wsp1")),
            lock_name: "no-delete".into(),
        })
        .await
        .unwrap();
    for days in [Some(35), None] {
        let refused = workspaces
            .set_table_retention(set_retention("Heartbeat", days))
            .await
            .unwrap_err();
        let body = cmksim_proto::azure::azure_error(&refused).unwrap();
        assert_eq!((body.code.as_str(), body.http_status), ("ScopeLocked", 409));
    }
    let up = workspaces
        .set_table_retention(set_retention("Heartbeat", Some(90)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        up.retention_in_days, 90,
        "an increase is allowed while locked"
    );
    workspaces
        .delete_lock(pb::LockRequest {
            workspace: Some(World::ws_ref("wsp1")),
            lock_name: "no-delete".into(),
        })
        .await
        .unwrap();
    // Shortened below the data's age: the next pass removes Heartbeat's records.
    workspaces
        .set_table_retention(set_retention("Heartbeat", Some(35)))
        .await
        .unwrap();
    let changed = w.wait_event("storage.table.retention_changed").await;
    assert_eq!(changed.len(), 3, "60, then 90, then 35");
    let mut rounds = 0;
    while w.events_of("storage.retention.removed").len() < 2 {
        rounds += 1;
        assert!(rounds < 2_000, "Heartbeat's records were never removed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let removed = w.events_of("storage.retention.removed");
    assert_eq!(removed[1].data["table"], "Heartbeat");
    assert_eq!(removed[1].data["retention_days"], 35);
    assert_eq!(count_of(&mut w, "Heartbeat").await, 0);
    w.shutdown().await;
}
