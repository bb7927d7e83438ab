//! The cluster resource and its lifecycle: create, get, list, update (PATCH), delete, recover.
//!
//! A cluster is created `ProvisioningAccount` and becomes `Succeeded` when its provisioning
//! operation completes (in `tick`). PATCH applies `sku` and `billingType` at once (seed 000: "It is
//! synchronous when updating Capacity value") and starts an asynchronous key update
//! (`Updating`) for `keyVaultProperties`. Delete is a soft delete, shaped by the profile:
//! - with linked workspaces, `delete_with_linked_workspaces` decides: `unlink-then-delete` (seed
//!   000: "Any associated workspace gets disassociated from the Cluster resource on delete
//!   operation") keeps the cluster `Deleting` while every linked workspace is unlinked; `refuse`
//!   (seed 001: "You must unlink all workspaces from the cluster before deleting it.") refuses;
//! - without, the cluster is `Deleting` for `delete_duration`: 0 under seed 000 ("the Cluster
//!   resource is deleted immediately"), a while under seed 001 (cluster delete is one of the
//!   operations that "are long and can take a while to complete").
//!
//! The name stays reserved until the purge.
//!
//! Create refuses double encryption (asked for, or left at the profile's default) in a region of
//! the profile's `double_encryption_unsupported_regions` (seed 001: "<region> doesn’t support
//! Double Encryption for clusters."); `isDoubleEncryptionEnabled: false` is the seed's remedy. The
//! setting is fixed at creation: an update has no member that could change it.
//!
//! Which seed message answers a busy cluster, by request (both seeds' lists):
//! - create (PUT) of a cluster that is provisioning, updating or deleting: "Operation cannot be
//!   executed now. Async operation is in a state other than succeeded..." (Create list);
//! - update (PATCH) or delete while provisioning or updating: "Operation cannot be executed now.
//!   Wait for the Async operation to complete and try again." — except delete while provisioning,
//!   which has its own 409 (Delete list);
//! - update carrying keyVaultProperties while deleting: "Cluster is in deleting state. Async
//!   operation is in progress . ..."; any other update, or a delete, while deleting: "Cluster is in
//!   deleting state. Wait for the Async operation to complete and try again."

use cmksim_sim::profile::DeleteWithLinkedWorkspaces;
use cmksim_sim::{ids, SimTime};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::errors::ControlError;
use super::events::{ControlEffect, ControlEvent, Outcome};
use super::keyvault::{self, KeyRef, KeyVaultFacts, KeyVaultPropertiesInput};
use super::limits::{self, ClusterCounts, SkuInput, SKU_NAME_CAPACITY_RESERVATION};
use super::names::{self, ResourceKind, ResourceName};
use super::operation::{OperationKind, OperationStatus};
use super::workspace::LinkState;
use super::ControlPlane;

/// The only identity type a cluster accepts (seed 000/001).
pub const IDENTITY_TYPE_SYSTEM_ASSIGNED: &str = "SystemAssigned";

/// `provisioningState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProvisioningState {
    ProvisioningAccount,
    Succeeded,
    Updating,
    Deleting,
    Failed,
}

/// `billingType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BillingType {
    #[default]
    Cluster,
    Workspaces,
}

impl BillingType {
    /// Case-insensitive `cluster` | `workspaces`.
    pub fn parse(s: &str) -> Option<BillingType> {
        if s.eq_ignore_ascii_case("cluster") {
            Some(BillingType::Cluster)
        } else if s.eq_ignore_ascii_case("workspaces") {
            Some(BillingType::Workspaces)
        } else {
            None
        }
    }
}

/// The system-assigned identity the caller obtained from the identity authority.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentity {
    pub principal_id: String,
    pub tenant_id: String,
}

/// `sku` as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    pub name: String,
    pub capacity_gb_per_day: u32,
    pub last_sku_update: SimTime,
}

/// When a soft-deleted cluster was deleted and when it will be purged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SoftDeleted {
    pub deleted_at: SimTime,
    pub purge_at: SimTime,
}

