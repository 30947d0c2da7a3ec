//! A CONNECT client for the proxy as the box sees it (through the forwarder): the
//! self-test's probe and `kanibako egress-connect`, an ssh `ProxyCommand`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::head::{MAX_HEAD, Scanner};
use super::proxy::MARK_HEADER;

/// The proxy's answer to a CONNECT.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The status line, as sent.
    pub status_line: String,
    /// The value of the `X-Kanibako-Egress` header: kanibako's reason code.
    pub mark: Option<String>,
    /// Bytes after the head (a refusal's body, or the first tunnel bytes).
    pub leftover: Vec<u8>,
    pub stream: TcpStream,
}

/// `host` as an authority: IPv6 literals in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Ask `proxy` for a tunnel to `host:port`; reading the answer takes at most `timeout`.
pub fn connect(proxy: SocketAddr, host: &str, port: u16, timeout: Duration) -> io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&proxy, timeout)?;
    let auth = authority(host, port);
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(format!("CONNECT {auth} HTTP/1.1\r\nHost: {auth}\r\n\r\n").as_bytes())?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut scanner = Scanner::default();
    let end = loop {
        if let Some(e) = scanner.end(&buf) {
            break e;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer head too large",
            ));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the proxy",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection without an answer",
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default().trim_end().to_owned();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    let mark = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(MARK_HEADER)
            .then(|| v.trim().to_owned())
    });
    Ok(Answer {
        status,
        status_line,
        mark,
        leftover: buf[end..].to_vec(),
        stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_the_status_mark_and_leftover() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 403 Forbidden\r\nx-kanibako-egress: no_rule\r\n\r\nbody")
                .unwrap();
            req
        });
        let a = connect(addr, "::1", 22, Duration::from_secs(5)).unwrap();
        assert_eq!(a.status, 403);
        assert_eq!(a.mark.as_deref(), Some("no_rule"));
        assert_eq!(a.leftover, b"body");
        assert_eq!(a.status_line, "HTTP/1.1 403 Forbidden");
        let req = t.join().unwrap();
        assert!(req.starts_with("CONNECT [::1]:22 HTTP/1.1\r\n"), "{req}");
    }
}
