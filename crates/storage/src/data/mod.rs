//! The encrypted data plane of cluster storage (SPEC §5).
//!
//! [`DataPlane`] is the facade the storage service and the Key Vault access loop call. It stores
//! log records in sealed blocks in sled, under a real key hierarchy:
//!
//! - [`keys`]: KEK → AEK → DEK, the Microsoft-managed key (MMK) and the infrastructure key, and
//!   the in-memory-only [`Aek`].
//! - [`block`]: the versioned, authenticated block format (documented there, byte by byte).
//! - [`record`]: [`Record`] and its encoding inside a block.
//! - [`store`]: the sled trees, key layout and per-account [`AccountCounters`].
//! - `journal`: how a one-block append commits with plain inserts, not a sled transaction, and
//!   how the counters catch up with it (also after a crash).
//! - [`tier`]: append and query over the cold tier and the hot tier (the last `hot_tier_window`).
//! - [`hot`]: the hot tier's entry (a block's DEK under the hot tier's key, not a second copy).
//! - [`buffer`]: the outage buffer (on disk, under the MMK) and its exactly-once drain.
//! - [`retention`]: retention per workspace and the crypto-shredding purge.
//! - [`lifecycle`]: the bounded retention pass the control tick runs, purge by filter, table delete.
//! - [`shred`]: the per-table secrets a purge destroys, so that a purged block left in sled's
//!   segments can no longer be opened.
//! - [`bench`]: `cmksim bench storage`.
//!
//! Shape: the data plane never talks to Key Vault. Wrapping and unwrapping the AEK with the
//! customer's key is the access loop's job; it hands the unwrapped [`Aek`] to each call that needs
//! it, and the data plane only stores the wrapped bytes it is given. Time is always an argument
//! (`now: SimTime`) and randomness (AEKs, nonces) comes from the [`RandomSource`] handed to
//! [`DataPlane::open`]. Every acknowledged write is flushed to disk before the call returns.
//! Mutations are serialised by one lock (they are short, and it keeps block ids and counters
//! simple); queries run concurrently. `DataPlane` is `Send + Sync`: share it in an `Arc`.

pub mod bench;
pub mod block;
pub mod buffer;
mod columnar;
mod error;
pub mod hot;
mod journal;
pub mod keys;
pub mod lifecycle;
pub mod record;
pub mod retention;
pub mod rows;
pub mod shred;
pub mod store;
pub mod tier;

#[cfg(test)]
pub(crate) mod lifecycle_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use cmksim_sim::profile::HotTierKey;
use cmksim_sim::{Profile, RandomSource, SimTime};

pub use block::{BlockHeader, KeyRef, Tier};
pub use buffer::{BufferReceipt, DrainReport};
pub use error::DataError;
pub use keys::Aek;
pub use record::{Record, Value};
pub use rows::{RowScan, Summarized, SUMMARIZE_GROUPS_MAX};
pub use store::AccountCounters;
pub use tier::{AppendReceipt, QueryResult, ScanStats};

use keys::ServiceKeys;
use store::{check_account, AccountRecord, StoredWrapping, Trees};

/// Result of a data-plane call.
pub type Result<T> = std::result::Result<T, DataError>;

/// The algorithm name recorded for an AEK wrapped by the customer's key.
pub const KEK_WRAP_ALGORITHM: &str = "RSA-OAEP-256";

/// Timings from the profile and the data plane's own limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Profile `data.hot_tier_window`: blocks whose newest record is this recent get a hot copy.
    pub hot_tier_window: Duration,
    /// Profile `data.hot_tier_key`: the key that seals hot copies.
    pub hot_tier_key: HotTierKey,
    /// Profile `key_access.buffer_window`: buffered entries older than this are dropped on drain.
    pub buffer_window: Duration,
    /// Largest encoded record payload of one block, in bytes.
    pub block_max_bytes: usize,
    /// Largest encoded payload of one `append` or `buffer_append` call, in bytes.
    pub batch_max_bytes: usize,
    /// Largest outage buffer of one account (sealed bytes on disk).
    pub buffer_max_bytes: u64,
    /// Most records one `query` returns (a larger result is an error; use `scan` to stream).
    pub query_records_max: usize,
    /// sled's page cache, in bytes (bounds the memory the data plane uses for any data size).
    pub sled_cache_max_bytes: u64,
}

impl DataConfig {
    /// The profile's timings with the default limits.
    pub fn from_profile(profile: &Profile) -> DataConfig {
        DataConfig {
            hot_tier_window: profile.data.hot_tier_window,
            hot_tier_key: profile.data.hot_tier_key,
            buffer_window: profile.key_access.buffer_window,
            block_max_bytes: 1 << 20,
            batch_max_bytes: 64 << 20,
            buffer_max_bytes: 1 << 30,
            query_records_max: 1_000_000,
            sled_cache_max_bytes: 64 << 20,
        }
    }
}

