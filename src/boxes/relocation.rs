//! Carrying out [`super::transfer`] plans so that a stop at any point leaves the
//! source box whole: each tree is renamed in one step where it can be (same
//! filesystem), else copied into a temporary sibling of its destination and renamed
//! into place; nothing at a destination is ever replaced. Until [`Applied::finish`] the
//! sources of copies are untouched and [`Applied::undo`] puts renamed trees back, so a
//! caller that fails later (a registry update) can return everything as it was.
//!
//! Trees are opened without following links: a workspace entry the box planted as a
//! link (`.kanibako`, `vault`, `.shell`) is refused, never carried elsewhere.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{RenameFlags, renameat2};

use super::transfer::Transfer;
use crate::fstree::copy::{CopyOptions, LinkRule, copy_tree};
use crate::fstree::removal::remove_entry;
use crate::fstree::{Dir, Kind};

const TEMP_PREFIX: &str = ".kanibako-tmp-";

/// Whether the trees are moved (the source goes away) or copied (a duplicate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Move,
    Copy,
}

#[derive(Debug)]
enum Done {
    Renamed { from: PathBuf, to: PathBuf },
    Copied { from: PathBuf, to: PathBuf },
}

/// Transfers carried out, not yet final.
#[derive(Debug, Default)]
#[must_use = "finish or undo it"]
pub struct Applied {
    done: Vec<Done>,
}

fn ctx(what: &str, p: &Path) -> impl FnOnce(io::Error) -> io::Error {
    let m = format!("{what} {}", p.display());
    move |e| io::Error::new(e.kind(), format!("{m}: {e}"))
}

fn split(p: &Path) -> io::Result<(&Path, &OsStr)> {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a directory entry", p.display()),
        )),
    }
}

/// The parent of `p` opened (made first if missing), and `p`'s name in it.
fn open_parent(p: &Path, make: bool) -> io::Result<(Dir, OsString)> {
    let (parent, name) = split(p)?;
    if make {
        std::fs::create_dir_all(parent).map_err(ctx("creating", parent))?;
    }
    Ok((Dir::open(parent)?, name.to_owned()))
}

/// What is at `p`, not following a link there.
fn kind_at(p: &Path) -> io::Result<Option<Kind>> {
    let (parent, name) = open_parent(p, false)?;
    Ok(parent.stat(&name)?.map(|s| s.kind))
}

/// Carry out `plan`. A transfer whose source is absent is skipped (a box with no vault
/// yet); one whose source is a link or a file, or whose destination exists, stops it
/// all and undoes what was done. `check` runs between files of a copy (Ctrl-C).
pub fn apply(
    plan: &[Transfer],
    how: How,
    check: &dyn Fn() -> io::Result<()>,
) -> io::Result<Applied> {
    let mut applied = Applied::default();
    for (i, t) in plan.iter().enumerate() {
        if let Err(e) = one(t, how, check, &mut applied) {
            applied.undo();
            return Err(e);
        }
        crate::fault::point_at("carry.transfer", i);
    }
    Ok(applied)
}

fn one(
    t: &Transfer,
    how: How,
    check: &dyn Fn() -> io::Result<()>,
    applied: &mut Applied,
) -> io::Result<()> {
    match kind_at(&t.from) {
        Ok(None) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(Some(Kind::Dir)) => {}
        Ok(Some(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a real directory (a symbolic link?); not moved",
                    t.from.display()
                ),
            ));
        }
    }
    if t.to.starts_with(&t.from) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} would be inside itself", t.to.display()),
        ));
    }
    let (to_parent, to_name) = open_parent(&t.to, true)?;
    if to_parent.stat(&to_name)?.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("destination already exists: {}", t.to.display()),
        ));
    }
    check()?;
    if how == How::Move {
        let (from_parent, from_name) = open_parent(&t.from, false)?;
        match renameat2(
            from_parent.as_fd(),
            from_name.as_os_str(),
            to_parent.as_fd(),
            to_name.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                applied.done.push(Done::Renamed {
                    from: t.from.clone(),
                    to: t.to.clone(),
                });
                return Ok(());
            }
            Err(Errno::EXDEV) => {}
            Err(e) => return Err(ctx("moving", &t.from)(io::Error::from(e))),
        }
    }
    copy_into(&t.from, &to_parent, &to_name, check)?;
    applied.done.push(Done::Copied {
        from: t.from.clone(),
        to: t.to.clone(),
    });
    Ok(())
}

