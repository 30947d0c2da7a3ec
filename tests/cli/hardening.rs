//! Issue 13: the hardening and network keys (`box.pids_limit`, `box.memory`,
//! `box.cpus`, `box.cap_add`, `box.network`, `box.allow`) at every level, typed, with
//! origins, planned into the run, shown by `box info`; and a standalone box's own file
//! may tighten them but never loosen them.

use std::fs;
use std::path::Path;

use crate::support::Env;

fn env() -> Env {
    let e = Env::new();
    e.fake_podman();
    e.script("claude", "exit 0\n");
    e
}

/// The `run` line of a dry run (with its warnings).
fn dry_run(e: &Env, p: &Path) -> (String, String) {
    let r = e.run(p, &["shell", "--dry-run", "--", "true"]).ok();
    let run = r
        .stdout
        .lines()
        .find(|l| l.contains(" run "))
        .unwrap_or_else(|| panic!("no run line: {r:?}"))
        .to_owned();
    (run, r.stderr)
}

#[test]
fn hardening_keys_at_every_level_reach_the_run_with_their_origins() {
    let e = env();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let (run, _) = dry_run(&e, &p);
    assert!(
        run.contains("--cap-drop=ALL --security-opt=no-new-privileges")
            && run.contains("--pids-limit=4096")
            && !run.contains("--memory")
            && !run.contains("--network"),
        "the defaults: {run}"
    );
    e.run(&p, &["system", "config", "box.memory=4096m"]).ok();
    e.run(&p, &["system", "config", "box.pids_limit=512"]).ok();
    e.run(&p, &["crab", "config", "claude", "box.cpus=1.5"])
        .ok();
    e.run(&p, &["box", "config", "box.cap_add=net_raw,CAP_SYS_PTRACE"])
        .ok();
    e.run(&p, &["box", "config", "box.pids_limit=64"]).ok();
    e.run(&p, &["box", "config", "box.network=none"]).ok();
    // a crab's level counts for its agent's sessions
    let r = e.run(&p, &["start", "--dry-run"]).ok();
    let run = r
        .stdout
        .lines()
        .find(|l| l.contains(" run "))
        .unwrap()
        .to_owned();
    for flag in [
        "--network=none",
        "--cap-add=NET_RAW --cap-add=SYS_PTRACE --pids-limit=64 --memory=4g --cpus=1.5",
    ] {
        assert!(run.contains(flag), "{flag}: {run}");
    }
    let r = e
        .run(&p, &["box", "config", "--effective", "--show-origin"])
        .ok();
    for line in [
        "box.pids_limit = 64\t# box: ",
        "box.memory = 4g\t# system: ",
        "box.cpus = 1.5\t# crab: ",
        "box.cap_add = NET_RAW, SYS_PTRACE\t# box: ",
        "box.network = none\t# box: ",
    ] {
        assert!(r.stdout.contains(line), "{line}: {}", r.stdout);
    }
    let r = e.run(&p, &["box", "info"]).ok();
    for line in [
        "Capabilities: all dropped but NET_RAW, SYS_PTRACE (box: ",
        "Processes:    64 (box: ",
        "Memory:       4g (system: ",
        "CPUs:         1.5 (crab: ",
        "Network:      none (box: ",
        "Allow:        @claude @npm @pypi @crates @github (default) = 16 rules",
    ] {
        assert!(r.stdout.contains(line), "{line}: {}", r.stdout);
    }
    // bad values are refused with one line saying what is expected
    for kv in [
        "box.memory=lots",
        "box.pids_limit=0",
        "box.cpus=-1",
        "box.cap_add=ALL",
        "box.cap_add=NET_RAWR",
        "box.network=open",
        "box.allow=*.com",
    ] {
        let r = e.run(&p, &["system", "config", kv]).fails();
        let key = kv.split('=').next().unwrap();
        assert!(
            r.stderr
                .contains(&format!("Error: invalid value for {key}: ")),
            "{kv}: {r:?}"
        );
    }
    // a hand-edited bad value fails the launch naming the file
    let cfg = e.home.join(".config/kanibako.yaml");
    let text = fs::read_to_string(&cfg).unwrap().replace("4g", "lots");
    fs::write(&cfg, text).unwrap();
    let r = e.run(&p, &["shell", "--dry-run"]).fails();
    assert!(
        r.stderr
            .contains("invalid value for box.memory: 'lots' (system: "),
        "{r:?}"
    );
}

