//! [`ClusterHost`]: what the storage does for one cluster's key loop — it keeps the wrapped AEK
//! (durably, in the data plane's account record) and the unwrapped one (in memory only), and
//! carries out the loop's data effects: delete and rebuild the hot tier, drain and expire the
//! outage buffer. What left the buffer is counted and reported from the data plane's
//! [`DrainReport`] alone: the buffer's own counters are the one ledger. After every rewrap it
//! checks that each stored block still decrypts (`storage.blocks.verified`, SPEC §8 invariant 6).

use std::sync::{Arc, Mutex, MutexGuard};

use cmksim_proto::common::v1::DropReason;
use cmksim_sim::{EventLog, SimTime};
use zeroize::Zeroizing;

use crate::data::{Aek, AekWrapping, DataError, DataPlane, DrainReport, Sealing};
use crate::keyloop::{Effect, HostError, KeyLoopHost, KeyRef, KeyTarget, State, WrappedAek};

use super::events::StorageEvent;
use super::persist::{Meta, SharedStats};

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
        let key = self
            .data
            .account_key_ref(&self.account)
            .map_err(|e| e.to_string())?;
        match &key {
            crate::data::KeyRef::Mmk => Ok(f(Sealing::Mmk, crate::data::KeyRef::Mmk)),
            crate::data::KeyRef::Cmk { kid, version } => {
                let guard = lock(&self.aek);
                let Some(aek) = guard.as_ref() else {
                    return Err(format!(
                        "the account key of cluster {} is not in memory yet (the first unwrapKey has not answered)",
                        self.cluster
                    ));
                };
                Ok(f(Sealing::Cmk { aek, kid, version }, key.clone()))
            }
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

    /// Drops what the outage buffer held past its deadline; the data plane's report says whose.
    fn expire(&self, now: SimTime, expired_before: SimTime) -> Result<(), HostError> {
        let report = self
            .data
            .expire_buffer(&self.account, expired_before)
            .map_err(|e| HostError(e.to_string()))?;
        self.account_drained(now, &report);
        Ok(())
    }

    /// Writes the outage buffer under the key the account uses now; the data plane's report
    /// says what was written and what had expired, per workspace.
    fn drain(&self, now: SimTime) -> Result<(), HostError> {
        let report = self
            .seal(|sealing, _| self.data.drain_buffer(&self.account, sealing, now))
            .map_err(HostError)?
            .map_err(|e| HostError(e.to_string()))?;
        self.account_drained(now, &report);
        Ok(())
    }

    /// Counts and reports what left the buffer, from the data plane's report alone (there is no
    /// second ledger to disagree with it).
    fn account_drained(&self, now: SimTime, report: &DrainReport) {
        if report.written_by_workspace.is_empty() && report.expired_by_workspace.is_empty() {
            return;
        }
        let reason = DropReason::BufferExpired.label();
        self.stats.update(|stats| {
            let dest = stats.entry(self.arm_id.clone()).or_default();
            for (ws, w) in &report.expired_by_workspace {
                let c = dest.entry(ws.clone()).or_default();
                c.buffered = c.buffered.saturating_sub(w.records);
                *c.dropped.entry(reason.to_string()).or_default() += w.records;
            }
            for (ws, w) in &report.written_by_workspace {
                let c = dest.entry(ws.clone()).or_default();
                c.buffered = c.buffered.saturating_sub(w.records);
                c.drained += w.records;
                c.stored += w.records;
            }
        });
        for (workspace, w) in &report.expired_by_workspace {
            self.record(
                now,
                &StorageEvent::BufferExpired {
                    cluster: self.cluster.clone(),
                    workspace: workspace.clone(),
                    records: w.records,
                    ingested_from_ms: w.buffered_from_ms,
                },
            );
        }
        for (workspace, w) in &report.written_by_workspace {
            self.record(
                now,
                &StorageEvent::BufferFlushed {
                    cluster: self.cluster.clone(),
                    workspace: workspace.clone(),
                    records: w.records,
                    ingested_from_ms: w.buffered_from_ms,
                },
            );
        }
    }
}

