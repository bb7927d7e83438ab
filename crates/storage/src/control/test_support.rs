//! Test fixtures: a control plane with a seeded generator and a movable clock, and helpers that
//! build valid requests, so each test states only what it changes.

use std::collections::BTreeSet;
use std::time::Duration;

use cmksim_sim::{Profile, RandomSource, SeedTree, SimTime};

use super::*;

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const RG: &str = "rg1";
pub const REGION: &str = "westeurope";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const NEWEST_VERSION: &str = "0123456789abcdef0123456789abcdef";

pub struct World {
    pub cp: ControlPlane,
    pub rng: RandomSource,
    pub now: SimTime,
}

pub fn cluster_name(name: &str) -> ResourceName {
    ResourceName::new(SUB, RG, name)
}

pub fn ws_name(name: &str) -> ResourceName {
    ResourceName::new(SUB, RG, name)
}

pub fn cluster_arm_id(name: &str) -> String {
    cluster_name(name).arm_id(ResourceKind::Cluster)
}

pub fn create_body(capacity: u32) -> ClusterCreate {
    ClusterCreate {
        location: Some(REGION.into()),
        sku: Some(SkuInput {
            name: Some("capacityReservation".into()),
            capacity: Some(capacity),
        }),
        billing_type: None,
        identity_type: Some("SystemAssigned".into()),
        key_vault_properties: None,
        is_double_encryption_enabled: None,
    }
}

pub fn identity() -> ClusterIdentity {
    ClusterIdentity {
        principal_id: "p-1".into(),
        tenant_id: TENANT.into(),
    }
}

pub fn kvp(version: &str) -> KeyVaultPropertiesInput {
    KeyVaultPropertiesInput {
        key_vault_uri: "https://kv1.vault.azure.net/".into(),
        key_name: "cmk".into(),
        key_version: version.into(),
    }
}

pub fn good_facts() -> KeyVaultFacts {
    KeyVaultFacts {
        vault_exists: true,
        vault_location: REGION.into(),
        vault_tenant: TENANT.into(),
        soft_delete: true,
        purge_protection: true,
        identity_permissions: BTreeSet::from([
            "get".to_string(),
            "wrapKey".to_string(),
            "unwrapKey".to_string(),
        ]),
        key_exists: true,
        key_enabled: true,
        key_kty: "RSA".into(),
        key_ops: BTreeSet::from(["wrapKey".to_string(), "unwrapKey".to_string()]),
        newest_version: Some(NEWEST_VERSION.into()),
    }
}

pub fn key_ctx(facts: KeyVaultFacts) -> KeyUpdateContext {
    KeyUpdateContext {
        facts,
        storage_revoked: false,
    }
}

pub fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

pub fn days(d: u64) -> Duration {
    Duration::from_secs(d * 86_400)
}

impl World {
    pub fn new(profile: Profile) -> World {
        World {
            cp: ControlPlane::new(profile),
            rng: SeedTree::new(7).source("storage/control"),
            now: SimTime::DEFAULT_EPOCH,
        }
    }

    pub fn advance(&mut self, d: Duration) -> Outcome<()> {
        self.now = self.now.add(d);
        self.cp.tick(self.now)
    }

    pub fn create(&mut self, name: &str, capacity: u32) -> Result<Outcome<String>, ControlError> {
        self.cp.create_cluster(
            self.now,
            &cluster_name(name),
            &create_body(capacity),
            identity(),
            &mut self.rng,
        )
    }

    /// Creates a cluster and lets its provisioning finish.
    pub fn provisioned(&mut self, name: &str) {
        let min = self.cp.profile().cluster.capacity_min_gb_per_day;
        self.create(name, min).expect("create");
        let d = self.cp.profile().cluster.provisioning_duration;
        self.advance(d);
        assert_eq!(
            self.cp
                .get_cluster(&cluster_name(name))
                .unwrap()
                .provisioning_state,
            ProvisioningState::Succeeded
        );
    }

    pub fn workspace(&mut self, name: &str) {
        let body = WorkspaceCreate {
            location: Some(REGION.into()),
            retention_days: None,
        };
        self.cp
            .create_workspace(self.now, &ws_name(name), &body)
            .expect("workspace");
    }

    pub fn link(&mut self, ws: &str, cluster: &str) -> Result<Outcome<String>, ControlError> {
        self.cp.link_workspace(
            self.now,
            &ws_name(ws),
            &cluster_arm_id(cluster),
            &mut self.rng,
        )
    }

    pub fn unlink(&mut self, ws: &str) -> Result<Outcome<String>, ControlError> {
        self.cp
            .unlink_workspace(self.now, &ws_name(ws), &mut self.rng)
    }

    /// Links and lets the link complete.
    pub fn linked(&mut self, ws: &str, cluster: &str) {
        self.link(ws, cluster).expect("link");
        let d = self.cp.profile().cluster.link_duration;
        self.advance(d);
    }

    pub fn patch(
        &mut self,
        name: &str,
        patch: ClusterPatch,
        key: Option<&KeyUpdateContext>,
    ) -> Result<Outcome<Option<String>>, ControlError> {
        self.cp
            .update_cluster(self.now, &cluster_name(name), &patch, key, &mut self.rng)
    }

    pub fn delete(&mut self, name: &str) -> Result<Outcome<String>, ControlError> {
        self.cp
            .delete_cluster(self.now, &cluster_name(name), &mut self.rng)
    }

    /// Runs a call that must be refused and checks it changed nothing (the generator excepted:
    /// draws are not state).
    pub fn refused<T: std::fmt::Debug>(
        &mut self,
        f: impl FnOnce(&mut World) -> Result<T, ControlError>,
    ) -> ControlError {
        let before = self.cp.clone();
        let err = f(self).expect_err("the call must be refused");
        assert_eq!(
            self.cp, before,
            "a refused call changed the state ({err:?})"
        );
        err
    }
}
