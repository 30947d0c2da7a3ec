//! An open directory and the operations on its entries, each relative to the directory's
//! descriptor and none following a symbolic link. Names given here must be one plain
//! path component; anything else (`a/b`, `..`, empty) is refused before a system call.

use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, readlinkat, renameat2};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

/// What an entry is, seen without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    /// A FIFO, socket or device: never data worth keeping, never opened.
    Special,
}

/// The parts of an `lstat` the tree operations use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
}

impl Stat {
    fn from_raw(st: &nix::sys::stat::FileStat) -> Self {
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let kind = if fmt == SFlag::S_IFDIR {
            Kind::Dir
        } else if fmt == SFlag::S_IFREG {
            Kind::File
        } else if fmt == SFlag::S_IFLNK {
            Kind::Symlink
        } else {
            Kind::Special
        };
        Self {
            kind,
            mode: st.st_mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            uid: st.st_uid,
            gid: st.st_gid,
        }
    }
}

pub(crate) fn to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

/// `name` if it is one plain component.
pub fn plain(name: &OsStr) -> io::Result<&OsStr> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a plain file name: {}", Path::new(name).display()),
        ));
    }
    Ok(name)
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Open `path`; its last component must be a real directory (a link is refused).
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| {
            io::Error::new(to_io(e).kind(), format!("{}: {}", path.display(), to_io(e)))
        })?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Open `base` (trusted as given), then each component of `rel` below it without
    /// following a link: a `vault` link a repository ships is refused, not followed.
    /// `Ok(None)` if a step is missing or is not a real directory.
    pub fn open_beneath(base: &Path, rel: &Path) -> io::Result<Option<Self>> {
        let mut cur = Self::open(base)?;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not a plain relative path: {}", rel.display()),
                ));
            };
            match cur.open_dir(name)? {
                Some(d) => cur = d,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The path this directory was opened under (for messages; operations use the fd).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stat_self(&self) -> io::Result<Stat> {
        fstat(self.fd.as_fd())
            .map(|s| Stat::from_raw(&s))
            .map_err(to_io)
    }

    /// `lstat` of an entry; `None` when there is none.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        let name = plain(name)?;
        match fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Stat::from_raw(&st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Entry names, sorted bytewise (the order Python's `sorted(os.listdir())` gives).
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let dup = self.fd.try_clone()?;
        let mut d = nix::dir::Dir::from_fd(dup).map_err(to_io)?;
        let mut names = Vec::new();
        for entry in d.iter() {
            let entry = entry.map_err(to_io)?;
            let n: &CStr = entry.file_name();
            let b = n.to_bytes();
            if b != b"." && b != b".." {
                names.push(OsStr::from_bytes(b).to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// A child directory; `None` if missing, a link, or not a directory.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Option<Dir>> {
        let name = plain(name)?;
        match openat(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.path.join(name),
            })),
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Make a new directory (it must not exist) and open it.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        let name = plain(name)?;
        mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)).map_err(to_io)?;
        self.open_dir(name)?
            .ok_or_else(|| io::Error::other(format!("{} vanished", self.path.join(name).display())))
    }

    /// Open a child directory, making it if missing; an entry of another kind is an
    /// error.
    pub fn ensure_dir(&self, name: &OsStr, mode: u32) -> io::Result<Dir> {
        let name = plain(name)?;
        match mkdirat(self.fd.as_fd(), name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(to_io(e)),
        }
        self.open_dir(name)?.ok_or_else(|| {
            io::Error::other(format!(
                "{} is not a directory (a symbolic link?); left alone",
                self.path.join(name).display()
            ))
        })
    }

    /// Open a regular file for reading; `None` if missing or not a regular file. The
    /// open does not block (a FIFO planted under the name) and does not follow a link.
    pub fn open_file(&self, name: &OsStr) -> io::Result<Option<File>> {
        let name = plain(name)?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENXIO) => return Ok(None),
            Err(e) => return Err(to_io(e)),
        };
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Ok(None);
        }
        Ok(Some(f))
    }

    /// Create a new file for writing; fails if anything (even a dangling link) has the
    /// name.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let name = plain(name)?;
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(self.fd.as_fd(), name, flags, Mode::from_bits_truncate(mode))
            .map(File::from)
            .map_err(to_io)
    }

    /// Open a regular file for appending, making it if missing; a link, a FIFO or
    /// anything but a regular file under the name is refused.
    pub fn append_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let name = plain(name)?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let f = openat(self.fd.as_fd(), name, flags, Mode::from_bits_truncate(mode))
            .map(File::from)
            .map_err(to_io)?;
        if !f.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                self.path.join(name).display()
            )));
        }
        Ok(f)
    }

    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        readlinkat(self.fd.as_fd(), plain(name)?).map_err(to_io)
    }

    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        symlinkat(target, self.fd.as_fd(), plain(name)?).map_err(to_io)
    }

    /// A new entry `name` here for the file `from_name` of `from` (a link there is
    /// linked itself, never its target).
    pub fn hard_link(&self, name: &OsStr, from: &Dir, from_name: &OsStr) -> io::Result<()> {
        linkat(
            from.fd.as_fd(),
            plain(from_name)?,
            self.fd.as_fd(),
            plain(name)?,
            AtFlags::empty(),
        )
        .map_err(to_io)
    }

    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(self.fd.as_fd(), plain(name)?, UnlinkatFlags::NoRemoveDir).map_err(to_io)
    }

    pub fn rmdir(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(self.fd.as_fd(), plain(name)?, UnlinkatFlags::RemoveDir).map_err(to_io)
    }

    /// Rename `from` to `to` (both here); fails if `to` exists.
    pub fn rename_new(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        renameat2(
            self.fd.as_fd(),
            plain(from)?,
            self.fd.as_fd(),
            plain(to)?,
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(to_io)
    }

    /// Swap two entries here in one step: a reader sees one or the other, never
    /// neither. Filesystems without the call (`EINVAL`) get a two-step fallback
    /// through a third name, `spare`.
    pub fn exchange(&self, a: &OsStr, b: &OsStr, spare: &OsStr) -> io::Result<()> {
        let (a, b, spare) = (plain(a)?, plain(b)?, plain(spare)?);
        match renameat2(
            self.fd.as_fd(),
            a,
            self.fd.as_fd(),
            b,
            RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => Ok(()),
            Err(Errno::EINVAL | Errno::ENOSYS) => {
                self.rename_new(b, spare)?;
                self.rename_new(a, b)?;
                self.rename_new(spare, a)
            }
            Err(e) => Err(to_io(e)),
        }
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// Set this directory's modification time (its access time is left alone).
    pub fn set_mtime(&self, secs: i64, nsec: i64) -> io::Result<()> {
        use nix::sys::time::TimeSpec;
        let omit = TimeSpec::UTIME_OMIT;
        let at = TimeSpec::new(secs, nsec.clamp(0, 999_999_999));
        nix::sys::stat::futimens(self.fd.as_fd(), &omit, &at).map_err(to_io)
    }

    pub fn chmod_self(&self, mode: u32) -> io::Result<()> {
        fchmod(self.fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(to_io)
    }

    /// Make renames and creations in this directory durable.
    pub fn sync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.fd.as_fd()).map_err(to_io)
    }

    pub(crate) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_names_only() {
        for bad in ["", ".", "..", "a/b", "/x", "a\0b"] {
            assert!(plain(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        assert!(plain(OsStr::new("..x")).is_ok());
        assert!(plain(OsStr::new(" spaced ")).is_ok());
    }

    #[test]
    fn links_are_seen_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), "s").unwrap();
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        symlink(&outside, d.join("dirlink")).unwrap();
        symlink(outside.join("secret"), d.join("filelink")).unwrap();
        let dir = Dir::open(&d).unwrap();
        assert!(dir.open_dir(OsStr::new("dirlink")).unwrap().is_none());
        assert!(dir.open_file(OsStr::new("filelink")).unwrap().is_none());
        assert!(dir.create_file(OsStr::new("filelink"), 0o600).is_err());
        assert!(dir.ensure_dir(OsStr::new("dirlink"), 0o700).is_err());
        assert_eq!(
            dir.stat(OsStr::new("dirlink")).unwrap().unwrap().kind,
            Kind::Symlink
        );
        assert!(Dir::open(&d.join("dirlink")).is_err());
        assert!(
            Dir::open_beneath(&d, Path::new("dirlink"))
                .unwrap()
                .is_none()
        );
        assert_eq!(fs::read_to_string(outside.join("secret")).unwrap(), "s");
        assert_eq!(
            dir.entries().unwrap(),
            [OsString::from("dirlink"), OsString::from("filelink")]
        );
    }

    #[test]
    fn exchange_swaps_two_trees() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("a")).unwrap();
        fs::write(t.path().join("a/x"), "a").unwrap();
        fs::create_dir(t.path().join("b")).unwrap();
        let dir = Dir::open(t.path()).unwrap();
        dir.exchange(OsStr::new("a"), OsStr::new("b"), OsStr::new("spare"))
            .unwrap();
        assert!(t.path().join("b/x").exists());
        assert!(!t.path().join("a/x").exists());
        assert!(!t.path().join("spare").exists());
    }
}