/// Under `allowlist` the box has no network of its own: `--network=none`, the hub's
/// member directory (where `egress.sock` is) mounted, the proxy variables set, and the
/// forwarder started by the entry before the command. A standalone box's own file may
/// choose it (it is tighter than full), with or without helpers.
#[test]
fn allowlist_runs_without_network_but_with_the_proxy_path() {
    let e = env();
    let p = e.dir("p/solo");
    e.run(&p, &["create", "--standalone"]).ok();
    e.run(&p, &["box", "config", "box.network=allowlist"]).ok();
    for extra in [&[][..], &["--no-helpers"][..]] {
        let mut args = vec!["shell", "--dry-run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "true"]);
        let r = e.run(&p, &args).ok();
        let run = r.stdout.lines().find(|l| l.contains(" run ")).unwrap();
        for part in [
            "--network=none",
            ":/run/kanibako:ro",
            "HTTPS_PROXY HTTP_PROXY NODE_USE_ENV_PROXY NO_PROXY http_proxy https_proxy no_proxy",
            "--entrypoint /bin/sh",
            "/home/agent/.local/bin/kanibako egress-forward --detach 127.0.0.1:3128 /run/kanibako/egress.sock",
        ] {
            assert!(run.contains(part), "{extra:?} {part}: {run}");
        }
        assert!(
            !r.stderr.contains("ignoring box.network"),
            "{extra:?}: {}",
            r.stderr
        );
    }
    let r = e.run(&p, &["box", "info"]).ok();
    assert!(
        r.stdout.contains("Network:      allowlist (box: "),
        "{}",
        r.stdout
    );
}

#[test]
fn a_standalone_box_s_own_file_may_tighten_but_never_loosen() {
    let e = env();
    let p = e.dir("p/solo");
    e.run(&p, &["create", "--standalone"]).ok();
    e.run(&p, &["system", "config", "box.memory=2g"]).ok();
    e.run(&p, &["system", "config", "box.network=none"]).ok();
    let file = p.join(".kanibako/project.yaml");
    let before = fs::read_to_string(&file).unwrap();
    for kv in [
        "box.pids_limit=100000",
        "box.pids_limit=unlimited",
        "box.memory=8g",
        "box.memory=",
        "box.cap_add=NET_RAW",
        "box.network=full",
        "box.allow=evil.test",
    ] {
        let r = e.run(&p, &["box", "config", kv]).fails();
        let key = kv.split('=').next().unwrap();
        assert!(
            r.stderr
                .contains(&format!("Error: {key} is not stored in ")),
            "{kv}: {r:?}"
        );
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), before, "nothing stored");
    // written by hand (or by a cloned repository, or the box itself): ignored, one
    // warning line per key naming the file
    fs::write(
        &file,
        format!(
            "{before}box:\n  pids_limit: unlimited\n  memory: 8g\n  cap_add: [SYS_ADMIN]\n  network: full\n  allow: [evil.test]\n"
        ),
    )
    .unwrap();
    let (run, warnings) = dry_run(&e, &p);
    assert!(
        run.contains("--network=none")
            && run.contains("--pids-limit=4096 --memory=2g")
            && !run.contains("--cap-add"),
        "{run}"
    );
    for key in [
        "box.pids_limit",
        "box.memory",
        "box.cap_add",
        "box.network",
        "box.allow",
    ] {
        let lines: Vec<&str> = warnings
            .lines()
            .filter(|l| l.starts_with(&format!("Warning: ignoring {key} in ")))
            .collect();
        assert_eq!(lines.len(), 1, "{key}: {warnings}");
        assert!(lines[0].contains("/.kanibako/project.yaml: "), "{warnings}");
    }
    let r = e.run(&p, &["box", "info"]).ok();
    assert!(
        r.stdout.contains("Processes:    4096 (default)")
            && r.stdout.contains("Memory:       2g (system: ")
            && r.stdout.contains("Network:      none (system: "),
        "{}",
        r.stdout
    );
    // tightening from there is obeyed, and stored by `box config`
    fs::write(&file, &before).unwrap();
    for kv in [
        "box.pids_limit=64",
        "box.memory=1g",
        "box.cpus=0.5",
        "box.allow=-@github",
    ] {
        e.run(&p, &["box", "config", kv]).ok();
    }
    let (run, warnings) = dry_run(&e, &p);
    assert!(
        run.contains("--pids-limit=64 --memory=1g --cpus=0.5"),
        "{run}"
    );
    assert!(!warnings.contains("Warning: ignoring"), "{warnings}");
    // a default-mode box's own file lies outside its reach: it may loosen
    let q = e.dir("p/app");
    e.run(&q, &["create"]).ok();
    e.run(&q, &["box", "config", "box.cap_add=NET_RAW"]).ok();
    e.run(&q, &["box", "config", "box.network=full"]).ok();
    let (run, _) = dry_run(&e, &q);
    assert!(
        run.contains("--cap-add=NET_RAW") && !run.contains("--network=none"),
        "{run}"
    );
}

/// `box net log` reads the box's egress journal; a box that never ran under
/// `allowlist` has none, which it says (and `--json` is an empty array).
#[test]
fn box_net_log_of_a_box_without_one() {
    let e = env();
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    let r = e.run(&p, &["box", "net", "log"]).ok();
    assert!(
        r.stdout.contains("No network log for app") || r.stderr.contains("No network log for app"),
        "{r:?}"
    );
    let r = e.run(&p, &["box", "net", "log", "app", "--json"]).ok();
    let v = r.json();
    assert_eq!(v["schema_version"], 1, "{v}");
    assert_eq!(v["records"], serde_json::json!([]), "{v}");
}

