//! The log writer of `cmksim serve`: stderr, where a line that cannot be written is dropped.
//!
//! Why it exists: Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE` instead of
//! killing the process, and tracing-subscriber reports a failed write with `eprintln!`, which
//! panics when stderr is the closed pipe. A server whose log reader went away (`cmksim serve all
//! 2>&1 | head -3`, a log collector restarting) died with exit status 101 within a second.
//! Logging must never take a service down: a log line stderr cannot take is lost, and the
//! service goes on serving. (Interrupted writes are still retried.)

use std::io::{self, ErrorKind, Write};

use tracing_subscriber::fmt::MakeWriter;

/// stderr for tracing, swallowing every write error except `Interrupted` (which `write_all`
/// retries).
#[derive(Clone, Copy, Debug, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match io::stderr().write(buf) {
            Err(error) if error.kind() == ErrorKind::Interrupted => Err(error),
            // Closed or broken stderr: the line is lost, on purpose (see the module doc).
            Err(_) => Ok(buf.len()),
            Ok(written) => Ok(written),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // As in `write`: an unflushable stderr loses lines, it does not fail the caller.
        io::stderr().flush().or(Ok(()))
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
