//! Profile `azure-2021` (seed 001) is selectable everywhere a profile is: `cmksim profile`,
//! `cmksim serve --profile`, and a scenario's `profile = "azure-2021"` (`cmksim validate`). Real
//! processes of the built binary; nothing is started that listens.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

fn cmksim(args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    // The developer's own CMKSIM_* settings must not leak into the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("CMKSIM_") {
            command.env_remove(key);
        }
    }
    command.output().expect("run cmksim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cmksim_profile_prints_azure_2021_as_seed_001_has_it() {
    let out = cmksim(&["profile", "azure-2021"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("# built-in profiles: azure-2020, azure-2021, azure-current\n"),
        "{stdout}"
    );
    let printed: toml::Table = stdout.parse().expect("the printed profile is TOML");
    assert_eq!(printed["name"].as_str(), Some("azure-2021"));
    assert_eq!(printed["error_wording"].as_str(), Some("seed-001"));
    let cluster = printed["cluster"].as_table().unwrap();
    assert_eq!(cluster["link_before_provisioned"].as_str(), Some("reject"));
    assert_eq!(
        cluster["delete_with_linked_workspaces"].as_str(),
        Some("refuse")
    );
    assert!(!cluster["double_encryption_unsupported_regions"]
        .as_array()
        .unwrap()
        .is_empty());

    let unknown = cmksim(&["profile", "azure-2019"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("azure-2020, azure-2021, azure-current"),
        "{}",
        text(&unknown.stderr)
    );
}

#[test]
fn serve_takes_profile_azure_2021() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let out = cmksim(&[
        "serve",
        "storage",
        "--data-dir",
        &data,
        "--profile",
        "azure-2021",
        "--print-config",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resolved: toml::Table = text(&out.stdout).parse().unwrap();
    assert_eq!(resolved["profile"].as_str(), Some("azure-2021"));
}

#[test]
fn a_scenario_may_name_profile_azure_2021() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed-001.toml");
    std::fs::write(
        &file,
        r#"[scenario]
name = "seed-001"
title = "A cluster under the 2021 profile"
story = "Seed 001's rules."
profile = "azure-2021"
duration = "1h"

[[clusters]]
name = "cluster1"
location = "westeurope"

[[timeline]]
at = "10m"
narrate = "Nothing happens."

[[expect]]
storage = "cluster1"
state = "revoked"
never = true
"#,
    )
    .unwrap();
    let out = cmksim(&["validate", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
