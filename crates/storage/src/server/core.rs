//! The state every RPC and background task shares: the control plane, the data plane, the
//! clusters' key loops, the control store, and the channels to Key Vault and the identity
//! authority.
//!
//! Locking: `control` and `clusters` are std mutexes held only for synchronous work (never across
//! an `.await`). Calls that must await between validating and applying (create and key update:
//! they ask the identity authority or Key Vault first) are serialised by `slow_ops`, so that
//! their validation still holds when they apply.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use cmksim_sim::{Clock, EventLog, Profile, RandomSource, SeedTree, SimTime};

use crate::control::{Cluster, ControlEvent, ControlPlane, ControlState, Outcome};
use crate::data::{AekWrapping, DataPlane};
use crate::keyloop::{
    DriverConfig, GrpcVaultAccess, KeyAccessMachine, KeyLoopDriver, KeyLoopHandle, KeyRef,
    KeyTarget, KeyVersionSpec, ManagedIdentityCredentials,
};

use super::host::{self, ClusterHost};
use super::persist::{History, Meta, SharedStats};
use super::{events, ServerError, StorageConfig};

/// One cluster's running storage: its key loop and the host that applies its effects.
pub struct ClusterRuntime {
    /// Cluster name (the event source `storage/<name>`).
    pub name: String,
    /// ARM id as spelled at creation.
    pub arm_id: String,
    pub account: String,
    pub handle: KeyLoopHandle,
    pub host: Arc<ClusterHost>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl ClusterRuntime {
    /// Stops the key loop (purge, shutdown).
    pub fn stop(&self) -> Option<JoinHandle<()>> {
        if let Err(_no_receiver) = self.stop.send(true) {
            // The key loop has already ended, so there is nothing left to stop.
        }
        self.task.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub struct Core {
    pub clock: Clock,
    pub events: EventLog,
    pub profile: Profile,
    pub seeds: SeedTree,
    pub control: Mutex<ControlPlane>,
    pub control_rng: Mutex<RandomSource>,
    pub meta: Meta,
    pub data: Arc<DataPlane>,
    /// By clusterId.
    pub clusters: Mutex<BTreeMap<String, Arc<ClusterRuntime>>>,
    pub history: Mutex<History>,
    pub stats: Arc<SharedStats>,
    pub kv_channel: Channel,
    pub identity_channel: Channel,
    /// The identity service with cluster storage's own tokens (creating managed identities).
    pub provider_identity: cmksim_identity::AuthChannel,
    /// Cluster storage's first-party principal's credentials (empty: not provisioned).
    pub principal: cmksim_identity::CredentialSlot,
    pub slow_ops: tokio::sync::Mutex<()>,
    /// Wakes the control tick (a new operation may be due earlier).
    pub tick_wake: Notify,
    stop: watch::Sender<bool>,
    tick_task: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    pub fn open(config: StorageConfig) -> Result<Arc<Core>, ServerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Io {
            path: dir.clone(),
            source,
        })?;
        let meta = Meta::open(&dir.join("control.sled"))?;
        let state = meta.control()?.unwrap_or_default();
        let control = ControlPlane::from_state(config.profile.clone(), state);
        let data_rng = if config.os_key_material {
            RandomSource::Os
        } else {
            config.seeds.source("storage/data")
        };
        let data = DataPlane::open(&dir.join("data"), data_rng, &config.profile)?;
        let kv_channel = config
            .network
            .channel(&config.keyvault_uri, config.client_timeouts)?;
        let identity_channel = config
            .network
            .channel(&config.identity_uri, config.client_timeouts)?;
        let provider_identity = cmksim_identity::AuthChannel::new(
            identity_channel.clone(),
            Some(cmksim_identity::TokenSource::provisioned(
                identity_channel.clone(),
                config.principal.clone(),
                config.clock.clone(),
            )),
        );
        let history = meta.history()?;
        let stats = meta.stats()?;
        let (stop, _) = watch::channel(false);
        Ok(Arc::new(Core {
            clock: config.clock,
            events: config.events,
            profile: config.profile,
            control_rng: Mutex::new(config.seeds.source("storage/control")),
            seeds: config.seeds,
            control: Mutex::new(control),
            meta,
            data: Arc::new(data),
            clusters: Mutex::new(BTreeMap::new()),
            history: Mutex::new(history),
            stats: Arc::new(SharedStats::new(stats)),
            kv_channel,
            identity_channel,
            provider_identity,
            principal: config.principal,
            slow_ops: tokio::sync::Mutex::new(()),
            tick_wake: Notify::new(),
            stop,
            tick_task: Mutex::new(None),
        }))
    }

    pub fn now(&self) -> SimTime {
        self.clock.now()
    }

    pub fn control(&self) -> MutexGuard<'_, ControlPlane> {
        lock(&self.control)
    }

    pub fn runtime(&self, cluster_id: &str) -> Option<Arc<ClusterRuntime>> {
        lock(&self.clusters).get(cluster_id).cloned()
    }

