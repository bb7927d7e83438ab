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

use serde::{Deserialize, Serialize};
use sled::IVec;

use cmksim_sim::SimTime;

use super::block::{BlockHeader, KeyRef, Tier};
use super::keys::Aek;
use super::record::Record;
use super::store::{self, check_name};
use super::tier::{malformed, DELETE_CHUNK_BLOCKS};
use super::{DataPlane, Result, Sealing};

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
    /// Blocks written in their place.
    pub blocks_written: u64,
    /// Records removed.
    pub records: u64,
}

/// The table name of a block key under `workspace_prefix` (`table ␀ time id`).
fn table_of(key: &[u8], workspace_prefix: &[u8]) -> Option<String> {
    let rest = key.get(workspace_prefix.len()..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

impl DataPlane {
    /// Removes, in `account`, at most `blocks_max` blocks of `workspace` (any table) whose newest
    /// record is older than `cutoff` (cold and hot copies). Needs no key. Tables are visited in
    /// name order and each table's blocks in time order, so a pass is deterministic.
    pub fn retention_pass(
        &self,
        account: &str,
        workspace: &str,
        cutoff: SimTime,
        blocks_max: usize,
    ) -> Result<RetentionPass> {
        check_name("workspace", workspace)?;
        self.account_record(account)?;
        let ws_prefix = store::workspace_prefix(account, workspace);
        let _write = self.lock_write();
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
            let old_end = store::block_key(account, workspace, &table, cutoff.0, 0);
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
        self.trees.db.flush()?;
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
    /// transactions of at most [`DELETE_CHUNK_BLOCKS`] blocks. Needs no key. The loop ends when
    /// the table has no block left (each round deletes at least one).
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
        let _write = self.lock_write();
        let mut removal = TableRemoval {
            table: table.to_string(),
            from_ms: i64::MAX,
            to_ms: i64::MIN,
            ..TableRemoval::default()
        };
        loop {
            let mut chunk: Vec<(IVec, u64, BlockHeader, Option<u64>)> = Vec::new();
            for item in self
                .trees
                .cold
                .scan_prefix(&prefix)
                .take(DELETE_CHUNK_BLOCKS)
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
            self.remove_blocks(account, &chunk, true)?;
            for (_, _, h, _) in &chunk {
                removal.blocks += 1;
                removal.records += u64::from(h.record_count);
                removal.from_ms = removal.from_ms.min(h.min_time_ms);
                removal.to_ms = removal.to_ms.max(h.max_time_ms);
            }
        }
        self.trees.db.flush()?;
        Ok(removal)
    }

    /// Removes the records of one table of `workspace` in `account` for which `matches` is true:
    /// each block holding one is rewritten without it (new block ids, same key reference) and
    /// the old copies are deleted, one transaction per block. Blocks under the customer's key
    /// need `aek` (else [`super::DataError::KeyUnavailable`], and nothing after that block is
    /// changed; blocks already rewritten stay rewritten, so a retried purge continues). Bounded
    /// by the table's blocks: each is visited once, in key order.
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
        let end = store::prefix_end(&prefix);
        let mut write = self.lock_write();
        let mut report = PurgeReport::default();
        let mut cursor: Vec<u8> = prefix.clone();
        loop {
            let Some(item) = self.trees.cold.range(cursor.clone()..end.clone()).next() else {
                break;
            };
            let (key, cold) = item?;
            // The next block is after this key.
            cursor = key.to_vec();
            cursor.push(0);
            let (header, records) = self.open_stored(Tier::Cold, &key, &cold, aek)?;
            let total = records.len();
            let kept: Vec<Record> = records.into_iter().filter(|r| !matches(r)).collect();
            let removed = (total - kept.len()) as u64;
            if removed == 0 {
                continue;
            }
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
            let mut prepared = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                prepared.push(self.prepare(
                    &account_record,
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
            report.blocks_rewritten += 1;
            report.blocks_written += prepared.len() as u64;
            report.records += removed;
        }
        self.trees.db.flush()?;
        Ok(report)
    }
}
