//! The rules a tar member must pass before anything of it is written, decided from its
//! header alone (pure, so the fuzz test can throw anything at it).
//!
//! A member's name is split on `/`; empty and `.` parts are dropped, and a `..` part,
//! a leading `/` or a NUL byte refuses the archive. Archives of boxes hold one top
//! directory (the project hash) and every member lies inside it. Only directories,
//! regular files, symbolic links and hard links are allowed: device nodes, FIFOs and
//! anything stranger refuse the archive. A symbolic link must stay inside
//! ([`crate::fstree::link::stays_inside`]); a hard link must name an earlier regular
//! file of the archive. A name may appear once, and nothing may lie below a member
//! that is not a directory (it would be written through a link).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fstree::link::stays_inside;

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberKind {
    Dir,
    File,
    Symlink,
    HardLink,
}

/// The header fields the rules look at.
#[derive(Clone, Copy, Debug)]
pub enum HeaderType {
    Dir,
    File,
    Symlink,
    HardLink,
    /// Anything else, with a word for the message (`a device node`, `a FIFO`).
    Refused(&'static str),
}

impl HeaderType {
    pub fn of(t: tar::EntryType) -> Self {
        use tar::EntryType as T;
        match t {
            T::Regular => HeaderType::File,
            T::Directory => HeaderType::Dir,
            T::Symlink => HeaderType::Symlink,
            T::Link => HeaderType::HardLink,
            T::Char | T::Block => HeaderType::Refused("a device node"),
            T::Fifo => HeaderType::Refused("a FIFO"),
            T::GNUSparse => HeaderType::Refused("a sparse file"),
            _ => HeaderType::Refused("an entry of an unsupported type"),
        }
    }
}

/// What to do with a symbolic link pointing outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideLinks {
    /// Refuse the whole archive (box archives: only a hostile or foreign one has them).
    Refuse,
    /// Leave the link out and say so (vault snapshots: the box made them).
    LeaveOut,
}

/// Why an archive is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub member: String,
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member '{}' {}", self.member, self.why)
    }
}

fn refuse(raw: &[u8], why: impl Into<String>) -> Refusal {
    Refusal {
        member: String::from_utf8_lossy(raw).chars().take(200).collect(),
        why: why.into(),
    }
}

/// The name split into plain parts, or why not.
pub fn split(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.is_empty() {
        return Err("has an empty name");
    }
    if raw[0] == b'/' {
        return Err("has an absolute name");
    }
    if raw.contains(&0) {
        return Err("has a NUL byte in its name");
    }
    let mut parts = Vec::new();
    for p in raw.split(|b| *b == b'/') {
        match p {
            b"" | b"." => {}
            b".." => return Err("has '..' in its name"),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err("has an empty name");
    }
    Ok(parts)
}

fn to_path(parts: &[&[u8]]) -> PathBuf {
    parts.iter().map(|p| OsStr::from_bytes(p)).collect()
}

/// A member that passed, relative to the top directory (or the archive root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The top directory itself.
    Top,
    Write {
        rel: PathBuf,
        kind: MemberKind,
        /// A symbolic link's target, or a hard link's target path (relative, like
        /// `rel`).
        link: Option<Vec<u8>>,
    },
    /// A link left out under [`OutsideLinks::LeaveOut`].
    LeaveOut { rel: PathBuf },
}

/// The rules, applied member by member in archive order.
#[derive(Debug)]
pub struct Checker {
    single_top: bool,
    outside: OutsideLinks,
    top: Option<Vec<u8>>,
    seen: HashMap<PathBuf, MemberKind>,
    /// Paths earlier members lie below (and which therefore are directories).
    parents: HashSet<PathBuf>,
}

impl Checker {
    pub fn new(single_top: bool, outside: OutsideLinks) -> Self {
        Self {
            single_top,
            outside,
            top: None,
            seen: HashMap::new(),
            parents: HashSet::new(),
        }
    }

    /// The top directory's name, once a member showed it.
    pub fn top(&self) -> Option<OsString> {
        self.top.as_ref().map(|t| OsStr::from_bytes(t).to_owned())
    }

