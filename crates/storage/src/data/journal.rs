//! The append journal: how a one-block append commits with plain inserts instead of a sled
//! transaction, and how the counters catch up with it.
//!
//! Why: every sled 0.34 transaction (and batch) pins the log: it seals the current I/O buffer
//! around a batch manifest, so a transaction costs one more write and `sync_file_range` than the
//! same inserts without it (`strace -f -c` of 300 flushed 64 KiB appends: 675 `pwrite64` and
//! `sync_file_range` calls in a 5-tree transaction, 342 for the same inserts without one). At
//! 64 KiB blocks that second write was most of the gap between an append and a raw sled insert
//! (issue 15).
//!
//! How: a one-block append writes, in this order and without a transaction,
//! 1. a journal entry in the `journal` tree: the block id (key) → the block's key in `cold`;
//! 2. the sealed block in `cold`;
//! 3. its hot entry in `hot`, if the block is recent;
//!
//! and then flushes as before (acknowledged only once on disk). It changes neither the
//! `counters` nor the `meta` tree: the append's counts are kept in memory ([`Pending`]) until a
//! *fold* adds them to the counters, raises `next_block_id` past the journal's ids and removes
//! the journal entries, all in one transaction. Every other change to the counters folds first,
//! in its own transaction ([`super::store::Trees::transact`]), so a transaction always starts
//! from counters that count every block; so does a journal that reaches
//! [`JOURNAL_ENTRIES_MAX`] entries (one transaction per that many appends), and opening the
//! data plane.
//!
//! Crash safety: sled recovers a prefix of its log (recovery stops at the first torn message),
//! and the three inserts are made in order under the write lock, so a crash leaves, of one
//! append, nothing; the journal entry alone; the entry and the block; or all three. On open,
//! [`recover`] counts each journal entry by what of it is in the trees — its block (records
//! from the block's header, bytes from its length) if the block is there, its hot entry if that
//! is there — and folds: the counters count exactly the blocks stored, and no block id in the
//! journal is ever given out again. The journal never holds an entry whose block a later
//! transaction removed (that transaction folded it first), so a present block is this entry's.
//! Appends of more than one block keep one transaction: they are all or nothing.

use std::collections::BTreeMap;

use sled::Tree;

use super::block::{BlockHeader, Tier};
use super::error::DataError;
use super::store::{AccountCounters, Trees, Tx, TxResult};
use super::tier::{malformed, Prepared};

/// Most journal entries before the journal is folded into the counters (one transaction per
/// this many one-block appends; also bounds what an open has to recover).
pub(crate) const JOURNAL_ENTRIES_MAX: usize = 256;

/// The journal entries not folded yet, and what they add to each account's counters. Changed
/// only under the data plane's write lock.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Block ids of the journal's entries, in the order written.
    ids: Vec<u64>,
    /// What the entries add, per account.
    deltas: BTreeMap<String, AccountCounters>,
}

impl Pending {
    /// Journal entries not folded yet.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// What the entries add to `account`'s counters (all zero when none).
    pub(crate) fn delta(&self, account: &str) -> Option<&AccountCounters> {
        self.deltas.get(account)
    }

    /// Notes a block stored under journal entry `block_id`: `cold_bytes` sealed bytes holding
    /// `records` records, with a hot entry of `hot_bytes` bytes if there is one.
    pub(crate) fn add_block(
        &mut self,
        block_id: u64,
        account: &str,
        cold_bytes: u64,
        records: u64,
        hot_bytes: Option<u64>,
    ) {
        let delta = self.deltas.entry(account.to_string()).or_default();
        delta.stored_blocks += 1;
        delta.stored_bytes += cold_bytes;
        delta.stored_records += records;
        delta.accepted_records += records;
        delta.appended_records += records;
        if let Some(hot_bytes) = hot_bytes {
            delta.hot_blocks += 1;
            delta.hot_bytes += hot_bytes;
        }
        self.ids.push(block_id);
    }

    /// Notes a journal entry whose block is not stored (a crash came between the two inserts):
    /// nothing to count, but the entry goes, and its id is never given out again.
    fn add_empty(&mut self, block_id: u64) {
        self.ids.push(block_id);
    }

