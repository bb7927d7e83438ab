//! A second server on a data directory another one uses (issue 17, defect 6): it prints one
//! sentence that names the directory and says what to do, not sled's lock error as Rust debug
//! text twice, and exits non-zero without touching the first server's stores.

use std::process::Command;

mod common;
use common::{Serving, BIN};

/// The refusal, as `cmksim` prints it for `dir`.
fn in_use(service: &str, dir: &std::path::Path) -> String {
    format!(
        "cmksim: {service} data directory {} is in use by another cmksim process; stop that \
         process first, or give this one another --data-dir",
        dir.display()
    )
}

/// Runs `cmksim serve ARGS…` (bounded by `timeout`, in case it were to start serving) and
/// returns its exit code and stderr.
fn second(args: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new("timeout");
    command.arg("20").arg(BIN).arg("serve").args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("CMKSIM_") {
            command.env_remove(key);
        }
    }
    let out = command
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cmksim");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_second_storage_on_the_same_directory_says_so_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("storage");
    let data_arg = data.to_string_lossy().into_owned();
    let args = [
        "storage",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_arg,
        "--keyvault",
        "http://127.0.0.1:1",
    ];
    let mut first = Serving::start(&args, &["storage"], dir.path().join("first.log"));
    let (code, stderr) = second(&args);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end(), in_use("storage", &data));
    assert!(first.running(), "the first server keeps serving");
    first.terminate();
    // Once the first is gone, the directory is free again.
    let again = Serving::start(&args, &["storage"], dir.path().join("again.log"));
    again.kill9();
}

#[test]
fn serve_all_on_a_directory_in_use_says_which_service_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_arg = dir.path().to_string_lossy().into_owned();
    let kv_dir = dir.path().join("keyvault");
    let kv_arg = kv_dir.to_string_lossy().into_owned();
    // A Key Vault on `all`'s keyvault subdirectory.
    let first = Serving::start(
        &["keyvault", "--listen", "127.0.0.1:0", "--data-dir", &kv_arg],
        &["keyvault"],
        dir.path().join("first.log"),
    );
    let (code, stderr) = second(&[
        "all",
        "--keyvault-listen",
        "127.0.0.1:0",
        "--storage-listen",
        "127.0.0.1:0",
        "--ingest-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_arg,
    ]);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end(), in_use("keyvault", &kv_dir));
    first.terminate();
}
