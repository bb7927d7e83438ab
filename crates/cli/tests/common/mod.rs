//! What the multi-process tests share: `cmksim serve` children on loopback, the three-service
//! set-up, and a seeded choice of kill points.
//!
//! Every wait is bounded (`POLLS_MAX` × `POLL_INTERVAL`, `START_WAIT`); nothing asserts on how
//! long anything took.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_cmksim");
pub const TIME_SCALE: f64 = 600.0;
/// Bounds on every wait (polls × interval), generous for a loaded 2-core machine.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
pub const POLLS_MAX: u32 = 1200;
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A `cmksim serve` child; killed (SIGKILL) if still running when dropped.
pub struct Service {
    pub name: &'static str,
    child: Child,
    pub url: String,
}

impl Service {
    /// Starts `cmksim serve NAME ARGS…` and waits (bounded) for its `listening NAME URL` line.
    pub fn start(name: &'static str, args: &[String], log_dir: &Path) -> Service {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .expect("log file");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg(name)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn cmksim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = format!("listening {name} ");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(&prefix) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(START_WAIT) {
            Ok(url) => Service { name, child, url },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                let log = std::fs::read_to_string(log_dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                panic!("{name} did not start ({status:?}); log:\n{log}");
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.name);
        for _ in 0..POLLS_MAX {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!("{} did not exit after SIGTERM", self.name);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three processes and their directories.
pub struct Cluster3 {
    pub dir: tempfile::TempDir,
    /// `--time-scale` and `--epoch`, given to every process.
    pub common: Vec<String>,
    /// Given to storage and ingest (profile flags).
    pub service_args: Vec<String>,
    pub keyvault: Option<Service>,
    pub storage: Option<Service>,
    pub ingest: Option<Service>,
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Cluster3 {
    /// Starts Key Vault, storage and ingest on loopback ports chosen by the OS, at `TIME_SCALE`
    /// on one epoch; `service_args` go to storage and ingest.
    pub fn start(service_args: Vec<String>) -> Cluster3 {
        let dir = tempfile::tempdir().unwrap();
        let epoch = now_unix_ms().to_string();
        let common = vec![
            "--time-scale".to_string(),
            TIME_SCALE.to_string(),
            "--epoch".to_string(),
            epoch,
        ];
        let keyvault = Service::start(
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
        let storage_url = c.storage.as_ref().unwrap().url.clone();
        let mut ingest_args = args(
            &c.common,
            &["--listen", "127.0.0.1:0", "--storage", &storage_url],
        );
        ingest_args.extend(c.service_args.iter().cloned());
        c.ingest = Some(Service::start("ingest", &ingest_args, c.dir.path()));
        c
    }

    pub fn start_storage(&mut self, listen: &str) {
        let kv = self.keyvault.as_ref().unwrap().url.clone();
        let mut a = args(
            &self.common,
            &[
                "--listen",
                listen,
                "--data-dir",
                &path(&self.dir, "storage"),
                "--keyvault",
                &kv,
            ],
        );
        a.extend(self.service_args.iter().cloned());
        self.storage = Some(Service::start("storage", &a, self.dir.path()));
    }

    /// Restarts storage on its port and data directory (the servers bind with SO_REUSEADDR, so
    /// the port just released is free again unless another process took it meanwhile).
    pub fn restart_storage(&mut self, port: u16) {
        let listen = format!("127.0.0.1:{port}");
        self.start_storage(&listen);
    }

    pub fn url(&self, which: &str) -> String {
        match which {
            "keyvault" => self.keyvault.as_ref(),
            "storage" => self.storage.as_ref(),
            _ => self.ingest.as_ref(),
        }
        .unwrap()
        .url
        .clone()
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
