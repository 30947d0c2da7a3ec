//! Containers: every engine call about one (`ps`, `inspect`, `rm`, `stop`, `logs`,
//! `exec`, `cp`, `commit`, and `run` of a [`RunSpec`]).
//!
//! Each call is a pure invocation builder (`*_invocation`) and, where the answer is
//! read, a pure parser of its output, both unit-tested; the [`Runtime`] methods at the
//! end only join a builder, the executor and a parser.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};

use serde::Deserialize;

use super::spec::RunSpec;
use super::{EngineKind, Runtime, RuntimeError, labels};
use crate::process::Invocation;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub name: String,
    pub running: bool,
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

/// `ps -a` with machine-readable output. Podman prints one JSON array; docker prints one
/// JSON object per line.
pub fn list_invocation(base: Invocation, kind: EngineKind) -> Invocation {
    match kind {
        EngineKind::Podman => base.args(["ps", "-a", "--format", "json"]),
        EngineKind::Docker => base.args(["ps", "-a", "--no-trunc", "--format", "{{json .}}"]),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanPs {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerPs {
    #[serde(default)]
    names: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: String,
}

/// Docker renders labels as `k=v,k=v`. Our own label values never contain commas (names
/// are validated, the rest are hex and versions), so splitting is exact for them.
fn docker_labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn parse_list(kind: EngineKind, stdout: &str) -> Result<Vec<ContainerSummary>, String> {
    match kind {
        EngineKind::Podman => {
            if stdout.trim().is_empty() {
                return Ok(Vec::new());
            }
            let rows: Vec<PodmanPs> = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|r| ContainerSummary {
                    name: r.names.into_iter().next().unwrap_or_default(),
                    running: r.state.eq_ignore_ascii_case("running"),
                    image: r.image,
                    labels: r.labels.unwrap_or_default(),
                })
                .collect())
        }
        EngineKind::Docker => stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let r: DockerPs = serde_json::from_str(line).map_err(|e| e.to_string())?;
                Ok(ContainerSummary {
                    name: r.names.split(',').next().unwrap_or_default().to_owned(),
                    running: r.state.eq_ignore_ascii_case("running"),
                    image: r.image,
                    labels: docker_labels(&r.labels),
                })
            })
            .collect(),
    }
}

/// What one `inspect` says about a box's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    /// Its `io.kanibako.hash` label: whose box it is (`None`: unlabelled).
    pub hash: Option<String>,
    /// Its `io.kanibako.rootfs` label: the image it runs on as a mounted rootfs.
    pub rootfs: Option<String>,
}

/// `container inspect` of running state and the two labels that say whose container it
/// is and what it runs on.
pub fn state_invocation(base: Invocation, name: &str) -> Invocation {
    let format = format!(
        "{{{{.State.Running}}}}|{{{{index .Config.Labels \"{}\"}}}}|{{{{index .Config.Labels \"{}\"}}}}",
        labels::HASH,
        labels::ROOTFS
    );
    base.args(["container", "inspect", "--format", &format])
        .arg(name)
}

/// A label the template found nothing for reads `<no value>` (podman) or nothing.
fn label_value(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty() && *s != "<no value>")
        .map(str::to_owned)
}

pub fn parse_state(stdout: &str) -> ContainerState {
    let mut fields = stdout.trim().split('|');
    let running = fields.next() == Some("true");
    ContainerState {
        running,
        hash: label_value(fields.next()),
        rootfs: label_value(fields.next()),
    }
}

/// `container inspect` of the running state alone.
pub fn running_invocation(base: Invocation, name: &str) -> Invocation {
    base.args(["container", "inspect", "--format", "{{.State.Running}}"])
        .arg(name)
}

/// `container inspect` with no format: does a container of this name exist at all.
pub fn exists_invocation(base: Invocation, name: &str) -> Invocation {
    base.args(["container", "inspect"]).arg(name)
}

/// `rm -f`: remove, stopped or not.
pub fn remove_invocation(base: Invocation, name: &str) -> Invocation {
    base.args(["rm", "-f"]).arg(name)
}

/// Whether an `rm -f` that succeeded removed something: podman's also succeeds for a
/// container already gone, but then names nothing.
pub fn parse_removed(stdout: &[u8]) -> bool {
    !stdout.trim_ascii().is_empty()
}

