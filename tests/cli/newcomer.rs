//! What a newcomer meets first (issue 18): a host whose limits are below podman's
//! defaults, mistyped commands, a first `start`, no engine at all.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{Env, Run};

fn env_with_claude() -> (Env, PathBuf) {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    let p = e.dir("p/app");
    (e, p)
}

/// kanibako run with hard limits lowered (as on a VM whose root cannot raise them).
fn run_limited(e: &Env, cwd: &Path, args: &[&str]) -> Run {
    let mut all = vec![
        "--nofile=4096:4096",
        "--nproc=2048:2048",
        env!("CARGO_BIN_EXE_kanibako"),
    ];
    all.extend_from_slice(args);
    Run::from(
        e.program_cmd(Path::new("/usr/bin/prlimit"), cwd, &all)
            .output()
            .unwrap(),
    )
}

#[test]
fn rootful_podman_gets_ulimits_the_host_allows_unless_configured() {
    let (mut e, p) = env_with_claude();
    let conf = e.root_file("containers.conf");
    fs::write(&conf, "[engine]\nruntime = \"runc\"\n").unwrap();
    e.set("CONTAINERS_CONF", &conf);
    e.run(&p, &["create"]).ok();
    let r = run_limited(&e, &p, &["shell", "--dry-run", "--", "true"]).ok();
    let wanted = "run --ulimit nofile=4096:4096 --ulimit nproc=2048:2048 ";
    if e.rootful_podman() {
        assert!(r.stdout.contains(wanted), "{r:?}");
    } else {
        assert!(
            !r.stdout.contains("--ulimit"),
            "rootless podman clamps itself: {r:?}"
        );
    }
    // the user's own default_ulimits are respected: within the host's limits nothing is
    // added, above them the launch stops with the cause and the lines that fix it
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
    )
    .unwrap();
    let r = run_limited(&e, &p, &["shell", "--dry-run", "--", "true"]).ok();
    assert!(!r.stdout.contains("--ulimit"), "{r:?}");
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=65536:65536\", \"nproc=1024:1024\"]\n",
    )
    .unwrap();
    let r = run_limited(&e, &p, &["shell", "--", "true"]);
    if e.rootful_podman() {
        assert_eq!(r.code, 1, "{r:?}");
        let lines: Vec<_> = r.stderr.lines().collect();
        assert!(
            lines[0].starts_with("Error: default_ulimits in ")
                && lines[0].contains("asks for nofile 65536"),
            "{r:?}"
        );
        assert!(
            r.stderr.contains(
                "default_ulimits = [\"nofile=4096:4096\", \"nproc=2048:2048\"]` under `[containers]`"
            ),
            "{r:?}"
        );
        assert!(e.last_call("run").is_none(), "nothing was started");
        // and `rig diagnose` says the same
        let r = run_limited(&e, &p, &["rig", "diagnose"]);
        assert!(
            r.stdout.contains("[!!] limits: default_ulimits in ")
                && r.stdout.contains("nofile=4096:4096"),
            "{r:?}"
        );
    }
}

#[test]
fn runc_refusing_a_limit_is_one_line_with_the_fix() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    // a detached start whose engine fails as runc does on such a host
    e.script(
        "podman",
        &format!(
            "echo \"$*\" >> '{}'\ncase \"$1\" in run) echo 'Error: runc: runc create failed: \
             unable to start container process: error during container init: error setting \
             rlimits for ready process: error setting rlimit type 7: operation not permitted: \
             OCI permission denied' >&2; exit 126 ;; container) exit 125 ;; image) echo /fake/rootfs ;; *) exit 0 ;; esac\n",
            e.root_file("podman.log").display()
        ),
    );
    let r = e.run(&p, &["start", "--persistent"]).fails();
    if e.rootful_podman() {
        assert!(
            r.stderr.lines().any(|l| l.starts_with(
                "Error: podman cannot start a container within this host's hard limits"
            )),
            "{r:?}"
        );
        assert!(r.stderr.contains("under `[containers]` in /"), "{r:?}");
        assert!(!r.stderr.contains("runc create failed"), "{r:?}");
    }
}

