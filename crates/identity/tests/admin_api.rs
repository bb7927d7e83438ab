//! The identity service's administrative calls need an administrator's token (issue 17,
//! defect 7): over real gRPC on 127.0.0.1:0, a create-principal or assign-role without a token
//! is refused 401 `AuthenticationFailed`, one with the token of an ordinary principal 403
//! `AuthorizationFailed`; the bootstrap administrator (through `AdminCredentials::channel`, the
//! in-repo callers' one home) succeeds; an Owner of a subscription may assign roles there and
//! nowhere else; and after a restart the credentials file of the first start still works.

use std::sync::{Arc, Mutex};

use prost::Message;
use tonic::transport::{Channel, Server};

use cmksim_identity::authority::{admin_credentials_path, ADMIN_CREDENTIALS_FILE};
use cmksim_identity::{audience, AdminCredentials, IdentityAuthority, IdentityService, Role};
use cmksim_proto::common::v1::AzureError;
use cmksim_proto::identity::v1 as pb;
use cmksim_proto::identity::v1::identity_client::IdentityClient;
use cmksim_sim::{Clock, SeedTree, SimTime};

/// Serves the authority of `dir` on 127.0.0.1:0 until the returned sender is dropped.
async fn serve(
    dir: &std::path::Path,
    seed: u64,
) -> (Channel, tokio::sync::oneshot::Sender<()>, Clock) {
    // sled may hold its lock a moment after an earlier handle is dropped: bounded retry.
    let mut opened = None;
    for _ in 0..100 {
        match IdentityAuthority::open(dir, SeedTree::new(seed).source("identity")) {
            Ok(a) => {
                opened = Some(a);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let authority = Arc::new(Mutex::new(opened.expect("the store opens")));
    let clock = Clock::wall(SimTime::DEFAULT_EPOCH, Clock::wall_now_unix_ms(), 1.0);
    let service = IdentityService::new(authority, clock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(cmksim_sim::net::tcp_incoming(listener), async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    (channel, stop_tx, clock)
}

fn azure(status: &tonic::Status) -> AzureError {
    AzureError::decode(status.details()).expect("an Azure error body in the details")
}

fn principal_request(tenant_id: &str, name: &str) -> pb::CreatePrincipalRequest {
    pb::CreatePrincipalRequest {
        tenant_id: tenant_id.to_string(),
        display_name: name.to_string(),
        kind: pb::PrincipalKind::ServicePrincipal as i32,
    }
}

fn role_request(scope: &str, role: Role, principal_id: &str) -> pb::CreateRoleAssignmentRequest {
    pb::CreateRoleAssignmentRequest {
        scope: scope.to_string(),
        role: role.name().to_string(),
        principal_id: principal_id.to_string(),
        name: String::new(),
    }
}

async fn token_of(channel: &Channel, object_id: &str, secret: &str) -> String {
    IdentityClient::new(channel.clone())
        .issue_token(pb::IssueTokenRequest {
            object_id: object_id.to_string(),
            secret: secret.to_string(),
            audience: audience::MANAGEMENT.to_string(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn only_an_administrator_creates_principals_and_assigns_roles() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("identity");
    let (channel, stop, clock) = serve(&store, 7).await;
    let file = admin_credentials_path(&store);
    assert!(file.ends_with(ADMIN_CREDENTIALS_FILE));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret's file is the owner's only");
    }
    let admin_creds = AdminCredentials::load(&file).unwrap();
    let mut admin = IdentityClient::new(admin_creds.channel(channel.clone(), clock.clone()));
    let mut anonymous = IdentityClient::new(channel.clone());
    let tenant = admin_creds.tenant_id.clone();

    // No token: 401 AuthenticationFailed, for each administrative call.
    let refused = anonymous
        .create_principal(principal_request(&tenant, "intruder"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(azure(&refused).code, "AuthenticationFailed");
    assert_eq!(azure(&refused).http_status, 401);
    let refused = anonymous
        .create_role_assignment(role_request("/", Role::Owner, &admin_creds.object_id))
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthenticationFailed");
    let refused = anonymous
        .create_tenant(pb::CreateTenantRequest {
            name: "evil".into(),
            tenant_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthenticationFailed");

    // The administrator: succeeds.
    let made = admin
        .create_principal(principal_request(&tenant, "operator"))
        .await
        .unwrap()
        .into_inner();
    let operator = made.principal.unwrap();
    let subscription = "/subscriptions/5b1f0000-0000-4000-8000-000000000001";
    admin
        .create_role_assignment(role_request(subscription, Role::Owner, &operator.object_id))
        .await
        .unwrap();

    // An ordinary principal (Owner of a subscription, not a directory administrator): 403.
    let token = token_of(&channel, &operator.object_id, &made.secret).await;
    let refused = anonymous
        .create_principal(with_token(&token, principal_request(&tenant, "minion")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(azure(&refused).code, "AuthorizationFailed");
    assert_eq!(azure(&refused).http_status, 403);
    // ... it may not make itself Owner at the root scope, nor of another subscription ...
    let refused = anonymous
        .create_role_assignment(with_token(
            &token,
            role_request("/", Role::Owner, &operator.object_id),
        ))
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthorizationFailed");
    assert!(azure(&refused)
        .message
        .contains("Microsoft.Authorization/roleAssignments/write"));
    let refused = anonymous
        .create_role_assignment(with_token(
            &token,
            role_request(
                "/subscriptions/5b1f0000-0000-4000-8000-000000000002",
                Role::Owner,
                &operator.object_id,
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthorizationFailed");
    // ... but as Owner it may grant a role within its own subscription (Azure's rule).
    let granted = anonymous
        .create_role_assignment(with_token(
            &token,
            role_request(
                &format!("{subscription}/resourceGroups/rg"),
                Role::Reader,
                &operator.object_id,
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    // Removing it: the same rule, at the assignment's scope.
    let refused = IdentityClient::new(channel.clone())
        .delete_role_assignment(pb::DeleteRoleAssignmentRequest {
            id: granted.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthenticationFailed");
    anonymous
        .delete_role_assignment(with_token(
            &token,
            pb::DeleteRoleAssignmentRequest { id: granted.id },
        ))
        .await
        .unwrap();
    // Deleting a principal is the directory's: refused to the Owner, done by the administrator.
    let refused = anonymous
        .delete_principal(with_token(
            &token,
            pb::DeletePrincipalRequest {
                object_id: operator.object_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthorizationFailed");

    // A restart: the same credentials file still works, and no second administrator is made.
    drop(admin);
    drop(anonymous);
    drop(stop);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (channel, _stop, clock) = serve(&store, 8).await;
    assert_eq!(AdminCredentials::load(&file).unwrap(), admin_creds);
    let mut admin = IdentityClient::new(admin_creds.channel(channel.clone(), clock));
    admin
        .delete_principal(pb::DeletePrincipalRequest {
            object_id: operator.object_id,
        })
        .await
        .unwrap();
    admin
        .create_principal(principal_request(&tenant, "after-restart"))
        .await
        .unwrap();
}

#[test]
fn an_in_memory_authority_has_its_administrator_too() {
    let a = IdentityAuthority::in_memory(SeedTree::new(1).source("identity"));
    let admin = a.admin_credentials().expect("made at construction");
    assert!(a.admin_created());
    assert!(a.directory().is_administrator(&admin.object_id));
    let debug = format!("{admin:?}");
    assert!(
        !debug.contains(&admin.client_secret),
        "Debug never shows the secret"
    );
}
