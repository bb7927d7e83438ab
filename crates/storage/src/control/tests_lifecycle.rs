//! Lifecycle tests in simulated time: provisioning, links and their limits, key updates, delete,
//! recover and purge, the cluster-count limits of both profiles, the capacity lock, routing during
//! transitions, workspace locks, and "a refused call changes nothing".

use std::time::Duration;

use cmksim_sim::{EventKind, Profile};

use super::test_support::*;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn provisioning_completes_at_the_profile_duration() {
    let mut w = World::new(Profile::azure_2020());
    let start = w.now;
    let op = w.create("clu1", 1000).unwrap();
    assert_eq!(op.events[0].kind(), "storage.cluster.created");
    let c = w.cp.get_cluster(&cluster_name("clu1")).unwrap();
    assert_eq!(c.provisioning_state, ProvisioningState::ProvisioningAccount);
    assert!(c.is_double_encryption_enabled);
    assert_eq!(c.billing_type, BillingType::Cluster);
    assert!(cmksim_sim::ids::is_guid(&c.cluster_id));
    let status = w.cp.get_operation(SUB, &op.value).unwrap();
    assert_eq!(status.status, OperationStatus::InProgress);
    assert!(
        status
            .id
            .contains("/locations/westeurope/operationStatuses/"),
        "{}",
        status.id
    );
    let provisioning = w.cp.profile().cluster.provisioning_duration;
    assert_eq!(w.cp.next_due(w.now), Some(start.add(provisioning)));

    assert!(w.advance(provisioning - ms(1)).effects.is_empty());
    let out = w.advance(ms(1));
    assert!(
        matches!(&out.effects[..], [ControlEffect::ProvisioningSucceeded { at, .. }] if *at == start.add(provisioning))
    );
    assert_eq!(
        out.events[0].narrate(),
        "cluster clu1 provisioning finished after 3h; workspaces can now be linked"
    );
    assert_eq!(
        w.cp.get_cluster(&cluster_name("clu1"))
            .unwrap()
            .provisioning_state,
        ProvisioningState::Succeeded
    );
    let status = w.cp.get_operation(SUB, &op.value).unwrap();
    assert_eq!(
        (status.status, status.end_time.is_some()),
        (OperationStatus::Succeeded, true)
    );
    assert_eq!(w.cp.next_due(w.now), None);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["status"], "Succeeded");
    assert!(json.get("startTime").is_some());
}

#[test]
fn link_before_provisioning_accepted_and_dropped_under_azure_2020() {
    let mut w = World::new(Profile::azure_2020());
    w.create("clu1", 1000).unwrap();
    w.workspace("wks1");
    let out = w.link("wks1", "clu1").unwrap();
    assert!(out.events[0].narrate().contains("dropped"));
    let expect_drop = Routing::DropNotProvisioned {
        cluster: cluster_arm_id("clu1"),
    };
    assert_eq!(w.cp.routing(&ws_name("wks1"), w.now).unwrap(), expect_drop);
    let out = w.advance(w.cp.profile().cluster.link_duration);
    assert!(matches!(
        out.effects[..],
        [ControlEffect::LinkCompleted { .. }]
    ));
    assert_eq!(w.cp.routing(&ws_name("wks1"), w.now).unwrap(), expect_drop);
    w.advance(hours(3));
    assert!(matches!(
        w.cp.routing(&ws_name("wks1"), w.now).unwrap(),
        Routing::Cluster { .. }
    ));
}

#[test]
fn link_before_provisioning_refused_under_azure_current() {
    let mut w = World::new(Profile::azure_current());
    w.create("clu1", 500).unwrap();
    w.workspace("wks1");
    let err = w.refused(|w| w.link("wks1", "clu1"));
    assert!(matches!(err, ControlError::ClusterNotProvisioned(_)));
    assert_eq!(
        w.cp.azure_error(&err).message,
        "Operation cannot be executed now. Wait for the Async operation to complete and try again."
    );
    w.advance(hours(3));
    w.link("wks1", "clu1").unwrap();
}

