//! Reading a tar stream into a directory under [`super::member`]'s rules, streaming
//! (memory holds the member table, never a member's content, except the small files
//! asked to be captured). The destination is a fresh private directory: the caller
//! renames it into place only when everything passed, and removes it otherwise.
//!
//! Links are created last, after every file and directory: until then nothing in the
//! destination is a link, so no write can be steered through one, and the rules keep
//! any member from lying below a link.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::Record;
use super::member::{Checker, HeaderType, MemberKind, OutsideLinks, Refusal, Verdict, rel_bytes};
use crate::fstree::Dir;
use crate::fstree::copy::system_time;

/// The most a captured member (the info file) may hold.
pub const MAX_CAPTURE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("the archive is refused: {0}")]
    Refused(Refusal),
    #[error("the archive is refused: {0}")]
    Invalid(String),
    #[error("reading the archive: {0}")]
    Read(io::Error),
    #[error("writing {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("interrupted; nothing was changed")]
    Interrupted,
}

/// How a stream is to be read.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// Every member inside one top directory, which is not itself written.
    pub single_top: bool,
    pub outside_links: OutsideLinks,
    /// Paths (below the top) whose content is returned instead of written.
    pub capture: &'a [&'a str],
    /// Paths neither written nor recorded (another machine's runtime files).
    pub drop: &'a [&'a str],
    /// Paths written `0600` whatever the archive says (credentials).
    pub secret: &'a [&'a str],
}

/// What a stream held.
#[derive(Debug, Default)]
pub struct Unpacked {
    pub top: Option<std::ffi::OsString>,
    /// One record per member written.
    pub records: Vec<Record>,
    pub captured: Vec<(String, Vec<u8>)>,
    /// Links left out under `OutsideLinks::LeaveOut`.
    pub left_out: Vec<PathBuf>,
    pub bytes: u64,
}

impl Unpacked {
    pub fn captured(&self, name: &str) -> Option<&[u8]> {
        self.captured
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.as_slice())
    }
}

struct Writer<'d> {
    root: &'d Dir,
    /// The last parent directory opened, by its path below the root.
    cached: Option<(PathBuf, Dir)>,
}

impl Writer<'_> {
    fn err(&self, rel: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
        let path = self.root.path().join(rel);
        move |source| UnpackError::Write { path, source }
    }

    /// The (real) directory `rel`, made where missing.
    fn dir(&mut self, rel: &Path) -> Result<Dir, UnpackError> {
        if let Some((p, d)) = &self.cached
            && p == rel
        {
            return d.try_clone().map_err(self.err(rel));
        }
        let mut cur = self.root.try_clone().map_err(self.err(rel))?;
        for part in rel.iter() {
            cur = cur.ensure_dir(part, 0o700).map_err(self.err(rel))?;
        }
        self.cached = Some((rel.to_owned(), cur.try_clone().map_err(self.err(rel))?));
        Ok(cur)
    }
}

fn split_rel(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

/// Copy `n` bytes of `r` into `w`, hashing them; fewer bytes is an error.
fn copy_hashed(
    r: &mut dyn Read,
    w: &mut dyn io::Write,
    check: &dyn Fn() -> io::Result<()>,
) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        check()?;
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((h.finalize().into(), total))
}

