//! The box's message log (`helper-messages.jsonl`, upstream's name and line format) and
//! the JSON-lines file it and the hub's own audit log are written to: bounded (rotated
//! to one `.1` file, as upstream does), 0600, opened without following links.
//!
//! The log is the mailbox: every `send`/`broadcast` is appended here, `crab helper log`
//! reads it back through the hub (the file itself is never mounted into a box), and a
//! follower gets new entries as they are written.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::member::Member;

/// A JSON-lines file that rotates to `<path>.1` once it reaches `max_bytes`.
#[derive(Debug)]
pub struct JsonlFile {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    size: u64,
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Open for appending: created 0600, never through a link, never a FIFO or device.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl JsonlFile {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            file,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Append one line; `Ok(true)` when the file was rotated after it.
    pub fn append(&mut self, value: &Value) -> io::Result<bool> {
        let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        if self.size < self.max_bytes {
            return Ok(false);
        }
        // rename replaces a link at `.1` itself, never what it points to
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(true)
    }
}

/// The most of one file [`read_entries`] looks at (a log written by someone else may
/// have grown past the rotation size).
const READ_CAP: u64 = 4 * 1024 * 1024;

fn read_tail(path: &Path) -> Vec<u8> {
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)
    else {
        return Vec::new();
    };
    let Ok(meta) = f.metadata() else {
        return Vec::new();
    };
    if !meta.file_type().is_file() {
        return Vec::new();
    }
    let mut skip_partial = false;
    if meta.len() > READ_CAP {
        if f.seek(SeekFrom::Start(meta.len() - READ_CAP)).is_err() {
            return Vec::new();
        }
        skip_partial = true;
    }
    let mut buf = Vec::new();
    let _ = f.take(READ_CAP).read_to_end(&mut buf);
    if skip_partial {
        let start = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        buf.drain(..start);
    }
    buf
}

/// Every entry of the log at `path` (its rotated file first), oldest first. Lines that
/// are not JSON objects are skipped.
pub fn read_entries(path: &Path) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for p in [rotated(path), path.to_owned()] {
        for line in read_tail(&p).split(|&b| b == b'\n') {
            if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(line) {
                out.push(m);
            }
        }
    }
    out
}

/// The hub's own log: one JSON line per lifecycle event, refusal or engine failure.
/// Opening or writing it never fails the hub (a full disk must not stop the box's team).
#[derive(Debug, Default)]
pub struct HubLog {
    file: std::sync::Mutex<Option<JsonlFile>>,
    /// Whether stdout and stderr follow the file across rotations (the daemon's).
    stdio: bool,
}

impl HubLog {
    pub fn open(path: &Path, max_bytes: u64, stdio: bool) -> Self {
        let log = Self {
            file: std::sync::Mutex::new(JsonlFile::open(path, max_bytes).ok()),
            stdio,
        };
        log.redirect();
        log
    }

    /// A log that writes nowhere.
    pub fn none() -> Self {
        Self::default()
    }

    fn redirect(&self) {
        if !self.stdio {
            return;
        }
        if let Ok(g) = self.file.lock()
            && let Some(f) = g.as_ref()
        {
            let _ = (std::io::stdout().flush(), std::io::stderr().flush());
            let _ = nix::unistd::dup2_stdout(f.file());
            let _ = nix::unistd::dup2_stderr(f.file());
        }
    }

