//! Customer Lockbox gates the query path (seeds 001 and 003: "only an approved, unexpired request
//! lets that principal query"): a real Key Vault (hosting the identity authority), a real storage
//! server and a real, guarded ingest front end on 127.0.0.1:0. A support engineer holds no role
//! on the workspace and queries the front end with its own token: refused with no request, a
//! pending one, a denied one, an ended one, for another workspace or as another principal; let
//! in only under its own approved, unexpired request for that workspace. Before the front end's
//! guard asked Lockbox (`cmksim_identity::LockboxGate`), the approved engineer was refused too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cmksim_identity::{LockboxGate, Role, TokenSource};
use cmksim_ingest::backend::grpc::GrpcStorage;
use cmksim_proto::common::v1 as cpb;
use cmksim_proto::identity::v1 as idpb;
use cmksim_proto::ingest::v1 as ipb;
use cmksim_proto::storage::v1 as pb;
use common::*;
use tonic::transport::Channel;
use tonic::Code;

fn channel(uri: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(uri.to_string())
        .unwrap()
        .connect_lazy()
}

/// A principal's credentials.
struct Principal {
    oid: String,
    secret: String,
}

fn heartbeat_query(ws: &str) -> ipb::QueryRequest {
    ipb::QueryRequest {
        workspace_id: World::ws_id(ws),
        table: "Heartbeat".into(),
        from: Some(cpb::SimTime { unix_ms: 0 }),
        to: Some(cpb::SimTime { unix_ms: i64::MAX }),
        ..Default::default()
    }
}

fn arm_code(status: &tonic::Status) -> String {
    use prost::Message;
    cpb::AzureError::decode(status.details())
        .map(|e| e.code)
        .unwrap_or_default()
}

fn ask(ws: &str, who: &Principal) -> pb::LockboxAccessRequest {
    pb::LockboxAccessRequest {
        workspace: Some(World::ws_ref(ws)),
        // Storage is unguarded here: it takes the requester from the body.
        requester_object_id: who.oid.clone(),
        reason: "support ticket 7: missing heartbeats".into(),
    }
}

fn decide(id: &str, ws: &str, approve: bool) -> pb::LockboxDecision {
    pb::LockboxDecision {
        request_id: id.into(),
        approve,
        workspace: Some(World::ws_ref(ws)),
    }
}

