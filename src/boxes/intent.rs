//! The record of a change of place under way ([`super::duplicate::carry`]: `box move`,
//! `migrate`, `duplicate`, the hub's fork), so that a crash midway — a kill, a power
//! cut, not only a Ctrl-C, which `carry` undoes itself — is put right by the next
//! command: undone while the change had not reached its commit point, finished once it
//! had. The commit point is `names.yaml` holding the new registry (or, for a change that
//! registers nothing, the record saying so): before it the source box is the box, after
//! it the new one is. Files the change writes besides its trees and the registry (a
//! workset's member list, the link to an in-place member's directory) are recorded as
//! they were, so an undo puts them back: a workset never keeps a member whose box went
//! back where it came from.
//!
//! The record lives at `$DATA/.kanibako-change.json` and is only read, written and acted
//! on under the registry lock, which every change holds throughout.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::relocation::{self, How};
use super::transfer::Transfer;
use crate::fsutil;
use crate::paths::Paths;

const FILE: &str = ".kanibako-change.json";

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    /// `move` (the trees leave their place) or `copy`.
    how: String,
    /// Each tree and where it goes; every destination was absent when this was written.
    transfers: Vec<(PathBuf, PathBuf)>,
    /// The source's `project.yaml` and its text before the change (a move rewrites it
    /// where it lands; undone, the tree comes back with the old text restored).
    record: Option<(PathBuf, String)>,
    /// The sha256 of the `names.yaml` the change writes: that file holding it means the
    /// change was committed.
    names_after: Option<String>,
    /// Set after the commit when the change registers nothing.
    committed: bool,
    /// The other files the change writes, each as it was before (absent from records of
    /// changes that wrote none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<(PathBuf, Before)>,
}

/// What a file the change writes was before it, to put back on an undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Before {
    /// Not there: an undo removes what the change made.
    Absent,
    /// A file of this text.
    Text(String),
    /// A symbolic link to this target.
    Link(PathBuf),
}

impl Before {
    /// `p` as it is now (never followed, if a link).
    pub fn of(p: &Path) -> io::Result<Self> {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::Absent),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            return Ok(Self::Link(std::fs::read_link(p)?));
        }
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a file: {}", p.display()),
            ));
        }
        let bytes = std::fs::read(p)?;
        String::from_utf8(bytes).map(Self::Text).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not text: {}", p.display()),
            )
        })
    }

    /// Make `p` what it was. Only files and links are ever removed: a directory the
    /// change made on the way (an empty `workspaces/`) is harmless and stays.
    pub fn put_back(&self, p: &Path) -> io::Result<()> {
        if Self::of(p).ok().as_ref() == Some(self) {
            return Ok(());
        }
        let remove = || match std::fs::symlink_metadata(p) {
            Ok(m) if !m.is_dir() => std::fs::remove_file(p),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("a directory took the place of {}", p.display()),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        match self {
            Self::Absent => remove(),
            Self::Text(t) => {
                fsutil::atomic_write(p, t.as_bytes(), fsutil::MODE_CONFIG).map_err(io::Error::other)
            }
            Self::Link(target) => {
                remove()?;
                std::os::unix::fs::symlink(target, p)
            }
        }
    }
}

