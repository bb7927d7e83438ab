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

use std::path::Path;
use std::time::Duration;

use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
use cmksim_proto::identity::v1 as idp;
use cmksim_proto::storage::v1 as stp;
use cmksim_rest::client::HttpsClient;
use cmksim_rest::{RestConfig, RestServer};
use cmksim_sim::net::{ClientTimeouts, Network};
use cmksim_sim::{Clock, EventLog, Profile, SeedTree, SimTime};
use cmksim_storage::{StorageConfig, StorageServer};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

const SUB: &str = "00000000-0000-0000-0000-0000000000bb";
const RG: &str = "monitoring";
const REGION: &str = "westeurope";
/// Simulated seconds per real second.
const TIME_SCALE: f64 = 1800.0;
/// Bound of every wait: rounds of [`WAIT_STEP`].
const WAIT_ROUNDS: u32 = 600;
const WAIT_STEP: Duration = Duration::from_millis(50);

fn self_signed(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let params = rcgen::CertificateParams::new(names).expect("names");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    let cert_pem = cert.pem().into_bytes();
    std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write cert");
    (cert_pem, key.serialize_pem().into_bytes())
}

async fn until(mut rx: watch::Receiver<bool>) {
    cmksim_rest::listener::stopped(&mut rx).await;
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

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
    cmksim_sim::net::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, TIME_SCALE);
    let events = EventLog::default();
    let (stop, stop_rx) = watch::channel(false);
    let mut profile = Profile::builtin("azure-2020").expect("a built-in profile");
    profile.cluster.provisioning_duration = Duration::from_secs(120);
    profile.cluster.link_duration = Duration::from_secs(120);
    profile.lockbox.access_duration = Duration::from_secs(3600);

    let kv_server = KeyVaultServer::open(
        &dir.path().join("kv"),
        clock.clone(),
        SeedTree::new(5),
        events.clone(),
        KeyVaultConfig {
            os_key_material: true,
            without_hsm: false,
        },
    )
    .expect("open Key Vault");
    let (kv_listener, kv_url) = listener().await;
    let kv_stop = until(stop_rx.clone());
    tokio::spawn(async move {
        kv_server
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(kv_listener), kv_stop)
            .await
            .expect("Key Vault serves");
    });

    let storage_server = StorageServer::open(StorageConfig::new(
        dir.path().join("storage"),
        clock.clone(),
        SeedTree::new(6),
        events.clone(),
        profile.clone(),
        Network::Tcp,
        &kv_url,
    ))
    .expect("open storage");
    let (storage_listener, storage_url) = listener().await;
    let storage_stop = until(stop_rx.clone());
    tokio::spawn(async move {
        storage_server
            .serve_with_incoming(
                cmksim_sim::net::tcp_incoming(storage_listener),
                storage_stop,
            )
            .await
            .expect("storage serves");
    });

    let ingest = cmksim_ingest::IngestServer::new(
        clock.clone(),
        events.clone(),
        profile.clone(),
        &storage_url,
    )
    .expect("ingest");
    let (ingest_listener, ingest_url) = listener().await;
    let ingest_stop = until(stop_rx.clone());
    tokio::spawn(async move {
        ingest
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(ingest_listener), ingest_stop)
            .await
            .expect("ingest serves");
    });

    let (cert_pem, key_pem) = self_signed(dir.path());
    let tls = cmksim_sim::net::tls_server_config(&cert_pem, &key_pem).expect("tls");
    let door_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let door_addr = door_listener.local_addr().expect("addr");
    let admin_file =
        cmksim_identity::authority::admin_credentials_path(&dir.path().join("kv").join("identity"));
    let config = RestConfig {
        keyvault_url: kv_url.clone(),
        storage_url: storage_url.clone(),
        ingest_url,
        network: Network::Tcp,
        clock: clock.clone(),
        data_dir: dir.path().to_path_buf(),
        ca_file: dir.path().join("cert.pem"),
        seed: 5,
        admin_credentials: admin_file.clone(),
    };
    let door = RestServer::open(config, format!("https://{door_addr}"))
        .await
        .expect("open the door");
    let tenant = door.credentials().tenant_id.clone();
    tokio::spawn(door.serve(door_listener, tls, until(stop_rx)));

    let channel = |url: &str| {
        Network::Tcp
            .channel(url, ClientTimeouts::default())
            .expect("channel")
    };
    let (kv, storage) = (channel(&kv_url), channel(&storage_url));

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
    let root = cmksim_identity::AdminCredentials::load(&admin_file).expect("the administrator");
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
    let mut http = HttpsClient::connect(door_addr, "localhost", &cert_pem)
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

    stop.send(true).ok();
}
