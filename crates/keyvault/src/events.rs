//! Key Vault's events in the simulation's event log: every state change of a vault, key, access
//! policy or the chaos mode, as a typed [`KeyVaultEvent`] with a sentence a person can follow.
//!
//! Cryptographic operations (wrap, unwrap, sign...) are not events: they change no state and
//! would drown the timeline; they go to the audit log instead, which answers "who used which key
//! version when".

use serde::Serialize;

use cmksim_sim::EventKind;

/// A state change in Key Vault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum KeyVaultEvent {
    VaultCreated {
        vault: String,
        location: String,
        sku: String,
        purge_protection: bool,
        retention_days: u32,
    },
    VaultUpdated {
        vault: String,
        soft_delete: bool,
        purge_protection: bool,
        retention_days: u32,
    },
    VaultDeleted {
        vault: String,
        scheduled_purge_ms: i64,
    },
    VaultRecovered {
        vault: String,
    },
    VaultPurged {
        vault: String,
        automatic: bool,
    },
    PolicySet {
        vault: String,
        object_id: String,
        permissions: Vec<String>,
    },
    PolicyRemoved {
        vault: String,
        object_id: String,
    },
    KeyCreated {
        vault: String,
        key: String,
        version: String,
        kty: String,
    },
    KeyRotated {
        vault: String,
        key: String,
        version: String,
        previous_version: String,
    },
    KeyEnabled {
        vault: String,
        key: String,
        version: String,
    },
    KeyDisabled {
        vault: String,
        key: String,
        version: String,
    },
    KeyUpdated {
        vault: String,
        key: String,
        version: String,
    },
    KeyDeleted {
        vault: String,
        key: String,
        scheduled_purge_ms: i64,
    },
    KeyRecovered {
        vault: String,
        key: String,
    },
    KeyPurged {
        vault: String,
        key: String,
        automatic: bool,
    },
    ChaosChanged {
        mode: String,
        error_rate: f64,
        retry_after_seconds: u32,
        added_latency_ms: u64,
    },
}

