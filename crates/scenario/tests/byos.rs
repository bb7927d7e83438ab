//! Queries in the customer's storage (seed 000 "CMK for queries", BYOS) in scenario files:
//! `[[storage_accounts]]`, the `storage:<name>` principal, the actions `link-storage-account`,
//! `save-search` and `read-saved-searches`, and the `saved_searches` expectation read into the
//! model; each mistake is reported at its `FILE:LINE:COLUMN`, with the storage service's own
//! rules (the account name rule and the two data source types live in `cmksim_sim::governance`).

use cmksim_scenario::model::{Action, PrincipalRef, StepKind, Subject};

mod common;
use common::diagnostics::{assert_one, at, valid as scenario};

const FILE: &str = r#"[scenario]
name = "t"
title = "T"
duration = "2h"

[[vaults]]
name = "kv-one"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "kv-one"
name = "q"
kty = "RSA"

[[access_policies]]
vault = "kv-one"
principal = "storage:queries1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[workspaces]]
name = "ws-one"
location = "westeurope"

[[storage_accounts]]
name = "queries1"
location = "westeurope"
key = { vault = "kv-one", name = "q", version = "latest" }

[[timeline]]
id = "link"
at = "10m"
action = "link-storage-account"
workspace = "ws-one"
account = "queries1"
data_source_type = "alerts"

[[timeline]]
id = "save"
at = "20m"
action = "save-search"
workspace = "ws-one"
search = "errors"
text = "Event | take 5"

[[timeline]]
id = "read"
at = "30m"
action = "read-saved-searches"
workspace = "ws-one"

[[expect]]
saved_searches = "ws-one"
outcome = "readable"
min_records = 1
within = "5m"
after_step = "read"
"#;

#[test]
fn the_format_reads_into_the_model() {
    let s = scenario(FILE);
    let account = &s.world.storage_accounts[0];
    assert_eq!(
        (account.name.as_str(), account.location.as_str()),
        ("queries1", "westeurope")
    );
    assert_eq!(account.key.as_ref().map(|k| k.key.as_str()), Some("q"));
    assert_eq!(
        s.world.access_policies[0].principal,
        PrincipalRef::StorageAccount("queries1".into())
    );
    assert_eq!(
        s.world.access_policies[0].principal.label(),
        "storage:queries1"
    );
    let actions: Vec<&Action> = s
        .timeline
        .iter()
        .filter_map(|step| match &step.what {
            StepKind::Action(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions[0],
        &Action::LinkStorageAccount {
            workspace: "ws-one".into(),
            account: "queries1".into(),
            // The storage service's spelling, whatever the file's case.
            data_source_type: "Alerts".into(),
        }
    );
    assert_eq!(actions[1].name(), "save-search");
    assert_eq!(actions[2].name(), "read-saved-searches");
    assert_eq!(
        s.expectations[0].subject,
        Subject::SavedSearches {
            workspace: "ws-one".into(),
            readable: true,
            min_records: 1
        }
    );
}

#[test]
fn mistakes_are_reported_where_they_are() {
    let bad_name = FILE.replace("name = \"queries1\"", "name = \"Queries_1\"");
    assert_one(
        &bad_name,
        &at(&bad_name, "\"Queries_1\"", 0),
        "Queries_1 is not a valid storage account name. Storage account name must be between 3 and 24 characters",
    );
    let unknown = FILE.replace("account = \"queries1\"", "account = \"nope\"");
    assert_one(&unknown, &at(&unknown, "\"nope\"", 0), "storage account");
    let policy = FILE.replace("storage:queries1", "storage:other");
    assert_one(&policy, &at(&policy, "other\"", 0), "storage account");
    let kind = FILE.replace("\"alerts\"", "\"Logs\"");
    assert_one(&kind, &at(&kind, "\"Logs\"", 0), "expected Query or Alerts");
    let empty = FILE.replace("\"Event | take 5\"", "\"  \"");
    assert_one(
        &empty,
        &at(&empty, "\"  \"", 0),
        "a saved search needs a query `text`",
    );
    let outcome = FILE.replace("\"readable\"", "\"gone\"");
    assert_one(
        &outcome,
        &at(&outcome, "\"gone\"", 0),
        "expected one of readable, unreadable",
    );
    let min = FILE.replace("\"readable\"", "\"unreadable\"");
    assert_one(
        &min,
        &at(&min, "min_records = 1", 14),
        "`min_records` goes with `outcome = \"readable\"`",
    );
}
