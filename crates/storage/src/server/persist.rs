//! The storage process's own durable state, in `control.sled`: one JSON document per key,
//! written and flushed before the call that changed it is answered.
//!
//! Keys:
//! - `control`: the control plane's [`ControlState`];
//! - `identity/<clusterId>`: the cluster's managed-identity credentials (object id and secret:
//!   the cluster's credential, never logged or returned);
//! - `history`: per workspace, every cluster its data was ever routed to (for queries);
//! - `stats`: the per-destination, per-workspace outcome counters;
//! - `ledger/<account>`: what the outage buffer holds, per batch (workspace, records, time), so
//!   that flushes and expiries can be reported per workspace;
//! - `keyloop/<account>`: the key loop's last state, so that a restart does not forget a
//!   revocation, a resume in progress or an outage.
//!
//! sled's background flusher is off (simulation runs on virtual time); every write is flushed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::control::ControlState;
use crate::keyloop::State;

/// A cluster's managed identity as storage keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredIdentity {
    pub object_id: String,
    pub tenant_id: String,
    pub secret: String,
}

impl std::fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredIdentity")
            .field("object_id", &self.object_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One destination a workspace's data went to: a cluster (ARM id and clusterId).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClusterDestination {
    pub cluster: String,
    pub cluster_id: String,
}

/// Per workspace key (lowercase ARM id): the clusters it was ever linked to, in link order.
pub type History = BTreeMap<String, Vec<ClusterDestination>>;

/// Outcome counters of one (destination, workspace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub accepted: u64,
    pub stored: u64,
    pub buffered: u64,
    pub drained: u64,
    pub dropped: BTreeMap<String, u64>,
}

/// Counters by destination (`shared` or a cluster ARM id), then workspace id.
pub type StatsBook = BTreeMap<String, BTreeMap<String, Counters>>;

/// One batch held in an account's outage buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub workspace: String,
    pub records: u64,
    pub ingested_at_ms: i64,
    /// Already reported as expired (the data plane drops it at the next drain).
    pub expired: bool,
}

/// The control store.
#[derive(Clone)]
pub struct Meta {
    db: sled::Db,
}

impl Meta {
    pub fn open(dir: &Path) -> Result<Meta, sled::Error> {
        let db = sled::Config::new().path(dir).flush_every_ms(None).open()?;
        Ok(Meta { db })
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, super::ServerError> {
        match self.db.get(key.as_bytes())? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), super::ServerError> {
        let bytes = Zeroizing::new(serde_json::to_vec(value)?);
        self.db.insert(key.as_bytes(), bytes.as_slice())?;
        self.db.flush()?;
        Ok(())
    }

    pub fn control(&self) -> Result<Option<ControlState>, super::ServerError> {
        self.get("control")
    }

    pub fn save_control(&self, state: &ControlState) -> Result<(), super::ServerError> {
        self.put("control", state)
    }

    pub fn identity(&self, cluster_id: &str) -> Result<Option<StoredIdentity>, super::ServerError> {
        self.get(&format!("identity/{cluster_id}"))
    }

    pub fn save_identity(
        &self,
        cluster_id: &str,
        identity: &StoredIdentity,
    ) -> Result<(), super::ServerError> {
        self.put(&format!("identity/{cluster_id}"), identity)
    }

    pub fn history(&self) -> Result<History, super::ServerError> {
        Ok(self.get("history")?.unwrap_or_default())
    }

    pub fn save_history(&self, history: &History) -> Result<(), super::ServerError> {
        self.put("history", history)
    }

    pub fn stats(&self) -> Result<StatsBook, super::ServerError> {
        Ok(self.get("stats")?.unwrap_or_default())
    }

    pub fn save_stats(&self, stats: &StatsBook) -> Result<(), super::ServerError> {
        self.put("stats", stats)
    }

    pub fn ledger(&self, account: &str) -> Result<Vec<LedgerEntry>, super::ServerError> {
        Ok(self.get(&format!("ledger/{account}"))?.unwrap_or_default())
    }

    pub fn save_ledger(
        &self,
        account: &str,
        ledger: &[LedgerEntry],
    ) -> Result<(), super::ServerError> {
        self.put(&format!("ledger/{account}"), &ledger)
    }

    pub fn keyloop_state(&self, account: &str) -> Result<Option<State>, super::ServerError> {
        self.get(&format!("keyloop/{account}"))
    }

    pub fn save_keyloop_state(
        &self,
        account: &str,
        state: &State,
    ) -> Result<(), super::ServerError> {
        self.put(&format!("keyloop/{account}"), state)
    }

    pub fn flush(&self) {
        let _ = self.db.flush();
    }
}
