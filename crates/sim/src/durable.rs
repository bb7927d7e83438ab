//! Where a service opens its sled database and makes its writes durable: one function every
//! sled store opens with ([`open`]), one it calls before it answers a write ([`flush`]), and
//! the simulated worlds' deferral of the latter.
//!
//! Every service flushes its sled database before it acknowledges a write, so that a crash after
//! the answer does not lose what was acknowledged. [`flush`] is that flush, and the one place
//! where it happens (a store calls it instead of `sled::Tree::flush`).
//!
//! Why a simulated world defers it: sled writes a flushed buffer on its own I/O thread pool and
//! the caller waits for it (each flush wakes the pool's seven idle threads, then the caller):
//! on the event engine, whose every host shares one thread, the 2,000 flushes of the revocation
//! scenario were ~11% of its CPU (the pool's threads) and a third of its wall time (waits for a
//! core on a loaded machine), for nothing a simulated run can observe:
//!
//! - a simulated crash (either engine) drops the host's databases, and sled writes out every
//!   completed write when a database closes (`Drop` of its log flushes, unless the database
//!   already failed). So a restarted host finds every write made before its crash, flushed or
//!   not: that is what a simulated crash keeps, with or without the explicit flushes;
//! - a host's write and its flush run on the simulation's one thread, and a crash is applied
//!   between two turns of its tasks, never inside a store call.
//!
//! So a simulated world marks its thread with [`defer_on_this_thread`]: while the returned
//! guard lives, [`flush`] on that thread only counts the flush it defers to the database's close
//! (the byte-identical event log of a scenario with a storage crash and restart is the same
//! with and without the deferral: `cmksim-world`'s `deferred_flushes_change_no_event`). Live
//! services and tests never set it: their every acknowledged write is flushed in place.

use std::cell::Cell;
use std::marker::PhantomData;

thread_local! {
    /// `Some(n)`: flushes on this thread are deferred to the databases' close (`n` so far).
    static DEFERRED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// How many times, and how long apart, [`open`] retries sled's directory lock.
const LOCK_ATTEMPTS_MAX: u32 = 300;
const LOCK_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// Opens (or creates) the sled database in `dir` as every service store does: sled's background
/// flusher off (each acknowledged write is flushed by [`flush`]), and the directory lock retried
/// briefly while it is still held in this process.
///
/// sled releases its lock when its last internal handle goes, which can be a moment after the
/// previous `Db` was dropped: its I/O pool may still be writing the buffer the close sealed. A
/// host restarted on the same directory (a simulated crash and restart, a test that reopens)
/// then met `could not acquire lock ... (WouldBlock)` now and then, a race with the wall clock
/// (seen in chaos sweeps, never in a replay of the same seed). The retry waits at most
/// `LOCK_ATTEMPTS_MAX × LOCK_RETRY_WAIT` (3 s) of wall time; it blocks the caller's thread, so in
/// a simulated world no simulated time passes. Another process holding the directory is refused
/// earlier, by `cmksim serve`'s own lock on its data directory.
pub fn open(dir: &std::path::Path) -> sled::Result<sled::Db> {
    open_with(sled::Config::new().path(dir))
}

/// As [`open`] with a caller's settings beyond the path (a cache size); the flusher is turned off
/// here whatever `config` said.
pub fn open_with(config: sled::Config) -> sled::Result<sled::Db> {
    let config = config.flush_every_ms(None);
    let mut attempt = 1;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if attempt < LOCK_ATTEMPTS_MAX
                    && e.to_string().starts_with("could not acquire lock") =>
            {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY_WAIT);
            }
            other => return other,
        }
    }
}

/// Makes every completed write of `tree`'s database durable before it returns (on a thread
/// marked by [`defer_on_this_thread`]: at the database's close; see the module documentation).
pub fn flush(tree: &sled::Tree) -> sled::Result<()> {
    let deferred = DEFERRED.with(|d| match d.get() {
        Some(count) => {
            d.set(Some(count.saturating_add(1)));
            true
        }
        None => false,
    });
    if deferred {
        return Ok(());
    }
    tree.flush().map(|_bytes| ())
}

/// While the returned guard lives, [`flush`] on this thread is deferred to the databases'
/// close. For a simulated world's thread only (see the module documentation).
pub fn defer_on_this_thread() -> DeferredFlushes {
    let previous = DEFERRED.with(|d| d.replace(Some(0)));
    DeferredFlushes {
        previous,
        _one_thread: PhantomData,
    }
}

/// The deferral of [`flush`] on one thread; dropping it restores what the thread did before.
#[must_use = "flushes are deferred only while the guard lives"]
pub struct DeferredFlushes {
    previous: Option<u64>,
    /// The guard belongs to the thread whose flushes it defers (not `Send`).
    _one_thread: PhantomData<*const ()>,
}

impl DeferredFlushes {
    /// The flushes deferred on this thread since the guard was made.
    pub fn count(&self) -> u64 {
        DEFERRED.with(|d| d.get().unwrap_or_default())
    }
}

impl Drop for DeferredFlushes {
    fn drop(&mut self) {
        DEFERRED.with(|d| d.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_waits_for_a_lock_still_held_in_this_process() {
        let dir =
            std::env::temp_dir().join(format!("cmksim-durable-reopen-{}", std::process::id()));
        let first = open(&dir).unwrap();
        first.insert(b"k", b"v").unwrap();
        // The previous handle goes a moment later, on another thread (as sled's I/O pool lets
        // go of a closed database's file): a plain open meets the lock, `open` waits for it.
        assert!(sled::Config::new().path(&dir).open().is_err());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(first);
        });
        let second = open(&dir).unwrap();
        assert_eq!(second.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        closer.join().unwrap();
        drop(second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deferred_flush_is_counted_and_the_guard_restores_flushing() {
        let db = sled::Config::new()
            .temporary(true)
            .flush_every_ms(None)
            .open()
            .unwrap();
        db.insert(b"k", b"v").unwrap();
        {
            let guard = defer_on_this_thread();
            flush(&db).unwrap();
            flush(&db).unwrap();
            assert_eq!(guard.count(), 2);
            // Another thread is not deferred.
            let other = std::thread::spawn(|| DEFERRED.with(|d| d.get()));
            assert_eq!(other.join().unwrap(), None);
        }
        assert_eq!(DEFERRED.with(|d| d.get()), None);
        // In place again.
        flush(&db).unwrap();
    }

    #[test]
    fn guards_nest() {
        let outer = defer_on_this_thread();
        let inner = defer_on_this_thread();
        drop(inner);
        assert_eq!(DEFERRED.with(|d| d.get()), Some(0));
        drop(outer);
        assert_eq!(DEFERRED.with(|d| d.get()), None);
    }
}
