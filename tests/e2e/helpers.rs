//! Issue 12 on the real engines: a box started by `kanibako shell` has its hub; from
//! inside it the mounted `kanibako crab helper` spawns a helper (a container of the
//! same box), messages go both ways through the log, another box cannot reach it, a
//! killed hub comes back with its helpers reachable, and `kanibako stop` leaves no
//! helper, hub process or socket behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{Flavour, session_env, tag, which};
use crate::support::{Env, Run};

/// The one library the kanibako binary needs besides libc, which the test rig lacks:
/// put in the workspace (which helpers mount too) and named by `LD_LIBRARY_PATH`.
const LIBGCC: &str = "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1";
const LIB_IN_BOX: &str = "/home/agent/workspace/.kblib";

struct Team<'a> {
    e: &'a Env,
    program: PathBuf,
    containers: Vec<String>,
    sessions: Vec<Child>,
    hubs: Vec<PathBuf>,
}

impl Team<'_> {
    fn engine(&self, args: &[&str]) -> Run {
        Run::from(
            self.e
                .program_cmd(&self.program, &self.e.home, args)
                .output()
                .unwrap(),
        )
    }

    /// `kanibako crab helper …` inside container `c`, as the box's user.
    fn inbox(&self, c: &str, args: &[&str]) -> Run {
        let lib = format!("LD_LIBRARY_PATH={LIB_IN_BOX}");
        let mut a = vec![
            "exec",
            "-e",
            &lib,
            c,
            "/home/agent/.local/bin/kanibako",
            "crab",
            "helper",
        ];
        a.extend_from_slice(args);
        self.engine(&a)
    }

    fn running(&self, c: &str) -> bool {
        self.engine(&["inspect", "--format", "{{.State.Running}}", c])
            .stdout
            .trim()
            == "true"
    }

    /// `kanibako shell -- sleep 300` in `p`, in the background: an ephemeral session.
    fn session(&mut self, p: &Path, director: &str) {
        let child = self
            .e
            .cmd(p, &["shell", "--", "sleep", "300"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.sessions.push(child);
        self.containers.push(director.to_owned());
        wait_until(
            &format!("{director} to run"),
            Duration::from_secs(60),
            || self.running(director),
        );
    }
}

impl Drop for Team<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let mut args = vec!["rm", "-f"];
            if !self.program.ends_with("docker") {
                args.extend(["-t", "0"]);
            }
            args.push(c);
            let _ = self.engine(&args);
        }
        for rt in &self.hubs {
            if let Some(pid) = record(rt, "pid ") {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        for s in &mut self.sessions {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A field of the hub's lock record (`pid N`, `worker N`).
fn record(rt: &Path, key: &str) -> Option<i32> {
    let text = std::fs::read_to_string(rt.join("hub.lock")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn team_of_helpers(flavour: Flavour) {
    let Some((mut e, image)) = session_env(flavour) else {
        return;
    };
    let xdg = e.dir("xdg");
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    e.set("XDG_RUNTIME_DIR", &xdg);
    let program = PathBuf::from(which(if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    }));
    let tag = tag(flavour);
    let (a, b) = (format!("ha{tag}"), format!("hb{tag}"));
    let (pa, pb) = (e.dir(&format!("p/{a}")), e.dir(&format!("p/{b}")));
    for p in [&pa, &pb] {
        let lib = p.join(".kblib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::copy(LIBGCC, lib.join("libgcc_s.so.1")).unwrap();
    }
    e.chown_all(&e.home.join("p"));
    e.chown_all(&xdg);
    e.run(&pa, &["create", "-i", &image]).ok();
    e.run(&pb, &["create", "-i", &image]).ok();
    let (da, db) = (format!("kanibako-{a}"), format!("kanibako-{b}"));
    let helper = format!("{da}-helper-1");
    let hash_a = kanibako::boxes::project_hash(&pa);
    let rt_a = xdg.join("kanibako/b").join(&hash_a[..16]);
    let mut t = Team {
        e: &e,
        program,
        containers: vec![helper.clone()],
        sessions: Vec::new(),
        hubs: vec![rt_a.clone()],
    };

    // box A's session has its hub; from inside, through the mounted binary
    let started = Instant::now();
    t.session(&pa, &da);
    eprintln!(
        "{flavour:?}: shell to a running box took {} ms",
        started.elapsed().as_millis()
    );
    let ping = t.inbox(&da, &["ping", "--count", "20"]).ok();
    eprintln!(
        "{flavour:?}: hub round trips from inside a box: {}",
        ping.stdout.trim()
    );
    assert_eq!(t.inbox(&da, &["list"]).ok().stdout, "No helpers.\n");
    let t0 = Instant::now();
    let out = t.inbox(&da, &["spawn", "--model", "sonnet"]).ok();
    wait_until("the helper to run", Duration::from_secs(30), || {
        t.running(&helper)
    });
    eprintln!(
        "{flavour:?}: crab helper spawn to a running helper took {} ms",
        t0.elapsed().as_millis()
    );
    assert!(out.stdout.starts_with("Spawned helper 1\n"), "{out:?}");
    assert!(
        out.stdout.contains(&format!("  container: {helper}\n")),
        "{out:?}"
    );
    // the helper is the director's plan: the same project, its own home
    let ws = t
        .engine(&["exec", &helper, "ls", "/home/agent/workspace/.kblib"])
        .ok();
    assert!(ws.stdout.contains("libgcc_s.so.1"), "{ws:?}");
    let homes = e.data().join(format!("boxes/{a}/helpers/1"));
    assert!(homes.is_dir(), "{}", homes.display());

    // messages both ways, read with `log`
    t.inbox(&da, &["send", "1", "task for h1"]).ok();
    let log = t.inbox(&helper, &["log"]).ok();
    assert!(log.stdout.contains("[0 → 1]  task for h1"), "{log:?}");
    assert_eq!(
        t.inbox(&helper, &["send", "0", "report from h1"])
            .ok()
            .stdout,
        "Message sent to the director.\n"
    );
    let log = t.inbox(&da, &["log", "--from", "1"]).ok();
    assert!(log.stdout.contains("[1 → 0]  report from h1"), "{log:?}");
    let list = t.inbox(&da, &["list"]).ok();
    assert!(list.stdout.contains("1      running    sonnet"), "{list:?}");
    // the host sees the team
    let info = e.run(&pa, &["box", "info"]).ok();
    assert!(info.stdout.contains("1 (running, sonnet)"), "{info:?}");
    assert!(info.stdout.contains("hub running (pid "), "{info:?}");

    // box B has its own hub and sees, stops and messages nothing of A's
    t.session(&pb, &db);
    assert_eq!(t.inbox(&db, &["list"]).ok().stdout, "No helpers.\n");
    let r = t.inbox(&db, &["stop", "1"]).fails();
    assert!(!r.stderr.is_empty(), "{r:?}");
    assert!(t.running(&helper), "B could not stop A's helper");
    let comms = t
        .engine(&["exec", &db, "ls", "/home/agent/comms/mailbox"])
        .ok();
    assert_eq!(comms.stdout.trim(), b, "only its own mailbox: {comms:?}");

    // a killed worker is restarted by its supervisor; a killed hub by the next join
    let worker = record(&rt_a, "worker ").unwrap();
    Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .unwrap();
    assert_eq!(t.inbox(&helper, &["ping"]).ok().stdout, "pong\n");
    let hub = record(&rt_a, "pid ").unwrap();
    Command::new("kill")
        .args(["-9", &hub.to_string()])
        .status()
        .unwrap();
    wait_until("the hub to die", Duration::from_secs(10), || !alive(hub));
    e.run(&pa, &["shell", "--", "true"]).ok();
    let revived = record(&rt_a, "pid ").unwrap();
    assert_ne!(revived, hub);
    let list = t.inbox(&da, &["list"]).ok();
    assert!(list.stdout.contains("1      running"), "{list:?}");
    assert_eq!(t.inbox(&helper, &["ping"]).ok().stdout, "pong\n");

    // `stop` of A: no helper, hub or socket of A left; B untouched
    let r = e.run(&pa, &["stop"]).ok();
    assert!(r.stdout.contains(&format!("Stopped {da}")), "{r:?}");
    wait_until("A's hub to exit", Duration::from_secs(20), || {
        !alive(revived)
    });
    let filter = format!("label=io.kanibako.hash={hash_a}");
    let left = t.engine(&["ps", "-a", "-q", "--filter", &filter]).ok();
    assert_eq!(left.stdout.trim(), "", "nothing of A is left");
    assert!(!rt_a.exists(), "A's runtime directory and sockets are gone");
    assert!(t.running(&db), "B still runs");
    assert_eq!(t.inbox(&db, &["ping"]).ok().stdout, "pong\n");
    e.run(&pb, &["stop"]).ok();
    drop(t);
}

/// A persistent session's hub outlives `start` (run without a terminal, it leaves the
/// session in the background); its helper runs the agent; `stop` ends it all, and a
/// director that goes takes its hub and helpers with it.
fn persistent_hub(flavour: Flavour) {
    let Some((mut e, image)) = session_env(flavour) else {
        return;
    };
    let xdg = e.dir("xdg");
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    e.set("XDG_RUNTIME_DIR", &xdg);
    e.script(
        "claude",
        &format!(
            "{}echo \"agent-ready $*\"; exec sleep 300\n",
            super::FAKE_AUTH
        ),
    );
    let program = PathBuf::from(which(if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    }));
    let name = format!("hp{}", tag(flavour));
    let p = e.dir(&format!("p/{name}"));
    let lib = p.join(".kblib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(LIBGCC, lib.join("libgcc_s.so.1")).unwrap();
    e.chown_all(&e.home.join("p"));
    e.chown_all(&xdg);
    e.run(&p, &["create", "-i", &image]).ok();
    let director = format!("kanibako-{name}");
    let helper = format!("{director}-helper-1");
    let hash = kanibako::boxes::project_hash(&p);
    let rt = xdg.join("kanibako/b").join(&hash[..16]);
    let t = Team {
        e: &e,
        program,
        containers: vec![director.clone(), helper.clone()],
        sessions: Vec::new(),
        hubs: vec![rt.clone()],
    };
    for round in 0..2 {
        e.run(&p, &["start", "--persistent"]).ok();
        wait_until("the box to run", Duration::from_secs(60), || {
            t.running(&director)
        });
        let hub = record(&rt, "pid ").unwrap();
        assert!(alive(hub), "the hub outlives start");
        let out = t.inbox(&director, &["spawn"]).ok();
        assert!(out.stdout.starts_with("Spawned helper 1\n"), "{out:?}");
        wait_until("the helper to run", Duration::from_secs(30), || {
            t.running(&helper)
        });
        let top = t.engine(&["top", &helper]).ok();
        assert!(
            top.stdout.contains("sleep 300"),
            "the helper runs the agent: {top:?}"
        );
        if round == 0 {
            let r = e.run(&p, &["stop"]).ok();
            assert_eq!(r.stdout.trim(), format!("Stopped {director}"), "{r:?}");
        } else {
            // the director goes by itself: its hub removes the helper and ends
            let mut rm = vec!["rm", "-f"];
            if flavour != Flavour::Docker {
                rm.extend(["-t", "0"]);
            }
            rm.push(&director);
            t.engine(&rm).ok();
        }
        wait_until("the hub to exit", Duration::from_secs(30), || !alive(hub));
        assert!(!t.running(&helper) && !t.running(&director));
        let filter = format!("label=io.kanibako.hash={hash}");
        wait_until("no container of the box", Duration::from_secs(10), || {
            t.engine(&["ps", "-a", "-q", "--filter", &filter])
                .stdout
                .trim()
                .is_empty()
        });
        assert!(!rt.exists(), "its runtime directory is gone");
    }
    drop(t);
}

#[test]
fn rootful_podman_persistent_hub() {
    persistent_hub(Flavour::RootfulPodman);
}

#[test]
fn rootless_podman_persistent_hub() {
    persistent_hub(Flavour::RootlessPodman);
}

#[test]
fn docker_persistent_hub() {
    persistent_hub(Flavour::Docker);
}

#[test]
fn rootful_podman_team_of_helpers() {
    team_of_helpers(Flavour::RootfulPodman);
}

#[test]
fn rootless_podman_team_of_helpers() {
    team_of_helpers(Flavour::RootlessPodman);
}

#[test]
fn docker_team_of_helpers() {
    team_of_helpers(Flavour::Docker);
}

/// Issue 13: a helper of a box under `box.network = allowlist` has the director's way
/// out and no other: no network of its own, the proxy variables, and its command behind
/// the in-box forwarder, which relays to the `egress.sock` of the helper's own member
/// directory (the proxy logs it as `helper 1`). The allowed name is a loopback origin of
/// ours, pinned for the proxy (`KANIBAKO_EGRESS_PIN`).
#[test]
fn rootful_podman_allowlist_helper_goes_out_through_the_proxy() {
    use std::io::{Read as _, Write as _};
    let flavour = Flavour::RootfulPodman;
    let Some((mut e, _)) = session_env(flavour) else {
        return;
    };
    // the escape rig (scripts/escape-rig) holds the libgcc_s the in-box forwarder needs
    let image = std::env::var("KANIBAKO_TEST_ESCAPE_IMAGE")
        .unwrap_or_else(|_| "localhost/kanibako-escape:latest".into());
    let origin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = origin.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in origin.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nhello helper!\n");
        }
    });
    let xdg = e.dir("xdg");
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    e.set("XDG_RUNTIME_DIR", &xdg);
    e.set("KANIBAKO_EGRESS_PIN", "allowed.test=127.0.0.1");
    let name = format!("hx{}", tag(flavour));
    let p = e.dir(&format!("p/{name}"));
    let lib = p.join(".kblib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(LIBGCC, lib.join("libgcc_s.so.1")).unwrap();
    e.run(&p, &["create", "-i", &image]).ok();
    e.run(&p, &["box", "config", "box.network=allowlist"]).ok();
    e.run(
        &p,
        &["box", "config", &format!("box.allow=allowed.test:{port}")],
    )
    .ok();
    let director = format!("kanibako-{name}");
    let helper = format!("{director}-helper-1");
    let mut t = Team {
        e: &e,
        program: PathBuf::from(which("podman")),
        containers: vec![helper.clone()],
        sessions: Vec::new(),
        hubs: Vec::new(),
    };
    t.session(&p, &director);
    let out = t.inbox(&director, &["spawn"]).ok();
    assert!(out.stdout.starts_with("Spawned helper 1\n"), "{out:?}");
    wait_until("the helper to run", Duration::from_secs(30), || {
        t.running(&helper)
    });
    let get = format!("wget -q -O- http://allowed.test:{port}/");
    // the forwarder starts with the helper's command: wait for it to listen
    let mut got = Run::from(Command::new("true").output().unwrap());
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        got = t.engine(&["exec", &helper, "sh", "-c", &get]);
        if got.code == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(got.stdout.contains("hello helper!"), "{got:?}");
    let refused = t.engine(&[
        "exec",
        &helper,
        "sh",
        "-c",
        "wget -q -O- http://forbidden.test/",
    ]);
    assert_ne!(refused.code, 0, "{refused:?}");
    let direct = t.engine(&["exec", &helper, "sh", "-c", "ls /sys/class/net"]);
    assert_eq!(
        direct.stdout.trim(),
        "lo",
        "no network of its own: {direct:?}"
    );
    let log = e.run(&p, &["box", "net", "log"]).ok();
    assert!(
        log.stdout.lines().any(|l| l.contains("  helper 1  ")
            && l.contains("allow")
            && l.contains("allowed.test")),
        "{}",
        log.stdout
    );
    assert!(
        log.stdout.lines().any(|l| l.contains("  helper 1  ")
            && l.contains("deny")
            && l.contains("forbidden.test")),
        "{}",
        log.stdout
    );
    e.run(&p, &["stop"]).ok();
    drop(t);
}
