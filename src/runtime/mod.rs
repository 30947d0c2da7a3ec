//! The container engine: which one (podman or docker), how it is reached, and the
//! calls kanibako makes to it.
//!
//! Detection is cheap on purpose (a `PATH` lookup, no `podman info`): the engine's
//! flavour comes from its name, rootless-ness from our own uid unless the engine is
//! remote. Calls are built as [`Invocation`]s and run through one [`Executor`].

pub mod containers;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::{HostEnv, vars};
use crate::process::{Executor, Invocation};

/// Labels kanibako puts on every container it starts. Activity is decided by these,
/// never by a name another tool could share.
pub mod labels {
    /// The box's registered name (empty for standalone boxes).
    pub const BOX: &str = "io.kanibako.box";
    /// sha256 of the box's project path: unique even where names collide.
    pub const HASH: &str = "io.kanibako.hash";
    /// The kanibako version that started the container.
    pub const VERSION: &str = "io.kanibako.version";
    /// The image a rootful-podman container runs on as a mounted rootfs (to unmount).
    pub const ROOTFS: &str = "io.kanibako.rootfs";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Podman,
    Docker,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Podman => "podman",
            EngineKind::Docker => "docker",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub kind: EngineKind,
    pub program: PathBuf,
    /// Containers run in the invoking user's user namespace (rootless podman, or a
    /// rootless docker daemon).
    pub rootless: bool,
    /// The engine talks to a daemon or service elsewhere, so our uid says nothing.
    pub remote: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("No container runtime found.")]
    NotFound,
    #[error("container runtime '{0}' (from {var}) not found", var = vars::DOCKER_CMD)]
    OverrideMissing(String),
    #[error("cannot tell whether '{0}' is podman or docker")]
    UnknownKind(PathBuf),
    #[error("running {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed (exit {code}): {stderr}")]
    Failed {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("could not read the output of `{command}`: {message}")]
    BadOutput { command: String, message: String },
}

impl RuntimeError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RuntimeError::NotFound => {
                Some("Install podman (https://podman.io/) or Docker, then try again.".into())
            }
            RuntimeError::OverrideMissing(_) => Some(format!(
                "set {} to a podman or docker binary, or unset it",
                vars::DOCKER_CMD
            )),
            _ => None,
        }
    }
}

fn kind_from_name(program: &Path) -> Option<EngineKind> {
    let name = program.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.contains("podman") {
        Some(EngineKind::Podman)
    } else if name.contains("docker") {
        Some(EngineKind::Docker)
    } else {
        None
    }
}

/// `podman version 4.3.1` / `Docker version 20.10.24, build …`.
pub fn kind_from_version_output(out: &str) -> Option<EngineKind> {
    let lower = out.to_ascii_lowercase();
    if lower.starts_with("podman") {
        Some(EngineKind::Podman)
    } else if lower.starts_with("docker") {
        Some(EngineKind::Docker)
    } else {
        None
    }
}

/// An engine version, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

/// The version in `podman version 4.3.1` or `Docker version 20.10.24, build 297e128`.
pub fn parse_version(out: &str) -> Option<Version> {
    let word = out
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut nums = word
        .trim_end_matches(',')
        .split(['.', '-', '+'])
        .map(|n| n.parse::<u32>().ok());
    Some(Version(
        nums.next()??,
        nums.next().flatten().unwrap_or(0),
        nums.next().flatten().unwrap_or(0),
    ))
}

/// Find the engine: `KANIBAKO_DOCKER_CMD`, else `podman`, else `docker` on `PATH`.
pub fn detect(host: &HostEnv, exec: &dyn Executor) -> Result<EngineInfo, RuntimeError> {
    let program = match host.var_str(vars::DOCKER_CMD) {
        Some(cmd) => {
            let found = if cmd.contains('/') {
                let p = host.cwd.join(cmd);
                p.is_file().then_some(p)
            } else {
                host.which(cmd)
            };
            found.ok_or_else(|| RuntimeError::OverrideMissing(cmd.to_owned()))?
        }
        None => host
            .which("podman")
            .or_else(|| host.which("docker"))
            .ok_or(RuntimeError::NotFound)?,
    };
    let kind = match kind_from_name(&program) {
        Some(k) => k,
        None => {
            // A wrapper with a neutral name: ask it.
            let inv = Invocation::new(&program).arg("--version");
            let out = exec.output(&inv).map_err(|source| RuntimeError::Spawn {
                command: inv.to_string(),
                source,
            })?;
            kind_from_version_output(&String::from_utf8_lossy(&out.stdout))
                .ok_or_else(|| RuntimeError::UnknownKind(program.clone()))?
        }
    };
    Ok(engine_info(host, kind, program))
}

