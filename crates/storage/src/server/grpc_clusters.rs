//! `storage.v1.Clusters`: create (with the cluster's managed identity), get, list, update (PATCH,
//! with the key update gathered from Key Vault), delete, recover, operation status.

use std::sync::Arc;

use cmksim_proto::storage::v1 as pb;
use tonic::{Code, Request, Response, Status};

use crate::control::{
    ClusterCreate, ClusterPatch, ControlError, KeyUpdateContext, KeyVaultPropertiesInput,
    ResourceKind, SkuInput,
};
use crate::keyloop::{KeyAccessMachine, StateName};
use crate::service::status::{azure_status, control_status, refusal_status};

use super::convert::{cluster_name, cluster_to_pb, control_identity};
use super::core::{account_of, Core};
use super::{facts, host};

pub struct ClustersService {
    pub core: Arc<Core>,
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    azure_status(
        Code::Internal,
        "InternalServerError",
        500,
        &format!("{what}: {e}"),
    )
}

fn kv_unreachable(e: &Status) -> Status {
    azure_status(
        Code::Unavailable,
        "KeyVaultUnavailable",
        503,
        &format!(
            "Key Vault could not be reached to validate the key: {:?} {}",
            e.code(),
            e.message()
        ),
    )
}

fn kvp_input(k: Option<&pb::KeyVaultProperties>) -> Option<KeyVaultPropertiesInput> {
    k.map(|k| KeyVaultPropertiesInput {
        key_vault_uri: k.key_vault_uri.clone(),
        key_name: k.key_name.clone(),
        key_version: k.key_version.clone(),
    })
}

impl ClustersService {
    fn operation(
        &self,
        cluster: &crate::control::ResourceName,
        op: String,
    ) -> Result<pb::ClusterOperation, Status> {
        let control = self.core.control();
        let c = control
            .state()
            .clusters
            .get(&cluster.key(ResourceKind::Cluster))
            .ok_or_else(|| Status::not_found("cluster vanished"))?;
        Ok(pb::ClusterOperation {
            cluster: Some(cluster_to_pb(&control, c)),
            operation_id: op,
        })
    }

    fn persist(&self) -> Result<(), Status> {
        let control = self.core.control();
        self.core
            .persist_control(control.state())
            .map_err(|e| internal("persisting the control state", e))
    }
}

#[tonic::async_trait]
impl pb::clusters_server::Clusters for ClustersService {
    async fn create_cluster(
        &self,
        request: Request<pb::CreateClusterRequest>,
    ) -> Result<Response<pb::ClusterOperation>, Status> {
        let req = request.into_inner();
        let core = &self.core;
        let resource = cluster_name(req.cluster.as_ref());
        let body = ClusterCreate {
            location: Some(req.location.clone()).filter(|l| !l.is_empty()),
            sku: req.sku.as_ref().map(|s| SkuInput {
                name: Some(s.name.clone()).filter(|n| !n.is_empty()),
                capacity: Some(s.capacity_gb_per_day).filter(|c| *c != 0),
            }),
            billing_type: Some(req.billing_type.clone()).filter(|b| !b.is_empty()),
            identity_type: Some(req.identity_type.clone()).filter(|t| !t.is_empty()),
            key_vault_properties: kvp_input(req.key_vault_properties.as_ref()),
            is_double_encryption_enabled: req.is_double_encryption_enabled,
        };
        let _slow = core.slow_ops.lock().await;
        let now = core.now();
        {
            let control = core.control();
            control
                .validate_create(now, &resource, &body)
                .map_err(|e| control_status(&control, &e))?;
        }
        let arm_id = resource.arm_id(ResourceKind::Cluster);
        let identity =
            super::system_identity::create(core, "cluster", &req.tenant_id, &arm_id).await?;
        let now = core.now();
        let (outcome, cluster) = {
            let mut control = core.control();
            let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = control
                .create_cluster(
                    now,
                    &resource,
                    &body,
                    control_identity(&identity),
                    &mut *rng,
                )
                .map_err(|e| control_status(&control, &e))?;
            let cluster = control
                .get_cluster(&resource)
                .map_err(|e| control_status(&control, &e))?
                .clone();
            core.meta
                .save_identity(&cluster.cluster_id, &identity)
                .map_err(|e| internal("storing the cluster identity", e))?;
            core.persist_control(control.state())
                .map_err(|e| internal("persisting the control state", e))?;
            (outcome, cluster)
        };
        core.record_control(now, &outcome);
        core.data
            .create_account(
                &account_of(&cluster.cluster_id),
                cluster.is_double_encryption_enabled,
                now,
            )
            .map_err(|e| internal("creating the storage account", e))?;
        let machine = KeyAccessMachine::new(&cluster.resource.name, &core.profile.key_access, now);
        core.start_cluster(&cluster, machine)
            .map_err(|e| internal("starting the key loop", e))?;
        core.tick_wake.notify_one();
        Ok(Response::new(self.operation(&resource, outcome.value)?))
    }

