//! Data lifecycle on the data plane: the bounded retention pass, purge by filter, table delete.
//!
//! These are the data-plane halves of seed 003's lifecycle ("data ... can be deleted via purge
//! API path"; retention per workspace) and of seed 000's "Inaccessible data is governed by the
//! data-retention policy and will be purged when retention is reached". The rules (who may purge,
//! the lock, the retention bounds) live in the control plane; here is only what happens to blocks.
//!
//! - **Retention** ([`DataPlane::retention_pass`]) removes *whole* blocks whose newest record is
//!   older than the cutoff, cold and hot copies, without any key: the block key carries its max
//!   time in plaintext, so a revoked or unavailable storage still removes its data on time.
//!   A block that straddles the cutoff (some records older, some newer) is kept whole until its
//!   newest record passes the cutoff: a record can outlive its retention by at most its block's
//!   time span (one append's records), never be removed early. Each pass removes at most
//!   `blocks_max` blocks, so the work per control tick is bounded; the caller runs another pass
//!   when the report says `more`.
//! - **Purge** ([`DataPlane::purge_records`]) rewrites every block of the table that holds a
//!   matching record: the block is opened (it needs the AEK for blocks under the customer's key),
//!   the matching records are dropped, the rest are sealed into new blocks with new block ids
//!   (hence new DEKs) under the same key reference the old block had (MMK data stays under the
//!   MMK), and the old cold and hot copies are deleted in the same transaction. Not crypto-shred:
//!   the AEK is per account, so shredding it would destroy every other record too.
//! - **Table delete** ([`DataPlane::delete_table`]) deletes every block of one table, like
//!   retention with no cutoff; no key needed.
//!
//! Every removal updates the account counters in the same transaction: retention counts into
//! `retention_removed_records`, purge and table delete into `purged_records`, so
//! [`super::AccountCounters::conserved`] keeps holding.

use std::sync::MutexGuard;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sled::IVec;

use cmksim_sim::SimTime;

use super::block::{BlockHeader, KeyRef, Tier};
use super::buffer;
use super::error::DataError;
use super::keys::Aek;
use super::record::Record;
use super::store::{self, check_name, AccountRecord};
use super::tier::{malformed, DELETE_CHUNK_BLOCKS};
use super::{DataPlane, Result, Sealing, WriteState};

/// What one removal took from one table: blocks, records, and the time range of the records
/// (min of the blocks' oldest record, max of their newest).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRemoval {
    pub table: String,
    pub blocks: u64,
    pub records: u64,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The result of one bounded retention pass over a workspace of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPass {
    /// Per table, in table-name order; tables with nothing removed are absent.
    pub removals: Vec<TableRemoval>,
    /// The pass stopped at `blocks_max`: more blocks are past the cutoff.
    pub more: bool,
}

/// What a purge did in one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Blocks that held a matching record (each rewritten without it, or deleted when empty).
    pub blocks_rewritten: u64,
    /// Blocks without a matching record, re-sealed under the table's new key generation.
    #[serde(default)]
    pub blocks_resealed: u64,
    /// Blocks written in their place.
    pub blocks_written: u64,
    /// Times the purge waited for appends that took block ids before it began.
    #[serde(default)]
    pub append_waits: u64,
    /// Records removed (from blocks and from the outage buffer).
    pub records: u64,
    /// Of `records`, those removed from the outage buffer (so they never come back when it drains).
    #[serde(default)]
    pub buffered_records: u64,
    /// Outage-buffer entries that held a matching record (each rewritten without it, or deleted).
    #[serde(default)]
    pub buffer_entries_rewritten: u64,
}

/// How long a purge or table delete waits, without the write lock, for appends that took block
/// ids before it began (they seal under the generation it is about to destroy).
pub const APPEND_WAIT_STEP: Duration = Duration::from_millis(1);
/// Most such waits per purge or table delete (10 s in all; an append holds its ids for the time
/// it takes to seal one batch).
pub const APPEND_WAITS_MAX: u64 = 10_000;