    /// Inside a transaction: adds every delta to the counters, removes the journal entries and
    /// raises the stored next block id past them. The caller clears `self` once it committed.
    pub(crate) fn fold(&self, tx: &Tx<'_>) -> TxResult<()> {
        for id in &self.ids {
            tx.journal.remove(&id.to_be_bytes())?;
        }
        for (account, delta) in &self.deltas {
            tx.update_counters(account, |c| c.add(delta))?;
        }
        if let Some(max) = self.ids.iter().max() {
            tx.set_next_block_id(max + 1)?;
        }
        Ok(())
    }

    /// After the fold committed.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.deltas.clear();
    }
}

/// Writes a one-block append: the journal entry, the block, its hot entry, in this order (see
/// the module documentation), and notes it in `pending`. Call under the write lock, with
/// `pending` locked; flush afterwards.
pub(crate) fn append_block(
    trees: &Trees,
    pending: &mut Pending,
    block_id: u64,
    account: &str,
    block: &Prepared,
    records: u64,
) -> Result<(), DataError> {
    trees
        .journal
        .insert(block_id.to_be_bytes(), block.key.as_slice())?;
    trees
        .cold
        .insert(block.key.as_slice(), block.cold.clone())?;
    if let Some(hot) = &block.hot {
        trees.hot.insert(block.key.as_slice(), hot.clone())?;
    }
    pending.add_block(
        block_id,
        account,
        block.cold.len() as u64,
        records,
        block.hot.as_ref().map(|h| h.len() as u64),
    );
    Ok(())
}

