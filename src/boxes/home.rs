//! The box's agent home on the host, handled so that a box cannot steer the host: the
//! directory is shared read-write with the container, which may replace any entry with
//! a symbolic link to a host file. Every operation here walks from an open directory
//! with `O_NOFOLLOW`, so a planted link is seen as a link and left alone — never
//! followed to delete, append to or overwrite something outside the home.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

pub use crate::fsutil::MAX_READ;

/// What an entry is, without following it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// Whether `dir` is a real directory, reached from `base` (when it lies below it)
/// without passing through a symbolic link. A project's `vault/rw` that is a link — a
/// cloned repository can ship one — would otherwise have the engine mount wherever it
/// points.
pub fn real_dir(base: &Path, dir: &Path) -> bool {
    match dir.strip_prefix(base) {
        Ok(rel) => SafeDir::open(base)
            .ok()
            .and_then(|b| b.open_dir(rel).ok().flatten())
            .is_some(),
        Err(_) => std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()),
    }
}

/// An open directory inside (or at the root of) a box home.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn to_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

fn plain_name(name: &OsStr) -> io::Result<&OsStr> {
    let p = Path::new(name);
    match p.components().collect::<Vec<_>>().as_slice() {
        [Component::Normal(n)] => Ok(n),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a plain file name: {}", p.display()),
        )),
    }
}

impl SafeDir {
    /// Open the home itself; it must be a real directory, not a link.
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = nix::fcntl::open(path, DIR_FLAGS, Mode::empty()).map_err(to_io)?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path that names this very directory (not whatever its old path points to now).
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// `lstat` relative to this directory: the entry's type bits and its stat.
    fn lstat(&self, name: &OsStr) -> Option<(SFlag, nix::sys::stat::FileStat)> {
        let st = fstatat(
            self.fd.as_fd(),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()?;
        Some((SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT, st))
    }

    pub fn kind(&self, name: &OsStr) -> Option<Kind> {
        let (fmt, _) = self.lstat(name)?;
        Some(if fmt == SFlag::S_IFDIR {
            Kind::Dir
        } else if fmt == SFlag::S_IFREG {
            Kind::File
        } else if fmt == SFlag::S_IFLNK {
            Kind::Symlink
        } else {
            Kind::Other
        })
    }

    /// Size and modification time (seconds) of a regular file, not following links.
    pub fn file_stat(&self, name: &OsStr) -> Option<(u64, i64)> {
        let (fmt, st) = self.lstat(name)?;
        (fmt == SFlag::S_IFREG).then_some((st.st_size as u64, st.st_mtime))
    }

    fn child(&self, name: &OsStr) -> io::Result<Option<SafeDir>> {
        match openat(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(SafeDir {
                fd,
                path: self.path.join(name),
            })),
            // missing, a link (ELOOP), or not a directory
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// Open `rel` below this directory; `None` if any step is missing or is not a real
    /// directory (a link counts as "not there").
    pub fn open_dir(&self, rel: &Path) -> io::Result<Option<SafeDir>> {
        let mut cur: Option<SafeDir> = None;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad path"));
            };
            let next = match &cur {
                None => self.child(name)?,
                Some(d) => d.child(name)?,
            };
            match next {
                Some(d) => cur = Some(d),
                None => return Ok(None),
            }
        }
        match cur {
            Some(d) => Ok(Some(d)),
            None => self.child(OsStr::new(".")),
        }
    }