#[test]
fn unknown_words_are_usage_errors_and_only_projects_imply_start() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    assert!(p.join("vault").is_dir());
    let r = e.run(&p, &["help"]).ok();
    assert!(r.stdout.contains("Usage: kanibako"), "{r:?}");
    for (args, says) in [
        (&["lsit"][..], "did you mean `kanibako list`?"),
        (&["info", "demo"][..], "did you mean `kanibako box info`?"),
        (&["vault"][..], "did you mean `kanibako box vault`?"),
        (&["upgrade"][..], "did you mean `kanibako system upgrade`?"),
        (
            &["nosuchbox"][..],
            "`kanibako create nosuchbox` makes a new box",
        ),
    ] {
        let r = e.run(&p, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(says), "{args:?}: {r:?}");
        assert_eq!(
            r.stderr.lines().filter(|l| l.starts_with("Error:")).count(),
            1
        );
    }
    assert!(
        e.last_call("run").is_none() && !p.join("nosuchbox").exists(),
        "nothing was launched or made: {}",
        e.podman_log()
    );
    // a registered name and an existing directory still mean `start`
    let r = e.run(&e.home, &["app", "--dry-run"]).ok();
    assert!(r.stdout.contains("--name kanibako-app"), "{r:?}");
    let r = e.run(&p.join(".."), &["app", "--dry-run"]).ok();
    assert!(r.stdout.contains("--name kanibako-app"), "{r:?}");
}

#[test]
fn a_box_made_by_create_or_shell_does_not_continue_on_its_first_start() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    e.run(&p, &["start"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(!run.contains("--continue"), "{run}");
    let q = e.dir("p/other");
    e.run(&q, &["shell", "--", "true"]).ok();
    e.run(&q, &["start"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(!run.contains("--continue"), "{run}");
}

#[test]
fn a_failed_bootstrap_leaves_nothing_and_is_not_taken_for_a_rig() {
    // the host's programs are on PATH (what bootstrap collects), our fake engine first
    let e = Env::with_system_path();
    let log = e.root_file("podman.log");
    let images = e.root_file("images");
    // an engine whose check run of the new rig fails; `images` lists what was imported
    // and not removed since
    e.script(
        "podman",
        &format!(
            "echo \"$*\" >> '{log}'\ncase \"$1\" in\n  images) cat '{img}' 2>/dev/null ;;\n  \
             import) echo localhost/kanibako-rig-host:latest > '{img}' ;;\n  \
             rmi) rm -f '{img}' ;;\n  run) echo 'exec failed' >&2; exit 1 ;;\nesac\nexit 0\n",
            log = log.display(),
            img = images.display()
        ),
    );
    for _ in 0..2 {
        let r = e.run(&e.home, &["rig", "bootstrap"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("the new rig does not run"), "{r:?}");
        assert!(!r.stdout.contains("already exists"), "{r:?}");
        assert!(!images.exists(), "the unchecked image was removed");
    }
    assert!(
        e.podman_log()
            .contains("rmi localhost/kanibako-rig-host:latest")
    );
    let json = e.run(&e.home, &["rig", "list", "--json"]).ok().json();
    assert!(
        !json["rigs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "host"),
        "{json:#}"
    );
}

#[test]
fn a_template_that_needs_apt_get_is_refused_up_front_on_a_bootstrap_rig() {
    let e = Env::new();
    e.fake_podman();
    fs::create_dir_all(e.data()).unwrap();
    e.run(&e.home, &["list"]).ok();
    fs::write(
        e.data().join("rigs.yaml"),
        "rigs:\n  host:\n    kind: extended\n    source_type: bootstrap\n    image: localhost/kanibako-rig-host:latest\n",
    )
    .unwrap();
    e.run(&e.home, &["system", "config", "box.image=host"]).ok();
    let r = e.run(&e.home, &["rig", "prep", "js"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("installs packages with apt-get")
            && r.stderr.contains("has no package manager"),
        "{r:?}"
    );
    assert!(e.last_call("build").is_none(), "no build was started");
}
