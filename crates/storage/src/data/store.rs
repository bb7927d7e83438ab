//! The sled layout of the data plane: trees, key encodings, account records and counters.
//!
//! One `sled::Db` per data directory, with one tree per concern:
//!
//! | tree | key | value |
//! |------|-----|-------|
//! | `accounts` | account | [`AccountRecord`] (JSON): the wrapped AEK, its fingerprint, the double-encryption flag |
//! | `purged` | account | [`Tombstone`] (JSON): when the account was crypto-shredded |
//! | `cold` | account ␀ workspace ␀ table ␀ max time (8) block id (8) | sealed block |
//! | `hot` | same key as the block's cold copy | hot entry: the block's DEK under the hot tier's key (`hot`; a sealed hot copy before issue 15) |
//! | `buffer` | account ␀ sequence (8) | sealed outage-buffer entry (a block of tier "buffer") |
//! | `counters` | account | [`AccountCounters`] (JSON), as of the last fold of the journal |
//! | `meta` | `next_block_id` | u64 |
//! | `journal` | block id (8) | the key in `cold` of a block a one-block append wrote ([`super::journal`]) |
//!
//! Names never contain NUL, so `account ␀ workspace ␀ table ␀` is a prefix that no other table
//! shares, and a query for a time range is one range scan. Times are stored big-endian with the
//! sign bit flipped, so that byte order is time order. Blocks are keyed by their *max* time: a
//! query for `[from, to)` starts at `from` and reads forward (nothing older can overlap), and
//! retention deletes a prefix of the range. Every change that spans trees is one sled
//! transaction, so counters never disagree with the blocks they count — except a one-block
//! append, which is three plain inserts counted through the append journal ([`super::journal`]):
//! [`Trees::counters`] adds what the journal holds, and every transaction folds it first.
//!
//! Account records are read on every append (twice: the sealing key, then the record the blocks
//! are sealed with) and written a few times in an account's life (created, its AEK wrapped under
//! the customer's key, purged). [`Trees`] keeps the parsed records it has read or written in
//! [`AccountCache`], so that an append parses no JSON; every write of the `accounts` tree goes
//! through [`Trees::put_account`] or [`Trees::purge_account_record`], which update the cache.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional, TransactionalTree};
use sled::Tree;

use cmksim_sim::SimTime;

use super::error::DataError;
use super::journal::{self, Pending};

/// The longest account, workspace or table name, in bytes.
pub const NAME_MAX_BYTES: usize = 256;

/// How an account's AEK is wrapped, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub(crate) enum StoredWrapping {
    /// AES-256-GCM under the MMK: nonce ‖ ciphertext ‖ tag, hex.
    Mmk { wrapped_hex: String },
    /// Wrapped through Key Vault by the customer's key.
    Kek {
        kid: String,
        version: String,
        algorithm: String,
        wrapped_hex: String,
    },
}

/// The persistent record of one storage account. Never holds the AEK unwrapped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AccountRecord {
    pub account: String,
    pub double_encryption: bool,
    pub created_at: SimTime,
    /// HMAC fingerprint of the AEK (see `keys::Aek::fingerprint`), hex.
    pub aek_fingerprint_hex: String,
    pub wrapping: StoredWrapping,
}

/// A crypto-shredded account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub purged_at: SimTime,
    /// False while the blocks are still being deleted (finished at the next open after a crash).
    pub blocks_deleted: bool,
}

