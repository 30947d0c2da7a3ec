//! Extracting an archive into a box, all or nothing: the archive streams into a
//! private staging directory beside the metadata directory it will become (checked
//! member by member, then against its manifest); only then is it renamed into place —
//! swapped in one step with a box's old metadata, or given a new name in `names.yaml`
//! under the registry's lock, the name recorded last. A failure or an interrupt at any
//! point removes the staging directory and leaves the box and the registry as they were.
//!
//! One extract runs at a time (a lock in kanibako's state), so staging directories
//! left by a killed run are known to be stale and removed by the next.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::info::{FILE as INFO_FILE, Info};
use super::manifest;
use super::member::OutsideLinks;
use super::unpack::{Rules, UnpackError, Unpacked, unpack, xz_reader};
use super::{RUNTIME_FILES, credential_paths};
use crate::boxes::error::BoxError;
use crate::boxes::registry::Registry;
use crate::boxes::{BoxIdentity, BoxName, Layout, Mode, PROJECT_FILE, ProjectSettings};
use crate::document::{DocError, Document};
use crate::fstree::{Dir, removal};
use crate::fsutil::{self, FileLock};
use crate::paths::Paths;

const STAGING_PREFIX: &str = ".kanibako-extract-";

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("{} is not a kanibako archive (it has no {INFO_FILE})", .0.display())]
    NotAnArchive(PathBuf),
    #[error("{}: {reason}", .file.display())]
    BadInfo { file: PathBuf, reason: String },
    #[error("{}: the archive does not match its manifest: {difference}", .file.display())]
    Mismatch { file: PathBuf, difference: String },
    #[error("{}: {source}", .file.display())]
    Unpack { file: PathBuf, source: UnpackError },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error(
        "box '{0}' keeps its home outside its metadata ({1}); extracting into it is not supported"
    )]
    HomeOutside(String, PathBuf),
    #[error("{} holds leftover data of another box", .0.display())]
    Leftover(PathBuf),
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(transparent)]
    Doc(#[from] DocError),
}

impl From<io::Error> for ExtractError {
    fn from(source: io::Error) -> Self {
        ExtractError::Io {
            context: "file system".into(),
            source,
        }
    }
}

impl ExtractError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ExtractError {
        let context = context.into();
        move |source| ExtractError::Io { context, source }
    }

    pub fn hints(&self) -> Vec<String> {
        match self {
            ExtractError::NotAnArchive(_)
            | ExtractError::Mismatch { .. }
            | ExtractError::Unpack { .. } => {
                vec!["nothing was written; the archive may be damaged or not from kanibako".into()]
            }
            ExtractError::Leftover(p) => vec![format!(
                "choose another name with --name, or delete it: kanibako rm {} --purge",
                p.file_name().unwrap_or_default().to_string_lossy()
            )],
            ExtractError::Box(b) => b.hints(),
            ExtractError::Doc(d) => d.hint().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

fn unpack_err(file: &Path, source: UnpackError) -> ExtractError {
    ExtractError::Unpack {
        file: file.to_owned(),
        source,
    }
}

/// A read archive, staged.
#[derive(Debug)]
pub struct Staged {
    pub info: Info,
    pub unpacked: Unpacked,
    /// The archive had a manifest and matched it (the Python tool writes none).
    pub verified: bool,
}

/// A staging directory that is removed unless committed.
pub struct Staging {
    parent: Dir,
    name: OsString,
    committed: bool,
    _lock: FileLock,
}

/// Counts the compressed bytes read, for the progress bar.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    done: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.done)(self.read);
        Ok(n)
    }
}