#[test]
fn third_link_in_the_window_is_refused_then_allowed() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    w.workspace("wks1");
    let first = w.now;
    for _ in 0..2 {
        w.linked("wks1", "clu1");
        w.unlink("wks1").unwrap();
        w.advance(w.cp.profile().cluster.unlink_duration);
    }
    let err = w.refused(|w| w.link("wks1", "clu1"));
    let window = w.cp.profile().cluster.link_operations_window;
    assert!(
        matches!(err, ControlError::LinkOperationsLimit { max: 2, window_days: 30, next_allowed, .. } if next_allowed == first.add(window))
    );
    w.now = first.add(window).sub(ms(1));
    w.refused(|w| w.link("wks1", "clu1"));
    w.now = first.add(window);
    w.link("wks1", "clu1").unwrap();
    assert!(
        w.cp.get_workspace(&ws_name("wks1"))
            .unwrap()
            .link_history
            .len()
            <= 2
    );
}

#[test]
fn key_update_pins_the_current_version_in_2020_and_is_versionless_in_current() {
    for (profile, expected) in [
        (Profile::azure_2020(), Some(NEWEST_VERSION.to_string())),
        (Profile::azure_current(), None),
    ] {
        let mut w = World::new(profile);
        w.provisioned("clu1");
        let patch = ClusterPatch {
            key_vault_properties: Some(kvp("")),
            ..ClusterPatch::default()
        };
        let out = w
            .patch("clu1", patch, Some(&key_ctx(good_facts())))
            .unwrap();
        let op = out.value.unwrap();
        assert_eq!(
            w.cp.get_cluster(&cluster_name("clu1"))
                .unwrap()
                .provisioning_state,
            ProvisioningState::Updating
        );
        assert_eq!(
            w.cp.get_operation(SUB, &op).unwrap().status,
            OperationStatus::Updating
        );
        // Busy: another update is refused with the update list's message.
        let again = ClusterPatch {
            billing_type: Some("workspaces".into()),
            ..ClusterPatch::default()
        };
        assert!(matches!(
            w.refused(|w| w.patch("clu1", again, None)),
            ControlError::OperationInProgress(_)
        ));
        let out = w.advance(w.cp.profile().cluster.key_update_duration);
        let [ControlEffect::KeyUpdateCompleted { old: None, new, .. }] = &out.effects[..] else {
            panic!("{:?}", out.effects)
        };
        assert_eq!(new.key_version, expected);
        assert_eq!(new.key_vault_uri, "https://kv1.vault.azure.net/");
        let c = w.cp.get_cluster(&cluster_name("clu1")).unwrap();
        assert_eq!(
            (c.provisioning_state, c.key_vault_properties.as_ref()),
            (ProvisioningState::Succeeded, Some(new))
        );
        // A rotation names the previous key as `old`.
        let v2 = "fedcba9876543210fedcba9876543210";
        let patch = ClusterPatch {
            key_vault_properties: Some(kvp(v2)),
            ..ClusterPatch::default()
        };
        w.patch("clu1", patch, Some(&key_ctx(good_facts())))
            .unwrap();
        let out = w.advance(Duration::from_secs(300));
        let [ControlEffect::KeyUpdateCompleted {
            old: Some(old),
            new,
            ..
        }] = &out.effects[..]
        else {
            panic!()
        };
        assert_eq!(
            (old.key_version.clone(), new.key_version.as_deref()),
            (expected, Some(v2))
        );
    }
}

