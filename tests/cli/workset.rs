//! Worksets: creating, listing, members, config and removal.

use std::fs;

use crate::support::{Env, tree};

fn env() -> Env {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    e
}

#[test]
fn a_workset_from_create_to_rm() {
    let e = env();
    let src = e.dir("projects/myapp");
    let root = e.home.join("ws/client");
    let r = e.run(&e.home, &["workset", "create", "ws/client"]).ok();
    assert_eq!(
        r.stdout.trim(),
        format!("Created working set 'client' at {}", root.display())
    );
    let meta = fs::read_to_string(root.join("workset.yaml")).unwrap();
    assert!(meta.starts_with("name: client\ncreated: '20"), "{meta}");
    assert!(meta.ends_with("group_auth: true\nprojects: []\n"), "{meta}");
    // both registries, always together
    assert!(
        fs::read_to_string(e.data().join("worksets.yaml"))
            .unwrap()
            .contains("client:")
    );
    assert!(e.names_yaml().contains("worksets:\n  client:"));
    e.run(&src, &["workset", "connect", "client"]).ok();
    e.run(
        &e.home,
        &[
            "workset",
            "connect",
            "client",
            "projects/myapp",
            "--name",
            "web",
        ],
    )
    .ok();
    let r = e
        .run(
            &e.home,
            &[
                "workset",
                "connect",
                "client",
                "projects/myapp",
                "--name",
                "web",
            ],
        )
        .fails();
    assert!(r.stderr.contains("already in workset"), "{r:?}");
    for d in [
        "boxes/web/shell/.bashrc",
        "workspaces/web",
        "vault/web/ro",
        "vault/web/rw",
    ] {
        assert!(root.join(d).exists(), "{d}");
    }
    let list = e.run(&e.home, &["workset", "list"]).ok().stdout;
    assert!(
        list.contains("default (default)           0  <default workset>"),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "client                      2  {}",
            root.display()
        )),
        "{list}"
    );
    assert_eq!(
        e.run(&e.home, &["workset", "list", "-q"]).ok().stdout,
        "default\nclient\n"
    );
    let info = e.run(&e.home, &["workset", "info", "client"]).ok().stdout;
    assert!(
        info.contains(&format!("  web: {}\n", src.display())),
        "{info}"
    );
    let boxes = e.run(&e.home, &["list"]).ok().stdout;
    assert!(
        boxes.contains(&format!("Workset: client ({})", root.display())),
        "{boxes}"
    );
    assert!(
        boxes.contains("  web                stopped    "),
        "{boxes}"
    );
    // a member is found from inside its workspace, and by name from inside the root
    let ws_dir = root.join("workspaces/web");
    let info = e.run(&ws_dir, &["box", "info"]).ok().stdout;
    assert!(info.contains("  Mode:         workset\n"), "{info}");
    assert!(
        info.contains("  Container:    not running (kanibako-client-web-"),
        "{info}"
    );
    let r = e.run(&root, &["box", "info"]).fails();
    assert!(
        r.stderr
            .contains("Inside workset 'client' but not in a specific project workspace"),
        "{r:?}"
    );
    let r = e.run(&root, &["box", "info", "web"]).ok();
    assert!(r.stdout.contains("  Name:         web\n"), "{r:?}");
    // rm refuses while boxes are inside, and needs an answer
    let r = e.run(&e.home, &["workset", "rm", "client"]).fails();
    assert!(
        r.stderr
            .contains("workset 'client' has 2 project(s). Use --force"),
        "{r:?}"
    );
    e.run(
        &e.home,
        &[
            "workset",
            "disconnect",
            "client",
            "web",
            "--remove-files",
            "--force",
        ],
    )
    .ok();
    assert!(!root.join("workspaces/web").exists() && !root.join("boxes/web").exists());
    e.run(&e.home, &["workset", "rm", "client", "--force", "--purge"])
        .ok();
    assert!(!root.exists());
    assert!(!e.names_yaml().contains("client"));
    assert!(
        !fs::read_to_string(e.data().join("worksets.yaml"))
            .unwrap()
            .contains("client")
    );
}