/// A cluster resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub resource: ResourceName,
    /// The ARM id, spelled as at creation.
    pub id: String,
    pub location: String,
    pub identity: ClusterIdentity,
    pub sku: Sku,
    pub billing_type: BillingType,
    pub key_vault_properties: Option<KeyRef>,
    pub is_double_encryption_enabled: bool,
    pub provisioning_state: ProvisioningState,
    /// The cluster's GUID (`clusterId`).
    pub cluster_id: String,
    pub created_at: SimTime,
    pub provisioned_at: Option<SimTime>,
    /// The running asynchronous operation on the cluster itself (provisioning, key update, delete).
    pub current_operation: Option<String>,
    /// `Some` while in soft delete: invisible to get and list, name reserved.
    pub soft_deleted: Option<SoftDeleted>,
}

impl Cluster {
    fn is_busy(&self) -> bool {
        matches!(
            self.provisioning_state,
            ProvisioningState::ProvisioningAccount
                | ProvisioningState::Updating
                | ProvisioningState::Deleting
        )
    }
}

/// The body of a create (PUT).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCreate {
    pub location: Option<String>,
    pub sku: Option<SkuInput>,
    /// `cluster` (default) | `workspaces`.
    pub billing_type: Option<String>,
    /// The requested identity type: must be systemAssigned.
    pub identity_type: Option<String>,
    /// Refused at creation (seed: "KeyVaultProperties are set on creation").
    pub key_vault_properties: Option<KeyVaultPropertiesInput>,
    /// Defaults to the profile's `double_encryption_default`; fixed at creation.
    pub is_double_encryption_enabled: Option<bool>,
}

/// The body of an update (PATCH): every member optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPatch {
    pub sku: Option<SkuInput>,
    pub billing_type: Option<String>,
    pub key_vault_properties: Option<KeyVaultPropertiesInput>,
    /// Refused when it differs from the cluster's (seed 001: fixed at creation).
    #[serde(default)]
    pub is_double_encryption_enabled: Option<bool>,
}

/// What the service gathered for a key update: Key Vault's answers and whether the cluster's
/// storage is revoked right now (then the update is refused with [`ControlError::StorageRevoked`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyUpdateContext {
    pub facts: KeyVaultFacts,
    pub storage_revoked: bool,
}

/// A validated create, ready to apply.
struct ValidCreate {
    location: String,
    capacity_gb_per_day: u32,
    billing_type: BillingType,
    double_encryption: bool,
}

impl ControlPlane {
    /// The key a cluster is stored under (its lowercase ARM id).
    pub(crate) fn cluster_key(resource: &ResourceName) -> String {
        resource.key(ResourceKind::Cluster)
    }

    fn counts(&self, subscription: &str, location: &str) -> ClusterCounts {
        cmksim_sim::rules::count_clusters(
            self.state.clusters.values().map(|c| {
                (
                    c.resource.subscription.as_str(),
                    c.location.as_str(),
                    c.soft_deleted.is_some(),
                )
            }),
            subscription,
            location,
        )
    }

    /// Checks a create without changing anything (step one of the two-step create: the service
    /// then obtains the identity and calls [`ControlPlane::create_cluster`]).
    pub fn validate_create(
        &self,
        now: SimTime,
        resource: &ResourceName,
        body: &ClusterCreate,
    ) -> Result<(), ControlError> {
        self.check_create(now, resource, body).map(|_| ())
    }

