//! A bounded least-recently-used cache with string keys, deterministic in its eviction.
//!
//! One home for the caches that hold derived, immutable-per-key data so that a hot path does not
//! recompute it: Key Vault's ready key versions (`cmksim_keyvault::keycache`) and the identity
//! verifier's verified tokens (`cmksim_identity::token`). "Recently" is a use counter of the
//! cache, not a clock, so which entry is evicted depends on the sequence of calls alone (the
//! same in every run of a simulation). Bound: at most `capacity` entries, fixed at creation.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A bounded map from string keys to shared values, least recently used evicted first.
#[derive(Debug)]
pub struct Lru<V> {
    /// Key → (last use, value).
    entries: BTreeMap<String, (u64, Arc<V>)>,
    /// Last use → key: the eviction order (uses are unique, so this is a bijection).
    by_use: BTreeMap<u64, String>,
    /// Uses so far (each get that hits, each insert): the cache's own notion of "recent".
    uses: u64,
    capacity: usize,
}

impl<V> Lru<V> {
    /// An empty cache holding at most `capacity` (≥ 1) entries.
    pub fn new(capacity: usize) -> Lru<V> {
        assert!(capacity >= 1, "an LRU cache holds at least one entry");
        Lru {
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
        let mut cache = Lru::new(2);
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
        let mut cache = Lru::new(16);
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
            let mut cache = Lru::new(3);
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
