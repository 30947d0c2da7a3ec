//! The in-box side of the hub: find the socket (`/run/kanibako/hub.sock`, mounted
//! read-only by the launch), connect (retrying briefly: the hub may start in parallel
//! with the box), send a request and read its reply, and the events of a `log` follow.
//!
//! Outside a box there is no `/run/kanibako`, and that is said plainly.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::frame::{LineDecoder, MAX_FRAME, send_all};
use super::protocol::{self, Event, Incoming, Op, Reply, Request};
use crate::host::HostEnv;

pub const DEFAULT_SOCKET: &str = "/run/kanibako/hub.sock";
/// Points the client at another socket (tests; a box never needs it).
pub const SOCKET_VAR: &str = "KANIBAKO_HUB_SOCKET";
/// How long to keep trying while the socket is missing or nobody listens yet.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(5);
/// How long one request may take (a spawn waits for the engine to start a container).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("this command runs inside a box: there is no {} here", .0.display())]
    NotInBox(PathBuf),
    #[error("cannot reach the helper hub at {}: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("lost the connection to the helper hub: {0}")]
    Io(#[from] io::Error),
    #[error("the helper hub closed the connection without an answer")]
    Closed,
    #[error("{message}")]
    Hub { code: String, message: String },
}

impl ClientError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Hub { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn hints(&self) -> Vec<String> {
        let h = match self {
            ClientError::NotInBox(_) => {
                "run it from the agent's shell inside a box whose helpers are on (`kanibako start` or `kanibako shell` starts one)"
            }
            ClientError::Connect { .. } => {
                "the box's hub is not running; on the host, `kanibako start` or `kanibako shell` for this box starts it again"
            }
            ClientError::Hub { code, .. } => match code.as_str() {
                "peer_mismatch" => {
                    "this socket belongs to another container; a box can reach only its own hub"
                }
                "budget_exhausted" => {
                    "stopped helpers count until cleaned up: `kanibako crab helper cleanup N`"
                }
                "rate_limited" => "wait a few seconds and try again",
                "busy" => "close other connections to the hub (`log -f` followers count)",
                "unavailable" => "the host has not enabled this for the box",
                _ => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        vec![h.into()]
    }
}

/// The socket to use: `KANIBAKO_HUB_SOCKET`, else the mounted one, which must exist as
/// a directory (else this is not a box with a hub).
pub fn socket_path(host: &HostEnv) -> Result<PathBuf, ClientError> {
    if let Some(p) = host.var(SOCKET_VAR) {
        return Ok(PathBuf::from(p));
    }
    let p = PathBuf::from(DEFAULT_SOCKET);
    match p.parent() {
        Some(dir) if dir.is_dir() => Ok(p),
        _ => Err(ClientError::NotInBox(PathBuf::from(super::GUEST_DIR))),
    }
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock
    )
}

pub struct Client {
    stream: UnixStream,
    decoder: LineDecoder,
    lines: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    next_id: u64,
}

impl Client {
    /// Connect to `path`, retrying for up to `patience` while the hub is not there yet.
    pub fn connect(path: &Path, patience: Duration) -> Result<Self, ClientError> {
        let deadline = Instant::now() + patience;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(source) => {
                    return Err(ClientError::Connect {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        };
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream,
            // The hub never sends more than its cap; some slack costs nothing.
            decoder: LineDecoder::new(2 * MAX_FRAME),
            lines: VecDeque::new(),
            buf: vec![0; 16 * 1024],
            next_id: 1,
        })
    }

    fn next_line(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(l) = self.lines.pop_front() {
                return Ok(l);
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            self.decoder.push(&self.buf[..n], &mut out);
            for l in out {
                match l {
                    Ok(l) => self.lines.push_back(l),
                    Err(_) => return Err(ClientError::Closed),
                }
            }
        }
    }

