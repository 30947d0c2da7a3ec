//! The egress proxy without a container engine: the proxy on a temporary socket, the
//! test resolver, and loopback origin servers standing in for the internet. Every
//! "must be refused" case of the design (E10, E12), tunnels both ways, the tunnel cap,
//! the decision log, and fail-closed when the proxy dies.
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kanibako::egress::forward::Forwarder;
use kanibako::egress::journal::{self, Journal, Record};
use kanibako::egress::policy::PolicySpec;
use kanibako::egress::proxy::{self, Limits, Proxy};
use kanibako::egress::resolve::StaticResolver;
use support::Run;

const KB: &str = env!("CARGO_BIN_EXE_kanibako");

/// A loopback server: `echo` sends back what it gets; `http` answers one request.
struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    fn start(http: bool) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (acc, hs) = (accepted.clone(), heads.clone());
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let hs = hs.clone();
                thread::spawn(move || {
                    if http {
                        let mut buf = Vec::new();
                        let mut b = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut b) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&b[..n]),
                            }
                        }
                        hs.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buf).into_owned());
                        let body = "hello from origin\n";
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    } else {
                        let mut r = s.try_clone().unwrap();
                        let _ = std::io::copy(&mut r, &mut s);
                        let _ = s.shutdown(Shutdown::Write);
                    }
                });
            }
        });
        Origin {
            addr,
            accepted,
            heads,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    log: PathBuf,
    proxy: Proxy,
    resolver: Arc<StaticResolver>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn setup(spec: &str, pins: &[(&str, &str)], limits: Limits) -> Setup {
    kanibako::egress::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    let log = dir.path().join("egress.log");
    let spec: PolicySpec = serde_json::from_str(spec).unwrap();
    let policy = spec.compile("test").unwrap();
    let mut r = StaticResolver::new();
    for (name, addr) in pins {
        r = r.pin(name, &[ip(addr)]);
    }
    let resolver = Arc::new(r);
    let journal = Journal::open(&log, journal::DEFAULT_MAX_BYTES).unwrap();
    let proxy = Proxy::new(policy, resolver.clone(), journal, limits);
    let listener = proxy::bind(&sock, None).unwrap();
    proxy.spawn(listener, "director").unwrap();
    Setup {
        _dir: dir,
        sock,
        log,
        proxy,
        resolver,
    }
}

/// Send `raw`, read the answer's head; returns (status, head, the stream).
fn ask(sock: &Path, raw: &[u8]) -> (u16, String, UnixStream) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // a refusal may come (and the socket close) before the request is all written
    let _ = s.write_all(raw);
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, s)
}

fn mark(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("X-Kanibako-Egress: "))
        .map(str::to_owned)
}

fn records(log: &Path) -> Vec<Record> {
    journal::read(log).unwrap()
}

