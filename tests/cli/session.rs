//! `start` and `shell` against the recording fake podman: the argv they plan, the
//! environment they hand over, and the refusals.

use std::fs;
use std::path::PathBuf;

use crate::support::{Env, Run, tree};

fn env_with_claude() -> (Env, PathBuf) {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    let p = e.dir("p/app");
    (e, p)
}

#[test]
fn shell_passes_argv_exactly_and_values_only_through_the_environment() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let r = e
        .run(
            &p,
            &[
                "shell",
                "-e",
                "SECRET_X=hunter2",
                "--",
                "printf",
                "%s|",
                "a b",
                "c;d",
            ],
        )
        .ok();
    let run = e.last_call("run").unwrap();
    let rig = if e.rootful_podman() {
        "--rootfs /fake/rootfs:O"
    } else {
        "ghcr.io/doctorjei/kanibako-oci:latest"
    };
    assert!(
        run.ends_with(&format!(
            "--entrypoint /bin/sh {rig} -c exec \"$@\" kanibako printf %s| a b c;d"
        )),
        "{run}"
    );
    assert!(run.contains(" --env-file "), "{run}");
    assert!(
        !run.contains("hunter2") && !r.stderr.contains("hunter2"),
        "{run}"
    );
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(env.contains("SECRET_X=hunter2\n"), "{env}");
    assert!(env.contains("KANIBAKO_NAME=app\n"), "{env}");
    if !e.rootful_podman() {
        assert!(
            !env.contains("LANG=") && !e.podman_log().contains("image mount"),
            "a rootless run reads the image itself: {env}"
        );
        return;
    }
    assert!(
        env.contains("LANG=C.UTF-8\n"),
        "a rootfs run gets the image's environment: {env}"
    );
    // released in the background, so give it a moment
    let mut unmount = None;
    for _ in 0..50 {
        unmount = e.last_call("image unmount");
        if unmount.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        unmount.as_deref(),
        Some("image unmount ghcr.io/doctorjei/kanibako-oci:latest"),
        "the mounted rootfs is released"
    );
}

