//! The error catalogue, row by row: one row per message of the "Error messages" lists of seed 000
//! (2020) and seed 001 (2021), in the lists' order. Each row triggers its condition through the
//! public API under both profiles, checks the call changed nothing, and compares status and text,
//! character for character, in both wordings. The expected texts are copied here from the seeds
//! independently of `errors.rs`, so a typo in either place fails.

use cmksim_sim::profile::ErrorWording;
use cmksim_sim::Profile;

use super::test_support::*;
use super::*;

type Trigger = fn(&mut World) -> ControlError;

struct Row {
    section: &'static str,
    status: u16,
    seed000: &'static str,
    seed001: &'static str,
    trigger: Trigger,
}

const fn same(section: &'static str, status: u16, text: &'static str, trigger: Trigger) -> Row {
    Row {
        section,
        status,
        seed000: text,
        seed001: text,
        trigger,
    }
}

fn sku(name: Option<&str>, capacity: Option<u32>) -> Option<SkuInput> {
    Some(SkuInput {
        name: name.map(str::to_string),
        capacity,
    })
}

fn create_with(w: &mut World, name: &str, edit: impl FnOnce(&mut ClusterCreate)) -> ControlError {
    let mut body = create_body(w.cp.profile().cluster.capacity_min_gb_per_day);
    edit(&mut body);
    w.refused(|w| {
        w.cp.create_cluster(w.now, &cluster_name(name), &body, identity(), &mut w.rng)
    })
}

/// A provisioned cluster c1 with workspace ws1 linked, then deleted: c1 is `Deleting`.
fn deleting(w: &mut World) {
    w.provisioned("cl1");
    w.workspace("wks1");
    w.linked("wks1", "cl1");
    w.delete("cl1").expect("delete");
    assert_eq!(
        w.cp.get_cluster(&cluster_name("cl1"))
            .unwrap()
            .provisioning_state,
        ProvisioningState::Deleting
    );
}

fn key_patch() -> ClusterPatch {
    ClusterPatch {
        key_vault_properties: Some(kvp("")),
        ..ClusterPatch::default()
    }
}

const LINK_000: &str = "Workspace association or disassociation operation in process.";
const LINK_001: &str = "Workspace link or unlink operation in process.";
const WS_NOT_FOUND: &str =
    "Workspace not found. The workspace you specified doesn’t exist or was deleted.";

