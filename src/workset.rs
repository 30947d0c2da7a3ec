//! Worksets: a root directory grouping boxes that share config, an env file and an auth
//! mode (spec: upstream-cli-and-data §6.7).
//!
//! ```text
//! <root>/workset.yaml        name, created, group_auth, projects [{name, source_path}]
//! <root>/config.yaml         the workset level of settings
//! <root>/env                 the workset's env file
//! <root>/boxes/<p>/          each member's metadata and home
//! <root>/workspaces/<p>/     each member's workspace
//! <root>/vault/<p>/{ro,rw}   each member's vault
//! ```
//!
//! Reading worksets (the registry, `workset.yaml`, a member's identity) is
//! [`crate::boxes::worksets`]', re-exported here; this module makes, joins and removes.
//!
//! The Python tool keeps two registries (`worksets.yaml` for finding roots, the
//! `worksets:` section of `names.yaml` for names) that drift apart. Here they are one:
//! read as their union, always written together under the names lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::boxes::worksets::{DEFAULT, Member, WORKSET_FILE, Workset, member_at, registered};

use crate::boxes::create::{self};
use crate::boxes::error::BoxError;
use crate::boxes::registry::{Registry, Section};
use crate::boxes::{BoxIdentity, BoxName, Layout, Mode, ProjectSettings};
use crate::document::{DocError, Document, Item};
use crate::fsutil;
use crate::paths::Paths;

