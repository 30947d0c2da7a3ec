//! The real `kanibako` binary in a throw-away home, against a recording fake podman.
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`; what
// they print (a skip) is for the test log, not a user.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

#[path = "cli/agents.rs"]
mod agents;
#[path = "cli/archive.rs"]
mod archive;
#[path = "cli/browser.rs"]
mod browser;
#[path = "cli/config.rs"]
mod config;
#[path = "cli/crab.rs"]
mod crab;
#[path = "cli/diagnose.rs"]
mod diagnose;
#[path = "cli/hardening.rs"]
mod hardening;
#[path = "cli/json.rs"]
mod json;
#[path = "cli/lifecycle.rs"]
mod lifecycle;
#[path = "cli/newcomer.rs"]
mod newcomer;
#[path = "cli/resolving.rs"]
mod resolving;
#[path = "cli/rig.rs"]
mod rig;
#[path = "cli/session.rs"]
mod session;
mod support;
#[path = "cli/vault.rs"]
mod vault;
#[path = "cli/workset.rs"]
mod workset;

use std::fs;
use std::path::Path;

use support::{Env, tree};

fn env() -> Env {
    let e = Env::new();
    e.fake_podman();
    e
}

#[test]
fn create_list_and_remove_three_boxes() {
    let e = env();
    let a = e.dir("projects/myapp");
    let b = e.dir("projects/other/myapp");
    let c = e.dir("projects/My Proj");
    for d in [&a, &b, &c] {
        let r = e.run(d, &["create"]).ok();
        assert!(r.stdout.starts_with("Created default project in "), "{r:?}");
        assert!(
            r.stderr
                .contains("[One Time Setup] Initializing kanibako in")
        );
    }
    let r = e.run(&e.home, &["list"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "NAME               STATUS     PATH");
    assert_eq!(
        lines[1],
        format!("{:<18} {:<10} {}", "My-Proj", "stopped", c.display())
    );
    assert_eq!(
        lines[2],
        format!("{:<18} {:<10} {}", "myapp", "stopped", a.display())
    );
    assert_eq!(
        lines[3],
        format!("{:<18} {:<10} {}", "myapp2", "stopped", b.display())
    );

    let json = e.run(&e.home, &["box", "ls", "--json"]).ok().json();
    let json = &json["boxes"];
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["My-Proj", "myapp", "myapp2"]);
    assert_eq!(json[1]["path"], a.to_str().unwrap());
    assert_eq!(json[1]["status"], "stopped");

    let r = e.run(&e.home, &["rm", "myapp2"]).ok();
    assert!(
        r.stdout.contains("Removed 'myapp2' from names.yaml"),
        "{r:?}"
    );
    let q = e.run(&e.home, &["list", "-q"]).ok();
    assert_eq!(q.stdout, "My-Proj\nmyapp\n");
    // the metadata stays (no --purge) and shows up as an orphan with -a
    let all = e.run(&e.home, &["list", "-a", "--json"]).ok().json();
    let orphan = &all["boxes"].as_array().unwrap()[2];
    assert_eq!(orphan["name"], "myapp2");
    assert_eq!(orphan["status"], "unregistered");
    // and the advice printed by rm works
    e.run(&e.home, &["rm", "myapp2", "--purge", "--force"]).ok();
    assert!(!e.data().join("boxes/myapp2").exists());
}

#[test]
fn first_run_writes_the_python_layout() {
    let e = env();
    e.run(&e.home, &["list"]).ok();
    let cfg = fs::read_to_string(e.home.join(".config/kanibako.yaml")).unwrap();
    assert!(cfg.starts_with("system:\n  path:\n    data: $XDG_DATA_HOME/kanibako\n    boxes: '@system.path.data/boxes'\n"), "{cfg}");
    let d = e.data();
    assert_eq!(
        fs::read_to_string(d.join("env")).unwrap(),
        "COLORTERM=truecolor\n"
    );
    for p in [
        "boxes",
        "containers",
        "templates/general/base",
        "comms/mailbox",
        "comms/broadcast.log",
        "crabs/general.yaml",
        "crabs/no_agent.yaml",
    ] {
        assert!(d.join(p).exists(), "{p}");
    }
    assert!(e.home.join(".local/state/kanibako").is_dir());
    assert!(e.home.join(".cache/kanibako").is_dir());
    assert!(
        !d.join("names.yaml").exists(),
        "names.yaml appears with the first box"
    );
}

#[test]
fn a_box_layout_the_python_tool_reads() {
    let e = env();
    let p = e.dir("p/app");
    e.run(&p, &["create", "--no-vault", "--distinct-auth"]).ok();
    let meta = e.data().join("boxes/app");
    let doc = fs::read_to_string(meta.join("project.yaml")).unwrap();
    assert!(doc.starts_with("project:\n  mode: default\n  layout: default\n  enable_vault: false\n  group_auth: false\n  name: app\nresolved:\n"), "{doc}");
    assert!(
        !doc.contains("image:"),
        "the default rig is not pinned: {doc}"
    );
    assert_eq!(
        fs::read_to_string(meta.join("shell/.profile"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(meta.join("shell/.shell.d").is_dir());
    assert!(
        fs::read_to_string(meta.join("shell/.bashrc"))
            .unwrap()
            .contains(".shell.d/")
    );
    assert!(!p.join("vault").exists());
    let q = e.dir("p/img");
    e.run(&q, &["box", "create", "--rig", "localhost/mine:1"])
        .ok();
    let doc = fs::read_to_string(e.data().join("boxes/img/project.yaml")).unwrap();
    assert!(doc.ends_with("box:\n  image: localhost/mine:1\n"), "{doc}");
    // nothing of ours in the project: the vault is kept out of git by the repository's
    // own local exclude file, and only in a repository
    assert!(!q.join("vault/.gitignore").exists());
    assert!(!q.join(".git").exists());
    let g = e.dir("p/repo");
    fs::create_dir_all(g.join(".git")).unwrap();
    e.run(&g, &["create"]).ok();
    e.run(&g, &["box", "config", "model=x"]).ok();
    let exclude = fs::read_to_string(g.join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude,
        "# kanibako: the box's vault share-rw and its snapshots\n/vault/rw/\n/vault/.versions/\n"
    );
    assert!(!g.join("vault/.gitignore").exists());
    // a planted link at the exclude file is not written through
    let h = e.dir("p/planted");
    fs::create_dir_all(h.join(".git/info")).unwrap();
    let victim = e.home.join("victim");
    fs::write(&victim, "mine\n").unwrap();
    std::os::unix::fs::symlink(&victim, h.join(".git/info/exclude")).unwrap();
    e.run(&h, &["create"]).ok();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "mine\n");
}

#[test]
fn bad_names_are_refused_and_nothing_is_created() {
    let e = env();
    let p = e.dir("p");
    e.run(&p, &["list"]).ok();
    let before = tree(&e.home);
    for bad in ["../../escape", "bad/name", "My Proj", ".hidden", "-x"] {
        let name = format!("--name={bad}");
        let r = e.run(&p, &["create", "newdir", &name]).fails();
        assert!(r.stderr.contains("invalid box name"), "{r:?}");
        assert!(r.stderr.contains("hint: "), "{r:?}");
    }
    assert_eq!(tree(&e.home), before, "nothing changed on disk");
}

#[test]
fn taken_names_and_double_creates_fail_cleanly() {
    let e = env();
    let a = e.dir("p/a");
    e.run(&a, &["create", "--name", "taken"]).ok();
    let before = e.names_yaml();
    let r = e
        .run(&e.home, &["create", "p/b", "--name", "taken"])
        .fails();
    assert!(
        r.stderr.contains(&format!(
            "Name 'taken' is already registered (projects: {})",
            a.display()
        )),
        "{r:?}"
    );
    let r = e.run(&a, &["create"]).fails();
    assert!(r.stderr.contains("project already initialized in"), "{r:?}");
    assert_eq!(e.names_yaml(), before);
}

#[test]
fn home_is_refused() {
    let e = env();
    let r = e.run(&e.home, &["create"]).fails();
    assert!(
        r.stderr.contains("Refusing to create a project at $HOME."),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("kanibako create --standalone ~ --allow-home")
    );
    let r = e.run(&e.home, &["create", "--standalone"]).fails();
    assert!(r.stderr.contains("without --allow-home"), "{r:?}");
    e.run(&e.home, &["create", "--standalone", "--allow-home"])
        .ok();
}

#[test]
fn malformed_yaml_is_one_line_with_file_and_line_and_untouched() {
    let e = env();
    let p = e.dir("p/a");
    e.run(&p, &["create"]).ok();
    let names = e.data().join("names.yaml");
    let broken = "projects:\n  a: [unclosed\n  b: /x\n";
    fs::write(&names, broken).unwrap();
    for args in [
        &["list"][..],
        &["create", "../b"],
        &["box", "info"],
        &["rm", "a"],
    ] {
        let r = e.run(&p, args).fails();
        let err = r.stderr.lines().next().unwrap();
        assert!(
            err.starts_with(&format!("Error: {}:", names.display())),
            "{r:?}"
        );
        assert!(
            err.contains(":3:") || err.contains(":2:"),
            "line number: {err}"
        );
        assert_eq!(fs::read_to_string(&names).unwrap(), broken);
    }
    let cfg = e.home.join(".config/kanibako.yaml");
    fs::write(&cfg, "system: 5\n").unwrap();
    let r = e.run(&p, &["list"]).fails();
    assert!(r.stderr.contains("`system` should be a mapping"), "{r:?}");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "system: 5\n");
}

#[test]
fn unknown_boxes_and_unregistered_dirs_are_errors_without_a_sentinel() {
    let e = env();
    let p = e.dir("p/plain");
    let r = e.run(&p, &["box", "info", "nosuch"]).fails();
    assert!(
        r.stderr.contains("'nosuch' is not a registered box"),
        "{r:?}"
    );
    let r = e.run(&p, &["box", "info"]).fails();
    assert!(r.stderr.contains("No project data found for:"), "{r:?}");
    let r = e.run(&p, &["rm", "nosuch"]).fails();
    assert!(
        r.stderr
            .contains("'nosuch' is not a registered project or workset.")
    );
    let r = e.run(&p, &["box", "info", "./gone"]).fails();
    assert!(r.stderr.contains("does not exist"), "{r:?}");
    assert!(!e.data().join("boxes/__unregistered__").exists());
}

#[test]
fn box_info_takes_a_name_or_a_path_and_finds_the_enclosing_box() {
    let e = env();
    let p = e.dir("p/app");
    fs::create_dir_all(p.join("src/deep")).unwrap();
    e.run(&p, &["create"]).ok();
    let by_name = e.run(&e.home, &["box", "info", "app"]).ok().stdout;
    let by_path = e.run(&e.home, &["box", "info", "p/app/src"]).ok().stdout;
    let by_cwd = e.run(&p.join("src/deep"), &["box", "info"]).ok().stdout;
    assert_eq!(by_name, by_path);
    assert_eq!(by_name, by_cwd);
    assert!(by_name.contains("  Name:         app\n"), "{by_name}");
    assert!(by_name.contains("  Lock:         none\n"));
    // a nested box wins over its parent
    let inner = e.dir("p/app/inner");
    e.run(&inner, &["create"]).ok();
    let r = e.run(&inner.join("."), &["box", "info"]).ok().stdout;
    assert!(r.contains("  Name:         inner\n"), "{r}");
}

#[test]
fn a_stale_lock_file_is_not_a_session() {
    let e = env();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    fs::write(e.data().join("boxes/app/.kanibako.lock"), "kanibako-app\n").unwrap();
    let r = e.run(&p, &["box", "info"]).ok();
    assert!(r.stdout.contains("  Lock:         none\n"), "{r:?}");
    e.run(&p, &["rm", "app", "--purge", "-f"]).ok();
}

#[test]
fn purge_asks_and_scripts_get_a_hint_instead_of_a_hang() {
    let e = env();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let before = tree(&e.home);
    let r = e.run(&p, &["rm", "app", "--purge"]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
    assert_eq!(tree(&e.home), before, "nothing unregistered or deleted");
    e.run(&p, &["rm", "app", "--purge", "--force"]).ok();
    assert!(!e.data().join("boxes/app").exists());
    assert!(!e.names_yaml().contains("app:"));
    assert!(p.exists(), "the project itself is never deleted");
}

#[test]
fn standalone_boxes_never_trust_paths_inside_the_workspace() {
    let e = env();
    let p = e.dir("p/solo");
    fs::write(p.join(".gitignore"), "target/").unwrap();
    let r = e.run(&p, &["create", "--standalone"]).ok();
    assert!(r.stdout.contains("Created standalone project in"), "{r:?}");
    assert_eq!(
        fs::read_to_string(p.join(".gitignore")).unwrap(),
        "target/\n.kanibako/\n"
    );
    // the box (or a cloned repo) rewrites its metadata to point at the user's home
    let file = p.join(".kanibako/project.yaml");
    let evil = fs::read_to_string(&file).unwrap().replace(
        &p.join(".kanibako/shell").display().to_string(),
        &e.home.display().to_string(),
    );
    fs::write(&file, evil).unwrap();
    let info = e.run(&p, &["box", "info"]).ok().stdout;
    assert!(
        info.contains(&format!(
            "  Shell:        {}/.kanibako/shell\n",
            p.display()
        )),
        "{info}"
    );
    assert!(info.contains("  Name:         (unnamed)\n"));
    assert!(
        !e.names_yaml().contains("solo"),
        "standalone boxes are not registered"
    );
}

#[test]
fn a_gitignore_symlink_is_not_followed() {
    let e = env();
    let p = e.dir("p/clone");
    let victim = e.home.join(".bashrc");
    fs::write(&victim, "# mine\n").unwrap();
    std::os::unix::fs::symlink(&victim, p.join(".gitignore")).unwrap();
    let r = e.run(&p, &["create", "--standalone"]).ok();
    assert!(r.stderr.contains("symbolic link"), "{r:?}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "# mine\n");
}

#[test]
fn python_written_data_is_read_and_kept() {
    let e = env();
    let a = e.dir("projects/myapp");
    let gone = e.home.join("projects/moved");
    let d = e.data();
    fs::create_dir_all(e.home.join(".config")).unwrap();
    // exactly what kanibako-cli 1.5.0.dev14 writes on first run
    fs::write(e.home.join(".config/kanibako.yaml"), "system:\n  path:\n    data: $XDG_DATA_HOME/kanibako\n    boxes: '@system.path.data/boxes'\n    crabs: '@system.path.data/crabs'\n    comms: '@system.path.data/comms'\n    templates: '@system.path.data/templates'\n    ws_hints: '@system.path.data/worksets.yaml'\nbox:\n  image: ghcr.io/doctorjei/kanibako-oci:latest\n  crab: ''\n  share_images: false\nshared: {}\n").unwrap();
    let names = format!(
        "projects:\n  moved: {}\n  myapp: {}\nworksets: {{}}\n",
        gone.display(),
        a.display()
    );
    fs::create_dir_all(d.join("boxes/myapp/shell")).unwrap();
    fs::create_dir_all(d.join("boxes/moved")).unwrap();
    fs::write(d.join("names.yaml"), &names).unwrap();
    let project = format!(
        "project:\n  mode: account_centric\n  layout: tree\n  enable_vault: 'true'\n  group_auth: true\n  name: myapp\npaths:\n  workspace: {a}\n  shell: /somewhere/else\n  project_hash: x\nbox:\n  image: busybox\ncrab:\n  model: zzz\n  autonomous: 'false'\nresource_overrides:\n  CLAUDE.md: project\n",
        a = a.display()
    );
    fs::write(d.join("boxes/myapp/project.yaml"), &project).unwrap();
    let r = e.run(&e.home, &["list"]).ok();
    assert!(r.stdout.contains("myapp"), "{r:?}");
    assert!(!r.stdout.contains("moved"), "orphans hidden by default");
    let all = e.run(&e.home, &["list", "-a"]).ok();
    assert!(all.stdout.contains("moved              missing"), "{all:?}");
    let info = e.run(&a, &["box", "info"]).ok().stdout;
    assert!(info.contains("  Mode:         default\n"), "{info}");
    assert!(
        info.contains(&format!(
            "  Shell:        {}/boxes/myapp/shell\n",
            d.display()
        )),
        "{info}"
    );
    assert!(
        info.contains(&format!(
            "  Vault RO:     {}/boxes/myapp/vault/ro\n",
            d.display()
        )),
        "robust layout: {info}"
    );
    assert!(info.contains("  Image:        busybox\n"));
    // a new box rewrites names.yaml; every entry and the old project.yaml survive
    let b = e.dir("projects/new");
    e.run(&b, &["create"]).ok();
    assert_eq!(
        e.names_yaml(),
        format!(
            "projects:\n  moved: {}\n  myapp: {}\n  new: {}\nworksets: {{}}\n",
            gone.display(),
            a.display(),
            b.display()
        )
    );
    assert_eq!(
        fs::read_to_string(d.join("boxes/myapp/project.yaml")).unwrap(),
        project
    );
}

#[test]
fn a_relocated_data_dir_is_honoured() {
    let e = env();
    fs::create_dir_all(e.home.join(".config")).unwrap();
    fs::write(
        e.home.join(".config/kanibako.yaml"),
        "system:\n  path:\n    data: ~/kbdata\n",
    )
    .unwrap();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    assert!(e.home.join("kbdata/boxes/app/project.yaml").exists());
    assert!(e.home.join(".local/state/kbdata").is_dir());
    fs::write(
        e.home.join(".config/kanibako.yaml"),
        "system:\n  path:\n    boxes: '@system.path.data/x-$CRAB'\n",
    )
    .unwrap();
    let r = e.run(&p, &["list"]).fails();
    assert!(
        r.stderr
            .contains("system.path.boxes: Variable $CRAB is not set in this context."),
        "{r:?}"
    );
}

#[test]
fn concurrent_creates_all_land() {
    let e = env();
    e.run(&e.home, &["list"]).ok();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let d = e.dir(&format!("par/p{i}"));
            e.cmd(&d, &["create"]).spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let q = e.run(&e.home, &["list", "-q"]).ok().stdout;
    assert_eq!(q.lines().count(), 8, "{q}");
    // same basename from eight directories: eight distinct names
    let children: Vec<_> = (0..8)
        .map(|i| {
            let d = e.dir(&format!("same{i}/app"));
            e.cmd(&d, &["create"]).spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let q = e.run(&e.home, &["list", "-q"]).ok().stdout;
    assert_eq!(q.lines().filter(|l| l.starts_with("app")).count(), 8, "{q}");
}

fn labelled(name: &str, hash: &str) -> String {
    format!(
        r#"{{"Names":["{name}"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"x","io.kanibako.hash":"{hash}"}}}}"#
    )
}

#[test]
fn activity_comes_from_labels_and_legacy_names() {
    let e = env();
    let a = e.dir("p/alpha");
    let b = e.dir("p/beta");
    let c = e.dir("p/gamma");
    for d in [&a, &b, &c] {
        e.run(d, &["create"]).ok();
    }
    let hash = kanibako::boxes::project_hash(&a);
    e.set_ps(&format!(
        "[{}, {}, {}, {}]",
        labelled("anything", &hash),
        r#"{"Names":["kanibako-beta"],"State":"running","Image":"img","Labels":null}"#,
        r#"{"Names":["kanibako-gamma-db"],"State":"running","Image":"img","Labels":{}}"#,
        r#"{"Names":["kanibako-gamma"],"State":"exited","Image":"img","Labels":null}"#,
    ));
    let r = e.run(&e.home, &["list"]).ok();
    assert!(r.stdout.contains("alpha              active     "), "{r:?}");
    assert!(
        r.stdout.contains("beta               active (legacy) "),
        "{r:?}"
    );
    assert!(r.stdout.contains("gamma              stopped    "), "{r:?}");
    let ps = e.run(&e.home, &["ps", "-q"]).ok();
    assert_eq!(ps.stdout, "alpha\nbeta\n");
    let json = e.run(&e.home, &["ps", "--json"]).ok().json();
    let json = &json["boxes"];
    assert_eq!(json[1]["legacy"], true);
    assert_eq!(json[0]["container"], "anything");
    let info = e.run(&b, &["box", "info"]).ok().stdout;
    assert!(
        info.contains("  Container:    running (kanibako-beta: img, legacy)\n"),
        "{info}"
    );
    let info = e.run(&c, &["box", "info"]).ok().stdout;
    assert!(
        info.contains("  Container:    stopped (kanibako-gamma)\n"),
        "{info}"
    );
}

#[test]
fn purge_refuses_an_active_box_without_force() {
    let e = env();
    let a = e.dir("p/alpha");
    e.run(&a, &["create"]).ok();
    e.set_ps(&format!(
        "[{}]",
        labelled("kanibako-alpha", &kanibako::boxes::project_hash(&a))
    ));
    let r = e.run(&a, &["rm", "alpha", "--purge"]).fails();
    assert!(
        r.stderr
            .contains("is active (container kanibako-alpha is running)"),
        "{r:?}"
    );
    assert!(e.names_yaml().contains("alpha"));
}

#[test]
fn verbose_logs_each_engine_call_as_a_command_line() {
    let e = env();
    let r = e.run(&e.home, &["-v", "ps"]).ok();
    let podman = e.bin.join("podman");
    assert!(
        r.stderr
            .contains(&format!("+ {} ps -a --format json", podman.display())),
        "{r:?}"
    );
    assert_eq!(e.podman_log(), "ps -a --format json\n");
    let quiet = e.run(&e.home, &["ps"]).ok();
    assert!(!quiet.stderr.contains("+ "), "{quiet:?}");
}

#[test]
fn no_engine_means_unknown_with_a_note() {
    let e = Env::new();
    let a = e.dir("p/a");
    e.run(&a, &["create"]).ok();
    let r = e.run(&e.home, &["list"]).ok();
    assert!(r.stdout.contains("a                  unknown"), "{r:?}");
    assert!(r.stderr.contains("No container runtime found."), "{r:?}");
    let json = e.run(&e.home, &["list", "--json"]).ok().json();
    assert_eq!(json["boxes"][0]["status"], "unknown", "{json:#}");
    let r = e.run(&e.home, &["ps"]).ok();
    assert!(
        r.stdout.contains("Box activity unknown") && !r.stdout.contains("No active boxes"),
        "{r:?}"
    );
    let mut e2 = Env::new();
    e2.set("KANIBAKO_DOCKER_CMD", "/nonexistent/podman");
    let r = e2.run(&e2.home, &["list"]).ok();
    assert!(r.stderr.contains("/nonexistent/podman"), "{r:?}");
}

#[test]
fn usage_errors_exit_2_and_version_works() {
    let e = env();
    let r = e.run(&e.home, &["list", "--bogus"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = e.run(&e.home, &["--version"]).ok();
    assert!(r.stdout.starts_with("kanibako "), "{r:?}");
    assert!(
        !e.home.join(".config").exists(),
        "--version initialises nothing"
    );
    let p = e.dir("p/none");
    let r = e.run(&p, &[]).ok();
    assert!(
        r.stdout.starts_with("No agents detected."),
        "bare kanibako means start: {r:?}"
    );
    assert!(
        !e.names_yaml().contains("none"),
        "no agent: no box is created"
    );
}

#[test]
fn python_tool_reads_what_we_write_and_we_read_what_it_writes() {
    let Ok(py) = std::env::var("KANIBAKO_TEST_PYTHON") else {
        assert!(
            std::env::var("KANIBAKO_TEST_REQUIRE_PYTHON").is_err(),
            "KANIBAKO_TEST_PYTHON must point at the Python tool's `kanibako` in CI"
        );
        eprintln!("skipped: set KANIBAKO_TEST_PYTHON to the Python kanibako to run");
        return;
    };
    let e = env();
    let dirs = [
        e.dir("w/one"),
        e.dir("w/two"),
        e.dir("w2/one"),
        e.dir("w/yes"),
    ];
    for d in &dirs {
        e.run(d, &["create"]).ok();
    }
    // (purged: the Python tool keeps listing unpurged metadata as a stopped box)
    e.run(&e.home, &["rm", "two", "--purge", "--force"]).ok();
    let ours = e.run(&e.home, &["list"]).ok().stdout;
    let python = |cwd: &Path, args: &[&str]| {
        let out = std::process::Command::new(&py)
            .env_clear()
            .env("HOME", &e.home)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(python(&e.home, &["list"]), ours);
    let info = python(&dirs[3], &["box", "info"]);
    assert!(
        info.contains("  Name:         yes\n"),
        "a box named `yes` stays a string: {info}"
    );
    // and the other way round
    let p = e.dir("w/frompy");
    python(&p, &["create"]);
    let ours = e.run(&e.home, &["list", "--json"]).ok().json();
    assert!(
        ours["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "frompy")
    );
    let info = e.run(&p, &["box", "info"]).ok().stdout;
    assert!(
        info.contains("  Image:        ghcr.io/doctorjei/kanibako-oci:latest\n"),
        "{info}"
    );
}
