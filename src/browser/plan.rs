//! The browser sidecar's run, planned from the box's (pure): its [`RunSpec`], the box's
//! run joined to its network namespace, and the DevTools endpoint read from what
//! Chromium writes into its profile.
//!
//! Upstream publishes DevTools on every host interface (`-p 9222`, spec §0b). Here the
//! sidecar takes the network the box would have had, listens on 127.0.0.1 only, and the
//! box runs inside the sidecar's network namespace (`--network=container:…`): no port
//! is published, so only the box (and nothing on the host's network) reaches it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::runtime::labels;
use crate::runtime::spec::{Mount, Network, RunMode, RunSpec, UserMapping};

/// DevTools listens on a port of the kernel's choosing on the shared namespace's
/// loopback (none the agent's own servers might hold): Chromium writes which only then,
/// into [`ACTIVE_PORT_FILE`] (a fixed port gets no such file), and the endpoint has it.
const DEVTOOLS_PORT: &str = "0";
/// Where the sidecar sees its per-session host directory (its home; the profile is
/// below it).
pub const GUEST_DIR: &str = "/browser";
/// The profile directory, relative to [`GUEST_DIR`] and to the host directory.
pub const PROFILE: &str = "profile";
/// What Chromium writes into its profile once DevTools listen: the port, then the
/// browser's path (`/devtools/browser/<id>`).
pub const ACTIVE_PORT_FILE: &str = "DevToolsActivePort";
/// The variable the agent finds the endpoint in (upstream's name).
pub const ENDPOINT_VAR: &str = "BROWSER_WS_ENDPOINT";
/// The `io.kanibako.role` of a sidecar: no box's session, so `stop`, `ps` and the hub
/// never take it for one.
pub const ROLE: &str = "browser";

/// The sidecar of the box container `box_name`.
pub fn sidecar_name(box_name: &str) -> String {
    format!("{box_name}-browser")
}

/// Chromium's switches: headless, no first-run or background traffic, DevTools on
/// loopback only (on a port of the kernel's choosing), the profile in the mounted
/// directory. `proxy`: the box's egress forwarder (`box.network=allowlist`), the only
/// way out of the shared namespace.
pub fn chromium_args(proxy: Option<&str>) -> Vec<OsString> {
    let mut a: Vec<String> = [
        "--headless",
        // the sidecar's own confinement replaces Chromium's (it needs user namespaces)
        "--no-sandbox",
        "--disable-gpu",
        // /dev/shm is 64 MiB in a container: use /tmp instead of crashing tabs
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--remote-debugging-address=127.0.0.1",
    ]
    .map(str::to_owned)
    .to_vec();
    a.push(format!("--remote-debugging-port={DEVTOOLS_PORT}"));
    a.push(format!("--user-data-dir={GUEST_DIR}/{PROFILE}"));
    if let Some(p) = proxy {
        a.push(format!("--proxy-server={p}"));
    }
    a.push("about:blank".into());
    a.into_iter().map(OsString::from).collect()
}