#[derive(Debug, thiserror::Error)]
pub enum WorksetError {
    #[error("'{0}' is reserved for the default workset.")]
    Reserved(String),
    #[error("Workset root already exists: {}", .0.display())]
    RootExists(PathBuf),
    #[error("Project '{project}' is already in workset '{workset}'.")]
    MemberExists { workset: String, project: String },
    #[error("workset '{name}' has {count} project(s). Use --force to remove anyway.")]
    HasMembers { name: String, count: usize },
    #[error("The default workset cannot be removed.")]
    DefaultFixed,
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<std::io::Error> for WorksetError {
    fn from(source: std::io::Error) -> Self {
        WorksetError::Io {
            context: "file system".into(),
            source,
        }
    }
}

impl WorksetError {
    pub fn hints(&self) -> Vec<String> {
        match self {
            WorksetError::Box(b) => b.hints(),
            WorksetError::Doc(d) => d.hint().into_iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// Write a name → root change to both registries (the caller holds the names lock).
fn record(
    paths: &Paths,
    reg: &mut Registry,
    name: &str,
    root: Option<&Path>,
) -> Result<(), WorksetError> {
    let mut hints = Document::load(&paths.ws_hints)?;
    let mut map: BTreeMap<String, String> =
        hints.get_string_map(&["worksets"])?.into_iter().collect();
    match root {
        Some(r) => {
            map.insert(name.to_owned(), r.to_string_lossy().into_owned());
            reg.worksets.insert(name.to_owned(), r.to_owned());
        }
        None => {
            map.remove(name);
            reg.worksets.remove(name);
        }
    }
    hints.set(&["worksets"], Item::Map(map.into_iter().collect()))?;
    hints.save()?;
    reg.save()?;
    Ok(())
}

/// What `workset create` was asked for.
#[derive(Clone, Debug, Default)]
pub struct CreateRequest {
    pub root: PathBuf,
    pub name: Option<String>,
    pub image: Option<String>,
    pub no_vault: bool,
    pub distinct_auth: bool,
    /// Upstream's `--standalone`: recorded as it records it (`standalone: true` in
    /// `config.yaml`), which is all upstream does with it.
    pub standalone: bool,
}

fn check_name(name: &str) -> Result<BoxName, WorksetError> {
    if name == DEFAULT || name == "__default__" {
        return Err(WorksetError::Reserved(name.to_owned()));
    }
    Ok(BoxName::parse(name).map_err(BoxError::from)?)
}

/// Create a workset: everything is checked first, the root is made, and the name is
/// recorded last; a failure on the way removes what was made.
pub fn create(paths: &Paths, req: &CreateRequest) -> Result<Workset, WorksetError> {
    let root = &req.root;
    if root.exists() {
        return Err(WorksetError::RootExists(root.clone()));
    }
    let name = match &req.name {
        Some(n) => check_name(n)?,
        None => check_name(
            &BoxName::slug(&root.file_name().unwrap_or_default().to_string_lossy()).to_string(),
        )?,
    };
    Registry::update(paths, |reg| {
        if let Some((section, path)) = reg.lookup(name.as_str()) {
            return Err(match section {
                Section::Worksets => WorksetError::Box(BoxError::NameTaken {
                    name: name.to_string(),
                    section,
                    path: path.to_owned(),
                }),
                Section::Projects => WorksetError::Box(BoxError::NameTaken {
                    name: name.to_string(),
                    section,
                    path: path.to_owned(),
                }),
            });
        }
        if let Some(existing) = registered(paths)?.get(name.as_str()) {
            return Err(WorksetError::Box(BoxError::NameTaken {
                name: name.to_string(),
                section: Section::Worksets,
                path: existing.clone(),
            }));
        }
        let made = (|| -> Result<Workset, WorksetError> {
            for d in ["boxes", "workspaces", "vault", "shared"] {
                std::fs::create_dir_all(root.join(d))?;
            }
            let mut ws = Workset::new(
                name.to_string(),
                root.clone(),
                crate::clock::now_iso(),
                !req.distinct_auth,
            );
            ws.save()?;
            if req.image.is_some() || req.no_vault || req.standalone {
                let mut config = Document::empty(&ws.config_file());
                if let Some(image) = &req.image {
                    config.set(&["box", "image"], image.clone().into())?;
                }
                if req.standalone {
                    config.set(&["standalone"], true.into())?;
                }
                if req.no_vault {
                    config.set(&["project", "enable_vault"], false.into())?;
                }
                config.save()?;
            }
            record(paths, reg, name.as_str(), Some(root))?;
            Ok(ws)
        })();
        match made {
            Ok(ws) => Ok((ws, false)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(root);
                Err(e)
            }
        }
    })
}

/// Add a member: its metadata, home, workspace and vault; recorded in `workset.yaml`.
pub fn connect(
    ws: &mut Workset,
    source: &Path,
    name: Option<&str>,
    vault: bool,
) -> Result<BoxIdentity, WorksetError> {
    let name = match name {
        Some(n) => BoxName::parse(n).map_err(BoxError::from)?,
        None => BoxName::slug(&source.file_name().unwrap_or_default().to_string_lossy()),
    };
    if ws.member(name.as_str()).is_some() {
        return Err(WorksetError::MemberExists {
            workset: ws.name.clone(),
            project: name.to_string(),
        });
    }
    let settings = ProjectSettings {
        mode: Some(Mode::Workset),
        layout: Some(Layout::Robust),
        enable_vault: vault,
        group_auth: true,
    };
    let b = BoxIdentity::workset_member(&ws.name, &ws.root, name.clone(), settings);
    std::fs::create_dir_all(&b.workspace)?;
    create::shell_skeleton(&b.shell)?;
    if let Some(v) = &b.vault {
        std::fs::create_dir_all(&v.ro)?;
        std::fs::create_dir_all(&v.rw)?;
    }
    let mut doc = Document::empty(&b.project_file());
    doc.set(&["project", "mode"], "workset".into())?;
    doc.set(&["project", "layout"], "robust".into())?;
    doc.set(&["project", "enable_vault"], vault.into())?;
    doc.set(&["project", "group_auth"], true.into())?;
    doc.set(
        &["resolved", "workspace"],
        b.workspace.to_string_lossy().into_owned().into(),
    )?;
    doc.set(
        &["resolved", "shell"],
        b.shell.to_string_lossy().into_owned().into(),
    )?;
    doc.set(
        &["resolved", "metadata"],
        b.metadata.to_string_lossy().into_owned().into(),
    )?;
    doc.set(&["resolved", "project_hash"], b.hash.clone().into())?;
    doc.save()?;
    ws.members.push(Member {
        name: name.to_string(),
        source: source.to_owned(),
    });
    ws.save()?;
    Ok(b)
}

/// Remove a member from the workset; with `remove_files`, its metadata, workspace and
/// vault too (never following links out of the root).
pub fn disconnect(ws: &mut Workset, name: &str, remove_files: bool) -> Result<(), WorksetError> {
    if ws.member(name).is_none() {
        return Err(WorksetError::Box(BoxError::NoMember {
            workset: ws.name.clone(),
            project: name.to_owned(),
        }));
    }
    let b = ws.identity(name)?;
    ws.members.retain(|m| m.name != name);
    ws.save()?;
    if remove_files {
        let mut dirs = vec![b.metadata.clone(), b.workspace.clone()];
        if let Some(v) = &b.vault
            && let Some(parent) = v.rw.parent()
        {
            dirs.push(parent.to_owned());
        }
        for d in dirs {
            if d.starts_with(&ws.root) && !fsutil::is_symlink(&d) {
                let _ = std::fs::remove_dir_all(&d);
            }
        }
    }
    Ok(())
}

/// Unregister a workset; with `purge`, delete its root as well.
pub fn remove(paths: &Paths, ws: &Workset, purge: bool) -> Result<(), WorksetError> {
    Registry::update(paths, |reg| {
        record(paths, reg, &ws.name, None)?;
        Ok::<_, WorksetError>(((), false))
    })?;
    if purge && ws.root.join(WORKSET_FILE).is_file() && !fsutil::is_symlink(&ws.root) {
        std::fs::remove_dir_all(&ws.root).map_err(|source| WorksetError::Io {
            context: format!("deleting {}", ws.root.display()),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_look_like_pythons() {
        let t = crate::clock::now_iso();
        assert_eq!(t.len(), "2026-11-26T17:43:01.425430+00:00".len(), "{t}");
        assert!(t.ends_with("+00:00") && t.as_bytes()[10] == b'T');
    }

    #[test]
    fn reserved_and_bad_names() {
        assert!(matches!(
            check_name("default"),
            Err(WorksetError::Reserved(_))
        ));
        assert!(matches!(
            check_name("__default__"),
            Err(WorksetError::Reserved(_))
        ));
        assert!(check_name("../x").is_err());
        assert!(check_name("client").is_ok());
    }
}