fn engine_info(host: &HostEnv, kind: EngineKind, program: PathBuf) -> EngineInfo {
    let (rootless, remote) = match kind {
        EngineKind::Podman => {
            let remote = host.var(vars::CONTAINER_HOST).is_some()
                || program
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("remote"));
            (!remote && host.uid != 0, remote)
        }
        EngineKind::Docker => {
            // Docker is a daemon: rootless only when its socket lives in a user runtime dir.
            let docker_host = host.var_str(vars::DOCKER_HOST).unwrap_or("");
            let rootless = docker_host.contains("/run/user/");
            let remote = docker_host.starts_with("tcp://") || docker_host.starts_with("ssh://");
            (rootless, remote)
        }
    };
    EngineInfo {
        kind,
        program,
        rootless,
        remote,
    }
}

/// The engine plus the executor that runs its commands. Cheap to clone, and `Send`: a
/// background thread (the rig freshness check) asks the engine through the same executor.
#[derive(Clone)]
pub struct Runtime {
    pub engine: EngineInfo,
    pub exec: Arc<dyn Executor>,
}

impl Runtime {
    pub fn new(engine: EngineInfo, exec: Arc<dyn Executor>) -> Self {
        Self { engine, exec }
    }

    pub fn invocation(&self) -> Invocation {
        Invocation::new(&self.engine.program)
    }

    /// The engine's version (one `--version` call; asked only where a capability depends
    /// on it, never on every launch).
    pub fn version(&self) -> Result<Version, RuntimeError> {
        let inv = self.invocation().arg("--version");
        let out = self.query(&inv)?;
        parse_version(&out).ok_or_else(|| RuntimeError::BadOutput {
            command: inv.to_string(),
            message: format!("no version in {:?}", out.trim()),
        })
    }

