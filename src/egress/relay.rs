//! Moving bytes both ways between two connected sockets until both sides are done:
//! the tunnel body of the proxy and the whole of the in-box forwarder.
//!
//! One thread per direction. Bytes move with `splice(2)` through a pipe (no copy into
//! user space) and fall back to `read`/`write` where a socket cannot splice. An end of
//! stream is passed on as a half-close, so request/response protocols finish cleanly;
//! a tunnel with no bytes either way for the idle time is torn down.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{SpliceFFlags, splice};

/// A connected stream socket the relay can drive.
pub trait Stream: AsFd + Read + Write + Send + Sized + 'static {
    fn try_clone_stream(&self) -> io::Result<Self>;
    fn shutdown_stream(&self, how: Shutdown) -> io::Result<()>;
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_stream(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

impl Stream for UnixStream {
    fn try_clone_stream(&self) -> io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_stream(&self, how: Shutdown) -> io::Result<()> {
        self.shutdown(how)
    }
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

/// How bytes are moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `splice(2)` through a pipe, falling back to copying where unsupported.
    Splice,
    /// `read`/`write` through a user-space buffer.
    Copy,
}

/// Bytes moved each way: `up` from the first stream to the second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub up: u64,
    pub down: u64,
}

const CHUNK: usize = 1 << 20;
const COPY_BUF: usize = 256 * 1024;
const STACK: usize = 256 * 1024;

struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Relay between `a` and `b` until both directions have ended, or until nothing has
/// moved for `idle`. Returns the bytes moved each way.
pub fn relay<A: Stream, B: Stream>(a: A, b: B, idle: Duration, mode: Mode) -> Counts {
    relay_inner(a, b, idle, mode, false)
}

/// As [`relay`], but the whole connection ends when `b` ends its side: for one plain
/// HTTP exchange, where the origin closing means the answer is complete and a client
/// keeping its side open would only hold a tunnel slot.
pub fn relay_until_b_ends<A: Stream, B: Stream>(a: A, b: B, idle: Duration, mode: Mode) -> Counts {
    relay_inner(a, b, idle, mode, true)
}

fn relay_inner<A: Stream, B: Stream>(
    mut a: A,
    mut b: B,
    idle: Duration,
    mode: Mode,
    b_ends_all: bool,
) -> Counts {
    let tick = (idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(30));
    let act = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let clones = a
        .try_clone_stream()
        .and_then(|a2| Ok((a2, b.try_clone_stream()?)));
    let setup = a.set_timeouts(Some(tick)).and(b.set_timeouts(Some(tick)));
    let (a2, b2) = match (clones, setup) {
        (Ok(c), Ok(())) => c,
        _ => {
            let _ = a.shutdown_stream(Shutdown::Both);
            let _ = b.shutdown_stream(Shutdown::Both);
            return Counts::default();
        }
    };
    let act2 = act.clone();
    let down = thread::Builder::new()
        .name("egress-relay".into())
        .stack_size(STACK)
        .spawn(move || {
            let (mut b2, mut a2) = (b2, a2);
            let n = pump(&mut b2, &mut a2, &act2, idle, mode);
            if b_ends_all {
                let _ = a2.shutdown_stream(Shutdown::Both);
                let _ = b2.shutdown_stream(Shutdown::Both);
            }
            n
        });
    let down = match down {
        Ok(h) => h,
        Err(_) => {
            let _ = a.shutdown_stream(Shutdown::Both);
            let _ = b.shutdown_stream(Shutdown::Both);
            return Counts::default();
        }
    };
    let up = pump(&mut a, &mut b, &act, idle, mode);
    let down = down.join().unwrap_or(0);
    Counts { up, down }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a timed-out wait means: keep going, or the tunnel is idle and torn down.
fn idle_out<S: Stream, D: Stream>(src: &S, dst: &D, act: &Activity, idle: Duration) -> bool {
    if act.idle_for() >= idle {
        let _ = src.shutdown_stream(Shutdown::Both);
        let _ = dst.shutdown_stream(Shutdown::Both);
        return true;
    }
    false
}

/// One direction: `src` to `dst`. Returns the bytes moved.
fn pump<S: Stream, D: Stream>(
    src: &mut S,
    dst: &mut D,
    act: &Activity,
    idle: Duration,
    mode: Mode,
) -> u64 {
    let mut total = 0;
    let end = if mode == Mode::Splice {
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(pipe) => splice_pump(&*src, &*dst, &pipe, act, idle, &mut total),
            Err(_) => End::Unsupported,
        }
    } else {
        End::Unsupported
    };
    if end == End::Unsupported {
        copy_pump(src, dst, act, idle, &mut total);
    }
    // pass the end on (or, after an error, at least stop the other side's writes)
    let _ = dst.shutdown_stream(Shutdown::Write);
    let _ = src.shutdown_stream(Shutdown::Read);
    total
}

