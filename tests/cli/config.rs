//! The `config` verbs at every level.

use std::fs;
use std::path::PathBuf;

use crate::support::{Env, tree};

fn setup() -> (Env, PathBuf) {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    (e, p)
}

fn dry_model(e: &Env, p: &std::path::Path) -> Option<String> {
    let r = e.run(p, &["start", "--dry-run"]).ok();
    // Only `--model` may be missing: a dry run without its run line is a failure.
    let run = r
        .stdout
        .lines()
        .find(|l| l.contains(" run "))
        .unwrap_or_else(|| panic!("no run line: {r:?}"))
        .to_owned();
    let mut words = run.split_whitespace();
    words.find(|w| *w == "--model")?;
    words.next().map(str::to_owned)
}

#[test]
fn model_set_at_every_level_with_origins() {
    let (e, p) = setup();
    assert_eq!(
        dry_model(&e, &p).as_deref(),
        Some("opus"),
        "the built-in default"
    );
    e.run(&p, &["system", "config", "model=sysmodel"]).ok();
    assert_eq!(
        dry_model(&e, &p).as_deref(),
        Some("sysmodel"),
        "a system value reaches every box"
    );
    e.run(&p, &["crab", "config", "claude", "model=crabmodel"])
        .ok();
    assert_eq!(dry_model(&e, &p).as_deref(), Some("crabmodel"));
    e.run(&p, &["box", "config", "model=boxmodel"]).ok();
    assert_eq!(dry_model(&e, &p).as_deref(), Some("boxmodel"));
    let r = e.run(&p, &["box", "config", "model", "--show-origin"]).ok();
    assert!(r.stdout.starts_with("boxmodel\t# box: "), "{r:?}");
    assert!(r.stdout.contains("boxes/app/project.yaml"), "{r:?}");
    let eff = e
        .run(&p, &["box", "config", "--effective", "--show-origin"])
        .ok()
        .stdout;
    assert!(eff.contains("  model = boxmodel\t# box: "), "{eff}");
    assert!(
        eff.contains("  box.image = ghcr.io/doctorjei/kanibako-oci:latest\t# default"),
        "{eff}"
    );
    // an empty value suppresses: no --model at all, not the next level's
    e.run(&p, &["box", "config", "model="]).ok();
    assert_eq!(dry_model(&e, &p), None);
    e.run(&p, &["box", "config", "--reset", "model"]).ok();
    assert_eq!(dry_model(&e, &p).as_deref(), Some("crabmodel"));
    let r = e.run(&p, &["box", "config", "model", "--reset"]).ok();
    assert_eq!(r.stdout.trim(), "No override for model");
}

#[test]
fn a_flag_beats_a_configured_boolean_both_ways_and_dry_run_v_shows_origins() {
    let (e, p) = setup();
    let asked_for_the_store = |e: &Env| e.podman_log().contains("info --format");
    e.run(&p, &["box", "config", "box.share_images=true"]).ok();
    let r = e.run(&p, &["shell", "--dry-run"]).ok();
    assert!(
        asked_for_the_store(&e) && r.stderr.contains("--share-images enabled"),
        "the configured true applies: {r:?}"
    );
    std::fs::remove_file(e.root_file("podman.log")).unwrap();
    let r = e
        .run(&p, &["-v", "shell", "--dry-run", "--no-share-images"])
        .ok();
    assert!(!asked_for_the_store(&e), "{}", e.podman_log());
    assert!(!r.stderr.contains("--share-images enabled"), "{r:?}");
    assert!(
        r.stderr
            .contains("setting box.share_images = false (flag --no-share-images)"),
        "{r:?}"
    );
    let project = e.data().join("boxes/app/project.yaml");
    assert!(
        r.stderr
            .contains("setting box.image = ghcr.io/doctorjei/kanibako-oci:latest (default)"),
        "{r:?}"
    );
    // the last of the pair wins, and the box's own level shows as the origin
    e.run(&p, &["box", "config", "box.share_images=false"]).ok();
    let r = e
        .run(
            &p,
            &[
                "-v",
                "start",
                "--dry-run",
                "--no-share-images",
                "--share-images",
                "-M",
                "x",
            ],
        )
        .ok();
    assert!(asked_for_the_store(&e));
    assert!(
        r.stderr
            .contains("setting box.share_images = true (flag --share-images)")
            && r.stderr.contains("setting model = x (flag -M)")
            && r.stderr.contains("setting start_mode = continue (default)"),
        "{r:?}"
    );
    let r = e.run(&p, &["-v", "shell", "--dry-run"]).ok();
    assert!(
        r.stderr.contains(&format!(
            "setting box.share_images = false (box: {})",
            project.display()
        )),
        "{r:?}"
    );
}

