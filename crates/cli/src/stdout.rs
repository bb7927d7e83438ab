//! The commands' standard output, written so that a reader that goes away does not crash them.
//!
//! `println!` panics when a write fails, and standard output fails as soon as its reader closes
//! the pipe: `cmksim run scenarios/revocation.toml | head -3` ended in a panic and exit code 101
//! (Rust ignores SIGPIPE, so the write returns `EPIPE`). `outln!` and `out!` (this
//! module's macros, in scope in every module of the binary) write through [`write`] instead: the first failed write closes this
//! output for the rest of the process, later writes are dropped, and the command carries on to
//! its end (a run still writes its `--events` and `--report` files, removes its directory and
//! exits with its verdict). A failure other than a closed pipe (a full disk behind a
//! redirection) is reported once, on stderr, by [`report_failure`], and the command then exits
//! with 2, as for any error: its output is incomplete.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set by the first failed write; no write is tried after it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// The first failure that was not a closed pipe, for [`report_failure`].
static FAILURE: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes `args` to standard output (and flushes it, as the line-buffered `println!` does at a
/// newline); does nothing once standard output is closed.
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut first = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(e);
        }
    }
}

/// Reports, on stderr, a write to standard output that failed for a reason other than its
/// reader going away (a full disk behind a redirection, say); called once, at the end. True when
/// there was one.
pub fn report_failure() -> bool {
    let failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failure {
        Some(e) => {
            eprintln!("cmksim: writing to standard output failed, the rest of it was dropped: {e}");
            true
        }
        None => false,
    }
}

/// `println!` for the commands' output: see the module doc.
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the commands' output: see the module doc.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}