    async fn get_cluster(
        &self,
        request: Request<pb::ClusterRef>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let resource = cluster_name(Some(request.get_ref()));
        let control = self.core.control();
        let c = control
            .get_cluster(&resource)
            .map_err(|e| control_status(&control, &e))?;
        Ok(Response::new(cluster_to_pb(&control, c)))
    }

    async fn list_clusters_by_resource_group(
        &self,
        request: Request<pb::ListClustersByResourceGroupRequest>,
    ) -> Result<Response<pb::ClusterList>, Status> {
        let r = request.into_inner();
        let control = self.core.control();
        let clusters = control
            .list_clusters_by_resource_group(&r.subscription_id, &r.resource_group)
            .into_iter()
            .map(|c| cluster_to_pb(&control, c))
            .collect();
        Ok(Response::new(pb::ClusterList { clusters }))
    }

    async fn list_clusters_by_subscription(
        &self,
        request: Request<pb::ListClustersBySubscriptionRequest>,
    ) -> Result<Response<pb::ClusterList>, Status> {
        let r = request.into_inner();
        let control = self.core.control();
        let clusters = control
            .list_clusters_by_subscription(&r.subscription_id)
            .into_iter()
            .map(|c| cluster_to_pb(&control, c))
            .collect();
        Ok(Response::new(pb::ClusterList { clusters }))
    }

    async fn update_cluster(
        &self,
        request: Request<pb::UpdateClusterRequest>,
    ) -> Result<Response<pb::ClusterOperation>, Status> {
        let req = request.into_inner();
        let core = &self.core;
        let resource = cluster_name(req.cluster.as_ref());
        let patch = ClusterPatch {
            sku: req.capacity_gb_per_day.map(|c| SkuInput {
                name: Some(crate::control::SKU_NAME_CAPACITY_RESERVATION.to_string()),
                capacity: Some(c),
            }),
            billing_type: req.billing_type.clone(),
            key_vault_properties: kvp_input(req.key_vault_properties.as_ref()),
            is_double_encryption_enabled: req.is_double_encryption_enabled,
        };
        let _slow = core.slow_ops.lock().await;
        let kvp = patch.key_vault_properties.clone().filter(|k| !k.is_empty());
        let mut context = None;
        let mut refusal = None;
        if let Some(input) = &kvp {
            let (cluster_id, cluster_state_ok) = {
                let control = core.control();
                let c = control
                    .get_cluster(&resource)
                    .map_err(|e| control_status(&control, &e))?;
                (
                    c.cluster_id.clone(),
                    c.provisioning_state == crate::control::ProvisioningState::Succeeded,
                )
            };
            let vault = host::vault_of_uri(&input.key_vault_uri);
            let facts = match (vault, cluster_state_ok) {
                (Some(vault), true) => {
                    let identity = core
                        .meta
                        .identity(&cluster_id)
                        .map_err(|e| internal("reading the cluster identity", e))?
                        .ok_or_else(|| internal("cluster identity", "missing"))?;
                    facts::gather(
                        &core.kv_channel,
                        &core.identity_channel,
                        &identity,
                        &vault,
                        input,
                    )
                    .await
                    .map_err(|s| kv_unreachable(&s))?
                }
                // A malformed URI or a busy cluster is refused by the control plane first.
                _ => Default::default(),
            };
            let allowed = core
                .runtime(&cluster_id)
                .map(|rt| rt.handle.key_update_allowed());
            let storage_revoked = matches!(&allowed, Some(Err(r)) if r.state == StateName::Revoked);
            if let Some(Err(r)) = allowed {
                if r.state != StateName::Revoked {
                    refusal = Some(r);
                }
            }
            context = Some(KeyUpdateContext {
                facts,
                storage_revoked,
            });
        }
        let now = core.now();
        let outcome = {
            let mut control = core.control();
            let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(refusal) = &refusal {
                // Validate on a copy first: the control plane's own refusals come first.
                let mut probe = control.clone();
                probe
                    .update_cluster(now, &resource, &patch, context.as_ref(), &mut *rng)
                    .map_err(|e| control_status(&control, &e))?;
                return Err(refusal_status(refusal));
            }
            let outcome = control
                .update_cluster(now, &resource, &patch, context.as_ref(), &mut *rng)
                .map_err(|e| control_status(&control, &e))?;
            core.persist_control(control.state())
                .map_err(|e| internal("persisting the control state", e))?;
            outcome
        };
        core.record_control(now, &outcome);
        core.tick_wake.notify_one();
        Ok(Response::new(
            self.operation(&resource, outcome.value.unwrap_or_default())?,
        ))
    }