#[test]
fn bad_workset_input_changes_nothing() {
    let e = env();
    let p = e.dir("projects/myapp");
    e.run(&p, &["create"]).ok();
    e.run(&e.home, &["workset", "create", "ws/one"]).ok();
    let before = tree(&e.home);
    let r = e
        .run(
            &e.home,
            &["workset", "create", "ws/other", "--name", "default"],
        )
        .fails();
    assert!(
        r.stderr
            .contains("'default' is reserved for the default workset."),
        "{r:?}"
    );
    let r = e
        .run(
            &e.home,
            &["workset", "create", "ws/other", "--name", "myapp"],
        )
        .fails();
    assert!(
        r.stderr
            .contains("Name 'myapp' is already registered (projects:"),
        "{r:?}"
    );
    let r = e.run(&e.home, &["workset", "create", "ws/one"]).fails();
    assert!(r.stderr.contains("Workset root already exists"), "{r:?}");
    let r = e
        .run(
            &e.home,
            &["workset", "create", "ws/x", "--name", "../../evil"],
        )
        .fails();
    assert!(r.stderr.contains("invalid box name"), "{r:?}");
    assert_eq!(
        tree(&e.home),
        before,
        "a failed create leaves nothing behind"
    );
    let r = e.run(&e.home, &["workset", "info", "nosuch"]).fails();
    assert!(
        r.stderr.contains("Working set 'nosuch' is not registered."),
        "{r:?}"
    );
    let r = e.run(&e.home, &["workset", "rm", "default"]).fails();
    assert!(
        r.stderr.contains("The default workset cannot be removed."),
        "{r:?}"
    );
    let r = e
        .run(
            &e.home,
            &["workset", "disconnect", "one", "nosuch", "--force"],
        )
        .fails();
    assert!(
        r.stderr
            .contains("Project 'nosuch' not found in workset 'one'."),
        "{r:?}"
    );
    let r = e
        .run(&e.home, &["workset", "config", "one", "group_auth=maybe"])
        .fails();
    assert!(
        r.stderr
            .contains("group_auth must be 'true' or 'false', got 'maybe'"),
        "{r:?}"
    );
}

#[test]
fn workset_settings_reach_its_boxes_and_boxes_override_them() {
    let e = env();
    let src = e.dir("projects/myapp");
    e.run(
        &e.home,
        &["workset", "create", "ws/client", "-i", "localhost/wsrig:1"],
    )
    .ok();
    e.run(&src, &["workset", "connect", "client"]).ok();
    let ws = e.home.join("ws/client/workspaces/myapp");
    e.run(&e.home, &["workset", "config", "client", "model=wsmodel"])
        .ok();
    e.run(
        &e.home,
        &["workset", "config", "client", "env.WSVAR=fromws"],
    )
    .ok();
    e.run(&e.home, &["workset", "config", "client", "env.GONE=ws"])
        .ok();
    e.run(&ws, &["box", "config", "env.GONE="]).ok();
    e.run(&ws, &["start", "--ephemeral"]).ok();
    let run = e.last_call("run").unwrap();
    // namespaced and hashed: never the container of a default box `client-myapp`
    assert!(run.contains("--name kanibako-client-myapp-"), "{run}");
    // the workset's rig reaches the box: named on the run, or mounted as its rootfs
    if run.contains("--rootfs") {
        assert_eq!(
            e.last_call("image mount").as_deref(),
            Some("image mount localhost/wsrig:1")
        );
    } else {
        assert!(run.contains(" localhost/wsrig:1 "), "{run}");
    }
    assert!(run.ends_with("--model wsmodel"), "{run}");
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(
        env.contains("WSVAR=fromws\n") && !env.contains("GONE"),
        "{env}"
    );
    let r = e
        .run(&ws, &["box", "config", "model", "--show-origin"])
        .ok();
    assert!(
        r.stdout.contains("wsmodel\t# workset: ") && r.stdout.contains("ws/client/config.yaml"),
        "{r:?}"
    );
    e.run(&ws, &["box", "config", "model=boxmodel"]).ok();
    e.run(&ws, &["start", "--ephemeral"]).ok();
    assert!(e.last_call("run").unwrap().ends_with("--model boxmodel"));
    // the default workset is a level too
    let p = e.dir("projects/plain");
    e.run(&p, &["create"]).ok();
    e.run(
        &e.home,
        &["workset", "config", "default", "model=defaultws"],
    )
    .ok();
    e.run(&p, &["start", "--ephemeral"]).ok();
    assert!(e.last_call("run").unwrap().ends_with("--model defaultws"));
    assert!(
        fs::read_to_string(e.data().join("config.yaml"))
            .unwrap()
            .contains("crab:\n  model: defaultws\n")
    );
}

#[test]
fn distinct_auth_clears_shared_credentials_in_members() {
    let e = env();
    let src = e.dir("projects/myapp");
    e.run(&e.home, &["workset", "create", "ws/client"]).ok();
    e.run(&src, &["workset", "connect", "client"]).ok();
    let home = e.home.join("ws/client/boxes/myapp/shell");
    fs::create_dir_all(home.join(".claude")).unwrap();
    fs::write(home.join(".claude/.credentials.json"), "{}").unwrap();
    fs::write(home.join(".claude.json"), "{}").unwrap();
    let r = e
        .run(
            &e.home,
            &["workset", "config", "client", "group_auth=false"],
        )
        .ok();
    assert!(
        r.stdout.contains("Credentials cleared in 1 project(s)."),
        "{r:?}"
    );
    assert!(
        !home.join(".claude/.credentials.json").exists() && !home.join(".claude.json").exists()
    );
    assert_eq!(
        e.run(&e.home, &["workset", "config", "client", "group_auth"])
            .ok()
            .stdout,
        "false\n"
    );
    let info = e
        .run(&e.home.join("ws/client/workspaces/myapp"), &["box", "info"])
        .ok()
        .stdout;
    assert!(info.contains("  Auth:         distinct\n"), "{info}");
}

