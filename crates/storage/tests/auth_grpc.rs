//! No one reads or writes a tenant's logs, nor lists its clusters, without a token of that
//! tenant and a role (issue 17, defect 7): a real Key Vault (hosting the identity authority), a
//! real storage server and a real ingest front end on 127.0.0.1:0, the last two guarded
//! (`cmksim_identity::guard`) as `serve` guards them. Before the guard, every call below without
//! a token or with another tenant's token was answered.
//!
//! The world: tenant contoso owns subscription A (its administrator is Owner there) and a
//! workspace in it; tenant fabrikam owns subscription B (mallory is its Owner); contoso's app has
//! no role until the test gives it one; the ingest front end calls storage as its own service
//! principal (roles at the root scope, as `serve` sets it up).

mod guarded;

use cmksim_identity::{audience, Guard, TokenSource};
use cmksim_proto::common::v1 as cpb;
use cmksim_proto::ingest::v1 as ipb;
use cmksim_proto::storage::v1 as pb;
use cmksim_sim::{Clock, EventLog, Profile, SimTime};
use guarded::{arm_code, assign, channel, principal, tenant, token, with_token, Guarded};
use tonic::Code;

const SUB_A: &str = "00000000-0000-0000-0000-00000000000a";
const SUB_B: &str = "00000000-0000-0000-0000-00000000000b";
const RG: &str = "rg1";
const WS: &str = "ws-secret";
const TABLE: &str = "App_CL";

fn ws_ref() -> pb::WorkspaceRef {
    pb::WorkspaceRef {
        subscription_id: SUB_A.into(),
        resource_group: RG.into(),
        workspace_name: WS.into(),
    }
}

fn ws_id() -> String {
    format!(
        "/subscriptions/{SUB_A}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/{WS}"
    )
}

fn ingest_request() -> ipb::IngestRequest {
    ipb::IngestRequest {
        workspace_id: ws_id(),
        table: TABLE.into(),
        records: vec![ipb::Record {
            time_generated: Some(cpb::SimTime {
                unix_ms: 1_700_000_000_000,
            }),
            columns: vec![ipb::Column {
                name: "Message".into(),
                value: Some(ipb::Value {
                    kind: Some(ipb::value::Kind::StringValue("secret".into())),
                }),
            }],
        }],
        declare_columns: vec![ipb::ColumnDeclaration {
            name: "Message".into(),
            r#type: "string".into(),
        }],
    }
}