#[test]
fn exit_codes_pass_through_and_127_gets_a_hint() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    fs::write(e.root_file("exit.code"), "7").unwrap();
    let r = e.run(&p, &["shell", "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7, "{r:?}");
    fs::write(e.root_file("exit.code"), "127").unwrap();
    let r = e.run(&p, &["shell", "--", "make && make test"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("sh -c"), "{r:?}");
}

#[test]
fn dry_run_prints_the_commands_and_changes_nothing() {
    let (e, p) = env_with_claude();
    e.run(&e.home, &["list"]).ok();
    let before = tree(&e.home);
    let r = e
        .run(&p, &["start", "--dry-run", "-e", "TOKEN=s3cr3t-value"])
        .ok();
    // Without a containers.conf that fits this host's limits (CI sets one), the run also
    // carries `--ulimit` values the host allows: not what this test is about.
    let stdout = strip_ulimits(&r.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // rootful: mount the rig, run on it, unmount it; rootless: the run alone
    let run = if e.rootful_podman() {
        assert_eq!(lines.len(), 3, "{r:?}");
        assert!(lines[0].ends_with("podman image mount ghcr.io/doctorjei/kanibako-oci:latest"));
        assert!(lines[2].ends_with("podman image unmount ghcr.io/doctorjei/kanibako-oci:latest"));
        assert!(
            lines[1].contains(
                " run -i --rm --init --cap-drop=ALL --security-opt=no-new-privileges \
                 --security-opt=seccomp="
            ),
            "{r:?}"
        );
        assert!(lines[1].contains(" --pids-limit=4096 --uidmap "), "{r:?}");
        lines[1]
    } else {
        assert_eq!(lines.len(), 1, "{r:?}");
        assert!(
            lines[0]
                .contains(" run --pull=never -i --rm --init --cap-drop=ALL --security-opt=no-new-privileges --pids-limit=4096 --userns=keep-id:uid=1000,gid=1000 "),
            "{r:?}"
        );
        lines[0]
    };
    assert!(
        run.contains("--entrypoint /home/agent/.local/bin/claude"),
        "{r:?}"
    );
    assert!(
        run.ends_with(" --dangerously-skip-permissions --model opus"),
        "a new box does not continue: {r:?}"
    );
    assert!(!r.stdout.contains("s3cr3t-value"));
    // Only a cache may be new (rootless podman's version, which decides keep-id pinning).
    let cache = e.home.join(".cache/kanibako/engine-version");
    let after: Vec<_> = tree(&e.home)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&cache))
        .collect();
    assert_eq!(after, before, "no box registered, no home made");
    assert!(!e.podman_log().contains("\nrun "), "nothing ran");
    // -v shows the environment, secrets masked
    let v = e
        .run(
            &p,
            &[
                "-v",
                "start",
                "--dry-run",
                "-e",
                "TOKEN=s3cr3t-value",
                "-e",
                "DATABASE_URL=postgres://u:pw@db",
                "-e",
                "TZ=UTC",
            ],
        )
        .ok();
    // every value masked but those of names known harmless (issue 10, low)
    assert!(
        v.stderr.contains("env TOKEN=****")
            && v.stderr.contains("env DATABASE_URL=****")
            && v.stderr.contains("env TZ=UTC"),
        "{v:?}"
    );
    assert!(!v.stderr.contains("pw@db"), "{v:?}");
}

#[test]
fn start_builds_the_agent_arguments() {
    let (e, p) = env_with_claude();
    e.run(&p, &["start"]).ok();
    let first = e.last_call("run").unwrap();
    assert!(
        first.ends_with("--dangerously-skip-permissions --model opus"),
        "{first}"
    );
    // the agent kept no conversation, so there is nothing to continue yet
    e.run(&p, &["start"]).ok();
    assert!(
        e.last_call("run")
            .unwrap()
            .ends_with("--dangerously-skip-permissions --model opus"),
        "{}",
        e.podman_log()
    );
    let conversations = e
        .data()
        .join("boxes/app/shell/.claude/projects/-home-agent-workspace");
    fs::create_dir_all(&conversations).unwrap();
    fs::write(conversations.join("0b1c.jsonl"), "{}\n").unwrap();
    e.run(&p, &["start", "-M", "sonnet", "--", "-p", "hi", "-v"])
        .ok();
    let second = e.last_call("run").unwrap();
    assert!(
        second.ends_with("--dangerously-skip-permissions --continue -p hi -v --model sonnet"),
        "{second}"
    );
    // bare kanibako and `kanibako <name>` mean start
    e.run(&p, &["-S"]).ok();
    assert!(
        e.last_call("run")
            .unwrap()
            .ends_with("--continue --model opus")
    );
    e.run(&e.home, &["app", "-N"]).ok();
    assert!(
        e.last_call("run")
            .unwrap()
            .ends_with("--dangerously-skip-permissions --model opus")
    );
    let env = fs::read_to_string(e.root_file("run.env")).unwrap();
    assert!(
        env.contains("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"),
        "{env}"
    );
    // the model can be set in config, and an empty value means "no --model"
    fs::write(
        e.data().join("crabs/claude.yaml"),
        "crab:\n  model: haiku\n",
    )
    .unwrap();
    e.run(&p, &["start"]).ok();
    assert!(e.last_call("run").unwrap().ends_with("--model haiku"));
    let project = e.data().join("boxes/app/project.yaml");
    let doc = fs::read_to_string(&project).unwrap();
    fs::write(&project, format!("{doc}crab:\n  model: ''\n")).unwrap();
    e.run(&p, &["start"]).ok();
    assert!(
        e.last_call("run").unwrap().ends_with("--continue"),
        "{:?}",
        e.last_call("run")
    );
}

#[test]
fn a_new_box_pins_the_rig_it_was_started_with() {
    let (e, p) = env_with_claude();
    e.run(&p, &["shell", "--rig", "localhost/mine:1", "--", "true"])
        .ok();
    let doc = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert!(doc.ends_with("box:\n  image: localhost/mine:1\n"), "{doc}");
    e.run(&p, &["shell", "--image", "localhost/other:2", "--", "true"])
        .ok();
    let doc2 = fs::read_to_string(e.data().join("boxes/app/project.yaml")).unwrap();
    assert_eq!(doc, doc2, "an existing box keeps its rig");
}

#[test]
fn a_held_lock_stops_a_second_agent_session() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let lock = e.data().join("boxes/app/.kanibako.lock");
    let held = kanibako::fsutil::try_lock_exclusive(&lock)
        .unwrap()
        .unwrap();
    let r = e.run(&p, &["start"]).fails();
    assert!(
        r.stderr
            .contains("Another Kanibako session is already running for this project."),
        "{r:?}"
    );
    drop(held);
    e.run(&p, &["start"]).ok();
}

