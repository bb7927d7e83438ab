//! Issue 17, defect 9: a live run whose world set-up fails leaves what it created on the
//! services, and the next run of a scenario with those names is refused with `409
//! VaultAlreadyExists`. Set-up is neither rolled back nor adopted (a vault under purge
//! protection keeps its name until its retention ends; see `cmksim_world::live`), so every
//! set-up failure says exactly that: what this run left on the services, and how to run again.
//!
//! Against one `cmksim serve all` at 600×: run 0 creates vault `kv-taken`; run 1 creates vault
//! `kv-first`, then fails on `kv-taken` and names `kv-first` as left behind; run 2, a valid
//! scenario with vault `kv-first`, is refused naming `kv-first` and the way out.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{Serving, BIN};

/// The world every scenario here shares: no cluster, so set-up takes no simulated hours.
fn scenario(name: &str, vaults: &[&str], key_in: Option<&str>) -> String {
    let mut text =
        format!("[scenario]\nname = \"{name}\"\ntitle = \"{name}\"\nduration = \"1m\"\n");
    for vault in vaults {
        text.push_str(&format!(
            "\n[[vaults]]\nname = \"{vault}\"\nlocation = \"westeurope\"\n"
        ));
    }
    if let Some(vault) = key_in {
        text.push_str(&format!(
            "\n[[keys]]\nvault = \"{vault}\"\nname = \"k1\"\nkty = \"RSA\"\n"
        ));
    }
    text
}

/// `cmksim run FILE --live --quiet` against `services`: (exit code, stderr).
fn run_live(services: &Serving, admin: &Path, file: &Path) -> (i32, String) {
    let output = Command::new(BIN)
        .env("CMKSIM_ADMIN_CREDENTIALS", admin)
        .arg("run")
        .arg(file)
        .args(["--live", "--quiet"])
        .args(["--keyvault", services.url("keyvault")])
        .args(["--storage", services.url("storage")])
        .args(["--ingest", services.url("ingest")])
        .stdin(Stdio::null())
        .output()
        .expect("cmksim run --live");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_failed_live_set_up_names_what_it_left_and_the_next_run_says_how_to_clear_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_string_lossy().into_owned();
    let services = Serving::start(
        &[
            "all",
            "--listen",
            "127.0.0.1:0",
            "--time-scale",
            "600",
            "--data-dir",
            &data,
        ],
        &["keyvault", "storage", "ingest"],
        dir.path().join("serve.log"),
    );
    // `run --live` makes the world's principals with the identity administrator's token.
    let admin = common::admin_file(&data_dir.join("keyvault"));
    let write = |name: &str, text: String| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("scenario file");
        path
    };

    let blocker = write("blocker", scenario("blocker", &["kv-taken"], None));
    let (code, err) = run_live(&services, &admin, &blocker);
    assert_eq!(code, 0, "run 0: {err}");

    let half = write(
        "half",
        scenario("half", &["kv-first", "kv-taken"], Some("kv-first")),
    );
    let (code, err) = run_live(&services, &admin, &half);
    assert_eq!(code, 2, "run 1: {err}");
    for part in [
        "world setup failed: 409 VaultAlreadyExists",
        "kv-taken",
        "set-up is not rolled back, and a later run does not adopt what exists",
        "this run left vault `kv-first` on the services",
        "restart the services on empty data directories, or rename them in the scenario",
    ] {
        assert!(err.contains(part), "run 1: {part:?} not in:\n{err}");
    }

    let again = write("again", scenario("again", &["kv-first"], Some("kv-first")));
    let (code, err) = run_live(&services, &admin, &again);
    assert_eq!(code, 2, "run 2: {err}");
    for part in [
        "world setup failed: 409 VaultAlreadyExists",
        "kv-first",
        "this run created no vault, key, cluster or workspace before the failure",
        "was left by an earlier run",
        "restart the services on empty data directories",
    ] {
        assert!(err.contains(part), "run 2: {part:?} not in:\n{err}");
    }
}