/// Copy the tree at `from` to `name` in `parent` through a temporary sibling, so the
/// name appears whole or not at all.
fn copy_into(
    from: &Path,
    parent: &Dir,
    name: &OsStr,
    check: &dyn Fn() -> io::Result<()>,
) -> io::Result<()> {
    let src = Dir::open(from).map_err(ctx("opening", from))?;
    let mode = src.stat_self()?.mode;
    let tmp = OsString::from(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    let _ = remove_entry(parent, &tmp);
    let result = (|| {
        let dst = parent.create_dir(&tmp, 0o700)?;
        let opts = CopyOptions {
            reflink: true,
            link_from: None,
            links: LinkRule::Keep,
        };
        let report = copy_tree(&src, &dst, opts, check).map_err(ctx("copying", from))?;
        if let Some((p, why)) = report.left_out.first() {
            // FIFOs and sockets are a session's, not the box's data; anything else
            // missing would make the copy incomplete.
            if *why != "not a regular file, directory or link" {
                return Err(io::Error::other(format!(
                    "{}: {why}; not copied",
                    from.join(p).display()
                )));
            }
        }
        dst.chmod_self(mode)?;
        parent.rename_new(&tmp, name)
    })();
    if result.is_err() {
        let _ = remove_entry(parent, &tmp);
    }
    result
}

impl Applied {
    /// Put everything back as it was: renamed trees return, copies are removed.
    pub fn undo(&mut self) {
        while let Some(d) = self.done.pop() {
            match d {
                Done::Renamed { from, to } => {
                    let _ = std::fs::rename(&to, &from);
                }
                Done::Copied { to, .. } => {
                    if let Ok((parent, name)) = open_parent(&to, false) {
                        let _ = remove_entry(&parent, &name);
                    }
                }
            }
        }
    }

    /// Make it final: for a move, the sources that were copied (another filesystem)
    /// are removed. Returns those that could not be (files a container's sub-uid
    /// owns), for the caller to remove another way.
    pub fn finish(mut self, how: How) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for d in self.done.drain(..) {
            if let (How::Move, Done::Copied { from, .. }) = (how, d)
                && remove_tree(&from).is_err()
            {
                left.push(from);
            }
        }
        left
    }
}

/// Remove the tree at `p` without following links; nothing there is fine.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    let (parent, name) = match open_parent(p, false) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_entry(&parent, &name)
}

/// Temporary siblings a stopped run left in `dir` (by any process: ours carry the pid,
/// and one that is gone cannot finish them).
pub fn clear_temporaries(dir: &Path) {
    let Ok(d) = Dir::open(dir) else { return };
    for e in d.entries().unwrap_or_default() {
        let s = e.to_string_lossy();
        if let Some(rest) = s.strip_prefix(TEMP_PREFIX) {
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok()
            });
            if !alive {
                let _ = remove_entry(&d, &e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn t(from: &Path, to: &Path) -> Transfer {
        Transfer {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("a/b/f", root.join("l")).unwrap();
    }

    #[test]
    fn a_move_renames_and_undo_puts_it_back() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("deep/dst"));
        tree(&src);
        let mut applied = apply(&[t(&src, &dst)], How::Move, &|| Ok(())).unwrap();
        assert!(!src.exists() && dst.join("a/b/f").is_file());
        assert!(dst.join("l").symlink_metadata().unwrap().is_symlink());
        applied.undo();
        assert!(src.join("a/b/f").is_file() && !dst.exists());
    }

    #[test]
    fn a_copy_leaves_the_source_and_is_independent() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        tree(&src);
        let applied = apply(&[t(&src, &dst)], How::Copy, &|| Ok(())).unwrap();
        assert!(applied.finish(How::Copy).is_empty());
        fs::write(dst.join("a/b/f"), "changed").unwrap();
        assert_eq!(fs::read_to_string(src.join("a/b/f")).unwrap(), "x");
    }

    #[test]
    fn an_existing_destination_or_a_linked_source_stops_everything() {
        let d = tempfile::tempdir().unwrap();
        let (a, a2) = (d.path().join("a"), d.path().join("a2"));
        let (b, b2) = (d.path().join("b"), d.path().join("b2"));
        tree(&a);
        tree(&b);
        fs::create_dir(&b2).unwrap();
        let e = apply(&[t(&a, &a2), t(&b, &b2)], How::Move, &|| Ok(())).unwrap_err();
        assert!(e.to_string().contains("destination already exists"), "{e}");
        assert!(
            a.join("a/b/f").is_file() && !a2.exists(),
            "the first was undone"
        );
        // a link where a tree should be is refused, not carried
        let victim = d.path().join("victim");
        fs::create_dir(&victim).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = apply(&[t(&link, &d.path().join("x"))], How::Move, &|| Ok(())).unwrap_err();
        assert!(e.to_string().contains("not a real directory"), "{e}");
        // an absent source is nothing to do
        let none = apply(
            &[t(&d.path().join("none"), &d.path().join("y"))],
            How::Move,
            &|| Ok(()),
        );
        assert!(none.unwrap().finish(How::Move).is_empty());
    }

    #[test]
    fn an_interrupted_copy_leaves_no_destination_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        tree(&src);
        let n = std::cell::Cell::new(0);
        let stop = || {
            n.set(n.get() + 1);
            if n.get() > 2 {
                Err(crate::interrupt::stop())
            } else {
                Ok(())
            }
        };
        let e = apply(&[t(&src, &dst)], How::Copy, &stop).unwrap_err();
        assert!(
            crate::interrupt::is_interrupt(&e) || e.to_string().contains("interrupted"),
            "{e}"
        );
        assert!(!dst.exists());
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("src")]);
        assert!(src.join("a/b/f").is_file());
    }

    #[test]
    fn temporaries_of_dead_processes_are_cleared() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join(".kanibako-tmp-999999999-x")).unwrap();
        let mine = format!(".kanibako-tmp-{}-y", std::process::id());
        fs::create_dir(d.path().join(&mine)).unwrap();
        clear_temporaries(d.path());
        assert!(!d.path().join(".kanibako-tmp-999999999-x").exists());
        assert!(d.path().join(mine).exists());
    }
}