impl KeyLoopHost for ClusterHost {
    fn wrapped_aek(&self) -> Result<Option<WrappedAek>, HostError> {
        let wrapping = match self.data.account_wrapping(&self.account) {
            Ok(wrapping) => wrapping,
            // A deleted or purged account has nothing left to poll for.
            Err(DataError::AccountNotFound(_) | DataError::PermanentlyUnreadable { .. }) => {
                return Ok(None)
            }
            Err(e) => return Err(HostError(e.to_string())),
        };
        match wrapping {
            AekWrapping::Mmk => Ok(None),
            AekWrapping::Kek {
                kid,
                version,
                algorithm,
                wrapped,
            } => {
                let key = match lock(&self.configured).clone() {
                    Some(key) => key,
                    None => key_ref_from_kid(&kid, &version).ok_or_else(|| {
                        HostError(format!(
                            "the account record of {} names no key id ({} characters recorded)",
                            self.account,
                            kid.len()
                        ))
                    })?,
                };
                Ok(Some(WrappedAek {
                    target: KeyTarget {
                        key,
                        wrapped_version: version,
                    },
                    algorithm,
                    ciphertext: wrapped,
                }))
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
        let err = |e: DataError| HostError(e.to_string());
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cmksim_sim::{Profile, RandomSource};

    use super::*;
    use crate::data::Record;
    use crate::server::persist::StatsBook;

    const ACCOUNT: &str = "cluster:c1";
    const ARM_ID: &str =
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/clusters/c1";

    fn batch(n: usize, at: SimTime) -> Vec<Record> {
        (0..n).map(|i| Record::new("T", at.0 + i as i64)).collect()
    }

    /// The stats and events of what left the outage buffer come from the data plane's report,
    /// so they always equal its counters: here the host never heard of the buffered batches
    /// (as after a crash between the buffer write and any bookkeeping beside it, which the old
    /// second ledger missed with only a warning), one workspace's oldest batch expires, and the
    /// drain writes the rest.
    #[test]
    fn buffer_outcomes_are_counted_from_the_data_plane_alone() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::azure_2020();
        let data = Arc::new(
            DataPlane::open(
                &dir.path().join("data"),
                RandomSource::from_seed([3; 32]),
                &profile,
            )
            .unwrap(),
        );
        let window = data.config().buffer_window;
        let t0 = SimTime::DEFAULT_EPOCH.add(Duration::from_secs(86_400));
        data.create_account(ACCOUNT, false, t0).unwrap();
        data.buffer_append(ACCOUNT, "wsA", "T", &batch(3, t0), t0)
            .unwrap();
        data.buffer_append(ACCOUNT, "wsB", "T", &batch(4, t0), t0)
            .unwrap();
        let t1 = t0.add(window / 2);
        data.buffer_append(ACCOUNT, "wsA", "T", &batch(5, t1), t1)
            .unwrap();

        let meta = Meta::open(&dir.path().join("control.sled")).unwrap();
        let events = EventLog::new(1_000);
        let stats = Arc::new(SharedStats::new(StatsBook::new()));
        let host = ClusterHost::new(
            "c1",
            ARM_ID,
            ACCOUNT,
            data.clone(),
            meta,
            events.clone(),
            stats.clone(),
            None,
        );
        let expired_before = t0.add(Duration::from_millis(1));
        let now = t0.add(window);
        host.apply(now, &Effect::ExpireBuffer { expired_before })
            .unwrap();
        let after_expiry = data.stats(ACCOUNT).unwrap().counters;
        assert_eq!(
            (
                after_expiry.dropped_expired_records,
                after_expiry.buffered_records
            ),
            (7, 5)
        );
        host.apply(now, &Effect::DrainBuffer { expired_before })
            .unwrap();

        let counters = data.stats(ACCOUNT).unwrap().counters;
        assert_eq!(
            (
                counters.drained_records,
                counters.dropped_expired_records,
                counters.buffered_records
            ),
            (5, 7, 0)
        );
        let book = stats.read(|b| b.clone());
        let by_ws = &book[ARM_ID];
        let expired = |ws: &str| {
            by_ws[ws]
                .dropped
                .get(DropReason::BufferExpired.label())
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(
            (by_ws["wsA"].drained, by_ws["wsB"].drained),
            (5, 0),
            "{book:?}"
        );
        assert_eq!((expired("wsA"), expired("wsB")), (3, 4), "{book:?}");
        assert_eq!(
            by_ws.values().map(|c| c.drained).sum::<u64>(),
            counters.drained_records
        );
        let events = events.snapshot();
        let of = |kind: &str| {
            events
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| {
                    e.data["workspace"].as_str().unwrap().to_string()
                        + ":"
                        + &e.data["records"].to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(of("storage.buffer.expired"), vec!["wsA:3", "wsB:4"]);
        assert_eq!(of("storage.buffer.flushed"), vec!["wsA:5"]);
    }

    fn host_on(dir: &std::path::Path) -> (Arc<DataPlane>, ClusterHost) {
        let data = Arc::new(
            DataPlane::open(
                &dir.join("data"),
                RandomSource::from_seed([4; 32]),
                &Profile::azure_2020(),
            )
            .unwrap(),
        );
        let host = ClusterHost::new(
            "c1",
            ARM_ID,
            ACCOUNT,
            data.clone(),
            Meta::open(&dir.join("control.sled")).unwrap(),
            EventLog::new(1_000),
            Arc::new(SharedStats::new(StatsBook::new())),
            None,
        );
        (data, host)
    }

    /// The key loop polls with what the account record holds; a record it cannot read is an
    /// error (the loop fails its poll), never "nothing to poll", which would keep a cluster
    /// serving from its cached AEK without ever asking the vault again.
    #[test]
    fn the_wrapping_the_loop_polls_with_is_read_from_disk_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let kid = "https://kv1.vault.azure.net/keys/k1";
        {
            let (data, host) = host_on(dir.path());
            data.create_account(ACCOUNT, false, SimTime::DEFAULT_EPOCH)
                .unwrap();
            assert_eq!(host.wrapped_aek(), Ok(None), "MMK: nothing to poll for");
            let aek = data.unwrap_with_mmk(ACCOUNT).unwrap();
            data.set_kek_wrapping(ACCOUNT, &aek, kid, "v1", &[1, 2, 3])
                .unwrap();
            let wrapped = host.wrapped_aek().unwrap().expect("a KEK wrapping");
            assert_eq!(wrapped.target.key, KeyRef::pinned("kv1", "k1", "v1"));
            assert_eq!(wrapped.ciphertext, vec![1, 2, 3]);
            // A key id that names no vault key is damage too (no key is configured here).
            data.set_kek_wrapping(ACCOUNT, &aek, "not-a-key-id", "v1", &[1, 2, 3])
                .unwrap();
            let error = host.wrapped_aek().unwrap_err();
            assert!(error.0.contains("names no key id"), "{error}");
            data.set_kek_wrapping(ACCOUNT, &aek, kid, "v1", &[1, 2, 3])
                .unwrap();
        }
        // The record's wrapped AEK damaged in the database file itself.
        {
            // The data plane was just dropped: sled can hold the lock a moment longer.
            let db = cmksim_sim::durable::open(&dir.path().join("data").join("data.sled")).unwrap();
            let accounts = db.open_tree("accounts").unwrap();
            let stored = accounts.get(ACCOUNT).unwrap().expect("the account record");
            let text = String::from_utf8(stored.to_vec()).unwrap();
            assert!(text.contains("\"wrapped_hex\":\"010203\""), "{text}");
            let damaged = text.replace("\"wrapped_hex\":\"010203\"", "\"wrapped_hex\":\"0x0!\"");
            accounts.insert(ACCOUNT, damaged.as_bytes()).unwrap();
            db.flush().unwrap();
        }
        let (_data, host) = host_on(dir.path());
        let error = host.wrapped_aek().unwrap_err();
        assert_eq!(
            error.0,
            DataError::WrappedAekNotHex {
                account: ACCOUNT.to_string()
            }
            .to_string()
        );
    }
}
