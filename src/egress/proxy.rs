//! The host-side egress proxy: it serves one Unix socket per box member, reads a
//! request head, decides by name before any DNS, resolves only allowed names, refuses
//! non-public addresses, connects to the checked address and relays bytes, logging
//! every decision.
//!
//! Threads, not async: a connection costs two threads (one per direction) whose
//! stacks are small, the tunnel cap bounds them, and `splice(2)` on blocking sockets
//! needs no reactor. Nothing a client sends can panic the accept loop; a panic in one
//! connection's thread ends that connection only. The process must ignore SIGPIPE
//! ([`super::ignore_sigpipe`]).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use super::addr;
use super::head::{self, MAX_HEAD, Scanner};
use super::journal::{Journal, Record};
use super::name::{self, Host};
use super::policy::{Policy, Reason};
use super::relay::{self, Mode};
use super::resolve::Resolver;
use crate::clock;

/// The proxy's limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once across all of a box's members; beyond it: 429.
    pub max_tunnels: usize,
    /// The whole request head must arrive within this.
    pub head_timeout: Duration,
    pub connect_timeout: Duration,
    /// A tunnel with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    pub relay: Mode,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tunnels: 256,
            head_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            relay: Mode::Splice,
        }
    }
}

/// The header that marks an answer as kanibako's own (the self-test looks for it).
pub const MARK_HEADER: &str = "X-Kanibako-Egress";

const STACK: usize = 256 * 1024;

struct Shared {
    policy: RwLock<Arc<Policy>>,
    resolver: Arc<dyn Resolver>,
    journal: Journal,
    limits: Limits,
    active: AtomicUsize,
}

