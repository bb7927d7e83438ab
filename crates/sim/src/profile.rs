//! Behaviour profiles: every timing, limit and window of the simulated Azure, by name.
//!
//! The seeds were written years apart and sometimes disagree; SPEC.md resolves that by offering
//! both behaviours as profiles. The TOML files in `sim-config/` are the single source of the
//! values (each with a comment citing where it comes from); this module gives them types, checks
//! them, and lets a scenario override any value before the run. Nothing else in the simulator
//! hard-codes a timing or a limit.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format_duration, parse_duration};

const AZURE_2020_TOML: &str = include_str!("../../../sim-config/azure-2020.toml");
const AZURE_2021_TOML: &str = include_str!("../../../sim-config/azure-2021.toml");
const AZURE_CURRENT_TOML: &str = include_str!("../../../sim-config/azure-current.toml");

/// The names of the built-in profiles; the first is the default.
pub const BUILTIN_PROFILES: [&str; 3] = ["azure-2020", "azure-2021", "azure-current"];

/// Which seed's wording the error catalogue uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorWording {
    /// Seed 000 (2020): "Workspace association or disassociation operation in process."
    #[serde(rename = "seed-000")]
    Seed000,
    /// Seed 001 (2021): "Workspace link or unlink operation in process."
    #[serde(rename = "seed-001")]
    Seed001,
}

/// What happens to a link requested before the cluster finished provisioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkBeforeProvisioned {
    /// Seed 000: accepted; data ingested before provisioning ends is dropped, unrecoverably.
    AcceptAndDrop,
    /// Seed 001: refused until provisioning succeeded.
    Reject,
}

/// What a delete of a cluster that still has linked workspaces does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteWithLinkedWorkspaces {
    /// Seed 000: "Any associated workspace gets disassociated from the Cluster resource on delete
    /// operation": the cluster is `Deleting` while its workspaces are unlinked.
    UnlinkThenDelete,
    /// Seed 001: "You must unlink all workspaces from the cluster before deleting it."
    Refuse,
}

/// Which key seals the hot tier (the last 14 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HotTierKey {
    /// Seed 000: the hot cache stays under Microsoft-managed keys (yet is deleted on revocation).
    Mmk,
    /// Current documentation: the hot cache is sealed under the customer's key.
    Cmk,
}

/// A complete behaviour profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub error_wording: ErrorWording,
    pub cluster: ClusterProfile,
    pub key_access: KeyAccessProfile,
    pub data: DataProfile,
    pub workspace: WorkspaceProfile,
    pub agent: AgentProfile,
    /// Sentinel's Cosmos DB store (seed 002); the seed's values when a profile file omits it.
    #[serde(default)]
    pub sentinel: SentinelProfile,
    /// Customer Lockbox on dedicated clusters (seeds 001, 003).
    #[serde(default)]
    pub lockbox: crate::governance::LockboxProfile,
    /// Saved searches and log-alert queries in the customer's storage (seed 000).
    #[serde(default)]
    pub byos: crate::governance::ByosProfile,
    /// The daily bill of a capacity reservation (seeds 000, 001); made-up prices.
    #[serde(default)]
    pub bill: crate::governance::BillProfile,
}

