//! The revocation scenario played live against three `cmksim serve` processes at time scale
//! 600, with the storage process killed (SIGKILL) and restarted on the same data directory at
//! seeded moments while the agents ingest.
//!
//! It checks the two promises of live mode at once: the scenario's expectations and invariants
//! still hold (`cmksim run --live` exits 0), and every record the ingest front end reported as
//! stored is returned by a query after the run (per workspace and table, from the run's own
//! JSONL event log). The kill points are simulated offsets read off the run's narration; set
//! `CMKSIM_CRASH_SEED` to replay a failure (the seed in use is printed).
//!
//! A second test follows the README: `cmksim serve all`, then `cmksim run FILE --live` with a
//! library scenario, after the refusals that must create nothing (faults live mode cannot
//! apply, a profile mismatch, a URL that answers as another service), and before a second run
//! that finds its world already there.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cmksim_proto::common::v1 as cp;
use cmksim_proto::ingest::v1 as ip;

mod common;
use common::{seed, seeded_points, Cluster3, Serving, BIN, POLLS_MAX, POLL_INTERVAL};

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scenarios/revocation.toml"
);
/// Where the kills fall, in simulated minutes after T+0: one in each window, at a seeded minute.
/// Healthy under the key before the revocation (T+1h), revoked, and healthy after the resume.
/// The windows keep clear of the moments whose timing the expectations judge to the minute —
/// the key enabled at T+2h30m (resumed within 31m) and the query at T+3h45m — because a storage
/// that is down then cannot notice or answer in time however correct it is: a restart takes a
/// few simulated minutes at 600×.
const KILL_WINDOWS_MINUTES: [(u64, u64); 3] = [(10, 55), (65, 140), (185, 215)];
/// The run takes about a minute of real time; this bounds the wait for it (and for each line).
const RUN_WAIT: Duration = Duration::from_secs(300);
const TABLES: [&str; 4] = ["Heartbeat", "Perf", "Event", "Syslog"];

/// The live runs of this file take turns: each is judged with a tolerance of 50 ms of real
/// latency, which two runs sharing two cores with six services would eat into.
static ONE_LIVE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_LIVE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `T+hh:mm:ss` at the start of a narrated line, in minutes.
fn offset_minutes(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("T+")?;
    let mut parts = rest.get(..8)?.split(':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    Some(hours * 60 + minutes)
}

/// Records reported stored by the ingest front end, per (workspace, table).
fn stored_by_table(events_jsonl: &str) -> BTreeMap<(String, String), u64> {
    let mut stored = BTreeMap::new();
    for line in events_jsonl.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if event["kind"] != "ingest.batch" {
            continue;
        }
        let data = &event["data"];
        let key = (
            data["workspace"].as_str().unwrap_or_default().to_string(),
            data["table"].as_str().unwrap_or_default().to_string(),
        );
        *stored.entry(key).or_default() += data["stored"].as_u64().unwrap_or(0);
    }
    stored
}

async fn count(ingest_url: &str, workspace: &str, table: &str) -> Option<u64> {
    let channel = tonic::transport::Endpoint::from_shared(ingest_url.to_string())
        .ok()?
        .timeout(Duration::from_secs(10))
        .connect_lazy();
    let response = ip::query_client::QueryClient::new(channel)
        .query(ip::QueryRequest {
            workspace_id: cmksim_world::driver::workspace_resource_id(workspace),
            table: table.to_string(),
            from: Some(cp::SimTime { unix_ms: 0 }),
            to: Some(cp::SimTime {
                unix_ms: i64::MAX / 2,
            }),
            filters: Vec::new(),
            count_only: true,
            limit: 0,
            order: 0,
        })
        .await
        .ok()?;
    Some(response.into_inner().count)
}

