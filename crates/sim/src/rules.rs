//! The rules a service applies to what it is asked to create, as pure predicates: name syntax,
//! Azure regions, the capacity range of the profile, and the key-vault facts a cluster key needs.
//!
//! Why here: each rule has two readers. The service enforces it (storage refuses a cluster named
//! `c1`, Key Vault a vault named `kv`), and `cmksim validate` must refuse the same file before any
//! service runs, at the line that declared the entity. `cmksim-scenario` deliberately does not
//! depend on the services (so that `validate` builds and runs fast), and both sides already depend
//! on this crate, so the one copy of each rule lives here. Only the predicate lives here: each
//! service keeps its own error type and its own wording, and the validator words its diagnostics
//! after the service's message.

use crate::profile::ClusterProfile;

/// Cluster name length, seed 000/001: "length of 3-63".
/// The standard tables an agent collects and an `ingest` step synthesizes (seed 003's agent data
/// types), sorted; their schemas are the ingest front end's (`cmksim_ingest::schema`).
pub const STANDARD_TABLES: [&str; 4] = ["Event", "Heartbeat", "Perf", "Syslog"];

pub const CLUSTER_NAME_LEN_MIN_CHARS: usize = 3;
pub const CLUSTER_NAME_LEN_MAX_CHARS: usize = 63;
/// Workspace name length (Azure: 4-63 letters, digits and hyphens, starting and ending with a
/// letter or digit). The seeds give no rule; this is the documented Azure one.
pub const WORKSPACE_NAME_LEN_MIN_CHARS: usize = 4;
pub const WORKSPACE_NAME_LEN_MAX_CHARS: usize = 63;
/// Key Vault names: 3-24 characters (Azure Key Vault naming rules).
pub const VAULT_NAME_LEN_MIN_CHARS: usize = 3;
pub const VAULT_NAME_LEN_MAX_CHARS: usize = 24;
/// Key names: 1-127 letters, digits and hyphens (Azure Key Vault naming rules).
pub const KEY_NAME_LEN_MAX_CHARS: usize = 127;

