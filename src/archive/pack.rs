//! Writing a box archive: the metadata directory (and a home kept outside it, as
//! `shell/`) under the project hash, then the info file with the manifest, as one xz
//! stream from the multi-threaded encoder. Streaming throughout; the file is made 0600
//! under a temporary name beside the target and renamed over it only when complete.
//!
//! The source is a live box home: nothing is followed, a file that shrinks while it is
//! read fails the archive (a short member would corrupt it), links that point outside
//! the box and FIFOs, sockets and devices are left out and reported.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::encoder::Encoder;
use super::info::{FILE as INFO_FILE, Info};
use super::manifest::{Record, sha256};
use super::member::MemberKind;
use crate::fstree::Dir;
use crate::fstree::link::stays_inside;
use crate::fstree::walk::{Entry, Step, walk};

/// The xz preset: the one `tar -cJf`, `xz` and Python's `tarfile` use.
pub const XZ_PRESET: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{} changed while it was being archived; stop the box and try again", .0.display())]
    Changed(PathBuf),
    #[error("interrupted; no archive was written")]
    Interrupted,
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
}

impl PackError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            PackError::Exists(_) => vec!["pass --force to replace it, or name another FILE".into()],
            PackError::Interrupted => {
                vec!["the box and any earlier archive are as they were".into()]
            }
            _ => Vec::new(),
        }
    }
}

/// What goes into the archive.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    pub metadata: &'a Path,
    /// The box's home when it lies outside the metadata directory.
    pub shell_outside: Option<&'a Path>,
    /// The top directory's name (the full project hash).
    pub top: &'a str,
    /// Paths below the top that are not archived (credentials, runtime files).
    pub exclude: &'a [String],
}

/// What was written.
#[derive(Clone, Debug, Default)]
pub struct Packed {
    pub members: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Excluded paths that were there (so were really left out).
    pub excluded: Vec<String>,
    pub outside_links: Vec<String>,
    pub special: Vec<String>,
}

/// A file's bytes: exactly `size` of them (fewer is an error), hashed as they pass,
/// counted for the progress bar, and stopped by an interrupt.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    hash: Sha256,
    done: &'a dyn Fn(u64),
    check: &'a dyn Fn() -> io::Result<()>,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        (self.check)()?;
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        (self.done)(n as u64);
        Ok(n)
    }
}

/// Sum of the regular files' sizes (for the progress bar's total).
pub fn total_size(src: &Source<'_>) -> u64 {
    let mut total = 0u64;
    let mut add = |dir: &Path| {
        if let Ok(d) = Dir::open(dir) {
            let _ = walk(&d, &mut |e| {
                if let Entry::File { stat, .. } = e {
                    total = total.saturating_add(stat.size);
                }
                Ok(Step::Continue)
            });
        }
    };
    add(src.metadata);
    if let Some(s) = src.shell_outside {
        add(s);
    }
    total
}

struct Packer<'a, W: Write> {
    tar: tar::Builder<W>,
    top: &'a str,
    exclude: &'a [String],
    records: Vec<Record>,
    /// (dev, ino) of files with more than one link → (member name, sha256).
    inodes: HashMap<(u64, u64), (Vec<u8>, [u8; 32])>,
    out: Packed,
    done: &'a dyn Fn(u64),
    check: &'a dyn Fn() -> io::Result<()>,
}

fn header(kind: tar::EntryType, st: &crate::fstree::Stat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.mode & 0o7777);
    h.set_uid(u64::from(st.uid));
    h.set_gid(u64::from(st.gid));
    h.set_mtime(u64::try_from(st.mtime).unwrap_or(0));
    h.set_size(0);
    h
}

fn wrap(context: String) -> impl FnOnce(io::Error) -> PackError {
    move |source| {
        if crate::interrupt::is_interrupt(&source) {
            PackError::Interrupted
        } else {
            PackError::Io { context, source }
        }
    }
}

