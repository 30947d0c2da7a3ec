//! The egress decision log: one JSON line per proxy connection (who asked for what,
//! the decision and the rule behind it, bytes each way, how long), the source of
//! `box net log` and of learn mode's proposals.
//!
//! Bounded (the file is rotated to `<log>.1` past a size, so at most two files of
//! that size exist), mode 0600, and never opened through a symbolic link or onto
//! anything but a regular file. Writing never fails the connection it describes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One connection's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// UTC, ISO 8601, when the connection was accepted.
    pub time: String,
    /// The box member whose socket took the connection (`director`, `h1`, …).
    pub member: String,
    /// `CONNECT`, `GET`, …; empty when the head never parsed.
    pub method: String,
    pub host: String,
    pub port: u16,
    /// `allow`, `learn` (allowed because learn mode is on), `deny` or `error`.
    pub decision: String,
    /// Why, as a code: `rule`, `no_rule`, `ip_literal`, `non_public`, `bad_request`, …
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The address connected to (or refused), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The status the proxy answered with (200 for an opened tunnel; 0 when the
    /// origin answered a forwarded request).
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub ms: u64,
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
}

/// Where records go.
pub struct Journal {
    writer: Option<Mutex<Writer>>,
    max_bytes: u64,
}

/// The default size past which the log is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;

fn open_log(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // O_NONBLOCK: a FIFO planted at the path must not block the open
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// `<log>.1`, the rotated file.
pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

impl Journal {
    /// Append to `path`, rotating past `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Journal> {
        let file = open_log(path)?;
        let size = file.metadata()?.len();
        Ok(Journal {
            writer: Some(Mutex::new(Writer {
                path: path.to_owned(),
                file,
                size,
            })),
            max_bytes: max_bytes.max(1024),
        })
    }

    /// A journal that keeps nothing.
    pub fn discard() -> Journal {
        Journal {
            writer: None,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    pub fn write(&self, record: &Record) {
        tracing::debug!(
            member = %record.member, host = %record.host, port = record.port,
            decision = %record.decision, reason = %record.reason, "egress"
        );
        let Some(w) = &self.writer else { return };
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        let Ok(mut w) = w.lock() else { return };
        if w.size + line.len() as u64 > self.max_bytes && w.size > 0 {
            // rename never follows a link at either end; a failed rotation truncates
            let old = rotated(&w.path);
            let reopened = fs::rename(&w.path, &old).and_then(|()| open_log(&w.path));
            match reopened {
                Ok(f) => w.file = f,
                Err(e) => {
                    tracing::warn!("rotating {}: {e}", w.path.display());
                    let _ = w.file.set_len(0);
                }
            }
            w.size = 0;
        }
        match w.file.write_all(&line) {
            Ok(()) => w.size += line.len() as u64,
            Err(e) => tracing::warn!("writing {}: {e}", w.path.display()),
        }
    }
}

/// The records in `path` and its rotated predecessor, oldest first. Lines that do not
/// parse are skipped; a missing file is an empty log.
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in [rotated(path), path.to_owned()] {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(&p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !file.metadata()?.is_file() {
            continue;
        }
        let mut text = String::new();
        // bounded: a log is at most its rotation size, and this is generous
        file.take(64 << 20).read_to_string(&mut text).or_else(|_| {
            text.clear();
            Ok::<usize, io::Error>(0)
        })?;
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Record>(l).ok()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host: &str) -> Record {
        Record {
            time: "t".into(),
            member: "director".into(),
            host: host.into(),
            port: 443,
            decision: "allow".into(),
            ..Default::default()
        }
    }

    #[test]
    fn lines_are_json_and_the_file_is_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("egress.log");
        let j = Journal::open(&p, DEFAULT_MAX_BYTES).unwrap();
        j.write(&rec("a.test"));
        j.write(&rec("b.test"));
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        for k in [
            "time",
            "member",
            "host",
            "port",
            "decision",
            "reason",
            "bytes_up",
            "bytes_down",
            "ms",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = read(&p).unwrap();
        assert_eq!(back, vec![rec("a.test"), rec("b.test")]);
    }

    #[test]
    fn an_existing_loose_file_is_tightened() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("egress.log");
        fs::write(&p, "").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        Journal::open(&p, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn it_is_bounded_by_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("egress.log");
        let j = Journal::open(&p, 4096).unwrap();
        for i in 0..500 {
            j.write(&rec(&format!("h{i}.test")));
        }
        let a = fs::metadata(&p).unwrap().len();
        let b = fs::metadata(rotated(&p)).unwrap().len();
        assert!(a <= 4096 && b <= 4096, "{a} {b}");
        let back = read(&p).unwrap();
        assert_eq!(back.last().unwrap().host, "h499.test");
        assert!(back.len() < 500 && back.len() > 20);
        let hosts: Vec<_> = back.iter().map(|r| r.host.clone()).collect();
        let mut sorted = hosts.clone();
        sorted.sort_by_key(|h| h[1..h.len() - 5].parse::<u32>().unwrap());
        assert_eq!(hosts, sorted, "oldest first");
    }

    #[test]
    fn links_and_non_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let p = d.path().join("egress.log");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        assert!(Journal::open(&p, DEFAULT_MAX_BYTES).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(Journal::open(&fifo, DEFAULT_MAX_BYTES).is_err());
        assert!(Journal::open(d.path(), DEFAULT_MAX_BYTES).is_err());
    }

    #[test]
    fn reading_skips_junk_and_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("egress.log");
        assert!(read(&p).unwrap().is_empty());
        fs::write(&p, "not json\n{\"host\":\"a.test\",\"port\":443}\n\n{").unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].host.as_str(), r[0].port), ("a.test", 443));
    }

    #[test]
    fn discard_keeps_nothing() {
        Journal::discard().write(&rec("a.test"));
    }
}
