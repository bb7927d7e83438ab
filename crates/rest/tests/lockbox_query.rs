//! The Logs Query API of the door asks Customer Lockbox (seeds 001 and 003: "only an approved,
//! unexpired request lets that principal query"): a real Key Vault (hosting the identity
//! authority), a real storage server, a real ingest front end and the door, all on 127.0.0.1
//! port 0. A support engineer with no role posts `/v1/workspaces/{customerId}/query` as
//! `azure-monitor-query` does, with its own token: 403 `InsufficientAccessError` while its
//! request is pending, rows while it is approved, 403 again once the access has run out — the
//! door asks storage through `cmksim_identity::LockboxGate`, as ingest's guard does. Before the
//! door asked Lockbox, the approved engineer was refused too.
//!
//! The clock runs at 1800x: the one-hour access of this test's profile ends in two real seconds.

mod common;

use std::time::Duration;

use cmksim_proto::identity::v1 as idp;
use cmksim_proto::storage::v1 as stp;
use cmksim_rest::client::HttpsClient;
use cmksim_sim::Profile;
use http::{Method, StatusCode};
use serde_json::json;

use common::start_services;

const SUB: &str = "00000000-0000-0000-0000-0000000000bb";
const RG: &str = "monitoring";
const REGION: &str = "westeurope";
/// Simulated seconds per real second.
const TIME_SCALE: f64 = 1800.0;
/// Bound of every wait: rounds of [`WAIT_STEP`].
const WAIT_ROUNDS: u32 = 600;
const WAIT_STEP: Duration = Duration::from_millis(50);

fn cluster_ref() -> stp::ClusterRef {
    stp::ClusterRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        cluster_name: "contosologs".into(),
    }
}