/// A box's proxy: one policy, one journal, one tunnel budget, any number of member
/// sockets. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn new(
        policy: Policy,
        resolver: Arc<dyn Resolver>,
        journal: Journal,
        limits: Limits,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy: RwLock::new(Arc::new(policy)),
                resolver,
                journal,
                limits,
                active: AtomicUsize::new(0),
            }),
        }
    }

    /// Replace the policy; connections from now on are decided by it.
    pub fn set_policy(&self, policy: Policy) {
        if let Ok(mut p) = self.shared.policy.write() {
            *p = Arc::new(policy);
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.shared
            .policy
            .read()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// Connections open now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Serve `listener` for `member` on a new thread.
    pub fn spawn(
        &self,
        listener: UnixListener,
        member: &str,
    ) -> io::Result<thread::JoinHandle<()>> {
        let me = self.clone();
        let member = member.to_owned();
        thread::Builder::new()
            .name(format!("egress-{member}"))
            .spawn(move || {
                let e = me.serve(&listener, &member);
                tracing::error!("egress listener for {member} stopped: {e}");
            })
    }

    /// Accept connections for `member` until the listener itself fails (a closed or
    /// invalid socket); transient failures (out of descriptors) are waited out.
    pub fn serve(&self, listener: &UnixListener, member: &str) -> io::Error {
        let member: Arc<str> = Arc::from(member);
        loop {
            match listener.accept() {
                Ok((stream, _)) => self.dispatch(stream, &member),
                Err(e) => match e.raw_os_error() {
                    Some(nix::libc::EINTR | nix::libc::ECONNABORTED | nix::libc::EPROTO) => {}
                    Some(nix::libc::EBADF | nix::libc::EINVAL | nix::libc::ENOTSOCK) => {
                        return e;
                    }
                    _ => {
                        tracing::warn!("egress accept for {member}: {e}");
                        thread::sleep(Duration::from_millis(100));
                    }
                },
            }
        }
    }

    /// Serve one connection on this thread (a host that accepts for the proxy itself,
    /// the helper hub, after its own identity check): the same budget, decision and
    /// journal as [`Proxy::serve`].
    pub fn serve_here(&self, stream: UnixStream, member: &str) {
        let s = &self.shared;
        if s.active.fetch_add(1, Ordering::SeqCst) >= s.limits.max_tunnels {
            s.active.fetch_sub(1, Ordering::SeqCst);
            too_busy(s, stream, member);
            return;
        }
        let guard = Active(self.shared.clone());
        handle(&guard.0, stream, member);
    }

    /// The most connections open at once.
    pub fn max_tunnels(&self) -> usize {
        self.shared.limits.max_tunnels
    }

    fn dispatch(&self, stream: UnixStream, member: &Arc<str>) {
        let s = &self.shared;
        if s.active.fetch_add(1, Ordering::SeqCst) >= s.limits.max_tunnels {
            s.active.fetch_sub(1, Ordering::SeqCst);
            too_busy(s, stream, member);
            return;
        }
        let guard = Active(self.shared.clone());
        let member = member.clone();
        let spawned = thread::Builder::new()
            .name("egress-conn".into())
            .stack_size(STACK)
            .spawn(move || {
                let g = guard;
                let done = catch_unwind(AssertUnwindSafe(|| handle(&g.0, stream, &member)));
                if done.is_err() {
                    tracing::error!("egress connection for {member} panicked");
                }
            });
        if let Err(e) = spawned {
            // the closure, the guard and the stream are dropped: the client sees EOF
            tracing::warn!("egress: cannot start a connection thread: {e}");
        }
    }
}

/// Counts a connection as open until dropped (also when its thread unwinds).
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Create the listening socket at `path`: a stale socket there (a previous proxy's) is
/// replaced, anything else is refused. Mode 0600, owned by `owner` when given (the box
/// user's host uid, so the box can connect with no capability at all).
pub fn bind(path: &Path, owner: Option<(u32, u32)>) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    Ok(l)
}

fn phrase(status: u16) -> &'static str {
    match status {
        200 => "Connection established",
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

fn response(status: u16, code: &str, message: &str) -> Vec<u8> {
    let body = format!("kanibako egress: {message}\n");
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{MARK_HEADER}: {code}\r\n\r\n{body}",
        phrase(status),
        body.len()
    )
    .into_bytes()
}

fn too_busy(s: &Shared, mut stream: UnixStream, member: &str) {
    let _ = stream.set_nonblocking(true);
    let msg = format!(
        "too many connections at once (the box may have {})",
        s.limits.max_tunnels
    );
    let _ = stream.write_all(&response(429, "too_many_tunnels", &msg));
    let _ = stream.shutdown(Shutdown::Both);
    s.journal.write(&Record {
        time: clock::now_iso(),
        member: member.to_owned(),
        decision: "error".into(),
        reason: "too_many_tunnels".into(),
        status: 429,
        ..Default::default()
    });
}

/// One connection, start to end; writes its journal record.
fn handle(s: &Shared, mut client: UnixStream, member: &str) {
    let started = Instant::now();
    let mut rec = Record {
        time: clock::now_iso(),
        member: member.to_owned(),
        ..Default::default()
    };
    // a client that stops reading must not hold this thread on a refusal forever
    let _ = client.set_write_timeout(Some(s.limits.head_timeout));
    if let Err(refusal) = open(s, &mut client, &mut rec) {
        rec.decision = refusal.decision.into();
        rec.reason = refusal.code.into();
        if let Some(status) = refusal.status {
            rec.status = status;
            let _ = client.write_all(&response(status, refusal.code, &refusal.message));
        }
        let _ = client.shutdown(Shutdown::Both);
    }
    rec.ms = started.elapsed().as_millis() as u64;
    s.journal.write(&rec);
}

struct Refusal {
    /// None: the client went away; nothing to answer.
    status: Option<u16>,
    decision: &'static str,
    code: &'static str,
    message: String,
}

fn refuse(status: u16, decision: &'static str, code: &'static str, message: String) -> Refusal {
    Refusal {
        status: Some(status),
        decision,
        code,
        message,
    }
}

/// Read the head (within the deadline and the size cap).
fn read_head(s: &Shared, client: &mut UnixStream) -> Result<(Vec<u8>, usize), Refusal> {
    let deadline = Instant::now() + s.limits.head_timeout;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut scanner = Scanner::default();
    loop {
        if let Some(end) = scanner.end(&buf) {
            return Ok((buf, end));
        }
        if buf.len() >= MAX_HEAD {
            return Err(refuse(
                431,
                "error",
                "header_too_large",
                format!("the request head is over {MAX_HEAD} bytes"),
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = || {
            refuse(
                408,
                "error",
                "header_timeout",
                "the request head did not arrive in time".into(),
            )
        };
        if left.is_zero() {
            return Err(timeout());
        }
        let _ = client.set_read_timeout(Some(left));
        let want = (MAX_HEAD - buf.len()).min(chunk.len());
        match client.read(&mut chunk[..want]) {
            Ok(0) => {
                return Err(Refusal {
                    status: None,
                    decision: "error",
                    code: "closed",
                    message: String::new(),
                });
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timeout());
            }
            Err(_) => {
                return Err(Refusal {
                    status: None,
                    decision: "error",
                    code: "closed",
                    message: String::new(),
                });
            }
        }
    }
}

fn explain(reason: Reason, host: &Host, port: u16, rule: Option<&str>) -> String {
    match reason {
        Reason::NoRule => format!("{host}:{port} is not allowed (no rule in box.allow names it)"),
        Reason::IpLiteral => {
            format!("{host}:{port} is an IP address, allowed only when a rule names that IP:port")
        }
        Reason::Denied => format!(
            "{host}:{port} is denied by the rule {}",
            rule.unwrap_or("?")
        ),
        Reason::Sentinel => format!("{host} is the self-test name, always refused"),
        Reason::Rule | Reason::Learn => format!("{host}:{port}"),
    }
}

/// Decide, resolve, connect and relay. `Err` is a refusal to answer.
fn open(s: &Shared, client: &mut UnixStream, rec: &mut Record) -> Result<(), Refusal> {
    let (buf, end) = read_head(s, client)?;
    let req = head::parse(&buf[..end])
        .map_err(|why| refuse(400, "error", "bad_request", why.to_owned()))?;
    rec.method = req.method.clone();
    rec.host = req.host.clone();
    rec.port = req.port;
    let host = name::parse_host(&req.host)
        .map_err(|e| refuse(400, "error", "bad_name", format!("{:?}: {e}", req.host)))?;
    rec.host = host.to_string();
    let port = req.port;

    let policy = s.policy.read().map(|p| p.clone()).unwrap_or_default();
    let decision = policy.decide(&host, port);
    rec.rule = decision.rule.clone();
    let Some(private_ok) = decision.allowed else {
        let msg = explain(decision.reason, &host, port, decision.rule.as_deref());
        return Err(refuse(403, "deny", decision.reason.code(), msg));
    };
    let verdict = if decision.reason == Reason::Learn {
        "learn"
    } else {
        "allow"
    };

    // only now, for an allowed name, is DNS asked
    let addrs: Vec<IpAddr> = match &host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(n) => s.resolver.resolve(n, port).map_err(|e| {
            refuse(
                502,
                "error",
                "resolve_failed",
                format!("cannot resolve {n}: {e}"),
            )
        })?,
    };
    let usable: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|ip| {
            let c = addr::classify(*ip);
            c.is_public() || (private_ok && c.allowed_with_private_opt_in())
        })
        .collect();
    if usable.is_empty() {
        let Some(first) = addrs.first() else {
            return Err(refuse(
                502,
                "error",
                "resolve_failed",
                format!("{host} has no address"),
            ));
        };
        rec.addr = Some(first.to_string());
        let class = addr::classify(*first).name();
        return Err(refuse(
            403,
            "deny",
            "non_public",
            format!(
                "{host} resolves to {first}, a {class} address (a rule in allow_private may reach it)"
            ),
        ));
    }

    let mut upstream = connect(&usable, port, s.limits.connect_timeout, rec)?;
    rec.decision = verdict.into();
    rec.reason = decision.reason.code().into();
    let _ = upstream.set_nodelay(true);
    let _ = upstream.set_write_timeout(Some(s.limits.connect_timeout));
    let leftover = &buf[end..];
    let forwarded = req.origin_head().is_some();
    let first_up = match req.origin_head() {
        None => {
            rec.status = 200;
            let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
            if client.write_all(ok).is_err() {
                return Ok(());
            }
            leftover.to_vec()
        }
        Some(mut h) => {
            h.extend_from_slice(leftover);
            h
        }
    };
    if !first_up.is_empty() {
        if upstream.write_all(&first_up).is_err() {
            return Ok(());
        }
        rec.bytes_up += first_up.len() as u64;
    }
    let client = match client.try_clone() {
        Ok(c) => c,
        Err(_) => return Ok(()),
    };
    let (idle, mode) = (s.limits.idle_timeout, s.limits.relay);
    let counts = if forwarded {
        relay::relay_until_b_ends(client, upstream, idle, mode)
    } else {
        relay::relay(client, upstream, idle, mode)
    };
    rec.bytes_up += counts.up;
    rec.bytes_down += counts.down;
    Ok(())
}

fn connect(
    addrs: &[IpAddr],
    port: u16,
    timeout: Duration,
    rec: &mut Record,
) -> Result<TcpStream, Refusal> {
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut last = String::new();
    for ip in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let sa = SocketAddr::new(*ip, port);
        rec.addr = Some(sa.to_string());
        match TcpStream::connect_timeout(&sa, left) {
            Ok(s) => return Ok(s),
            Err(e) => {
                timed_out = e.kind() == io::ErrorKind::TimedOut;
                last = format!("{sa}: {e}");
            }
        }
    }
    if timed_out {
        Err(refuse(
            504,
            "error",
            "connect_timeout",
            format!("no answer within {} s ({last})", timeout.as_secs()),
        ))
    } else {
        Err(refuse(502, "error", "connect_failed", last))
    }
}
