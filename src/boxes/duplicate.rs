//! Making a box somewhere else from an existing one, as one step that either happens
//! wholly or not at all: `box move`, `box migrate`, `box duplicate` and the hub's
//! `crab fork` all end here ([`carry`]). What goes where is [`super::transfer`]'s plan;
//! how trees are moved or copied safely is [`super::relocation`]'s.
//!
//! A copy must be a box of its own (upstream defect 9: a copied `project.yaml` kept the
//! source's home and vault paths, so the copy mounted the source's): the new place's
//! record is rewritten for it, and what is the source's alone (its session lock, its
//! container marker, its helpers' state, maybe its logins) is dropped ([`strip`]).

use std::io;
use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::intent::{self, Intent};
use super::registry::Registry;
use super::relocation::{self, How};
use super::transfer;
use super::{BoxIdentity, Mode, ProjectSettings};
use crate::document::{DocError, Document};
use crate::fsutil;
use crate::paths::Paths;

/// The settings `b` lives by, to build its identity somewhere else.
pub fn settings_of(b: &BoxIdentity) -> ProjectSettings {
    ProjectSettings {
        mode: Some(b.mode),
        layout: Some(b.layout),
        enable_vault: b.vault.is_some(),
        group_auth: b.group_auth,
    }
}

/// One change of place or mode, as [`carry`] performs it. `E` is the caller's error
/// type (the hooks may fail in its terms).
pub struct Change<'a, E> {
    pub from: &'a BoxIdentity,
    pub to: &'a BoxIdentity,
    pub workspace: transfer::Workspace,
    pub how: How,
    /// Work on the new trees before the registry is written (a duplicate drops what is
    /// not its own; a workset records its new member).
    pub prepare: &'a dyn Fn() -> Result<(), E>,
    /// The files `prepare` writes besides the new trees (a workset's `workset.yaml`,
    /// a link to an in-place member's directory): recorded as they were before, and put
    /// back when the change is undone, by its own error path or after a crash.
    pub files: &'a [PathBuf],
    /// The registry edit; `Ok(false)`: none. Runs first, on the loaded registry, so a
    /// name taken meanwhile stops the change before any file moves.
    pub edit: &'a dyn Fn(&mut Registry) -> Result<bool, E>,
}

/// Carry out `c`: under the registry lock, the trees are moved or copied, the new
/// place's `project.yaml` is rewritten for it (the Python tool mounts what it records),
/// and `names.yaml` is written last. Any failure before that puts the trees back, so
/// the box is either where it was or wholly where it goes. `check` runs between files
/// (a stop request). Returns the sources of a move that could not be removed (files a
/// container's sub-uid owns), for the caller to remove another way.
pub fn carry<E: From<io::Error> + From<DocError>>(
    paths: &Paths,
    c: &Change<'_, E>,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Vec<PathBuf>, E> {
    let plan = transfer::plan(c.from, c.to, c.workspace);
    let original = std::fs::read(c.from.project_file()).ok();
    let _lock = fsutil::lock_exclusive(&paths.names_lock())?;
    // A change a crash cut short is put right first (it may be this very box's).
    intent::recover_held(paths)?;
    let mut reg = Registry::load(&paths.names_file())?;
    let changed = (c.edit)(&mut reg)?;
    for t in &plan {
        if let Some(p) = t.to.parent() {
            relocation::clear_temporaries(p);
        }
    }
    let record = original
        .as_ref()
        .and_then(|t| String::from_utf8(t.clone()).ok())
        .map(|t| (c.from.project_file(), t));
    let mut intent = Intent::begin(paths, &plan, c.how, record, c.files)?;
    crate::fault::point("carry.begun");
    let mut applied = match relocation::apply(&plan, c.how, check) {
        Ok(a) => a,
        Err(e) => {
            intent.end();
            return Err(e.into());
        }
    };
    let result = (|| -> Result<(), E> {
        check()?;
        rewrite_record(paths, c.to)?;
        (c.prepare)()?;
        crate::fault::point("carry.prepared");
        if changed {
            let text = reg.prepare_text()?;
            intent.registering(&text)?;
            reg.save()?;
            crate::fault::point("carry.registered");
        }
        Ok(())
    })();
    if let Err(e) = result {
        applied.undo();
        if let (Some(text), How::Move) = (&original, c.how) {
            let _ = fsutil::atomic_write(&c.from.project_file(), text, fsutil::MODE_CONFIG);
        }
        if let Err(undo) = intent.put_back_files() {
            // Keep the record: the next command's recovery tries again.
            crate::output::warn(format_args!("putting back what the change wrote: {undo}"));
            return Err(e);
        }
        intent.end();
        return Err(e);
    }
    // Past the commit point: a failure to note it only means a crash from here on is
    // recognised by the registry instead (or, registering nothing, undone).
    let _ = intent.committed();
    crate::fault::point("carry.committed");
    let left = applied.finish(c.how);
    intent.end();
    Ok(left)
}