/// Cluster control-plane durations and limits (SPEC §4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterProfile {
    #[serde(with = "dur")]
    pub provisioning_duration: Duration,
    #[serde(with = "dur")]
    pub key_update_duration: Duration,
    #[serde(with = "dur")]
    pub link_duration: Duration,
    #[serde(with = "dur")]
    pub unlink_duration: Duration,
    /// How long a delete keeps a cluster `Deleting` when no workspace is linked (0: the soft
    /// delete is immediate). With linked workspaces (`unlink-then-delete`), the delete waits for
    /// their unlinks as well.
    #[serde(with = "dur")]
    pub delete_duration: Duration,
    #[serde(with = "dur")]
    pub soft_delete_retention: Duration,
    pub max_active_per_region_subscription: u32,
    pub max_reserved_per_region_subscription: u32,
    pub capacity_min_gb_per_day: u32,
    pub capacity_max_gb_per_day: u32,
    pub capacity_step_gb_per_day: u32,
    #[serde(with = "dur")]
    pub capacity_decrease_lock: Duration,
    pub max_workspaces_per_cluster: u32,
    pub link_operations_max: u32,
    #[serde(with = "dur")]
    pub link_operations_window: Duration,
    pub link_before_provisioned: LinkBeforeProvisioned,
    pub double_encryption_default: bool,
    /// Reserved clusters (active + soft-deleted) per subscription over all regions; `None`
    /// ("unlimited" in the files): only the per-region limits apply. Seed 001's "limit of three
    /// clusters per subscription", offered as an override of azure-2021.
    #[serde(with = "opt_count")]
    pub max_reserved_per_subscription: Option<u32>,
    pub delete_with_linked_workspaces: DeleteWithLinkedWorkspaces,
    /// Regions (ARM spelling, lowercase) where a cluster cannot have double encryption: a create
    /// that leaves `isDoubleEncryptionEnabled` at its default `true` (or sets it) is refused there
    /// (seed 001: "<region> doesn’t support Double Encryption for clusters.").
    pub double_encryption_unsupported_regions: Vec<String>,
}

impl ClusterProfile {
    /// Whether a cluster in `location` may have double encryption (either spelling of the region).
    pub fn double_encryption_supported(&self, location: &str) -> bool {
        let region = crate::rules::normalize_region(location);
        !self.double_encryption_unsupported_regions.contains(&region)
    }
}

/// The storage's Key Vault access loop (SPEC §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAccessProfile {
    #[serde(with = "dur")]
    pub poll_interval_min: Duration,
    #[serde(with = "dur")]
    pub poll_interval_max: Duration,
    /// `None`: transient outages are ridden on the cached AEK without a fixed limit.
    #[serde(with = "opt_dur")]
    pub outage_grace: Option<Duration>,
    #[serde(with = "dur")]
    pub buffer_window: Duration,
    #[serde(with = "dur")]
    pub revocation_deadline: Duration,
    #[serde(with = "dur")]
    pub resume_delay: Duration,
    pub versionless_keys: bool,
    #[serde(with = "dur")]
    pub version_follow_deadline: Duration,
    /// A planted bug for tests only: the storage resumes this much later than `resume_delay`.
    /// The chaos sweep's test sets it to show that a sweep finds and shrinks a late resume;
    /// never read from a file (`skip`), never shown, zero everywhere else.
    #[serde(skip)]
    pub planted_resume_lag: Duration,
}

/// The data plane (SPEC §5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataProfile {
    #[serde(with = "dur")]
    pub hot_tier_window: Duration,
    pub hot_tier_key: HotTierKey,
}

/// Workspace settings (seed 003).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceProfile {
    pub retention_default_days: u32,
    pub retention_min_days: u32,
    pub retention_max_days: u32,
}

/// Agents (seed 003).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    #[serde(with = "dur")]
    pub retry_interval: Duration,
    #[serde(with = "dur")]
    pub retry_for: Duration,
    pub queue_capacity_records: u64,
    pub drop_first_table: String,
}

/// Sentinel's own key-access loop over its Cosmos DB store (seed 002, SPEC §10). The seed gives
/// only the bounds ("within one hour"); the split of each hour between polling and the delays
/// below is the simulator's, chosen so that every bound holds in the worst case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelProfile {
    /// unwrapKey of the account key through the Cosmos DB principal, at a uniform random
    /// interval in `[poll_interval_min, poll_interval_max]`.
    #[serde(with = "dur")]
    pub poll_interval_min: Duration,
    #[serde(with = "dur")]
    pub poll_interval_max: Duration,
    /// seed 002: "Azure Sentinel will honor the change ... within one hour".
    #[serde(with = "dur")]
    pub revocation_deadline: Duration,
    /// After a successful poll ends a revocation, data comes back this much later (seed 002:
    /// "Azure Sentinel will restore access to the data within an hour"; poll_interval_max +
    /// restore_delay <= 1 h).
    #[serde(with = "dur")]
    pub restore_delay: Duration,
    /// After Sentinel first sees the cluster name another key or version, it rewraps its
    /// account key this much later (seed 002: "supports the new key within an hour", "will
    /// detect the key change ... within 1 hour"; poll_interval_max + key_follow_delay <= 1 h).
    #[serde(with = "dur")]
    pub key_follow_delay: Duration,
}

