//! `names.yaml`: which name belongs to which project directory (and which to a workset).
//!
//! Names are unique across both sections. Every change is a read-modify-write under an
//! exclusive lock on `$DATA/.names.lock`, so two `create`s at once both land.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::document::{DocError, Document, Item};
use crate::fsutil;
use crate::paths::Paths;

#[derive(Clone, Debug)]
pub struct Registry {
    doc: Document,
    pub projects: BTreeMap<String, PathBuf>,
    pub worksets: BTreeMap<String, PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Projects,
    Worksets,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Projects => "projects",
            Section::Worksets => "worksets",
        }
    }
}

fn read_section(doc: &Document, section: Section) -> Result<BTreeMap<String, PathBuf>, DocError> {
    Ok(doc
        .get_string_map(&[section.key()])?
        .into_iter()
        .map(|(k, v)| (k, PathBuf::from(v)))
        .collect())
}

/// Two spellings of one directory: compare as given, then as resolved on disk.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b
        || match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, DocError> {
        let doc = Document::load(path)?;
        Ok(Self {
            projects: read_section(&doc, Section::Projects)?,
            worksets: read_section(&doc, Section::Worksets)?,
            doc,
        })
    }

    /// The section and path a name is registered under, if any.
    pub fn lookup(&self, name: &str) -> Option<(Section, &Path)> {
        if let Some(p) = self.projects.get(name) {
            return Some((Section::Projects, p));
        }
        self.worksets
            .get(name)
            .map(|p| (Section::Worksets, p.as_path()))
    }

    /// The registered project name for a directory.
    pub fn project_for_path(&self, dir: &Path) -> Option<&str> {
        self.projects
            .iter()
            .find(|(_, p)| p.as_path() == dir)
            .or_else(|| self.projects.iter().find(|(_, p)| same_dir(p, dir)))
            .map(|(n, _)| n.as_str())
    }

    /// Write both sections sorted by name (as the Python tool does), keeping any other
    /// top-level keys.
    pub fn save(&mut self) -> Result<(), DocError> {
        self.prepare_text()?;
        self.doc.save()
    }

    /// The text [`Registry::save`] writes, with the sections set for it.
    pub fn prepare_text(&mut self) -> Result<String, DocError> {
        for (section, map) in [
            (Section::Projects, &self.projects),
            (Section::Worksets, &self.worksets),
        ] {
            let m = map
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned()))
                .collect();
            self.doc.set(&[section.key()], Item::Map(m))?;
        }
        Ok(self.doc.to_yaml())
    }

    /// Load, let `change` edit, and save — all under the registry lock. `change` returns
    /// whether it changed anything; nothing is written otherwise.
    pub fn update<T, E>(
        paths: &Paths,
        change: impl FnOnce(&mut Registry) -> Result<(T, bool), E>,
    ) -> Result<T, E>
    where
        E: From<DocError> + From<std::io::Error>,
    {
        let _lock = fsutil::lock_exclusive(&paths.names_lock())?;
        let mut reg = Registry::load(&paths.names_file())?;
        let (out, changed) = change(&mut reg)?;
        if changed {
            reg.save()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites_the_python_format() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("names.yaml");
        let text = "projects:\n  myapp: /home/alice/projects/myapp\n  myapp2: /home/alice/projects/other/myapp\nworksets:\n  client: /home/alice/ws/client\n";
        std::fs::write(&file, text).unwrap();
        let mut reg = Registry::load(&file).unwrap();
        assert_eq!(reg.lookup("client").unwrap().0, Section::Worksets);
        assert_eq!(
            reg.project_for_path(Path::new("/home/alice/projects/other/myapp")),
            Some("myapp2")
        );
        reg.save().unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn empty_sections_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("names.yaml");
        let mut reg = Registry::load(&file).unwrap();
        reg.projects.insert("b".into(), "/p/b".into());
        reg.projects.insert("My Proj".into(), "/p/m".into());
        reg.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "projects:\n  My Proj: /p/m\n  b: /p/b\nworksets: {}\n"
        );
    }
}
