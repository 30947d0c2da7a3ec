//! Crash-safe file writes and advisory locks: the only module that creates config or
//! secret files and the only one that takes `flock`s.
//!
//! Writes go to a temporary file in the target's directory, are fsynced, then renamed
//! over the target, so a reader sees the old or the new content and never a torn file.
//! A target that is a symbolic link is refused: a box can plant links in directories it
//! shares with the host, and writing through one would let it pick a host file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The most kanibako reads of a file a box (or a repository) controls: more than any
/// config, env, instruction or token file, far less than an allocation worth fearing.
pub const MAX_READ: u64 = 16 << 20;

/// Mode for ordinary config files (the umask still applies).
pub const MODE_CONFIG: u32 = 0o644;
/// Mode for anything holding a secret: credentials, env files.
pub const MODE_SECRET: u32 = 0o600;
/// A record only kanibako reads (a change under way).
pub const MODE_PRIVATE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("refusing to write {0}: it is a symbolic link")]
    Symlink(PathBuf),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Why a file kanibako reads was not read.
fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} {why}; not read", path.display()),
    )
}

/// Read a settings file no bigger than `cap`, without blocking and only if it is a
/// regular file: `Ok(None)` when it is missing. With `follow: false` a symbolic link
/// at `path` is refused, not followed (the file may lie where a repository or a box
/// can put one). A FIFO, a device or a `/proc` file that never ends cannot hang or
/// exhaust a command: the open does not wait, the opened file must be regular, and
/// at most `cap` bytes are read.
pub fn read_settings(path: &Path, cap: u64, follow: bool) -> io::Result<Option<Vec<u8>>> {
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    if !follow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => read_capped(f, path, cap).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) && !follow => {
            Err(refused(path, "is a symbolic link"))
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ENAMETOOLONG) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is longer than the system allows (PATH_MAX)",
        )),
        Err(e) => Err(e),
    }
}

/// The content of an opened file that must be regular and at most `cap` bytes long.
pub fn read_capped(f: File, path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(refused(path, "is a directory"));
    }
    if !meta.is_file() {
        return Err(refused(path, "is not a regular file"));
    }
    let too_big = || refused(path, &format!("is larger than {} KiB", cap >> 10));
    if meta.len() > cap {
        return Err(too_big());
    }
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf).map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            refused(path, "has no data ready (not an ordinary file)")
        } else {
            e
        }
    })?;
    if buf.len() as u64 > cap {
        return Err(too_big());
    }
    Ok(buf)
}

