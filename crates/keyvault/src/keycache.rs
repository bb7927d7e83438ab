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
//! The cache itself is the workspace's one LRU, [`cmksim_sim::lru::Lru`].

/// Most key versions the service keeps ready at once (an RSA-2048 key parsed into its aws-lc
/// views is a few KiB, so the cache stays within a few MiB).
pub const PARSED_KEYS_MAX: usize = 1024;

/// A bounded map from key id to ready material, least recently used evicted first.
pub type KeyCache<V> = cmksim_sim::lru::Lru<V>;
