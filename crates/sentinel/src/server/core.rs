//! The state the RPCs and the poll task share, and the poll task itself.
//!
//! One [`SentinelMachine`] per onboarded workspace, behind one std mutex held only for
//! synchronous work (never across an `.await`): a poll takes what it needs out, calls the vault,
//! and feeds the answer back. The poll task owns no rules; per workspace it
//! 1. observes the cluster side through storage (`GetWorkspace`, then `GetCluster`): linked or
//!    not, and the key the cluster names — the machine decides what a change means;
//! 2. unwraps the account key as the tenant's Azure Cosmos DB principal (a CMK workspace only),
//!    at a uniform random interval in the profile's `[poll_interval_min, poll_interval_max]`,
//!    drawn from the seeded stream `sentinel/<workspace>/poll-interval`;
//! 3. carries out the machine's effects: events to the log, a rewrap to the vault, a dropped
//!    account key from memory; the machine's state is persisted when it changed.
//!
//! Onboarding and the Cosmos DB principal's creation await the identity authority, storage and
//! Key Vault between checking and applying; `slow_ops` serialises them so that the checks still
//! hold when they apply.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, RngCore};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use zeroize::Zeroizing;

use cmksim_proto::identity::v1 as idpb;
use cmksim_proto::storage::v1 as stpb;
use cmksim_sim::{Clock, EventLog, Profile, RandomSource, SeedTree, SimTime};
use cmksim_storage::control::{vault_name_from_uri, ResourceKind, ResourceName};
use cmksim_storage::keyloop::{
    AccessFailure, GrpcVaultAccess, KeyRef, ManagedIdentityCredentials, PollOutcome,
    TransientFailure, TransientKind, VaultAccess, WrappedAek,
};

use crate::events::SentinelEvent;
use crate::machine::{ClusterObservation, Effect, Encryption, SentinelMachine, StateName};
use crate::store::{
    CosmosPrincipalRecord, Store, StoreError, StoredAccountKey, WorkspaceRecord, ACCOUNT_KEY_BYTES,
};

use super::SentinelConfig;

/// The display name of the Cosmos DB principal in every tenant (the identity directory gives a
/// service principal of this name the Cosmos DB application id).
pub const COSMOS_DB_PRINCIPAL_NAME: &str = cmksim_identity::directory::COSMOS_DB_DISPLAY_NAME;
/// At most this many rounds of "effect → vault call → more effects" per workspace and wake-up.
pub const MAX_EFFECT_ROUNDS: usize = 4;

/// One onboarded workspace at run time.
pub struct Runtime {
    pub record: WorkspaceRecord,
    pub machine: SentinelMachine,
    /// The unwrapped account key (memory only); `None` until a poll unwraps it, and after a
    /// revocation.
    pub account_key: Option<Zeroizing<Vec<u8>>>,
    pub next_poll_at: SimTime,
    rng: RandomSource,
}

/// Why something could not be done inside the service.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("identity authority: {0}")]
    Identity(String),
}