    pub fn runtimes(&self) -> Vec<Arc<ClusterRuntime>> {
        lock(&self.clusters).values().cloned().collect()
    }

    pub fn remove_runtime(&self, cluster_id: &str) -> Option<Arc<ClusterRuntime>> {
        lock(&self.clusters).remove(cluster_id)
    }

    pub fn history(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }

    /// The outcome counters.
    pub fn stats(&self) -> &SharedStats {
        &self.stats
    }

    /// Persists the control state (flushed).
    pub fn persist_control(&self, state: &ControlState) -> Result<(), ServerError> {
        self.meta.save_control(state)
    }

    /// Records control events at `now` (completions at their own `at`).
    pub fn record_control<T>(&self, now: SimTime, outcome: &Outcome<T>) {
        for event in &outcome.events {
            self.record_control_event(now, event);
        }
    }

    pub fn record_control_event(&self, now: SimTime, event: &ControlEvent) {
        events::record_control(&self.events, now, event);
    }

    /// Restores the key loop of every stored cluster, then starts the control tick.
    pub fn start_background(self: &Arc<Core>) -> Result<(), ServerError> {
        let now = self.now();
        let clusters: Vec<Cluster> = self.control().state().clusters.values().cloned().collect();
        for cluster in clusters {
            if self.runtime(&cluster.cluster_id).is_some() {
                continue;
            }
            let account = account_of(&cluster.cluster_id);
            if !self.data.account_exists(&account)? {
                tracing::warn!(cluster = %cluster.id, "no storage account for a stored cluster");
                continue;
            }
            let (machine, unfinished_rewrap) = self.restored_machine(&cluster, &account, now)?;
            let runtime = self.start_cluster(&cluster, machine)?;
            if let Some(key) = unfinished_rewrap {
                // The process stopped between a key update's completion (persisted) and the
                // rewrap it triggers (not yet done): the account key is still wrapped by the
                // previous key. Ask for the rewrap again, as the completed update would have.
                tracing::info!(cluster = %cluster.id, "resuming a key update's rewrap after restart");
                if let Err(e) = runtime.handle.update_key(now, key) {
                    tracing::error!(cluster = %cluster.id, "resuming the rewrap after restart: {e}");
                }
            }
        }
        let core = self.clone();
        let task = tokio::spawn(async move { super::effects::run_tick(core).await });
        *lock(&self.tick_task) = Some(task);
        Ok(())
    }

    /// Stops the control tick and every key loop, and waits for them.
    pub async fn stop_background(&self) {
        if let Err(_no_receiver) = self.stop.send(true) {
            // The tick and every stopping() waiter have ended already: nothing to tell.
        }
        let tick = lock(&self.tick_task).take();
        if let Some(task) = tick {
            if let Err(e) = task.await {
                tracing::error!("storage: the control tick ended abnormally: {e}");
            }
        }
        let runtimes: Vec<Arc<ClusterRuntime>> = std::mem::take(&mut *lock(&self.clusters))
            .into_values()
            .collect();
        for runtime in runtimes {
            if let Some(task) = runtime.stop() {
                if let Err(e) = task.await {
                    tracing::error!(cluster = %runtime.name, "storage: the key loop ended abnormally: {e}");
                }
            }
        }
        if let Err(e) = self.stats.persist(&self.meta) {
            tracing::error!("storage: persisting the stats at shutdown failed: {e}");
        }
        if let Err(e) = self.meta.flush() {
            tracing::error!("storage: flushing the control store at shutdown failed: {e}");
        }
    }

    /// Aborts the control tick and every key loop where they stand, saving nothing — what a
    /// crash of the process does to them (the simulated engine's crash, see
    /// [`super::StorageServer::serve_with_incoming`]). The stats since the last tick are lost,
    /// as in a real crash; a restart recovers what was made durable.
    pub fn abort_background(&self) {
        if let Some(task) = lock(&self.tick_task).take() {
            task.abort();
        }
        for runtime in lock(&self.clusters).values() {
            if let Some(task) = lock(&runtime.task).take() {
                task.abort();
            }
        }
    }

