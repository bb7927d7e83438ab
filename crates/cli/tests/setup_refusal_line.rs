//! `cmksim run` maps a refusal while building the scenario's world back to the line that
//! declared the entity (issue 17, defect 1): the service's answer, prefixed with `FILE:LINE:`,
//! exit code 2 like a refusal by `validate`. The file below validates, and the storage then
//! refuses its third active cluster in one region and subscription.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

#[test]
fn a_world_set_up_refusal_names_the_declaring_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("five-clusters.toml");
    let mut text = String::from(
        "[scenario]\nname = \"five-clusters\"\ntitle = \"Five clusters in one region\"\nduration = \"1h\"\n",
    );
    for n in 1..=5 {
        text.push_str(&format!(
            "\n[[clusters]]\nname = \"cluster{n}\"\nlocation = \"westeurope\"\n"
        ));
    }
    std::fs::write(&file, &text).unwrap();
    // The third cluster's `name` line: 4 header lines, then 4 lines per cluster.
    let third = text
        .lines()
        .position(|l| l == "name = \"cluster3\"")
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
        "{}:{third}: the world's set-up was refused: 409 ",
        file.display()
    );
    assert!(
        stderr.contains(&expected),
        "want {expected:?} in:\n{stderr}"
    );
    assert!(
        stderr.contains("The max number of active clusters per region"),
        "{stderr}"
    );
}
