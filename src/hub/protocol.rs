//! Protocol v1 of the hub: requests are intents (never argv, never container names),
//! replies and events are what the hub says back. One JSON object per line.
//!
//! ```text
//! request  {"v":1,"id":7,"op":"spawn","model":"sonnet"}
//! reply    {"v":1,"id":7,"ok":true,"result":{…}}
//!          {"v":1,"id":7,"ok":false,"error":{"code":"budget_exhausted","message":"…"}}
//! event    {"v":1,"event":"log","entry":{…}}        (no id; only on a `log` follow)
//! ```
//!
//! [`parse_request`] is the only way a client's bytes become a [`Request`]: every field is
//! typed and checked here (unknown fields, wrong types, ids past 2^53, a bad model name
//! are refused), so the server never sees an unchecked string. It never panics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The one version this hub speaks.
pub const VERSION: u32 = 1;
/// Request ids must survive a round trip through a JavaScript number.
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Largest message text, measured as its JSON encoding (so escapes count).
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// Why a request was refused, as the wire names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    BadRequest,
    UnsupportedVersion,
    UnknownOp,
    FrameTooLarge,
    PayloadTooLarge,
    Forbidden,
    NotFound,
    /// The helper is not in the state the request needs (stop a stopped one, respawn a
    /// running one, clean up one with descendants without `cascade`).
    Conflict,
    Busy,
    RateLimited,
    BudgetExhausted,
    PeerMismatch,
    IdleTimeout,
    TooManyErrors,
    SpawnFailed,
    /// The hub cannot do this here (no planner for helpers, no fork support).
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Busy => "busy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BudgetExhausted => "budget_exhausted",
            ErrorCode::PeerMismatch => "peer_mismatch",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::TooManyErrors => "too_many_errors",
            ErrorCode::SpawnFailed => "spawn_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// After these the hub closes the connection.
    pub fn closes(self) -> bool {
        matches!(
            self,
            ErrorCode::FrameTooLarge
                | ErrorCode::PeerMismatch
                | ErrorCode::IdleTimeout
                | ErrorCode::TooManyErrors
                | ErrorCode::Busy
        )
    }
}

/// A model name as a spawn may ask for it: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Model(String);

