//! `box vault snapshot|list|restore|prune` against a throw-away home.

use std::fs;
use std::path::Path;

use crate::support::{Env, tree};

fn boxed() -> (Env, std::path::PathBuf) {
    let e = Env::new();
    e.fake_podman();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    (e, p)
}

fn names(e: &Env, p: &Path) -> Vec<String> {
    e.run(p, &["box", "vault", "list", "-q"])
        .ok()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn snapshot_list_restore_prune() {
    let (e, p) = boxed();
    let r = e.run(&p, &["box", "vault"]).ok();
    assert_eq!(r.stdout, "No snapshots found.\n");
    let r = e.run(&p, &["box", "vault", "snapshot"]).ok();
    assert!(
        r.stderr
            .contains("Nothing to snapshot (share-rw is empty or missing)."),
        "{r:?}"
    );

    fs::create_dir_all(p.join("vault/rw/notes")).unwrap();
    fs::write(p.join("vault/rw/notes/a.txt"), "first").unwrap();
    let r = e.run(&p, &["box", "vault", "snapshot"]).ok();
    let first = r
        .stdout
        .strip_prefix("Snapshot created: ")
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(first.len(), 16, "{first}");
    fs::write(p.join("vault/rw/notes/a.txt"), "second").unwrap();
    // by name, from anywhere, within the same second: a distinct snapshot
    let r = e.run(&e.home, &["box", "vault", "snapshot", "app"]).ok();
    let second = r
        .stdout
        .strip_prefix("Snapshot created: ")
        .unwrap()
        .trim()
        .to_owned();
    assert!(second > first, "{first} then {second}");
    let list = e.run(&p, &["box", "vault", "list"]).ok().stdout;
    let line = list.lines().next().unwrap();
    assert!(line.starts_with(&format!("  {first}  ")), "{list}");
    assert!(line.ends_with(" UTC  5B"), "{list}");

    // no terminal: the question fails at once, nothing changes
    let before = tree(&p);
    let r = e.run(&p, &["box", "vault", "restore", &first]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
    assert_eq!(tree(&p), before);

    let r = e
        .run(&p, &["box", "vault", "restore", &first, "--force"])
        .ok();
    assert_eq!(r.stdout, format!("Restored vault share-rw from {first}\n"));
    assert!(
        r.stderr
            .contains("The previous contents are kept as snapshot "),
        "{r:?}"
    );
    assert_eq!(
        fs::read_to_string(p.join("vault/rw/notes/a.txt")).unwrap(),
        "first"
    );
    let all = names(&e, &p);
    assert_eq!(all.len(), 3, "{all:?}");
    let kept = p.join("vault/.versions").join(&all[2]);
    assert_eq!(
        fs::read_to_string(kept.join("notes/a.txt")).unwrap(),
        "second"
    );

    let r = e.run(&p, &["box", "vault", "prune", "--keep", "1"]).fails();
    assert!(r.stderr.contains("--force"), "{r:?}");
    assert_eq!(names(&e, &p).len(), 3);
    let r = e
        .run(&p, &["box", "vault", "prune", "--keep", "1", "--force"])
        .ok();
    assert_eq!(r.stdout, "Pruned 2 snapshot(s), keeping 1.\n");
    assert_eq!(names(&e, &p), [all[2].clone()]);
    let r = e.run(&p, &["box", "vault", "prune", "--force"]).ok();
    assert_eq!(r.stdout, "Nothing to prune.\n");
}

#[test]
fn restore_never_leaves_the_vault() {
    let (e, p) = boxed();
    fs::create_dir_all(p.join("vault/rw")).unwrap();
    fs::write(p.join("vault/rw/mine"), "m").unwrap();
    fs::write(p.join("vault/ro/keep"), "k").unwrap();
    e.run(&p, &["box", "vault", "snapshot"]).ok();
    let before = tree(&p);
    for bad in [
        "../ro",
        "..",
        "/etc",
        "x/../../ro",
        "20260101T000000Z",
        "20260101T000000Z.tar.xz",
    ] {
        let r = e
            .run(&p, &["box", "vault", "restore", bad, "--force"])
            .fails();
        assert!(
            r.stderr.contains("hint: `kanibako box vault list`"),
            "{bad}: {r:?}"
        );
    }
    // a stamp-named link planted in .versions is no snapshot either
    std::os::unix::fs::symlink(
        p.join("vault/ro"),
        p.join("vault/.versions/20200101T000000Z"),
    )
    .unwrap();
    e.run(
        &p,
        &["box", "vault", "restore", "20200101T000000Z", "--force"],
    )
    .fails();
    fs::remove_file(p.join("vault/.versions/20200101T000000Z")).unwrap();
    assert_eq!(tree(&p), before);
    assert_eq!(names(&e, &p).len(), 1, "a link is not listed");
}

#[test]
fn a_running_box_is_not_restored_under_it() {
    let (e, p) = boxed();
    fs::create_dir_all(p.join("vault/rw")).unwrap();
    fs::write(p.join("vault/rw/mine"), "m").unwrap();
    let snap = e.run(&p, &["box", "vault", "snapshot"]).ok().stdout;
    let snap = snap.trim().rsplit(' ').next().unwrap().to_owned();
    let hash = kanibako::boxes::project_hash(&p);
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-app"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"app","io.kanibako.hash":"{hash}"}}}}]"#
    ));
    let r = e
        .run(&p, &["box", "vault", "restore", &snap, "--force"])
        .fails();
    assert!(
        r.stderr
            .contains("is active (container kanibako-app is running)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: stop the box first"), "{r:?}");
}

#[test]
fn a_box_without_a_vault_says_so() {
    let e = Env::new();
    e.fake_podman();
    let p = e.dir("p/bare");
    e.run(&p, &["create", "--no-vault"]).ok();
    for args in [
        &["box", "vault", "list"][..],
        &["box", "vault", "snapshot"],
        &["box", "vault", "prune"],
    ] {
        let r = e.run(&p, args).fails();
        assert!(
            r.stderr.contains("Vault is disabled for this project."),
            "{r:?}"
        );
    }
    let r = e.run(&e.dir("p/none"), &["box", "vault"]).fails();
    assert!(r.stderr.contains("No project data found for:"), "{r:?}");
}

#[test]
fn a_linked_vault_is_refused_not_followed() {
    let (e, p) = boxed();
    let victim = e.dir("victim");
    fs::write(victim.join("host-file"), "h").unwrap();
    fs::remove_dir_all(p.join("vault/rw")).unwrap();
    std::os::unix::fs::symlink(&victim, p.join("vault/rw")).unwrap();
    let r = e.run(&p, &["box", "vault", "snapshot"]).fails();
    assert!(r.stderr.contains("not a real directory"), "{r:?}");
    assert!(
        !p.join("vault/.versions").exists()
            || fs::read_dir(p.join("vault/.versions")).unwrap().count() == 0
    );
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 1);
}
