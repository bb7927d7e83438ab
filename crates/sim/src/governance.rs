//! The profile's governance sections: Customer Lockbox, queries in the customer's own storage
//! (BYOS) and the bill of a capacity reservation (SPEC §10; seeds 000, 001 and 003).
//!
//! They live beside [`crate::profile`] rather than inside it because they are one concern —
//! what the customer controls besides the key — and each section is small. Every value is in the
//! profile files (`sim-config/*.toml`, `[lockbox]`, `[byos]`, `[bill]`) with the sentence it
//! comes from; where the seeds give no number the value is the simulator's and says so. Prices
//! are configuration, never real prices.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Customer Lockbox on dedicated clusters (seed 001: "Lockbox - Customers can control Microsoft
/// support engineers access requests for data"; "Lockbox isn't available in China currently").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockboxProfile {
    /// Regions (ARM spelling) where Lockbox cannot be enabled on a cluster.
    pub unavailable_regions: Vec<String>,
    /// A request nobody approves or denies expires this long after it was made (the simulator's
    /// value; the seeds give none).
    #[serde(with = "crate::profile::dur")]
    pub request_expiry: Duration,
    /// How long an approved request lets the support engineer query (the simulator's value).
    #[serde(with = "crate::profile::dur")]
    pub access_duration: Duration,
}

impl Default for LockboxProfile {
    fn default() -> Self {
        LockboxProfile {
            unavailable_regions: [
                "chinaeast",
                "chinaeast2",
                "chinaeast3",
                "chinanorth",
                "chinanorth2",
                "chinanorth3",
            ]
            .map(String::from)
            .to_vec(),
            request_expiry: Duration::from_secs(4 * 24 * 3600),
            access_duration: Duration::from_secs(8 * 3600),
        }
    }
}

/// Saved searches and log-alert queries in the customer's storage account (seed 000, "CMK for
/// queries").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ByosProfile {
    /// How often the service checks that it can still unwrap a storage account's key (like the
    /// cluster's key-access loop; the seed gives no number for storage accounts).
    #[serde(with = "crate::profile::dur")]
    pub key_check_interval: Duration,
    /// At most this many saved searches (and log-alert queries) per workspace.
    pub saved_searches_per_workspace_max: u32,
}

impl Default for ByosProfile {
    fn default() -> Self {
        ByosProfile {
            key_check_interval: Duration::from_secs(60),
            saved_searches_per_workspace_max: 250,
        }
    }
}

/// The two `dataSourceType`s of seed 000's `linkedStorageAccounts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DataSourceType {
    /// Saved searches.
    Query,
    /// Log-alert queries.
    Alerts,
}

impl DataSourceType {
    /// ARM's spelling (`linkedStorageAccounts/Query`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataSourceType::Query => "Query",
            DataSourceType::Alerts => "Alerts",
        }
    }

    /// The ARM name, case-insensitively; anything else is `None`.
    pub fn parse(text: &str) -> Option<DataSourceType> {
        match text.to_ascii_lowercase().as_str() {
            "query" => Some(DataSourceType::Query),
            "alerts" => Some(DataSourceType::Alerts),
            _ => None,
        }
    }
}

/// Azure's storage account name rule: 3 to 24 lowercase letters and digits (storage refuses
/// another name with `AccountNameInvalid`; scenario validation with the same rule).
pub fn is_valid_storage_account_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The daily bill of a dedicated cluster (seed 001: "a Capacity Reservation pricing model ...
/// Any usage above the reservation level will be billed at the Pay-As-You-Go rate"). Prices are
/// in hundredths of a made-up currency unit per GB (10^9 bytes): configuration, not Azure's
/// prices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillProfile {
    /// The name the bill prints after amounts.
    pub currency: String,
    /// Price of one reserved GB for one day, in hundredths of `currency`.
    pub reservation_cents_per_gb: u64,
    /// Price of one GB above the reservation, in hundredths of `currency`.
    pub pay_as_you_go_cents_per_gb: u64,
    /// How many bytes one simulated record stands for on the bill: a scenario's agents send a
    /// few thousand records where a real fleet sends terabytes, so a bill scenario scales them.
    pub billed_bytes_per_record: u64,
}

impl Default for BillProfile {
    fn default() -> Self {
        BillProfile {
            currency: "credits".into(),
            reservation_cents_per_gb: 150,
            pay_as_you_go_cents_per_gb: 230,
            billed_bytes_per_record: 1_000,
        }
    }
}

/// Cross-field checks of the three sections (called by `Profile::check`).
pub(crate) fn check(
    lockbox: &LockboxProfile,
    byos: &ByosProfile,
    bill: &BillProfile,
) -> Result<(), String> {
    if lockbox.request_expiry.is_zero() || lockbox.access_duration.is_zero() {
        return Err("lockbox.request_expiry and lockbox.access_duration must be > 0".into());
    }
    if let Some(region) = lockbox
        .unavailable_regions
        .iter()
        .find(|r| !crate::rules::is_azure_region(r) || crate::rules::normalize_region(r) != **r)
    {
        return Err(format!(
            "lockbox.unavailable_regions: {:?} is no Azure region in ARM spelling (lowercase, no spaces)",
            crate::text::echo(region)
        ));
    }
    if byos.key_check_interval.is_zero() || byos.saved_searches_per_workspace_max == 0 {
        return Err(
            "byos.key_check_interval and saved_searches_per_workspace_max must be > 0".into(),
        );
    }
    if bill.billed_bytes_per_record == 0 || bill.currency.trim().is_empty() {
        return Err("bill.billed_bytes_per_record must be > 0 and bill.currency not empty".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Profile;

    #[test]
    fn every_builtin_profile_names_china_and_made_up_prices() {
        for name in crate::profile::BUILTIN_PROFILES {
            let p = Profile::builtin(name).unwrap();
            assert!(p
                .lockbox
                .unavailable_regions
                .contains(&"chinanorth".to_string()));
            assert_eq!(p.lockbox.request_expiry.as_secs(), 4 * 24 * 3600, "{name}");
            assert_eq!(p.lockbox.access_duration.as_secs(), 8 * 3600, "{name}");
            assert_eq!(p.byos.key_check_interval.as_secs(), 60, "{name}");
            assert_eq!(p.bill.reservation_cents_per_gb, 150, "{name}");
            assert_eq!(p.bill.pay_as_you_go_cents_per_gb, 230, "{name}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = |t: &str| {
            let table: toml::Table = t.parse().unwrap();
            Profile::builtin_with_overrides("azure-2020", Some(&table)).unwrap_err()
        };
        assert!(bad("[lockbox]\nunavailable_regions = [\"China East\"]")
            .to_string()
            .contains("lockbox.unavailable_regions"));
        assert!(bad("[lockbox]\naccess_duration = \"0s\"")
            .to_string()
            .contains("lockbox.request_expiry"));
        assert!(bad("[bill]\nbilled_bytes_per_record = 0")
            .to_string()
            .contains("bill.billed_bytes_per_record"));
        assert!(bad("[bill]\nprice = 1")
            .to_string()
            .contains("unknown field"));
    }
}
