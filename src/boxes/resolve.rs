//! Which box is meant: a registered name, a path, or the current directory
//! (spec: upstream-cli-and-data §6.2).
//!
//! A path resolves to the deepest registered box that contains it, else to a standalone
//! box found by walking up to `$HOME`, else to nothing (an unregistered directory). A
//! path that does not exist is an error rather than silently meaning its enclosing box.

use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::registry::{Registry, same_dir};
use super::{BoxIdentity, BoxName, Mode, PROJECT_FILE, ProjectSettings};
use crate::document::Document;
use crate::paths::Paths;

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
    let doc = Document::load(&paths.boxes.join(name.as_str()).join(PROJECT_FILE))?;
    let settings = ProjectSettings::read(&doc)?;
    Ok(BoxIdentity::default_mode(
        name,
        workspace,
        &paths.boxes,
        settings,
    ))
}

/// A standalone marker at `dir`: `.kanibako/project.yaml` (or, robust layout,
/// `kanibako/project.yaml`) whose mode is standalone. A bare `.kanibako` directory is
/// not one: images bake one into every home.
pub fn standalone_at(dir: &Path) -> Result<Option<BoxIdentity>, BoxError> {
    for meta in [".kanibako", "kanibako"] {
        let file = dir.join(meta).join(PROJECT_FILE);
        if !file.is_file() {
            continue;
        }
        let settings = ProjectSettings::read(&Document::load(&file)?)?;
        if settings.mode == Some(Mode::Standalone) {
            return Ok(Some(BoxIdentity::standalone(dir.to_owned(), settings)));
        }
    }
    Ok(None)
}

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
            for (_, root) in super::worksets::registered(paths)? {
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
    let dir = match raw.canonicalize() {
        Ok(d) => d,
        Err(_) => return Err(BoxError::PathMissing(normalize(&raw))),
    };
    if !dir.is_dir() {
        return Err(BoxError::NotADirectory(dir));
    }
    resolve_dir(paths, &registry, &dir)
}

/// Resolve an existing, canonical directory.
pub fn resolve_dir(paths: &Paths, registry: &Registry, dir: &Path) -> Result<Resolution, BoxError> {
    if let Some(member) = super::worksets::member_at(paths, dir)? {
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
    for ancestor in dir.ancestors() {
        if let Some(b) = standalone_at(ancestor)? {
            return Ok(Resolution::Found(b));
        }
        if same_dir(ancestor, &home) {
            break;
        }
    }
    Ok(Resolution::Unregistered(dir.to_owned()))
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