#[test]
fn key_validation_failures_and_revoked_storage() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    let patch = || ClusterPatch {
        key_vault_properties: Some(kvp("")),
        ..ClusterPatch::default()
    };
    type Case = (fn(&mut KeyUpdateContext), fn(&ControlError) -> bool);
    let cases: Vec<Case> = vec![
        (
            |c| c.facts.vault_location = "eastus".into(),
            |e| {
                matches!(
                    e,
                    ControlError::KeyValidationFailed(KeyValidationFailure::RegionMismatch { .. })
                )
            },
        ),
        (
            |c| c.facts.vault_tenant = "other".into(),
            |e| {
                matches!(
                    e,
                    ControlError::KeyValidationFailed(KeyValidationFailure::TenantMismatch { .. })
                )
            },
        ),
        (
            |c| c.facts.key_enabled = false,
            |e| {
                matches!(
                    e,
                    ControlError::KeyValidationFailed(KeyValidationFailure::KeyDisabled)
                )
            },
        ),
        (
            |c| c.facts.key_kty = "EC".into(),
            |e| {
                matches!(
                    e,
                    ControlError::KeyValidationFailed(KeyValidationFailure::NotRsa(_))
                )
            },
        ),
        (
            |c| c.facts.identity_permissions.clear(),
            |e| matches!(e, ControlError::KeyValidationFailed(KeyValidationFailure::MissingPermission(p)) if p == "get"),
        ),
        (
            |c| c.facts.key_ops = ["sign", "verify", "wrapKey"].map(String::from).into(),
            |e| matches!(e, ControlError::KeyValidationFailed(KeyValidationFailure::KeyOperationNotAllowed(op)) if op == "unwrapKey"),
        ),
        (
            |c| c.facts.key_exists = false,
            |e| {
                matches!(
                    e,
                    ControlError::KeyValidationFailed(KeyValidationFailure::KeyNotFound)
                )
            },
        ),
        (
            |c| c.facts.soft_delete = false,
            |e| matches!(e, ControlError::KeyNotRecoverable { .. }),
        ),
        (
            |c| c.storage_revoked = true,
            |e| matches!(e, ControlError::StorageRevoked(_)),
        ),
    ];
    for (edit, check) in cases {
        let mut ctx = key_ctx(good_facts());
        edit(&mut ctx);
        let err = w.refused(|w| w.patch("clu1", patch(), Some(&ctx)));
        assert!(check(&err), "{err:?}");
    }
    assert_eq!(
        w.refused(|w| w.patch("clu1", patch(), None)),
        ControlError::KeyFactsMissing
    );
}

#[test]
fn delete_reserve_recover_and_purge() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    w.workspace("wks1");
    w.linked("wks1", "clu1");
    let op = w.delete("clu1").unwrap();
    assert_eq!(
        w.cp.get_operation(SUB, &op.value).unwrap().status,
        OperationStatus::Deleting
    );
    // The unlink is in progress: data still goes to the cluster.
    assert!(matches!(
        w.cp.routing(&ws_name("wks1"), w.now).unwrap(),
        Routing::Cluster { .. }
    ));
    let out = w.advance(w.cp.profile().cluster.unlink_duration);
    assert!(
        matches!(
            out.effects[..],
            [
                ControlEffect::UnlinkCompleted { .. },
                ControlEffect::ClusterDeleted { .. }
            ]
        ),
        "{:?}",
        out.effects
    );
    assert_eq!(
        w.cp.routing(&ws_name("wks1"), w.now).unwrap(),
        Routing::Shared
    );
    assert!(matches!(
        w.cp.get_cluster(&cluster_name("clu1")),
        Err(ControlError::ClusterNotFound(_))
    ));
    assert!(w.cp.list_clusters_by_subscription(SUB).is_empty());
    assert!(matches!(
        w.refused(|w| w.create("clu1", 1000)),
        ControlError::ClusterNameReserved { .. }
    ));

    w.advance(days(1));
    let out = w.cp.recover_cluster(w.now, &cluster_name("clu1")).unwrap();
    assert!(matches!(
        out.effects[..],
        [ControlEffect::ClusterRecovered { .. }]
    ));
    assert_eq!(
        w.cp.get_cluster(&cluster_name("clu1"))
            .unwrap()
            .provisioning_state,
        ProvisioningState::Succeeded
    );
    assert_eq!(
        w.cp.get_workspace(&ws_name("wks1")).unwrap().link,
        LinkState::Unlinked
    );
    assert!(w.cp.associated_workspaces(&cluster_name("clu1")).is_empty());

    // No workspace linked: the delete completes at once.
    let out = w.delete("clu1").unwrap();
    assert!(matches!(
        out.effects[..],
        [ControlEffect::ClusterDeleted { .. }]
    ));
    assert_eq!(
        w.cp.get_operation(SUB, &out.value).unwrap().status,
        OperationStatus::Succeeded
    );
    let retention = w.cp.profile().cluster.soft_delete_retention;
    assert_eq!(w.cp.next_due(w.now), Some(w.now.add(retention)));
    assert!(w.advance(retention - ms(1)).effects.is_empty());
    let out = w.advance(ms(1));
    assert!(matches!(
        out.effects[..],
        [ControlEffect::ClusterPurged { .. }]
    ));
    assert!(matches!(
        w.refused(|w| w.cp.recover_cluster(w.now, &cluster_name("clu1"))),
        ControlError::ClusterNotFound(_)
    ));
    w.create("clu1", 1000).unwrap();
}

