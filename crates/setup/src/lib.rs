//! cmksim-setup: the operator's set-up of a customer-managed-key world over the services' gRPC
//! APIs, in one place.
//!
//! Why a crate of its own: the same sequence — tenant and operator → tokens → vault → key →
//! cluster (provisioned) → access policy for the cluster's identity → key update (storage wraps
//! its account key through Key Vault) → workspace → link — was written out in `cmksim bench
//! ingest`, the multi-process CLI tests and storage's tests (issue 15). Storage's tests cannot
//! use a module of `cmksim-world` or `cmksim-cli` (both depend on storage), so the sequence lives
//! below all of them, on the generated clients of `cmksim-proto` alone.
//!
//! Every step returns a typed [`SetupError`] naming the step; callers decide whether that is a
//! test failure or a refused benchmark. Every wait is bounded by a [`Polling`].

#![forbid(unsafe_code)]

use std::time::Duration;

use cmksim_proto::identity::v1 as idp;
use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::storage::v1 as sp;
use tonic::transport::Channel;

/// ARM audience of management calls (vaults, access policies).
pub const MANAGEMENT_AUDIENCE: &str = "https://management.azure.com";
/// Key Vault data-plane audience (keys).
pub const VAULT_AUDIENCE: &str = "https://vault.azure.net";
/// The operator's key permissions on the vault it creates.
pub const OPERATOR_KEY_PERMISSIONS: [&str; 6] =
    ["get", "list", "create", "update", "wrapKey", "unwrapKey"];
/// The key permissions a cluster's identity needs to use its key (Azure's documented set).
pub const CLUSTER_KEY_PERMISSIONS: [&str; 3] = ["get", "wrapKey", "unwrapKey"];

/// Why a set-up step failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A service refused a step (or could not be reached).
    #[error("setup: {step}: {status}")]
    Rpc {
        step: &'static str,
        status: tonic::Status,
    },
    /// A state the set-up waits for did not come within its bound.
    #[error("setup: gave up waiting for {what} ({polls} polls)")]
    GaveUp { what: String, polls: u32 },
    /// An answer lacked a field the sequence needs.
    #[error("setup: the answer to {step} has no {field}")]
    Missing {
        step: &'static str,
        field: &'static str,
    },
    /// A token that cannot travel as an `authorization` header.
    #[error("setup: the token is not a valid header value")]
    BadToken,
}

fn rpc(step: &'static str) -> impl FnOnce(tonic::Status) -> SetupError {
    move |status| SetupError::Rpc { step, status }
}

/// How often and how long a wait looks again.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// Real time between two looks.
    pub interval: Duration,
    /// Most looks before [`SetupError::GaveUp`].
    pub polls_max: u32,
}

/// Looks at `check` until it yields a value, at most `polling.polls_max` times.
pub async fn poll<T, F, Fut>(what: &str, polling: Polling, mut check: F) -> Result<T, SetupError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..polling.polls_max {
        if let Some(value) = check().await {
            return Ok(value);
        }
        tokio::time::sleep(polling.interval).await;
    }
    Err(SetupError::GaveUp {
        what: what.to_string(),
        polls: polling.polls_max,
    })
}

/// `message` with `authorization: Bearer {token}`.
pub fn authorized<T>(token: &str, message: T) -> Result<tonic::Request<T>, SetupError> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| SetupError::BadToken)?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The names of a world's resources.
#[derive(Clone, Copy, Debug)]
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

/// A principal the set-up made, with what it takes to ask for more tokens later.
#[derive(Clone, Debug)]
pub struct Operator {
    pub tenant_id: String,
    pub object_id: String,
    pub secret: String,
}

impl Operator {
    /// A token of `audience` from the identity authority hosted with Key Vault (`kv`).
    pub async fn token(&self, kv: Channel, audience: &str) -> Result<String, SetupError> {
        Ok(idp::identity_client::IdentityClient::new(kv)
            .issue_token(idp::IssueTokenRequest {
                object_id: self.object_id.clone(),
                secret: self.secret.clone(),
                audience: audience.into(),
                lifetime_seconds: 0,
            })
            .await
            .map_err(rpc("issue token"))?
            .into_inner()
            .token)
    }
}

impl From<&cmksim_identity::AdminCredentials> for Operator {
    fn from(admin: &cmksim_identity::AdminCredentials) -> Operator {
        Operator {
            tenant_id: admin.tenant_id.clone(),
            object_id: admin.object_id.clone(),
            secret: admin.client_secret.clone(),
        }
    }
}

/// Makes tenant `contoso` and a service principal `display_name` in it, through the identity
/// service hosted with Key Vault (`kv`), as its administrator `admin` (the identity service
/// refuses those calls to anyone else: the credentials file `cmksim serve` wrote, or
/// `IdentityAuthority::admin_credentials` in process).
pub async fn tenant_and_operator(
    kv: Channel,
    admin: &cmksim_identity::AdminCredentials,
    display_name: &str,
) -> Result<Operator, SetupError> {
    let admin_token = Operator::from(admin)
        .token(kv.clone(), MANAGEMENT_AUDIENCE)
        .await?;
    let mut identity = idp::identity_client::IdentityClient::new(kv);
    let tenant_id = identity
        .create_tenant(authorized(
            &admin_token,
            idp::CreateTenantRequest {
                name: "contoso".into(),
                tenant_id: String::new(),
            },
        )?)
        .await
        .map_err(rpc("create tenant"))?
        .into_inner()
        .tenant_id;
    let created = identity
        .create_principal(authorized(
            &admin_token,
            idp::CreatePrincipalRequest {
                tenant_id: tenant_id.clone(),
                display_name: display_name.into(),
                kind: idp::PrincipalKind::ServicePrincipal as i32,
            },
        )?)
        .await
        .map_err(rpc("create principal"))?
        .into_inner();
    let principal = created.principal.ok_or(SetupError::Missing {
        step: "create principal",
        field: "principal",
    })?;
    Ok(Operator {
        tenant_id,
        object_id: principal.object_id,
        secret: created.secret,
    })
}

