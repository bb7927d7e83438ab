//! The levers of the live dashboard: what a person can do to a running world (disable the key,
//! take Key Vault down, ...), named once for both of the dashboard's modes.
//!
//! Why here, in the scenario crate: a lever is a timeline step of the scenario format
//! ([`Lever::step`]), so that in a simulated run (`cmksim demo --web`, played by
//! `cmksim_world::control`) the event log, the report and the oracle see no difference from the
//! scenario's own steps; and the HTTPS door's live mode (`cmksim serve all`, which does not
//! depend on the world crate) shows the same buttons with the same names and labels, minus the
//! ones live services cannot do ([`Lever::live`]).

use crate::model::{
    AccessPolicy, Action, Fault, Host, KeyPermission, KeyRef, PrincipalRef, Scenario, StepKind,
    VaultFault, VersionSel,
};

/// A lever was pulled on a world without a cluster that has a customer-managed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the scenario has no cluster with a customer-managed key to act on")]
pub struct NoCmkCluster;

/// What a person can do to the running world, each one a timeline step of the scenario format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lever {
    DisableKey,
    EnableKey,
    RemoveAccessPolicy,
    RestoreAccessPolicy,
    KeyvaultDown,
    KeyvaultUp,
    PartitionStorage,
    RepairStorage,
    RotateKey,
    UpdateCluster,
}

impl Lever {
    /// Every lever, in the order the dashboard shows them (pairs: the harm, then its undoing).
    pub const ALL: [Lever; 10] = [
        Lever::DisableKey,
        Lever::EnableKey,
        Lever::RemoveAccessPolicy,
        Lever::RestoreAccessPolicy,
        Lever::KeyvaultDown,
        Lever::KeyvaultUp,
        Lever::PartitionStorage,
        Lever::RepairStorage,
        Lever::RotateKey,
        Lever::UpdateCluster,
    ];

    /// The lever's name on the wire and in step labels (`disable-key`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lever::DisableKey => "disable-key",
            Lever::EnableKey => "enable-key",
            Lever::RemoveAccessPolicy => "remove-access-policy",
            Lever::RestoreAccessPolicy => "restore-access-policy",
            Lever::KeyvaultDown => "keyvault-down",
            Lever::KeyvaultUp => "keyvault-up",
            Lever::PartitionStorage => "partition-storage",
            Lever::RepairStorage => "repair-storage",
            Lever::RotateKey => "rotate-key",
            Lever::UpdateCluster => "update-cluster",
        }
    }

    /// The lever named `name`, if any.
    pub fn parse(name: &str) -> Option<Lever> {
        Lever::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Lever::DisableKey => "Disable key",
            Lever::EnableKey => "Enable key",
            Lever::RemoveAccessPolicy => "Remove access policy",
            Lever::RestoreAccessPolicy => "Restore access policy",
            Lever::KeyvaultDown => "Key Vault down",
            Lever::KeyvaultUp => "Key Vault up",
            Lever::PartitionStorage => "Partition storage from vault",
            Lever::RepairStorage => "Repair partition",
            Lever::RotateKey => "Rotate key",
            Lever::UpdateCluster => "Update cluster to newest key version",
        }
    }

    /// The timeline step this lever is, for the first cluster of `scenario` that has a key
    /// (the cluster the dashboard teaches about).
    pub fn step(self, scenario: &Scenario) -> Result<StepKind, NoCmkCluster> {
        let cluster = scenario
            .world
            .clusters
            .iter()
            .find(|c| c.key.is_some())
            .ok_or(NoCmkCluster)?;
        // Checked just above: the cluster has a key.
        let key: &KeyRef = cluster.key.as_ref().ok_or(NoCmkCluster)?;
        let principal = PrincipalRef::Cluster(cluster.name.clone());
        let action = |a: Action| Ok(StepKind::Action(a));
        let fault = |f: Fault| {
            Ok(StepKind::Fault {
                fault: f,
                duration: None,
            })
        };
        let update_key = |enabled: bool| {
            action(Action::UpdateKey {
                vault: key.vault.clone(),
                key: key.key.clone(),
                version: VersionSel::Latest,
                enabled: Some(enabled),
                not_before: None,
                expires: None,
                ops: None,
            })
        };
        match self {
            Lever::DisableKey => update_key(false),
            Lever::EnableKey => update_key(true),
            Lever::RemoveAccessPolicy => action(Action::RemoveAccessPolicy {
                vault: key.vault.clone(),
                principal,
            }),
            Lever::RestoreAccessPolicy => {
                // The world's own policy for the cluster when it has one, else the three
                // permissions a key update requires (Get, Wrap Key, Unwrap Key).
                let permissions = scenario
                    .world
                    .access_policies
                    .iter()
                    .find(|p| p.vault == key.vault && p.principal == principal)
                    .map(|p| p.permissions.clone())
                    .unwrap_or_else(|| {
                        vec![
                            KeyPermission::Get,
                            KeyPermission::WrapKey,
                            KeyPermission::UnwrapKey,
                        ]
                    });
                action(Action::SetAccessPolicy(AccessPolicy {
                    vault: key.vault.clone(),
                    principal,
                    permissions,
                }))
            }
            Lever::KeyvaultDown => fault(Fault::Keyvault(VaultFault::Down)),
            Lever::KeyvaultUp => fault(Fault::Keyvault(VaultFault::Up)),
            Lever::PartitionStorage => fault(Fault::Partition(Host::Storage, Host::Keyvault)),
            Lever::RepairStorage => fault(Fault::Repair(Host::Storage, Host::Keyvault)),
            Lever::RotateKey => action(Action::RotateKey {
                vault: key.vault.clone(),
                key: key.key.clone(),
            }),
            Lever::UpdateCluster => action(Action::UpdateCluster {
                cluster: cluster.name.clone(),
                capacity_gb_per_day: None,
                billing_type: None,
                key: Some(KeyRef {
                    vault: key.vault.clone(),
                    key: key.key.clone(),
                    version: VersionSel::Latest,
                }),
            }),
        }
    }
}

impl Lever {
    /// True when live services can do it: a network partition needs the simulated network
    /// (`run --live` refuses it for the same reason).
    pub fn live(self) -> bool {
        !matches!(self, Lever::PartitionStorage | Lever::RepairStorage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lever_has_one_name_and_parses_back() {
        for lever in Lever::ALL {
            assert_eq!(Lever::parse(lever.as_str()), Some(lever));
            assert!(!lever.label().is_empty());
        }
        assert_eq!(Lever::parse("drop-table"), None);
        let live: Vec<&str> = Lever::ALL
            .iter()
            .filter(|l| l.live())
            .map(|l| l.as_str())
            .collect();
        assert_eq!(live.len(), 8);
        assert!(!live.contains(&"partition-storage"));
    }
}
