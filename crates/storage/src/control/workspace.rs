//! Workspaces, their link to a cluster, and where their ingest goes.
//!
//! A workspace is linked through its `cluster` linked service (`WriteAccessResourceId` = the
//! cluster's ARM id). Link and unlink are asynchronous ([`LinkState`] records which one is running)
//! and, until they complete, the previous destination applies ([`ControlPlane::routing`]).
//!
//! Link checks, in order: workspace exists (404) → `WriteAccessResourceId` well-formed (bad body)
//! → cluster exists and is not deleting (the seed's 400 "Cluster not found") → no link or unlink in
//! progress (409) → not linked already (simulator text) → same region (simulator text) →
//! provisioning (profile `link_before_provisioned`: `reject` answers "Operation cannot be executed
//! now. Wait for the Async operation to complete and try again."; `accept-and-drop` accepts, and
//! ingest is dropped until provisioning succeeds) → at most `link_operations_max` links in
//! `link_operations_window` (links only; unlinks do not count) → at most
//! `max_workspaces_per_cluster`. A cluster whose provisioning failed is refused under both profiles.
//!
//! A workspace lock (seed 003) blocks retention decreases, purge and table delete (`lifecycle`).

use cmksim_sim::profile::LinkBeforeProvisioned;
use cmksim_sim::SimTime;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::cluster::ProvisioningState;
use super::errors::ControlError;
use super::events::{ControlEvent, Outcome};
use super::keyvault::{normalize_region, same_region};
use super::names::{self, ResourceKind, ResourceName};
use super::operation::{OperationKind, OperationStatus};
use super::ControlPlane;

/// Where a workspace is linked. Cluster fields are cluster ARM ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LinkState {
    #[default]
    Unlinked,
    Linking {
        cluster: String,
        operation_id: String,
        since: SimTime,
    },
    Linked {
        cluster: String,
        since: SimTime,
    },
    Unlinking {
        cluster: String,
        operation_id: String,
        since: SimTime,
    },
}

/// A Log Analytics workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    pub resource: ResourceName,
    pub id: String,
    pub location: String,
    pub retention_days: u32,
    /// A resource lock (seed 003): blocks purge, table delete and retention decreases.
    pub locked: bool,
    pub link: LinkState,
    /// Start times of recent link operations (at most `link_operations_max`, within the window).
    pub link_history: Vec<SimTime>,
    pub created_at: SimTime,
}

impl Workspace {
    /// `features.clusterResourceId`: present once linked and until the unlink completes.
    pub fn cluster_resource_id(&self) -> Option<&str> {
        match &self.link {
            LinkState::Linked { cluster, .. } | LinkState::Unlinking { cluster, .. } => {
                Some(cluster)
            }
            LinkState::Unlinked | LinkState::Linking { .. } => None,
        }
    }
}

/// The body of a workspace create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceCreate {
    pub location: Option<String>,
    /// Defaults to `workspace.retention_default_days`.
    pub retention_days: Option<u32>,
}

/// Where a workspace's ingest goes right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Routing {
    /// Shared storage under the Microsoft-managed key (not linked, or a link still in progress).
    Shared,
    /// The cluster's storage (link completed, or an unlink still in progress).
    Cluster { cluster: String, cluster_id: String },
    /// Seed 000 (`accept-and-drop`): linked (or linking) to a cluster that has not finished
    /// provisioning: data is dropped, unrecoverably.
    DropNotProvisioned { cluster: String },
}

impl ControlPlane {
    fn workspace_key(resource: &ResourceName) -> String {
        resource.key(ResourceKind::Workspace)
    }

    pub(crate) fn workspace_mut(&mut self, arm_id: &str) -> &mut Workspace {
        self.state
            .workspaces
            .get_mut(&arm_id.to_ascii_lowercase())
            .expect("a validated workspace id refers to a stored workspace")
    }

    pub(crate) fn check_retention(&self, days: u32) -> Result<(), ControlError> {
        let w = &self.profile.workspace;
        if !(w.retention_min_days..=w.retention_max_days).contains(&days) {
            return Err(ControlError::RetentionOutOfRange {
                days,
                min_days: w.retention_min_days,
                max_days: w.retention_max_days,
            });
        }
        Ok(())
    }

