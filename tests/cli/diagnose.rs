//! `system diagnose`, `box diagnose` and `system info` against the recording fake
//! podman: their text and JSON (snapshots), the fix under every `[!!]`, the exit
//! status, and that they write nothing — on a healthy machine and on a broken one.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use crate::support::{Env, Run, tree};

/// The shared fake podman, answering `info` with a storage driver; and a `tmux` on
/// PATH, so the only `[!!]` lines are the ones a test plants.
fn env() -> Env {
    let e = Env::new();
    let fake = e.fake_podman();
    let inner = e.bin.join("podman-fake");
    fs::rename(&fake, &inner).unwrap();
    e.script(
        "podman",
        &format!(
            "[ \"$1\" = info ] && {{ echo \"$*\" >> '{}'; echo overlay; exit 0; }}\nexec '{}' \"$@\"\n",
            e.root_file("podman.log").display(),
            inner.display()
        ),
    );
    e.script("tmux", "exit 0\n");
    // podman's limits come from this file alone, so the host's own config cannot
    // change the report.
    let conf = e.root_file("containers.conf");
    fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=64:64\", \"nproc=64:64\"]\n",
    )
    .unwrap();
    let mut e = e;
    e.set("CONTAINERS_CONF", &conf);
    e
}

/// The report with the test's root and the host's numbers (free disk, limits) taken
/// out, so a snapshot says the same on every machine.
fn normal(e: &Env, text: &str) -> String {
    let root = e.root.path().canonicalize().unwrap();
    text.replace(&root.display().to_string(), "[ROOT]")
        .lines()
        .map(|l| {
            if l.contains("Storage:")
                || l.contains("Host limits:")
                || l.contains("\"detail\": \"") && (l.contains(" GB free") || l.contains("nofile"))
            {
                l.chars()
                    .map(|c| if c.is_ascii_digit() { '#' } else { c })
                    .collect::<String>()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn with_rig(e: &Env) {
    let cfg = e.home.join(".config");
    fs::create_dir_all(&cfg).unwrap();
    fs::write(
        cfg.join("kanibako.yaml"),
        "box:\n  image: localhost/kanibako-test:latest\n",
    )
    .unwrap();
}

#[test]
fn a_healthy_machine_is_all_ok_and_exits_0() {
    let e = env();
    with_rig(&e);
    let p = e.dir("p/demo");
    e.run(&p, &["create"]).ok();
    let before = tree(&e.home);
    let r = e.run(&p, &["system", "diagnose"]).ok();
    insta::assert_snapshot!("healthy_text", normal(&e, &r.stdout));
    let j = e.run(&p, &["system", "diagnose", "--json"]).ok();
    insta::assert_snapshot!("healthy_json", normal(&e, &j.stdout));
    assert_eq!(j.json()["schema_version"], 1);
    assert_eq!(j.json()["ok"], true);
    assert_eq!(tree(&e.home), before, "diagnose writes nothing");
    // one real run of the rig, removed after
    let run = e.last_call("run").unwrap();
    assert!(
        run.starts_with("run --rm") || run.contains(" --rm "),
        "{run}"
    );
    assert!(run.contains("localhost/kanibako-test:latest"), "{run}");
}

#[test]
fn every_problem_is_followed_by_its_fix_and_exits_1() {
    let e = env();
    with_rig(&e);
    let p = e.dir("p/demo");
    e.run(&p, &["create"]).ok();
    let data = e.data();
    let shell = data.join("boxes/demo/shell");
    fs::create_dir_all(shell.join(".claude")).unwrap();
    // a link the box planted, a readable login, and a marker of a container gone
    symlink("/etc/passwd", shell.join(".bashrc-planted")).unwrap();
    fs::create_dir_all(shell.join(".config")).unwrap();
    symlink("../.claude", shell.join(".config/inside")).unwrap();
    let login = shell.join(".claude/.credentials.json");
    fs::write(&login, "{}").unwrap();
    fs::set_permissions(&login, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(
        data.join("boxes/demo/.kanibako.container"),
        "kanibako-demo-gone\n",
    )
    .unwrap();
    // the rig does not run
    fs::write(e.root_file("exit.code"), "127").unwrap();
    let before = tree(&e.home);
    let r = e.run(&p, &["system", "diagnose"]);
    assert_eq!(r.code, 1, "{r:?}");
    insta::assert_snapshot!("problems_text", normal(&e, &r.stdout));
    for (i, l) in r.stdout.lines().enumerate() {
        if l.starts_with("[!!]") {
            let next = r.stdout.lines().nth(i + 1).unwrap_or("");
            assert!(
                next.starts_with("     fix: "),
                "{l} has no fix: {}",
                r.stdout
            );
        }
    }
    assert!(
        !r.stdout.contains("inside"),
        "a link inside the home is fine"
    );
    let b = e.run(&p, &["box", "diagnose"]);
    assert_eq!(b.code, 1, "{b:?}");
    insta::assert_snapshot!("problems_box_text", normal(&e, &b.stdout));
    let j = e.run(&e.home, &["box", "diagnose", "demo", "--json"]);
    assert_eq!(j.code, 1);
    insta::assert_snapshot!("problems_box_json", normal(&e, &j.stdout));
    assert_eq!(tree(&e.home), before, "diagnose repairs nothing by itself");
}

#[test]
fn a_broken_machine_is_reported_not_crashed_on() {
    let e = Env::new(); // no engine at all
    let cfg = e.home.join(".config");
    fs::create_dir_all(&cfg).unwrap();
    fs::write(cfg.join("kanibako.yaml"), "box: [unclosed\n").unwrap();
    let before = tree(&e.home);
    let r = e.run(&e.home, &["system", "diagnose"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    insta::assert_snapshot!("broken_text", normal(&e, &r.stdout));
    let j = e.run(&e.home, &["system", "diagnose", "--json"]);
    assert_eq!(j.code, 1);
    let v = j.json();
    let status = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("config").as_deref(), Some("needs_fix"));
    assert_eq!(status("engine").as_deref(), Some("needs_fix"));
    assert_eq!(status("run").as_deref(), Some("skipped"));
    let i = e.run(&e.home, &["system", "info"]).ok();
    assert!(i.stdout.contains("does not parse"), "{i:?}");
    assert!(i.stdout.contains("Runtime:   not found"), "{i:?}");
    assert_eq!(
        tree(&e.home),
        before,
        "nothing written, not even a first-run config"
    );
}

#[test]
fn system_info_text_and_json() {
    let e = env();
    let r = e.run(&e.home, &["system", "info"]).ok();
    insta::assert_snapshot!(
        "info_text",
        normal(&e, &r.stdout).replace(env!("CARGO_MANIFEST_DIR"), "[REPO]")
    );
    let bare = e.run(&e.home, &["system"]).ok();
    assert_eq!(
        bare.stdout, r.stdout,
        "`system` alone is `system info`, as upstream"
    );
    let j: Run = e.run(&e.home, &["system", "inspect", "--json"]).ok();
    let v = j.json();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["config_state"], "missing");
    assert_eq!(v["runtime_version"], "podman version 4.3.1");
    assert!(v["install"]["kind"].is_string(), "{v:#}");
    assert!(!e.data().exists(), "info initialises nothing");
}

#[test]
fn setup_without_a_terminal_only_reports_and_with_yes_applies() {
    let e = env();
    let before = tree(&e.home);
    let r = e.run(&e.home, &["setup"]).ok();
    insta::assert_snapshot!("setup_report", normal(&e, &r.stdout));
    assert!(
        r.stdout
            .contains("kanibako system config box.image=ghcr.io/doctorjei/kanibako-oci:latest"),
        "{r:?}"
    );
    assert_eq!(tree(&e.home), before, "setup without --yes writes nothing");
    let y = e.run(&e.home, &["setup", "--yes"]).ok();
    assert!(
        y.stderr.contains("+ kanibako system config box.image="),
        "{y:?}"
    );
    assert!(
        y.stdout.contains("ready to go") || y.stdout.contains("`kanibako shell`"),
        "{y:?}"
    );
    let cfg = fs::read_to_string(e.home.join(".config/kanibako.yaml")).unwrap();
    assert!(cfg.contains("kanibako-oci"), "{cfg}");
    // nothing left to do now
    let again = e.run(&e.home, &["setup"]).ok();
    assert!(!again.stdout.contains("fix:"), "{again:?}");
}

#[test]
fn setup_without_an_engine_exits_1() {
    let e = Env::new();
    let r = e.run(&e.home, &["setup", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("[!!] not found -- install podman"),
        "{r:?}"
    );
    assert!(!e.home.join(".config").exists(), "{r:?}");
}

/// A kanibako checkout cloned from a local bare remote (no network), and a second
/// clone that pushes one commit to it.
fn checkout(e: &Env) -> (std::path::PathBuf, impl Fn(&std::path::Path, &[&str])) {
    let real_git = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    e.script("git", &format!("exec '{real_git}' \"$@\"\n"));
    let git = move |dir: &std::path::Path, args: &[&str]| {
        let o = std::process::Command::new(&real_git)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    };
    let root = e.root.path();
    git(root, &["init", "--bare", "-q", "remote.git"]);
    git(root, &["clone", "-q", "remote.git", "kb"]);
    let kb = root.join("kb");
    fs::write(kb.join("Cargo.toml"), "[package]\nname = \"kanibako\"\n").unwrap();
    git(&kb, &["add", "."]);
    git(&kb, &["commit", "-qm", "one"]);
    git(&kb, &["push", "-q", "origin", "HEAD:main"]);
    git(&kb, &["branch", "-q", "--set-upstream-to=origin/main"]);
    git(root, &["clone", "-q", "remote.git", "other"]);
    let other = root.join("other");
    fs::write(other.join("NEWS"), "two\n").unwrap();
    git(&other, &["add", "."]);
    git(&other, &["commit", "-qm", "two"]);
    git(&other, &["push", "-q", "origin", "HEAD:main"]);
    (kb, git)
}

#[test]
fn upgrade_pulls_a_checkout_and_installs_it_and_refuses_local_changes() {
    let e = env();
    let cargo_log = e.root_file("cargo.log");
    e.script(
        "cargo",
        &format!(
            "echo \"$* [RUSTFLAGS=$RUSTFLAGS]\" >> '{}'\n",
            cargo_log.display()
        ),
    );
    let (kb, _git) = checkout(&e);
    let src = kb.to_str().unwrap();
    let r = e
        .run(&e.home, &["system", "upgrade", "--check", "--source", src])
        .ok();
    assert!(r.stdout.contains("1 commit(s) available"), "{r:?}");
    assert!(!kb.join("NEWS").exists(), "--check changes nothing");
    assert!(!cargo_log.exists());
    fs::write(
        kb.join("Cargo.toml"),
        "[package]\nname = \"kanibako\"\n# mine\n",
    )
    .unwrap();
    let r = e
        .run(&e.home, &["system", "upgrade", "--source", src])
        .fails();
    assert!(r.stderr.contains("has uncommitted changes"), "{r:?}");
    assert!(r.stderr.contains("git stash"), "{r:?}");
    assert!(!kb.join("NEWS").exists());
    fs::write(kb.join("Cargo.toml"), "[package]\nname = \"kanibako\"\n").unwrap();
    let r = e.run(&e.home, &["system", "upgrade", "--source", src]).ok();
    assert!(r.stdout.contains("Upgraded successfully."), "{r:?}");
    assert_eq!(fs::read_to_string(kb.join("NEWS")).unwrap(), "two\n");
    assert_eq!(
        fs::read_to_string(&cargo_log).unwrap().trim(),
        // On glibc Linux the installed kanibako is linked statically (it is the
        // client mounted into every box, so it must run in any rig).
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            format!(
                "install --locked --target {}-unknown-linux-gnu --path {src} \
                 [RUSTFLAGS=-C target-feature=+crt-static]",
                std::env::consts::ARCH
            )
        } else {
            format!("install --locked --path {src} [RUSTFLAGS=]")
        }
    );
    let r = e.run(&e.home, &["system", "upgrade", "--source", src]).ok();
    assert!(r.stdout.contains("Up to date."), "{r:?}");
    let r = e
        .run(
            &e.home,
            &["system", "upgrade", "--source", e.home.to_str().unwrap()],
        )
        .fails();
    assert!(
        r.stderr.contains("is not a git checkout of kanibako"),
        "{r:?}"
    );
}

#[test]
fn an_installed_binary_is_told_how_to_upgrade() {
    let e = env();
    let copy = e.root_file("kanibako");
    fs::copy(env!("CARGO_BIN_EXE_kanibako"), &copy).unwrap();
    let r = Run::from(
        e.program_cmd(&copy, &e.home, &["system", "upgrade"])
            .output()
            .unwrap(),
    )
    .fails();
    assert!(r.stderr.contains("cannot update itself"), "{r:?}");
    assert!(
        r.stderr
            .contains("git pull --ff-only && cargo install --locked --path ."),
        "{r:?}"
    );
    let i = Run::from(
        e.program_cmd(&copy, &e.home, &["system", "info"])
            .output()
            .unwrap(),
    )
    .ok();
    assert!(i.stdout.contains("Install:   binary ("), "{i:?}");
}

#[test]
fn colour_only_when_forced_or_on_a_terminal_and_never_with_no_color() {
    let mut e = env();
    with_rig(&e);
    let plain = e.run(&e.home, &["system", "diagnose"]).ok();
    assert!(!plain.stdout.contains('\u{1b}'), "a pipe gets no colour");
    e.set("CLICOLOR_FORCE", "1");
    let forced = e.run(&e.home, &["system", "diagnose"]).ok();
    assert!(forced.stdout.contains("\u{1b}[32m[ok]"), "{forced:?}");
    assert!(
        forced.stdout.contains("\u{1b}[1m"),
        "a bold header: {forced:?}"
    );
    let json = e.run(&e.home, &["system", "diagnose", "--json"]).ok();
    assert!(!json.stdout.contains('\u{1b}'), "JSON is never coloured");
    e.set("NO_COLOR", "1");
    let no = e.run(&e.home, &["system", "diagnose"]).ok();
    assert!(!no.stdout.contains('\u{1b}'), "NO_COLOR wins: {no:?}");
}

#[test]
fn error_and_hint_prefixes_are_coloured_only_when_forced_and_never_with_no_color() {
    let mut e = env();
    let plain = e.run(&e.home, &["box", "info", "nosuchbox"]).fails();
    assert!(plain.stderr.starts_with("Error: "), "{plain:?}");
    assert!(!plain.stderr.contains('\u{1b}'), "a pipe gets no colour");
    e.set("CLICOLOR_FORCE", "1");
    // (not `.fails()`: that looks for a plain `Error:` line)
    let forced = e.run(&e.home, &["box", "info", "nosuchbox"]);
    assert_eq!(forced.code, 1, "{forced:?}");
    assert!(
        forced
            .stderr
            .starts_with("\u{1b}[1m\u{1b}[31mError:\u{1b}[0m "),
        "{forced:?}"
    );
    // the message itself stays as it was, so it can still be searched for
    assert_eq!(
        forced
            .stderr
            .replace("\u{1b}[1m\u{1b}[31m", "")
            .replace("\u{1b}[36m", "")
            .replace("\u{1b}[0m", ""),
        plain.stderr
    );
    e.set("NO_COLOR", "1");
    let no = e.run(&e.home, &["box", "info", "nosuchbox"]).fails();
    assert_eq!(no.stderr, plain.stderr, "NO_COLOR wins");
}

/// What kanibako's completion script would get for `words` (the last one is being
/// completed), in bash's protocol.
fn complete(e: &Env, words: &[&str]) -> Vec<String> {
    let mut args = vec!["--", "kanibako"];
    args.extend(words);
    let index = words.len().to_string();
    let mut c = e.cmd(&e.home, &args);
    c.env("KANIBAKO_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", &index)
        .env("_CLAP_IFS", "\n");
    let r = Run::from(c.output().unwrap()).ok();
    r.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn completions_name_boxes_worksets_rigs_and_crabs_from_the_registry() {
    let e = env();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = e.run(&e.home, &["completions", shell]).ok();
        assert!(r.stdout.contains("KANIBAKO_COMPLETE"), "{shell}: {r:?}");
        assert!(
            r.stdout.contains(env!("CARGO_BIN_EXE_kanibako")),
            "{shell}: {r:?}"
        );
    }
    for d in ["p/alpha", "p/beta"] {
        let p = e.dir(d);
        e.run(&p, &["create"]).ok();
    }
    e.run(&e.home, &["workset", "create", "ws/team"]).ok();
    let before = tree(&e.home);
    let calls = e.podman_log();
    let boxes = complete(&e, &["box", "info", "a"]);
    assert_eq!(boxes, ["alpha"], "{boxes:?}");
    let all = complete(&e, &["shell", ""]);
    assert!(
        all.contains(&"alpha".into()) && all.contains(&"beta".into()),
        "{all:?}"
    );
    assert!(all.contains(&"p/".into()), "paths too: {all:?}");
    assert_eq!(complete(&e, &["workset", "info", "t"]), ["team"]);
    assert!(complete(&e, &["rig", "prep", "o"]).contains(&"oci".into()));
    assert!(complete(&e, &["start", "--rig", "m"]).contains(&"min".into()));
    assert!(complete(&e, &["crab", "info", ""]).contains(&"claude".into()));
    assert!(complete(&e, &["sys"]).contains(&"system".into()));
    assert_eq!(tree(&e.home), before, "a Tab press writes nothing");
    assert_eq!(e.podman_log(), calls, "no engine call");
}

#[test]
fn man_pages_for_every_command() {
    let e = env();
    let top = e.run(&e.home, &["man"]).ok();
    assert!(top.stdout.contains(".TH kanibako 1"), "{top:?}");
    let dir = e.root_file("man");
    let r = e.run(&e.home, &["man", dir.to_str().unwrap()]).ok();
    for page in [
        "kanibako.1",
        "kanibako-box-diagnose.1",
        "kanibako-system-upgrade.1",
        "kanibako-completions.1",
    ] {
        let f = dir.join(page);
        assert!(f.is_file(), "{page}: {r:?}");
        assert!(r.stdout.contains(&f.display().to_string()));
    }
    let info = fs::read_to_string(dir.join("kanibako-box-info.1")).unwrap();
    assert!(info.contains("kanibako\\-box\\-info"), "{info}");
}
