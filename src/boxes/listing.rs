//! Listing boxes with their status (spec: upstream-cli-and-data §6.9).
//!
//! The registry says which boxes exist; the engine says which are active, by the labels
//! kanibako puts on its containers. A running container without labels whose name is
//! exactly a box's upstream container name was started by the Python tool and counts as
//! active too ("legacy"); any other container is not ours and is ignored. On an engine
//! other users or other data directories share, a container labelled with another data
//! directory's id ([`labels::DATA`]) is never looked at.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::BoxError;
use super::registry::Registry;
use super::{BoxIdentity, BoxName, PROJECT_FILE, ProjectSettings};
use crate::document::Document;
use crate::paths::Paths;
use crate::runtime::containers::ContainerSummary;
use crate::runtime::labels;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A container of this box is running.
    Active,
    /// The project directory exists; nothing runs.
    Stopped,
    /// Registered, but the project directory is gone (moved or deleted).
    Missing,
    /// Metadata under `boxes/` with no name in `names.yaml` (removed without `--purge`).
    Unregistered,
    /// Metadata that records no project directory at all.
    Unknown,
    /// The project directory exists, but no engine could be asked whether it runs.
    #[serde(rename = "unknown")]
    Unasked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Stopped => "stopped",
            Status::Missing => "missing",
            Status::Unregistered => "unregistered",
            Status::Unknown | Status::Unasked => "unknown",
        }
    }

    /// Orphans are hidden unless asked for.
    pub fn is_orphan(self) -> bool {
        matches!(
            self,
            Status::Missing | Status::Unregistered | Status::Unknown
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub name: String,
    pub status: Status,
    /// Active through an unlabelled container the Python tool started.
    pub legacy: bool,
    pub path: Option<PathBuf>,
    /// The running container, when active.
    pub container: Option<String>,
    pub metadata: Option<PathBuf>,
    /// The workset a member row belongs to (name, root); its `path` is then the
    /// member's source.
    pub workset: Option<(String, PathBuf)>,
}

/// A row as `list --json` / `ps --json` print it (the README's "JSON output").
#[derive(Serialize)]
pub struct JsonRow<'a> {
    pub name: &'a str,
    pub status: Status,
    pub legacy: bool,
    pub path: Option<&'a Path>,
    pub container: Option<&'a str>,
    pub metadata: Option<&'a Path>,
    /// The workset of a member (`null` for the default workset and standalone boxes).
    pub workset: Option<&'a str>,
    pub workset_root: Option<&'a Path>,
}

impl Row {
    pub fn json(&self) -> JsonRow<'_> {
        JsonRow {
            name: &self.name,
            status: self.status,
            legacy: self.legacy,
            path: self.path.as_deref(),
            container: self.container.as_deref(),
            metadata: self.metadata.as_deref(),
            workset: self.workset.as_ref().map(|(n, _)| n.as_str()),
            workset_root: self.workset.as_ref().map(|(_, r)| r.as_path()),
        }
    }

    pub fn status_text(&self) -> String {
        if self.legacy {
            format!("{} (legacy)", self.status.as_str())
        } else {
            self.status.as_str().to_owned()
        }
    }
}

/// What is running, as far as boxes are concerned.
#[derive(Clone, Debug, Default)]
pub struct Activity {
    running: Vec<ContainerSummary>,
    data_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Active {
    pub container: String,
    pub legacy: bool,
}

fn is_ours(c: &ContainerSummary) -> bool {
    c.labels.contains_key(labels::HASH) || c.labels.contains_key(labels::BOX)
}

/// Whether `c` may belong to the data directory `data_id`: it carries that id, or no data
/// label at all (started before the label existed, by us or by the Python tool; such a
/// container still has to match one of our boxes by hash or exact name to count).
pub fn of_data_dir(c: &ContainerSummary, data_id: &str) -> bool {
    c.labels.get(labels::DATA).is_none_or(|d| d == data_id)
}

impl Activity {
    /// What of `containers` runs for the data directory `data_id`.
    pub fn new(containers: Vec<ContainerSummary>, data_id: &str) -> Self {
        Self {
            running: containers
                .into_iter()
                .filter(|c| c.running && of_data_dir(c, data_id))
                .collect(),
            data_id: data_id.to_owned(),
        }
    }

