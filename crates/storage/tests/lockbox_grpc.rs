//! Customer Lockbox against the real storage server over gRPC (seeds 001 and 003): a support
//! engineer's request waits for approval, an approval lets that engineer (and nobody else) in
//! until the access runs out, a request nobody answers expires, and every step is an event.
//! China is refused with seed 001's sentence.

mod common;

use std::time::Duration;

use cmksim_proto::storage::v1 as pb;
use common::*;
use tonic::Code;

const ENGINEER: &str = "11111111-2222-3333-4444-555555555555";

fn access(ws: &str, who: &str) -> pb::LockboxAccessRequest {
    pb::LockboxAccessRequest {
        workspace: Some(World::ws_ref(ws)),
        requester_object_id: who.into(),
        reason: "support ticket 42: ingestion gaps".into(),
    }
}

fn kinds(world: &World) -> Vec<String> {
    world
        .events
        .snapshot()
        .into_iter()
        .filter(|e| e.kind.starts_with("lockbox."))
        .map(|e| e.kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_then_expired_and_unanswered_then_expired() {
    let profile = profile(
        "azure-2020",
        "[lockbox]\naccess_duration = \"1h\"\nrequest_expiry = \"2h\"\n",
    );
    let mut world = World::start(profile).await;
    world.vault("kv1", true).await;
    world.provisioned_cluster("cluster1", "kv1").await;
    world.workspace("ws-one").await;
    world.link("ws-one", "cluster1").await;
    let mut lockbox = pb::lockbox_client::LockboxClient::new(world.storage_channel.clone());

    // Before Lockbox is enabled, a request is refused.
    let refused = lockbox
        .request_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let enabled = lockbox
        .enable_lockbox(World::cluster_ref("cluster1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.state, "enabled");
    let asked = lockbox
        .request_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.state, "pending");
    let denied = lockbox
        .check_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        denied.message(),
        "The provided credentials have insufficient access to perform the requested operation"
    );

    let approved = lockbox
        .decide_lockbox_request(pb::LockboxDecision {
            request_id: asked.request_id.clone(),
            approve: true,
            workspace: access("ws-one", ENGINEER).workspace,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state, "approved");
    assert!(approved.until_unix_ms > world.now().unix_ms());
    let granted = lockbox
        .check_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.request_id, asked.request_id);
    // Somebody else is not let in by the engineer's approval.
    lockbox
        .check_lockbox_access(access("ws-one", "someone-else"))
        .await
        .unwrap_err();

    // A second request that nobody answers.
    let second = lockbox
        .request_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap()
        .into_inner();
    // A decision naming another workspace than the request's: not found (the customer's role
    // is checked at the workspace named, so it must be the request's).
    world.workspace("ws-two").await;
    let elsewhere = World::ws_ref("ws-two");
    let refused = lockbox
        .decide_lockbox_request(pb::LockboxDecision {
            request_id: second.request_id.clone(),
            approve: true,
            workspace: Some(elsewhere),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");

    // Past the access duration (1 h) and the request expiry (2 h), plus a tick.
    world.sleep_sim(Duration::from_secs(2 * 3600 + 180)).await;
    let after = lockbox
        .check_lockbox_access(access("ws-one", ENGINEER))
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::PermissionDenied);
    let late = lockbox
        .decide_lockbox_request(pb::LockboxDecision {
            request_id: second.request_id.clone(),
            approve: true,
            workspace: None,
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("is expired"), "{}", late.message());

    let seen = kinds(&world);
    for kind in [
        "lockbox.enabled",
        "lockbox.requested",
        "lockbox.access_refused",
        "lockbox.approved",
        "lockbox.access_granted",
        "lockbox.access_ended",
        "lockbox.expired",
    ] {
        assert!(
            seen.iter().any(|k| k == kind),
            "{kind} missing from {seen:?}"
        );
    }
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn china_is_refused_with_the_seed_sentence() {
    let mut world = World::start(profile("azure-2020", "")).await;
    world
        .clusters
        .create_cluster(cmksim_setup::cluster_request(
            World::cluster_ref("clusterchina"),
            "chinanorth2",
            &world.tenant,
        ))
        .await
        .unwrap();
    let mut lockbox = pb::lockbox_client::LockboxClient::new(world.storage_channel.clone());
    let refused = lockbox
        .enable_lockbox(World::cluster_ref("clusterchina"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused.message(),
        "Lockbox isn't available in China currently."
    );
    assert!(!kinds(&world).iter().any(|k| k == "lockbox.enabled"));
    world.shutdown().await;
}