#[test]
fn typed_values_are_stored_typed_and_checked() {
    let (e, p) = setup();
    let r = e.run(&p, &["box", "config", "box.share_images=no"]).ok();
    assert_eq!(r.stdout.trim(), "Set box.share_images=false");
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(
        doc.contains("  share_images: false\n"),
        "a YAML bool, not a string: {doc}"
    );
    let before = tree(&e.home);
    let r = e
        .run(&p, &["box", "config", "box.share_images=maybe"])
        .fails();
    assert!(
        r.stderr
            .contains("invalid value for box.share_images: 'maybe' (expected true or false)"),
        "{r:?}"
    );
    let r = e.run(&p, &["box", "config", "modle=x"]).fails();
    assert!(
        r.stderr.contains("unknown config key: modle") && r.stderr.contains("model"),
        "{r:?}"
    );
    let r = e.run(&p, &["box", "config", "access=sometimes"]).fails();
    assert!(
        r.stderr.contains("expected one of permissive, default"),
        "{r:?}"
    );
    let r = e
        .run(&p, &["crab", "config", "claude", "box.image=x"])
        .fails();
    assert!(
        r.stderr.contains("cannot be set at the crab level"),
        "{r:?}"
    );
    let r = e.run(&p, &["box", "config", "mode=standalone"]).fails();
    assert!(r.stderr.contains("read-only"), "{r:?}");
    let r = e
        .run(
            &p,
            &["system", "config", "system.path.boxes=@system.path.boxes/x"],
        )
        .fails();
    assert!(r.stderr.contains("Cyclic @-reference"), "{r:?}");
    let r = e.run(&p, &["box", "config", "env.1BAD=x"]).fails();
    assert!(
        r.stderr.contains("invalid environment variable name: 1BAD"),
        "{r:?}"
    );
    assert_eq!(tree(&e.home), before, "no failed set changed anything");
}

#[test]
fn python_string_booleans_are_read_as_meant_and_rewritten_typed() {
    let (e, p) = setup();
    let file = e.data().join("boxes/app/project.yaml");
    let doc = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("{doc}box:\n  share_images: 'false'\n")).unwrap();
    let r = e.run(&p, &["box", "config", "box.share_images"]).ok();
    assert_eq!(r.stdout.trim(), "false");
    e.run(&p, &["box", "config", "box.share_images=true"]).ok();
    assert!(
        fs::read_to_string(&file)
            .unwrap()
            .contains("  share_images: true\n")
    );
}

