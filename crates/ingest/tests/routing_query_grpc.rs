//! The front end reports what storage decided (routing, outcome per record) and accounts it;
//! queries spanning MMK and CMK data; queries failing while the cluster is revoked or
//! unavailable; workspace isolation. Real gRPC over the in-memory fake of storage.

mod common;

use cmksim_ingest::backend::memory::ClusterState;
use cmksim_ingest::backend::memory::Route;
use cmksim_ingest::grpc::status::azure_error;
use cmksim_ingest::routing::Destination;
use cmksim_proto::ingest::v1 as pb;
use cmksim_proto::storage::v1::StorageStateName;
use cmksim_sim::Profile;
use common::*;
use tonic::Code;

/// The first record's outcome.
fn first(response: &pb::IngestResponse) -> &pb::RecordOutcome {
    response
        .record_outcomes()
        .next()
        .flatten()
        .expect("an outcome")
}

fn key_of(outcome: &pb::RecordOutcome) -> String {
    match &outcome.outcome {
        Some(pb::record_outcome::Outcome::Stored(s)) => {
            let key = s.key.as_ref().unwrap();
            if key.kind == pb::KeyKind::Cmk as i32 {
                format!(
                    "{} cmk {} {}",
                    storage_kind(&s.storage),
                    key.kid,
                    key.version
                )
            } else {
                format!("{} mmk", storage_kind(&s.storage))
            }
        }
        Some(pb::record_outcome::Outcome::Buffered(b)) => {
            format!("{} buffered", storage_kind(&b.storage))
        }
        Some(pb::record_outcome::Outcome::Dropped(d)) => format!("dropped {}", d.reason_label),
        None => "none".into(),
    }
}

async fn send(h: &Harness, ws: &str, ms: i64, computer: &str) -> pb::IngestResponse {
    h.ingestion()
        .ingest(batch(ws, "Perf", vec![perf(ms, computer, ms as f64)]))
        .await
        .unwrap()
        .into_inner()
}

fn to_cluster(name: &str) -> Route {
    Route::To(Destination::Cluster(name.into()))
}

#[tokio::test]
async fn outcomes_follow_storages_routing_and_queries_span_every_destination() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    let cmk =
        "cluster/c1 cmk https://kv1.vault.azure.net/keys/cmk 0123456789abcdef0123456789abcdef";
    // Where storage routes each batch (before, during and after a link and an unlink).
    let steps: Vec<(Route, &str)> = vec![
        (Route::To(Destination::Shared), "shared mmk"),
        (Route::To(Destination::Shared), "shared mmk"),
        (to_cluster("c1"), cmk),
        (to_cluster("c1"), cmk),
        (Route::To(Destination::Shared), "shared mmk"),
    ];
    for (i, (route, expected)) in steps.into_iter().enumerate() {
        h.storage.set_route("ws1", route.clone());
        let response = send(&h, "ws1", i as i64 * 1000, "vm1").await;
        assert_eq!(response.record_outcomes().count(), 1);
        assert_eq!(key_of(first(&response)), expected, "step {i}: {route:?}");
        assert_eq!((response.accepted, response.stored), (1, 1));
    }
    // One query returns all five, in time order, each saying where it was served from.
    let answer = h
        .query_client()
        .query(query("ws1", "Perf", 60_000))
        .await
        .unwrap()
        .into_inner();
    let served: Vec<String> = answer
        .rows
        .iter()
        .map(|r| storage_kind(&r.storage))
        .collect();
    assert_eq!(
        served,
        vec!["shared", "shared", "cluster/c1", "cluster/c1", "shared"]
    );
    let times: Vec<i64> = answer
        .rows
        .iter()
        .map(|r| r.record.as_ref().unwrap().time_generated.unwrap().unix_ms - EPOCH.0)
        .collect();
    assert_eq!(times, vec![0, 1000, 2000, 3000, 4000]);
    assert!(answer.rows.iter().all(|r| r.tier == pb::Tier::Hot as i32));
    let by: Vec<(String, u64)> = answer
        .served_by
        .iter()
        .map(|s| (storage_kind(&s.storage), s.rows_matched))
        .collect();
    assert_eq!(by, vec![("shared".into(), 3), ("cluster/c1".into(), 2)]);
}

#[tokio::test]
async fn a_batch_storage_drops_before_provisioning_is_answered_and_counted() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    h.storage.set_route(
        "ws1",
        Route::DropNotProvisioned {
            cluster: "c1".into(),
        },
    );
    let response = send(&h, "ws1", 0, "vm1").await;
    assert_eq!(key_of(first(&response)), "dropped not-provisioned");
    assert!(response.routed_to.is_none());
    let pb::record_outcome::Outcome::Dropped(d) = first(&response).outcome.clone().unwrap() else {
        unreachable!()
    };
    assert_eq!(
        d.reason,
        cmksim_proto::common::v1::DropReason::NotProvisioned as i32
    );
    assert!(d.detail.contains("not recoverable"), "{}", d.detail);
    let metrics = h.server.frontend().metrics();
    assert_eq!(metrics.records["ws1"].dropped["not-provisioned"], 1);
    assert_eq!(metrics.balance(), Ok(()));
}