/// `stop -t SECS`: SIGTERM, then SIGKILL after `secs`.
pub fn stop_invocation(base: Invocation, name: &str, secs: u32) -> Invocation {
    base.args(["stop", "-t"]).arg(secs.to_string()).arg(name)
}

/// `logs --tail N`.
pub fn logs_invocation(base: Invocation, name: &str, lines: u32) -> Invocation {
    base.args(["logs", "--tail"])
        .arg(lines.to_string())
        .arg(name)
}

/// A container's log as one text: what it wrote to stdout, then to stderr.
pub fn parse_logs(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

/// How `exec` connects to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecInput {
    /// Our terminal (`-it`).
    Terminal,
    /// Our stdin, without a terminal (`-i`).
    Stdin,
    /// None: a check whose exit status is the answer.
    None,
}

/// `exec [-it|-i] [--env-file F] NAME COMMAND…`.
pub fn exec_invocation(
    base: Invocation,
    name: &str,
    input: ExecInput,
    env_file: Option<&Path>,
    command: &[OsString],
) -> Invocation {
    let mut inv = base.arg("exec");
    match input {
        ExecInput::Terminal => inv = inv.arg("-it"),
        ExecInput::Stdin => inv = inv.arg("-i"),
        ExecInput::None => {}
    }
    if let Some(f) = env_file {
        inv = inv.arg("--env-file").arg(f);
    }
    inv.arg(name).args(command)
}

/// `cp SRC CONTAINER:DEST`.
pub fn copy_into_invocation(
    base: Invocation,
    src: &Path,
    container: &str,
    dest: &str,
) -> Invocation {
    base.arg("cp").arg(src).arg(format!("{container}:{dest}"))
}

/// See [`Runtime::check_bind_sources`].
pub fn check_binds_invocation(
    base: Invocation,
    image: &str,
    name: &str,
    sources: &[&Path],
) -> Invocation {
    let mut inv = base
        .arg("create")
        .arg("--pull=never")
        .arg("--network=none")
        .arg("--name")
        .arg(name);
    for (i, s) in sources.iter().enumerate() {
        let mut spec = std::ffi::OsString::from("type=bind,src=");
        spec.push(s.as_os_str());
        spec.push(format!(",dst=/kanibako-check/{i}"));
        inv = inv.arg("--mount").arg(spec);
    }
    inv.arg(image).arg("true")
}

/// `commit CONTAINER IMAGE`.
pub fn commit_invocation(base: Invocation, container: &str, image: &str) -> Invocation {
    base.arg("commit").arg(container).arg(image)
}

/// `run …` of `spec` ([`RunSpec::to_args`]).
pub fn run_invocation(
    base: Invocation,
    kind: EngineKind,
    spec: &RunSpec,
    rootfs: Option<&Path>,
    env_file: Option<&Path>,
) -> Invocation {
    base.args(spec.to_args(kind, rootfs, env_file))
}

