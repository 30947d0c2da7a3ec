//! How a box and its settings are found and read, against what a hostile repository,
//! a box or another local user can leave on disk (issue 10).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::support::Env;

fn env() -> Env {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    e
}

/// A standalone marker whose box would see `dir` (and a home and env of its maker's).
fn plant_standalone(dir: &Path) {
    fs::create_dir_all(dir.join(".kanibako/shell")).unwrap();
    fs::write(
        dir.join(".kanibako/project.yaml"),
        "project:\n  mode: standalone\n  layout: simple\n",
    )
    .unwrap();
    fs::write(dir.join(".kanibako/env"), "PLANTED=1\n").unwrap();
}

#[test]
fn a_marker_above_a_sticky_directory_is_never_adopted() {
    let e = env();
    // `/tmp`: anyone may create entries, and another user planted a box there
    let shared = e.root.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    plant_standalone(&shared);
    let p = shared.join("mine");
    fs::create_dir(&p).unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!("{}:/home/agent/workspace", p.display())),
        "the directory is a box of its own: {run}"
    );
    assert!(!run.contains("shared/.kanibako"), "{run}");
    assert!(
        !fs::read_to_string(e.root_file("run.env"))
            .unwrap()
            .contains("PLANTED")
    );
}

#[test]
fn a_marker_in_a_directory_others_can_write_is_not_adopted() {
    let e = env();
    let group = e.dir("team");
    fs::set_permissions(&group, fs::Permissions::from_mode(0o777)).unwrap();
    plant_standalone(&group);
    let p = e.dir("team/mine");
    e.run(&p, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!("{}:/home/agent/workspace", p.display())),
        "{run}"
    );
}

#[test]
fn a_marker_in_an_ancestor_is_used_only_once_agreed() {
    let e = env();
    // a repository named `kanibako` with a root project.yaml, cloned into ~/src
    let src = e.dir("src");
    fs::create_dir_all(src.join("kanibako")).unwrap();
    fs::write(
        src.join("kanibako/project.yaml"),
        "project:\n  mode: standalone\n  layout: robust\n",
    )
    .unwrap();
    let p = e.dir("src/new-project");
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(
        r.stderr.contains("has not been used from here before"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: "), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("kanibako create {}", p.display())),
        "{r:?}"
    );
    assert!(e.last_call("run").is_none(), "nothing ran");
    assert!(
        !e.names_yaml().contains("new-project"),
        "nothing registered"
    );
    // the user's own standalone box is used from below without asking
    let solo = e.dir("solo");
    e.run(&solo, &["create", "--standalone"]).ok();
    let sub = e.dir("solo/sub");
    e.run(&sub, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!("{}:/home/agent/workspace", solo.display())),
        "{run}"
    );
}

#[test]
fn kanibako_project_yaml_counts_only_for_the_robust_layout() {
    let e = env();
    let p = e.dir("p/repo");
    fs::create_dir_all(p.join("kanibako")).unwrap();
    fs::write(
        p.join("kanibako/project.yaml"),
        "project:\n  mode: standalone\n",
    )
    .unwrap();
    let r = e.run(&p, &["box", "info"]).fails();
    assert!(r.stderr.contains("No project data found"), "{r:?}");
}

#[test]
fn a_linked_metadata_directory_is_refused() {
    let e = env();
    // another standalone box, whose env file holds a secret
    let victim = e.dir("victim");
    e.run(&victim, &["create", "--standalone"]).ok();
    fs::write(victim.join(".kanibako/env"), "SECRET=theirs\n").unwrap();
    // a repository ships `.kanibako` as a link to it
    let p = e.dir("p/clone");
    std::os::unix::fs::symlink(victim.join(".kanibako"), p.join(".kanibako")).unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(r.stderr.contains("is a symbolic link"), "{r:?}");
    assert!(r.stderr.contains("hint: "), "{r:?}");
    assert!(e.last_call("run").is_none(), "nothing ran");
}

#[test]
fn a_standalone_box_s_own_file_cannot_widen_it() {
    let e = env();
    let p = e.dir("p/solo");
    e.run(&p, &["create", "--standalone"]).ok();
    let file = p.join(".kanibako/project.yaml");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str("box:\n  image: attacker.invalid/evil:latest\n  share_images: true\n");
    fs::write(&file, text).unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).ok();
    assert!(
        r.stderr
            .contains(&format!("ignoring box.image in {}", file.display())),
        "{r:?}"
    );
    assert!(r.stderr.contains("ignoring box.share_images"), "{r:?}");
    let run = e.last_call("run").unwrap();
    assert!(!run.contains("attacker.invalid"), "{run}");
    assert!(!run.contains("shared-images"), "{run}");
    assert!(!e.podman_log().contains("attacker.invalid"), "never pulled");
    // and it is not recorded there in the first place
    let q = e.dir("p/solo2");
    let r = e
        .run(&q, &["create", "--standalone", "--image", "busybox"])
        .fails();
    assert!(r.stderr.contains("--rig"), "{r:?}");
}

