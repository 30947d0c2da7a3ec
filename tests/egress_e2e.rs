//! The egress path on real engines (rootful podman, rootless podman, docker): a box
//! with `--network=none`, the proxy's socket in a read-only mounted directory served by
//! `kanibako egress-serve` on the host, the mounted kanibako binary running
//! `egress-forward` in the box, and probes from inside it with bash's `/dev/tcp`.
//! Skips where no engine is set up; fails instead when KANIBAKO_TEST_REQUIRE_ENGINE=1.
// Tests drive the binary from outside: they start processes and read their own
// environment directly, which the library routes through `process` and `host`.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kanibako::egress::journal;
use support::{Env, Run, engine_required};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    RootfulPodman,
    RootlessPodman,
    Docker,
}

fn which(program: &str) -> String {
    let out = Command::new("which").arg(program).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The environment to drive `flavour` from, the engine binary and the image; `None`
/// (skip) where it is not set up, which fails instead under REQUIRE_ENGINE.
fn flavour_env(flavour: Flavour) -> Option<(Env, String, String)> {
    let skip = |why: &str| {
        assert!(!engine_required(), "{flavour:?} is required here: {why}");
        eprintln!("skipped {flavour:?}: {why}");
        None
    };
    let Ok(image) = std::env::var("KANIBAKO_TEST_IMAGE") else {
        return skip("no KANIBAKO_TEST_IMAGE (scripts/prepare-engines)");
    };
    let program = which(if flavour == Flavour::Docker {
        "docker"
    } else {
        "podman"
    });
    if program.is_empty() {
        return skip("engine not installed");
    }
    if flavour == Flavour::Docker && std::env::var("DOCKER_HOST").is_err() {
        return skip("no private dockerd (DOCKER_HOST; scripts/prepare-engines --docker)");
    }
    let mut e = match flavour {
        Flavour::RootfulPodman => Env::with_system_path(),
        _ => {
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
    let r = Run::from(
        e.program_cmd(
            Path::new(&program),
            e.home.as_path(),
            &["image", "inspect", &image],
        )
        .output()
        .unwrap(),
    );
    if r.code != 0 {
        return skip(&format!("{program} has no {image}: {}", r.stderr.trim()));
    }
    Some((e, program, image))
}

/// A loopback server on the host: `echo` sends back each line, `http` answers once.
fn origin(http: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            thread::spawn(move || {
                if http {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&b[..n]),
                        }
                    }
                    let body = "hello from the host origin\n";
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                } else {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                    let _ = s.shutdown(Shutdown::Write);
                }
            });
        }
    });
    port
}

/// `kanibako egress-serve` on the host, as the engine's user; stopped on drop.
struct Served {
    child: Option<Child>,
    cmd: Vec<String>,
    sock: PathBuf,
}

impl Served {
    fn start(e: &Env, exe: &Path, sock: &Path, args: Vec<String>) -> Served {
        let mut s = Served {
            child: None,
            cmd: args,
            sock: sock.to_owned(),
        };
        s.restart(e, exe);
        s
    }

