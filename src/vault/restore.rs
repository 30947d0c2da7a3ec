//! Restoring `share-rw` from a snapshot. The current contents are snapshotted first;
//! the restored tree is built beside `share-rw` and swapped in with one rename, so a
//! failure or an interrupt leaves the old contents in place, never a mix.
//!
//! Nothing is ever written outside the vault: the snapshot name must be a stamp, every
//! step is taken from open directories, and a link in the snapshot is restored only if
//! it stays inside `share-rw` (other links are left out and reported).

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;

use super::name::{Form, SnapshotName};
use super::{RW, TMP_PREFIX, VaultError, clear_leftovers, snapshot, versions};
use crate::archive::member::OutsideLinks;
use crate::archive::unpack::{Rules, unpack, xz_reader};
use crate::fstree::copy::{CopyOptions, LinkRule, copy_tree};
use crate::fstree::{Dir, Kind, removal};

#[derive(Clone, Debug)]
pub struct Restored {
    pub from: SnapshotName,
    /// The snapshot of what `share-rw` held before (none when it was empty).
    pub before: Option<SnapshotName>,
    /// Links of the snapshot not restored: they point outside `share-rw`.
    pub left_out: Vec<PathBuf>,
}

/// The snapshot `name` (as `list` shows it), checked to exist in its form.
pub fn find(vault: &Dir, name: &str) -> Result<SnapshotName, VaultError> {
    let n = SnapshotName::parse(name).ok_or_else(|| VaultError::BadName(name.to_owned()))?;
    let Some(v) = versions(vault).map_err(VaultError::io("opening .versions"))? else {
        return Err(VaultError::NotFound(name.to_owned()));
    };
    let st = v
        .stat(OsStr::new(&n.file_name()))
        .map_err(VaultError::io("looking for the snapshot"))?;
    let fits = matches!(
        (n.form, st.map(|s| s.kind)),
        (Form::Dir, Some(Kind::Dir)) | (Form::TarXz, Some(Kind::File))
    );
    if !fits {
        return Err(VaultError::NotFound(name.to_owned()));
    }
    Ok(n)
}

