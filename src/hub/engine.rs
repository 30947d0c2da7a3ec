//! What the hub asks of the container engine, as a small trait ([`HubEngine`]): find
//! containers by label, inspect one (its labels and the pid the peer check needs),
//! stop, remove and wait for one by id, and start a helper. [`RuntimeEngine`] does it
//! over podman or docker through the one [`Executor`]; tests use a fake.
//!
//! A helper's container is planned by a [`HelperPlanner`] the launch provides (the one
//! place that builds a box's [`RunSpec`]); the hub then pins what only it may decide:
//! the name, the labels, detached mode and the read-only `/run/kanibako` mount of the
//! helper's own member directory. Invocation builders and output parsers are pure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::protocol::Model;
use crate::process::{Executor, Invocation};
use crate::runtime::spec::{Confinement, Mount, Network, RunMode, RunSpec, UserMapping};
use crate::runtime::{EngineInfo, EngineKind, Runtime};

/// One container as `inspect` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// The container's init on the host (0 when it is not running).
    pub pid: i32,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

/// A helper to start: everything the hub decided. The planner adds how (image, user,
/// home, agent command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperRequest {
    pub number: u32,
    pub parent: u32,
    pub depth: u32,
    pub breadth: u32,
    pub model: Option<Model>,
    /// `<director's container name>-helper-<n>`.
    pub name: String,
    /// The helper's member directory on the host, mounted read-only at `/run/kanibako`.
    pub member_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
}

pub trait HubEngine: Send + Sync {
    /// `None` when the engine has no such container.
    fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, EngineError>;
    /// Every container, running or not, carrying all of these labels.
    fn labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, EngineError>;
    fn stop(&self, id: &str) -> Result<(), EngineError>;
    fn remove(&self, id: &str) -> Result<(), EngineError>;
    /// Block until the container has exited: `Ok(true)`, or `Ok(false)` after `limit`
    /// with it still running (call again).
    fn wait(&self, id: &str, limit: Duration) -> Result<bool, EngineError>;
    /// Start a helper detached; its container id.
    fn spawn(&self, req: &HelperRequest) -> Result<String, EngineError>;
    /// A helper's container was removed for good: let go of what its start held.
    fn release(&self, _number: u32) {}
}

/// How a helper runs, as the launch plans it; the hub completes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperPlan {
    pub spec: RunSpec,
    /// The mounted image for rootful podman's split user map (see `UserMapping`).
    pub rootfs: Option<PathBuf>,
}

pub trait HelperPlanner: Send + Sync {
    fn plan(&self, req: &HelperRequest) -> Result<HelperPlan, String>;
    /// The host side of helper `req` before its run (its home, its login).
    fn prepare(&self, _req: &HelperRequest) -> Result<(), String> {
        Ok(())
    }
    fn release(&self, _number: u32) {}
}

/// Where the hub's member directory appears in every box.
pub const GUEST_DIR: &str = "/run/kanibako";

/// The home of a box's user, which a helper gets its own of.
pub const HELPER_HOME: &str = "/home/agent";

/// The hub's part of a helper's run: name, labels, detached, its own socket directory.
pub fn complete(mut plan: HelperPlan, req: &HelperRequest) -> HelperPlan {
    let s = &mut plan.spec;
    s.name = req.name.clone();
    s.mode = RunMode::Detached;
    s.labels.extend(req.labels.clone());
    s.mounts.retain(|m| m.dst() != GUEST_DIR);
    s.mounts.push(Mount::Bind {
        src: req.member_dir.clone(),
        dst: GUEST_DIR.into(),
        read_only: true,
        relabel: false,
    });
    s.env
        .insert("KANIBAKO_HELPER".into(), req.number.to_string());
    plan
}

// ---- invocations and their output, pure ----

const INSPECT_FORMAT: &str =
    "{{.Id}}|{{.Name}}|{{.State.Running}}|{{.State.Pid}}|{{json .Config.Labels}}";

pub fn inspect_invocation(base: Invocation, ids: &[&str]) -> Invocation {
    base.args(["container", "inspect", "--format", INSPECT_FORMAT])
        .args(ids)
}

/// One line per container: `id|name|running|pid|{labels}` (docker names start with `/`).
pub fn parse_inspect(stdout: &str) -> Result<Vec<ContainerInfo>, String> {
    let mut out = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let mut f = line.splitn(5, '|');
        let (Some(id), Some(name), Some(running), Some(pid), Some(labels)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("unexpected inspect line {line:?}"));
        };
        if !is_id(id) {
            return Err(format!("unexpected container id {id:?}"));
        }
        let labels: Option<BTreeMap<String, String>> =
            serde_json::from_str(labels.trim()).map_err(|e| format!("labels of {id}: {e}"))?;
        out.push(ContainerInfo {
            id: id.to_owned(),
            name: name.trim_start_matches('/').to_owned(),
            running: running.trim() == "true",
            pid: pid.trim().parse().unwrap_or(0),
            labels: labels.unwrap_or_default(),
        });
    }
    Ok(out)
}

