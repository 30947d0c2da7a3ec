//! What a box's `project.yaml` records about where it lives, rewritten for the place
//! its files now are: after an extract, a move, a migrate or a duplicate. The
//! Python tool mounts the recorded `resolved.*` paths as they are, so a record left
//! pointing at the old place would have it mount another box's home and vault
//! (upstream defects 9, 11, 12). kanibako itself derives the paths and never trusts
//! these; every other key of the file is kept.

use std::path::Path;

use crate::boxes::{BoxIdentity, Layout, Mode};
use crate::document::{DocError, Document, Item};
use crate::paths::Paths;

/// Set `doc`'s identity and `resolved:` keys to `b`'s.
pub fn rebase(doc: &mut Document, paths: &Paths, b: &BoxIdentity) -> Result<(), DocError> {
    let s = |p: &Path| Item::from(p.to_string_lossy().into_owned());
    doc.set(&["project", "mode"], b.mode.as_str().into())?;
    doc.set(&["project", "layout"], b.layout.as_str().into())?;
    doc.set(&["project", "enable_vault"], b.vault.is_some().into())?;
    doc.set(&["project", "group_auth"], b.group_auth.into())?;
    match &b.name {
        Some(n) => doc.set(&["project", "name"], n.as_str().into())?,
        None => {
            doc.remove(&["project", "name"]);
        }
    }
    let (ro, rw) = match &b.vault {
        Some(v) => (v.ro.clone(), v.rw.clone()),
        None => {
            let dir = match (b.layout, b.mode) {
                (Layout::Robust, Mode::Default) => b.metadata.join("vault"),
                _ => b.workspace.join("vault"),
            };
            (dir.join("ro"), dir.join("rw"))
        }
    };
    let (global, local) = match b.shared_dirs(&paths.data, "shared") {
        None => (Item::from(""), Item::from("")),
        Some(d) => (s(&d.global), s(&d.local)),
    };
    for (key, value) in [
        ("workspace", s(&b.workspace)),
        ("shell", s(&b.shell)),
        ("vault_ro", s(&ro)),
        ("vault_rw", s(&rw)),
        ("metadata", s(&b.metadata)),
        ("project_hash", Item::from(b.hash.clone())),
        ("global_shared", global),
        ("local_shared", local),
    ] {
        doc.set(&["resolved", key], value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::{BoxName, ProjectSettings};
    use crate::host::HostEnv;

    #[test]
    fn the_record_follows_the_box_and_keeps_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let host = HostEnv::for_test(t.path(), &[("HOME", "/home/b")]);
        let paths = Paths::resolve(
            &host,
            crate::paths::Bases::from_host(&host).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let file = t.path().join("project.yaml");
        std::fs::write(
            &file,
            "project:\n  mode: standalone\n  name: old\nresolved:\n  shell: /home/a/.local/share/kanibako/boxes/old/shell\nbox:\n  image: mine:1\n",
        )
        .unwrap();
        let mut doc = Document::load(&file).unwrap();
        let b = BoxIdentity::default_mode(
            BoxName::parse("new").unwrap(),
            "/home/b/p/app".into(),
            &paths.boxes,
            ProjectSettings::default(),
        );
        rebase(&mut doc, &paths, &b).unwrap();
        let get = |k: &[&str]| doc.get_str(k).unwrap().unwrap();
        assert_eq!(get(&["project", "mode"]), "default");
        assert_eq!(get(&["project", "name"]), "new");
        assert_eq!(
            get(&["resolved", "shell"]),
            "/home/b/.local/share/kanibako/boxes/new/shell"
        );
        assert_eq!(get(&["resolved", "vault_rw"]), "/home/b/p/app/vault/rw");
        assert_eq!(get(&["resolved", "project_hash"]), b.hash);
        assert_eq!(get(&["box", "image"]), "mine:1");
    }
}
