//! Which box is meant: a registered name, a path, or the current directory
//! (spec: upstream-cli-and-data §6.2).
//!
//! A path resolves to the deepest registered box that contains it, else to a standalone
//! box found by walking up to `$HOME`, else to nothing (an unregistered directory). A
//! path that does not exist is an error rather than silently meaning its enclosing box.
//!
//! A standalone box's marker (`.kanibako/project.yaml`, or `kanibako/project.yaml` for
//! the robust layout) can be made by anyone who can write the directory, so one counts
//! only where the user alone could have made it: in the directory itself, or in an
//! ancestor the user owns that nobody else can write, never above a sticky directory
//! (`/tmp`) — and one found in an ancestor is used only once the user agreed to it
//! (created it, or said yes; recorded under `$DATA/standalone/`). The metadata directory
//! is opened without following a link and held, and is the one the marker is in.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::registry::{Registry, same_dir};
use super::{BoxIdentity, BoxName, HeldDir, Layout, Mode, PROJECT_FILE, ProjectSettings};
use crate::document::Document;
use crate::fsutil;
use crate::output;
use crate::paths::Paths;

// A box is the common answer; boxing it would cost every caller for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Resolution {
    Found(BoxIdentity),
    /// An existing directory that is not (inside) a box.
    Unregistered(PathBuf),
}

impl Resolution {
    /// For commands that need an existing box.
    pub fn require(self) -> Result<BoxIdentity, BoxError> {
        match self {
            Resolution::Found(b) => Ok(b),
            Resolution::Unregistered(p) => Err(BoxError::NotABox(p)),
        }
    }
}

/// The identity of a registered default-mode box, reading its `project.yaml` settings.
pub fn registered(
    paths: &Paths,
    name: BoxName,
    workspace: PathBuf,
) -> Result<BoxIdentity, BoxError> {
    let file = paths.boxes.join(name.as_str()).join(PROJECT_FILE);
    let stamp = super::FileStamp::of(&file);
    let doc = Document::load(&file)?;
    let settings = ProjectSettings::read(&doc)?;
    Ok(
        BoxIdentity::default_mode(name, workspace, &paths.boxes, settings)
            .with_project(stamp, &doc),
    )
}

/// A standalone marker at `dir`: `.kanibako/project.yaml` (or, robust layout,
/// `kanibako/project.yaml`) whose mode is standalone. A bare `.kanibako` directory is
/// not one: images bake one into every home.
pub fn standalone_at(dir: &Path) -> Result<Option<BoxIdentity>, BoxError> {
    Ok(marker_at(dir)?.map(|m| m.identity))
}

/// A marker found, and who could have made its metadata directory.
struct Marker {
    identity: BoxIdentity,
    owner: u32,
    group: u32,
    mode: u32,
}

/// Each metadata directory name and whether its layout is the robust one: a marker
/// counts only in the directory its layout uses.
const META_DIRS: [(&str, bool); 2] = [(".kanibako", false), ("kanibako", true)];

fn marker_at(dir: &Path) -> Result<Option<Marker>, BoxError> {
    let Ok(dir_fd) = fsutil::open_dir(dir) else {
        return Ok(None);
    };
    for (meta, robust) in META_DIRS {
        let meta_path = dir.join(meta);
        let fd = match fsutil::open_dir_at(dir_fd.as_fd(), Path::new(meta)) {
            Ok(Some(fd)) => fd,
            Ok(None) => continue,
            // A link (ELOOP, or ENOTDIR with O_DIRECTORY): refused if it would have
            // been a marker, else none of ours.
            Err(_) if fsutil::is_symlink(&meta_path) => {
                if meta_path.join(PROJECT_FILE).is_file() {
                    return Err(BoxError::MetadataLink(meta_path));
                }
                continue;
            }
            Err(_) => continue,
        };
        let shown = meta_path.join(PROJECT_FILE);
        let stamp = super::FileStamp::at(fd.as_fd(), PROJECT_FILE);
        let doc = Document::load_at(fd.as_fd(), Path::new(PROJECT_FILE), &shown)?;
        if doc.is_empty() {
            continue;
        }
        let settings = ProjectSettings::read(&doc)?;
        let layout_fits = (settings.layout == Some(Layout::Robust)) == robust;
        if settings.mode != Some(Mode::Standalone) || !layout_fits {
            continue;
        }
        let st = nix::sys::stat::fstat(&fd).map_err(|e| BoxError::Io {
            context: format!("reading {}", meta_path.display()),
            source: std::io::Error::from_raw_os_error(e as i32),
        })?;
        let mut identity =
            BoxIdentity::standalone(dir.to_owned(), settings).with_project(stamp, &doc);
        identity.held = HeldDir::new(fd);
        return Ok(Some(Marker {
            identity,
            owner: st.st_uid,
            group: st.st_gid,
            mode: st.st_mode,
        }));
    }
    Ok(None)
}

