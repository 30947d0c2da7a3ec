//! The box's session lock and its claim: one agent session per box starts at a time,
//! and a box whose container may exist says so (the lock's record and the container
//! marker hold its name) so the next command asks the engine only then.

use anyhow::{Context as _, Result};

use crate::boxes::BoxIdentity;
use crate::error::UserError;
use crate::fsutil::{self, FileLock};

/// The box's lock, or the one-line refusal when another session holds it.
pub fn session(b: &BoxIdentity) -> Result<FileLock> {
    match fsutil::try_lock_exclusive(&b.lock_file())
        .with_context(|| format!("locking {}", b.lock_file().display()))?
    {
        Some(lock) => Ok(lock),
        None => Err(UserError::new(
            "Another Kanibako session is already running for this project.",
        )
        .hint("wait for it to end, or open a shell in it: kanibako shell")
        .into()),
    }
}

/// Hold the box (with `held`, or taking the lock now) for a container named `name`:
/// recorded in the lock and in the marker.
pub fn claim(held: Option<FileLock>, b: &BoxIdentity, name: &str) -> Result<FileLock> {
    let mut lock = match held {
        Some(l) => l,
        None => session(b)?,
    };
    lock.write_record(&format!("{name}\n"))?;
    fsutil::atomic_write(
        &b.container_marker(),
        format!("{name}\n").as_bytes(),
        fsutil::MODE_CONFIG,
    )?;
    Ok(lock)
}
