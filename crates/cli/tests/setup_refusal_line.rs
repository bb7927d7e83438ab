//! `cmksim run` maps a refusal while building the scenario's world back to the line that
//! declared the entity (issue 17, defect 1): the service's answer, prefixed with `FILE:LINE:`,
//! exit code 2 like a refusal by `validate`. The file below validates — a disabled key is a
//! state of the vault, not a rule of the file — and Key Vault then refuses the cluster's key at
//! set-up (storage validates it with Key Vault), so storage refuses the cluster.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

const FILE: &str = r#"[scenario]
name = "disabled-key"
title = "A cluster whose key is disabled"
duration = "1h"

[[vaults]]
name = "contoso-kv"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "contoso-kv"
name = "logs-cmk"
kty = "RSA"
enabled = false

[[clusters]]
name = "contosologs"
location = "westeurope"
key = { vault = "contoso-kv", name = "logs-cmk" }
"#;

#[test]
fn a_world_set_up_refusal_names_the_declaring_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disabled-key.toml");
    std::fs::write(&file, FILE).unwrap();
    // The cluster's `name` line.
    let cluster = FILE
        .lines()
        .position(|l| l == "name = \"contosologs\"")
        .unwrap()
        + 1;

    let validated = Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run cmksim validate");
    assert!(validated.status.success(), "{validated:?}");

    let output = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .stdin(Stdio::null())
        .output()
        .expect("run cmksim");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let expected = format!(
        "{}:{cluster}: the world's set-up was refused: 400 ",
        file.display()
    );
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
    assert!(
        stderr.contains("Failed to validate key in Key Vault"),
        "{stderr}"
    );
}
