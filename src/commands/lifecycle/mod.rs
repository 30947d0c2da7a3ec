//! `box move`, `box migrate` (path remap and `--to` mode conversion), `box duplicate`
//! and `box purge`: the checks, questions and messages around
//! [`crate::boxes::transfer`] (what goes where) and [`crate::boxes::relocation`]
//! (doing it so a stop leaves the source whole).
//!
//! Every change ends the same way ([`duplicate::carry`]): under the registry lock, the trees are
//! moved or copied, the new place's `project.yaml` is rewritten for it (the Python tool
//! mounts what it records), and `names.yaml` is written last. Any failure before that
//! puts the trees back, so the box is either where it was or wholly where it goes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::target::the_box;

use crate::boxes::create::{self, choose_name, is_home};
use crate::boxes::duplicate::{self, settings_of};
use crate::boxes::error::BoxError;
use crate::boxes::registry::Registry;
use crate::boxes::relocation::{self, How};
use crate::boxes::resolve::{self, normalize};
use crate::boxes::transfer;
use crate::boxes::{BoxIdentity, BoxName, Layout, Mode, ProjectSettings, distinct_auth_record};
use crate::cli::boxes::{DuplicateArgs, MigrateArgs, MigrateTo, MoveArgs, PurgeArgs};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::fsutil::{self, FileLock};
use crate::launch::persistent;
use crate::runtime::labels;
use crate::{interrupt, output, prompt};

mod duplicate_box;
mod migrate;
mod move_box;
mod purge;

pub use duplicate_box::duplicate;
pub use migrate::migrate;
pub use move_box::move_box;
pub use purge::purge;

fn refuse_running(cx: &Context, b: &BoxIdentity, what: &str) -> Result<Option<FileLock>> {
    let running = |why: String| -> anyhow::Error {
        UserError::new(format!(
            "box '{}' is running ({why}); it cannot be {what} while it runs",
            b.display_name()
        ))
        .hint(format!(
            "stop it first: kanibako stop {}",
            b.workspace.display()
        ))
        .into()
    };
    if let Some(why) = super::target::active(cx, b) {
        return Err(running(why));
    }
    if !b.metadata.is_dir() {
        return Ok(None);
    }
    // Held until the change is done, so no session starts in the middle of it; a lock
    // file made for this is removed after (the Python tool reads one as "active").
    match fsutil::try_lock_exclusive_transient(&b.lock_file())
        .with_context(|| format!("locking {}", b.lock_file().display()))?
    {
        Some(lock) => Ok(Some(lock)),
        None => Err(running("a kanibako session holds its lock".into())),
    }
}

/// Refuse while `b` runs, and remove its stopped containers: their mounts name the
/// place the box is leaving (a persistent box's container is made again on its next
/// start, as after `kanibako stop`).
fn idle(cx: &Context, b: &BoxIdentity, what: &str) -> Result<Option<FileLock>> {
    let lock = refuse_running(cx, b, what)?;
    if let Ok(rt) = cx.runtime()
        && let Ok(list) = rt.containers()
    {
        let legacy = b.legacy_container_name();
        for c in list.iter().filter(|c| {
            !c.running
                && match c.labels.get(labels::HASH) {
                    Some(h) => *h == b.hash,
                    None => !c.labels.contains_key(labels::BOX) && c.name == legacy,
                }
        }) {
            let rootfs = c.labels.get(labels::ROOTFS).map(String::as_str);
            if persistent::remove(cx, &rt, &c.name, rootfs) {
                println!("Removed stopped container: {}", c.name);
            }
        }
    }
    let _ = std::fs::remove_file(b.container_marker());
    Ok(lock)
}

fn confirm(cx: &Context, force: bool, question: &str) -> Result<bool> {
    Ok(force || prompt::confirm_yes(&cx.host, question, "--force")?)
}

fn declined() -> Result<Exit> {
    println!("Aborted.");
    Ok(Exit::Declined)
}

type Change<'a> = duplicate::Change<'a, anyhow::Error>;

/// Carry out `c` ([`duplicate::carry`]), stopped by Ctrl-C; a moved source a container's
/// files keep in place is removed through the engine.
fn carry(cx: &Context, c: &Change<'_>) -> Result<()> {
    let _guard = interrupt::Guard::install();
    for left in duplicate::carry(&cx.paths, c, &interrupt::check)? {
        if let Err(e) = remove_with_engine(cx, &left) {
            output::warn(format_args!(
                "{} was copied but could not be removed: {e:#}",
                left.display()
            ));
        }
    }
    Ok(())
}

/// `b`'s `project.yaml` rewritten for where it now is (kept keys stay).
fn rewrite_record(cx: &Context, b: &BoxIdentity) -> Result<()> {
    Ok(duplicate::rewrite_record(&cx.paths, b)?)
}

/// Remove a tree; files a rootless container's sub-uids own go through the engine's
/// user namespace (`podman unshare rm -rf`), as upstream does.
fn remove_with_engine(cx: &Context, p: &Path) -> Result<()> {
    match relocation::remove_tree(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let rt = cx.runtime()?;
            if !rt.engine.can_unshare() {
                return Err(e).with_context(|| format!("deleting {}", p.display()));
            }
            rt.unshare_remove(p)?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("deleting {}", p.display())),
    }
}

/// The distinct-auth record follows a standalone box whose hash changed.
fn move_auth_record(cx: &Context, from: &BoxIdentity, to: &BoxIdentity) {
    let old = distinct_auth_record(&cx.paths, &from.hash);
    if from.hash != to.hash && old.exists() {
        let new = distinct_auth_record(&cx.paths, &to.hash);
        if to.mode == Mode::Standalone
            && fsutil::atomic_write(&new, b"", fsutil::MODE_CONFIG).is_err()
        {
            return;
        }
        let _ = std::fs::remove_file(old);
    }
}

fn write_auth_record(cx: &Context, b: &BoxIdentity) -> Result<()> {
    Ok(duplicate::write_auth_record(&cx.paths, b)?)
}

fn destination(cx: &Context, word: &str) -> Result<PathBuf> {
    let dest = create::target_dir(&cx.host.cwd, Some(word))?;
    if is_home(&cx.paths, &dest) {
        return Err(BoxError::HomeRefused.into());
    }
    Ok(dest)
}
