//! The driver's cluster side: dedicated clusters and workspaces through `storage.v1`.
//!
//! World setup follows the seeds' procedure: create the cluster (its managed identity comes
//! with it), grant that identity Get / Wrap Key / Unwrap Key, wait for provisioning to succeed,
//! set `keyVaultProperties`, wait for the key update, then link the workspaces and wait for the
//! links. Waiting is bounded polling in virtual time.

use std::time::Duration;

use cmksim_proto::storage::v1 as sp;
use cmksim_scenario::model;
use serde_json::json;

use super::{Driver, StepError};

/// All scenario workspaces live in one subscription and resource group of the simulation.
pub const WORKSPACE_SUBSCRIPTION: &str = "scenario";
pub const WORKSPACE_RESOURCE_GROUP: &str = "logs";

/// How often setup checks an asynchronous operation, and for how long at most.
const SETUP_POLL_INTERVAL: Duration = Duration::from_secs(60);
const SETUP_POLLS_MAX: u32 = 24 * 60;

impl Driver {
    pub(super) fn cluster_ref(&self, name: &str) -> Result<sp::ClusterRef, StepError> {
        let cluster = self
            .scenario
            .world
            .clusters
            .iter()
            .chain(self.created_clusters.iter())
            .find(|c| c.name == name)
            .ok_or_else(|| StepError::unknown("cluster", name))?;
        Ok(sp::ClusterRef {
            subscription_id: cluster.subscription.clone(),
            resource_group: cluster.resource_group.clone(),
            cluster_name: cluster.name.clone(),
        })
    }

    pub(super) fn workspace_ref(name: &str) -> sp::WorkspaceRef {
        sp::WorkspaceRef {
            subscription_id: WORKSPACE_SUBSCRIPTION.to_string(),
            resource_group: WORKSPACE_RESOURCE_GROUP.to_string(),
            workspace_name: name.to_string(),
        }
    }

    /// The ARM id the ingestion API knows a workspace by.
    pub(super) fn workspace_id(name: &str) -> String {
        format!(
            "/subscriptions/{WORKSPACE_SUBSCRIPTION}/resourceGroups/{WORKSPACE_RESOURCE_GROUP}/providers/Microsoft.OperationalInsights/workspaces/{name}"
        )
    }

    pub(super) async fn create_cluster(
        &mut self,
        cluster: &model::Cluster,
    ) -> Result<(), StepError> {
        if !self
            .scenario
            .world
            .clusters
            .iter()
            .any(|c| c.name == cluster.name)
        {
            self.created_clusters.push(cluster.clone());
        }
        let tenant_id = self.names.tenant_id(&cluster.tenant)?.to_string();
        let request = sp::CreateClusterRequest {
            cluster: Some(self.cluster_ref(&cluster.name)?),
            location: cluster.location.clone(),
            tenant_id,
            sku: Some(sp::Sku {
                name: "capacityReservation".into(),
                capacity_gb_per_day: cluster.capacity_gb_per_day,
            }),
            billing_type: super::wire(&cluster.billing_type),
            identity_type: "systemAssigned".into(),
            key_vault_properties: None,
            is_double_encryption_enabled: Some(cluster.double_encryption),
            tags: Default::default(),
        };
        let created = self.clusters.create_cluster(request).await?.into_inner();
        let principal_id = created
            .cluster
            .and_then(|c| c.identity)
            .map(|i| i.principal_id)
            .unwrap_or_default();
        self.names
            .cluster_identities
            .insert(cluster.name.clone(), principal_id.clone());
        self.events.record_raw(
            self.clock.now(),
            "scenario",
            "scenario.identity",
            format!(
                "cluster {} has the managed identity {principal_id}",
                cluster.name
            ),
            json!({ "cluster": cluster.name, "object_id": principal_id }),
        );
        Ok(())
    }

    /// `keyVaultProperties` for a scenario key reference (a version selector resolved now).
    pub(super) async fn key_vault_properties(
        &mut self,
        key: &model::KeyRef,
    ) -> Result<sp::KeyVaultProperties, StepError> {
        let version = match key.version {
            model::VersionSel::Versionless => String::new(),
            model::VersionSel::Latest => self.newest_version(&key.vault, &key.key).await?,
            model::VersionSel::Nth(_) => {
                self.resolve_version(&key.vault, &key.key, &key.version)
                    .await?
            }
        };
        Ok(sp::KeyVaultProperties {
            key_vault_uri: format!("https://{}.vault.azure.net", key.vault),
            key_name: key.key.clone(),
            key_version: version,
        })
    }

