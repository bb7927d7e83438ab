//! What the multi-process tests share: `cmksim serve` children on loopback, the three-service
//! set-up, a seeded choice of kill points, and ([`world`]) a small world built over gRPC.
//!
//! Every wait is bounded (`POLLS_MAX` × `POLL_INTERVAL`, `START_WAIT`); nothing asserts on how
//! long anything took.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod world;

pub const BIN: &str = env!("CARGO_BIN_EXE_cmksim");
pub const TIME_SCALE: f64 = 600.0;
/// Bounds on every wait (polls × interval), generous for a loaded 2-core machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
pub const POLLS_MAX: u32 = 1200;
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A `cmksim serve …` child and the URLs it announced; killed (SIGKILL) if still running when
/// dropped. The developer's own `CMKSIM_*` settings are not passed on.
pub struct Serving {
    child: Child,
    urls: BTreeMap<String, String>,
    log: PathBuf,
    label: String,
}

impl Serving {
    /// Starts `cmksim serve ARGS…` (stderr appended to `log`) and waits (bounded) for a
    /// `listening NAME URL` line for each of `services`.
    pub fn start<A: AsRef<OsStr>>(args: &[A], services: &[&str], log: PathBuf) -> Serving {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        Serving::spawn(args, services, log, Output::LogFile(log_file))
    }

    /// Like [`Serving::start`], but stdout and stderr are pipes whose reading ends are closed
    /// once every service announced itself, as when the reader of a server's output goes away
    /// (`cmksim serve all 2>&1 | head -3`, a restarting log collector). `rust_log` is the child's
    /// `RUST_LOG`. stderr is drained until then, and closed after the next line that follows
    /// (so the server writes into a closed pipe at its next log line at the latest).
    pub fn start_then_close_output<A: AsRef<OsStr>>(
        args: &[A],
        services: &[&str],
        rust_log: &str,
    ) -> Serving {
        Serving::spawn(
            args,
            services,
            PathBuf::from("(stderr was a pipe, now closed)"),
            Output::ClosedAfterStart {
                rust_log: rust_log.to_string(),
            },
        )
    }