#[test]
fn a_late_tick_applies_delete_and_purge_at_their_own_times() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    w.workspace("wks1");
    w.linked("wks1", "clu1");
    let deleted_at = w.now.add(w.cp.profile().cluster.unlink_duration);
    w.delete("clu1").unwrap();
    let out = w.advance(days(20));
    let kinds: Vec<&str> = out.events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "storage.workspace.unlinked",
            "storage.cluster.deleted",
            "storage.cluster.purged"
        ]
    );
    assert!(
        matches!(out.effects[2], ControlEffect::ClusterPurged { at, .. } if at == deleted_at.add(days(14)))
    );
}

fn fill_region(w: &mut World, names: &[&str]) {
    for n in names {
        w.provisioned(n);
    }
}

#[test]
fn active_and_reserved_limits_azure_2020() {
    let mut w = World::new(Profile::azure_2020());
    let c = w.cp.profile().cluster.clone();
    assert_eq!(
        (
            c.max_active_per_region_subscription,
            c.max_reserved_per_region_subscription
        ),
        (2, 4)
    );
    fill_region(&mut w, &["clu1", "clu2"]);
    assert!(matches!(
        w.refused(|w| w.create("clu3", 1000)),
        ControlError::ActiveClusterLimit { max: 2, .. }
    ));
    // Another region is another count.
    let mut body = create_body(1000);
    body.location = Some("eastus".into());
    w.cp.create_cluster(w.now, &cluster_name("east1"), &body, identity(), &mut w.rng)
        .unwrap();
    w.delete("clu1").unwrap();
    w.delete("clu2").unwrap();
    fill_region(&mut w, &["clu3", "clu4"]);
    assert!(matches!(
        w.refused(|w| w.create("clu5", 1000)),
        ControlError::ActiveClusterLimit { .. }
    ));
    w.delete("clu3").unwrap();
    let err = w.refused(|w| w.create("clu5", 1000));
    assert!(
        matches!(err, ControlError::ReservedClusterLimit { max: 4, .. }),
        "{err:?}"
    );
    // Recovering does not add a reservation but does add an active cluster.
    w.cp.recover_cluster(w.now, &cluster_name("clu1")).unwrap();
    assert!(matches!(
        w.refused(|w| w.cp.recover_cluster(w.now, &cluster_name("clu2"))),
        ControlError::ActiveClusterLimit { .. }
    ));
}

#[test]
fn active_and_reserved_limits_azure_current() {
    let mut w = World::new(Profile::azure_current());
    let c = w.cp.profile().cluster.clone();
    assert_eq!(
        (
            c.max_active_per_region_subscription,
            c.max_reserved_per_region_subscription
        ),
        (5, 7)
    );
    let five = ["clu1", "clu2", "clu3", "clu4", "clu5"];
    fill_region(&mut w, &five);
    assert!(matches!(
        w.refused(|w| w.create("clu6", 500)),
        ControlError::ActiveClusterLimit { max: 5, .. }
    ));
    for n in five {
        w.delete(n).unwrap();
    }
    fill_region(&mut w, &["clu6", "clu7"]);
    assert!(matches!(
        w.refused(|w| w.create("clu8", 500)),
        ControlError::ReservedClusterLimit { max: 7, .. }
    ));
}

