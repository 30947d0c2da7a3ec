//! Taking a snapshot of `share-rw`: a directory in `.versions/` named by the second,
//! made by reflinks where the filesystem can, else with unchanged files hard-linked to
//! the newest earlier directory snapshot, else by copying. Links are copied as links
//! (never followed); FIFOs, sockets and devices are left out.

use std::ffi::OsStr;
use std::io;

use super::name::{Form, SnapshotName, next_free};
use super::{RW, TMP_PREFIX, VaultError, clear_leftovers, plan_prune, snapshots};
use crate::fstree::copy::{CopyOptions, CopyReport, LinkRule, copy_tree, reflinks_work};
use crate::fstree::{Dir, removal};

/// A snapshot that was made.
#[derive(Clone, Debug)]
pub struct Made {
    pub name: SnapshotName,
    pub report: CopyReport,
    /// The filesystem makes reflinks (so no hard links were needed).
    pub reflink: bool,
    /// The earlier snapshot unchanged files were hard-linked to.
    pub linked_to: Option<SnapshotName>,
}

impl Made {
    /// `reflink`, `hardlink` or `copy`: how most files got there.
    pub fn method(&self) -> &'static str {
        use crate::fstree::copy::Method;
        match self.report.main_method() {
            Method::Reflink => "reflink",
            Method::HardLink => "hardlink",
            Method::Copy if self.reflink => "reflink",
            Method::Copy => "copy",
        }
    }
}

