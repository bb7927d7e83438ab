//! The SKU rules and the counting limits, read from the profile (never hard-coded).
//!
//! Each check is a pure function over the request and the profile so that the create and update
//! paths share one order of checks, and so the table tests can name the rule a message comes from.
//! The SKU check order follows the seed messages: no SKU → "No SKU was set"; a capacity with
//! another SKU name → "Capacity was provided but SKU is not capacityReservation"; another SKU name
//! → "SKU name is invalid"; no capacity → "Missing Capacity"; then range, then step.

use cmksim_sim::profile::ClusterProfile;
use cmksim_sim::rules::{self, CapacityRule};
use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

use super::errors::ControlError;

/// The only SKU name of a dedicated cluster.
pub const SKU_NAME_CAPACITY_RESERVATION: &str = "capacityReservation";

/// `sku` as the caller sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuInput {
    pub name: Option<String>,
    pub capacity: Option<u32>,
}

/// Validates a SKU and returns the capacity in GB/day. `None` (no `sku` member) is
/// "No SKU was set" at creation; updates skip the call when the patch has no SKU.
pub fn validate_sku(profile: &ClusterProfile, sku: Option<&SkuInput>) -> Result<u32, ControlError> {
    let sku = sku.ok_or(ControlError::NoSku)?;
    let name = sku.name.as_deref().unwrap_or("");
    if name.is_empty() && sku.capacity.is_none() {
        return Err(ControlError::NoSku);
    }
    let name_ok = name.eq_ignore_ascii_case(SKU_NAME_CAPACITY_RESERVATION);
    if !name_ok && sku.capacity.is_some() {
        return Err(ControlError::CapacityWithoutCapacityReservation(
            name.to_string(),
        ));
    }
    if !name_ok {
        return Err(ControlError::InvalidSkuName(name.to_string()));
    }
    let capacity = sku.capacity.ok_or(ControlError::MissingCapacity)?;
    match rules::capacity_rule(profile, capacity) {
        Ok(()) => {}
        Err(CapacityRule::OutOfRange) => {
            return Err(ControlError::CapacityOutOfRange {
                capacity_gb_per_day: capacity,
                min_gb_per_day: profile.capacity_min_gb_per_day,
                max_gb_per_day: profile.capacity_max_gb_per_day,
            })
        }
        Err(CapacityRule::NotOnStep) => {
            return Err(ControlError::CapacityStep {
                capacity_gb_per_day: capacity,
                step_gb_per_day: profile.capacity_step_gb_per_day,
            })
        }
    }
    Ok(capacity)
}

/// A capacity decrease is refused within `capacity_decrease_lock` of the last SKU update
/// (creation counts as the first one: `lastSkuUpdate` is set at creation, as seed 000's GET shows).
pub fn check_capacity_change(
    profile: &ClusterProfile,
    now: SimTime,
    current_gb_per_day: u32,
    new_gb_per_day: u32,
    last_sku_update: SimTime,
) -> Result<(), ControlError> {
    let until = last_sku_update.add(profile.capacity_decrease_lock);
    if new_gb_per_day < current_gb_per_day && now < until {
        return Err(ControlError::CapacityLocked { until });
    }
    Ok(())
}

/// The counts the cluster limits read (one definition, shared with `validate`).
pub use cmksim_sim::rules::ClusterCounts;

/// Refuses a new active cluster beyond `max_active_per_region_subscription`, and a new reserved
/// one (active + soft-deleted) beyond `max_reserved_per_region_subscription` or, when the profile
/// sets one, beyond `max_reserved_per_subscription` over all regions. `adds_reserved` is false for
/// a recover (the cluster is already reserved). The rule is [`rules::cluster_count_rule`]; this
/// gives it storage's errors.
pub fn check_cluster_counts(
    profile: &ClusterProfile,
    counts: ClusterCounts,
    subscription: &str,
    location: &str,
    adds_reserved: bool,
) -> Result<(), ControlError> {
    use rules::ClusterCountRule as R;
    match rules::cluster_count_rule(profile, counts, adds_reserved) {
        Ok(()) => Ok(()),
        Err(R::ActivePerRegion { max }) => Err(ControlError::ActiveClusterLimit {
            subscription: subscription.to_string(),
            location: location.to_string(),
            max,
        }),
        Err(R::ReservedPerRegion { max }) => Err(ControlError::ReservedClusterLimit {
            subscription: subscription.to_string(),
            location: location.to_string(),
            max,
        }),
        Err(R::ReservedPerSubscription { max }) => Err(ControlError::SubscriptionClusterLimit {
            subscription: subscription.to_string(),
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmksim_sim::Profile;

    fn sku(name: Option<&str>, capacity: Option<u32>) -> SkuInput {
        SkuInput {
            name: name.map(str::to_string),
            capacity,
        }
    }

    #[test]
    fn sku_rules_follow_the_profile() {
        let p = Profile::azure_2020().cluster;
        assert_eq!(
            validate_sku(&p, Some(&sku(Some("capacityReservation"), Some(1000)))),
            Ok(1000)
        );
        assert_eq!(validate_sku(&p, None), Err(ControlError::NoSku));
        assert!(matches!(
            validate_sku(&p, Some(&sku(Some("pergb"), Some(1000)))),
            Err(ControlError::CapacityWithoutCapacityReservation(_))
        ));
        assert!(matches!(
            validate_sku(&p, Some(&sku(Some("pergb"), None))),
            Err(ControlError::InvalidSkuName(_))
        ));
        assert_eq!(
            validate_sku(&p, Some(&sku(Some("capacityReservation"), None))),
            Err(ControlError::MissingCapacity)
        );
        assert!(matches!(
            validate_sku(&p, Some(&sku(Some("capacityReservation"), Some(500)))),
            Err(ControlError::CapacityOutOfRange { .. })
        ));
        assert!(matches!(
            validate_sku(&p, Some(&sku(Some("capacityReservation"), Some(1050)))),
            Err(ControlError::CapacityStep { .. })
        ));
        let current = Profile::azure_current().cluster;
        assert_eq!(
            validate_sku(&current, Some(&sku(Some("capacityReservation"), Some(500)))),
            Ok(500)
        );
    }
}