/// Replace `share-rw` with the snapshot `name`, after snapshotting it as of `now`.
pub fn restore(
    vault: &Dir,
    name: &str,
    now: u64,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Restored, VaultError> {
    let from = find(vault, name)?;
    let before = snapshot::take(vault, now, check)?.map(|m| m.name);
    let ctx = |what: &str| VaultError::io(format!("{what} in {}", vault.path().display()));
    clear_leftovers(vault).map_err(ctx("clearing leftovers"))?;
    let tmp_name = format!("{TMP_PREFIX}restore-{}", from.stamp());
    let tmp = vault
        .create_dir(OsStr::new(&tmp_name), 0o700)
        .map_err(ctx("preparing the restore"))?;
    let built = (|| -> Result<Vec<PathBuf>, VaultError> {
        let v = versions(vault)
            .map_err(ctx("opening .versions"))?
            .ok_or_else(|| VaultError::NotFound(name.to_owned()))?;
        let left_out = match from.form {
            Form::Dir => {
                let snap = v
                    .open_dir(OsStr::new(&from.file_name()))
                    .map_err(ctx("opening the snapshot"))?
                    .ok_or_else(|| VaultError::NotFound(name.to_owned()))?;
                let opts = CopyOptions {
                    reflink: true,
                    link_from: None,
                    links: LinkRule::Inside,
                };
                let r = copy_tree(&snap, &tmp, opts, check).map_err(ctx("restoring"))?;
                r.left_out.into_iter().map(|(p, _)| p).collect()
            }
            Form::TarXz => {
                let f = v
                    .open_file(OsStr::new(&from.file_name()))
                    .map_err(ctx("opening the snapshot"))?
                    .ok_or_else(|| VaultError::NotFound(name.to_owned()))?;
                let rules = Rules {
                    single_top: false,
                    outside_links: OutsideLinks::LeaveOut,
                    capture: &[],
                    drop: &[],
                    secret: &[],
                };
                let xz = xz_reader(f).map_err(ctx("starting xz"))?;
                unpack(xz, &tmp, &rules, check)?.left_out
            }
        };
        let mode = match vault
            .stat(OsStr::new(RW))
            .map_err(ctx("reading share-rw"))?
        {
            Some(st) if st.kind == Kind::Dir => st.mode,
            _ => 0o755,
        };
        tmp.chmod_self(mode).map_err(ctx("restoring"))?;
        check().map_err(ctx("restoring"))?;
        Ok(left_out)
    })();
    let left_out = match built {
        Ok(l) => l,
        Err(e) => {
            let _ = removal::remove_entry(vault, OsStr::new(&tmp_name));
            return Err(e);
        }
    };
    let spare = format!("{TMP_PREFIX}spare");
    let swapped = match vault
        .stat(OsStr::new(RW))
        .map_err(ctx("reading share-rw"))?
    {
        Some(_) => vault.exchange(OsStr::new(&tmp_name), OsStr::new(RW), OsStr::new(&spare)),
        None => vault.rename_new(OsStr::new(&tmp_name), OsStr::new(RW)),
    };
    if let Err(e) = swapped {
        let _ = removal::remove_entry(vault, OsStr::new(&tmp_name));
        return Err(ctx("swapping in the restored share-rw")(e));
    }
    let _ = vault.sync();
    // What was there before (already snapshotted) now sits under the temporary name.
    removal::remove_entry(vault, OsStr::new(&tmp_name))
        .map_err(ctx("removing the old share-rw"))?;
    Ok(Restored {
        from,
        before,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn ok() -> io::Result<()> {
        Ok(())
    }

    #[test]
    fn restore_brings_back_a_snapshot_and_keeps_the_present_one() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        fs::create_dir_all(v.join("rw/d")).unwrap();
        fs::write(v.join("rw/d/f"), "old").unwrap();
        symlink("d/f", v.join("rw/inside")).unwrap();
        symlink("/etc/passwd", v.join("rw/outside")).unwrap();
        let vault = Dir::open(v).unwrap();
        let snap = snapshot::take(&vault, 100, &ok).unwrap().unwrap();
        fs::write(v.join("rw/d/f"), "new").unwrap();
        fs::write(v.join("rw/added"), "x").unwrap();
        let r = restore(&vault, &snap.name.file_name(), 200, &ok).unwrap();
        assert_eq!(fs::read_to_string(v.join("rw/d/f")).unwrap(), "old");
        assert!(!v.join("rw/added").exists());
        assert_eq!(
            fs::read_link(v.join("rw/inside")).unwrap(),
            std::path::Path::new("d/f")
        );
        assert!(
            !v.join("rw/outside").is_symlink(),
            "a link out of the vault is not restored"
        );
        assert_eq!(r.left_out, [PathBuf::from("outside")]);
        let before = r.before.unwrap();
        assert_eq!(before.at, 200);
        let kept = v.join(".versions").join(before.file_name());
        assert_eq!(fs::read_to_string(kept.join("d/f")).unwrap(), "new");
        assert!(fs::read_dir(v).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(TMP_PREFIX)
        }));
    }

    #[test]
    fn names_that_are_not_snapshots_touch_nothing() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        fs::create_dir_all(v.join("ro")).unwrap();
        fs::write(v.join("ro/keep"), "k").unwrap();
        fs::create_dir_all(v.join("rw")).unwrap();
        fs::write(v.join("rw/mine"), "m").unwrap();
        fs::create_dir_all(v.join(".versions")).unwrap();
        let vault = Dir::open(v).unwrap();
        for bad in ["../ro", "..", "/etc", "20260101T000000Z/../../ro"] {
            assert!(
                matches!(restore(&vault, bad, 1, &ok), Err(VaultError::BadName(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            restore(&vault, "20260101T000000Z", 1, &ok),
            Err(VaultError::NotFound(_))
        ));
        // a stamp-named link in .versions is not a snapshot
        symlink(v.join("ro"), v.join(".versions/20260101T000000Z")).unwrap();
        assert!(matches!(
            restore(&vault, "20260101T000000Z", 1, &ok),
            Err(VaultError::NotFound(_))
        ));
        assert_eq!(fs::read_to_string(v.join("rw/mine")).unwrap(), "m");
        assert_eq!(fs::read_to_string(v.join("ro/keep")).unwrap(), "k");
    }

    #[test]
    fn an_upstream_tar_snapshot_restores_without_links_out() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        fs::create_dir_all(v.join(".versions")).unwrap();
        fs::create_dir_all(v.join("rw")).unwrap();
        let data = crate::archive::unpack::tests::tar_of(&[
            ("notes.txt", tar::EntryType::Regular, b"hello", None),
            ("sub", tar::EntryType::Directory, b"", None),
            ("sub/a", tar::EntryType::Regular, b"a", None),
            ("sub/up", tar::EntryType::Symlink, b"", Some("../notes.txt")),
            (
                "sub/escape",
                tar::EntryType::Symlink,
                b"",
                Some("../../../etc"),
            ),
        ]);
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        std::io::Write::write_all(&mut enc, &data).unwrap();
        fs::write(
            v.join(".versions/20250101T000000Z.tar.xz"),
            enc.finish().unwrap(),
        )
        .unwrap();
        let r = restore(&Dir::open(v).unwrap(), "20250101T000000Z.tar.xz", 5, &ok).unwrap();
        assert!(r.before.is_none(), "share-rw was empty");
        assert_eq!(fs::read_to_string(v.join("rw/sub/up")).unwrap(), "hello");
        assert_eq!(r.left_out, [PathBuf::from("sub/escape")]);
    }
}
