//! Role removal (issue 17): a role assignment removed through the `identity.v1` service
//! (`DeleteRoleAssignment`) grants nothing afterwards — the guard in front of storage and ingest
//! refuses the same call with the same token that it let through before — and the removal
//! survives a restart of the authority.

use std::sync::{Arc, Mutex};

use prost::Message;
use tonic::Request;

use cmksim_identity::guard::LocalAccess;
use cmksim_identity::{audience, AuthError, Guard, IdentityAuthority, IdentityService};
use cmksim_identity::{Access, Action, PrincipalKind, Role};
use cmksim_proto::identity::v1 as pb;
use cmksim_proto::identity::v1::identity_server::Identity;
use cmksim_proto::storage::v1 as spb;
use cmksim_sim::{Clock, SeedTree, SimTime};

const WS: &str =
    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w";

fn bearer(token: &str) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    metadata
}

/// `message` carrying the bootstrap administrator's management token (the admin calls need it).
fn as_admin<T>(authority: &Mutex<IdentityAuthority>, message: T) -> Request<T> {
    let a = authority.lock().unwrap();
    let admin = a
        .admin_credentials()
        .expect("made on the first start")
        .clone();
    let (token, _) = a
        .issue_token(
            &admin.object_id,
            &admin.client_secret,
            audience::MANAGEMENT,
            0,
            SimTime::DEFAULT_EPOCH,
        )
        .unwrap();
    let mut request = Request::new(message);
    *request.metadata_mut() = bearer(&token);
    request
}

#[tokio::test]
async fn a_removed_role_is_refused_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Arc::new(Mutex::new(
        IdentityAuthority::open(dir.path(), SeedTree::new(3).source("identity")).unwrap(),
    ));
    let clock = Clock::tokio(SimTime::DEFAULT_EPOCH, 1.0);
    let service = IdentityService::new(authority.clone(), clock.clone());
    let tenant = service
        .create_tenant(as_admin(
            &authority,
            pb::CreateTenantRequest {
                name: "contoso".into(),
                tenant_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let created = service
        .create_principal(as_admin(
            &authority,
            pb::CreatePrincipalRequest {
                tenant_id: tenant.tenant_id.clone(),
                display_name: "agent".into(),
                kind: pb::PrincipalKind::ServicePrincipal as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let principal = created.principal.unwrap();
    let assignment = service
        .create_role_assignment(as_admin(
            &authority,
            pb::CreateRoleAssignmentRequest {
                scope: WS.into(),
                role: Role::MonitoringMetricsPublisher.name().into(),
                principal_id: principal.object_id.clone(),
                name: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let token = service
        .issue_token(Request::new(pb::IssueTokenRequest {
            object_id: principal.object_id.clone(),
            secret: created.secret.clone(),
            audience: audience::MONITOR.into(),
            lifetime_seconds: 0,
        }))
        .await
        .unwrap()
        .into_inner()
        .token;

    let guard = Guard::new(Arc::new(LocalAccess(authority.clone())), clock.clone());
    let append = spb::AppendRequest {
        workspace_id: WS.into(),
        ..Default::default()
    }
    .encode_to_vec();
    let path = "/storage.v1.DataPlane/Append";
    let caller = guard.check(path, &bearer(&token), &append).await.unwrap();
    assert_eq!(caller.unwrap().object_id, principal.object_id);

    // The id compares without case, as ARM ids do.
    let removed = service
        .delete_role_assignment(as_admin(
            &authority,
            pb::DeleteRoleAssignmentRequest {
                id: assignment.id.to_ascii_uppercase(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed, assignment);
    let refused = guard.check(path, &bearer(&token), &append).await;
    assert!(
        matches!(
            &refused,
            Err(AuthError::Forbidden { action: Action::TelemetryWrite, scope, .. }) if scope == WS
        ),
        "{refused:?}"
    );
    assert_eq!(refused.unwrap_err().azure().code, "AuthorizationFailed");

    // Removing it again: NOT_FOUND.
    let again = service
        .delete_role_assignment(as_admin(
            &authority,
            pb::DeleteRoleAssignmentRequest {
                id: assignment.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::NotFound);

    // The removal was persisted: a restarted authority still denies.
    drop(guard);
    drop(service);
    let Ok(authority) = Arc::try_unwrap(authority) else {
        panic!("the authority is still shared");
    };
    drop(authority);
    let mut reopened = None;
    // sled may hold its lock a moment after the handle is dropped: bounded retry.
    for _ in 0..100 {
        match IdentityAuthority::open(dir.path(), SeedTree::new(4).source("identity")) {
            Ok(a) => {
                reopened = Some(a);
                break;
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    let reopened = reopened.expect("the store reopens");
    assert_eq!(
        reopened.check_access(
            &principal.object_id,
            &tenant.tenant_id,
            Action::TelemetryWrite,
            WS
        ),
        Access::Denied
    );
    assert!(reopened
        .directory()
        .principals
        .values()
        .any(|p| p.object_id == principal.object_id && p.kind == PrincipalKind::ServicePrincipal));
}
