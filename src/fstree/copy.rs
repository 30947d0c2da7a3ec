//! Copying a tree into an empty directory, file by file the cheapest way the
//! filesystem allows: a reflink (copy-on-write clone, btrfs/xfs), else a hard link to
//! the same file in an earlier copy when it is unchanged since (same size, mtime and
//! mode, as `rsync --link-dest` decides), else a plain copy. A file is never linked to
//! the source itself: the copy must not change when the source does.
//!
//! Modes and modification times are kept (the next copy's "unchanged" test needs the
//! times); ownership is not. FIFOs, sockets and devices are left out and reported, as
//! are links the rule in force does not allow.

use std::cell::Cell;
use std::ffi::OsStr;
use std::fs::{File, FileTimes};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dir::{Dir, Kind, Stat};
use super::link::stays_inside;
use super::walk::{Entry, Step, walk};

/// Which symbolic links a copy recreates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRule {
    /// Every link, as it is (a faithful copy; the links are never followed).
    Keep,
    /// Only those that stay inside the tree ([`stays_inside`]).
    Inside,
}

#[derive(Clone, Copy, Debug)]
pub struct CopyOptions<'a> {
    /// Try reflinks first.
    pub reflink: bool,
    /// An earlier copy whose unchanged files are hard-linked instead of copied.
    pub link_from: Option<&'a Dir>,
    pub links: LinkRule,
}

/// How a file was copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Reflink,
    HardLink,
    Copy,
}

/// What a copy did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub files: u64,
    pub bytes: u64,
    pub reflinked: u64,
    pub hard_linked: u64,
    pub copied: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Entries not copied, with why.
    pub left_out: Vec<(PathBuf, &'static str)>,
}

impl CopyReport {
    /// The method most files took, for a one-word summary.
    pub fn main_method(&self) -> Method {
        if self.reflinked >= self.hard_linked.max(self.copied) && self.reflinked > 0 {
            Method::Reflink
        } else if self.hard_linked > self.copied {
            Method::HardLink
        } else {
            Method::Copy
        }
    }
}

/// `mtime` as a `SystemTime` (times before 1970 included).
pub fn system_time(secs: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec.clamp(0, 999_999_999)).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsec)
    }
}

