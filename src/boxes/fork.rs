//! Forking a box (`crab fork NAME`, asked of the box's hub): a new box next to the
//! project, `<parent>/<basename>.<NAME>`, holding a copy of the project directory and
//! its OWN copy of the source's home and vault (upstream copied `project.yaml` as it
//! was, so the fork mounted the source's home and vault: defect 9).
//!
//! The name and the destination are planned here from the source's identity alone
//! ([`ForkName`], [`destination`], [`plan`]); [`fork`] then makes the copy the way
//! `box duplicate` does ([`super::duplicate::carry`]): through temporary siblings
//! renamed into place, links copied as links and never followed, and nothing left
//! behind when it fails.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::create::choose_name;
use super::duplicate::{self, Change, settings_of};
use super::error::BoxError;
use super::registry::Registry;
use super::relocation::{self, How};
use super::transfer;
use super::{BoxIdentity, Mode};
use crate::document::DocError;
use crate::paths::Paths;

/// Longest fork name: the new directory's name is the project's, a dot and this.
pub const MAX_NAME: usize = 64;

/// A fork's name: what upstream allows (not empty once trimmed; no `/`, `\` or `.`),
/// narrowed to what a box name may hold so `<box>.<NAME>` is one too:
/// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ForkName(String);

impl ForkName {
    /// `s` as it is (callers trim first, as upstream does).
    pub fn parse(s: &str) -> Option<Self> {
        let mut b = s.bytes();
        let ok = s.len() <= MAX_NAME
            && b.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("destination already exists: {}", .0.display())]
    Exists(PathBuf),
    #[error("the project directory {} is missing", .0.display())]
    NoWorkspace(PathBuf),
    #[error("{} has no parent directory to fork next to", .0.display())]
    NoParent(PathBuf),
    #[error("'{0}' is a workset member; forking one is not supported")]
    Workset(String),
    #[error("workspace copy failed: {0}")]
    Copy(#[from] io::Error),
    #[error("name assignment failed: {0}")]
    Name(BoxError),
    #[error("writing the fork's records failed: {0}")]
    Record(#[from] DocError),
}

impl From<BoxError> for ForkError {
    fn from(e: BoxError) -> Self {
        ForkError::Name(e)
    }
}

/// Where the fork `name` of the project at `workspace` goes: its sibling
/// `<basename>.<name>`.
pub fn destination(workspace: &Path, name: &ForkName) -> Result<PathBuf, ForkError> {
    let (Some(parent), Some(base)) = (workspace.parent(), workspace.file_name()) else {
        return Err(ForkError::NoParent(workspace.to_owned()));
    };
    let mut leaf = base.to_owned();
    leaf.push(".");
    leaf.push(name.as_str());
    Ok(parent.join(leaf))
}

/// The fork's identity: the source's mode, layout and settings at the new place, with
/// a name chosen from the new directory as `create` would (`myapp.exp`, or
/// `myapp.exp2` when that is taken) for a named box.
pub fn plan(
    paths: &Paths,
    reg: &Registry,
    src: &BoxIdentity,
    name: &ForkName,
) -> Result<BoxIdentity, ForkError> {
    let dest = destination(&src.workspace, name)?;
    match src.mode {
        Mode::Workset => Err(ForkError::Workset(src.display_name().to_owned())),
        Mode::Standalone => Ok(BoxIdentity::standalone(dest, settings_of(src))),
        Mode::Default => {
            let n = choose_name(paths, reg, &dest, None)?;
            Ok(BoxIdentity::default_mode(
                n,
                dest,
                &paths.boxes,
                settings_of(src),
            ))
        }
    }
}

/// What a fork made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forked {
    pub workspace: PathBuf,
    /// The new box's name (`(unnamed)` for a standalone box, as `box info` shows it).
    pub name: String,
    pub to: BoxIdentity,
}

/// Fork `src` as `name` (see the module note). The source may be running (its director
/// asks): its files are read, never changed. `check` runs between files of the copy.
pub fn fork(
    paths: &Paths,
    src: &BoxIdentity,
    name: &ForkName,
    check: &dyn Fn() -> io::Result<()>,
) -> Result<Forked, ForkError> {
    let reg = Registry::load(&paths.names_file())?;
    let to = plan(paths, &reg, src, name)?;
    drop(reg);
    let dest = to.workspace.clone();
    if dest.symlink_metadata().is_ok() {
        return Err(ForkError::Exists(dest));
    }
    if !src.workspace.is_dir() {
        return Err(ForkError::NoWorkspace(src.workspace.clone()));
    }
    // A fork of a box that shares the host's login gets it at its first launch; one
    // with its own login carries a copy on, as a duplicate does.
    let logins = duplicate::keeps_login(src, false);
    let stale = duplicate::leftovers(src, &to);
    let prepare = || -> Result<(), ForkError> {
        duplicate::strip(&to, logins).map_err(|e| io::Error::other(e.to_string()))?;
        for p in &stale {
            relocation::remove_tree(p)?;
        }
        Ok(())
    };
    let registered = to.name.clone();
    duplicate::carry(
        paths,
        &Change {
            from: src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Copy,
            prepare: &prepare,
            files: &[],
            edit: &|reg: &mut Registry| {
                let Some(n) = &registered else {
                    return Ok(false);
                };
                // Taken since the plan (another fork, a `create`): stop before copying.
                if let Some((section, path)) = reg.lookup(n.as_str()) {
                    return Err(ForkError::Name(BoxError::NameTaken {
                        name: n.to_string(),
                        section,
                        path: path.to_owned(),
                    }));
                }
                reg.projects.insert(n.to_string(), dest.clone());
                Ok(true)
            },
        },
        check,
    )?;
    duplicate::write_auth_record(paths, &to).map_err(ForkError::Name)?;
    Ok(Forked {
        workspace: dest,
        name: to.display_name().to_owned(),
        to,
    })
}

#[cfg(test)]
pub fn fixture_paths(root: &Path) -> Paths {
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let host = crate::host::HostEnv::for_test(root, &[("HOME", home.to_str().unwrap())]);
    let bases = crate::paths::Bases::from_host(&host).unwrap();
    Paths::resolve(&host, bases, &Default::default()).unwrap()
}

/// Box `myapp` at `<root>/work/myapp`, with a vault, under paths in `root`.
#[cfg(test)]
pub fn fixture(root: &Path) -> (Paths, BoxIdentity) {
    let p = fixture_paths(root);
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let req = super::create::CreateRequest {
        path: Some(work.join("myapp").to_string_lossy().into_owned()),
        ..Default::default()
    };
    let (b, _) = super::create::create(&p, root, &req).unwrap();
    (p, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::{BoxName, Layout, ProjectSettings};

    #[test]
    fn fork_names_follow_upstream_and_box_names() {
        for ok in ["exp", "exp_1", "A-b", "9", &"x".repeat(MAX_NAME)] {
            assert!(ForkName::parse(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "",
            "a.b",
            "a/b",
            "a\\b",
            "..",
            "-x",
            "_x",
            "a b",
            " exp",
            "é",
            "a\0b",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(ForkName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_destination_is_a_sibling_named_after_the_project() {
        let n = ForkName::parse("exp").unwrap();
        assert_eq!(
            destination(Path::new("/p/myapp"), &n).unwrap(),
            PathBuf::from("/p/myapp.exp")
        );
        assert_eq!(
            destination(Path::new("/p/my.app"), &n).unwrap(),
            PathBuf::from("/p/my.app.exp")
        );
        assert!(matches!(
            destination(Path::new("/"), &n),
            Err(ForkError::NoParent(_))
        ));
    }

    fn paths(root: &Path) -> Paths {
        fixture_paths(root)
    }

    fn files(b: &BoxIdentity) -> (PathBuf, PathBuf) {
        let vault = b.vault.as_ref().unwrap().rw.join("notes.txt");
        (b.shell.join(".agent-memory"), vault)
    }

    #[test]
    fn a_fork_has_its_own_home_and_vault_and_leaves_the_source_untouched() {
        let d = tempfile::tempdir().unwrap();
        let (p, src) = fixture(d.path());
        let (home_file, vault_file) = files(&src);
        std::fs::write(&home_file, "source memory").unwrap();
        std::fs::write(&vault_file, "source notes").unwrap();
        std::fs::write(src.workspace.join("main.rs"), "fn main() {}").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.workspace.join("outside")).unwrap();
        std::fs::create_dir_all(src.metadata.join("helpers/1")).unwrap();
        std::fs::write(src.lock_file(), "kanibako-myapp").unwrap();
        std::fs::write(src.container_marker(), "kanibako-myapp").unwrap();

        let done = fork(&p, &src, &ForkName::parse("exp").unwrap(), &|| Ok(())).unwrap();
        let dest = d.path().join("work/myapp.exp");
        assert_eq!(
            (done.workspace.clone(), done.name.as_str()),
            (dest.clone(), "myapp.exp")
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("main.rs")).unwrap(),
            "fn main() {}"
        );
        let link = dest.join("outside");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("/etc/passwd")
        );

        // what the host finds there is a box of its own
        let reg = Registry::load(&p.names_file()).unwrap();
        assert_eq!(reg.projects.get("myapp.exp"), Some(&dest));
        let found = match super::super::resolve::resolve_dir(&p, &reg, &dest).unwrap() {
            super::super::resolve::Resolution::Found(b) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(found.name.as_ref().unwrap().as_str(), "myapp.exp");
        assert_eq!(found.shell, done.to.shell);
        assert_ne!(found.shell, src.shell);
        assert!(
            !found.shell.starts_with(&src.metadata) && !found.shell.starts_with(&src.workspace)
        );

        // defect 9: its home and vault are copies, not the source's
        let (fork_home, fork_vault) = files(&found);
        assert_eq!(
            std::fs::read_to_string(&fork_home).unwrap(),
            "source memory"
        );
        std::fs::write(&fork_home, "fork memory").unwrap();
        std::fs::write(&fork_vault, "fork notes").unwrap();
        std::fs::write(found.shell.join("new-in-fork"), "x").unwrap();
        assert_eq!(
            std::fs::read_to_string(&home_file).unwrap(),
            "source memory"
        );
        assert_eq!(
            std::fs::read_to_string(&vault_file).unwrap(),
            "source notes"
        );
        assert!(!src.shell.join("new-in-fork").exists());
        // and its record says so (the Python tool mounts what it records)
        let record = std::fs::read_to_string(found.project_file()).unwrap();
        assert!(
            !record.contains(&format!("{}/", src.metadata.display())),
            "{record}"
        );
        assert!(
            record.contains(&found.shell.display().to_string()),
            "{record}"
        );
        assert!(record.contains("name: myapp.exp"), "{record}");

        // what was the source's session is not copied
        assert!(!found.lock_file().exists() && !found.container_marker().exists());
        assert!(!found.metadata.join("helpers").exists());
        assert!(src.metadata.join("helpers/1").is_dir() && src.lock_file().exists());

        // a second fork of the same name is refused, naming the place
        let again = fork(&p, &src, &ForkName::parse("exp").unwrap(), &|| Ok(())).unwrap_err();
        assert_eq!(
            again.to_string(),
            format!("destination already exists: {}", dest.display())
        );
    }

    #[test]
    fn a_fork_stopped_midway_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (p, src) = fixture(d.path());
        for i in 0..20 {
            std::fs::write(src.workspace.join(format!("f{i}")), "x").unwrap();
        }
        let before = std::fs::read(p.names_file()).unwrap();
        let calls = std::cell::Cell::new(0);
        let check = || {
            calls.set(calls.get() + 1);
            if calls.get() > 5 {
                Err(io::Error::other("stop"))
            } else {
                Ok(())
            }
        };
        let e = fork(&p, &src, &ForkName::parse("exp").unwrap(), &check).unwrap_err();
        assert!(e.to_string().starts_with("workspace copy failed"), "{e}");
        let mut left: Vec<String> = std::fs::read_dir(d.path().join("work"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["myapp"]);
        assert!(!p.boxes.join("myapp.exp").exists());
        assert_eq!(std::fs::read(p.names_file()).unwrap(), before);
    }

    #[test]
    fn a_fork_keeps_the_mode_and_gets_a_free_name_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let p = paths(d.path());
        let src = BoxIdentity::default_mode(
            BoxName::parse("myapp").unwrap(),
            "/p/myapp".into(),
            &p.boxes,
            ProjectSettings {
                layout: Some(Layout::Robust),
                enable_vault: true,
                ..ProjectSettings::default()
            },
        );
        let n = ForkName::parse("exp").unwrap();
        let mut reg = Registry::load(&p.names_file()).unwrap();
        let to = plan(&p, &reg, &src, &n).unwrap();
        assert_eq!(to.name.as_ref().unwrap().as_str(), "myapp.exp");
        assert_eq!(to.workspace, PathBuf::from("/p/myapp.exp"));
        assert_eq!(to.metadata, p.boxes.join("myapp.exp"));
        assert_eq!((to.mode, to.layout), (Mode::Default, Layout::Robust));
        assert_ne!(to.shell, src.shell, "a home of its own");
        assert_ne!(
            transfer::vault_dir(&to),
            transfer::vault_dir(&src),
            "a vault of its own"
        );
        reg.projects.insert("myapp.exp".into(), "/elsewhere".into());
        let to = plan(&p, &reg, &src, &n).unwrap();
        assert_eq!(to.name.as_ref().unwrap().as_str(), "myapp.exp2");

        let alone = BoxIdentity::standalone("/p/solo".into(), ProjectSettings::default());
        let to = plan(&p, &reg, &alone, &n).unwrap();
        assert_eq!((to.mode, to.name.clone()), (Mode::Standalone, None));
        assert_eq!(to.metadata, PathBuf::from("/p/solo.exp/.kanibako"));

        let member = BoxIdentity::workset_member(
            "ws",
            Path::new("/w"),
            BoxName::parse("m").unwrap(),
            ProjectSettings::default(),
        );
        let e = plan(&p, &reg, &member, &n).unwrap_err();
        assert_eq!(
            e.to_string(),
            "'m' is a workset member; forking one is not supported"
        );
    }

    #[test]
    fn a_standalone_box_forks_into_a_standalone_box_with_its_own_home() {
        let d = tempfile::tempdir().unwrap();
        let p = fixture_paths(d.path());
        let work = d.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let req = super::super::create::CreateRequest {
            path: Some(work.join("solo").to_string_lossy().into_owned()),
            standalone: true,
            ..Default::default()
        };
        let (src, _) = super::super::create::create(&p, d.path(), &req).unwrap();
        std::fs::write(src.shell.join("memory"), "source").unwrap();
        let names = std::fs::read(p.names_file()).ok();
        let done = fork(&p, &src, &ForkName::parse("exp").unwrap(), &|| Ok(())).unwrap();
        assert_eq!(done.workspace, work.join("solo.exp"));
        let found = super::super::resolve::standalone_at(&done.workspace)
            .unwrap()
            .expect("a standalone box");
        assert_eq!(found.shell, work.join("solo.exp/.kanibako/shell"));
        std::fs::write(found.shell.join("memory"), "fork").unwrap();
        assert_eq!(
            std::fs::read_to_string(src.shell.join("memory")).unwrap(),
            "source"
        );
        let record = std::fs::read_to_string(found.project_file()).unwrap();
        assert!(
            !record.contains(&format!("{}/", src.workspace.display())),
            "{record}"
        );
        assert_eq!(
            std::fs::read(p.names_file()).ok(),
            names,
            "nothing registered"
        );
    }
}