#[tokio::test]
async fn queries_fail_while_revoked_or_unavailable_and_resume_after() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    h.storage.set_route("ws1", to_cluster("c1"));
    assert_eq!(send(&h, "ws1", 0, "vm1").await.stored, 1);

    h.storage.set_cluster_state("c1", ClusterState::Revoked);
    let response = send(&h, "ws1", 1000, "vm1").await;
    assert_eq!(key_of(first(&response)), "dropped revoked");
    let status = h
        .query_client()
        .query(query("ws1", "Perf", 60_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("cluster c1") && status.message().contains("revoked"),
        "{}",
        status.message()
    );
    let azure = azure_error(&status).unwrap();
    assert_eq!(
        (azure.http_status, azure.inner_code.as_str()),
        (403, "Revoked")
    );

    h.storage.set_cluster_state("c1", ClusterState::Unavailable);
    let response = send(&h, "ws1", 2000, "vm1").await;
    assert_eq!(key_of(first(&response)), "cluster/c1 buffered");
    let status = h
        .query_client()
        .query(query("ws1", "Perf", 60_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status
            .message()
            .contains("cluster c1, which is unavailable"),
        "{}",
        status.message()
    );

    h.storage.set_cluster_state("c1", ClusterState::Healthy);
    let answer = h
        .query_client()
        .query(query("ws1", "Perf", 60_000))
        .await
        .unwrap()
        .into_inner();
    let times: Vec<i64> = answer
        .rows
        .iter()
        .map(|r| r.record.as_ref().unwrap().time_generated.unwrap().unix_ms - EPOCH.0)
        .collect();
    assert_eq!(
        times,
        vec![0, 2000],
        "the buffered record was written; the revoked one is gone"
    );
    let m = h.server.frontend().metrics();
    let c = &m.records["ws1"];
    assert_eq!(
        (c.accepted, c.stored, c.buffered, c.dropped_total()),
        (3, 1, 1, 1)
    );
    assert_eq!(m.balance(), Ok(()));
    let failed = h.events.of_kind("query.failed");
    assert_eq!(failed.len(), 2);
    assert!(
        failed[0].message.contains("revoked"),
        "{}",
        failed[0].message
    );
    // `reason` is the state's one spelling, what `reason = "revoked"` in an expectation matches;
    // the sentence is in `message`.
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e.data["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            StorageStateName::Revoked.label(),
            StorageStateName::Unavailable.label()
        ]
    );
    assert_eq!(failed[0].data["error_code"], "Revoked");
    assert!(failed[1].data["message"]
        .as_str()
        .unwrap()
        .contains("cluster c1, which is unavailable"));
}

#[tokio::test]
async fn a_query_of_one_workspace_never_returns_another_workspaces_records() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    // Both workspaces write to shared storage, then both to the same cluster.
    for ws in ["ws1", "ws2"] {
        send(&h, ws, 0, &format!("{ws}-vm")).await;
        h.storage.set_route(ws, to_cluster("c1"));
        send(&h, ws, 1000, &format!("{ws}-vm")).await;
    }
    for ws in ["ws1", "ws2"] {
        let answer = h
            .query_client()
            .query(query(ws, "Perf", 60_000))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.count, 2);
        for row in &answer.rows {
            let computer = row
                .record
                .as_ref()
                .unwrap()
                .columns
                .iter()
                .find(|c| c.name == "Computer")
                .unwrap();
            assert_eq!(
                computer.value,
                s(&format!("{ws}-vm")),
                "{ws} saw another workspace's record"
            );
        }
    }
    let status = h
        .query_client()
        .query(query("ws3", "Perf", 60_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn filters_count_limit_and_order() {
    let h = Harness::start(Profile::azure_2020(), 1.0).await;
    let records = (0..10)
        .map(|i| {
            perf(
                i * 1000,
                if i % 2 == 0 { "web-01" } else { "db-01" },
                i as f64 * 10.0,
            )
        })
        .collect();
    h.ingestion()
        .ingest(batch("ws1", "Perf", records))
        .await
        .unwrap();
    let mut q = query("ws1", "Perf", 60_000);
    q.filters = vec![
        pb::Filter {
            column: "Computer".into(),
            op: Some(pb::filter::Op::Contains("web".into())),
        },
        pb::Filter {
            column: "CounterValue".into(),
            op: Some(pb::filter::Op::Compare(pb::NumericComparison {
                op: pb::Comparison::Ge as i32,
                value: 20.0,
            })),
        },
    ];
    q.order = pb::Order::Desc as i32;
    q.limit = 2;
    let answer = h
        .query_client()
        .query(q.clone())
        .await
        .unwrap()
        .into_inner();
    let values: Vec<Option<pb::Value>> = answer
        .rows
        .iter()
        .map(|r| {
            r.record
                .as_ref()
                .unwrap()
                .columns
                .iter()
                .find(|c| c.name == "CounterValue")
                .unwrap()
                .value
                .clone()
        })
        .collect();
    assert_eq!(values, vec![real(80.0), real(60.0)]);
    assert_eq!((answer.count, answer.truncated), (4, true));
    q.count_only = true;
    let answer = h
        .query_client()
        .query(q.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.count, answer.rows.len()), (4, 0));
    q.filters = vec![pb::Filter {
        column: "Computer".into(),
        op: Some(pb::filter::Op::Equals(real(1.0).unwrap())),
    }];
    let status = h.query_client().query(q.clone()).await.unwrap_err();
    assert_eq!(
        azure_error(&status).unwrap().inner_code,
        "FilterTypeMismatch"
    );
    q.filters = vec![];
    q.from = None;
    let status = h.query_client().query(q).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("\"from\" is required"),
        "{}",
        status.message()
    );
}