/// Whether the user could be the only one to have made entries in a directory with
/// this owner, group and mode: theirs, and nobody else may write it (a group-writable
/// one only when the group is the user's private group, as a umask of 002 leaves).
fn users_alone(paths: &Paths, owner: u32, group: u32, mode: u32) -> bool {
    owner == paths.uid() && mode & 0o002 == 0 && (mode & 0o020 == 0 || private_group(owner, group))
}

/// Whether `gid` is the user's own group: their primary group, named as they are,
/// with nobody else in it.
fn private_group(uid: u32, gid: u32) -> bool {
    use nix::unistd::{Gid, Group, Uid, User};
    let (Ok(Some(u)), Ok(Some(g))) = (
        User::from_uid(Uid::from_raw(uid)),
        Group::from_gid(Gid::from_raw(gid)),
    ) else {
        return false;
    };
    u.gid.as_raw() == gid && g.name == u.name && g.mem.iter().all(|m| *m == u.name)
}

/// Whether the user made, or agreed to use, the standalone box `b`.
pub fn adopted(paths: &Paths, b: &BoxIdentity) -> bool {
    std::fs::symlink_metadata(paths.adopted_standalone(&b.hash)).is_ok_and(|m| m.is_file())
}

/// Record that the user made, or agreed to use, the standalone box `b`.
pub fn adopt(paths: &Paths, b: &BoxIdentity) -> Result<(), BoxError> {
    let record = paths.adopted_standalone(&b.hash);
    let content = format!("{}\n", b.workspace.display());
    fsutil::atomic_write(&record, content.as_bytes(), fsutil::MODE_CONFIG)?;
    Ok(())
}

/// The longest path the system takes, with its terminating NUL.
const PATH_MAX: usize = nix::libc::PATH_MAX as usize;

/// Resolve `target` (a name or path; `None` = the current directory).
pub fn resolve(paths: &Paths, cwd: &Path, target: Option<&str>) -> Result<Resolution, BoxError> {
    let registry = Registry::load(&paths.names_file())?;
    let target = target.filter(|t| !t.is_empty());
    if let Some(t) = target
        && !t.contains('/')
        && !cwd.join(t).exists()
    {
        // Inside a workset, a bare word may name one of its members.
        if let Ok(here) = cwd.canonicalize() {
            for (_, root) in super::worksets::registered_with(paths, &registry)? {
                let root = root.canonicalize().unwrap_or(root);
                let ws_dir = root.join("workspaces").join(t);
                if here.starts_with(&root) && ws_dir.is_dir() {
                    return resolve_dir(paths, &registry, &ws_dir);
                }
            }
        }
        if let Some(path) = registry.projects.get(t) {
            let name = BoxName::from_registry(t).ok_or_else(|| BoxError::NoSuchBox(t.into()))?;
            return registered(paths, name, path.clone()).map(Resolution::Found);
        }
        if registry.worksets.contains_key(t) {
            return Err(BoxError::IsWorkset(t.into()));
        }
        return Err(BoxError::NoSuchBox(t.into()));
    }
    let raw = cwd.join(target.unwrap_or("."));
    // Said as what it is: the walk that resolves it would fail on a missing part first.
    if raw.as_os_str().len() >= PATH_MAX {
        return Err(BoxError::PathTooLong(raw.as_os_str().len()));
    }
    let dir = match raw.canonicalize() {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENAMETOOLONG) => {
            return Err(BoxError::PathTooLong(raw.as_os_str().len()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BoxError::PathMissing(normalize(&raw)));
        }
        Err(e) => return Err(BoxError::io(format!("resolving {}", raw.display()))(e)),
    };
    if !dir.is_dir() {
        return Err(BoxError::NotADirectory(dir));
    }
    utf8(&dir)?;
    resolve_dir(paths, &registry, &dir)
}