impl<W: Write> Packer<'_, W> {
    fn name(&self, rel: &Path) -> PathBuf {
        Path::new(self.top).join(rel)
    }

    fn walk_tree(
        &mut self,
        root: &Path,
        prefix: &Path,
        skip_top: Option<&OsStr>,
    ) -> Result<(), PackError> {
        let dir = Dir::open(root).map_err(wrap(format!("opening {}", root.display())))?;
        let mut failure: Option<PackError> = None;
        let r = walk(&dir, &mut |e| {
            let rel_of = |rel: &Path| prefix.join(rel);
            let step = match e {
                Entry::Dir { rel, stat, .. } => {
                    if skip_top.is_some_and(|s| rel == Path::new(s)) {
                        return Ok(Step::Skip);
                    }
                    let rel = rel_of(rel);
                    if self.excluded(&rel) {
                        return Ok(Step::Skip);
                    }
                    self.dir(&rel, &stat)?;
                    Step::Continue
                }
                Entry::DirEnd { .. } => Step::Continue,
                Entry::File {
                    rel,
                    stat,
                    parent,
                    name,
                } => {
                    let full = rel_of(rel);
                    if !self.excluded(&full) && !is_temp(name) {
                        match self.file(&full, &stat, parent, name) {
                            Ok(()) => {}
                            Err(e) => {
                                failure = Some(e);
                                return Err(io::Error::other("stop"));
                            }
                        }
                    }
                    Step::Continue
                }
                Entry::Symlink { rel, stat, target } => {
                    let full = rel_of(rel);
                    if !self.excluded(&full) {
                        self.symlink(&full, &stat, target.as_bytes())?;
                    }
                    Step::Continue
                }
                Entry::Special { rel, .. } => {
                    let full = rel_of(rel);
                    if !self.excluded(&full) {
                        self.out.special.push(full.display().to_string());
                    }
                    Step::Continue
                }
            };
            (self.check)()?;
            Ok(step)
        });
        if let Some(f) = failure {
            return Err(f);
        }
        r.map_err(wrap(format!("reading {}", root.display())))
    }

    fn excluded(&mut self, rel: &Path) -> bool {
        let s = rel.to_string_lossy();
        let hit = self.exclude.iter().any(|x| *x == s);
        if hit {
            self.out.excluded.push(s.into_owned());
        }
        hit
    }

    fn dir(&mut self, rel: &Path, st: &crate::fstree::Stat) -> io::Result<()> {
        let mut h = header(tar::EntryType::Directory, st);
        self.tar.append_data(&mut h, self.name(rel), io::empty())?;
        self.records
            .push(Record::new(rel_bytes(rel), MemberKind::Dir, None));
        self.out.members += 1;
        Ok(())
    }

    fn symlink(&mut self, rel: &Path, st: &crate::fstree::Stat, target: &[u8]) -> io::Result<()> {
        if !stays_inside(rel, target) {
            self.out.outside_links.push(rel.display().to_string());
            return Ok(());
        }
        let mut h = header(tar::EntryType::Symlink, st);
        self.tar
            .append_link(&mut h, self.name(rel), OsStr::from_bytes(target))?;
        self.records.push(Record::new(
            rel_bytes(rel),
            MemberKind::Symlink,
            Some(sha256(target)),
        ));
        self.out.members += 1;
        Ok(())
    }

    fn file(
        &mut self,
        rel: &Path,
        st: &crate::fstree::Stat,
        parent: &Dir,
        name: &OsStr,
    ) -> Result<(), PackError> {
        let ctx = || format!("reading {}", parent.path().join(name).display());
        if st.nlink > 1
            && let Some((first, sum)) = self.inodes.get(&(st.dev, st.ino)).cloned()
        {
            let mut h = header(tar::EntryType::Link, st);
            let target = Path::new(self.top).join(OsStr::from_bytes(&first));
            self.tar
                .append_link(&mut h, self.name(rel), target)
                .map_err(wrap(ctx()))?;
            self.records
                .push(Record::new(rel_bytes(rel), MemberKind::HardLink, Some(sum)));
            self.out.members += 1;
            return Ok(());
        }
        let Some(f) = parent.open_file(name).map_err(wrap(ctx()))? else {
            return Ok(()); // gone since the walk saw it
        };
        let meta = f.metadata().map_err(wrap(ctx()))?;
        let size = meta.len();
        let mut h = header(tar::EntryType::Regular, st);
        h.set_size(size);
        let mut exact = Exact {
            inner: f,
            left: size,
            hash: Sha256::new(),
            done: self.done,
            check: self.check,
        };
        match self.tar.append_data(&mut h, self.name(rel), &mut exact) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(PackError::Changed(parent.path().join(name)));
            }
            Err(e) => return Err(wrap(ctx())(e)),
        }
        let sum: [u8; 32] = exact.hash.finalize().into();
        if st.nlink > 1 {
            self.inodes.insert((st.dev, st.ino), (rel_bytes(rel), sum));
        }
        self.records
            .push(Record::new(rel_bytes(rel), MemberKind::File, Some(sum)));
        self.out.members += 1;
        self.out.bytes_in += size;
        Ok(())
    }
}

