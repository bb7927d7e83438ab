//! The outage buffer: data accepted while Key Vault is unreachable, kept on disk under the MMK.
//!
//! Seed 000: when the vault is unavailable for longer than the grace, "ingested data is cached for
//! several hours using Microsoft key to avoid data loss. When access to Key Vault is restored ...
//! the temporary cached data is ingested to the data-store and encrypted with CMK." Here each
//! `buffer_append` writes sealed entries (blocks of tier "buffer", under the MMK, with the
//! account's double encryption). The sealed bytes go to one file per entry,
//! `<data dir>/buffer/<sequence>.blk`, written and fsynced before the entry is indexed; the sled
//! tree `buffer` holds only the index (account ␀ sequence → sealed length, record count), so the
//! sequence gives arrival order. Why files: sled 0.34 keeps written values resident whatever its
//! `cache_capacity` (measured: a 1 GiB buffer in sled held 1 GiB of RSS), and a buffer that exists
//! to survive hours of outage must not grow the process. It is bounded by `buffer_max_bytes` per
//! account: a full buffer is a typed error, nothing half-written.
//!
//! Draining is exactly once: for each entry, in arrival order, the new CMK block (cold, plus hot
//! copy when recent) is inserted **and the entry removed in the same sled transaction**. A crash
//! at any point leaves each entry either still buffered (drained again next time) or written and
//! gone, never both and never neither. Entry files are deleted only after the index change is
//! flushed; a file whose index entry is gone (a crash in between, or a write never indexed) is
//! an orphan and is deleted at the next open. Entries buffered more than `buffer_window` before `now`
//! are dropped (removed, counted in `dropped_expired_records`) instead of written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cmksim_sim::SimTime;

use super::block::Tier;
use super::error::DataError;
use super::store::{self, check_account, check_name};
use super::tier::{malformed, Chunk, Prepared};
use super::{DataPlane, Result, Sealing};
use crate::data::record::{self, Record};

/// What `buffer_append` held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferReceipt {
    pub entries: u64,
    pub records: u64,
    /// Sealed bytes added to the buffer.
    pub bytes: u64,
    /// Sealed bytes the account's buffer holds now.
    pub buffered_bytes: u64,
}

/// What `drain_buffer` or `expire_buffer` did: the one account of what left the outage buffer
/// (the storage server reports and counts from it; it keeps no ledger of its own).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Records written to blocks under the CMK, in arrival order.
    pub written: u64,
    pub written_blocks: u64,
    /// Records dropped because they were buffered longer than `buffer_window` ago.
    pub dropped_expired: u64,
    pub dropped_entries: u64,
    /// `written`, per workspace (in name order).
    pub written_by_workspace: BTreeMap<String, WorkspaceRecords>,
    /// `dropped_expired`, per workspace (in name order).
    pub expired_by_workspace: BTreeMap<String, WorkspaceRecords>,
}

/// Records of one workspace that left the buffer, and when the oldest of them was buffered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRecords {
    pub records: u64,
    /// Simulated ms since the Unix epoch.
    pub buffered_from_ms: i64,
}

fn add_records(
    by_workspace: &mut BTreeMap<String, WorkspaceRecords>,
    workspace: &str,
    records: u64,
    buffered_at_ms: i64,
) {
    let slot = by_workspace
        .entry(workspace.to_string())
        .or_insert(WorkspaceRecords {
            records: 0,
            buffered_from_ms: i64::MAX,
        });
    slot.records += records;
    slot.buffered_from_ms = slot.buffered_from_ms.min(buffered_at_ms);
}

/// The buffer's size for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferLen {
    pub entries: u64,
    pub records: u64,
    pub bytes: u64,
}

