//! Vault snapshots (spec: upstream-runtime §7.1): point-in-time copies of a box's
//! `share-rw` kept in the sibling `.versions/`, listed, restored and pruned.
//!
//! The vault is shared read-write with the container, and in the default layout it
//! lies inside the (container-writable) workspace, so everything in it — `rw`,
//! `.versions` and each snapshot — may be a link planted to steer us. Every step goes
//! through [`crate::fstree`] from the vault directory opened without following links;
//! a snapshot name is checked against its one form before it names anything.
//!
//! A new snapshot is built under a temporary name and renamed into place, and a restore
//! builds the whole new `share-rw` beside the old one and swaps the two in one rename,
//! so an interrupted operation leaves the vault as it was. Callers hold
//! [`lock_file`]'s lock around each operation. This module prints nothing.

pub mod name;
pub mod restore;
pub mod snapshot;

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use crate::boxes::BoxIdentity;
use crate::fstree::walk::{Entry, Step, walk};
use crate::fstree::{Dir, Kind, removal};
use crate::paths::Paths;

pub use name::{Form, SnapshotName};

/// The directory under the vault that holds the snapshots.
pub const VERSIONS: &str = ".versions";
/// `share-rw` inside the vault directory.
pub const RW: &str = "rw";
/// Upstream keeps this many after an automatic snapshot.
pub const DEFAULT_KEEP: usize = 5;
/// Names of our unfinished work; anything under them is left over from an
/// interrupted run and removed by the next one (under the vault's lock).
pub const TMP_PREFIX: &str = ".kanibako-tmp-";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("Vault is disabled for this project.")]
    Disabled,
    #[error(
        "'{0}' is not a snapshot name (they look like 20260221T103000Z or 20260221T103000Z.tar.xz)"
    )]
    BadName(String),
    #[error("Snapshot not found: {0}")]
    NotFound(String),
    #[error("{} is not a real directory (a symbolic link?); left alone", .0.display())]
    NotADir(PathBuf),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(transparent)]
    Archive(#[from] crate::archive::unpack::UnpackError),
}

impl VaultError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> VaultError {
        let context = context.into();
        move |source| VaultError::Io { context, source }
    }

    pub fn hints(&self) -> Vec<String> {
        match self {
            VaultError::BadName(_) | VaultError::NotFound(_) => {
                vec!["`kanibako box vault list` shows the snapshots".into()]
            }
            VaultError::Disabled => vec!["this box was created with --no-vault".into()],
            _ => Vec::new(),
        }
    }
}

/// Where a box's vault lies, with the directory it may be reached from without
/// following links (the workspace or metadata it belongs to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Trusted as given: the box's workspace, metadata or workset root.
    pub base: PathBuf,
    /// The vault directory (holding `rw` and `.versions`), relative to `base`.
    pub rel: PathBuf,
}

impl Location {
    pub fn of(b: &BoxIdentity) -> Result<Self, VaultError> {
        let v = b.vault.as_ref().ok_or(VaultError::Disabled)?;
        let vault_dir = v.rw.parent().unwrap_or(Path::new("/")).to_owned();
        let mut bases = vec![b.workspace.clone(), b.metadata.clone()];
        if let Some((_, root)) = &b.workset {
            bases.push(root.clone());
        }
        let base = bases
            .into_iter()
            .filter(|base| vault_dir.starts_with(base))
            .max_by_key(|base| base.components().count())
            .unwrap_or_else(|| vault_dir.parent().unwrap_or(Path::new("/")).to_owned());
        let rel = vault_dir
            .strip_prefix(&base)
            .map(Path::to_owned)
            .unwrap_or_default();
        Ok(Self { base, rel })
    }

    pub fn vault_dir(&self) -> PathBuf {
        self.base.join(&self.rel)
    }

    pub fn rw(&self) -> PathBuf {
        self.vault_dir().join(RW)
    }

    /// The vault directory, opened; `None` when it does not exist. A link on the way
    /// is an error, not "missing".
    pub fn open(&self) -> Result<Option<Dir>, VaultError> {
        let dir = self.vault_dir();
        match Dir::open_beneath(&self.base, &self.rel) {
            Ok(Some(d)) => Ok(Some(d)),
            Ok(None) if dir.symlink_metadata().is_ok() => Err(VaultError::NotADir(dir)),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VaultError::io(format!("opening {}", dir.display()))(e)),
        }
    }
}

/// The lock every vault operation of a box holds (in kanibako's state, out of the
/// box's reach).
pub fn lock_file(paths: &Paths, b: &BoxIdentity) -> PathBuf {
    paths
        .state
        .join("locks")
        .join(format!("vault-{}.lock", b.hash))
}

/// One snapshot as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: SnapshotName,
    /// Sum of the file sizes (a directory) or the archive's size.
    pub size: u64,
}

/// `.versions` of an open vault directory; `None` if absent (or a link).
pub fn versions(vault: &Dir) -> io::Result<Option<Dir>> {
    vault.open_dir(OsStr::new(VERSIONS))
}

