//! Names and resource ids: the syntax rules of cluster names, workspace names, ARM resource ids,
//! async-operation status ids and Key Vault key identifiers.
//!
//! Kept apart from the state machines because these are pure string rules with their own tests,
//! and because every entry point must apply them *before* touching state (a refused call leaves no
//! trace). ARM names are case-insensitive, so every resource is stored under a lowercase key
//! ([`ResourceName::key`]) while keeping the spelling the caller used for display.

use serde::{Deserialize, Serialize};

// The name predicates are shared with `cmksim validate`, so they live in `cmksim-sim`.
pub use cmksim_sim::rules::{
    is_valid_cluster_name, is_valid_key_name, is_valid_key_version_input, is_valid_vault_name,
    is_valid_workspace_name,
};

/// The ARM provider namespace of clusters and workspaces.
pub const PROVIDER: &str = "Microsoft.OperationalInsights";

/// Subscription and resource-group segments: bounded so a hostile caller cannot grow state.
pub const SEGMENT_LEN_MAX_CHARS: usize = 90;

/// Which kind of resource a [`ResourceName`] addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceKind {
    Cluster,
    Workspace,
}

impl ResourceKind {
    fn segment(self) -> &'static str {
        match self {
            ResourceKind::Cluster => "clusters",
            ResourceKind::Workspace => "workspaces",
        }
    }
}

/// Subscription, resource group and name of a cluster or a workspace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceName {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl ResourceName {
    pub fn new(subscription: &str, resource_group: &str, name: &str) -> ResourceName {
        ResourceName {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
        }
    }

    /// The ARM id, e.g. `/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1`.
    pub fn arm_id(&self, kind: ResourceKind) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{PROVIDER}/{}/{}",
            self.subscription,
            self.resource_group,
            kind.segment(),
            self.name
        )
    }

    /// The case-insensitive key a resource is stored under (the lowercase ARM id).
    pub fn key(&self, kind: ResourceKind) -> String {
        self.arm_id(kind).to_ascii_lowercase()
    }

    /// True when subscription and resource group are well-formed path segments.
    pub fn scope_is_valid(&self) -> bool {
        is_segment(&self.subscription) && is_segment(&self.resource_group)
    }

    /// Parses an ARM id of `kind`, case-insensitively (the seeds spell it both
    /// `resourceGroups/.../Microsoft.OperationalInsights` and `resourcegroups/.../microsoft.operationalinsights`).
    pub fn parse_arm_id(id: &str, kind: ResourceKind) -> Option<ResourceName> {
        let parts: Vec<&str> = id.trim_end_matches('/').split('/').collect();
        let [empty, subs, sub, rgs, rg, providers, provider, segment, name] = parts.as_slice()
        else {
            return None;
        };
        let ok = empty.is_empty()
            && subs.eq_ignore_ascii_case("subscriptions")
            && rgs.eq_ignore_ascii_case("resourceGroups")
            && providers.eq_ignore_ascii_case("providers")
            && provider.eq_ignore_ascii_case(PROVIDER)
            && segment.eq_ignore_ascii_case(kind.segment())
            && is_segment(sub)
            && is_segment(rg)
            && !name.is_empty();
        ok.then(|| ResourceName::new(sub, rg, name))
    }
}

fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SEGMENT_LEN_MAX_CHARS
        && !s.contains('/')
        && !s.contains(char::is_whitespace)
}

/// The status resource id of an asynchronous operation (seed 000, "Azure-AsyncOperation").
pub fn operation_status_id(subscription: &str, location: &str, operation_id: &str) -> String {
    format!("/subscriptions/{subscription}/providers/{PROVIDER}/locations/{location}/operationStatuses/{operation_id}")
}

/// A Key Vault name from `https://{vault}.vault.azure.net[/]`, or `None` when the URI has
/// another shape.
pub fn vault_name_from_uri(uri: &str) -> Option<String> {
    let host = uri.strip_prefix("https://")?;
    let host = host.strip_suffix('/').unwrap_or(host);
    let vault = host.strip_suffix(".vault.azure.net")?;
    is_valid_vault_name(vault).then(|| vault.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_ids_round_trip_case_insensitively() {
        let n = ResourceName::new("s1", "RG", "c1");
        let id = n.arm_id(ResourceKind::Cluster);
        assert_eq!(id, "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.OperationalInsights/clusters/c1");
        let lower = id.to_ascii_lowercase();
        let parsed = ResourceName::parse_arm_id(&lower, ResourceKind::Cluster).unwrap();
        assert_eq!(
            parsed.key(ResourceKind::Cluster),
            n.key(ResourceKind::Cluster)
        );
        assert!(ResourceName::parse_arm_id(&id, ResourceKind::Workspace).is_none());
        assert!(ResourceName::parse_arm_id("/subscriptions/s1", ResourceKind::Cluster).is_none());
    }

    #[test]
    fn key_vault_identifiers() {
        assert_eq!(
            vault_name_from_uri("https://my-vault.vault.azure.net/").as_deref(),
            Some("my-vault")
        );
        assert_eq!(
            vault_name_from_uri("https://kv1.vault.azure.net").as_deref(),
            Some("kv1")
        );
        assert!(vault_name_from_uri("http://kv1.vault.azure.net").is_none());
        assert!(vault_name_from_uri("https://kv1.vault.azure.com").is_none());
        assert!(vault_name_from_uri("https://1kv.vault.azure.net").is_none());
        assert!(is_valid_key_name("key-1"));
        assert!(!is_valid_key_name("key_1"));
        assert!(is_valid_key_version_input(""));
        assert!(is_valid_key_version_input(&"A".repeat(32)));
        assert!(!is_valid_key_version_input("abc"));
        assert!(is_valid_workspace_name("ws-1"));
        assert!(!is_valid_workspace_name("-ws1"));
    }
}
