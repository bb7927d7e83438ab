//! A server whose output readers went away keeps serving (issue 17, defect 5: `cmksim serve all
//! 2>&1 | head -3` died with exit status 101 within a second). Rust ignores SIGPIPE, so a write
//! to a closed pipe returns `EPIPE`; logging must swallow it, never panic on it.
//!
//! The server runs with `RUST_LOG=debug`, so every gRPC call it serves writes log lines into the
//! closed stderr. No timing is asserted: the checks are that it still answers health checks after
//! many calls and that SIGTERM still ends it with status 0 (its shutdown logs too).

mod common;

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
