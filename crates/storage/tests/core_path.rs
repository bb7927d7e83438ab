//! The core path over real gRPC: create → provisioned → key update → append/query (MMK data
//! before CMK and CMK data after, queried together) → key disabled → revoked → re-enabled →
//! resumed.

mod common;

use cmksim_proto::storage::v1 as pb;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_provision_update_append_query_revoke_resume() {
    let mut w = World::start(profile("azure-2020", "")).await;
    w.vault("kv1", true).await;
    let v1 = w.key("kv1", "k1").await;
    let oid = w.provisioned_cluster("cl1", "kv1").await;
    assert!(!oid.is_empty());
    w.workspace("wsp1").await;
    w.link("wsp1", "cl1").await;

    // Before CMK: stored on the cluster under the Microsoft-managed key.
    let before = w.append("wsp1", &bodies("mmk", 3)).await;
    assert_eq!(before.routed_to, World::cluster_id("cl1"));
    assert_eq!(stored_count(&before), 3);
    assert!(matches!(
        outcome_at(&before, 0).outcome,
        Some(pb::record_outcome::Outcome::Stored(pb::ProtectingKey {
            key: Some(pb::protecting_key::Key::Mmk(_))
        }))
    ));

    // Key update: the AEK is rewrapped under the customer's key; every block still decrypts.
    w.update_key_and_wait("cl1", "kv1", "k1", &v1, &v1).await;
    let c = w.wait_provisioning("cl1", "Succeeded").await;
    assert_eq!(c.key_vault_properties.unwrap().key_version, v1);
    let verified = w.wait_event("storage.blocks.verified").await;
    assert!(!verified.is_empty(), "blocks verified after the rewrap");
    let last = verified.last().unwrap();
    assert_eq!(last.data["cluster"], "cl1");
    assert_eq!(last.data["blocks_failed"], 0);
    assert!(last.data["blocks_checked"].as_u64().unwrap() >= 1);
    let key_updated = w.wait_event("storage.cluster.key_updated").await;
    assert_eq!(key_updated.last().unwrap().data["cluster"], "cl1");
    assert_eq!(key_updated.last().unwrap().source, "storage/cl1");

    let after = w.append("wsp1", &bodies("cmk", 2)).await;
    assert_eq!(stored_count(&after), 2);
    match &outcome_at(&after, 0).outcome {
        Some(pb::record_outcome::Outcome::Stored(pb::ProtectingKey {
            key: Some(pb::protecting_key::Key::CmkKid(kid)),
        })) => assert_eq!(kid, &format!("https://kv1.vault.azure.net/keys/k1/{v1}")),
        other => panic!("expected a CMK outcome, got {other:?}"),
    }

    // Both generations are queried together, merged by time, each saying its storage and key.
    let q = w.query("wsp1").await.unwrap();
    assert_eq!(q.records.len(), 5);
    assert_eq!(q.total_matched, 5);
    let keys: Vec<bool> = q
        .records
        .iter()
        .map(|r| {
            matches!(
                r.key.as_ref().unwrap().key,
                Some(pb::protecting_key::Key::CmkKid(_))
            )
        })
        .collect();
    assert_eq!(keys.iter().filter(|k| **k).count(), 2);
    assert!(q
        .records
        .iter()
        .all(|r| r.storage == World::cluster_id("cl1")));
    assert!(q
        .records
        .windows(2)
        .all(|p| p[0].record.as_ref().unwrap().time_unix_ms
            <= p[1].record.as_ref().unwrap().time_unix_ms));
    assert!(q.records[0]
        .record
        .as_ref()
        .map(computer)
        .unwrap_or("")
        .contains("mmk-0"));

    // Disable the key: revoked at the next poll; ingest dropped; hot tier deleted; queries fail.
    w.set_key_enabled("kv1", "k1", &v1, false).await;
    let s = w.wait_state("cl1", &["revoked"]).await;
    assert!(!s.reason.is_empty());
    let dropped = w.append("wsp1", &bodies("late", 4)).await;
    assert_eq!(dropped_with(&dropped, DropReason::Revoked), 4);
    w.wait_event("storage.hotcache.deleted").await;
    let revoked = w.wait_event("storage.state.revoked").await;
    assert_eq!(revoked.last().unwrap().data["cluster"], "cl1");
    assert_eq!(revoked.last().unwrap().data["from"], "healthy_cmk");
    let denied = w.wait_event("storage.poll.denied").await;
    assert_eq!(denied.last().unwrap().data["reason"], "revoked");
    let err = w.query("wsp1").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("cl1"), "{}", err.message());
    let body = cmksim_proto::azure::azure_error(&err).unwrap();
    assert_eq!(body.inner_code, "revoked");

    // Re-enable: resuming, then healthy within the resume delay; the hot cache is rebuilt.
    w.set_key_enabled("kv1", "k1", &v1, true).await;
    w.wait_state("cl1", &["resuming", "healthy_cmk"]).await;
    w.wait_state("cl1", &["healthy_cmk"]).await;
    w.wait_event("storage.hotcache.rebuilt").await;
    let q = w.query("wsp1").await.unwrap();
    assert_eq!(q.records.len(), 5);
    let again = w.append("wsp1", &bodies("back", 1)).await;
    assert_eq!(stored_count(&again), 1);

    // Stats count every record with its outcome.
    let stats = w
        .data
        .get_stats(pb::StatsRequest {
            cluster_resource_id: String::new(),
            workspace_id: World::ws_id("wsp1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.accepted, 3 + 2 + 4 + 1);
    assert_eq!(stats.stored, 6);
    assert_eq!(stats.dropped.get("revoked"), Some(&4));
    assert!(stats.polls_succeeded > 0 && stats.polls_denied > 0);
    w.shutdown().await;
}
