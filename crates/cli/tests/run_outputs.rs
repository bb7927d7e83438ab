//! `cmksim run --events FILE` and `--report FILE` refuse a path that cannot be written before the
//! run starts (issue 17, defect 6: before, the whole run played, then the write failed). The
//! proof that nothing ran is the output: no narration, no "Expectations" summary.

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

#[test]
fn an_unwritable_events_or_report_path_fails_before_the_run() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/revocation.toml");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-directory");
    for flag in ["--events", "--report"] {
        let target = missing.join("out");
        let output = Command::new(BIN)
            .arg("run")
            .arg(&scenario)
            .arg(flag)
            .arg(&target)
            .stdin(Stdio::null())
            .output()
            .expect("run cmksim");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stdout.contains("Expectations"),
            "{flag}: the run was played before the refusal:\n{stdout}"
        );
        assert_eq!(output.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("no-such-directory"),
            "{flag}: the error names the flag and the path: {stderr}"
        );
        assert!(!missing.exists());
    }
}
