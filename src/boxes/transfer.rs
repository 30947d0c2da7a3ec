//! Which directories must go where when a box changes place or mode (`box move`,
//! `box migrate`, `box duplicate`): pure planning from the box's identity before and
//! after. A box is up to four trees — workspace, metadata, home (shell) and vault —
//! some nested in others (a default-layout vault in the workspace, a home in the
//! metadata); a nested tree travels with its parent, and only moves on its own when it
//! does not land where the new identity wants it.

use std::path::{Path, PathBuf};

use super::BoxIdentity;

/// One tree to move (or copy) from one place to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Where a box's vault trees (`ro`, `rw`) live: their common parent.
pub fn vault_dir(b: &BoxIdentity) -> Option<PathBuf> {
    b.vault
        .as_ref()
        .and_then(|v| v.rw.parent().map(Path::to_owned))
}

/// Where `p` is once `done` have happened (a tree inside a moved one moved with it).
fn after(p: &Path, done: &[Transfer]) -> PathBuf {
    let mut cur = p.to_owned();
    for t in done {
        if let Ok(rel) = cur.strip_prefix(&t.from) {
            cur = if rel.as_os_str().is_empty() {
                t.to.clone()
            } else {
                t.to.join(rel)
            };
        }
    }
    cur
}

/// What happens to the project directory itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workspace {
    /// It goes (with everything in it) to the new place: `move`, `duplicate`.
    Carry,
    /// The user already moved it, and what is inside with it: `migrate OLD NEW`.
    Moved,
    /// It stays; only the box's own trees inside it go: `duplicate --bare`.
    Leave,
}

/// The transfers that take box `a`'s trees to box `b`'s places, in order.
pub fn plan(a: &BoxIdentity, b: &BoxIdentity, workspace: Workspace) -> Vec<Transfer> {
    let mut out: Vec<Transfer> = Vec::new();
    let whole = Transfer {
        from: a.workspace.clone(),
        to: b.workspace.clone(),
    };
    let moved = [whole.clone()];
    let before: &[Transfer] = match workspace {
        Workspace::Moved if a.workspace != b.workspace => &moved,
        _ => &[],
    };
    if workspace == Workspace::Carry && a.workspace != b.workspace {
        out.push(whole);
    }
    let step = |from: &Path, to: &Path, out: &mut Vec<Transfer>| {
        let cur = after(&after(from, before), out);
        if cur != to {
            out.push(Transfer {
                from: cur,
                to: to.to_owned(),
            });
        }
    };
    step(&a.metadata, &b.metadata, &mut out);
    step(&a.shell, &b.shell, &mut out);
    if let (Some(va), Some(vb)) = (vault_dir(a), vault_dir(b)) {
        step(&va, &vb, &mut out);
    }
    out
}

