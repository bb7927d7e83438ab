//! Table keys: the per-table secret that makes a purge final on disk (crypto-shredding).
//!
//! Why: sled never overwrites in place. A block a purge deletes stays, sealed, in sled's log
//! segments until sled happens to reuse that space, and a block's DEK was derivable from the AEK
//! (or the MMK) and its block id alone: whoever held the disk and the account key could still
//! open a purged record. So every table of every account has a *generation* of secret key
//! material, 32 random bytes, mixed into the DEK of each of its cold and hot blocks (see
//! [`super::keys::dek_from_aek`]). A purge re-seals every block of the table under a new
//! generation and then destroys the old one: the old ciphertext may linger in sled's segments,
//! but the secret needed to open it is in no file any more.
//!
//! Where the secrets live: not in sled (the same segments would keep them), but in one small
//! file, `<data dir>/table-keys.json`, rewritten whole for every change (temporary file, fsync,
//! rename over the old one, fsync of the directory). A rename releases the old file: its bytes
//! are in no file of the data directory afterwards (the file system may keep them in free
//! blocks, as it does for a deleted buffer entry). The file changes only when a table is first
//! written, when a purge starts and ends, and when a table or an account is deleted: not per
//! block.
//!
//! Which generation seals a block: a generation covers the block ids from its `first_block_id`
//! up to the next generation's. Block ids only grow, so the blocks a purge writes (new ids) fall
//! in the new generation, and the blocks it must re-seal are exactly those below its first id.
//! A table written before this file existed has no entry: its blocks keep the DEK without a
//! table secret (format unchanged, still readable) until its first purge, which moves them to a
//! generation. Outage-buffer entries are not covered: they live in files of their own that a
//! drain or a purge deletes.
//!
//! Retention (issue 14): a generation is also a *retention bucket*. The retention job starts a
//! new generation for a table once its newest is [`RETENTION_BUCKET`] old ([`TableKeys::start_bucket`]),
//! so the blocks written in one bucket share a generation; after it removed aged-out blocks it
//! destroys every older generation that no live block and no append in flight uses any more
//! ([`TableKeys::destroy_unused`]). Retention needs no key, and neither does this: the block ids
//! are in the block keys. For data that arrives on time a removed block's generation goes within
//! one bucket of its removal (once the other blocks written in its bucket have aged out too);
//! a block of much older records written beside young ones stays openable with the disk and the
//! key until those age out.
//!
//! A purge or a table delete in progress is marked in the entry (`rotating`: the first block id
//! of the generation being rotated into), so that an interrupted one is resumed, not mistaken
//! for the table's ordinary retention buckets; retention leaves such a table alone until it ends.
//!
//! Bounds: a table has one generation per retention bucket still holding a block (at most the
//! retention's days plus two, a day being the bucket), one more during a purge or table delete;
//! the file holds one entry per table written.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::DataError;
use super::keys::KEY_LEN_BYTES;
use super::store;

/// The file name of the table keys in the data directory.
pub const TABLE_KEYS_FILE: &str = "table-keys.json";
/// The table keys file format this code writes (version 1, without retention buckets, is read
/// too: two generations there mean a purge in progress).
const TABLE_KEYS_VERSION: u32 = 2;

/// How long one generation seals new blocks before the retention job starts the next: the
/// granularity at which retention's removals become final on disk.
pub(crate) const RETENTION_BUCKET: std::time::Duration = std::time::Duration::from_secs(86_400);

/// One generation of a table's secret.
#[derive(Clone)]
pub(crate) struct Generation {
    /// The first block id this generation seals.
    pub first_block_id: u64,
    pub secret: Zeroizing<[u8; KEY_LEN_BYTES]>,
    /// When the retention job started it (Unix ms; 0: made on a table's first write or by a
    /// rotation, which the next retention pass counts as a full bucket old).
    pub created_at_ms: i64,
}

