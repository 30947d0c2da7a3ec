//! A box's runtime directory `<rt>` and what lives in it:
//!
//! ```text
//! <rt> = $XDG_RUNTIME_DIR/kanibako/b/<hash16>/   (else /run/user/<uid>/…, else $TMPDIR/kanibako-<uid>/b/<hash16>/)
//!   hub.json            the hub's config (0600), written by whoever starts the hub
//!   hub.lock            flock held by the supervisor for the hub's whole life; "pid N"
//!   hub.down            why the supervisor gave up, when it did
//!   m/director/hub.sock the director's socket; m/director/ is what its container mounts at /run/kanibako (ro)
//!   m/h<N>/hub.sock     helper N's
//! ```
//!
//! Every directory is created by us, 0700, and checked after creation to be a real
//! directory we own (the fallback under `/tmp` is a shared place where someone else
//! could have made it first). A member directory is never removed and re-made while
//! its container may have it mounted: a bind mount holds the inode.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::member::Member;
use crate::host::{HostEnv, vars};

/// Not in `host::vars`: only the runtime-directory fallback reads it.
const TMPDIR: &str = "TMPDIR";

pub const SOCKET: &str = "hub.sock";
pub const LOCK: &str = "hub.lock";
pub const CONFIG: &str = "hub.json";
pub const DOWN: &str = "hub.down";

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum RundirError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{0} is not a private directory of this user (a link, another owner, or open to others)"
    )]
    NotPrivate(PathBuf),
    #[error("the socket path {0} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket allows")]
    TooLong(PathBuf),
}

impl RundirError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RundirError::NotPrivate(p) => Some(format!(
                "remove {} (or set XDG_RUNTIME_DIR to a private directory) and try again",
                p.display()
            )),
            RundirError::TooLong(_) => {
                Some("set XDG_RUNTIME_DIR (or TMPDIR) to a shorter directory".into())
            }
            RundirError::Io { .. } => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RundirError + '_ {
    move |source| RundirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Make `dir` (its parent must exist) or accept it if it exists, then insist it is a
/// real directory owned by `uid` with no access for others.
pub fn private_dir(dir: &Path, uid: u32) -> Result<(), RundirError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if !meta.file_type().is_dir() || meta.uid() != uid {
        return Err(RundirError::NotPrivate(dir.to_owned()));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

fn usable_base(p: &Path, uid: u32) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid)
}

/// The runtime directory of the box with project hash `hash` (created, with its parents).
pub fn for_box(host: &HostEnv, hash: &str) -> Result<PathBuf, RundirError> {
    let short = &hash[..hash.len().min(16)];
    let xdg = host
        .var(vars::XDG_RUNTIME_DIR)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let run_user = PathBuf::from(format!("/run/user/{}", host.uid));
    let base = xdg
        .into_iter()
        .chain([run_user])
        .find(|p| usable_base(p, host.uid));
    let b = match base {
        Some(base) => {
            let k = base.join("kanibako");
            private_dir(&k, host.uid)?;
            k.join("b")
        }
        None => {
            let tmp = host
                .var(TMPDIR)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            let k = tmp.join(format!("kanibako-{}", host.uid));
            private_dir(&k, host.uid)?;
            k.join("b")
        }
    };
    private_dir(&b, host.uid)?;
    let rt = b.join(short);
    private_dir(&rt, host.uid)?;
    Ok(rt)
}

/// The runtime directory of box `hash` if one exists where [`for_box`] would make it
/// (a private directory of ours), without making anything: for `stop` and `ps`.
pub fn find_for(host: &HostEnv, hash: &str) -> Option<PathBuf> {
    let short = &hash[..hash.len().min(16)];
    let tmp = host
        .var(TMPDIR)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let xdg = host
        .var(vars::XDG_RUNTIME_DIR)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg
        .into_iter()
        .chain([PathBuf::from(format!("/run/user/{}", host.uid))])
        .find(|p| usable_base(p, host.uid))
        .map(|b| b.join("kanibako"))
        .unwrap_or_else(|| tmp.join(format!("kanibako-{}", host.uid)));
    let rt = base.join("b").join(short);
    fs::symlink_metadata(&rt)
        .is_ok_and(|m| m.file_type().is_dir() && m.uid() == host.uid && m.mode() & 0o077 == 0)
        .then_some(rt)
}

pub fn members_dir(rt: &Path) -> PathBuf {
    rt.join("m")
}

pub fn member_dir(rt: &Path, m: Member) -> PathBuf {
    members_dir(rt).join(m.dir_name())
}

pub fn socket_path(rt: &Path, m: Member, name: &str) -> Result<PathBuf, RundirError> {
    let p = member_dir(rt, m).join(name);
    if p.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(RundirError::TooLong(p));
    }
    Ok(p)
}

