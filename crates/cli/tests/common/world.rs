//! A small world built over the services' gRPC APIs, for the multi-process tests: the
//! sequence an operator follows (tenant and operator → tokens → vault → key → cluster → access
//! policy for the cluster's identity → key update → workspace → link), with every wait bounded.
//!
//! Each test file names its own resources ([`WorldNames`]) and hands in its own channels (plain
//! or TLS), so that one sequence serves the crash tests and the TLS tests alike.

use cmksim_proto::identity::v1 as idp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::storage::v1 as sp;
use tonic::transport::Channel;

use super::{POLLS_MAX, POLL_INTERVAL};

/// `SimTime::DEFAULT_EPOCH`: the simulated time at `--epoch`.
pub const SIM_EPOCH_MS: i64 = 1_593_907_200_000;

/// The names of a test's world.
pub struct WorldNames {
    pub sub: &'static str,
    pub rg: &'static str,
    pub region: &'static str,
    pub vault: &'static str,
    pub key: &'static str,
    pub cluster: &'static str,
    pub workspace: &'static str,
}

impl WorldNames {
    pub fn cluster_ref(&self) -> sp::ClusterRef {
        sp::ClusterRef {
            subscription_id: self.sub.into(),
            resource_group: self.rg.into(),
            cluster_name: self.cluster.into(),
        }
    }

    pub fn workspace_ref(&self) -> sp::WorkspaceRef {
        sp::WorkspaceRef {
            subscription_id: self.sub.into(),
            resource_group: self.rg.into(),
            workspace_name: self.workspace.into(),
        }
    }

    /// The workspace's ARM id, as ingest and query name it.
    pub fn workspace_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
            self.sub, self.rg, self.workspace
        )
    }
}

/// The simulated time now, for processes started with `--epoch epoch_ms` at `TIME_SCALE`.
pub fn sim_now_ms(epoch_ms: i64) -> i64 {
    SIM_EPOCH_MS + ((super::now_unix_ms() - epoch_ms) as f64 * super::TIME_SCALE) as i64
}

pub fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Polls `check` until it yields a value (bounded).
pub async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..POLLS_MAX {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("gave up waiting for {what}");
}

/// The operator a world was built by: enough to ask for fresh tokens later (a token lives one
/// simulated hour, seconds of real time at 600×).
pub struct Operator {
    pub object_id: String,
    pub secret: String,
}

impl Operator {
    /// A token of `audience` from the identity authority in the Key Vault process.
    pub async fn token(&self, kv: Channel, audience: &str) -> String {
        idp::identity_client::IdentityClient::new(kv)
            .issue_token(idp::IssueTokenRequest {
                object_id: self.object_id.clone(),
                secret: self.secret.clone(),
                audience: audience.into(),
                lifetime_seconds: 0,
            })
            .await
            .expect("issue token")
            .into_inner()
            .token
    }
}

