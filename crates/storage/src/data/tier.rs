//! Append and query over the cold tier and the hot tier.
//!
//! Every block is written to the cold tier (the durable store, under the key the account uses at
//! write time). A block whose newest record is within `hot_tier_window` of `now` also gets a hot
//! entry (the SSD cache of the real service): its DEK wrapped under the MMK in the 2020 profile
//! (seed 000: "remains encrypted with Microsoft keys regardless CMK configuration") or under the
//! AEK in the current profile ([`super::hot`]; the block's bytes are stored and sealed once).
//! Queries read a block through its hot entry when there is one and it is still in the window,
//! through the account's key otherwise. On revocation the service deletes the hot tier
//! ([`DataPlane::delete_hot_tier`]); when access returns it rebuilds it from the cold tier
//! ([`DataPlane::rebuild_hot_tier`]: the DEKs re-wrapped). Cold blocks are never rewritten by
//! either.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sled::IVec;

use cmksim_sim::SimTime;

use super::block::{self, BlockHeader, KeyRef, Tier};
use super::columnar::ColumnarEncoder;
use super::error::DataError;
use super::hot::HotValue;
use super::keys::{self, Aek, SecretKey};
use super::record::{self, PayloadFormat, Record};
use super::store::{self, check_account, check_name, AccountRecord, StoredWrapping};
use super::{DataPlane, Result, Sealing};

/// Blocks deleted per transaction when a tier is cleared (bounds a transaction's memory).
pub(crate) const DELETE_CHUNK_BLOCKS: usize = 1024;
/// Most blocks a scan holds at once (sealed and opened): with 1 MiB blocks, about 8 MiB of
/// ciphertext and its decoded records.
pub const SCAN_WINDOW_BLOCKS: usize = 8;
/// Most threads a scan opens blocks on (fewer when the machine has fewer cores).
pub const SCAN_THREADS_MAX: usize = 4;

/// Threads a scan opens blocks on: one core less than the machine has (a scan must not take
/// every core from the rest of the service: the gRPC edge, appends, the key loop), at least 1,
/// at most [`SCAN_THREADS_MAX`]. On the two-core machine this was measured on that is one:
/// there, with other work running, the two-thread scan measured slower relative to record
/// decoding than the sequential one (issue 15 report), so the windowed parallel opening only
/// runs where there are cores to spare.
pub fn scan_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, SCAN_THREADS_MAX)
}

/// A stored block a scan will open: which copy, under which key in sled, and the key that
/// protects its durable (cold) copy.
pub(crate) struct StoredBlock {
    /// The block's place in its scan (0, 1, 2, ... in block order): what orders its records
    /// after their times (`cmksim_kql::RowAt::seq`).
    pub(crate) ordinal: u64,
    pub(crate) tier: Tier,
    pub(crate) key: IVec,
    pub(crate) bytes: IVec,
    pub(crate) durable_key: KeyRef,
}

/// How a scan opens one block: the number of its records in the range and what to visit.
pub(crate) type OpenBlock<'o, T> = dyn Fn(&StoredBlock) -> Result<(u64, Vec<T>)> + Sync + 'o;

/// What a scan reads: records of one workspace and table of one account with
/// `from <= TimeGenerated < to`, as of `now` (which decides the hot window). Blocks under the
/// CMK need `aek` (else [`DataError::KeyUnavailable`]); blocks under the MMK need none.
#[derive(Clone, Copy, Debug)]
pub struct ScanRequest<'a> {
    pub account: &'a str,
    pub aek: Option<&'a Aek>,
    pub workspace: &'a str,
    pub table: &'a str,
    pub from: SimTime,
    pub to: SimTime,
    pub now: SimTime,
}

/// What an append stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReceipt {
    /// Ids of the blocks written, in record order.
    pub block_ids: Vec<u64>,
    pub records: u64,
    /// Encoded (plaintext) record bytes.
    pub payload_bytes: u64,
    /// Sealed bytes written to the cold tier.
    pub stored_bytes: u64,
    /// Blocks that also got a hot copy.
    pub hot_blocks: u64,
    pub key_ref: KeyRef,
}