impl Model {
    pub fn parse(s: &str) -> Option<Self> {
        let mut b = s.bytes();
        let ok = s.len() <= 64
            && b.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of a fork, checked by the domain's rule (upstream's, narrowed to what a
/// box name may hold).
pub use crate::boxes::fork::ForkName;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    pub v: u32,
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

/// What a member asks for. Helpers are named by number only; the hub maps a number to
/// a container through the box's labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Hello {
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    Ping,
    Spawn {
        /// Narrow the caller's own depth budget for this spawn (never widen it).
        #[serde(skip_serializing_if = "Option::is_none")]
        depth: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        breadth: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<Model>,
    },
    List,
    Stop {
        helper: u32,
    },
    Cleanup {
        helper: u32,
        cascade: bool,
    },
    Respawn {
        helper: u32,
    },
    /// `to` 0 is the director.
    Send {
        to: u32,
        text: String,
    },
    Broadcast {
        text: String,
    },
    Log {
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        last: Option<u32>,
        follow: bool,
    },
    Fork {
        name: ForkName,
    },
}

impl Op {
    /// Safe to send again when the hub went away before answering (it restarts in a
    /// fraction of a second): asking twice changes nothing.
    pub fn idempotent(&self) -> bool {
        matches!(
            self,
            Op::Hello { .. }
                | Op::Ping
                | Op::List
                | Op::Stop { .. }
                | Op::Log { follow: false, .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Ping => "ping",
            Op::Spawn { .. } => "spawn",
            Op::List => "list",
            Op::Stop { .. } => "stop",
            Op::Cleanup { .. } => "cleanup",
            Op::Respawn { .. } => "respawn",
            Op::Send { .. } => "send",
            Op::Broadcast { .. } => "broadcast",
            Op::Log { .. } => "log",
            Op::Fork { .. } => "fork",
        }
    }
}

/// A request the hub refuses, with the id to echo when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }
}

// The arguments of each op, as the wire has them: anything else is an unknown field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HelloArgs {
    #[serde(default)]
    client: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpawnArgs {
    #[serde(default)]
    depth: Option<u32>,
    #[serde(default)]
    breadth: Option<u32>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HelperArgs {
    helper: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupArgs {
    helper: u32,
    #[serde(default)]
    cascade: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendArgs {
    to: u32,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextArgs {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogArgs {
    #[serde(default)]
    from: Option<u32>,
    #[serde(default)]
    last: Option<u32>,
    #[serde(default)]
    follow: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkArgs {
    name: String,
}

/// A client-supplied string, quoted and cut short for an error message.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

fn args<T: serde::de::DeserializeOwned>(
    id: u64,
    op: &str,
    rest: Map<String, Value>,
) -> Result<T, Rejection> {
    serde_json::from_value(Value::Object(rest)).map_err(|e| {
        Rejection::new(
            Some(id),
            ErrorCode::BadRequest,
            format!("{op}: {}", first_line(&e.to_string())),
        )
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn helper_number(id: u64, n: u32) -> Result<u32, Rejection> {
    if n == 0 {
        return Err(Rejection::new(
            Some(id),
            ErrorCode::BadRequest,
            "helper numbers start at 1 (0 is the director)",
        ));
    }
    Ok(n)
}

fn text(id: u64, text: String) -> Result<String, Rejection> {
    let encoded = serde_json::to_string(&text).map_or(usize::MAX, |s| s.len());
    if encoded > MAX_PAYLOAD {
        return Err(Rejection::new(
            Some(id),
            ErrorCode::PayloadTooLarge,
            format!("a message may be at most {MAX_PAYLOAD} bytes encoded"),
        ));
    }
    Ok(text)
}

/// One frame's bytes as a request, or why not.
pub fn parse_request(line: &[u8]) -> Result<Request, Rejection> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        Rejection::new(
            None,
            ErrorCode::BadJson,
            format!("not JSON: {}", first_line(&e.to_string())),
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err(Rejection::new(
            None,
            ErrorCode::BadRequest,
            "a request is one JSON object",
        ));
    };
    let id = match map.remove("id") {
        None => {
            return Err(Rejection::new(None, ErrorCode::BadRequest, "missing id"));
        }
        Some(v) => match v.as_u64().filter(|n| *n <= MAX_ID) {
            Some(n) => n,
            None => {
                return Err(Rejection::new(
                    None,
                    ErrorCode::BadRequest,
                    "id must be an integer from 0 to 2^53-1",
                ));
            }
        },
    };
    match map.remove("v") {
        None => return Err(Rejection::new(Some(id), ErrorCode::BadRequest, "missing v")),
        Some(v) if v.as_u64() == Some(u64::from(VERSION)) => {}
        Some(v) => {
            let shown_v = match &v {
                Value::String(s) => shown(s),
                other => {
                    let s = other.to_string();
                    shown(&s)
                }
            };
            return Err(Rejection::new(
                Some(id),
                ErrorCode::UnsupportedVersion,
                format!("protocol version {shown_v} is not supported (supported: {VERSION})"),
            ));
        }
    }
    let op_name = match map.remove("op") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::BadRequest,
                "op must be a string",
            ));
        }
        None => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::BadRequest,
                "missing op",
            ));
        }
    };
    let op = match op_name.as_str() {
        "hello" => {
            let a: HelloArgs = args(id, "hello", map)?;
            if let Some(c) = &a.client
                && (c.len() > 64 || !c.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
            {
                return Err(Rejection::new(
                    Some(id),
                    ErrorCode::BadRequest,
                    "hello: client must be at most 64 printable ASCII characters",
                ));
            }
            Op::Hello { client: a.client }
        }
        "ping" => {
            let _: NoArgs = args(id, "ping", map)?;
            Op::Ping
        }
        "list" => {
            let _: NoArgs = args(id, "list", map)?;
            Op::List
        }
        "spawn" => {
            let a: SpawnArgs = args(id, "spawn", map)?;
            let model = match a.model {
                None => None,
                Some(m) => Some(Model::parse(&m).ok_or_else(|| {
                    Rejection::new(
                        Some(id),
                        ErrorCode::BadRequest,
                        format!(
                            "spawn: model {} is not a model name (letters, digits, '.', '_', ':', '-'; at most 64)",
                            shown(&m)
                        ),
                    )
                })?),
            };
            Op::Spawn {
                depth: a.depth,
                breadth: a.breadth,
                model,
            }
        }
        "stop" => {
            let a: HelperArgs = args(id, "stop", map)?;
            Op::Stop {
                helper: helper_number(id, a.helper)?,
            }
        }
        "respawn" => {
            let a: HelperArgs = args(id, "respawn", map)?;
            Op::Respawn {
                helper: helper_number(id, a.helper)?,
            }
        }
        "cleanup" => {
            let a: CleanupArgs = args(id, "cleanup", map)?;
            Op::Cleanup {
                helper: helper_number(id, a.helper)?,
                cascade: a.cascade,
            }
        }
        "send" => {
            let a: SendArgs = args(id, "send", map)?;
            Op::Send {
                to: a.to,
                text: text(id, a.text)?,
            }
        }
        "broadcast" => {
            let a: TextArgs = args(id, "broadcast", map)?;
            Op::Broadcast {
                text: text(id, a.text)?,
            }
        }
        "log" => {
            let a: LogArgs = args(id, "log", map)?;
            Op::Log {
                from: a.from,
                last: a.last,
                follow: a.follow,
            }
        }
        "fork" => {
            let a: ForkArgs = args(id, "fork", map)?;
            let name = ForkName::parse(a.name.trim()).ok_or_else(|| {
                Rejection::new(
                    Some(id),
                    ErrorCode::BadRequest,
                    format!(
                        "invalid fork name {} (letters, digits, '_' and '-'; no slashes or dots)",
                        shown(&a.name)
                    ),
                )
            })?;
            Op::Fork { name }
        }
        other => {
            return Err(Rejection::new(
                Some(id),
                ErrorCode::UnknownOp,
                format!("unknown op {}", shown(other)),
            ));
        }
    };
    Ok(Request { v: VERSION, id, op })
}

/// The error half of a reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Kept as text on the client side: a newer hub may name codes this client does
    /// not know.
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// One reply line. Clients ignore fields they do not know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    pub fn ok(id: u64, result: Value) -> Self {
        Self {
            v: VERSION,
            id: Some(id),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code: code.as_str().into(),
                message: message.into(),
            }),
        }
    }

    /// The line to write, `\n` included.
    pub fn to_line(&self) -> Vec<u8> {
        line(self)
    }
}

