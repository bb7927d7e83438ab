//! [`ClusterHost`]: what the storage does for one cluster's key loop — it keeps the wrapped AEK
//! (durably, in the data plane's account record) and the unwrapped one (in memory only), and
//! carries out the loop's data effects: delete and rebuild the hot tier, drain and expire the
//! outage buffer. After every rewrap it checks that each stored block still decrypts
//! (`storage.blocks.verified`, SPEC §8 invariant 6).

use std::sync::{Arc, Mutex, MutexGuard};

use cmksim_proto::common::v1::DropReason;
use cmksim_sim::{EventLog, SimTime};
use zeroize::Zeroizing;

use crate::data::{Aek, AekWrapping, DataPlane, Sealing};
use crate::keyloop::{Effect, HostError, KeyLoopHost, KeyRef, KeyTarget, State, WrappedAek};

use super::events::StorageEvent;
use super::persist::{LedgerEntry, Meta, SharedStats};

/// Key ids are parsed and built by `cmksim_proto::kid` (one parser for every service): the kid
/// base `https://{vault}.vault.azure.net/keys/{key}` is recorded with the wrapped AEK and in
/// block headers, the version beside it.
pub use cmksim_proto::kid::{kid_base, vault_of_uri};

/// The key loop's reference for the control plane's `keyVaultProperties`.
pub fn loop_key_ref(key: &crate::control::KeyRef) -> Option<KeyRef> {
    let vault = vault_of_uri(&key.key_vault_uri)?;
    Some(match &key.key_version {
        Some(v) => KeyRef::pinned(&vault, &key.key_name, v),
        None => KeyRef::versionless(&vault, &key.key_name),
    })
}

/// A pinned reference from a stored kid base and version.
pub fn key_ref_from_kid(kid: &str, version: &str) -> Option<KeyRef> {
    let id = cmksim_proto::kid::KeyId::parse(kid)?;
    Some(KeyRef::pinned(&id.vault, &id.name, version))
}

/// The storage side of one cluster's key loop.
pub struct ClusterHost {
    cluster: String,
    arm_id: String,
    account: String,
    data: Arc<DataPlane>,
    meta: Meta,
    events: EventLog,
    stats: Arc<SharedStats>,
    aek: Mutex<Option<Aek>>,
    /// The key the cluster names (pinned or versionless), for the wrapped AEK's target.
    configured: Mutex<Option<KeyRef>>,
    ledger: Mutex<()>,
}