/// The shared state.
pub struct Core {
    pub clock: Clock,
    pub events: EventLog,
    pub profile: Profile,
    pub seeds: SeedTree,
    pub store: Store,
    pub kv_channel: Channel,
    pub identity_channel: Channel,
    /// The identity service with Sentinel's own tokens (registering Cosmos DB principals).
    pub provider_identity: cmksim_identity::AuthChannel,
    /// To storage, with Sentinel's own tokens when it has a principal.
    pub storage_channel: cmksim_identity::AuthChannel,
    /// The checks in front of Sentinel's own server.
    pub guard: Option<cmksim_identity::Guard>,
    /// By [`WorkspaceRecord::key`].
    pub workspaces: Mutex<BTreeMap<String, Runtime>>,
    /// The vault access of each tenant's Cosmos DB principal, by tenant id.
    access: Mutex<BTreeMap<String, Arc<GrpcVaultAccess>>>,
    /// Account keys and item nonces (seeded in simulation, the OS's in live mode).
    pub key_rng: Mutex<RandomSource>,
    pub slow_ops: tokio::sync::Mutex<()>,
    pub wake: Notify,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    pub fn open(config: SentinelConfig) -> Result<Arc<Core>, super::ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| super::ServerError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.data_dir)?;
        let channel = |uri: &str| config.network.channel(uri, config.client_timeouts);
        let kv_channel = channel(&config.keyvault_uri)?;
        let identity_channel = channel(&config.identity_uri)?;
        let provider_identity = cmksim_identity::AuthChannel::new(
            identity_channel.clone(),
            config.storage_tokens.clone(),
        );
        let storage_channel = cmksim_identity::AuthChannel::new(
            match &config.storage_channel {
                Some(c) => c.clone(),
                None => channel(&config.storage_uri)?,
            },
            config.storage_tokens.clone(),
        );
        let key_rng = if config.os_key_material {
            RandomSource::Os
        } else {
            config.seeds.source("sentinel/keys")
        };
        let now = config.clock.now();
        let mut workspaces = BTreeMap::new();
        for record in store.workspaces()? {
            let encryption = match record.account_key.target() {
                Some(target) => Encryption::CustomerManagedKey(target),
                None => Encryption::MicrosoftManagedKey,
            };
            let mut machine = SentinelMachine::onboarded(
                &record.workspace_name,
                &record.cluster,
                &config.profile.sentinel,
                now,
                encryption,
            );
            machine.restore(record.state.clone());
            let account_key = match &record.account_key {
                StoredAccountKey::Mmk { key_hex } => match hex::decode(key_hex) {
                    Ok(key) => Some(Zeroizing::new(key)),
                    Err(_) => {
                        // Its items cannot be opened without the key; the others are served.
                        tracing::error!(
                            workspace = %record.key(),
                            "the stored account key is not hex: this workspace's items cannot be read"
                        );
                        None
                    }
                },
                StoredAccountKey::Cmk { .. } => None,
            };
            let rng = config
                .seeds
                .source(&format!("sentinel/{}/poll-interval", record.key()));
            workspaces.insert(
                record.key(),
                Runtime {
                    record,
                    machine,
                    account_key,
                    next_poll_at: now,
                    rng,
                },
            );
        }
        let (stop, _) = watch::channel(false);
        Ok(Arc::new(Core {
            clock: config.clock,
            events: config.events,
            profile: config.profile,
            seeds: config.seeds,
            store,
            kv_channel,
            identity_channel,
            provider_identity,
            storage_channel,
            guard: config.guard.clone(),
            workspaces: Mutex::new(workspaces),
            access: Mutex::new(BTreeMap::new()),
            key_rng: Mutex::new(key_rng),
            slow_ops: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            stop,
            task: Mutex::new(None),
        }))
    }

    pub fn now(&self) -> SimTime {
        self.clock.now()
    }

    /// Records an event of workspace `workspace`.
    pub fn record(&self, now: SimTime, workspace: &str, event: &SentinelEvent) {
        self.events
            .record(now, &format!("sentinel/{workspace}"), event);
    }

    /// A fresh account key.
    pub fn new_account_key(&self) -> Zeroizing<Vec<u8>> {
        let mut key = Zeroizing::new(vec![0u8; ACCOUNT_KEY_BYTES]);
        lock(&self.key_rng).fill_bytes(&mut key);
        key
    }

    /// A fresh item nonce.
    pub fn new_nonce(&self) -> [u8; ring::aead::NONCE_LEN] {
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        lock(&self.key_rng).fill_bytes(&mut nonce);
        nonce
    }

    /// The seeded poll-interval stream of a workspace.
    pub fn poll_rng(&self, key: &str) -> RandomSource {
        self.seeds.source(&format!("sentinel/{key}/poll-interval"))
    }

    /// Adds a just-onboarded workspace; its first poll is one poll interval from now.
    pub fn add_runtime(
        &self,
        record: WorkspaceRecord,
        machine: SentinelMachine,
        account_key: Zeroizing<Vec<u8>>,
    ) {
        let mut rng = self.poll_rng(&record.key());
        let next_poll_at = self
            .now()
            .add(poll_interval(&mut rng, &self.profile.sentinel));
        lock(&self.workspaces).insert(
            record.key(),
            Runtime {
                record,
                machine,
                account_key: Some(account_key),
                next_poll_at,
                rng,
            },
        );
        self.wake.notify_one();
    }

    /// The tenant's Cosmos DB principal, created in the identity directory on first use.
    pub async fn cosmos_principal(
        &self,
        tenant_id: &str,
    ) -> Result<CosmosPrincipalRecord, CoreError> {
        if let Some(record) = self.store.cosmos_principal(tenant_id)? {
            return Ok(record);
        }
        let created = idpb::identity_client::IdentityClient::new(self.provider_identity.clone())
            .create_principal(idpb::CreatePrincipalRequest {
                tenant_id: tenant_id.to_string(),
                display_name: COSMOS_DB_PRINCIPAL_NAME.to_string(),
                kind: idpb::PrincipalKind::ServicePrincipal as i32,
            })
            .await
            .map_err(|s| CoreError::Identity(s.message().to_string()))?
            .into_inner();
        let principal = created
            .principal
            .ok_or_else(|| CoreError::Identity("no principal in the answer".to_string()))?;
        let record = CosmosPrincipalRecord {
            tenant_id: tenant_id.to_string(),
            object_id: principal.object_id,
            app_id: principal.app_id,
            secret: created.secret,
        };
        self.store.put_cosmos_principal(&record)?;
        Ok(record)
    }

    /// Key Vault access as the tenant's Cosmos DB principal.
    pub async fn access(&self, tenant_id: &str) -> Result<Arc<GrpcVaultAccess>, CoreError> {
        if let Some(access) = lock(&self.access).get(tenant_id) {
            return Ok(access.clone());
        }
        let principal = self.cosmos_principal(tenant_id).await?;
        let access = Arc::new(GrpcVaultAccess::new(
            self.kv_channel.clone(),
            self.identity_channel.clone(),
            ManagedIdentityCredentials {
                object_id: principal.object_id,
                secret: Zeroizing::new(principal.secret),
            },
            self.clock.clone(),
        ));
        lock(&self.access)
            .entry(tenant_id.to_string())
            .or_insert(access.clone());
        Ok(access)
    }

    /// The cluster a workspace is linked to, as storage says: `(cluster name, its key, its
    /// identity type, its tenant)`, or `None` when not linked.
    pub async fn linked_cluster(
        &self,
        workspace: &stpb::WorkspaceRef,
    ) -> Result<Option<(String, Option<KeyRef>, String, String)>, tonic::Status> {
        let ws = stpb::workspaces_client::WorkspacesClient::new(self.storage_channel.clone())
            .get_workspace(workspace.clone())
            .await?
            .into_inner();
        if ws.cluster_resource_id.is_empty() {
            return Ok(None);
        }
        let Some(name) = ResourceName::parse_arm_id(&ws.cluster_resource_id, ResourceKind::Cluster)
        else {
            return Ok(None);
        };
        let cluster = stpb::clusters_client::ClustersClient::new(self.storage_channel.clone())
            .get_cluster(stpb::ClusterRef {
                subscription_id: name.subscription.clone(),
                resource_group: name.resource_group.clone(),
                cluster_name: name.name.clone(),
            })
            .await?
            .into_inner();
        let key = cluster.key_vault_properties.as_ref().and_then(|p| {
            let vault = vault_name_from_uri(&p.key_vault_uri)?;
            (!p.key_name.is_empty()).then(|| {
                if p.key_version.is_empty() {
                    KeyRef::versionless(&vault, &p.key_name)
                } else {
                    KeyRef::pinned(&vault, &p.key_name, &p.key_version)
                }
            })
        });
        let identity = cluster.identity.unwrap_or_default();
        Ok(Some((
            cluster.name,
            key,
            identity.r#type,
            identity.tenant_id,
        )))
    }

    /// Starts the poll task.
    pub fn start_background(self: &Arc<Self>) {
        let core = self.clone();
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            loop {
                core.step().await;
                match core.next_wake() {
                    // Biased: the same order every time (determinism of simulated runs).
                    Some(wake_at) => tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = core.wake.notified() => {}
                        _ = core.clock.sleep_until(wake_at) => {}
                    },
                    // Nothing onboarded: sleep until an onboarding wakes the task, so that an
                    // idle Sentinel costs a simulated run nothing.
                    None => tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        _ = core.wake.notified() => {}
                    },
                }
            }
        });
        *lock(&self.task) = Some(task);
    }

    /// Aborts the poll task where it stands — what a crash of the process does to it (the
    /// simulated engine's crash drops the server future mid-way).
    pub fn abort_background(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }

    /// Stops the poll task and flushes the store.
    pub async fn stop_background(&self) {
        // A send fails only when no task subscribed: then there is nothing to stop.
        if self.stop.send(true).is_err() {
            tracing::debug!("sentinel poll task was not running");
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!("sentinel poll task ended abnormally: {e}");
            }
        }
    }

    /// When the poll task should wake next; `None` when no workspace needs it.
    fn next_wake(&self) -> Option<SimTime> {
        let now = self.now();
        let mut wake: Option<SimTime> = None;
        for runtime in lock(&self.workspaces).values() {
            if runtime.machine.state().name() == StateName::Deleted {
                continue;
            }
            let mut at = runtime.next_poll_at;
            if let Some(d) = runtime.machine.next_deadline() {
                at = at.min(d);
            }
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        wake.map(|w| w.max(now))
    }

    /// One wake-up: every workspace whose poll is due is observed and polled; every machine
    /// ticks; changed states are persisted.
    pub async fn step(&self) {
        let now = self.now();
        let keys: Vec<String> = lock(&self.workspaces)
            .iter()
            .filter(|(_, r)| r.machine.state().name() != StateName::Deleted)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let due = lock(&self.workspaces)
                .get(&key)
                .is_some_and(|r| now >= r.next_poll_at);
            if due {
                self.poll(&key).await;
            }
            let now = self.now();
            let effects = match lock(&self.workspaces).get_mut(&key) {
                Some(r) => r.machine.on_tick(now),
                None => Vec::new(),
            };
            self.carry_out(&key, effects).await;
        }
    }

    async fn poll(&self, key: &str) {
        let (workspace_ref, tenant, wrapped) = {
            let mut workspaces = lock(&self.workspaces);
            let Some(r) = workspaces.get_mut(key) else {
                return;
            };
            let interval = poll_interval(&mut r.rng, &self.profile.sentinel);
            r.next_poll_at = self.now().add(interval);
            let wrapped = if r.machine.wants_poll() {
                r.record.account_key.wrapped().transpose()
            } else {
                None
            };
            (
                stpb::WorkspaceRef {
                    subscription_id: r.record.subscription_id.clone(),
                    resource_group: r.record.resource_group.clone(),
                    workspace_name: r.record.workspace_name.clone(),
                },
                r.record.tenant_id.clone(),
                wrapped,
            )
        };
        // 1. The cluster side (a failure to ask storage only delays what it would tell).
        let observation = match self.linked_cluster(&workspace_ref).await {
            Ok(Some((cluster, key, _, _))) => Some(ClusterObservation::Linked { cluster, key }),
            Ok(None) => Some(ClusterObservation::Unlinked),
            Err(status) if status.code() == tonic::Code::NotFound => {
                Some(ClusterObservation::Unlinked)
            }
            Err(status) => {
                tracing::debug!(workspace = %key, "storage not asked: {}", status.message());
                None
            }
        };
        if let Some(seen) = observation {
            let now = self.now();
            let effects = match lock(&self.workspaces).get_mut(key) {
                Some(r) => r.machine.on_cluster_observed(now, seen),
                None => Vec::new(),
            };
            self.carry_out(key, effects).await;
        }
        // 2. The account key, as the Cosmos DB principal.
        let Some(wrapped) = wrapped else {
            return;
        };
        let outcome = match wrapped {
            Ok(wrapped) => match self.unwrap(&tenant, &wrapped).await {
                Ok((version, account_key)) => {
                    if let Some(r) = lock(&self.workspaces).get_mut(key) {
                        r.account_key = Some(account_key);
                    }
                    PollOutcome::Success {
                        kid_version: version,
                    }
                }
                Err(failure) => failure.into(),
            },
            // Recorded as a failed poll (a transient one to the machine), never skipped.
            Err(e) => PollOutcome::Transient(TransientFailure {
                kind: TransientKind::StoredKeyUnreadable,
                detail: e.to_string(),
            }),
        };
        let now = self.now();
        let effects = match lock(&self.workspaces).get_mut(key) {
            Some(r) => r.machine.on_poll(now, outcome),
            None => Vec::new(),
        };
        self.carry_out(key, effects).await;
    }

    async fn unwrap(
        &self,
        tenant: &str,
        wrapped: &WrappedAek,
    ) -> Result<(String, Zeroizing<Vec<u8>>), AccessFailure> {
        let access = self.access(tenant).await.map_err(|e| {
            AccessFailure::Transient(TransientFailure {
                kind: TransientKind::Cancelled,
                detail: e.to_string(),
            })
        })?;
        let unwrapped = access.unwrap_aek(wrapped).await?;
        Ok((unwrapped.kid_version, unwrapped.aek))
    }

    /// Carries out effects of workspace `key`, then persists its state if it changed.
    pub async fn carry_out(&self, key: &str, effects: Vec<Effect>) {
        let mut effects = effects;
        for _round in 0..MAX_EFFECT_ROUNDS {
            if effects.is_empty() {
                break;
            }
            let mut more = Vec::new();
            for effect in effects {
                let now = self.now();
                match effect {
                    Effect::Event(event) => {
                        let workspace = lock(&self.workspaces)
                            .get(key)
                            .map(|r| r.record.workspace_name.clone())
                            .unwrap_or_else(|| key.to_string());
                        self.record(now, &workspace, &event);
                    }
                    Effect::DropAccountKey => {
                        if let Some(r) = lock(&self.workspaces).get_mut(key) {
                            r.account_key = None;
                        }
                    }
                    Effect::Rewrap { to } => more.extend(self.rewrap(key, to).await),
                }
            }
            effects = more;
        }
        self.persist(key);
    }

    async fn rewrap(&self, key: &str, to: KeyRef) -> Vec<Effect> {
        let (tenant, account_key) = match lock(&self.workspaces).get(key) {
            Some(r) => (r.record.tenant_id.clone(), r.account_key.clone()),
            None => return Vec::new(),
        };
        let result = match account_key {
            None => Err("the account key is not in memory".to_string()),
            Some(account_key) => match self.access(&tenant).await {
                Err(e) => Err(e.to_string()),
                Ok(access) => access
                    .wrap_aek(&to, &account_key)
                    .await
                    .map_err(|f| f.to_string()),
            },
        };
        let now = self.now();
        let mut workspaces = lock(&self.workspaces);
        let Some(r) = workspaces.get_mut(key) else {
            return Vec::new();
        };
        match result {
            Ok(wrapped) => {
                let mut record = r.record.clone();
                record.account_key = StoredAccountKey::from_wrapped(&wrapped);
                match self.store.put_workspace(&record) {
                    Ok(()) => {
                        r.record = record;
                        r.machine.on_rewrap_completed(now, wrapped.target)
                    }
                    Err(e) => r.machine.on_rewrap_failed(now, &e.to_string()),
                }
            }
            Err(error) => r.machine.on_rewrap_failed(now, &error),
        }
    }

    /// Persists the machine's state of workspace `key` when it changed.
    pub fn persist(&self, key: &str) {
        let mut workspaces = lock(&self.workspaces);
        let Some(r) = workspaces.get_mut(key) else {
            return;
        };
        if &r.record.state == r.machine.state() {
            return;
        }
        let mut record = r.record.clone();
        record.state = r.machine.state().clone();
        match self.store.put_workspace(&record) {
            Ok(()) => r.record = record,
            // Retried at the next wake-up (the record still differs from the machine).
            Err(e) => tracing::warn!(workspace = %key, "sentinel state not persisted: {e}"),
        }
    }
}

/// A uniform random poll interval within the profile's range.
pub fn poll_interval(
    rng: &mut RandomSource,
    profile: &cmksim_sim::profile::SentinelProfile,
) -> Duration {
    let min_ms = profile.poll_interval_min.as_millis() as u64;
    let max_ms = profile.poll_interval_max.as_millis() as u64;
    Duration::from_millis(rng.gen_range(min_ms..=max_ms.max(min_ms)))
}
