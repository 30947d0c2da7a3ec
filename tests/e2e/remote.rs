//! Issue 17 on the real engines: a box on a remote engine. This machine's engines are
//! reached as if remote — rootful podman through a `podman system service` of the
//! test's own on a unix socket (`CONTAINER_HOST=unix://…`), the private dockerd through
//! `DOCKER_HOST` — marked so with `engine.remote = yes` (a unix socket is taken as
//! local otherwise). What must show: the project is mounted from `box.remote_path`'s
//! target (the directory here is never mounted), a missing one is refused before the
//! run in one line, and a local-only mount (this kanibako binary) is copied into the
//! box's home and mounted from there.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Flavour, session_env, tag, which};

/// A podman service on a socket of its own, ended with the test.
struct Service {
    child: Child,
    sock: String,
}

impl Service {
    fn start(tag: &str) -> Service {
        let sock = format!("/tmp/kb-remote-{tag}.sock");
        let _ = std::fs::remove_file(&sock);
        // The same private configuration (CONTAINERS_CONF, …) as every podman call here.
        let child = Command::new(which("podman"))
            .args(["system", "service", "--time=0", &format!("unix://{sock}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Path::new(&sock).exists() {
            assert!(
                Instant::now() < deadline,
                "the podman service made no {sock}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Service { child, sock }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn remote_box(flavour: Flavour) {
    let Some((mut e, image)) = session_env(flavour) else {
        return;
    };
    let tag = tag(flavour);
    let _service = (flavour == Flavour::RootfulPodman).then(|| {
        let s = Service::start(&tag);
        e.set("CONTAINER_HOST", format!("unix://{}", s.sock));
        s
    });
    let p = e.dir(&format!("p/r{tag}"));
    std::fs::write(p.join("marker"), "here\n").unwrap();
    e.run(&p, &["create", "-i", &image]).ok();
    e.run(&p, &["system", "config", "engine.remote=yes"]).ok();
    let there = e.home.join(format!("there/r{tag}"));
    let there_s = there.to_str().unwrap();
    e.run(
        &p,
        &["box", "config", &format!("box.remote_path={there_s}")],
    )
    .ok();

    // not there yet: refused before any run, in one line with a hint
    let r = e.run(&p, &["shell", "--", "true"]).fails();
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(there_s)
            && first.contains("does not exist on the engine's host")
            && first.contains("engine.remote is yes"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint: "), "{r:?}");
    let ps = e
        .program_cmd(
            Path::new(&which(engine(flavour))),
            &p,
            &["ps", "-a", "--format", "{{.Names}}"],
        )
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        !names.contains("-check-"),
        "the check's container is gone: {names}"
    );

    // the project there: what the box sees is that directory, not this one
    std::fs::create_dir_all(there.join("vault/ro")).unwrap();
    std::fs::create_dir_all(there.join("vault/rw")).unwrap();
    std::fs::write(there.join("marker"), "there\n").unwrap();
    e.chown_all(&e.home);
    let r = e
        .run(&p, &["shell", "--", "cat", "/home/agent/workspace/marker"])
        .ok();
    assert_eq!(r.stdout, "there\n", "{r:?}");

    // no bind source is this host's own: the project is mapped, the kanibako binary
    // is a copy in the box's home
    let r = e.run(&p, &["-v", "shell", "--", "true"]).ok();
    let run = r
        .stderr
        .lines()
        .find(|l| l.starts_with("+ ") && l.contains(" run "))
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_owned();
    let here = p.to_str().unwrap();
    assert!(!run.contains(&format!("{here}:")), "{run}");
    assert!(!run.contains(&format!("{here}/")), "{run}");
    assert!(
        run.contains(&format!("{there_s}:/home/agent/workspace")),
        "{run}"
    );
    let copies = e.home.join(format!(
        ".local/share/kanibako/boxes/r{tag}/shell/.kanibako-remote"
    ));
    let copy = std::fs::read_dir(&copies)
        .unwrap_or_else(|err| panic!("{}: {err}; {run}", copies.display()))
        .map(|d| d.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("kanibako"))
        .unwrap_or_else(|| panic!("no copy of the binary in {}", copies.display()));
    assert!(
        run.contains(&format!(
            "{}:/home/agent/.local/bin/kanibako",
            copy.display()
        )),
        "{run}"
    );
    let size = std::fs::metadata(&copy).unwrap().len();
    let r = e
        .run(
            &p,
            &[
                "shell",
                "--",
                "stat",
                "-c",
                "%s",
                "/home/agent/.local/bin/kanibako",
            ],
        )
        .ok();
    assert_eq!(r.stdout.trim(), size.to_string(), "{r:?}");
}

fn engine(flavour: Flavour) -> &'static str {
    if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    }
}

#[test]
fn rootful_podman_remote_box() {
    remote_box(Flavour::RootfulPodman);
}

#[test]
fn docker_remote_box() {
    remote_box(Flavour::Docker);
}
