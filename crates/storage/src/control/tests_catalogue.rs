//! The error catalogue, row by row: one row per message of the "Error messages" lists of seed 000
//! (2020) and seed 001 (2021), in the lists' order. Each row triggers its condition through the
//! public API under every built-in profile, checks the call changed nothing, and compares status
//! and text, character for character, in both wordings. The expected texts are copied here from
//! the seeds independently of `errors.rs`, so a typo in either place fails.
//!
//! Seed 000's texts are copied with their markdown links; what every profile must answer is the
//! text with each link replaced by its label ([`without_markdown_links`]), which is seed 001's.
//!
//! A second table holds seed 001's texts outside its list (the delete refused while workspaces
//! are linked, the double-encryption region refusal), produced under `azure-2021`.

use cmksim_sim::profile::{DeleteWithLinkedWorkspaces, ErrorWording};
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

fn key_patch() -> ClusterPatch {
    ClusterPatch {
        key_vault_properties: Some(kvp("")),
        ..ClusterPatch::default()
    }
}

/// `[label](target)` → `label`: what a rendered documentation page shows of a markdown link.
fn without_markdown_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Reaches `Deleting` on cluster cl1 the way the profile allows: with workspace wks1 linked
/// (seed 000 unlinks it first), or, where a linked workspace refuses the delete (seed 001), with
/// none linked and a delete that is a long operation.
fn deleting(w: &mut World) {
    w.provisioned("cl1");
    let cluster = w.cp.profile().cluster.clone();
    match cluster.delete_with_linked_workspaces {
        DeleteWithLinkedWorkspaces::UnlinkThenDelete => {
            w.workspace("wks1");
            w.linked("wks1", "cl1");
        }
        DeleteWithLinkedWorkspaces::Refuse => {
            assert!(!cluster.delete_duration.is_zero());
        }
    }
    w.delete("cl1").expect("delete");
    assert_eq!(
        w.cp.get_cluster(&cluster_name("cl1"))
            .unwrap()
            .provisioning_state,
        ProvisioningState::Deleting
    );
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
    let profiles = cmksim_sim::profile::BUILTIN_PROFILES;
    assert!(profiles.contains(&"azure-2021"));
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        // Seed 001 prints seed 000's text without its markdown links, and so does every profile.
        let seed000 = without_markdown_links(row.seed000);
        assert_eq!(seed000 != row.seed000, row.seed000.contains("]("));
        assert!(
            !row.seed001.contains("]("),
            "row {i}: seed 001 has no markup"
        );
        if row.seed000.contains("](") {
            assert_eq!(
                seed000, row.seed001,
                "row {i}: the label is seed 001's text"
            );
        }
        for profile in profiles.map(|name| Profile::builtin(name).unwrap()) {
            let profile_name = profile.name.clone();
            let mut w = World::new(profile);
            let err = (row.trigger)(&mut w);
            for (wording, expected) in [
                (ErrorWording::Seed000, seed000.as_str()),
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
                ErrorWording::Seed000 => seed000.as_str(),
                ErrorWording::Seed001 => row.seed001,
            };
            assert_eq!(own.message, expected, "row {i} under {profile_name}");
            assert_eq!(own.http_status, row.status, "row {i} under {profile_name}");
        }
    }
    assert_eq!(checked, 24 * profiles.len() * 2);
}

#[test]
fn markdown_links_become_their_labels() {
    assert_eq!(
        without_markdown_links(
            "See [Key Vault documentation](../../key-vault/general/overview-soft-delete.md)"
        ),
        "See Key Vault documentation"
    );
    assert_eq!(without_markdown_links("a [b](#c) d [e](f)."), "a b d e.");
    assert_eq!(without_markdown_links("no [link] here"), "no [link] here");
}

/// Seed 001's texts outside its "Error messages" list, under azure-2021.
struct Seed001Row {
    what: &'static str,
    status: u16,
    text: &'static str,
    trigger: Trigger,
}

fn seed_001_rows() -> Vec<Seed001Row> {
    vec![
        Seed001Row {
            what: "delete while a workspace is linked",
            status: 409,
            // seed 001, "Delete cluster".
            text: "You must unlink all workspaces from the cluster before deleting it.",
            trigger: |w| {
                w.provisioned("cl1");
                w.workspace("wks1");
                w.linked("wks1", "cl1");
                w.refused(|w| w.delete("cl1"))
            },
        },
        Seed001Row {
            what: "double encryption in a region that does not support it",
            status: 400,
            // seed 001, "Limits and constraints": " doesn’t support Double Encryption for
            // clusters." after the region.
            text: "westcentralus doesn’t support Double Encryption for clusters.",
            trigger: |w| create_with(w, "cl1", |b| b.location = Some("westcentralus".into())),
        },
        Seed001Row {
            what: "double encryption asked for explicitly, region spelled with capitals",
            status: 400,
            text: "BrazilSoutheast doesn’t support Double Encryption for clusters.",
            trigger: |w| {
                create_with(w, "cl1", |b| {
                    b.location = Some("BrazilSoutheast".into());
                    b.is_double_encryption_enabled = Some(true);
                })
            },
        },
    ]
}