fn is_id(s: &str) -> bool {
    (12..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn ids_invocation(base: Invocation, labels: &[(&str, &str)]) -> Invocation {
    let mut inv = base.args(["ps", "-a", "-q", "--no-trunc"]);
    for (k, v) in labels {
        inv = inv.arg("--filter").arg(format!("label={k}={v}"));
    }
    inv
}

pub fn parse_ids(stdout: &str) -> Result<Vec<String>, String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            if is_id(l) {
                Ok(l.to_owned())
            } else {
                Err(format!("unexpected container id {l:?}"))
            }
        })
        .collect()
}

pub fn stop_invocation(base: Invocation, id: &str) -> Invocation {
    base.args(["stop", "-t", "3", id])
}

pub fn remove_invocation(base: Invocation, kind: EngineKind, id: &str) -> Invocation {
    match kind {
        // podman's `rm -f` waits the stop timeout first unless told not to
        EngineKind::Podman => base.args(["rm", "-f", "-t", "0", id]),
        EngineKind::Docker => base.args(["rm", "-f", id]),
    }
}

pub fn wait_invocation(base: Invocation, id: &str) -> Invocation {
    base.args(["wait", id])
}

fn no_such(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such") || s.contains("not found")
}

/// The engine side of the hub over podman or docker.
pub struct RuntimeEngine {
    pub engine: EngineInfo,
    exec: std::sync::Arc<dyn Executor>,
    /// What starts a helper: the very `run` a box's launch renders
    /// ([`Runtime::run_command`]), host limits (`--ulimit`) included.
    rt: Runtime,
    planner: Option<Box<dyn HelperPlanner>>,
}

impl RuntimeEngine {
    pub fn new(
        engine: EngineInfo,
        exec: Box<dyn Executor + Send + Sync>,
        planner: Option<Box<dyn HelperPlanner>>,
    ) -> Self {
        let exec: std::sync::Arc<dyn Executor + Send + Sync> = std::sync::Arc::from(exec);
        Self::shared(engine, exec, planner)
    }

    /// The same over an executor the caller shares (the CLI's, for `stop`).
    pub fn shared(
        engine: EngineInfo,
        exec: std::sync::Arc<dyn Executor>,
        planner: Option<Box<dyn HelperPlanner>>,
    ) -> Self {
        Self {
            rt: Runtime::new(engine.clone(), exec.clone()),
            engine,
            exec,
            planner,
        }
    }

    /// Helpers start within the host's limits as a box does ([`crate::runtime::limits`]).
    pub fn with_limits(mut self, probe: crate::runtime::limits::Probe) -> Self {
        self.rt = self.rt.with_limits(probe);
        self
    }

    /// The `run` that starts the helper of `req` (its env in `env_file`).
    pub fn spawn_command(
        &self,
        req: &HelperRequest,
        env_file: &std::path::Path,
    ) -> Result<(Invocation, BTreeMap<String, String>), EngineError> {
        let Some(planner) = &self.planner else {
            return Err(EngineError(
                "this hub has no way to start helpers (no helper plan)".into(),
            ));
        };
        let plan = complete(planner.plan(req).map_err(EngineError)?, req);
        let inv = self
            .rt
            .run_command(&plan.spec, plan.rootfs.as_deref(), Some(env_file));
        Ok((inv, plan.spec.env))
    }

    fn base(&self) -> Invocation {
        Invocation::new(&self.engine.program)
    }

    fn run(&self, inv: &Invocation) -> Result<std::process::Output, EngineError> {
        self.exec
            .output(inv)
            .map_err(|e| EngineError(format!("running {inv}: {e}")))
    }

