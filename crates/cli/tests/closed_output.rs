//! A command whose output readers went away carries on. Rust ignores SIGPIPE, so a write to a
//! closed pipe returns `EPIPE`; logging and printing must swallow it, never panic on it.
//!
//! - A server (issue 17, defect 5: `cmksim serve all 2>&1 | head -3` died with exit status 101
//!   within a second) runs with `RUST_LOG=debug`, so every gRPC call it serves writes log lines
//!   into the closed stderr. The checks are that it still answers health checks after many calls
//!   and that SIGTERM still ends it with status 0 (its shutdown logs too).
//! - A simulated run (`cmksim run scenarios/revocation.toml | head -3` panicked with exit status
//!   101 at its first `println!` after the reader left) finishes its scenario: its verdict is its
//!   exit status, its event log is whole and its run directory is gone.
//! - A command whose output cannot be written for another reason (a full disk behind a
//!   redirection, here `/dev/full`) says so on stderr and exits with 2: its output is incomplete.
//!
//! No timing is asserted; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Serving, BIN};

/// Health probes sent after the pipes closed: each one makes the server log.
const PROBES: usize = 20;

fn health(url: &str) -> std::process::ExitStatus {
    Command::new(BIN)
        .args(["health", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run cmksim health")
}

#[test]
fn serve_keeps_serving_after_its_stdout_and_stderr_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kv");
    let mut serving = Serving::start_then_close_output(
        &[
            "keyvault",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &["keyvault"],
        "debug",
    );
    let url = serving.url("keyvault").to_string();
    for probe in 0..PROBES {
        assert!(health(&url).success(), "health probe {probe} failed");
        assert!(serving.running(), "serve exited after health probe {probe}");
    }
    serving.terminate();
}

#[test]
fn a_run_whose_reader_goes_away_finishes_its_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let events = dir.path().join("events.jsonl");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/revocation.toml");
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&scenario)
        .arg("--events")
        .arg(&events)
        .env("CMKSIM_TMPDIR", &runs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cmksim run");
    // Read the title line, as `head -1` would, then go away.
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut first).expect("the title line");
    assert!(first.starts_with("Revocation"), "{first}");
    drop(stdout);
    // `wait` is bounded by the run itself: a scenario of fixed length.
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let log = std::fs::read_to_string(&events).expect("the event log");
    assert!(log.contains("\"kind\":\"scenario.finished\""));
    assert!(log.ends_with("}\n"), "the log ends with a whole line");
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().collect();
    assert!(left.is_empty(), "run directories left: {left:?}");
}

#[test]
fn a_command_whose_output_cannot_be_written_fails_and_says_why() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let output = Command::new(BIN)
        .args(["profile", "azure-2020"])
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .expect("run cmksim profile");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("writing to standard output failed"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}
