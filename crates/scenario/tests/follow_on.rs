//! One invalid entity gives its own error only (issue 17, defect 6): an entity whose name was
//! declared is known to the rest of the file even when one of its other values is invalid, so
//! that every reference to it does not invent "unknown cluster (no cluster is defined)" before
//! or instead of the real error at the entity's own line.

mod common;
use common::diagnostics::{at, errors};

const FLAGSHIP: &str = include_str!("../../../scenarios/revocation.toml");

/// The flagship with `from` replaced by `to` gives exactly one error, at the `nth` byte of
/// `to`, containing `message_part`.
fn only_the_real_error(from: &str, to: &str, nth: usize, message_part: &str) {
    assert!(FLAGSHIP.contains(from), "{from:?} not in the flagship");
    let text = FLAGSHIP.replacen(from, to, 1);
    let errs = errors(&text);
    let position = at(&text, to, nth);
    assert!(
        errs.len() == 1
            && errs[0].starts_with(&format!("{position}: "))
            && errs[0].contains(message_part),
        "{to:?}: expected only {position}: …{message_part}…, got:\n{}",
        errs.join("\n")
    );
}

#[test]
fn an_invalid_cluster_is_still_known_to_its_references() {
    // Before: five "unknown cluster `contosologs` (no cluster is defined)", one before the real
    // error (the cluster identity's access policy) and four after it (links, expectations).
    only_the_real_error(
        "capacity = 1000",
        "capacity = 0",
        11,
        "capacity (GB per day) must be",
    );
    only_the_real_error(
        "location = \"westeurope\"\nsubscription",
        "location = \"west europe\"\nsubscription",
        16,
        "location \"west europe\": unexpected character ' '",
    );
    only_the_real_error(
        "subscription = \"contoso-prod\"",
        "subscription = \"contoso prod\"",
        23,
        "unexpected character ' '",
    );
}

#[test]
fn an_invalid_vault_key_tenant_or_workspace_is_still_known() {
    only_the_real_error(
        "retention_days = 90",
        "retention_days = 2",
        17,
        "retention_days must be between 7 and 90, got 2",
    );
    only_the_real_error("size = 2048", "size = 7", 7, "size 7 is not valid for RSA");
    // A tenant name with a space, used as such by its references: one error, at the name.
    let text = FLAGSHIP.replace("\"contoso\"", "\"contoso corp\"");
    let position = at(&text, "contoso corp", 7);
    let errs = errors(&text);
    assert!(
        errs.len() == 1 && errs[0].starts_with(&format!("{position}: tenant name ")),
        "expected only {position}: tenant name …, got:\n{}",
        errs.join("\n")
    );
    only_the_real_error(
        "name = \"ws-ops\"\nlocation = \"westeurope\"",
        "name = \"ws-ops\"\nlocation = \"west europe\"",
        32,
        "location \"west europe\": unexpected character ' '",
    );
}

#[test]
fn a_reference_to_a_name_never_declared_is_still_an_error() {
    let text = FLAGSHIP.replacen("link = \"contosologs\"", "link = \"elsewhere\"", 1);
    let errs = errors(&text);
    let position = at(&text, "\"elsewhere\"", 0);
    assert_eq!(
        errs,
        vec![format!(
            "{position}: unknown cluster `elsewhere` (known: `contosologs`)"
        )]
    );
}