/// How an account's AEK is wrapped, as the access loop sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum AekWrapping {
    /// Under the Microsoft-managed key (CMK not configured yet): use [`DataPlane::unwrap_with_mmk`].
    Mmk,
    /// Under the customer's key: unwrap `wrapped` through Key Vault with `kid`/`version`.
    Kek {
        kid: String,
        version: String,
        algorithm: String,
        wrapped: Vec<u8>,
    },
}

/// The key to seal new blocks under.
#[derive(Clone, Copy, Debug)]
pub enum Sealing<'a> {
    /// The Microsoft-managed key: shared storage, or a cluster before CMK is configured.
    Mmk,
    /// The account's AEK, currently wrapped by the customer's key `kid` version `version`.
    Cmk {
        aek: &'a Aek,
        kid: &'a str,
        version: &'a str,
    },
}

impl Sealing<'_> {
    /// The key reference written into block headers.
    pub fn key_ref(&self) -> KeyRef {
        match self {
            Sealing::Mmk => KeyRef::Mmk,
            Sealing::Cmk { kid, version, .. } => KeyRef::Cmk {
                kid: kid.to_string(),
                version: version.to_string(),
            },
        }
    }

    fn aek(&self) -> Option<&Aek> {
        match self {
            Sealing::Mmk => None,
            Sealing::Cmk { aek, .. } => Some(aek),
        }
    }
}

/// What one account holds now, with its lifetime counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    pub account: String,
    pub double_encryption: bool,
    pub wrapped_by: String,
    pub counters: AccountCounters,
}

/// Serialised mutation state (held while writing).
pub(crate) struct WriteState {
    pub next_block_id: u64,
    /// Appends that took block ids and have not committed or failed yet: first block id → how
    /// many (an empty append takes no id and may share one). A purge waits for those below its
    /// new table generation (see [`lifecycle`]). At most one entry per concurrent append.
    pub appends_in_flight: std::collections::BTreeMap<u64, u32>,
}

impl WriteState {
    /// Notes an append that took ids from `first_block_id` (under the write lock, with the ids).
    pub(crate) fn append_started(&mut self, first_block_id: u64) {
        *self.appends_in_flight.entry(first_block_id).or_insert(0) += 1;
    }

    /// The first block id of the oldest append still in flight.
    pub(crate) fn oldest_append_in_flight(&self) -> Option<u64> {
        self.appends_in_flight.keys().next().copied()
    }
}

/// Ends an append's in-flight entry when dropped (committed, failed or unwound). Drop it only
/// while the write lock is not held by the same thread.
pub(crate) struct AppendInFlight<'a> {
    plane: &'a DataPlane,
    first_block_id: u64,
}

impl Drop for AppendInFlight<'_> {
    fn drop(&mut self) {
        let mut write = self.plane.lock_write();
        if let Some(n) = write.appends_in_flight.get_mut(&self.first_block_id) {
            *n -= 1;
            if *n == 0 {
                write.appends_in_flight.remove(&self.first_block_id);
            }
        }
    }
}

/// The encrypted data plane of one data directory.
pub struct DataPlane {
    pub(crate) trees: Trees,
    pub(crate) keys: ServiceKeys,
    /// The per-table secrets of [`shred`] (`table-keys.json`).
    pub(crate) table_keys: shred::TableKeys,
    pub(crate) config: DataConfig,
    /// Where outage-buffer entries live, one file each (see [`buffer`]).
    pub(crate) buffer_dir: PathBuf,
    rng: Mutex<RandomSource>,
    write: Mutex<WriteState>,
}

impl DataPlane {
    /// Opens (or creates) the data plane in `dir`: sled in `dir/data.sled`, the service keys in
    /// `dir/service-keys/`, outage-buffer entries in `dir/buffer/`. Timings come from `profile`; limits are the defaults.
    pub fn open(dir: &Path, rng: RandomSource, profile: &Profile) -> Result<DataPlane> {
        DataPlane::open_with_config(dir, rng, DataConfig::from_profile(profile))
    }