    fn spawn<A: AsRef<OsStr>>(
        args: &[A],
        services: &[&str],
        log: PathBuf,
        output: Output,
    ) -> Serving {
        let mut command = Command::new(BIN);
        command.arg("serve").args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("CMKSIM_") {
                command.env_remove(key);
            }
        }
        let (stderr, rust_log, stdout_lines_max) = match output {
            Output::LogFile(file) => (
                Stdio::from(file),
                // SERVE_TEST_LOG (a RUST_LOG filter) makes a failing run's logs say more.
                std::env::var("SERVE_TEST_LOG").unwrap_or_else(|_| "warn".to_string()),
                usize::MAX,
            ),
            Output::ClosedAfterStart { rust_log } => (Stdio::piped(), rust_log, services.len()),
        };
        let mut child = command
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn cmksim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads at most `stdout_lines_max` lines, then drops (closes) the pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .take(stdout_lines_max)
            {
                // After start returns nobody receives; keep draining so the child never
                // blocks on a full pipe.
                let _ = tx.send(line);
            }
        });
        let close_stderr = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(stderr) = child.stderr.take() {
            let close = close_stderr.clone();
            std::thread::spawn(move || {
                for _line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if close.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                }
            });
        }
        let mut serving = Serving {
            child,
            urls: BTreeMap::new(),
            log,
            label: services.join("+"),
        };
        while serving.urls.len() < services.len() {
            let Ok(line) = rx.recv_timeout(START_WAIT) else {
                let _ = serving.child.kill();
                let status = serving.child.wait().ok();
                panic!(
                    "serve {} did not announce {services:?} ({status:?}); log:\n{}",
                    serving.label,
                    std::fs::read_to_string(&serving.log).unwrap_or_default()
                );
            };
            let mut words = line.split_whitespace();
            assert_eq!(words.next(), Some("listening"), "{line}");
            let (name, url) = (words.next().unwrap(), words.next().unwrap());
            serving.urls.insert(name.to_string(), url.to_string());
        }
        close_stderr.store(true, std::sync::atomic::Ordering::SeqCst);
        serving
    }

    /// True while the child runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn url(&self, service: &str) -> &str {
        &self.urls[service]
    }

    pub fn port(&self, service: &str) -> u16 {
        self.url(service)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits (bounded) for a clean exit (status 0).
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.label);
        for _ in 0..POLLS_MAX {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(
                    status.success(),
                    "{} exited with {status} after SIGTERM",
                    self.label
                );
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!(
            "{} did not exit after SIGTERM; log:\n{}",
            self.label,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// Where a [`Serving`] child's stderr goes.
enum Output {
    /// Appended to a file (`RUST_LOG=warn`).
    LogFile(std::fs::File),
    /// Pipes closed once the services announced themselves.
    ClosedAfterStart { rust_log: String },
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cmksim serve NAME ARGS…`, logging to `LOG_DIR/NAME.log`.
fn serve_one(name: &str, args: &[String], log_dir: &Path) -> Serving {
    let all: Vec<&str> = std::iter::once(name)
        .chain(args.iter().map(String::as_str))
        .collect();
    Serving::start(&all, &[name], log_dir.join(format!("{name}.log")))
}

/// The three processes and their directories.
pub struct Cluster3 {
    pub dir: tempfile::TempDir,
    /// `--time-scale` and `--epoch`, given to every process.
    pub common: Vec<String>,
    /// Given to storage and ingest (profile flags).
    pub service_args: Vec<String>,
    pub keyvault: Option<Serving>,
    pub storage: Option<Serving>,
    pub ingest: Option<Serving>,
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The identity administrator's credentials file of a Key Vault served with `--data-dir
/// kv_data_dir` (`DATA_DIR/keyvault` for `serve all`): `run --live` and the set-up make
/// principals with its token.
pub fn admin_file(kv_data_dir: &std::path::Path) -> PathBuf {
    kv_data_dir.join("identity").join("identity-admin.json")
}

impl Cluster3 {
    /// The identity administrator's credentials file of this cluster's Key Vault.
    pub fn admin_file(&self) -> PathBuf {
        admin_file(&self.dir.path().join("kv"))
    }

    /// Starts Key Vault, storage and ingest on loopback ports chosen by the OS, at `TIME_SCALE`
    /// on one epoch; `service_args` go to storage and ingest.
    pub fn start(mut service_args: Vec<String>) -> Cluster3 {
        // The tests of these three processes call storage and ingest directly, without tokens
        // (token checks of services run alone are tested in serve_alone_tokens.rs).
        service_args.push("--allow-anonymous".to_string());
        let dir = tempfile::tempdir().unwrap();
        let epoch = now_unix_ms().to_string();
        let common = vec![
            "--time-scale".to_string(),
            TIME_SCALE.to_string(),
            "--epoch".to_string(),
            epoch,
        ];
        let keyvault = serve_one(
            "keyvault",
            &args(
                &common,
                &["--listen", "127.0.0.1:0", "--data-dir", &path(&dir, "kv")],
            ),
            dir.path(),
        );
        let mut c = Cluster3 {
            dir,
            common,
            service_args,
            keyvault: Some(keyvault),
            storage: None,
            ingest: None,
        };
        c.start_storage("127.0.0.1:0");
        let storage_url = c.url("storage");
        let mut ingest_args = args(
            &c.common,
            &["--listen", "127.0.0.1:0", "--storage", &storage_url],
        );
        ingest_args.extend(c.service_args.iter().cloned());
        c.ingest = Some(serve_one("ingest", &ingest_args, c.dir.path()));
        c
    }

    /// Starts storage on `listen`, with the identity administrator's credentials (it makes its
    /// own principal, which creates the clusters' managed identities).
    pub fn start_storage(&mut self, listen: &str) {
        let kv = self.url("keyvault");
        let admin = self.admin_file().to_string_lossy().into_owned();
        let mut a = args(
            &self.common,
            &[
                "--listen",
                listen,
                "--data-dir",
                &path(&self.dir, "storage"),
                "--keyvault",
                &kv,
                "--admin-credentials",
                &admin,
            ],
        );
        a.extend(self.service_args.iter().cloned());
        self.storage = Some(serve_one("storage", &a, self.dir.path()));
    }

    /// Restarts storage on its port and data directory (the servers bind with SO_REUSEADDR, so
    /// the port just released is free again unless another process took it meanwhile).
    pub fn restart_storage(&mut self, port: u16) {
        let listen = format!("127.0.0.1:{port}");
        self.start_storage(&listen);
    }

    /// Restarts Key Vault on its port and data directory.
    pub fn restart_keyvault(&mut self, port: u16) {
        let listen = format!("127.0.0.1:{port}");
        let a = args(
            &self.common,
            &["--listen", &listen, "--data-dir", &path(&self.dir, "kv")],
        );
        self.keyvault = Some(serve_one("keyvault", &a, self.dir.path()));
    }

    /// Restarts the ingest front end on its port, against the storage URL of the moment.
    pub fn restart_ingest(&mut self, port: u16) {
        let listen = format!("127.0.0.1:{port}");
        let storage_url = self.url("storage");
        let mut a = args(
            &self.common,
            &["--listen", &listen, "--storage", &storage_url],
        );
        a.extend(self.service_args.iter().cloned());
        self.ingest = Some(serve_one("ingest", &a, self.dir.path()));
    }

    pub fn url(&self, which: &str) -> String {
        match which {
            "keyvault" => self.keyvault.as_ref(),
            "storage" => self.storage.as_ref(),
            _ => self.ingest.as_ref(),
        }
        .unwrap()
        .url(which)
        .to_string()
    }
}

pub fn args(common: &[String], extra: &[&str]) -> Vec<String> {
    common
        .iter()
        .cloned()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

pub fn path(dir: &tempfile::TempDir, sub: &str) -> String {
    dir.path().join(sub).to_string_lossy().into_owned()
}

/// `n` numbers in `[low, high)` from `seed` (splitmix64): kill points a failure can be replayed
/// from.
pub fn seeded_points(seed: u64, n: usize, low: u64, high: u64) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            low + z % (high - low).max(1)
        })
        .collect()
}

/// The seed of the kill points: `CMKSIM_CRASH_SEED`, or a fixed default.
pub fn seed() -> u64 {
    std::env::var("CMKSIM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_0006)
}
