//! sled persistence for Key Vault: vaults, keys (all versions), deleted items and the audit log.
//!
//! Layout of the database in `{data_dir}/keyvault`:
//! - tree `vaults`: lowercase vault name → JSON `{vault, deleted}` (keys excluded)
//! - tree `keys`: `vault \0 key` (lowercase) → JSON [`Key`] with every version; private parts are
//!   sealed (software) or only an HSM CKA_ID
//! - tree `audit`: big-endian (time + 2^63, sequence) → JSON [`AuditRecord`], so time ranges are
//!   range scans
//!
//! Domain state is held in memory and written through: after every mutation the service hands
//! the changed records here and this module flushes before the response goes out. sled's
//! background flusher is off (it runs on wall time, which simulation must not depend on).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::{
    AuditAnswer, AuditQuery, AuditRecord, MAX_AUDIT_RECORDS, MAX_AUDIT_SCAN_RECORDS,
};
use crate::audit_commit::GroupCommit;
use crate::errors::KvError;
use crate::model::{Deletion, Key, Vault, VaultEntry};
use crate::state::{Change, KeyVaultState};

#[derive(Serialize, Deserialize)]
struct VaultRecord {
    vault: Vault,
    deleted: Option<Deletion>,
}

fn store_error(e: impl std::fmt::Display) -> KvError {
    KvError::Internal {
        message: format!("Key Vault store: {e}"),
    }
}