/// Open the directory `name` inside the open directory `dir` without following a link
/// (`Ok(None)`: missing; a link is an `ELOOP` error, a non-directory `ENOTDIR`).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &Path) -> io::Result<Option<OwnedFd>> {
    use nix::fcntl::{OFlag, openat};
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    match openat(dir, name, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// Open a directory by path; its last component must not be a link.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty())
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// Read the settings file `name` inside the open directory `dir`, as [`read_settings`]
/// does, never following a link at `name`; `shown` names it in messages.
pub fn read_settings_at(
    dir: BorrowedFd<'_>,
    name: &Path,
    shown: &Path,
    cap: u64,
) -> io::Result<Option<Vec<u8>>> {
    use nix::fcntl::{OFlag, openat};
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, nix::sys::stat::Mode::empty()) {
        Ok(fd) => read_capped(File::from(fd), shown, cap).map(Some),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(nix::errno::Errno::ELOOP) => Err(refused(shown, "is a symbolic link")),
        Err(e) => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// How to name a path in a message: one reached through a held directory
/// (`/proc/self/fd/N/…`) is named by where that directory is.
pub fn shown(path: &Path) -> PathBuf {
    let mut parts = path.components();
    let head: PathBuf = parts.by_ref().take(4).collect();
    if !head.starts_with("/proc/self/fd") || head.components().count() != 4 {
        return path.to_owned();
    }
    match fs::read_link(&head) {
        Ok(dir) => dir.join(parts.as_path()),
        Err(_) => path.to_owned(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `path` itself (not what it points to) is a symbolic link.
pub fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Atomically replace `path` with `contents`, creating parent directories.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    if is_symlink(path) {
        return Err(FsError::Symlink(path.to_owned()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kanibako-tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io_err(path))?;
    tmp.write_all(contents).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| FsError::Io {
        path: path.to_owned(),
        source: e.error,
    })?;
    // Make the rename itself durable; failure here loses nothing already written.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive `flock` held until this value is dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    /// Unlink the file on release: it was made only for this lock (see
    /// [`try_lock_exclusive_transient`]).
    remove: bool,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlinked while still held (the file closes after this body), so a contender
        // that opened the old file sees it gone once it gets the lock, and retries.
        if self.remove {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl FileLock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor that holds the lock, for a forked child to close: its copy would
    /// keep the lock held after this process is gone.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    /// Replace the lock file's content while holding the lock (truncating only now, so a
    /// contender that lost the race never wipes the winner's record).
    pub fn write_record(&mut self, record: &str) -> io::Result<()> {
        self.file.set_len(0)?;
        use std::io::Seek;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.file.write_all(record.as_bytes())?;
        self.file.flush()
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// A contender retries this often when the file it locked was unlinked under it.
const LOCK_RETRIES: usize = 16;

/// Block until the exclusive lock on `path` is ours.
pub fn lock_exclusive(path: &Path) -> io::Result<FileLock> {
    for _ in 0..LOCK_RETRIES {
        let file = open_lock_file(path)?;
        file.lock()?;
        if still_at(&file, path) {
            return Ok(FileLock {
                file,
                path: path.to_owned(),
                remove: false,
            });
        }
    }
    Err(io::Error::other(format!(
        "{} keeps being replaced while it is locked",
        path.display()
    )))
}

/// Take the exclusive lock on `path` if nobody holds it; `Ok(None)` if somebody does.
pub fn try_lock_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
    try_lock(path, false)
}

/// As [`try_lock_exclusive`], for a check that must leave no trace: a lock file this
/// call creates is removed again on release (the Python tool takes a box's lock
/// file existing as a sign that its session is active).
pub fn try_lock_exclusive_transient(path: &Path) -> io::Result<Option<FileLock>> {
    try_lock(path, true)
}

fn try_lock(path: &Path, transient: bool) -> io::Result<Option<FileLock>> {
    for _ in 0..LOCK_RETRIES {
        let existed = fs::symlink_metadata(path).is_ok();
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) if still_at(&file, path) => {
                return Ok(Some(FileLock {
                    file,
                    path: path.to_owned(),
                    remove: transient && !existed,
                }));
            }
            Ok(()) => continue,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{} keeps being replaced while it is locked",
        path.display()
    )))
}

/// A file held open under a shared `flock`: readers of a cache entry hold one, so the
/// entry is not evicted from under them.
#[derive(Debug)]
pub struct SharedHold {
    _file: File,
    path: PathBuf,
}

impl SharedHold {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mark the file as used now (through the held descriptor: opening a binary that
    /// is running for writing would fail).
    pub fn touch(&self) {
        let _ = self._file.set_modified(std::time::SystemTime::now());
    }
}

/// Whether the open `file` is still what `path` names (not unlinked or replaced since
/// it was opened).
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino() && a.nlink() > 0,
        _ => false,
    }
}

fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Hold an existing file under a shared lock, unless someone holds it exclusively
/// (it is being evicted); `Ok(None)` then, or when the file is missing.
pub fn try_hold_shared(path: &Path) -> io::Result<Option<SharedHold>> {
    let file = match open_existing(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        // An evictor may have unlinked it between our open and our lock.
        Ok(()) if !still_at(&file, path) => Ok(None),
        Ok(()) => Ok(Some(SharedHold {
            _file: file,
            path: path.to_owned(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Remove `path` if nobody holds it (shared or exclusive); whether it was removed.
pub fn remove_if_unheld(path: &Path) -> bool {
    let Ok(file) = open_existing(path) else {
        return false;
    };
    if file.try_lock().is_err() || !still_at(&file, path) {
        return false;
    }
    fs::remove_file(path).is_ok()
}

/// Whether some process holds an exclusive lock on `path`. The file merely existing
/// means nothing: the lock dies with its holder, the file stays.
pub fn is_locked(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f.yaml");
        atomic_write(&p, b"one", MODE_CONFIG).unwrap();
        atomic_write(&p, b"two", MODE_SECRET).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    #[test]
    fn atomic_write_refuses_a_planted_symlink() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "host secret").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            atomic_write(&link, b"x", MODE_SECRET),
            Err(FsError::Symlink(_))
        ));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "host secret");
    }

    #[test]
    fn a_losing_contender_keeps_the_winners_record() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".kanibako.lock");
        let mut held = try_lock_exclusive(&p).unwrap().unwrap();
        held.write_record("kanibako-one\n").unwrap();
        assert!(is_locked(&p));
        assert!(try_lock_exclusive(&p).unwrap().is_none());
        assert_eq!(fs::read_to_string(&p).unwrap(), "kanibako-one\n");
        drop(held);
        assert!(!is_locked(&p), "a stale file blocks nothing");
        assert!(try_lock_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn a_transient_lock_leaves_no_file_but_keeps_one_it_found() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".kanibako.lock");
        let held = try_lock_exclusive_transient(&p).unwrap().unwrap();
        assert!(
            try_lock_exclusive(&p).unwrap().is_none(),
            "it excludes others"
        );
        drop(held);
        assert!(!p.exists(), "made for the check, removed after it");
        fs::write(&p, "kanibako-app\n").unwrap();
        drop(try_lock_exclusive_transient(&p).unwrap().unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "kanibako-app\n");
        // a contender holding the old, unlinked file does not count as holding the lock
        let first = try_lock_exclusive_transient(&d.path().join("x.lock"))
            .unwrap()
            .unwrap();
        let stale = File::open(d.path().join("x.lock")).unwrap();
        drop(first);
        assert!(stale.try_lock().is_ok());
        assert!(
            try_lock_exclusive(&d.path().join("x.lock"))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn lock_refuses_a_symlinked_lock_file() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("elsewhere");
        fs::write(&target, "keep").unwrap();
        let p = d.path().join("lock");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(try_lock_exclusive(&p).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    }
}