/// `box net learn`: a session of the box under `allowlist` whatever `box.network` says,
/// its proxy in learn mode; then the names that session reached and `box.allow` does
/// not allow are proposed. Without a terminal it prints them and fails with the hint
/// `--force`, which writes them to the box's own level (added to what is there).
/// A fake engine stands in for the box: its `run` logs what the proxy would have.
#[test]
fn box_net_learn_proposes_what_the_session_reached_and_writes_only_when_told() {
    let mut e = env();
    let xdg = e.dir("xdg");
    e.set("XDG_RUNTIME_DIR", &xdg);
    let p = e.dir("p/app");
    e.run(&p, &["create"]).ok();
    e.run(&p, &["system", "config", "box.allow=known.test"])
        .ok();
    e.run(&p, &["box", "config", "box.allow=mine.test"]).ok();
    let hash = kanibako::boxes::project_hash(&p);
    let journal = e.home.join(format!(
        ".local/state/kanibako/egress/{}.jsonl",
        &hash[..16]
    ));
    fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let record = |time: &str, host: &str, port: u16| {
        format!(
            r#"{{"time":"{time}","member":"director","method":"CONNECT","host":"{host}","port":{port},"decision":"learn","reason":"learn","status":200,"bytes_up":5,"bytes_down":7,"ms":1}}"#
        )
    };
    // before this session: not its to propose
    fs::write(
        &journal,
        record("2020-01-01T00:00:00.000Z", "old.test", 443) + "\n",
    )
    .unwrap();
    let base = e.bin.join("podman");
    fs::rename(&base, e.bin.join("podman-base")).unwrap();
    let seen = e.root_file("hub.seen");
    let lines: String = [
        ("new.test", 443),
        ("new.test", 443),
        ("git.new.test", 22),
        ("known.test", 443),
        ("mine.test", 80),
    ]
    .iter()
    .map(|(h, port)| {
        format!(
            "echo '{}' >> '{}'\n",
            record("$t", h, *port),
            journal.display()
        )
    })
    .collect::<String>()
    .replace("\"$t\"", "\"'\"$t\"'\"");
    e.script(
        "podman",
        &format!(
            r#"if [ "$1" = run ]; then
  for a in "$@"; do case "$a" in *:/run/kanibako:ro*) m="${{a%%:/run/kanibako:ro*}}" ;; esac; done
  i=0; while [ ! -f "$m/../../hub.json" ] && [ $i -lt 100 ]; do /bin/sleep 0.05; i=$((i+1)); done
  /bin/cp "$m/../../hub.json" '{seen}'
  t=$(/bin/date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
{lines}fi
exec '{base}' "$@"
"#,
            seen = seen.display(),
            base = e.bin.join("podman-base").display(),
        ),
    );
    let r = e
        .run(&p, &["box", "net", "learn", "--", "sh", "-c", "true"])
        .fails();
    assert!(
        r.stderr.contains("standard input is not a terminal")
            && r.stderr.contains("hint: pass --force"),
        "{r:?}"
    );
    let out: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(out[0], "This session of app reached, beyond its box.allow:");
    assert!(
        out[1].starts_with("  new.test ")
            && out[1].ends_with("2 connections, 10 B up, 14 B down (director)"),
        "{out:?}"
    );
    assert!(out[2].starts_with("  git.new.test:22 "), "{out:?}");
    assert_eq!(out[3], "Proposed: box.allow += new.test, git.new.test:22");
    assert_eq!(out.len(), 4, "{out:?}");
    // the session ran under allowlist (box.network is full), its proxy learning
    let run = e.last_call("run").unwrap();
    assert!(
        run.contains("--network=none") && run.contains("egress-forward --detach"),
        "{run}"
    );
    let hub: serde_json::Value = serde_json::from_str(&fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(hub["egress"]["policy"]["learn"], true, "{hub}");
    let r = e.run(&p, &["box", "config", "box.allow"]).ok();
    assert!(!r.stdout.contains("new.test"), "nothing written: {r:?}");

    // --force writes them after what the box's level has
    let r = e
        .run(&p, &["box", "net", "learn", "--force", "--", "true"])
        .ok();
    assert!(
        r.stdout
            .contains("Set box.allow=mine.test, new.test, git.new.test:22"),
        "{r:?}"
    );
    let r = e
        .run(&p, &["box", "config", "--effective", "--show-origin"])
        .ok();
    assert!(r.stdout.contains("git.new.test:22"), "{}", r.stdout);
    // nothing new the next time: it says so and writes nothing
    fs::write(&journal, "").unwrap();
    e.script(
        "podman",
        &format!("exec '{}' \"$@\"\n", e.bin.join("podman-base").display()),
    );
    let r = e.run(&p, &["box", "net", "learn", "--", "true"]).ok();
    assert!(
        (r.stdout.clone() + &r.stderr).contains("Learnt nothing new"),
        "{r:?}"
    );
}
