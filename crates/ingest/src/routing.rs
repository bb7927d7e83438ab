//! Where storage says a batch went: shared storage or a dedicated cluster.
//!
//! The front end does not route. Storage alone decides, from the workspace's link state and the
//! cluster's provisioning (SPEC §6: a completed link sends data to the cluster; a link or unlink
//! still in progress keeps the previous destination; under the 2020 profile a link accepted
//! before the cluster finished provisioning drops the data), and answers the destination with
//! each append (`storage.v1.AppendResponse.routed_to`). This module only names the answer, for
//! outcomes, query parts, metrics and events.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A storage that can hold a workspace's data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Destination {
    /// The region's shared storage, under the Microsoft-managed key.
    Shared,
    /// A dedicated cluster's storage, by cluster name (its ARM id over gRPC).
    Cluster(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Shared => f.write_str("shared storage"),
            Destination::Cluster(name) => write!(f, "cluster {name}"),
        }
    }
}

impl Destination {
    /// A short label for metrics and events: `shared` or `cluster:<name>` (the cluster's
    /// resource name, the last segment of its ARM id).
    pub fn label(&self) -> String {
        match self {
            Destination::Shared => "shared".to_string(),
            Destination::Cluster(id) => format!("cluster:{}", id.rsplit('/').next().unwrap_or(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_cluster_by_its_resource_name() {
        assert_eq!(Destination::Shared.label(), "shared");
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/clusters/c1";
        assert_eq!(Destination::Cluster(id.into()).label(), "cluster:c1");
        assert_eq!(Destination::Cluster("c2".into()).label(), "cluster:c2");
    }
}