/// Where a scan's blocks came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    pub blocks_read: u64,
    pub served_from_hot: u64,
    pub served_from_cold: u64,
    pub records: u64,
    /// Sealed bytes read.
    pub bytes_read: u64,
}

/// The answer to a query: records in TimeGenerated order (ties in write order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub records: Vec<Record>,
    pub stats: ScanStats,
}

/// One block's worth of encoded records.
pub(crate) struct Chunk {
    pub payload: Vec<u8>,
    /// How `payload` encodes them (columnar for everything written now).
    pub format: PayloadFormat,
    pub records: u32,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
}

/// A block sealed and ready to insert.
pub(crate) struct Prepared {
    pub key: Vec<u8>,
    pub cold: IVec,
    pub hot: Option<IVec>,
}

impl DataPlane {
    /// Appends `records` of one workspace and table, sealed per `sealing`. Splits them into
    /// blocks of at most `block_max_bytes`, writes the cold tier and (for recent blocks) the hot
    /// tier — one block as plain inserts counted through the append journal
    /// ([`super::journal`]), more in one transaction — and returns only after the write is
    /// flushed to disk.
    pub fn append(
        &self,
        account: &str,
        sealing: Sealing<'_>,
        workspace: &str,
        table: &str,
        records: &[Record],
        now: SimTime,
    ) -> Result<AppendReceipt> {
        check_account(account)?;
        check_name("workspace", workspace)?;
        check_name("table", table)?;
        let account_record = self.account_record(account)?;
        self.check_sealing(&account_record, &sealing)?;
        let chunks = self.split(records, table)?;
        let payload_bytes = chunks.iter().map(|c| c.payload.len() as u64).sum();

        // Ids are taken under the write lock; the blocks are sealed outside it (the CPU part of
        // an append), committed under it, and flushed outside it, so that concurrent appends
        // seal in parallel and share one flush where they overlap (group commit). Ids a failed
        // append took are skipped, never reused.
        let first_id = {
            let mut write = self.lock_write();
            self.ensure_table_key(&write, account, workspace, table)?;
            let first = write.next_block_id;
            write.next_block_id += chunks.len() as u64;
            write.append_started(first);
            first
        };
        // Until this is dropped (after the commit's lock is released) a purge of the table
        // waits for these blocks before it destroys the table secret they are sealed under.
        let _in_flight = self.append_in_flight(first_id);
        let next_id = first_id + chunks.len() as u64;
        let block_ids: Vec<u64> = (first_id..next_id).collect();
        let prepared: Vec<Prepared> = chunks
            .into_iter()
            .zip(first_id..)
            .map(|(chunk, id)| {
                self.prepare(&account_record, sealing, workspace, table, chunk, id, now)
            })
            .collect();
        let receipt = AppendReceipt {
            block_ids,
            records: records.len() as u64,
            payload_bytes,
            stored_bytes: prepared.iter().map(|p| p.cold.len() as u64).sum(),
            hot_blocks: prepared.iter().filter(|p| p.hot.is_some()).count() as u64,
            key_ref: sealing.key_ref(),
        };
        {
            let _write = self.lock_write();
            // The account may have been purged while the blocks were sealed.
            self.check_account_exists(account)?;
            if let [p] = prepared.as_slice() {
                // One block: plain inserts counted through the append journal, which saves the
                // transaction's second log write (see `super::journal`).
                let mut pending = self.trees.lock_pending();
                super::journal::append_block(
                    &self.trees,
                    &mut pending,
                    first_id,
                    account,
                    p,
                    receipt.records,
                )?;
                let full = pending.len() >= super::journal::JOURNAL_ENTRIES_MAX;
                drop(pending);
                if full {
                    self.trees.fold_journal()?;
                }
            } else {
                self.commit_blocks(account, &prepared, &receipt, next_id)?;
            }
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(receipt)
    }

    /// Commits the blocks of an append of more than one block in one transaction (all or
    /// nothing), with the counters and the next block id. Call under the write lock.
    fn commit_blocks(
        &self,
        account: &str,
        prepared: &[Prepared],
        receipt: &AppendReceipt,
        next_id: u64,
    ) -> Result<()> {
        self.trees.transact(|tx| {
            for p in prepared {
                tx.cold.insert(p.key.as_slice(), p.cold.clone())?;
                if let Some(hot) = &p.hot {
                    tx.hot.insert(p.key.as_slice(), hot.clone())?;
                }
            }
            tx.update_counters(account, |c| {
                c.stored_blocks += prepared.len() as u64;
                c.stored_bytes += receipt.stored_bytes;
                c.stored_records += receipt.records;
                c.hot_blocks += receipt.hot_blocks;
                c.hot_bytes += prepared
                    .iter()
                    .filter_map(|p| p.hot.as_ref())
                    .map(|h| h.len() as u64)
                    .sum::<u64>();
                c.accepted_records += receipt.records;
                c.appended_records += receipt.records;
            })?;
            tx.set_next_block_id(next_id)?;
            Ok(())
        })
    }

    /// Queries records of one workspace and table with `from <= TimeGenerated < to`. Blocks under
    /// the MMK need no AEK; blocks under the CMK need `aek` (else [`DataError::KeyUnavailable`]).
    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &self,
        account: &str,
        aek: Option<&Aek>,
        workspace: &str,
        table: &str,
        from: SimTime,
        to: SimTime,
        now: SimTime,
    ) -> Result<QueryResult> {
        let mut records = Vec::new();
        let limit = self.config.query_records_max;
        let mut over = false;
        let stats = self.scan(account, aek, workspace, table, from, to, now, &mut |r| {
            if records.len() < limit {
                records.push(r);
            } else {
                over = true;
            }
        })?;
        if over {
            return Err(DataError::QueryTooLarge {
                account: account.to_string(),
                workspace: workspace.to_string(),
                table: table.to_string(),
                query_records_max: limit,
            });
        }
        // Blocks come in max-time order and may overlap: restore TimeGenerated order (stable).
        records.sort_by_key(|r| r.time_generated_ms);
        Ok(QueryResult { records, stats })
    }