#[test]
fn revocation_live_survives_storage_kill_9_with_every_acknowledged_record() {
    let _turn = one_at_a_time();
    let seed = seed();
    let kill_at: Vec<u64> = KILL_WINDOWS_MINUTES
        .iter()
        .enumerate()
        .map(|(i, (low, high))| seeded_points(seed.wrapping_add(i as u64), 1, *low, *high)[0])
        .collect();
    eprintln!("CMKSIM_CRASH_SEED={seed}: kill -9 of storage at T+{kill_at:?} minutes");

    // The scenario's own profile (azure-2020), unmodified: the services' default.
    let mut services = Cluster3::start(Vec::new());
    let events_path = services.dir.path().join("events.jsonl");
    let run_log = std::fs::File::create(services.dir.path().join("run.stderr")).unwrap();
    let mut run = Command::new(BIN)
        .env("CMKSIM_ADMIN_CREDENTIALS", services.admin_file())
        .args(["run", SCENARIO, "--live", "--verbose", "--keyvault"])
        .arg(services.url("keyvault"))
        .arg("--storage")
        .arg(services.url("storage"))
        .arg("--ingest")
        .arg(services.url("ingest"))
        .arg("--events")
        .arg(&events_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(run_log))
        .spawn()
        .expect("spawn cmksim run --live");
    let stdout = run.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    let next_line = |transcript: &mut Vec<String>| -> Option<String> {
        let line = lines.recv_timeout(RUN_WAIT).ok()?;
        transcript.push(line.clone());
        Some(line)
    };

    for (round, minute) in kill_at.iter().enumerate() {
        loop {
            let Some(line) = next_line(&mut transcript) else {
                panic!(
                    "the run ended or stalled before T+{minute}m:\n{}",
                    transcript.join("\n")
                );
            };
            if offset_minutes(&line).is_some_and(|at| at >= *minute) {
                break;
            }
        }
        let storage = services.storage.take().unwrap();
        let port = storage.port("storage");
        storage.kill9();
        eprintln!("round {round}: storage killed at T+{minute}m, restarting on port {port}");
        services.restart_storage(port);
    }
    while next_line(&mut transcript).is_some() {}
    let mut status = None;
    for _ in 0..POLLS_MAX {
        status = run.try_wait().expect("try_wait");
        if status.is_some() {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let status = status.expect("cmksim run --live did not exit");
    let stderr =
        std::fs::read_to_string(services.dir.path().join("run.stderr")).unwrap_or_default();
    let tail: Vec<&String> = transcript.iter().rev().take(40).collect();
    assert!(
        status.success(),
        "the live run failed ({status}):\n{stderr}\n…\n{}",
        tail.into_iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The run followed the restarted processes (it counts the new instances it saw).
    assert!(
        transcript.iter().any(|l| l.contains("storage restarted")),
        "the run never saw storage restart:\n{}",
        transcript
            .iter()
            .rev()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every record acknowledged as stored, before or after any kill, is still there.
    let stored = stored_by_table(&std::fs::read_to_string(&events_path).unwrap());
    assert!(
        stored.values().sum::<u64>() > 0,
        "the agents stored nothing"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ingest_url = services.url("ingest");
    for ((workspace, table), acknowledged) in &stored {
        assert!(TABLES.contains(&table.as_str()), "unexpected table {table}");
        let mut found = None;
        for _ in 0..POLLS_MAX {
            found = runtime.block_on(count(&ingest_url, workspace, table));
            if found.is_some_and(|n| n >= *acknowledged) {
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        eprintln!("{workspace}/{table}: {acknowledged} acknowledged, {found:?} returned");
        assert!(
            found.is_some_and(|n| n >= *acknowledged),
            "{workspace}/{table}: {acknowledged} records acknowledged as stored, a query returns {found:?}"
        );
    }
}

/// `cmksim serve all` on OS-chosen ports, at 600×.
fn serve_all(data_dir: &std::path::Path) -> Serving {
    let data_dir = data_dir.to_string_lossy().into_owned();
    let args = [
        "all",
        "--listen",
        "127.0.0.1:0",
        "--time-scale",
        "600",
        "--data-dir",
        &data_dir,
    ];
    Serving::start(
        &args,
        &["keyvault", "storage", "ingest"],
        std::path::Path::new(&data_dir).join("serve.log"),
    )
}

/// The Key Vault, storage and ingest URLs, in the order `run --live` takes them.
fn urls(services: &Serving) -> [&str; 3] {
    ["keyvault", "storage", "ingest"].map(|name| services.url(name))
}

/// `cmksim run FILE --live` against the three `urls` with `extra` flags: (exit code, stdout,
/// stderr).
fn run_live(
    admin: &std::path::Path,
    file: &str,
    [keyvault, storage, ingest]: [&str; 3],
    extra: &[&str],
) -> (i32, String, String) {
    let library = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/");
    let output = Command::new(BIN)
        .env("CMKSIM_ADMIN_CREDENTIALS", admin)
        .args(["run", &format!("{library}{file}"), "--live", "--quiet"])
        .args([
            "--keyvault",
            keyvault,
            "--storage",
            storage,
            "--ingest",
            ingest,
        ])
        .args(extra)
        .output()
        .expect("run cmksim run --live");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_all_then_run_live_as_the_readme_says_and_refusals_change_nothing() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let services = serve_all(dir.path());
    // `run --live` makes the world's principals with the identity administrator's token.
    let admin = common::admin_file(&dir.path().join("keyvault"));

    // Refused before anything is created, each in one line with exit 2.
    let urls = urls(&services);
    let (code, _, err) = run_live(&admin, "partition-storage-vault.toml", urls, &[]);
    assert_eq!(code, 2, "{err}");
    for step in [
        "line 45: step short-partition: partition storage keyvault",
        "line 52: step long-partition: partition storage keyvault",
        "line 58: step repair: repair storage keyvault",
    ] {
        assert!(err.contains(step), "{err}");
    }
    let (code, _, err) = run_live(
        &admin,
        "vault-blip-5m.toml",
        urls,
        &["--profile", "azure-current"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the storage runs profile \"azure-2020\""),
        "{err}"
    );
    let swapped = [urls[0], urls[0], urls[2]];
    let (code, _, err) = run_live(&admin, "vault-blip-5m.toml", swapped, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("answers as \"keyvault\""), "{err}");

    // The run itself: every expectation and invariant holds.
    let (code, out, err) = run_live(&admin, "vault-blip-5m.toml", urls, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("every expectation and invariant held"),
        "{out}"
    );
    assert!(out.contains("live at 600×"), "{out}");

    // A second run finds its world already there, and says what to do.
    let (code, _, err) = run_live(&admin, "vault-blip-5m.toml", urls, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("VaultAlreadyExists"), "{err}");
    assert!(err.contains("empty data directories"), "{err}");
}