#[test]
fn a_running_box_is_joined_by_shell_and_refused_by_start() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    fs::write(e.root_file("container.state"), format!("true|{hash}\n")).unwrap();
    // the engine is asked only where a launch left its marker
    let marker = e.data().join("boxes/app/.kanibako.container");
    fs::write(&marker, "kanibako-app\n").unwrap();
    e.run(&p, &["shell", "-e", "X=1", "--", "echo", "inside"])
        .ok();
    let exec = e.last_call("exec").unwrap();
    assert!(exec.starts_with("exec -i --env-file "), "{exec}");
    assert!(exec.ends_with(" kanibako-app echo inside"), "{exec}");
    assert_eq!(fs::read_to_string(e.root_file("run.env")).unwrap(), "X=1\n");
    let r = e.run(&p, &["start"]).fails();
    assert!(
        r.stderr
            .contains("A container already exists for this project."),
        "{r:?}"
    );
    // another box's running container under the same name is never joined
    fs::write(e.root_file("container.state"), "true|0123456789abcdef\n").unwrap();
    let calls = e.podman_log().lines().count();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(r.stderr.contains("belongs to another box"), "{r:?}");
    assert!(
        !e.podman_log()
            .lines()
            .skip(calls)
            .any(|l| l.starts_with("exec")),
        "{}",
        e.podman_log()
    );
    fs::write(&marker, "kanibako-app\n").unwrap();
    // a stopped leftover of ours is cleared; a foreign one is not touched
    fs::write(e.root_file("container.state"), format!("false|{hash}\n")).unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    assert!(
        e.podman_log().contains("\nrm -f kanibako-app\n"),
        "{}",
        e.podman_log()
    );
    fs::write(e.root_file("container.state"), "false|\n").unwrap();
    fs::write(&marker, "kanibako-app\n").unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(
        r.stderr.contains("was not started by this kanibako"),
        "{r:?}"
    );
}

#[test]
fn bad_env_items_and_unknown_agents_are_errors() {
    let (e, p) = env_with_claude();
    let r = e.run(&p, &["shell", "-e", "NOT SET", "--", "true"]).fails();
    assert!(
        r.stderr.contains("-e expects KEY=VALUE, got 'NOT SET'"),
        "{r:?}"
    );
    let r = e.run(&p, &["shell", "-e", "NOEQ", "--", "true"]).fails();
    assert!(
        r.stderr
            .contains("NOEQ is not set in kanibako's environment"),
        "{r:?}"
    );
    let r = e.run(&p, &["shell", "-e", "1BAD=x", "--", "true"]).fails();
    assert!(
        r.stderr.contains("invalid environment variable name"),
        "{r:?}"
    );
    assert!(!e.names_yaml().contains("app"), "nothing was created");
    e.run(&p, &["create"]).ok();
    let project = e.data().join("boxes/app/project.yaml");
    let doc = fs::read_to_string(&project).unwrap();
    fs::write(&project, format!("{doc}box:\n  crab: nosuch\n")).unwrap();
    let r = e.run(&p, &["start"]).fails();
    assert!(r.stderr.contains("unknown agent 'nosuch'"), "{r:?}");
}

#[test]
fn start_refuses_home_and_a_missing_rig_gets_a_hint() {
    let (e, p) = env_with_claude();
    let r = e.run(&e.home, &["start"]).fails();
    assert!(
        r.stderr.contains("Refusing to create a project at $HOME."),
        "{r:?}"
    );
    fs::write(e.root_file("no.image"), "").unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    assert!(
        r.stderr
            .contains("rig 'ghcr.io/doctorjei/kanibako-oci:latest' is not available locally"),
        "{r:?}"
    );
}

#[test]
fn planted_links_in_the_home_change_nothing_on_the_host() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let victim_dir = e.dir("victim");
    fs::write(victim_dir.join("keep"), "precious").unwrap();
    let victim_file = e.home.join("victim-file");
    fs::write(&victim_file, "host file\n").unwrap();
    let shell = e.data().join("boxes/app/shell");
    fs::remove_file(shell.join(".bashrc")).unwrap();
    std::os::unix::fs::symlink(&victim_file, shell.join(".bashrc")).unwrap();
    fs::create_dir_all(shell.join(".claude")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, shell.join(".claude/telemetry")).unwrap();
    std::os::unix::fs::symlink(&victim_dir, shell.join(".local")).unwrap();
    let r = e.run(&p, &["start"]).ok();
    assert!(r.stderr.contains(".bashrc is a symbolic link"), "{r:?}");
    assert_eq!(fs::read_to_string(&victim_file).unwrap(), "host file\n");
    assert_eq!(fs::read_dir(&victim_dir).unwrap().count(), 1);
    assert_eq!(
        fs::read_to_string(victim_dir.join("keep")).unwrap(),
        "precious"
    );
}

