//! The identity service's administrative calls need an administrator's token (issue 17,
//! defect 7): over real gRPC on 127.0.0.1:0, a create-principal or assign-role without a token
//! is refused 401 `AuthenticationFailed`, one with the token of an ordinary principal 403
//! `AuthorizationFailed`; the bootstrap administrator (through `AdminCredentials::channel`, the
//! in-repo callers' one home) succeeds; an Owner of a subscription may assign roles there and
//! nowhere else; and after a restart the credentials file of the first start still works. A
//! directory made before the bootstrap administrator existed gets one on its next start, and
//! keeps the rest; `CheckAccess` answers only callers with a token (about others: readers of
//! role assignments).

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

/// A directory made before the bootstrap administrator existed (before session 6): tenants,
/// principals and role assignments, but no administrator among them (no `administrator` field
/// in the principals' records) and no `identity-admin.json`. The next start makes one — once,
/// written 0600 — and keeps every tenant, principal and assignment it found: the old principal
/// still gets tokens and keeps its role, and the new administrator's API works.
#[tokio::test]
async fn a_directory_without_an_administrator_gets_one_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("identity");
    let subscription = "/subscriptions/5b1f0000-0000-4000-8000-0000000000aa";
    let (first_admin, old_tenant, old_app, old_secret, counts) = {
        let mut a = IdentityAuthority::open(&store, SeedTree::new(3).source("identity")).unwrap();
        let tenant = a.create_tenant("contoso", "").unwrap();
        let (app, secret) = a
            .create_principal(
                &tenant.tenant_id,
                "old-app",
                cmksim_identity::PrincipalKind::ServicePrincipal,
            )
            .unwrap();
        a.assign_role(subscription, Role::Owner, &app.object_id, "")
            .unwrap();
        let admin = a.admin_credentials().cloned().unwrap();
        let d = a.directory();
        let counts = (
            d.tenants.len(),
            d.principals.len(),
            d.role_assignments.len(),
        );
        (admin, tenant.tenant_id, app.object_id, secret, counts)
    };
    make_it_old(&store, &first_admin);
    let file = admin_credentials_path(&store);

    // The start: an administrator, made now, and nothing else changed.
    let made = {
        let a = IdentityAuthority::open(&store, SeedTree::new(4).source("identity")).unwrap();
        assert!(a.admin_created(), "made on this start, to be printed");
        let admin = a.admin_credentials().cloned().unwrap();
        assert_ne!(admin.object_id, first_admin.object_id);
        assert!(a.directory().is_administrator(&admin.object_id));
        assert_eq!(AdminCredentials::load(&file).unwrap(), admin);
        let d = a.directory();
        assert!(d.tenants.contains_key(&old_tenant));
        assert!(d.principals.contains_key(&old_app));
        assert!(
            !d.is_administrator(&old_app),
            "the old principal stays what it was"
        );
        // What was removed (the first administrator, its tenant and role) is made again; the
        // rest is as it was.
        let now = (
            d.tenants.len(),
            d.principals.len(),
            d.role_assignments.len(),
        );
        assert_eq!(now, counts);
        admin
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Made once: the next start reuses it.
    let (channel, _stop, clock) = serve(&store, 5).await;
    let admin_creds = AdminCredentials::load(&file).unwrap();
    assert_eq!(admin_creds, made);
    let mut admin = IdentityClient::new(admin_creds.channel(channel.clone(), clock));
    admin
        .create_principal(principal_request(&old_tenant, "after-migration"))
        .await
        .expect("the new administrator's API works");
    admin
        .create_role_assignment(role_request(
            &format!("{subscription}/resourceGroups/rg"),
            Role::Reader,
            &old_app,
        ))
        .await
        .expect("the administrator assigns a role to an old principal");
    // The old principal: its token, and its Owner role (it asks about itself).
    let token = token_of(&channel, &old_app, &old_secret).await;
    let answer = IdentityClient::new(channel.clone())
        .check_access(with_token(
            &token,
            pb::CheckAccessRequest {
                object_id: old_app.clone(),
                tenant_id: old_tenant.clone(),
                action: "Microsoft.OperationalInsights/clusters/write".into(),
                scope: format!("{subscription}/resourceGroups/rg"),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::AccessDecision::Granted as i32);
}

/// `CheckAccess` answers only a caller with a valid token: about itself with any audience
/// (what a guard asks, forwarding its caller's token), about someone else only with
/// `Microsoft.Authorization/roleAssignments/read` at the scope (the administrator's User Access
/// Administrator role at `/` has it; an Owner of another subscription does not).
#[tokio::test]
async fn check_access_needs_a_token_and_about_others_a_reader_of_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("identity");
    let (channel, _stop, clock) = serve(&store, 7).await;
    let admin_creds = AdminCredentials::load(&admin_credentials_path(&store)).unwrap();
    let mut admin = IdentityClient::new(admin_creds.channel(channel.clone(), clock));
    let tenant = admin_creds.tenant_id.clone();
    let ours = "/subscriptions/5b1f0000-0000-4000-8000-0000000000b1";
    let theirs = "/subscriptions/5b1f0000-0000-4000-8000-0000000000b2";
    let mut made = Vec::new();
    for (name, scope) in [("alice", ours), ("bob", theirs)] {
        let p = admin
            .create_principal(principal_request(&tenant, name))
            .await
            .unwrap()
            .into_inner();
        let oid = p.principal.unwrap().object_id;
        admin
            .create_role_assignment(role_request(scope, Role::Owner, &oid))
            .await
            .unwrap();
        made.push((oid, p.secret));
    }
    let (alice, bob) = (&made[0], &made[1]);
    let ask = |who: &str, scope: &str| pb::CheckAccessRequest {
        object_id: who.to_string(),
        tenant_id: tenant.clone(),
        action: "Microsoft.OperationalInsights/clusters/write".into(),
        scope: scope.to_string(),
    };
    let mut anonymous = IdentityClient::new(channel.clone());

    // No token: 401, no answer.
    let refused = anonymous
        .check_access(ask(&bob.0, theirs))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(azure(&refused).code, "AuthenticationFailed");

    // About itself, with a token of another audience than management: answered.
    let monitor = IdentityClient::new(channel.clone())
        .issue_token(pb::IssueTokenRequest {
            object_id: alice.0.clone(),
            secret: alice.1.clone(),
            audience: audience::MONITOR.to_string(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let answer = anonymous
        .check_access(with_token(&monitor, ask(&alice.0, ours)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::AccessDecision::Granted as i32);
    let answer = anonymous
        .check_access(with_token(&monitor, ask(&alice.0, theirs)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::AccessDecision::Denied as i32);

    // About bob, in bob's subscription: alice has no role there, so no answer.
    let refused = anonymous
        .check_access(with_token(&monitor, ask(&bob.0, theirs)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(azure(&refused).code, "AuthorizationFailed");
    assert!(azure(&refused)
        .message
        .contains("Microsoft.Authorization/roleAssignments/read"));
    // In her own subscription she reads the assignments: answered (bob has none there).
    let answer = anonymous
        .check_access(with_token(&monitor, ask(&bob.0, ours)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::AccessDecision::Denied as i32);
    // The administrator reads every assignment.
    let answer = admin
        .check_access(ask(&bob.0, theirs))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, pb::AccessDecision::Granted as i32);
}

/// Makes the store in `store` an old directory (before the bootstrap administrator existed): no
/// administrator (nor its tenant and role assignment), the principals' records without the
/// `administrator` field, no credentials file.
fn make_it_old(store: &std::path::Path, first_admin: &AdminCredentials) {
    // The authority was just dropped: sled can hold the directory's lock a moment longer.
    let db = cmksim_sim::durable::open(store).unwrap();
    db.open_tree("tenants")
        .unwrap()
        .remove(first_admin.tenant_id.as_bytes())
        .unwrap();
    let principals = db.open_tree("principals").unwrap();
    principals.remove(first_admin.object_id.as_bytes()).unwrap();
    for entry in principals.iter() {
        let (key, value) = entry.unwrap();
        let mut record: serde_json::Value = serde_json::from_slice(&value).unwrap();
        record.as_object_mut().unwrap().remove("administrator");
        principals
            .insert(key, serde_json::to_vec(&record).unwrap())
            .unwrap();
    }
    let assignments = db.open_tree("role_assignments").unwrap();
    for entry in assignments.iter() {
        let (key, value) = entry.unwrap();
        let record: serde_json::Value = serde_json::from_slice(&value).unwrap();
        if record["principal_id"] == first_admin.object_id.as_str() {
            assignments.remove(key).unwrap();
        }
    }
    db.flush().unwrap();
    std::fs::remove_file(admin_credentials_path(store)).unwrap();
}

/// The same old directory, as the HTTPS door left it: its own administrator (`cmksim-admin` of a
/// tenant `cmksim`, Owner of its subscription and Monitoring Metrics Publisher and Log Analytics
/// Reader at `/`), whose secret is in the door's `credentials.json`. After the start it is a
/// directory administrator with User Access Administrator at `/`, so the door's start (giving
/// itself its roles at `/`) and its admin API work with the credentials the user already has;
/// another principal is not promoted.
#[tokio::test]
async fn the_doors_earlier_administrator_keeps_administering() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("identity");
    let subscription = "/subscriptions/5b1f0000-0000-4000-8000-0000000000d1";
    let (first_admin, door, door_secret, other, door_tenant) = {
        let mut a = IdentityAuthority::open(&store, SeedTree::new(3).source("identity")).unwrap();
        let tenant = a.create_tenant("cmksim", "").unwrap().tenant_id;
        let kind = cmksim_identity::PrincipalKind::ServicePrincipal;
        let (door, secret) = a.create_principal(&tenant, "cmksim-admin", kind).unwrap();
        let (other, _) = a.create_principal(&tenant, "someone", kind).unwrap();
        a.assign_role(subscription, Role::Owner, &door.object_id, "")
            .unwrap();
        for role in [Role::MonitoringMetricsPublisher, Role::LogAnalyticsReader] {
            a.assign_role("/", role, &door.object_id, "").unwrap();
        }
        let admin = a.admin_credentials().cloned().unwrap();
        (admin, door.object_id, secret, other.object_id, tenant)
    };
    make_it_old(&store, &first_admin);

    {
        let a = IdentityAuthority::open(&store, SeedTree::new(4).source("identity")).unwrap();
        assert!(
            a.admin_created(),
            "a bootstrap administrator with a credentials file"
        );
        assert!(a.directory().is_administrator(&door));
        assert!(!a.directory().is_administrator(&other));
    }
    let (channel, _stop, _clock) = serve(&store, 5).await;
    let token = token_of(&channel, &door, &door_secret).await;
    let mut door_client = IdentityClient::new(channel.clone());
    // What the door does at its start, and its admin API.
    door_client
        .create_role_assignment(with_token(
            &token,
            role_request("/", Role::MonitoringMetricsPublisher, &door),
        ))
        .await
        .expect("the door's administrator assigns its roles at /");
    door_client
        .create_principal(with_token(&token, principal_request(&door_tenant, "new")))
        .await
        .expect("the door's administrator makes principals");
}

/// `CreateManagedIdentity` answers with the identity's secret, so it is the resource provider's
/// alone (issue 17, defect 7's last open door): without a token 401; an ordinary principal, even
/// Owner at `/`, or one that merely carries cluster storage's name in its own tenant, 403 naming
/// `Microsoft.ManagedIdentity/identities/write`; cluster storage's first-party principal (made by
/// the administrator, through the client layer that attaches its management token) and the
/// administrator create; a deleted provider's token no longer does. A tenant's Azure Cosmos DB
/// principal (Sentinel's first use) is guarded alike.
#[tokio::test]
async fn only_a_resource_provider_or_the_administrator_creates_managed_identities() {
    use cmksim_identity::directory::{
        COSMOS_DB_APP_ID, COSMOS_DB_DISPLAY_NAME, STORAGE_PROVIDER_NAME,
    };
    use cmksim_identity::{provision_service_principal, AuthChannel, TokenSource};

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("identity");
    let (channel, _stop, clock) = serve(&store, 9).await;
    let admin_creds = AdminCredentials::load(&admin_credentials_path(&store)).unwrap();
    let mut admin = IdentityClient::new(admin_creds.channel(channel.clone(), clock.clone()));
    let mut anonymous = IdentityClient::new(channel.clone());
    let tenant = admin
        .create_tenant(pb::CreateTenantRequest {
            name: "contoso".into(),
            tenant_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant_id;
    let cluster = "/subscriptions/5b1f0000-0000-4000-8000-000000000001/resourceGroups/rg/\
                   providers/Microsoft.OperationalInsights/clusters/c";
    let request = |resource_id: &str| pb::CreateManagedIdentityRequest {
        tenant_id: tenant.clone(),
        resource_id: resource_id.to_string(),
    };

    // No token: 401.
    let refused = anonymous
        .create_managed_identity(request(cluster))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(azure(&refused).code, "AuthenticationFailed");
    assert_eq!(azure(&refused).http_status, 401);

    // A tenant's Azure Cosmos DB principal (its secret in the answer too), without a token: 401.
    let cosmos = principal_request(&tenant, COSMOS_DB_DISPLAY_NAME);
    let refused = anonymous
        .create_principal(cosmos.clone())
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthenticationFailed");

    // An Owner at the root scope, and a namesake of cluster storage in a customer's tenant: 403,
    // for an identity and for a Cosmos DB principal.
    for name in ["operator", STORAGE_PROVIDER_NAME] {
        let made = admin
            .create_principal(principal_request(&tenant, name))
            .await
            .unwrap()
            .into_inner();
        let oid = made.principal.unwrap().object_id;
        admin
            .create_role_assignment(role_request("/", Role::Owner, &oid))
            .await
            .unwrap();
        let token = token_of(&channel, &oid, &made.secret).await;
        let refused = anonymous
            .create_managed_identity(with_token(&token, request(cluster)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{name}");
        assert_eq!(azure(&refused).code, "AuthorizationFailed", "{name}");
        assert_eq!(azure(&refused).http_status, 403, "{name}");
        assert!(
            azure(&refused)
                .message
                .contains("'Microsoft.ManagedIdentity/identities/write'"),
            "{}",
            azure(&refused).message
        );
        let refused = anonymous
            .create_principal(with_token(&token, cosmos.clone()))
            .await
            .unwrap_err();
        assert_eq!(azure(&refused).code, "AuthorizationFailed", "{name}");
    }

    // Cluster storage's first-party principal (no role), through its own token source.
    let (storage_oid, storage_secret) = provision_service_principal(
        admin_creds.channel(channel.clone(), clock.clone()),
        STORAGE_PROVIDER_NAME,
        &[],
    )
    .await
    .unwrap();
    let tokens = TokenSource::new(
        channel.clone(),
        &storage_oid,
        &storage_secret,
        clock.clone(),
    );
    let mut storage = IdentityClient::new(AuthChannel::new(channel.clone(), Some(tokens)));
    let created = storage
        .create_managed_identity(request(cluster))
        .await
        .expect("the resource provider creates the cluster's identity")
        .into_inner();
    let identity = created.principal.unwrap();
    assert_eq!(identity.resource_id, cluster);
    assert!(!created.secret.is_empty());
    // ... and a tenant's Cosmos DB principal (Sentinel's, a provider too, does the same).
    let made = storage.create_principal(cosmos).await.unwrap().into_inner();
    assert_eq!(made.principal.unwrap().app_id, COSMOS_DB_APP_ID);
    // The administrator may too (another resource).
    admin
        .create_managed_identity(request(&format!("{cluster}2")))
        .await
        .expect("the administrator creates an identity");

    // A deleted provider: its token, issued before, no longer creates.
    let token = token_of(&channel, &storage_oid, &storage_secret).await;
    admin
        .delete_principal(pb::DeletePrincipalRequest {
            object_id: storage_oid,
        })
        .await
        .unwrap();
    let refused = anonymous
        .create_managed_identity(with_token(&token, request(&format!("{cluster}3"))))
        .await
        .unwrap_err();
    assert_eq!(azure(&refused).code, "AuthorizationFailed");
}
