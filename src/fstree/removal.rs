//! Deleting a tree from an open parent without following links: a link inside is
//! unlinked, never entered. Read-only directories (a Go module cache, a copy of one)
//! are made writable for their owner first, through a handle that cannot be a link.
//!
//! Files a rootless container created belong to sub-uids the user may not remove;
//! that surfaces as `PermissionDenied` for the caller to handle (podman's user
//! namespace can remove them).

use std::ffi::OsStr;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::MAX_DEPTH;
use super::dir::{Dir, Kind, to_io};

/// Remove `name` from `parent`, whatever it is; nothing there is not an error.
pub fn remove_entry(parent: &Dir, name: &OsStr) -> io::Result<()> {
    remove_at(parent, name, 0)
}

/// Remove everything inside `dir`, keeping `dir` itself.
pub fn empty_dir(dir: &Dir) -> io::Result<()> {
    for name in dir.entries()? {
        remove_at(dir, &name, 1)?;
    }
    Ok(())
}

fn remove_at(parent: &Dir, name: &OsStr, depth: usize) -> io::Result<()> {
    let Some(st) = parent.stat(name)? else {
        return Ok(());
    };
    if st.kind != Kind::Dir {
        return match parent.unlink(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    if depth >= MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{}: more than {MAX_DEPTH} directories deep; not removed",
            parent.path().join(name).display()
        )));
    }
    if st.mode & 0o700 != 0o700 {
        make_writable(parent, name, st.mode)?;
    }
    let Some(dir) = parent.open_dir(name)? else {
        // Replaced by a link or a file since the look: remove that instead.
        return remove_at(parent, name, depth);
    };
    for child in dir.entries()? {
        remove_at(&dir, &child, depth + 1)?;
    }
    drop(dir);
    match parent.rmdir(name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `chmod u+rwx` on the directory `name` of `parent`, through an `O_PATH` handle
/// opened without following (a handle on the directory itself, needing no read
/// permission), so a link swapped in meanwhile is never what gets changed.
fn make_writable(parent: &Dir, name: &OsStr, mode: u32) -> io::Result<()> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let fd = match openat(parent.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(to_io(e)),
    };
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        proc.as_str(),
        Mode::from_bits_truncate(mode | 0o700),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(to_io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn links_inside_are_unlinked_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "k").unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("a/ro")).unwrap();
        fs::write(tree.join("a/ro/f"), "x").unwrap();
        symlink(&outside, tree.join("a/out")).unwrap();
        fs::set_permissions(tree.join("a/ro"), fs::Permissions::from_mode(0o500)).unwrap();
        let parent = Dir::open(t.path()).unwrap();
        remove_entry(&parent, OsStr::new("tree")).unwrap();
        assert!(!tree.exists());
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "k");
        // a link as the entry itself is unlinked
        symlink(&outside, t.path().join("l")).unwrap();
        remove_entry(&parent, OsStr::new("l")).unwrap();
        assert!(outside.join("keep").exists());
        remove_entry(&parent, OsStr::new("missing")).unwrap();
    }

    #[test]
    fn emptying_keeps_the_directory() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("x/y")).unwrap();
        fs::write(t.path().join("z"), "z").unwrap();
        let d = Dir::open(t.path()).unwrap();
        empty_dir(&d).unwrap();
        assert!(t.path().is_dir());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