    /// Creates a workspace.
    pub fn create_workspace(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        body: &WorkspaceCreate,
    ) -> Result<Outcome<()>, ControlError> {
        if !names::is_valid_workspace_name(&resource.name) {
            return Err(ControlError::InvalidWorkspaceName(resource.name.clone()));
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
                resource_type: "Microsoft.OperationalInsights/workspaces",
            });
        }
        let retention_days = body
            .retention_days
            .unwrap_or(self.profile.workspace.retention_default_days);
        self.check_retention(retention_days)?;
        let key = Self::workspace_key(resource);
        if self.state.workspaces.contains_key(&key) {
            return Err(ControlError::WorkspaceAlreadyExists(
                resource.arm_id(ResourceKind::Workspace),
            ));
        }
        let id = resource.arm_id(ResourceKind::Workspace);
        self.state.workspaces.insert(
            key,
            Workspace {
                resource: resource.clone(),
                id: id.clone(),
                location: location.clone(),
                retention_days,
                locked: false,
                link: LinkState::Unlinked,
                link_history: Vec::new(),
                created_at: now,
            },
        );
        let mut out = Outcome::new(());
        out.events.push(ControlEvent::WorkspaceCreated {
            workspace: id,
            location,
            retention_days,
        });
        Ok(out)
    }

    /// A workspace, or the seed's 404.
    pub fn get_workspace(&self, resource: &ResourceName) -> Result<&Workspace, ControlError> {
        self.state
            .workspaces
            .get(&Self::workspace_key(resource))
            .ok_or_else(|| {
                ControlError::WorkspaceNotFound(resource.arm_id(ResourceKind::Workspace))
            })
    }

    /// Workspaces of a subscription, sorted by id.
    pub fn list_workspaces(&self, subscription: &str) -> Vec<&Workspace> {
        self.state
            .workspaces
            .values()
            .filter(|w| w.resource.subscription.eq_ignore_ascii_case(subscription))
            .collect()
    }

    /// Changes the retention; a decrease is refused while the workspace is locked (seed 003: the
    /// lock blocks what could delete data; an increase deletes nothing).
    pub fn update_retention(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        days: u32,
    ) -> Result<Outcome<()>, ControlError> {
        let ws = self.get_workspace(resource)?;
        if ws.locked && days < ws.retention_days {
            return Err(ControlError::WorkspaceLocked {
                workspace: ws.id.clone(),
                operation: "write",
            });
        }
        self.check_retention(days)?;
        let _ = now;
        let id = ws.id.clone();
        let ws = self.workspace_mut(&id);
        let from_days = std::mem::replace(&mut ws.retention_days, days);
        let mut out = Outcome::new(());
        if from_days != days {
            out.events.push(ControlEvent::RetentionChanged {
                workspace: id,
                from_days,
                to_days: days,
            });
        }
        Ok(out)
    }

    /// Sets or removes the workspace lock.
    pub fn set_workspace_lock(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        locked: bool,
    ) -> Result<Outcome<()>, ControlError> {
        let id = self.get_workspace(resource)?.id.clone();
        let _ = now;
        let ws = self.workspace_mut(&id);
        let changed = ws.locked != locked;
        ws.locked = locked;
        let mut out = Outcome::new(());
        if changed {
            out.events.push(ControlEvent::WorkspaceLockChanged {
                workspace: id,
                locked,
            });
        }
        Ok(out)
    }

    /// For the data plane: may this workspace's data be purged (seed 003: not while locked)?
    pub fn check_purge_allowed(&self, resource: &ResourceName) -> Result<(), ControlError> {
        self.check_not_locked(resource, "delete").map(drop)
    }

    /// Links a workspace to the cluster `write_access_resource_id` (PUT `linkedServices/cluster`).
    /// Returns the link operation id.
    pub fn link_workspace(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        write_access_resource_id: &str,
        rng: &mut impl RngCore,
    ) -> Result<Outcome<String>, ControlError> {
        let cp = &self.profile.cluster;
        let ws = self.get_workspace(resource)?;
        let target = ResourceName::parse_arm_id(write_access_resource_id, ResourceKind::Cluster)
            .ok_or_else(|| {
                ControlError::BadRequestBody(format!(
                    "WriteAccessResourceId {write_access_resource_id:?}"
                ))
            })?;
        let cluster = self
            .state
            .clusters
            .get(&Self::cluster_key(&target))
            .filter(|c| {
                c.soft_deleted.is_none() && c.provisioning_state != ProvisioningState::Deleting
            })
            .ok_or_else(|| {
                ControlError::LinkClusterNotFound(write_access_resource_id.to_string())
            })?;
        match &ws.link {
            LinkState::Linking { .. } | LinkState::Unlinking { .. } => {
                return Err(ControlError::LinkOperationInProgress(ws.id.clone()))
            }
            LinkState::Linked { cluster: other, .. } => {
                return Err(ControlError::WorkspaceAlreadyLinked {
                    workspace: ws.id.clone(),
                    cluster: other.clone(),
                })
            }
            LinkState::Unlinked => {}
        }
        if !same_region(&ws.location, &cluster.location) {
            return Err(ControlError::RegionMismatch {
                workspace: ws.location.clone(),
                cluster: cluster.location.clone(),
            });
        }
        let not_provisioned = cluster.provisioned_at.is_none();
        if not_provisioned
            && (cp.link_before_provisioned == LinkBeforeProvisioned::Reject
                || cluster.provisioning_state == ProvisioningState::Failed)
        {
            return Err(ControlError::ClusterNotProvisioned(cluster.id.clone()));
        }
        let window_start = now.sub(cp.link_operations_window);
        let recent: Vec<SimTime> = ws
            .link_history
            .iter()
            .copied()
            .filter(|t| *t > window_start)
            .collect();
        if recent.len() >= cp.link_operations_max as usize {
            let oldest = recent.iter().min().copied().unwrap_or(now);
            return Err(ControlError::LinkOperationsLimit {
                workspace: ws.id.clone(),
                max: cp.link_operations_max,
                window_days: cp.link_operations_window.as_secs() / 86_400,
                next_allowed: oldest.add(cp.link_operations_window),
            });
        }
        let cluster_key = Self::cluster_key(&target);
        let on_cluster = self
            .state
            .workspaces
            .values()
            .filter(|w| match &w.link {
                LinkState::Linking { cluster, .. }
                | LinkState::Linked { cluster, .. }
                | LinkState::Unlinking { cluster, .. } => {
                    cluster.eq_ignore_ascii_case(&cluster_key)
                }
                LinkState::Unlinked => false,
            })
            .count();
        if on_cluster >= cp.max_workspaces_per_cluster as usize {
            return Err(ControlError::WorkspacesPerClusterLimit {
                cluster: cluster.id.clone(),
                max: cp.max_workspaces_per_cluster,
            });
        }
        // Validated: apply.
        let (ws_id, cluster_id_arm, location) = (
            ws.id.clone(),
            cluster.id.clone(),
            normalize_region(&cluster.location),
        );
        let due = now.add(cp.link_duration);
        let kind = OperationKind::Link {
            workspace: ws_id.clone(),
            cluster: cluster_id_arm.clone(),
        };
        let op = self.start_operation(
            now,
            rng,
            (&resource.subscription, &location),
            kind,
            OperationStatus::InProgress,
            Some(due),
        );
        let ws = self.workspace_mut(&ws_id);
        ws.link_history = recent;
        ws.link_history.push(now);
        ws.link = LinkState::Linking {
            cluster: cluster_id_arm.clone(),
            operation_id: op.clone(),
            since: now,
        };
        let mut out = Outcome::new(op.clone());
        out.events.push(ControlEvent::LinkStarted {
            workspace: ws_id,
            cluster: cluster_id_arm,
            operation: op,
            drops_until_provisioned: not_provisioned,
        });
        Ok(out)
    }

    /// Unlinks a workspace (DELETE `linkedServices/cluster`). Returns the unlink operation id.
    pub fn unlink_workspace(
        &mut self,
        now: SimTime,
        resource: &ResourceName,
        rng: &mut impl RngCore,
    ) -> Result<Outcome<String>, ControlError> {
        let ws = self.get_workspace(resource)?;
        let cluster = match &ws.link {
            LinkState::Linking { .. } | LinkState::Unlinking { .. } => {
                return Err(ControlError::LinkOperationInProgress(ws.id.clone()))
            }
            LinkState::Unlinked => return Err(ControlError::WorkspaceNotLinked(ws.id.clone())),
            LinkState::Linked { cluster, .. } => cluster.clone(),
        };
        // Validated: apply.
        let (ws_id, location) = (ws.id.clone(), normalize_region(&ws.location));
        let due = now.add(self.profile.cluster.unlink_duration);
        let kind = OperationKind::Unlink {
            workspace: ws_id.clone(),
            cluster: cluster.clone(),
            for_delete: false,
        };
        let op = self.start_operation(
            now,
            rng,
            (&resource.subscription, &location),
            kind,
            OperationStatus::InProgress,
            Some(due),
        );
        self.workspace_mut(&ws_id).link = LinkState::Unlinking {
            cluster: cluster.clone(),
            operation_id: op.clone(),
            since: now,
        };
        let mut out = Outcome::new(op.clone());
        out.events.push(ControlEvent::UnlinkStarted {
            workspace: ws_id,
            cluster,
            operation: op,
        });
        Ok(out)
    }

    /// Where the workspace's ingest goes at `now`: during a link or unlink in progress the previous
    /// destination applies; a cluster that has not finished provisioning drops the data.
    pub fn routing(&self, resource: &ResourceName, now: SimTime) -> Result<Routing, ControlError> {
        let ws = self.get_workspace(resource)?;
        let _ = now;
        let (cluster, in_progress_link) = match &ws.link {
            LinkState::Unlinked => return Ok(Routing::Shared),
            LinkState::Linking { cluster, .. } => (cluster, true),
            LinkState::Linked { cluster, .. } | LinkState::Unlinking { cluster, .. } => {
                (cluster, false)
            }
        };
        let Some(c) = self
            .state
            .clusters
            .get(&cluster.to_ascii_lowercase())
            .filter(|c| c.soft_deleted.is_none())
        else {
            return Ok(Routing::Shared);
        };
        if c.provisioned_at.is_none() {
            return Ok(Routing::DropNotProvisioned {
                cluster: c.id.clone(),
            });
        }
        if in_progress_link {
            return Ok(Routing::Shared);
        }
        Ok(Routing::Cluster {
            cluster: c.id.clone(),
            cluster_id: c.cluster_id.clone(),
        })
    }
}