    fn restart(&mut self, e: &Env, exe: &Path) {
        let args: Vec<&str> = self.cmd.iter().map(String::as_str).collect();
        let child = e
            .program_cmd(exe, e.home.as_path(), &args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while UnixStream::connect(&self.sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "egress-serve did not start"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // the child is setpriv, which exec'd kanibako: same pid
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The box, removed on drop even when an assertion fails.
struct Container<'a> {
    e: &'a Env,
    program: String,
    name: String,
}

impl Container<'_> {
    fn engine(&self, args: &[&str]) -> Run {
        Run::from(
            self.e
                .program_cmd(Path::new(&self.program), self.e.home.as_path(), args)
                .output()
                .unwrap(),
        )
    }

    fn sh(&self, script: &str) -> Run {
        self.engine(&["exec", &self.name, "bash", "-c", script])
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let mut args = vec!["rm", "-f"];
        if !self.program.ends_with("docker") {
            args.extend(["-t", "0"]);
        }
        args.push(&self.name);
        let _ = self.engine(&args);
    }
}

/// bash helpers for the probes: `ask RAW` prints the proxy's status line and its
/// `X-Kanibako-Egress` mark (or NOCONN / NOANSWER), `direct HOST PORT` tries a plain
/// TCP connection.
const PRELUDE: &str = r#"
ask() {
  exec 3<>/dev/tcp/127.0.0.1/3128 || { echo NOCONN; return; }
  printf '%b' "$1" >&3
  local line l
  IFS= read -r -t 10 line <&3 || { echo NOANSWER; exec 3>&-; return; }
  echo "${line%$'\r'}"
  while IFS= read -r -t 10 l <&3; do
    l=${l%$'\r'}; [ -z "$l" ] && break
    case "$l" in X-Kanibako-Egress:*) echo "mark=${l#*: }";; esac
  done
  exec 3>&-
}
direct() {
  if (exec 3<>"/dev/tcp/$1/$2") 2>/tmp/direct.err; then echo CONNECTED; else tr '\n' ' ' </tmp/direct.err; echo; fi
}
"#;

/// libgcc_s, which the kanibako binary links and the test image (host binaries that
/// do not need it) lacks: mounted from the host at its merged-/usr path.
fn libgcc_mount(exe: &Path) -> Option<String> {
    let out = Command::new("ldd").arg(exe).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = text
        .lines()
        .find(|l| l.contains("libgcc_s"))?
        .split("=>")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_owned();
    let inside = if path.starts_with("/usr/") {
        path.clone()
    } else {
        format!("/usr{path}")
    };
    Some(format!("{path}:{inside}:ro"))
}

fn egress_box(flavour: Flavour) {
    let Some((e, program, image)) = flavour_env(flavour) else {
        return;
    };
    let tag = format!(
        "{}{}",
        std::process::id(),
        format!("{flavour:?}").to_lowercase()
    );
    let echo = origin(false);
    let web = origin(true);

    // the binary, readable by every user and every engine
    let bin_dir = e.root.path().join(format!("kb-bin-{tag}"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = bin_dir.join("kanibako");
    std::fs::copy(env!("CARGO_BIN_EXE_kanibako"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();

    // the member directory: 0700, owned by the box user's host uid
    let member_dir = e.dir(&format!("eg{tag}/m/director"));
    let (box_user, owner) = match flavour {
        Flavour::RootfulPodman => {
            std::os::unix::fs::chown(&member_dir, Some(1000), Some(1000)).unwrap();
            (
                vec!["--user".to_owned(), "1000:1000".to_owned()],
                Some("1000:1000"),
            )
        }
        Flavour::RootlessPodman => (vec!["--userns=keep-id:uid=1000,gid=1000".to_owned()], None),
        Flavour::Docker => (vec!["--user".to_owned(), format!("{0}:{0}", e.uid())], None),
    };
    std::fs::set_permissions(&member_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let sock = member_dir.join("egress.sock");
    let state = e.dir(&format!("eg{tag}/state"));
    let policy = state.join("policy.json");
    let log = state.join("egress.log");
    std::fs::write(
        &policy,
        format!(
            r#"{{"allow_private": ["allowed.test:{echo}", "web.test:{web}"], "allow": ["lo.test:{echo}"]}}"#
        ),
    )
    .unwrap();
    e.chown_all(&state);
    let mut args: Vec<String> = [
        "egress-serve",
        "--socket",
        sock.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--member",
        "director",
        "--resolve",
        "allowed.test=127.0.0.1",
        "--resolve",
        "web.test=127.0.0.1",
        "--resolve",
        "lo.test=127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(o) = owner {
        args.extend(["--owner".into(), o.into()]);
    }
    let mut served = Served::start(&e, &exe, &sock, args);

    let name = format!("kbeg-{tag}");
    let c = Container {
        e: &e,
        program: program.clone(),
        name: name.clone(),
    };
    let mut run: Vec<String> = [
        "run",
        "-d",
        "--init",
        "--network=none",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        "--name",
        &name,
        "--label",
        "io.kanibako.test=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    run.extend(box_user);
    run.push("-v".into());
    run.push(format!("{}:/run/kanibako:ro", member_dir.display()));
    run.push("-v".into());
    run.push(format!("{}:/opt/kb/kanibako:ro", exe.display()));
    if let Some(m) = libgcc_mount(&exe) {
        run.extend(["-v".into(), m]);
    }
    run.extend([image.clone(), "sleep".into(), "600".into()]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    c.engine(&run).ok();

    // the forwarder, as a box's supervisor would start it
    c.engine(&[
        "exec",
        "-d",
        &name,
        "sh",
        "-c",
        "/opt/kb/kanibako egress-forward 2>/tmp/fwd.err & echo $! > /tmp/fwd.pid; wait",
    ])
    .ok();
    let ready = c.sh(
        "for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && exit 0; sleep 0.1; done; cat /tmp/fwd.err; exit 1",
    );
    assert_eq!(ready.code, 0, "the forwarder listens: {ready:?}");

    let probes = format!(
        r#"{PRELUDE}
echo "id=$(id -u)"
exec 4<>/dev/tcp/127.0.0.1/3128
printf 'CONNECT allowed.test:{echo} HTTP/1.1\r\nHost: allowed.test\r\n\r\n' >&4
IFS= read -r -t 10 line <&4; echo "tunnel=${{line%$'\r'}}"; IFS= read -r -t 10 blank <&4
printf 'ping from the box\n' >&4; IFS= read -r -t 10 reply <&4; echo "echoed=$reply"
exec 4>&-
exec 5<>/dev/tcp/127.0.0.1/3128
printf 'GET http://web.test:{web}/hi HTTP/1.1\r\nHost: web.test\r\n\r\n' >&5
echo "web=$(tr -d '\r' <&5 | tail -n 1)"
echo "forbidden=$(ask 'CONNECT forbidden.test:443 HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "http_forbidden=$(ask 'GET http://forbidden.test/ HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "ip_literal=$(ask 'CONNECT 127.0.0.1:{echo} HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "ip6_literal=$(ask 'CONNECT [::1]:{echo} HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "localhost=$(ask 'CONNECT localhost:{echo} HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "no_opt_in=$(ask 'CONNECT lo.test:{echo} HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "wrong_port=$(ask 'CONNECT allowed.test:22 HTTP/1.1\r\n\r\n' | tr '\n' ' ')"
echo "direct_public=$(direct 1.1.1.1 443)"
echo "direct_host_port=$(direct 127.0.0.1 {echo})"
echo "connect_client=$(echo via-egress-connect | /opt/kb/kanibako egress-connect allowed.test {echo})"
touch /run/kanibako/planted 2>/dev/null && echo "ro=writable" || echo "ro=read-only"
rm -f /run/kanibako/egress.sock 2>/dev/null && echo "rm=removed" || echo "rm=kept"
"#
    );
    let r = c.sh(&probes);
    let out = r.stdout.clone();
    let get = |key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {r:#?}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        get("id"),
        if flavour == Flavour::Docker {
            e.uid().to_string()
        } else {
            "1000".into()
        }
    );
    assert_eq!(
        get("tunnel"),
        "HTTP/1.1 200 Connection established",
        "{r:#?}"
    );
    assert_eq!(get("echoed"), "ping from the box");
    assert_eq!(get("web"), "hello from the host origin");
    assert_eq!(get("forbidden"), "HTTP/1.1 403 Forbidden mark=no_rule");
    assert_eq!(get("http_forbidden"), "HTTP/1.1 403 Forbidden mark=no_rule");
    assert_eq!(get("ip_literal"), "HTTP/1.1 403 Forbidden mark=ip_literal");
    assert_eq!(get("ip6_literal"), "HTTP/1.1 403 Forbidden mark=ip_literal");
    assert_eq!(get("localhost"), "HTTP/1.1 403 Forbidden mark=no_rule");
    assert_eq!(get("no_opt_in"), "HTTP/1.1 403 Forbidden mark=non_public");
    assert_eq!(get("wrong_port"), "HTTP/1.1 403 Forbidden mark=no_rule");
    assert!(
        get("direct_public").contains("Network is unreachable"),
        "{r:#?}"
    );
    assert!(
        get("direct_host_port").contains("Connection refused"),
        "{r:#?}"
    );
    assert_eq!(get("connect_client"), "via-egress-connect");
    assert_eq!(get("ro"), "read-only");
    assert_eq!(get("rm"), "kept");

    // the self-test passes
    let check = c.sh("/opt/kb/kanibako egress-check");
    assert_eq!(check.code, 0, "{check:#?}");
    assert_eq!(
        check
            .stdout
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        3,
        "{check:#?}"
    );

    // the host saw and logged every decision, with the member
    let records = journal::read(&log).unwrap();
    let find = |host: &str, decision: &str| {
        records
            .iter()
            .any(|r| r.host == host && r.decision == decision && r.member == "director")
    };
    assert!(find("allowed.test", "allow"), "{records:#?}");
    assert!(find("web.test", "allow"), "{records:#?}");
    assert!(find("forbidden.test", "deny"), "{records:#?}");
    assert!(find("127.0.0.1", "deny") && find("[::1]", "deny") && find("lo.test", "deny"));
    assert!(
        find("kanibako-egress-selftest.invalid", "deny"),
        "{records:#?}"
    );
    let tunnel = records
        .iter()
        .find(|r| r.host == "allowed.test" && r.status == 200)
        .unwrap();
    assert_eq!(tunnel.bytes_up, "ping from the box\n".len() as u64);

    // the host side dies: the box has no way out, and the self-test says so
    served.kill();
    let r = c.sh(&format!(
        "{PRELUDE}ask 'CONNECT allowed.test:{echo} HTTP/1.1\\r\\n\\r\\n'; direct 1.1.1.1 443"
    ));
    assert!(r.stdout.starts_with("NOANSWER"), "{r:#?}");
    assert!(r.stdout.contains("Network is unreachable"), "{r:#?}");
    let check = c.sh("/opt/kb/kanibako egress-check --timeout 2");
    assert_eq!(check.code, 1, "{check:#?}");
    assert!(
        check.stderr.contains("the egress self-test failed"),
        "{check:#?}"
    );

    // it comes back: the running forwarder reaches it through the same directory
    served.restart(&e, &exe);
    let r = c.sh(&format!(
        "{PRELUDE}ask 'CONNECT allowed.test:{echo} HTTP/1.1\\r\\n\\r\\n'"
    ));
    assert!(r.stdout.starts_with("HTTP/1.1 200 "), "{r:#?}");

    // the forwarder dies: nothing listens, nothing else gets out
    c.sh("kill $(cat /tmp/fwd.pid)").ok();
    let r = c.sh(&format!(
        "{PRELUDE}sleep 0.2; ask 'CONNECT allowed.test:{echo} HTTP/1.1\\r\\n\\r\\n'; direct 1.1.1.1 443; direct 127.0.0.1 {echo}"
    ));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"NOCONN"), "{r:#?}");
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.contains("Network is unreachable")),
        "{r:#?}"
    );
    assert!(
        lines
            .get(2)
            .is_some_and(|l| l.contains("Connection refused")),
        "{r:#?}"
    );
    let check = c.sh("/opt/kb/kanibako egress-check --timeout 2");
    assert_eq!(check.code, 1, "{check:#?}");
}

#[test]
fn podman_egress_box() {
    egress_box(Flavour::RootfulPodman);
}

#[test]
fn rootless_podman_egress_box() {
    egress_box(Flavour::RootlessPodman);
}

#[test]
fn docker_egress_box() {
    egress_box(Flavour::Docker);
}