fn put_back_all(files: &[(PathBuf, Before)]) -> io::Result<()> {
    // Every file is tried; the first failure is the one told.
    let mut first = Ok(());
    for (p, before) in files.iter().rev() {
        if let Err(e) = before.put_back(p)
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

fn path(paths: &Paths) -> PathBuf {
    paths.data.join(FILE)
}

fn sha(bytes: &[u8]) -> String {
    crate::hex::encode(&Sha256::digest(bytes))
}

fn save(paths: &Paths, r: &Record) -> io::Result<()> {
    let text = serde_json::to_vec(r).map_err(io::Error::other)?;
    fsutil::atomic_write(&path(paths), &text, fsutil::MODE_PRIVATE).map_err(io::Error::other)
}

/// A change about to start. Every destination must be absent now: what recovery
/// removes is only ever what the change made.
pub struct Intent<'a> {
    paths: &'a Paths,
    record: Record,
}

impl<'a> Intent<'a> {
    /// Write the record of `plan` before any tree moves. `record` is the source's
    /// `project.yaml` and its text now (for a move); `files` are the other files the
    /// change will write, recorded as they are now.
    pub fn begin(
        paths: &'a Paths,
        plan: &[Transfer],
        how: How,
        record: Option<(PathBuf, String)>,
        files: &[PathBuf],
    ) -> io::Result<Self> {
        for t in plan {
            if std::fs::symlink_metadata(&t.to).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("destination already exists: {}", t.to.display()),
                ));
            }
        }
        let record = Record {
            version: 1,
            how: match how {
                How::Move => "move",
                How::Copy => "copy",
            }
            .into(),
            transfers: plan
                .iter()
                .map(|t| (t.from.clone(), t.to.clone()))
                .collect(),
            record,
            names_after: None,
            committed: false,
            files: files
                .iter()
                .map(|p| Ok((p.clone(), Before::of(p)?)))
                .collect::<io::Result<_>>()?,
        };
        save(paths, &record)?;
        Ok(Self { paths, record })
    }

    /// The registry text the change is about to write: once `names.yaml` holds it, the
    /// change is committed.
    pub fn registering(&mut self, names_text: &str) -> io::Result<()> {
        self.record.names_after = Some(sha(names_text.as_bytes()));
        save(self.paths, &self.record)
    }

    /// Past the commit point (for a change that registers nothing, this is it).
    pub fn committed(&mut self) -> io::Result<()> {
        self.record.committed = true;
        save(self.paths, &self.record)
    }

    /// Put the recorded files back as they were (the change's own undo, before
    /// [`Self::end`]).
    pub fn put_back_files(&self) -> io::Result<()> {
        put_back_all(&self.record.files)
    }

    /// The change is over (done, or undone by its own error path): no record.
    pub fn end(self) {
        let _ = std::fs::remove_file(path(self.paths));
    }
}

/// What [`recover`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The change had not committed: its trees are back where they were.
    Undone,
    /// It had: what it left of its sources is removed.
    Finished,
}

/// Put right a change a crash interrupted, if a record of one is there. The caller
/// holds the registry lock (or takes it: see [`recover_locked`]).
fn recover(paths: &Paths) -> io::Result<Option<Recovered>> {
    let file = path(paths);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(r) = serde_json::from_slice::<Record>(&text) else {
        // Not ours to act on: keep it for a person to look at, out of the way.
        let _ = std::fs::rename(&file, file.with_extension("json.unreadable"));
        return Ok(None);
    };
    let how = if r.how == "move" {
        How::Move
    } else {
        How::Copy
    };
    let names_now = std::fs::read(paths.names_file()).ok().map(|b| sha(&b));
    let committed = r.committed || (r.names_after.is_some() && r.names_after == names_now);
    for (_, to) in &r.transfers {
        if let Some(p) = to.parent() {
            relocation::clear_temporaries(p);
        }
    }
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let done = if committed {
        // A move across filesystems copies, then removes the source: finish that.
        if how == How::Move {
            for (from, to) in &r.transfers {
                if exists(from) && exists(to) {
                    relocation::remove_tree(from)?;
                }
            }
        }
        Recovered::Finished
    } else {
        for (from, to) in r.transfers.iter().rev() {
            match (how, exists(from), exists(to)) {
                // renamed away: rename it back
                (How::Move, false, true) => std::fs::rename(to, from)?,
                // a copy the change made (destinations were absent): remove it
                (_, true, true) | (How::Copy, false, true) => relocation::remove_tree(to)?,
                _ => {}
            }
        }
        if let (How::Move, Some((file, text))) = (how, &r.record) {
            fsutil::atomic_write(file, text.as_bytes(), fsutil::MODE_CONFIG)
                .map_err(io::Error::other)?;
        }
        put_back_all(&r.files)?;
        Recovered::Undone
    };
    std::fs::remove_file(&file)?;
    Ok(Some(done))
}

/// [`recover`] under the registry lock, for any command to call first: one `stat`
/// when there is nothing to do. A lock held by another process means its change is
/// still under way, not cut short: this command leaves it alone and never waits.
pub fn recover_locked(paths: &Paths) -> io::Result<Option<Recovered>> {
    if std::fs::symlink_metadata(path(paths)).is_err() {
        return Ok(None);
    }
    let Some(_lock) = fsutil::try_lock_exclusive(&paths.names_lock())? else {
        return Ok(None);
    };
    recover(paths)
}

