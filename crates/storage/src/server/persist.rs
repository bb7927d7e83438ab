//! The storage process's own durable state, in `control.sled`: one JSON document per key,
//! written and flushed before the call that changed it is answered.
//!
//! Keys:
//! - `control`: the control plane's [`ControlState`];
//! - `identity/<clusterId>`: the cluster's managed-identity credentials (object id and secret:
//!   the cluster's credential, never logged or returned);
//! - `history`: per workspace, every cluster its data was ever routed to (for queries); one
//!   entry per distinct cluster, so a workspace's list is bounded by the clusters that exist
//!   (and links are rate-limited: two per 30 days, seed 001);
//! - `stats`: the per-destination, per-workspace outcome counters (one entry per destination and
//!   workspace: bounded by clusters × workspaces), written at most once per control tick
//!   ([`SharedStats`]), never per append;
//! - (`ledger/<account>`, written before issue 15, is no longer read: the data plane's outage
//!   buffer reports what left it, per workspace, and is the one ledger);
//! - `keyloop/<account>`: the key loop's last state, so that a restart does not forget a
//!   revocation, a resume in progress or an outage.
//!
//! sled's background flusher is off (simulation runs on virtual time); every write is flushed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::control::ControlState;
use crate::keyloop::State;

/// A cluster's managed identity as storage keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredIdentity {
    pub object_id: String,
    pub tenant_id: String,
    pub secret: String,
}

impl std::fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIdentity")
            .field("object_id", &self.object_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One destination a workspace's data went to: a cluster (ARM id and clusterId).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClusterDestination {
    pub cluster: String,
    pub cluster_id: String,
}

/// Per workspace key (lowercase ARM id): the clusters it was ever linked to, in link order.
///
/// Its bound: it grows with completed links, never with traffic. A workspace's list holds one
/// entry per distinct cluster ([`record_link`]), links are rate-limited by the control plane
/// (`link_operations_max` per `link_operations_window`: two per 30 days, seed 001), and a purged
/// cluster leaves every list ([`forget_cluster`]): its data is deleted, so no query needs it. So
/// a list is never longer than the clusters that exist (purged ones excluded). Nothing is dropped
/// at a bound: an entry is what lets a query reach the data of an earlier link.
pub type History = BTreeMap<String, Vec<ClusterDestination>>;

/// Records that `workspace`'s data goes to `destination` from now on; `false` when it was
/// already listed (a relink to an earlier cluster adds nothing).
pub fn record_link(
    history: &mut History,
    workspace: &str,
    destination: ClusterDestination,
) -> bool {
    let list = history.entry(workspace.to_ascii_lowercase()).or_default();
    if list.contains(&destination) {
        return false;
    }
    list.push(destination);
    true
}

/// Removes a purged cluster (by clusterId) from every workspace's list, and the workspaces left
/// with none; returns how many entries went.
pub fn forget_cluster(history: &mut History, cluster_id: &str) -> usize {
    let mut removed = 0;
    history.retain(|_, list| {
        let before = list.len();
        list.retain(|d| d.cluster_id != cluster_id);
        removed += before - list.len();
        !list.is_empty()
    });
    removed
}

/// Outcome counters of one (destination, workspace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub accepted: u64,
    pub stored: u64,
    pub buffered: u64,
    pub drained: u64,
    pub dropped: BTreeMap<String, u64>,
}

/// Counters by destination (`shared` or a cluster ARM id), then workspace id.
///
/// Its bound: one entry per (destination, workspace) a batch was routed to, and a workspace's
/// destinations are `shared` and the clusters of its [`History`]; so the book grows with
/// workspaces and links, never with traffic (a batch adds to counters, not entries: test
/// `stats_grow_with_destinations_not_with_traffic`), and a [`Counters`]' `dropped` map has at
/// most one key per drop reason (`cmksim_proto::names::DROP_REASONS`). A purged cluster's
/// counters are kept: they report what happened (accepted = stored + buffered + dropped holds
/// over the whole book), and a cluster is purged at most once.
pub type StatsBook = BTreeMap<String, BTreeMap<String, Counters>>;