impl EventKind for KeyVaultEvent {
    fn kind(&self) -> &'static str {
        use KeyVaultEvent::*;
        match self {
            VaultCreated { .. } => "keyvault.vault.created",
            VaultUpdated { .. } => "keyvault.vault.updated",
            VaultDeleted { .. } => "keyvault.vault.deleted",
            VaultRecovered { .. } => "keyvault.vault.recovered",
            VaultPurged { .. } => "keyvault.vault.purged",
            PolicySet { .. } => "keyvault.policy.set",
            PolicyRemoved { .. } => "keyvault.policy.removed",
            KeyCreated { .. } => "keyvault.key.created",
            KeyRotated { .. } => "keyvault.key.rotated",
            KeyEnabled { .. } => "keyvault.key.enabled",
            KeyDisabled { .. } => "keyvault.key.disabled",
            KeyUpdated { .. } => "keyvault.key.updated",
            KeyDeleted { .. } => "keyvault.key.deleted",
            KeyRecovered { .. } => "keyvault.key.recovered",
            KeyPurged { .. } => "keyvault.key.purged",
            ChaosChanged { .. } => "keyvault.chaos.changed",
        }
    }

    fn narrate(&self) -> String {
        use KeyVaultEvent::*;
        let when = |ms: &i64| cmksim_sim::SimTime(*ms).to_rfc3339();
        match self {
            VaultCreated { vault, location, sku, purge_protection, retention_days } => format!(
                "vault {vault} created in {location} ({sku}, soft delete {retention_days} days, purge protection {})",
                if *purge_protection { "on" } else { "off" }
            ),
            VaultUpdated { vault, soft_delete, purge_protection, retention_days } => format!(
                "vault {vault} updated: soft delete {}, purge protection {}, retention {retention_days} days",
                if *soft_delete { "on" } else { "off" },
                if *purge_protection { "on" } else { "off" }
            ),
            VaultDeleted { vault, scheduled_purge_ms } => format!(
                "vault {vault} deleted: recoverable until {}, its name stays reserved; every key in it is now unreachable",
                when(scheduled_purge_ms)
            ),
            VaultRecovered { vault } => format!("vault {vault} recovered with all its keys"),
            VaultPurged { vault, automatic } => format!(
                "vault {vault} purged{}: its keys are gone for good and data under them is unreadable",
                if *automatic { " at the end of its retention" } else { "" }
            ),
            PolicySet { vault, object_id, permissions } => format!(
                "access policy on {vault} for {object_id} set to [{}]",
                permissions.join(", ")
            ),
            PolicyRemoved { vault, object_id } => format!(
                "access policy on {vault} for {object_id} removed: that principal can no longer use any key"
            ),
            KeyCreated { vault, key, version, kty } => format!("key {key} ({kty}) created in {vault}, version {version}"),
            KeyRotated { vault, key, version, previous_version } => format!(
                "key {key} in {vault} rotated: new version {version}; {previous_version} still works for those pinned to it"
            ),
            KeyEnabled { vault, key, version } => format!("key {key} version {version} in {vault} enabled"),
            KeyDisabled { vault, key, version } => format!(
                "key {key} version {version} in {vault} disabled: wrap, unwrap, sign and decrypt with it now fail with 403"
            ),
            KeyUpdated { vault, key, version } => format!("key {key} version {version} in {vault} updated"),
            KeyDeleted { vault, key, scheduled_purge_ms } => format!(
                "key {key} in {vault} deleted: 404 from now on, recoverable until {}",
                when(scheduled_purge_ms)
            ),
            KeyRecovered { vault, key } => format!("key {key} in {vault} recovered"),
            KeyPurged { vault, key, automatic } => format!(
                "key {key} in {vault} purged{}: every version is destroyed and data wrapped by it can never be unwrapped",
                if *automatic { " at its scheduled purge date" } else { "" }
            ),
            ChaosChanged { mode, error_rate, retry_after_seconds, added_latency_ms } => format!(
                "Key Vault chaos set to {mode} (error rate {error_rate}, retry-after {retry_after_seconds}s, added latency {added_latency_ms}ms)"
            ),
        }
    }
}

/// The source of HSM events in the event log (the event contract's `hsm`).
pub const HSM_EVENT_SOURCE: &str = "hsm";

/// A fault of the emulated HSM, as injected through `ChaosControl.SetHsmFault`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum HsmEvent {
    /// Every HSM call now answers `CKR_DEVICE_ERROR`.
    DeviceError,
    /// The device works normally again.
    DeviceOk,
    /// HSM calls work but answer this much later (simulated time).
    DeviceLatency { latency_ms: u64 },
    /// Tamper response: every key in the HSM was zeroised, for good.
    Tampered { keys_zeroised: u64 },
}

impl EventKind for HsmEvent {
    fn kind(&self) -> &'static str {
        match self {
            HsmEvent::DeviceError => "hsm.device.error",
            HsmEvent::DeviceOk => "hsm.device.ok",
            HsmEvent::DeviceLatency { .. } => "hsm.device.latency",
            HsmEvent::Tampered { .. } => "hsm.tampered",
        }
    }

    fn narrate(&self) -> String {
        match self {
            HsmEvent::DeviceError => "HSM device error: every operation on an HSM key fails with 500 (HSMDeviceError) until the device recovers".to_string(),
            HsmEvent::DeviceOk => "HSM device back to normal".to_string(),
            HsmEvent::DeviceLatency { latency_ms } => {
                format!("HSM slowed down: every operation on an HSM key answers {latency_ms}ms later")
            }
            HsmEvent::Tampered { keys_zeroised } => format!(
                "HSM tamper detected: {keys_zeroised} HSM key(s) zeroised for good; every operation on them fails (HSMKeyMaterialDestroyed) and data wrapped by them can never be unwrapped (crypto-shredding)"
            ),
        }
    }
}