/// Read the info file of an archive without writing anything (`extract --all` needs
/// each one's project path). Streams through it up to that member.
pub fn peek_info(file: &Path) -> Result<Info, ExtractError> {
    let f = std::fs::File::open(file)
        .map_err(ExtractError::io(format!("opening {}", file.display())))?;
    let mut archive = tar::Archive::new(xz_reader(f).map_err(ExtractError::io("starting xz"))?);
    let entries = archive
        .entries()
        .map_err(|e| unpack_err(file, UnpackError::Read(e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| unpack_err(file, UnpackError::Read(e)))?;
        let path = entry.path_bytes().into_owned();
        let Ok(parts) = super::member::split(&path) else {
            continue;
        };
        if parts.len() == 2 && parts[1] == INFO_FILE.as_bytes() {
            let mut text = Vec::new();
            (&mut entry)
                .take(super::unpack::MAX_CAPTURE)
                .read_to_end(&mut text)
                .map_err(|e| unpack_err(file, UnpackError::Read(e)))?;
            return Info::parse(&String::from_utf8_lossy(&text)).map_err(|reason| {
                ExtractError::BadInfo {
                    file: file.to_owned(),
                    reason,
                }
            });
        }
    }
    Err(ExtractError::NotAnArchive(file.to_owned()))
}

impl Staging {
    /// A fresh staging directory in `parent` (made if missing).
    pub fn create(paths: &Paths, parent: &Path) -> Result<Self, ExtractError> {
        let lock = fsutil::lock_exclusive(&paths.state.join("locks").join("extract.lock"))
            .map_err(ExtractError::io("taking the extract lock"))?;
        std::fs::create_dir_all(parent)
            .map_err(ExtractError::io(format!("creating {}", parent.display())))?;
        let dir =
            Dir::open(parent).map_err(ExtractError::io(format!("opening {}", parent.display())))?;
        for entry in dir
            .entries()
            .map_err(ExtractError::io(format!("reading {}", parent.display())))?
        {
            if entry
                .as_encoded_bytes()
                .starts_with(STAGING_PREFIX.as_bytes())
            {
                let _ = removal::remove_entry(&dir, &entry);
            }
        }
        let name = OsString::from(format!("{STAGING_PREFIX}{}", std::process::id()));
        dir.create_dir(&name, 0o700)
            .map_err(ExtractError::io(format!(
                "creating a staging directory in {}",
                parent.display()
            )))?;
        Ok(Self {
            parent: dir,
            name,
            committed: false,
            _lock: lock,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.parent.path().join(&self.name)
    }

    fn dir(&self) -> Result<Dir, ExtractError> {
        self.parent
            .open_dir(&self.name)
            .map_err(ExtractError::io("opening the staging directory"))?
            .ok_or_else(|| ExtractError::Io {
                context: "opening the staging directory".into(),
                source: io::Error::other("it vanished"),
            })
    }

    /// Stream `file` into the staging directory and check it whole.
    pub fn unpack(
        &self,
        file: &Path,
        check: &dyn Fn() -> io::Result<()>,
        done: &dyn Fn(u64),
    ) -> Result<Staged, ExtractError> {
        let f = std::fs::File::open(file)
            .map_err(ExtractError::io(format!("opening {}", file.display())))?;
        let counting = Counting {
            inner: f,
            read: 0,
            done,
        };
        let secrets = credential_paths();
        let secret: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let rules = Rules {
            single_top: true,
            outside_links: OutsideLinks::Refuse,
            capture: &[INFO_FILE],
            drop: RUNTIME_FILES,
            secret: &secret,
        };
        let xz = xz_reader(counting).map_err(ExtractError::io("starting xz"))?;
        let unpacked = unpack(xz, &self.dir()?, &rules, check).map_err(|e| unpack_err(file, e))?;
        let text = unpacked
            .captured(INFO_FILE)
            .ok_or_else(|| ExtractError::NotAnArchive(file.to_owned()))?;
        let info = Info::parse(&String::from_utf8_lossy(text)).map_err(|reason| {
            ExtractError::BadInfo {
                file: file.to_owned(),
                reason,
            }
        })?;
        if let Some(listed) = &info.manifest
            && let Some(d) = manifest::difference(listed, &unpacked.records)
        {
            return Err(ExtractError::Mismatch {
                file: file.to_owned(),
                difference: d,
            });
        }
        let verified = info.manifest.is_some();
        Ok(Staged {
            info,
            unpacked,
            verified,
        })
    }

    /// The settings in the staged `project.yaml` (defaults without one).
    pub fn settings(&self) -> Result<ProjectSettings, ExtractError> {
        let doc = Document::load(&self.path().join(PROJECT_FILE))?;
        Ok(ProjectSettings::read(&doc)?)
    }

    fn rebase(&self, paths: &Paths, b: &BoxIdentity) -> Result<(), ExtractError> {
        let mut doc = Document::load(&self.path().join(PROJECT_FILE))?;
        crate::relocate::rebase(&mut doc, paths, b)?;
        doc.save()?;
        Ok(())
    }

    /// Replace the metadata of the existing box `b` with the staged data, keeping how
    /// and where the box lives. Returns a path that could not be removed afterwards
    /// (the old data, when a container's sub-uids own some of it).
    pub fn commit_into(
        mut self,
        paths: &Paths,
        b: &BoxIdentity,
    ) -> Result<Option<PathBuf>, ExtractError> {
        if b.shell != b.metadata.join("shell") {
            return Err(ExtractError::HomeOutside(
                b.display_name().into(),
                b.shell.clone(),
            ));
        }
        self.rebase(paths, b)?;
        let meta_name = b.metadata.file_name().unwrap_or_default().to_owned();
        let spare = OsString::from(format!("{STAGING_PREFIX}spare-{}", std::process::id()));
        let ctx = format!("replacing {}", b.metadata.display());
        match self
            .parent
            .stat(&meta_name)
            .map_err(ExtractError::io(ctx.clone()))?
        {
            Some(_) => self
                .parent
                .exchange(&self.name, &meta_name, &spare)
                .map_err(ExtractError::io(ctx))?,
            None => self
                .parent
                .rename_new(&self.name, &meta_name)
                .map_err(ExtractError::io(ctx))?,
        }
        self.committed = true;
        let _ = self.parent.sync();
        // The old data now sits under the staging name.
        match removal::remove_entry(&self.parent, &self.name) {
            Ok(()) => Ok(None),
            Err(_) => Ok(Some(self.path())),
        }
    }

    /// Make the staged data a new default-mode box for `workspace` (created if missing),
    /// named `explicit` or after the directory. The name is recorded last.
    pub fn commit_new(
        mut self,
        paths: &Paths,
        workspace: &Path,
        explicit: Option<BoxName>,
    ) -> Result<BoxIdentity, ExtractError> {
        let mut settings = self.settings()?;
        settings.mode = Some(Mode::Default);
        // A simple layout keeps the home in the workspace; the archive has it here.
        if settings.layout == Some(Layout::Simple) {
            settings.layout = Some(Layout::Default);
        }
        let made_dir = !workspace.exists();
        std::fs::create_dir_all(workspace).map_err(ExtractError::io(format!(
            "creating {}",
            workspace.display()
        )))?;
        let moved: RefCell<Option<PathBuf>> = RefCell::new(None);
        let result = Registry::update(paths, |reg| -> Result<(BoxIdentity, bool), ExtractError> {
            if reg.project_for_path(workspace).is_some() {
                return Err(BoxError::AlreadyInitialized(workspace.to_owned()).into());
            }
            let name = pick_name(paths, reg, workspace, explicit.clone())?;
            let b = BoxIdentity::default_mode(
                name.clone(),
                workspace.to_owned(),
                &paths.boxes,
                settings,
            );
            self.rebase(paths, &b)?;
            self.parent
                .rename_new(&self.name, OsStr::new(name.as_str()))
                .map_err(ExtractError::io(format!(
                    "creating {}",
                    b.metadata.display()
                )))?;
            *moved.borrow_mut() = Some(b.metadata.clone());
            reg.projects.insert(name.to_string(), workspace.to_owned());
            Ok((b, true))
        });
        match result {
            Ok(b) => {
                self.committed = true;
                let _ = self.parent.sync();
                Ok(b)
            }
            Err(e) => {
                if let Some(meta) = moved.borrow().as_ref() {
                    // The registry did not take the name: the box must not exist.
                    self.committed = true;
                    let _ =
                        removal::remove_entry(&self.parent, meta.file_name().unwrap_or_default());
                }
                if made_dir {
                    let _ = std::fs::remove_dir(workspace);
                }
                Err(e)
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = removal::remove_entry(&self.parent, &self.name);
        }
    }
}

/// A name for a new box: `explicit` (it must be free, and no leftover data may sit
/// under it), else the directory's slug, numbered past taken names and leftovers.
pub fn pick_name(
    paths: &Paths,
    reg: &Registry,
    dir: &Path,
    explicit: Option<BoxName>,
) -> Result<BoxName, ExtractError> {
    let free_dir = |n: &BoxName| paths.boxes.join(n.as_str()).symlink_metadata().is_err();
    if let Some(name) = explicit {
        if let Some((section, path)) = reg.lookup(name.as_str()) {
            return Err(BoxError::NameTaken {
                name: name.to_string(),
                section,
                path: path.to_owned(),
            }
            .into());
        }
        if !free_dir(&name) {
            return Err(ExtractError::Leftover(paths.boxes.join(name.as_str())));
        }
        return Ok(name);
    }
    let base = BoxName::slug(&dir.file_name().unwrap_or_default().to_string_lossy());
    let mut n = 1;
    loop {
        let candidate = base.numbered(n);
        if reg.lookup(candidate.as_str()).is_none() && free_dir(&candidate) {
            return Ok(candidate);
        }
        n += 1;
    }
}