#[test]
fn templates_and_instructions_seed_a_new_home() {
    let (e, p) = env_with_claude();
    e.run(&e.home, &["list"]).ok();
    let t = e.data().join("templates");
    fs::create_dir_all(t.join("general/base/.claude")).unwrap();
    fs::write(t.join("general/base/.claude/CLAUDE.md"), "BASE LAYER\n").unwrap();
    fs::create_dir_all(t.join("claude/standard/.claude")).unwrap();
    fs::write(
        t.join("claude/standard/.claude/CLAUDE.md"),
        "TEMPLATE LAYER\n",
    )
    .unwrap();
    fs::write(t.join("claude/standard/.gitconfig"), "[user]\n").unwrap();
    e.run(&p, &["start"]).ok();
    let home = e.data().join("boxes/app/shell");
    assert_eq!(
        fs::read_to_string(home.join(".claude/CLAUDE.md")).unwrap(),
        "# --- kanibako base ---\n\nBASE LAYER\n\n# --- template: standard ---\n\nTEMPLATE LAYER\n"
    );
    assert!(home.join(".gitconfig").exists());
}

#[test]
fn seeds_are_copied_once_into_a_new_home() {
    let (e, p) = env_with_claude();
    e.run(&e.home, &["list"]).ok();
    let src = e.dir("dotdir");
    fs::write(src.join("a.txt"), "A").unwrap();
    fs::write(e.home.join("gitconfig"), "[user]\n").unwrap();
    fs::write(
        e.home.join(".config/kanibako.yaml"),
        "system:\n  path:\n    seeded:\n      gitcfg: ~/gitconfig:~/.gitconfig\n      dd: ~/dotdir:~/.config/dd\n      bad: ~/gitconfig:/etc/x\n",
    )
    .unwrap();
    let r = e.run(&p, &["shell", "--", "true"]).ok();
    assert!(
        r.stderr
            .contains("seed bad: guest_dest '/etc/x' is outside /home/agent"),
        "{r:?}"
    );
    let home = e.data().join("boxes/app/shell");
    assert_eq!(
        fs::read_to_string(home.join(".gitconfig")).unwrap(),
        "[user]\n"
    );
    assert_eq!(
        fs::read_to_string(home.join(".config/dd/a.txt")).unwrap(),
        "A"
    );
    // copy-once: an existing box is not re-seeded
    fs::write(home.join(".gitconfig"), "mine").unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    assert_eq!(fs::read_to_string(home.join(".gitconfig")).unwrap(), "mine");
}

#[test]
fn an_engine_failure_is_not_blamed_on_the_conversation() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    fs::write(e.root_file("exit.code"), "125").unwrap();
    let r = e.run(&p, &["start"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(!r.stderr.contains("start -N"), "{r:?}");
    fs::write(e.root_file("exit.code"), "1").unwrap();
    let r = e.run(&p, &["start"]);
    assert!(r.stderr.contains("kanibako start -N"), "{r:?}");
}

#[test]
fn the_engine_is_not_asked_unless_a_container_may_exist() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    // The launch asks nothing; the box's helper hub, a process of its own, looks for
    // its director (by the inspect format only it uses).
    assert!(
        !e.podman_log()
            .lines()
            .any(|l| l.contains("container inspect") && !l.contains("{{.Id}}|{{.Name}}")),
        "{}",
        e.podman_log()
    );
    assert!(
        !e.data().join("boxes/app/.kanibako.container").exists(),
        "cleared after the run"
    );
    // a container nobody recorded (say, the Python tool's) makes the run fail: explain
    fs::write(e.root_file("container.state"), "true|\n").unwrap();
    fs::write(e.root_file("exit.code"), "125").unwrap();
    let r = e.run(&p, &["shell", "--", "true"]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(
        r.stderr
            .contains("a container named kanibako-app already exists"),
        "{r:?}"
    );
}

#[test]
fn only_the_stop_that_removed_a_container_releases_its_rig_mount() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-app"],"State":"exited","Image":"img","Labels":{{"io.kanibako.box":"app","io.kanibako.hash":"{hash}","io.kanibako.rootfs":"img"}}}}]"#
    ));
    // the launch that started it on a mounted rig left its claim on the mount
    let claim = e.home.join(".local/state/kanibako/mounts/kanibako-app");
    fs::create_dir_all(claim.parent().unwrap()).unwrap();
    fs::write(&claim, "").unwrap();
    let r = e.run(&p, &["stop"]).ok();
    assert!(
        r.stdout.contains("Removed stopped container: kanibako-app"),
        "{r:?}"
    );
    assert_eq!(e.podman_log().matches("image unmount img").count(), 1);
    assert!(!claim.exists(), "the claim is spent with the release");
    // a second `stop` racing the first finds the container already gone: `rm -f`
    // still succeeds, but the claim is spent, and the mount (another box's now) stays
    fs::write(e.root_file("rm.gone"), "").unwrap();
    let r = e.run(&p, &["stop"]).ok();
    assert!(!r.stdout.contains("Removed"), "{r:?}");
    assert_eq!(
        e.podman_log().matches("image unmount img").count(),
        1,
        "{}",
        e.podman_log()
    );
}