/// The generations of one table, oldest first.
#[derive(Clone)]
struct TableEntry {
    account: String,
    workspace: String,
    table: String,
    generations: Vec<Generation>,
    /// The first block id of the generation a purge or table delete in progress rotates into.
    rotating: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct FileGeneration {
    first_block_id: u64,
    secret_hex: String,
    #[serde(default)]
    created_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct FileTable {
    account: String,
    workspace: String,
    table: String,
    generations: Vec<FileGeneration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotating: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct FileContents {
    version: u32,
    /// In key order (account, workspace, table): the file is deterministic.
    tables: Vec<FileTable>,
}

/// The table keys of one data directory, in memory and in `table-keys.json`.
pub(crate) struct TableKeys {
    path: PathBuf,
    /// Keyed by `store::table_prefix(account, workspace, table)`.
    tables: RwLock<BTreeMap<Vec<u8>, TableEntry>>,
}

impl TableKeys {
    /// Loads `dir/table-keys.json`, or starts empty when there is none.
    pub(crate) fn load(dir: &Path) -> Result<TableKeys, DataError> {
        let path = dir.join(TABLE_KEYS_FILE);
        let failed = |reason: String| DataError::TableKeys {
            path: path.clone(),
            reason,
        };
        let mut tables = BTreeMap::new();
        if path.exists() {
            let bytes = Zeroizing::new(fs::read(&path).map_err(|e| failed(e.to_string()))?);
            let contents: FileContents =
                serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))?;
            if !(1..=TABLE_KEYS_VERSION).contains(&contents.version) {
                return Err(failed(format!(
                    "unsupported version {} (this build reads {TABLE_KEYS_VERSION})",
                    contents.version
                )));
            }
            for t in contents.tables {
                let mut generations = Vec::with_capacity(t.generations.len());
                for g in t.generations {
                    let raw = Zeroizing::new(
                        hex::decode(&g.secret_hex)
                            .map_err(|_| failed(format!("a secret of {} is not hex", t.table)))?,
                    );
                    let secret: [u8; KEY_LEN_BYTES] = raw.as_slice().try_into().map_err(|_| {
                        failed(format!(
                            "a secret of {} is not {KEY_LEN_BYTES} bytes",
                            t.table
                        ))
                    })?;
                    generations.push(Generation {
                        first_block_id: g.first_block_id,
                        secret: Zeroizing::new(secret),
                        created_at_ms: g.created_at_ms,
                    });
                }
                generations.sort_by_key(|g| g.first_block_id);
                // Version 1 had no buckets: a second generation was a purge in progress.
                let rotating = match (contents.version, generations.len()) {
                    (1, 2..) => generations.last().map(|g| g.first_block_id),
                    _ => t.rotating,
                };
                tables.insert(
                    store::table_prefix(&t.account, &t.workspace, &t.table),
                    TableEntry {
                        account: t.account,
                        workspace: t.workspace,
                        table: t.table,
                        generations,
                        rotating,
                    },
                );
            }
        }
        Ok(TableKeys {
            path,
            tables: RwLock::new(tables),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, TableEntry>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Vec<u8>, TableEntry>> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The secret of the generation that seals `block_id` of a table, `None` for a table
    /// written before table keys existed (or a block below every generation).
    pub(crate) fn secret_for(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        block_id: u64,
    ) -> Option<Zeroizing<[u8; KEY_LEN_BYTES]>> {
        let tables = self.read();
        let entry = tables.get(&store::table_prefix(account, workspace, table))?;
        entry
            .generations
            .iter()
            .rev()
            .find(|g| g.first_block_id <= block_id)
            .map(|g| g.secret.clone())
    }

    /// True when the table has an entry (its blocks are sealed under a table secret).
    pub(crate) fn has_table(&self, account: &str, workspace: &str, table: &str) -> bool {
        self.read()
            .contains_key(&store::table_prefix(account, workspace, table))
    }

    /// The generations of a table: (first block id, secret), oldest first.
    #[cfg(test)]
    pub(crate) fn generations(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
    ) -> Vec<Generation> {
        self.read()
            .get(&store::table_prefix(account, workspace, table))
            .map(|e| e.generations.clone())
            .unwrap_or_default()
    }

    /// Gives a table that has none its first generation, from `first_block_id` (the next block
    /// id: blocks below it, written before the table had keys, keep their DEKs until its first
    /// purge). Persisted before it returns.
    pub(crate) fn create_table(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        first_block_id: u64,
        rng: &mut dyn RngCore,
    ) -> Result<(), DataError> {
        let mut tables = self.write();
        let key = store::table_prefix(account, workspace, table);
        if tables.contains_key(&key) {
            return Ok(());
        }
        let mut next = tables.clone();
        next.insert(
            key,
            TableEntry {
                account: account.to_string(),
                workspace: workspace.to_string(),
                table: table.to_string(),
                generations: vec![fresh(first_block_id, 0, rng)],
                rotating: None,
            },
        );
        self.persist(&next)?;
        *tables = next;
        Ok(())
    }

    /// Starts (or, with `resume`, resumes) a rotation: returns the first block id of the
    /// generation that blocks are re-sealed into (a purge) or kept under (a table delete). With
    /// `resume`, a rotation in progress (a purge was interrupted) is resumed. Otherwise a new
    /// generation starting at `next_block_id` is added, unless the newest already starts there;
    /// a table that predates table keys gets its entry here, and its older blocks (no
    /// generation) are below it like any other. The rotation is marked in progress until
    /// [`TableKeys::end_rotation`]. Persisted before it returns.
    pub(crate) fn begin_rotation(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        next_block_id: u64,
        resume: bool,
        rng: &mut dyn RngCore,
    ) -> Result<u64, DataError> {
        let mut tables = self.write();
        let key = store::table_prefix(account, workspace, table);
        let mut next = tables.clone();
        let entry = next.entry(key).or_insert_with(|| TableEntry {
            account: account.to_string(),
            workspace: workspace.to_string(),
            table: table.to_string(),
            generations: Vec::new(),
            rotating: None,
        });
        if let (true, Some(first)) = (resume, entry.rotating) {
            return Ok(first);
        }
        let newest = entry.generations.last().map(|g| g.first_block_id);
        if newest != Some(next_block_id) {
            entry.generations.push(fresh(next_block_id, 0, rng));
        }
        entry.rotating = Some(next_block_id);
        self.persist(&next)?;
        *tables = next;
        Ok(next_block_id)
    }

    /// Ends a rotation: destroys every generation of the table below `first_block_id` (the
    /// caller re-sealed every block below it and flushed sled first) and clears the mark of a
    /// rotation in progress. Persisted before it returns.
    pub(crate) fn end_rotation(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        first_block_id: u64,
    ) -> Result<(), DataError> {
        let mut tables = self.write();
        let key = store::table_prefix(account, workspace, table);
        let Some(entry) = tables.get(&key) else {
            return Ok(());
        };
        if entry.rotating.is_none()
            && entry
                .generations
                .iter()
                .all(|g| g.first_block_id >= first_block_id)
        {
            return Ok(());
        }
        let mut next = tables.clone();
        if let Some(entry) = next.get_mut(&key) {
            entry
                .generations
                .retain(|g| g.first_block_id >= first_block_id);
            entry.rotating = None;
        }
        self.persist(&next)?;
        *tables = next;
        Ok(())
    }

    /// The first block id of the generation a purge or table delete in progress rotates into.
    pub(crate) fn rotating(&self, account: &str, workspace: &str, table: &str) -> Option<u64> {
        self.read()
            .get(&store::table_prefix(account, workspace, table))
            .and_then(|e| e.rotating)
    }

    /// The tables with keys under `prefix` (a workspace's): their names, in key order.
    pub(crate) fn tables_under(&self, prefix: &[u8]) -> Vec<String> {
        self.read()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.table.clone())
            .collect()
    }

    /// Starts a new retention bucket for a table: a new generation from `next_block_id`, made
    /// at `now_ms`, when the newest is [`RETENTION_BUCKET`] old and has sealed at least one
    /// block id (none while a rotation is in progress). True when it did; persisted first.
    pub(crate) fn start_bucket(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        next_block_id: u64,
        now_ms: i64,
        rng: &mut dyn RngCore,
    ) -> Result<bool, DataError> {
        let bucket_ms = RETENTION_BUCKET.as_millis() as i64;
        let mut tables = self.write();
        let key = store::table_prefix(account, workspace, table);
        let due = tables.get(&key).is_some_and(|e| {
            e.rotating.is_none()
                && e.generations.last().is_some_and(|g| {
                    g.first_block_id < next_block_id
                        && g.created_at_ms.saturating_add(bucket_ms) <= now_ms
                })
        });
        if !due {
            return Ok(false);
        }
        let mut next = tables.clone();
        if let Some(entry) = next.get_mut(&key) {
            entry.generations.push(fresh(next_block_id, now_ms, rng));
        }
        self.persist(&next)?;
        *tables = next;
        Ok(true)
    }

    /// Destroys every generation of a table but the newest that seals none of `live_ids` (the
    /// table's stored block ids, ascending) and no id at or above `oldest_in_flight` (the first
    /// block id of the oldest append still sealing): retention removed its last block. Nothing
    /// while a rotation is in progress. Returns how many were destroyed; persisted first.
    pub(crate) fn destroy_unused(
        &self,
        account: &str,
        workspace: &str,
        table: &str,
        live_ids: &[u64],
        oldest_in_flight: Option<u64>,
    ) -> Result<usize, DataError> {
        let mut tables = self.write();
        let key = store::table_prefix(account, workspace, table);
        let Some(entry) = tables.get(&key) else {
            return Ok(0);
        };
        if entry.rotating.is_some() {
            return Ok(0);
        }
        let in_flight = oldest_in_flight.unwrap_or(u64::MAX);
        let gens = &entry.generations;
        let unused: Vec<u64> = gens
            .windows(2)
            .filter(|pair| {
                let (from, to) = (pair[0].first_block_id, pair[1].first_block_id);
                let start = live_ids.partition_point(|id| *id < from);
                let holds_live = live_ids.get(start).is_some_and(|id| *id < to);
                to <= in_flight && !holds_live
            })
            .map(|pair| pair[0].first_block_id)
            .collect();
        if unused.is_empty() {
            return Ok(0);
        }
        let mut next = tables.clone();
        if let Some(entry) = next.get_mut(&key) {
            entry
                .generations
                .retain(|g| !unused.contains(&g.first_block_id));
        }
        self.persist(&next)?;
        *tables = next;
        Ok(unused.len())
    }

    /// Destroys every generation of the tables under `prefix` (a table's, or an account's):
    /// their blocks were deleted and flushed. Persisted before it returns.
    pub(crate) fn forget_prefix(&self, prefix: &[u8]) -> Result<usize, DataError> {
        let mut tables = self.write();
        let doomed = tables.keys().filter(|k| k.starts_with(prefix)).count();
        if doomed == 0 {
            return Ok(0);
        }
        let mut next = tables.clone();
        next.retain(|k, _| !k.starts_with(prefix));
        self.persist(&next)?;
        *tables = next;
        Ok(doomed)
    }

    /// Writes the whole file: temporary name, fsync, rename over the old file, fsync the
    /// directory. A crash leaves the old file or the new one, never a mix.
    fn persist(&self, tables: &BTreeMap<Vec<u8>, TableEntry>) -> Result<(), DataError> {
        let failed = |e: std::io::Error| DataError::TableKeys {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let contents = FileContents {
            version: TABLE_KEYS_VERSION,
            tables: tables
                .values()
                .map(|e| FileTable {
                    account: e.account.clone(),
                    workspace: e.workspace.clone(),
                    table: e.table.clone(),
                    generations: e
                        .generations
                        .iter()
                        .map(|g| FileGeneration {
                            first_block_id: g.first_block_id,
                            secret_hex: hex::encode(g.secret.as_ref()),
                            created_at_ms: g.created_at_ms,
                        })
                        .collect(),
                    rotating: e.rotating,
                })
                .collect(),
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&contents)?);
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(failed)
    }
}

fn fresh(first_block_id: u64, created_at_ms: i64, rng: &mut dyn RngCore) -> Generation {
    let mut secret = Zeroizing::new([0u8; KEY_LEN_BYTES]);
    rng.fill_bytes(secret.as_mut());
    Generation {
        first_block_id,
        secret,
        created_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::RandomSource;

    #[test]
    fn generations_cover_block_ids_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = RandomSource::from_seed([3; 32]);
        let keys = TableKeys::load(dir.path()).unwrap();
        assert!(keys.secret_for("cluster:c", "ws", "T", 5).is_none());
        keys.create_table("cluster:c", "ws", "T", 3, &mut rng)
            .unwrap();
        assert!(
            keys.secret_for("cluster:c", "ws", "T", 2).is_none(),
            "a block written before the table had keys"
        );
        let first = keys.secret_for("cluster:c", "ws", "T", 5).unwrap();
        let at = keys
            .begin_rotation("cluster:c", "ws", "T", 10, true, &mut rng)
            .unwrap();
        assert_eq!(at, 10);
        // Resumed, not rotated twice.
        assert_eq!(
            keys.begin_rotation("cluster:c", "ws", "T", 20, true, &mut rng)
                .unwrap(),
            10
        );
        let second = keys.secret_for("cluster:c", "ws", "T", 10).unwrap();
        assert_ne!(first.as_ref(), second.as_ref());
        assert_eq!(
            keys.secret_for("cluster:c", "ws", "T", 9).unwrap().as_ref(),
            first.as_ref()
        );
        let reloaded = TableKeys::load(dir.path()).unwrap();
        assert_eq!(reloaded.generations("cluster:c", "ws", "T").len(), 2);
        reloaded.end_rotation("cluster:c", "ws", "T", 10).unwrap();
        let text = fs::read_to_string(dir.path().join(TABLE_KEYS_FILE)).unwrap();
        assert!(!text.contains(&hex::encode(first.as_ref())));
        assert!(text.contains(&hex::encode(second.as_ref())));
        assert!(reloaded.secret_for("cluster:c", "ws", "T", 9).is_none());
        reloaded
            .forget_prefix(&store::account_prefix("cluster:c"))
            .unwrap();
        assert!(!reloaded.has_table("cluster:c", "ws", "T"));
        assert!(TableKeys::load(dir.path())
            .unwrap()
            .generations("cluster:c", "ws", "T")
            .is_empty());
    }

    fn firsts(keys: &TableKeys) -> Vec<u64> {
        keys.generations("cluster:c", "ws", "T")
            .iter()
            .map(|g| g.first_block_id)
            .collect()
    }

    /// Retention buckets (issue 14): a new generation once the newest is a bucket old, the
    /// unused ones destroyed (never the newest, never one an append in flight may seal with),
    /// and none of it while a purge or table delete is in progress.
    #[test]
    fn retention_buckets_start_when_due_and_unused_ones_are_destroyed() {
        const T: (&str, &str, &str) = ("cluster:c", "ws", "T");
        let day = RETENTION_BUCKET.as_millis() as i64;
        let dir = tempfile::tempdir().unwrap();
        let mut rng = RandomSource::from_seed([5; 32]);
        let keys = TableKeys::load(dir.path()).unwrap();
        keys.create_table(T.0, T.1, T.2, 1, &mut rng).unwrap();
        let start = |keys: &TableKeys, next: u64, now: i64, rng: &mut RandomSource| {
            keys.start_bucket(T.0, T.1, T.2, next, now, rng).unwrap()
        };
        let destroy = |keys: &TableKeys, live: &[u64], in_flight: Option<u64>| {
            keys.destroy_unused(T.0, T.1, T.2, live, in_flight).unwrap()
        };
        assert!(
            start(&keys, 5, day, &mut rng),
            "a first generation counts as old"
        );
        assert!(
            !start(&keys, 6, day + 3_600_000, &mut rng),
            "not a bucket old yet"
        );
        assert!(
            !start(&keys, 5, 3 * day, &mut rng),
            "no block id since: nothing to seal"
        );
        assert!(start(&keys, 9, 2 * day, &mut rng));
        assert_eq!(firsts(&keys), vec![1, 5, 9]);
        let first_secret = hex::encode(keys.secret_for(T.0, T.1, T.2, 1).unwrap().as_ref());
        // Block 1 aged out: its generation goes; 6 keeps the second.
        assert_eq!(destroy(&keys, &[6, 9], None), 1);
        assert_eq!(firsts(&keys), vec![5, 9]);
        let text = fs::read_to_string(dir.path().join(TABLE_KEYS_FILE)).unwrap();
        assert!(!text.contains(&first_secret), "destroyed in the file too");
        // Block 6 aged out, but an append that took id 7 is still sealing: kept.
        assert_eq!(destroy(&keys, &[9], Some(7)), 0);
        assert_eq!(destroy(&keys, &[9], Some(9)), 1);
        assert_eq!(
            destroy(&keys, &[], None),
            0,
            "the newest is never destroyed"
        );
        assert_eq!(firsts(&keys), vec![9]);
        // A purge in progress: retention leaves the table alone; a reload keeps the mark.
        assert_eq!(
            keys.begin_rotation(T.0, T.1, T.2, 12, false, &mut rng)
                .unwrap(),
            12
        );
        assert!(!start(&keys, 13, 10 * day, &mut rng));
        assert_eq!(destroy(&keys, &[], None), 0);
        let reloaded = TableKeys::load(dir.path()).unwrap();
        assert_eq!(reloaded.rotating(T.0, T.1, T.2), Some(12));
        assert_eq!(
            reloaded
                .begin_rotation(T.0, T.1, T.2, 20, true, &mut rng)
                .unwrap(),
            12,
            "resumed"
        );
        reloaded.end_rotation(T.0, T.1, T.2, 12).unwrap();
        assert_eq!(reloaded.rotating(T.0, T.1, T.2), None);
        assert_eq!(firsts(&reloaded), vec![12]);
        assert_eq!(
            reloaded.tables_under(&store::workspace_prefix("cluster:c", "ws")),
            vec!["T".to_string()]
        );
    }

    /// A version-1 file (no buckets) with two generations was written during a purge: it is
    /// read as a rotation in progress, which the purge resumes.
    #[test]
    fn a_version_1_file_with_two_generations_is_a_purge_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let secret = hex::encode([7u8; KEY_LEN_BYTES]);
        let text = format!(
            r#"{{"version":1,"tables":[{{"account":"cluster:c","workspace":"ws","table":"T","generations":[{{"first_block_id":1,"secret_hex":"{secret}"}},{{"first_block_id":8,"secret_hex":"{secret}"}}]}}]}}"#
        );
        fs::write(dir.path().join(TABLE_KEYS_FILE), text).unwrap();
        let keys = TableKeys::load(dir.path()).unwrap();
        assert_eq!(keys.rotating("cluster:c", "ws", "T"), Some(8));
    }
}
