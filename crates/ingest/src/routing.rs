//! Where a workspace's data goes at ingest time, and where it has gone before.
//!
//! Routing is decided per batch from the workspace's link state as storage reports it (SPEC §6):
//! a completed link sends data to that cluster's storage; a link or unlink still in progress
//! keeps the previous destination (shared storage while linking, the cluster while unlinking);
//! an unlinked workspace writes to shared storage under the Microsoft-managed key. Under the 2020
//! profile a link accepted before the cluster finished provisioning drops the data,
//! unrecoverably (seed 000).
//!
//! Queries must read every storage that ever received the workspace's data, so the front end
//! keeps, per workspace, a history of destinations with the span of `TimeGenerated` they hold.
//! The history grows by one entry per distinct destination (shared storage plus each cluster the
//! workspace was ever linked to), which the link-operation limit (two per 30 days) keeps small.

use std::collections::BTreeMap;
use std::fmt;

use cmksim_sim::profile::LinkBeforeProvisioned;
use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

use crate::query::TimeRange;

/// A storage that can hold a workspace's data.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Destination {
    /// The region's shared storage, under the Microsoft-managed key.
    Shared,
    /// A dedicated cluster's storage, by cluster name.
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

/// A workspace's link state as storage reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkState {
    Unlinked,
    /// A link operation in progress; `cluster_provisioned` is false when the link was accepted
    /// before the cluster finished provisioning (2020 profile).
    Linking {
        cluster: String,
        cluster_provisioned: bool,
    },
    Linked {
        cluster: String,
    },
    Unlinking {
        cluster: String,
    },
}

/// What storage tells the front end about a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceRouting {
    pub workspace: String,
    pub link: LinkState,
    /// Clusters storage knows held this workspace's data (may be empty if storage keeps no
    /// history); always read by queries, since their time spans are unknown here.
    pub clusters_ever: Vec<String>,
}

/// The routing decision for one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteDecision {
    Route(Destination),
    /// Dropped before reaching any storage: link accepted before provisioning (2020 profile).
    DropNotProvisioned {
        cluster: String,
    },
}

/// Decides where a batch goes from the workspace's link state.
pub fn decide(link: &LinkState, policy: LinkBeforeProvisioned) -> RouteDecision {
    match link {
        LinkState::Unlinked => RouteDecision::Route(Destination::Shared),
        LinkState::Linking {
            cluster,
            cluster_provisioned: false,
        } if policy == LinkBeforeProvisioned::AcceptAndDrop => RouteDecision::DropNotProvisioned {
            cluster: cluster.clone(),
        },
        // The link is not complete: data keeps going where it went before the link.
        LinkState::Linking { .. } => RouteDecision::Route(Destination::Shared),
        LinkState::Linked { cluster } => {
            RouteDecision::Route(Destination::Cluster(cluster.clone()))
        }
        // The unlink is not complete: data keeps going to the cluster.
        LinkState::Unlinking { cluster } => {
            RouteDecision::Route(Destination::Cluster(cluster.clone()))
        }
    }
}

/// One destination's share of a workspace's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationSpan {
    /// Ingest times of the first and last batch routed there.
    pub first_routed_at: SimTime,
    pub last_routed_at: SimTime,
    /// The span of `TimeGenerated` of the records routed there (what queries prune on).
    pub time_generated_min: SimTime,
    pub time_generated_max: SimTime,
    pub records: u64,
}

/// Per-workspace destination history.
#[derive(Clone, Debug, Default)]
pub struct RoutingHistory {
    by_workspace: BTreeMap<String, BTreeMap<Destination, DestinationSpan>>,
}

impl RoutingHistory {
    /// Notes that `records` records with `TimeGenerated` in `[tg_min, tg_max]` went to
    /// `destination` at `now`.
    pub fn note(
        &mut self,
        workspace: &str,
        destination: &Destination,
        now: SimTime,
        tg_min: SimTime,
        tg_max: SimTime,
        records: u64,
    ) {
        debug_assert!(tg_min <= tg_max);
        let spans = self.by_workspace.entry(workspace.to_string()).or_default();
        spans
            .entry(destination.clone())
            .and_modify(|span| {
                span.last_routed_at = span.last_routed_at.max(now);
                span.time_generated_min = span.time_generated_min.min(tg_min);
                span.time_generated_max = span.time_generated_max.max(tg_max);
                span.records += records;
            })
            .or_insert(DestinationSpan {
                first_routed_at: now,
                last_routed_at: now,
                time_generated_min: tg_min,
                time_generated_max: tg_max,
                records,
            });
    }