/// Unpack the tar stream `input` into `dst`.
pub fn unpack(
    input: impl Read,
    dst: &Dir,
    rules: &Rules<'_>,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Unpacked, UnpackError> {
    let interrupted = |e: io::Error| {
        if crate::interrupt::is_interrupt(&e) {
            UnpackError::Interrupted
        } else {
            UnpackError::Read(e)
        }
    };
    let mut archive = tar::Archive::new(input);
    let mut checker = Checker::new(rules.single_top, rules.outside_links);
    let mut w = Writer {
        root: dst,
        cached: None,
    };
    let mut out = Unpacked::default();
    let mut file_sums: HashMap<PathBuf, [u8; 32]> = HashMap::new();
    let mut links: Vec<(PathBuf, MemberKind, Vec<u8>)> = Vec::new();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        check().map_err(interrupted)?;
        let mut entry = entry.map_err(UnpackError::Read)?;
        let header = HeaderType::of(entry.header().entry_type());
        let raw = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let verdict = checker
            .check(&raw, header, link.as_deref())
            .map_err(UnpackError::Refused)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mtime = entry.header().mtime().unwrap_or(0);
        let (rel, kind, link) = match verdict {
            Verdict::Top => {
                dir_modes.push((PathBuf::new(), mode | 0o700));
                continue;
            }
            Verdict::LeaveOut { rel } => {
                out.left_out.push(rel);
                continue;
            }
            Verdict::Write { rel, kind, link } => (rel, kind, link),
        };
        let rel_str = rel.to_string_lossy();
        if rules.drop.iter().any(|d| *d == rel_str) {
            continue;
        }
        if rules.capture.iter().any(|c| *c == rel_str) {
            if kind != MemberKind::File {
                return Err(UnpackError::Invalid(format!(
                    "{rel_str} is not a regular file"
                )));
            }
            let mut content = Vec::new();
            (&mut entry)
                .take(MAX_CAPTURE + 1)
                .read_to_end(&mut content)
                .map_err(interrupted)?;
            if content.len() as u64 > MAX_CAPTURE {
                return Err(UnpackError::Invalid(format!(
                    "{rel_str} is larger than {} MiB",
                    MAX_CAPTURE >> 20
                )));
            }
            out.captured.push((rel_str.into_owned(), content));
            continue;
        }
        match kind {
            MemberKind::Dir => {
                w.dir(&rel)?;
                dir_modes.push((rel.clone(), mode | 0o700));
                out.records.push(Record::new(rel_bytes(&rel), kind, None));
            }
            MemberKind::File => {
                let (parent, name) = split_rel(&rel);
                let d = w.dir(parent)?;
                let mut f = d.create_file(name, 0o600).map_err(w.err(&rel))?;
                let (sum, n) = copy_hashed(&mut entry, &mut f, check).map_err(|e| {
                    if crate::interrupt::is_interrupt(&e) {
                        UnpackError::Interrupted
                    } else {
                        UnpackError::Write {
                            path: dst.path().join(&rel),
                            source: e,
                        }
                    }
                })?;
                let secret = rules.secret.iter().any(|s| *s == rel_str);
                let mode = if secret { 0o600 } else { mode | 0o600 };
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(w.err(&rel))?;
                let mtime = i64::try_from(mtime).unwrap_or(0);
                let _ = f.set_times(std::fs::FileTimes::new().set_modified(system_time(mtime, 0)));
                out.bytes += n;
                file_sums.insert(rel.clone(), sum);
                out.records
                    .push(Record::new(rel_bytes(&rel), kind, Some(sum)));
            }
            MemberKind::Symlink | MemberKind::HardLink => {
                let target = link.unwrap_or_default();
                let sum = match kind {
                    MemberKind::Symlink => super::manifest::sha256(&target),
                    _ => *file_sums
                        .get(Path::new(OsStr::from_bytes(&target)))
                        .ok_or_else(|| {
                            UnpackError::Invalid(format!("{rel_str}: hard link target missing"))
                        })?,
                };
                if kind == MemberKind::HardLink {
                    file_sums.insert(rel.clone(), sum);
                }
                out.records
                    .push(Record::new(rel_bytes(&rel), kind, Some(sum)));
                links.push((rel, kind, target));
            }
        }
    }
    for (rel, kind, target) in links {
        check().map_err(interrupted)?;
        let (parent, name) = split_rel(&rel);
        let d = w.dir(parent)?;
        match kind {
            MemberKind::Symlink => d.symlink(OsStr::from_bytes(&target), name),
            _ => {
                let tpath = PathBuf::from(OsStr::from_bytes(&target));
                let (tparent, tname) = split_rel(&tpath);
                let td = w.dir(tparent)?;
                d.hard_link(name, &td, tname)
            }
        }
        .map_err(w.err(&rel))?;
    }
    // Deepest first, so a read-only directory is closed only after its children.
    dir_modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (rel, mode) in dir_modes {
        let d = w.dir(&rel)?;
        d.chmod_self(mode).map_err(w.err(&rel))?;
    }
    out.top = checker.top();
    if rules.single_top && out.top.is_none() {
        return Err(UnpackError::Invalid("it is empty".into()));
    }
    Ok(out)
}

