//! One server per data directory: an exclusive advisory lock (`flock`) on `DIR/cmksim.lock`,
//! taken before a service opens its stores, and held until the process exits (the OS releases
//! it then, also after `kill -9`, so a crash never leaves a stale lock behind).
//!
//! Why: the stores inside (sled) lock their own files, but a second server meeting that lock
//! failed with sled's I/O error, Rust debug text printed twice (issue 17, defect 6). This lock
//! is met first, and its refusal is one sentence that says what to do.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use fs2::FileExt;

/// The lock file inside a service's data directory.
pub const LOCK_FILE: &str = "cmksim.lock";

/// The locks this process holds: kept open until exit, never released earlier.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Takes `service`'s data directory `dir` for this process, or refuses in one sentence when
/// another process holds it. Creates the directory when missing.
pub fn hold(service: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("data directory {} cannot be created", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("data directory {} is not writable", dir.display()))?;
    if let Err(error) = file.try_lock_exclusive() {
        if error.kind() == fs2::lock_contended_error().kind() {
            anyhow::bail!(
                "{service} data directory {} is in use by another cmksim process; stop that \
                 process first, or give this one another --data-dir",
                dir.display()
            );
        }
        return Err(error).with_context(|| format!("cannot lock {}", path.display()));
    }
    HELD.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_in_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        hold("storage", dir.path()).expect("the first holder");
        // flock locks belong to the open file: a second open file in the same process is
        // refused as another process would be.
        let message = format!("{:#}", hold("storage", dir.path()).unwrap_err());
        assert_eq!(
            message,
            format!(
                "storage data directory {} is in use by another cmksim process; stop that \
                 process first, or give this one another --data-dir",
                dir.path().display()
            )
        );
    }
}
