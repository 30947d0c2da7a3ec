//! `--browser` on real engines: the box fetches `/json/version` through the endpoint it
//! was given, while the host reaches the DevTools port on none of its interfaces (no
//! port published, nothing on the sidecar's own address); the sidecar goes with an
//! ephemeral session, and with a persistent box on `stop`. Needs the browser image
//! (`scripts/browser-image`): skips without it, fails instead under REQUIRE_ENGINE.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Flavour, session_env, tag};
use crate::support::{Env, engine_required};

const BROWSER_IMAGE: &str = "localhost/kanibako-browser:latest";

/// The engine command as kanibako runs it here (its user, its config).
fn engine(e: &Env, flavour: Flavour, args: &[&str]) -> crate::support::Run {
    let program = if flavour == Flavour::Docker {
        "/usr/bin/docker"
    } else {
        "/usr/bin/podman"
    };
    crate::support::Run::from(
        e.program_cmd(Path::new(program), &e.home, args)
            .output()
            .unwrap(),
    )
}

/// Bash in the box (the rig has it): the endpoint's port, then `/json/version` fetched
/// through it, written into the workspace; then it waits for the host to be done.
const IN_BOX: &str = r#"p=${BROWSER_WS_ENDPOINT#ws://127.0.0.1:}; p=${p%%/*}
echo "$BROWSER_WS_ENDPOINT" > endpoint.tmp
exec 3<>/dev/tcp/127.0.0.1/$p || exit 3
printf 'GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n' "$p" >&3
while IFS= read -r -t 10 l <&3; do printf '%s\n' "$l"; case $l in '}'*) break ;; esac; done > version.tmp
mv endpoint.tmp endpoint; mv version.tmp version
for i in $(seq 600); do [ -e done ] && exit 0; sleep 0.1; done; exit 4"#;

/// The box and its sidecar removed even when an assertion fails first.
struct Cleanup<'a> {
    e: &'a Env,
    flavour: Flavour,
    names: [String; 2],
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = engine(self.e, self.flavour, &["rm", "-f", n]);
        }
    }
}

fn wait_for(path: &Path, secs: u64) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn the_box_alone_reaches_devtools(flavour: Flavour) {
    let Some((e, image)) = session_env(flavour) else {
        return;
    };
    if engine(&e, flavour, &["image", "inspect", BROWSER_IMAGE]).code != 0 {
        assert!(
            !engine_required(),
            "{flavour:?} needs {BROWSER_IMAGE} here: run scripts/browser-image"
        );
        eprintln!("skipped {flavour:?}: no {BROWSER_IMAGE} (scripts/browser-image)");
        return;
    }
    let p = e.dir(&format!("p/br{}", tag(flavour)));
    e.run(&p, &["create", "-i", &image]).ok();
    let container = format!("kanibako-br{}", tag(flavour));
    let sidecar = format!("{container}-browser");
    let _cleanup = Cleanup {
        e: &e,
        flavour,
        names: [container.clone(), sidecar.clone()],
    };

    let child = e
        .cmd(&p, &["shell", "--browser", "--", "bash", "-c", IN_BOX])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = wait_for(&p.join("version"), 90);
    let finish = |child: std::process::Child| {
        let _ = std::fs::write(p.join("done"), "");
        child.wait_with_output().unwrap()
    };
    if !reached {
        let out = finish(child);
        panic!("{flavour:?}: the box fetched nothing: {out:?}");
    }
    let endpoint = std::fs::read_to_string(p.join("endpoint")).unwrap();
    let version = std::fs::read_to_string(p.join("version")).unwrap();
    let endpoint = endpoint.trim();
    let port: u16 = endpoint
        .strip_prefix("ws://127.0.0.1:")
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{flavour:?}: endpoint {endpoint:?}"));
    assert!(
        version.contains("HTTP/1.1 200") && version.contains("\"Browser\": \"Chrome/"),
        "{flavour:?}: {version}"
    );
    assert!(
        version.contains(&format!("\"webSocketDebuggerUrl\": \"{endpoint}\"")),
        "{flavour:?}: the endpoint is the browser's own: {endpoint} {version}"
    );

    // the host: no published port, nothing on loopback, nothing on the sidecar's address
    let running = engine(
        &e,
        flavour,
        &["inspect", "--format", "{{.State.Running}}", &sidecar],
    );
    assert_eq!(running.stdout.trim(), "true", "{flavour:?}: {running:?}");
    let ports = engine(&e, flavour, &["port", &sidecar]);
    assert!(
        ports.stdout.trim().is_empty(),
        "{flavour:?}: published {ports:?}"
    );
    let ips = engine(
        &e,
        flavour,
        &[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &sidecar,
        ],
    );
    let mut tried = vec!["127.0.0.1".to_owned()];
    tried.extend(ips.stdout.split_whitespace().map(str::to_owned));
    for ip in &tried {
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "{flavour:?}: the host reached DevTools at {addr}"
        );
    }
    eprintln!("{flavour:?}: DevTools on port {port}, unreachable from the host at {tried:?}");

    // the session ends: the sidecar and its profile go
    let out = finish(child);
    assert!(out.status.success(), "{flavour:?}: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Warning"),
        "{flavour:?}: {out:?}"
    );
    let gone = engine(&e, flavour, &["inspect", "--format", "{{.Name}}", &sidecar]);
    assert_ne!(
        gone.code, 0,
        "{flavour:?}: the sidecar outlived its session"
    );
    let state = e
        .home
        .join(".local/state/kanibako/browser")
        .join(&container);
    assert!(!state.exists(), "{flavour:?}: {}", state.display());

    // a persistent session keeps its sidecar until `stop`
    e.run(
        &p,
        &["shell", "--persistent", "--browser", "--", "sleep", "300"],
    )
    .ok();
    let running = engine(
        &e,
        flavour,
        &["inspect", "--format", "{{.State.Running}}", &sidecar],
    );
    assert_eq!(running.stdout.trim(), "true", "{flavour:?}: {running:?}");
    e.run(&p, &["stop"]).ok();
    let gone = engine(&e, flavour, &["inspect", "--format", "{{.Name}}", &sidecar]);
    assert_ne!(gone.code, 0, "{flavour:?}: stop left the sidecar");
    assert!(!state.exists());
}

#[test]
fn podman_browser_sidecar() {
    the_box_alone_reaches_devtools(Flavour::RootfulPodman);
}

#[test]
fn docker_browser_sidecar() {
    the_box_alone_reaches_devtools(Flavour::Docker);
}

#[test]
fn rootless_podman_browser_sidecar() {
    the_box_alone_reaches_devtools(Flavour::RootlessPodman);
}