fn rel_bytes(rel: &Path) -> Vec<u8> {
    rel.as_os_str().as_bytes().to_vec()
}

/// Files mid-write by kanibako's own atomic writes.
fn is_temp(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".kanibako-tmp-")
}

/// The archive file's writer, closed for good once packing failed: the tar builder
/// finishes itself when dropped, and an interrupted archive should not write (or wait
/// for the encoder's threads to compress) anything more.
struct Gate<W> {
    inner: W,
    closed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed.get() {
            return Err(io::Error::other("archive abandoned"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed.get() {
            return Err(io::Error::other("archive abandoned"));
        }
        self.inner.flush()
    }
}

/// Closes the gate when dropped while armed (on any early return).
struct CloseOnFail<'a>(&'a std::cell::Cell<bool>, bool);

impl Drop for CloseOnFail<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.set(true);
        }
    }
}

/// The size of the blocks the threads compress independently. Each block starts with
/// an empty dictionary, which costs size on data that repeats across files (a home's
/// conversations and logs): xz's default, 3 × the 8 MiB dictionary, made archives 5.4 %
/// bigger than single-threaded `tar -cJf` on the bench's mixed home; 64 MiB blocks
/// make it 1.7 % (96 MiB: 1.1 %, at half as much again memory per thread).
pub const XZ_BLOCK_SIZE: u64 = 64 << 20;

/// The encoder's memory use at which it runs fewer threads (about 285 MiB a thread at
/// preset 6 with 64 MiB blocks): at most four threads on a big machine, so an archive
/// never takes more than this, whatever its size.
pub const XZ_MEMLIMIT_THREADING: u64 = 1280 << 20;

fn xz_builder(threads: usize) -> liblzma::stream::MtStreamBuilder {
    let mut b = liblzma::stream::MtStreamBuilder::new();
    b.preset(XZ_PRESET)
        .threads(u32::try_from(threads.max(1)).unwrap_or(1))
        .block_size(XZ_BLOCK_SIZE)
        .memlimit_threading(XZ_MEMLIMIT_THREADING)
        .check(liblzma::stream::Check::Crc64);
    b
}

/// The multi-threaded xz encoder at [`XZ_PRESET`], one thread per core (fewer where
/// [`XZ_MEMLIMIT_THREADING`] says), stopped by `check` even while its threads work.
pub fn xz_writer<'a, W: Write>(
    out: W,
    check: &'a dyn Fn() -> io::Result<()>,
) -> io::Result<Encoder<'a, W>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    Encoder::new(&mut xz_builder(threads), out, check)
}

