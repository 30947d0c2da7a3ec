//! The container engine: which one (podman or docker), how it is reached, and the
//! calls kanibako makes to it.
//!
//! Detection is cheap on purpose (a `PATH` lookup, no `podman info`): the engine's
//! flavour comes from its name, rootless-ness from our own uid unless the engine is
//! remote. How podman and docker differ is said once, as capability methods of
//! [`EngineInfo`] and [`EngineKind`]; nothing outside this module matches on the kind.
//!
//! Every engine call is a typed [`Runtime`] method, grouped by noun ([`containers`],
//! [`images`]; the engine itself here): a pure invocation builder, the one executor, a
//! pure parser of the answer. Outside this module nobody builds engine argv or reaches
//! the executor through a `Runtime`.

pub mod containers;
pub mod images;
pub mod limits;
pub mod remote;
pub mod seccomp;
pub mod spec;
pub mod tun;
pub mod user;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;

use crate::host::{HostEnv, vars};
use crate::process::{Executor, Invocation};
use user::{BOX_GID, BOX_UID, UserMapping};

/// Labels kanibako puts on every container it starts. Activity is decided by these,
/// never by a name another tool could share.
pub mod labels {
    /// The box's registered name (empty for standalone boxes).
    pub const BOX: &str = "io.kanibako.box";
    /// sha256 of the box's project path: unique even where names collide.
    pub const HASH: &str = "io.kanibako.hash";
    /// Which data directory's kanibako started it ([`crate::paths::Paths::data_id`]): on
    /// an engine other users (or other data directories) share, `stop --all`, `ps` and
    /// `list` see only their own.
    pub const DATA: &str = "io.kanibako.data";
    /// The kanibako version that started the container.
    pub const VERSION: &str = "io.kanibako.version";
    /// The image a rootful-podman container runs on as a mounted rootfs (to unmount).
    pub const ROOTFS: &str = "io.kanibako.rootfs";
    /// What a container that is no box's session is for (`rig-extend`, `rig-check`,
    /// `tweakcc`).
    pub const ROLE: &str = "io.kanibako.role";
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

    /// Whether a tmpfs mount starts as a copy of what it covers unless told not to
    /// (podman's `notmpcopyup`; docker never copies, and rejects the option).
    pub fn tmpfs_copies_up(self) -> bool {
        self == EngineKind::Podman
    }

    /// Whether `-v` takes `nosuid,nodev` (podman; docker rejects them, and there the
    /// dropped capabilities and no-new-privileges keep set-id files inert in the box).
    pub fn binds_take_nosuid(self) -> bool {
        self == EngineKind::Podman
    }