/// Builds the world through the services' gRPC APIs, as an operator would: tenant, operator,
/// vault (soft delete, purge protection), RSA key, cluster (provisioned), the cluster identity's
/// access policy, the key update (the storage wraps its account key through Key Vault, so this
/// also proves storage → Key Vault works), a workspace linked to the cluster. Returns the
/// operator.
pub async fn build_world(names: &WorldNames, kv: Channel, storage: Channel) -> Operator {
    let mut identity = idp::identity_client::IdentityClient::new(kv.clone());
    let mut keyvault = kvp::key_vault_client::KeyVaultClient::new(kv);
    let mut clusters = sp::clusters_client::ClustersClient::new(storage.clone());
    let mut workspaces = sp::workspaces_client::WorkspacesClient::new(storage.clone());
    let data_plane = sp::data_plane_client::DataPlaneClient::new(storage);

    let tenant = identity
        .create_tenant(idp::CreateTenantRequest {
            name: "contoso".into(),
            tenant_id: String::new(),
        })
        .await
        .expect("create tenant")
        .into_inner()
        .tenant_id;
    let admin = identity
        .create_principal(idp::CreatePrincipalRequest {
            tenant_id: tenant.clone(),
            display_name: "operator".into(),
            kind: idp::PrincipalKind::ServicePrincipal as i32,
        })
        .await
        .expect("create principal")
        .into_inner();
    let admin_oid = admin.principal.unwrap().object_id;
    let token = |audience: &str| {
        let request = idp::IssueTokenRequest {
            object_id: admin_oid.clone(),
            secret: admin.secret.clone(),
            audience: audience.into(),
            lifetime_seconds: 0,
        };
        let mut identity = identity.clone();
        async move {
            identity
                .issue_token(request)
                .await
                .expect("issue token")
                .into_inner()
                .token
        }
    };
    let mgmt = token("https://management.azure.com").await;
    let vault_token = token("https://vault.azure.net").await;
    let permissions = |names: &[&str]| names.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    keyvault
        .create_vault(authorized(
            &mgmt,
            kvp::CreateVaultRequest {
                name: names.vault.into(),
                location: names.region.into(),
                tenant_id: tenant.clone(),
                sku: kvp::Sku::Standard as i32,
                enable_soft_delete: Some(true),
                soft_delete_retention_in_days: Some(90),
                enable_purge_protection: true,
                access_policies: vec![kvp::AccessPolicy {
                    tenant_id: tenant.clone(),
                    object_id: admin_oid.clone(),
                    key_permissions: permissions(&[
                        "get",
                        "list",
                        "create",
                        "update",
                        "wrapKey",
                        "unwrapKey",
                    ]),
                }],
                subscription_id: names.sub.into(),
                resource_group: names.rg.into(),
            },
        ))
        .await
        .expect("create vault");
    let key = keyvault
        .create_key(authorized(
            &vault_token,
            kvp::CreateKeyRequest {
                vault_name: names.vault.into(),
                key_name: names.key.into(),
                kty: "RSA".into(),
                key_size: 2048,
                ..Default::default()
            },
        ))
        .await
        .expect("create key")
        .into_inner();
    let version = key.key.unwrap().kid.rsplit('/').next().unwrap().to_string();
    let created = clusters
        .create_cluster(sp::CreateClusterRequest {
            cluster: Some(names.cluster_ref()),
            location: names.region.into(),
            tenant_id: tenant.clone(),
            sku: Some(sp::Sku {
                name: "capacityReservation".into(),
                capacity_gb_per_day: 1000,
            }),
            billing_type: "Cluster".into(),
            identity_type: "SystemAssigned".into(),
            ..Default::default()
        })
        .await
        .expect("create cluster")
        .into_inner();
    let cluster_oid = created.cluster.unwrap().identity.unwrap().principal_id;
    poll("provisioning", || {
        let mut clusters = clusters.clone();
        async move {
            let c = clusters
                .get_cluster(names.cluster_ref())
                .await
                .ok()?
                .into_inner();
            (c.provisioning_state == "Succeeded").then_some(())
        }
    })
    .await;
    keyvault
        .set_access_policy(authorized(
            &mgmt,
            kvp::SetAccessPolicyRequest {
                vault_name: names.vault.into(),
                policy: Some(kvp::AccessPolicy {
                    tenant_id: tenant.clone(),
                    object_id: cluster_oid,
                    key_permissions: permissions(&["get", "wrapKey", "unwrapKey"]),
                }),
            },
        ))
        .await
        .expect("grant the cluster identity");
    clusters
        .update_cluster(sp::UpdateClusterRequest {
            cluster: Some(names.cluster_ref()),
            key_vault_properties: Some(sp::KeyVaultProperties {
                key_vault_uri: format!("https://{}.vault.azure.net", names.vault),
                key_name: names.key.into(),
                key_version: version.clone(),
            }),
            ..Default::default()
        })
        .await
        .expect("key update");
    poll("healthy_cmk (storage reached the Key Vault)", || {
        let mut data_plane = data_plane.clone();
        let version = version.clone();
        async move {
            let s = data_plane
                .get_storage_state(names.cluster_ref())
                .await
                .ok()?
                .into_inner();
            (s.state() == sp::StorageStateName::HealthyCmk && s.key_kid.ends_with(&version))
                .then_some(())
        }
    })
    .await;
    workspaces
        .create_workspace(sp::CreateWorkspaceRequest {
            workspace: Some(names.workspace_ref()),
            location: names.region.into(),
            retention_in_days: 0,
        })
        .await
        .expect("create workspace");
    workspaces
        .link_workspace(sp::LinkWorkspaceRequest {
            workspace: Some(names.workspace_ref()),
            cluster: Some(names.cluster_ref()),
        })
        .await
        .expect("link");
    poll("link", || {
        let mut workspaces = workspaces.clone();
        async move {
            let w = workspaces
                .get_workspace(names.workspace_ref())
                .await
                .ok()?
                .into_inner();
            (w.link_state == "Linked").then_some(())
        }
    })
    .await;
    Operator {
        object_id: admin_oid,
        secret: admin.secret,
    }
}
