//! Issue 17, defect 3: runaway work. `cmksim validate` and `cmksim run` refuse a scenario whose
//! estimated work is over the limits of `cmksim_scenario::work` (naming the estimate, the limit
//! and the line that contributes most) unless `--force`; and a simulated run stopped by SIGTERM
//! (`kill`, `timeout`) or SIGINT (Ctrl-C) removes its data directory instead of leaving hundreds
//! of megabytes in `/dev/shm`. The runs here keep their data in a fresh directory named by
//! `CMKSIM_TMPDIR`, so the test sees exactly what a run leaves behind.
//!
//! Every wait is bounded (`POLLS_MAX` × `POLL_INTERVAL`); nothing asserts on how long anything
//! took.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// 2 minutes at most for a run directory to appear, or for the stopped run to exit.
const POLLS_MAX: u32 = 4_800;

/// 1,000,000 records a second for 4 hours: 14.4 billion records (the defect's example).
const RUNAWAY: &str = r#"[scenario]
name = "runaway"
title = "Fourteen billion records"
duration = "4h"

[[workspaces]]
name = "ws-ops"
location = "westeurope"

[[agents]]
name = "vm1"
workspace = "ws-ops"
tables = [{ table = "Event", every = "1s", records = 1000000 }]
"#;

fn library(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/{name}.toml"))
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the run's temporary directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    out.sort();
    out
}

#[test]
fn validate_and_run_refuse_runaway_work_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runaway.toml");
    std::fs::write(&file, RUNAWAY).unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();

    let validate = |force: bool| {
        let mut command = Command::new(BIN);
        command.arg("validate").arg(&file);
        if force {
            command.arg("--force");
        }
        command
            .stdin(Stdio::null())
            .output()
            .expect("cmksim validate")
    };
    let refused = validate(false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    let expected = format!(
        "{}:13:54: this scenario would ingest about 14,401,000,000 records (estimate), over the \
         limit of 10,000,000 (RECORDS_MAX); 14,401,000,000 of them from agent `vm1`, table \
         `Event` (1000000 records every 1s); --force runs it anyway",
        file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let forced = validate(true);
    let stdout = String::from_utf8_lossy(&forced.stdout);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert_eq!(forced.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(": ok ("), "{stdout}");
    assert!(stderr.contains("RECORDS_MAX") && stderr.contains("--force: going ahead"));

    // `run` refuses before creating anything.
    let run = Command::new(BIN)
        .arg("run")
        .arg(&file)
        .env("CMKSIM_TMPDIR", &runs)
        .stdin(Stdio::null())
        .output()
        .expect("cmksim run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!stdout.contains("Expectations"), "{stdout}");
    assert!(entries(&runs).is_empty());

    // The library validates as before.
    let output = Command::new(BIN)
        .arg("validate")
        .arg(library("revocation"))
        .stdin(Stdio::null())
        .output()
        .expect("cmksim validate");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_run_stopped_by_sigterm_or_sigint_removes_its_directory() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let runs = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .arg("run")
            .arg(library("revocation"))
            .arg("--quiet")
            .env("CMKSIM_TMPDIR", runs.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cmksim run");
        // Wait until the run directory exists and the services have created their own in it.
        let mut polls = 0;
        let run_dir = loop {
            let found = entries(runs.path());
            if let Some(dir) = found.first() {
                if dir.is_dir() && !entries(dir).is_empty() {
                    break dir.clone();
                }
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("SIG{signal}: the run ended ({status}) before its directory appeared");
            }
            polls += 1;
            if polls > POLLS_MAX {
                child.kill().expect("kill");
                panic!(
                    "SIG{signal}: no run directory appeared in {}",
                    runs.path().display()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(sent.success());
        let mut polls = 0;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            polls += 1;
            if polls > POLLS_MAX {
                child.kill().expect("kill");
                panic!("SIG{signal}: the run did not stop");
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        let stderr = std::io::read_to_string(child.stderr.take().expect("stderr")).unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}: {stderr}");
        assert!(
            stderr.contains(&format!("SIG{signal}: stopped; removed the run directory")),
            "{stderr}"
        );
        assert!(
            !run_dir.exists(),
            "SIG{signal}: {} is left",
            run_dir.display()
        );
        assert!(entries(runs.path()).is_empty(), "SIG{signal}");
    }
}