#[test]
fn a_vault_that_is_a_link_is_never_mounted_or_written_through() {
    let (e, p) = env_with_claude();
    let victim = e.dir("victim");
    fs::create_dir_all(victim.join("rw")).unwrap();
    fs::create_dir_all(victim.join("ro")).unwrap();
    // a repository that ships `vault` as a link: create refuses to lay out through it
    std::os::unix::fs::symlink(&victim, p.join("vault")).unwrap();
    let r = e.run(&p, &["create"]).fails();
    assert!(r.stderr.contains("is `vault` a symbolic link?"), "{r:?}");
    assert!(!victim.join(".gitignore").exists());
    // a box made before the link was planted: the launch mounts neither vault dir
    fs::remove_file(p.join("vault")).unwrap();
    e.run(&p, &["create"]).ok();
    fs::remove_dir_all(p.join("vault/rw")).unwrap();
    std::os::unix::fs::symlink(victim.join("rw"), p.join("vault/rw")).unwrap();
    let r = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    assert!(r.stderr.contains("symbolic link; not mounted"), "{r:?}");
    assert!(!r.stdout.contains("share-rw"), "{r:?}");
    assert!(
        r.stdout.contains("/home/agent/share-ro"),
        "the real one still is: {r:?}"
    );
}

#[test]
fn named_shares_are_mounted_but_never_from_a_standalone_box_s_own_file() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let reference = e.dir("reference");
    e.run(
        &p,
        &[
            "box",
            "config",
            &format!("box.path.share_ro.ref={}:~/ref", reference.display()),
        ],
    )
    .ok();
    e.run(
        &p,
        &["box", "config", "box.path.share_rw.out=~/out-app:~/out"],
    )
    .ok();
    let r = e.run(&p, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!("-v {}:/home/agent/ref:ro", reference.display())),
        "{run}"
    );
    assert!(
        run.contains(&format!(
            "-v {}:/home/agent/out",
            e.home.join("out-app").display()
        )),
        "{run}"
    );
    assert!(
        e.home.join("out-app").is_dir(),
        "a read-write source is made: {r:?}"
    );
    // a standalone box's project.yaml is its own to write: shares there are not read
    let s = e.dir("p/solo");
    e.run(&s, &["create", "--standalone"]).ok();
    // (`box config` refuses to store it there; the box or a repository writes it itself)
    let file = s.join(".kanibako/project.yaml");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "box:\n  path:\n    share_rw.host: {}:~/host\n",
        e.home.display()
    ));
    fs::write(&file, text).unwrap();
    e.run(&s, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains("p/solo:/home/agent/workspace"),
        "the solo box's run: {run}"
    );
    assert!(!run.contains("/home/agent/host"), "{run}");
}

/// Issue 10, item 10: an image named by a file in the workspace (a standalone box's
/// settings, which a repository can ship) is never pulled without asking; with no
/// terminal the launch refuses and says how to pull it.
#[test]
fn an_image_a_workspace_file_names_is_not_pulled_without_asking() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create", "--standalone"]).ok();
    let file = p.join(".kanibako/project.yaml");
    let text = fs::read_to_string(&file).unwrap();
    let text = if text.contains("\nbox:\n") {
        text.replace("\nbox:\n", "\nbox:\n  image: attacker.invalid/evil:1\n")
    } else {
        format!("{text}box:\n  image: attacker.invalid/evil:1\n")
    };
    fs::write(&file, text).unwrap();
    fs::write(e.root_file("no.image"), "").unwrap();
    let r = e.run(&p, &["shell", "--", "true"]);
    let log = e.podman_log();
    assert!(
        !log.lines()
            .any(|l| l.contains(" pull ") && l.contains("attacker.invalid")),
        "pulled without asking: {log}\n{r:?}"
    );
    if log.contains("attacker.invalid") {
        assert!(
            r.stderr.contains("not pulling attacker.invalid/evil:1"),
            "{r:?}"
        );
        assert!(
            r.stderr.contains("hint: if you trust it, pull it yourself"),
            "{r:?}"
        );
        assert_ne!(r.code, 0);
    }
}