#[cfg(test)]
thread_local! {
    /// Test-only crash injection: the purge (or table delete) steps this thread has passed, and
    /// the step at which the process aborts (0: never). `std::process::abort` is as abrupt as `kill -9` for the
    /// data directory: no destructor runs, nothing more is flushed.
    pub(crate) static CRASH_STEPS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A point in a purge (or, in the server, a table delete) where a crash test may abort the
/// process (nothing outside tests).
pub(crate) fn crash_point() {
    #[cfg(test)]
    CRASH_STEPS.with(|c| {
        let (seen, crash_at) = c.get();
        let seen = seen + 1;
        c.set((seen, crash_at));
        if seen == crash_at {
            std::process::abort();
        }
    });
}

/// The table name of a block key under `workspace_prefix` (`table ␀ time id`).
pub(super) fn table_of(key: &[u8], workspace_prefix: &[u8]) -> Option<String> {
    let rest = key.get(workspace_prefix.len()..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

impl DataPlane {
    /// Removes, in `account`, at most `blocks_max` blocks of `workspace` (any table) whose newest
    /// record is older than `cutoff` (cold and hot copies), and makes the removals final on disk
    /// at `now` ([`super::shred`]'s retention buckets). Needs no key. Tables are visited in name
    /// order and each table's blocks in time order, so a pass is deterministic.
    pub fn retention_pass(
        &self,
        account: &str,
        workspace: &str,
        cutoff: SimTime,
        blocks_max: usize,
        now: SimTime,
    ) -> Result<RetentionPass> {
        self.retention_pass_by_table(account, workspace, &|_| cutoff, blocks_max, now)
    }

    /// As [`DataPlane::retention_pass`], with a cutoff per table (`cutoff_of(table)`): the
    /// retention job passes each table's own retention, or its workspace's (issue 14).
    pub fn retention_pass_by_table(
        &self,
        account: &str,
        workspace: &str,
        cutoff_of: &dyn Fn(&str) -> SimTime,
        blocks_max: usize,
        now: SimTime,
    ) -> Result<RetentionPass> {
        check_name("workspace", workspace)?;
        self.account_record(account)?;
        let ws_prefix = store::workspace_prefix(account, workspace);
        let write = self.lock_write();
        let mut pass = RetentionPass::default();
        let mut budget = blocks_max;
        // The first key of the next table to look at.
        let mut cursor = ws_prefix.clone();
        let ws_end = store::prefix_end(&ws_prefix);
        while budget > 0 {
            let Some(first) = self.trees.cold.range(cursor.clone()..ws_end.clone()).next() else {
                break;
            };
            let (first_key, _) = first?;
            let Some(table) = table_of(&first_key, &ws_prefix) else {
                return Err(malformed(
                    Tier::Cold,
                    &first_key,
                    "no table in the key".into(),
                ));
            };
            let t_prefix = store::table_prefix(account, workspace, &table);
            let old_end = store::block_key(account, workspace, &table, cutoff_of(&table).0, 0);
            let mut removal = TableRemoval {
                table: table.clone(),
                from_ms: i64::MAX,
                to_ms: i64::MIN,
                ..TableRemoval::default()
            };
            loop {
                let take = budget.min(DELETE_CHUNK_BLOCKS);
                if take == 0 {
                    break;
                }
                // (key, cold bytes, header, hot bytes)
                let mut chunk: Vec<(IVec, u64, BlockHeader, Option<u64>)> = Vec::new();
                for item in self
                    .trees
                    .cold
                    .range(t_prefix.clone()..old_end.clone())
                    .take(take)
                {
                    let (key, cold) = item?;
                    let (header, _) = BlockHeader::parse(&cold)
                        .map_err(|reason| malformed(Tier::Cold, &key, reason))?;
                    let hot = self.trees.hot.get(&key)?.map(|h| h.len() as u64);
                    chunk.push((key, cold.len() as u64, header, hot));
                }
                if chunk.is_empty() {
                    break;
                }
                self.remove_blocks(account, &chunk, false)?;
                budget -= chunk.len();
                for (_, _, h, _) in &chunk {
                    removal.blocks += 1;
                    removal.records += u64::from(h.record_count);
                    removal.from_ms = removal.from_ms.min(h.min_time_ms);
                    removal.to_ms = removal.to_ms.max(h.max_time_ms);
                }
            }
            if removal.blocks > 0 {
                pass.removals.push(removal);
            }
            if budget == 0 {
                // More may remain in this table or the next ones.
                pass.more = self
                    .trees
                    .cold
                    .range(t_prefix.clone()..old_end)
                    .next()
                    .is_some()
                    || self
                        .trees
                        .cold
                        .range(store::prefix_end(&t_prefix)..ws_end.clone())
                        .next()
                        .is_some();
                break;
            }
            cursor = store::prefix_end(&t_prefix);
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        let touched: std::collections::BTreeSet<String> =
            pass.removals.iter().map(|r| r.table.clone()).collect();
        self.shred_aged_out(account, workspace, now, &write, &touched)?;
        Ok(pass)
    }

    /// Deletes blocks (cold and hot copies) and counts their records as removed by retention
    /// (`purged = false`) or by a purge or table delete (`purged = true`). One transaction.
    fn remove_blocks(
        &self,
        account: &str,
        chunk: &[(IVec, u64, BlockHeader, Option<u64>)],
        purged: bool,
    ) -> Result<()> {
        self.trees.transact(|tx| {
            for (key, _, _, hot) in chunk {
                tx.cold.remove(key)?;
                if hot.is_some() {
                    tx.hot.remove(key)?;
                }
            }
            tx.update_counters(account, |c| {
                for (_, bytes, header, hot) in chunk {
                    let records = u64::from(header.record_count);
                    c.stored_blocks -= 1;
                    c.stored_bytes -= bytes;
                    c.stored_records -= records;
                    if purged {
                        c.purged_records += records;
                    } else {
                        c.retention_removed_records += records;
                    }
                    if let Some(hot_bytes) = hot {
                        c.hot_blocks -= 1;
                        c.hot_bytes -= hot_bytes;
                    }
                }
            })
        })
    }

    /// Deletes every block of one table of `workspace` in `account` (cold and hot copies), in
    /// transactions of at most [`DELETE_CHUNK_BLOCKS`] blocks, and destroys the table's secret
    /// (see [`super::shred`]), so the deleted blocks left in sled's segments cannot be opened.
    /// Needs no key. The blocks deleted are those below the table's new key generation (every
    /// block that existed, and those of appends already under way, waited for); an append that
    /// starts after the delete writes the table anew.
    pub fn delete_table(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
    ) -> Result<TableRemoval> {
        check_name("workspace", workspace)?;
        check_name("table", table)?;
        self.account_record(account)?;
        let prefix = store::table_prefix(account, workspace, table);
        let mut write = self.lock_write();
        let mut removal = TableRemoval {
            table: table.to_string(),
            from_ms: i64::MAX,
            to_ms: i64::MIN,
            ..TableRemoval::default()
        };
        let first_kept = {
            let mut rng = self.lock_rng();
            self.table_keys.begin_rotation(
                account,
                workspace,
                table,
                write.next_block_id,
                false,
                &mut *rng,
            )?
        };
        let mut waits = 0u64;
        loop {
            // Each round deletes at least one block or ends: the table's blocks are finite.
            loop {
                let mut chunk: Vec<(IVec, u64, BlockHeader, Option<u64>)> = Vec::new();
                for item in self.trees.cold.scan_prefix(&prefix) {
                    let (key, cold) = item?;
                    let (header, _) = BlockHeader::parse(&cold)
                        .map_err(|reason| malformed(Tier::Cold, &key, reason))?;
                    if header.block_id >= first_kept {
                        continue;
                    }
                    let hot = self.trees.hot.get(&key)?.map(|h| h.len() as u64);
                    chunk.push((key, cold.len() as u64, header, hot));
                    if chunk.len() == DELETE_CHUNK_BLOCKS {
                        break;
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                self.remove_blocks(account, &chunk, true)?;
                for (_, _, h, _) in &chunk {
                    removal.blocks += 1;
                    removal.records += u64::from(h.record_count);
                    removal.from_ms = removal.from_ms.min(h.min_time_ms);
                    removal.to_ms = removal.to_ms.max(h.max_time_ms);
                }
            }
            let (relocked, waited) =
                self.wait_for_appends_below(write, first_kept, &mut waits, account, table)?;
            write = relocked;
            if !waited {
                break;
            }
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        self.table_keys
            .end_rotation(account, workspace, table, first_kept)?;
        Ok(removal)
    }

    /// Waits, without the write lock, for the appends that took block ids below `first_id` to
    /// commit or fail. Hands the write lock back: `(guard, false)` when there were none (the lock
    /// was held throughout), `(guard, true)` after one wait of [`APPEND_WAIT_STEP`] with the
    /// lock released (the caller does its round again). At most [`APPEND_WAITS_MAX`] waits per
    /// operation, counted in `waits`; beyond, [`DataError::PurgeRaced`] (nothing destroyed: a
    /// retry continues).
    fn wait_for_appends_below<'a>(
        &'a self,
        write: MutexGuard<'a, WriteState>,
        first_id: u64,
        waits: &mut u64,
        account: &str,
        table: &str,
    ) -> Result<(MutexGuard<'a, WriteState>, bool)> {
        if write
            .oldest_append_in_flight()
            .is_none_or(|oldest| oldest >= first_id)
        {
            return Ok((write, false));
        }
        if *waits >= APPEND_WAITS_MAX {
            return Err(DataError::PurgeRaced {
                account: account.to_string(),
                table: table.to_string(),
                waited_ms: APPEND_WAITS_MAX * APPEND_WAIT_STEP.as_millis() as u64,
            });
        }
        drop(write);
        *waits += 1;
        std::thread::sleep(APPEND_WAIT_STEP);
        Ok((self.lock_write(), true))
    }

    /// Removes the records of one table of `workspace` in `account` for which `matches` is true,
    /// from the outage buffer and from every block, and makes them unreadable on disk too:
    ///
    /// 1. buffered entries holding a match are rewritten without it ([`Self::purge_buffer`]);
    /// 2. the table gets a new key generation ([`super::shred`]), persisted;
    /// 3. every block of the table below that generation is opened and re-sealed into new
    ///    blocks (new ids, so the new generation; same key reference, MMK data stays under the
    ///    MMK) without the matching records, or deleted when nothing is left, and its old cold
    ///    and hot copies deleted, one transaction per block; appends already under way when the
    ///    purge began are waited for and their blocks re-sealed too;
    /// 4. sled is flushed, then the old generation is destroyed (the table keys file rewritten):
    ///    the old blocks sled may still hold in its segments cannot be opened by anyone, whoever
    ///    holds the disk and the account key.
    ///
    /// Blocks under the customer's key need `aek`: without it, a table holding one is refused
    /// with [`super::DataError::KeyUnavailable`] before anything changes (buffer included), so a
    /// purge runs through or does nothing and its report counts every record it removed. A crash at any point leaves every record readable or purged, never
    /// lost: the old generation is destroyed only after every block under it is gone, durably.
    /// Cost: every block of the table is rewritten (not only those with a match), since they all
    /// share the generation being destroyed. Bounded by the table's blocks, each visited once
    /// per round, and by [`APPEND_WAITS_MAX`] rounds.
    pub fn purge_records(
        &self,
        account: &str,
        aek: Option<&Aek>,
        workspace: &str,
        table: &str,
        matches: &dyn Fn(&Record) -> bool,
        now: SimTime,
    ) -> Result<PurgeReport> {
        check_name("workspace", workspace)?;
        check_name("table", table)?;
        let account_record = self.account_record(account)?;
        if let Some(aek) = aek {
            self.check_aek(&account_record, aek)?;
        }
        let prefix = store::table_prefix(account, workspace, table);
        let mut write = self.lock_write();
        if aek.is_none() {
            // Refused before anything changes, so that a purge either runs through or does
            // nothing, and its report counts every record it removed (a header scan; no key).
            for item in self.trees.cold.scan_prefix(&prefix) {
                let (key, cold) = item?;
                let (header, _) = BlockHeader::parse(&cold)
                    .map_err(|reason| malformed(Tier::Cold, &key, reason))?;
                if matches!(header.key_ref, KeyRef::Cmk { .. }) {
                    return Err(DataError::KeyUnavailable {
                        account: account.to_string(),
                        block_id: header.block_id,
                        key_ref: header.key_ref,
                    });
                }
            }
        }
        let mut report = PurgeReport::default();
        self.purge_buffer(
            &account_record,
            workspace,
            table,
            matches,
            &mut write,
            &mut report,
        )?;
        let interrupted = self
            .table_keys
            .rotating(account, workspace, table)
            .is_some();
        if !interrupted && self.trees.cold.scan_prefix(&prefix).next().is_none() {
            cmksim_sim::durable::flush(&self.trees.db)?;
            return Ok(report);
        }
        let first_new = {
            let mut rng = self.lock_rng();
            self.table_keys.begin_rotation(
                account,
                workspace,
                table,
                write.next_block_id,
                true,
                &mut *rng,
            )?
        };
        crash_point();
        let mut waits = 0u64;
        let result = loop {
            let resealed = self.reseal_below(
                &account_record,
                aek,
                workspace,
                table,
                first_new,
                matches,
                now,
                &mut write,
                &mut report,
            );
            if let Err(e) = resealed {
                break Err(e);
            }
            match self.wait_for_appends_below(write, first_new, &mut waits, account, table) {
                Ok((relocked, true)) => write = relocked,
                Ok((kept, false)) => break Ok(kept),
                Err(e) => break Err(e),
            }
        };
        report.append_waits = waits;
        // Held to the end: the flush and the old generation's destruction come before any other
        // mutation of the data plane.
        let _write = result?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        crash_point();
        self.table_keys
            .end_rotation(account, workspace, table, first_new)?;
        crash_point();
        Ok(report)
    }

    /// Step 3 of [`Self::purge_records`]: every block of the table with an id below `first_new`
    /// is re-sealed without the matching records (or deleted when none is left).
    #[allow(clippy::too_many_arguments)]
    fn reseal_below(
        &self,
        account_record: &AccountRecord,
        aek: Option<&Aek>,
        workspace: &str,
        table: &str,
        first_new: u64,
        matches: &dyn Fn(&Record) -> bool,
        now: SimTime,
        write: &mut WriteState,
        report: &mut PurgeReport,
    ) -> Result<()> {
        let account = account_record.account.as_str();
        let prefix = store::table_prefix(account, workspace, table);
        let end = store::prefix_end(&prefix);
        let mut cursor: Vec<u8> = prefix.clone();
        loop {
            let Some(item) = self.trees.cold.range(cursor.clone()..end.clone()).next() else {
                break;
            };
            let (key, cold) = item?;
            // The next block is after this key.
            cursor = key.to_vec();
            cursor.push(0);
            let (parsed, _) =
                BlockHeader::parse(&cold).map_err(|reason| malformed(Tier::Cold, &key, reason))?;
            if parsed.block_id >= first_new {
                continue;
            }
            let (header, records) = self.open_stored(Tier::Cold, &key, &cold, aek)?;
            let total = records.len();
            let kept: Vec<Record> = records.into_iter().filter(|r| !matches(r)).collect();
            let removed = (total - kept.len()) as u64;
            let sealing = match &header.key_ref {
                KeyRef::Mmk => Sealing::Mmk,
                KeyRef::Cmk { kid, version } => Sealing::Cmk {
                    aek: aek.expect("open_stored refused a CMK block without the AEK"),
                    kid,
                    version,
                },
            };
            let chunks = if kept.is_empty() {
                Vec::new()
            } else {
                self.split(&kept, table)?
            };
            let mut next_id = write.next_block_id;
            debug_assert!(next_id >= first_new);
            let mut prepared = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                prepared.push(self.prepare(
                    account_record,
                    sealing,
                    workspace,
                    table,
                    chunk,
                    next_id,
                    now,
                ));
                next_id += 1;
            }
            let old_hot = self.trees.hot.get(&key)?.map(|h| h.len() as u64);
            let old_bytes = cold.len() as u64;
            let new_bytes: u64 = prepared.iter().map(|p| p.cold.len() as u64).sum();
            let new_hot: Vec<u64> = prepared
                .iter()
                .filter_map(|p| p.hot.as_ref().map(|h| h.len() as u64))
                .collect();
            self.trees.transact(|tx| {
                tx.cold.remove(&key)?;
                if old_hot.is_some() {
                    tx.hot.remove(&key)?;
                }
                for p in &prepared {
                    tx.cold.insert(p.key.as_slice(), p.cold.clone())?;
                    if let Some(hot) = &p.hot {
                        tx.hot.insert(p.key.as_slice(), hot.clone())?;
                    }
                }
                tx.update_counters(account, |c| {
                    c.stored_blocks = c.stored_blocks - 1 + prepared.len() as u64;
                    c.stored_bytes = c.stored_bytes - old_bytes + new_bytes;
                    c.stored_records -= removed;
                    c.purged_records += removed;
                    if let Some(h) = old_hot {
                        c.hot_blocks -= 1;
                        c.hot_bytes -= h;
                    }
                    c.hot_blocks += new_hot.len() as u64;
                    c.hot_bytes += new_hot.iter().sum::<u64>();
                })?;
                tx.set_next_block_id(next_id)?;
                Ok(())
            })?;
            write.next_block_id = next_id;
            crash_point();
            if removed > 0 {
                report.blocks_rewritten += 1;
            } else {
                report.blocks_resealed += 1;
            }
            report.blocks_written += prepared.len() as u64;
            report.records += removed;
        }
        Ok(())
    }

    /// The outage-buffer half of a purge: every buffered entry of `workspace`/`table` in the
    /// account that holds a matching record is rewritten without it, so a purged record never
    /// comes back when the buffer drains. Buffer entries are under the MMK: no AEK is needed.
    /// Each rewritten entry gets new sequence numbers (new entry files, written and synced
    /// first), keeps the time it was buffered (so it expires when the original would have), and
    /// moves to the end of the drain order; the index change is one transaction, flushed before
    /// the old file is deleted. A crash leaves the old entry or the new ones indexed, never both:
    /// the files of the other are orphans, deleted at the next open. Bounded by the account's
    /// buffered entries, each looked at once.
    fn purge_buffer(
        &self,
        account_record: &AccountRecord,
        workspace: &str,
        table: &str,
        matches: &dyn Fn(&Record) -> bool,
        write: &mut WriteState,
        report: &mut PurgeReport,
    ) -> Result<()> {
        let account = account_record.account.as_str();
        let entries: Vec<(IVec, IVec)> = self
            .trees
            .buffer
            .scan_prefix(store::account_prefix(account))
            .collect::<std::result::Result<_, _>>()?;
        for (key, index) in entries {
            let sealed = self.read_entry(&key, &index)?;
            let (header, _) = BlockHeader::parse(&sealed)
                .map_err(|reason| malformed(Tier::Buffer, &key, reason))?;
            if header.workspace != workspace || header.table != table {
                continue;
            }
            let (header, records) = self.open_stored(Tier::Buffer, &key, &sealed, None)?;
            let total = records.len();
            let kept: Vec<Record> = records.into_iter().filter(|r| !matches(r)).collect();
            let removed = (total - kept.len()) as u64;
            if removed == 0 {
                continue;
            }
            let chunks = if kept.is_empty() {
                Vec::new()
            } else {
                self.split(&kept, table)?
            };
            let mut next_id = write.next_block_id;
            let mut rewritten: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::with_capacity(chunks.len());
            {
                let mut rng = self.lock_rng();
                for chunk in chunks {
                    let records = u64::from(chunk.records);
                    let entry = self.seal(
                        Tier::Buffer,
                        account_record,
                        Sealing::Mmk,
                        workspace,
                        table,
                        chunk,
                        next_id,
                        SimTime(header.written_at_ms),
                        &mut *rng,
                    );
                    rewritten.push((store::buffer_key(account, next_id), entry, records));
                    next_id += 1;
                }
            }
            for (new_key, entry, _) in &rewritten {
                buffer::write_entry_file(&self.entry_path(new_key), entry)?;
            }
            buffer::sync_dir(&self.buffer_dir)?;
            let old_bytes = sealed.len() as u64;
            let new_bytes: u64 = rewritten.iter().map(|(_, e, _)| e.len() as u64).sum();
            self.trees.transact(|tx| {
                tx.buffer.remove(&key)?;
                for (new_key, entry, records) in &rewritten {
                    tx.buffer.insert(
                        new_key.as_slice(),
                        &buffer::index_value(entry.len() as u64, *records)[..],
                    )?;
                }
                tx.update_counters(account, |c| {
                    c.buffered_entries = c.buffered_entries - 1 + rewritten.len() as u64;
                    c.buffered_bytes = c.buffered_bytes - old_bytes + new_bytes;
                    c.buffered_records -= removed;
                    c.purged_records += removed;
                })?;
                tx.set_next_block_id(next_id)
            })?;
            write.next_block_id = next_id;
            crash_point();
            cmksim_sim::durable::flush(&self.trees.db)?;
            crash_point();
            let old_path = self.entry_path(&key);
            std::fs::remove_file(&old_path).map_err(|e| DataError::BufferFile {
                path: old_path,
                reason: e.to_string(),
            })?;
            report.records += removed;
            report.buffered_records += removed;
            report.buffer_entries_rewritten += 1;
        }
        Ok(())
    }
}
