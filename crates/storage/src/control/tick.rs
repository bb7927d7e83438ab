//! Time passing: completing due operations, purging clusters whose soft delete ran out, and
//! failing an operation on purpose (a scenario fault).
//!
//! `tick(now)` repeatedly takes the earliest due item (an operation's `due_at` or a soft-deleted
//! cluster's `purge_at`) that is not after `now`, ordered by (time, rank, id) so the result never
//! depends on map order, and applies it *at its due time*: a late tick records the same times as a
//! punctual one. A delete completes after the unlinks it waits for (rank), and a purge that falls
//! due within the same tick as the delete that scheduled it is applied in the same call. Each item
//! is applied once, so the loop is bounded by the number of pending items.

use cmksim_sim::SimTime;

use super::cluster::ProvisioningState;
use super::errors::ControlError;
use super::events::{ControlEffect, ControlEvent, Outcome};
use super::operation::{OperationError, OperationKind};
use super::workspace::LinkState;
use super::ControlPlane;

/// A pending item: an operation to complete or a cluster to purge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Operation(String),
    Purge(String),
}

impl ControlPlane {
    fn pending(&self) -> Vec<(SimTime, u8, Due)> {
        let ops = self.state.operations.values().filter_map(|op| {
            op.due_at.filter(|_| op.status.is_running()).map(|at| {
                (
                    at,
                    op.kind.completion_rank(),
                    Due::Operation(op.name.clone()),
                )
            })
        });
        let purges = self.state.clusters.iter().filter_map(|(key, c)| {
            c.soft_deleted
                .map(|sd| (sd.purge_at, 2, Due::Purge(key.clone())))
        });
        ops.chain(purges).collect()
    }

    /// When the next operation completes or the next purge is due (never before `now`), or
    /// `None` when nothing is pending.
    pub fn next_due(&self, now: SimTime) -> Option<SimTime> {
        self.pending()
            .into_iter()
            .map(|(at, _, _)| at.max(now))
            .min()
    }

    /// Completes everything due at or before `now` and returns the effects and events.
    pub fn tick(&mut self, now: SimTime) -> Outcome<()> {
        let mut out = Outcome::new(());
        let mut budget = self.pending().len();
        while budget > 0 {
            budget -= 1;
            let Some((at, _, item)) = self
                .pending()
                .into_iter()
                .filter(|(at, _, _)| *at <= now)
                .min()
            else {
                break;
            };
            let step = match item {
                Due::Operation(name) => self.complete(at, &name),
                Due::Purge(key) => self.purge(at, &key),
            };
            out.effects.extend(step.effects);
            out.events.extend(step.events);
            // A completed delete schedules a purge: allow it one more step.
            budget += usize::from(
                out.effects
                    .last()
                    .is_some_and(|e| matches!(e, ControlEffect::ClusterDeleted { .. })),
            );
        }
        out
    }

    fn purge(&mut self, at: SimTime, key: &str) -> Outcome<()> {
        let mut out = Outcome::new(());
        if let Some(c) = self.state.clusters.remove(key) {
            out.effects.push(ControlEffect::ClusterPurged {
                cluster: c.id.clone(),
                cluster_id: c.cluster_id,
                at,
            });
            out.events
                .push(ControlEvent::ClusterPurged { cluster: c.id, at });
        }
        out
    }