/// The events of `kind` naming `who`.
fn events_naming(world: &World, kind: &str, who: &Principal) -> usize {
    world
        .events_of(kind)
        .iter()
        .filter(|e| e.data.to_string().contains(&who.oid))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_approved_unexpired_request_of_that_principal_lets_it_query() {
    let profile = profile(
        "azure-2020",
        "[lockbox]\naccess_duration = \"2h\"\nrequest_expiry = \"4h\"\n",
    );
    let mut world = World::start(profile.clone()).await;
    world.vault("kv1", true).await;
    world.provisioned_cluster("cluster1", "kv1").await;
    for ws in ["ws-one", "ws-two"] {
        world.workspace(ws).await;
        world.link(ws, "cluster1").await;
        world.append(ws, &bodies(ws, 3)).await;
    }

    // Principals, made by the identity authority's bootstrap administrator: the front end's
    // (Azure Monitor's pipeline roles at `/`), two support engineers and a reader (no role,
    // and Log Analytics Reader on ws-one).
    let root = cmksim_identity::AdminCredentials::load(
        &cmksim_identity::authority::admin_credentials_path(&world.kv_dir().join("identity")),
    )
    .unwrap();
    let kvc = channel(&world.kv_uri);
    let admin = || root.channel(kvc.clone(), world.clock.clone());
    let make = |name: &'static str, roles: &'static [Role]| {
        let admin = admin();
        async move {
            let (oid, secret) = cmksim_identity::provision_service_principal(admin, name, roles)
                .await
                .unwrap();
            Principal { oid, secret }
        }
    };
    let pipeline = make(
        "ingest-pipeline",
        &[Role::MonitoringMetricsPublisher, Role::LogAnalyticsReader],
    )
    .await;
    let engineer = make("Microsoft support engineer", &[]).await;
    let other = make("another support engineer", &[]).await;
    let reader = make("ws-one reader", &[]).await;
    idpb::identity_client::IdentityClient::new(admin())
        .create_role_assignment(idpb::CreateRoleAssignmentRequest {
            scope: World::ws_id("ws-one"),
            role: Role::LogAnalyticsReader.name().into(),
            principal_id: reader.oid.clone(),
            name: String::new(),
        })
        .await
        .unwrap();

    // The ingest front end, guarded, calling storage (and asking Lockbox) as the pipeline.
    let tokens = TokenSource::new(
        kvc.clone(),
        &pipeline.oid,
        &pipeline.secret,
        world.clock.clone(),
    );
    let backend = GrpcStorage::with_tokens(world.storage_channel.clone(), tokens);
    assert!(
        cmksim_ingest::backend::StorageBackend::lockbox_gate(&backend).is_some(),
        "a storage service behind the front end has Lockbox"
    );
    let ingest = cmksim_ingest::IngestServer::with_backend(
        world.clock.clone(),
        world.events.clone(),
        profile,
        Arc::new(backend),
    )
    .with_guard(cmksim_identity::Guard::remote(
        kvc.clone(),
        world.clock.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest_uri = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        ingest
            .serve_with_incoming(cmksim_sim::net::tcp_incoming(listener), async move {
                stopped.await.ok();
            })
            .await
            .unwrap();
    });

    // Each principal queries with its own Log Analytics token.
    let query_as = |who: &Principal| {
        let tokens = TokenSource::new(kvc.clone(), &who.oid, &who.secret, world.clock.clone());
        ipb::query_client::QueryClient::new(cmksim_identity::AuthChannel::new(
            channel(&ingest_uri),
            Some(tokens),
        ))
    };
    let (mut as_engineer, mut as_other, mut as_reader) =
        (query_as(&engineer), query_as(&other), query_as(&reader));
    let refused = |status: tonic::Status, case: &str| {
        assert_eq!(status.code(), Code::PermissionDenied, "{case}: {status:?}");
        assert_eq!(arm_code(&status), "AuthorizationFailed", "{case}");
    };

    // The reader's role lets it in; Lockbox is not asked.
    let rows = as_reader
        .query(heartbeat_query("ws-one"))
        .await
        .expect("a reader queries")
        .into_inner();
    assert_eq!(rows.rows.len(), 3);

    let mut lockbox = pb::lockbox_client::LockboxClient::new(world.storage_channel.clone());
    lockbox
        .enable_lockbox(World::cluster_ref("cluster1"))
        .await
        .unwrap();

    // 1. No request: refused, as without a role; no Lockbox step for a principal that never
    //    asked.
    refused(
        as_engineer
            .query(heartbeat_query("ws-one"))
            .await
            .unwrap_err(),
        "no request",
    );
    assert_eq!(
        events_naming(&world, "lockbox.access_refused", &engineer),
        0
    );

    // 2. Pending: refused (and that refusal is a Lockbox step).
    let asked = lockbox
        .request_lockbox_access(ask("ws-one", &engineer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.state, "pending");
    refused(
        as_engineer
            .query(heartbeat_query("ws-one"))
            .await
            .unwrap_err(),
        "pending",
    );
    assert_eq!(
        events_naming(&world, "lockbox.access_refused", &engineer),
        1
    );

    // 3. Denied (the other engineer's request): refused.
    let theirs = lockbox
        .request_lockbox_access(ask("ws-one", &other))
        .await
        .unwrap()
        .into_inner();
    lockbox
        .decide_lockbox_request(decide(&theirs.request_id, "ws-one", false))
        .await
        .unwrap();
    refused(
        as_other.query(heartbeat_query("ws-one")).await.unwrap_err(),
        "denied",
    );

    // 4. Approved: the engineer's query answers, and the grant used is an event.
    lockbox
        .decide_lockbox_request(decide(&asked.request_id, "ws-one", true))
        .await
        .unwrap();
    let rows = as_engineer
        .query(heartbeat_query("ws-one"))
        .await
        .expect("approved: the engineer queries")
        .into_inner();
    assert_eq!(rows.rows.len(), 3);
    let used = world.events_of("lockbox.access_granted");
    assert_eq!(used.len(), 1, "{used:?}");
    assert!(
        used[0].data.to_string().contains(&asked.request_id),
        "{:?}",
        used[0]
    );

    // 5. Another principal under the engineer's approval, or the engineer on another
    //    workspace: refused.
    refused(
        as_other.query(heartbeat_query("ws-one")).await.unwrap_err(),
        "another principal",
    );
    refused(
        as_engineer
            .query(heartbeat_query("ws-two"))
            .await
            .unwrap_err(),
        "another workspace",
    );
    // A query naming no workspace the front end knows is refused the same way.
    let mut unknown = heartbeat_query("ws-one");
    unknown.workspace_id = World::ws_id("ws-nowhere");
    refused(
        as_engineer.query(unknown).await.unwrap_err(),
        "unknown workspace",
    );

    // 6. The access runs out (2 h): refused again, at once.
    world.sleep_sim(Duration::from_secs(2 * 3600 + 60)).await;
    refused(
        as_engineer
            .query(heartbeat_query("ws-one"))
            .await
            .unwrap_err(),
        "expired",
    );
    assert_eq!(world.events_of("lockbox.access_granted").len(), 1);

    // The gate itself, asked as the pipeline would: the same answers.
    let gate = LockboxGate::new(cmksim_identity::AuthChannel::plain(
        world.storage_channel.clone(),
    ));
    assert_eq!(
        gate.allows(&engineer.oid, &World::ws_id("ws-one"))
            .await
            .unwrap(),
        None
    );

    stop.send(()).ok();
    serving.await.unwrap();
    world.shutdown().await;
}