    pub fn event(&self, event: &str, fields: Value) {
        let mut m = Map::new();
        m.insert("ts".into(), json!(crate::clock::now_iso()));
        m.insert("pid".into(), json!(std::process::id()));
        m.insert("event".into(), json!(event));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        let rotated = match self.file.lock() {
            Ok(mut g) => match g.as_mut() {
                Some(f) => f.append(&Value::Object(m)).unwrap_or(false),
                None => false,
            },
            Err(_) => false,
        };
        if rotated {
            self.redirect();
        }
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    One(Member),
    All,
}

/// The message log of one box.
#[derive(Debug)]
pub struct MessageLog {
    file: JsonlFile,
}

impl MessageLog {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        Ok(Self {
            file: JsonlFile::open(path, max_bytes)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Append a message (the sender is the hub's word, never the client's) and return
    /// the entry as written.
    pub fn message(&mut self, from: Member, to: Recipient, text: &str) -> io::Result<Value> {
        let to = match to {
            Recipient::One(m) => json!(m.number()),
            Recipient::All => json!("all"),
        };
        let entry = json!({
            "type": "message",
            "from": from.number(),
            "to": to,
            "payload": {"text": text},
            "ts": crate::clock::now_iso(),
        });
        self.file.append(&entry)?;
        Ok(entry)
    }

    /// Append a control entry (`spawn`, `stop`, `cleanup`, `respawn`, `fork`).
    pub fn control(&mut self, event: &str, fields: Map<String, Value>) -> io::Result<Value> {
        let mut m = Map::new();
        m.insert("type".into(), json!("control"));
        m.insert("event".into(), json!(event));
        m.extend(fields);
        m.insert("ts".into(), json!(crate::clock::now_iso()));
        let entry = Value::Object(m);
        self.file.append(&entry)?;
        Ok(entry)
    }
}

fn number(m: &Map<String, Value>, key: &str) -> Option<u64> {
    m.get(key).and_then(Value::as_u64)
}

/// Whether `who` may read `entry`. The director reads everything; a helper reads
/// messages from or to it and broadcasts, and control entries about itself, helpers it
/// spawned, and `below` (its descendants when it asked).
pub fn visible(entry: &Map<String, Value>, who: Member, below: &BTreeSet<u32>) -> bool {
    let Member::Helper(me) = who else {
        return true;
    };
    let me = u64::from(me);
    match entry.get("type").and_then(Value::as_str) {
        Some("message") => {
            number(entry, "from") == Some(me)
                || number(entry, "to") == Some(me)
                || entry.get("to").and_then(Value::as_str) == Some("all")
        }
        Some("control") => {
            let helper = number(entry, "helper");
            helper == Some(me)
                || number(entry, "parent") == Some(me)
                || helper.is_some_and(|h| u32::try_from(h).is_ok_and(|h| below.contains(&h)))
        }
        _ => false,
    }
}

/// `--from N`: entries sent by N, or control entries about helper N.
pub fn from_matches(entry: &Map<String, Value>, from: Option<u32>) -> bool {
    let Some(n) = from.map(u64::from) else {
        return true;
    };
    match entry.get("type").and_then(Value::as_str) {
        Some("message") => number(entry, "from") == Some(n),
        _ => number(entry, "helper") == Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_at_its_size_and_keeps_one_older_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("logs/app/helper-messages.jsonl");
        let mut log = MessageLog::open(&p, 400).unwrap();
        for i in 0..20 {
            log.message(
                Member::Helper(1),
                Recipient::One(Member::Director),
                &format!("m{i}"),
            )
            .unwrap();
        }
        let size = std::fs::metadata(&p).unwrap().len();
        let old = std::fs::metadata(rotated(&p)).unwrap().len();
        assert!(size < 400 && (400..600).contains(&old), "{size} {old}");
        let entries = read_entries(&p);
        assert!(
            entries.len() < 20,
            "the oldest went with the second rotation"
        );
        assert_eq!(
            entries.last().unwrap()["payload"]["text"],
            json!("m19"),
            "the newest is last"
        );
        for f in [&p, &rotated(&p)] {
            assert_eq!(std::fs::metadata(f).unwrap().mode() & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn entries_have_upstreams_format() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        let mut log = MessageLog::open(&p, 1 << 20).unwrap();
        log.message(Member::Director, Recipient::All, "all hands")
            .unwrap();
        let mut f = Map::new();
        f.insert("helper".into(), json!(1));
        f.insert("model".into(), Value::Null);
        log.control("spawn", f).unwrap();
        let e = read_entries(&p);
        assert_eq!(e[0]["type"], "message");
        assert_eq!(e[0]["from"], 0);
        assert_eq!(e[0]["to"], "all");
        assert_eq!(e[0]["payload"], json!({"text": "all hands"}));
        let ts = e[0]["ts"].as_str().unwrap();
        assert!(ts.ends_with("+00:00") && ts.len() == 32, "{ts}");
        assert_eq!(e[1]["event"], "spawn");
        assert_eq!(e[1]["model"], Value::Null);
    }

    #[test]
    fn a_planted_link_or_fifo_is_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let p = d.path().join("log.jsonl");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        assert!(MessageLog::open(&p, 100).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(read_entries(&p).is_empty());
        let fifo = d.path().join("fifo.jsonl");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(MessageLog::open(&fifo, 100).is_err(), "not a regular file");
        assert!(read_entries(&fifo).is_empty(), "and reading does not block");
    }

    #[test]
    fn foreign_lines_and_a_huge_file_are_read_safely() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        let mut text = String::from("not json\n[1]\n{\"type\":\"message\",\"from\":1}\n");
        text.push_str(&"x".repeat((READ_CAP + 10) as usize));
        text.push_str("\n{\"type\":\"message\",\"from\":2}\n");
        std::fs::write(&p, text).unwrap();
        let e = read_entries(&p);
        assert_eq!(e.len(), 1, "only the tail of an oversized file is read");
        assert_eq!(e[0]["from"], 2);
    }

    #[test]
    fn who_reads_what() {
        let e = |v: Value| v.as_object().unwrap().clone();
        let to_director = e(json!({"type":"message","from":1,"to":0}));
        let to_two = e(json!({"type":"message","from":0,"to":2}));
        let all = e(json!({"type":"message","from":3,"to":"all"}));
        let spawn3 = e(json!({"type":"control","event":"spawn","helper":3,"parent":1}));
        let spawn4 = e(json!({"type":"control","event":"spawn","helper":4,"parent":3}));
        let none = BTreeSet::new();
        for x in [&to_director, &to_two, &all, &spawn3] {
            assert!(visible(x, Member::Director, &none));
        }
        let h1 = Member::Helper(1);
        assert!(visible(&to_director, h1, &none));
        assert!(!visible(&to_two, h1, &none));
        assert!(visible(&all, h1, &none));
        assert!(visible(&spawn3, h1, &none), "it spawned 3");
        assert!(!visible(&spawn4, h1, &none));
        assert!(visible(&spawn4, h1, &BTreeSet::from([3, 4])));
        assert!(from_matches(&to_director, Some(1)));
        assert!(!from_matches(&to_two, Some(1)));
        assert!(from_matches(&spawn3, Some(3)));
        assert!(from_matches(&to_two, None));
    }
}