    fn complete(&mut self, at: SimTime, name: &str) -> Outcome<()> {
        let mut out = Outcome::new(());
        let Some(op) = self.state.operations.get_mut(name) else {
            return out;
        };
        op.finish(at, None);
        let kind = op.kind.clone();
        match kind {
            OperationKind::Provision { cluster } => {
                let c = self.cluster_mut(&cluster);
                c.provisioning_state = ProvisioningState::Succeeded;
                c.provisioned_at = Some(at);
                c.current_operation = None;
                let after_seconds = at.since(c.created_at).as_secs();
                out.effects.push(ControlEffect::ProvisioningSucceeded {
                    cluster: cluster.clone(),
                    cluster_id: c.cluster_id.clone(),
                    at,
                });
                out.events.push(ControlEvent::ClusterProvisioned {
                    cluster,
                    after_seconds,
                    at,
                });
            }
            OperationKind::KeyUpdate { cluster, old, new } => {
                let c = self.cluster_mut(&cluster);
                c.key_vault_properties = Some(new.clone());
                c.provisioning_state = ProvisioningState::Succeeded;
                c.current_operation = None;
                let cluster_id = c.cluster_id.clone();
                out.events.push(ControlEvent::KeyUpdated {
                    cluster: cluster.clone(),
                    old_key_id: old.as_ref().map(|k| k.key_id()),
                    new_key_id: new.key_id(),
                    at,
                });
                out.effects.push(ControlEffect::KeyUpdateCompleted {
                    cluster,
                    cluster_id,
                    old,
                    new,
                    at,
                });
            }
            OperationKind::Link { workspace, cluster } => {
                self.workspace_mut(&workspace).link = LinkState::Linked {
                    cluster: cluster.clone(),
                    since: at,
                };
                out.effects.push(ControlEffect::LinkCompleted {
                    workspace: workspace.clone(),
                    cluster: cluster.clone(),
                    at,
                });
                out.events.push(ControlEvent::Linked {
                    workspace,
                    cluster,
                    at,
                });
            }
            OperationKind::Unlink {
                workspace, cluster, ..
            } => {
                self.workspace_mut(&workspace).link = LinkState::Unlinked;
                out.effects.push(ControlEffect::UnlinkCompleted {
                    workspace: workspace.clone(),
                    cluster: cluster.clone(),
                    at,
                });
                out.events.push(ControlEvent::Unlinked {
                    workspace,
                    cluster,
                    at,
                });
            }
            OperationKind::Delete { cluster } => {
                let done = self.finish_delete(at, &cluster, name);
                out.effects.extend(done.effects);
                out.events.extend(done.events);
            }
        }
        out
    }

    /// Fails a running provisioning, key update, link or unlink (a scenario fault): the operation
    /// becomes `Failed` with `code`/`message`; a provisioning failure leaves the cluster `Failed`,
    /// a failed key update keeps the old key, a failed link leaves the workspace unlinked, a failed
    /// unlink leaves it linked. Deletes, and the unlinks a delete performs, cannot
    /// be failed (answered as an unknown operation), so a delete always completes.
    pub fn fail_operation(
        &mut self,
        now: SimTime,
        operation_id: &str,
        code: &str,
        message: &str,
    ) -> Result<Outcome<()>, ControlError> {
        let key = operation_id.to_ascii_lowercase();
        let op = self
            .state
            .operations
            .get(&key)
            .filter(|op| op.status.is_running())
            .filter(|op| {
                !matches!(
                    op.kind,
                    OperationKind::Delete { .. }
                        | OperationKind::Unlink {
                            for_delete: true,
                            ..
                        }
                )
            })
            .ok_or_else(|| ControlError::OperationNotFound(operation_id.to_string()))?;
        let kind = op.kind.clone();
        let error = OperationError {
            code: code.to_string(),
            message: message.to_string(),
        };
        let mut out = Outcome::new(());
        let target = match &kind {
            OperationKind::Provision { cluster } => {
                let c = self.cluster_mut(cluster);
                c.provisioning_state = ProvisioningState::Failed;
                c.current_operation = None;
                out.effects.push(ControlEffect::ProvisioningFailed {
                    cluster: cluster.clone(),
                    cluster_id: c.cluster_id.clone(),
                    at: now,
                });
                cluster.clone()
            }
            OperationKind::KeyUpdate { cluster, .. } => {
                let c = self.cluster_mut(cluster);
                c.provisioning_state = ProvisioningState::Succeeded;
                c.current_operation = None;
                cluster.clone()
            }
            OperationKind::Link { workspace, .. } => {
                self.workspace_mut(workspace).link = LinkState::Unlinked;
                workspace.clone()
            }
            OperationKind::Unlink {
                workspace, cluster, ..
            } => {
                self.workspace_mut(workspace).link = LinkState::Linked {
                    cluster: cluster.clone(),
                    since: now,
                };
                workspace.clone()
            }
            OperationKind::Delete { .. } => unreachable!("filtered above"),
        };
        if let Some(op) = self.state.operations.get_mut(&key) {
            op.finish(now, Some(error.clone()));
        }
        out.events.push(ControlEvent::OperationFailed {
            operation: key,
            what: kind.label().to_string(),
            target,
            code: error.code,
            message: error.message,
        });
        Ok(out)
    }
}