/// The sidecar of the box run `box_spec`, on `image` (whose entrypoint is Chromium),
/// with `dir` (the host directory) as its home: the box's network, confinement and
/// user; nothing else of the box's is mounted.
pub fn sidecar(box_spec: &RunSpec, image: &str, dir: &Path, proxy: Option<&str>) -> RunSpec {
    let user = match &box_spec.user {
        // The split map exists for the rig's layers (a mounted rootfs): the sidecar's
        // image runs as the invoking user directly.
        UserMapping::SplitMap { host_uid, host_gid } => UserMapping::User {
            uid: *host_uid,
            gid: *host_gid,
        },
        u => u.clone(),
    };
    RunSpec {
        name: sidecar_name(&box_spec.name),
        image: image.to_owned(),
        mode: RunMode::Detached,
        network: box_spec.network.clone(),
        user,
        confined: box_spec.confined.clone(),
        workdir: String::new(),
        mounts: vec![Mount::Bind {
            src: dir.to_owned(),
            dst: GUEST_DIR.into(),
            read_only: false,
            relabel: true,
        }],
        env: BTreeMap::from([("HOME".to_owned(), GUEST_DIR.to_owned())]),
        pass_env: Vec::new(),
        labels: BTreeMap::from([
            (labels::ROLE.to_owned(), ROLE.to_owned()),
            (
                labels::VERSION.to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
        ]),
        entrypoint: None,
        command: chromium_args(proxy),
    }
}

/// The box run `spec` beside sidecar `sidecar`: in its network namespace, told the
/// endpoint (over any value of the user's: no other browser is reachable there).
pub fn join(mut spec: RunSpec, sidecar: &str, endpoint: &str) -> RunSpec {
    spec.network = Network::Container(sidecar.to_owned());
    // rootless podman: its user namespace too (the sidecar's has the box's mapping)
    if spec.user == (UserMapping::KeepId { pin: true }) {
        spec.user = UserMapping::Joined {
            container: sidecar.to_owned(),
        };
    }
    spec.env
        .insert(ENDPOINT_VAR.to_owned(), endpoint.to_owned());
    spec
}

/// The endpoint from the text of [`ACTIVE_PORT_FILE`]: `None` until both lines are
/// there (Chromium may be mid-write) and well-formed.
pub fn endpoint(active_port: &str) -> Option<String> {
    let mut lines = active_port.lines();
    let port: u16 = lines.next()?.trim().parse().ok()?;
    let path = lines.next()?.trim();
    let id = path.strip_prefix("/devtools/browser/")?;
    if port == 0 || id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    Some(format!("ws://127.0.0.1:{port}{path}"))
}

/// What `--dry-run` shows for the endpoint: the browser's id is known only once it runs.
pub fn endpoint_placeholder() -> String {
    "ws://127.0.0.1:<port>/devtools/browser/<id>".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EngineKind;
    use crate::runtime::spec::Confinement;
    use std::path::PathBuf;

    fn box_spec(user: UserMapping, network: Network) -> RunSpec {
        RunSpec {
            name: "kanibako-app".into(),
            image: "localhost/rig:1".into(),
            mode: RunMode::Foreground { tty: false },
            network,
            user,
            confined: Some(Confinement::default()),
            workdir: "/home/agent/workspace".into(),
            mounts: vec![Mount::Bind {
                src: "/p/app".into(),
                dst: "/home/agent/workspace".into(),
                read_only: false,
                relabel: true,
            }],
            env: BTreeMap::from([("SECRET".into(), "x".into())]),
            pass_env: vec!["ANTHROPIC_API_KEY".into()],
            labels: BTreeMap::from([(labels::HASH.to_owned(), "h".to_owned())]),
            entrypoint: Some("claude".into()),
            command: vec!["--continue".into()],
        }
    }

    fn render(s: &RunSpec, kind: EngineKind) -> String {
        s.to_args(kind, None, Some(Path::new("/run/e")))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    const DIR: &str = "/s/browser/kanibako-app";

    #[test]
    fn the_sidecar_has_the_box_s_network_and_hardening_and_nothing_else_of_it() {
        let dir = PathBuf::from(DIR);
        let rootful = box_spec(
            UserMapping::SplitMap {
                host_uid: 1000,
                host_gid: 1000,
            },
            Network::Default,
        );
        insta::assert_snapshot!(
            "rootful_podman",
            render(
                &sidecar(&rootful, "localhost/kanibako-browser:latest", &dir, None),
                EngineKind::Podman
            )
        );
        let docker = box_spec(UserMapping::User { uid: 0, gid: 0 }, Network::None);
        insta::assert_snapshot!(
            "docker_allowlist",
            render(
                &sidecar(&docker, "b:1", &dir, Some("http://127.0.0.1:3128")),
                EngineKind::Docker
            )
        );
        let rootless = box_spec(UserMapping::KeepId { pin: true }, Network::Default);
        let s = sidecar(&rootless, "b:1", &dir, None);
        assert_eq!(s.user, UserMapping::KeepId { pin: true });
        assert!(s.pass_env.is_empty() && !s.env.contains_key("SECRET"));
        assert!(!s.labels.contains_key(labels::HASH), "no box's session");
        assert_eq!(s.mounts.len(), 1);
        let out = render(&s, EngineKind::Podman);
        assert!(!out.contains("-p ") && !out.contains("--publish"), "{out}");
    }

    #[test]
    fn the_box_joins_the_sidecar_s_namespace_and_gets_the_endpoint() {
        let mut b = box_spec(UserMapping::KeepId { pin: true }, Network::None);
        b.env.insert(ENDPOINT_VAR.into(), "ws://elsewhere".into());
        let j = join(
            b,
            "kanibako-app-browser",
            "ws://127.0.0.1:9222/devtools/browser/x",
        );
        assert_eq!(j.network, Network::Container("kanibako-app-browser".into()));
        assert_eq!(
            j.env[ENDPOINT_VAR],
            "ws://127.0.0.1:9222/devtools/browser/x"
        );
        let out = render(&j, EngineKind::Podman);
        assert!(
            out.contains(" --network=container:kanibako-app-browser "),
            "{out}"
        );
        assert!(!out.contains("--network=none"), "{out}");
        assert!(
            out.contains(" --userns=container:kanibako-app-browser --user 1000:1000 "),
            "rootless podman: the sidecar's user namespace too: {out}"
        );
        let docker = box_spec(UserMapping::User { uid: 5, gid: 5 }, Network::None);
        let j = join(docker, "s", "ws://x");
        assert_eq!(j.user, UserMapping::User { uid: 5, gid: 5 });
    }

    #[test]
    fn the_endpoint_is_read_only_from_a_whole_active_port_file() {
        let id = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        assert_eq!(
            endpoint(&format!("9222\n/devtools/browser/{id}\n")).as_deref(),
            Some(format!("ws://127.0.0.1:9222/devtools/browser/{id}").as_str())
        );
        assert_eq!(endpoint(""), None);
        assert_eq!(endpoint("9222\n"), None, "mid-write");
        assert_eq!(endpoint("9222\n/devtools/browser/"), None);
        assert_eq!(endpoint("x\n/devtools/browser/a"), None);
        assert_eq!(endpoint("0\n/devtools/browser/a"), None);
        assert_eq!(endpoint("9222\n/devtools/page/a"), None);
        assert_eq!(endpoint("9222\n/devtools/browser/a b"), None);
        assert_eq!(endpoint("9222\n/devtools/browser/a?x=@evil"), None);
    }
}