/// Wait (a little) until `cond` holds: an origin counts a connection only once its
/// accept returns, a moment after the proxy's connect did.
fn settle(cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() && t.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until the log holds `n` records (each is written when its connection ends).
fn wait_records(log: &Path, n: usize) -> Vec<Record> {
    let t = Instant::now();
    loop {
        let r = records(log);
        if r.len() >= n || t.elapsed() > Duration::from_secs(10) {
            return r;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_allowed_tunnel_carries_bytes_both_ways() {
    let echo = Origin::start(false);
    let s = setup(
        &format!(r#"{{"allow_private": ["echo.test:{}"]}}"#, echo.port()),
        &[("echo.test", "127.0.0.1")],
        Limits::default(),
    );
    // bytes sent with the CONNECT, before the 200, are not lost
    let (status, head, mut c) = ask(
        &s.sock,
        format!("CONNECT echo.test:{} HTTP/1.1\r\n\r\nearly", echo.port()).as_bytes(),
    );
    assert_eq!(status, 200, "{head}");
    let mut early = [0u8; 5];
    c.read_exact(&mut early).unwrap();
    assert_eq!(&early, b"early");
    let payload: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i * 7 % 253) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let p2 = payload.clone();
    let writer = thread::spawn(move || {
        w.write_all(&p2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert!(
        back == payload,
        "4 MiB came back intact ({} bytes)",
        back.len()
    );
    let r = wait_records(&s.log, 1);
    let r = &r[0];
    assert_eq!(
        (r.member.as_str(), r.method.as_str(), r.host.as_str()),
        ("director", "CONNECT", "echo.test")
    );
    assert_eq!((r.decision.as_str(), r.reason.as_str()), ("allow", "rule"));
    assert_eq!(
        r.rule.as_deref(),
        Some(format!("echo.test:{}", echo.port()).as_str())
    );
    assert_eq!(r.addr.as_deref(), Some(echo.addr.to_string().as_str()));
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes_up, 5 + (4 << 20));
    assert_eq!(r.bytes_down, 5 + (4 << 20));
    assert_eq!(s.resolver.calls(), ["echo.test"]);
    let mode = std::fs::metadata(&s.log).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn plain_http_in_absolute_form_is_forwarded_in_origin_form() {
    let web = Origin::start(true);
    let s = setup(
        &format!(r#"{{"allow_private": ["web.test:{}"]}}"#, web.port()),
        &[("web.test", "127.0.0.1")],
        Limits::default(),
    );
    let req = format!(
        "GET http://web.test:{}/x?y=1 HTTP/1.1\r\nHost: web.test:{}\r\nProxy-Connection: keep-alive\r\nUser-Agent: t\r\n\r\n",
        web.port(),
        web.port()
    );
    let (status, head, mut c) = ask(&s.sock, req.as_bytes());
    assert_eq!(status, 200, "{head}");
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    assert_eq!(body, "hello from origin\n");
    let seen = web.heads.lock().unwrap().first().cloned();
    let seen = seen.unwrap_or_else(|| panic!("origin saw nothing; client got {head} {body}"));
    assert!(seen.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("Connection: close\r\n"), "{seen}");
    assert!(!seen.to_lowercase().contains("proxy-connection"), "{seen}");
    let r = wait_records(&s.log, 1);
    assert_eq!(
        (r[0].method.as_str(), r[0].decision.as_str()),
        ("GET", "allow")
    );
}

#[test]
fn every_must_be_refused_case_is_refused_and_denied_names_never_reach_dns() {
    let echo = Origin::start(false);
    let p = echo.port();
    let spec = format!(
        r#"{{
        "allow": ["lo.test:{p}", "ten.test:{p}", "ll.test:{p}", "v6lo.test:{p}", "mapped.test:{p}",
                  "cgnat.test:{p}", "ula.test:{p}", "localhost:{p}", "*.wild.test:{p}"],
        "allow_private": ["echo.test:{p}"],
        "deny": ["blocked.wild.test"]
    }}"#
    );
    let s = setup(
        &spec,
        &[
            ("echo.test", "127.0.0.1"),
            ("lo.test", "127.0.0.1"),
            ("ten.test", "10.1.2.3"),
            ("ll.test", "169.254.169.254"),
            ("v6lo.test", "::1"),
            ("mapped.test", "::ffff:127.0.0.1"),
            ("cgnat.test", "100.64.0.1"),
            ("ula.test", "fd00::1"),
            ("localhost", "127.0.0.1"),
        ],
        Limits {
            head_timeout: Duration::from_millis(400),
            ..Limits::default()
        },
    );
    let connect = |host: &str, port: u16| format!("CONNECT {host}:{port} HTTP/1.1\r\n\r\n");
    let rows: Vec<(String, u16, &str)> = vec![
        // IP literals, however spelled
        (connect("127.0.0.1", p), 403, "ip_literal"),
        (connect("[::1]", p), 403, "ip_literal"),
        (connect("[::ffff:127.0.0.1]", p), 403, "ip_literal"),
        (connect("2130706433", p), 403, "ip_literal"),
        (connect("127.1", p), 403, "ip_literal"),
        (
            format!("GET http://127.0.0.1:{p}/ HTTP/1.1\r\n\r\n"),
            403,
            "ip_literal",
        ),
        // localhost and its spoofs, with no rule for them on this port
        (connect("localhost", 443), 403, "no_rule"),
        (connect("localhost.", 443), 403, "no_rule"),
        (connect("LOCALHOST", 80), 403, "no_rule"),
        (
            "GET http://localhost/ HTTP/1.1\r\n\r\n".into(),
            403,
            "no_rule",
        ),
        // names a rule allows that resolve to non-public addresses
        (connect("lo.test", p), 403, "non_public"),
        (connect("ten.test", p), 403, "non_public"),
        (connect("ll.test", p), 403, "non_public"),
        (connect("v6lo.test", p), 403, "non_public"),
        (connect("mapped.test", p), 403, "non_public"),
        (connect("cgnat.test", p), 403, "non_public"),
        (connect("ula.test", p), 403, "non_public"),
        (connect("localhost", p), 403, "non_public"),
        (connect("localhost.", p), 403, "non_public"),
        // names no rule allows: DNS is never asked (a secret in a label stays here)
        (
            connect("c2VjcmV0LXRva2Vu.attacker.test", 443),
            403,
            "no_rule",
        ),
        (connect("forbidden.test", 443), 403, "no_rule"),
        (connect("echo.test", 22), 403, "no_rule"),
        (connect("blocked.wild.test", p), 403, "deny_rule"),
        (
            connect("kanibako-egress-selftest.invalid", 443),
            403,
            "sentinel",
        ),
        // protocol errors
        (
            "\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03\x03garbage\r\n\r\n".into(),
            400,
            "bad_request",
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            400,
            "bad_request",
        ),
        (
            "GET https://echo.test/ HTTP/1.1\r\n\r\n".into(),
            400,
            "bad_request",
        ),
        (connect("bücher.test", 443), 400, "bad_request"),
        (connect("a b.test", 443), 400, "bad_request"),
        (connect("a%2eb.test", 443), 400, "bad_name"),
        (
            format!(
                "CONNECT echo.test:{p} HTTP/1.1\r\nX: {}\r\n\r\n",
                "a".repeat(17_000)
            ),
            431,
            "header_too_large",
        ),
    ];
    for (raw, want, code) in &rows {
        let (status, head, mut c) = ask(&s.sock, raw.as_bytes());
        assert_eq!(status, *want, "{raw:.80?} -> {head}");
        assert_eq!(mark(&head).as_deref(), Some(*code), "{raw:.80?} -> {head}");
        let mut body = String::new();
        let _ = c.read_to_string(&mut body);
        assert!(body.starts_with("kanibako egress: "), "{body}");
    }
    // slow headers: half a head, then silence
    let t = Instant::now();
    let (status, head, _) = ask(&s.sock, b"CONNECT echo.test:");
    assert_eq!(
        (status, mark(&head).as_deref()),
        (408, Some("header_timeout"))
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // the opt-in makes the same loopback origin reachable
    let (status, head, _) = ask(&s.sock, connect("echo.test", p).as_bytes());
    assert_eq!(status, 200, "{head}");
    settle(|| echo.accepted.load(Ordering::SeqCst) == 1);
    assert_eq!(
        echo.accepted.load(Ordering::SeqCst),
        1,
        "only the allowed tunnel reached it"
    );

    let asked = s.resolver.calls();
    for name in [
        "c2VjcmV0LXRva2Vu.attacker.test",
        "forbidden.test",
        "blocked.wild.test",
    ] {
        assert!(
            !asked.iter().any(|a| a.contains(name)),
            "{name} reached DNS: {asked:?}"
        );
    }
    assert!(!asked.iter().any(|a| a.contains("selftest")), "{asked:?}");
    let mut want = vec![
        "lo.test",
        "ten.test",
        "ll.test",
        "v6lo.test",
        "mapped.test",
        "cgnat.test",
        "ula.test",
        "localhost",
        "localhost",
        "echo.test",
    ];
    want.sort();
    let mut asked = asked;
    asked.sort();
    assert_eq!(asked, want);

    let log = wait_records(&s.log, rows.len() + 2);
    assert_eq!(log.len(), rows.len() + 2, "one record per connection");
    let refused = log.iter().filter(|r| r.decision == "deny").count();
    assert_eq!(refused, 24);
    let np = log.iter().find(|r| r.host == "ll.test").unwrap();
    assert_eq!(np.addr.as_deref(), Some("169.254.169.254"));
    assert!(log.iter().all(|r| r.member == "director"));
}

#[test]
fn two_hundred_tunnels_are_held_at_once_and_the_next_gets_429() {
    let echo = Origin::start(false);
    let s = setup(
        &format!(r#"{{"allow_private": ["echo.test:{}"]}}"#, echo.port()),
        &[("echo.test", "127.0.0.1")],
        Limits {
            max_tunnels: 200,
            ..Limits::default()
        },
    );
    let req = format!("CONNECT echo.test:{} HTTP/1.1\r\n\r\n", echo.port());
    let mut open = Vec::new();
    for i in 0..200 {
        let (status, head, c) = ask(&s.sock, req.as_bytes());
        assert_eq!(status, 200, "tunnel {i}: {head}");
        open.push(c);
    }
    assert_eq!(s.proxy.active(), 200);
    // every one of them works, at the same time
    for (i, c) in open.iter_mut().enumerate() {
        c.write_all(format!("{i:03}").as_bytes()).unwrap();
    }
    for (i, c) in open.iter_mut().enumerate() {
        let mut b = [0u8; 3];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, format!("{i:03}").as_bytes());
    }
    let (status, head, _) = ask(&s.sock, req.as_bytes());
    assert_eq!(
        (status, mark(&head).as_deref()),
        (429, Some("too_many_tunnels")),
        "{head}"
    );
    // one closes, a new one fits
    drop(open.pop());
    let t = Instant::now();
    while s.proxy.active() > 199 && t.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    let (status, head, _) = ask(&s.sock, req.as_bytes());
    assert_eq!(status, 200, "{head}");
    drop(open);
}

#[test]
fn members_are_named_in_the_log_and_share_the_box_budget() {
    let echo = Origin::start(false);
    let s = setup(
        &format!(r#"{{"allow_private": ["echo.test:{}"]}}"#, echo.port()),
        &[("echo.test", "127.0.0.1")],
        Limits {
            max_tunnels: 1,
            ..Limits::default()
        },
    );
    let h1 = s.sock.with_file_name("h1.sock");
    s.proxy
        .spawn(proxy::bind(&h1, None).unwrap(), "h1")
        .unwrap();
    let req = format!("CONNECT echo.test:{} HTTP/1.1\r\n\r\n", echo.port());
    let (status, _, held) = ask(&s.sock, req.as_bytes());
    assert_eq!(status, 200);
    let (status, _, _) = ask(&h1, req.as_bytes());
    assert_eq!(status, 429, "the cap is per box, not per member");
    drop(held);
    let t = Instant::now();
    while s.proxy.active() > 0 && t.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    let (status, _, c) = ask(&h1, b"CONNECT nope.test:443 HTTP/1.1\r\n\r\n");
    assert_eq!(status, 403);
    drop(c);
    let log = wait_records(&s.log, 3);
    let who: Vec<_> = log.iter().map(|r| (r.member.as_str(), r.status)).collect();
    assert!(who.contains(&("director", 200)), "{who:?}");
    assert!(who.contains(&("h1", 429)), "{who:?}");
    assert!(who.contains(&("h1", 403)), "{who:?}");
}

#[test]
fn a_new_policy_applies_to_the_next_connection() {
    let s = setup(r#"{"allow": []}"#, &[], Limits::default());
    let (status, _, _) = ask(&s.sock, b"CONNECT a.test:443 HTTP/1.1\r\n\r\n");
    assert_eq!(status, 403);
    let p = PolicySpec {
        allow: vec!["a.test".into()],
        ..Default::default()
    };
    s.proxy.set_policy(p.compile("t").unwrap());
    let (status, head, _) = ask(&s.sock, b"CONNECT a.test:443 HTTP/1.1\r\n\r\n");
    // allowed now; a.test is pinned nowhere, so resolving fails
    assert_eq!(
        (status, mark(&head).as_deref()),
        (502, Some("resolve_failed"))
    );
}

/// `kanibako egress-serve` as a child process, stopped on drop.
struct Served {
    child: Child,
}

impl Served {
    fn start(sock: &Path, policy: &Path, extra: &[&str]) -> Served {
        let child = Command::new(KB)
            .args(["egress-serve", "--socket"])
            .arg(sock)
            .arg("--policy")
            .arg(policy)
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while UnixStream::connect(sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "egress-serve did not start"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Served { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

fn via_forwarder(fwd: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(fwd).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&b[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn a_dead_proxy_leaves_the_client_with_no_way_out_until_it_is_back() {
    let echo = Origin::start(false);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(r#"{{"allow_private": ["echo.test:{}"]}}"#, echo.port()),
    )
    .unwrap();
    let pin = ["--resolve", "echo.test=127.0.0.1"];
    let mut served = Served::start(&sock, &policy, &pin);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fwd = l.local_addr().unwrap();
    let mut f = Forwarder::new(&sock);
    f.retry_for = Duration::from_millis(500);
    thread::spawn(move || f.serve(&l));
    let req = format!("CONNECT echo.test:{} HTTP/1.1\r\n\r\n", echo.port());
    let answer = via_forwarder(fwd, req.as_bytes());
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    settle(|| echo.accepted.load(Ordering::SeqCst) == 1);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);

    served.kill();
    let answer = via_forwarder(fwd, req.as_bytes());
    assert!(
        answer.is_empty(),
        "no answer at all: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        echo.accepted.load(Ordering::SeqCst),
        1,
        "nothing reached the origin"
    );

    // back: the running forwarder reaches the new proxy through the same path
    let _served = Served::start(&sock, &policy, &pin);
    let answer = via_forwarder(fwd, req.as_bytes());
    assert!(
        answer.starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    settle(|| echo.accepted.load(Ordering::SeqCst) == 2);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn egress_serve_rereads_its_policy_on_sighup_and_keeps_it_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("egress.sock");
    let policy = dir.path().join("policy.json");
    let log = dir.path().join("egress.log");
    std::fs::write(&policy, r#"{"allow": []}"#).unwrap();
    let served = Served::start(
        &sock,
        &policy,
        &[
            "--log",
            log.to_str().unwrap(),
            "--member",
            "h7",
            "--resolve",
            "a.test=192.0.2.1",
        ],
    );
    let code = |raw: &[u8]| mark(&ask(&sock, raw).1);
    let req = b"CONNECT a.test:443 HTTP/1.1\r\n\r\n";
    assert_eq!(code(req).as_deref(), Some("no_rule"));
    let hup = || {
        let pid = nix::unistd::Pid::from_raw(served.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
        thread::sleep(Duration::from_millis(300));
    };
    std::fs::write(&policy, r#"{"allow": ["a.test"]}"#).unwrap();
    hup();
    // allowed now, and refused later for resolving to a documentation address
    assert_eq!(code(req).as_deref(), Some("non_public"));
    std::fs::write(&policy, r#"{"allow": ["*.com"]}"#).unwrap();
    hup();
    assert_eq!(
        code(req).as_deref(),
        Some("non_public"),
        "the old policy stays"
    );
    let log = wait_records(&log, 3);
    assert!(log.iter().all(|r| r.member == "h7"), "{log:?}");
}

fn kb(args: &[&str]) -> Run {
    Run::from(Command::new(KB).args(args).output().unwrap())
}

#[test]
fn a_bad_policy_file_is_one_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    let sock = dir.path().join("s.sock");
    let s = sock.to_str().unwrap();
    let p = policy.to_str().unwrap();
    std::fs::write(&policy, "{\n  \"allow\": [\"*.com\"]\n}").unwrap();
    let r = kb(&["egress-serve", "--socket", s, "--policy", p]).fails();
    assert!(
        r.stderr
            .contains("policy.json: allow[0]: \"*.com\" is too broad"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: "), "{r:?}");
    std::fs::write(&policy, "{\n  \"alow\": []\n}").unwrap();
    let r = kb(&["egress-serve", "--socket", s, "--policy", p]).fails();
    assert!(
        r.stderr
            .contains("policy.json:2: not a valid egress policy"),
        "{r:?}"
    );
    std::fs::write(&policy, r#"{"allow": ["@nope"]}"#).unwrap();
    let r = kb(&["egress-serve", "--socket", s, "--policy", p]).fails();
    assert!(r.stderr.contains("hint: the presets are @claude"), "{r:?}");
    std::fs::write(&policy, r#"{"allow": ["127.0.0.1:80"]}"#).unwrap();
    let r = kb(&["egress-serve", "--socket", s, "--policy", p]).fails();
    assert!(r.stderr.contains("allow_private"), "{r:?}");
    // a path that is not a socket is never replaced
    std::fs::write(&policy, r#"{"allow": []}"#).unwrap();
    std::fs::write(&sock, "precious").unwrap();
    let r = kb(&["egress-serve", "--socket", s, "--policy", p]).fails();
    assert!(r.stderr.contains("not a socket"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "precious");
    let r = kb(&[
        "egress-serve",
        "--socket",
        s,
        "--policy",
        "/nonexistent/p.json",
    ])
    .fails();
    assert!(r.stderr.contains("/nonexistent/p.json"), "{r:?}");
}

#[test]
fn the_plumbing_commands_are_hidden() {
    let r = kb(&["--help"]).ok();
    assert!(!r.stdout.contains("egress"), "{}", r.stdout);
}

#[test]
fn egress_connect_joins_stdin_and_stdout_to_a_tunnel() {
    let echo = Origin::start(false);
    let s = setup(
        &format!(r#"{{"allow_private": ["echo.test:{}"]}}"#, echo.port()),
        &[("echo.test", "127.0.0.1")],
        Limits::default(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fwd = l.local_addr().unwrap().to_string();
    let f = Forwarder::new(&s.sock);
    thread::spawn(move || f.serve(&l));
    let port = echo.port().to_string();
    let mut child = Command::new(KB)
        .args(["egress-connect", "--proxy", &fwd, "echo.test", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SSH-2.0-test\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"SSH-2.0-test\r\n");
    let r = kb(&["egress-connect", "--proxy", &fwd, "other.test", "22"]).fails();
    assert!(r.stderr.contains("403 Forbidden"), "{r:?}");
    assert!(r.stderr.contains("other.test:22 is not allowed"), "{r:?}");
}