/// Per-account counters, updated in the same transaction as the data they count.
///
/// Conservation (SPEC §8 invariant 1, as seen by the data plane):
/// `accepted_records = stored_records + buffered_records + dropped_expired_records
///  + retention_removed_records + purged_records`, where `accepted_records` counts every record
/// the data plane acknowledged (appended, or buffered). [`AccountCounters::conserved`] checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCounters {
    /// Cold blocks now stored, their sealed bytes and records.
    pub stored_blocks: u64,
    pub stored_bytes: u64,
    pub stored_records: u64,
    /// Hot copies now stored and their sealed bytes.
    pub hot_blocks: u64,
    pub hot_bytes: u64,
    /// Outage-buffer entries now held, their sealed bytes and records.
    pub buffered_entries: u64,
    pub buffered_bytes: u64,
    pub buffered_records: u64,
    /// Lifetime: records acknowledged by `append` or `buffer_append`.
    pub accepted_records: u64,
    /// Lifetime: records written to blocks by `append`.
    pub appended_records: u64,
    /// Lifetime: records accepted into the outage buffer.
    pub buffered_in_records: u64,
    /// Lifetime: records moved from the buffer into blocks by `drain_buffer`.
    pub drained_records: u64,
    /// Lifetime: buffered records dropped because they were older than the buffer window.
    pub dropped_expired_records: u64,
    /// Lifetime: records of blocks removed by retention.
    pub retention_removed_records: u64,
    /// Lifetime: records (stored or buffered) deleted by a purge.
    pub purged_records: u64,
}

impl AccountCounters {
    /// True when every accepted record is accounted for (stored, buffered, dropped or removed).
    pub fn conserved(&self) -> bool {
        let accounted = self.stored_records
            + self.buffered_records
            + self.dropped_expired_records
            + self.retention_removed_records
            + self.purged_records;
        self.accepted_records == accounted
            && self.accepted_records == self.appended_records + self.buffered_in_records
    }

    /// Adds every counter of `delta` to this one.
    pub(crate) fn add(&mut self, delta: &AccountCounters) {
        let AccountCounters {
            stored_blocks,
            stored_bytes,
            stored_records,
            hot_blocks,
            hot_bytes,
            buffered_entries,
            buffered_bytes,
            buffered_records,
            accepted_records,
            appended_records,
            buffered_in_records,
            drained_records,
            dropped_expired_records,
            retention_removed_records,
            purged_records,
        } = delta;
        self.stored_blocks += stored_blocks;
        self.stored_bytes += stored_bytes;
        self.stored_records += stored_records;
        self.hot_blocks += hot_blocks;
        self.hot_bytes += hot_bytes;
        self.buffered_entries += buffered_entries;
        self.buffered_bytes += buffered_bytes;
        self.buffered_records += buffered_records;
        self.accepted_records += accepted_records;
        self.appended_records += appended_records;
        self.buffered_in_records += buffered_in_records;
        self.drained_records += drained_records;
        self.dropped_expired_records += dropped_expired_records;
        self.retention_removed_records += retention_removed_records;
        self.purged_records += purged_records;
    }
}

/// The trees of one data directory.
pub(crate) struct Trees {
    pub db: sled::Db,
    /// Written only through [`Trees::put_account`] and [`Trees::purge_account_record`] (they
    /// keep [`Trees::account_cache`] true); read through [`Trees::account`].
    accounts: Tree,
    pub purged: Tree,
    pub cold: Tree,
    pub hot: Tree,
    pub buffer: Tree,
    pub counters: Tree,
    pub meta: Tree,
    pub journal: Tree,
    /// The journal's entries not folded into `counters` yet ([`super::journal`]).
    pending: Mutex<Pending>,
    account_cache: Mutex<AccountCache>,
}

/// The most accounts [`AccountCache`] holds; past it, it starts again empty. A storage host has
/// one account per cluster and one shared account per region, so this is never reached in
/// practice; it bounds the map all the same.
pub(crate) const ACCOUNT_CACHE_ENTRIES_MAX: usize = 1_024;

/// Parsed account records, as the `accounts` tree holds them (an absent name is not cached).
///
/// A reader that misses reads the tree and then fills the cache, but only if no write came in
/// between: every write bumps `generation`, and the reader compares the generation it saw
/// before its read with the one after. So a reader that read a record just before a write
/// never puts the older record back.
#[derive(Default)]
pub(crate) struct AccountCache {
    generation: u64,
    records: BTreeMap<String, Arc<AccountRecord>>,
}