#[test]
fn seed_001_texts_outside_its_list_under_azure_2021() {
    for row in seed_001_rows() {
        let mut w = World::new(Profile::azure_2021());
        let err = (row.trigger)(&mut w);
        let body = w.cp.azure_error(&err);
        assert_eq!(body.message, row.text, "{}: {err:?}", row.what);
        assert_eq!(body.http_status, row.status, "{}", row.what);
        assert!(!body.message.contains("]("), "{}", row.what);
    }
}

#[test]
fn the_same_requests_are_accepted_under_azure_2020() {
    // Seed 000 unlinks the workspaces of a deleted cluster, and names no region without double
    // encryption.
    let mut w = World::new(Profile::azure_2020());
    w.provisioned("cl1");
    w.workspace("wks1");
    w.linked("wks1", "cl1");
    w.delete("cl1")
        .expect("seed 000 deletes a cluster with linked workspaces");
    let mut body = create_body(1000);
    body.location = Some("westcentralus".into());
    let created =
        w.cp.create_cluster(w.now, &cluster_name("cl2"), &body, identity(), &mut w.rng);
    assert!(created.is_ok(), "{created:?}");
}

#[test]
fn double_encryption_off_is_the_remedy_and_is_fixed_at_creation() {
    let mut w = World::new(Profile::azure_2021());
    let mut body = create_body(1000);
    body.location = Some("westcentralus".into());
    body.is_double_encryption_enabled = Some(false);
    w.cp.create_cluster(w.now, &cluster_name("cl1"), &body, identity(), &mut w.rng)
        .expect("isDoubleEncryptionEnabled: false is accepted where double encryption is not");
    w.advance(w.cp.profile().cluster.provisioning_duration);
    // Every update leaves it as created: an update has no member that could change it.
    let patch = ClusterPatch {
        sku: sku(Some("capacityReservation"), Some(1100)),
        billing_type: Some("workspaces".into()),
        ..ClusterPatch::default()
    };
    w.patch("cl1", patch, None).expect("patch");
    let mut facts = good_facts();
    facts.vault_location = "westcentralus".into();
    let ctx = key_ctx(facts);
    w.patch("cl1", key_patch(), Some(&ctx)).expect("key update");
    w.advance(w.cp.profile().cluster.key_update_duration);
    let c = w.cp.get_cluster(&cluster_name("cl1")).unwrap();
    assert!(!c.is_double_encryption_enabled);
    assert_eq!(c.provisioning_state, ProvisioningState::Succeeded);
    // In a supported region the default is on.
    w.create("cl2", 1000).expect("create in westeurope");
    assert!(
        w.cp.get_cluster(&cluster_name("cl2"))
            .unwrap()
            .is_double_encryption_enabled
    );
}

#[test]
fn a_2021_delete_is_a_long_operation_then_a_soft_delete() {
    let mut w = World::new(Profile::azure_2021());
    w.provisioned("cl1");
    w.workspace("wks1");
    w.linked("wks1", "cl1");
    w.refused(|w| w.delete("cl1"));
    w.unlink("wks1").expect("unlink");
    w.advance(w.cp.profile().cluster.unlink_duration);
    w.delete("cl1").expect("delete once no workspace is linked");
    let c = w.cp.get_cluster(&cluster_name("cl1")).unwrap();
    assert_eq!(c.provisioning_state, ProvisioningState::Deleting);
    let out = w.advance(w.cp.profile().cluster.delete_duration);
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, ControlEffect::ClusterDeleted { .. })));
    assert!(matches!(
        w.cp.get_cluster(&cluster_name("cl1")),
        Err(ControlError::ClusterNotFound(_))
    ));
}

#[test]
fn the_per_subscription_limit_is_an_override_of_azure_2021() {
    let overrides: toml::Table = "[cluster]\nmax_reserved_per_subscription = 3\n"
        .parse()
        .unwrap();
    let profile = Profile::builtin_with_overrides("azure-2021", Some(&overrides)).unwrap();
    let mut w = World::new(profile);
    w.create("cl1", 1000).unwrap();
    w.create("cl2", 1000).unwrap();
    let mut body = create_body(1000);
    body.location = Some("northeurope".into());
    w.cp.create_cluster(w.now, &cluster_name("cl3"), &body, identity(), &mut w.rng)
        .expect("the third cluster of the subscription");
    body.location = Some("uksouth".into());
    let err = w.refused(|w| {
        w.cp.create_cluster(w.now, &cluster_name("cl4"), &body, identity(), &mut w.rng)
    });
    assert!(
        matches!(err, ControlError::SubscriptionClusterLimit { max: 3, .. }),
        "{err:?}"
    );
    assert_eq!(w.cp.azure_error(&err).http_status, 409);
    // Without the override only the per-region limits apply.
    let mut w = World::new(Profile::azure_2021());
    for (name, region) in [
        ("cl1", "westeurope"),
        ("cl2", "northeurope"),
        ("cl3", "uksouth"),
        ("cl4", "eastus"),
    ] {
        let mut body = create_body(1000);
        body.location = Some(region.into());
        w.cp.create_cluster(w.now, &cluster_name(name), &body, identity(), &mut w.rng)
            .expect(name);
    }
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