/// `b`'s `project.yaml` rewritten for where it now is (kept keys stay).
pub fn rewrite_record(paths: &Paths, b: &BoxIdentity) -> Result<(), DocError> {
    let mut doc = Document::load(&b.project_file())?;
    crate::relocate::rebase(&mut doc, paths, b)?;
    doc.save()?;
    Ok(())
}

/// Which agent login files a copy keeps: a box that shares the host's login gets it
/// from the host at its first launch, and one made with its own login (distinct auth)
/// logs in on its own; only a copy of a box with its own login carries that login on.
pub fn keeps_login(src: &BoxIdentity, distinct_auth: bool) -> bool {
    !src.group_auth && !distinct_auth
}

/// Drop from a copy what is the source's alone: its session lock and container
/// marker, its helpers' state, and (see [`keeps_login`]) its agent logins.
pub fn strip(b: &BoxIdentity, logins: bool) -> Result<(), BoxError> {
    let mut drop: Vec<PathBuf> = vec![
        b.lock_file(),
        b.container_marker(),
        b.metadata.join("helpers"),
    ];
    if !logins {
        for agent in crate::agents::all() {
            if let Some(c) = agent.credentials() {
                drop.push(b.shell.join(c.dir).join(c.file));
            }
        }
    }
    for p in drop {
        relocation::remove_tree(&p).map_err(BoxError::io(format!("removing {}", p.display())))?;
    }
    Ok(())
}

/// What in a fresh copy of `src`'s project directory is `src`'s own tree (metadata,
/// home, vault) but none of `to`'s: a copy into another mode drops it, so the new box
/// is not also a box of the source's mode (a `.kanibako/` left in a default-mode copy).
pub fn leftovers(src: &BoxIdentity, to: &BoxIdentity) -> Vec<PathBuf> {
    let own: Vec<PathBuf> = [Some(to.metadata.clone()), Some(to.shell.clone())]
        .into_iter()
        .chain([transfer::vault_dir(to)])
        .flatten()
        .collect();
    [Some(src.metadata.clone()), Some(src.shell.clone())]
        .into_iter()
        .chain([transfer::vault_dir(src)])
        .flatten()
        .filter_map(|t| {
            let rel = t.strip_prefix(&src.workspace).ok()?;
            (!rel.as_os_str().is_empty()).then(|| to.workspace.join(rel))
        })
        .filter(|p| !own.iter().any(|o| p.starts_with(o) || o.starts_with(p)))
        .collect()
}

/// The record a standalone copy needs so its own login is not mistaken for the host's
/// (`$DATA/…/distinct-auth/<hash>`), when it has one.
pub fn write_auth_record(paths: &Paths, b: &BoxIdentity) -> Result<(), BoxError> {
    if b.mode == Mode::Standalone && !b.group_auth {
        let record = super::distinct_auth_record(paths, &b.hash);
        fsutil::atomic_write(&record, b"", fsutil::MODE_CONFIG)?;
    }
    Ok(())
}

/// Whether `a` and `b` are inside one another (a copy into itself never ends).
pub fn nested(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::BoxName;

    fn b(group_auth: bool) -> BoxIdentity {
        BoxIdentity::default_mode(
            BoxName::parse("a").unwrap(),
            "/p/a".into(),
            Path::new("/d/boxes"),
            ProjectSettings {
                group_auth,
                ..ProjectSettings::default()
            },
        )
    }

    #[test]
    fn a_duplicate_carries_a_login_only_between_boxes_with_their_own() {
        assert!(keeps_login(&b(false), false));
        assert!(
            !keeps_login(&b(true), false),
            "the host's login comes at launch"
        );
        assert!(
            !keeps_login(&b(false), true),
            "--distinct-auth logs in anew"
        );
        assert!(!keeps_login(&b(true), true));
    }
}
