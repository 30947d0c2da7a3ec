//! Whether the engine runs on another machine: decided from how the engine is reached,
//! without asking it. A remote engine sees its own host's files, uids and sockets, not
//! ours (what a box's run becomes there is `crate::remote`).
//!
//! podman: `CONTAINER_CONNECTION` (a named `podman system connection`), or a
//! `CONTAINER_HOST` that is `ssh://` or `tcp://` (any scheme but `unix://`), or a
//! `podman-remote` program. docker: a `DOCKER_HOST` that is `ssh://` or `tcp://`, or a
//! `DOCKER_CONTEXT` other than `default` (a context may point anywhere). A `unix://`
//! socket is local. The `engine.remote` setting (`yes`/`no`) overrides all of it: a unix
//! socket that is really a tunnel to another machine (`ssh -L`) is `yes`.

use super::EngineKind;

/// [`detect`] for the engine program at `program`, from the host's variables.
pub fn detect_for(
    kind: EngineKind,
    program: &std::path::Path,
    host: &crate::host::HostEnv,
) -> Option<String> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    detect(kind, &name, |k| host.var_str(k).map(str::to_owned))
}

/// Why the engine is remote, as shown to the user (`None`: local).
pub fn detect(
    kind: EngineKind,
    program_name: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let by_url = |name: &str| {
        set(name)
            .filter(|url| !url.starts_with("unix://") && !url.starts_with("npipe://"))
            .map(|url| format!("{name}={url}"))
    };
    match kind {
        EngineKind::Podman => set("CONTAINER_CONNECTION")
            .map(|c| format!("CONTAINER_CONNECTION={c}"))
            .or_else(|| by_url("CONTAINER_HOST"))
            .or_else(|| {
                program_name
                    .contains("remote")
                    .then(|| format!("the engine program is {program_name}"))
            }),
        EngineKind::Docker => by_url("DOCKER_HOST").or_else(|| {
            set("DOCKER_CONTEXT")
                .filter(|c| c != "default")
                .map(|c| format!("DOCKER_CONTEXT={c}"))
        }),
    }
}

/// `engine.remote`: `yes`, `no`, else (`auto`, unset) what [`detect`] found.
pub fn decide(setting: Option<&str>, detected: Option<String>) -> Option<String> {
    match setting {
        Some("yes") => Some(detected.unwrap_or_else(|| "engine.remote is yes".into())),
        Some("no") => None,
        _ => detected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn how_an_engine_is_reached_says_whether_it_is_remote() {
        let p = EngineKind::Podman;
        let d = EngineKind::Docker;
        assert_eq!(detect(p, "podman", with(&[])), None);
        assert_eq!(
            detect(
                p,
                "podman",
                with(&[("CONTAINER_HOST", "unix:///run/podman.sock")])
            ),
            None,
            "a unix socket is this host's"
        );
        assert_eq!(
            detect(
                p,
                "podman",
                with(&[("CONTAINER_HOST", "ssh://me@build/run/p.sock")])
            )
            .as_deref(),
            Some("CONTAINER_HOST=ssh://me@build/run/p.sock")
        );
        assert!(detect(p, "podman", with(&[("CONTAINER_HOST", "tcp://build:8080")])).is_some());
        assert!(detect(p, "podman", with(&[("CONTAINER_CONNECTION", "build")])).is_some());
        assert!(detect(p, "podman-remote", with(&[])).is_some());
        assert_eq!(
            detect(d, "docker", with(&[("DOCKER_HOST", "unix:///run/d.sock")])),
            None
        );
        assert!(detect(d, "docker", with(&[("DOCKER_HOST", "ssh://build")])).is_some());
        assert!(detect(d, "docker", with(&[("DOCKER_HOST", "tcp://build:2376")])).is_some());
        assert!(detect(d, "docker", with(&[("DOCKER_CONTEXT", "build")])).is_some());
        assert_eq!(
            detect(d, "docker", with(&[("DOCKER_CONTEXT", "default")])),
            None
        );
        assert_eq!(
            detect(d, "docker", with(&[("DOCKER_HOST", "")])),
            None,
            "empty is unset"
        );
    }

    #[test]
    fn the_setting_overrides_what_was_detected() {
        let found = || Some("DOCKER_HOST=ssh://b".to_owned());
        assert_eq!(decide(None, found()), found());
        assert_eq!(decide(Some("auto"), None), None);
        assert_eq!(decide(Some("no"), found()), None);
        assert_eq!(
            decide(Some("yes"), None).as_deref(),
            Some("engine.remote is yes")
        );
        assert_eq!(decide(Some("yes"), found()), found());
    }
}