fn ws_ref() -> stp::WorkspaceRef {
    stp::WorkspaceRef {
        subscription_id: SUB.into(),
        resource_group: RG.into(),
        workspace_name: "ws-ops".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_lets_a_support_engineer_query_only_while_its_request_is_approved() {
    let mut profile = Profile::builtin("azure-2020").expect("a built-in profile");
    profile.cluster.provisioning_duration = Duration::from_secs(120);
    profile.cluster.link_duration = Duration::from_secs(120);
    profile.lockbox.access_duration = Duration::from_secs(3600);
    let services = start_services(profile, TIME_SCALE, true).await;
    let (clock, events) = (services.clock.clone(), services.events.clone());
    let (kv, storage) = (services.kv.clone(), services.storage.clone());
    let tenant = services.credentials.tenant_id.clone();

    // The world, over storage's gRPC (unguarded here): a cluster, a linked workspace with
    // heartbeats, Lockbox on.
    let mut clusters = stp::clusters_client::ClustersClient::new(storage.clone());
    clusters
        .create_cluster(stp::CreateClusterRequest {
            cluster: Some(cluster_ref()),
            location: REGION.into(),
            tenant_id: tenant.clone(),
            sku: Some(stp::Sku {
                name: "capacityReservation".into(),
                capacity_gb_per_day: 1000,
            }),
            billing_type: "Cluster".into(),
            identity_type: "SystemAssigned".into(),
            ..Default::default()
        })
        .await
        .expect("create the cluster");
    let mut provisioned = false;
    for _ in 0..WAIT_ROUNDS {
        let c = clusters
            .get_cluster(cluster_ref())
            .await
            .expect("get")
            .into_inner();
        if c.provisioning_state == "Succeeded" {
            provisioned = true;
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    assert!(provisioned, "the cluster is provisioned");
    let mut workspaces = stp::workspaces_client::WorkspacesClient::new(storage.clone());
    let ws = workspaces
        .create_workspace(stp::CreateWorkspaceRequest {
            workspace: Some(ws_ref()),
            location: REGION.into(),
            retention_in_days: 0,
        })
        .await
        .expect("create the workspace")
        .into_inner();
    workspaces
        .link_workspace(stp::LinkWorkspaceRequest {
            workspace: Some(ws_ref()),
            cluster: Some(cluster_ref()),
        })
        .await
        .expect("link");
    let mut linked = false;
    for _ in 0..WAIT_ROUNDS {
        let w = workspaces
            .get_workspace(ws_ref())
            .await
            .expect("get")
            .into_inner();
        if w.link_state == "Linked" {
            linked = true;
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    assert!(linked, "the workspace is linked");
    let now_ms = clock.now().0;
    stp::data_plane_client::DataPlaneClient::new(storage.clone())
        .append(stp::AppendRequest {
            workspace_id: ws.id.clone(),
            table: "Heartbeat".into(),
            records: (0..3)
                .map(|i| stp::Record {
                    time_unix_ms: now_ms,
                    columns: vec![stp::Column {
                        name: "Computer".into(),
                        value: Some(stp::Value {
                            kind: Some(stp::value::Kind::StringValue(format!("vm-{i}"))),
                        }),
                    }],
                })
                .collect(),
        })
        .await
        .expect("append");
    let mut lockbox = stp::lockbox_client::LockboxClient::new(storage.clone());
    lockbox
        .enable_lockbox(cluster_ref())
        .await
        .expect("enable Lockbox");

    // The support engineer: a principal without any role, and its Log Analytics token.
    let root =
        cmksim_identity::AdminCredentials::load(&services.admin_file()).expect("the administrator");
    let (engineer, secret) = cmksim_identity::provision_service_principal(
        root.channel(kv.clone(), clock.clone()),
        "Microsoft support engineer",
        &[],
    )
    .await
    .expect("the engineer");
    let token = idp::identity_client::IdentityClient::new(kv.clone())
        .issue_token(idp::IssueTokenRequest {
            object_id: engineer.clone(),
            secret,
            audience: cmksim_identity::audience::LOG_ANALYTICS.into(),
            lifetime_seconds: 0,
        })
        .await
        .expect("a token")
        .into_inner()
        .token;
    let mut http = HttpsClient::connect(services.addr, "localhost", &services.ca_pem)
        .await
        .expect("connect");
    let path = format!("/v1/workspaces/{}/query", ws.customer_id);
    let body = json!({"query": "Heartbeat | count", "timespan": "P1D"});
    let insufficient = |answer: &cmksim_rest::client::Answer, case: &str| {
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{case}: {:?}",
            answer.json()
        );
        assert_eq!(
            answer.json()["error"]["code"],
            "InsufficientAccessError",
            "{case}"
        );
    };

    // Pending: refused.
    let asked = lockbox
        .request_lockbox_access(stp::LockboxAccessRequest {
            workspace: Some(ws_ref()),
            requester_object_id: engineer.clone(),
            reason: "support ticket 9".into(),
        })
        .await
        .expect("ask")
        .into_inner();
    let answer = http
        .json(Method::POST, &path, Some(&token), Some(&body))
        .await
        .expect("query");
    insufficient(&answer, "pending");

    // Approved: the rows.
    lockbox
        .decide_lockbox_request(stp::LockboxDecision {
            request_id: asked.request_id.clone(),
            approve: true,
            workspace: Some(ws_ref()),
        })
        .await
        .expect("approve");
    let answer = http
        .json(Method::POST, &path, Some(&token), Some(&body))
        .await
        .expect("query");
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "approved: {:?}",
        answer.json()
    );
    assert_eq!(answer.json()["tables"][0]["rows"], json!([[3]]));
    let used = events.of_kind("lockbox.access_granted");
    assert_eq!(used.len(), 1, "{used:?}");
    assert!(used[0].data.to_string().contains(&asked.request_id));

    // The access runs out after an hour: refused again.
    let until = clock.now().add(Duration::from_secs(3600 + 60));
    for _ in 0..WAIT_ROUNDS {
        if clock.now() >= until {
            break;
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
    assert!(clock.now() >= until, "simulated time passes");
    let answer = http
        .json(Method::POST, &path, Some(&token), Some(&body))
        .await
        .expect("query");
    insufficient(&answer, "expired");

    services.stop.send(true).ok();
}