#[derive(PartialEq, Eq)]
enum End {
    Done,
    /// Splicing is not possible here and nothing has moved yet.
    Unsupported,
}

fn splice_pump<S: Stream, D: Stream>(
    src: &S,
    dst: &D,
    (pipe_r, pipe_w): &(OwnedFd, OwnedFd),
    act: &Activity,
    idle: Duration,
    total: &mut u64,
) -> End {
    let flags = SpliceFFlags::SPLICE_F_MOVE;
    let mut first = true;
    loop {
        let n = match splice(src.as_fd(), None, pipe_w, None, CHUNK, flags) {
            Ok(0) => return End::Done,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => {
                if idle_out(src, dst, act, idle) {
                    return End::Done;
                }
                continue;
            }
            Err(Errno::EINVAL) if first => return End::Unsupported,
            Err(_) => return End::Done,
        };
        first = false;
        act.touch();
        let mut left = n;
        while left > 0 {
            match splice(pipe_r, None, dst.as_fd(), None, left, flags) {
                Ok(0) => return End::Done,
                Ok(m) => {
                    left -= m;
                    *total += m as u64;
                    act.touch();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if idle_out(src, dst, act, idle) {
                        return End::Done;
                    }
                }
                Err(_) => return End::Done,
            }
        }
    }
}

fn copy_pump<S: Stream, D: Stream>(
    src: &mut S,
    dst: &mut D,
    act: &Activity,
    idle: Duration,
    total: &mut u64,
) {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                if idle_out(src, dst, act, idle) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        act.touch();
        let mut at = 0;
        while at < n {
            match dst.write(&buf[at..n]) {
                Ok(0) => return,
                Ok(m) => {
                    at += m;
                    *total += m as u64;
                    act.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if idle_out(src, dst, act, idle) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn pair_through_relay(
        mode: Mode,
        idle: Duration,
    ) -> (UnixStream, UnixStream, thread::JoinHandle<Counts>) {
        let (outer_a, inner_a) = UnixStream::pair().unwrap();
        let (inner_b, outer_b) = UnixStream::pair().unwrap();
        let h = thread::spawn(move || relay(inner_a, inner_b, idle, mode));
        (outer_a, outer_b, h)
    }

    #[test]
    fn bytes_both_ways_and_half_close_in_both_modes() {
        for mode in [Mode::Splice, Mode::Copy] {
            let (mut a, mut b, h) = pair_through_relay(mode, Duration::from_secs(30));
            let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            let big2 = big.clone();
            let mut a2 = a.try_clone().unwrap();
            let writer = thread::spawn(move || {
                a2.write_all(&big2).unwrap();
                a2.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            assert!(got == big, "{mode:?}: payload intact");
            writer.join().unwrap();
            // the other way still works after one side ended
            b.write_all(b"reply").unwrap();
            b.shutdown(Shutdown::Write).unwrap();
            let mut r = Vec::new();
            a.read_to_end(&mut r).unwrap();
            assert_eq!(r, b"reply");
            let c = h.join().unwrap();
            assert_eq!(
                c,
                Counts {
                    up: big.len() as u64,
                    down: 5
                },
                "{mode:?}"
            );
        }
    }

    #[test]
    fn mixed_socket_kinds_splice() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut tcp_client = TcpStream::connect(addr).unwrap();
        let (tcp_server, _) = l.accept().unwrap();
        let (mut ux, inner) = UnixStream::pair().unwrap();
        let h =
            thread::spawn(move || relay(inner, tcp_server, Duration::from_secs(30), Mode::Splice));
        ux.write_all(b"hello over tcp").unwrap();
        let mut buf = [0u8; 14];
        tcp_client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello over tcp");
        tcp_client.write_all(b"back").unwrap();
        drop(tcp_client);
        let mut r = Vec::new();
        ux.read_to_end(&mut r).unwrap();
        assert_eq!(r, b"back");
        drop(ux);
        let c = h.join().unwrap();
        assert_eq!(c, Counts { up: 14, down: 4 });
    }

    #[test]
    fn an_idle_tunnel_is_torn_down() {
        for mode in [Mode::Splice, Mode::Copy] {
            let (mut a, _b, h) = pair_through_relay(mode, Duration::from_millis(200));
            let t = Instant::now();
            let mut buf = [0u8; 1];
            assert_eq!(a.read(&mut buf).unwrap(), 0, "EOF after idle");
            assert!(t.elapsed() < Duration::from_secs(5));
            h.join().unwrap();
        }
    }

    #[test]
    fn activity_keeps_a_tunnel_open() {
        let (mut a, mut b, h) = pair_through_relay(Mode::Splice, Duration::from_millis(300));
        for _ in 0..8 {
            a.write_all(b"x").unwrap();
            let mut buf = [0u8; 1];
            b.read_exact(&mut buf).unwrap();
            thread::sleep(Duration::from_millis(100));
        }
        drop(a);
        drop(b);
        assert_eq!(h.join().unwrap().up, 8);
    }
}