#[test]
fn env_at_every_level() {
    let (e, p) = setup();
    e.run(&p, &["system", "config", "env.SYS=1"]).ok();
    e.run(&p, &["crab", "config", "claude", "env.CRAB=2"]).ok();
    e.run(&p, &["box", "config", "env.BOX=3"]).ok();
    e.run(&p, &["box", "config", "env.SYS=box-wins"]).ok();
    assert!(
        fs::read_to_string(e.data().join("env"))
            .unwrap()
            .contains("SYS=1\n")
    );
    assert!(
        fs::read_to_string(e.data().join("crabs/claude.yaml"))
            .unwrap()
            .contains("env:\n  CRAB: '2'\n")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(e.data().join("boxes/app/env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "env files hold secrets");
    e.run(&p, &["start"]).ok();
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    for want in ["SYS=box-wins\n", "CRAB=2\n", "BOX=3\n"] {
        assert!(env.contains(want), "{want} in {env}");
    }
    let eff = e.run(&p, &["box", "config", "--effective"]).ok().stdout;
    assert!(eff.contains("  env.SYS = box-wins\n"), "{eff}");
    let r = e.run(&p, &["box", "config", "--reset", "env.SYS"]).ok();
    assert_eq!(r.stdout.trim(), "Reset env.SYS");
}

#[test]
fn shares_and_seeds_can_be_set_at_every_level() {
    let (e, p) = setup();
    e.run(
        &p,
        &["box", "config", "box.path.share_ro.docs=~/docs:~/docs"],
    )
    .ok();
    e.run(
        &p,
        &[
            "crab",
            "config",
            "claude",
            "crab.path.seeded.cfg=~/cfg:~/.cfg",
        ],
    )
    .ok();
    e.run(
        &p,
        &[
            "system",
            "config",
            "system.path.share_rw.cache=cache:~/.cache",
        ],
    )
    .ok();
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(
        doc.contains("box:\n  path:\n    share_ro.docs: ~/docs:~/docs\n"),
        "{doc}"
    );
    let r = e
        .run(&p, &["box", "config", "box.path.share_ro.docs=nocolon"])
        .fails();
    assert!(r.stderr.contains("host_src:guest_dest"), "{r:?}");
    let show = e.run(&p, &["box", "config"]).ok().stdout;
    assert!(
        show.contains("  box.path.share_ro.docs = ~/docs:~/docs\n"),
        "{show}"
    );
}

#[test]
fn reset_all_asks_and_keeps_the_box_identity() {
    let (e, p) = setup();
    e.run(&p, &["box", "config", "model=x"]).ok();
    e.run(&p, &["box", "config", "env.A=1"]).ok();
    let r = e.run(&p, &["box", "config", "--reset", "--all"]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
    let r = e
        .run(&p, &["box", "config", "--reset", "--all", "--force"])
        .ok();
    assert_eq!(r.stdout.trim(), "Reset 2 override(s).");
    let show = e.run(&p, &["box", "config"]).ok().stdout;
    assert_eq!(show, "  (no overrides)\n");
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(
        doc.contains("  mode: default\n") && !doc.contains("crab:"),
        "{doc}"
    );
    // a bare --reset is --reset --all, as upstream parses it (and asks the same)
    e.run(&p, &["box", "config", "model=x"]).ok();
    let r = e.run(&p, &["box", "config", "--reset"]).fails();
    assert!(r.stderr.contains("hint: pass --force"), "{r:?}");
    let r = e
        .run(&e.home, &["box", "config", "--reset", "--force", "app"])
        .ok();
    assert_eq!(r.stdout.trim(), "Reset 1 override(s).");
    let r = e.run(&p, &["system", "config", "--reset"]).fails();
    assert!(r.stderr.contains("--reset requires a key"), "{r:?}");
}

#[test]
fn config_of_another_box_and_bad_files() {
    let (e, p) = setup();
    let other = e.dir("p/other");
    e.run(&other, &["create"]).ok();
    e.run(&p, &["box", "config", "other", "model=m"]).ok();
    let r = e.run(&other, &["box", "config", "model"]).ok();
    assert_eq!(r.stdout.trim(), "m");
    let r = e.run(&p, &["box", "config", "a", "b", "c"]);
    assert_eq!(r.code, 2, "{r:?}");
    let file = e.data().join("boxes/app/project.yaml");
    fs::write(&file, "project: [broken\n").unwrap();
    let r = e.run(&p, &["box", "config", "model=y"]).fails();
    assert!(r.stderr.contains("project.yaml:"), "{r:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "project: [broken\n");
    let plain = e.dir("p/plain");
    let r = e.run(&plain, &["box", "config", "model=z"]).fails();
    assert!(r.stderr.contains("is not a kanibako box"), "{r:?}");
    assert!(!e.data().join("boxes/__unregistered__").exists());
    let r = e.run(&p, &["crab", "config", "nosuch", "model"]).fails();
    assert!(r.stderr.contains("crab 'nosuch' not found"), "{r:?}");
}

#[test]
fn resets_keep_order_identity_and_shared_names_stay_plain() {
    let (e, p) = setup();
    for kv in ["model=m", "autonomous=false", "start_mode=new"] {
        e.run(&p, &["box", "config", kv]).ok();
    }
    let file = e.data().join("boxes/app/project.yaml");
    let before = fs::read_to_string(&file).unwrap();
    e.run(&p, &["box", "config", "--reset", "model"]).ok();
    let after = fs::read_to_string(&file).unwrap();
    let order = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
            .map(|l| l.trim().split(':').next().unwrap().to_owned())
            .collect()
    };
    let mut expected = order(&before);
    expected.retain(|k| k != "model");
    assert_eq!(
        order(&after),
        expected,
        "a reset keeps the rest in its order"
    );
    // what cannot be set cannot be reset
    let r = e.run(&p, &["box", "config", "--reset", "mode"]).fails();
    assert!(r.stderr.contains("mode is read-only"), "{r:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), after);
    // a shared cache name is one plain name, never a path
    for bad in ["shared./etc=x", "shared.../up=x", "shared.a/b=x"] {
        let r = e.run(&p, &["box", "config", bad]).fails();
        assert!(r.stderr.contains("invalid shared cache name"), "{r:?}");
    }
    e.run(&p, &["box", "config", "shared.npm=.npm"]).ok();
}

/// Issue 10, item 9: concurrent changes of one settings or env file all land.
#[test]
fn thirty_parallel_config_writes_all_land() {
    let (e, p) = setup();
    let spawn_all = |args: &dyn Fn(usize) -> Vec<String>| {
        let children: Vec<_> = (0..30)
            .map(|i| {
                let a = args(i);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                e.cmd(&p, &a)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
    };
    spawn_all(&|i| vec!["box".into(), "config".into(), format!("env.K{i}=v{i}")]);
    let env = fs::read_to_string(e.data().join("boxes/app/env")).unwrap();
    for i in 0..30 {
        assert!(env.contains(&format!("K{i}=v{i}\n")), "K{i} lost: {env}");
    }
    spawn_all(&|i| {
        vec![
            "system".into(),
            "config".into(),
            format!("shared.c{i}=.cache/c{i}"),
        ]
    });
    let r = e.run(&p, &["system", "config"]).ok();
    for i in 0..30 {
        assert!(
            r.stdout.contains(&format!("shared.c{i}")),
            "c{i} lost: {r:?}"
        );
    }
}

/// Issue 10, item 14: a crab's env values are kept 0600.
#[test]
fn a_crab_env_value_is_stored_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (e, p) = setup();
    e.run(&p, &["crab", "config", "claude", "env.API_KEY=s3cr3t"])
        .ok();
    let file = e.data().join("crabs/claude.yaml");
    assert!(fs::read_to_string(&file).unwrap().contains("s3cr3t"));
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// `--reset` takes its key as an optional value, as upstream parses it: `box config
/// --reset KEY BOX` from anywhere, `workset config W --reset KEY`; one key at a time.
#[test]
fn reset_takes_its_key_as_a_value_and_the_box_after_it() {
    let (e, p) = setup();
    e.run(&p, &["box", "config", "model=boxmodel"]).ok();
    e.run(&e.home, &["box", "config", "--reset", "model", "app"])
        .ok();
    let r = e.run(&p, &["box", "config", "model"]).ok();
    assert_ne!(r.stdout.trim(), "boxmodel", "{r:?}");
    e.run(&p, &["box", "config", "model=boxmodel"]).ok();
    e.run(&e.home, &["box", "config", "app", "--reset", "model"])
        .ok();
    assert_ne!(
        e.run(&p, &["box", "config", "model"]).ok().stdout.trim(),
        "boxmodel"
    );
    let r = e
        .run(&p, &["box", "config", "--reset", "model", "app", "env.X"])
        .fails();
    assert!(
        r.stderr.contains("too many arguments") || r.stderr.contains("two keys"),
        "{r:?}"
    );
    let r = e
        .run(&e.home, &["system", "config", "--reset", "model", "model"])
        .fails();
    assert!(r.stderr.contains("two keys to reset"), "{r:?}");
}

/// `--reset [KEY]` side by side with the Python tool: the same command lines, in the
/// same order, say the same (the key after `--reset` or after the box, a bare `--reset`
/// as `--all`, from outside the box, for a box and a workset).
#[test]
fn reset_parses_as_the_python_tools() {
    let lines: &[&[&str]] = &[
        &["box", "config", "proj", "model=m1"],
        &["box", "config", "--reset", "model", "proj"],
        &["box", "config", "proj", "model=m2"],
        &["box", "config", "proj", "--reset", "model"],
        &["box", "config", "proj", "model=m3"],
        &["box", "config", "--reset", "--force", "proj"],
        &["box", "config", "--reset", "--force", "proj"],
        &["workset", "config", "w", "model=x"],
        &["workset", "config", "--reset", "model", "w"],
        &["workset", "config", "w", "--reset", "model"],
        &["workset", "config", "w", "model=y"],
        &["workset", "config", "--reset", "--force", "w"],
    ];
    let ours = Env::new();
    ours.fake_podman();
    let theirs = Env::new();
    let Some(py) = crate::archive::python(&theirs) else {
        return;
    };
    let p = ours.dir("p/proj");
    ours.run(&p, &["create"]).ok();
    ours.run(&ours.home, &["workset", "create", "ws/w"]).ok();
    let q = theirs.dir("p/proj");
    py(&q, &["create"]);
    py(&theirs.home, &["workset", "create", "ws/w"]);
    for args in lines {
        let r = ours.run(&ours.home, args).ok();
        assert_eq!(r.stdout, py(&theirs.home, args), "{args:?}");
    }
}

/// `resource.<path>` at the box, workset and system levels (stored in
/// `resource_overrides` as upstream), `--local` as `=project`, and what is refused.
#[test]
fn resource_keys_and_local() {
    let (e, p) = setup();
    let r = e
        .run(&p, &["box", "config", "resource.settings.json=shared"])
        .ok();
    assert_eq!(r.stdout, "Set resource.settings.json=shared\n");
    let r = e
        .run(
            &e.home,
            &["box", "config", "app", "--local", "resource.projects/"],
        )
        .ok();
    assert_eq!(r.stdout, "Set resource.projects/=project\n");
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(
        doc.ends_with("resource_overrides:\n  settings.json: shared\n  projects/: project\n"),
        "{doc}"
    );
    let r = e.run(&p, &["box", "config", "resource.projects/"]).ok();
    assert_eq!(r.stdout, "project\n");
    let show = e.run(&p, &["box", "config"]).ok().stdout;
    assert!(
        show.contains("  resource.settings.json = shared\n  resource.projects/ = project\n"),
        "{show}"
    );
    e.run(&e.home, &["workset", "create", "ws/w"]).ok();
    let r = e
        .run(
            &e.home,
            &["workset", "config", "w", "--local", "resource.todos/"],
        )
        .ok();
    assert_eq!(r.stdout, "Set resource.todos/=project\n");
    assert_eq!(
        fs::read_to_string(e.home.join("ws/w/config.yaml")).unwrap(),
        "resource_overrides:\n  todos/: project\n"
    );
    e.run(&p, &["system", "config", "resource.CLAUDE.md=shared"])
        .ok();
    // refused, each with one line
    for (args, says) in [
        (
            &["box", "config", "resource.nope=shared"][..],
            "unknown resource: resource.nope",
        ),
        (
            &["box", "config", "resource.settings.json=bogus"],
            "expected one of shared, project, seeded",
        ),
        (
            &["box", "config", "resource.../x=shared"],
            "invalid resource name",
        ),
        (
            &["box", "config", "--local", "model"],
            "--local only applies to resource.* keys",
        ),
        (
            &["box", "config", "--local", "resource.cache/=shared"],
            "it takes no other value",
        ),
        (
            &["crab", "config", "claude", "resource.cache/=shared"],
            "cannot be set at the crab level",
        ),
    ] {
        let r = e.run(&p, args).fails();
        assert!(r.stderr.contains(says), "{args:?}: {r:?}");
    }
    let r = e.run(
        &p,
        &["crab", "config", "claude", "--local", "resource.cache/"],
    );
    assert_eq!(r.code, 2, "crab config has no --local, as upstream: {r:?}");
    // reset one, then all (the rest of resource_overrides goes with them)
    let r = e
        .run(&p, &["box", "config", "--reset", "resource.settings.json"])
        .ok();
    assert_eq!(r.stdout, "Reset resource.settings.json\n");
    e.run(&p, &["box", "config", "--reset", "--all", "--force"])
        .ok();
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(!doc.contains("resource_overrides"), "{doc}");

    // side by side: the Python tool says the same and reads what we wrote
    let Some(py) = crate::archive::python(&e) else {
        return;
    };
    e.run(&p, &["box", "config", "resource.settings.json=shared"])
        .ok();
    assert_eq!(
        py(&p, &["box", "config", "resource.settings.json"]),
        "shared\n"
    );
    let theirs = Env::new();
    let Some(tpy) = crate::archive::python(&theirs) else {
        return;
    };
    let q = theirs.dir("p/app");
    tpy(&q, &["create"]);
    assert_eq!(
        tpy(&q, &["box", "config", "--local", "resource.projects/"]),
        "Set resource.projects/=project\n"
    );
    let theirs_doc = fs::read_to_string(theirs.data().join("boxes/app/project.yaml")).unwrap();
    assert!(
        theirs_doc.contains("resource_overrides:\n  projects/: project\n"),
        "{theirs_doc}"
    );
}

/// At launch: a `shared` resource is one host copy (made if missing) mounted over the
/// home's, a `seeded` one (settings.json's usual scope) is copied into a home that
/// lacks it, and a standalone box gets neither.
#[test]
fn resources_are_mounted_or_seeded_at_launch() {
    let (e, p) = setup();
    e.run(&p, &["box", "config", "resource.projects/=shared"])
        .ok();
    let global = e.data().join("shared/global/claude");
    let r = e.run(&p, &["start", "--dry-run"]).ok();
    let mount = format!(
        "{}:/home/agent/.claude/projects:",
        global.join("projects").display()
    );
    assert!(r.stdout.contains(&mount), "{r:?}");
    assert!(!global.exists(), "a dry run makes nothing");
    fs::create_dir_all(&global).unwrap();
    fs::write(global.join("settings.json"), "{\"theme\":\"dark\"}").unwrap();
    e.run(&p, &["start"]).ok();
    assert!(global.join("projects").is_dir());
    assert!(
        e.last_call("run").unwrap().contains(&mount),
        "{}",
        e.podman_log()
    );
    let home = e.data().join("boxes/app/shell/.claude");
    assert_eq!(
        fs::read_to_string(home.join("settings.json")).unwrap(),
        "{\"theme\":\"dark\"}"
    );
    // the box's own copy is never overwritten
    fs::write(home.join("settings.json"), "mine").unwrap();
    e.run(&p, &["start"]).ok();
    assert_eq!(
        fs::read_to_string(home.join("settings.json")).unwrap(),
        "mine"
    );
    // a bad value set by hand: warned, the usual scope kept, no crash (upstream's was)
    let file = e.data().join("boxes/app/project.yaml");
    let doc = fs::read_to_string(&file)
        .unwrap()
        .replace("projects/: shared", "projects/: bogus");
    fs::write(&file, doc).unwrap();
    let r = e.run(&p, &["start", "--dry-run"]).ok();
    assert!(
        r.stderr
            .contains("resource.projects/ = 'bogus' is not one of"),
        "{r:?}"
    );
    assert!(!r.stdout.contains(&mount), "{r:?}");
    // a standalone box: none
    let s = e.dir("p/solo");
    e.run(&s, &["create", "--standalone"]).ok();
    e.run(&s, &["system", "config", "resource.projects/=shared"])
        .ok();
    let r = e.run(&s, &["start", "--dry-run"]).ok();
    assert!(!r.stdout.contains("/home/agent/.claude/projects"), "{r:?}");
}