#[test]
fn capacity_decrease_is_locked_after_an_update() {
    let mut w = World::new(Profile::azure_2020());
    w.create("clu1", 1500).unwrap();
    w.advance(hours(3));
    let set = |capacity| ClusterPatch {
        sku: Some(SkuInput {
            name: Some("capacityReservation".into()),
            capacity: Some(capacity),
        }),
        ..ClusterPatch::default()
    };
    assert!(matches!(
        w.refused(|w| w.patch("clu1", set(1400), None)),
        ControlError::CapacityLocked { .. }
    ));
    w.advance(days(1));
    w.patch("clu1", set(1600), None).unwrap();
    let updated = w.now;
    let lock = w.cp.profile().cluster.capacity_decrease_lock;
    w.now = updated.add(lock).sub(ms(1));
    let err = w.refused(|w| w.patch("clu1", set(1000), None));
    assert_eq!(
        err,
        ControlError::CapacityLocked {
            until: updated.add(lock)
        }
    );
    w.now = updated.add(lock);
    w.patch("clu1", set(1000), None).unwrap();
    let c = w.cp.get_cluster(&cluster_name("clu1")).unwrap();
    assert_eq!(
        (c.sku.capacity_gb_per_day, c.sku.last_sku_update),
        (1000, w.now)
    );
}

#[test]
fn routing_follows_the_previous_destination_during_transitions() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    w.workspace("wks1");
    let route = |w: &World| w.cp.routing(&ws_name("wks1"), w.now).unwrap();
    assert_eq!(route(&w), Routing::Shared);
    w.link("wks1", "clu1").unwrap();
    assert_eq!(route(&w), Routing::Shared);
    assert_eq!(
        w.cp.get_workspace(&ws_name("wks1"))
            .unwrap()
            .cluster_resource_id(),
        None
    );
    w.advance(w.cp.profile().cluster.link_duration);
    let cluster_id =
        w.cp.get_cluster(&cluster_name("clu1"))
            .unwrap()
            .cluster_id
            .clone();
    assert_eq!(
        route(&w),
        Routing::Cluster {
            cluster: cluster_arm_id("clu1"),
            cluster_id
        }
    );
    assert_eq!(
        w.cp.associated_workspaces(&cluster_name("clu1")),
        vec![ws_name("wks1").arm_id(ResourceKind::Workspace)]
    );
    w.unlink("wks1").unwrap();
    assert!(matches!(route(&w), Routing::Cluster { .. }));
    w.advance(w.cp.profile().cluster.unlink_duration);
    assert_eq!(route(&w), Routing::Shared);
}

#[test]
fn link_limits_region_elsewhere_and_cluster_size() {
    let mut profile = Profile::azure_2020();
    profile.cluster.max_workspaces_per_cluster = 1;
    let mut w = World::new(profile);
    fill_region(&mut w, &["clu1", "clu2"]);
    w.workspace("wks1");
    w.workspace("wks2");
    w.linked("wks1", "clu1");
    assert!(matches!(
        w.refused(|w| w.link("wks1", "clu2")),
        ControlError::WorkspaceAlreadyLinked { .. }
    ));
    assert!(matches!(
        w.refused(|w| w.link("wks2", "clu1")),
        ControlError::WorkspacesPerClusterLimit { max: 1, .. }
    ));
    let body = WorkspaceCreate {
        location: Some("East US".into()),
        retention_days: None,
    };
    w.cp.create_workspace(w.now, &ws_name("east"), &body)
        .unwrap();
    assert!(matches!(
        w.refused(|w| w.link("east", "clu2")),
        ControlError::RegionMismatch { .. }
    ));
    assert!(matches!(
        w.refused(|w| w.unlink("wks2")),
        ControlError::WorkspaceNotLinked(_)
    ));
    assert!(matches!(
        w.refused(|w| w
            .cp
            .link_workspace(w.now, &ws_name("wks2"), "/bad", &mut w.rng)),
        ControlError::BadRequestBody(_)
    ));
}