fn rows() -> Vec<Row> {
    vec![
        // ---- Cluster Create ----
        same("create", 400, "Cluster name is not valid. Cluster name can contain characters a-z, A-Z, 0-9 and length of 3-63.", |w| {
            create_with(w, "c-1", |_| {})
        }),
        same("create", 400, "The body of the request is null or in bad format.", |w| create_with(w, "cl1", |b| b.location = None)),
        same("create", 400, "SKU name is invalid. Set SKU name to capacityReservation.", |w| {
            create_with(w, "cl1", |b| b.sku = sku(Some("PerGB2018"), None))
        }),
        same("create", 400, "Capacity was provided but SKU is not capacityReservation. Set SKU name to capacityReservation.", |w| {
            create_with(w, "cl1", |b| b.sku = sku(Some("PerGB2018"), Some(1000)))
        }),
        same("create", 400, "Missing Capacity in SKU. Set Capacity value to 1000 or higher in steps of 100 (GB).", |w| {
            create_with(w, "cl1", |b| b.sku = sku(Some("capacityReservation"), None))
        }),
        same("create", 400, "Capacity in SKU is not in range. Should be minimum 1000 and up to the max allowed capacity which is available under ‘Usage and estimated cost’ in your workspace.", |w| {
            create_with(w, "cl1", |b| b.sku = sku(Some("capacityReservation"), Some(100_000)))
        }),
        same("create", 400, "Capacity is locked for 30 days. Decreasing capacity is permitted 30 days after update.", |w| {
            let c = w.cp.profile().cluster.clone();
            w.create("cl1", c.capacity_min_gb_per_day + 2 * c.capacity_step_gb_per_day).unwrap();
            w.advance(c.provisioning_duration);
            let down = ClusterPatch { sku: sku(Some("capacityReservation"), Some(c.capacity_min_gb_per_day)), ..ClusterPatch::default() };
            w.refused(|w| w.patch("cl1", down, None))
        }),
        same("create", 400, "No SKU was set. Set the SKU name to capacityReservation and Capacity value to 1000 or higher in steps of 100 (GB).", |w| {
            create_with(w, "cl1", |b| b.sku = None)
        }),
        same("create", 400, "Identity is null or empty. Set Identity with systemAssigned type.", |w| {
            create_with(w, "cl1", |b| b.identity_type = None)
        }),
        same("create", 400, "KeyVaultProperties are set on creation. Update KeyVaultProperties after cluster creation.", |w| {
            create_with(w, "cl1", |b| b.key_vault_properties = Some(kvp("")))
        }),
        same("create", 400, "Operation cannot be executed now. Async operation is in a state other than succeeded. Cluster must complete its operation before any update operation is performed.", |w| {
            w.create("cl1", w.cp.profile().cluster.capacity_min_gb_per_day).unwrap();
            create_with(w, "cl1", |_| {})
        }),
        // ---- Cluster Update ----
        same("update", 400, "Cluster is in deleting state. Async operation is in progress . Cluster must complete its operation before any update operation is performed.", |w| {
            deleting(w);
            let ctx = key_ctx(good_facts());
            w.refused(|w| w.patch("cl1", key_patch(), Some(&ctx)))
        }),
        Row {
            section: "update",
            status: 400,
            seed000: "KeyVaultProperties is not empty but has a bad format. See [key identifier update](#update-cluster-resource-with-key-identifier-details).",
            seed001: "KeyVaultProperties is not empty but has a bad format. See key identifier update.",
            trigger: |w| {
                w.provisioned("cl1");
                let mut bad = kvp("");
                bad.key_vault_uri = "http://kv1.vault.azure.net".into();
                let patch = ClusterPatch { key_vault_properties: Some(bad), ..ClusterPatch::default() };
                let ctx = key_ctx(good_facts());
                w.refused(|w| w.patch("cl1", patch, Some(&ctx)))
            },
        },
        Row {
            section: "update",
            status: 400,
            seed000: "Failed to validate key in Key Vault. Could be due to lack of permissions or when key doesn’t exist. Verify that you [set key and access policy](#grant-key-vault-permissions) in Key Vault.",
            seed001: "Failed to validate key in Key Vault. Could be due to lack of permissions or when key doesn’t exist. Verify that you set key and access policy in Key Vault.",
            trigger: |w| {
                w.provisioned("cl1");
                let mut facts = good_facts();
                facts.identity_permissions.remove("unwrapKey");
                let ctx = key_ctx(facts);
                w.refused(|w| w.patch("cl1", key_patch(), Some(&ctx)))
            },
        },
        Row {
            section: "update",
            status: 400,
            seed000: "Key is not recoverable. Key Vault must be set to Soft-delete and Purge-protection. See [Key Vault documentation](../../key-vault/general/overview-soft-delete.md)",
            seed001: "Key is not recoverable. Key Vault must be set to Soft-delete and Purge-protection. See Key Vault documentation",
            trigger: |w| {
                w.provisioned("cl1");
                let mut facts = good_facts();
                facts.purge_protection = false;
                let ctx = key_ctx(facts);
                w.refused(|w| w.patch("cl1", key_patch(), Some(&ctx)))
            },
        },
        same("update", 400, "Operation cannot be executed now. Wait for the Async operation to complete and try again.", |w| {
            w.create("cl1", w.cp.profile().cluster.capacity_min_gb_per_day).unwrap();
            let patch = ClusterPatch { billing_type: Some("workspaces".into()), ..ClusterPatch::default() };
            w.refused(|w| w.patch("cl1", patch, None))
        }),
        same("update", 400, "Cluster is in deleting state. Wait for the Async operation to complete and try again.", |w| {
            deleting(w);
            let patch = ClusterPatch { billing_type: Some("workspaces".into()), ..ClusterPatch::default() };
            w.refused(|w| w.patch("cl1", patch, None))
        }),
        // ---- Cluster Get ----
        same("get", 404, "Cluster not found, the cluster may have been deleted. If you try to create a cluster with that name and get conflict, the cluster is in soft-delete for 14 days. You can contact support to recover it, or use another name to create a new cluster.", |w| {
            w.refused(|w| w.cp.get_cluster(&cluster_name("nosuch")).cloned())
        }),
        // ---- Cluster Delete ----
        same("delete", 409, "Can't delete a cluster while in provisioning state. Wait for the Async operation to complete and try again.", |w| {
            w.create("cl1", w.cp.profile().cluster.capacity_min_gb_per_day).unwrap();
            w.refused(|w| w.delete("cl1"))
        }),
        // ---- Workspace link (association) ----
        same("link", 404, WS_NOT_FOUND, |w| {
            w.provisioned("cl1");
            w.refused(|w| w.link("nosuch", "cl1"))
        }),
        Row { section: "link", status: 409, seed000: LINK_000, seed001: LINK_001, trigger: |w| {
            w.provisioned("cl1");
            w.workspace("wks1");
            w.link("wks1", "cl1").unwrap();
            w.refused(|w| w.link("wks1", "cl1"))
        } },
        same("link", 400, "Cluster not found, the cluster you specified doesn’t exist or was deleted. If you try to create a cluster with that name and get conflict, the cluster is in soft-delete for 14 days. You can contact support to recover it.", |w| {
            w.workspace("wks1");
            w.refused(|w| w.link("wks1", "nosuch"))
        }),
        // ---- Workspace unlink (disassociation) ----
        same("unlink", 404, WS_NOT_FOUND, |w| w.refused(|w| w.unlink("nosuch"))),
        Row { section: "unlink", status: 409, seed000: LINK_000, seed001: LINK_001, trigger: |w| {
            w.provisioned("cl1");
            w.workspace("wks1");
            w.link("wks1", "cl1").unwrap();
            w.refused(|w| w.unlink("wks1"))
        } },
    ]
}