    /// The running container of `b`, if any: ours by label (the path hash, or the name
    /// for containers labelled before hashes existed), or upstream's by exact name.
    pub fn of(&self, b: &BoxIdentity) -> Option<Active> {
        let labelled = self
            .running
            .iter()
            .find(|c| match c.labels.get(labels::HASH) {
                Some(h) => *h == b.hash,
                None => b.name.as_ref().is_some_and(|n| {
                    c.labels.get(labels::BOX).map(String::as_str) == Some(n.as_str())
                }),
            });
        if let Some(c) = labelled {
            return Some(Active {
                container: c.name.clone(),
                legacy: false,
            });
        }
        let legacy_name = b.legacy_container_name();
        self.running
            .iter()
            .find(|c| !is_ours(c) && c.name == legacy_name)
            .map(|c| Active {
                container: c.name.clone(),
                legacy: true,
            })
    }

    /// Running containers of this data directory not claimed by any of `rows`
    /// (standalone boxes): labelled with its id, so never another user's.
    fn unclaimed<'a>(
        &'a self,
        claimed: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a ContainerSummary> {
        self.running.iter().filter(move |c| {
            c.labels.get(labels::DATA) == Some(&self.data_id) && !claimed.contains(&c.name)
        })
    }
}

fn recorded_workspace(meta: &Path) -> Option<PathBuf> {
    let doc = Document::load(&meta.join(PROJECT_FILE)).ok()?;
    if let Some(w) = doc.get_str(&["resolved", "workspace"]).ok().flatten() {
        return Some(PathBuf::from(w));
    }
    if let Some(w) = doc.get_str(&["paths", "workspace"]).ok().flatten() {
        return Some(PathBuf::from(w));
    }
    // Breadcrumb of boxes made before project.yaml existed.
    let crumb = fs::read_to_string(meta.join("project-path.txt")).ok()?;
    let line = crumb.lines().next()?.trim();
    (!line.is_empty()).then(|| PathBuf::from(line))
}

/// Every box row, registered ones first (by name), then leftover metadata, then running
/// containers that belong to no listed box. `activity` is `None` when no engine could be
/// asked; a box that is not missing then shows as `unknown` ([`Status::Unasked`]), never
/// as stopped: it may well be running.
pub fn rows(paths: &Paths, activity: Option<&Activity>) -> Result<Vec<Row>, BoxError> {
    let registry = Registry::load(&paths.names_file())?;
    let mut out = Vec::new();
    let mut claimed = BTreeSet::new();
    for (name, path) in &registry.projects {
        // What a row needs of a box (its metadata directory, hash and container names)
        // follows from its name and path: its project.yaml is not read, so listing
        // 1,000 boxes opens one file, not 1,001.
        let identity = BoxName::from_registry(name).map(|n| {
            BoxIdentity::default_mode(n, path.clone(), &paths.boxes, ProjectSettings::default())
        });
        let active = match (&identity, activity) {
            (Some(b), Some(a)) => a.of(b),
            _ => None,
        };
        let status = if !path.is_dir() {
            Status::Missing
        } else if active.is_some() {
            Status::Active
        } else if activity.is_none() {
            Status::Unasked
        } else {
            Status::Stopped
        };
        if let Some(a) = &active {
            claimed.insert(a.container.clone());
        }
        out.push(Row {
            name: name.clone(),
            status,
            legacy: active.as_ref().is_some_and(|a| a.legacy),
            path: Some(path.clone()),
            container: active.map(|a| a.container),
            metadata: identity.map(|b| b.metadata),
            workset: None,
        });
    }
    let mut leftovers: Vec<_> = match fs::read_dir(&paths.boxes) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !registry.projects.contains_key(n))
            .collect(),
        Err(_) => Vec::new(),
    };
    leftovers.sort();
    for name in leftovers {
        let meta = paths.boxes.join(&name);
        let path = recorded_workspace(&meta);
        out.push(Row {
            status: if path.is_some() {
                Status::Unregistered
            } else {
                Status::Unknown
            },
            name,
            legacy: false,
            path,
            container: None,
            metadata: Some(meta),
            workset: None,
        });
    }
    for (ws_name, root) in super::worksets::registered_with(paths, &registry)? {
        let Ok(ws) = super::worksets::Workset::load(&ws_name, &root) else {
            continue;
        };
        for m in &ws.members {
            let Ok(b) = ws.identity(&m.name) else {
                continue;
            };
            let active = activity.and_then(|a| a.of(&b));
            let status = if !b.metadata.is_dir() {
                Status::Unknown
            } else if !b.workspace.is_dir() {
                Status::Missing
            } else if active.is_some() {
                Status::Active
            } else if activity.is_none() {
                Status::Unasked
            } else {
                Status::Stopped
            };
            if let Some(a) = &active {
                claimed.insert(a.container.clone());
            }
            out.push(Row {
                name: m.name.clone(),
                status,
                legacy: active.as_ref().is_some_and(|a| a.legacy),
                path: Some(m.source.clone()),
                container: active.map(|a| a.container),
                metadata: Some(b.metadata),
                workset: Some((ws.name.clone(), ws.root.clone())),
            });
        }
    }
    if let Some(a) = activity {
        for c in a.unclaimed(&claimed) {
            let name = c
                .labels
                .get(labels::BOX)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| c.name.clone());
            out.push(Row {
                name,
                status: Status::Active,
                legacy: false,
                path: None,
                container: Some(c.name.clone()),
                metadata: None,
                workset: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::ProjectSettings;
    use std::collections::BTreeMap;

    fn container(name: &str, running: bool, labels: &[(&str, &str)]) -> ContainerSummary {
        ContainerSummary {
            name: name.into(),
            running,
            image: "img".into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn app() -> BoxIdentity {
        BoxIdentity::default_mode(
            BoxName::parse("app").unwrap(),
            "/p/app".into(),
            Path::new("/d/boxes"),
            ProjectSettings::default(),
        )
    }

    #[test]
    fn labelled_container_makes_a_box_active() {
        let b = app();
        let a = Activity::new(
            vec![container("whatever", true, &[(labels::HASH, &b.hash)])],
            "d",
        );
        assert_eq!(
            a.of(&b),
            Some(Active {
                container: "whatever".into(),
                legacy: false
            })
        );
    }

    #[test]
    fn a_stopped_or_foreign_container_does_not() {
        let b = app();
        let a = Activity::new(
            vec![
                container("kanibako-app", false, &[]),
                container("kanibako-app-db", true, &[]),
                container("x", true, &[(labels::HASH, "other")]),
            ],
            "d",
        );
        assert_eq!(a.of(&b), None);
    }

    #[test]
    fn an_unlabelled_exact_name_is_legacy() {
        let b = app();
        let a = Activity::new(
            vec![container("kanibako-app", true, &[("unrelated", "1")])],
            "d",
        );
        assert_eq!(a.of(&b).map(|x| x.legacy), Some(true));
        // but a labelled container of another box with that name is not legacy
        let a = Activity::new(
            vec![container("kanibako-app", true, &[(labels::HASH, "other")])],
            "d",
        );
        assert_eq!(a.of(&b), None);
    }

    /// Issue 10 (low): on a shared engine, a container of another data directory (even
    /// one with this box's hash: the same project path under another user's kanibako) is
    /// not this box's, and no unclaimed row shows for it.
    #[test]
    fn another_data_dirs_container_is_never_seen() {
        let b = app();
        let theirs = container(
            "kanibako-app",
            true,
            &[(labels::HASH, &b.hash), (labels::DATA, "other")],
        );
        let stray = container(
            "kanibako-solo",
            true,
            &[(labels::HASH, "x"), (labels::DATA, "other")],
        );
        let mine = container(
            "kanibako-mine",
            true,
            &[(labels::HASH, "y"), (labels::DATA, "d")],
        );
        let a = Activity::new(vec![theirs, stray, mine], "d");
        assert_eq!(a.of(&b), None);
        let none = BTreeSet::new();
        let names: Vec<&str> = a.unclaimed(&none).map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["kanibako-mine"]);
    }
}
