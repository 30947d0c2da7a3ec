//! Who is on the other end of a hub socket: the peer's credentials (logged, never
//! trusted: container root is uid 0 on a rootful host, and keep-id makes the box user
//! the host user) and its PID namespace, checked against the namespace of the container
//! the socket belongs to.
//!
//! The namespace comes from `SO_PEERPIDFD` + `PIDFD_GET_PID_NAMESPACE` (Linux 6.5 and
//! 6.11), which name the process that connected even if its pid was reused since; on
//! older kernels from the `SO_PEERCRED` pid with a start-time recheck around the open.
//! A peer that has exited fails the check. The namespace may be a descendant of the
//! container's (a sandbox inside the box), so the check walks up with `NS_GET_PARENT`
//! a bounded number of levels.
//!
//! The only `unsafe` code of the hub is here: three raw calls the `nix` crate does not
//! wrap, each with its reasoning.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;

/// `SO_PEERPIDFD` (include/uapi/asm-generic/socket.h).
const SO_PEERPIDFD: nix::libc::c_int = 77;
/// `_IO(0xFF, 5)`: the pid namespace of the process a pidfd refers to.
const PIDFD_GET_PID_NAMESPACE: nix::libc::c_ulong = 0xFF05;
/// `_IO(0xB7, 0x2)`: the parent of a pid or user namespace.
const NS_GET_PARENT: nix::libc::c_ulong = 0xB702;
/// How many nested namespaces (sandboxes in the box) the walk climbs.
pub const MAX_NESTING: usize = 8;

/// `SO_PEERCRED`: what the kernel recorded at `connect`, in our namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