/// Issue 10 (low): on an engine other users share, `stop --all`, `ps -a` and `list` see
/// only this data directory's containers (by its `io.kanibako.data` label) and the Python
/// tool's unlabelled ones named exactly like a box registered here; every launch carries
/// that label.
#[test]
fn stop_all_and_ps_see_only_this_data_dirs_containers() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let q = e.dir("p/legacy");
    e.run(&q, &["create"]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    let id = kanibako::paths::data_id(&e.data());
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!("--label io.kanibako.data={id}")),
        "{run}"
    );
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-mine"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"","io.kanibako.hash":"aa","io.kanibako.data":"{id}"}}}},
        {{"Names":["kanibako-theirs"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"","io.kanibako.hash":"bb","io.kanibako.data":"0123456789ab"}}}},
        {{"Names":["kanibako-app"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"app","io.kanibako.hash":"{hash}","io.kanibako.data":"0123456789ab"}}}},
        {{"Names":["kanibako-legacy"],"State":"running","Image":"img","Labels":null}},
        {{"Names":["kanibako-other"],"State":"running","Image":"img","Labels":null}}]"#,
        hash = kanibako::boxes::project_hash(&p),
    ));
    let status = |out: &str, name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
    };
    for args in [&["ps", "-a"][..], &["list"]] {
        let r = e.run(&p, args).ok();
        assert!(!r.stdout.contains("theirs"), "{r:?}");
        assert_eq!(
            status(&r.stdout, "app").as_deref(),
            Some("stopped"),
            "another data dir's container of the same path is not app's: {r:?}"
        );
        assert_eq!(
            status(&r.stdout, "legacy").as_deref(),
            Some("active"),
            "{r:?}"
        );
    }
    let r = e.run(&p, &["ps", "-a"]).ok();
    assert!(r.stdout.contains("(kanibako-mine)"), "{r:?}");
    let r = e.run(&p, &["stop", "--all", "--force"]).ok();
    assert!(r.stdout.contains("Stopped kanibako-mine"), "{r:?}");
    assert!(r.stdout.contains("Stopped kanibako-legacy"), "{r:?}");
    assert!(r.stdout.contains("Stopped 2 container(s)"), "{r:?}");
    let log = e.podman_log();
    assert!(
        !log.contains("stop -t 10 kanibako-theirs")
            && !log.contains("kanibako-other")
            && !log.contains("stop -t 10 kanibako-app\n"),
        "{log}"
    );
}