impl DataPlane {
    /// Buffers records of one workspace and table under the MMK, on disk, flushed before return.
    pub fn buffer_append(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        records: &[Record],
        now: SimTime,
    ) -> Result<BufferReceipt> {
        check_account(account)?;
        check_name("workspace", workspace)?;
        check_name("table", table)?;
        let account_record = self.account_record(account)?;
        let chunks = self.split(records, table)?;
        let mut write = self.lock_write();
        let mut next_id = write.next_block_id;
        let mut entries = Vec::with_capacity(chunks.len());
        {
            let mut rng = self.lock_rng();
            for chunk in chunks {
                let records = u64::from(chunk.records);
                let sealed = self.seal(
                    Tier::Buffer,
                    &account_record,
                    Sealing::Mmk,
                    workspace,
                    table,
                    chunk,
                    next_id,
                    now,
                    &mut *rng,
                );
                entries.push((store::buffer_key(account, next_id), sealed, records));
                next_id += 1;
            }
        }
        let bytes: u64 = entries.iter().map(|(_, e, _)| e.len() as u64).sum();
        let buffered_bytes = self.trees.counters(account)?.buffered_bytes;
        if buffered_bytes + bytes > self.config.buffer_max_bytes {
            return Err(DataError::BufferFull {
                account: account.to_string(),
                buffered_bytes,
                incoming_bytes: bytes,
                buffer_max_bytes: self.config.buffer_max_bytes,
            });
        }
        for (key, sealed, _) in &entries {
            write_entry_file(&self.entry_path(key), sealed)?;
        }
        sync_dir(&self.buffer_dir)?;
        let indexed = self.trees.transact(|tx| {
            for (key, sealed, records) in &entries {
                tx.buffer.insert(
                    key.as_slice(),
                    &index_value(sealed.len() as u64, *records)[..],
                )?;
            }
            tx.update_counters(account, |c| {
                c.buffered_entries += entries.len() as u64;
                c.buffered_bytes += bytes;
                c.buffered_records += records.len() as u64;
                c.buffered_in_records += records.len() as u64;
                c.accepted_records += records.len() as u64;
            })?;
            tx.set_next_block_id(next_id)
        });
        if let Err(e) = indexed {
            for (key, _, _) in &entries {
                let path = self.entry_path(key);
                if let Err(cleanup) = fs::remove_file(&path) {
                    // Not indexed, so never read: an orphan the next open deletes.
                    tracing::warn!(
                        "buffer entry {} left after a failed index write: {cleanup}",
                        path.display()
                    );
                }
            }
            return Err(e);
        }
        write.next_block_id = next_id;
        cmksim_sim::durable::flush(&self.trees.db)?;
        Ok(BufferReceipt {
            entries: entries.len() as u64,
            records: records.len() as u64,
            bytes,
            buffered_bytes: buffered_bytes + bytes,
        })
    }

