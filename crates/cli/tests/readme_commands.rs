//! Every command the README shows in a fenced ```` ```sh ```` block is run against the built
//! binary, so the README cannot drift from the command line again (issue 17, defect 10: the
//! README showed `profile show azure-current`, which the binary refuses).
//!
//! A command line is `cargo run --release -- ARGS` or `cmksim ARGS` (a trailing `# comment` is
//! dropped, `\` continues a line). `cargo run --release --` is replaced by the test's own build of
//! the binary (`CARGO_BIN_EXE_cmksim`, a debug build). Each command runs through `sh -c`, so globs
//! such as `scenarios/*.toml` expand as in a user's shell, in a fresh temporary directory holding
//! symbolic links to the repository's `scenarios/`, `sim-config/` and `schema/`: relative scenario
//! paths resolve as from the repository root, and files a command writes (`--report
//! revocation.html`) land in the temporary directory. Each must exit with status 0 within
//! [`COMMAND_WAIT`] (killed after that).
//!
//! Skipped, and why:
//! - comments, blank lines, `export …`: not commands;
//! - `cargo test`, `cargo build`, `cargo install`: build the workspace (this test is part of
//!   `cargo test` itself);
//! - `docker …`, `grpcurl …`: external tools, absent from a fresh machine;
//! - lines ending in `&`: background server starts;
//! - `serve …`: runs until stopped (the serve commands are tested in `serve_cli.rs`,
//!   `serve_tls.rs`, `live_crash.rs` and `live_scenario.rs`);
//! - `bench …`: benchmarks run for minutes by design;
//! - `chaos …`: sweeps run seconds per seed by design, and exit non-zero when a seed breaks an
//!   invariant (tested in `crates/cli/tests/chaos.rs`: shards, replay, exit codes);
//! - `demo NAME`: plays a scenario at 600× real time (minutes); `demo` alone, which lists the
//!   library, is run;
//! - `health …` and `run … --live`: need running services (tested in `live_scenario.rs`).
//!
//! Any other line in a ```` ```sh ```` block fails the test, so a new kind of command must be
//! classified here. The README's indented (4-space) blocks are not fenced and not read; today
//! they hold only server starts, `health` and `--live` runs, which the rules above would skip.
//! [`COMMANDS_RUN_MIN`] keeps the test from passing by running nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

/// The fewest commands this test must run: the four of the README today (`run … --report`,
/// `demo`, `validate`, `profile`). Lower it deliberately when the README loses one.
const COMMANDS_RUN_MIN: usize = 4;

/// How long one command may run before it is killed and the test fails (a bound, not a
/// measurement: the slowest, the revocation drill, takes seconds).
const COMMAND_WAIT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The logical lines (continuations joined, comments cut) of every ```` ```sh ```` block.
fn sh_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for raw in readme.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let without_comment = match trimmed.find(" #") {
            Some(at) => &trimmed[..at],
            None if trimmed.starts_with('#') => "",
            None => trimmed,
        };
        let without_comment = without_comment.trim_end();
        if let Some(head) = without_comment.strip_suffix('\\') {
            pending.push_str(head.trim_end());
            pending.push(' ');
            continue;
        }
        pending.push_str(without_comment);
        let line = std::mem::take(&mut pending).trim().to_string();
        if !line.is_empty() {
            lines.push(line);
        }
    }
    assert!(
        pending.is_empty(),
        "a ```sh block ends in a `\\` continuation"
    );
    lines
}

/// What to do with one README line.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Run `cmksim` with these arguments (a shell fragment).
    Run(String),
    /// Not run, for the stated reason.
    Skip(&'static str),
}

