//! The manifest: one line per member below the top directory, with the sha256 of what
//! it holds (a file's content, a link's target text; a hard link's, that of the file
//! it names; directories none). It is written into the info file, indented, after the
//! line `Manifest sha256:`; the Python tool reads only `Key: value` lines that are not
//! indented, so it ignores the manifest (and deletes the info file after extracting).
//!
//! ```text
//! Manifest sha256:
//!   d - shell
//!   f 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae shell/.bashrc
//!   l 9d8e… shell/.local/bin/tool
//! ```
//!
//! Names are written byte for byte, except that `\` becomes `\\` and any byte outside
//! printable ASCII becomes `\xHH`, so every name fits on its line and reads back the
//! same.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::member::MemberKind;

/// The line that starts the manifest in the info file.
pub const HEADER: &str = "Manifest sha256:";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The path below the top directory, `/`-separated.
    pub path: Vec<u8>,
    pub kind: MemberKind,
    pub sha256: Option<[u8; 32]>,
}

impl Record {
    pub fn new(path: Vec<u8>, kind: MemberKind, sha256: Option<[u8; 32]>) -> Self {
        Self { path, kind, sha256 }
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn kind_char(k: MemberKind) -> char {
    match k {
        MemberKind::Dir => 'd',
        MemberKind::File => 'f',
        MemberKind::Symlink => 'l',
        MemberKind::HardLink => 'h',
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub fn escape(path: &[u8]) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let h = s.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The manifest section, `HEADER` line included, records sorted.
pub fn render(records: &[Record]) -> String {
    let mut sorted = records.to_vec();
    sorted.sort();
    let mut out = format!("{HEADER}\n");
    for r in &sorted {
        let sum = r.sha256.map_or_else(|| "-".to_owned(), |h| hex(&h));
        let _ = writeln!(out, "  {} {sum} {}", kind_char(r.kind), escape(&r.path));
    }
    out
}

/// The records of the manifest lines (those after `HEADER`, without it). A line that
/// is not one is an error naming it.
pub fn parse_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    for line in lines {
        let bad = || {
            format!(
                "bad manifest line: {}",
                line.chars().take(120).collect::<String>()
            )
        };
        let rest = line.strip_prefix("  ").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, ' ');
        let (k, sum, path) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        let kind = match k {
            "d" => MemberKind::Dir,
            "f" => MemberKind::File,
            "l" => MemberKind::Symlink,
            "h" => MemberKind::HardLink,
            _ => return Err(bad()),
        };
        let sha256 = match (kind, sum) {
            (MemberKind::Dir, "-") => None,
            (MemberKind::Dir, _) => return Err(bad()),
            (_, s) => Some(unhex(s).ok_or_else(bad)?),
        };
        let path = unescape(path).filter(|p| !p.is_empty()).ok_or_else(bad)?;
        out.push(Record { path, kind, sha256 });
    }
    out.sort();
    Ok(out)
}

/// The first difference between what the manifest lists and what the archive held,
/// as a sentence; `None` when they agree.
pub fn difference(listed: &[Record], found: &[Record]) -> Option<String> {
    let mut a = listed.to_vec();
    let mut b = found.to_vec();
    a.sort();
    b.sort();
    let name = |r: &Record| escape(&r.path);
    let mut ia = a.iter().peekable();
    let mut ib = b.iter().peekable();
    loop {
        match (ia.peek(), ib.peek()) {
            (None, None) => return None,
            (Some(x), None) => return Some(format!("{} is listed but missing", name(x))),
            (None, Some(y)) => return Some(format!("{} is not listed", name(y))),
            (Some(x), Some(y)) => match x.path.cmp(&y.path) {
                std::cmp::Ordering::Less => {
                    return Some(format!("{} is listed but missing", name(x)));
                }
                std::cmp::Ordering::Greater => return Some(format!("{} is not listed", name(y))),
                std::cmp::Ordering::Equal if x != y => {
                    return Some(format!("{} differs from its manifest line", name(x)));
                }
                std::cmp::Ordering::Equal => {
                    ia.next();
                    ib.next();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let recs = vec![
            Record::new(
                b"shell/.bashrc".to_vec(),
                MemberKind::File,
                Some(sha256(b"x")),
            ),
            Record::new(b"shell".to_vec(), MemberKind::Dir, None),
            Record::new(
                b"odd \\ name\n\xff".to_vec(),
                MemberKind::Symlink,
                Some(sha256(b"t")),
            ),
            Record::new(b" lead".to_vec(), MemberKind::HardLink, Some(sha256(b"x"))),
        ];
        let text = render(&recs);
        assert!(text.starts_with("Manifest sha256:\n  h "), "{text}");
        assert!(text.contains("  d - shell\n"));
        assert!(text.contains("odd \\\\ name\\x0a\\xff\n"), "{text}");
        let back = parse_lines(text.lines().skip(1)).unwrap();
        let mut want = recs.clone();
        want.sort();
        assert_eq!(back, want);
        assert_eq!(difference(&back, &recs), None);
    }

    #[test]
    fn differences_are_named() {
        let f = |p: &str, c: &[u8]| {
            Record::new(p.as_bytes().to_vec(), MemberKind::File, Some(sha256(c)))
        };
        let listed = vec![f("a", b"1"), f("b", b"2")];
        assert_eq!(
            difference(&listed, &[f("a", b"1")]).unwrap(),
            "b is listed but missing"
        );
        assert_eq!(
            difference(&listed, &[f("a", b"1"), f("b", b"2"), f("c", b"")]).unwrap(),
            "c is not listed"
        );
        assert_eq!(
            difference(&listed, &[f("a", b"1"), f("b", b"changed")]).unwrap(),
            "b differs from its manifest line"
        );
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "f abc x",
            "  q - x",
            "  d abc x",
            "  f 12 x",
            "  f - x",
            "  d - ",
            "  d - \\q",
            "  d - \\x4",
            "  d",
            "  f é x",
        ] {
            assert!(parse_lines([bad].into_iter()).is_err(), "{bad:?}");
        }
        assert_eq!(unescape("\\x4g"), None);
        assert_eq!(unescape("a\\"), None);
    }
}