    /// Create `rel` (and its parents) below this directory. Fails if a step exists as
    /// anything but a real directory.
    pub fn create_dir_all(&self, rel: &Path) -> io::Result<SafeDir> {
        let mut cur = self
            .child(OsStr::new("."))?
            .expect("a directory opens itself");
        for c in rel.components() {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad path"));
            };
            match mkdirat(cur.fd.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(to_io(e)),
            }
            cur = cur.child(name)?.ok_or_else(|| {
                io::Error::other(format!(
                    "{} is not a directory (a symbolic link?); left alone",
                    cur.path.join(name).display()
                ))
            })?;
        }
        Ok(cur)
    }

    fn open_file(&self, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<Option<File>> {
        let name = plain_name(name)?;
        match openat(
            self.fd.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::ENOENT | Errno::ELOOP | Errno::EEXIST) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    /// The content of a regular file; `None` if it is missing or a link. The box may
    /// put anything under the name, even between our look and our open: the open does
    /// not block (a FIFO), the opened file must be regular, and a file larger than
    /// [`MAX_READ`] is an error rather than an allocation the box chose.
    pub fn read(&self, name: &OsStr) -> io::Result<Option<Vec<u8>>> {
        if self.kind(name) != Some(Kind::File) {
            return Ok(None);
        }
        let Some(f) = self.open_file(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0)? else {
            return Ok(None);
        };
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > MAX_READ {
            return Err(io::Error::other(format!(
                "{} is larger than {} MiB; not read",
                self.path.join(name).display(),
                MAX_READ >> 20
            )));
        }
        let mut buf = Vec::new();
        f.take(MAX_READ + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > MAX_READ {
            return Err(io::Error::other(format!(
                "{} grew past {} MiB while being read",
                self.path.join(name).display(),
                MAX_READ >> 20
            )));
        }
        Ok(Some(buf))
    }

    /// A regular file opened for reading (without following a link or blocking on a
    /// FIFO); `None` if it is missing or anything else.
    pub fn open_regular(&self, name: &OsStr) -> io::Result<Option<File>> {
        let Some(f) = self.open_file(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0)? else {
            return Ok(None);
        };
        Ok(f.metadata()?.is_file().then_some(f))
    }

    /// A new file to write; `None` if anything (even a dangling link) has the name.
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<Option<File>> {
        self.open_file(name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, mode)
    }

    /// Create a new file; `Ok(false)` if anything (even a dangling link) has the name.
    pub fn write_new(&self, name: &OsStr, contents: &[u8], mode: u32) -> io::Result<bool> {
        match self.open_file(name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, mode)? {
            Some(mut f) => {
                f.write_all(contents)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Append to a regular file; `Ok(false)` (and nothing written) if it is a link or
    /// missing.
    pub fn append(&self, name: &OsStr, contents: &[u8]) -> io::Result<bool> {
        if self.kind(name) != Some(Kind::File) {
            return Ok(false);
        }
        match self.open_file(name, OFlag::O_WRONLY | OFlag::O_APPEND, 0)? {
            Some(mut f) => {
                f.write_all(contents)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Replace `name` with new content atomically. A link at `name` is replaced itself;
    /// its target is never written.
    pub fn replace(&self, name: &OsStr, contents: &[u8], mode: u32) -> io::Result<()> {
        let name = plain_name(name)?;
        let mut tmp_name = OsString::from(".kanibako-tmp-");
        tmp_name.push(name);
        let _ = unlinkat(
            self.fd.as_fd(),
            tmp_name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        let mut f = self
            .open_file(
                &tmp_name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                mode,
            )?
            .ok_or_else(|| io::Error::other("temporary file is in the way"))?;
        f.write_all(contents)?;
        f.sync_all()?;
        nix::fcntl::renameat(self.fd.as_fd(), tmp_name.as_os_str(), self.fd.as_fd(), name)
            .map_err(to_io)
    }

    /// Rename an entry within this directory (a link is renamed itself).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (plain_name(from)?, plain_name(to)?);
        nix::fcntl::renameat(self.fd.as_fd(), from, self.fd.as_fd(), to).map_err(to_io)
    }

    /// Remove an entry: a directory with everything in it (links inside are unlinked,
    /// never followed), or a file or link.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let name = plain_name(name)?;
        match self.kind(name) {
            None => Ok(()),
            Some(Kind::Dir) => std::fs::remove_dir_all(self.fd_path().join(name)),
            Some(_) => unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(to_io),
        }
    }

    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let mut names: Vec<OsString> = std::fs::read_dir(self.fd_path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().join("home");
        let outside = t.path().join("outside");
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), "keep").unwrap();
        (t, home, outside)
    }

    #[test]
    fn links_are_never_followed() {
        let (_t, home, outside) = setup();
        symlink(&outside, home.join("dir")).unwrap();
        symlink(outside.join("precious"), home.join("file")).unwrap();
        let d = SafeDir::open(&home).unwrap();
        assert!(d.open_dir(Path::new("dir")).unwrap().is_none());
        assert!(d.create_dir_all(Path::new("dir/sub")).is_err());
        assert!(!d.append(OsStr::new("file"), b"x").unwrap());
        assert!(d.read(OsStr::new("file")).unwrap().is_none());
        assert!(!d.write_new(OsStr::new("file"), b"x", 0o644).unwrap());
        d.replace(OsStr::new("file"), b"new", 0o600).unwrap();
        assert_eq!(
            fs::read_to_string(outside.join("precious")).unwrap(),
            "keep"
        );
        assert_eq!(fs::read_to_string(home.join("file")).unwrap(), "new");
        d.remove(OsStr::new("dir")).unwrap();
        assert!(outside.join("precious").exists());
        assert!(!home.join("dir").exists());
    }

    #[test]
    fn removing_a_tree_unlinks_links_inside_it() {
        let (_t, home, outside) = setup();
        fs::create_dir_all(home.join("a/b")).unwrap();
        symlink(&outside, home.join("a/b/escape")).unwrap();
        let d = SafeDir::open(&home).unwrap();
        d.remove(OsStr::new("a")).unwrap();
        assert!(!home.join("a").exists());
        assert_eq!(
            fs::read_to_string(outside.join("precious")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn a_linked_root_is_refused() {
        let (t, _home, outside) = setup();
        let link = t.path().join("linkhome");
        symlink(&outside, &link).unwrap();
        assert!(SafeDir::open(&link).is_err());
    }

    #[test]
    fn names_must_be_plain() {
        let (_t, home, _) = setup();
        let d = SafeDir::open(&home).unwrap();
        assert!(d.write_new(OsStr::new("../x"), b"", 0o644).is_err());
        assert!(d.remove(OsStr::new("a/b")).is_err());
    }
}