fn host_error(e: super::ServerError) -> HostError {
    HostError(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClusterHost {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cluster: &str,
        arm_id: &str,
        account: &str,
        data: Arc<DataPlane>,
        meta: Meta,
        events: EventLog,
        stats: Arc<SharedStats>,
        configured: Option<KeyRef>,
    ) -> ClusterHost {
        ClusterHost {
            cluster: cluster.to_string(),
            arm_id: arm_id.to_string(),
            account: account.to_string(),
            data,
            meta,
            events,
            stats,
            aek: Mutex::new(None),
            configured: Mutex::new(configured),
            ledger: Mutex::new(()),
        }
    }

    fn record(&self, at: SimTime, event: &StorageEvent) {
        super::events::record_storage(&self.events, at, event);
    }

    /// Under the MMK the AEK can always be unwrapped locally: cache it.
    pub fn fill_from_mmk(&self) {
        if let Ok(AekWrapping::Mmk) = self.data.account_wrapping(&self.account) {
            if let Ok(aek) = self.data.unwrap_with_mmk(&self.account) {
                *lock(&self.aek) = Some(aek);
            }
        }
    }

    /// The key the cluster now names (set when a key update completes).
    pub fn set_configured(&self, key: KeyRef) {
        *lock(&self.configured) = Some(key);
    }

    /// Runs `f` with the cached AEK (if any).
    pub fn with_aek<R>(&self, f: impl FnOnce(Option<&Aek>) -> R) -> R {
        let guard = lock(&self.aek);
        f(guard.as_ref())
    }

    pub fn has_aek(&self) -> bool {
        lock(&self.aek).is_some()
    }

    /// The sealing new blocks get now: by how the AEK is wrapped (not by what the machine
    /// last heard), so that a rewrap in flight never seals under a key the account does not use.
    pub fn seal<R>(
        &self,
        f: impl FnOnce(Sealing<'_>, crate::data::KeyRef) -> R,
    ) -> Result<R, String> {
        match self.data.account_wrapping(&self.account) {
            Ok(AekWrapping::Mmk) => Ok(f(Sealing::Mmk, crate::data::KeyRef::Mmk)),
            Ok(AekWrapping::Kek { kid, version, .. }) => {
                let guard = lock(&self.aek);
                let Some(aek) = guard.as_ref() else {
                    return Err(format!(
                        "the account key of cluster {} is not in memory yet (the first unwrapKey has not answered)",
                        self.cluster
                    ));
                };
                let key = crate::data::KeyRef::Cmk {
                    kid: kid.clone(),
                    version: version.clone(),
                };
                Ok(f(
                    Sealing::Cmk {
                        aek,
                        kid: &kid,
                        version: &version,
                    },
                    key,
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records that a batch went into the outage buffer.
    pub fn buffered(&self, workspace: &str, records: u64, now: SimTime) {
        let _guard = lock(&self.ledger);
        let mut ledger = match self.meta.ledger(&self.account) {
            Ok(ledger) => ledger,
            Err(e) => {
                tracing::error!(cluster = %self.cluster, "buffer ledger unreadable: {e}");
                return;
            }
        };
        ledger.push(LedgerEntry {
            workspace: workspace.to_string(),
            records,
            ingested_at_ms: now.0,
            expired: false,
        });
        if let Err(e) = self.meta.save_ledger(&self.account, &ledger) {
            tracing::error!(cluster = %self.cluster, "buffer ledger: {e}");
        }
    }

    /// Verifies that every stored block of the account decrypts, and says so.
    pub fn verify_blocks(&self, now: SimTime) {
        let (checked, failed) = {
            let guard = lock(&self.aek);
            self.data.verify_blocks(&self.account, guard.as_ref())
        };
        self.record(
            now,
            &StorageEvent::BlocksVerified {
                cluster: self.cluster.clone(),
                cluster_resource_id: self.arm_id.clone(),
                blocks_checked: checked,
                blocks_failed: failed,
            },
        );
    }

    fn expire(&self, now: SimTime, expired_before: SimTime) -> Result<(), HostError> {
        let _guard = lock(&self.ledger);
        let mut ledger = self.meta.ledger(&self.account).map_err(host_error)?;
        let mut by_ws: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
        for e in ledger.iter_mut() {
            if !e.expired && e.ingested_at_ms < expired_before.0 {
                e.expired = true;
                let slot = by_ws.entry(e.workspace.clone()).or_insert((0, i64::MAX));
                slot.0 += e.records;
                slot.1 = slot.1.min(e.ingested_at_ms);
            }
        }
        if by_ws.is_empty() {
            return Ok(());
        }
        self.meta
            .save_ledger(&self.account, &ledger)
            .map_err(host_error)?;
        self.count_drops(&by_ws, DropReason::BufferExpired.label());
        for (workspace, (records, from)) in by_ws {
            self.record(
                now,
                &StorageEvent::BufferExpired {
                    cluster: self.cluster.clone(),
                    workspace,
                    records,
                    ingested_from_ms: from,
                },
            );
        }
        Ok(())
    }

    fn count_drops(&self, by_ws: &std::collections::BTreeMap<String, (u64, i64)>, reason: &str) {
        self.stats.update(|stats| {
            let dest = stats.entry(self.arm_id.clone()).or_default();
            for (ws, (records, _)) in by_ws {
                let c = dest.entry(ws.clone()).or_default();
                c.buffered = c.buffered.saturating_sub(*records);
                *c.dropped.entry(reason.to_string()).or_default() += records;
            }
        });
    }

    fn drain(&self, now: SimTime) -> Result<(), HostError> {
        let report = self
            .seal(|sealing, _| self.data.drain_buffer(&self.account, sealing, now))
            .map_err(HostError)?
            .map_err(|e| HostError(e.to_string()))?;
        let expired_before = now.sub(self.data.config().buffer_window);
        let _guard = lock(&self.ledger);
        let ledger = self.meta.ledger(&self.account).map_err(host_error)?;
        let mut flushed: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
        let mut expired: std::collections::BTreeMap<String, (u64, i64)> = Default::default();
        let mut expired_total = 0;
        for e in &ledger {
            if e.expired {
                expired_total += e.records;
                continue;
            }
            let target = if e.ingested_at_ms < expired_before.0 {
                expired_total += e.records;
                &mut expired
            } else {
                &mut flushed
            };
            let slot = target.entry(e.workspace.clone()).or_insert((0, i64::MAX));
            slot.0 += e.records;
            slot.1 = slot.1.min(e.ingested_at_ms);
        }
        let flushed_total: u64 = flushed.values().map(|(n, _)| n).sum();
        if flushed_total != report.written || expired_total != report.dropped_expired {
            tracing::warn!(
                cluster = %self.cluster,
                ledger_flushed = flushed_total, written = report.written,
                ledger_expired = expired_total, dropped = report.dropped_expired,
                "the buffer ledger disagrees with the drain report"
            );
        }
        self.meta
            .save_ledger(&self.account, &[])
            .map_err(host_error)?;
        drop(_guard);
        self.count_drops(&expired, DropReason::BufferExpired.label());
        self.stats.update(|stats| {
            let dest = stats.entry(self.arm_id.clone()).or_default();
            for (ws, (records, _)) in &flushed {
                let c = dest.entry(ws.clone()).or_default();
                c.buffered = c.buffered.saturating_sub(*records);
                c.drained += records;
                c.stored += records;
            }
        });
        for (workspace, (records, from)) in expired {
            self.record(
                now,
                &StorageEvent::BufferExpired {
                    cluster: self.cluster.clone(),
                    workspace,
                    records,
                    ingested_from_ms: from,
                },
            );
        }
        for (workspace, (records, from)) in flushed {
            self.record(
                now,
                &StorageEvent::BufferFlushed {
                    cluster: self.cluster.clone(),
                    workspace,
                    records,
                    ingested_from_ms: from,
                },
            );
        }
        Ok(())
    }
}

impl KeyLoopHost for ClusterHost {
    fn wrapped_aek(&self) -> Option<WrappedAek> {
        match self.data.account_wrapping(&self.account).ok()? {
            AekWrapping::Mmk => None,
            AekWrapping::Kek {
                kid,
                version,
                algorithm,
                wrapped,
            } => {
                let key = lock(&self.configured)
                    .clone()
                    .or_else(|| key_ref_from_kid(&kid, &version))?;
                Some(WrappedAek {
                    target: KeyTarget {
                        key,
                        wrapped_version: version,
                    },
                    algorithm,
                    ciphertext: wrapped,
                })
            }
        }
    }

    fn cached_aek(&self) -> Option<Zeroizing<Vec<u8>>> {
        lock(&self.aek)
            .as_ref()
            .map(|a| Zeroizing::new(a.expose_bytes().to_vec()))
    }

    fn aek_unwrapped(&self, _now: SimTime, aek: Zeroizing<Vec<u8>>) {
        match Aek::from_bytes(&aek) {
            Ok(aek) => *lock(&self.aek) = Some(aek),
            Err(e) => tracing::error!(cluster = %self.cluster, "unwrapped AEK rejected: {e}"),
        }
    }

    fn store_wrapped_aek(&self, now: SimTime, wrapped: WrappedAek) -> Result<(), HostError> {
        {
            let guard = lock(&self.aek);
            let aek = guard
                .as_ref()
                .ok_or_else(|| HostError("the AEK is not in memory".into()))?;
            let kid = kid_base(&wrapped.target.key.vault_name, &wrapped.target.key.key_name);
            self.data
                .set_kek_wrapping(
                    &self.account,
                    aek,
                    &kid,
                    &wrapped.target.wrapped_version,
                    &wrapped.ciphertext,
                )
                .map_err(|e| HostError(e.to_string()))?;
        }
        self.set_configured(wrapped.target.key.clone());
        self.verify_blocks(now);
        Ok(())
    }

    fn persist_state(&self, state: &State) -> Result<(), HostError> {
        self.meta
            .save_keyloop_state(&self.account, state)
            .map_err(|e| HostError(e.to_string()))
    }

    fn apply(&self, now: SimTime, effect: &Effect) -> Result<(), HostError> {
        let err = |e: crate::data::DataError| HostError(e.to_string());
        match effect {
            Effect::DropAekCache => {
                // Under the MMK the key is Microsoft's: nothing to forget that could not be
                // unwrapped again locally; under the CMK the cache goes.
                *lock(&self.aek) = None;
            }
            Effect::DeleteHotTier => {
                let blocks = self.data.delete_hot_tier(&self.account).map_err(err)?;
                self.record(
                    now,
                    &StorageEvent::HotCacheDeleted {
                        cluster: self.cluster.clone(),
                        blocks: blocks as u64,
                    },
                );
            }
            Effect::RebuildHotTier => {
                let blocks = {
                    let guard = lock(&self.aek);
                    self.data
                        .rebuild_hot_tier(&self.account, guard.as_ref(), now)
                        .map_err(err)?
                };
                self.record(
                    now,
                    &StorageEvent::HotCacheRebuilt {
                        cluster: self.cluster.clone(),
                        blocks: blocks as u64,
                    },
                );
            }
            Effect::DrainBuffer { .. } => self.drain(now)?,
            Effect::ExpireBuffer { expired_before } => self.expire(now, *expired_before)?,
            Effect::Event(_) | Effect::RewrapAek { .. } => {}
        }
        Ok(())
    }
}
