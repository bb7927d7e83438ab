//! Services served alone check tokens by default (issue 17, defect 7), with the real binary:
//! `serve keyvault`, then `serve storage` and `serve ingest` as separate processes. Storage
//! refuses a call without a token (401 `AuthenticationFailed`) and serves the identity
//! administrator's; without `--admin-credentials` it has no principal of its own and refuses to
//! create a cluster in one sentence (403 `IdentityCreationRefused`, not retryable), with them it
//! creates one; ingest refuses to start without the administrator's credentials (one
//! sentence, exit status 2, nothing served), and with them it starts (it made its own principal
//! through the administrator), refuses a call without a token (401) and a token without a role
//! to write (403). Every wait is bounded; nothing asserts on timing.

use std::process::Command;

use cmksim_proto::identity::v1 as idp;
use cmksim_proto::ingest::v1 as ip;
use cmksim_proto::storage::v1 as sp;
use tonic::transport::Channel;

mod common;
use common::{admin_file, now_unix_ms, Serving, BIN};

fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect_lazy()
}

fn arm_code(status: &tonic::Status) -> String {
    cmksim_proto::azure::azure_error(status)
        .map(|e| e.code)
        .unwrap_or_default()
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_and_ingest_served_alone_check_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let epoch = now_unix_ms().to_string();
    let common = ["--time-scale", "1", "--epoch", &epoch];
    let (kv_dir, st_dir) = (path("kv"), path("storage"));
    let (keyvault, storage) = tokio::task::block_in_place(|| {
        let mut args = vec!["keyvault", "--listen", "127.0.0.1:0", "--data-dir", &kv_dir];
        args.extend(common);
        let keyvault = Serving::start(&args, &["keyvault"], dir.path().join("kv.log"));
        let mut args = vec!["storage", "--listen", "127.0.0.1:0", "--data-dir", &st_dir];
        args.extend(["--keyvault", keyvault.url("keyvault")]);
        args.extend(common);
        let storage = Serving::start(&args, &["storage"], dir.path().join("storage.log"));
        (keyvault, storage)
    });
    let admin_path = admin_file(std::path::Path::new(&kv_dir));
    let admin = cmksim_identity::AdminCredentials::load(&admin_path).unwrap();
    let kv = channel(keyvault.url("keyvault"));
    let token = |audience: &'static str| {
        let kv = kv.clone();
        let admin = admin.clone();
        async move {
            idp::identity_client::IdentityClient::new(kv)
                .issue_token(idp::IssueTokenRequest {
                    object_id: admin.object_id,
                    secret: admin.client_secret,
                    audience: audience.into(),
                    lifetime_seconds: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .token
        }
    };

    // Storage alone: no token, 401; the administrator (User Access Administrator at `/`, which
    // reads everything): served.
    let list = sp::ListClustersBySubscriptionRequest {
        subscription_id: "00000000-0000-0000-0000-0000000000a1".into(),
    };
    let mut clusters = sp::clusters_client::ClustersClient::new(channel(storage.url("storage")));
    let refused = clusters
        .list_clusters_by_subscription(list.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(arm_code(&refused), "AuthenticationFailed");
    let management = token(cmksim_identity::audience::MANAGEMENT).await;
    let listed = clusters
        .list_clusters_by_subscription(with_token(&management, list))
        .await
        .expect("the administrator's token is served");
    assert!(listed.into_inner().clusters.is_empty());

    // Storage alone without --admin-credentials has no principal of its own, and the identity
    // service makes managed identities only for a resource provider: a cluster's create by an
    // Owner is refused in one sentence, not retryable (before: any caller could make them).
    let operator = cmksim_setup::tenant_and_operator(kv.clone(), &admin, "operator")
        .await
        .unwrap();
    idp::identity_client::IdentityClient::new(kv.clone())
        .create_role_assignment(with_token(
            &management,
            idp::CreateRoleAssignmentRequest {
                scope: "/".into(),
                role: "Owner".into(),
                principal_id: operator.object_id.clone(),
                name: String::new(),
            },
        ))
        .await
        .unwrap();
    let owner = operator
        .token(kv.clone(), cmksim_identity::audience::MANAGEMENT)
        .await
        .unwrap();
    let create = cmksim_setup::cluster_request(
        sp::ClusterRef {
            subscription_id: "00000000-0000-0000-0000-0000000000a1".into(),
            resource_group: "rg".into(),
            cluster_name: "alonecluster".into(),
        },
        "westeurope",
        &operator.tenant_id,
    );
    let refused = clusters
        .create_cluster(with_token(&owner, create.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(arm_code(&refused), "IdentityCreationRefused", "{refused:?}");
    assert!(
        refused.message().contains("--admin-credentials FILE"),
        "{}",
        refused.message()
    );
    // With them, storage makes its principal at its start and creates the cluster's identity.
    let admin_arg = admin_path.to_string_lossy().into_owned();
    let provider = tokio::task::block_in_place(|| {
        let st2_dir = path("storage2");
        let mut args = vec!["storage", "--listen", "127.0.0.1:0", "--data-dir", &st2_dir];
        args.extend(["--keyvault", keyvault.url("keyvault")]);
        args.extend(["--admin-credentials", &admin_arg]);
        args.extend(common);
        Serving::start(&args, &["storage"], dir.path().join("storage2.log"))
    });
    sp::clusters_client::ClustersClient::new(channel(provider.url("storage")))
        .create_cluster(with_token(&owner, create))
        .await
        .expect("storage with its own principal creates the cluster");
    drop(provider);

    // Ingest alone without the administrator's credentials: refused before it serves.
    let out = Command::new(BIN)
        .args(["serve", "ingest", "--listen", "127.0.0.1:0"])
        .args(["--storage", storage.url("storage")])
        .args(["--identity", keyvault.url("keyvault")])
        .args(common)
        .env_remove("CMKSIM_ADMIN_CREDENTIALS")
        .env_remove("CMKSIM_ALLOW_ANONYMOUS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--admin-credentials FILE"), "{stderr}");
    assert!(stderr.contains("--allow-anonymous"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "nothing served"
    );

    // With them: it starts, having made its own principal; a call without a token is refused.
    let ingest = tokio::task::block_in_place(|| {
        let mut args = vec!["ingest", "--listen", "127.0.0.1:0"];
        args.extend(["--storage", storage.url("storage")]);
        args.extend(["--identity", keyvault.url("keyvault")]);
        args.extend(["--admin-credentials", &admin_arg]);
        args.extend(common);
        Serving::start(&args, &["ingest"], dir.path().join("ingest.log"))
    });
    let workspace = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg/\
                     providers/Microsoft.OperationalInsights/workspaces/nowhere";
    let request = ip::IngestRequest {
        workspace_id: workspace.into(),
        ..Default::default()
    };
    let mut ingestion = ip::ingestion_client::IngestionClient::new(channel(ingest.url("ingest")));
    let refused = ingestion.ingest(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(arm_code(&refused), "AuthenticationFailed");
    // The administrator holds no data role: ingest's guard refuses it 403, which shows the
    // token was checked against roles, not merely parsed.
    let monitor = token(cmksim_identity::audience::MONITOR).await;
    let refused = ingestion
        .ingest(with_token(&monitor, request))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert_eq!(arm_code(&refused), "AuthorizationFailed");
    drop((ingest, storage, keyvault));
}
