//! The start-up self-test a box under `allowlist` runs before its agent: proof that
//! its way out goes through kanibako's proxy and that it has no other.
//!
//! 1. A CONNECT to the reserved sentinel name must get the proxy's own 403 (marked by
//!    its header), which only kanibako's proxy gives.
//! 2. A direct TCP connection to a public address must fail at once as unreachable:
//!    the box has no network of its own (`--network=none`).
//!
//! A failure is reported, never repaired: the caller shows it and refuses to go on.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::client;
use super::policy::SENTINEL;

/// Public addresses a box must not reach directly (Cloudflare's resolver, both
/// families; any stable public address would do).
pub const PUBLIC_PROBES: [&str; 2] = ["1.1.1.1:443", "[2606:4700:4700::1111]:443"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Run every check against the forwarder at `proxy`.
pub fn run(proxy: SocketAddr, timeout: Duration) -> Vec<Check> {
    let mut out = vec![sentinel(proxy, timeout)];
    for p in PUBLIC_PROBES {
        if let Ok(addr) = p.parse() {
            out.push(direct(addr, timeout));
        }
    }
    out
}

pub fn passed(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.passed)
}

fn sentinel(proxy: SocketAddr, timeout: Duration) -> Check {
    let name = format!("the way out is kanibako's proxy ({proxy})");
    let (passed, detail) = match client::connect(proxy, SENTINEL, 443, timeout) {
        Ok(a) if a.status == 403 && a.mark.as_deref() == Some("sentinel") => {
            (true, format!("{SENTINEL} refused by the proxy"))
        }
        Ok(a) => (
            false,
            format!(
                "{SENTINEL} got {:?} (mark {:?}): something else answers",
                a.status_line, a.mark
            ),
        ),
        Err(e) => (false, format!("cannot reach the proxy: {e}")),
    };
    Check {
        name,
        passed,
        detail,
    }
}

/// A connect that failed for want of any route or address: `--network=none` gives
/// ENETUNREACH, and EADDRNOTAVAIL or EAFNOSUPPORT where IPv6 is off in the namespace.
fn unreachable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            nix::libc::ENETUNREACH
                | nix::libc::EHOSTUNREACH
                | nix::libc::EADDRNOTAVAIL
                | nix::libc::EAFNOSUPPORT
                | nix::libc::EACCES
                | nix::libc::EPERM
        )
    )
}

fn direct(addr: SocketAddr, timeout: Duration) -> Check {
    let name = format!("no direct route ({addr})");
    let (passed, detail) = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => (
            false,
            "connected directly: the box has a network of its own".into(),
        ),
        Err(e) if unreachable(&e) => (true, format!("refused at once: {e}")),
        Err(e) => (
            false,
            format!("no clear refusal ({e}): the box may have a route out"),
        ),
    };
    Check {
        name,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn fake_proxy(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut b = [0u8; 512];
                let _ = s.read(&mut b);
                let _ = s.write_all(answer);
            }
        });
        addr
    }

    #[test]
    fn only_kanibakos_own_refusal_of_the_sentinel_passes() {
        let t = Duration::from_secs(5);
        let ours = fake_proxy(b"HTTP/1.1 403 Forbidden\r\nX-Kanibako-Egress: sentinel\r\n\r\n");
        assert!(sentinel(ours, t).passed);
        // another proxy that refuses, or one that lets it through, is not ours
        let other = fake_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        assert!(!sentinel(other, t).passed);
        let open = fake_proxy(b"HTTP/1.1 200 Connection established\r\n\r\n");
        let c = sentinel(open, t);
        assert!(
            !c.passed && c.detail.contains("something else answers"),
            "{c:?}"
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap();
        drop(l);
        let c = sentinel(closed, t);
        assert!(
            !c.passed && c.detail.contains("cannot reach the proxy"),
            "{c:?}"
        );
    }

    #[test]
    fn a_direct_connection_that_works_fails_the_check() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = direct(l.local_addr().unwrap(), Duration::from_secs(5));
        assert!(!c.passed, "{c:?}");
        let e = io::Error::from_raw_os_error(nix::libc::ENETUNREACH);
        assert!(unreachable(&e));
        assert!(!unreachable(&io::Error::from_raw_os_error(
            nix::libc::ECONNREFUSED
        )));
        assert!(!unreachable(&io::Error::from(io::ErrorKind::TimedOut)));
    }
}