    /// Whether the control tick's task is held and not finished (tests).
    #[cfg(test)]
    pub(super) fn background_running(&self) -> bool {
        lock(&self.tick_task)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Resolves when the server is stopping.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            if let Err(_sender_gone) = rx.wait_for(|s| *s).await {
                // The sender went with the core: the server is stopping all the same.
            }
        }
    }

    /// The key machine of a cluster found in the control state at restart, and the key of a
    /// completed key update whose rewrap had not happened yet (the account key is still wrapped
    /// by another key than the cluster's properties name), if any.
    fn restored_machine(
        &self,
        cluster: &Cluster,
        account: &str,
        now: SimTime,
    ) -> Result<(KeyAccessMachine, Option<KeyRef>), ServerError> {
        let config = &self.profile.key_access;
        if cluster.provisioned_at.is_none() {
            return Ok((
                KeyAccessMachine::new(&cluster.resource.name, config, now),
                None,
            ));
        }
        let configured = cluster
            .key_vault_properties
            .as_ref()
            .and_then(host::loop_key_ref);
        let (key, unfinished_rewrap) = match self.data.account_wrapping(account)? {
            AekWrapping::Mmk => (None, configured),
            AekWrapping::Kek { kid, version, .. } => {
                let wrapping = host::key_ref_from_kid(&kid, &version);
                let pending = match (&configured, &wrapping) {
                    (Some(c), Some(w)) if !rewrap_done(c, w) => configured.clone(),
                    _ => None,
                };
                // The machine starts from the key the account key is wrapped by.
                let key = if pending.is_some() {
                    wrapping
                } else {
                    configured.or(wrapping)
                };
                let key = key.map(|key| KeyTarget {
                    key,
                    wrapped_version: version,
                });
                (key, pending)
            }
        };
        let unfinished_rewrap = unfinished_rewrap.filter(|_| cluster.soft_deleted.is_none());
        let mut machine = KeyAccessMachine::provisioned(&cluster.resource.name, config, now, key);
        if cluster.soft_deleted.is_some() {
            // The deletion's effects (drop the cached account key, ...) were applied when it
            // happened; at restart there is no cached key to drop, so only the state is wanted.
            let already_applied = machine.on_deleted(now);
            drop(already_applied);
        } else if let Some(persisted) = self.meta.keyloop_state(account)? {
            if machine.restore(persisted) {
                let state = machine.state();
                super::events::record_storage(
                    &self.events,
                    now,
                    &super::events::StorageEvent::StateRestored {
                        cluster: cluster.id.clone(),
                        state: state.name().as_str().to_string(),
                        since_ms: state.since().unix_ms(),
                    },
                );
            }
        }
        Ok((machine, unfinished_rewrap))
    }

    /// Starts the key loop of a cluster whose storage account exists.
    pub fn start_cluster(
        self: &Arc<Core>,
        cluster: &Cluster,
        machine: KeyAccessMachine,
    ) -> Result<Arc<ClusterRuntime>, ServerError> {
        let identity = self
            .meta
            .identity(&cluster.cluster_id)?
            .ok_or_else(|| ServerError::Io {
                path: self.clock_dir_hint(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no managed identity stored for cluster {}", cluster.id),
                ),
            })?;
        let account = account_of(&cluster.cluster_id);
        let host = Arc::new(ClusterHost::new(
            &cluster.resource.name,
            &cluster.id,
            &account,
            self.data.clone(),
            self.meta.clone(),
            self.events.clone(),
            self.stats.clone(),
            cluster
                .key_vault_properties
                .as_ref()
                .and_then(host::loop_key_ref),
        ));
        host.fill_from_mmk();
        let vault = GrpcVaultAccess::new(
            self.kv_channel.clone(),
            self.identity_channel.clone(),
            ManagedIdentityCredentials {
                object_id: identity.object_id.clone(),
                secret: zeroize::Zeroizing::new(identity.secret.clone()),
            },
            self.clock.clone(),
        );
        let rng = self
            .seeds
            .source(&format!("storage/{}/poll-interval", cluster.resource.name));
        let (driver, handle) = KeyLoopDriver::new(
            machine,
            vault,
            host.clone(),
            self.clock.clone(),
            rng,
            self.events.clone(),
            DriverConfig::default(),
        );
        let (stop, mut stop_rx) = watch::channel(false);
        let server_stop = self.stopping();
        let task = tokio::spawn(driver.run(async move {
            tokio::select! {
                biased;
                _ = stop_rx.wait_for(|s| *s) => {}
                _ = server_stop => {}
            }
        }));
        let runtime = Arc::new(ClusterRuntime {
            name: cluster.resource.name.clone(),
            arm_id: cluster.id.clone(),
            account,
            handle,
            host,
            stop,
            task: Mutex::new(Some(task)),
        });
        lock(&self.clusters).insert(cluster.cluster_id.clone(), runtime.clone());
        Ok(runtime)
    }

    fn clock_dir_hint(&self) -> std::path::PathBuf {
        std::path::PathBuf::from("control.sled")
    }
}

/// The data-plane account of a cluster.
pub fn account_of(cluster_id: &str) -> String {
    format!("cluster:{cluster_id}")
}

/// The shared account of a region.
pub fn shared_account(region: &str) -> String {
    format!("shared:{}", normalize_region(region))
}

pub use cmksim_sim::rules::normalize_region;

/// Whether an account key wrapped by `wrapping` (a pinned reference) already is under the key
/// the cluster's properties name (`configured`): same vault and key, and the same version unless
/// the configured key is versionless (then following the newest is the key loop's job).
fn rewrap_done(configured: &KeyRef, wrapping: &KeyRef) -> bool {
    let same_key = configured
        .vault_name
        .eq_ignore_ascii_case(&wrapping.vault_name)
        && configured.key_name.eq_ignore_ascii_case(&wrapping.key_name);
    same_key
        && match &configured.version {
            KeyVersionSpec::Versionless => true,
            pinned => *pinned == wrapping.version,
        }
}