    /// As [`DataPlane::open`] with explicit limits. sled's background flusher is off: every
    /// acknowledged write is flushed explicitly. Finishes any purge a crash interrupted.
    pub fn open_with_config(
        dir: &Path,
        mut rng: RandomSource,
        config: DataConfig,
    ) -> Result<DataPlane> {
        assert!(config.block_max_bytes > 0 && config.batch_max_bytes >= config.block_max_bytes);
        std::fs::create_dir_all(dir)?;
        let keys = ServiceKeys::load_or_create(&dir.join("service-keys"), &mut rng)?;
        let table_keys = shred::TableKeys::load(dir)?;
        let db = cmksim_sim::durable::open_with(
            sled::Config::new()
                .path(dir.join("data.sled"))
                .cache_capacity(config.sled_cache_max_bytes),
        )?;
        let trees = Trees::open(db)?;
        let buffer_dir = dir.join("buffer");
        std::fs::create_dir_all(&buffer_dir)?;
        let next_block_id = trees.next_block_id()?;
        let plane = DataPlane {
            trees,
            keys,
            table_keys,
            config,
            buffer_dir,
            rng: Mutex::new(rng),
            write: Mutex::new(WriteState {
                next_block_id,
                appends_in_flight: Default::default(),
            }),
        };
        plane.finish_interrupted_purges()?;
        plane.remove_orphan_entry_files()?;
        Ok(plane)
    }