fn key_key(vault: &str, key: &str) -> Vec<u8> {
    let mut k = vault.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn audit_key(time_ms: i64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((time_ms as u64) ^ (1u64 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The pending flush of an appended audit record (see [`KeyVaultStore::append_audit`]).
#[must_use = "an audit record is durable only once flushed"]
pub struct AuditFlush {
    commit: Arc<GroupCommit>,
    ticket: u64,
}

impl AuditFlush {
    /// Waits until the audit record (and everything written before it) is on disk; calls
    /// waiting at the same time share one flush ([`crate::audit_commit`]).
    pub async fn durable(self) -> Result<(), KvError> {
        self.commit.wait_durable(self.ticket).await
    }
}

/// The sled database of the Key Vault service.
pub struct KeyVaultStore {
    db: sled::Db,
    vaults: sled::Tree,
    keys: sled::Tree,
    audit: sled::Tree,
    audit_records: u64,
    audit_seq: u64,
    /// Tickets: audit records appended since the store was opened.
    audit_tickets: u64,
    audit_commit: Arc<GroupCommit>,
}

impl KeyVaultStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<KeyVaultStore, KvError> {
        let db = cmksim_sim::durable::open(dir).map_err(store_error)?;
        let audit = db.open_tree("audit").map_err(store_error)?;
        let audit_records = audit.len() as u64;
        let audit_seq = audit
            .last()
            .map_err(store_error)?
            .map(|(k, _)| {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&k[8..16]);
                u64::from_be_bytes(seq) + 1
            })
            .unwrap_or(0);
        Ok(KeyVaultStore {
            vaults: db.open_tree("vaults").map_err(store_error)?,
            keys: db.open_tree("keys").map_err(store_error)?,
            audit,
            audit_records,
            audit_seq,
            audit_tickets: 0,
            audit_commit: Arc::new(GroupCommit::new(Arc::new(db.clone()), 0)),
            db,
        })
    }

    /// Loads every vault with its keys.
    pub fn load(&self) -> Result<KeyVaultState, KvError> {
        let mut entries = std::collections::BTreeMap::new();
        for item in self.vaults.iter() {
            let (k, v) = item.map_err(store_error)?;
            let record: VaultRecord = serde_json::from_slice(&v).map_err(store_error)?;
            entries.insert(
                String::from_utf8_lossy(&k).into_owned(),
                VaultEntry {
                    vault: record.vault,
                    deleted: record.deleted,
                    keys: Default::default(),
                },
            );
        }
        for item in self.keys.iter() {
            let (k, v) = item.map_err(store_error)?;
            let split = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| store_error("bad key record id"))?;
            let vault = String::from_utf8_lossy(&k[..split]).into_owned();
            let name = String::from_utf8_lossy(&k[split + 1..]).into_owned();
            let key: Key = serde_json::from_slice(&v).map_err(store_error)?;
            if let Some(entry) = entries.get_mut(&vault) {
                entry.keys.insert(name, key);
            }
        }
        Ok(KeyVaultState::from_vaults(entries.into_values()))
    }

    /// Writes the changed records of `state` and flushes.
    pub fn apply(
        &mut self,
        state: &KeyVaultState,
        changes: &std::collections::BTreeSet<Change>,
    ) -> Result<(), KvError> {
        for change in changes {
            match change {
                Change::Vault(name) => {
                    if let Some(entry) = state.entry(name) {
                        let record = VaultRecord {
                            vault: entry.vault.clone(),
                            deleted: entry.deleted,
                        };
                        let bytes = serde_json::to_vec(&record).map_err(store_error)?;
                        self.vaults
                            .insert(name.as_bytes(), bytes)
                            .map_err(store_error)?;
                    }
                }
                Change::VaultRemoved(name) => {
                    self.vaults.remove(name.as_bytes()).map_err(store_error)?;
                    let mut prefix = name.as_bytes().to_vec();
                    prefix.push(0);
                    let doomed: Vec<_> = self
                        .keys
                        .scan_prefix(&prefix)
                        .keys()
                        .filter_map(Result::ok)
                        .collect();
                    for k in doomed {
                        self.keys.remove(k).map_err(store_error)?;
                    }
                }
                Change::Key(vault, key) => {
                    if let Some(k) = state.entry(vault).and_then(|e| e.keys.get(key)) {
                        let bytes = serde_json::to_vec(k).map_err(store_error)?;
                        self.keys
                            .insert(key_key(vault, key), bytes)
                            .map_err(store_error)?;
                    }
                }
                Change::KeyRemoved(vault, key) => {
                    self.keys.remove(key_key(vault, key)).map_err(store_error)?;
                }
            }
        }
        cmksim_sim::durable::flush(&self.db).map_err(store_error)?;
        Ok(())
    }

    /// Appends an audit record and hands back what makes it durable: the caller awaits
    /// [`AuditFlush::durable`] before it answers. The wait is separate so that the service can
    /// wait for the disk after releasing its state lock: calls that wait at the same time share
    /// one flush (sled makes everything written before a flush durable by its return).
    #[must_use = "an audit record is durable only once flushed"]
    pub fn append_audit(&mut self, record: &AuditRecord) -> Result<AuditFlush, KvError> {
        let bytes = serde_json::to_vec(record).map_err(store_error)?;
        self.audit
            .insert(audit_key(record.time_ms, self.audit_seq), bytes)
            .map_err(store_error)?;
        self.audit_seq += 1;
        self.audit_records += 1;
        while self.audit_records > MAX_AUDIT_RECORDS {
            if self.audit.pop_min().map_err(store_error)?.is_none() {
                break;
            }
            self.audit_records -= 1;
        }
        self.audit_tickets += 1;
        self.audit_commit.appended(self.audit_tickets);
        Ok(AuditFlush {
            commit: Arc::clone(&self.audit_commit),
            ticket: self.audit_tickets,
        })
    }

    /// Runs an audit query: newest first, at most the query's limit, with the total matched.
    pub fn query_audit(&self, query: &AuditQuery) -> Result<AuditAnswer, KvError> {
        let from = audit_key(query.from_ms.unwrap_or(i64::MIN), 0);
        let to = audit_key(query.to_ms.unwrap_or(i64::MAX), 0);
        let limit = query.effective_limit();
        let mut answer = AuditAnswer::default();
        for item in self
            .audit
            .range(from..to)
            .rev()
            .take(MAX_AUDIT_SCAN_RECORDS)
        {
            let (_, v) = item.map_err(store_error)?;
            let record: AuditRecord = serde_json::from_slice(&v).map_err(store_error)?;
            if query.matches(&record) {
                answer.total_matched += 1;
                if answer.records.len() < limit {
                    answer.records.push(record);
                }
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64) -> AuditRecord {
        AuditRecord {
            time_ms: 1_000 + i,
            principal_object_id: format!("caller-{i}"),
            operation: "KeyUnwrap".into(),
            vault: "v".into(),
            key: "k".into(),
            version: "1".into(),
            result: "Success".into(),
            http_status: 200,
        }
    }

    /// Copies every file under `from` to `to`: what a crash at this instant leaves on disk
    /// (whatever sled still holds in its own buffers is not in the files yet).
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_answered_audit_record_survives_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let store = Arc::new(std::sync::Mutex::new(KeyVaultStore::open(&live).unwrap()));
        const CALLS: i64 = 40;
        // Calls as the service makes them: append under the lock, wait for the disk without it.
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let pending = store.lock().unwrap().append_audit(&record(i)).unwrap();
                    pending.durable().await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().expect("answered only once durable");
        }
        // One more record, never waited for: it may or may not be on disk.
        let unanswered = store.lock().unwrap().append_audit(&record(CALLS)).unwrap();
        // The crash: the files as they are now, with no flush on the way out.
        let crashed = dir.path().join("crashed");
        copy_dir(&live, &crashed);
        std::mem::forget(unanswered);
        let reopened = KeyVaultStore::open(&crashed).unwrap();
        let answer = reopened
            .query_audit(&AuditQuery {
                limit: 1_000,
                ..AuditQuery::default()
            })
            .unwrap();
        let found: std::collections::BTreeSet<String> = answer
            .records
            .iter()
            .map(|r| r.principal_object_id.clone())
            .collect();
        for i in 0..CALLS {
            assert!(
                found.contains(&format!("caller-{i}")),
                "answered call {i} lost its audit record in the crash"
            );
        }
    }
}