    /// [`Runtime::version`], remembered in `cache` for this very engine binary (its
    /// path, size and modification time): a launch that depends on the version should
    /// not start the engine an extra time to learn it.
    pub fn version_cached(&self, cache: &std::path::Path) -> Result<Version, RuntimeError> {
        let id = std::fs::metadata(&self.engine.program).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            crate::boxes::project_hash(std::path::Path::new(&format!(
                "{}|{}|{}",
                self.engine.program.display(),
                m.len(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            )))
        });
        let file = id.map(|id| cache.join("engine-version").join(&id[..16]));
        if let Some(v) = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| parse_version(&t))
        {
            return Ok(v);
        }
        let v = self.version()?;
        if let Some(f) = file {
            let text = format!("{}.{}.{}\n", v.0, v.1, v.2);
            // A cache that cannot be written costs the next launch one call.
            let _ = crate::fsutil::atomic_write(&f, text.as_bytes(), crate::fsutil::MODE_CONFIG);
        }
        Ok(v)
    }

    /// Whether `image` is in the local store (one `image inspect`).
    pub fn image_exists(&self, image: &str) -> bool {
        let inv = self
            .invocation()
            .args(["image", "inspect", "--format", "{{.Id}}"])
            .arg(image);
        self.exec.output(&inv).is_ok_and(|o| o.status.success())
    }

    /// Run a query and return its stdout; a non-zero exit is an error with its stderr.
    pub fn query(&self, inv: &Invocation) -> Result<String, RuntimeError> {
        let out = self
            .exec
            .output(inv)
            .map_err(|source| RuntimeError::Spawn {
                command: inv.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Failed {
                command: inv.to_string(),
                code: out.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Every container of the engine, running or not.
    pub fn containers(&self) -> Result<Vec<containers::ContainerSummary>, RuntimeError> {
        let inv = containers::list_invocation(self.invocation(), self.engine.kind);
        let stdout = self.query(&inv)?;
        containers::parse_list(self.engine.kind, &stdout).map_err(|message| {
            RuntimeError::BadOutput {
                command: inv.to_string(),
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::testing::Recorder;

    fn host(vars: &[(&str, &str)], uid: u32) -> HostEnv {
        let mut h = HostEnv::for_test(Path::new("/"), vars);
        h.uid = uid;
        h
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("podman version 4.3.1\n"),
            Some(Version(4, 3, 1))
        );
        assert_eq!(
            parse_version("Docker version 20.10.24+dfsg1, build 297e128"),
            Some(Version(20, 10, 24))
        );
        assert_eq!(
            parse_version("podman version 5.0.0-dev"),
            Some(Version(5, 0, 0))
        );
        assert_eq!(parse_version("podman version"), None);
        assert!(Version(4, 3, 1) >= Version(4, 3, 0));
    }

    #[test]
    fn override_must_exist() {
        let h = host(&[("KANIBAKO_DOCKER_CMD", "/nonexistent/podman")], 0);
        let err = detect(&h, &Recorder::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "container runtime '/nonexistent/podman' (from KANIBAKO_DOCKER_CMD) not found"
        );
    }

    #[test]
    fn nothing_on_path_is_not_found() {
        let h = host(&[("PATH", "/nonexistent")], 0);
        assert!(matches!(
            detect(&h, &Recorder::default()),
            Err(RuntimeError::NotFound)
        ));
    }

    #[test]
    fn neutral_names_are_asked_for_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("engine");
        std::fs::write(&wrapper, "").unwrap();
        let h = host(&[("KANIBAKO_DOCKER_CMD", wrapper.to_str().unwrap())], 1000);
        let rec = Recorder::default().answer(&["--version"], 0, "podman version 4.3.1\n");
        let e = detect(&h, &rec).unwrap();
        assert_eq!(e.kind, EngineKind::Podman);
        assert!(e.rootless);
        assert_eq!(
            rec.lines(),
            vec![format!("{} --version", wrapper.display())]
        );
    }

    #[test]
    fn rootless_follows_uid_unless_remote() {
        let p = PathBuf::from("/usr/bin/podman");
        assert!(!engine_info(&host(&[], 0), EngineKind::Podman, p.clone()).rootless);
        assert!(engine_info(&host(&[], 1001), EngineKind::Podman, p.clone()).rootless);
        let remote = engine_info(
            &host(&[("CONTAINER_HOST", "ssh://x")], 1001),
            EngineKind::Podman,
            p,
        );
        assert!(remote.remote && !remote.rootless);
        let d = PathBuf::from("/usr/bin/docker");
        assert!(!engine_info(&host(&[], 1001), EngineKind::Docker, d.clone()).rootless);
        assert!(
            engine_info(
                &host(
                    &[("DOCKER_HOST", "unix:///run/user/1001/docker.sock")],
                    1001
                ),
                EngineKind::Docker,
                d
            )
            .rootless
        );
    }

    #[test]
    fn the_engine_version_is_asked_once_per_engine_binary() {
        let t = tempfile::tempdir().unwrap();
        let program = t.path().join("podman");
        std::fs::write(&program, "").unwrap();
        let rec = Recorder::default().answer(&["--version"], 0, "podman version 4.3.1\n");
        let rec = Arc::new(rec);
        let rt = Runtime::new(
            EngineInfo {
                kind: EngineKind::Podman,
                program: program.clone(),
                rootless: true,
                remote: false,
            },
            rec.clone(),
        );
        let cache = t.path().join("cache");
        assert_eq!(rt.version_cached(&cache).unwrap(), Version(4, 3, 1));
        assert_eq!(rt.version_cached(&cache).unwrap(), Version(4, 3, 1));
        assert_eq!(
            rec.calls().len(),
            1,
            "the second answer came from the cache"
        );
        // a new engine binary (another size) is asked again
        std::fs::write(&program, "upgraded").unwrap();
        rt.version_cached(&cache).unwrap();
        assert_eq!(rec.calls().len(), 2);
    }
}