impl AccountCache {
    /// Caches `record`, read from the tree when the cache was at `generation`, unless a write
    /// came in since (then the record may be older than the tree's).
    fn fill(&mut self, generation: u64, record: Arc<AccountRecord>) {
        if self.generation == generation {
            self.insert(record);
        }
    }

    fn insert(&mut self, record: Arc<AccountRecord>) {
        if self.records.len() >= ACCOUNT_CACHE_ENTRIES_MAX
            && !self.records.contains_key(&record.account)
        {
            self.records.clear();
        }
        self.records.insert(record.account.clone(), record);
    }
}

/// The transactional view handed to [`Trees::transact`]'s closure.
pub(crate) struct Tx<'a> {
    pub cold: &'a TransactionalTree,
    pub hot: &'a TransactionalTree,
    pub buffer: &'a TransactionalTree,
    pub counters: &'a TransactionalTree,
    pub meta: &'a TransactionalTree,
    pub journal: &'a TransactionalTree,
}

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<DataError>>;

const NEXT_BLOCK_ID: &[u8] = b"next_block_id";

impl Trees {
    /// Opens the trees and recovers the append journal: what a crash left of one-block appends
    /// is counted and folded into the counters, durably, before anything else runs.
    pub(crate) fn open(db: sled::Db) -> Result<Trees, DataError> {
        let journal = db.open_tree("journal")?;
        let cold = db.open_tree("cold")?;
        let hot = db.open_tree("hot")?;
        let pending = journal::recover(&journal, &cold, &hot)?;
        let trees = Trees {
            accounts: db.open_tree("accounts")?,
            purged: db.open_tree("purged")?,
            cold,
            hot,
            buffer: db.open_tree("buffer")?,
            counters: db.open_tree("counters")?,
            meta: db.open_tree("meta")?,
            journal,
            pending: Mutex::new(pending),
            account_cache: Mutex::new(AccountCache::default()),
            db,
        };
        if trees.lock_pending().len() > 0 {
            trees.fold_journal()?;
            cmksim_sim::durable::flush(&trees.db)?;
        }
        Ok(trees)
    }