    async fn delete_cluster(
        &self,
        request: Request<pb::ClusterRef>,
    ) -> Result<Response<pb::ClusterOperation>, Status> {
        let resource = cluster_name(Some(request.get_ref()));
        let core = &self.core;
        let now = core.now();
        let outcome = {
            let mut control = core.control();
            let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = control
                .delete_cluster(now, &resource, &mut *rng)
                .map_err(|e| control_status(&control, &e))?;
            core.persist_control(control.state())
                .map_err(|e| internal("persisting the control state", e))?;
            outcome
        };
        core.record_control(now, &outcome);
        core.apply_effects(now, &outcome.effects);
        core.tick_wake.notify_one();
        let response = self.operation(&resource, outcome.value)?;
        Ok(Response::new(response))
    }

    async fn recover_cluster(
        &self,
        request: Request<pb::ClusterRef>,
    ) -> Result<Response<pb::ClusterOperation>, Status> {
        let resource = cluster_name(Some(request.get_ref()));
        let core = &self.core;
        let now = core.now();
        let outcome = {
            let mut control = core.control();
            let outcome = control
                .recover_cluster(now, &resource)
                .map_err(|e| control_status(&control, &e))?;
            core.persist_control(control.state())
                .map_err(|e| internal("persisting the control state", e))?;
            outcome
        };
        core.record_control(now, &outcome);
        core.apply_effects(now, &outcome.effects);
        self.persist()?;
        Ok(Response::new(self.operation(&resource, String::new())?))
    }

    async fn get_operation_status(
        &self,
        request: Request<pb::OperationRef>,
    ) -> Result<Response<pb::OperationStatus>, Status> {
        let r = request.into_inner();
        let control = self.core.control();
        control
            .get_operation(&r.subscription_id, &r.operation_id)
            .map_err(|e| control_status(&control, &e))?;
        let op = control
            .state()
            .operations
            .get(&r.operation_id.to_ascii_lowercase())
            .ok_or_else(|| {
                control_status(
                    &control,
                    &ControlError::OperationNotFound(r.operation_id.clone()),
                )
            })?;
        Ok(Response::new(pb::OperationStatus {
            id: op.id.clone(),
            name: op.name.clone(),
            status: op.status.as_str().to_string(),
            start_unix_ms: op.start_time.0,
            end_unix_ms: op.end_time.map(|t| t.0),
            error_code: op
                .error
                .as_ref()
                .map(|e| e.code.clone())
                .unwrap_or_default(),
            error_message: op
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        }))
    }
}