/// Counts one answered batch's outcome `runs` under (`destination`, `workspace`).
pub fn count(
    book: &mut StatsBook,
    destination: &str,
    workspace: &str,
    runs: &[cmksim_proto::storage::v1::OutcomeRun],
) {
    use cmksim_proto::common::v1::DropReason;
    use cmksim_proto::storage::v1::record_outcome::Outcome;
    let c = book
        .entry(destination.to_string())
        .or_default()
        .entry(workspace.to_string())
        .or_default();
    for run in runs {
        let n = u64::from(run.count);
        c.accepted += n;
        match run.outcome.as_ref().and_then(|o| o.outcome.as_ref()) {
            Some(Outcome::Stored(_)) => c.stored += n,
            Some(Outcome::Buffered(_)) => c.buffered += n,
            Some(Outcome::Dropped(r)) => {
                let reason = DropReason::try_from(*r).unwrap_or(DropReason::Unspecified);
                *c.dropped.entry(reason.label().to_string()).or_default() += n;
            }
            None => {}
        }
    }
}

/// The stats book in memory, with a mark of whether it changed since it was last written.
///
/// Why not written on every append: the counters are a report of outcomes that the data plane
/// (records) and the answers (outcomes) already made durable; rewriting and flushing the whole
/// book with every batch doubled the cost of an append. The control tick writes it when it
/// changed ([`SharedStats::persist`], at least every `TICK_CHECK_INTERVAL_MAX` simulated) and at
/// shutdown, so a crash loses at most one tick of counts, never data.
#[derive(Debug, Default)]
pub struct SharedStats {
    book: std::sync::Mutex<StatsBook>,
    dirty: std::sync::atomic::AtomicBool,
}