/// Seed 000/001: "Cluster name can contain characters a-z, A-Z, 0-9 and length of 3-63."
pub fn is_valid_cluster_name(name: &str) -> bool {
    (CLUSTER_NAME_LEN_MIN_CHARS..=CLUSTER_NAME_LEN_MAX_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Azure workspace naming: 4-63 letters, digits and hyphens, first and last a letter or digit.
pub fn is_valid_workspace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (WORKSPACE_NAME_LEN_MIN_CHARS..=WORKSPACE_NAME_LEN_MAX_CHARS).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Azure Key Vault naming: 3-24 letters, digits and hyphens, starting with a letter, ending with
/// a letter or digit, no two consecutive hyphens.
pub fn is_valid_vault_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (VAULT_NAME_LEN_MIN_CHARS..=VAULT_NAME_LEN_MAX_CHARS).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphabetic()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("--")
}

/// Azure Key Vault key naming: 1-127 letters, digits and hyphens.
pub fn is_valid_key_name(name: &str) -> bool {
    (1..=KEY_NAME_LEN_MAX_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A key version as a cluster's `keyVersion` may name it: empty (none), or 32 hexadecimal
/// characters (either case; stored lowercase).
pub fn is_valid_key_version_input(version: &str) -> bool {
    version.is_empty() || (version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The public Azure region names, as ARM spells them (lowercase, no spaces): what `location`
/// accepts on a vault, a cluster and a workspace. A list, not a pattern: `eu` or `mars` is no
/// region, and a typo must be refused where it was written, not found later as a "region
/// mismatch".
pub const AZURE_REGIONS: [&str; 66] = [
    "australiacentral",
    "australiacentral2",
    "australiaeast",
    "australiasoutheast",
    "austriaeast",
    "belgiumcentral",
    "brazilsouth",
    "brazilsoutheast",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "chilecentral",
    // Azure operated by 21Vianet (seed 001: "Lockbox isn't available in China currently").
    "chinaeast",
    "chinaeast2",
    "chinaeast3",
    "chinanorth",
    "chinanorth2",
    "chinanorth3",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "francesouth",
    "germanynorth",
    "germanywestcentral",
    "indonesiacentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "jioindiacentral",
    "jioindiawest",
    "koreacentral",
    "koreasouth",
    "malaysiawest",
    "mexicocentral",
    "newzealandnorth",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "norwaywest",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southafricawest",
    "southcentralus",
    "southindia",
    "southeastasia",
    "spaincentral",
    "swedencentral",
    "swedensouth",
    "switzerlandnorth",
    "switzerlandwest",
    "uaecentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
    "usgovvirginia",
    "usgovarizona",
];

/// The canonical form of a region name: lowercase, no spaces ("West Europe" → "westeurope").
pub fn normalize_region(region: &str) -> String {
    region
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Regions compare case-insensitively and without spaces ("West Europe" = "westeurope").
pub fn same_region(a: &str, b: &str) -> bool {
    normalize_region(a) == normalize_region(b)
}

/// True when `location` names an Azure region, in either spelling ("West Europe", "westeurope").
pub fn is_azure_region(location: &str) -> bool {
    let canonical = normalize_region(location);
    AZURE_REGIONS.contains(&canonical.as_str())
}

/// Why a capacity is refused by [`capacity_rule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapacityRule {
    /// Outside `capacity_min_gb_per_day..=capacity_max_gb_per_day`.
    OutOfRange,
    /// Not a multiple of `capacity_step_gb_per_day`.
    NotOnStep,
}

/// A cluster's commitment tier in GB/day, against the profile: first the range, then the step
/// (the order of the seed's messages).
pub fn capacity_rule(
    profile: &ClusterProfile,
    capacity_gb_per_day: u32,
) -> Result<(), CapacityRule> {
    if !(profile.capacity_min_gb_per_day..=profile.capacity_max_gb_per_day)
        .contains(&capacity_gb_per_day)
    {
        return Err(CapacityRule::OutOfRange);
    }
    // `is_multiple_of` does not divide by a zero step (which the profile's own check refuses).
    if !capacity_gb_per_day.is_multiple_of(profile.capacity_step_gb_per_day) {
        return Err(CapacityRule::NotOnStep);
    }
    Ok(())
}

/// A subscription's clusters as the cluster limits count them: active and soft-deleted ones in
/// one region, and every reserved one (active or soft-deleted) over all regions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub active: u32,
    pub soft_deleted: u32,
    pub reserved_in_subscription: u32,
}

/// Counts `clusters` — each `(subscription, location, soft_deleted)` — for a new cluster of
/// `subscription` in `location` (subscriptions compare without case, regions by
/// [`same_region`]).
pub fn count_clusters<'a>(
    clusters: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
    subscription: &str,
    location: &str,
) -> ClusterCounts {
    let region = normalize_region(location);
    let mut counts = ClusterCounts::default();
    for (sub, loc, soft_deleted) in clusters {
        if !sub.eq_ignore_ascii_case(subscription) {
            continue;
        }
        counts.reserved_in_subscription += 1;
        if normalize_region(loc) == region {
            match soft_deleted {
                true => counts.soft_deleted += 1,
                false => counts.active += 1,
            }
        }
    }
    counts
}

/// Which cluster limit of the profile a new cluster would break ([`cluster_count_rule`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterCountRule {
    /// `max_active_per_region_subscription` active clusters in the region already.
    ActivePerRegion { max: u32 },
    /// `max_reserved_per_region_subscription` active and soft-deleted ones in the region.
    ReservedPerRegion { max: u32 },
    /// `max_reserved_per_subscription` active and soft-deleted ones over all regions.
    ReservedPerSubscription { max: u32 },
}

/// The cluster limits, in the order storage checks them: a new active cluster beyond
/// `max_active_per_region_subscription`, then a new reserved one (active + soft-deleted) beyond
/// `max_reserved_per_region_subscription` or, when the profile sets one,
/// `max_reserved_per_subscription`. `adds_reserved` is false for a recover (the cluster is
/// reserved already).
pub fn cluster_count_rule(
    profile: &ClusterProfile,
    counts: ClusterCounts,
    adds_reserved: bool,
) -> Result<(), ClusterCountRule> {
    if counts.active >= profile.max_active_per_region_subscription {
        return Err(ClusterCountRule::ActivePerRegion {
            max: profile.max_active_per_region_subscription,
        });
    }
    if adds_reserved
        && counts.active + counts.soft_deleted >= profile.max_reserved_per_region_subscription
    {
        return Err(ClusterCountRule::ReservedPerRegion {
            max: profile.max_reserved_per_region_subscription,
        });
    }
    match profile.max_reserved_per_subscription {
        Some(max) if adds_reserved && counts.reserved_in_subscription >= max => {
            Err(ClusterCountRule::ReservedPerSubscription { max })
        }
        _ => Ok(()),
    }
}

/// Seed 000: a cluster's key must be recoverable: "Key Vault must be set to Soft-delete and
/// Purge-protection".
pub fn is_key_recoverable(soft_delete: bool, purge_protection: bool) -> bool {
    soft_delete && purge_protection
}

/// Key Vault: an HSM-protected key (`RSA-HSM`, `EC-HSM`) needs a premium vault.
pub fn key_type_allowed_in_vault(key_is_hsm: bool, vault_is_premium: bool) -> bool {
    !key_is_hsm || vault_is_premium
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Profile;

    #[test]
    fn names() {
        assert!(is_valid_cluster_name("abc"));
        assert!(is_valid_cluster_name(&"a".repeat(63)));
        assert!(!is_valid_cluster_name("ab"));
        assert!(!is_valid_cluster_name(&"a".repeat(64)));
        assert!(!is_valid_cluster_name("my-cluster"));
        assert!(!is_valid_cluster_name("contoso_logs"));
        assert!(is_valid_workspace_name("ws-1"));
        for bad in ["ws1", "ws.ops", "ws-ops-", "-ws1"] {
            assert!(!is_valid_workspace_name(bad), "{bad}");
        }
        for ok in ["abc", "kv-cmk-01", "A1b", "a23456789012345678901234"] {
            assert!(is_valid_vault_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            "1abc",
            "abc-",
            "ab--c",
            "a_bc",
            &"a".repeat(25),
            "",
            "abc.d",
        ] {
            assert!(!is_valid_vault_name(bad), "{bad}");
        }
        assert!(is_valid_key_name("key-1"));
        assert!(!is_valid_key_name("logs_cmk"));
        assert!(!is_valid_key_name(""));
        assert!(is_valid_key_version_input(""));
        assert!(is_valid_key_version_input(&"A".repeat(32)));
        assert!(!is_valid_key_version_input("v99"));
    }

    #[test]
    fn regions() {
        assert!(is_azure_region("westeurope"));
        assert!(is_azure_region("West Europe"));
        assert!(!is_azure_region("eu"));
        assert!(!is_azure_region("mars"));
        assert!(same_region("West Europe", "westeurope"));
        // No duplicates, and every entry already in canonical form.
        let mut sorted = AZURE_REGIONS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), AZURE_REGIONS.len());
        assert!(AZURE_REGIONS.iter().all(|r| *r == normalize_region(r)));
    }

    #[test]
    fn capacity_and_key_facts() {
        let p = Profile::azure_2020().cluster;
        assert_eq!(capacity_rule(&p, 1000), Ok(()));
        assert_eq!(capacity_rule(&p, 10), Err(CapacityRule::OutOfRange));
        assert_eq!(capacity_rule(&p, 1050), Err(CapacityRule::NotOnStep));
        assert!(is_key_recoverable(true, true));
        assert!(!is_key_recoverable(true, false));
        assert!(key_type_allowed_in_vault(false, false));
        assert!(!key_type_allowed_in_vault(true, false));
        assert!(key_type_allowed_in_vault(true, true));
    }
}
