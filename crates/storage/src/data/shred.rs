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
//! Bounds: a table has one generation, two during a purge (the one being replaced), at most
//! three when a table delete interrupts an interrupted purge; the file holds one entry per table
//! written.

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
/// The table keys file format this code writes and reads.
const TABLE_KEYS_VERSION: u32 = 1;

/// One generation of a table's secret.
#[derive(Clone)]
pub(crate) struct Generation {
    /// The first block id this generation seals.
    pub first_block_id: u64,
    pub secret: Zeroizing<[u8; KEY_LEN_BYTES]>,
}

/// The generations of one table, oldest first (at most two).
#[derive(Clone)]
struct TableEntry {
    account: String,
    workspace: String,
    table: String,
    generations: Vec<Generation>,
}

#[derive(Serialize, Deserialize)]
struct FileGeneration {
    first_block_id: u64,
    secret_hex: String,
}

#[derive(Serialize, Deserialize)]
struct FileTable {
    account: String,
    workspace: String,
    table: String,
    generations: Vec<FileGeneration>,
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
            if contents.version != TABLE_KEYS_VERSION {
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
                    });
                }
                generations.sort_by_key(|g| g.first_block_id);
                tables.insert(
                    store::table_prefix(&t.account, &t.workspace, &t.table),
                    TableEntry {
                        account: t.account,
                        workspace: t.workspace,
                        table: t.table,
                        generations,
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
                generations: vec![fresh(first_block_id, rng)],
            },
        );
        self.persist(&next)?;
        *tables = next;
        Ok(())
    }

    /// Starts (or, with `resume`, resumes) a rotation: returns the first block id of the
    /// generation that blocks are re-sealed into (a purge) or kept under (a table delete). With
    /// `resume`, a table with two or more generations is resumed (a purge was interrupted): the
    /// newest. Otherwise a new generation starting at `next_block_id` is added, unless the
    /// newest already starts there; a table that predates table keys gets its entry here, and
    /// its older blocks (no generation) are below it like any other. Persisted before it returns.
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
        });
        let newest = entry.generations.last().map(|g| g.first_block_id);
        if resume && entry.generations.len() >= 2 {
            return Ok(newest.expect("two generations"));
        }
        if newest == Some(next_block_id) {
            return Ok(next_block_id);
        }
        entry.generations.push(fresh(next_block_id, rng));
        self.persist(&next)?;
        *tables = next;
        Ok(next_block_id)
    }

    /// Ends a rotation: destroys every generation of the table below `first_block_id` (the
    /// caller re-sealed every block below it and flushed sled first). Persisted before it
    /// returns.
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
        if entry
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
        }
        self.persist(&next)?;
        *tables = next;
        Ok(())
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
                        })
                        .collect(),
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

fn fresh(first_block_id: u64, rng: &mut dyn RngCore) -> Generation {
    let mut secret = Zeroizing::new([0u8; KEY_LEN_BYTES]);
    rng.fill_bytes(secret.as_mut());
    Generation {
        first_block_id,
        secret,
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
}