/// Issue 14: a member is named the same way from any directory, by NAME or
/// WORKSET/NAME, in every command that takes a box; a name two boxes answer to is an
/// error listing both.
#[test]
fn a_member_is_found_by_name_from_anywhere_and_an_ambiguous_name_is_refused() {
    let e = env();
    let src = e.dir("projects/two");
    e.run(&e.home, &["workset", "create", "ws/team"]).ok();
    e.run(&src, &["workset", "connect", "team"]).ok();
    let elsewhere = e.dir("elsewhere");
    e.run(&elsewhere, &["box", "config", "two", "model=x"]).ok();
    let eff = e
        .run(&elsewhere, &["box", "config", "two", "--effective"])
        .ok()
        .stdout;
    assert!(eff.contains("  model = x"), "{eff}");
    let info = e.run(&elsewhere, &["box", "info", "team/two"]).ok().stdout;
    assert!(info.contains("  Mode:         workset\n"), "{info}");
    let r = e
        .run(
            &elsewhere,
            &["shell", "team/two", "--dry-run", "--", "true"],
        )
        .ok();
    assert!(r.stdout.contains("--name kanibako-team-two-"), "{r:?}");
    e.run(&elsewhere, &["stop", "two"]).ok();
    // a default box of the same name: the bare name is ambiguous outside the workset
    let other = e.dir("other/two");
    e.run(&other, &["create"]).ok();
    let r = e.run(&elsewhere, &["box", "info", "two"]).fails();
    assert!(r.stderr.contains("'two' names 2 boxes"), "{r:?}");
    assert!(r.stderr.contains("team/two"), "{r:?}");
    e.run(&elsewhere, &["box", "info", "team/two"]).ok();
}

#[test]
fn create_standalone_is_recorded_as_upstream_records_it() {
    let e = env();
    let r = e
        .run(
            &e.home,
            &[
                "workset",
                "create",
                "ws/solo",
                "--standalone",
                "-i",
                "busybox",
            ],
        )
        .ok();
    assert!(
        r.stdout.starts_with("Created working set 'solo' at "),
        "{r:?}"
    );
    let ours = fs::read_to_string(e.home.join("ws/solo/config.yaml")).unwrap();
    assert_eq!(ours, "box:\n  image: busybox\nstandalone: true\n");
    // its boxes work as any workset's
    let src = e.dir("p/one");
    e.run(&src, &["workset", "connect", "solo"]).ok();
    let info = e.run(&e.home, &["box", "info", "solo/one"]).ok().stdout;
    assert!(info.contains("  Image:        busybox\n"), "{info}");
    // side by side: the Python tool writes the same file, and reads ours
    let theirs = Env::new();
    let Some(py) = crate::archive::python(&theirs) else {
        return;
    };
    let out = py(
        &theirs.home,
        &[
            "workset",
            "create",
            "ws/solo",
            "--standalone",
            "-i",
            "busybox",
        ],
    );
    assert!(out.starts_with("Created working set 'solo' at "), "{out}");
    assert_eq!(
        fs::read_to_string(theirs.home.join("ws/solo/config.yaml")).unwrap(),
        ours
    );
    let Some(py) = crate::archive::python(&e) else {
        return;
    };
    let info = py(&e.home, &["workset", "info", "solo"]);
    assert!(info.contains("  - one  ("), "{info}");
}

/// A member's crab caches come from `<workset root>/shared`, a default box's from
/// `$DATA/shared` (spec §9.6), and `box info` shows the directory the launch mounts —
/// the same line as the Python tool's.
#[test]
fn a_members_crab_caches_live_in_its_workset() {
    let e = env();
    e.run(&e.home, &["workset", "create", "ws/team"]).ok();
    let src = e.dir("p/one");
    e.run(&src, &["workset", "connect", "team"]).ok();
    let plain = e.dir("p/plain");
    e.run(&plain, &["create"]).ok();
    e.run(
        &e.home,
        &["crab", "config", "claude", "shared.pip=.cache/pip"],
    )
    .ok();
    let ws_cache = e.home.join("ws/team/shared/claude/pip");
    let data_cache = e.data().join("shared/claude/pip");
    fs::create_dir_all(&ws_cache).unwrap();
    fs::create_dir_all(&data_cache).unwrap();
    let member = e.home.join("ws/team/workspaces/one");
    let r = e.run(&member, &["start", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains(&format!("{}:/home/agent/.cache/pip:", ws_cache.display())),
        "{r:?}"
    );
    let r = e.run(&plain, &["start", "--dry-run"]).ok();
    assert!(
        r.stdout
            .contains(&format!("{}:/home/agent/.cache/pip:", data_cache.display())),
        "{r:?}"
    );
    let local = format!(
        "  Local:        {}\n",
        e.home.join("ws/team/shared").display()
    );
    let info = e.run(&e.home, &["box", "info", "team/one"]).ok().stdout;
    assert!(info.contains(&local), "{info}");
    let info = e.run(&plain, &["box", "info"]).ok().stdout;
    assert!(
        info.contains(&format!(
            "  Local:        {}\n",
            e.data().join("shared").display()
        )),
        "{info}"
    );
    let Some(py) = crate::archive::python(&e) else {
        return;
    };
    let theirs = py(&member, &["box", "info"]);
    assert!(theirs.contains(&local), "{theirs}");
}