/// Who owns member directories: the box user's host uid when that is not us (docker
/// run as root with the box at uid 1000), else ourselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Create `<rt>/m/<member>/` (0700) if missing; an existing one is kept as it is (its
/// container may have it mounted).
pub fn ensure_member(rt: &Path, m: Member, owner: Option<Owner>) -> Result<PathBuf, RundirError> {
    let uid = nix::unistd::geteuid().as_raw();
    private_dir(rt, uid)?;
    private_dir(&members_dir(rt), uid)?;
    let dir = member_dir(rt, m);
    let want = owner.map_or(uid, |o| o.uid);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {
            if let Some(o) = owner.filter(|o| o.uid != uid) {
                std::os::unix::fs::lchown(&dir, Some(o.uid), Some(o.gid)).map_err(io_err(&dir))?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(&dir)(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(io_err(&dir))?;
    if !meta.file_type().is_dir() || meta.uid() != want || meta.mode() & 0o077 != 0 {
        return Err(RundirError::NotPrivate(dir));
    }
    Ok(dir)
}

/// Remove a member's directory and everything in it (after its container is gone).
pub fn remove_member(rt: &Path, m: Member) -> io::Result<()> {
    match fs::remove_dir_all(member_dir(rt, m)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove the whole runtime directory (std's removal does not follow links).
pub fn remove_all(rt: &Path) -> io::Result<()> {
    match fs::remove_dir_all(rt) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The members whose directories exist (to tidy up after a crash).
pub fn existing_members(rt: &Path) -> Vec<Member> {
    let Ok(entries) = fs::read_dir(members_dir(rt)) else {
        return Vec::new();
    };
    let mut out: Vec<Member> = entries
        .flatten()
        .filter_map(|e| Member::from_dir_name(&e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn host(vars: &[(&str, &str)]) -> HostEnv {
        let mut h = HostEnv::for_test(Path::new("/"), vars);
        h.uid = me();
        h
    }

    #[test]
    fn the_runtime_dir_lives_under_xdg_or_a_checked_tmp_fallback() {
        let d = tempfile::tempdir().unwrap();
        let xdg = d.path().join("xdg");
        fs::create_dir(&xdg).unwrap();
        let h = host(&[("XDG_RUNTIME_DIR", xdg.to_str().unwrap())]);
        let rt = for_box(&h, "0123456789abcdef0123").unwrap();
        assert_eq!(rt, xdg.join("kanibako/b/0123456789abcdef"));
        for p in [&rt, &xdg.join("kanibako"), &xdg.join("kanibako/b")] {
            assert_eq!(fs::metadata(p).unwrap().mode() & 0o777, 0o700);
        }
        // no usable runtime dir: the tmp fallback, refused when someone planted a link
        let tmp = d.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let mut h = host(&[("TMPDIR", tmp.to_str().unwrap())]);
        h.uid = me() + 7_000_000;
        std::os::unix::fs::symlink(d.path(), tmp.join(format!("kanibako-{}", h.uid))).unwrap();
        let err = for_box(&h, "ab").unwrap_err();
        assert!(matches!(err, RundirError::NotPrivate(_)), "{err}");
    }

    #[test]
    fn member_dirs_are_private_kept_and_removable() {
        let d = tempfile::tempdir().unwrap();
        let rt = d.path().join("rt");
        let dir = ensure_member(&rt, Member::Director, None).unwrap();
        assert_eq!(dir, rt.join("m/director"));
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let ino = fs::metadata(&dir).unwrap().ino();
        fs::write(dir.join("keep"), "x").unwrap();
        ensure_member(&rt, Member::Director, None).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().ino(), ino, "never re-made");
        assert!(dir.join("keep").exists());
        ensure_member(&rt, Member::Helper(3), None).unwrap();
        assert_eq!(
            existing_members(&rt),
            vec![Member::Director, Member::Helper(3)]
        );
        remove_member(&rt, Member::Helper(3)).unwrap();
        remove_member(&rt, Member::Helper(3)).unwrap();
        assert_eq!(existing_members(&rt), vec![Member::Director]);
        // a link planted where a member dir goes is refused
        std::os::unix::fs::symlink(d.path(), rt.join("m/h4")).unwrap();
        assert!(ensure_member(&rt, Member::Helper(4), None).is_err());
        remove_all(&rt).unwrap();
        assert!(
            !rt.exists() && d.path().exists(),
            "the link was not followed"
        );
    }

    #[test]
    fn socket_paths_must_fit_sun_path() {
        let rt = PathBuf::from(format!("/{}", "x".repeat(100)));
        assert!(matches!(
            socket_path(&rt, Member::Director, SOCKET),
            Err(RundirError::TooLong(_))
        ));
        let rt = PathBuf::from("/run/user/1000/kanibako/b/0123456789abcdef");
        let p = socket_path(&rt, Member::Helper(4_000_000_000), SOCKET).unwrap();
        assert!(p.as_os_str().len() <= MAX_SOCKET_PATH);
    }
}
