//! Private key material made ready once per key version, so that a private operation neither
//! unseals and re-parses PKCS#8 nor searches the HSM on every call (issue 15: software keys ran
//! unwrapKey at 1,403/s in process where aws-lc does 3,917/s), and so that the operation itself
//! can run outside the service's state lock.
//!
//! What is cached (the value type is the backend's [`crate::backend::Ready`]): for a software
//! key, its secret unsealed and parsed; for an HSM key, the session and the private object's
//! handle, never key material (that stays in the HSM). Entries are keyed by the key id
//! `vault/key/version` that [`crate::keys::key_id`] spells (lowercase vault and key names).
//!
//! The cache is not a second source of truth. Every operation first runs every check of
//! [`crate::state::KeyVaultState::prepare_operation`] against the state (policy, existence,
//! enabled, validity, key_ops, algorithm), which also resolves a versionless request to the
//! newest version; only then does it take that version's material from here. Invalidation keeps
//! the cache from holding material the vault no longer serves:
//! - a change to a key's record (update, enable/disable, rotate, delete, recover, purge) drops
//!   every cached version of that key ([`KeyCache::remove_prefix`] on `vault/key/`);
//! - a change to a vault (properties, policies, deletion, purge) drops all of its keys
//!   (`vault/`);
//! - an HSM tamper drops every HSM entry: the token's sessions and objects are gone.
//!
//! Bound: at most `capacity` entries ([`PARSED_KEYS_MAX`] in the service). When it is full, the
//! least recently used entry is evicted; "recently" is a use counter of the cache, not a clock,
//! so which entry goes depends on the sequence of calls alone (deterministic in simulation).

use std::collections::BTreeMap;
use std::sync::Arc;

/// Most key versions the service keeps ready at once (an RSA-2048 key parsed into its aws-lc
/// views is a few KiB, so the cache stays within a few MiB).
pub const PARSED_KEYS_MAX: usize = 1024;

/// A bounded map from key id to ready material, least recently used evicted first.
#[derive(Debug)]
pub struct KeyCache<V> {
    /// Key id → (last use, value).
    entries: BTreeMap<String, (u64, Arc<V>)>,
    /// Last use → key id: the eviction order (uses are unique, so this is a bijection).
    by_use: BTreeMap<u64, String>,
    /// Uses so far (each get that hits, each insert): the cache's own notion of "recent".
    uses: u64,
    capacity: usize,
}

impl<V> KeyCache<V> {
    /// An empty cache holding at most `capacity` (≥ 1) entries.
    pub fn new(capacity: usize) -> KeyCache<V> {
        assert!(capacity >= 1, "a key cache holds at least one entry");
        KeyCache {
            entries: BTreeMap::new(),
            by_use: BTreeMap::new(),
            uses: 0,
            capacity,
        }
    }

    fn touch(&mut self, key_id: &str) -> Option<Arc<V>> {
        self.uses += 1;
        let uses = self.uses;
        let (last, value) = self.entries.get_mut(key_id)?;
        self.by_use.remove(last);
        *last = uses;
        self.by_use.insert(uses, key_id.to_string());
        Some(Arc::clone(value))
    }

    /// The entry of `key_id` (and marks it used).
    pub fn get(&mut self, key_id: &str) -> Option<Arc<V>> {
        self.touch(key_id)
    }

    /// Inserts (or replaces) the entry of `key_id`, evicting the least recently used entries
    /// beyond the capacity.
    pub fn insert(&mut self, key_id: &str, value: Arc<V>) {
        self.remove(key_id);
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.uses += 1;
        self.by_use.insert(self.uses, key_id.to_string());
        self.entries.insert(key_id.to_string(), (self.uses, value));
        debug_assert_eq!(self.entries.len(), self.by_use.len());
        debug_assert!(self.entries.len() <= self.capacity);
    }

    /// Drops the entry of `key_id`; true if there was one.
    pub fn remove(&mut self, key_id: &str) -> bool {
        match self.entries.remove(key_id) {
            Some((last, _)) => {
                self.by_use.remove(&last);
                true
            }
            None => false,
        }
    }

    /// Drops every entry whose key id starts with `prefix` (`vault/` or `vault/key/`); returns
    /// how many.
    pub fn remove_prefix(&mut self, prefix: &str) -> usize {
        let doomed: Vec<String> = self
            .entries
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &doomed {
            self.remove(id);
        }
        doomed.len()
    }

    /// Drops every entry whose value `doomed` selects; returns how many.
    pub fn remove_where(&mut self, doomed: impl Fn(&V) -> bool) -> usize {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, (_, v))| doomed(v))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    /// True if `key_id` has an entry (does not mark it used).
    pub fn contains(&self, key_id: &str) -> bool {
        self.entries.contains_key(key_id)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_entry_at_capacity() {
        let mut cache = KeyCache::new(2);
        cache.insert("v/a/1", Arc::new(1));
        cache.insert("v/b/1", Arc::new(2));
        assert_eq!(cache.get("v/a/1").as_deref(), Some(&1)); // b is now the oldest use
        cache.insert("v/c/1", Arc::new(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.contains("v/a/1") && cache.contains("v/c/1"));
        assert!(!cache.contains("v/b/1"));
        // Replacing an entry does not grow the cache.
        cache.insert("v/c/1", Arc::new(4));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("v/c/1").as_deref(), Some(&4));
    }

    #[test]
    fn prefix_removal_takes_one_key_or_one_vault_and_nothing_else() {
        let mut cache = KeyCache::new(16);
        for id in ["v/k/1", "v/k/2", "v/kk/1", "v/l/1", "w/k/1", "vv/k/1"] {
            cache.insert(id, Arc::new(id.len()));
        }
        assert_eq!(cache.remove_prefix("v/k/"), 2);
        assert!(cache.contains("v/kk/1") && cache.contains("v/l/1"));
        assert_eq!(cache.remove_prefix("v/"), 2);
        assert!(cache.contains("w/k/1") && cache.contains("vv/k/1"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.remove_where(|n| *n == 5), 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_same_calls_evict_the_same_entries() {
        let run = || {
            let mut cache = KeyCache::new(3);
            for i in 0..20u32 {
                let id = format!("v/k{}/1", (i * 7) % 5);
                if cache.get(&id).is_none() {
                    cache.insert(&id, Arc::new(i));
                }
            }
            (0..5)
                .map(|k| cache.contains(&format!("v/k{k}/1")))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert_eq!(run().iter().filter(|c| **c).count(), 3);
    }
}