/// Resolve an existing, canonical directory.
pub fn resolve_dir(paths: &Paths, registry: &Registry, dir: &Path) -> Result<Resolution, BoxError> {
    if let Some(member) = super::worksets::member_at(paths, registry, dir)? {
        return Ok(Resolution::Found(member));
    }
    let deepest = registry
        .projects
        .iter()
        .filter(|(_, p)| dir.starts_with(p) || p.canonicalize().is_ok_and(|c| dir.starts_with(c)))
        .max_by_key(|(_, p)| p.components().count());
    if let Some((name, path)) = deepest
        && let Some(name) = BoxName::from_registry(name)
    {
        return registered(paths, name, path.clone()).map(Resolution::Found);
    }
    let home = paths
        .home()
        .canonicalize()
        .unwrap_or_else(|_| paths.home().to_owned());
    for (i, ancestor) in dir.ancestors().enumerate() {
        let own = i == 0;
        if !own {
            // Above the directory itself, only through directories nobody else could
            // have put a marker in, and never across a sticky one (`/tmp`).
            let Ok(m) = std::fs::metadata(ancestor) else {
                break;
            };
            if m.mode() & 0o1000 != 0 || !users_alone(paths, m.uid(), m.gid(), m.mode()) {
                break;
            }
        }
        if let Some(m) = marker_at(ancestor)? {
            let b = m.identity;
            if !users_alone(paths, m.owner, m.group, m.mode) {
                output::warn(format_args!(
                    "ignoring the standalone box in {}: {} belongs to another user or others can write it",
                    ancestor.display(),
                    b.metadata.display()
                ));
                break;
            }
            if let Some(refused) = super::create::refused_workspace(paths, &b.workspace) {
                return Err(refused);
            }
            if !own && !adopted(paths, &b) {
                return Err(BoxError::NotAdopted {
                    root: b.workspace,
                    from: dir.to_owned(),
                });
            }
            return Ok(Resolution::Found(b));
        }
        if same_dir(ancestor, &home) {
            break;
        }
    }
    Ok(Resolution::Unregistered(dir.to_owned()))
}

/// A project path must be UTF-8: the engine's mount syntax, `names.yaml` and the
/// container's labels all carry it as text.
pub fn utf8(dir: &Path) -> Result<(), BoxError> {
    match dir.to_str() {
        Some(_) => Ok(()),
        None => Err(BoxError::NotUtf8(dir.to_owned())),
    }
}

/// Make a path absolute and drop `.`/`..` lexically, for messages about paths that do
/// not exist (and so cannot be canonicalised).
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn standalone(dir: &Path) {
        fs::create_dir_all(dir.join(".kanibako")).unwrap();
        fs::write(
            dir.join(".kanibako/project.yaml"),
            "project:\n  mode: standalone\n  layout: simple\n",
        )
        .unwrap();
    }

    #[test]
    fn files_below_the_metadata_are_reached_through_the_held_directory() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("solo");
        standalone(&p);
        fs::write(p.join(".kanibako/env"), "MINE=1\n").unwrap();
        let b = standalone_at(&p).unwrap().unwrap();
        // the box swaps its metadata for a link to another box's, after it was found
        let other = t.path().join("other");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("env"), "SECRET=theirs\n").unwrap();
        fs::write(other.join("project.yaml"), "project:\n  mode: standalone\n").unwrap();
        fs::rename(p.join(".kanibako"), p.join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, p.join(".kanibako")).unwrap();
        let env = crate::envfile::read(&b.env_file()).unwrap();
        assert_eq!(env.get("MINE").map(String::as_str), Some("1"), "{env:?}");
        assert!(!env.contains_key("SECRET"));
        assert!(
            b.load_project()
                .unwrap()
                .get_str(&["project", "mode"])
                .unwrap()
                .is_some()
        );
        let lock = fsutil::try_lock_exclusive(&b.lock_file()).unwrap().unwrap();
        drop(lock);
        assert!(p.join("moved/.kanibako.lock").exists());
        assert!(!other.join(".kanibako.lock").exists());
        // found again now, the link is refused with a clear error
        let err = standalone_at(&p).unwrap_err();
        assert!(matches!(err, BoxError::MetadataLink(_)), "{err}");
        assert!(err.to_string().contains("symbolic link"));
    }

    #[test]
    fn a_marker_counts_only_in_the_directory_its_layout_uses() {
        let t = tempfile::tempdir().unwrap();
        // a repository named `kanibako` with a project.yaml at its root
        let p = t.path().join("src");
        fs::create_dir_all(p.join("kanibako")).unwrap();
        fs::write(
            p.join("kanibako/project.yaml"),
            "project:\n  mode: standalone\n",
        )
        .unwrap();
        assert!(standalone_at(&p).unwrap().is_none());
        fs::write(
            p.join("kanibako/project.yaml"),
            "project:\n  mode: standalone\n  layout: robust\n",
        )
        .unwrap();
        let b = standalone_at(&p).unwrap().unwrap();
        assert_eq!(b.metadata, p.join("kanibako"));
        // a `.kanibako` marker claiming the robust layout would name another directory
        let q = t.path().join("q");
        fs::create_dir_all(q.join(".kanibako")).unwrap();
        fs::write(
            q.join(".kanibako/project.yaml"),
            "project:\n  mode: standalone\n  layout: robust\n",
        )
        .unwrap();
        assert!(standalone_at(&q).unwrap().is_none());
    }
}