    /// The parts below the top directory (checking that it is the one top).
    fn below_top<'a>(
        &mut self,
        raw: &[u8],
        parts: &'a [&'a [u8]],
    ) -> Result<&'a [&'a [u8]], Refusal> {
        if !self.single_top {
            return Ok(parts);
        }
        let first = parts[0];
        match &self.top {
            None => self.top = Some(first.to_vec()),
            Some(t) if t.as_slice() == first => {}
            Some(t) => {
                return Err(refuse(
                    raw,
                    format!(
                        "lies outside the archive's one top directory '{}'",
                        String::from_utf8_lossy(t)
                    ),
                ));
            }
        }
        Ok(&parts[1..])
    }

    pub fn check(
        &mut self,
        raw: &[u8],
        header: HeaderType,
        link: Option<&[u8]>,
    ) -> Result<Verdict, Refusal> {
        let kind = match header {
            HeaderType::Dir => MemberKind::Dir,
            HeaderType::File => MemberKind::File,
            HeaderType::Symlink => MemberKind::Symlink,
            HeaderType::HardLink => MemberKind::HardLink,
            HeaderType::Refused(what) => return Err(refuse(raw, format!("is {what}"))),
        };
        let parts = split(raw).map_err(|why| refuse(raw, why))?;
        let below = self.below_top(raw, &parts)?;
        if below.is_empty() {
            if self.single_top && kind == MemberKind::Dir {
                return Ok(Verdict::Top);
            }
            return Err(refuse(raw, "is not inside the archive's top directory"));
        }
        let rel = to_path(below);
        for n in 1..below.len() {
            let ancestor = to_path(&below[..n]);
            if let Some(k) = self.seen.get(&ancestor)
                && *k != MemberKind::Dir
            {
                return Err(refuse(raw, "lies below a member that is not a directory"));
            }
        }
        if self.seen.contains_key(&rel) {
            return Err(refuse(raw, "appears twice"));
        }
        if kind != MemberKind::Dir && self.parents.contains(&rel) {
            return Err(refuse(
                raw,
                "is not a directory, but earlier members lie below it",
            ));
        }
        let link = match kind {
            MemberKind::Symlink => {
                let target = link.unwrap_or_default();
                if !stays_inside(&rel, target) {
                    match self.outside {
                        OutsideLinks::Refuse => {
                            return Err(refuse(
                                raw,
                                format!(
                                    "is a link pointing outside ({})",
                                    String::from_utf8_lossy(target)
                                ),
                            ));
                        }
                        OutsideLinks::LeaveOut => return Ok(Verdict::LeaveOut { rel }),
                    }
                }
                Some(target.to_vec())
            }
            MemberKind::HardLink => {
                let target = link.unwrap_or_default();
                let tparts = split(target)
                    .map_err(|why| refuse(raw, format!("is a hard link whose target {why}")))?;
                let inside = if self.single_top {
                    (tparts.len() > 1 && Some(tparts[0]) == self.top.as_deref())
                        .then(|| &tparts[1..])
                } else {
                    Some(&tparts[..])
                };
                let trel = inside.map(to_path);
                match trel.as_ref().and_then(|t| self.seen.get(t)) {
                    Some(MemberKind::File | MemberKind::HardLink) => {}
                    _ => {
                        return Err(refuse(
                            raw,
                            "is a hard link to something that is not an earlier file of the archive",
                        ));
                    }
                }
                Some(trel.expect("checked above").into_os_string().into_vec())
            }
            _ => None,
        };
        for n in 1..below.len() {
            self.parents.insert(to_path(&below[..n]));
        }
        self.seen.insert(rel.clone(), kind);
        Ok(Verdict::Write { rel, kind, link })
    }
}

/// `rel` as the bytes a manifest and a hard link record.
pub fn rel_bytes(rel: &Path) -> Vec<u8> {
    rel.as_os_str().as_bytes().to_vec()
}

