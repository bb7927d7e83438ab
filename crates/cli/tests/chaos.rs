//! `cmksim chaos`: shards merge by concatenation into exactly the whole sweep (apart from the
//! wall time, kept in its own field), `--replay SEED` writes the event log whose SHA-256 the
//! sweep recorded for that seed (byte for byte), the exit code follows the verdicts, and a bad
//! `[chaos]` table is refused with FILE:LINE:COLUMN before anything runs. Five simulated runs.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

const SCENARIO: &str = r#"
[scenario]
name = "chaos-cli"
title = "Sweep test"
seed = 5
duration = "1h20m"

[[vaults]]
name = "chaos-cli-kv"
location = "westeurope"
purge_protection = true

[[keys]]
vault = "chaos-cli-kv"
name = "cmk"
kty = "RSA"

[[access_policies]]
vault = "chaos-cli-kv"
principal = "cluster:chaoscli1"
permissions = ["get", "wrapKey", "unwrapKey"]

[[clusters]]
name = "chaoscli1"
location = "westeurope"
key = { vault = "chaos-cli-kv", name = "cmk", version = "latest" }

[[workspaces]]
name = "ws-chaos"
location = "westeurope"
link = "chaoscli1"

[[agents]]
name = "app"
workspace = "ws-chaos"
tables = [{ table = "Heartbeat", every = "1m" }]

[chaos]
faults = ["key-disable", "vault-down", "partition-ingest-storage"]
faults_min = 1
faults_max = 2
duration_min = "1m"
duration_max = "10m"
from = "10m"
until = "30m"
"#;

fn cmksim(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cmksim")
}

/// The lines of a results file, each without its `wall_ms`.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            assert!(v["wall_ms"].is_u64(), "{l}");
            v.as_object_mut().unwrap().remove("wall_ms");
            v
        })
        .collect()
}

fn seeds(lines: &[Value]) -> Vec<u64> {
    lines.iter().map(|l| l["seed"].as_u64().unwrap()).collect()
}

#[test]
fn shards_concatenate_to_the_sweep_and_a_replay_is_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chaos-cli.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let file = file.to_str().unwrap();
    let path = |name: &str| dir.path().join(name);
    let p = |name: &str| path(name).to_str().unwrap().to_string();

    let whole = cmksim(&[
        "chaos",
        file,
        "--seeds",
        "0..2",
        "--jobs",
        "2",
        "--out",
        &p("all.jsonl"),
    ]);
    let all = lines(&path("all.jsonl"));
    assert_eq!(
        seeds(&all),
        [0, 1],
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let stdout = String::from_utf8_lossy(&whole.stdout);
    assert!(stdout.contains("invariant-1"), "{stdout}");
    assert!(stdout.contains("2 seeds,"), "{stdout}");
    // Exit 0 exactly when no seed broke a check.
    let any_broken = all
        .iter()
        .any(|l| !l["broken"].as_array().unwrap().is_empty() || !l["error"].is_null());
    assert_eq!(
        whole.status.code(),
        Some(if any_broken { 1 } else { 0 }),
        "{stdout}"
    );
    for l in &all {
        assert!(!l["faults"].as_array().unwrap().is_empty(), "{l}");
        // SPEC §8's six event checks and seed 002's unsupported Sentinel configuration.
        assert_eq!(l["invariants"].as_array().unwrap().len(), 7, "{l}");
    }

    let mut merged = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = p(&format!("shard-{}.jsonl", &shard[..1]));
        cmksim(&[
            "chaos", file, "--seeds", "0..2", "--shard", shard, "--jobs", "1", "--out", &out,
        ]);
        merged.extend(lines(Path::new(&out)));
    }
    merged.sort_by_key(|l| l["seed"].as_u64());
    assert_eq!(merged, all, "the shards differ from the whole sweep");

    // The replay of seed 1 writes the very log the sweep hashed.
    let replay = cmksim(&[
        "chaos",
        file,
        "--replay",
        "1",
        "--events",
        &p("seed-1.jsonl"),
    ]);
    let log = std::fs::read(path("seed-1.jsonl")).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &log);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(all[1]["events_sha256"].as_str(), Some(hex.as_str()));
    assert_eq!(
        all[1]["events"].as_u64(),
        Some(log.iter().filter(|b| **b == b'\n').count() as u64)
    );
    let replay_out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay_out.contains("fault: "), "{replay_out}");
}

#[test]
fn a_bad_chaos_table_is_refused_at_its_place_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = SCENARIO.replace("faults_max = 2", "faults_max = 0");
    std::fs::write(&file, &text).unwrap();
    let output = cmksim(&["chaos", file.to_str().unwrap(), "--seeds", "0..3"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = text[..text.find("faults_max = 0").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert!(
        stderr.contains(&format!(
            "bad.toml:{line}:14: chaos faults_min (1) must not exceed faults_max (0)"
        )),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).is_empty());
}
