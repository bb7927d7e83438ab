//! Removing a run's data directory when `cmksim run` is stopped by a signal.
//!
//! A simulated run keeps the three services' data in a temporary directory (hundreds of
//! megabytes on `/dev/shm` for a long scenario). Its `TempDir` guard removes it when the run
//! returns, but Ctrl-C (SIGINT), `kill` and `timeout` (SIGTERM) and a closed terminal (SIGHUP)
//! end the process without running destructors, so the directory would stay until the next
//! reboot. [`SignalCleanup::install`] takes those three signals over before the directory
//! exists: a thread waits for them, removes the directory registered with
//! [`SignalCleanup::guard`], and exits with the shell's code for the signal (128 + its number).
//!
//! The simulation keeps running on the main thread while the directory is removed, and may
//! create files in it meanwhile (the services make their directories with `create_dir_all`,
//! which makes the run directory again if it is gone). The thread therefore removes it until it
//! stays gone for [`SETTLE_LOOKS`] looks in a row, a bounded number of times; and a run that
//! ends meanwhile waits for that thread to end the process ([`SignalCleanup::hold_if_stopping`])
//! instead of reporting the missing directory as its own error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};

/// Attempts at removing the directory while the simulation may still be writing into it.
const REMOVE_ATTEMPTS_MAX: u32 = 20;

/// Looks, [`SETTLE_INTERVAL`] apart, in which the removed directory must stay gone.
const SETTLE_LOOKS: u32 = 10;

/// The time between two looks at the removed directory.
const SETTLE_INTERVAL: Duration = Duration::from_millis(20);

/// Looks at the removed directory in all, after which the thread stops trying (2 s).
const SETTLE_LOOKS_MAX: u32 = 100;

/// How long a run that ended while a signal's clean-up was under way waits for it to end the
/// process (the clean-up's own bound is [`SETTLE_LOOKS_MAX`] looks, 2 s).
const HOLD_MAX: Duration = Duration::from_secs(30);

/// The directory to remove on a signal, shared with the waiting thread.
type Slot = Arc<Mutex<Option<PathBuf>>>;

/// The signal handling of one `cmksim run`: installed once, before the directory is created.
pub struct SignalCleanup {
    slot: Slot,
    /// Set by the waiting thread when a signal came, before it starts removing.
    stopping: Arc<AtomicBool>,
}

/// While alive, a signal removes `path`; dropping it forgets the path (the caller's `TempDir`
/// removes it on a normal return).
pub struct Registered {
    slot: Slot,
}

impl Drop for Registered {
    fn drop(&mut self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl SignalCleanup {
    /// Takes over SIGINT, SIGTERM and SIGHUP for the rest of the process. The handlers are
    /// registered before this returns, so a signal sent any time after is seen.
    pub fn install() -> anyhow::Result<SignalCleanup> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the signal handler")?;
        let (mut interrupt, mut terminate, mut hangup) = {
            let _inside = runtime.enter();
            (
                signal(SignalKind::interrupt()).context("handling SIGINT")?,
                signal(SignalKind::terminate()).context("handling SIGTERM")?,
                signal(SignalKind::hangup()).context("handling SIGHUP")?,
            )
        };
        let slot: Slot = Arc::new(Mutex::new(None));
        let waiting = slot.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let seen = stopping.clone();
        std::thread::Builder::new()
            .name("signal-cleanup".into())
            .spawn(move || {
                let (name, number) = runtime.block_on(async {
                    tokio::select! {
                        _ = interrupt.recv() => ("SIGINT", 2),
                        _ = terminate.recv() => ("SIGTERM", 15),
                        _ = hangup.recv() => ("SIGHUP", 1),
                    }
                });
                seen.store(true, Ordering::SeqCst);
                let path = waiting.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(path) = path {
                    match remove(&path) {
                        Ok(()) => eprintln!(
                            "\ncmksim run: {name}: stopped; removed the run directory {}",
                            path.display()
                        ),
                        Err(e) => eprintln!(
                            "\ncmksim run: {name}: stopped; could not remove the run directory {}: {e}",
                            path.display()
                        ),
                    }
                } else {
                    eprintln!("\ncmksim run: {name}: stopped");
                }
                std::process::exit(128 + number);
            })
            .context("starting the signal handler thread")?;
        Ok(SignalCleanup { slot, stopping })
    }

    /// Called when the run ends, after its own removal of the directory and before that
    /// removal's outcome is reported: if a signal came, the waiting thread is removing the
    /// directory too and will end the process with the signal's code, so this waits for that
    /// (at most [`HOLD_MAX`]) rather than let the run report the directory it found missing.
    pub fn hold_if_stopping(&self) {
        if !self.stopping.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(HOLD_MAX);
    }

    /// Registers the directory a signal must remove, until the returned value is dropped.
    pub fn guard(&self, path: &Path) -> Registered {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
        Registered {
            slot: self.slot.clone(),
        }
    }
}

/// Removes `path` and everything in it until it stays gone for [`SETTLE_LOOKS`] looks in a
/// row: the simulation, still running, may make it again or add files faster than one pass
/// removes them.
fn remove(path: &Path) -> std::io::Result<()> {
    remove_once(path)?;
    let mut gone_looks = 0;
    for _ in 0..SETTLE_LOOKS_MAX {
        if gone_looks >= SETTLE_LOOKS {
            return Ok(());
        }
        std::thread::sleep(SETTLE_INTERVAL);
        if path.exists() {
            gone_looks = 0;
            remove_once(path)?;
        } else {
            gone_looks += 1;
        }
    }
    if path.exists() {
        return Err(std::io::Error::other(format!(
            "it was made again after {SETTLE_LOOKS_MAX} looks"
        )));
    }
    Ok(())
}

/// One removal of `path`; gone already counts as removed. Retried while files appear in it
/// faster than one pass removes them.
fn remove_once(path: &Path) -> std::io::Result<()> {
    let mut attempt = 1;
    loop {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt >= REMOVE_ATTEMPTS_MAX => return Err(e),
            Err(_) => attempt += 1,
        }
    }
}