/// Rebuilds [`Pending`] from the journal tree as a crash left it: each entry counted by what
/// of its block is stored. The caller folds it.
pub(crate) fn recover(journal: &Tree, cold: &Tree, hot: &Tree) -> Result<Pending, DataError> {
    let mut pending = Pending::default();
    for item in journal.iter() {
        let (id, key) = item?;
        let block_id = id
            .as_ref()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| DataError::MalformedBlock {
                tier: "journal",
                key_hex: hex::encode(&id),
                reason: "a journal key is a block id of 8 bytes".into(),
            })?;
        let Some(block) = cold.get(&key)? else {
            pending.add_empty(block_id);
            continue;
        };
        let (header, _) =
            BlockHeader::parse(&block).map_err(|reason| malformed(Tier::Cold, &key, reason))?;
        let account = super::store::account_of_key(&key)
            .ok_or_else(|| malformed(Tier::Cold, &key, "no account in the block key".into()))?;
        let hot_bytes = hot.get(&key)?.map(|h| h.len() as u64);
        pending.add_block(
            block_id,
            account,
            block.len() as u64,
            u64::from(header.record_count),
            hot_bytes,
        );
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use cmksim_sim::{Profile, RandomSource, SimTime};

    use super::super::lifecycle_tests::copy_dir;
    use super::super::{AccountCounters, DataPlane, Record, Sealing, Value};
    use super::*;

    const ACCOUNT: &str = "cluster:journal";
    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> SimTime {
        SimTime::DEFAULT_EPOCH.add(DAY * 100)
    }

    fn open(dir: &Path) -> DataPlane {
        DataPlane::open(
            dir,
            RandomSource::from_seed([3; 32]),
            &Profile::azure_2020(),
        )
        .unwrap()
    }

    /// One small batch at `time` (one block).
    fn batch(time: SimTime, tag: &str) -> Vec<Record> {
        (0..3)
            .map(|i| {
                Record::new("T", time.0 + i).with("Computer", Value::String(format!("{tag}-{i}")))
            })
            .collect()
    }

    fn append(plane: &DataPlane, time: SimTime, tag: &str) -> u64 {
        let receipt = plane
            .append(ACCOUNT, Sealing::Mmk, "ws", "T", &batch(time, tag), now())
            .unwrap();
        assert_eq!(receipt.block_ids.len(), 1);
        receipt.block_ids[0]
    }

    fn counters(plane: &DataPlane) -> AccountCounters {
        let counters = plane.stats(ACCOUNT).unwrap().counters;
        assert!(counters.conserved(), "{counters:?}");
        counters
    }

    /// What the counters tree itself holds (without the journal's pending entries).
    fn stored_counters(plane: &DataPlane) -> AccountCounters {
        match plane.trees.counters.get(ACCOUNT.as_bytes()).unwrap() {
            Some(v) => serde_json::from_slice(&v).unwrap(),
            None => AccountCounters::default(),
        }
    }

    /// A crash after acknowledged one-block appends and before any fold: the files hold the
    /// journal entries and the blocks, the counters tree none of them. The reopened plane
    /// counts every block (old and recent, with their hot entries), has folded the journal
    /// durably, and gives out no block id twice.
    #[test]
    fn counters_are_rebuilt_after_a_crash_between_block_writes_and_a_fold() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let plane = open(&live);
        plane.create_account(ACCOUNT, true, now()).unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            // Old blocks (cold only) and recent ones (with a hot entry) alternate.
            let time = if i % 2 == 0 {
                now().sub(DAY * 30)
            } else {
                now()
            };
            ids.push(append(&plane, time, &format!("b{i}")));
        }
        let before = counters(&plane);
        assert_eq!(before.stored_blocks, 5);
        assert_eq!(before.stored_records, 15);
        assert_eq!(before.hot_blocks, 2);
        assert_eq!(plane.trees.journal.len(), 5, "no fold yet");
        assert_eq!(stored_counters(&plane).stored_blocks, 0, "no fold yet");

        // The crash: the files as they are now, with no flush or fold on the way out.
        let crashed = dir.path().join("crashed");
        copy_dir(&live, &crashed);
        drop(plane);

        let reopened = open(&crashed);
        assert_eq!(counters(&reopened), before);
        assert_eq!(stored_counters(&reopened), before, "folded at open");
        assert_eq!(reopened.trees.journal.len(), 0);
        let next = append(&reopened, now(), "after");
        assert!(
            next > *ids.iter().max().unwrap(),
            "{next} reuses an id of {ids:?}"
        );
        assert_eq!(counters(&reopened).stored_blocks, 6);
        let (from, to) = (SimTime(i64::MIN / 2), SimTime(i64::MAX / 2));
        let found = reopened
            .query(ACCOUNT, None, "ws", "T", from, to, now())
            .unwrap();
        assert_eq!(found.records.len(), 18);
    }

    /// A crash between a journal entry and its block: the entry counts nothing, goes at the
    /// next open, and its block id is not given out again.
    #[test]
    fn a_journal_entry_without_its_block_counts_nothing_and_its_id_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let plane = open(dir.path());
        plane.create_account(ACCOUNT, true, now()).unwrap();
        append(&plane, now(), "stored");
        let before = counters(&plane);
        let lost_id = 1_000u64;
        let lost_key = super::super::store::block_key(ACCOUNT, "ws", "T", now().0, lost_id);
        plane
            .trees
            .journal
            .insert(lost_id.to_be_bytes(), lost_key)
            .unwrap();
        plane.trees.db.flush().unwrap();
        drop(plane);

        let reopened = open(dir.path());
        assert_eq!(counters(&reopened), before);
        assert_eq!(stored_counters(&reopened), before);
        assert_eq!(reopened.trees.journal.len(), 0);
        assert!(append(&reopened, now(), "next") > lost_id);
    }

    /// Every transaction folds the journal first, and a journal of
    /// [`JOURNAL_ENTRIES_MAX`] entries folds by itself: the counters tree then holds what the
    /// journal held, and the counters seen never change by a fold.
    #[test]
    fn transactions_and_a_full_journal_fold_it_into_the_counters() {
        let dir = tempfile::tempdir().unwrap();
        let plane = open(dir.path());
        plane.create_account(ACCOUNT, true, now()).unwrap();
        append(&plane, now(), "a");
        append(&plane, now(), "b");
        let before = counters(&plane);
        // A transaction: deleting the hot tier folds first, then removes both hot entries.
        assert_eq!(plane.delete_hot_tier(ACCOUNT).unwrap(), 2);
        let after = counters(&plane);
        assert_eq!(plane.trees.journal.len(), 0);
        assert_eq!(stored_counters(&plane), after);
        assert_eq!(after.stored_records, before.stored_records);
        assert_eq!((after.hot_blocks, after.hot_bytes), (0, 0));

        for i in 0..JOURNAL_ENTRIES_MAX {
            append(&plane, now().sub(DAY * 30), &format!("n{i}"));
        }
        assert_eq!(plane.trees.journal.len(), 0, "folded when full");
        let full = counters(&plane);
        assert_eq!(stored_counters(&plane), full);
        assert_eq!(
            full.stored_blocks,
            2 + JOURNAL_ENTRIES_MAX as u64,
            "{full:?}"
        );
    }
}