    fn check_create(
        &self,
        _now: SimTime,
        resource: &ResourceName,
        body: &ClusterCreate,
    ) -> Result<ValidCreate, ControlError> {
        if !names::is_valid_cluster_name(&resource.name) {
            return Err(ControlError::InvalidClusterName(resource.name.clone()));
        }
        if !resource.scope_is_valid() {
            return Err(ControlError::BadRequestBody(
                "subscription or resource group is malformed".into(),
            ));
        }
        let location = match body.location.as_deref().map(str::trim) {
            Some(l) if !l.is_empty() => l.to_string(),
            _ => return Err(ControlError::BadRequestBody("location is missing".into())),
        };
        if !cmksim_sim::rules::is_azure_region(&location) {
            return Err(ControlError::LocationNotAvailable {
                location,
                resource_type: "Microsoft.OperationalInsights/clusters",
            });
        }
        let billing_type = match body.billing_type.as_deref() {
            None => BillingType::default(),
            Some(b) => BillingType::parse(b)
                .ok_or_else(|| ControlError::BadRequestBody(format!("billingType {b:?}")))?,
        };
        match body.identity_type.as_deref().map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case(IDENTITY_TYPE_SYSTEM_ASSIGNED) => {}
            other => return Err(ControlError::IdentityNullOrEmpty(other.map(str::to_string))),
        }
        if body
            .key_vault_properties
            .as_ref()
            .is_some_and(|k| !k.is_empty())
        {
            return Err(ControlError::KeyVaultPropertiesOnCreation);
        }
        let capacity_gb_per_day = limits::validate_sku(&self.profile.cluster, body.sku.as_ref())?;
        let double_encryption = body
            .is_double_encryption_enabled
            .unwrap_or(self.profile.cluster.double_encryption_default);
        if double_encryption && !self.profile.cluster.double_encryption_supported(&location) {
            return Err(ControlError::DoubleEncryptionNotSupported(location));
        }
        if let Some(existing) = self.state.clusters.get(&Self::cluster_key(resource)) {
            return Err(match existing.soft_deleted {
                Some(sd) => ControlError::ClusterNameReserved {
                    name: resource.name.clone(),
                    purge_at: sd.purge_at,
                },
                None if existing.is_busy() => {
                    ControlError::CreateWhileOperationInProgress(existing.id.clone())
                }
                None => ControlError::ClusterAlreadyExists(existing.id.clone()),
            });
        }
        let counts = self.counts(&resource.subscription, &location);
        limits::check_cluster_counts(
            &self.profile.cluster,
            counts,
            &resource.subscription,
            &location,
            true,
        )?;
        Ok(ValidCreate {
            location,
            capacity_gb_per_day,
            billing_type,
            double_encryption,
        })
    }

    /// Creates a cluster with the identity the caller obtained for it. The cluster is
    /// `ProvisioningAccount` until `profile.cluster.provisioning_duration` has passed.
    /// Returns the provisioning operation id.
    pub fn create_cluster(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        body: &ClusterCreate,
        identity: ClusterIdentity,
        rng: &mut impl RngCore,
    ) -> Result<Outcome<String>, ControlError> {
        let valid = self.check_create(now, resource, body)?;
        let id = resource.arm_id(ResourceKind::Cluster);
        let provisioning = self.profile.cluster.provisioning_duration;
        let cluster_id = ids::guid(rng);
        let op = self.start_operation(
            now,
            rng,
            (&resource.subscription, &valid.location),
            OperationKind::Provision {
                cluster: id.clone(),
            },
            OperationStatus::InProgress,
            Some(now.add(provisioning)),
        );
        let cluster = Cluster {
            resource: resource.clone(),
            id: id.clone(),
            location: valid.location.clone(),
            identity,
            sku: Sku {
                name: SKU_NAME_CAPACITY_RESERVATION.to_string(),
                capacity_gb_per_day: valid.capacity_gb_per_day,
                last_sku_update: now,
            },
            billing_type: valid.billing_type,
            key_vault_properties: None,
            is_double_encryption_enabled: valid.double_encryption,
            provisioning_state: ProvisioningState::ProvisioningAccount,
            cluster_id,
            created_at: now,
            provisioned_at: None,
            current_operation: Some(op.clone()),
            soft_deleted: None,
        };
        self.state
            .clusters
            .insert(Self::cluster_key(resource), cluster);
        let mut out = Outcome::new(op.clone());
        out.events.push(ControlEvent::ClusterCreated {
            cluster: id,
            location: valid.location,
            capacity_gb_per_day: valid.capacity_gb_per_day,
            operation: op,
            provisioning_seconds: provisioning.as_secs(),
        });
        Ok(out)
    }

    /// A cluster that is not soft-deleted, or the seed's 404.
    pub fn get_cluster(&self, resource: &ResourceName) -> Result<&Cluster, ControlError> {
        self.state
            .clusters
            .get(&Self::cluster_key(resource))
            .filter(|c| c.soft_deleted.is_none())
            .ok_or_else(|| ControlError::ClusterNotFound(resource.arm_id(ResourceKind::Cluster)))
    }

    /// Clusters of a resource group, sorted by id (soft-deleted ones are not listed).
    pub fn list_clusters_by_resource_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Vec<&Cluster> {
        self.active_clusters()
            .filter(|c| {
                c.resource.subscription.eq_ignore_ascii_case(subscription)
                    && c.resource
                        .resource_group
                        .eq_ignore_ascii_case(resource_group)
            })
            .collect()
    }

    /// Clusters of a subscription, sorted by id (soft-deleted ones are not listed).
    pub fn list_clusters_by_subscription(&self, subscription: &str) -> Vec<&Cluster> {
        self.active_clusters()
            .filter(|c| c.resource.subscription.eq_ignore_ascii_case(subscription))
            .collect()
    }

    /// Soft-deleted clusters of a subscription, sorted by id (what support could recover).
    pub fn list_deleted_clusters(&self, subscription: &str) -> Vec<&Cluster> {
        self.state
            .clusters
            .values()
            .filter(|c| {
                c.soft_deleted.is_some()
                    && c.resource.subscription.eq_ignore_ascii_case(subscription)
            })
            .collect()
    }

    fn active_clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.state
            .clusters
            .values()
            .filter(|c| c.soft_deleted.is_none())
    }

    /// ARM ids of the workspaces whose `features.clusterResourceId` is this cluster, sorted.
    pub fn associated_workspaces(&self, resource: &ResourceName) -> Vec<String> {
        let key = Self::cluster_key(resource);
        self.state
            .workspaces
            .values()
            .filter(|w| {
                w.cluster_resource_id()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&key))
            })
            .map(|w| w.id.clone())
            .collect()
    }

    /// Update (PATCH): `sku` and `billingType` apply at once; `keyVaultProperties` start an
    /// asynchronous key update (`key` must then carry the facts). Returns the key update's
    /// operation id, if one was started.
    pub fn update_cluster(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        patch: &ClusterPatch,
        key: Option<&KeyUpdateContext>,
        rng: &mut impl RngCore,
    ) -> Result<Outcome<Option<String>>, ControlError> {
        let cluster = self.get_cluster(resource)?;
        // A body the service can never honour, whatever the cluster is doing (seed 001).
        if let Some(wanted) = patch.is_double_encryption_enabled {
            if wanted != cluster.is_double_encryption_enabled {
                return Err(ControlError::DoubleEncryptionImmutable(cluster.id.clone()));
            }
        }
        let kvp = patch
            .key_vault_properties
            .as_ref()
            .filter(|k| !k.is_empty());
        match cluster.provisioning_state {
            ProvisioningState::Deleting if kvp.is_some() => {
                return Err(ControlError::DeletingAsyncInProgress(cluster.id.clone()))
            }
            ProvisioningState::Deleting => {
                return Err(ControlError::ClusterDeleting(cluster.id.clone()))
            }
            ProvisioningState::ProvisioningAccount | ProvisioningState::Updating => {
                return Err(ControlError::OperationInProgress(cluster.id.clone()))
            }
            // A cluster whose provisioning failed has no storage whose key could be updated.
            ProvisioningState::Failed if kvp.is_some() => {
                return Err(ControlError::ClusterNotProvisioned(cluster.id.clone()))
            }
            ProvisioningState::Succeeded | ProvisioningState::Failed => {}
        }
        let capacity = match &patch.sku {
            Some(sku) => {
                let capacity = limits::validate_sku(&self.profile.cluster, Some(sku))?;
                let s = &cluster.sku;
                limits::check_capacity_change(
                    &self.profile.cluster,
                    now,
                    s.capacity_gb_per_day,
                    capacity,
                    s.last_sku_update,
                )?;
                Some(capacity).filter(|c| *c != s.capacity_gb_per_day)
            }
            None => None,
        };
        let billing = match patch.billing_type.as_deref() {
            None => None,
            Some(b) => Some(
                BillingType::parse(b)
                    .ok_or_else(|| ControlError::BadRequestBody(format!("billingType {b:?}")))?,
            ),
        };
        let new_key = match kvp {
            None => None,
            Some(input) => {
                keyvault::validate_format(input)?;
                let ctx = key.ok_or(ControlError::KeyFactsMissing)?;
                let new_key = keyvault::validate_key_update(
                    &self.profile,
                    &cluster.location,
                    &cluster.identity.tenant_id,
                    input,
                    &ctx.facts,
                )?;
                if ctx.storage_revoked {
                    return Err(ControlError::StorageRevoked(cluster.id.clone()));
                }
                Some(new_key)
            }
        };
        // Validated: apply.
        let (id, location, old_key) = (
            cluster.id.clone(),
            cluster.location.clone(),
            cluster.key_vault_properties.clone(),
        );
        let key_ms = self.profile.cluster.key_update_duration;
        let op = new_key.as_ref().map(|new| {
            self.start_operation(
                now,
                rng,
                (&resource.subscription, &location),
                OperationKind::KeyUpdate {
                    cluster: id.clone(),
                    old: old_key,
                    new: new.clone(),
                },
                OperationStatus::Updating,
                Some(now.add(key_ms)),
            )
        });
        let cluster = self.cluster_mut(&id);
        let mut out = Outcome::new(op.clone());
        if let Some(capacity) = capacity {
            let from = cluster.sku.capacity_gb_per_day;
            cluster.sku.capacity_gb_per_day = capacity;
            cluster.sku.last_sku_update = now;
            out.events.push(ControlEvent::ClusterUpdated {
                cluster: id.clone(),
                change: format!("capacity {from} → {capacity} GB/day"),
            });
        }
        if let Some(billing) = billing.filter(|b| *b != cluster.billing_type) {
            cluster.billing_type = billing;
            out.events.push(ControlEvent::ClusterUpdated {
                cluster: id.clone(),
                change: format!("billingType {billing:?}"),
            });
        }
        if let (Some(op), Some(new)) = (op, new_key) {
            cluster.provisioning_state = ProvisioningState::Updating;
            cluster.current_operation = Some(op.clone());
            out.events.push(ControlEvent::KeyUpdateStarted {
                cluster: id,
                key_id: new.key_id(),
                operation: op,
            });
        }
        Ok(out)
    }

    pub(crate) fn cluster_mut(&mut self, arm_id: &str) -> &mut Cluster {
        self.state
            .clusters
            .get_mut(&arm_id.to_ascii_lowercase())
            .expect("a validated cluster id refers to a stored cluster")
    }

    /// Delete: a soft delete for `soft_delete_retention`. Linked workspaces are unlinked first
    /// (asynchronously, `unlink_duration`) or the delete is refused, as the profile's
    /// `delete_with_linked_workspaces` says; without any the delete completes after
    /// `delete_duration` (at once when it is 0). Returns the delete operation id.
    pub fn delete_cluster(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        rng: &mut impl RngCore,
    ) -> Result<Outcome<String>, ControlError> {
        let cluster = self.get_cluster(resource)?;
        match cluster.provisioning_state {
            ProvisioningState::ProvisioningAccount => {
                return Err(ControlError::DeleteWhileProvisioning(cluster.id.clone()))
            }
            ProvisioningState::Deleting => {
                return Err(ControlError::ClusterDeleting(cluster.id.clone()))
            }
            ProvisioningState::Updating => {
                return Err(ControlError::OperationInProgress(cluster.id.clone()))
            }
            ProvisioningState::Succeeded | ProvisioningState::Failed => {}
        }
        let key = Self::cluster_key(resource);
        let mut linked = Vec::new();
        for w in self.state.workspaces.values() {
            match &w.link {
                LinkState::Linking { cluster, .. } | LinkState::Unlinking { cluster, .. }
                    if cluster.eq_ignore_ascii_case(&key) =>
                {
                    return Err(ControlError::LinkOperationInProgress(w.id.clone()))
                }
                LinkState::Linked { cluster, .. } if cluster.eq_ignore_ascii_case(&key) => {
                    linked.push(w.id.clone())
                }
                _ => {}
            }
        }
        if !linked.is_empty()
            && self.profile.cluster.delete_with_linked_workspaces
                == DeleteWithLinkedWorkspaces::Refuse
        {
            return Err(ControlError::DeleteWithLinkedWorkspaces {
                cluster: cluster.id.clone(),
                workspaces: linked,
            });
        }
        // Validated: apply.
        let (id, location) = (cluster.id.clone(), cluster.location.clone());
        let scope = (resource.subscription.as_str(), location.as_str());
        let delete_duration = self.profile.cluster.delete_duration;
        if linked.is_empty() && delete_duration.is_zero() {
            let op = self.start_operation(
                now,
                rng,
                scope,
                OperationKind::Delete {
                    cluster: id.clone(),
                },
                OperationStatus::Deleting,
                None,
            );
            let mut out = self.finish_delete(now, &id, &op);
            out.value = op;
            return Ok(out);
        }
        let due = match linked.is_empty() {
            true => now.add(delete_duration),
            false => now.add(self.profile.cluster.unlink_duration.max(delete_duration)),
        };
        let op = self.start_operation(
            now,
            rng,
            scope,
            OperationKind::Delete {
                cluster: id.clone(),
            },
            OperationStatus::Deleting,
            Some(due),
        );
        let mut out = Outcome::new(op.clone());
        for ws in &linked {
            let kind = OperationKind::Unlink {
                workspace: ws.clone(),
                cluster: id.clone(),
                for_delete: true,
            };
            let unlink_op = self.start_operation(
                now,
                rng,
                scope,
                kind,
                OperationStatus::InProgress,
                Some(due),
            );
            self.workspace_mut(ws).link = LinkState::Unlinking {
                cluster: id.clone(),
                operation_id: unlink_op.clone(),
                since: now,
            };
            out.events.push(ControlEvent::UnlinkStarted {
                workspace: ws.clone(),
                cluster: id.clone(),
                operation: unlink_op,
            });
        }
        let cluster = self.cluster_mut(&id);
        cluster.provisioning_state = ProvisioningState::Deleting;
        cluster.current_operation = Some(op.clone());
        out.events.insert(
            0,
            ControlEvent::ClusterDeleting {
                cluster: id,
                workspaces: linked,
                operation: op,
            },
        );
        Ok(out)
    }

    /// Puts a cluster into soft delete at `at` and completes its delete operation.
    pub(crate) fn finish_delete(&mut self, at: SimTime, arm_id: &str, op: &str) -> Outcome<String> {
        let purge_at = at.add(self.profile.cluster.soft_delete_retention);
        if let Some(o) = self.state.operations.get_mut(op) {
            o.finish(at, None);
        }
        let cluster = self.cluster_mut(arm_id);
        cluster.soft_deleted = Some(SoftDeleted {
            deleted_at: at,
            purge_at,
        });
        cluster.current_operation = None;
        let cluster_id = cluster.cluster_id.clone();
        let mut out = Outcome::new(op.to_string());
        out.effects.push(ControlEffect::ClusterDeleted {
            cluster: arm_id.to_string(),
            cluster_id,
            purge_at,
            at,
        });
        out.events.push(ControlEvent::ClusterDeleted {
            cluster: arm_id.to_string(),
            purge_at,
            at,
        });
        out
    }

    /// Recovers a soft-deleted cluster (before its purge) with its data and key; no workspace is
    /// linked afterwards. Counts against the active-cluster limit again.
    pub fn recover_cluster(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
    ) -> Result<Outcome<()>, ControlError> {
        let key = Self::cluster_key(resource);
        let not_found = || ControlError::ClusterNotFound(resource.arm_id(ResourceKind::Cluster));
        let cluster = self.state.clusters.get(&key).ok_or_else(not_found)?;
        let Some(sd) = cluster.soft_deleted else {
            return Err(ControlError::ClusterNotDeleted(cluster.id.clone()));
        };
        if now >= sd.purge_at {
            return Err(not_found());
        }
        let counts = self.counts(&cluster.resource.subscription, &cluster.location);
        limits::check_cluster_counts(
            &self.profile.cluster,
            counts,
            &cluster.resource.subscription,
            &cluster.location,
            false,
        )?;
        // Validated: apply.
        let cluster = self.state.clusters.get_mut(&key).expect("checked above");
        cluster.soft_deleted = None;
        cluster.provisioning_state = match cluster.provisioned_at {
            Some(_) => ProvisioningState::Succeeded,
            None => ProvisioningState::Failed,
        };
        let mut out = Outcome::new(());
        out.effects.push(ControlEffect::ClusterRecovered {
            cluster: cluster.id.clone(),
            cluster_id: cluster.cluster_id.clone(),
            at: now,
        });
        out.events.push(ControlEvent::ClusterRecovered {
            cluster: cluster.id.clone(),
        });
        Ok(out)
    }
}