/// Whether `p` lies inside (or is) one of `roots`: for a transfer, that the tree is
/// the box's own, never a path outside it.
pub fn within(p: &Path, roots: &[&Path]) -> bool {
    roots.iter().any(|r| p.starts_with(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::{BoxName, Layout, Mode, ProjectSettings};

    fn settings(mode: Mode, layout: Layout) -> ProjectSettings {
        ProjectSettings {
            mode: Some(mode),
            layout: Some(layout),
            ..ProjectSettings::default()
        }
    }

    fn default_box(ws: &str, layout: Layout) -> BoxIdentity {
        BoxIdentity::default_mode(
            BoxName::parse("app").unwrap(),
            ws.into(),
            Path::new("/d/boxes"),
            settings(Mode::Default, layout),
        )
    }

    fn t(from: &str, to: &str) -> Transfer {
        Transfer {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn a_move_takes_the_workspace_and_what_is_in_it() {
        let a = default_box("/p/app", Layout::Default);
        let b = default_box("/q/app2", Layout::Default);
        // the vault is inside the workspace; metadata and home stay in $DATA
        assert_eq!(plan(&a, &b, Workspace::Carry), vec![t("/p/app", "/q/app2")]);
        // simple layout: the home is in the workspace too
        let a = default_box("/p/app", Layout::Simple);
        let b = default_box("/q/app2", Layout::Simple);
        assert_eq!(plan(&a, &b, Workspace::Carry), vec![t("/p/app", "/q/app2")]);
        // a standalone box is all inside its workspace
        let s = settings(Mode::Standalone, Layout::Simple);
        let a = BoxIdentity::standalone("/p/solo".into(), s);
        let b = BoxIdentity::standalone("/q/solo".into(), s);
        assert_eq!(
            plan(&a, &b, Workspace::Carry),
            vec![t("/p/solo", "/q/solo")]
        );
    }

    #[test]
    fn a_remap_moves_only_the_metadata() {
        let a = BoxIdentity::default_mode(
            BoxName::parse("old").unwrap(),
            "/p/old".into(),
            Path::new("/d/boxes"),
            ProjectSettings::default(),
        );
        let b = BoxIdentity::default_mode(
            BoxName::parse("new").unwrap(),
            "/p/new".into(),
            Path::new("/d/boxes"),
            ProjectSettings::default(),
        );
        assert_eq!(
            plan(&a, &b, Workspace::Moved),
            vec![t("/d/boxes/old", "/d/boxes/new")]
        );
        // a simple layout's home and vault came along with the directory
        let s = ProjectSettings {
            layout: Some(Layout::Simple),
            ..ProjectSettings::default()
        };
        let name = |n: &str| BoxName::parse(n).unwrap();
        let a = BoxIdentity::default_mode(name("old"), "/p/old".into(), Path::new("/d/boxes"), s);
        let b = BoxIdentity::default_mode(name("old"), "/p/new".into(), Path::new("/d/boxes"), s);
        assert_eq!(plan(&a, &b, Workspace::Moved), vec![]);
    }

    #[test]
    fn to_standalone_and_back() {
        let a = default_box("/p/app", Layout::Default);
        let s =
            BoxIdentity::standalone("/p/app".into(), settings(Mode::Standalone, Layout::Simple));
        // home inside the metadata goes with it; the vault is already in place
        assert_eq!(
            plan(&a, &s, Workspace::Carry),
            vec![t("/d/boxes/app", "/p/app/.kanibako")]
        );
        assert_eq!(
            plan(&s, &a, Workspace::Carry),
            vec![t("/p/app/.kanibako", "/d/boxes/app")]
        );
        // robust: the vault was in the metadata and must come out of it
        let r = default_box("/p/app", Layout::Robust);
        assert_eq!(
            plan(&r, &s, Workspace::Carry),
            vec![
                t("/d/boxes/app", "/p/app/.kanibako"),
                t("/p/app/.kanibako/vault", "/p/app/vault")
            ]
        );
        // simple: the home comes in from the workspace
        let m = default_box("/p/app", Layout::Simple);
        assert_eq!(
            plan(&m, &s, Workspace::Carry),
            vec![
                t("/d/boxes/app", "/p/app/.kanibako"),
                t("/p/app/.shell", "/p/app/.kanibako/shell")
            ]
        );
        // a robust standalone box keeps its home beside the metadata
        let rs =
            BoxIdentity::standalone("/p/app".into(), settings(Mode::Standalone, Layout::Robust));
        assert_eq!(
            plan(&rs, &a, Workspace::Carry),
            vec![
                t("/p/app/kanibako", "/d/boxes/app"),
                t("/p/app/shell", "/d/boxes/app/shell")
            ]
        );
    }

    #[test]
    fn into_a_workset_and_out() {
        let a = default_box("/p/app", Layout::Default);
        let w = BoxIdentity::workset_member(
            "client",
            Path::new("/ws"),
            BoxName::parse("app").unwrap(),
            settings(Mode::Workset, Layout::Robust),
        );
        assert_eq!(
            plan(&a, &w, Workspace::Carry),
            vec![
                t("/p/app", "/ws/workspaces/app"),
                t("/d/boxes/app", "/ws/boxes/app"),
                t("/ws/workspaces/app/vault", "/ws/vault/app"),
            ]
        );
        assert_eq!(
            plan(&w, &a, Workspace::Carry),
            vec![
                t("/ws/workspaces/app", "/p/app"),
                t("/ws/boxes/app", "/d/boxes/app"),
                t("/ws/vault/app", "/p/app/vault"),
            ]
        );
    }

    #[test]
    fn a_duplicate_without_its_files_still_takes_the_box_trees() {
        let s = settings(Mode::Standalone, Layout::Simple);
        let a = BoxIdentity::standalone("/p/solo".into(), s);
        let b = BoxIdentity::standalone("/q/copy".into(), s);
        assert_eq!(
            plan(&a, &b, Workspace::Leave),
            vec![
                t("/p/solo/.kanibako", "/q/copy/.kanibako"),
                t("/p/solo/vault", "/q/copy/vault")
            ]
        );
        assert!(within(Path::new("/p/solo/vault"), &[Path::new("/p/solo")]));
        assert!(!within(Path::new("/p/solox"), &[Path::new("/p/solo")]));
    }
}