/// Snapshots by name, oldest first: real directories with a stamp name and regular
/// `.tar.xz` files. Anything else there (links, our unfinished work, strangers) is not
/// a snapshot.
pub fn snapshots(versions: &Dir) -> io::Result<Vec<(SnapshotName, crate::fstree::Stat)>> {
    let mut out = Vec::new();
    for entry in versions.entries()? {
        let Some(name) = entry.to_str().and_then(SnapshotName::parse) else {
            continue;
        };
        let Some(st) = versions.stat(&entry)? else {
            continue;
        };
        let fits = match name.form {
            Form::Dir => st.kind == Kind::Dir,
            Form::TarXz => st.kind == Kind::File,
        };
        if fits {
            out.push((name, st));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Sum of the sizes of the regular files below `dir`.
pub fn tree_size(dir: &Dir) -> io::Result<u64> {
    let mut total = 0u64;
    walk(dir, &mut |e| {
        if let Entry::File { stat, .. } = e {
            total = total.saturating_add(stat.size);
        }
        Ok(Step::Continue)
    })?;
    Ok(total)
}

/// Every snapshot with its size.
pub fn list(vault: &Dir) -> io::Result<Vec<Listed>> {
    let Some(versions) = versions(vault)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, st) in snapshots(&versions)? {
        let size = match name.form {
            Form::TarXz => st.size,
            Form::Dir => match versions.open_dir(OsStr::new(&name.file_name()))? {
                Some(d) => tree_size(&d)?,
                None => continue,
            },
        };
        out.push(Listed { name, size });
    }
    Ok(out)
}

/// Which snapshots `prune --keep N` removes: all but the newest `keep`.
pub fn plan_prune(names: &[SnapshotName], keep: usize) -> Vec<SnapshotName> {
    let mut sorted = names.to_vec();
    sorted.sort();
    let drop = sorted.len().saturating_sub(keep);
    sorted.into_iter().take(drop).collect()
}

/// Remove the given snapshots (each a directory or an archive, never followed).
pub fn remove(vault: &Dir, names: &[SnapshotName]) -> io::Result<()> {
    let Some(versions) = versions(vault)? else {
        return Ok(());
    };
    for n in names {
        removal::remove_entry(&versions, OsStr::new(&n.file_name()))?;
    }
    Ok(())
}

/// Remove what interrupted runs left in `dir` (entries named [`TMP_PREFIX`]…).
pub fn clear_leftovers(dir: &Dir) -> io::Result<()> {
    for entry in dir.entries()? {
        if entry.as_encoded_bytes().starts_with(TMP_PREFIX.as_bytes()) {
            removal::remove_entry(dir, &entry)?;
        }
    }
    Ok(())
}

/// Byte counts as upstream prints them (`512B`, `1.5KB`, `3.0MB`).
pub fn human_size(n: u64) -> String {
    let mut size = n as f64;
    for unit in ["B", "KB", "MB", "GB"] {
        if size < 1024.0 {
            return if unit == "B" {
                format!("{size:.0}{unit}")
            } else {
                format!("{size:.1}{unit}")
            };
        }
        size /= 1024.0;
    }
    format!("{size:.1}TB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn sizes_as_upstream() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1536), "1.5KB");
        assert_eq!(human_size(3 << 20), "3.0MB");
        assert_eq!(human_size(5 << 40), "5.0TB");
    }

    #[test]
    fn prune_keeps_the_newest() {
        let n = |at| SnapshotName::new(at, Form::Dir);
        let t = |at| SnapshotName::new(at, Form::TarXz);
        let all = [n(5), t(1), n(3), n(2), t(4)];
        assert_eq!(plan_prune(&all, 2), [t(1), n(2), n(3)]);
        assert_eq!(plan_prune(&all, 9), []);
        assert_eq!(plan_prune(&all, 0).len(), 5);
    }

    #[test]
    fn only_real_snapshots_are_listed() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path().join(VERSIONS);
        fs::create_dir_all(v.join("20260101T000000Z/sub")).unwrap();
        fs::write(v.join("20260101T000000Z/sub/f"), "12345").unwrap();
        fs::write(v.join("20250101T000000Z.tar.xz"), "xz").unwrap();
        fs::create_dir(v.join(".kanibako-tmp-20260102T000000Z")).unwrap();
        fs::create_dir(v.join("notes")).unwrap();
        fs::write(v.join("20260103T000000Z"), "a file with a dir's name").unwrap();
        std::os::unix::fs::symlink("/etc", v.join("20260104T000000Z")).unwrap();
        let listed = list(&Dir::open(t.path()).unwrap()).unwrap();
        let names: Vec<String> = listed.iter().map(|l| l.name.file_name()).collect();
        assert_eq!(names, ["20250101T000000Z.tar.xz", "20260101T000000Z"]);
        assert_eq!(listed[1].size, 5);
        clear_leftovers(&Dir::open(&v).unwrap()).unwrap();
        assert!(!v.join(".kanibako-tmp-20260102T000000Z").exists());
        remove(&Dir::open(t.path()).unwrap(), &[listed[1].name.clone()]).unwrap();
        assert!(!v.join("20260101T000000Z").exists());
    }
}
