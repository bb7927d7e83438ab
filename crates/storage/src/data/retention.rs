//! Retention per workspace, and the purge that crypto-shreds an account.
//!
//! Retention removes whole blocks (cold and hot copies) whose newest record is older than
//! `now - retention`: blocks are keyed by max time, so these are a prefix of each table's range.
//! It needs no key: the header that says how old a block is is plaintext (and authenticated).
//! Its removals are made final on disk as a purge's are, by destroying key generations
//! ([`super::shred`]): each table's generations are retention buckets, and a bucket whose
//! blocks have all aged out loses its secret, so the removed blocks sled keeps in its segments
//! cannot be opened, with the disk and the account key. That needs no key either.
//!
//! A purge first deletes the account record (the only copy of the wrapped AEK) and writes a
//! tombstone, in one flushed step: from then on nothing under the CMK can ever be decrypted, and
//! every call for the account answers [`DataError::PermanentlyUnreadable`]. Then it deletes every
//! block, hot copy and buffered entry (which also removes the data under the MMK) in bounded
//! transactions, and destroys the account's table secrets ([`super::shred`]), so the blocks
//! sled keeps in its segments cannot be opened even with the MMK; a purge interrupted by a crash
//! is finished on the next open.

use std::collections::BTreeSet;
use std::time::Duration;

use sled::IVec;

use cmksim_sim::SimTime;

use super::block::{BlockHeader, Tier};
use super::error::DataError;
use super::store::{self, check_account, check_name, Tombstone};
use super::tier::{malformed, DELETE_CHUNK_BLOCKS};
use super::{buffer, DataPlane, Result, WriteState};

