//! `cmksim serve` and `cmksim health` as a user meets them: configuration layering, bad input
//! refused with exit status 2 before anything starts, `serve all` answering health checks and
//! `/metrics`, and a clean exit on SIGTERM. Real processes; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cmksim");

fn cmksim(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    // The developer's own CMKSIM_* settings must not leak into the tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("CMKSIM_") {
            command.env_remove(key);
        }
    }
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("run cmksim")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn flags_win_over_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmksim.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &file,
        format!(
            "data-dir = {:?}\ntime-scale = 5\nseed = 7\nepoch = 1000\nprofile = \"azure-current\"\nkeyvault = \"http://file:1\"\n",
            data.to_string_lossy()
        ),
    )
    .unwrap();
    let config = file.to_string_lossy().into_owned();
    let out = cmksim(
        &[
            "serve",
            "storage",
            "--config",
            &config,
            "--time-scale",
            "60",
            "--print-config",
        ],
        &[("CMKSIM_TIME_SCALE", "30"), ("CMKSIM_SEED", "8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let resolved: toml::Table = stdout(&out).parse().unwrap();
    assert_eq!(resolved["time-scale"].as_float(), Some(60.0), "flag wins");
    assert_eq!(
        resolved["seed"].as_integer(),
        Some(8),
        "environment wins over file"
    );
    assert_eq!(
        resolved["epoch"].as_integer(),
        Some(1000),
        "file wins over default"
    );
    assert_eq!(resolved["profile"].as_str(), Some("azure-current"));
    assert_eq!(resolved["keyvault"].as_str(), Some("http://file:1"));
    assert_eq!(
        resolved["listen"].as_str(),
        Some("127.0.0.1:50052"),
        "default"
    );

    // The printed configuration is itself a valid --config file.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, stdout(&out)).unwrap();
    let out2 = cmksim(
        &[
            "serve",
            "storage",
            "--config",
            &again.to_string_lossy(),
            "--print-config",
        ],
        &[],
    );
    assert!(out2.status.success(), "{}", stderr(&out2));
    assert_eq!(stdout(&out2), stdout(&out));
}

#[test]
fn bad_input_exits_2_with_a_clear_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_string_lossy().into_owned();
    let a_file = dir.path().join("file");
    std::fs::write(&a_file, "x").unwrap();
    let under_a_file = a_file.join("data").to_string_lossy().into_owned();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "time_scale = 60\n").unwrap();
    let bad_config = bad_config.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["storage", "--data-dir", &data, "--keyvault", "not a url"],
            "--keyvault",
        ),
        (vec!["ingest", "--storage", "127.0.0.1:50052"], "http://"),
        (
            vec!["keyvault", "--data-dir", &data, "--time-scale", "0"],
            "--time-scale must be a positive number",
        ),
        (
            vec!["all", "--data-dir", &data, "--time-scale=-60"],
            "--time-scale must be a positive number",
        ),
        (
            vec!["storage", "--data-dir", &data, "--profile", "azure-1999"],
            "unknown profile",
        ),
        (
            vec![
                "storage",
                "--data-dir",
                &data,
                "--profile-override",
                "cluster.no_such_key=1",
            ],
            "no_such_key",
        ),
        (
            vec!["keyvault", "--data-dir", &under_a_file],
            "data directory",
        ),
        (vec!["keyvault"], "--data-dir"),
        (vec!["keyvault", "--config", &bad_config], "unknown field"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["serve"];
        full.extend(&args);
        // Port 1 would need privileges: had anything started, the error would say so instead.
        full.extend(["--listen", "127.0.0.1:1"]);
        let out = cmksim(&full, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: expected {expected:?} in {:?}",
            stderr(&out)
        );
        assert!(
            !stdout(&out).contains("listening"),
            "{args:?} started something"
        );
    }
    // Clap's own refusals (an unparseable number, an unknown format) exit 2 as well.
    for args in [
        vec!["serve", "keyvault", "--time-scale", "fast"],
        vec!["serve", "keyvault", "--log-format", "xml"],
        vec!["serve", "keyvault", "--listen", "nowhere"],
    ] {
        assert_eq!(cmksim(&args, &[]).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn health_of_an_unreachable_service_is_exit_1() {
    let out = cmksim(
        &["health", "http://127.0.0.1:1", "--timeout-ms", "2000"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(cmksim(&["health", "not a url"], &[]).status.code(), Some(2));
}

#[test]
fn serve_all_answers_health_and_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "all",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--time-scale",
            "60",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut urls = std::collections::BTreeMap::new();
    let announced = ["keyvault", "storage", "ingest", "sentinel", "metrics"];
    while !announced.iter().all(|s| urls.contains_key(*s)) {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve all announces its five listeners");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("listening"), "{line}");
        let service = words.next().unwrap().to_string();
        urls.insert(service, words.next().unwrap().to_string());
    }
    for service in ["keyvault", "storage", "ingest", "sentinel"] {
        let out = cmksim(&["health", &urls[service]], &[]);
        assert!(
            out.status.success(),
            "{service}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = cmksim(
        &[
            "health",
            &urls["storage"],
            "--service",
            "storage.v1.DataPlane",
        ],
        &[],
    );
    assert!(out.status.success());

    // /metrics over plain HTTP/1.1.
    let metrics = urls["metrics"].trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&metrics).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("cmksim_ingest_records_total"), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..1200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("serve all did not exit after SIGTERM");
    };
    assert!(status.success(), "serve all exited with {status}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    // JSON log lines, one object each.
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('{') && first.contains("\"level\""),
        "{first}"
    );
    assert!(log.contains("stopped"), "{log}");
}