    fn checked(&self, inv: &Invocation) -> Result<String, EngineError> {
        let out = self.run(inv)?;
        if !out.status.success() {
            return Err(EngineError(format!(
                "`{inv}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl HubEngine for RuntimeEngine {
    fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, EngineError> {
        let inv = inspect_invocation(self.base(), &[id_or_name]);
        let out = self.run(&inv)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if no_such(&err) {
                return Ok(None);
            }
            return Err(EngineError(format!("`{inv}` failed: {}", err.trim())));
        }
        let rows = parse_inspect(&String::from_utf8_lossy(&out.stdout)).map_err(EngineError)?;
        Ok(rows.into_iter().next())
    }

    fn labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, EngineError> {
        let ids =
            parse_ids(&self.checked(&ids_invocation(self.base(), labels))?).map_err(EngineError)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let inv = inspect_invocation(self.base(), &refs);
        // One removed in between fails the call but the others are still printed.
        let out = self.run(&inv)?;
        let rows = parse_inspect(&String::from_utf8_lossy(&out.stdout)).map_err(EngineError)?;
        if rows.is_empty() && !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if !no_such(&err) {
                return Err(EngineError(format!("`{inv}` failed: {}", err.trim())));
            }
        }
        // The filter is the engine's word; the labels are checked again here.
        Ok(rows
            .into_iter()
            .filter(|c| {
                labels
                    .iter()
                    .all(|(k, v)| c.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect())
    }

    fn stop(&self, id: &str) -> Result<(), EngineError> {
        self.checked(&stop_invocation(self.base(), id)).map(drop)
    }

    fn remove(&self, id: &str) -> Result<(), EngineError> {
        let inv = remove_invocation(self.base(), self.engine.kind, id);
        let out = self.run(&inv)?;
        if out.status.success() || no_such(&String::from_utf8_lossy(&out.stderr)) {
            return Ok(());
        }
        Err(EngineError(format!(
            "`{inv}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }

    fn wait(&self, id: &str, limit: Duration) -> Result<bool, EngineError> {
        let inv = wait_invocation(self.base(), id);
        match self.exec.output_within(&inv, limit) {
            Ok(None) => Ok(false),
            Ok(Some(out)) if out.status.success() => Ok(true),
            Ok(Some(out)) => {
                let err = String::from_utf8_lossy(&out.stderr);
                if no_such(&err) {
                    Ok(true)
                } else {
                    Err(EngineError(format!("`{inv}` failed: {}", err.trim())))
                }
            }
            Err(e) => Err(EngineError(format!("running {inv}: {e}"))),
        }
    }

    fn spawn(&self, req: &HelperRequest) -> Result<String, EngineError> {
        // The plan is made twice: once for its environment (written to the 0600 file
        // first), once for the run that reads it; both are pure.
        let Some(planner) = &self.planner else {
            return Err(EngineError(
                "this hub has no way to start helpers (no helper plan)".into(),
            ));
        };
        planner.prepare(req).map_err(EngineError)?;
        let env = complete(planner.plan(req).map_err(EngineError)?, req)
            .spec
            .env;
        let env_file = crate::envfile::temporary(&env)
            .map_err(|e| EngineError(format!("writing the env file: {e}")))?;
        let (inv, _) = self.spawn_command(req, &env_file)?;
        let stdout = self.checked(&inv)?;
        drop(env_file);
        let id = stdout.lines().last().unwrap_or("").trim().to_owned();
        if !is_id(&id) {
            return Err(EngineError(format!("`{inv}` printed no container id")));
        }
        Ok(id)
    }

    fn release(&self, number: u32) {
        if let Some(p) = &self.planner {
            p.release(number);
        }
    }
}

// ---- a planner from a template in the hub's config ----

/// The in-box user of a helper, as the hub's config names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateUser {
    KeepId { pin: bool },
    SplitMap { host_uid: u32, host_gid: u32 },
    User { uid: u32, gid: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateMount {
    /// Empty for a mask.
    #[serde(default)]
    pub src: PathBuf,
    pub dst: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub relabel: bool,
    /// An empty read-only tmpfs over `dst` ([`Mount::Mask`]), in its place in the order.
    #[serde(default)]
    pub mask: bool,
}

impl TemplateMount {
    fn of(m: &Mount) -> Self {
        match m {
            Mount::Bind {
                src,
                dst,
                read_only,
                relabel,
            } => Self {
                src: src.clone(),
                dst: dst.clone(),
                read_only: *read_only,
                relabel: *relabel,
                mask: false,
            },
            Mount::Mask { dst } => Self {
                src: PathBuf::new(),
                dst: dst.clone(),
                read_only: true,
                relabel: false,
                mask: true,
            },
        }
    }

    fn mount(&self) -> Mount {
        if self.mask {
            return Mount::Mask {
                dst: self.dst.clone(),
            };
        }
        Mount::Bind {
            src: self.src.clone(),
            dst: self.dst.clone(),
            read_only: self.read_only,
            relabel: self.relabel,
        }
    }
}

/// A file of the director's login copied into a helper's home at each spawn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateCopy {
    pub src: PathBuf,
    /// Relative to the helper's home.
    pub rel: PathBuf,
}

/// A helper run written out by whoever starts the hub (the host, never a box): every
/// helper of the box runs this, with the hub's name, labels and socket directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperTemplate {
    pub image: String,
    pub user: TemplateUser,
    #[serde(default)]
    pub rootfs: Option<PathBuf>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub mounts: Vec<TemplateMount>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    /// With a model asked for, the command gets `<model_flag> <model>` appended.
    #[serde(default)]
    pub model_flag: Option<String>,
    /// The set-id filter the director runs with, if any ([`crate::runtime::seccomp`]):
    /// a helper is confined exactly like its box.
    #[serde(default)]
    pub seccomp: Option<PathBuf>,
    /// Variables the director's run passes by name (`-e NAME`, an API key): the hub's
    /// engine call passes the same names, their values from its own environment.
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The director's bounds (`box.pids_limit`, `box.memory`, `box.cpus`,
    /// `box.cap_add`): a helper may do no more than its box.
    #[serde(default)]
    pub limits: crate::runtime::spec::Limits,
    /// `--network=none`, as the director.
    #[serde(default)]
    pub no_network: bool,
    /// `box.network = allowlist`: the helper's command runs behind the in-box egress
    /// forwarder, as the director's does (the proxy variables are in `env` already),
    /// reaching the proxy through the `egress.sock` of its own member directory.
    #[serde(default)]
    pub egress: bool,
    /// Labels of the director's that its helpers carry too (the data directory's id).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Helper N's own home is `<homes>/<N>`, in place of the mount at `/home/agent`.
    #[serde(default)]
    pub homes: Option<PathBuf>,
    /// The director's login, copied into a helper's home whenever it (re)starts.
    #[serde(default)]
    pub login: Vec<TemplateCopy>,
}

/// What a helper runs, where its home goes and what it does not get of the director's
/// run: the parts of a template that are not the director's plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelperRun {
    pub entrypoint: Option<String>,
    pub command: Vec<String>,
    pub model_flag: Option<String>,
    pub homes: PathBuf,
    pub login: Vec<TemplateCopy>,
    /// Mounts of the director's that a helper goes without (the box's comms mailbox).
    pub without: Vec<String>,
    /// Labels of the director's that are its own (the rig mount `stop` releases).
    pub own_labels: Vec<String>,
    /// The box is under `box.network = allowlist` (see [`HelperTemplate::egress`]).
    pub egress: bool,
}

impl HelperTemplate {
    /// The template of `spec`, the director's planned run (on `rootfs` when it runs on
    /// the mounted image): every helper runs that plan, with the hub's name, labels and
    /// socket directory, its own home, and `run`'s command. Every field of the plan is
    /// named here, so a new one cannot be forgotten.
    pub fn from_spec(
        spec: &RunSpec,
        rootfs: Option<PathBuf>,
        run: HelperRun,
    ) -> Result<Self, String> {
        let RunSpec {
            name: _,
            image,
            mode: _,
            network,
            user,
            confined,
            workdir,
            mounts,
            env,
            pass_env,
            labels,
            entrypoint: _,
            command: _,
        } = spec;
        let user = match *user {
            UserMapping::KeepId { pin } => TemplateUser::KeepId { pin },
            UserMapping::SplitMap { host_uid, host_gid } => {
                TemplateUser::SplitMap { host_uid, host_gid }
            }
            UserMapping::User { uid, gid } => TemplateUser::User { uid, gid },
            UserMapping::Image => return Err("a run as the image's own user has no helpers".into()),
            // (the hub is configured from the run before it joins a browser sidecar)
            UserMapping::Joined { .. } => {
                return Err("a run in another container's namespaces has no helpers".into());
            }
        };
        let (seccomp, limits) = match confined {
            Some(Confinement { seccomp, limits }) => (seccomp.clone(), limits.clone()),
            None => return Err("an unconfined run has no helpers".into()),
        };
        Ok(Self {
            image: image.clone(),
            user,
            rootfs,
            workdir: Some(workdir.clone()),
            mounts: mounts
                .iter()
                .filter(|m| {
                    let d = m.dst();
                    d != GUEST_DIR
                        && !run.without.iter().any(|w| {
                            d == w
                                || d.strip_prefix(w.as_str())
                                    .is_some_and(|r| r.starts_with('/'))
                        })
                })
                .map(TemplateMount::of)
                .collect(),
            env: env.clone(),
            pass_env: pass_env.clone(),
            entrypoint: run.entrypoint,
            command: run.command,
            model_flag: run.model_flag,
            seccomp,
            limits,
            no_network: *network == Network::None,
            egress: run.egress,
            labels: labels
                .iter()
                .filter(|(k, _)| !run.own_labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            homes: Some(run.homes),
            login: run.login,
        })
    }
}

impl HelperTemplate {
    /// Helper `n`'s home on the host, if helpers get their own.
    pub fn home_of(&self, n: u32) -> Option<PathBuf> {
        self.homes.as_ref().map(|h| h.join(n.to_string()))
    }
}

impl HelperPlanner for HelperTemplate {
    fn prepare(&self, req: &HelperRequest) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        let Some(home) = self.home_of(req.number) else {
            return Ok(());
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&home)
            .map_err(|e| format!("making {}: {e}", home.display()))?;
        for c in &self.login {
            // A login the director does not have yet is no reason to refuse the helper.
            let Ok(bytes) = std::fs::read(&c.src) else {
                continue;
            };
            let dst = home.join(&c.rel);
            // What a stopped helper left in its home is not followed: no link on the way.
            let mut at = home.clone();
            for part in c.rel.components() {
                at.push(part);
                if crate::fsutil::is_symlink(&at) {
                    return Err(format!("{} is a link; not written through", at.display()));
                }
            }
            if let Some(dir) = dst.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("making {}: {e}", dir.display()))?;
            }
            crate::fsutil::atomic_write(&dst, &bytes, crate::fsutil::MODE_SECRET)
                .map_err(|e| format!("{}: {e}", dst.display()))?;
        }
        Ok(())
    }

    fn plan(&self, req: &HelperRequest) -> Result<HelperPlan, String> {
        let user = match self.user {
            TemplateUser::KeepId { pin } => UserMapping::KeepId { pin },
            TemplateUser::SplitMap { host_uid, host_gid } => {
                if self.rootfs.is_none() {
                    return Err("a split user map needs the mounted image (rootfs)".into());
                }
                UserMapping::SplitMap { host_uid, host_gid }
            }
            TemplateUser::User { uid, gid } => UserMapping::User { uid, gid },
        };
        let mut command: Vec<std::ffi::OsString> = self.command.iter().map(Into::into).collect();
        if let (Some(flag), Some(model)) = (&self.model_flag, &req.model) {
            command.push(flag.into());
            command.push(model.as_str().into());
        }
        let (entrypoint, command) = if self.egress {
            let (e, c) = crate::egress::entry::wrap(self.entrypoint.clone(), command);
            (Some(e), c)
        } else {
            (self.entrypoint.clone(), command)
        };
        Ok(HelperPlan {
            spec: RunSpec {
                name: String::new(),
                image: self.image.clone(),
                mode: RunMode::Detached,
                user,
                // A helper is a box: confined like one, with the same filter.
                confined: Some(Confinement {
                    seccomp: self.seccomp.clone(),
                    limits: self.limits.clone(),
                }),
                workdir: self
                    .workdir
                    .clone()
                    .unwrap_or_else(|| "/home/agent/workspace".into()),
                mounts: self
                    .mounts
                    .iter()
                    .map(|m| match self.home_of(req.number) {
                        Some(home) if !m.mask && m.dst == HELPER_HOME => Mount::Bind {
                            src: home,
                            dst: m.dst.clone(),
                            read_only: false,
                            relabel: m.relabel,
                        },
                        _ => m.mount(),
                    })
                    .collect(),
                network: if self.no_network {
                    Network::None
                } else {
                    Network::Default
                },
                env: self.env.clone(),
                pass_env: self.pass_env.clone(),
                labels: self.labels.clone(),
                entrypoint,
                command,
            },
            rootfs: self.rootfs.clone(),
        })
    }
}

#[cfg(test)]
pub mod fake {
    //! An engine in memory: containers with labels, a record of every mutating call,
    //! and a director whose exit the test decides.
    use super::*;
    use std::sync::{Condvar, Mutex};

    #[derive(Default)]
    pub struct State {
        pub containers: Vec<ContainerInfo>,
        pub calls: Vec<String>,
        pub next: u64,
        pub fail_spawn: bool,
        pub exited: bool,
    }

    #[derive(Default)]
    pub struct FakeEngine {
        pub state: Mutex<State>,
        exited: Condvar,
    }

    impl FakeEngine {
        /// Pids are our own, so clients in the test process pass the peer check.
        pub fn add(&self, name: &str, running: bool, labels: &[(&str, &str)]) -> String {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            let id = format!("{:064x}", s.next);
            s.containers.push(ContainerInfo {
                id: id.clone(),
                name: name.into(),
                running,
                pid: if running {
                    std::process::id() as i32
                } else {
                    0
                },
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            });
            id
        }

        pub fn calls(&self) -> Vec<String> {
            self.state.lock().unwrap().calls.clone()
        }

        pub fn director_exits(&self) {
            self.state.lock().unwrap().exited = true;
            self.exited.notify_all();
        }

        pub fn set_pid(&self, name: &str, pid: i32) {
            let mut s = self.state.lock().unwrap();
            for c in s.containers.iter_mut().filter(|c| c.name == name) {
                c.pid = pid;
            }
        }
    }

    impl HubEngine for FakeEngine {
        fn inspect(&self, id_or_name: &str) -> Result<Option<ContainerInfo>, EngineError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push(format!("inspect {id_or_name}"));
            Ok(s.containers
                .iter()
                .find(|c| c.id == id_or_name || c.name == id_or_name)
                .cloned())
        }

        fn labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, EngineError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push("ps".into());
            Ok(s.containers
                .iter()
                .filter(|c| {
                    labels
                        .iter()
                        .all(|(k, v)| c.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .cloned()
                .collect())
        }

        fn stop(&self, id: &str) -> Result<(), EngineError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push(format!("stop {id}"));
            let c = s.containers.iter_mut().find(|c| c.id == id);
            let c = c.ok_or_else(|| EngineError(format!("no such container {id}")))?;
            c.running = false;
            c.pid = 0;
            Ok(())
        }

        fn remove(&self, id: &str) -> Result<(), EngineError> {
            let mut s = self.state.lock().unwrap();
            s.calls.push(format!("rm {id}"));
            s.containers.retain(|c| c.id != id);
            Ok(())
        }

        fn wait(&self, _id: &str, limit: Duration) -> Result<bool, EngineError> {
            let s = self.state.lock().unwrap();
            let (s, _) = self
                .exited
                .wait_timeout_while(s, limit, |s| !s.exited)
                .unwrap();
            Ok(s.exited)
        }

        fn spawn(&self, req: &HelperRequest) -> Result<String, EngineError> {
            if self.state.lock().unwrap().fail_spawn {
                return Err(EngineError("the engine said no".into()));
            }
            let labels: Vec<(&str, &str)> = req
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let id = self.add(&req.name, true, &labels);
            self.state
                .lock()
                .unwrap()
                .calls
                .push(format!("run {}", req.name));
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine(kind: EngineKind) -> EngineInfo {
        EngineInfo {
            kind,
            program: PathBuf::from(kind.name()),
            rootless: false,
            remote: false,
        }
    }

    #[test]
    fn invocations() {
        let p = Invocation::new("podman");
        assert_eq!(
            ids_invocation(
                p.clone(),
                &[("io.kanibako.hash", "ab"), ("io.kanibako.role", "helper")]
            )
            .to_string(),
            "podman ps -a -q --no-trunc --filter label=io.kanibako.hash=ab --filter label=io.kanibako.role=helper"
        );
        assert_eq!(
            inspect_invocation(p.clone(), &["c1", "c2"]).to_string(),
            "podman container inspect --format '{{.Id}}|{{.Name}}|{{.State.Running}}|{{.State.Pid}}|{{json .Config.Labels}}' c1 c2"
        );
        assert_eq!(
            remove_invocation(p.clone(), EngineKind::Podman, "abc").to_string(),
            "podman rm -f -t 0 abc"
        );
        assert_eq!(
            remove_invocation(Invocation::new("docker"), EngineKind::Docker, "abc").to_string(),
            "docker rm -f abc"
        );
        assert_eq!(
            stop_invocation(p.clone(), "abc").to_string(),
            "podman stop -t 3 abc"
        );
        assert_eq!(wait_invocation(p, "abc").to_string(), "podman wait abc");
    }

    #[test]
    fn inspect_output_of_both_engines() {
        let id = "a".repeat(64);
        let podman =
            format!("{id}|kanibako-app|true|4242|{{\"io.kanibako.hash\":\"h\",\"x\":\"a|b\"}}\n");
        let rows = parse_inspect(&podman).unwrap();
        assert_eq!(rows[0].name, "kanibako-app");
        assert_eq!(rows[0].pid, 4242);
        assert!(rows[0].running);
        assert_eq!(rows[0].labels["x"], "a|b", "a bar in a label survives");
        let docker = format!("{id}|/kanibako-app|false|0|null\n");
        let rows = parse_inspect(&docker).unwrap();
        assert_eq!(rows[0].name, "kanibako-app");
        assert!(!rows[0].running && rows[0].labels.is_empty());
        assert!(parse_inspect("junk\n").is_err());
        assert!(parse_inspect("xyz|n|true|1|{}\n").is_err(), "not an id");
        assert!(parse_inspect("").unwrap().is_empty());
        assert_eq!(parse_ids(&format!("{id}\n\n")).unwrap(), vec![id.clone()]);
        assert!(parse_ids("--name\n").is_err());
    }

    fn request() -> HelperRequest {
        HelperRequest {
            number: 2,
            parent: 0,
            depth: 3,
            breadth: 4,
            model: Model::parse("sonnet"),
            name: "kanibako-app-helper-2".into(),
            member_dir: PathBuf::from("/run/user/1/kanibako/b/ab/m/h2"),
            labels: BTreeMap::from([("io.kanibako.role".into(), "helper".into())]),
        }
    }

    fn template() -> HelperTemplate {
        serde_json::from_value(serde_json::json!({
            "image": "localhost/rig:1",
            "user": {"kind": "user", "uid": 1000, "gid": 1000},
            "mounts": [
                {"src": "/d/home", "dst": "/home/agent"},
                {"src": "/evil", "dst": "/run/kanibako"}
            ],
            "env": {"SECRET": "s3cret"},
            "command": ["claude"],
            "model_flag": "--model"
        }))
        .unwrap()
    }

    #[test]
    fn the_hub_pins_name_labels_mode_and_socket_mount_over_any_plan() {
        let req = request();
        let plan = complete(template().plan(&req).unwrap(), &req);
        let args: Vec<String> = plan
            .spec
            .to_args(EngineKind::Podman, None, Some(Path::new("/tmp/e")))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with(
                "run --pull=never -dt --init --cap-drop=ALL --security-opt=no-new-privileges \
                 --pids-limit=4096 --user 1000:1000"
            ),
            "{line}"
        );
        assert!(
            line.contains("-v /run/user/1/kanibako/b/ab/m/h2:/run/kanibako:ro,nosuid,nodev"),
            "{line}"
        );
        assert!(!line.contains("/evil"), "{line}");
        assert!(line.contains("--label io.kanibako.role=helper"), "{line}");
        assert!(line.contains("--name kanibako-app-helper-2"), "{line}");
        assert!(
            line.ends_with("localhost/rig:1 claude --model sonnet"),
            "{line}"
        );
        assert!(!line.contains("s3cret"), "env goes in the env file: {line}");
        assert_eq!(plan.spec.env["KANIBAKO_HELPER"], "2");
    }

    /// Issue 10 (hardening): a helper is confined exactly like a box — the same
    /// cap-drop, no-new-privileges, pids limit, the director's seccomp filter — and its
    /// `run` is the one a box's launch renders ([`Runtime::run_command`]).
    #[test]
    fn a_helper_runs_confined_like_its_box() {
        let req = request();
        let mut t = template();
        t.seccomp = Some("/c/seccomp-no-setid.json".into());
        let e = RuntimeEngine::new(
            engine(EngineKind::Podman),
            Box::new(crate::process::SystemExecutor),
            Some(Box::new(t.clone())),
        );
        let (inv, env) = e.spawn_command(&req, Path::new("/tmp/e")).unwrap();
        let line = inv.to_string();
        for flag in [
            " run ",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--security-opt=seccomp=/c/seccomp-no-setid.json",
            "--pids-limit=4096",
            "--env-file /tmp/e",
        ] {
            assert!(line.contains(flag), "{flag}: {line}");
        }
        assert_eq!(env["SECRET"], "s3cret");
        assert!(!line.contains("s3cret"), "{line}");
        // the same argv as the box path renders for that spec
        let plan = complete(t.plan(&req).unwrap(), &req);
        let rt = Runtime::new(
            engine(EngineKind::Podman),
            std::sync::Arc::new(crate::process::SystemExecutor),
        );
        assert_eq!(
            line,
            rt.run_command(&plan.spec, None, Some(Path::new("/tmp/e")))
                .to_string()
        );
    }

    /// The director's planned run, every field of it, made a helper's: the same run
    /// but for the hub's name, labels, mode and socket directory, its own home, no
    /// comms mailbox, no rig-mount label, and its own command.
    #[test]
    fn a_helper_template_is_the_director_s_plan() {
        let director = RunSpec {
            name: "kanibako-app".into(),
            image: "localhost/rig:1".into(),
            // an API key the director gets by name, a helper gets by name too
            pass_env: vec!["OPENAI_API_KEY".into()],
            mode: RunMode::Foreground { tty: true },
            network: Network::None,
            user: UserMapping::KeepId { pin: true },
            // a helper may do no more than its box: the same bounds come along
            confined: Some(Confinement {
                seccomp: Some("/c/s.json".into()),
                limits: crate::runtime::spec::Limits {
                    pids: Some(64),
                    memory: Some("2g".into()),
                    cpus: Some("1.5".into()),
                    cap_add: vec!["NET_RAW".into()],
                },
            }),
            workdir: "/home/agent/workspace".into(),
            mounts: vec![
                Mount::Bind {
                    src: "/d/boxes/app/shell".into(),
                    dst: "/home/agent".into(),
                    read_only: false,
                    relabel: true,
                },
                Mount::Bind {
                    src: "/p/app".into(),
                    dst: "/home/agent/workspace".into(),
                    read_only: false,
                    relabel: true,
                },
                Mount::Mask {
                    dst: "/home/agent/workspace/vault/ro".into(),
                },
                Mount::Bind {
                    src: "/d/comms/mailbox/app".into(),
                    dst: "/home/agent/comms/mailbox/app".into(),
                    read_only: false,
                    relabel: true,
                },
                Mount::Bind {
                    src: "/run/user/1/kanibako/b/ab/m/director".into(),
                    dst: GUEST_DIR.into(),
                    read_only: true,
                    relabel: false,
                },
            ],
            env: BTreeMap::from([("KANIBAKO_NAME".into(), "app".into())]),
            labels: BTreeMap::from([
                ("io.kanibako.data".into(), "d0d0".into()),
                ("io.kanibako.rootfs".into(), "img".into()),
            ]),
            entrypoint: Some("tmux".into()),
            command: vec!["new-session".into()],
        };
        let t = HelperTemplate::from_spec(
            &director,
            None,
            HelperRun {
                entrypoint: Some("/home/agent/.local/bin/claude".into()),
                command: Vec::new(),
                model_flag: Some("--model".into()),
                homes: "/d/boxes/app/helpers".into(),
                login: Vec::new(),
                without: vec!["/home/agent/comms/mailbox".into()],
                own_labels: vec!["io.kanibako.rootfs".into()],
                egress: false,
            },
        )
        .unwrap();
        // it travels through hub.json unchanged
        let t: HelperTemplate = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        let req = request();
        let helper = complete(t.plan(&req).unwrap(), &req).spec;
        let mut expected = director.clone();
        expected.name = "kanibako-app-helper-2".into();
        expected.mode = RunMode::Detached;
        expected.mounts[0] = Mount::Bind {
            src: "/d/boxes/app/helpers/2".into(),
            dst: "/home/agent".into(),
            read_only: false,
            relabel: true,
        };
        expected.mounts.remove(3);
        expected.mounts[3] = Mount::Bind {
            src: req.member_dir.clone(),
            dst: GUEST_DIR.into(),
            read_only: true,
            relabel: false,
        };
        expected.env.insert("KANIBAKO_HELPER".into(), "2".into());
        expected.labels.remove("io.kanibako.rootfs");
        expected.labels.extend(req.labels.clone());
        expected.entrypoint = Some("/home/agent/.local/bin/claude".into());
        expected.command = vec!["--model".into(), "sonnet".into()];
        assert_eq!(helper, expected);
        assert!(
            HelperTemplate::from_spec(
                &RunSpec {
                    user: UserMapping::Image,
                    ..director
                },
                None,
                HelperRun::default()
            )
            .is_err()
        );
    }

    #[test]
    fn a_helper_of_an_allowlist_box_runs_behind_the_forwarder_of_its_own_socket() {
        // the director's plan as the launch makes it under allowlist: no network, the
        // proxy variables, its command behind the forwarder
        let (entrypoint, command) =
            crate::egress::entry::wrap(Some("claude".into()), vec!["--resume".into()]);
        let director = RunSpec {
            name: "kanibako-app".into(),
            image: "localhost/rig:1".into(),
            mode: RunMode::Foreground { tty: true },
            network: Network::None,
            user: UserMapping::User {
                uid: 1000,
                gid: 1000,
            },
            confined: Some(Confinement::default()),
            workdir: "/home/agent/workspace".into(),
            mounts: vec![Mount::Bind {
                src: "/run/user/1/kanibako/b/ab/m/director".into(),
                dst: GUEST_DIR.into(),
                read_only: true,
                relabel: false,
            }],
            env: crate::egress::env::proxy_env("127.0.0.1:3128".parse().unwrap())
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            pass_env: Vec::new(),
            labels: BTreeMap::new(),
            entrypoint: Some(entrypoint),
            command,
        };
        let run = HelperRun {
            entrypoint: Some("/home/agent/.local/bin/claude".into()),
            model_flag: Some("--model".into()),
            homes: "/d/boxes/app/helpers".into(),
            egress: true,
            ..Default::default()
        };
        let t = HelperTemplate::from_spec(&director, None, run).unwrap();
        let t: HelperTemplate = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        let req = request();
        let helper = complete(t.plan(&req).unwrap(), &req).spec;
        assert_eq!(helper.network, Network::None, "no network of its own");
        assert_eq!(helper.env["HTTPS_PROXY"], "http://127.0.0.1:3128");
        let (e, c) = crate::egress::entry::wrap(
            Some("/home/agent/.local/bin/claude".into()),
            vec!["--model".into(), "sonnet".into()],
        );
        assert_eq!(
            (helper.entrypoint.as_deref(), &helper.command),
            (Some(e.as_str()), &c),
            "its own command, behind the forwarder"
        );
        assert!(helper.mounts.contains(&Mount::Bind {
            src: req.member_dir.clone(),
            dst: GUEST_DIR.into(),
            read_only: true,
            relabel: false,
        }));
        assert!(
            !helper
                .mounts
                .iter()
                .any(|m| matches!(m, Mount::Bind { src, .. } if src.ends_with("m/director"))),
            "never the director's socket"
        );
        // a template written before helpers had egress is a plain helper
        assert!(!template().egress);
    }

    #[test]
    fn a_helper_s_home_gets_the_director_s_login_and_follows_no_link() {
        let d = tempfile::tempdir().unwrap();
        let login = d.path().join("director/.claude/.credentials.json");
        std::fs::create_dir_all(login.parent().unwrap()).unwrap();
        std::fs::write(&login, "{\"token\":1}").unwrap();
        let mut t = template();
        t.homes = Some(d.path().join("helpers"));
        t.login = vec![
            TemplateCopy {
                src: login.clone(),
                rel: ".claude/.credentials.json".into(),
            },
            TemplateCopy {
                src: d.path().join("director/.claude.json"),
                rel: ".claude.json".into(),
            },
        ];
        let req = request();
        t.prepare(&req).unwrap();
        let copy = d.path().join("helpers/2/.claude/.credentials.json");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "{\"token\":1}");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
        assert!(!d.path().join("helpers/2/.claude.json").exists());
        // a stopped helper planted a link in its home: not written through
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::remove_dir_all(d.path().join("helpers/2/.claude")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.path().join("helpers/2/.claude")).unwrap();
        assert!(t.prepare(&req).is_err());
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    }

    #[test]
    fn a_split_map_template_needs_its_rootfs() {
        let mut t = template();
        t.user = TemplateUser::SplitMap {
            host_uid: 0,
            host_gid: 0,
        };
        assert!(t.plan(&request()).is_err());
        t.rootfs = Some("/m/merged".into());
        let plan = complete(t.plan(&request()).unwrap(), &request());
        let line: Vec<String> = plan
            .spec
            .to_args(
                EngineKind::Podman,
                plan.rootfs.as_deref(),
                Some(Path::new("/e")),
            )
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(line.join(" ").contains("--rootfs /m/merged:O"));
    }

    #[test]
    fn runtime_engine_calls_and_answers() {
        let id = "b".repeat(64);
        let canned = Canned(vec![
            (vec!["ps".into()], format!("{id}\n")),
            (
                vec!["container".into(), "inspect".into()],
                format!(
                    "{id}|x|true|7|{{\"io.kanibako.hash\":\"h\",\"io.kanibako.role\":\"helper\"}}\n"
                ),
            ),
            (vec!["run".into()], format!("{id}\n")),
        ]);
        let e = RuntimeEngine::new(
            engine(EngineKind::Podman),
            Box::new(canned),
            Some(Box::new(template())),
        );
        let rows = e
            .labelled(&[("io.kanibako.hash", "h"), ("io.kanibako.role", "helper")])
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            e.labelled(&[("io.kanibako.hash", "other")])
                .unwrap()
                .is_empty(),
            "labels are checked again"
        );
        assert_eq!(e.spawn(&request()).unwrap(), id);
        e.remove(&id).unwrap();
    }

    /// Canned answers by argument prefix, safe to share across threads.
    struct Canned(Vec<(Vec<String>, String)>);
    impl Executor for Canned {
        fn output(&self, inv: &Invocation) -> std::io::Result<std::process::Output> {
            use std::os::unix::process::ExitStatusExt;
            let args: Vec<String> = inv
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let stdout = self
                .0
                .iter()
                .find(|(p, _)| args.starts_with(p))
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            Ok(std::process::Output {
                status: std::process::ExitStatus::from_raw(0),
                stdout: stdout.into_bytes(),
                stderr: Vec::new(),
            })
        }
        fn status(&self, inv: &Invocation) -> std::io::Result<std::process::ExitStatus> {
            self.output(inv).map(|o| o.status)
        }
    }
}
