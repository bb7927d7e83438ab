//! A guarded storage for the token tests (`auth_grpc`, `byos_auth_grpc`): a real Key Vault,
//! which hosts the identity authority, and a real storage server guarded as `serve` guards it
//! (`cmksim_identity::Guard::remote`), both on 127.0.0.1:0; and the calls those tests make to
//! the identity service as its bootstrap administrator (tenants, principals, role assignments,
//! tokens), in one place.

#![allow(dead_code)]

use cmksim_identity::{AdminCredentials, AuthChannel, Guard};
use cmksim_keyvault::{KeyVaultConfig, KeyVaultServer};
use cmksim_proto::common::v1 as cpb;
use cmksim_proto::identity::v1 as idpb;
use cmksim_sim::net::Network;
use cmksim_sim::{Clock, EventLog, Profile, SeedTree};
use cmksim_storage::{StorageConfig, StorageServer};
use tonic::transport::Channel;

/// The identity service, with the administrator's token on its administrative calls.
pub type Identity = idpb::identity_client::IdentityClient<AuthChannel>;

pub fn channel(uri: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(uri.to_string())
        .unwrap()
        .connect_lazy()
}

/// `message` with `Authorization: Bearer token` (none: no header).
pub fn with_token<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// The ARM error code in a refusal's details.
pub fn arm_code(status: &tonic::Status) -> String {
    use prost::Message;
    cpb::AzureError::decode(status.details())
        .map(|e| e.code)
        .unwrap_or_default()
}

/// The services Key Vault and guarded storage, running until the test ends.
pub struct Guarded {
    /// The identity authority's bootstrap administrator.
    pub admin: AdminCredentials,
    pub kv_uri: String,
    pub st_uri: String,
}

impl Guarded {
    /// Starts Key Vault (data in `dir/kv`) and guarded storage (`dir/storage`).
    pub async fn start(
        dir: &std::path::Path,
        clock: &Clock,
        events: &EventLog,
        profile: &Profile,
    ) -> Guarded {
        let kv_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kv_uri = format!("http://{}", kv_listener.local_addr().unwrap());
        let kv = KeyVaultServer::open(
            &dir.join("kv"),
            clock.clone(),
            SeedTree::new(7),
            events.clone(),
            KeyVaultConfig {
                os_key_material: false,
                without_hsm: false,
                key_material_seed: None,
            },
        )
        .unwrap();
        let admin = kv
            .identity()
            .lock()
            .unwrap()
            .admin_credentials()
            .cloned()
            .expect("made on the first start");
        let authority = kv.identity();
        tokio::spawn(async move {
            kv.serve_with_incoming(
                cmksim_sim::net::tcp_incoming(kv_listener),
                std::future::pending(),
            )
            .await
            .unwrap();
        });
        let st_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let st_uri = format!("http://{}", st_listener.local_addr().unwrap());
        let config = StorageConfig::new(
            dir.join("storage"),
            clock.clone(),
            SeedTree::new(11),
            events.clone(),
            profile.clone(),
            Network::Tcp,
            &kv_uri,
        )
        .with_principal_of(&authority)
        .unwrap();
        let storage = StorageServer::open(config)
            .unwrap()
            .with_guard(Guard::remote(channel(&kv_uri), clock.clone()));
        tokio::spawn(async move {
            storage
                .serve_with_incoming(
                    cmksim_sim::net::tcp_incoming(st_listener),
                    std::future::pending(),
                )
                .await
                .unwrap();
        });
        Guarded {
            admin,
            kv_uri,
            st_uri,
        }
    }

    /// The identity service as its administrator.
    pub fn identity(&self, clock: &Clock) -> Identity {
        Identity::new(self.admin.channel(channel(&self.kv_uri), clock.clone()))
    }
}

/// A principal and its secret.
pub struct Principal {
    pub oid: String,
    pub secret: String,
}

pub async fn tenant(identity: &mut Identity, name: &str) -> String {
    identity
        .create_tenant(idpb::CreateTenantRequest {
            name: name.into(),
            tenant_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .tenant_id
}

pub async fn principal(identity: &mut Identity, tenant: &str, name: &str) -> Principal {
    let created = identity
        .create_principal(idpb::CreatePrincipalRequest {
            tenant_id: tenant.into(),
            display_name: name.into(),
            kind: idpb::PrincipalKind::ServicePrincipal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    Principal {
        oid: created.principal.unwrap().object_id,
        secret: created.secret,
    }
}

pub async fn assign(identity: &mut Identity, scope: &str, role: &str, who: &Principal) {
    identity
        .create_role_assignment(idpb::CreateRoleAssignmentRequest {
            scope: scope.into(),
            role: role.into(),
            principal_id: who.oid.clone(),
            name: String::new(),
        })
        .await
        .unwrap();
}

pub async fn token(identity: &mut Identity, who: &Principal, aud: &str) -> String {
    identity
        .issue_token(idpb::IssueTokenRequest {
            object_id: who.oid.clone(),
            secret: who.secret.clone(),
            audience: aud.into(),
            lifetime_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .token
}
