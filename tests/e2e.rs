//! Against a real engine: what `list`/`ps` see of running containers. Skips where no
//! engine is set up; fails instead when KANIBAKO_TEST_REQUIRE_ENGINE=1 (CI).
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`.
#![allow(clippy::disallowed_methods)]

mod support;

use std::process::Command;

use support::{Env, engine_required};

const TEST_LABEL: &str = "io.kanibako.test";

struct Engine {
    program: String,
    image: String,
}

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
        let row = json
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