impl SharedStats {
    /// The book as loaded at start.
    pub fn new(book: StatsBook) -> SharedStats {
        SharedStats {
            book: std::sync::Mutex::new(book),
            dirty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Reads the book.
    pub fn read<R>(&self, f: impl FnOnce(&StatsBook) -> R) -> R {
        f(&self.book.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Changes the book (marked for the next write).
    pub fn update<R>(&self, f: impl FnOnce(&mut StatsBook) -> R) -> R {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(&mut book);
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        result
    }

    /// Writes the book (flushed) if it changed since the last write; on failure it stays
    /// marked, so the next call tries again.
    pub fn persist(&self, meta: &Meta) -> Result<(), super::ServerError> {
        if !self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let book = self.read(|b| b.clone());
        meta.save_stats(&book).inspect_err(|_| {
            self.dirty.store(true, std::sync::atomic::Ordering::Release);
        })
    }
}

/// The control store.
#[derive(Clone)]
pub struct Meta {
    db: sled::Db,
}

impl Meta {
    pub fn open(dir: &Path) -> Result<Meta, sled::Error> {
        let db = cmksim_sim::durable::open(dir)?;
        Ok(Meta { db })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, super::ServerError> {
        match self.db.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), super::ServerError> {
        let bytes = Zeroizing::new(serde_json::to_vec(value)?);
        self.db.insert(key.as_bytes(), bytes.as_slice())?;
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }

    pub fn control(&self) -> Result<Option<ControlState>, super::ServerError> {
        self.get("control")
    }

    pub fn save_control(&self, state: &ControlState) -> Result<(), super::ServerError> {
        self.put("control", state)
    }

    pub fn identity(&self, cluster_id: &str) -> Result<Option<StoredIdentity>, super::ServerError> {
        self.get(&format!("identity/{cluster_id}"))
    }

    pub fn save_identity(
        &self,
        cluster_id: &str,
        identity: &StoredIdentity,
    ) -> Result<(), super::ServerError> {
        self.put(&format!("identity/{cluster_id}"), identity)
    }

    pub fn history(&self) -> Result<History, super::ServerError> {
        Ok(self.get("history")?.unwrap_or_default())
    }

    pub fn save_history(&self, history: &History) -> Result<(), super::ServerError> {
        self.put("history", history)
    }

    pub fn stats(&self) -> Result<StatsBook, super::ServerError> {
        Ok(self.get("stats")?.unwrap_or_default())
    }

    pub fn save_stats(&self, stats: &StatsBook) -> Result<(), super::ServerError> {
        self.put("stats", stats)
    }

    pub fn keyloop_state(&self, account: &str) -> Result<Option<State>, super::ServerError> {
        self.get(&format!("keyloop/{account}"))
    }

    pub fn save_keyloop_state(
        &self,
        account: &str,
        state: &State,
    ) -> Result<(), super::ServerError> {
        self.put(&format!("keyloop/{account}"), state)
    }

    /// Flushes every write so far.
    pub fn flush(&self) -> Result<(), super::ServerError> {
        cmksim_sim::durable::flush(&self.db)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(n: u32) -> ClusterDestination {
        ClusterDestination {
            cluster: format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c{n}"),
            cluster_id: format!("id-{n}"),
        }
    }

    #[test]
    fn stats_grow_with_destinations_not_with_traffic() {
        use cmksim_proto::storage::v1::{record_outcome::Outcome, OutcomeRun, RecordOutcome};
        let outcome = |o: Outcome| OutcomeRun {
            outcome: Some(RecordOutcome {
                outcome: Some(o),
                detail: String::new(),
            }),
            count: 1,
        };
        let reasons = cmksim_proto::names::DROP_REASONS;
        let mut book = StatsBook::new();
        for i in 0..10_000usize {
            let batch = [
                outcome(Outcome::Dropped(reasons[i % reasons.len()] as i32)),
                outcome(Outcome::Dropped(reasons[(i + 3) % reasons.len()] as i32)),
            ];
            count(&mut book, "shared", "ws1", &batch);
            count(&mut book, &dest(i as u32 % 2).cluster, "ws1", &batch);
        }
        assert_eq!(book.len(), 3);
        assert_eq!(book.values().map(|w| w.len()).sum::<usize>(), 3);
        let c = &book["shared"]["ws1"];
        assert_eq!(c.accepted, 20_000);
        assert_eq!(c.dropped.len(), reasons.len());
        assert_eq!(c.dropped.values().sum::<u64>(), 20_000);
    }

    #[test]
    fn history_holds_each_cluster_once_and_forgets_a_purged_one() {
        let mut history = History::new();
        // A workspace linked back and forth between two clusters a thousand times: two entries.
        for i in 0..1000 {
            record_link(&mut history, "WS1", dest(i % 2));
        }
        record_link(&mut history, "ws2", dest(1));
        assert_eq!(history["ws1"], vec![dest(0), dest(1)]);
        assert!(!record_link(&mut history, "ws1", dest(0)));
        // Cluster 1 purged: it leaves both lists, and ws2, left with none, goes.
        assert_eq!(forget_cluster(&mut history, "id-1"), 2);
        assert_eq!(history.len(), 1);
        assert_eq!(history["ws1"], vec![dest(0)]);
        assert_eq!(forget_cluster(&mut history, "id-1"), 0);
    }

    #[test]
    fn stats_are_written_only_when_changed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(&dir.path().join("control.sled")).unwrap();
        let stats = SharedStats::new(StatsBook::new());
        // Nothing changed: nothing written.
        stats.persist(&meta).unwrap();
        assert_eq!(meta.stats().unwrap(), StatsBook::new());
        stats.update(|book| {
            let c = book
                .entry("shared".into())
                .or_default()
                .entry("ws1".into())
                .or_default();
            c.accepted += 3;
            *c.dropped.entry("revoked".into()).or_default() += 1;
        });
        // Changed, not yet written: the store still has the old book.
        assert_eq!(meta.stats().unwrap(), StatsBook::new());
        stats.persist(&meta).unwrap();
        let written = meta.stats().unwrap();
        assert_eq!(written["shared"]["ws1"].accepted, 3);
        assert_eq!(written["shared"]["ws1"].dropped["revoked"], 1);
        assert_eq!(stats.read(|b| b.clone()), written);
    }
}