    /// Registers an append that took ids from `first_block_id` (the caller registered it in
    /// `write` with [`WriteState::append_started`]); the guard ends it when dropped.
    pub(crate) fn append_in_flight(&self, first_block_id: u64) -> AppendInFlight<'_> {
        AppendInFlight {
            plane: self,
            first_block_id,
        }
    }

    /// Gives a table its first table-key generation, starting at the next block id, if it has
    /// none (see [`shred`]). Called under the write lock before a table's blocks are sealed:
    /// every block id already taken is below the new generation, so a block sealed before the
    /// table had keys keeps its DEK without a table secret.
    pub(crate) fn ensure_table_key(
        &self,
        write: &WriteState,
        account: &str,
        workspace: &str,
        table: &str,
    ) -> Result<()> {
        if self.table_keys.has_table(account, workspace, table) {
            return Ok(());
        }
        let mut rng = self.lock_rng();
        self.table_keys
            .create_table(account, workspace, table, write.next_block_id, &mut *rng)
    }

    /// The configuration in force.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// Creates a storage account (`cluster:<clusterId>` or `shared:<region>`) with a new random
    /// AEK wrapped under the MMK. Refuses an existing or purged account.
    pub fn create_account(
        &self,
        account: &str,
        double_encryption: bool,
        now: SimTime,
    ) -> Result<()> {
        check_account(account)?;
        let _write = self.lock_write();
        self.refuse_purged(account)?;
        if self.trees.has_account(account)? {
            return Err(DataError::AccountExists(account.to_string()));
        }
        let (aek, wrapped) = {
            let mut rng = self.lock_rng();
            let aek = Aek::generate(&mut *rng);
            let wrapped = keys::wrap_with_mmk(&self.keys.mmk, account, &aek, &mut *rng);
            (aek, wrapped)
        };
        let record = AccountRecord {
            account: account.to_string(),
            double_encryption,
            created_at: now,
            aek_fingerprint_hex: hex::encode(aek.fingerprint()),
            wrapping: StoredWrapping::Mmk {
                wrapped_hex: hex::encode(wrapped),
            },
        };
        self.trees.put_account(record)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(())
    }

    /// True if the account exists (and was not purged).
    pub fn account_exists(&self, account: &str) -> Result<bool> {
        self.trees.has_account(account)
    }

    /// The key new blocks of the account are sealed under: the MMK, or the customer's key
    /// version that wraps its AEK. What [`DataPlane::account_wrapping`] says, without decoding
    /// the wrapped AEK: for an append, which needs only the key's name.
    pub fn account_key_ref(&self, account: &str) -> Result<KeyRef> {
        let record = self.account_record(account)?;
        Ok(match &record.wrapping {
            StoredWrapping::Mmk { .. } => KeyRef::Mmk,
            StoredWrapping::Kek { kid, version, .. } => KeyRef::Cmk {
                kid: kid.clone(),
                version: version.clone(),
            },
        })
    }

    /// How the account's AEK is wrapped.
    pub fn account_wrapping(&self, account: &str) -> Result<AekWrapping> {
        let record = self.account_record(account)?;
        Ok(match &record.wrapping {
            StoredWrapping::Mmk { .. } => AekWrapping::Mmk,
            StoredWrapping::Kek {
                kid,
                version,
                algorithm,
                wrapped_hex,
            } => AekWrapping::Kek {
                kid: kid.clone(),
                version: version.clone(),
                algorithm: algorithm.clone(),
                wrapped: hex::decode(wrapped_hex).map_err(|_| DataError::WrappedAekNotHex {
                    account: account.to_string(),
                })?,
            },
        })
    }

    /// Unwraps the AEK of an account still wrapped by the MMK (before CMK is configured), so that
    /// the access loop can wrap it with the customer's key.
    pub fn unwrap_with_mmk(&self, account: &str) -> Result<Aek> {
        let record = self.account_record(account)?;
        let StoredWrapping::Mmk { wrapped_hex } = &record.wrapping else {
            return Err(DataError::NotMmkWrapped {
                account: account.to_string(),
            });
        };
        let corrupt = || DataError::WrappedAekCorrupt {
            account: account.to_string(),
        };
        let wrapped = hex::decode(wrapped_hex).map_err(|_| corrupt())?;
        let aek = keys::unwrap_with_mmk(&self.keys.mmk, account, &wrapped).ok_or_else(corrupt)?;
        if hex::encode(aek.fingerprint()) != record.aek_fingerprint_hex {
            return Err(corrupt());
        }
        Ok(aek)
    }

    /// Records the AEK as wrapped by the customer's key `kid`/`version` (RSA-OAEP-256 through
    /// Key Vault), replacing the previous wrapping (MMK or an older KEK). `aek` is the key that
    /// was wrapped: it must be this account's (checked by fingerprint), so that a wrong key can
    /// never become the only copy. No block is re-encrypted: blocks depend on the AEK, not the KEK.
    pub fn set_kek_wrapping(
        &self,
        account: &str,
        aek: &Aek,
        kid: &str,
        version: &str,
        wrapped: &[u8],
    ) -> Result<()> {
        check_account(account)?;
        store::check_name("key id", kid)?;
        store::check_name("key version", version)?;
        if wrapped.is_empty() {
            return Err(DataError::InvalidName {
                what: "wrapped AEK",
                value: String::new(),
                reason: "must not be empty",
            });
        }
        let _write = self.lock_write();
        let mut record = AccountRecord::clone(&*self.account_record(account)?);
        self.check_aek(&record, aek)?;
        record.wrapping = StoredWrapping::Kek {
            kid: kid.to_string(),
            version: version.to_string(),
            algorithm: KEK_WRAP_ALGORITHM.to_string(),
            wrapped_hex: hex::encode(wrapped),
        };
        self.trees.put_account(record)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(())
    }

    /// Blocks, bytes, records, hot blocks and buffered entries of an account, with its counters.
    /// A purged account still reports its counters (with nothing stored).
    pub fn stats(&self, account: &str) -> Result<AccountStats> {
        check_account(account)?;
        let counters = self.trees.counters(account)?;
        if let Some(record) = self.trees.account(account)? {
            let wrapped_by = match &record.wrapping {
                StoredWrapping::Mmk { .. } => "mmk".to_string(),
                StoredWrapping::Kek { kid, version, .. } => format!("kek {kid} {version}"),
            };
            return Ok(AccountStats {
                account: account.to_string(),
                double_encryption: record.double_encryption,
                wrapped_by,
                counters,
            });
        }
        if self.trees.tombstone(account)?.is_some() {
            return Ok(AccountStats {
                account: account.to_string(),
                double_encryption: false,
                wrapped_by: "purged".into(),
                counters,
            });
        }
        Err(DataError::AccountNotFound(account.to_string()))
    }

    /// Every account with a record, in name order.
    pub fn accounts(&self) -> Result<Vec<String>> {
        self.trees.account_names()
    }

    // ---- internal helpers shared by the submodules ----

    pub(crate) fn lock_write(&self) -> MutexGuard<'_, WriteState> {
        self.write
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lock_rng(&self) -> MutexGuard<'_, RandomSource> {
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account's record, or why there is none (purged, or never created).
    pub(crate) fn account_record(&self, account: &str) -> Result<Arc<AccountRecord>> {
        check_account(account)?;
        if let Some(record) = self.trees.account(account)? {
            return Ok(record);
        }
        self.refuse_purged(account)?;
        Err(DataError::AccountNotFound(account.to_string()))
    }

    /// Ok when `account` exists; otherwise the refusal [`DataPlane::account_record`] gives. One
    /// key lookup, no record parsed: for a check that only needs the account to be there.
    pub(crate) fn check_account_exists(&self, account: &str) -> Result<()> {
        if self.account_exists(account)? {
            return Ok(());
        }
        self.account_record(account).map(|_| ())
    }

    pub(crate) fn refuse_purged(&self, account: &str) -> Result<()> {
        match self.trees.tombstone(account)? {
            Some(t) => Err(DataError::PermanentlyUnreadable {
                account: account.to_string(),
                purged_at: t.purged_at,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn check_aek(&self, record: &AccountRecord, aek: &Aek) -> Result<()> {
        if hex::encode(aek.fingerprint()) == record.aek_fingerprint_hex {
            Ok(())
        } else {
            Err(DataError::WrongAek {
                account: record.account.clone(),
            })
        }
    }

    /// The hot tier's sealing for a block whose cold copy is sealed with `cold`.
    pub(crate) fn hot_sealing<'a>(&self, cold: Sealing<'a>) -> Sealing<'a> {
        match self.config.hot_tier_key {
            HotTierKey::Mmk => Sealing::Mmk,
            HotTierKey::Cmk => cold,
        }
    }
}