impl Default for SentinelProfile {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        SentinelProfile {
            poll_interval_min: Duration::from_secs(5 * MINUTE),
            poll_interval_max: Duration::from_secs(15 * MINUTE),
            revocation_deadline: Duration::from_secs(60 * MINUTE),
            restore_delay: Duration::from_secs(40 * MINUTE),
            key_follow_delay: Duration::from_secs(30 * MINUTE),
        }
    }
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile {0:?}: the built-in profiles are {builtin}", builtin = BUILTIN_PROFILES.join(", "))]
    Unknown(String),
    #[error("profile {name}: {message}")]
    Invalid { name: String, message: String },
}

impl Profile {
    /// A built-in profile by name (`azure-2020`, `azure-2021`, `azure-current`).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        Profile::builtin_with_overrides(name, None)
    }

    /// The default profile, azure-2020.
    pub fn azure_2020() -> Profile {
        Profile::builtin("azure-2020").expect("the embedded azure-2020 profile is valid")
    }

    /// The azure-2021 profile (seed 001).
    pub fn azure_2021() -> Profile {
        Profile::builtin("azure-2021").expect("the embedded azure-2021 profile is valid")
    }

    /// The azure-current profile.
    pub fn azure_current() -> Profile {
        Profile::builtin("azure-current").expect("the embedded azure-current profile is valid")
    }

    /// A built-in profile with a scenario's overrides merged in (tables merge key by key).
    pub fn builtin_with_overrides(
        name: &str,
        overrides: Option<&toml::Table>,
    ) -> Result<Profile, ProfileError> {
        let text = match name {
            "azure-2020" => AZURE_2020_TOML,
            "azure-2021" => AZURE_2021_TOML,
            "azure-current" => AZURE_CURRENT_TOML,
            other => return Err(ProfileError::Unknown(other.to_string())),
        };
        Profile::from_toml(name, text, overrides)
    }

    /// A profile from TOML text, with optional overrides merged in, then checked.
    pub fn from_toml(
        name: &str,
        text: &str,
        overrides: Option<&toml::Table>,
    ) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            name: name.to_string(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        if let Some(overrides) = overrides {
            merge(&mut table, overrides);
        }
        let profile: Profile = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().to_string()))?;
        profile.check().map_err(invalid)?;
        Ok(profile)
    }

    /// Cross-field checks that serde cannot express.
    fn check(&self) -> Result<(), String> {
        let ka = &self.key_access;
        if ka.poll_interval_min.is_zero() || ka.poll_interval_min > ka.poll_interval_max {
            return Err("key_access.poll_interval_min must be > 0 and <= poll_interval_max".into());
        }
        let c = &self.cluster;
        if c.capacity_step_gb_per_day == 0 || c.capacity_min_gb_per_day > c.capacity_max_gb_per_day
        {
            return Err("cluster capacity range is empty or its step is 0".into());
        }
        if c.max_active_per_region_subscription > c.max_reserved_per_region_subscription {
            return Err("cluster.max_active_per_region_subscription exceeds max_reserved".into());
        }
        if c.max_reserved_per_subscription == Some(0) {
            return Err(
                "cluster.max_reserved_per_subscription must be > 0 or \"unlimited\"".into(),
            );
        }
        if let Some(region) = c
            .double_encryption_unsupported_regions
            .iter()
            .find(|r| !crate::rules::is_azure_region(r) || crate::rules::normalize_region(r) != **r)
        {
            return Err(format!(
                "cluster.double_encryption_unsupported_regions: {:?} is no Azure region in ARM spelling (lowercase, no spaces)",
                crate::text::echo(region)
            ));
        }
        let w = &self.workspace;
        if !(w.retention_min_days..=w.retention_max_days).contains(&w.retention_default_days) {
            return Err("workspace.retention_default_days is outside min..max".into());
        }
        if self.agent.retry_interval.is_zero() {
            return Err("agent.retry_interval must be > 0".into());
        }
        let s = &self.sentinel;
        if s.poll_interval_min.is_zero() || s.poll_interval_min > s.poll_interval_max {
            return Err("sentinel.poll_interval_min must be > 0 and <= poll_interval_max".into());
        }
        if s.poll_interval_max > s.revocation_deadline {
            return Err("sentinel.poll_interval_max exceeds sentinel.revocation_deadline".into());
        }
        crate::governance::check(&self.lockbox, &self.byos, &self.bill)?;
        Ok(())
    }
}