pub fn peer_cred(sock: &UnixStream) -> io::Result<PeerCred> {
    let c = nix::sys::socket::getsockopt(sock, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(PeerCred {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

/// A namespace, as `stat` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NsId {
    pub dev: u64,
    pub ino: u64,
}

fn ns_id(f: &impl AsFd) -> io::Result<NsId> {
    let st = nix::sys::stat::fstat(f)?;
    Ok(NsId {
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
/// Parsed after the last `)`, since the command name may hold spaces and parentheses.
pub fn parse_starttime(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn starttime(pid: i32) -> Option<u64> {
    parse_starttime(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A process we may compare peers against (a container's init): its pid and the start
/// time that tells it apart from a later process with the same pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub pid: i32,
    pub starttime: u64,
}

impl Anchor {
    pub fn of(pid: i32) -> Option<Self> {
        (pid > 0).then_some(())?;
        Some(Self {
            pid,
            starttime: starttime(pid)?,
        })
    }

    /// The anchor's pid namespace now, `None` when the process is gone or was replaced.
    pub fn pidns(&self) -> Option<NsId> {
        let meta = std::fs::metadata(format!("/proc/{}/ns/pid", self.pid)).ok()?;
        (starttime(self.pid) == Some(self.starttime)).then_some(NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// The result of the namespace check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The peer runs in the container's namespace (`depth` levels below it).
    Match { depth: usize },
    /// The peer runs elsewhere: a socket leaked into another container.
    Mismatch,
    /// The peer exited before it could be looked at.
    Gone,
    /// The kernel refused to show us the peer's namespace.
    Denied,
    /// This kernel cannot tell (no pidfd support and no readable `/proc`).
    Undetermined(String),
}

/// How the peer's namespace is found: the race-free pidfd calls, or `/proc` (forced in
/// tests, used on kernels before 6.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Pidfd,
    Proc,
}

#[allow(unsafe_code)]
fn peer_pidfd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut fd: nix::libc::c_int = -1;
    let mut len = std::mem::size_of::<nix::libc::c_int>() as nix::libc::socklen_t;
    // SAFETY: `fd` and `len` are valid for writes of the sizes given; the kernel writes
    // at most `len` bytes (one int) and updates `len`. The socket fd is borrowed and
    // outlives the call.
    let rc = unsafe {
        nix::libc::getsockopt(
            sock.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
    }
    // SAFETY: on success the kernel installed a new pidfd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An ioctl on a namespace-ish fd that returns a new namespace fd.
#[allow(unsafe_code)]
fn ns_ioctl(fd: &impl AsRawFd, request: nix::libc::c_ulong) -> Result<OwnedFd, Errno> {
    // SAFETY: both requests take no argument and only return a new file descriptor (or
    // fail); `fd` is borrowed and stays open for the duration of the call.
    let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), request as _, 0) };
    if rc < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a non-negative result is a fresh descriptor owned by us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// The pid in a pidfd's fdinfo (`-1` once the process has exited).
fn pidfd_pid(pidfd: &OwnedFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the process behind a pidfd is still alive (a pidfd polls readable on exit).
fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

enum Found {
    Ns(OwnedFd),
    Gone,
    /// The kernel would not let us look (a peer that made itself non-dumpable, where
    /// we lack CAP_SYS_PTRACE over it): never taken as "cannot tell".
    Denied,
    Unsupported(String),
}

fn denied(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

fn open_ns(pid: i32) -> io::Result<OwnedFd> {
    Ok(File::open(format!("/proc/{pid}/ns/pid"))?.into())
}

/// The peer's pid namespace, by pidfd where the kernel has it.
fn peer_ns(sock: &UnixStream, method: Method) -> Found {
    if method == Method::Pidfd {
        match peer_pidfd(sock) {
            Ok(pidfd) => {
                match ns_ioctl(&pidfd, PIDFD_GET_PID_NAMESPACE) {
                    Ok(ns) => return Found::Ns(ns),
                    Err(Errno::ESRCH) => return Found::Gone,
                    Err(Errno::EACCES | Errno::EPERM) => return Found::Denied,
                    // A kernel with SO_PEERPIDFD but before the namespace ioctl: the pidfd
                    // still pins the identity; open /proc and check the process lived on.
                    Err(_) => {}
                }
                let Some(pid) = pidfd_pid(&pidfd).filter(|p| *p > 0) else {
                    return Found::Gone;
                };
                return match open_ns(pid) {
                    Ok(ns) if pidfd_alive(&pidfd) => Found::Ns(ns),
                    Ok(_) => Found::Gone,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Gone,
                    Err(e) if denied(&e) => Found::Denied,
                    Err(e) => Found::Unsupported(format!("/proc/{pid}/ns/pid: {e}")),
                };
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Found::Gone,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOPROTOOPT) => {}
            Err(e) => return Found::Unsupported(format!("SO_PEERPIDFD: {e}")),
        }
    }
    // Older kernels: the pid SO_PEERCRED recorded, checked to be the same process
    // (same start time) before and after opening its namespace.
    let pid = match peer_cred(sock) {
        Ok(c) if c.pid > 0 => c.pid,
        Ok(_) => return Found::Gone,
        Err(e) => return Found::Unsupported(format!("SO_PEERCRED: {e}")),
    };
    let Some(before) = starttime(pid) else {
        return Found::Gone;
    };
    let ns = match open_ns(pid) {
        Ok(ns) => ns,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Found::Gone,
        Err(e) if denied(&e) => return Found::Denied,
        Err(e) => return Found::Unsupported(format!("/proc/{pid}/ns/pid: {e}")),
    };
    if starttime(pid) != Some(before) {
        return Found::Gone;
    }
    // A residual race on kernels before 6.5 only: if the peer exits between `connect`
    // and the first start-time read and its pid is reused at once, the new process is
    // judged instead. It passes only if it runs in this socket's own container, so a
    // leaked socket could slip through only with that timing; pidfds close the gap.
    Found::Ns(ns)
}

/// Walk from `ns` up to [`MAX_NESTING`] parents looking for `want`.
fn walk(mut ns: OwnedFd, want: NsId) -> Verdict {
    for depth in 0..=MAX_NESTING {
        match ns_id(&ns) {
            Ok(id) if id == want => return Verdict::Match { depth },
            Ok(_) => {}
            Err(e) => return Verdict::Undetermined(format!("fstat of a pid namespace: {e}")),
        }
        match ns_ioctl(&ns, NS_GET_PARENT) {
            Ok(parent) => ns = parent,
            // EPERM: the parent is outside our own namespace (or this is the top).
            Err(_) => return Verdict::Mismatch,
        }
    }
    Verdict::Mismatch
}

/// Whether the peer of `sock` runs in (or below) the pid namespace `want`.
pub fn check(sock: &UnixStream, want: NsId, method: Method) -> Verdict {
    match peer_ns(sock, method) {
        Found::Ns(ns) => walk(ns, want),
        Found::Gone => Verdict::Gone,
        Found::Denied => Verdict::Denied,
        Found::Unsupported(why) => Verdict::Undetermined(why),
    }
}

/// Our own pid namespace (for tests and for a hub whose members run on the host).
pub fn own_pidns() -> io::Result<NsId> {
    let meta = std::fs::metadata("/proc/self/ns/pid")?;
    Ok(NsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    #[allow(clippy::disallowed_methods)]
    fn command(program: &str) -> std::process::Command {
        std::process::Command::new(program)
    }

    fn have(program: &str) -> bool {
        command("sh")
            .args(["-c", &format!("command -v {program} >/dev/null")])
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn starttime_is_read_past_a_hostile_command_name() {
        let stat = "4242 (evil) 1 2 3) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_starttime(stat), Some(987_654));
        assert_eq!(parse_starttime("garbage"), None);
        assert_eq!(parse_starttime("1 (x) S"), None);
        assert!(starttime(std::process::id() as i32).is_some());
        let me = Anchor::of(std::process::id() as i32).unwrap();
        assert_eq!(me.pidns().unwrap(), own_pidns().unwrap());
        assert!(Anchor::of(0).is_none() && Anchor::of(-5).is_none());
        let stale = Anchor {
            starttime: me.starttime + 1,
            ..me
        };
        assert_eq!(stale.pidns(), None, "a reused pid is not the anchor");
    }

    #[test]
    fn a_peer_in_our_namespace_matches_by_both_methods_and_a_stranger_does_not() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mine = own_pidns().unwrap();
        let cred = peer_cred(&a).unwrap();
        assert_eq!(cred.pid, std::process::id() as i32);
        for m in [Method::Pidfd, Method::Proc] {
            assert_eq!(check(&a, mine, m), Verdict::Match { depth: 0 }, "{m:?}");
            let other = NsId {
                dev: mine.dev,
                ino: mine.ino + 12345,
            };
            assert_eq!(check(&a, other, m), Verdict::Mismatch, "{m:?}");
        }
    }

    /// A peer in a child pid namespace (a sandbox in the box) matches one level up; a
    /// peer that exited before the check is refused.
    #[test]
    fn nested_and_exited_peers() {
        if !have("socat") || !have("unshare") || !nix::unistd::geteuid().is_root() {
            println!("skipped: needs root, socat and unshare");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let mine = own_pidns().unwrap();
        let mut child = command("unshare")
            .args(["--pid", "--fork", "socat", "-u", "EXEC:sleep 2"])
            .arg(format!("UNIX-CONNECT:{}", path.display()))
            .spawn()
            .unwrap();
        let (s, _) = l.accept().unwrap();
        for m in [Method::Pidfd, Method::Proc] {
            assert_eq!(check(&s, mine, m), Verdict::Match { depth: 1 }, "{m:?}");
        }
        let ns = peer_ns(&s, Method::Pidfd);
        let Found::Ns(ns) = ns else { panic!() };
        assert_ne!(
            ns_id(&ns).unwrap(),
            mine,
            "the peer's own namespace is a child"
        );
        let _ = child.kill();
        let _ = child.wait();

        let mut quick = command("socat")
            .args(["-u", "OPEN:/dev/null"])
            .arg(format!("UNIX-CONNECT:{}", path.display()))
            .spawn()
            .unwrap();
        quick.wait().unwrap();
        let (s, _) = l.accept().unwrap();
        for m in [Method::Pidfd, Method::Proc] {
            assert_eq!(check(&s, mine, m), Verdict::Gone, "{m:?}");
        }
    }
}