    /// As [`DataPlane::query`], streaming each record to `visit` in block order (unsorted).
    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        &self,
        account: &str,
        aek: Option<&Aek>,
        workspace: &str,
        table: &str,
        from: SimTime,
        to: SimTime,
        now: SimTime,
        visit: &mut dyn FnMut(Record),
    ) -> Result<ScanStats> {
        let request = ScanRequest {
            account,
            aek,
            workspace,
            table,
            from,
            to,
            now,
        };
        self.scan_tiers(&request, &mut |_, _, r| visit(r))
    }

    /// As [`DataPlane::scan`], handing each record with the tier that served it and the key that
    /// protects its durable (cold) copy (a hot copy of the 2020 profile is under the MMK whatever
    /// protects the data; the key reported is the data's).
    ///
    /// Blocks are opened (both layers authenticated and decrypted, records decoded) on
    /// [`scan_threads`] threads, [`SCAN_WINDOW_BLOCKS`] blocks at a time, which bounds the
    /// memory of a scan to that many blocks and their records. Records still reach `visit` in
    /// block order, one block after the other, on the calling thread: the output does not depend
    /// on the threads. On an error, the records of the blocks before the failing one (in block
    /// order) have been visited, as with a block-by-block scan, and nothing after it.
    pub fn scan_tiers(
        &self,
        request: &ScanRequest<'_>,
        visit: &mut dyn FnMut(Tier, &KeyRef, Record),
    ) -> Result<ScanStats> {
        self.scan_on(scan_threads(), request, visit)
    }

    /// [`DataPlane::scan_tiers`] on `threads` threads (1..=[`SCAN_THREADS_MAX`]); the bench
    /// compares thread counts with it.
    pub(crate) fn scan_on(
        &self,
        threads: usize,
        request: &ScanRequest<'_>,
        visit: &mut dyn FnMut(Tier, &KeyRef, Record),
    ) -> Result<ScanStats> {
        let (from, to) = (request.from.0, request.to.0);
        let open = |b: &StoredBlock| -> Result<(u64, Vec<Record>)> {
            let (_, mut records) = self.open_stored(b.tier, &b.key, &b.bytes, request.aek)?;
            records.retain(|r| r.time_generated_ms >= from && r.time_generated_ms < to);
            Ok((records.len() as u64, records))
        };
        self.scan_blocks(threads, request, &open, visit)
    }

    /// The block walk under every scan: the blocks of the request's table that may hold
    /// records in its range, opened by `open` on up to `threads` threads, [`SCAN_WINDOW_BLOCKS`]
    /// at a time, and what each gives handed to `visit` in block order on the calling thread.
    /// `open` returns the number of the block's records in the range (the stats' `records`) and
    /// the items to visit.
    pub(crate) fn scan_blocks<T: Send>(
        &self,
        threads: usize,
        request: &ScanRequest<'_>,
        open: &OpenBlock<'_, T>,
        visit: &mut dyn FnMut(Tier, &KeyRef, T),
    ) -> Result<ScanStats> {
        let ScanRequest {
            account,
            aek,
            workspace,
            table,
            from,
            to,
            now,
        } = *request;
        let threads = threads.clamp(1, SCAN_THREADS_MAX);
        check_name("workspace", workspace)?;
        check_name("table", table)?;
        if from > to {
            return Err(DataError::InvalidTimeRange { from, to });
        }
        let account_record = self.account_record(account)?;
        if let Some(aek) = aek {
            self.check_aek(&account_record, aek)?;
        }
        let hot_from_ms = now.sub(self.config.hot_tier_window).0;
        let prefix = store::table_prefix(account, workspace, table);
        let start = store::block_key(account, workspace, table, from.0, 0);
        let mut stats = ScanStats::default();
        let mut ordinal = 0u64;
        let mut window: Vec<StoredBlock> = Vec::with_capacity(SCAN_WINDOW_BLOCKS);
        let mut blocks = self.trees.cold.range(start..store::prefix_end(&prefix));
        loop {
            window.clear();
            for item in blocks.by_ref() {
                let (key, cold) = item?;
                let (header, _) = BlockHeader::parse(&cold)
                    .map_err(|reason| malformed(Tier::Cold, &key, reason))?;
                if header.min_time_ms >= to.0 {
                    continue;
                }
                let hot = if header.max_time_ms >= hot_from_ms {
                    self.trees.hot.get(&key)?
                } else {
                    None
                };
                let durable_key = header.key_ref;
                ordinal += 1;
                window.push(match hot {
                    Some(hot) => StoredBlock {
                        ordinal,
                        tier: Tier::Hot,
                        key,
                        bytes: hot,
                        durable_key,
                    },
                    None => StoredBlock {
                        ordinal,
                        tier: Tier::Cold,
                        key,
                        bytes: cold,
                        durable_key,
                    },
                });
                if window.len() == SCAN_WINDOW_BLOCKS {
                    break;
                }
            }
            if window.is_empty() {
                return Ok(stats);
            }
            for (block, opened) in window.iter().zip(open_window(&window, open, threads)) {
                let (in_range, items) = opened?;
                match block.tier {
                    Tier::Hot => stats.served_from_hot += 1,
                    Tier::Cold | Tier::Buffer => stats.served_from_cold += 1,
                }
                stats.blocks_read += 1;
                stats.bytes_read += block.bytes.len() as u64;
                stats.records += in_range;
                for item in items {
                    visit(block.tier, &block.durable_key, item);
                }
            }
        }
    }

    /// Deletes every hot copy of the account (on revocation). Returns the number deleted.
    pub fn delete_hot_tier(&self, account: &str) -> Result<usize> {
        self.account_record(account)?;
        let _write = self.lock_write();
        let deleted = self.delete_prefix_hot(account, &store::account_prefix(account), |_| true)?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(deleted)
    }

    /// Deletes hot copies whose newest record left the hot window. Returns the number deleted.
    pub fn evict_hot_tier(&self, account: &str, now: SimTime) -> Result<usize> {
        self.account_record(account)?;
        let hot_from_ms = now.sub(self.config.hot_tier_window).0;
        let _write = self.lock_write();
        let deleted = self.delete_prefix_hot(account, &store::account_prefix(account), |key| {
            store::block_key_max_time(key).is_some_and(|t| t < hot_from_ms)
        })?;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(deleted)
    }

    /// Recreates the hot copy of every cold block within the hot window that has none (after
    /// access returns). Needs the AEK for blocks under the CMK. Returns the number created.
    pub fn rebuild_hot_tier(
        &self,
        account: &str,
        aek: Option<&Aek>,
        now: SimTime,
    ) -> Result<usize> {
        let account_record = self.account_record(account)?;
        if let Some(aek) = aek {
            self.check_aek(&account_record, aek)?;
        }
        let hot_from_ms = now.sub(self.config.hot_tier_window).0;
        let _write = self.lock_write();
        let mut created = 0;
        for item in self.trees.cold.scan_prefix(store::account_prefix(account)) {
            let (key, cold) = item?;
            if store::block_key_max_time(&key).is_none_or(|t| t < hot_from_ms)
                || self.trees.hot.contains_key(&key)?
            {
                continue;
            }
            // The cold block must open (both layers) before its DEK goes into a hot entry; no
            // data is re-encrypted.
            let (header, _) = self.open_payload(Tier::Cold, &key, &cold, aek)?;
            let cold_sealing = match (&header.key_ref, aek) {
                (KeyRef::Mmk, _) => Sealing::Mmk,
                (KeyRef::Cmk { kid, version }, Some(aek)) => Sealing::Cmk { aek, kid, version },
                (KeyRef::Cmk { .. }, None) => {
                    unreachable!("open_payload refuses CMK blocks without the AEK")
                }
            };
            let (dek, _) = self.layer_keys(&header, aek);
            let hot = {
                let mut rng = self.lock_rng();
                self.hot_entry(
                    &header.account,
                    &header.workspace,
                    &header.table,
                    header.block_id,
                    &key,
                    &dek,
                    self.hot_sealing(cold_sealing),
                    &mut *rng,
                )
            };
            let hot_bytes = hot.len() as u64;
            self.trees.transact(|tx| {
                tx.hot.insert(key.as_ref(), hot.as_slice())?;
                tx.update_counters(account, |c| {
                    c.hot_blocks += 1;
                    c.hot_bytes += hot_bytes;
                })
            })?;
            created += 1;
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(created)
    }

    // ---- shared with buffer.rs and retention.rs ----

    /// Refuses a sealing that does not match how the account's AEK is wrapped, or a wrong AEK.
    pub(crate) fn check_sealing(
        &self,
        record: &AccountRecord,
        sealing: &Sealing<'_>,
    ) -> Result<()> {
        let wrapping = match record.wrapping {
            StoredWrapping::Mmk { .. } => "the Microsoft-managed key",
            StoredWrapping::Kek { .. } => "the customer-managed key",
        };
        match (sealing, &record.wrapping) {
            (Sealing::Mmk, StoredWrapping::Mmk { .. }) => Ok(()),
            (Sealing::Cmk { aek, .. }, StoredWrapping::Kek { .. }) => self.check_aek(record, aek),
            (Sealing::Mmk, _) => Err(DataError::SealingMismatch {
                account: record.account.clone(),
                wrapping,
                sealing: "the Microsoft-managed key",
            }),
            (Sealing::Cmk { .. }, _) => Err(DataError::SealingMismatch {
                account: record.account.clone(),
                wrapping,
                sealing: "the customer-managed key",
            }),
        }
    }

    /// Validates and encodes records (columnar, each once, straight into its block's columns),
    /// split into chunks of at most `block_max_bytes`.
    pub(crate) fn split(&self, records: &[Record], table: &str) -> Result<Vec<Chunk>> {
        let block_max_bytes = self.config.block_max_bytes;
        let mut chunks = Vec::new();
        let mut encoder = ColumnarEncoder::with_rows_hint(records.len());
        let mut total_bytes = 0usize;
        let finish = |encoder: ColumnarEncoder<'_>| {
            let (payload, records, min_time_ms, max_time_ms) = encoder.finish();
            Chunk {
                payload,
                format: PayloadFormat::Columnar,
                records,
                min_time_ms,
                max_time_ms,
            }
        };
        // The encoder's size before the next record: its size after the last one (measured
        // once per record; measuring walks every column).
        let mut len = encoder.encoded_len();
        for (index, r) in records.iter().enumerate() {
            record::validate(index, r, table)?;
            let mark = encoder.mark();
            let was_empty = encoder.is_empty();
            encoder.push(r)?;
            let mut after = encoder.encoded_len();
            if after > block_max_bytes {
                if was_empty {
                    return Err(DataError::RecordTooLarge {
                        index,
                        bytes: after,
                        block_max_bytes,
                    });
                }
                encoder.rollback(mark);
                chunks.push(finish(std::mem::replace(
                    &mut encoder,
                    ColumnarEncoder::with_rows_hint(records.len() - index),
                )));
                len = encoder.encoded_len();
                encoder.push(r)?;
                after = encoder.encoded_len();
                if after > block_max_bytes {
                    return Err(DataError::RecordTooLarge {
                        index,
                        bytes: after,
                        block_max_bytes,
                    });
                }
            }
            total_bytes += after - len;
            len = after;
            if total_bytes > self.config.batch_max_bytes {
                return Err(DataError::BatchTooLarge {
                    bytes: total_bytes,
                    batch_max_bytes: self.config.batch_max_bytes,
                });
            }
        }
        if !encoder.is_empty() {
            chunks.push(finish(encoder));
        }
        Ok(chunks)
    }

    /// Seals a chunk as a cold block (and a hot copy when recent); the caller holds the write lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn prepare(
        &self,
        account_record: &AccountRecord,
        sealing: Sealing<'_>,
        workspace: &str,
        table: &str,
        chunk: Chunk,
        block_id: u64,
        now: SimTime,
    ) -> Prepared {
        let key = store::block_key(
            &account_record.account,
            workspace,
            table,
            chunk.max_time_ms,
            block_id,
        );
        let is_hot = chunk.max_time_ms >= now.sub(self.config.hot_tier_window).0;
        // The block's own random stream (its nonces), seeded from the plane's under its lock:
        // the sealing itself runs without the lock, beside other appends, and what each block
        // draws does not depend on how the appends interleave.
        let mut rng = {
            let mut seed = [0u8; 32];
            self.lock_rng().fill_bytes(&mut seed);
            cmksim_sim::RandomSource::from_seed(seed)
        };
        let (cold, dek) = self.seal_keyed(
            Tier::Cold,
            account_record,
            sealing,
            workspace,
            table,
            chunk,
            block_id,
            now,
            &mut rng,
        );
        // The hot tier gets the DEK wrapped under its own key, not a second sealed copy.
        let hot = is_hot.then(|| {
            IVec::from(self.hot_entry(
                &account_record.account,
                workspace,
                table,
                block_id,
                &key,
                &dek,
                self.hot_sealing(sealing),
                &mut rng,
            ))
        });
        Prepared {
            key,
            cold: IVec::from(cold),
            hot,
        }
    }

    /// Seals one chunk into a block of `tier`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal(
        &self,
        tier: Tier,
        account_record: &AccountRecord,
        sealing: Sealing<'_>,
        workspace: &str,
        table: &str,
        chunk: Chunk,
        block_id: u64,
        now: SimTime,
        rng: &mut dyn rand::RngCore,
    ) -> Vec<u8> {
        self.seal_keyed(
            tier,
            account_record,
            sealing,
            workspace,
            table,
            chunk,
            block_id,
            now,
            rng,
        )
        .0
    }

    /// [`DataPlane::seal`], also returning the block's DEK (for its hot entry, [`super::hot`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_keyed(
        &self,
        tier: Tier,
        account_record: &AccountRecord,
        sealing: Sealing<'_>,
        workspace: &str,
        table: &str,
        chunk: Chunk,
        block_id: u64,
        now: SimTime,
        rng: &mut dyn rand::RngCore,
    ) -> (Vec<u8>, SecretKey) {
        let header = BlockHeader {
            payload_format: chunk.format,
            tier,
            block_id,
            min_time_ms: chunk.min_time_ms,
            max_time_ms: chunk.max_time_ms,
            record_count: chunk.records,
            written_at_ms: now.0,
            key_ref: sealing.key_ref(),
            double_encryption: account_record.double_encryption,
            inner_nonce: [0; keys::NONCE_LEN_BYTES],
            outer_nonce: [0; keys::NONCE_LEN_BYTES],
            account: account_record.account.clone(),
            workspace: workspace.to_string(),
            table: table.to_string(),
            ciphertext_bytes: 0,
        };
        let (dek, outer) = self.layer_keys(&header, sealing.aek());
        let sealed = block::seal(header, chunk.payload, &dek, outer.as_ref(), rng);
        (sealed, dek)
    }

    /// The DEK and (with double encryption) the outer-layer key of a block.
    pub(crate) fn layer_keys(
        &self,
        header: &BlockHeader,
        aek: Option<&Aek>,
    ) -> (SecretKey, Option<SecretKey>) {
        // Cold and hot blocks carry their table's secret (see `shred`); buffer entries do not.
        let table_secret = match header.tier {
            Tier::Cold | Tier::Hot => self.table_keys.secret_for(
                &header.account,
                &header.workspace,
                &header.table,
                header.block_id,
            ),
            Tier::Buffer => None,
        };
        let table_secret = table_secret.as_deref();
        let dek = match (&header.key_ref, aek) {
            (KeyRef::Mmk, _) => keys::dek_from_mmk(
                &self.keys.mmk,
                header.block_id,
                &header.account,
                &header.workspace,
                &header.table,
                table_secret,
            ),
            (KeyRef::Cmk { .. }, Some(aek)) => keys::dek_from_aek(
                aek,
                header.block_id,
                &header.workspace,
                &header.table,
                table_secret,
            ),
            (KeyRef::Cmk { .. }, None) => {
                unreachable!("callers check that CMK blocks come with the AEK")
            }
        };
        let outer = header
            .double_encryption
            .then(|| keys::infra_layer_key(&self.keys.infra, header.block_id, &header.account));
        (dek, outer)
    }

    /// Opens a stored block of `tier` found under `key`: checks that the header belongs under
    /// that key, then authenticates and decrypts. Never returns unauthenticated data.
    pub(crate) fn open_stored(
        &self,
        tier: Tier,
        key: &[u8],
        bytes: &[u8],
        aek: Option<&Aek>,
    ) -> Result<(BlockHeader, Vec<Record>)> {
        let (header, payload) = self.open_payload(tier, key, bytes, aek)?;
        let records = record::decode(&payload, header.payload_format, &header.table)
            .map_err(|reason| malformed(tier, key, reason))?;
        let times_match = records
            .iter()
            .all(|r| (header.min_time_ms..=header.max_time_ms).contains(&r.time_generated_ms));
        if records.len() != header.record_count as usize || !times_match {
            return Err(malformed(
                tier,
                key,
                "records disagree with the authenticated header".into(),
            ));
        }
        Ok((header, records))
    }

    /// Parses a stored block's header, checks it belongs under `key` in `tier`, and opens both
    /// layers: the authenticated header and the plaintext payload (not decoded yet).
    pub(crate) fn open_payload(
        &self,
        tier: Tier,
        key: &[u8],
        bytes: &[u8],
        aek: Option<&Aek>,
    ) -> Result<(BlockHeader, Vec<u8>)> {
        if tier == Tier::Hot {
            match HotValue::parse(bytes).map_err(|reason| malformed(tier, key, reason))? {
                HotValue::Entry {
                    key: hot_key,
                    block_id,
                    bytes: entry,
                } => return self.open_hot_entry(key, hot_key, block_id, entry, aek),
                // A full hot copy of the format before hot entries: a sealed block, below.
                HotValue::LegacyCopy(_) => {}
            }
        }
        let (header, header_len) =
            BlockHeader::parse(bytes).map_err(|reason| malformed(tier, key, reason))?;
        let integrity = || DataError::Integrity {
            account: header.account.clone(),
            block_id: header.block_id,
            tier: tier.name(),
        };
        let expected_key = match tier {
            Tier::Buffer => store::buffer_key(&header.account, header.block_id),
            Tier::Cold | Tier::Hot => store::block_key(
                &header.account,
                &header.workspace,
                &header.table,
                header.max_time_ms,
                header.block_id,
            ),
        };
        if header.tier != tier || expected_key != key {
            return Err(integrity());
        }
        if matches!(header.key_ref, KeyRef::Cmk { .. }) && aek.is_none() {
            return Err(DataError::KeyUnavailable {
                account: header.account.clone(),
                block_id: header.block_id,
                key_ref: header.key_ref.clone(),
            });
        }
        let (dek, outer) = self.layer_keys(&header, aek);
        let payload =
            block::open(bytes, &header, header_len, &dek, outer.as_ref()).ok_or_else(integrity)?;
        Ok((header, payload))
    }

    /// Deletes the hot copies under `prefix` selected by `select`, in bounded transactions.
    pub(crate) fn delete_prefix_hot(
        &self,
        account: &str,
        prefix: &[u8],
        select: impl Fn(&[u8]) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        loop {
            let mut chunk: Vec<(IVec, u64)> = Vec::new();
            for item in self.trees.hot.scan_prefix(prefix) {
                let (key, value) = item?;
                if select(&key) {
                    chunk.push((key, value.len() as u64));
                    if chunk.len() == DELETE_CHUNK_BLOCKS {
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                return Ok(deleted);
            }
            self.trees.transact(|tx| {
                for (key, _) in &chunk {
                    tx.hot.remove(key)?;
                }
                tx.update_counters(account, |c| {
                    c.hot_blocks -= chunk.len() as u64;
                    c.hot_bytes -= chunk.iter().map(|(_, n)| n).sum::<u64>();
                })
            })?;
            deleted += chunk.len();
        }
    }
}

pub(crate) fn malformed(tier: Tier, key: &[u8], reason: String) -> DataError {
    DataError::MalformedBlock {
        tier: tier.name(),
        key_hex: hex::encode(key),
        reason,
    }
}

/// Opens the blocks of `window` with `open` on up to `threads` threads; the results come back
/// in the window's order. One block, or one thread, opens on the calling thread.
fn open_window<T: Send>(
    window: &[StoredBlock],
    open: &(dyn Fn(&StoredBlock) -> Result<T> + Sync),
    threads: usize,
) -> Vec<Result<T>> {
    if threads <= 1 || window.len() <= 1 {
        return window.iter().map(open).collect();
    }
    let per_thread = window.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = window
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(open).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(opened) => opened,
                // A panic while opening (an assertion failed) is re-raised on the caller.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