/// The xz decoder for archives: multi-threaded, and refusing a stream that would need
/// more than 1 GiB to decode (a hostile header can ask for that much).
pub fn xz_reader<R: Read>(input: R) -> io::Result<liblzma::read::XzDecoder<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(u32::try_from(threads).unwrap_or(1))
        .memlimit_threading(256 << 20)
        .memlimit_stop(1 << 30)
        .decoder()
        .map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(input, stream))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    pub fn tar_of(members: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, t, data, link) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // bypass the builder's own path checks: hostile names are the point
            let nb = name.as_bytes();
            h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
            if let Some(l) = link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const BOX: Rules<'static> = Rules {
        single_top: true,
        outside_links: OutsideLinks::Refuse,
        capture: &["kanibako-archive-info.txt"],
        drop: &[".kanibako.lock"],
        secret: &["env"],
    };

    fn ok() -> io::Result<()> {
        Ok(())
    }

    #[test]
    fn a_good_archive_lands_whole() {
        use tar::EntryType as T;
        let data = tar_of(&[
            ("h/", T::Directory, b"", None),
            ("h/shell/", T::Directory, b"", None),
            ("h/shell/.bashrc", T::Regular, b"rc", None),
            ("h/shell/l", T::Symlink, b"", Some(".bashrc")),
            ("h/shell/same", T::Link, b"", Some("h/shell/.bashrc")),
            ("h/env", T::Regular, b"TOKEN=x", None),
            ("h/.kanibako.lock", T::Regular, b"old", None),
            (
                "h/kanibako-archive-info.txt",
                T::Regular,
                b"Project path: /p",
                None,
            ),
        ]);
        let t = tempfile::tempdir().unwrap();
        let u = unpack(&data[..], &Dir::open(t.path()).unwrap(), &BOX, &ok).unwrap();
        assert_eq!(u.top.as_deref(), Some(OsStr::new("h")));
        assert_eq!(
            u.captured("kanibako-archive-info.txt").unwrap(),
            b"Project path: /p"
        );
        assert_eq!(fs::read_to_string(t.path().join("shell/l")).unwrap(), "rc");
        assert!(t.path().join("shell/l").is_symlink());
        assert_eq!(
            fs::read_to_string(t.path().join("shell/same")).unwrap(),
            "rc"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(t.path().join("env"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(!t.path().join(".kanibako.lock").exists());
        assert!(!t.path().join("kanibako-archive-info.txt").exists());
        assert_eq!(u.records.len(), 5);
    }

    #[test]
    fn a_hostile_member_stops_it() {
        use tar::EntryType as T;
        for bad in [
            vec![
                ("h/", T::Directory, &b""[..], None),
                ("h/../../x", T::Regular, b"x", None),
            ],
            vec![
                ("h/l", T::Symlink, b"", Some("/etc")),
                ("h/l/x", T::Regular, b"x", None),
            ],
            vec![("h/fifo", T::Fifo, b"", None)],
            vec![
                ("h/a", T::Regular, b"1", None),
                ("h/a", T::Regular, b"2", None),
            ],
            vec![("h/hl", T::Link, b"", Some("/etc/passwd"))],
        ] {
            let t = tempfile::tempdir().unwrap();
            let r = unpack(&tar_of(&bad)[..], &Dir::open(t.path()).unwrap(), &BOX, &ok);
            assert!(matches!(r, Err(UnpackError::Refused(_))), "{bad:?}: {r:?}");
        }
    }
}