/// `shell --persistent` runs the shell in the box's tmux session (detached, then
/// attached), as upstream; `shell` alone stays ephemeral.
#[test]
fn shell_persistent_runs_in_tmux_and_shell_alone_does_not() {
    let e = Env::new();
    e.fake_podman();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let r = e
        .run(&p, &["shell", "--persistent", "--dry-run", "--", "ls"])
        .ok();
    assert!(
        r.stdout.contains(" run ") && r.stdout.contains(" -dt "),
        "{r:?}"
    );
    assert!(r.stdout.contains(" new-session -s kanibako "), "{r:?}");
    assert!(r.stdout.contains("tmux attach -t kanibako"), "{r:?}");
    let r = e.run(&p, &["shell", "--dry-run", "--", "ls"]).ok();
    assert!(!r.stdout.contains("tmux"), "{r:?}");
    let r = e.run(&p, &["shell", "--persistent", "--ephemeral"]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// `text` without its `--ulimit VALUE` pairs.
fn strip_ulimits(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut out = Vec::new();
            let mut words = line.split(' ');
            while let Some(w) = words.next() {
                if w == "--ulimit" {
                    words.next();
                } else {
                    out.push(w);
                }
            }
            out.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 12: a launch mounts the director's hub directory read-only at /run/kanibako
/// and only its own mailbox of `$DATA/comms`; the hub it starts beside an ephemeral
/// run that lasts past the hub's delay ends with it (its runtime directory goes), and a
/// shorter run starts none. `--no-helpers` and
/// `allow_helpers: false` mean no hub and no mount.
#[test]
fn a_launch_mounts_its_hub_and_only_its_own_mailbox() {
    let (mut e, p) = env_with_claude();
    let xdg = e.dir("xdg");
    e.set("XDG_RUNTIME_DIR", &xdg);
    e.run(&p, &["create"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    let rt = xdg.join("kanibako/b").join(&hash[..16]);
    e.run(&p, &["shell", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains(&format!(
            "-v {}:/run/kanibako:ro,nosuid,nodev ",
            rt.join("m/director").display()
        )),
        "{run}"
    );
    let data = e.data();
    assert!(
        run.contains(&format!(
            "-v {}:/home/agent/comms/mailbox/app:z,nosuid,nodev ",
            data.join("comms/mailbox/app").display()
        )),
        "{run}"
    );
    assert!(
        !run.contains(&format!("{}:", data.join("comms").display())),
        "never the whole comms directory: {run}"
    );
    assert!(
        data.join("comms/broadcast.log").is_file(),
        "the Python layout is kept"
    );
    let hub_log = e
        .home
        .join(format!(".local/state/kanibako/hub/{}.log", &hash[..16]));
    // a session shorter than the hub's delay started none, and left nothing
    assert!(
        !hub_log.exists(),
        "{}",
        fs::read_to_string(&hub_log).unwrap()
    );
    assert!(!rt.exists(), "nothing of a hub left");
    // a longer one: the hub ran (its log says so) and ended with the session
    fs::write(e.root_file("run.sleep"), "2").unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    fs::remove_file(e.root_file("run.sleep")).unwrap();
    let log = fs::read_to_string(&hub_log).unwrap_or_default();
    assert!(
        log.contains("\"stop_requested\"") && log.contains("\"hub_stopped\""),
        "{log}"
    );
    assert!(
        !rt.join("hub.json").exists(),
        "the hub took its runtime directory"
    );

    // helpers off: no hub, no mount
    fs::remove_file(e.root_file("podman.log")).unwrap();
    e.run(&p, &["shell", "--no-helpers", "--", "true"]).ok();
    let run = e.last_call("run").unwrap();
    assert!(!run.contains("/run/kanibako"), "{run}");
    assert!(
        !e.podman_log().contains("role=helper"),
        "{}",
        e.podman_log()
    );
    e.run(&p, &["box", "config", "allow_helpers=false"]).ok();
    let r = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    assert!(!r.stdout.contains("/run/kanibako"), "{r:?}");
    e.run(&p, &["box", "config", "allow_helpers=true"]).ok();
    let r = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    assert!(r.stdout.contains(":/run/kanibako:ro"), "{r:?}");
    assert!(!rt.join("m").exists(), "a dry run makes nothing");
}

/// Issue 12: a box's hub (as a persistent session leaves it running); `stop` ends it
/// (and so its helpers) before the box's container, and looks for leftover helpers of
/// this box only. `ps` and `box info` show a box's helpers and hub from the one
/// listing; a helper is never taken for its box's container.
#[test]
fn stop_ends_the_hub_and_ps_and_info_show_the_helpers() {
    use std::os::unix::fs::PermissionsExt;
    let (mut e, p) = env_with_claude();
    let xdg = e.dir("xdg");
    e.set("XDG_RUNTIME_DIR", &xdg);
    e.run(&p, &["create"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    let rt = xdg.join("kanibako/b").join(&hash[..16]);
    fs::create_dir_all(&rt).unwrap();
    for d in [xdg.join("kanibako"), xdg.join("kanibako/b"), rt.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let cfg = serde_json::json!({
        "box_hash": hash, "box_name": "app", "director": "kanibako-app",
        "runtime_dir": rt, "message_log": e.root_file("messages.jsonl"),
        "hub_log": e.root_file("hub.log"),
        "engine": {"program": e.bin.join("podman"), "kind": "podman"},
    });
    let cfg_path = rt.join("hub.json");
    fs::write(&cfg_path, cfg.to_string()).unwrap();
    fs::set_permissions(&cfg_path, fs::Permissions::from_mode(0o600)).unwrap();
    e.run(&p, &["_hub", "--config", cfg_path.to_str().unwrap()])
        .ok();
    let lock = fs::read_to_string(rt.join("hub.lock")).unwrap();
    assert!(lock.contains("pid "), "the hub outlives the launch: {lock}");
    let pid: i32 = lock
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let id = kanibako::paths::data_id(&e.data());
    let box_labels =
        format!(r#""io.kanibako.box":"app","io.kanibako.hash":"{hash}","io.kanibako.data":"{id}""#);
    e.set_ps(&format!(
        r#"[{{"Names":["kanibako-app-helper-2"],"State":"running","Image":"img","Labels":{{{box_labels},"io.kanibako.role":"helper","io.kanibako.helper":"2","io.kanibako.model":"sonnet"}}}},
        {{"Names":["kanibako-app"],"State":"running","Image":"img","Labels":{{{box_labels}}}}},
        {{"Names":["kanibako-other-helper-1"],"State":"running","Image":"img","Labels":{{"io.kanibako.box":"other","io.kanibako.hash":"bb","io.kanibako.data":"{id}","io.kanibako.role":"helper","io.kanibako.helper":"1"}}}}]"#
    ));
    let r = e.run(&p, &["ps"]).ok();
    assert!(
        r.stdout.contains("(kanibako-app)") || r.stdout.contains("app "),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains(&format!("helpers 2; hub running (pid {pid})")),
        "{r:?}"
    );
    assert!(
        !r.stdout.contains("kanibako-other-helper-1"),
        "a helper is no box: {r:?}"
    );
    let v = e.run(&p, &["ps", "--json"]).ok().json();
    let app = v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "app")
        .unwrap();
    assert_eq!(app["container"], "kanibako-app", "{v}");
    assert_eq!(app["team"]["helpers"], serde_json::json!([2]), "{v}");
    assert_eq!(app["team"]["hub"], "running", "{v}");
    assert_eq!(app["team"]["hub_pid"], pid, "{v}");
    let r = e.run(&p, &["box", "info"]).ok();
    assert!(
        r.stdout.contains("Helpers:      2 (running, sonnet)"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains(&format!("Hub:          hub running (pid {pid})")),
        "{r:?}"
    );
    assert!(r.stdout.contains("running (kanibako-app:"), "{r:?}");

    fs::remove_file(e.root_file("podman.log")).unwrap();
    let r = e.run(&p, &["stop"]).ok();
    assert_eq!(
        r.stdout.trim(),
        "Stopped kanibako-app",
        "as upstream: {r:?}"
    );
    assert!(!rt.exists(), "the hub took its runtime directory");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    let log = e.podman_log();
    assert!(!log.contains("stop -t 10 kanibako-app-helper"), "{log}");
    assert!(!log.contains("kanibako-other"), "{log}");
    // with no hub, `stop` looks for this box's helpers itself, by label
    let r = e.run(&p, &["stop"]).ok();
    assert!(!r.stdout.contains("helper"), "{r:?}");
    assert!(
        e.podman_log().contains(&format!(
            "ps -a -q --no-trunc --filter label=io.kanibako.hash={hash} --filter label=io.kanibako.role=helper"
        )),
        "{}",
        e.podman_log()
    );
}

/// Issue 17: on a remote engine (`CONTAINER_HOST=ssh://…`) the project is mounted from
/// `box.remote_path`, this binary from its copy in the box's home, every source is
/// checked by one `create` before the run, and what the engine's host cannot have is
/// refused in one line.
#[test]
fn a_remote_engine_maps_the_project_and_refuses_what_it_cannot_have() {
    let (mut e, p) = env_with_claude();
    e.set("CONTAINER_HOST", "ssh://ana@build/run/podman/podman.sock");
    e.run(&p, &["create"]).ok();
    e.run(&p, &["box", "config", "box.remote_path=/srv/app"])
        .ok();
    let r = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    let run = r
        .stdout
        .lines()
        .find(|l| l.contains(" run "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(run.contains("-v /srv/app:/home/agent/workspace:"), "{run}");
    assert!(
        run.contains("-v /srv/app/vault/ro:/home/agent/share-ro:"),
        "{run}"
    );
    assert!(!run.contains(&format!("{}:", p.display())), "{run}");
    assert!(
        run.contains(".kanibako-remote/") && run.contains(":/home/agent/.local/bin/kanibako:"),
        "{run}"
    );
    assert!(
        !run.contains("/run/kanibako"),
        "no hub on a remote engine: {run}"
    );

    // the run: one create that mounts every source, then the run, and the copy made
    e.run(&p, &["shell", "--", "true"]).ok();
    let log = e.podman_log();
    let create = log
        .lines()
        .position(|l| l.starts_with("create "))
        .unwrap_or_else(|| panic!("{log}"));
    let run_at = log.lines().position(|l| l.starts_with("run ")).unwrap();
    assert!(create < run_at, "{log}");
    let create_line = log.lines().nth(create).unwrap();
    assert!(
        create_line.contains("--mount type=bind,src=/srv/app,dst=/kanibako-check/"),
        "{create_line}"
    );
    let home = e.data().join("boxes/app/shell/.kanibako-remote");
    assert_eq!(
        fs::read_dir(&home).unwrap().count(),
        2,
        "the copy and its stamp"
    );

    // refused: a relative remote path, and allowlist (its proxy is on this host)
    e.run(&p, &["box", "config", "box.remote_path=srv/app"])
        .ok();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    let error = |r: &Run| {
        r.stderr
            .lines()
            .find(|l| l.starts_with("Error: "))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        error(&r).starts_with("Error: box.remote_path srv/app"),
        "{r:?}"
    );
    assert!(r.stderr.contains("not an absolute path"), "{r:?}");
    e.run(&p, &["box", "config", "box.remote_path=/srv/app"])
        .ok();
    e.run(&p, &["box", "config", "box.network=allowlist"]).ok();
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    let first = error(&r);
    assert!(
        first.contains("allowlist") && first.contains("CONTAINER_HOST=ssh://ana@build"),
        "{r:?}"
    );
}