/// Write the archive of `src` to `out`, with `info` (its manifest filled in here).
/// `overwrite`: replace an existing `out`; otherwise one is an error.
pub fn pack(
    src: &Source<'_>,
    mut info: Info,
    out: &Path,
    overwrite: bool,
    done: &dyn Fn(u64),
    check: &dyn Fn() -> io::Result<()>,
) -> Result<(Packed, Info), PackError> {
    if !overwrite && out.symlink_metadata().is_ok() {
        return Err(PackError::Exists(out.to_owned()));
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::Builder::new()
        .prefix(".kanibako-tmp-")
        .suffix(".txz")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(wrap(format!("creating a file in {}", dir.display())))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(wrap("duplicating a handle".into()))?;
    let closed = std::rc::Rc::new(std::cell::Cell::new(false));
    let gate = Gate {
        inner: io::BufWriter::with_capacity(1 << 20, file),
        closed: closed.clone(),
    };
    let enc = xz_writer(gate, check).map_err(wrap("starting xz".into()))?;
    let ctx = || format!("writing {}", out.display());
    let written = (|| -> Result<Packed, PackError> {
        let mut p = Packer {
            tar: tar::Builder::new(enc),
            top: src.top,
            exclude: src.exclude,
            records: Vec::new(),
            inodes: HashMap::new(),
            out: Packed::default(),
            done,
            check,
        };
        // Declared after the packer, so dropped before it: on a failure the gate is
        // closed by the time the packer's encoder finishes itself.
        let mut guard = CloseOnFail(&closed, true);
        let top_stat = Dir::open(src.metadata)
            .and_then(|d| d.stat_self())
            .map_err(wrap(format!("opening {}", src.metadata.display())))?;
        let mut top = header(tar::EntryType::Directory, &top_stat);
        p.tar
            .append_data(&mut top, src.top, io::empty())
            .map_err(wrap(ctx()))?;
        let skip_shell = src.shell_outside.map(|_| OsStr::new("shell"));
        p.walk_tree(src.metadata, Path::new(""), skip_shell)?;
        if let Some(shell) = src.shell_outside {
            let st = Dir::open(shell)
                .and_then(|d| d.stat_self())
                .map_err(wrap(format!("opening {}", shell.display())))?;
            p.dir(Path::new("shell"), &st).map_err(wrap(ctx()))?;
            p.walk_tree(shell, Path::new("shell"), None)?;
        }
        info.left_out = p.out.excluded.clone();
        info.manifest = Some(p.records.clone());
        let text = info.render();
        let mut h = header(tar::EntryType::Regular, &top_stat);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        p.tar
            .append_data(&mut h, Path::new(src.top).join(INFO_FILE), text.as_bytes())
            .map_err(wrap(ctx()))?;
        let enc = p.tar.into_inner().map_err(wrap(ctx()))?;
        let buf = enc.finish().map_err(wrap(ctx()))?;
        let file = buf
            .inner
            .into_inner()
            .map_err(|e| wrap(ctx())(e.into_error()))?;
        file.sync_all().map_err(wrap(ctx()))?;
        let mut packed = p.out;
        packed.bytes_out = file.metadata().map_err(wrap(ctx()))?.len();
        guard.1 = false;
        Ok(packed)
    })();
    let packed = written?;
    check().map_err(wrap(ctx()))?;
    if overwrite {
        tmp.persist(out).map_err(|e| wrap(ctx())(e.error))?;
    } else {
        tmp.persist_noclobber(out)
            .map_err(|e| match e.error.kind() {
                io::ErrorKind::AlreadyExists => PackError::Exists(out.to_owned()),
                _ => wrap(ctx())(e.error),
            })?;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((packed, info))
}

#[cfg(test)]
mod xz_tests {
    use super::*;

    #[test]
    fn four_threads_fit_the_memory_bound_and_the_stream_reads_back() {
        let four = xz_builder(4).memusage();
        assert!(four <= XZ_MEMLIMIT_THREADING, "{four}");
        assert!(
            xz_builder(8).memusage() > XZ_MEMLIMIT_THREADING,
            "so 8 cores run fewer"
        );
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut w = xz_writer(Vec::new(), &|| Ok(())).unwrap();
        w.write_all(&data).unwrap();
        let packed = w.finish().unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut crate::archive::unpack::xz_reader(&packed[..]).unwrap(),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, data);
    }
}