/// Snapshot the vault's `share-rw` as of `now` (seconds since the epoch). `Ok(None)`
/// when `share-rw` is missing or empty: there is nothing to keep.
pub fn take(
    vault: &Dir,
    now: u64,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Option<Made>, VaultError> {
    let ctx = |what: &str| VaultError::io(format!("{what} in {}", vault.path().display()));
    let Some(rw) = vault
        .open_dir(OsStr::new(RW))
        .map_err(ctx("opening share-rw"))?
    else {
        if vault.stat(OsStr::new(RW)).ok().flatten().is_some() {
            return Err(VaultError::NotADir(vault.path().join(RW)));
        }
        return Ok(None);
    };
    if rw.entries().map_err(ctx("reading share-rw"))?.is_empty() {
        return Ok(None);
    }
    let versions = vault
        .ensure_dir(OsStr::new(super::VERSIONS), 0o755)
        .map_err(ctx("opening .versions"))?;
    clear_leftovers(&versions).map_err(ctx("clearing leftovers"))?;
    let existing = snapshots(&versions).map_err(ctx("listing snapshots"))?;
    let name = next_free(now, &|n| existing.iter().any(|(e, _)| e == n));
    let tmp_name = format!("{TMP_PREFIX}{}", name.stamp());
    let tmp = versions
        .create_dir(OsStr::new(&tmp_name), 0o700)
        .map_err(ctx("creating a snapshot"))?;
    let result = (|| -> io::Result<Made> {
        let reflink = reflinks_work(&tmp);
        let linked_to = if reflink {
            None
        } else {
            existing
                .iter()
                .rev()
                .find(|(n, _)| n.form == Form::Dir)
                .map(|(n, _)| n.clone())
        };
        let prev = match &linked_to {
            Some(n) => versions.open_dir(OsStr::new(&n.file_name()))?,
            None => None,
        };
        let opts = CopyOptions {
            reflink,
            link_from: prev.as_ref(),
            links: LinkRule::Keep,
        };
        let report = copy_tree(&rw, &tmp, opts, check)?;
        let st = rw.stat_self()?;
        tmp.chmod_self(st.mode)?;
        let _ = tmp.set_mtime(st.mtime, st.mtime_nsec);
        check()?;
        versions.rename_new(OsStr::new(&tmp_name), OsStr::new(&name.file_name()))?;
        let _ = versions.sync();
        Ok(Made {
            name: name.clone(),
            report,
            reflink,
            linked_to: linked_to.filter(|_| prev.is_some()),
        })
    })();
    match result {
        Ok(made) => Ok(Some(made)),
        Err(e) => {
            let _ = removal::remove_entry(&versions, OsStr::new(&tmp_name));
            Err(ctx("taking a snapshot")(e))
        }
    }
}

/// What upstream does before each launch: a snapshot, then all but the newest `keep`
/// removed. Returns the snapshot made, if any.
pub fn auto(
    vault: &Dir,
    now: u64,
    keep: usize,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Option<Made>, VaultError> {
    let made = take(vault, now, check)?;
    if made.is_some()
        && let Some(versions) =
            super::versions(vault).map_err(VaultError::io("opening .versions"))?
    {
        let names: Vec<SnapshotName> = snapshots(&versions)
            .map_err(VaultError::io("listing snapshots"))?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        super::remove(vault, &plan_prune(&names, keep))
            .map_err(VaultError::io("pruning snapshots"))?;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn ok() -> io::Result<()> {
        Ok(())
    }

    #[test]
    fn snapshots_hard_link_what_did_not_change_and_never_collide() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        let vault = Dir::open(v).unwrap();
        assert!(take(&vault, 1000, &ok).unwrap().is_none(), "no rw yet");
        fs::create_dir(v.join("rw")).unwrap();
        assert!(take(&vault, 1000, &ok).unwrap().is_none(), "empty rw");
        fs::write(v.join("rw/keep"), "same").unwrap();
        fs::write(v.join("rw/edit"), "one").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", v.join("rw/abs")).unwrap();
        let a = take(&vault, 1000, &ok).unwrap().unwrap();
        assert_eq!(a.name.stamp(), "19700101T001640Z");
        fs::write(v.join("rw/edit"), "two!").unwrap();
        let b = take(&vault, 1000, &ok).unwrap().unwrap();
        assert_eq!(b.name.at, 1001, "the same second twice: the next one");
        let snap = |m: &Made| v.join(".versions").join(m.name.file_name());
        assert_eq!(fs::read_to_string(snap(&a).join("edit")).unwrap(), "one");
        assert_eq!(fs::read_to_string(snap(&b).join("edit")).unwrap(), "two!");
        assert_eq!(
            fs::read_link(snap(&b).join("abs")).unwrap(),
            Path::new("/etc/passwd"),
            "a faithful copy: the link itself"
        );
        if !b.reflink {
            assert_eq!(b.method(), "copy");
            assert_eq!(b.report.hard_linked, 1);
            let ino = |p: &Path| fs::metadata(p).unwrap().ino();
            assert_eq!(ino(&snap(&a).join("keep")), ino(&snap(&b).join("keep")));
            assert_ne!(ino(&v.join("rw/keep")), ino(&snap(&b).join("keep")));
        }
        // the auto form prunes
        for at in 2000..2006 {
            fs::write(v.join("rw/edit"), at.to_string()).unwrap();
            auto(&vault, at, 3, &ok).unwrap();
        }
        let left: Vec<u64> = snapshots(&Dir::open(&v.join(".versions")).unwrap())
            .unwrap()
            .iter()
            .map(|(n, _)| n.at)
            .collect();
        assert_eq!(left, [2003, 2004, 2005]);
    }

    #[test]
    fn an_interrupted_snapshot_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let v = t.path();
        fs::create_dir_all(v.join("rw/d")).unwrap();
        fs::write(v.join("rw/d/f"), "x").unwrap();
        let stop = || Err(crate::interrupt::stop());
        assert!(take(&Dir::open(v).unwrap(), 5, &stop).is_err());
        assert_eq!(fs::read_dir(v.join(".versions")).unwrap().count(), 0);
        assert!(v.join("rw/d/f").exists());
    }

    #[test]
    fn a_linked_share_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("host-file"), "h").unwrap();
        let v = t.path().join("vault");
        fs::create_dir(&v).unwrap();
        std::os::unix::fs::symlink(&elsewhere, v.join("rw")).unwrap();
        let r = take(&Dir::open(&v).unwrap(), 5, &ok);
        assert!(matches!(r, Err(VaultError::NotADir(_))), "{r:?}");
        assert!(!v.join(".versions").exists());
    }
}