/// A dedicated cluster as the set-ups create it: capacity reservation of 1,000 GB a day,
/// billed to the cluster, with a system-assigned identity (the one Key Vault grants).
pub fn cluster_request(
    cluster: sp::ClusterRef,
    region: &str,
    tenant_id: &str,
) -> sp::CreateClusterRequest {
    sp::CreateClusterRequest {
        cluster: Some(cluster),
        location: region.into(),
        tenant_id: tenant_id.into(),
        sku: Some(sp::Sku {
            name: "capacityReservation".into(),
            capacity_gb_per_day: 1000,
        }),
        billing_type: "Cluster".into(),
        identity_type: "SystemAssigned".into(),
        ..Default::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Builds the world as an operator would (see the crate documentation for the sequence): a
/// standard vault with soft delete and purge protection, an RSA-2048 key, a cluster whose
/// identity may use the key, the key update done (storage `healthy_cmk` on the new version),
/// and a workspace linked to the cluster. Returns the operator (display name `operator`), made
/// by the identity service's administrator `admin`.
pub async fn build_world(
    names: &WorldNames,
    kv: Channel,
    storage: Channel,
    admin: &cmksim_identity::AdminCredentials,
    polling: Polling,
) -> Result<Operator, SetupError> {
    let operator = tenant_and_operator(kv.clone(), admin, "operator").await?;
    let tenant = operator.tenant_id.clone();
    let mut keyvault = kvp::key_vault_client::KeyVaultClient::new(kv.clone());
    let mut clusters = sp::clusters_client::ClustersClient::new(storage.clone());
    let mut workspaces = sp::workspaces_client::WorkspacesClient::new(storage.clone());
    let data_plane = sp::data_plane_client::DataPlaneClient::new(storage);
    let mgmt = operator.token(kv.clone(), MANAGEMENT_AUDIENCE).await?;
    let vault_token = operator.token(kv, VAULT_AUDIENCE).await?;

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
                    object_id: operator.object_id.clone(),
                    key_permissions: strings(&OPERATOR_KEY_PERMISSIONS),
                }],
                subscription_id: names.sub.into(),
                resource_group: names.rg.into(),
            },
        )?)
        .await
        .map_err(rpc("create vault"))?;
    let bundle = keyvault
        .create_key(authorized(
            &vault_token,
            kvp::CreateKeyRequest {
                vault_name: names.vault.into(),
                key_name: names.key.into(),
                kty: "RSA".into(),
                key_size: 2048,
                ..Default::default()
            },
        )?)
        .await
        .map_err(rpc("create key"))?
        .into_inner();
    let kid = bundle.key.ok_or(SetupError::Missing {
        step: "create key",
        field: "key",
    })?;
    let version = cmksim_proto::kid::version_of(&kid.kid);

    let created = clusters
        .create_cluster(cluster_request(names.cluster_ref(), names.region, &tenant))
        .await
        .map_err(rpc("create cluster"))?
        .into_inner();
    let cluster_oid = created
        .cluster
        .and_then(|c| c.identity)
        .ok_or(SetupError::Missing {
            step: "create cluster",
            field: "cluster identity",
        })?
        .principal_id;
    poll("provisioning", polling, || {
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
    .await?;
    keyvault
        .set_access_policy(authorized(
            &mgmt,
            kvp::SetAccessPolicyRequest {
                vault_name: names.vault.into(),
                policy: Some(kvp::AccessPolicy {
                    tenant_id: tenant.clone(),
                    object_id: cluster_oid,
                    key_permissions: strings(&CLUSTER_KEY_PERMISSIONS),
                }),
            },
        )?)
        .await
        .map_err(rpc("grant the cluster identity"))?;
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
        .map_err(rpc("key update"))?;
    poll(
        "healthy_cmk (storage reached the Key Vault)",
        polling,
        || {
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
        },
    )
    .await?;
    workspaces
        .create_workspace(sp::CreateWorkspaceRequest {
            workspace: Some(names.workspace_ref()),
            location: names.region.into(),
            retention_in_days: 0,
        })
        .await
        .map_err(rpc("create workspace"))?;
    workspaces
        .link_workspace(sp::LinkWorkspaceRequest {
            workspace: Some(names.workspace_ref()),
            cluster: Some(names.cluster_ref()),
        })
        .await
        .map_err(rpc("link"))?;
    poll("link", polling, || {
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
    .await?;
    Ok(operator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spell_the_arm_ids_ingest_uses() {
        let names = WorldNames {
            sub: "s",
            rg: "rg",
            region: "westeurope",
            vault: "v",
            key: "k",
            cluster: "c",
            workspace: "w",
        };
        assert_eq!(
            names.workspace_id(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w"
        );
        assert_eq!(names.cluster_ref().cluster_name, "c");
    }

    #[test]
    fn a_token_travels_as_a_bearer_header() {
        let request = authorized("abc", ()).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer abc"
        );
        assert!(matches!(authorized("a\nb", ()), Err(SetupError::BadToken)));
    }

    #[tokio::test]
    async fn a_wait_gives_up_after_its_bound() {
        let polling = Polling {
            interval: Duration::from_millis(1),
            polls_max: 3,
        };
        let mut looks = 0;
        let result: Result<(), _> = poll("never", polling, || {
            looks += 1;
            async { None }
        })
        .await;
        assert!(matches!(result, Err(SetupError::GaveUp { polls: 3, .. })));
        assert_eq!(looks, 3);
    }
}