fn plan(line: &str) -> Plan {
    let first = line.split_whitespace().next().unwrap_or_default();
    if first == "export" {
        return Plan::Skip("not a command");
    }
    if ["cargo test", "cargo build", "cargo install"]
        .iter()
        .any(|prefix| line.starts_with(prefix))
    {
        return Plan::Skip("builds the workspace");
    }
    if first == "docker" || first == "grpcurl" {
        return Plan::Skip("external tool");
    }
    if line.ends_with('&') {
        return Plan::Skip("background server start");
    }
    let args = if let Some(args) = line.strip_prefix("cargo run --release -- ") {
        args
    } else if let Some(args) = line.strip_prefix("cmksim ") {
        args
    } else {
        panic!("README ```sh line of an unknown kind (classify it in readme_commands.rs): {line}");
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    match words.first().copied() {
        Some("serve") => Plan::Skip("runs until stopped"),
        Some("bench") => Plan::Skip("a benchmark"),
        Some("chaos") => Plan::Skip("a chaos sweep: seconds per seed"),
        Some("demo") if words.len() > 1 => Plan::Skip("plays a scenario at 600x real time"),
        Some("health") => Plan::Skip("needs a running service"),
        Some("run") if words.contains(&"--live") => Plan::Skip("needs running services"),
        _ => Plan::Run(args.to_string()),
    }
}

/// Runs `cmksim ARGS` through `sh -c` in `dir`; panics with its output unless it exits 0
/// within `COMMAND_WAIT`.
fn run_in(dir: &Path, args: &str) {
    let stdout_path = dir.join("stdout.txt");
    let stderr_path = dir.join("stderr.txt");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("exec \"$README_CMKSIM_BIN\" {args}"))
        .env("README_CMKSIM_BIN", BIN)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    // The developer's own CMKSIM_* settings must not change what the README promises.
    for (key, _) in std::env::vars() {
        if key.starts_with("CMKSIM_") {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("spawn sh");
    let deadline = Instant::now() + COMMAND_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            child.kill().expect("kill a command past its bound");
            child.wait().expect("reap");
            break None;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let output = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    };
    match status {
        None => panic!(
            "`cmksim {args}` still running after {COMMAND_WAIT:?}\n{}",
            output()
        ),
        Some(status) => assert_eq!(
            status.code(),
            Some(0),
            "`cmksim {args}` exited with {status}\n{}",
            output()
        ),
    }
}

/// A temporary directory that looks like the repository root to a relative path.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in ["scenarios", "sim-config", "schema"] {
        std::os::unix::fs::symlink(repo_root().join(entry), dir.path().join(entry))
            .expect("symlink into the repository");
    }
    dir
}

#[test]
fn every_sh_command_in_the_readme_runs() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut ran = Vec::new();
    for line in sh_lines(&readme) {
        match plan(&line) {
            Plan::Run(args) => {
                run_in(workdir().path(), &args);
                ran.push(args);
            }
            Plan::Skip(reason) => eprintln!("skipped ({reason}): {line}"),
        }
    }
    assert!(
        ran.len() >= COMMANDS_RUN_MIN,
        "ran {} README commands, fewer than {COMMANDS_RUN_MIN}: {ran:?}",
        ran.len()
    );
}

#[test]
fn the_extraction_reads_fences_comments_and_continuations() {
    let text = "intro\n```sh\n# a comment\ncargo run --release -- validate a.toml # check\n\
                cmksim serve all \\\n  --data-dir x &\n```\n```\ncmksim not-sh\n```\n    cmksim indented\n";
    let lines = sh_lines(text);
    assert_eq!(
        lines,
        vec![
            "cargo run --release -- validate a.toml".to_string(),
            "cmksim serve all --data-dir x &".to_string(),
        ]
    );
    assert_eq!(plan(&lines[0]), Plan::Run("validate a.toml".to_string()));
    assert_eq!(plan(&lines[1]), Plan::Skip("background server start"));
    assert_eq!(plan("cmksim demo"), Plan::Run("demo".to_string()));
    assert_eq!(
        plan("cmksim demo revocation"),
        Plan::Skip("plays a scenario at 600x real time")
    );
    assert_eq!(
        plan("cmksim chaos scenarios/revocation.toml --seeds 0..200"),
        Plan::Skip("a chaos sweep: seconds per seed")
    );
}