    /// The recorded spans of a workspace, by destination.
    pub fn spans(&self, workspace: &str) -> BTreeMap<Destination, DestinationSpan> {
        self.by_workspace
            .get(workspace)
            .cloned()
            .unwrap_or_default()
    }

    /// Every destination a query of `range` must read: those whose recorded span overlaps the
    /// range, plus the workspace's current destination and the clusters storage reports that this
    /// history does not know (their spans are unknown, so they cannot be pruned). Sorted, unique.
    pub fn destinations_for(
        &self,
        routing: &WorkspaceRouting,
        range: &TimeRange,
    ) -> Vec<Destination> {
        let spans = self.by_workspace.get(&routing.workspace);
        let mut out: Vec<Destination> = spans
            .into_iter()
            .flatten()
            .filter(|(_, span)| {
                span.time_generated_min < range.to && span.time_generated_max >= range.from
            })
            .map(|(d, _)| d.clone())
            .collect();
        let current = match decide(&routing.link, LinkBeforeProvisioned::Reject) {
            RouteDecision::Route(d) => d,
            RouteDecision::DropNotProvisioned { .. } => Destination::Shared,
        };
        out.push(current);
        // Clusters storage reports but this front end never routed to (e.g. after a restart):
        // their spans are unknown, so they are always read.
        out.extend(
            routing
                .clusters_ever
                .iter()
                .cloned()
                .map(Destination::Cluster)
                .filter(|d| !spans.is_some_and(|s| s.contains_key(d))),
        );
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkBeforeProvisioned::*;

    fn c(name: &str) -> Destination {
        Destination::Cluster(name.into())
    }

    #[test]
    fn routing_follows_the_link_state() {
        assert_eq!(
            decide(&LinkState::Unlinked, AcceptAndDrop),
            RouteDecision::Route(Destination::Shared)
        );
        let linking = LinkState::Linking {
            cluster: "c1".into(),
            cluster_provisioned: true,
        };
        assert_eq!(
            decide(&linking, AcceptAndDrop),
            RouteDecision::Route(Destination::Shared)
        );
        let linked = LinkState::Linked {
            cluster: "c1".into(),
        };
        assert_eq!(decide(&linked, Reject), RouteDecision::Route(c("c1")));
        let unlinking = LinkState::Unlinking {
            cluster: "c1".into(),
        };
        assert_eq!(decide(&unlinking, Reject), RouteDecision::Route(c("c1")));
    }

    #[test]
    fn link_before_provisioning_drops_only_under_accept_and_drop() {
        let early = LinkState::Linking {
            cluster: "c1".into(),
            cluster_provisioned: false,
        };
        assert_eq!(
            decide(&early, AcceptAndDrop),
            RouteDecision::DropNotProvisioned {
                cluster: "c1".into()
            }
        );
        assert_eq!(
            decide(&early, Reject),
            RouteDecision::Route(Destination::Shared)
        );
    }

    #[test]
    fn queries_read_only_destinations_whose_span_overlaps() {
        let mut h = RoutingHistory::default();
        h.note(
            "ws1",
            &Destination::Shared,
            SimTime(100),
            SimTime(0),
            SimTime(100),
            5,
        );
        h.note("ws1", &c("c1"), SimTime(300), SimTime(200), SimTime(300), 5);
        h.note("ws2", &c("c9"), SimTime(300), SimTime(0), SimTime(300), 5);
        let routing = WorkspaceRouting {
            workspace: "ws1".into(),
            link: LinkState::Unlinked,
            clusters_ever: vec![],
        };
        let range = |from, to| TimeRange {
            from: SimTime(from),
            to: SimTime(to),
        };
        assert_eq!(
            h.destinations_for(&routing, &range(0, 1000)),
            vec![Destination::Shared, c("c1")]
        );
        // Only shared (current) even though c1's span ends before the range.
        assert_eq!(
            h.destinations_for(&routing, &range(301, 1000)),
            vec![Destination::Shared]
        );
        let linked = WorkspaceRouting {
            link: LinkState::Linked {
                cluster: "c1".into(),
            },
            clusters_ever: vec!["c0".into()],
            ..routing
        };
        assert_eq!(
            h.destinations_for(&linked, &range(101, 150)),
            vec![c("c0"), c("c1")],
            "current + storage-reported, never another workspace's c9"
        );
        assert_eq!(h.spans("ws1")[&c("c1")].records, 5);
    }
}
