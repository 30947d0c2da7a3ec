//! The request head a box sends to the egress proxy: `CONNECT host:port` or an
//! absolute-form `METHOD http://host[:port]/path`; anything else is refused.
//!
//! Pure and total: every input gives a [`Request`] or a reason, never a panic (a fuzz
//! test below holds it to that). Reading the bytes, the 16 KiB cap and the slow-header
//! deadline belong to the proxy, which uses [`Scanner`] to find where a head ends.

/// The most a head (request line, headers and the blank line) may take.
pub const MAX_HEAD: usize = 16 * 1024;

/// Finds the end of a head in a buffer that grows by reads, without rescanning what it
/// has seen. Lines may end in `\r\n` or a bare `\n`.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Where the line being scanned starts.
    line_start: usize,
    /// How far the buffer has been looked at.
    pos: usize,
    /// Whether a non-blank line (the request line) has been seen.
    started: bool,
}

impl Scanner {
    /// The length of the head (up to and including its blank line) once `buf` holds
    /// all of it. `buf` must only ever grow between calls.
    pub fn end(&mut self, buf: &[u8]) -> Option<usize> {
        while self.pos < buf.len() {
            let i = self.pos;
            self.pos += 1;
            if buf[i] != b'\n' {
                continue;
            }
            let line = &buf[self.line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.line_start = i + 1;
            // blank lines before the request line are skipped (RFC 9112 §2.2)
            if !line.is_empty() {
                self.started = true;
            } else if self.started {
                return Some(i + 1);
            }
        }
        None
    }
}

/// What the request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A tunnel: after `200`, opaque bytes both ways.
    Connect,
    /// Plain HTTP to forward, with the path in origin form (`/x?y`).
    Forward { path: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    /// As sent, without surrounding whitespace (may hold obs-text bytes).
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub kind: Kind,
    /// As sent: a name, an IPv4 literal or a bracketed IPv6 literal. Judged by
    /// [`super::name::parse_host`], not here.
    pub host: String,
    pub port: u16,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'static str,
    pub headers: Vec<Header>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse a complete head (as [`Scanner::end`] delimits it).
pub fn parse(head: &[u8]) -> Result<Request, &'static str> {
    if head.len() > MAX_HEAD {
        return Err("request head too large");
    }
    if head.contains(&0) {
        return Err("NUL byte in the request head");
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or("empty request")?;
    if request_line.contains(&b'\r') {
        return Err("bare CR in the request line");
    }
    let (method, target, version) = split_request_line(request_line)?;
    let (kind, host, port) = if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        (Kind::Connect, host, port)
    } else {
        parse_absolute(target)?
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.contains(&b'\r') {
            return Err("bare CR in a header");
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err("folded header lines are not accepted");
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("bad header name");
        }
        let value = value.trim_ascii();
        headers.push(Header {
            name: String::from_utf8_lossy(name).into_owned(),
            value: value.to_vec(),
        });
    }
    Ok(Request {
        method: method.to_owned(),
        kind,
        host: host.to_owned(),
        port,
        version,
        headers,
    })
}

fn split_request_line(line: &[u8]) -> Result<(&str, &str, &'static str), &'static str> {
    let line = std::str::from_utf8(line).map_err(|_| "non-ASCII request line")?;
    if !line.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("control or non-ASCII character in the request line");
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the request line is not METHOD TARGET VERSION");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err("bad method");
    }
    if target.is_empty() {
        return Err("empty request target");
    }
    let version = match version {
        "HTTP/1.1" => "HTTP/1.1",
        "HTTP/1.0" => "HTTP/1.0",
        _ => return Err("only HTTP/1.0 and HTTP/1.1 are spoken here"),
    };
    Ok((method, target, version))
}

/// `host:port`; with `default`, the port may be left out (or empty).
fn split_authority(auth: &str, default: Option<u16>) -> Result<(&str, u16), &'static str> {
    let (host, port) = if auth.starts_with('[') {
        let end = auth.find(']').ok_or("unclosed [ in the host")?;
        let (host, rest) = auth.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if rest.is_empty() => (host, None),
            None => return Err("junk after the IPv6 address"),
        }
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err("empty host");
    }
    let port = match (port, default) {
        (Some(""), Some(d)) | (None, Some(d)) => d,
        (None, None) => return Err("CONNECT needs host:port"),
        (Some(p), _) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("bad port");
            }
            match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err("bad port"),
            }
        }
    };
    Ok((host, port))
}

