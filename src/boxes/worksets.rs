//! Worksets as box resolution sees them: the registered worksets (name → root), a
//! workset's `workset.yaml` (its members), a member's box identity, and which member a
//! directory is in. Making, joining and removing worksets is `crate::workset`'s; this
//! module only reads and rewrites the file (spec: upstream-cli-and-data §6.7).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::BoxError;
use super::registry::Registry;
use super::{BoxIdentity, BoxName, PROJECT_FILE, ProjectSettings};
use crate::document::{Document, Item};
use crate::paths::Paths;

pub const WORKSET_FILE: &str = "workset.yaml";
/// The synthesised workset of all default-mode boxes.
pub const DEFAULT: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub source: PathBuf,
}

#[derive(Clone, Debug)]
pub struct Workset {
    pub name: String,
    pub root: PathBuf,
    pub created: String,
    pub group_auth: bool,
    pub members: Vec<Member>,
    doc: Document,
}

/// Every registered workset: name → root. The union of both registries (a workset the
/// Python tool recorded in only one of them is still found).
pub fn registered(paths: &Paths) -> Result<BTreeMap<String, PathBuf>, BoxError> {
    registered_with(paths, &Registry::load(&paths.names_file())?)
}

/// [`registered`], with `names.yaml` already loaded (a listing reads it once).
pub fn registered_with(
    paths: &Paths,
    names: &Registry,
) -> Result<BTreeMap<String, PathBuf>, BoxError> {
    let hints = Document::load(&paths.ws_hints)?;
    let mut all: BTreeMap<String, PathBuf> = hints
        .get_string_map(&["worksets"])?
        .into_iter()
        .map(|(k, v)| (k, PathBuf::from(v)))
        .collect();
    for (k, v) in &names.worksets {
        all.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Ok(all)
}

impl Workset {
    pub fn load(name: &str, root: &Path) -> Result<Self, BoxError> {
        let doc = Document::load(&root.join(WORKSET_FILE))?;
        let field = |m: &[(String, String)], k: &str| {
            m.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone())
        };
        let members = doc
            .get_record_list(&["projects"])?
            .iter()
            .filter_map(|m| {
                Some(Member {
                    name: field(m, "name")?,
                    source: PathBuf::from(field(m, "source_path").unwrap_or_default()),
                })
            })
            .collect();
        Ok(Self {
            name: doc.get_str(&["name"])?.unwrap_or_else(|| name.to_owned()),
            root: root.to_owned(),
            created: doc.get_str(&["created"])?.unwrap_or_default(),
            group_auth: doc.get_bool(&["group_auth"])?.unwrap_or(true),
            members,
            doc,
        })
    }

    pub fn find(paths: &Paths, name: &str) -> Result<Self, BoxError> {
        let all = registered(paths)?;
        let root = all
            .get(name)
            .ok_or_else(|| BoxError::NoWorkset(name.to_owned()))?;
        Self::load(name, root)
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.yaml")
    }

    pub fn env_file(&self) -> PathBuf {
        self.root.join("env")
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// A workset not yet on disk, with no members.
    pub fn new(name: String, root: PathBuf, created: String, group_auth: bool) -> Self {
        Self {
            doc: Document::empty(&root.join(WORKSET_FILE)),
            name,
            root,
            created,
            group_auth,
            members: Vec::new(),
        }
    }

    /// Write `workset.yaml`, keeping keys this version does not know.
    pub fn save(&mut self) -> Result<(), BoxError> {
        let items = self
            .members
            .iter()
            .map(|m| {
                vec![
                    ("name".to_owned(), m.name.clone()),
                    (
                        "source_path".to_owned(),
                        m.source.to_string_lossy().into_owned(),
                    ),
                ]
            })
            .collect();
        self.doc.set(&["name"], self.name.clone().into())?;
        self.doc.set(&["created"], self.created.clone().into())?;
        self.doc.set(&["group_auth"], self.group_auth.into())?;
        self.doc.set(&["projects"], Item::Records(items))?;
        self.doc.save()?;
        Ok(())
    }

    pub fn set_group_auth(&mut self, value: bool) -> Result<(), BoxError> {
        self.group_auth = value;
        self.save()
    }

    /// A member's box identity.
    pub fn identity(&self, name: &str) -> Result<BoxIdentity, BoxError> {
        let member = BoxName::from_registry(name).ok_or_else(|| BoxError::NoMember {
            workset: self.name.clone(),
            project: name.to_owned(),
        })?;
        let file = self.root.join("boxes").join(name).join(PROJECT_FILE);
        let stamp = super::FileStamp::of(&file);
        let doc = Document::load(&file)?;
        let settings = ProjectSettings::read(&doc)?;
        let mut b = BoxIdentity::workset_member(
            &self.name,
            &self.root,
            member,
            ProjectSettings {
                // a member can narrow shared auth to distinct, never widen it
                group_auth: settings.group_auth && self.group_auth,
                ..settings
            },
        );
        if let Some(dir) = self.in_place_workspace(name) {
            b.workspace = dir;
        }
        Ok(b.with_project(stamp, &doc))
    }

    /// Where member `name` works when it joined in place (`box migrate --to workset
    /// --in-place`): its recorded source, which `workspaces/<name>` links to (so the
    /// Python tool, which mounts `workspaces/<name>`, sees the same tree). Both must
    /// agree; a link alone (or a source alone) is an ordinary member.
    pub fn in_place_workspace(&self, name: &str) -> Option<PathBuf> {
        let source = &self.member(name)?.source;
        let link = self.root.join("workspaces").join(name);
        let is_link = link.symlink_metadata().ok()?.file_type().is_symlink();
        (is_link && !source.as_os_str().is_empty() && link.canonicalize().ok()? == *source)
            .then(|| source.clone())
    }

    /// Every member's identity.
    pub fn identities(&self) -> Vec<BoxIdentity> {
        self.members
            .iter()
            .filter_map(|m| self.identity(&m.name).ok())
            .collect()
    }
}

/// The workset member `dir` is in, if `dir` is inside a registered workset root
/// (`names` is the loaded `names.yaml`: a launch reads it once).
pub fn member_at(
    paths: &Paths,
    names: &Registry,
    dir: &Path,
) -> Result<Option<BoxIdentity>, BoxError> {
    let sets = registered_with(paths, names)?;
    for (name, root) in &sets {
        let root = root.canonicalize().unwrap_or_else(|_| root.clone());
        let Ok(rel) = dir.strip_prefix(&root) else {
            continue;
        };
        let mut parts = rel.components();
        let ws = Workset::load(name, &root)?;
        match (parts.next(), parts.next()) {
            (Some(first), Some(project)) if first.as_os_str() == "workspaces" => {
                let p = project.as_os_str().to_string_lossy().into_owned();
                if ws.member(&p).is_none() {
                    return Err(BoxError::NoMember {
                        workset: ws.name,
                        project: p,
                    });
                }
                return ws.identity(&p).map(Some);
            }
            _ => {
                return Err(BoxError::NotInWorkspace {
                    workset: ws.name,
                    root,
                });
            }
        }
    }
    // A member that joined in place works in its own directory, outside the root.
    for (name, root) in &sets {
        let Ok(ws) = Workset::load(name, root) else {
            continue;
        };
        for m in &ws.members {
            if dir.starts_with(&m.source)
                && let Some(_) = ws.in_place_workspace(&m.name)
            {
                return ws.identity(&m.name).map(Some);
            }
        }
    }
    Ok(None)
}
