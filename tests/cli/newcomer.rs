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
            r.stdout.contains("[!!] Host limits: default_ulimits in ")
                && r.stdout
                    .contains("     fix: put `default_ulimits = [\"nofile=4096:4096\""),
            "{r:?}"
        );
        assert_eq!(r.code, 1, "something to fix: {r:?}");
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
        !json["extended"]
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

/// The README's first command, `scripts/quickstart`, run as a newcomer would (no
/// terminal, a fresh HOME) against stand-ins for what a test may not do for real:
/// `apt-get` (records, then "installs" stubs; podman becomes the recording fake), `id`
/// (says which user we are), `sudo` (records, then runs the command). The rest of the
/// machine's programs are there, except the ones the script must find missing. The
/// Rust toolchain step is skipped (`QUICKSTART_KANIBAKO`: the binary under test).
struct Quickstart {
    e: Env,
    path: String,
}

impl Quickstart {
    fn new() -> Self {
        let e = Env::new();
        let fake = e.fake_podman();
        let root = e.root.path().to_path_buf();
        fs::rename(&fake, root.join("podman.fake")).unwrap();
        let (stubs, apt, sys) = (root.join("stubs"), root.join("apt"), root.join("sys"));
        for d in [&stubs, &apt, &sys] {
            fs::create_dir_all(d).unwrap();
        }
        // the system's programs, minus what the script installs, decides by, or must
        // not reach
        let skip = [
            "podman", "runc", "tmux", "git", "curl", "cargo", "rustup", "sudo", "apt-get",
            "kanibako", "id",
        ];
        for dir in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let link = sys.join(&name);
                if skip.iter().any(|s| name == *s) || link.symlink_metadata().is_ok() {
                    continue;
                }
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
        let r = root.display();
        let script = |name: &str, body: String| {
            let p = stubs.join(name);
            fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        script(
            "apt-get",
            format!(
                r#"echo "apt-get $*" >> '{r}/apt.log'
[ "$1" = install ] || exit 0
for p in "$@"; do
  case $p in
    -*|install) ;;
    podman) cp '{r}/podman.fake' '{r}/apt/podman' ;;
    *) printf '#!/bin/sh\nexit 0\n' > '{r}/apt/'$p; chmod 755 '{r}/apt/'$p ;;
  esac
done
"#
            ),
        );
        script(
            "id",
            format!(
                "[ \"$1\" = -u ] && exec cat '{r}/uid'\nexec {} \"$@\"\n",
                which("id")
            ),
        );
        fs::write(root.join("uid"), "0\n").unwrap();
        let path = format!("{}:{}:{}", stubs.display(), apt.display(), sys.display());
        Self { e, path }
    }

    fn sudo(&self) {
        let r = self.e.root.path().display();
        let p = self.e.root.path().join("stubs/sudo");
        fs::write(
            &p,
            format!("#!/bin/sh\necho \"sudo $*\" >> '{r}/apt.log'\nexec \"$@\"\n"),
        )
        .unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }

    fn run(&self) -> Run {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/quickstart");
        let out = std::process::Command::new("/bin/bash")
            .arg(script)
            .env_clear()
            .env("HOME", &self.e.home)
            .env("PATH", &self.path)
            .env("QUICKSTART_KANIBAKO", env!("CARGO_BIN_EXE_kanibako"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    fn apt_log(&self) -> String {
        fs::read_to_string(self.e.root_file("apt.log")).unwrap_or_default()
    }
}

fn which(name: &str) -> String {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
        .unwrap()
}

#[test]
fn quickstart_as_root_installs_what_is_missing_without_sudo_and_runs_a_box() {
    let q = Quickstart::new();
    let r = q.run().ok();
    let apt = q.apt_log();
    assert!(
        apt.contains("apt-get update")
            && apt.contains(
                "apt-get install -y -qq --no-install-recommends podman runc tmux git curl"
            ),
        "{apt}\n{r:?}"
    );
    assert!(!apt.contains("sudo"), "root needs no sudo: {apt}");
    let home = &q.e.home;
    let installed = home.join(".local/bin/kanibako");
    assert!(installed.is_file(), "{r:?}");
    // the rig made from the host's programs, then the main job in the demo box
    let log = q.e.podman_log();
    assert!(log.contains("LABEL io.kanibako.rig=host"), "{log}");
    let job = q.e.last_call("run").unwrap();
    assert!(
        job.contains("/src/demo:/home/agent/workspace") && job.ends_with(" git --version"),
        "{job}"
    );
    assert!(r.stderr.contains("no terminal: run `cd "), "{r:?}");
    // a new login shell finds it (only HOME carried over)
    let login = std::process::Command::new("/bin/bash")
        .args(["-lc", "kanibako --version"])
        .env_clear()
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&login.stdout).starts_with("kanibako "),
        "{login:?}"
    );
    // run again: nothing is installed twice, the profile line is there once
    let r = q.run().ok();
    assert_eq!(q.apt_log(), apt, "{r:?}");
    let profile = fs::read_to_string(home.join(".profile")).unwrap();
    assert_eq!(
        profile.matches("# kanibako: ~/.local/bin on PATH").count(),
        1,
        "{profile}"
    );
}