fn parse_absolute(target: &str) -> Result<(Kind, &str, u16), &'static str> {
    let scheme_end = target.find("://");
    let scheme = scheme_end.map(|i| &target[..i]);
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => {}
        Some(s) if s.eq_ignore_ascii_case("https") => {
            return Err("https:// is reached with CONNECT, not as a plain request");
        }
        _ => return Err("not a proxy request (CONNECT or an absolute http:// URL)"),
    }
    let rest = &target[scheme_end.unwrap_or(0) + 3..];
    if rest.contains('#') {
        return Err("fragment in the request target");
    }
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(auth_end);
    if auth.contains('@') {
        return Err("credentials in the URL are not accepted");
    }
    let (host, port) = split_authority(auth, Some(80))?;
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((Kind::Forward { path }, host, port))
}

/// Hop-by-hop headers a proxy drops (RFC 9110 §7.6.1); `Connection` is rewritten.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
];

impl Request {
    /// The head to send the origin for a [`Kind::Forward`] request: origin-form target,
    /// hop-by-hop headers dropped, a `Host` added if missing, and `Connection: close`
    /// (one request per proxy connection, so a client reusing the connection for
    /// another host cannot land on this origin). An `Upgrade` (WebSocket) is kept.
    /// `None` for CONNECT.
    pub fn origin_head(&self) -> Option<Vec<u8>> {
        let Kind::Forward { path } = &self.kind else {
            return None;
        };
        let mut named: Vec<String> = Vec::new();
        for h in &self.headers {
            if h.name.eq_ignore_ascii_case("connection") {
                named.extend(
                    String::from_utf8_lossy(&h.value)
                        .split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty()),
                );
            }
        }
        let upgrade = named.iter().any(|t| t == "upgrade")
            && self
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
        let mut out = format!("{} {} {}\r\n", self.method, path, self.version).into_bytes();
        let mut has_host = false;
        for h in &self.headers {
            let lower = h.name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str()) {
                continue;
            }
            if named.contains(&lower) && !(upgrade && lower == "upgrade") {
                continue;
            }
            has_host |= lower == "host";
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&h.value);
            out.extend_from_slice(b"\r\n");
        }
        if !has_host {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(self.host.as_bytes());
            if self.port != 80 {
                out.extend_from_slice(format!(":{}", self.port).as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if upgrade {
            b"Connection: upgrade\r\n\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(buf: &[u8]) -> Option<usize> {
        Scanner::default().end(buf)
    }

    fn ok(s: &str) -> Request {
        let b = s.as_bytes();
        let n = end(b).unwrap_or_else(|| panic!("incomplete: {s:?}"));
        parse(&b[..n]).unwrap_or_else(|e| panic!("{e}: {s:?}"))
    }

    fn bad(s: &str) -> &'static str {
        let b = s.as_bytes();
        let n = end(b).unwrap_or(b.len());
        parse(&b[..n]).expect_err(s)
    }

    #[test]
    fn connect_with_crlf_and_bare_lf() {
        for s in [
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            "CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\n",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\n\r\n",
            "\r\nCONNECT example.com:443 HTTP/1.1\r\n\r\n",
        ] {
            let r = ok(s);
            assert_eq!(r.kind, Kind::Connect);
            assert_eq!((r.host.as_str(), r.port), ("example.com", 443), "{s:?}");
        }
        let r = ok("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n");
        assert_eq!(
            (r.host.as_str(), r.port, r.version),
            ("[::1]", 8443, "HTTP/1.0")
        );
        assert!(r.headers.is_empty());
    }

    #[test]
    fn the_scanner_finds_the_end_across_reads_and_keeps_what_follows() {
        let s = b"CONNECT a.b:443 HTTP/1.1\r\nX: y\r\n\r\n\x16\x03\x01tls";
        let whole = end(s).unwrap();
        assert_eq!(&s[whole..], b"\x16\x03\x01tls");
        for step in 1..s.len() {
            let mut sc = Scanner::default();
            let mut found = None;
            for n in (step..=s.len()).step_by(step).chain([s.len()]) {
                if let Some(e) = sc.end(&s[..n]) {
                    found = Some(e);
                    break;
                }
            }
            assert_eq!(found, Some(whole), "step {step}");
        }
        assert_eq!(end(b"CONNECT a:1 HTTP/1.1\r\n"), None);
        assert_eq!(end(b"\r\n\r\n"), None);
    }

    #[test]
    fn absolute_form() {
        let r = ok("GET http://Example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(r.method, "GET");
        assert_eq!((r.host.as_str(), r.port), ("Example.com", 80));
        assert_eq!(
            r.kind,
            Kind::Forward {
                path: "/a/b?c=d".into()
            }
        );
        let r = ok("POST HTTP://x.test:8080 HTTP/1.1\r\n\r\n");
        assert_eq!((r.host.as_str(), r.port), ("x.test", 8080));
        assert_eq!(r.kind, Kind::Forward { path: "/".into() });
        let r = ok("GET http://x.test?q HTTP/1.1\r\n\r\n");
        assert_eq!(r.kind, Kind::Forward { path: "/?q".into() });
        let r = ok("GET http://x.test:/ HTTP/1.1\r\n\r\n");
        assert_eq!(r.port, 80);
        let r = ok("GET http://[2001:db8::1]:81/ HTTP/1.1\r\n\r\n");
        assert_eq!((r.host.as_str(), r.port), ("[2001:db8::1]", 81));
    }

    #[test]
    fn everything_else_is_bad() {
        for s in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET https://x.test/ HTTP/1.1\r\n\r\n",
            "GET ftp://x.test/ HTTP/1.1\r\n\r\n",
            "GET x.test:80 HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "CONNECT x.test HTTP/1.1\r\n\r\n",
            "CONNECT x.test:0 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:65536 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:-1 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:0443x HTTP/1.1\r\n\r\n",
            "CONNECT :443 HTTP/1.1\r\n\r\n",
            "CONNECT []:443 HTTP/1.1\r\n\r\n",
            "CONNECT [::1:443 HTTP/1.1\r\n\r\n",
            "CONNECT [::1]x:443 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.2\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1 extra\r\n\r\n",
            "CONNECT  x.test:443 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:443\r\n\r\n",
            "CON\x01NECT x.test:443 HTTP/1.1\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\n folded: yes\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\nno colon\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\n: empty name\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\nbad name: x\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\nA: b\rc\r\n\r\n",
            "CONNECT x.test:443 HTTP/1.1\r\nA: \0\r\n\r\n",
            "CONNECT x.test:443\rHTTP/1.1\r\n\r\n",
            "GET http://user:pw@x.test/ HTTP/1.1\r\n\r\n",
            "GET http://allowed.test@evil.test/ HTTP/1.1\r\n\r\n",
            "GET http://x.test/#frag HTTP/1.1\r\n\r\n",
            "GET http:///path HTTP/1.1\r\n\r\n",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n",
            "\r\n",
        ] {
            bad(s);
        }
        assert!(bad("GET https://x.test/ HTTP/1.1\r\n\r\n").contains("CONNECT"));
    }

    #[test]
    fn the_size_limit_is_exact() {
        let pad = |total: usize| {
            let start = "CONNECT a.test:443 HTTP/1.1\r\nX: ";
            let fill = total - start.len() - 4;
            format!("{start}{}\r\n\r\n", "a".repeat(fill))
        };
        assert_eq!(pad(MAX_HEAD).len(), MAX_HEAD);
        assert!(parse(pad(MAX_HEAD).as_bytes()).is_ok());
        assert_eq!(
            parse(pad(MAX_HEAD + 1).as_bytes()),
            Err("request head too large")
        );
    }

    #[test]
    fn origin_head_rewrites_for_the_origin() {
        let r = ok(
            "GET http://x.test:8080/p?q HTTP/1.1\r\nUser-Agent: t\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\n",
        );
        let h = String::from_utf8(r.origin_head().unwrap()).unwrap();
        assert_eq!(
            h,
            "GET /p?q HTTP/1.1\r\nUser-Agent: t\r\nAccept: */*\r\nHost: x.test:8080\r\nConnection: close\r\n\r\n"
        );
        let r = ok("GET http://x.test/ HTTP/1.0\r\nhost: x.test\r\n\r\n");
        let h = String::from_utf8(r.origin_head().unwrap()).unwrap();
        assert_eq!(
            h,
            "GET / HTTP/1.0\r\nhost: x.test\r\nConnection: close\r\n\r\n"
        );
        let r = ok(
            "GET http://x.test/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        let h = String::from_utf8(r.origin_head().unwrap()).unwrap();
        assert_eq!(
            h,
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nHost: x.test\r\nConnection: upgrade\r\n\r\n"
        );
        assert_eq!(ok("CONNECT a:1 HTTP/1.1\r\n\r\n").origin_head(), None);
        // obs-text in values is passed through untouched
        let r = ok("GET http://x.test/ HTTP/1.1\r\nX: caf\u{e9}\r\n\r\n");
        assert!(
            r.origin_head()
                .unwrap()
                .windows(5)
                .any(|w| w == "caf\u{e9}".as_bytes())
        );
    }

    /// A deterministic fuzz run: mutated valid heads and random bytes, fed in random
    /// chunks, must give a request or a reason, never a panic; a request that parses
    /// obeys its invariants. KANIBAKO_FUZZ_ITERATIONS=10000000 cargo test egress_head
    #[test]
    fn fuzz_egress_head_never_panics() {
        let mut rng = crate::fuzzing::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let iterations = crate::fuzzing::iterations(100_000);
        let samples: &[&[u8]] = &[
            b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: api.anthropic.com:443\r\nUser-Agent: curl/8\r\n\r\n",
            b"GET http://x.test:8080/a?b HTTP/1.1\r\nHost: x.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: ws\r\n\r\nbody",
            b"CONNECT [::ffff:127.0.0.1]:22 HTTP/1.0\n\n",
            b"POST HTTP://[2001:db8::1]/ HTTP/1.1\nContent-Length: 3\n\nabc",
        ];
        let alphabet = b"\r\n :[]@/?#%\t\0\xff*.-0123456789CONNECThttp";
        let mut checked = 0u64;
        for _ in 0..iterations {
            let mut f: Vec<u8> = samples[(next() % samples.len() as u64) as usize].to_vec();
            match next() % 5 {
                0 => f.truncate((next() as usize) % (f.len() + 1)),
                1 => {
                    for _ in 0..1 + next() % 6 {
                        let i = (next() as usize) % f.len();
                        f[i] ^= 1 << (next() % 8);
                    }
                }
                2 => {
                    for _ in 0..1 + next() % 6 {
                        let i = (next() as usize) % (f.len() + 1);
                        f.insert(i, alphabet[(next() as usize) % alphabet.len()]);
                    }
                }
                3 => {
                    let n = (next() as usize) % 96;
                    f = (0..n)
                        .map(|_| alphabet[(next() as usize) % alphabet.len()])
                        .collect();
                }
                _ => {
                    let n = (next() as usize) % 300;
                    f = (0..n).map(|_| next() as u8).collect();
                }
            }
            // feed it in random chunks, as reads would deliver it
            let mut sc = Scanner::default();
            let mut at = 0;
            let mut found = None;
            while at < f.len() && found.is_none() {
                at = (at + 1 + (next() as usize) % 17).min(f.len());
                found = sc.end(&f[..at]);
            }
            assert_eq!(found, Scanner::default().end(&f), "{f:?}");
            let head = &f[..found.unwrap_or(f.len())];
            if let Ok(r) = parse(head) {
                checked += 1;
                assert!(r.port > 0 && !r.host.is_empty());
                let _ = super::super::name::parse_host(&r.host);
                if let Some(h) = r.origin_head() {
                    assert!(h.ends_with(b"\r\n\r\n"));
                    assert_eq!(Scanner::default().end(&h), Some(h.len()));
                }
            }
            let text = String::from_utf8_lossy(&f);
            let _ = super::super::policy::Rule::parse(&text);
            let _ = super::super::name::parse_rule_host(&text);
        }
        assert!(checked > 0, "some mutated heads still parse");
    }
}