    /// Writes the buffer into blocks sealed per `sealing` (the CMK once access returns), in
    /// arrival order, exactly once; drops entries older than the profile's `buffer_window`.
    pub fn drain_buffer(
        &self,
        account: &str,
        sealing: Sealing<'_>,
        now: SimTime,
    ) -> Result<DrainReport> {
        let account_record = self.account_record(account)?;
        self.check_sealing(&account_record, &sealing)?;
        let expired_before_ms = now.sub(self.config.buffer_window).0;
        let mut write = self.lock_write();
        let mut report = DrainReport::default();
        let mut done_files = Vec::new();
        // Bounded: each pass removes the first entry of the account's buffer, which is finite.
        while let Some(item) = self
            .trees
            .buffer
            .scan_prefix(store::account_prefix(account))
            .next()
        {
            let (key, index) = item?;
            let sealed = self.read_entry(&key, &index)?;
            let (header, records) = self.open_stored(Tier::Buffer, &key, &sealed, None)?;
            done_files.push(self.entry_path(&key));
            let entry_bytes = sealed.len() as u64;
            let count = u64::from(header.record_count);
            if header.written_at_ms < expired_before_ms {
                self.trees.transact(|tx| {
                    tx.buffer.remove(&key)?;
                    tx.update_counters(account, |c| {
                        c.buffered_entries -= 1;
                        c.buffered_bytes -= entry_bytes;
                        c.buffered_records -= count;
                        c.dropped_expired_records += count;
                    })
                })?;
                report.dropped_expired += count;
                report.dropped_entries += 1;
                add_records(
                    &mut report.expired_by_workspace,
                    &header.workspace,
                    count,
                    header.written_at_ms,
                );
                continue;
            }
            let chunk = Chunk {
                payload: super::columnar::encode_block(&records)?,
                format: record::PayloadFormat::Columnar,
                records: header.record_count,
                min_time_ms: header.min_time_ms,
                max_time_ms: header.max_time_ms,
            };
            self.ensure_table_key(&write, account, &header.workspace, &header.table)?;
            let block_id = write.next_block_id;
            let Prepared {
                key: block_key,
                cold,
                hot,
            } = self.prepare(
                &account_record,
                sealing,
                &header.workspace,
                &header.table,
                chunk,
                block_id,
                now,
            );
            self.trees.transact(|tx| {
                tx.buffer.remove(&key)?;
                tx.cold.insert(block_key.as_slice(), cold.clone())?;
                if let Some(hot) = &hot {
                    tx.hot.insert(block_key.as_slice(), hot.clone())?;
                }
                tx.update_counters(account, |c| {
                    c.buffered_entries -= 1;
                    c.buffered_bytes -= entry_bytes;
                    c.buffered_records -= count;
                    c.drained_records += count;
                    c.stored_blocks += 1;
                    c.stored_bytes += cold.len() as u64;
                    c.stored_records += count;
                    if let Some(hot) = &hot {
                        c.hot_blocks += 1;
                        c.hot_bytes += hot.len() as u64;
                    }
                })?;
                tx.set_next_block_id(block_id + 1)
            })?;
            write.next_block_id = block_id + 1;
            report.written += count;
            report.written_blocks += 1;
            add_records(
                &mut report.written_by_workspace,
                &header.workspace,
                count,
                header.written_at_ms,
            );
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        for path in done_files {
            fs::remove_file(&path).map_err(|e| DataError::BufferFile {
                path,
                reason: e.to_string(),
            })?;
        }
        Ok(report)
    }

    /// Drops the entries buffered before `expired_before` (the key loop's buffer deadline),
    /// without writing anything: removed and counted in `dropped_expired_records`, each in one
    /// transaction, files deleted after the flush, as `drain_buffer` does with expired entries.
    /// The report's `expired_by_workspace` says whose records went. Bounded by the account's
    /// entries (each is looked at once; only the expired ones are opened).
    pub fn expire_buffer(&self, account: &str, expired_before: SimTime) -> Result<DrainReport> {
        self.account_record(account)?;
        let _write = self.lock_write();
        let mut report = DrainReport::default();
        let mut done_files = Vec::new();
        let entries: Vec<_> = self
            .trees
            .buffer
            .scan_prefix(store::account_prefix(account))
            .collect::<std::result::Result<_, _>>()?;
        for (key, index) in entries {
            let sealed = self.read_entry(&key, &index)?;
            let (written_at_ms, _) = super::block::BlockHeader::parse(&sealed)
                .map(|(h, len)| (h.written_at_ms, len))
                .map_err(|reason| malformed(Tier::Buffer, &key, reason))?;
            if written_at_ms >= expired_before.0 {
                continue;
            }
            let (header, _) = self.open_stored(Tier::Buffer, &key, &sealed, None)?;
            let entry_bytes = sealed.len() as u64;
            let count = u64::from(header.record_count);
            self.trees.transact(|tx| {
                tx.buffer.remove(&key)?;
                tx.update_counters(account, |c| {
                    c.buffered_entries -= 1;
                    c.buffered_bytes -= entry_bytes;
                    c.buffered_records -= count;
                    c.dropped_expired_records += count;
                })
            })?;
            done_files.push(self.entry_path(&key));
            report.dropped_expired += count;
            report.dropped_entries += 1;
            add_records(
                &mut report.expired_by_workspace,
                &header.workspace,
                count,
                header.written_at_ms,
            );
        }
        if done_files.is_empty() {
            return Ok(report);
        }
        cmksim_sim::durable::flush(&self.trees.db)?;
        for path in done_files {
            fs::remove_file(&path).map_err(|e| DataError::BufferFile {
                path,
                reason: e.to_string(),
            })?;
        }
        Ok(report)
    }

    /// The account's outage buffer now.
    pub fn buffer_len(&self, account: &str) -> Result<BufferLen> {
        self.account_record(account)?;
        let c = self.trees.counters(account)?;
        Ok(BufferLen {
            entries: c.buffered_entries,
            records: c.buffered_records,
            bytes: c.buffered_bytes,
        })
    }

    /// The file of the buffer entry indexed under `key` (its last 8 bytes are the sequence).
    pub(crate) fn entry_path(&self, key: &[u8]) -> PathBuf {
        let sequence = u64::from_be_bytes(
            key[key.len() - 8..]
                .try_into()
                .expect("buffer keys end in 8 bytes"),
        );
        self.buffer_dir.join(format!("{sequence:020}.blk"))
    }

    /// Reads and length-checks the sealed bytes of the entry indexed under `key`.
    pub(crate) fn read_entry(&self, key: &[u8], index: &[u8]) -> Result<Vec<u8>> {
        let path = self.entry_path(key);
        let (len, _) = parse_index(index)
            .ok_or_else(|| malformed(Tier::Buffer, key, "bad index value".into()))?;
        let sealed = fs::read(&path).map_err(|e| DataError::BufferFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if sealed.len() as u64 != len {
            return Err(malformed(
                Tier::Buffer,
                key,
                format!("entry file is {} bytes, index says {len}", sealed.len()),
            ));
        }
        Ok(sealed)
    }

    /// Deletes entry files that no index entry refers to (called by `open`).
    pub(crate) fn remove_orphan_entry_files(&self) -> Result<usize> {
        let mut indexed = std::collections::BTreeSet::new();
        for item in self.trees.buffer.iter() {
            let (key, _) = item?;
            indexed.insert(self.entry_path(&key));
        }
        let mut removed = 0;
        for entry in fs::read_dir(&self.buffer_dir)? {
            let path = entry?.path();
            if !indexed.contains(&path) {
                fs::remove_file(&path).map_err(|e| DataError::BufferFile {
                    path,
                    reason: e.to_string(),
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The index value of a buffer entry: sealed length (u64 BE) ‖ record count (u64 BE).
pub(crate) fn index_value(sealed_bytes: u64, records: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&sealed_bytes.to_be_bytes());
    out[8..].copy_from_slice(&records.to_be_bytes());
    out
}

/// (sealed length, record count) of an index value.
pub(crate) fn parse_index(value: &[u8]) -> Option<(u64, u64)> {
    let bytes: [u8; 16] = value.try_into().ok()?;
    Some((
        u64::from_be_bytes(bytes[..8].try_into().ok()?),
        u64::from_be_bytes(bytes[8..].try_into().ok()?),
    ))
}

/// Writes a file durably: temporary name, fsync, rename (the directory is synced by the caller).
pub(crate) fn write_entry_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |e: std::io::Error| DataError::BufferFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    fs::rename(&tmp, path).map_err(failed)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DataError::BufferFile {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })
}