fn kql_request() -> ipb::KqlRequest {
    ipb::KqlRequest {
        workspace_id: ws_id(),
        query: format!("{TABLE} | count"),
        from: None,
        to: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_tenants_and_roles_guard_storage_and_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::tokio(SimTime(1_700_000_000_000), 1.0);
    let events = EventLog::default();
    let profile = Profile::builtin("azure-2020").unwrap();

    // Key Vault, hosting the identity authority, and storage, guarded; the identity service's
    // administrative calls carry its bootstrap administrator's token.
    let services = Guarded::start(dir.path(), &clock, &events, &profile).await;
    let (kv_uri, st_uri) = (services.kv_uri.clone(), services.st_uri.clone());
    let mut identity = services.identity(&clock);

    // The world's tenants and principals.
    let contoso = tenant(&mut identity, "contoso").await;
    let fabrikam = tenant(&mut identity, "fabrikam").await;
    let service = tenant(&mut identity, "cmksim-services").await;
    let admin = principal(&mut identity, &contoso, "admin").await;
    let app = principal(&mut identity, &contoso, "uploader").await;
    let mallory = principal(&mut identity, &fabrikam, "mallory").await;
    let pipeline = principal(&mut identity, &service, "ingest-pipeline").await;
    assign(
        &mut identity,
        &format!("/subscriptions/{SUB_A}"),
        "Owner",
        &admin,
    )
    .await;
    assign(
        &mut identity,
        &format!("/subscriptions/{SUB_B}"),
        "Owner",
        &mallory,
    )
    .await;
    assign(
        &mut identity,
        "/",
        "Monitoring Metrics Publisher",
        &pipeline,
    )
    .await;
    assign(&mut identity, "/", "Log Analytics Reader", &pipeline).await;

    // Ingest, guarded, calling storage as its own principal.
    let in_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let in_uri = format!("http://{}", in_listener.local_addr().unwrap());
    let tokens = TokenSource::new(
        channel(&kv_uri),
        &pipeline.oid,
        &pipeline.secret,
        clock.clone(),
    );
    let ingest = cmksim_ingest::IngestServer::with_storage_tokens(
        clock.clone(),
        events.clone(),
        profile.clone(),
        &st_uri,
        tokens,
    )
    .unwrap()
    .with_guard(Guard::remote(channel(&kv_uri), clock.clone()));
    tokio::spawn(async move {
        ingest
            .serve_with_incoming(
                cmksim_sim::net::tcp_incoming(in_listener),
                std::future::pending::<()>(),
            )
            .await
            .unwrap();
    });

    let mut clusters = pb::clusters_client::ClustersClient::new(channel(&st_uri));
    let mut workspaces = pb::workspaces_client::WorkspacesClient::new(channel(&st_uri));
    let mut data = pb::data_plane_client::DataPlaneClient::new(channel(&st_uri));
    let mut ingestion = ipb::ingestion_client::IngestionClient::new(channel(&in_uri));
    let mut query = ipb::query_client::QueryClient::new(channel(&in_uri));

    // The owner creates the workspace with a management token.
    let admin_mgmt = token(&mut identity, &admin, audience::MANAGEMENT).await;
    workspaces
        .create_workspace(with_token(
            Some(&admin_mgmt),
            pb::CreateWorkspaceRequest {
                workspace: Some(ws_ref()),
                location: "westeurope".into(),
                retention_in_days: 0,
            },
        ))
        .await
        .expect("the owner creates a workspace");

    // 1. Without a token: nothing.
    let list = pb::ListClustersBySubscriptionRequest {
        subscription_id: SUB_A.into(),
    };
    let refused = clusters
        .list_clusters_by_subscription(with_token(None, list.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(arm_code(&refused), "AuthenticationFailed");
    let refused = ingestion
        .ingest(with_token(None, ingest_request()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = query
        .kql(with_token(None, kql_request()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = data
        .query(with_token(
            None,
            pb::QueryRequest {
                workspace_id: ws_id(),
                table: TABLE.into(),
                from_unix_ms: 0,
                to_unix_ms: i64::MAX,
                limit: 10,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // 2. With another tenant's tokens: refused as ARM refuses them.
    let mallory_mgmt = token(&mut identity, &mallory, audience::MANAGEMENT).await;
    let mallory_monitor = token(&mut identity, &mallory, audience::MONITOR).await;
    let mallory_la = token(&mut identity, &mallory, audience::LOG_ANALYTICS).await;
    let refused = clusters
        .list_clusters_by_subscription(with_token(Some(&mallory_mgmt), list.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(arm_code(&refused), "InvalidAuthenticationTokenTenant");
    assert!(
        refused.message().contains(&contoso),
        "{}",
        refused.message()
    );
    let refused = ingestion
        .ingest(with_token(Some(&mallory_monitor), ingest_request()))
        .await
        .unwrap_err();
    assert_eq!(arm_code(&refused), "InvalidAuthenticationTokenTenant");
    let refused = query
        .kql(with_token(Some(&mallory_la), kql_request()))
        .await
        .unwrap_err();
    assert_eq!(arm_code(&refused), "InvalidAuthenticationTokenTenant");
    // Mallory's own subscription is hers.
    clusters
        .list_clusters_by_subscription(with_token(
            Some(&mallory_mgmt),
            pb::ListClustersBySubscriptionRequest {
                subscription_id: SUB_B.into(),
            },
        ))
        .await
        .expect("an owner lists her own subscription");

    // 3. The right tenant, a token of the wrong audience: refused.
    let app_mgmt = token(&mut identity, &app, audience::MANAGEMENT).await;
    let refused = ingestion
        .ingest(with_token(Some(&app_mgmt), ingest_request()))
        .await
        .unwrap_err();
    assert_eq!(arm_code(&refused), "InvalidAuthenticationTokenAudience");

    // 4. The right tenant and audience, no role: refused.
    let app_monitor = token(&mut identity, &app, audience::MONITOR).await;
    let app_la = token(&mut identity, &app, audience::LOG_ANALYTICS).await;
    let refused = ingestion
        .ingest(with_token(Some(&app_monitor), ingest_request()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(arm_code(&refused), "AuthorizationFailed");
    assert!(refused
        .message()
        .contains("Microsoft.Insights/Telemetry/Write"));
    let refused = clusters
        .list_clusters_by_subscription(with_token(Some(&app_mgmt), list.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // 5. With the role: works. Writing does not grant reading.
    assign(
        &mut identity,
        &ws_id(),
        "Monitoring Metrics Publisher",
        &app,
    )
    .await;
    let ingested = ingestion
        .ingest(with_token(Some(&app_monitor), ingest_request()))
        .await
        .expect("a Monitoring Metrics Publisher sends logs")
        .into_inner();
    assert_eq!(ingested.accepted, 1, "{ingested:?}");
    let refused = query
        .kql(with_token(Some(&app_la), kql_request()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assign(&mut identity, &ws_id(), "Log Analytics Reader", &app).await;
    let answer = query
        .kql(with_token(Some(&app_la), kql_request()))
        .await
        .expect("a Log Analytics Reader queries")
        .into_inner();
    assert_eq!(answer.tables.len(), 1, "{answer:?}");
    // The Owner of the subscription manages (lists) its clusters.
    clusters
        .list_clusters_by_subscription(with_token(Some(&admin_mgmt), list))
        .await
        .expect("an owner lists the clusters of its subscription");

    // Health stays open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&st_uri));
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no token");
}
