//! Against a real engine: what `list`/`ps` see of running containers. Skips where no
//! engine is set up; fails instead when KANIBAKO_TEST_REQUIRE_ENGINE=1 (CI).
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`; what
// they print (a skip) is for the test log, not a user.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{Env, engine_required};

const TEST_LABEL: &str = "io.kanibako.test";

struct Engine {
    program: String,
    image: String,
}

/// A fake agent's answer to the host-side `claude auth status --json` check.
/// A conversation file where Claude Code keeps the workspace's conversations.
const SEED_CONVERSATION: &str = "mkdir -p ~/.claude/projects/-home-agent-workspace && echo '{}' > ~/.claude/projects/-home-agent-workspace/seed.jsonl";
const FAKE_AUTH: &str = "[ \"$1\" = auth ] && { echo '{\"loggedIn\": true}'; exit 0; }\n";

fn engine(program: &str) -> Option<Engine> {
    let image = std::env::var("KANIBAKO_TEST_IMAGE").ok();
    let works = image.as_ref().is_some_and(|img| {
        Command::new(program)
            .args(["image", "inspect", img])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if works {
        return Some(Engine {
            program: program.into(),
            image: image.unwrap(),
        });
    }
    assert!(
        !engine_required(),
        "{program} with the test rig (KANIBAKO_TEST_IMAGE) is required here; run scripts/prepare-engines"
    );
    eprintln!("skipped: no {program} with KANIBAKO_TEST_IMAGE");
    None
}

/// Containers this test started, removed on drop even when an assertion fails.
struct Containers<'a> {
    engine: &'a Engine,
    names: Vec<String>,
}

impl Containers<'_> {
    fn run(&mut self, name: &str, labels: &[(&str, &str)]) {
        let mut c = Command::new(&self.engine.program);
        c.args(["run", "-d", "--init", "--network=none", "--name", name]);
        c.args(["--label", &format!("{TEST_LABEL}=1")]);
        for (k, v) in labels {
            c.args(["--label", &format!("{k}={v}")]);
        }
        c.args([&self.engine.image, "sleep", "300"]);
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        self.names.push(name.into());
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            // docker's `rm -f` kills at once; podman's needs `-t 0` not to wait 10 s
            let mut c = Command::new(&self.engine.program);
            c.args(["rm", "-f"]);
            if self.engine.program == "podman" {
                c.args(["-t", "0"]);
            }
            let _ = c.arg(n).output();
        }
    }
}

fn list_sees_labelled_and_legacy_containers(program: &str) {
    let Some(engine) = engine(program) else {
        return;
    };
    let mut e = Env::new();
    e.set("KANIBAKO_DOCKER_CMD", which(program));
    let tag = format!("{}{}", std::process::id(), program.len());
    let (a, b, c) = (format!("ea{tag}"), format!("eb{tag}"), format!("ec{tag}"));
    let dirs: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|n| e.dir(&format!("p/{n}")))
        .collect();
    for d in &dirs {
        e.run(d, &["create"]).ok();
    }
    let mut running = Containers {
        engine: &engine,
        names: Vec::new(),
    };
    let hash = kanibako::boxes::project_hash(&dirs[0]);
    running.run(
        &format!("kanibako-{a}"),
        &[
            ("io.kanibako.box", &a),
            ("io.kanibako.hash", &hash),
            ("io.kanibako.version", "test"),
        ],
    );
    // started by the Python tool: the box's exact container name, no labels
    running.run(&format!("kanibako-{b}"), &[]);
    // unrelated containers whose names merely look like a box's
    running.run(&format!("kanibako-{c}-db"), &[]);
    running.run(&format!("other-{c}"), &[]);

    let json = e.run(&e.home, &["list", "--json"]).ok().json();
    let status = |n: &str| {
        let row = json["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone();
        (
            row["status"].as_str().unwrap().to_owned(),
            row["legacy"].as_bool().unwrap(),
        )
    };
    assert_eq!(status(&a), ("active".into(), false), "{json:#}");
    assert_eq!(status(&b), ("active".into(), true), "{json:#}");
    assert_eq!(status(&c), ("stopped".into(), false), "{json:#}");
    let ps = e.run(&e.home, &["ps", "-q"]).ok().stdout;
    let mine: Vec<&str> = ps.lines().filter(|l| l.ends_with(&tag)).collect();
    assert_eq!(mine, [a.as_str(), b.as_str()], "{ps}");
    let table = e.run(&e.home, &["ps"]).ok().stdout;
    assert!(
        table.contains(&format!("{b:<18} active (legacy) ")),
        "{table}"
    );
    drop(running);
    let ps = e.run(&e.home, &["ps", "-q"]).ok().stdout;
    assert!(!ps.lines().any(|l| l.ends_with(&tag)), "{ps}");
}

fn which(program: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn podman_list_and_ps() {
    list_sees_labelled_and_legacy_containers("podman");
}

#[test]
fn docker_list_and_ps() {
    if std::env::var("DOCKER_HOST").is_err() && !engine_required() {
        eprintln!("skipped: no private dockerd (DOCKER_HOST unset)");
        return;
    }
    list_sees_labelled_and_legacy_containers("docker");
}

/// The three ways a box can run on these machines.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    /// podman as root.
    RootfulPodman,
    /// docker as an unprivileged member of its group (as root docker cannot map the
    /// box user; see the README).
    Docker,
    /// podman as an unprivileged user: keep-id, no network.
    RootlessPodman,
}

/// An environment for launching boxes in `flavour`, or `None` (skip) where it is not set
/// up — which fails instead when KANIBAKO_TEST_REQUIRE_ENGINE=1.
fn session_env(flavour: Flavour) -> Option<(Env, String)> {
    let skip = |why: &str| {
        assert!(!engine_required(), "{flavour:?} is required here: {why}");
        eprintln!("skipped {flavour:?}: {why}");
        None
    };
    let program = match flavour {
        Flavour::Docker => "docker",
        _ => "podman",
    };
    if flavour == Flavour::Docker && std::env::var("DOCKER_HOST").is_err() {
        return skip("no private dockerd (DOCKER_HOST; scripts/prepare-engines --docker)");
    }
    let image = match std::env::var("KANIBAKO_TEST_IMAGE") {
        Ok(i) => i,
        Err(_) => return skip("no KANIBAKO_TEST_IMAGE (scripts/prepare-engines)"),
    };
    let mut e = match flavour {
        Flavour::RootfulPodman => {
            engine(program)?;
            Env::with_system_path()
        }
        Flavour::Docker | Flavour::RootlessPodman => {
            engine(program)?;
            let Ok(user) = std::env::var("KANIBAKO_TEST_USER") else {
                return skip("no KANIBAKO_TEST_USER (scripts/prepare-engines --test-user)");
            };
            Env::as_user(&user)
        }
    };
    if flavour == Flavour::RootlessPodman {
        let (Ok(conf), Ok(storage)) = (
            std::env::var("KANIBAKO_TEST_ROOTLESS_CONF"),
            std::env::var("KANIBAKO_TEST_ROOTLESS_STORAGE"),
        ) else {
            return skip(
                "no rootless podman (scripts/prepare-engines --test-user --rootless-deps)",
            );
        };
        e.set("CONTAINERS_CONF", conf);
        e.set("CONTAINERS_STORAGE_CONF", storage);
    }
    e.set("KANIBAKO_DOCKER_CMD", which(program));
    Some((e, image))
}

fn tag(flavour: Flavour) -> String {
    format!(
        "{}{}",
        std::process::id(),
        format!("{flavour:?}").to_lowercase()
    )
}

fn sessions(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let p = e.dir(&format!("p/s{tag}"));
    e.run(&p, &["create", "-i", &image]).ok();

    // the agent is never root in the box (uid 1000 where podman maps the user, the
    // user's own uid under docker), and its home persists between runs
    let r = e
        .run(
            &p,
            &["shell", "--", "sh", "-c", "echo persisted > ~/note; id -u"],
        )
        .ok();
    let want = if flavour == Flavour::Docker {
        e.uid()
    } else {
        1000
    };
    assert_eq!(r.stdout.trim(), want.to_string(), "{r:?}");
    let r = e.run(&p, &["shell", "--", "cat", "/home/agent/note"]).ok();
    assert_eq!(r.stdout, "persisted\n");

    // what the box writes in the workspace belongs to the invoking user
    e.run(
        &p,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "echo made > /home/agent/workspace/by-box",
        ],
    )
    .ok();
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(p.join("by-box")).unwrap();
    assert_eq!(meta.uid(), e.uid(), "owner of a file the box wrote");

    // share-ro is read-only, and its copy inside the workspace (`vault/ro`) is masked;
    // the rest of the project's `vault/` stays as it is
    std::fs::write(p.join("vault/ro/in.txt"), "host data").unwrap();
    e.run(&p, &["shell", "--", "sh", "-c", "cat ~/share-ro/in.txt && ! touch ~/share-ro/x 2>/dev/null && ! touch ~/workspace/vault/ro/x 2>/dev/null && [ -z \"$(ls ~/workspace/vault/ro)\" ] && [ -d ~/workspace/vault/rw ]"])
        .ok();
    e.run(&p, &["shell", "--", "sh", "-c", "echo rw > ~/share-rw/out"])
        .ok();
    assert_eq!(
        std::fs::read_to_string(p.join("vault/rw/out")).unwrap(),
        "rw\n"
    );

    // arguments and exit codes pass through
    let r = e
        .run(&p, &["shell", "--", "printf", "%s|", "a b", "c;d"])
        .ok();
    assert_eq!(r.stdout, "a b|c;d|");
    assert_eq!(e.run(&p, &["shell", "--", "sh", "-c", "exit 7"]).code, 7);
    assert_eq!(
        e.run(&p, &["shell", "--", "sh", "-c", "kill -TERM $$"])
            .code,
        143
    );
    let r = e.run(&p, &["shell", "--", "no-such-command-here"]);
    assert_eq!(r.code, 127, "{r:?}");
    assert!(r.stderr.contains("sh -c"), "{r:?}");

    // -e reaches the box and never shows on the engine's command line; given as a bare
    // name (value from kanibako's environment) it is on no command line at all
    let secret = format!("hunter2-{tag}");
    let quiet = format!("quiet-{tag}");
    let mut cmd = e.cmd(
        &p,
        &[
            "shell",
            "-e",
            &format!("KB_SECRET={secret}"),
            "-e",
            "KB_QUIET",
            "--",
            "sh",
            "-c",
            "echo $KB_SECRET $KB_QUIET; sleep 2",
        ],
    );
    let child = cmd
        .env("KB_QUIET", &quiet)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut engine_seen = false;
    for _ in 0..15 {
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        let ps = String::from_utf8_lossy(&ps.stdout);
        for line in ps.lines() {
            assert!(!line.contains(&quiet), "a value on a command line: {line}");
            if line.contains(" run ") && line.contains(&format!("kanibako-s{tag}")) {
                engine_seen = true;
                assert!(
                    !line.contains(&secret),
                    "a value on the engine's command line: {line}"
                );
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{secret} {quiet}")
    );
    assert!(engine_seen, "the engine process was looked at");

    // links the box plants in its home steer nothing on the host
    let victim_dir = e.dir(&format!("victim{tag}"));
    std::fs::write(victim_dir.join("keep"), "precious").unwrap();
    let victim_file = victim_dir.join("file");
    std::fs::write(&victim_file, "host file\n").unwrap();
    e.chown_all(&victim_dir);
    let plant = format!(
        "rm -f ~/.bashrc && ln -s {f} ~/.bashrc && mkdir -p ~/.claude && ln -s {d} ~/.claude/telemetry && ln -s {d} ~/.claude/debug",
        f = victim_file.display(),
        d = victim_dir.display()
    );
    e.run(&p, &["shell", "--", "sh", "-c", &plant]).ok();
    e.run(&p, &["shell", "--", "true"]).ok();
    assert_eq!(
        std::fs::read_to_string(&victim_file).unwrap(),
        "host file\n"
    );
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 2);

    // two agent sessions on one box exclude each other
    e.script(
        "claude",
        &format!("{FAKE_AUTH}echo \"$@\" > /home/agent/workspace/agent-args; sleep 3\n"),
    );
    // the agent kept a conversation for this workspace, so `start` continues it
    e.run(&p, &["shell", "--", "sh", "-c", SEED_CONVERSATION])
        .ok();
    let mut first = e.cmd(&p, &["start", "--ephemeral"]).spawn().unwrap();
    let mut seen = false;
    for _ in 0..50 {
        if e.run(&p, &["ps", "-q"])
            .stdout
            .lines()
            .any(|l| l == format!("s{tag}"))
        {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen, "the first session shows in ps");
    let r = e.run(&p, &["start", "--ephemeral"]).fails();
    assert!(
        r.stderr
            .contains("Another Kanibako session is already running"),
        "{r:?}"
    );
    assert!(first.wait().unwrap().success());
    let args = std::fs::read_to_string(p.join("agent-args")).unwrap();
    assert_eq!(
        args.trim(),
        "--dangerously-skip-permissions --continue --model opus"
    );
}

/// A private tmux server standing in for the user's terminal.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn new(tag: &str) -> Self {
        Self {
            socket: format!("kbt-{tag}"),
        }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `line` in a new window named `name` (the first call starts the server).
    fn open(&self, name: &str, line: &str) {
        let wrapped = format!("{line}; echo EXIT-{name}=$?; sleep 120");
        let has = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("has-session")
            .output()
            .unwrap();
        if has.status.success() {
            self.tmux(&["new-window", "-n", name, &wrapped]);
        } else {
            self.tmux(&[
                "new-session",
                "-d",
                "-s",
                "t",
                "-n",
                name,
                "-x",
                "160",
                "-y",
                "40",
                &wrapped,
            ]);
        }
    }

    fn screen(&self, name: &str) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &format!("t:{name}")])
    }

    fn wait_for(&self, name: &str, text: &str) -> String {
        // Generous: a loaded CI machine may take a while to start a container.
        for _ in 0..600 {
            let s = self.screen(name);
            if s.contains(text) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "`{text}` never appeared in window {name}:\n{}",
            self.screen(name)
        );
    }

    fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t"];
        let target = format!("t:{name}");
        args.push(&target);
        args.extend_from_slice(keys);
        self.tmux(&args);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn persistent(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("q{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    // The host's login (with a key only the host has); the agent in the box renews the
    // token as soon as it starts.
    let host_creds = e.home.join(".claude/.credentials.json");
    std::fs::create_dir_all(host_creds.parent().unwrap()).unwrap();
    std::fs::write(
        &host_creds,
        r#"{"claudeAiOauth": {"accessToken": "host", "expiresAt": 1700000000000}, "hostOnly": 1}"#,
    )
    .unwrap();
    std::fs::set_permissions(&host_creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    e.chown_all(&e.home.join(".claude"));
    // a refresh of the host's token: an access token's lifetime ahead
    let renewed_expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 8 * 3600 * 1000;
    e.script(
        "claude",
        &format!(
            "{FAKE_AUTH}printf '%s' '{{\"claudeAiOauth\": {{\"accessToken\": \"renewed\", \"expiresAt\": {renewed_expiry}}}}}' > ~/.claude/.credentials.json\necho \"agent-ready $*\"; exec sleep 300\n"
        ),
    );
    let term = Terminal::new(&tag);

    // start attaches to a tmux session in the box; a detach leaves it running
    // the agent kept a conversation for this workspace, so `start` continues it
    e.run(&p, &["shell", "--", "sh", "-c", SEED_CONVERSATION])
        .ok();
    term.open("one", &e.shell_line(&p, &["start"]));
    term.wait_for(
        "one",
        "agent-ready --dangerously-skip-permissions --continue --model opus",
    );
    term.keys("one", &["typed-into-the-session"]);
    term.wait_for("one", "typed-into-the-session");
    term.keys("one", &["C-b", "d"]);
    term.wait_for("one", "EXIT-one=0");
    // the detach brought the renewed token home: the host's keys and mode intact
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&host_creds).unwrap()).unwrap();
    assert_eq!(host["claudeAiOauth"]["accessToken"], "renewed", "{host}");
    assert_eq!(host["hostOnly"], 1, "{host}");
    let box_creds = e
        .data()
        .join(format!("boxes/{name}/shell/.claude/.credentials.json"));
    for f in [&host_creds, &box_creds] {
        let m = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{}", f.display());
    }
    let ps = e.run(&p, &["ps", "-q"]).ok().stdout;
    assert!(
        ps.lines().any(|l| l == name),
        "still running after the detach: {ps}"
    );

    // a second start is back in the same session
    term.open("two", &e.shell_line(&p, &["start"]));
    term.wait_for("two", "typed-into-the-session");

    // stop ends it, and ps no longer shows it
    let r = e.run(&p, &["stop"]).ok();
    assert_eq!(r.stdout.trim(), format!("Stopped kanibako-{name}"));
    term.wait_for("two", "EXIT-two=");
    let ps = e.run(&p, &["ps", "-q"]).ok().stdout;
    assert!(!ps.lines().any(|l| l == name), "{ps}");

    // a stopped leftover container is replaced by a fresh session
    term.open("three", &e.shell_line(&p, &["start"]));
    term.wait_for("three", "agent-ready");
    let engine = which(if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    });
    let out = e
        .program_cmd(
            Path::new(&engine),
            &p,
            &["stop", "-t", "0", &format!("kanibako-{name}")],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    term.wait_for("three", "EXIT-three=");
    term.open("four", &e.shell_line(&p, &["start"]));
    term.wait_for("four", "agent-ready");
    e.run(&p, &["stop"]).ok();

    // an agent that finds no conversation to continue gets one retry as a new session
    let q = e.dir(&format!("p/r{tag}"));
    e.run(&q, &["create", "-i", &image]).ok();
    e.script(
        "claude",
        &format!("{FAKE_AUTH}case \" $* \" in *\" --continue \"*) echo 'No conversation found with session ID: x'; exit 1 ;; esac\necho \"agent-ready $*\"; exec sleep 300\n"),
    );
    term.open("five", &e.shell_line(&q, &["start"]));
    term.wait_for(
        "five",
        "agent-ready --dangerously-skip-permissions --model opus",
    );
    // the retried session is known to the next command (its marker is written again),
    // so a `shell` joins it instead of colliding with its name
    let r = e.run(&q, &["shell", "--", "echo", "joined"]).ok();
    assert_eq!(r.stdout, "joined\n", "{r:?}");
    e.run(&q, &["stop"]).ok();
}

/// tweakcc enabled for the agent: the first launch patches in a throw-away container,
/// the second reuses the cached binary, which outlives both sessions.
fn tweakcc(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let p = e.dir(&format!("p/tw{tag}"));
    e.run(&p, &["create", "-i", &image]).ok();
    // tweakcc runs on the system level's rig, never on a box's
    e.run(&p, &["system", "config", &format!("box.image={image}")])
        .ok();
    // The fake agent is a Bun executable whose native part is a shell script (the test
    // rig's stand-in tweakcc edits the script, which leaves the module table valid).
    let script = format!("#!/bin/sh\n{FAKE_AUTH}echo \"agent says UNPATCHED\"\nexit 0\n");
    let binary = kanibako::tweakcc::bun_sea::build(
        script.as_bytes(),
        &[("/$bunfs/root/cli.js", b"cli VERSION:\"1.0.0\"")],
    );
    let claude = e.bin.join("claude");
    std::fs::write(&claude, binary).unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    let crab = e.data().join("crabs/claude.yaml");
    std::fs::write(
        &crab,
        "crab:\n  name: Claude Code\n  shell: standard\n  run_args: []\ntweakcc:\n  enabled: true\n  settings:\n    misc:\n      hideStartupBanner: true\n",
    )
    .unwrap();
    e.chown_all(&e.home);

    // two boxes launching at once share one patch run
    let q = e.dir(&format!("p/tx{tag}"));
    e.run(&q, &["create", "-i", &image]).ok();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| e.run(&p, &["start", "--ephemeral"]));
        let b = s.spawn(|| e.run(&q, &["start", "--ephemeral"]));
        (a.join().unwrap().ok(), b.join().unwrap().ok())
    });
    let patches = format!("{}{}", a.stderr, b.stderr)
        .matches("Patching the agent with tweakcc")
        .count();
    assert_eq!(patches, 1, "{a:?}\n{b:?}");
    for first in [&a, &b] {
        assert!(first.stdout.contains("agent says PATCHED-OK"), "{first:?}");
    }
    let second = e.run(&p, &["start", "--ephemeral"]).ok();
    assert!(
        !second.stderr.contains("Patching"),
        "one patch run, not two: {second:?}"
    );
    assert!(
        second.stdout.contains("agent says PATCHED-OK"),
        "{second:?}"
    );
    let cached: Vec<String> = std::fs::read_dir(e.home.join(".cache/kanibako/tweakcc"))
        .unwrap()
        .filter_map(|d| d.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 16 && !n.starts_with('.'))
        .collect();
    assert_eq!(
        cached.len(),
        1,
        "the patched binary outlives the sessions: {cached:?}"
    );

    // a patch that fails leaves the agent runnable, unpatched, with a warning
    std::fs::write(
        &crab,
        "crab:\n  name: Claude Code\ntweakcc:\n  enabled: true\n  config: ~/missing.json\n",
    )
    .unwrap();
    let r = e.run(&p, &["start", "--ephemeral"]).ok();
    assert!(
        r.stderr
            .contains("tweakcc patching failed, using unpatched binary"),
        "{r:?}"
    );
    assert!(r.stdout.contains("agent says UNPATCHED"), "{r:?}");
}

#[test]
fn podman_tweakcc_cache() {
    tweakcc(Flavour::RootfulPodman);
}

#[test]
fn docker_tweakcc_cache() {
    tweakcc(Flavour::Docker);
}

#[test]
fn podman_sessions() {
    sessions(Flavour::RootfulPodman);
}

#[test]
fn docker_sessions() {
    sessions(Flavour::Docker);
}

#[test]
fn rootless_podman_sessions() {
    sessions(Flavour::RootlessPodman);
}

#[test]
fn podman_persistent_sessions() {
    persistent(Flavour::RootfulPodman);
}

#[test]
fn docker_persistent_sessions() {
    persistent(Flavour::Docker);
}

#[test]
fn rootless_podman_persistent_sessions() {
    persistent(Flavour::RootlessPodman);
}

/// Issue 10, item 5: a box leaves no set-id file or device node that works on the host,
/// holds no capability, and a setuid binary gains it nothing.
fn no_host_root_artefacts(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let p = e.dir(&format!("p/id{tag}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--",
                "sh",
                "-c",
                "cd ~/workspace; cp /bin/sh x; chmod 4755 x; chmod g+s x; cp /bin/sh y; \
                 chmod u+s y; [ -u y ] && ./y -c 'id -u' > y-ran; \
                 mknod dev b 8 0 && echo mknod-worked; mknod ~/dev2 c 1 3 && echo mknod-worked; \
                 grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status",
            ],
        )
        .ok();
    assert!(!r.stdout.contains("mknod-worked"), "{r:?}");
    assert!(r.stdout.contains("CapBnd:\t0000000000000000"), "{r:?}");
    assert!(r.stdout.contains("NoNewPrivs:\t1"), "{r:?}");
    assert!(!p.join("dev").exists());
    use std::os::unix::fs::MetadataExt;
    for f in ["x", "y"] {
        let m = std::fs::metadata(p.join(f)).unwrap();
        // A set-id bit is harmless only on a file of the invoking user who is not root
        // (it grants nothing they do not have).
        let setid = m.mode() & 0o6000 != 0;
        assert!(
            !setid || (m.uid() != 0 && m.uid() == e.uid()),
            "{f}: mode {:o}, owner {} ({r:?})",
            m.mode(),
            m.uid()
        );
    }
    if let Ok(ran) = std::fs::read_to_string(p.join("y-ran")) {
        assert_eq!(
            ran.trim(),
            if flavour == Flavour::Docker {
                e.uid()
            } else {
                1000
            }
            .to_string()
        );
    }
}

/// Issue 18: an npm-installed agent (a node script) on a rig without node is refused
/// before the launch, with what the rig needs.
fn node_script_agent_on_a_rig_without_node(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let p = e.dir(&format!("p/node{tag}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let agent = e.bin.join("claude");
    std::fs::write(&agent, "#!/usr/bin/env node\nconsole.log('agent')\n").unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = e.run(&p, &["start", "--ephemeral"]).fails();
    assert!(
        r.stderr.contains("is a node script, and the rig") && r.stderr.contains("has no node"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint:"), "{r:?}");
}

#[test]
fn podman_node_script_agent_on_a_rig_without_node() {
    node_script_agent_on_a_rig_without_node(Flavour::RootfulPodman);
}

#[test]
fn docker_node_script_agent_on_a_rig_without_node() {
    node_script_agent_on_a_rig_without_node(Flavour::Docker);
}

#[test]
fn podman_box_leaves_no_host_root_artefacts() {
    no_host_root_artefacts(Flavour::RootfulPodman);
}

#[test]
fn docker_box_leaves_no_host_root_artefacts() {
    no_host_root_artefacts(Flavour::Docker);
}

#[test]
fn rootless_podman_box_leaves_no_host_root_artefacts() {
    no_host_root_artefacts(Flavour::RootlessPodman);
}

#[test]
fn workset_env_reaches_the_box_and_the_box_overrides_it() {
    let Some((e, image)) = session_env(Flavour::RootfulPodman) else {
        return;
    };
    let tag = tag(Flavour::RootfulPodman);
    let src = e.dir(&format!("src{tag}"));
    let name = format!("w{tag}");
    e.run(
        &e.home,
        &["workset", "create", &format!("ws/{name}"), "-i", &image],
    )
    .ok();
    e.run(&src, &["workset", "connect", &name, "--name", "member"])
        .ok();
    let ws = e.home.join(format!("ws/{name}/workspaces/member"));
    let show = |var: &str| {
        e.run(
            &ws,
            &[
                "shell",
                "--",
                "sh",
                "-c",
                &format!("echo \"[${{{var}-unset}}]\""),
            ],
        )
        .ok()
        .stdout
    };
    e.run(
        &e.home,
        &["workset", "config", &name, "env.KB_WS=from-workset"],
    )
    .ok();
    assert_eq!(show("KB_WS"), "[from-workset]\n");
    e.run(&ws, &["box", "config", "env.KB_WS=from-box"]).ok();
    assert_eq!(show("KB_WS"), "[from-box]\n");
    e.run(&ws, &["box", "config", "env.KB_WS="]).ok();
    assert_eq!(show("KB_WS"), "[unset]\n", "an empty value removes it");
}

fn bootstrap_rig(flavour: Flavour) {
    let Some((e, _)) = session_env(flavour) else {
        return;
    };
    let name = format!("t{}", std::process::id());
    let r = e.run(&e.home, &["rig", "bootstrap", &name]).ok();
    assert!(
        r.stdout.contains(&format!("Rig '{name}' is ready")),
        "{r:?}"
    );
    let json = e.run(&e.home, &["rig", "list", "--json"]).ok().json();
    let row = json["extended"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["status"].as_str(), Some("prepped"), "{json:#}");
    let p = e.dir(&format!("p/b{name}"));
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--rig",
                &name,
                "--",
                "sh",
                "-c",
                "tmux -V && git --version && bash -c 'echo bash-ok'",
            ],
        )
        .ok();
    assert!(
        r.stdout.contains("tmux ")
            && r.stdout.contains("git version")
            && r.stdout.contains("bash-ok"),
        "{r:?}"
    );
    if flavour == Flavour::RootfulPodman {
        // the host's image store, read-only, for the box's own podman: its image
        // layers and records only, never libpod/ (every container's environment)
        let r = e.run(&p, &["shell", "--rig", &name, "--share-images", "--", "sh", "-c", "ls /var/lib/shared-images && test -f /var/lib/shared-images/overlay-images/images.json && ! touch /var/lib/shared-images/overlay-images/x 2>/dev/null && ! ls /var/lib/shared-images/libpod 2>/dev/null && cat ~/.config/containers/storage.conf"]).ok();
        assert!(
            r.stdout.contains("overlay-layers") && r.stdout.contains("additionalimagestores"),
            "{r:?}"
        );
        assert!(!r.stdout.contains("libpod"), "{r:?}");
    }
    let again = e.run(&e.home, &["rig", "bootstrap", &name]).ok();
    assert!(again.stdout.contains("already exists"), "{again:?}");
    e.run(&e.home, &["rig", "rm", &name, "--force"]).ok();
    // (the engine's own pull output is streamed too, so its lines come along)
    let r = e.run(&p, &["shell", "--", "true"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("kanibako rig bootstrap"),
        "a missing rig points at bootstrap: {r:?}"
    );
}

#[test]
fn podman_bootstrap_rig() {
    bootstrap_rig(Flavour::RootfulPodman);
}

#[test]
fn docker_bootstrap_rig() {
    bootstrap_rig(Flavour::Docker);
}

#[test]
fn rigs_added_extended_exported_imported_and_built_on_first_use() {
    let Some((e, _)) = session_env(Flavour::RootfulPodman) else {
        return;
    };
    let id = std::process::id();
    let (base, tmpl, ext) = (format!("b{id}"), format!("t{id}"), format!("e{id}"));
    e.run(&e.home, &["rig", "bootstrap", &base]).ok();
    // a template with a local FROM: built on first use, reused on the second
    let file = e.home.join(format!("Containerfile.template-{tmpl}"));
    std::fs::write(
        &file,
        format!("# kanibako-template: test\nFROM localhost/kanibako-rig-{base}:latest\nRUN echo built > /etc/tmpl-marker\n"),
    )
    .unwrap();
    let r = e.run(&e.home, &["rig", "add", file.to_str().unwrap()]).ok();
    assert!(
        r.stdout.contains(&format!("Added template '{tmpl}'")),
        "{r:?}"
    );
    let p = e.dir(&format!("p/r{id}"));
    let r = e
        .run(
            &p,
            &["shell", "--rig", &tmpl, "--", "cat", "/etc/tmpl-marker"],
        )
        .ok();
    assert_eq!(r.stdout.lines().last(), Some("built"), "{r:?}");
    assert!(r.stderr.contains("isn't prepped — building"), "{r:?}");
    let r = e
        .run(
            &p,
            &["shell", "--rig", &tmpl, "--", "cat", "/etc/tmpl-marker"],
        )
        .ok();
    assert!(!r.stderr.contains("building"), "reused: {r:?}");
    // extend: a shell on the base (fed from stdin here), saved as a new rig
    let mut child = e
        .cmd(&e.home, &["rig", "extend", &ext, "--from", &base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo extended > /etc/ext-marker\nexit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--rig",
                &ext,
                "--",
                "cat",
                "/etc/ext-marker",
                "/etc/kanibako/rig.yaml",
            ],
        )
        .ok();
    assert!(r.stdout.starts_with("extended\nname: "), "{r:?}");
    let json = e.run(&e.home, &["rig", "list", "--json"]).ok().json();
    let row = |kind: &str, n: &str| {
        json[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
    };
    assert_eq!(
        row("extended", &ext).unwrap()["status"],
        "prepped",
        "{json:#}"
    );
    assert!(row("templates", &tmpl).is_some(), "{json:#}");
    // export, remove, import
    let bundle = e.home.join(format!("{ext}.rig.tgz"));
    e.run(&e.home, &["rig", "export", &ext]).ok();
    assert!(bundle.is_file());
    e.run(&e.home, &["rig", "rm", &ext, "-f"]).ok();
    assert!(e.run(&p, &["shell", "--rig", &ext, "--", "true"]).code != 0);
    let r = e
        .run(&e.home, &["rig", "import", bundle.to_str().unwrap()])
        .ok();
    assert!(
        r.stdout.contains(&format!("Imported extended rig '{ext}'")),
        "{r:?}"
    );
    let r = e
        .run(
            &p,
            &["shell", "--rig", &ext, "--", "cat", "/etc/ext-marker"],
        )
        .ok();
    assert_eq!(r.stdout, "extended\n");
    for n in [&ext, &tmpl, &base] {
        e.run(&e.home, &["rig", "rm", n, "-f"]).ok();
    }
}

/// A box that has run is archived, purged, extracted and launched again: the file its
/// agent wrote in its home is there.
fn archive_purge_extract_launch(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("arc{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    e.run(&p, &["shell", "--", "sh", "-c", "echo hi > ~/note"])
        .ok();
    let out = e.dir("archives");
    let file = out.join("box.txz");
    let r = e
        .run(&out, &["box", "archive", &name, file.to_str().unwrap()])
        .ok();
    assert!(r.stdout.contains("Archive created: "), "{r:?}");
    e.run(&e.home, &["rm", &name, "--purge", "--force"]).ok();
    assert!(!e.names_yaml().contains(&name));
    let r = e
        .run(
            &out,
            &[
                "box",
                "extract",
                file.to_str().unwrap(),
                p.to_str().unwrap(),
            ],
        )
        .ok();
    assert!(r.stdout.contains("Session data restored to"), "{r:?}");
    assert!(e.names_yaml().contains(&name), "registered again");
    let r = e.run(&p, &["shell", "--", "cat", "/home/agent/note"]).ok();
    assert_eq!(r.stdout, "hi\n");
    // and the home is still the box's to write
    e.run(&p, &["shell", "--", "sh", "-c", "echo again >> ~/note"])
        .ok();
    e.run(&e.home, &["rm", &name, "--purge", "--force"]).ok();
}

#[test]
fn podman_archive_purge_extract_launch() {
    archive_purge_extract_launch(Flavour::RootfulPodman);
}

#[test]
fn docker_archive_purge_extract_launch() {
    archive_purge_extract_launch(Flavour::Docker);
}

#[test]
fn rootless_podman_archive_purge_extract_launch() {
    archive_purge_extract_launch(Flavour::RootlessPodman);
}

/// A box that has run is moved, launched there, duplicated (the copies are
/// independent), converted to standalone and back, and purged (its name is free again).
fn move_duplicate_migrate_purge(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    // a standalone box's own file may not pick its rig (issue 10): the system level does
    e.run(
        &e.home,
        &["system", "config", &format!("box.image={image}")],
    )
    .ok();
    let tag = tag(flavour);
    let name = format!("life{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    std::fs::write(p.join("src.txt"), "code\n").unwrap();
    e.run(&p, &["shell", "--", "sh", "-c", "echo hi > ~/f"])
        .ok();
    let moved = e.home.join(format!("q/{name}"));
    e.run(
        &e.home,
        &["box", "move", &name, moved.to_str().unwrap(), "--force"],
    )
    .ok();
    assert!(!p.exists());
    let cat =
        |dir: &std::path::Path, what: &str| e.run(dir, &["shell", "--", "cat", what]).ok().stdout;
    assert_eq!(cat(&moved, "/home/agent/f"), "hi\n");
    assert_eq!(cat(&moved, "/home/agent/workspace/src.txt"), "code\n");
    // by name, from anywhere
    assert_eq!(
        e.run(&e.home, &["shell", &name, "--", "cat", "/home/agent/f"])
            .ok()
            .stdout,
        "hi\n"
    );
    let dup_dir = e.home.join(format!("d/dup{tag}"));
    e.run(
        &e.home,
        &[
            "box",
            "duplicate",
            &name,
            dup_dir.to_str().unwrap(),
            "--force",
        ],
    )
    .ok();
    assert_eq!(cat(&dup_dir, "/home/agent/f"), "hi\n");
    e.run(&dup_dir, &["shell", "--", "sh", "-c", "echo dup > ~/f"])
        .ok();
    assert_eq!(cat(&dup_dir, "/home/agent/f"), "dup\n");
    assert_eq!(
        cat(&moved, "/home/agent/f"),
        "hi\n",
        "the source's home is its own"
    );
    // standalone and back: found, and the same home, each time
    e.run(&moved, &["box", "migrate", "--to", "standalone", "--force"])
        .ok();
    assert_eq!(cat(&moved, "/home/agent/f"), "hi\n");
    e.run(&moved, &["box", "migrate", "--to", "default", "--force"])
        .ok();
    assert_eq!(cat(&moved, "/home/agent/f"), "hi\n");
    // into a workset and out again
    let ws = format!("ws{tag}");
    e.run(&e.home, &["workset", "create", &format!("w/{ws}")])
        .ok();
    e.run(
        &e.home,
        &[
            "box",
            "migrate",
            &name,
            "--to",
            "workset",
            "--workset",
            &ws,
            "--force",
        ],
    )
    .ok();
    let member = e.home.join(format!("w/{ws}/workspaces/{name}"));
    assert_eq!(cat(&member, "/home/agent/f"), "hi\n");
    assert_eq!(cat(&member, "/home/agent/workspace/src.txt"), "code\n");
    e.run(
        &e.home,
        &[
            "box",
            "migrate",
            &format!("{ws}/{name}"),
            "--to",
            "default",
            "--force",
        ],
    )
    .ok();
    assert_eq!(cat(&moved, "/home/agent/f"), "hi\n");
    e.run(&e.home, &["workset", "rm", &ws, "--purge", "--force"])
        .ok();
    // purge: data gone, name free
    e.run(&e.home, &["box", "purge", &name, "--force"]).ok();
    assert!(!e.names_yaml().contains(&format!("{name}:")));
    let r = e.run(&moved, &["create", "-i", &image]).ok();
    assert!(
        r.stderr.contains(&format!("Project name: {name}\n")),
        "{r:?}"
    );
    let r = e
        .run(&moved, &["shell", "--", "sh", "-c", "cat ~/f || echo none"])
        .ok();
    assert_eq!(r.stdout, "none\n", "{r:?}");
    e.run(&e.home, &["box", "purge", &name, "--force"]).ok();
    e.run(
        &dup_dir,
        &["box", "purge", dup_dir.to_str().unwrap(), "--force"],
    )
    .ok();
}

#[test]
fn podman_move_duplicate_migrate_purge() {
    move_duplicate_migrate_purge(Flavour::RootfulPodman);
}

#[test]
fn docker_move_duplicate_migrate_purge() {
    move_duplicate_migrate_purge(Flavour::Docker);
}

#[test]
fn rootless_podman_move_duplicate_migrate_purge() {
    move_duplicate_migrate_purge(Flavour::RootlessPodman);
}

/// Rootless podman: files a container's sub-uids own cannot be removed by the user;
/// purge removes them through the engine's user namespace and still releases the name.
#[test]
fn rootless_podman_purge_removes_files_of_sub_uids() {
    let Some((e, image)) = session_env(Flavour::RootlessPodman) else {
        return;
    };
    let name = format!("sub{}", tag(Flavour::RootlessPodman));
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    e.run(
        &p,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "mkdir -p ~/sub && echo x > ~/sub/f",
        ],
    )
    .ok();
    let home = e.data().join("boxes").join(&name).join("shell");
    let podman = std::path::PathBuf::from(which("podman"));
    let out = e
        .program_cmd(
            &podman,
            &e.home,
            &[
                "unshare",
                "chown",
                "-R",
                "1:1",
                home.join("sub").to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(home.join("sub")).unwrap().uid();
    assert_ne!(owner, e.uid(), "a sub-uid owns it now");
    let r = e.run(&e.home, &["box", "purge", &name, "--force"]).ok();
    assert!(r.stdout.contains("Session data removed for"), "{r:?}");
    assert!(!e.data().join("boxes").join(&name).exists());
    assert!(!e.names_yaml().contains(&format!("{name}:")));
}

/// A fresh machine's podman (issue 18): no CONTAINERS_CONF, so podman's own defaults
/// (nofile and nproc 1048576, above these VMs' hard limits), on a new image store (so
/// podman picks its default network backend as on a first use), holding only the test
/// rig. `shell -- true` must work: kanibako passes limits the host allows.
#[test]
fn rootful_podman_with_its_default_configuration_runs_a_box() {
    let Some((mut e, image)) = session_env(Flavour::RootfulPodman) else {
        return;
    };
    if !e.rootful_podman() {
        eprintln!("skipped: rootless podman clamps its limits itself");
        return;
    }
    let store = e.root.path().join("store");
    let conf = e.root.path().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{s}/graph\"\nrunroot = \"{s}/run\"\n\
             [storage.options.overlay]\nskip_mount_home = \"true\"\n",
            s = store.display()
        ),
    )
    .unwrap();
    let fresh = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.args(args)
            .env_remove("CONTAINERS_CONF")
            .env("CONTAINERS_STORAGE_CONF", &conf);
        c
    };
    struct Store<'a>(&'a dyn Fn(&[&str]) -> Command);
    impl Drop for Store<'_> {
        fn drop(&mut self) {
            // nothing of this store may stay mounted once the directory goes
            let _ = (self.0)(&["image", "unmount", "--all"]).output();
            let _ = (self.0)(&["rm", "-af", "-t", "0"]).output();
            let _ = (self.0)(&["rmi", "-af"]).output();
        }
    }
    let _cleanup = Store(&fresh);
    assert!(fresh(&["info"]).output().unwrap().status.success());
    let mut save = Command::new("podman")
        .args(["save", &image])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let load = fresh(&["load", "-q"])
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success());
    assert!(load.status.success(), "{load:?}");
    e.set("CONTAINERS_STORAGE_CONF", &conf);
    e.unset("CONTAINERS_CONF");
    let p = e.dir("p/fresh");
    e.run(&p, &["create"]).ok();
    e.run(&p, &["box", "config", &format!("box.image={image}")])
        .ok();
    let hard = |flag: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("ulimit -H{flag}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let dry = e.run(&p, &["shell", "--dry-run", "--", "true"]).ok();
    if hard("n").parse::<u64>().is_ok_and(|n| n < 1_048_576) {
        assert!(dry.stdout.contains("--ulimit nofile="), "{dry:?}");
        assert!(dry.stdout.contains("--ulimit nproc="), "{dry:?}");
    }
    let r = e.run(&p, &["shell", "--", "true"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = e
        .run(&p, &["shell", "--", "sh", "-c", "echo in-box-$(id -u)"])
        .ok();
    assert!(r.stdout.contains("in-box-1000"), "{r:?}");
}

/// A persistent session whose agent ends at once shows what the agent wrote and passes
/// its exit status through; one stopped while attached says so instead of claiming it
/// never attached (issue 18).
fn sessions_that_end_early(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("x{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let term = Terminal::new(&format!("x{tag}"));

    e.script(
        "claude",
        &format!("{FAKE_AUTH}echo 'agent-wrote-this-before-exit'; exit 3\n"),
    );
    term.open("gone", &e.shell_line(&p, &["start"]));
    let screen = term.wait_for("gone", "EXIT-gone=");
    assert!(screen.contains("EXIT-gone=3"), "{screen}");
    assert!(screen.contains("agent-wrote-this-before-exit"), "{screen}");
    assert!(
        screen.contains("The agent ended (exit status 3); its last output is above."),
        "{screen}"
    );
    assert!(!screen.contains("Container exited before"), "{screen}");
    // nothing is left running, and the next start is a fresh session
    let ps = e.run(&p, &["ps", "-q"]).ok().stdout;
    assert!(!ps.lines().any(|l| l == name), "{ps}");

    e.script(
        "claude",
        &format!("{FAKE_AUTH}echo 'agent-ready'; exec sleep 300\n"),
    );
    term.open("stopped", &e.shell_line(&p, &["start"]));
    term.wait_for("stopped", "agent-ready");
    e.run(&p, &["stop"]).ok();
    let screen = term.wait_for("stopped", "EXIT-stopped=");
    assert!(!screen.contains("Container exited before"), "{screen}");
    assert!(!screen.contains("Error"), "{screen}");
    assert!(
        screen.contains("The session's container was stopped."),
        "{screen}"
    );
}

#[test]
fn podman_sessions_that_end_early() {
    sessions_that_end_early(Flavour::RootfulPodman);
}

#[test]
fn docker_sessions_that_end_early() {
    sessions_that_end_early(Flavour::Docker);
}

#[test]
fn rootless_podman_sessions_that_end_early() {
    sessions_that_end_early(Flavour::RootlessPodman);
}

/// Rootless podman whose user cannot open /dev/net/tun (the test user here): a box
/// with a network stops before the run with the cause and the fix, not slirp4netns's
/// raw error; with `netns = "none"` configured it runs (issue 18).
#[test]
fn rootless_podman_without_tun_says_why_and_how_to_fix_it() {
    let Some((mut e, image)) = session_env(Flavour::RootlessPodman) else {
        return;
    };
    let p = e.dir(&format!("p/tun{}", std::process::id()));
    e.run(&p, &["create", "-i", &image]).ok();
    let none_conf = std::env::var("KANIBAKO_TEST_ROOTLESS_CONF").unwrap();
    let with_network = e.root_file("containers-network.conf");
    let text = std::fs::read_to_string(&none_conf).unwrap();
    std::fs::write(&with_network, text.replace("netns = \"none\"\n", "")).unwrap();
    std::fs::set_permissions(&with_network, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tun_opens = e
        .program_cmd(Path::new("/bin/sh"), &p, &["-c", "exec 3<>/dev/net/tun"])
        .output()
        .unwrap()
        .status
        .success();
    e.set("CONTAINERS_CONF", &with_network);
    let r = e.run(&p, &["shell", "--", "true"]);
    if tun_opens {
        r.ok();
    } else {
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr
                .starts_with("Error: rootless podman needs /dev/net/tun"),
            "{r:?}"
        );
        assert!(
            r.stderr.contains("hint: as root, `chmod 666 /dev/net/tun`"),
            "{r:?}"
        );
        assert!(!r.stderr.contains("slirp4netns"), "{r:?}");
    }
    e.set("CONTAINERS_CONF", &none_conf);
    let r = e.run(&p, &["shell", "--", "echo", "no-network-ok"]).ok();
    assert!(r.stdout.contains("no-network-ok"), "{r:?}");
}

/// `shell --persistent -- CMD` runs CMD in the box's tmux session on a real engine: its
/// output reaches the terminal and its exit status comes back (issue 14).
fn shell_persistent(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let p = e.dir(&format!("p/sp{tag}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let term = Terminal::new(&format!("sp{tag}"));
    term.open(
        "sp",
        &e.shell_line(
            &p,
            &[
                "shell",
                "--persistent",
                "--",
                "sh",
                "-c",
                "echo persistent-shell-ran; exit 4",
            ],
        ),
    );
    let screen = term.wait_for("sp", "EXIT-sp=");
    assert!(screen.contains("persistent-shell-ran"), "{screen}");
    assert!(screen.contains("EXIT-sp=4"), "{screen}");
}

#[test]
fn podman_shell_persistent() {
    shell_persistent(Flavour::RootfulPodman);
}

#[test]
fn docker_shell_persistent() {
    shell_persistent(Flavour::Docker);
}

/// Issue 18: a project's own `vault/` files stay visible in the box (only the read-only
/// share is masked), the default box's share-ro stays unwritable through the workspace,
/// and a box leaves `git status` clean, even after writing its share-rw.
fn a_box_keeps_the_projects_vault_files_and_git_status(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let p = e.dir(&format!("p/gitvault{}", tag(flavour)));
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-C",
            ])
            .arg(&p)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    std::fs::create_dir_all(p.join("vault")).unwrap();
    std::fs::write(p.join("vault/notes.txt"), "the project's own\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "own vault dir"]);
    e.chown_all(&p);
    e.run(&p, &["create", "-i", &image]).ok();
    std::fs::write(p.join("vault/ro/ref.txt"), "reference\n").unwrap();
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--",
                "sh",
                "-c",
                "cat ~/workspace/vault/notes.txt; cat ~/share-ro/ref.txt; \
                 echo x > ~/workspace/vault/ro/ref.txt && echo wrote-ro; \
                 echo kept > ~/share-rw/out.txt; exit 0",
            ],
        )
        .ok();
    assert!(r.stdout.contains("the project's own"), "{r:?}");
    assert!(r.stdout.contains("reference"), "{r:?}");
    assert!(!r.stdout.contains("wrote-ro"), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(p.join("vault/rw/out.txt")).unwrap(),
        "kept\n"
    );
    // vault/ro is the project's to commit; with nothing new in it, nothing shows
    std::fs::remove_file(p.join("vault/ro/ref.txt")).unwrap();
    assert_eq!(git(&["status", "--porcelain"]), "", "a clean tree");
}

#[test]
fn podman_box_keeps_the_projects_vault_files_and_git_status() {
    a_box_keeps_the_projects_vault_files_and_git_status(Flavour::RootfulPodman);
}

#[test]
fn docker_box_keeps_the_projects_vault_files_and_git_status() {
    a_box_keeps_the_projects_vault_files_and_git_status(Flavour::Docker);
}

#[path = "e2e/browser.rs"]
mod browser;
#[path = "e2e/diagnose.rs"]
mod diagnose;
#[path = "e2e/installed.rs"]
mod installed;

#[path = "e2e/escape.rs"]
mod escape;
#[path = "e2e/helpers.rs"]
mod helpers;
#[path = "e2e/remote.rs"]
mod remote;

/// Issue 10 (low): a standalone box's read-only vault share, which lies in its
/// workspace, cannot be written through the workspace; it reads as the share.
fn standalone_share_ro_is_not_writable(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    e.run(
        &e.home,
        &["system", "config", &format!("box.image={image}")],
    )
    .ok();
    let p = e.dir(&format!("p/solovault{}", tag(flavour)));
    e.run(&p, &["create", "--standalone"]).ok();
    std::fs::create_dir_all(p.join("vault/ro")).unwrap();
    std::fs::write(p.join("vault/ro/ref.txt"), "reference\n").unwrap();
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--",
                "sh",
                "-c",
                "cat ~/share-ro/ref.txt; echo x > ~/workspace/vault/ro/ref.txt && echo wrote; \
                 echo y > ~/workspace/vault/ro/new && echo wrote; exit 0",
            ],
        )
        .ok();
    assert!(r.stdout.contains("reference"), "{r:?}");
    assert!(!r.stdout.contains("wrote"), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(p.join("vault/ro/ref.txt")).unwrap(),
        "reference\n"
    );
    assert!(!p.join("vault/ro/new").exists());
}

#[test]
fn rootless_podman_standalone_share_ro_is_not_writable() {
    standalone_share_ro_is_not_writable(Flavour::RootlessPodman);
}

#[test]
fn podman_standalone_share_ro_is_not_writable() {
    standalone_share_ro_is_not_writable(Flavour::RootfulPodman);
}

/// Issue 14: a `shared` agent resource is one host copy the box writes through
/// (`resource.todos/=shared`), and a workset member's crab cache comes from its
/// workset's `shared/` (spec §9.6), on a real engine.
fn shared_resources_and_workset_caches(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("w{tag}");
    e.run(
        &e.home,
        &["workset", "create", &format!("ws/{name}"), "-i", &image],
    )
    .ok();
    let src = e.dir(&format!("src{tag}"));
    e.run(&src, &["workset", "connect", &name, "--name", "member"])
        .ok();
    let root = e.home.join(format!("ws/{name}"));
    let member = root.join("workspaces/member");
    e.run(
        &e.home,
        &["crab", "config", "claude", "shared.pip=.cache/pip"],
    )
    .ok();
    let cache = root.join("shared/claude/pip");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("from-workset"), "ws\n").unwrap();
    e.chown_all(&root.join("shared"));
    e.run(&member, &["box", "config", "resource.todos/=shared"])
        .ok();
    e.script(
        "claude",
        &format!(
            "{FAKE_AUTH}cat ~/.cache/pip/from-workset > /home/agent/workspace/seen; echo from-box > ~/.claude/todos/marker\n"
        ),
    );
    e.run(&member, &["start", "--ephemeral"]).ok();
    assert_eq!(
        std::fs::read_to_string(member.join("seen")).unwrap(),
        "ws\n"
    );
    assert_eq!(
        std::fs::read_to_string(e.data().join("shared/global/claude/todos/marker")).unwrap(),
        "from-box\n"
    );
}

#[test]
fn podman_shared_resources_and_workset_caches() {
    shared_resources_and_workset_caches(Flavour::RootfulPodman);
}

#[test]
fn docker_shared_resources_and_workset_caches() {
    shared_resources_and_workset_caches(Flavour::Docker);
}

#[test]
fn rootless_podman_shared_resources_and_workset_caches() {
    shared_resources_and_workset_caches(Flavour::RootlessPodman);
}

/// Unpadded base64url, for the fake Codex's JWTs.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An access token as Codex keeps it: a JWT expiring `secs_ahead` from now.
fn codex_jwt(secs_ahead: u64) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs_ahead;
    format!(
        "{}.{}.sig",
        b64url(br#"{"alg":"none"}"#),
        b64url(format!(r#"{{"exp":{exp}}}"#).as_bytes())
    )
}

/// Codex in a box, ephemeral then persistent: its own arguments, its API key passed
/// by name, and its login (`~/.codex/auth.json`, only `tokens`) refreshed in the box
/// and written back to the host at 0600 when each session ends.
fn codex_sessions(flavour: Flavour) {
    let Some((mut e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("cx{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let host_auth = e.home.join(".codex/auth.json");
    std::fs::create_dir_all(host_auth.parent().unwrap()).unwrap();
    let host_token = codex_jwt(3600);
    std::fs::write(
        &host_auth,
        format!(
            r#"{{"OPENAI_API_KEY": null, "tokens": {{"id_token": "i", "access_token": "{host_token}", "refresh_token": "r-host", "account_id": "acct"}}, "last_refresh": "2026-12-01T00:00:00Z", "hostOnly": 1}}"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&host_auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    e.chown_all(&e.home.join(".codex"));
    let key = format!("sk-{tag}");
    e.set("OPENAI_API_KEY", &key);
    // in the box: record the arguments and the key, refresh the token (ten days ahead)
    let renewed = codex_jwt(10 * 24 * 3600);
    let agent = |tail: &str| {
        format!(
            "echo \"$*\" > /home/agent/workspace/agent-args\n\
             echo \"$OPENAI_API_KEY\" > /home/agent/workspace/agent-key\n\
             printf '%s' '{{\"tokens\": {{\"id_token\": \"i2\", \"access_token\": \"{renewed}\", \"refresh_token\": \"r-box\", \"account_id\": \"acct\"}}}}' > ~/.codex/auth.json\n{tail}"
        )
    };
    e.script("codex", &agent(""));

    let r = e
        .run(&p, &["start", "--ephemeral", "--crab", "codex", "-M", "o3"])
        .ok();
    assert!(r.stderr.contains("Using host Codex CLI"), "{r:?}");
    let args = std::fs::read_to_string(p.join("agent-args")).unwrap();
    assert_eq!(
        args.trim(),
        "--dangerously-bypass-approvals-and-sandbox --model o3"
    );
    assert_eq!(
        std::fs::read_to_string(p.join("agent-key")).unwrap().trim(),
        key,
        "the key reached the box by name"
    );
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&host_auth).unwrap()).unwrap();
    assert_eq!(host["tokens"]["access_token"], renewed, "{host}");
    assert_eq!(host["tokens"]["refresh_token"], "r-box", "{host}");
    assert_eq!(host["hostOnly"], 1, "the host's other keys stay: {host}");
    let box_auth = e
        .data()
        .join(format!("boxes/{name}/shell/.codex/auth.json"));
    for f in [&host_auth, &box_auth] {
        let m = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{}", f.display());
    }
    assert!(host_auth.with_file_name("auth.json.bak").is_file());

    // persistent: a session to continue, a detach writes the login back again (a
    // terminal of its own: the other tests of this flavour share `tag`)
    e.run(
        &p,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "mkdir -p ~/.codex/sessions/2026/12/03 && echo '{}' > ~/.codex/sessions/2026/12/03/rollout-1.jsonl",
        ],
    )
    .ok();
    let renewed_again = codex_jwt(11 * 24 * 3600);
    e.script(
        "codex",
        &format!(
            "printf '%s' '{{\"tokens\": {{\"id_token\": \"i3\", \"access_token\": \"{renewed_again}\", \"refresh_token\": \"r-box2\", \"account_id\": \"acct\"}}}}' > ~/.codex/auth.json\n\
             echo \"agent-ready $*\"; exec sleep 300\n"
        ),
    );
    let term = Terminal::new(&name);
    term.open(
        "one",
        &e.shell_line(&p, &["start", "--persistent", "--crab", "codex"]),
    );
    term.wait_for(
        "one",
        "agent-ready resume --last --dangerously-bypass-approvals-and-sandbox",
    );
    term.keys("one", &["C-b", "d"]);
    term.wait_for("one", "EXIT-one=0");
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&host_auth).unwrap()).unwrap();
    assert_eq!(host["tokens"]["access_token"], renewed_again, "{host}");
    let r = e.run(&p, &["stop"]).ok();
    assert_eq!(r.stdout.trim(), format!("Stopped kanibako-{name}"));
}

/// Goose in a box, ephemeral then persistent: `session`, its mode and model in the
/// environment, a provider key passed by name, `--resume` once it has a session.
fn goose_sessions(flavour: Flavour) {
    let Some((mut e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let name = format!("gs{tag}");
    let p = e.dir(&format!("p/{name}"));
    e.run(&p, &["create", "-i", &image]).ok();
    let key = format!("sk-ant-{tag}");
    e.set("ANTHROPIC_API_KEY", &key);
    e.script(
        "goose",
        "echo \"$*|$GOOSE_MODE|$GOOSE_MODEL|$GOOSE_DISABLE_KEYRING|$ANTHROPIC_API_KEY\" > /home/agent/workspace/agent-args\n\
         mkdir -p ~/.local/share/goose/sessions && : > ~/.local/share/goose/sessions/sessions.db\n",
    );
    e.run(
        &p,
        &["start", "--ephemeral", "--crab", "goose", "-M", "claude-x"],
    )
    .ok();
    let args = std::fs::read_to_string(p.join("agent-args")).unwrap();
    assert_eq!(args.trim(), format!("session|auto|claude-x|1|{key}"));
    e.script(
        "goose",
        "echo \"agent-ready $*|$GOOSE_MODE|\"; exec sleep 300\n",
    );
    let term = Terminal::new(&name);
    term.open(
        "one",
        &e.shell_line(&p, &["start", "--persistent", "--crab", "goose", "-S"]),
    );
    term.wait_for("one", "agent-ready session --resume||");
    term.keys("one", &["C-b", "d"]);
    term.wait_for("one", "EXIT-one=0");
    let r = e.run(&p, &["stop"]).ok();
    assert_eq!(r.stdout.trim(), format!("Stopped kanibako-{name}"));
}

#[test]
fn podman_codex_sessions() {
    codex_sessions(Flavour::RootfulPodman);
}

#[test]
fn podman_goose_sessions() {
    goose_sessions(Flavour::RootfulPodman);
}

#[test]
fn docker_codex_sessions() {
    codex_sessions(Flavour::Docker);
}

#[test]
fn docker_goose_sessions() {
    goose_sessions(Flavour::Docker);
}

#[test]
fn rootless_podman_codex_sessions() {
    codex_sessions(Flavour::RootlessPodman);
}

#[test]
fn rootless_podman_goose_sessions() {
    goose_sessions(Flavour::RootlessPodman);
}