/// [`recover`] for a caller that already holds the registry lock.
pub fn recover_held(paths: &Paths) -> io::Result<Option<Recovered>> {
    recover(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Paths, Transfer) {
        let t = tempfile::tempdir().unwrap();
        let paths = crate::boxes::fork::fixture_paths(t.path());
        std::fs::create_dir_all(&paths.data).unwrap();
        let from = t.path().join("a");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::write(from.join("f"), "x").unwrap();
        let to = t.path().join("b");
        (t, paths, Transfer { from, to })
    }

    #[test]
    fn an_uncommitted_move_is_renamed_back() {
        let (_t, paths, tr) = setup();
        let intent =
            Intent::begin(&paths, std::slice::from_ref(&tr), How::Move, None, &[]).unwrap();
        std::fs::rename(&tr.from, &tr.to).unwrap();
        std::mem::forget(intent); // the process "died" here
        assert_eq!(recover_locked(&paths).unwrap(), Some(Recovered::Undone));
        assert_eq!(std::fs::read_to_string(tr.from.join("f")).unwrap(), "x");
        assert!(!tr.to.exists());
        assert!(!path(&paths).exists());
        assert_eq!(recover_locked(&paths).unwrap(), None, "nothing left to do");
    }

    #[test]
    fn a_committed_copy_stays_and_a_change_under_way_is_left_alone() {
        let (_t, paths, tr) = setup();
        let mut intent =
            Intent::begin(&paths, std::slice::from_ref(&tr), How::Copy, None, &[]).unwrap();
        std::fs::create_dir_all(&tr.to).unwrap();
        // another process holds the registry: its change is under way, not cut short
        let held = fsutil::lock_exclusive(&paths.names_lock()).unwrap();
        let other = std::thread::spawn({
            let paths = paths.clone();
            move || recover_locked(&paths).unwrap()
        });
        assert_eq!(other.join().unwrap(), None, "never waits, never acts");
        assert!(path(&paths).exists());
        drop(held);
        intent.committed().unwrap();
        std::mem::forget(intent);
        assert_eq!(recover_locked(&paths).unwrap(), Some(Recovered::Finished));
        assert!(tr.to.exists() && tr.from.exists());
    }

    #[test]
    fn a_destination_already_there_is_never_recorded() {
        let (_t, paths, tr) = setup();
        std::fs::create_dir_all(&tr.to).unwrap();
        assert!(Intent::begin(&paths, std::slice::from_ref(&tr), How::Copy, None, &[]).is_err());
        assert!(!path(&paths).exists());
    }

    #[test]
    fn an_undo_puts_back_the_files_the_change_wrote_and_a_commit_keeps_them() {
        for commit in [false, true] {
            let (t, paths, tr) = setup();
            let list = t.path().join("workset.yaml");
            std::fs::write(&list, "projects: []\n").unwrap();
            let link = t.path().join("workspaces-web");
            let gone = t.path().join("old-link");
            std::os::unix::fs::symlink("/somewhere", &gone).unwrap();
            let files = [list.clone(), link.clone(), gone.clone()];
            let mut intent =
                Intent::begin(&paths, std::slice::from_ref(&tr), How::Copy, None, &files).unwrap();
            std::fs::create_dir_all(&tr.to).unwrap();
            std::fs::write(&list, "projects: [web]\n").unwrap();
            std::os::unix::fs::symlink(&tr.from, &link).unwrap();
            std::fs::remove_file(&gone).unwrap();
            if commit {
                intent.committed().unwrap();
            }
            std::mem::forget(intent);
            let done = recover_locked(&paths).unwrap();
            if commit {
                assert_eq!(done, Some(Recovered::Finished));
                assert_eq!(std::fs::read_to_string(&list).unwrap(), "projects: [web]\n");
                assert!(link.symlink_metadata().is_ok() && gone.symlink_metadata().is_err());
            } else {
                assert_eq!(done, Some(Recovered::Undone));
                assert_eq!(std::fs::read_to_string(&list).unwrap(), "projects: []\n");
                assert!(link.symlink_metadata().is_err(), "the new link is gone");
                assert_eq!(std::fs::read_link(&gone).unwrap(), Path::new("/somewhere"));
                assert!(!tr.to.exists());
            }
        }
    }

    #[test]
    fn a_record_without_files_still_reads() {
        let (_t, paths, tr) = setup();
        let old = format!(
            r#"{{"version":1,"how":"copy","transfers":[["{}","{}"]],"record":null,"names_after":null,"committed":false}}"#,
            tr.from.display(),
            tr.to.display()
        );
        std::fs::write(path(&paths), old).unwrap();
        std::fs::create_dir_all(&tr.to).unwrap();
        assert_eq!(recover_locked(&paths).unwrap(), Some(Recovered::Undone));
        assert!(!tr.to.exists() && tr.from.exists());
    }

    #[test]
    fn a_directory_is_never_recorded_as_a_file() {
        let (t, paths, tr) = setup();
        let r = Intent::begin(&paths, &[tr], How::Copy, None, &[t.path().join("a")]);
        assert!(r.is_err());
        assert!(!path(&paths).exists());
    }
}