#[test]
fn quickstart_as_a_user_needs_sudo_and_uses_it_only_for_apt_get() {
    let q = Quickstart::new();
    fs::write(q.e.root_file("uid"), "1000\n").unwrap();
    let r = q.run();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("quickstart: error: not root and no sudo: run this as root, or install sudo"),
        "{r:?}"
    );
    assert_eq!(q.apt_log(), "", "nothing was attempted");
    q.sudo();
    q.run().ok();
    let apt = q.apt_log();
    assert!(
        apt.starts_with(
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq\napt-get update"
        ),
        "{apt}"
    );
    assert_eq!(apt.matches("sudo ").count(), 2, "{apt}");
}

/// Whether `e`'s user can open /dev/net/tun (as slirp4netns would).
fn tun_opens_for(e: &Env) -> bool {
    e.program_cmd(
        Path::new("/bin/sh"),
        &e.home,
        &["-c", "exec 3<>/dev/net/tun"],
    )
    .output()
    .unwrap()
    .status
    .success()
}

#[test]
fn rootless_podman_without_tun_stops_before_the_run_with_the_fix() {
    let Ok(user) = std::env::var("KANIBAKO_TEST_USER") else {
        assert!(
            !crate::support::engine_required(),
            "KANIBAKO_TEST_USER is required here (scripts/prepare-engines --test-user)"
        );
        eprintln!("skipped: no KANIBAKO_TEST_USER");
        return;
    };
    let mut e = Env::as_user(&user);
    e.fake_podman();
    e.script("claude", "exit 0\n");
    let conf = e.root_file("containers.conf");
    fs::write(&conf, "[engine]\nruntime = \"runc\"\n").unwrap();
    e.set("CONTAINERS_CONF", &conf);
    e.chown_all(e.root.path());
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let r = e.run(&p, &["shell", "--", "true"]);
    if tun_opens_for(&e) {
        r.ok();
        assert!(e.last_call("run").is_some());
    } else {
        assert_eq!(r.code, 1, "{r:?}");
        let mut lines = r.stderr.lines();
        assert_eq!(
            lines.next(),
            Some(
                "Error: rootless podman needs /dev/net/tun for a container's network, and this user may not open it"
            ),
            "{r:?}"
        );
        let hint = lines.next().unwrap_or_default();
        assert!(
            hint.starts_with("hint: as root, `chmod 666 /dev/net/tun`; or give containers no network: `netns = \"none\"`"),
            "{r:?}"
        );
        assert!(e.last_call("run").is_none(), "no run was tried");
    }
    // containers without a network need no device
    fs::write(&conf, "[containers]\nnetns = \"none\"\n").unwrap();
    e.run(&p, &["shell", "--", "true"]).ok();
    assert!(e.last_call("run").is_some());
}

/// `--dry-run` prints the plan from what kanibako knows: it asks the engine nothing
/// (rootless podman's version, which decides keep-id pinning, at most once, and then
/// from the cache).
#[test]
fn a_dry_run_asks_the_engine_nothing() {
    let (e, p) = env_with_claude();
    e.run(&p, &["create"]).ok();
    let calls_of = |args: &[&str]| {
        let before = e.podman_log();
        let r = e.run(&p, args).ok();
        assert!(r.stdout.contains(" run "), "{r:?}");
        e.podman_log()[before.len()..].to_owned()
    };
    for args in [
        &["shell", "--dry-run", "--", "true"][..],
        &["shell", "--dry-run"],
        &["start", "--dry-run"],
        &["start", "--ephemeral", "--dry-run"],
        &["shell", "--dry-run", "--", "true"],
    ] {
        let calls = calls_of(args);
        let unneeded: Vec<&str> = calls.lines().filter(|c| *c != "--version").collect();
        assert!(unneeded.is_empty(), "{args:?} asked the engine: {calls}");
    }
    assert!(
        e.podman_log().matches("--version").count() <= 1,
        "{}",
        e.podman_log()
    );
}