#[test]
fn the_root_the_parent_of_home_and_the_data_dir_are_refused_as_workspaces() {
    let e = env();
    e.run(&e.home, &["list"]).ok();
    let data = e.data();
    let inside = data.join("boxes");
    fs::create_dir_all(&inside).unwrap();
    let parent = e.home.parent().unwrap().to_owned();
    for dir in [
        Path::new("/"),
        parent.as_path(),
        data.as_path(),
        inside.as_path(),
    ] {
        let r = e
            .run(
                &e.home,
                &["shell", &dir.display().to_string(), "--", "true"],
            )
            .fails();
        assert!(r.stderr.contains("Refusing to use"), "{dir:?}: {r:?}");
        let r = e
            .run(&e.home, &["create", &dir.display().to_string()])
            .fails();
        assert!(r.stderr.contains("Refusing to use"), "{dir:?}: {r:?}");
    }
    assert!(e.last_call("run").is_none());
    assert!(!e.names_yaml().contains(": /\n"), "{}", e.names_yaml());
}

#[test]
fn a_non_utf8_project_path_is_refused_at_once() {
    use std::os::unix::ffi::OsStrExt;
    let e = env();
    let p = e.home.join(std::ffi::OsStr::from_bytes(b"proj-\xff"));
    fs::create_dir(&p).unwrap();
    for _ in 0..2 {
        let r = e.run(&p, &["shell", "--", "true"]).fails();
        assert!(r.stderr.contains("not valid UTF-8"), "{r:?}");
    }
    assert!(e.last_call("run").is_none());
    assert!(!e.names_yaml().contains("proj"), "{}", e.names_yaml());
    assert!(!e.data().join("boxes/proj-").exists());
}

#[test]
fn a_path_over_path_max_is_reported_as_too_long() {
    let e = env();
    let long = format!("/{}", "x/".repeat(2100));
    let r = e.run(&e.home, &["box", "info", &long]).fails();
    assert!(r.stderr.contains("too long"), "{r:?}");
    assert!(!r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn a_list_where_the_image_belongs_is_refused_with_file_and_line() {
    let e = env();
    let p = e.dir("p/app");
    let cfg = e.home.join(".config/kanibako.yaml");
    e.run(&e.home, &["list"]).ok();
    let text = fs::read_to_string(&cfg).unwrap();
    let text = match text.find("  image: ") {
        Some(i) => {
            let end = i + text[i..].find('\n').unwrap();
            format!("{}  image: [1, 2]{}", &text[..i], &text[end..])
        }
        None => format!("{text}box:\n  image: [1, 2]\n"),
    };
    fs::write(&cfg, text).unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(
        r.stderr.contains(&format!("{}:", cfg.display()))
            && r.stderr
                .contains("`box.image` should be a string, found a list"),
        "{r:?}"
    );
    assert!(e.last_call("run").is_none(), "no image `1 2`");
}

#[test]
fn an_error_is_said_once() {
    let e = env();
    e.run(&e.home, &["list"]).ok();
    let names = e.data().join("names.yaml");
    let _ = fs::remove_file(&names);
    fs::create_dir_all(&names).unwrap();
    let r = e.run(&e.home, &["list"]).fails();
    assert_eq!(
        r.stderr.to_lowercase().matches("is a directory").count(),
        1,
        "{r:?}"
    );
}

#[test]
fn a_fifo_at_the_config_path_fails_instead_of_hanging() {
    let e = env();
    e.run(&e.home, &["list"]).ok();
    let cfg = e.home.join(".config/kanibako.yaml");
    fs::remove_file(&cfg).unwrap();
    nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let r = e.run(&e.home, &["list"]).fails();
    assert!(r.stderr.contains("not a regular file"), "{r:?}");
}

/// Issue 10, item 3: what a launch ignores in a standalone box's own file (the image,
/// its agent, the host's image store, shares, seeds, shared caches) is refused when set
/// there, with a hint, instead of being stored and silently ignored; narrowing stays.
#[test]
fn box_config_refuses_widening_keys_in_a_standalone_box_s_own_file() {
    let e = env();
    let p = e.dir("p/solo");
    e.run(&p, &["create", "--standalone"]).ok();
    let file = p.join(".kanibako/project.yaml");
    let before = fs::read_to_string(&file).unwrap();
    for kv in [
        "box.image=attacker.invalid/evil:latest",
        "box.share_images=true",
        "box.path.share_ro.ref=/etc:ref",
        "shared.pip=.cache/pip",
    ] {
        let r = e.run(&p, &["box", "config", kv]).fails();
        let key = kv.split('=').next().unwrap();
        assert!(
            r.stderr
                .contains(&format!("Error: {key} is not stored in "))
                && r.stderr.contains("/.kanibako/project.yaml: "),
            "{kv}: {r:?}"
        );
        assert!(r.stderr.contains("hint: "), "{r:?}");
        assert_eq!(
            r.stderr.lines().filter(|l| l.starts_with("Error")).count(),
            1
        );
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), before, "nothing stored");
    // narrowing is fine, and so is a default-mode box's own file (in the data dir)
    e.run(&p, &["box", "config", "box.share_images=false"]).ok();
    let q = e.dir("p/app");
    e.run(&q, &["create"]).ok();
    e.run(&q, &["box", "config", "box.share_images=true"]).ok();
}