/// An unsolicited line: an entry of the message log while following it, or how many
/// entries a slow follower missed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Log { entry: Value },
    Dropped { n: u64 },
}

#[derive(Serialize)]
struct EventLine<'a> {
    v: u32,
    #[serde(flatten)]
    event: &'a Event,
}

impl Event {
    pub fn to_line(&self) -> Vec<u8> {
        line(&EventLine {
            v: VERSION,
            event: self,
        })
    }
}

fn line<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own types cannot fail (string keys, no non-finite floats); an
    // empty object is still a line the client can read.
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// What a line from the hub is, for a client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Reply(Reply),
    Event(Event),
}

pub fn parse_incoming(line: &[u8]) -> Option<Incoming> {
    let value: Value = serde_json::from_slice(line).ok()?;
    if value.get("event").is_some() {
        return serde_json::from_value(value).ok().map(Incoming::Event);
    }
    serde_json::from_value(value).ok().map(Incoming::Reply)
}

// Results, shared by the hub (which writes them) and the client (which reads them,
// tolerating missing fields).

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsView {
    pub max_frame: usize,
    pub max_payload: usize,
    pub max_helpers: u32,
    pub max_depth: u32,
    pub max_breadth: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HelloResult {
    pub proto: u32,
    pub server: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub you: String,
    pub member: u32,
    pub limits: LimitsView,
    pub features: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HelperInfo {
    pub helper: u32,
    /// 0: spawned by the director.
    pub parent: u32,
    /// `running` or `stopped`.
    pub status: String,
    pub model: Option<String>,
    /// What this helper may still spawn below itself.
    pub depth: u32,
    pub breadth: u32,
    pub container: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListResult {
    pub helpers: Vec<HelperInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpawnResult {
    pub helper: u32,
    pub container: String,
    pub model: Option<String>,
    pub depth: u32,
    pub breadth: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopResult {
    pub helper: u32,
    pub already_stopped: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanupResult {
    /// The helper asked for last, descendants first.
    pub removed: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogResult {
    pub count: usize,
    pub following: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForkResult {
    pub path: String,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> (Option<u64>, ErrorCode) {
        let r = parse_request(line.as_bytes()).unwrap_err();
        (r.id, r.code)
    }

    fn ok(line: &str) -> Op {
        parse_request(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .op
    }

    #[test]
    fn every_op_round_trips_through_its_wire_form() {
        let ops = vec![
            Op::Hello { client: None },
            Op::Hello {
                client: Some("kanibako 0.1".into()),
            },
            Op::Ping,
            Op::Spawn {
                depth: None,
                breadth: None,
                model: None,
            },
            Op::Spawn {
                depth: Some(2),
                breadth: Some(3),
                model: Model::parse("claude-sonnet-4.5"),
            },
            Op::List,
            Op::Stop { helper: 3 },
            Op::Cleanup {
                helper: 1,
                cascade: true,
            },
            Op::Respawn { helper: 2 },
            Op::Send {
                to: 0,
                text: "done: \u{7} \"quoted\" ✓".into(),
            },
            Op::Broadcast {
                text: "all hands".into(),
            },
            Op::Log {
                from: Some(1),
                last: Some(5),
                follow: true,
            },
            Op::Fork {
                name: ForkName::parse("exp_1").unwrap(),
            },
        ];
        for op in ops {
            let req = Request { v: 1, id: 42, op };
            let wire = serde_json::to_vec(&req).unwrap();
            assert_eq!(
                parse_request(&wire).unwrap(),
                req,
                "{}",
                String::from_utf8_lossy(&wire)
            );
        }
        // the wire form is the documented one
        let req = Request {
            v: 1,
            id: 7,
            op: Op::Stop { helper: 3 },
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"v":1,"id":7,"op":"stop","helper":3}"#
        );
        assert_eq!(
            serde_json::to_string(&Request {
                v: 1,
                id: 1,
                op: Op::Ping
            })
            .unwrap(),
            r#"{"v":1,"id":1,"op":"ping"}"#
        );
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        assert_eq!(
            ok(r#"{"v":1,"id":1,"op":"spawn","model":null,"depth":null}"#),
            Op::Spawn {
                depth: None,
                breadth: None,
                model: None
            }
        );
        assert_eq!(
            ok(r#"{"v":1,"id":1,"op":"log"}"#),
            Op::Log {
                from: None,
                last: None,
                follow: false
            }
        );
        assert_eq!(
            ok(r#"{"op":"cleanup","helper":2,"id":0,"v":1}"#),
            Op::Cleanup {
                helper: 2,
                cascade: false
            }
        );
    }

    #[test]
    fn malformed_frames_get_their_codes() {
        use ErrorCode::*;
        assert_eq!(code("not json"), (None, BadJson));
        assert_eq!(code("{\"v\":1,"), (None, BadJson));
        let bad_utf8 = parse_request(b"{\"v\":1,\"id\":1,\"op\":\"p\xffng\"}").unwrap_err();
        assert_eq!(bad_utf8.code, BadJson);
        assert_eq!(code("[1,2]"), (None, BadRequest));
        assert_eq!(code("42"), (None, BadRequest));
        assert_eq!(code(r#"{"v":1,"op":"ping"}"#), (None, BadRequest));
        for id in [r#""x""#, "-1", "1.5", "1e3", "9007199254740992", "null"] {
            let (i, c) = code(&format!(r#"{{"v":1,"id":{id},"op":"ping"}}"#));
            assert_eq!((i, c), (None, BadRequest), "id {id}");
        }
        // a number JSON itself cannot hold is not JSON to serde
        assert_eq!(code(r#"{"v":1,"id":1e400,"op":"ping"}"#), (None, BadJson));
        assert_eq!(
            parse_request(br#"{"v":1,"id":9007199254740991,"op":"ping"}"#)
                .unwrap()
                .id,
            MAX_ID
        );
        assert_eq!(
            code(r#"{"v":2,"id":5,"op":"ping"}"#),
            (Some(5), UnsupportedVersion)
        );
        assert_eq!(
            code(r#"{"v":"1","id":5,"op":"ping"}"#),
            (Some(5), UnsupportedVersion)
        );
        assert_eq!(code(r#"{"id":5,"op":"ping"}"#), (Some(5), BadRequest));
        assert_eq!(code(r#"{"v":1,"id":5}"#), (Some(5), BadRequest));
        assert_eq!(code(r#"{"v":1,"id":5,"op":7}"#), (Some(5), BadRequest));
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"register"}"#),
            (Some(5), UnknownOp)
        );
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"stop","container":"victim"}"#),
            (Some(5), BadRequest)
        );
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"stop","helper":1,"container":"x"}"#),
            (Some(5), BadRequest)
        );
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"ping","x":1}"#),
            (Some(5), BadRequest)
        );
        for helper in [
            r#""3""#,
            "3.9",
            "-1",
            "0",
            r#""../../victim""#,
            "4294967296",
        ] {
            assert_eq!(
                code(&format!(
                    r#"{{"v":1,"id":5,"op":"stop","helper":{helper}}}"#
                )),
                (Some(5), BadRequest),
                "helper {helper}"
            );
        }
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"send","to":"director","text":"x"}"#),
            (Some(5), BadRequest)
        );
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"send","to":1,"text":{"a":1}}"#),
            (Some(5), BadRequest)
        );
        assert_eq!(
            code(r#"{"v":1,"id":5,"op":"log","follow":"yes"}"#),
            (Some(5), BadRequest)
        );
    }

    #[test]
    fn strings_are_checked() {
        use ErrorCode::*;
        for m in [
            "x; podman rm -f victim",
            "",
            "-rf",
            ".hidden",
            "a b",
            "é",
            &"m".repeat(65),
        ] {
            let line = serde_json::json!({"v":1,"id":1,"op":"spawn","model":m}).to_string();
            assert_eq!(code(&line), (Some(1), BadRequest), "model {m:?}");
        }
        for m in [
            "sonnet",
            "opus",
            "claude-opus-4.1",
            "gpt-5:high",
            &"m".repeat(64),
        ] {
            let line = serde_json::json!({"v":1,"id":1,"op":"spawn","model":m}).to_string();
            assert!(matches!(ok(&line), Op::Spawn { model: Some(_), .. }), "{m}");
        }
        for n in ["a.b", "a/b", "..", "a\\b", "", "-x", "a b"] {
            let line = serde_json::json!({"v":1,"id":1,"op":"fork","name":n}).to_string();
            assert_eq!(code(&line), (Some(1), BadRequest), "fork {n:?}");
        }
        assert!(matches!(
            ok(r#"{"v":1,"id":1,"op":"fork","name":" exp "}"#),
            Op::Fork { name } if name.as_str() == "exp"
        ));
        let line = serde_json::json!({"v":1,"id":1,"op":"hello","client":"x\u{1b}[2J"}).to_string();
        assert_eq!(code(&line), (Some(1), BadRequest));
        // the payload limit counts the encoded form: control characters cost six bytes
        let fits = "a".repeat(MAX_PAYLOAD - 2);
        let line = serde_json::json!({"v":1,"id":1,"op":"broadcast","text":fits}).to_string();
        assert!(matches!(ok(&line), Op::Broadcast { .. }));
        let escapes = "\u{1}".repeat(MAX_PAYLOAD / 6 + 1);
        let line = serde_json::json!({"v":1,"id":1,"op":"send","to":1,"text":escapes}).to_string();
        assert_eq!(code(&line), (Some(1), PayloadTooLarge));
    }

    #[test]
    fn deep_nesting_is_bad_json_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(code(&deep).1, ErrorCode::BadJson);
        let deep_field = format!(
            r#"{{"v":1,"id":1,"op":"ping","x":{}1{}}}"#,
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        assert_eq!(code(&deep_field).1, ErrorCode::BadJson);
    }

    #[test]
    fn replies_and_events_have_their_wire_forms() {
        let r = Reply::error(Some(3), ErrorCode::NotFound, "no helper 9 in this box");
        assert_eq!(
            String::from_utf8(r.to_line()).unwrap(),
            "{\"v\":1,\"id\":3,\"ok\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no helper 9 in this box\"}}\n"
        );
        let r = Reply::ok(4, serde_json::json!({}));
        assert_eq!(
            String::from_utf8(r.to_line()).unwrap(),
            "{\"v\":1,\"id\":4,\"ok\":true,\"result\":{}}\n"
        );
        let e = Event::Dropped { n: 3 };
        assert_eq!(
            String::from_utf8(e.to_line()).unwrap(),
            "{\"v\":1,\"event\":\"dropped\",\"n\":3}\n"
        );
        let line = Event::Log {
            entry: serde_json::json!({"type":"message"}),
        }
        .to_line();
        assert_eq!(
            parse_incoming(&line[..line.len() - 1]),
            Some(Incoming::Event(Event::Log {
                entry: serde_json::json!({"type":"message"})
            }))
        );
        // a reply with fields this client does not know still reads
        assert!(matches!(
            parse_incoming(br#"{"v":1,"id":1,"ok":true,"result":{},"extra":1}"#),
            Some(Incoming::Reply(Reply { ok: true, .. }))
        ));
        for c in [
            ErrorCode::BadJson,
            ErrorCode::TooManyErrors,
            ErrorCode::Unavailable,
            ErrorCode::PeerMismatch,
        ] {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
        assert!(ErrorCode::FrameTooLarge.closes() && !ErrorCode::BadJson.closes());
    }

    /// A deterministic fuzz run of the decoder and the request parser together: random
    /// and mutated frames, chunked at random, must never panic; the decoder keeps its
    /// cap and yields one frame per complete non-blank line (nothing after an
    /// oversized one); every request that parses re-serialises to itself.
    #[test]
    fn fuzz_frames_and_requests() {
        use super::super::frame::{LineDecoder, MAX_FRAME};
        let mut rng = crate::fuzzing::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        let iterations = crate::fuzzing::iterations(100_000);
        let corpus: Vec<&[u8]> = vec![
            br#"{"v":1,"id":1,"op":"ping"}"#,
            br#"{"v":1,"id":2,"op":"hello","client":"kanibako"}"#,
            br#"{"v":1,"id":3,"op":"spawn","depth":2,"breadth":3,"model":"sonnet"}"#,
            br#"{"v":1,"id":4,"op":"stop","helper":3}"#,
            br#"{"v":1,"id":5,"op":"cleanup","helper":1,"cascade":true}"#,
            br#"{"v":1,"id":6,"op":"send","to":0,"text":"done \u00e9"}"#,
            br#"{"v":1,"id":7,"op":"broadcast","text":"all"}"#,
            br#"{"v":1,"id":8,"op":"log","from":1,"last":5,"follow":true}"#,
            br#"{"v":1,"id":9,"op":"fork","name":"exp"}"#,
            br#"{"v":1,"id":10,"op":"respawn","helper":2}"#,
            br#"{"v":1,"id":11,"op":"list"}"#,
        ];
        let alphabet = b"{}[]\":,0123456789-.eE+ \\/tfnulrvidophs\n\r\t\x00\xff\xc3";
        let mut parsed = 0u64;
        for _ in 0..iterations {
            let mut input: Vec<u8> = Vec::new();
            for _ in 0..1 + u64::from(next() % 8 == 0) {
                let mut f = corpus[(next() % corpus.len() as u64) as usize].to_vec();
                match next() % 16 {
                    0 => f.truncate((next() as usize) % (f.len() + 1)),
                    1 | 7 | 8 | 9 => {
                        for _ in 0..1 + next() % 4 {
                            let i = (next() as usize) % f.len();
                            f[i] = alphabet[(next() as usize) % alphabet.len()];
                        }
                    }
                    2 | 10 | 11 => {
                        let i = (next() as usize) % f.len();
                        let extra: Vec<u8> = (0..next() % 12)
                            .map(|_| alphabet[(next() as usize) % alphabet.len()])
                            .collect();
                        f.splice(i..i, extra);
                    }
                    3 | 5 | 6 => f = (0..next() % 200).map(|_| next() as u8).collect(),
                    4 if next() % 8 == 0 => {
                        let depth = (next() % 300) as usize;
                        f = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
                    }
                    _ => {}
                }
                input.extend_from_slice(&f);
                input.push(b'\n');
            }
            // now and then a frame that outgrows the cap, in big chunks
            let step = if next() % 1000 == 0 {
                input.resize(input.len() + MAX_FRAME + 1, b'x');
                4096 + (next() as usize % 8192)
            } else {
                (next() as usize % 97) + 1
            };
            let (mut d, mut out) = (LineDecoder::default(), Vec::new());
            for chunk in input.chunks(step) {
                let (before, was_dead) = (out.len(), d.is_dead());
                d.push(chunk, &mut out);
                assert!(d.buffered() <= MAX_FRAME);
                if was_dead {
                    assert_eq!(out.len(), before);
                }
            }
            if !d.is_dead() {
                let complete = input.split(|&b| b == b'\n').count() - 1;
                let blank = input
                    .split(|&b| b == b'\n')
                    .take(complete)
                    .filter(|l| l.iter().all(u8::is_ascii_whitespace))
                    .count();
                assert_eq!(out.len(), complete - blank);
            }
            for line in out.into_iter().flatten() {
                if let Ok(req) = parse_request(&line) {
                    parsed += 1;
                    let again = serde_json::to_vec(&req).unwrap();
                    assert_eq!(parse_request(&again).unwrap(), req);
                }
            }
        }
        assert!(
            parsed > iterations / 10,
            "the corpus keeps some inputs valid: {parsed}"
        );
    }
}