/// Clone `src`'s content into `dst` (both open files) with `FICLONE`.
#[allow(unsafe_code)]
fn reflink(src: &File, dst: &File) -> io::Result<()> {
    // SAFETY: FICLONE takes the source descriptor as its argument and touches no
    // memory of ours; both descriptors are open for the duration of the call.
    let rc = unsafe { nix::libc::ioctl(dst.as_raw_fd(), nix::libc::FICLONE as _, src.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a reflink error means "this filesystem (pair) cannot", not a real failure.
fn reflink_unsupported(e: &io::Error) -> bool {
    use nix::libc::{EBADF, EINVAL, EOPNOTSUPP, EPERM, ETXTBSY, EXDEV};
    matches!(
        e.raw_os_error(),
        Some(c) if [EOPNOTSUPP, EXDEV, EINVAL, EBADF, EPERM, ETXTBSY, nix::libc::ENOTTY].contains(&c)
    )
}

fn unchanged(a: &Stat, b: &Stat) -> bool {
    a.kind == Kind::File
        && b.kind == Kind::File
        && a.size == b.size
        && a.mtime == b.mtime
        && a.mtime_nsec == b.mtime_nsec
        && a.mode == b.mode
}

/// Whether the filesystem under `dir` makes reflinks: a probe file cloned and removed.
pub fn reflinks_work(dir: &Dir) -> bool {
    let (a, b) = (
        OsStr::new(".kanibako-reflink-probe-a"),
        OsStr::new(".kanibako-reflink-probe-b"),
    );
    let _ = dir.unlink(a);
    let _ = dir.unlink(b);
    let works = (|| -> io::Result<bool> {
        let mut w = dir.create_file(a, 0o600)?;
        io::Write::write_all(&mut w, b"probe")?;
        drop(w);
        // The source of a clone must be open for reading.
        let Some(src) = dir.open_file(a)? else {
            return Ok(false);
        };
        let dst = dir.create_file(b, 0o600)?;
        Ok(reflink(&src, &dst).is_ok())
    })()
    .unwrap_or(false);
    let _ = dir.unlink(a);
    let _ = dir.unlink(b);
    works
}

/// Copy one regular file into `dst`, by the cheapest method that works.
fn copy_file(
    report: &mut CopyReport,
    opts: &CopyOptions<'_>,
    reflink_ok: &Cell<bool>,
    prev: Option<&Dir>,
    (rel, stat, parent, name): (&Path, Stat, &Dir, &OsStr),
    dst: &Dir,
) -> io::Result<()> {
    if let Some(p) = prev
        && let Some(old) = p.stat(name)?
        && unchanged(&stat, &old)
        && dst.hard_link(name, p, name).is_ok()
    {
        report.hard_linked += 1;
        report.files += 1;
        report.bytes += stat.size;
        return Ok(());
    }
    let Some(mut src) = parent.open_file(name)? else {
        // Gone, or no longer a regular file, since the walk looked.
        report
            .left_out
            .push((rel.to_owned(), "changed while being copied"));
        return Ok(());
    };
    let meta = src.metadata()?;
    let mut out = dst.create_file(name, 0o600)?;
    let mut done = false;
    if opts.reflink && reflink_ok.get() {
        match reflink(&src, &out) {
            Ok(()) => {
                report.reflinked += 1;
                done = true;
            }
            Err(e) if reflink_unsupported(&e) => reflink_ok.set(false),
            Err(e) => return Err(e),
        }
    }
    if !done {
        io::copy(&mut src, &mut out)?;
        report.copied += 1;
    }
    use std::os::unix::fs::MetadataExt;
    out.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    out.set_times(FileTimes::new().set_modified(system_time(meta.mtime(), meta.mtime_nsec())))?;
    report.files += 1;
    report.bytes += meta.len();
    Ok(())
}

/// Copy everything below `src` into the empty directory `dst`. `check` runs before each
/// entry and stops the copy when it fails (an interrupt).
pub fn copy_tree(
    src: &Dir,
    dst: &Dir,
    opts: CopyOptions<'_>,
    check: &dyn Fn() -> io::Result<()>,
) -> io::Result<CopyReport> {
    let mut report = CopyReport::default();
    let reflink_ok = Cell::new(true);
    // The destination directory of each level, and the earlier copy's (where it has
    // one).
    let mut dsts = vec![dst.try_clone()?];
    let mut prevs = vec![opts.link_from.map(Dir::try_clone).transpose()?];
    walk(src, &mut |e| {
        check()?;
        let here = dsts.last().expect("the root stays");
        match e {
            Entry::Dir { rel, .. } => {
                let name = rel.file_name().unwrap_or_default();
                let d = here.create_dir(name, 0o700)?;
                let prev = match prevs.last() {
                    Some(Some(p)) => p.open_dir(name)?,
                    _ => None,
                };
                dsts.push(d);
                prevs.push(prev);
                report.dirs += 1;
            }
            Entry::DirEnd { stat, .. } => {
                let d = dsts.pop().expect("a directory was entered");
                prevs.pop();
                // Modes last: a read-only source directory still gets its entries.
                d.chmod_self(stat.mode)?;
                let _ = d.set_mtime(stat.mtime, stat.mtime_nsec);
            }
            Entry::File {
                rel,
                stat,
                parent,
                name,
            } => {
                let prev = prevs.last().and_then(Option::as_ref);
                copy_file(
                    &mut report,
                    &opts,
                    &reflink_ok,
                    prev,
                    (rel, stat, parent, name),
                    here,
                )?;
            }
            Entry::Symlink { rel, target, .. } => {
                let allowed = match opts.links {
                    LinkRule::Keep => true,
                    LinkRule::Inside => stays_inside(rel, target.as_bytes()),
                };
                if allowed {
                    here.symlink(&target, rel.file_name().unwrap_or_default())?;
                    report.symlinks += 1;
                } else {
                    report
                        .left_out
                        .push((rel.to_owned(), "a link pointing outside"));
                }
            }
            Entry::Special { rel, .. } => {
                report
                    .left_out
                    .push((rel.to_owned(), "not a regular file, directory or link"));
            }
        }
        Ok(Step::Continue)
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, symlink};

    fn no_check() -> io::Result<()> {
        Ok(())
    }

    fn sample(root: &Path) {
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(root.join("a.txt"), "alpha").unwrap();
        fs::write(root.join("d/e/b.bin"), vec![7u8; 10_000]).unwrap();
        fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
        symlink("../a.txt", root.join("d/up")).unwrap();
        symlink("/etc/passwd", root.join("d/abs")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        // read-only directory: its entries must still be copied and later removable
        fs::set_permissions(root.join("d/e"), fs::Permissions::from_mode(0o555)).unwrap();
    }

    #[test]
    fn a_faithful_copy_then_hard_links_for_unchanged_files() {
        let t = tempfile::tempdir().unwrap();
        let (src, one, two) = (
            t.path().join("src"),
            t.path().join("one"),
            t.path().join("two"),
        );
        sample(&src);
        fs::create_dir(&one).unwrap();
        let opts = CopyOptions {
            reflink: false,
            link_from: None,
            links: LinkRule::Keep,
        };
        let r = copy_tree(
            &Dir::open(&src).unwrap(),
            &Dir::open(&one).unwrap(),
            opts,
            &no_check,
        )
        .unwrap();
        assert_eq!((r.files, r.copied, r.symlinks, r.dirs), (2, 2, 2, 2));
        assert_eq!(
            r.left_out,
            [(
                PathBuf::from("fifo"),
                "not a regular file, directory or link"
            )]
        );
        assert_eq!(fs::read_to_string(one.join("a.txt")).unwrap(), "alpha");
        assert_eq!(
            fs::metadata(one.join("a.txt")).unwrap().mode() & 0o777,
            0o640
        );
        assert_eq!(fs::metadata(one.join("d/e")).unwrap().mode() & 0o777, 0o555);
        assert_eq!(
            fs::metadata(src.join("d/e/b.bin")).unwrap().mtime(),
            fs::metadata(one.join("d/e/b.bin")).unwrap().mtime()
        );
        assert_eq!(
            fs::read_link(one.join("d/abs")).unwrap(),
            Path::new("/etc/passwd")
        );

        // change one file; the other is linked to the first copy, never to the source
        fs::write(src.join("a.txt"), "changed").unwrap();
        fs::create_dir(&two).unwrap();
        let prev = Dir::open(&one).unwrap();
        let opts = CopyOptions {
            reflink: false,
            link_from: Some(&prev),
            links: LinkRule::Inside,
        };
        let r = copy_tree(
            &Dir::open(&src).unwrap(),
            &Dir::open(&two).unwrap(),
            opts,
            &no_check,
        )
        .unwrap();
        assert_eq!((r.hard_linked, r.copied), (1, 1));
        assert_eq!(r.main_method(), Method::Copy);
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&one.join("d/e/b.bin")), ino(&two.join("d/e/b.bin")));
        assert_ne!(ino(&src.join("d/e/b.bin")), ino(&two.join("d/e/b.bin")));
        assert_eq!(fs::read_to_string(two.join("a.txt")).unwrap(), "changed");
        assert!(two.join("d/up").is_symlink());
        assert!(!two.join("d/abs").exists() && !two.join("d/abs").is_symlink());
        assert!(r.left_out.iter().any(|(p, _)| p == Path::new("d/abs")));
    }

    #[test]
    fn a_stopped_copy_reports_the_stop() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        sample(&src);
        fs::create_dir(&dst).unwrap();
        let opts = CopyOptions {
            reflink: true,
            link_from: None,
            links: LinkRule::Keep,
        };
        let stop = || Err(crate::interrupt::stop());
        let e = copy_tree(
            &Dir::open(&src).unwrap(),
            &Dir::open(&dst).unwrap(),
            opts,
            &stop,
        )
        .unwrap_err();
        assert!(crate::interrupt::is_interrupt(&e));
    }

    #[test]
    fn times_before_the_epoch() {
        assert_eq!(system_time(-1, 0), UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(system_time(1, 5), UNIX_EPOCH + Duration::new(1, 5));
    }
}