#[test]
fn every_seed_message_is_reproduced_exactly() {
    let rows = rows();
    // 24 messages in each list (11 create, 6 update, 1 get, 1 delete, 3 link, 2 unlink).
    assert_eq!(rows.len(), 24);
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        for profile in [Profile::azure_2020(), Profile::azure_current()] {
            let profile_name = profile.name.clone();
            let mut w = World::new(profile);
            let err = (row.trigger)(&mut w);
            for (wording, expected) in [
                (ErrorWording::Seed000, row.seed000),
                (ErrorWording::Seed001, row.seed001),
            ] {
                let body = err.azure_error(wording);
                assert_eq!(
                    body.message, expected,
                    "row {i} ({}) under {profile_name}, {wording:?}: {err:?}",
                    row.section
                );
                assert_eq!(
                    body.http_status, row.status,
                    "row {i} ({}) status",
                    row.section
                );
                checked += 1;
            }
            // The facade answers in the profile's own wording.
            let own = w.cp.azure_error(&err);
            let expected = match w.cp.profile().error_wording {
                ErrorWording::Seed000 => row.seed000,
                ErrorWording::Seed001 => row.seed001,
            };
            assert_eq!(own.message, expected);
        }
    }
    assert_eq!(checked, 24 * 2 * 2);
}

#[test]
fn simulator_texts_are_clear_and_carry_the_values() {
    let e = ControlError::LinkOperationsLimit {
        workspace: "wks1".into(),
        max: 2,
        window_days: 30,
        next_allowed: cmksim_sim::SimTime::DEFAULT_EPOCH,
    };
    let body = e.azure_error(ErrorWording::Seed001);
    assert_eq!((body.code, body.http_status), ("Conflict", 409));
    assert!(body.message.starts_with("The number of workspace link operations on particular workspace is limited to 2 in a period of 30 days."));
    assert_eq!(e.class(), ErrorClass::ResourceExhausted);
    let revoked = ControlError::StorageRevoked("cl1".into()).azure_error(ErrorWording::Seed000);
    assert!(revoked.message.contains("revoked"), "{}", revoked.message);
}

#[test]
fn echoed_user_input_is_cut_to_a_stated_length() {
    let mut w = World::new(Profile::azure_2020());
    let long = "w".repeat(1_000_000);
    let body = WorkspaceCreate {
        location: Some(REGION.into()),
        retention_days: None,
    };
    let error =
        w.cp.create_workspace(w.now, &ws_name(&long), &body)
            .unwrap_err();
    assert!(matches!(error, ControlError::InvalidWorkspaceName(_)));
    let message = w.cp.azure_error(&error).message;
    assert!(message.len() < 1_000, "{} bytes", message.len());
    assert!(message.contains(&format!(
        "{}… (1000000 characters)",
        "w".repeat(cmksim_sim::text::ECHO_CHARS_MAX)
    )));
    let error = w.cp.get_operation(SUB, &long).unwrap_err();
    assert!(w.cp.azure_error(&error).message.len() < 1_000);
}