    fn reply_result(reply: Reply) -> Result<Value, ClientError> {
        if reply.ok {
            return Ok(reply.result.unwrap_or(Value::Null));
        }
        let e = reply.error.unwrap_or(protocol::ErrorBody {
            code: "internal".into(),
            message: "the hub gave no reason".into(),
        });
        Err(ClientError::Hub {
            code: e.code,
            message: e.message,
        })
    }

    /// Send `op`; events that arrive before its reply go to `on_event`.
    pub fn request_with(
        &mut self,
        op: Op,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request {
            v: protocol::VERSION,
            id,
            op,
        })
        .map_err(|e| ClientError::Io(io::Error::other(e)))?;
        line.push(b'\n');
        if let Err(e) = send_all(&self.stream, &line) {
            // The hub may have refused the connection (busy, another container's
            // socket) before reading: its reason is already waiting to be read.
            return match self
                .next_line()
                .ok()
                .and_then(|l| protocol::parse_incoming(&l))
            {
                Some(Incoming::Reply(r)) if r.id.is_none() => Self::reply_result(r),
                _ => Err(e.into()),
            };
        }
        loop {
            let l = self.next_line()?;
            match protocol::parse_incoming(&l) {
                Some(Incoming::Event(e)) => on_event(e),
                // A reply without an id is about the connection (busy, refused peer).
                Some(Incoming::Reply(r)) if r.id == Some(id) || r.id.is_none() => {
                    return Self::reply_result(r);
                }
                _ => {}
            }
        }
    }

    /// How long to wait for a reply from now on (`None`: as long as the hub lives).
    pub fn set_reply_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.stream.set_read_timeout(t)?)
    }

    pub fn request(&mut self, op: Op) -> Result<Value, ClientError> {
        self.request_with(op, &mut |_| {})
    }

    /// After a `log` follow: hand each event on until the hub closes the connection.
    pub fn events(&mut self, on_event: &mut dyn FnMut(Event)) -> Result<(), ClientError> {
        self.stream.set_read_timeout(None)?;
        loop {
            match self.next_line() {
                Ok(l) => {
                    if let Some(Incoming::Event(e)) = protocol::parse_incoming(&l) {
                        on_event(e);
                    }
                }
                Err(ClientError::Closed) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One request on a new connection. A request that may be repeated is sent once more
/// when the hub vanished before answering (a worker restarting under us).
pub fn call(path: &Path, op: Op) -> Result<Value, ClientError> {
    let mut c = Client::connect(path, CONNECT_PATIENCE)?;
    match c.request(op.clone()) {
        Err(ClientError::Closed | ClientError::Io(_)) if op.idempotent() => {
            std::thread::sleep(Duration::from_millis(50));
            Client::connect(path, CONNECT_PATIENCE)?.request(op)
        }
        other => other,
    }
}

/// Typed results from a reply's `result`.
pub fn result<T: serde::de::DeserializeOwned + Default>(v: Value) -> T {
    serde_json::from_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_box_there_is_no_socket() {
        let h = HostEnv::for_test(Path::new("/"), &[]);
        if Path::new(super::super::GUEST_DIR).exists() {
            return; // this test itself runs in a box
        }
        let err = socket_path(&h).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this command runs inside a box: there is no /run/kanibako here"
        );
        assert!(err.hints()[0].contains("inside a box"));
        let h = HostEnv::for_test(Path::new("/"), &[(SOCKET_VAR, "/tmp/x.sock")]);
        assert_eq!(socket_path(&h).unwrap(), PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn a_missing_socket_is_retried_then_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hub.sock");
        let t = Instant::now();
        let err = Client::connect(&p, Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        // a hub that appears while the client waits is found
        let p2 = p.clone();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let l = std::os::unix::net::UnixListener::bind(&p2).unwrap();
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 256];
            let _ = s.read(&mut b);
            std::io::Write::write_all(&mut s, b"{\"v\":1,\"id\":1,\"ok\":true,\"result\":{}}\n")
                .unwrap();
        });
        let mut c = Client::connect(&p, Duration::from_secs(2)).unwrap();
        assert_eq!(c.request(Op::Ping).unwrap(), serde_json::json!({}));
        late.join().unwrap();
    }
}