/// Containers, by name.
impl Runtime {
    /// Every container of the engine, running or not.
    pub fn containers(&self) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let inv = list_invocation(self.invocation(), self.engine.kind);
        let stdout = self.query(&inv)?;
        parse_list(self.engine.kind, &stdout).map_err(|message| RuntimeError::BadOutput {
            command: inv.to_string(),
            message,
        })
    }

    /// The container `name`'s state; `None` when there is none. Only a failure to run
    /// the engine at all is an error.
    pub fn container_state(&self, name: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let out = self.capture(&state_invocation(self.invocation(), name))?;
        Ok(out
            .status
            .success()
            .then(|| parse_state(&String::from_utf8_lossy(&out.stdout))))
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.query(&running_invocation(self.invocation(), name))
            .is_ok_and(|o| o.trim() == "true")
    }

    pub fn container_exists(&self, name: &str) -> bool {
        self.succeeds(&exists_invocation(self.invocation(), name))
    }

    /// `rm -f`: `None` if it failed; else whether it removed a container (rather than
    /// finding it already gone).
    pub fn remove_container(&self, name: &str) -> Option<bool> {
        let out = self
            .capture(&remove_invocation(self.invocation(), name))
            .ok()?;
        out.status.success().then(|| parse_removed(&out.stdout))
    }

    /// Create (never start) a container `name` of `image` that bind-mounts each of
    /// `sources`, then remove it: the engine's own word on whether they exist on its
    /// host (`--mount`, which refuses a missing source where `-v` would make it). The
    /// engine's complaint when it refused.
    pub fn check_bind_sources(
        &self,
        image: &str,
        name: &str,
        sources: &[&Path],
    ) -> Result<Option<String>, RuntimeError> {
        let out = self.capture(&check_binds_invocation(
            self.invocation(),
            image,
            name,
            sources,
        ))?;
        if out.status.success() {
            let _ = self.remove_container(name);
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }

    /// What [`Runtime::remove_container`] runs, for `--dry-run`.
    pub fn remove_container_invocation(&self, name: &str) -> Invocation {
        remove_invocation(self.invocation(), name)
    }

    /// Stop, allowing `secs` before SIGKILL; whether it succeeded.
    pub fn stop_container(&self, name: &str, secs: u32) -> bool {
        self.succeeds(&stop_invocation(self.invocation(), name, secs))
    }

    /// The last `lines` of the container's log (empty if there is none to read).
    pub fn container_logs(&self, name: &str, lines: u32) -> String {
        match self.capture(&logs_invocation(self.invocation(), name, lines)) {
            Ok(o) if o.status.success() => parse_logs(&o),
            _ => String::new(),
        }
    }

    /// The `exec` that [`Runtime::exec_attached`] runs, for `--dry-run`.
    pub fn exec_command(
        &self,
        name: &str,
        input: ExecInput,
        env_file: Option<&Path>,
        command: &[OsString],
    ) -> Invocation {
        exec_invocation(self.invocation(), name, input, env_file, command)
    }

    /// Run a command in the container, attached to our terminal as its foreground job.
    pub fn exec_attached(
        &self,
        name: &str,
        input: ExecInput,
        env_file: Option<&Path>,
        command: &[OsString],
    ) -> Result<ExitStatus, RuntimeError> {
        let inv = self.exec_command(name, input, env_file, command);
        self.foreground(&inv)
    }

    /// Run a check in the container: whether it exits 0.
    pub fn exec_succeeds(&self, name: &str, command: &[OsString]) -> bool {
        self.succeeds(&exec_invocation(
            self.invocation(),
            name,
            ExecInput::None,
            None,
            command,
        ))
    }

    /// Copy `src` into the container at `dest`; whether it worked.
    pub fn copy_into(&self, container: &str, src: &Path, dest: &str) -> bool {
        self.succeeds(&copy_into_invocation(
            self.invocation(),
            src,
            container,
            dest,
        ))
    }

    /// Save the container's file system as `image`.
    pub fn commit(&self, container: &str, image: &str) -> Result<(), RuntimeError> {
        self.query(&commit_invocation(self.invocation(), container, image))
            .map(drop)
    }

    /// The `run` of `spec`, for `--dry-run` and for running it, with the `--ulimit`s
    /// the host's limits need ([`super::limits`]).
    pub fn run_command(
        &self,
        spec: &RunSpec,
        rootfs: Option<&Path>,
        env_file: Option<&Path>,
    ) -> Invocation {
        let mut base = self.invocation();
        if let Some((_, super::limits::Decision::Pass(ulimits))) = self.limits() {
            // Before `run`'s other options: `Invocation` only appends, so the limits go
            // in as `run --ulimit …` and the spec's own `run` is dropped.
            base = base.arg("run");
            for u in ulimits {
                base = base.arg("--ulimit").arg(u.arg());
            }
            let args = spec.to_args(self.engine.kind, rootfs, env_file);
            return base.args(args.into_iter().skip(1));
        }
        run_invocation(base, self.engine.kind, spec, rootfs, env_file)
    }

    /// The launch stops here, before the engine's raw runc error, when the configured
    /// limits are known to exceed the host's.
    fn check_limits(&self) -> Result<(), RuntimeError> {
        match (self.limits(), &self.limits) {
            (Some((host, d @ super::limits::Decision::Exceeds { .. })), Some(p)) => {
                let (cause, fix) = super::limits::explain(d, *host, &p.conf_file());
                Err(RuntimeError::HostLimits { cause, fix })
            }
            _ => Ok(()),
        }
    }

    /// The limits check as a `diagnose` line (`None` where it does not apply).
    pub fn limits_report(&self) -> Option<String> {
        use super::limits::Decision;
        let (host, d) = self.limits()?;
        if self.engine.kind != EngineKind::Podman || self.engine.rootless {
            return None;
        }
        Some(match d {
            Decision::Fits => format!(
                "[ok] limits: containers start within the host's (nofile {}, nproc {})",
                host.nofile, host.nproc
            ),
            Decision::Pass(u) => format!(
                "[ok] limits: podman's defaults exceed the host's, so runs get {}",
                u.iter()
                    .map(|u| format!("--ulimit {}", u.arg()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Decision::Exceeds { .. } => {
                let (cause, fix) = self.check_limits().err().map_or_else(
                    || (String::new(), String::new()),
                    |e| match e {
                        RuntimeError::HostLimits { cause, fix } => (cause, fix),
                        other => (other.to_string(), String::new()),
                    },
                );
                format!("[!!] limits: {cause}: {fix}")
            }
        })
    }

    /// A run refused by runc for a limit: the one-line cause and its fix.
    fn limits_explained(&self) -> (String, String) {
        let host = self
            .limits()
            .map_or_else(super::limits::HostLimits::read, |(h, _)| *h);
        let conf = self.limits.as_ref().map_or_else(
            || PathBuf::from("/etc/containers/containers.conf"),
            |p| p.conf_file(),
        );
        super::limits::explain(&super::limits::Decision::Fits, host, &conf)
    }

    /// Run `spec` attached to our terminal as its foreground job.
    pub fn run_attached(
        &self,
        spec: &RunSpec,
        rootfs: Option<&Path>,
        env_file: Option<&Path>,
    ) -> Result<ExitStatus, RuntimeError> {
        self.before_run(spec)?;
        let status = self.foreground(&self.run_command(spec, rootfs, env_file))?;
        // The engine's own error went to the terminal; 126 is podman's "could not start
        // the container", which on a rootful host is most often a limit.
        if status.code() == Some(126) && self.engine.kind == EngineKind::Podman {
            let (_, fix) = self.limits_explained();
            crate::output::hint(format!(
                "if the error above says `error setting rlimit`: {fix}"
            ));
        }
        Ok(status)
    }

    /// [`Runtime::run_captured`], given up after `limit` (`Ok(None)`; the container, if
    /// the engine made one, is then removed): for a check that must not hang on an
    /// engine that never answers.
    pub fn run_captured_within(
        &self,
        spec: &RunSpec,
        limit: std::time::Duration,
    ) -> Result<Option<Output>, RuntimeError> {
        self.before_run(spec)?;
        let inv = self.run_command(spec, None, None);
        let out = self
            .exec
            .output_within(&inv, limit)
            .map_err(|e| self.spawn_error(e))?;
        let Some(out) = out else {
            let _ = self.remove_container(&spec.name);
            return Ok(None);
        };
        self.refused_limits(out).map(Some)
    }

    /// Run `spec` with its output captured (a detached start, whose container id is
    /// noise, or a job on an image).
    pub fn run_captured(
        &self,
        spec: &RunSpec,
        rootfs: Option<&Path>,
        env_file: Option<&Path>,
    ) -> Result<Output, RuntimeError> {
        self.before_run(spec)?;
        let out = self.capture(&self.run_command(spec, rootfs, env_file))?;
        self.refused_limits(out)
    }

    /// What is checked before any run: the host's limits and, for a run with a
    /// network on rootless podman, `/dev/net/tun`.
    fn before_run(&self, spec: &RunSpec) -> Result<(), RuntimeError> {
        self.check_limits()?;
        self.check_tun(spec)
    }

    /// A captured run's output, or the host-limits error when runc refused a limit.
    fn refused_limits(&self, out: Output) -> Result<Output, RuntimeError> {
        if !out.status.success()
            && super::limits::is_rlimit_error(&String::from_utf8_lossy(&out.stderr))
        {
            let (cause, fix) = self.limits_explained();
            return Err(RuntimeError::HostLimits { cause, fix });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_json() {
        let out = r#"[{"Names":["kanibako-app"],"State":"running","Image":"localhost/x:latest",
            "Labels":{"io.kanibako.box":"app"}},
            {"Names":["other"],"State":"exited","Image":"busybox","Labels":null}]"#;
        let rows = parse_list(EngineKind::Podman, out).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].running);
        assert_eq!(rows[0].labels["io.kanibako.box"], "app");
        assert!(!rows[1].running && rows[1].labels.is_empty());
        assert!(parse_list(EngineKind::Podman, "").unwrap().is_empty());
        assert!(parse_list(EngineKind::Podman, "not json").is_err());
    }

    #[test]
    fn docker_json_lines() {
        let out = concat!(
            r#"{"Names":"kanibako-app","State":"running","Image":"x","Labels":"io.kanibako.box=app,io.kanibako.hash=ab"}"#,
            "\n",
            r#"{"Names":"legacy","State":"exited","Image":"x","Labels":""}"#,
            "\n"
        );
        let rows = parse_list(EngineKind::Docker, out).unwrap();
        assert_eq!(rows[0].labels["io.kanibako.hash"], "ab");
        assert!(rows[1].labels.is_empty() && !rows[1].running);
    }

    #[test]
    fn box_state_reads_running_and_both_labels() {
        let s = parse_state("true|abc|<no value>\n");
        assert_eq!(
            s,
            ContainerState {
                running: true,
                hash: Some("abc".into()),
                rootfs: None
            }
        );
        let s = parse_state("false|<no value>|localhost/rig:1");
        assert!(!s.running && s.hash.is_none());
        assert_eq!(s.rootfs.as_deref(), Some("localhost/rig:1"));
        assert_eq!(parse_state(""), parse_state("false||"));
        let inv = state_invocation(Invocation::new("podman"), "kanibako-app");
        assert_eq!(
            inv.to_string(),
            "podman container inspect --format '{{.State.Running}}|{{index .Config.Labels \"io.kanibako.hash\"}}|{{index .Config.Labels \"io.kanibako.rootfs\"}}' kanibako-app"
        );
    }

    #[test]
    fn removal_says_whether_it_found_something() {
        assert!(parse_removed(b"kanibako-app\n"));
        assert!(!parse_removed(b"\n"));
        assert_eq!(
            remove_invocation(Invocation::new("podman"), "x").to_string(),
            "podman rm -f x"
        );
    }

    #[test]
    fn exec_shapes() {
        let p = || Invocation::new("podman");
        let cmd: Vec<OsString> = vec!["tmux".into(), "attach".into()];
        assert_eq!(
            exec_invocation(p(), "b", ExecInput::Terminal, None, &cmd).to_string(),
            "podman exec -it b tmux attach"
        );
        assert_eq!(
            exec_invocation(p(), "b", ExecInput::Stdin, Some(Path::new("/e")), &cmd).to_string(),
            "podman exec -i --env-file /e b tmux attach"
        );
        assert_eq!(
            exec_invocation(p(), "b", ExecInput::None, None, &cmd).to_string(),
            "podman exec b tmux attach"
        );
        assert_eq!(
            stop_invocation(p(), "b", 10).to_string(),
            "podman stop -t 10 b"
        );
        assert_eq!(
            logs_invocation(p(), "b", 50).to_string(),
            "podman logs --tail 50 b"
        );
        assert_eq!(
            copy_into_invocation(p(), Path::new("/t/kanibako"), "w", "/etc/").to_string(),
            "podman cp /t/kanibako w:/etc/"
        );
        assert_eq!(
            commit_invocation(p(), "w", "localhost/kanibako-rig-x:latest").to_string(),
            "podman commit w localhost/kanibako-rig-x:latest"
        );
    }

    #[test]
    fn invocations() {
        let p = list_invocation(Invocation::new("podman"), EngineKind::Podman);
        assert_eq!(p.to_string(), "podman ps -a --format json");
        let d = list_invocation(Invocation::new("docker"), EngineKind::Docker);
        assert_eq!(
            d.to_string(),
            "docker ps -a --no-trunc --format '{{json .}}'"
        );
    }
}