impl DataPlane {
    /// Removes blocks of `workspace` (all tables) whose newest record is older than
    /// `now - retention`. Returns the number of blocks removed.
    pub fn apply_retention(
        &self,
        account: &str,
        workspace: &str,
        retention: Duration,
        now: SimTime,
    ) -> Result<usize> {
        check_name("workspace", workspace)?;
        self.account_record(account)?;
        let cutoff_ms = now.sub(retention).0;
        let prefix = store::workspace_prefix(account, workspace);
        let write = self.lock_write();
        let mut removed = 0;
        // The tables that lost blocks.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        loop {
            // (key, sealed bytes, records, hot bytes)
            let mut chunk: Vec<(IVec, u64, u64, Option<u64>)> = Vec::new();
            for item in self.trees.cold.scan_prefix(&prefix) {
                let (key, cold) = item?;
                if store::block_key_max_time(&key).is_some_and(|t| t < cutoff_ms) {
                    let (header, _) = BlockHeader::parse(&cold)
                        .map_err(|reason| malformed(Tier::Cold, &key, reason))?;
                    let hot = self.trees.hot.get(&key)?.map(|h| h.len() as u64);
                    chunk.push((key, cold.len() as u64, u64::from(header.record_count), hot));
                    if chunk.len() == DELETE_CHUNK_BLOCKS {
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            touched.extend(
                chunk
                    .iter()
                    .filter_map(|(key, ..)| super::lifecycle::table_of(key, &prefix)),
            );
            self.trees.transact(|tx| {
                for (key, _, _, hot) in &chunk {
                    tx.cold.remove(key)?;
                    if hot.is_some() {
                        tx.hot.remove(key)?;
                    }
                }
                tx.update_counters(account, |c| {
                    for (_, bytes, records, hot) in &chunk {
                        c.stored_blocks -= 1;
                        c.stored_bytes -= bytes;
                        c.stored_records -= records;
                        c.retention_removed_records += records;
                        if let Some(hot_bytes) = hot {
                            c.hot_blocks -= 1;
                            c.hot_bytes -= hot_bytes;
                        }
                    }
                })
            })?;
            removed += chunk.len();
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        self.shred_aged_out(account, workspace, now, &write, &touched)?;
        Ok(removed)
    }

    /// Makes retention's removals final on disk ([`super::shred`]): each table of the workspace
    /// whose newest key generation is a bucket old starts a new one, and each table that did so
    /// or lost blocks (`touched`, by name) destroys the generations no stored block and no
    /// append in flight uses any more. Called with the write lock held, after the removals were
    /// flushed: a generation goes only once its blocks are durably gone. Needs no key (block ids
    /// are in the block keys). Bounded by the workspace's tables and their blocks.
    pub(super) fn shred_aged_out(
        &self,
        account: &str,
        workspace: &str,
        now: SimTime,
        write: &WriteState,
        touched: &BTreeSet<String>,
    ) -> Result<()> {
        let prefix = store::workspace_prefix(account, workspace);
        for table in self.table_keys.tables_under(&prefix) {
            let started = {
                let mut rng = self.lock_rng();
                self.table_keys.start_bucket(
                    account,
                    workspace,
                    &table,
                    write.next_block_id,
                    now.0,
                    &mut *rng,
                )?
            };
            if !started && !touched.contains(&table) {
                continue;
            }
            let mut live_ids = Vec::new();
            for key in self
                .trees
                .cold
                .scan_prefix(store::table_prefix(account, workspace, &table))
                .keys()
            {
                live_ids.extend(store::block_key_id(&key?));
            }
            live_ids.sort_unstable();
            self.table_keys.destroy_unused(
                account,
                workspace,
                &table,
                &live_ids,
                write.oldest_append_in_flight(),
            )?;
        }
        Ok(())
    }

    /// Crypto-shreds the account: the wrapped AEK is deleted (durably, first), then every block
    /// and buffered entry. Afterwards reads answer [`DataError::PermanentlyUnreadable`].
    pub fn purge_account(&self, account: &str, now: SimTime) -> Result<()> {
        check_account(account)?;
        let _write = self.lock_write();
        self.refuse_purged(account)?;
        if !self.trees.has_account(account)? {
            return Err(DataError::AccountNotFound(account.to_string()));
        }
        let tombstone = Tombstone {
            purged_at: now,
            blocks_deleted: false,
        };
        self.trees.purge_account_record(account, &tombstone)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        self.delete_account_data(account)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        self.table_keys
            .forget_prefix(&store::account_prefix(account))?;
        let done = Tombstone {
            purged_at: now,
            blocks_deleted: true,
        };
        self.trees
            .purged
            .insert(account.as_bytes(), serde_json::to_vec(&done)?)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(())
    }

    /// Deletes every cold block, hot copy and buffered entry of an account, in bounded chunks.
    fn delete_account_data(&self, account: &str) -> Result<()> {
        let prefix = store::account_prefix(account);
        self.delete_prefix_hot(account, &prefix, |_| true)?;
        for tier in [Tier::Cold, Tier::Buffer] {
            let tree = if tier == Tier::Cold {
                &self.trees.cold
            } else {
                &self.trees.buffer
            };
            loop {
                let mut chunk: Vec<(IVec, u64, u64)> = Vec::new();
                for item in tree.scan_prefix(&prefix).take(DELETE_CHUNK_BLOCKS) {
                    let (key, value) = item?;
                    let (bytes, records) = if tier == Tier::Cold {
                        let (header, _) = BlockHeader::parse(&value)
                            .map_err(|reason| malformed(tier, &key, reason))?;
                        (value.len() as u64, u64::from(header.record_count))
                    } else {
                        buffer::parse_index(&value)
                            .ok_or_else(|| malformed(tier, &key, "bad index value".into()))?
                    };
                    chunk.push((key, bytes, records));
                }
                if chunk.is_empty() {
                    break;
                }
                self.trees.transact(|tx| {
                    let t = if tier == Tier::Cold {
                        tx.cold
                    } else {
                        tx.buffer
                    };
                    for (key, _, _) in &chunk {
                        t.remove(key)?;
                    }
                    tx.update_counters(account, |c| {
                        for (_, bytes, records) in &chunk {
                            if tier == Tier::Cold {
                                c.stored_blocks -= 1;
                                c.stored_bytes -= bytes;
                                c.stored_records -= records;
                            } else {
                                c.buffered_entries -= 1;
                                c.buffered_bytes -= bytes;
                                c.buffered_records -= records;
                            }
                            c.purged_records += records;
                        }
                    })
                })?;
                if tier == Tier::Buffer {
                    // Flushed first: a crash before the files go leaves orphans, removed at open.
                    cmksim_sim::durable::flush(&self.trees.db)?;
                    for (key, _, _) in &chunk {
                        let path = self.entry_path(key);
                        std::fs::remove_file(&path).map_err(|e| DataError::BufferFile {
                            path,
                            reason: e.to_string(),
                        })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Finishes purges that a crash interrupted (called by `open`).
    pub(crate) fn finish_interrupted_purges(&self) -> Result<()> {
        let mut pending = Vec::new();
        for item in self.trees.purged.iter() {
            let (key, value) = item?;
            let tombstone: Tombstone = serde_json::from_slice(&value)?;
            if !tombstone.blocks_deleted {
                pending.push((String::from_utf8_lossy(&key).into_owned(), tombstone));
            }
        }
        for (account, tombstone) in pending {
            self.delete_account_data(&account)?;
            cmksim_sim::durable::flush(&self.trees.db)?;
            self.table_keys
                .forget_prefix(&store::account_prefix(&account))?;
            let done = Tombstone {
                blocks_deleted: true,
                ..tombstone
            };
            self.trees
                .purged
                .insert(account.as_bytes(), serde_json::to_vec(&done)?)?;
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(())
    }
}
