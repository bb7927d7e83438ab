//! The device's configuration: how many slots, PIN rules, and the limits on everything that
//! grows (sessions, objects, search results), so that no caller can exhaust the process.

use serde::{Deserialize, Serialize};

/// How the emulated device is built. `ModuleConfig::default()` is a sensible HSM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleConfig {
    /// Number of slots, each with one token (1..=64).
    pub slot_count: u64,
    /// Consecutive wrong PINs after which the PIN is locked (`CKR_PIN_LOCKED`), 1..=100.
    pub pin_attempts_max: u32,
    /// Shortest accepted PIN, in bytes (PKCS#11 `ulMinPinLen`).
    pub pin_len_min_bytes: usize,
    /// Longest accepted PIN, in bytes (PKCS#11 `ulMaxPinLen`).
    pub pin_len_max_bytes: usize,
    /// PBKDF2-HMAC-SHA256 iterations for stored PIN hashes (1..=1_000_000). Lower it in tests.
    pub pin_kdf_iterations: u32,
    /// Open sessions allowed on the whole device (`CKR_SESSION_COUNT` beyond).
    pub sessions_max: usize,
    /// Objects (token and session) allowed on the whole device (`CKR_DEVICE_MEMORY` beyond).
    pub objects_max: usize,
    /// Most handles one `c_find_objects` call returns.
    pub find_results_max: usize,
}

impl Default for ModuleConfig {
    fn default() -> Self {
        ModuleConfig {
            slot_count: 1,
            pin_attempts_max: 3,
            pin_len_min_bytes: 4,
            pin_len_max_bytes: 64,
            pin_kdf_iterations: 10_000,
            sessions_max: 1024,
            objects_max: 100_000,
            find_results_max: 1024,
        }
    }
}

impl ModuleConfig {
    /// Checks the documented ranges; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.slot_count) {
            return Err(format!("slot_count {} not in 1..=64", self.slot_count));
        }
        if !(1..=100).contains(&self.pin_attempts_max) {
            return Err(format!(
                "pin_attempts_max {} not in 1..=100",
                self.pin_attempts_max
            ));
        }
        if self.pin_len_min_bytes == 0 || self.pin_len_min_bytes > self.pin_len_max_bytes {
            return Err("pin_len_min_bytes must be in 1..=pin_len_max_bytes".to_string());
        }
        if self.pin_len_max_bytes > 256 {
            return Err("pin_len_max_bytes must be at most 256".to_string());
        }
        if !(1..=1_000_000).contains(&self.pin_kdf_iterations) {
            return Err(format!(
                "pin_kdf_iterations {} not in 1..=1000000",
                self.pin_kdf_iterations
            ));
        }
        if self.sessions_max == 0 || self.objects_max == 0 || self.find_results_max == 0 {
            return Err(
                "sessions_max, objects_max and find_results_max must be positive".to_string(),
            );
        }
        Ok(())
    }
}