use std::os::unix::ffi::OsStringExt;

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed() -> Checker {
        Checker::new(true, OutsideLinks::Refuse)
    }

    fn file(c: &mut Checker, name: &str) -> Result<Verdict, Refusal> {
        c.check(name.as_bytes(), HeaderType::File, None)
    }

    #[test]
    fn names() {
        assert_eq!(split(b"./a//b/./c/").unwrap(), [b"a" as &[u8], b"b", b"c"]);
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"a/../b",
            b"..",
            b"a\0b",
            b"./",
            b"//",
        ] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_top_directory() {
        let mut c = boxed();
        assert_eq!(
            c.check(b"abc/", HeaderType::Dir, None).unwrap(),
            Verdict::Top
        );
        assert!(matches!(
            file(&mut c, "abc/project.yaml").unwrap(),
            Verdict::Write {
                kind: MemberKind::File,
                ..
            }
        ));
        assert!(
            file(&mut c, "other/x")
                .unwrap_err()
                .why
                .contains("top directory")
        );
        assert!(file(&mut Checker::new(true, OutsideLinks::Refuse), "loose").is_err());
        assert_eq!(c.top(), Some(OsString::from("abc")));
    }

    #[test]
    fn refused_members() {
        let mut c = boxed();
        for (name, t, link, why) in [
            (
                "h/dev",
                HeaderType::Refused("a device node"),
                None,
                "device",
            ),
            ("h/fifo", HeaderType::Refused("a FIFO"), None, "FIFO"),
            ("/h/abs", HeaderType::File, None, "absolute"),
            ("h/../x", HeaderType::File, None, ".."),
            (
                "h/l",
                HeaderType::Symlink,
                Some(&b"/etc/passwd"[..]),
                "outside",
            ),
            (
                "h/l2",
                HeaderType::Symlink,
                Some(&b"../../x"[..]),
                "outside",
            ),
            (
                "h/hl",
                HeaderType::HardLink,
                Some(&b"/etc/shadow"[..]),
                "hard link",
            ),
            (
                "h/hl2",
                HeaderType::HardLink,
                Some(&b"h/missing"[..]),
                "hard link",
            ),
        ] {
            let e = c.check(name.as_bytes(), t, link).unwrap_err();
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
    }

    #[test]
    fn nothing_below_a_link_and_no_name_twice() {
        let mut c = boxed();
        c.check(b"h/d/", HeaderType::Dir, None).unwrap();
        c.check(b"h/l", HeaderType::Symlink, Some(b"d")).unwrap();
        assert!(file(&mut c, "h/l/x").unwrap_err().why.contains("below"));
        file(&mut c, "h/f").unwrap();
        assert!(file(&mut c, "h/f").unwrap_err().why.contains("twice"));
        file(&mut c, "h/implicit/child").unwrap();
        let e = c
            .check(b"h/implicit", HeaderType::Symlink, Some(b"d"))
            .unwrap_err();
        assert!(e.why.contains("below it"), "{e}");
        c.check(b"h/implicit", HeaderType::Dir, None).unwrap();
        // a hard link to an earlier file is fine, to a directory or link is not
        assert!(matches!(
            c.check(b"h/copy", HeaderType::HardLink, Some(b"h/f")).unwrap(),
            Verdict::Write { link: Some(ref t), .. } if t == b"f"
        ));
        assert!(c.check(b"h/x", HeaderType::HardLink, Some(b"h/d")).is_err());
        assert!(c.check(b"h/y", HeaderType::HardLink, Some(b"h/l")).is_err());
    }

    #[test]
    fn leave_out_instead_of_refusing() {
        let mut c = Checker::new(false, OutsideLinks::LeaveOut);
        assert!(matches!(
            c.check(b"abs", HeaderType::Symlink, Some(b"/etc")).unwrap(),
            Verdict::LeaveOut { .. }
        ));
        assert!(matches!(
            c.check(b"sub/rel", HeaderType::Symlink, Some(b"../abs"))
                .unwrap(),
            Verdict::Write { .. }
        ));
        assert!(file(&mut c, "plain").is_ok(), "no top directory needed");
    }
}