    pub(super) async fn update_cluster(
        &mut self,
        cluster: &str,
        capacity: Option<u32>,
        billing: Option<model::BillingType>,
        key: Option<&model::KeyRef>,
    ) -> Result<(), StepError> {
        let key_vault_properties = match key {
            Some(key) => Some(self.key_vault_properties(key).await?),
            None => None,
        };
        let request = sp::UpdateClusterRequest {
            cluster: Some(self.cluster_ref(cluster)?),
            capacity_gb_per_day: capacity,
            billing_type: billing.as_ref().map(super::wire),
            key_vault_properties,
            tags: Default::default(),
            is_double_encryption_enabled: None,
        };
        self.clusters.update_cluster(request).await?;
        Ok(())
    }

    pub(super) async fn create_workspace(
        &mut self,
        workspace: &model::Workspace,
    ) -> Result<(), StepError> {
        let request = sp::CreateWorkspaceRequest {
            workspace: Some(Self::workspace_ref(&workspace.name)),
            location: workspace.location.clone(),
            retention_in_days: workspace.retention_days,
        };
        self.workspaces.create_workspace(request).await?;
        Ok(())
    }

    pub(super) async fn link_workspace(
        &mut self,
        workspace: &str,
        cluster: &str,
    ) -> Result<(), StepError> {
        let request = sp::LinkWorkspaceRequest {
            workspace: Some(Self::workspace_ref(workspace)),
            cluster: Some(self.cluster_ref(cluster)?),
        };
        self.workspaces.link_workspace(request).await?;
        Ok(())
    }

    /// Builds the clusters and workspaces of the world, waiting for each asynchronous step.
    pub(super) async fn build_clusters(&mut self) -> Result<(), StepError> {
        let world = self.scenario.world.clone();
        for cluster in &world.clusters {
            self.create_cluster(cluster)
                .await
                .map_err(|e| e.declared_at(cluster.line))?;
        }
        for policy in world
            .access_policies
            .iter()
            .filter(|p| matches!(p.principal, model::PrincipalRef::Cluster(_)))
        {
            self.set_access_policy(policy).await?;
        }
        for workspace in &world.workspaces {
            self.create_workspace(workspace)
                .await
                .map_err(|e| e.declared_at(workspace.line))?;
        }
        for cluster in &world.clusters {
            self.wait_for(&cluster.name, |c| c.provisioning_state == "Succeeded")
                .await?;
        }
        for cluster in &world.clusters {
            if let Some(key) = &cluster.key {
                self.update_cluster(&cluster.name, None, None, Some(key))
                    .await
                    .map_err(|e| e.declared_at(cluster.line))?;
                let name = key.key.clone();
                self.wait_for(&cluster.name, move |c| {
                    c.provisioning_state == "Succeeded"
                        && c.key_vault_properties
                            .as_ref()
                            .is_some_and(|k| k.key_name == name)
                })
                .await?;
            }
        }
        for workspace in &world.workspaces {
            if let Some(cluster) = &workspace.link {
                self.link_workspace(&workspace.name, cluster)
                    .await
                    .map_err(|e| e.declared_at(workspace.line))?;
            }
        }
        for workspace in &world.workspaces {
            if workspace.link.is_some() {
                self.wait_for_link(&workspace.name).await?;
            }
        }
        Ok(())
    }

    async fn wait_for(
        &mut self,
        cluster: &str,
        done: impl Fn(&sp::Cluster) -> bool,
    ) -> Result<(), StepError> {
        let reference = self.cluster_ref(cluster)?;
        for _ in 0..SETUP_POLLS_MAX {
            let current = self
                .clusters
                .get_cluster(reference.clone())
                .await?
                .into_inner();
            if done(&current) {
                return Ok(());
            }
            if current.provisioning_state == "Failed" {
                return Err(StepError::setup(format!(
                    "cluster {cluster} failed while the world was built"
                )));
            }
            self.clock.sleep(SETUP_POLL_INTERVAL).await;
        }
        Err(StepError::setup(format!(
            "cluster {cluster} did not finish its operation during setup"
        )))
    }

    async fn wait_for_link(&mut self, workspace: &str) -> Result<(), StepError> {
        for _ in 0..SETUP_POLLS_MAX {
            let current = self
                .workspaces
                .get_workspace(Self::workspace_ref(workspace))
                .await?
                .into_inner();
            if !current.cluster_resource_id.is_empty()
                && current.link_state.eq_ignore_ascii_case("linked")
            {
                return Ok(());
            }
            self.clock.sleep(SETUP_POLL_INTERVAL).await;
        }
        Err(StepError::setup(format!(
            "workspace {workspace} was not linked during setup"
        )))
    }
}