#[test]
fn a_lock_blocks_retention_changes_and_purge() {
    let mut w = World::new(Profile::azure_2020());
    w.workspace("wks1");
    assert_eq!(
        w.cp.get_workspace(&ws_name("wks1")).unwrap().retention_days,
        31
    );
    w.cp.set_workspace_lock(w.now, &ws_name("wks1"), true)
        .unwrap();
    let err = w.refused(|w| w.cp.update_retention(w.now, &ws_name("wks1"), 30));
    assert_eq!(
        err,
        ControlError::WorkspaceLocked {
            workspace: ws_name("wks1").arm_id(ResourceKind::Workspace),
            operation: "write"
        }
    );
    // An increase deletes nothing: allowed under the lock.
    w.cp.update_retention(w.now, &ws_name("wks1"), 90).unwrap();
    assert!(w.cp.check_purge_allowed(&ws_name("wks1")).is_err());
    w.cp.set_workspace_lock(w.now, &ws_name("wks1"), false)
        .unwrap();
    assert!(matches!(
        w.refused(|w| w.cp.update_retention(w.now, &ws_name("wks1"), 731)),
        ControlError::RetentionOutOfRange { .. }
    ));
    let out = w.cp.update_retention(w.now, &ws_name("wks1"), 730).unwrap();
    assert_eq!(out.events[0].kind(), "storage.workspace.retention_changed");
    assert!(w.cp.check_purge_allowed(&ws_name("wks1")).is_ok());
}

#[test]
fn a_refused_patch_applies_nothing_even_its_valid_parts() {
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("clu1");
    let mut bad = kvp("");
    bad.key_name = "bad_name".into();
    let patch = ClusterPatch {
        sku: Some(SkuInput {
            name: Some("capacityReservation".into()),
            capacity: Some(2000),
        }),
        billing_type: Some("workspaces".into()),
        key_vault_properties: Some(bad),
        is_double_encryption_enabled: None,
    };
    let ctx = key_ctx(good_facts());
    assert!(matches!(
        w.refused(|w| w.patch("clu1", patch, Some(&ctx))),
        ControlError::KeyVaultPropertiesBadFormat(_)
    ));
    let bad_billing = ClusterPatch {
        billing_type: Some("perNode".into()),
        ..ClusterPatch::default()
    };
    assert!(matches!(
        w.refused(|w| w.patch("clu1", bad_billing, None)),
        ControlError::BadRequestBody(_)
    ));
    let c = w.cp.get_cluster(&cluster_name("clu1")).unwrap();
    assert_eq!(
        (c.sku.capacity_gb_per_day, c.billing_type),
        (1000, BillingType::Cluster)
    );
}

#[test]
fn an_injected_failure_shows_in_the_status_resource() {
    let mut w = World::new(Profile::azure_2020());
    let op = w.create("clu1", 1000).unwrap().value;
    let out =
        w.cp.fail_operation(w.now, &op, "InternalError", "allocation failed")
            .unwrap();
    assert!(matches!(
        out.effects[..],
        [ControlEffect::ProvisioningFailed { .. }]
    ));
    assert_eq!(out.events[0].kind(), "storage.operation.failed");
    let status = w.cp.get_operation(SUB, &op).unwrap();
    assert_eq!(
        (status.status, status.error.unwrap().code.as_str()),
        (OperationStatus::Failed, "InternalError")
    );
    assert_eq!(
        w.cp.get_cluster(&cluster_name("clu1"))
            .unwrap()
            .provisioning_state,
        ProvisioningState::Failed
    );
    assert_eq!(w.cp.next_due(w.now), None);
    w.workspace("wks1");
    assert!(matches!(
        w.refused(|w| w.link("wks1", "clu1")),
        ControlError::ClusterNotProvisioned(_)
    ));
    w.delete("clu1").unwrap();
}

