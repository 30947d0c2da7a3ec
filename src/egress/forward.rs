//! The in-box forwarder: a loopback TCP listener (what `HTTP(S)_PROXY` points at)
//! whose every connection is relayed, byte for byte, to the proxy's Unix socket
//! mounted from the host.
//!
//! It parses nothing and decides nothing: the policy lives on the host, out of the
//! box's reach. If the socket is missing or refuses (the host side is restarting), a
//! connection retries it for a short while, then closes; the box is never online
//! without the proxy.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::relay::{self, Mode};

#[derive(Clone, Debug)]
pub struct Forwarder {
    pub socket: PathBuf,
    /// How long one connection keeps retrying a missing or refusing socket.
    pub retry_for: Duration,
    /// Idle tunnels are closed on the host side; this only frees the box's threads.
    pub idle_timeout: Duration,
    /// Connections open at once (the host caps tunnels too; this bounds threads).
    pub max_connections: usize,
    pub relay: Mode,
}

impl Forwarder {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
            retry_for: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1024,
            relay: Mode::Splice,
        }
    }

    /// Connect to the proxy socket, retrying while it is absent or refusing.
    pub fn connect_upstream(&self) -> io::Result<UnixStream> {
        let deadline = Instant::now() + self.retry_for;
        let mut wait = Duration::from_millis(20);
        loop {
            match UnixStream::connect(&self.socket) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let transient = matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    );
                    if !transient || Instant::now() + wait > deadline {
                        return Err(e);
                    }
                    thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(250));
                }
            }
        }
    }

    /// Relay connections from `listener` until it fails.
    pub fn serve(&self, listener: &TcpListener) -> io::Error {
        let open = Arc::new(AtomicUsize::new(0));
        loop {
            let (client, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) => match e.raw_os_error() {
                    Some(nix::libc::EINTR | nix::libc::ECONNABORTED | nix::libc::EPROTO) => {
                        continue;
                    }
                    Some(nix::libc::EBADF | nix::libc::EINVAL | nix::libc::ENOTSOCK) => {
                        return e;
                    }
                    _ => {
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            if open.fetch_add(1, Ordering::SeqCst) >= self.max_connections {
                open.fetch_sub(1, Ordering::SeqCst);
                continue; // dropped: the client sees the connection close
            }
            let me = self.clone();
            let open2 = open.clone();
            let spawned = thread::Builder::new()
                .name("egress-forward".into())
                .stack_size(256 * 1024)
                .spawn(move || {
                    me.one(client);
                    open2.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn one(&self, client: TcpStream) {
        let _ = client.set_nodelay(true);
        match self.connect_upstream() {
            Ok(up) => {
                relay::relay(client, up, self.idle_timeout, self.relay);
            }
            Err(e) => {
                tracing::warn!("egress-forward: {}: {e}", self.socket.display());
            }
        }
    }
}

/// Bind `listen` and forward to `socket` forever (the `egress-forward` command).
pub fn run(listen: SocketAddr, socket: &Path) -> io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    Err(Forwarder::new(socket).serve(&listener))
}

/// Bind `listen`, then go on forwarding in a child of this process while this one
/// returns: whoever starts it knows the port is open once it returns (a box's entry
/// starts its command right after, and that command's first connection must not meet
/// a closed port).
#[allow(unsafe_code)]
pub fn run_detached(listen: SocketAddr, socket: &Path) -> io::Result<()> {
    use nix::unistd::{ForkResult, fork, setsid};
    let listener = TcpListener::bind(listen)?;
    // SAFETY: called from the single-threaded `_egress forward` command before any
    // thread exists; the child only serves (threads start after the fork).
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { .. } => Ok(()),
        ForkResult::Child => {
            let _ = setsid();
            let e = Forwarder::new(socket).serve(&listener);
            tracing::error!("egress-forward stopped: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    #[test]
    fn relays_to_the_socket_and_retries_until_it_appears() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("egress.sock");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let f = Forwarder::new(&sock);
        thread::spawn(move || f.serve(&listener));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"early bytes").unwrap();
        // the host side comes up after the client connected
        thread::sleep(Duration::from_millis(200));
        let ul = UnixListener::bind(&sock).unwrap();
        let (mut up, _) = ul.accept().unwrap();
        let mut buf = [0u8; 11];
        up.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"early bytes");
        up.write_all(b"answer").unwrap();
        drop(up);
        let mut r = Vec::new();
        c.read_to_end(&mut r).unwrap();
        assert_eq!(r, b"answer");
    }

    #[test]
    fn without_the_socket_a_connection_just_closes() {
        let d = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut f = Forwarder::new(&d.path().join("absent.sock"));
        f.retry_for = Duration::from_millis(200);
        thread::spawn(move || f.serve(&listener));
        let mut c = TcpStream::connect(addr).unwrap();
        let _ = c.write_all(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
        let mut r = Vec::new();
        let _ = c.read_to_end(&mut r);
        assert!(r.is_empty(), "nothing answers: {r:?}");
    }
}
