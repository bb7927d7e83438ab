//! The services' rules in `validate` (issue 17, defect 1): each file here validated before, and
//! was then refused by a service at world set-up, with no line. Now `validate` refuses it at the
//! line that declares the entity, with the same predicate the service applies
//! (`cmksim_sim::rules`).

mod common;
use common::diagnostics::{errors, position_of};

/// The position of the first occurrence of `needle`.
fn at(text: &str, needle: &str) -> String {
    common::diagnostics::at(text, needle, 0)
}

/// A world that set-up accepts; each test breaks one declaration of it.
const GOOD: &str = "[scenario]
name = \"t\"
title = \"T\"
duration = \"2h\"

[[vaults]]
name = \"contoso-kv\"
location = \"westeurope\"
sku = \"premium\"
purge_protection = true

[[keys]]
vault = \"contoso-kv\"
name = \"logs-cmk\"
kty = \"RSA-HSM\"

[[clusters]]
name = \"contosologs\"
location = \"westeurope\"
capacity = 1000
key = { vault = \"contoso-kv\", name = \"logs-cmk\", version = \"v1\" }

[[workspaces]]
name = \"ws-ops\"
location = \"westeurope\"
link = \"contosologs\"
";

/// `GOOD` with `from` replaced by `to` is refused with exactly one error, at `to`, containing
/// `message_part`.
fn refused(from: &str, to: &str, message_part: &str) {
    assert!(GOOD.contains(from), "{from:?} not in the base file");
    let text = GOOD.replacen(from, to, 1);
    let errs = errors(&text);
    let position = at(&text, to);
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains(message_part),
        "{to}: expected one error {position}: …{message_part}…, got:\n{}",
        errs.join("\n")
    );
}

#[test]
fn the_base_file_validates() {
    assert_eq!(errors(GOOD), Vec::<String>::new());
}

#[test]
fn cluster_names_follow_storage() {
    for bad in ["c1", "contoso_logs"] {
        let text = GOOD
            .replace("name = \"contosologs\"", &format!("name = \"{bad}\""))
            .replace("link = \"contosologs\"", &format!("link = \"{bad}\""));
        let errs = errors(&text);
        let position = at(&text, &format!("\"{bad}\"\nlocation"));
        assert!(
            errs.len() == 1
                && errs[0].starts_with(&format!("{position}: "))
                && errs[0].contains("Cluster name is not valid"),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn workspace_names_follow_storage() {
    for bad in ["\"ws1\"", "\"ws.ops\"", "\"ws-ops-\""] {
        refused("\"ws-ops\"", bad, "Workspace name can contain");
    }
}

#[test]
fn vault_names_follow_key_vault() {
    for bad in ["a_b-kv", "kv", &"k".repeat(30)] {
        let text = GOOD.replace("contoso-kv", bad);
        let errs = errors(&text);
        let position = at(&text, &format!("\"{bad}\"\nlocation"));
        assert!(
            errs.len() == 1
                && errs[0].starts_with(&format!("{position}: "))
                && errs[0].contains("A vault's name must be between 3-24"),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn key_names_follow_key_vault() {
    let text = GOOD.replace("logs-cmk", "logs_cmk");
    let errs = errors(&text);
    let position = at(&text, "\"logs_cmk\"\nkty");
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains("a key name is 1-127 letters, digits and hyphens"),
        "{errs:?}"
    );
}

#[test]
fn capacity_follows_the_profile() {
    refused(
        "1000",
        "10",
        "not in range (this profile allows 1000 to 3000",
    );
    refused("1000", "1050", "not a multiple of 100");
    // azure-current allows from 100 GB/day.
    let current = GOOD.replace(
        "duration = \"2h\"",
        "duration = \"2h\"\nprofile = \"azure-current\"",
    );
    assert_eq!(
        errors(&current.replace("capacity = 1000", "capacity = 200")),
        Vec::<String>::new()
    );
}

#[test]
fn a_cluster_key_needs_a_purge_protected_vault() {
    let text = GOOD.replace("purge_protection = true", "purge_protection = false");
    let errs = errors(&text);
    let position = at(&text, "\"contoso-kv\", name = \"logs-cmk\"");
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains("Key is not recoverable"),
        "{errs:?}"
    );
}

#[test]
fn an_hsm_key_needs_a_premium_vault() {
    let text = GOOD.replace("sku = \"premium\"", "sku = \"standard\"");
    let errs = errors(&text);
    let position = at(&text, "\"RSA-HSM\"");
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains("HSM-protected keys require the premium SKU"),
        "{errs:?}"
    );
}

#[test]
fn a_location_that_is_no_region_is_its_own_error() {
    let text = GOOD.replacen("location = \"westeurope\"", "location = \"mars\"", 1);
    let errs = errors(&text);
    let position = at(&text, "\"mars\"");
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("{position}: "))
            && e.contains("\"mars\" is not an Azure region")),
        "{errs:?}"
    );
}

#[test]
fn regions_must_match() {
    let text = GOOD.replacen("location = \"westeurope\"", "location = \"northeurope\"", 1);
    let errs = errors(&text);
    let position = at(&text, "\"contoso-kv\", name = \"logs-cmk\"");
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains("must be in the same region"),
        "{errs:?}"
    );
    let ws = GOOD.replace(
        "name = \"ws-ops\"\nlocation = \"westeurope\"",
        "name = \"ws-ops\"\nlocation = \"northeurope\"",
    );
    let errs = errors(&ws);
    let position = position_of(&ws, ws.rfind("\"contosologs\"").unwrap());
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains("differs from cluster region"),
        "{errs:?}"
    );
}

#[test]
fn a_world_key_has_one_version_at_set_up() {
    refused(
        "\"v1\"",
        "\"v99\"",
        "has one version when the world is set up",
    );
}

/// Storage's per-region limit on active clusters (issue 17): five clusters in one region and
/// subscription validated, and storage refused the third at set-up. Now `validate` refuses the
/// third at its name, with storage's message; another subscription or region does not count.
#[test]
fn the_active_cluster_limit_per_region_and_subscription() {
    let mut text = String::from("[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"1h\"\n");
    for n in 1..=5 {
        text.push_str(&format!(
            "\n[[clusters]]\nname = \"cluster{n}\"\nlocation = \"westeurope\"\n"
        ));
    }
    let errs = errors(&text);
    let third = at(&text, "\"cluster3\"");
    assert!(!errs.is_empty(), "five clusters in one region validated");
    assert!(
        errs[0].starts_with(&format!("{third}: "))
            && errs[0].contains(
                "The max number of active clusters per region and subscription is 2. \
                 Subscription '"
            ),
        "{}",
        errs.join("\n")
    );
    assert_eq!(errs.len(), 3, "{}", errs.join("\n"));

    let mut spread = String::from("[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"1h\"\n");
    for (n, location, subscription) in [
        (1, "westeurope", "s1"),
        (2, "WestEurope", "s1"),
        (3, "northeurope", "s1"),
        (4, "westeurope", "s2"),
    ] {
        spread.push_str(&format!(
            "\n[[clusters]]\nname = \"cluster{n}\"\nlocation = \"{location}\"\nsubscription = \"{subscription}\"\n"
        ));
    }
    assert_eq!(errors(&spread), Vec::<String>::new());
}