    /// The journal's entries not folded yet. Lock it after the write lock, never before.
    pub(crate) fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` as one atomic transaction over the block, hot, buffer, counter, meta and journal
    /// trees, after folding the append journal into the counters in the same transaction (so
    /// that `f` sees counters that count every stored block). Call under the write lock.
    pub(crate) fn transact<R>(&self, f: impl Fn(&Tx<'_>) -> TxResult<R>) -> Result<R, DataError> {
        let trees = (
            &self.cold,
            &self.hot,
            &self.buffer,
            &self.counters,
            &self.meta,
            &self.journal,
        );
        // Held until the fold is committed and cleared, so that `counters` never adds a delta
        // the stored counters already hold.
        let mut pending = self.lock_pending();
        let result = trees.transaction(|(cold, hot, buffer, counters, meta, journal)| {
            let tx = Tx {
                cold,
                hot,
                buffer,
                counters,
                meta,
                journal,
            };
            pending.fold(&tx)?;
            f(&tx)
        });
        if result.is_ok() {
            pending.clear();
        }
        Ok(result?)
    }

    /// Folds the append journal into the counters (one transaction; not flushed).
    pub(crate) fn fold_journal(&self) -> Result<(), DataError> {
        self.transact(|_| Ok(()))
    }

    /// The next unused block id (persisted by [`Tx::set_next_block_id`]).
    pub(crate) fn next_block_id(&self) -> Result<u64, DataError> {
        Ok(match self.meta.get(NEXT_BLOCK_ID)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                DataError::MalformedBlock {
                    tier: "meta",
                    key_hex: hex::encode(NEXT_BLOCK_ID),
                    reason: "next_block_id is not 8 bytes".into(),
                }
            })?),
            None => 1,
        })
    }

    fn lock_account_cache(&self) -> MutexGuard<'_, AccountCache> {
        self.account_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record of `account`, if it has one: from the cache, or parsed from the tree (and
    /// then cached, unless a write came in meanwhile; see [`AccountCache`]).
    pub(crate) fn account(&self, account: &str) -> Result<Option<Arc<AccountRecord>>, DataError> {
        let generation = {
            let cache = self.lock_account_cache();
            if let Some(record) = cache.records.get(account) {
                return Ok(Some(Arc::clone(record)));
            }
            cache.generation
        };
        let Some(bytes) = self.accounts.get(account.as_bytes())? else {
            return Ok(None);
        };
        let record: Arc<AccountRecord> = Arc::new(serde_json::from_slice(&bytes)?);
        if record.account == account {
            self.lock_account_cache()
                .fill(generation, Arc::clone(&record));
        }
        Ok(Some(record))
    }

    /// True if `account` has a record (one key lookup, nothing parsed).
    pub(crate) fn has_account(&self, account: &str) -> Result<bool, DataError> {
        if self.lock_account_cache().records.contains_key(account) {
            return Ok(true);
        }
        Ok(self.accounts.contains_key(account.as_bytes())?)
    }

    /// Every account name with a record, in name order.
    pub(crate) fn account_names(&self) -> Result<Vec<String>, DataError> {
        let mut out = Vec::new();
        for item in self.accounts.iter() {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(out)
    }

    /// Writes `record` (not flushed) and caches it. Call under the write lock.
    pub(crate) fn put_account(&self, record: AccountRecord) -> Result<(), DataError> {
        let bytes = serde_json::to_vec(&record)?;
        let written = self.accounts.insert(record.account.as_bytes(), bytes);
        let mut cache = self.lock_account_cache();
        cache.generation += 1;
        cache.records.remove(&record.account);
        written?;
        cache.insert(Arc::new(record));
        Ok(())
    }

    /// Deletes `account`'s record and writes its tombstone, in one transaction (not flushed),
    /// and forgets the cached record. Call under the write lock.
    pub(crate) fn purge_account_record(
        &self,
        account: &str,
        tombstone: &Tombstone,
    ) -> Result<(), DataError> {
        let tombstone = serde_json::to_vec(tombstone)?;
        let result = (&self.accounts, &self.purged).transaction(|(accounts, purged)| {
            accounts.remove(account.as_bytes())?;
            purged.insert(account.as_bytes(), tombstone.as_slice())?;
            Ok::<_, ConflictableTransactionError<DataError>>(())
        });
        let mut cache = self.lock_account_cache();
        cache.generation += 1;
        cache.records.remove(account);
        Ok(result?)
    }

    pub(crate) fn tombstone(&self, account: &str) -> Result<Option<Tombstone>, DataError> {
        match self.purged.get(account.as_bytes())? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// The counters of `account`: the stored ones plus what the append journal adds.
    pub(crate) fn counters(&self, account: &str) -> Result<AccountCounters, DataError> {
        let pending = self.lock_pending();
        let mut counters = match self.counters.get(account.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)?,
            None => AccountCounters::default(),
        };
        if let Some(delta) = pending.delta(account) {
            counters.add(delta);
        }
        Ok(counters)
    }
}

impl Tx<'_> {
    /// Reads, changes and writes back the counters of `account` inside the transaction.
    pub(crate) fn update_counters(
        &self,
        account: &str,
        change: impl FnOnce(&mut AccountCounters),
    ) -> TxResult<()> {
        let mut counters: AccountCounters = match self.counters.get(account.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)
                .map_err(|e| ConflictableTransactionError::Abort(e.into()))?,
            None => AccountCounters::default(),
        };
        change(&mut counters);
        assert!(
            counters.conserved(),
            "data-plane counters of {account} lost a record: {counters:?}"
        );
        let bytes = serde_json::to_vec(&counters)
            .map_err(|e| ConflictableTransactionError::Abort(e.into()))?;
        self.counters.insert(account.as_bytes(), bytes)?;
        Ok(())
    }

    /// Persists `next` as the next unused block id unless a higher one is stored already: ids
    /// are taken in memory under the write lock, but an append seals its blocks after releasing
    /// it, so a later append may commit first; the stored value never goes back.
    pub(crate) fn set_next_block_id(&self, next: u64) -> TxResult<()> {
        let stored = match self.meta.get(NEXT_BLOCK_ID)? {
            Some(v) => v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0),
            None => 0,
        };
        if next > stored {
            self.meta.insert(NEXT_BLOCK_ID, &next.to_be_bytes())?;
        }
        Ok(())
    }
}

/// The reason a name over [`NAME_MAX_BYTES`] is refused, in the caller's terms (a 400 says it).
const NAME_TOO_LONG: &str = "is longer than 256 bytes";
const _: () = assert!(NAME_MAX_BYTES == 256, "NAME_TOO_LONG states the bound");

/// Checks a name that becomes part of a key and a header.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<(), DataError> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > NAME_MAX_BYTES {
        Some(NAME_TOO_LONG)
    } else if value.contains('\0') {
        Some("must not contain NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DataError::InvalidName {
            what,
            // Bounded: the name is the caller's input.
            value: cmksim_sim::text::echo(value),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks an account name: `cluster:<clusterId>` or `shared:<region>`.
pub(crate) fn check_account(account: &str) -> Result<(), DataError> {
    check_name("account", account)?;
    let rest = account
        .strip_prefix("cluster:")
        .or_else(|| account.strip_prefix("shared:"));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(DataError::InvalidName {
            what: "account",
            value: account.to_string(),
            reason: "must be cluster:<clusterId> or shared:<region>",
        }),
    }
}

/// A time as 8 bytes whose byte order is time order.
pub(crate) fn time_key(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_key(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The account a block key belongs to (the key up to its first NUL).
pub(crate) fn account_of_key(key: &[u8]) -> Option<&str> {
    let end = key.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&key[..end]).ok()
}

/// `account ␀`
pub(crate) fn account_prefix(account: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k
}

/// `account ␀ workspace ␀`
pub(crate) fn workspace_prefix(account: &str, workspace: &str) -> Vec<u8> {
    let mut k = account_prefix(account);
    k.extend_from_slice(workspace.as_bytes());
    k.push(0);
    k
}

/// `account ␀ workspace ␀ table ␀`
pub(crate) fn table_prefix(account: &str, workspace: &str, table: &str) -> Vec<u8> {
    let mut k = workspace_prefix(account, workspace);
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k
}

/// The first key after every key that starts with `prefix` (which ends in NUL).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    let last = end.last_mut().expect("prefixes end with NUL");
    debug_assert_eq!(*last, 0);
    *last = 1;
    end
}

/// The key of a block (cold copy and hot copy alike).
pub(crate) fn block_key(
    account: &str,
    workspace: &str,
    table: &str,
    max_time_ms: i64,
    block_id: u64,
) -> Vec<u8> {
    let mut k = table_prefix(account, workspace, table);
    k.extend_from_slice(&time_key(max_time_ms));
    k.extend_from_slice(&block_id.to_be_bytes());
    k
}

/// The max time encoded in a block key (its last 16 bytes are max time and block id).
pub(crate) fn block_key_max_time(key: &[u8]) -> Option<i64> {
    let n = key.len();
    let bytes: [u8; 8] = key.get(n.checked_sub(16)?..n - 8)?.try_into().ok()?;
    Some(time_from_key(bytes))
}

/// The block id encoded in a block key (its last 8 bytes).
pub(crate) fn block_key_id(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The key of an outage-buffer entry: arrival order within the account.
pub(crate) fn buffer_key(account: &str, sequence: u64) -> Vec<u8> {
    let mut k = account_prefix(account);
    k.extend_from_slice(&sequence.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_time_order_and_prefixes_do_not_collide() {
        let a = block_key("cluster:c", "ws", "T", -5, 9);
        let b = block_key("cluster:c", "ws", "T", 3, 1);
        assert!(a < b);
        assert_eq!(block_key_max_time(&a), Some(-5));
        let p = table_prefix("cluster:c", "ws", "T");
        assert!(a.starts_with(&p) && b < prefix_end(&p));
        assert!(!block_key("cluster:c", "ws", "TT", 0, 0).starts_with(&p));
        assert!(check_account("cluster:").is_err());
        assert!(check_account("shared:westeurope").is_ok());
        assert!(check_name("table", "a\0b").is_err());
    }

    fn record(account: &str, fingerprint: &str) -> AccountRecord {
        AccountRecord {
            account: account.to_string(),
            double_encryption: false,
            created_at: SimTime(0),
            aek_fingerprint_hex: fingerprint.to_string(),
            wrapping: StoredWrapping::Mmk {
                wrapped_hex: "00".to_string(),
            },
        }
    }

    fn temporary_trees() -> Trees {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Trees::open(db).unwrap()
    }

    #[test]
    fn the_account_cache_answers_what_the_tree_holds() {
        let trees = temporary_trees();
        let a = "cluster:a";
        assert!(trees.account(a).unwrap().is_none());
        assert!(!trees.has_account(a).unwrap());
        trees.put_account(record(a, "01")).unwrap();
        assert_eq!(trees.account(a).unwrap().unwrap().aek_fingerprint_hex, "01");
        assert!(trees.has_account(a).unwrap());
        trees.put_account(record(a, "02")).unwrap();
        assert_eq!(trees.account(a).unwrap().unwrap().aek_fingerprint_hex, "02");
        // The tree itself holds the last write (a reopened plane reads it from there).
        let stored: AccountRecord =
            serde_json::from_slice(&trees.accounts.get(a).unwrap().unwrap()).unwrap();
        assert_eq!(stored.aek_fingerprint_hex, "02");
        let tombstone = Tombstone {
            purged_at: SimTime(1),
            blocks_deleted: false,
        };
        trees.purge_account_record(a, &tombstone).unwrap();
        assert!(trees.account(a).unwrap().is_none());
        assert!(!trees.has_account(a).unwrap());
        assert!(trees.tombstone(a).unwrap().is_some());
        assert_eq!(trees.account_names().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_record_read_before_a_write_is_not_cached_after_it() {
        let trees = temporary_trees();
        let a = "cluster:a";
        trees.put_account(record(a, "01")).unwrap();
        trees.lock_account_cache().records.clear();
        // A reader saw the cache at this generation and read "01" from the tree; a write
        // lands before the reader fills the cache.
        let generation = trees.lock_account_cache().generation;
        let read_before = Arc::new(record(a, "01"));
        trees.put_account(record(a, "02")).unwrap();
        trees.lock_account_cache().fill(generation, read_before);
        assert_eq!(trees.account(a).unwrap().unwrap().aek_fingerprint_hex, "02");
        // Without a write in between, the fill is kept.
        trees.lock_account_cache().records.clear();
        let generation = trees.lock_account_cache().generation;
        trees
            .lock_account_cache()
            .fill(generation, Arc::new(record(a, "cached")));
        assert_eq!(
            trees.account(a).unwrap().unwrap().aek_fingerprint_hex,
            "cached"
        );
    }

    #[test]
    fn the_account_cache_is_bounded() {
        let mut cache = AccountCache::default();
        for i in 0..ACCOUNT_CACHE_ENTRIES_MAX + 10 {
            cache.insert(Arc::new(record(&format!("cluster:c{i}"), "01")));
            assert!(cache.records.len() <= ACCOUNT_CACHE_ENTRIES_MAX);
        }
        // Replacing a cached record never empties the cache.
        let len = cache.records.len();
        let last = format!("cluster:c{}", ACCOUNT_CACHE_ENTRIES_MAX + 9);
        cache.insert(Arc::new(record(&last, "02")));
        assert_eq!(cache.records.len(), len);
    }
}