#[test]
fn state_round_trips_through_json_and_replays_identically() {
    let run = || {
        let mut w = World::new(Profile::azure_2020());
        w.provisioned("clu1");
        w.workspace("wks1");
        w.link("wks1", "clu1").unwrap();
        w
    };
    let w = run();
    let json = serde_json::to_string(w.cp.state()).unwrap();
    let state: ControlState = serde_json::from_str(&json).unwrap();
    let restored = ControlPlane::from_state(Profile::azure_2020(), state);
    assert_eq!(restored, w.cp);
    assert_eq!(json, serde_json::to_string(run().cp.state()).unwrap());
}

#[test]
fn a_location_that_is_no_azure_region_is_refused_as_arm_refuses_it_and_nothing_changes() {
    let mut w = World::new(Profile::azure_2020());
    let mut body = create_body(1000);
    body.location = Some("mars".into());
    let refused =
        w.cp.create_cluster(w.now, &cluster_name("clu1"), &body, identity(), &mut w.rng)
            .unwrap_err();
    let azure = w.cp.azure_error(&refused);
    assert_eq!(
        (azure.code, azure.http_status),
        ("LocationNotAvailableForResourceType", 400)
    );
    assert!(
        azure.message.starts_with(
            "The provided location 'mars' is not available for resource type \
             'Microsoft.OperationalInsights/clusters'. List of available regions"
        ),
        "{}",
        azure.message
    );
    assert!(
        w.cp.get_cluster(&cluster_name("clu1")).is_err(),
        "nothing created"
    );
    let workspace = WorkspaceCreate {
        location: Some("Mars Central".into()),
        retention_days: None,
    };
    let refused =
        w.cp.create_workspace(w.now, &ws_name("wsp1"), &workspace)
            .unwrap_err();
    assert!(matches!(refused, ControlError::LocationNotAvailable { .. }));
    let spelled = WorkspaceCreate {
        location: Some("West Europe".into()),
        retention_days: None,
    };
    assert!(w
        .cp
        .create_workspace(w.now, &ws_name("wsp1"), &spelled)
        .is_ok());
}

#[test]
fn double_encryption_is_fixed_at_creation_under_every_profile() {
    // Seed 001: "Double encryption setting can not be changed after the cluster has been
    // created." A PATCH asking for the other value is refused and changes nothing; repeating the
    // cluster's own value (ARM's PUT on an existing cluster) is accepted.
    for profile in [
        Profile::azure_2020(),
        Profile::azure_2021(),
        Profile::azure_current(),
    ] {
        let name = profile.name.clone();
        let mut w = World::new(profile);
        w.provisioned("clu1");
        let enabled =
            w.cp.get_cluster(&cluster_name("clu1"))
                .unwrap()
                .is_double_encryption_enabled;
        let flip = ClusterPatch {
            is_double_encryption_enabled: Some(!enabled),
            ..ClusterPatch::default()
        };
        let err = w.refused(|w| w.patch("clu1", flip, None));
        assert!(
            matches!(err, ControlError::DoubleEncryptionImmutable(_)),
            "{name}: {err:?}"
        );
        for wording in [
            cmksim_sim::profile::ErrorWording::Seed000,
            cmksim_sim::profile::ErrorWording::Seed001,
        ] {
            let body = err.azure_error(wording);
            assert_eq!(
                (body.code, body.http_status, body.message.as_str()),
                (
                    "InvalidParameter",
                    400,
                    "Double encryption setting can not be changed after the cluster has been created."
                ),
                "{name}"
            );
        }
        assert_eq!(err.class(), ErrorClass::InvalidArgument);
        let same = ClusterPatch {
            is_double_encryption_enabled: Some(enabled),
            billing_type: Some("workspaces".into()),
            ..ClusterPatch::default()
        };
        w.patch("clu1", same, None)
            .unwrap_or_else(|e| panic!("{name}: the same value is accepted: {e:?}"));
    }
}