    /// Whether `keep-id` can pin the uid and gid it maps to (podman 4.3 and later).
    pub fn keep_id_pins(self, version: Version) -> bool {
        self == EngineKind::Podman && version >= Version(4, 3, 0)
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

impl EngineInfo {
    /// Whether each container gets a user namespace of its own here (local podman), so
    /// the box's user can be mapped to the invoking one.
    fn maps_users(&self) -> bool {
        self.kind == EngineKind::Podman && !self.remote
    }

    /// The in-box user for the invoking `uid`/`gid` (see [`UserMapping`]).
    /// `keep_id_pins` is asked only where the answer matters (rootless podman), since
    /// it may cost a `--version` call.
    pub fn user_mapping(
        &self,
        uid: u32,
        gid: u32,
        keep_id_pins: impl FnOnce() -> bool,
    ) -> UserMapping {
        if self.maps_users() {
            if self.rootless {
                UserMapping::KeepId {
                    pin: keep_id_pins(),
                }
            } else {
                UserMapping::SplitMap {
                    host_uid: uid,
                    host_gid: gid,
                }
            }
        } else if uid == 0 || self.remote {
            UserMapping::User {
                uid: BOX_UID,
                gid: BOX_GID,
            }
        } else {
            UserMapping::User { uid, gid }
        }
    }

    /// Whether the invoking root cannot be the box's user (an engine without user
    /// namespaces, on this host): the box then runs as, and writes as, [`BOX_UID`].
    pub fn cannot_map_root(&self, uid: u32) -> bool {
        uid == 0 && !self.maps_users() && !self.remote
    }

    /// Whether the engine keeps its images in a store a box can be given read-only
    /// (`--share-images`: podman's graph root; docker's images live in its daemon).
    pub fn shares_image_store(&self) -> bool {
        self.kind == EngineKind::Podman
    }

    /// Whether `--userns=keep-id` maps the invoking user into a container (local
    /// rootless podman).
    pub fn keeps_ids(&self) -> bool {
        self.maps_users() && self.rootless
    }

    /// Whether `unshare` can enter the user namespace rootless containers write files
    /// in (to delete what they left behind).
    pub fn can_unshare(&self) -> bool {
        self.kind == EngineKind::Podman && self.rootless
    }
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
    /// runc cannot set the limits the engine asks for ([`limits`]).
    #[error("{cause}")]
    HostLimits { cause: String, fix: String },
    /// Rootless podman cannot open `/dev/net/tun` for a container's network ([`tun`]).
    #[error("{cause}")]
    NoTun { cause: String, fix: String },
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
            RuntimeError::HostLimits { fix, .. } | RuntimeError::NoTun { fix, .. } => {
                Some(fix.clone())
            }
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

fn podman_rootless(remote: bool, uid: u32) -> bool {
    !remote && uid != 0
}

fn engine_info(host: &HostEnv, kind: EngineKind, program: PathBuf) -> EngineInfo {
    let remote = remote::detect_for(kind, &program, host).is_some();
    let rootless = match kind {
        EngineKind::Podman => podman_rootless(remote, host.uid),
        // Docker is a daemon: rootless only when its socket lives in a user runtime dir.
        EngineKind::Docker => host
            .var_str(vars::DOCKER_HOST)
            .is_some_and(|h| h.contains("/run/user/")),
    };
    EngineInfo {
        kind,
        program,
        rootless,
        remote,
    }
}

impl EngineInfo {
    /// This engine as `engine.remote` says it is (see [`remote::decide`]), for a user
    /// `uid`: podman's rootlessness follows, either way, by the one rule of
    /// [`engine_info`] (a remote podman's containers are not in our user namespace).
    pub fn with_remote(mut self, remote: bool, uid: u32) -> Self {
        if self.kind == EngineKind::Podman {
            self.rootless = podman_rootless(remote, uid);
        }
        self.remote = remote;
        self
    }
}

/// The engine plus the executor that runs its commands. Cheap to clone, and `Send`: a
/// background thread (the rig freshness check) asks the engine through the same executor.
#[derive(Clone)]
pub struct Runtime {
    pub engine: EngineInfo,
    exec: Arc<dyn Executor>,
    /// The host's limits against the engine's, looked at on the first `run`.
    limits: Option<Arc<limits::Probe>>,
    /// Long engine work (build, pull) shows a spinner and keeps the engine's output
    /// back unless it fails (on a terminal without `-v`); otherwise the output streams.
    progress: bool,
}

impl Runtime {
    pub fn new(engine: EngineInfo, exec: Arc<dyn Executor>) -> Self {
        Self {
            engine,
            exec,
            limits: None,
            progress: false,
        }
    }

    /// Show long engine work as a spinner (see [`Runtime::progress`]).
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// A spinner labelled `label` for a wait the engine shows nothing of (a run whose
    /// output is captured), when progress is on; it goes when dropped.
    pub fn spinner(&self, label: &str) -> Option<crate::progress::Spinner> {
        self.progress
            .then(|| crate::progress::Spinner::start(label))
    }

    /// Run `inv`, the engine's output streamed to our terminal, or, with progress on,
    /// under a spinner labelled `label` and shown only if the command fails.
    fn status_with_progress(&self, inv: &Invocation, label: &str) -> io::Result<ExitStatus> {
        if !self.progress {
            return self.exec.status(inv);
        }
        let spinner = crate::progress::Spinner::start(label);
        let out = self.exec.output(inv);
        spinner.finish();
        let out = out?;
        if !out.status.success() {
            crate::output::relay(&String::from_utf8_lossy(&out.stdout));
            crate::output::relay(&String::from_utf8_lossy(&out.stderr));
        }
        Ok(out.status)
    }

    /// Every `run` gets the `--ulimit`s `probe` finds the host needs.
    pub fn with_limits(mut self, probe: limits::Probe) -> Self {
        self.limits = Some(Arc::new(probe));
        self
    }

    /// What a `run` needs for the host's limits ([`limits::decide`]).
    pub fn limits(&self) -> Option<&(limits::HostLimits, limits::Decision)> {
        self.limits.as_ref().map(|p| p.get(&self.engine))
    }

    /// The engine program, for the builders of the noun modules.
    fn invocation(&self) -> Invocation {
        Invocation::new(&self.engine.program)
    }

    /// A failure to start the engine at all.
    fn spawn_error(&self, source: std::io::Error) -> RuntimeError {
        RuntimeError::Spawn {
            command: self.engine.program.display().to_string(),
            source,
        }
    }

    /// Run with output captured; only a failure to start is an error.
    fn capture(&self, inv: &Invocation) -> Result<std::process::Output, RuntimeError> {
        self.exec.output(inv).map_err(|e| self.spawn_error(e))
    }

    /// Whether the call ran and exited 0.
    fn succeeds(&self, inv: &Invocation) -> bool {
        self.exec.output(inv).is_ok_and(|o| o.status.success())
    }

    /// Run attached to our terminal as its foreground job.
    fn foreground(&self, inv: &Invocation) -> Result<std::process::ExitStatus, RuntimeError> {
        self.exec.foreground(inv).map_err(|e| self.spawn_error(e))
    }

    /// Run a query and return its stdout; a non-zero exit is an error with its stderr.
    fn query(&self, inv: &Invocation) -> Result<String, RuntimeError> {
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
    pub fn version_cached(&self, cache: &Path) -> Result<Version, RuntimeError> {
        let id = std::fs::metadata(&self.engine.program).ok().map(|m| {
            use sha2::{Digest, Sha256};
            use std::os::unix::fs::MetadataExt;
            let id = format!(
                "{}|{}|{}",
                self.engine.program.display(),
                m.len(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            );
            crate::hex::encode(&Sha256::digest(id.as_bytes()))
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

    /// The in-box user for the invoking `uid`/`gid` on this engine; the version that
    /// decides keep-id pinning is read through `cache` ([`Runtime::version_cached`]).
    pub fn user_mapping(&self, uid: u32, gid: u32, cache: &Path) -> UserMapping {
        self.engine.user_mapping(uid, gid, || {
            self.version_cached(cache)
                .is_ok_and(|v| self.engine.kind.keep_id_pins(v))
        })
    }

    /// The engine's storage driver (`overlay`, `vfs`, …), from one `info` call: the
    /// first call that needs the engine itself (a daemon, a store) to answer.
    pub fn storage_driver(&self) -> Result<String, RuntimeError> {
        let format = match self.engine.kind {
            EngineKind::Podman => "{{.Store.GraphDriverName}}",
            EngineKind::Docker => "{{.Driver}}",
        };
        let inv = self.invocation().args(["info", "--format", format]);
        Ok(self.query(&inv)?.trim().to_owned())
    }

    /// Delete `dir` from inside the rootless user namespace, where files a container
    /// made belong to sub-uids the user cannot remove directly
    /// ([`EngineInfo::can_unshare`]).
    pub fn unshare_remove(&self, dir: &Path) -> Result<(), RuntimeError> {
        let inv = self.invocation().args(["unshare", "rm", "-rf"]).arg(dir);
        self.query(&inv).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::testing::Recorder;

    #[test]
    fn engine_remote_sets_podman_rootlessness_both_ways() {
        let podman = EngineInfo {
            kind: EngineKind::Podman,
            program: "podman".into(),
            rootless: false,
            remote: true,
        };
        let local = podman.clone().with_remote(false, 1000);
        assert!(
            local.rootless && !local.remote,
            "engine.remote=no for a user: rootless"
        );
        let remote = local.with_remote(true, 1000);
        assert!(!remote.rootless && remote.remote);
        assert!(
            !remote.with_remote(false, 0).rootless,
            "root's podman is rootful"
        );
    }

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

    #[test]
    fn a_build_or_pull_under_a_spinner_still_reports_the_engine_status() {
        for progress in [false, true] {
            let rec = Arc::new(Recorder::default().answer(&["build"], 3, "").answer(
                &["pull"],
                125,
                "",
            ));
            let rt = Runtime::new(
                EngineInfo {
                    kind: EngineKind::Podman,
                    program: "podman".into(),
                    rootless: false,
                    remote: false,
                },
                rec.clone(),
            )
            .with_progress(progress);
            let t = tempfile::tempdir().unwrap();
            let file = t.path().join("Containerfile");
            assert_eq!(rt.build("img", "base", &file, t.path()).unwrap(), 3);
            assert!(!rt.pull("img"), "progress={progress}");
            assert_eq!(rec.calls().len(), 2, "one engine call each");
            // a wait of ours (the tweakcc patch) gets a spinner only with progress on
            assert_eq!(rt.spinner("patching").is_some(), progress);
        }
    }
}