/// Merges `overrides` into `base`: nested tables key by key, other values replaced.
fn merge(base: &mut toml::Table, overrides: &toml::Table) {
    for (key, value) in overrides {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(override_table)) => {
                merge(base_table, override_table)
            }
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The duration (de)serializer of profile fields (also used by [`crate::governance`]).
pub(crate) mod dur {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// A count that may be "unlimited" (`None`).
mod opt_count {
    use super::*;

    pub fn serialize<S: Serializer>(n: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.serialize_u32(*n),
            None => s.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Count {
            Number(u32),
            Text(String),
        }
        match Count::deserialize(d)? {
            Count::Number(n) => Ok(Some(n)),
            Count::Text(t) if t == "unlimited" => Ok(None),
            Count::Text(t) => Err(serde::de::Error::custom(format!(
                "expected a count or \"unlimited\", found {:?}",
                crate::text::echo(&t)
            ))),
        }
    }
}

mod opt_dur {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_str("unlimited"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text == "unlimited" {
            return Ok(None);
        }
        parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load_with_seed_values() {
        let p = Profile::azure_2020();
        assert_eq!(p.key_access.poll_interval_min, Duration::from_secs(6));
        assert_eq!(p.key_access.poll_interval_max, Duration::from_secs(60));
        assert_eq!(p.key_access.outage_grace, Some(Duration::from_secs(1800)));
        assert_eq!(p.key_access.revocation_deadline, Duration::from_secs(3600));
        assert_eq!(p.cluster.max_active_per_region_subscription, 2);
        assert_eq!(p.error_wording, ErrorWording::Seed000);
        let c = Profile::azure_current();
        assert_eq!(c.key_access.outage_grace, None);
        assert!(c.key_access.versionless_keys);
        assert_eq!(
            (
                c.cluster.max_active_per_region_subscription,
                c.cluster.max_reserved_per_region_subscription
            ),
            (5, 7)
        );
        assert_eq!(c.cluster.capacity_min_gb_per_day, 100);
    }

    #[test]
    fn azure_2021_follows_seed_001() {
        let p = Profile::azure_2021();
        assert_eq!(p.name, "azure-2021");
        assert_eq!(p.error_wording, ErrorWording::Seed001);
        let c = &p.cluster;
        assert_eq!(c.link_before_provisioned, LinkBeforeProvisioned::Reject);
        assert_eq!(
            c.delete_with_linked_workspaces,
            DeleteWithLinkedWorkspaces::Refuse
        );
        assert!(c.double_encryption_default);
        assert!(
            !c.delete_duration.is_zero(),
            "seed 001: cluster delete is a long operation"
        );
        assert!(!c.double_encryption_supported("westcentralus"));
        assert!(!c.double_encryption_supported("West Central US"));
        assert!(c.double_encryption_supported("westeurope"));
        // The lines it follows where seed 001 contradicts itself, and the overrides of the others.
        assert_eq!(c.max_workspaces_per_cluster, 1000);
        assert_eq!(
            (
                c.max_active_per_region_subscription,
                c.max_reserved_per_region_subscription
            ),
            (2, 4)
        );
        assert_eq!(c.max_reserved_per_subscription, None);
        let overrides: toml::Table =
            "[cluster]\nmax_workspaces_per_cluster = 100\nmax_reserved_per_subscription = 3\n"
                .parse()
                .unwrap();
        let o = Profile::builtin_with_overrides("azure-2021", Some(&overrides)).unwrap();
        assert_eq!(o.cluster.max_workspaces_per_cluster, 100);
        assert_eq!(o.cluster.max_reserved_per_subscription, Some(3));
        // Capacity as seed 001 states it: 1,000 to 3,000 GB per day, steps of 100.
        assert_eq!(
            (
                c.capacity_min_gb_per_day,
                c.capacity_max_gb_per_day,
                c.capacity_step_gb_per_day
            ),
            (1000, 3000, 100)
        );
        // The other profiles keep today's behaviour, explicitly.
        for other in [Profile::azure_2020(), Profile::azure_current()] {
            let c = &other.cluster;
            assert_eq!(
                c.delete_with_linked_workspaces,
                DeleteWithLinkedWorkspaces::UnlinkThenDelete,
                "{}",
                other.name
            );
            assert!(c.double_encryption_unsupported_regions.is_empty());
            assert!(c.delete_duration.is_zero(), "{}", other.name);
            assert_eq!(c.max_reserved_per_subscription, None);
        }
    }

    #[test]
    fn every_builtin_profile_loads_and_round_trips() {
        for name in BUILTIN_PROFILES {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.name, name);
            // What `cmksim profile NAME` prints loads back to the same profile.
            let text = toml::to_string(&p).unwrap();
            assert_eq!(Profile::from_toml(name, &text, None).unwrap(), p, "{name}");
        }
    }

    #[test]
    fn new_cluster_knobs_are_checked() {
        let bad_region: toml::Table =
            "[cluster]\ndouble_encryption_unsupported_regions = [\"mars\"]\n"
                .parse()
                .unwrap();
        let e = Profile::builtin_with_overrides("azure-2021", Some(&bad_region)).unwrap_err();
        assert!(e.to_string().contains("mars"), "{e}");
        let zero: toml::Table = "[cluster]\nmax_reserved_per_subscription = 0\n"
            .parse()
            .unwrap();
        assert!(Profile::builtin_with_overrides("azure-2021", Some(&zero)).is_err());
        let word: toml::Table = "[cluster]\nmax_reserved_per_subscription = \"lots\"\n"
            .parse()
            .unwrap();
        let e = Profile::builtin_with_overrides("azure-2021", Some(&word)).unwrap_err();
        assert!(e.to_string().contains("unlimited"), "{e}");
        let refuse: toml::Table = "[cluster]\ndelete_with_linked_workspaces = \"refuse\"\n"
            .parse()
            .unwrap();
        let p = Profile::builtin_with_overrides("azure-2020", Some(&refuse)).unwrap();
        assert_eq!(
            p.cluster.delete_with_linked_workspaces,
            DeleteWithLinkedWorkspaces::Refuse
        );
    }

    #[test]
    fn overrides_merge_and_are_checked() {
        let overrides: toml::Table = "[key_access]\nbuffer_window = \"2h\"\n".parse().unwrap();
        let p = Profile::builtin_with_overrides("azure-2020", Some(&overrides)).unwrap();
        assert_eq!(p.key_access.buffer_window, Duration::from_secs(7200));
        assert_eq!(p.key_access.resume_delay, Duration::from_secs(1800));

        let bad: toml::Table = "[key_access]\nbuffer_widow = \"2h\"\n".parse().unwrap();
        let e = Profile::builtin_with_overrides("azure-2020", Some(&bad)).unwrap_err();
        assert!(e.to_string().contains("buffer_widow"), "{e}");

        let bad_duration: toml::Table = "[key_access]\nresume_delay = \"30 minutes\"\n"
            .parse()
            .unwrap();
        assert!(Profile::builtin_with_overrides("azure-2020", Some(&bad_duration)).is_err());

        let inverted: toml::Table = "[key_access]\npoll_interval_min = \"2m\"\n"
            .parse()
            .unwrap();
        assert!(Profile::builtin_with_overrides("azure-2020", Some(&inverted)).is_err());
        assert!(matches!(
            Profile::builtin("azure-2019"),
            Err(ProfileError::Unknown(_))
        ));
    }
}
