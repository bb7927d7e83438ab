//! The control tick and the control plane's effects on the data plane and the key loops.
//!
//! The tick task sleeps on the simulation clock until the control plane's next due item (and
//! never longer than [`TICK_CHECK_INTERVAL_MAX`] simulated, so a missed wake-up costs little),
//! completes what is due, persists, records the events, and applies the effects:
//! - provisioning succeeded → the key loop leaves `provisioning` (healthy under the MMK);
//! - key update completed → the key loop rewraps the AEK under the new key through Key Vault
//!   (WrapKey, RSA-OAEP-256, as the managed identity) and the host stores it and verifies every
//!   block ([`super::host::ClusterHost`]);
//! - link completed → the workspace's destination history gains the cluster (queries read it);
//! - deleted / recovered → the key loop stops or resumes;
//! - purged → the account is crypto-shredded and the key loop ends: `storage.state.shredded`.

use std::sync::Arc;
use std::time::Duration;

use cmksim_sim::SimTime;

use crate::control::ControlEffect;

use super::core::Core;
use super::events::StorageEvent;
use super::persist::ClusterDestination;

/// The tick checks at least this often (simulated).
pub const TICK_CHECK_INTERVAL_MAX: Duration = Duration::from_secs(60);

pub async fn run_tick(core: Arc<Core>) {
    let stopping = core.stopping();
    tokio::pin!(stopping);
    // The retention job runs at the first tick, then every `RETENTION_CHECK_INTERVAL`.
    let mut retention_due = core.now();
    // When each BYOS storage account's key was last checked (`Core::byos_tick`).
    let mut byos_checked = std::collections::BTreeMap::new();
    loop {
        let now = core.now();
        let wake = {
            let bound = now.add(TICK_CHECK_INTERVAL_MAX);
            core.control()
                .next_due(now)
                .map_or(bound, |due| due.min(bound))
        };
        tokio::select! {
            // Biased: the same order every time (determinism of simulated runs).
            biased;
            _ = &mut stopping => break,
            _ = core.tick_wake.notified() => {}
            _ = core.clock.sleep_until(wake) => {}
        }
        core.tick_once();
        core.lockbox_tick();
        core.byos_tick(&mut byos_checked).await;
        retention_due = core.lifecycle_tick(retention_due);
        if let Err(e) = core.stats.persist(&core.meta) {
            tracing::error!("storage: persisting the stats failed (retried next tick): {e}");
        }
    }
}

impl Core {
    /// Completes what is due now and applies the effects.
    pub fn tick_once(&self) {
        let now = self.now();
        let outcome = {
            let mut control = self.control();
            if control.next_due(now).is_none_or(|due| due > now) {
                return;
            }
            let outcome = control.tick(now);
            if let Err(e) = self.persist_control(control.state()) {
                tracing::error!("storage: persisting the control state failed: {e}");
            }
            outcome
        };
        self.record_control(now, &outcome);
        self.apply_effects(now, &outcome.effects);
    }

    /// Applies control effects to the data plane and the key loops.
    pub fn apply_effects(&self, now: SimTime, effects: &[ControlEffect]) {
        for effect in effects {
            if let Err(e) = self.apply_effect(now, effect) {
                tracing::error!(?effect, "storage: applying a control effect failed: {e}");
            }
        }
    }

    fn apply_effect(&self, now: SimTime, effect: &ControlEffect) -> Result<(), String> {
        match effect {
            ControlEffect::ProvisioningSucceeded { cluster_id, at, .. } => {
                if let Some(rt) = self.runtime(cluster_id) {
                    rt.host.fill_from_mmk();
                    rt.handle
                        .provisioned((*at).max(rt.handle.state().since()))
                        .map_err(|e| e.to_string())?;
                }
            }
            ControlEffect::ProvisioningFailed { .. } => {}
            ControlEffect::KeyUpdateCompleted {
                cluster_id, new, ..
            } => {
                let rt = self
                    .runtime(cluster_id)
                    .ok_or_else(|| format!("no storage for cluster {cluster_id}"))?;
                let key = super::host::loop_key_ref(new)
                    .ok_or_else(|| format!("unusable key {}", new.key_id()))?;
                rt.host.set_configured(key.clone());
                rt.handle.update_key(now, key).map_err(|e| e.to_string())?;
            }
            ControlEffect::LinkCompleted {
                workspace, cluster, ..
            } => {
                let cluster_id = self
                    .control()
                    .state()
                    .clusters
                    .get(&cluster.to_ascii_lowercase())
                    .map(|c| c.cluster_id.clone())
                    .unwrap_or_default();
                let mut history = self.history();
                let dest = ClusterDestination {
                    cluster: cluster.clone(),
                    cluster_id,
                };
                if super::persist::record_link(&mut history, workspace, dest) {
                    self.meta
                        .save_history(&history)
                        .map_err(|e| e.to_string())?;
                }
            }
            ControlEffect::UnlinkCompleted { .. } => {}
            ControlEffect::ClusterDeleted { cluster_id, .. } => {
                if let Some(rt) = self.runtime(cluster_id) {
                    rt.handle.deleted(now).map_err(|e| e.to_string())?;
                }
            }
            ControlEffect::ClusterRecovered { cluster_id, .. } => {
                if let Some(rt) = self.runtime(cluster_id) {
                    rt.host.fill_from_mmk();
                    rt.handle.recovered(now).map_err(|e| e.to_string())?;
                }
            }
            ControlEffect::ClusterPurged {
                cluster,
                cluster_id,
                at,
            } => {
                let from = self
                    .runtime(cluster_id)
                    .map(|rt| rt.handle.state_name().as_str().to_string())
                    .unwrap_or_else(|| "deleted".into());
                if let Some(rt) = self.remove_runtime(cluster_id) {
                    drop(rt.stop());
                }
                {
                    // Its data is deleted below: no query needs to reach it any more.
                    let mut history = self.history();
                    if super::persist::forget_cluster(&mut history, cluster_id) > 0 {
                        self.meta
                            .save_history(&history)
                            .map_err(|e| e.to_string())?;
                    }
                }
                let account = super::core::account_of(cluster_id);
                if self.data.account_exists(&account).unwrap_or(false) {
                    self.data
                        .purge_account(&account, *at)
                        .map_err(|e| e.to_string())?;
                }
                let name = crate::control::short(cluster).to_string();
                if from == crate::keyloop::StateName::Shredded.as_str() {
                    // Already shredded by the key loop (HSM zeroised, key purged): the purge
                    // deletes what was already unreadable; no second transition.
                    return Ok(());
                }
                self.events.record(
                    *at,
                    &format!("storage/{name}"),
                    &StorageEvent::Shredded {
                        cluster: name.clone(),
                        cluster_resource_id: cluster.clone(),
                        from,
                        reason:
                            "the cluster was purged: its account key and every block are deleted"
                                .into(),
                    },
                );
            }
        }
        Ok(())
    }
}
