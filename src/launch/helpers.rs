//! The helper hub of a launch (spec: upstream-runtime §5; design: hub-and-egress part 1):
//! where the director's member directory is mounted, the hub's configuration — with
//! the helpers' run derived from the director's own planned [`RunSpec`] — and the hub
//! started beside the run, stopped with an ephemeral session, revived on a re-attach,
//! and ended with the box by `stop`.
//!
//! A hub that will not start is a warning: the box runs without helpers.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::facts::Known;
use crate::boxes::BoxIdentity;
use crate::context::Context;
use crate::hub::engine::{HelperRun, HelperTemplate, TemplateCopy};
use crate::hub::rundir::Owner;
use crate::hub::{self, EngineConfig, HubConfig, HubError, Started};
use crate::output;
use crate::runtime::labels;
use crate::runtime::spec::{Mount, RunSpec, UserMapping};
use crate::runtime::{EngineInfo, Runtime};

/// How long `stop` gives a hub to remove its helpers before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long an ephemeral session (without the egress proxy, which the box needs at
/// once) runs before its hub starts: a shorter session never starts one, and a client
/// in the box waits that long at most (it retries for `client::CONNECT_PATIENCE`, 5 s).
pub const EPHEMERAL_HUB_AFTER: Duration = Duration::from_millis(1000);

/// How long an ephemeral session's hub waits before it watches the director itself
/// (unless a member connects first).
pub const EPHEMERAL_WATCH_AFTER_MS: u64 = 3_000;

/// A hub start under way (`None` from it: the session ended before it was due), and
/// how to tell it the session ended.
type Starting = (
    JoinHandle<Option<Result<Started, HubError>>>,
    mpsc::Sender<()>,
);

/// The hub of one launch, planned; [`Hub::start`] makes it real.
pub struct Hub {
    /// Everything but the helpers' template, which needs the final plan.
    cfg: HubConfig,
    run: HelperRun,
    /// `<rt>/m/director`, or a placeholder for `--dry-run` (which makes nothing).
    member: PathBuf,
    dry_run: bool,
    persistent: bool,
    kanibako: Option<PathBuf>,
    exec: std::sync::Arc<dyn crate::process::Executor>,
    starting: Mutex<Option<Starting>>,
    /// Helpers on: without, a hub that serves only the egress proxy refuses `spawn`.
    helpers: bool,
}

/// The host user a box's user is on the host, when that is not us (the member
/// directory must be theirs, 0700, for the box to connect).
pub fn member_owner(user: &UserMapping, euid: u32) -> Option<Owner> {
    let (uid, gid) = match *user {
        UserMapping::User { uid, gid } => (uid, gid),
        UserMapping::SplitMap { host_uid, host_gid } => (host_uid, host_gid),
        UserMapping::KeepId { .. } | UserMapping::Joined { .. } | UserMapping::Image => {
            return None;
        }
    };
    (uid != euid).then_some(Owner { uid, gid })
}

/// The box's message log directory name, as upstream names it.
fn log_id(b: &BoxIdentity) -> String {
    b.name
        .as_ref()
        .map_or_else(|| b.short_hash().to_owned(), ToString::to_string)
}

/// Where helper homes live: the box's data, beside (never inside) the director's home.
pub fn homes(b: &BoxIdentity) -> PathBuf {
    b.metadata.join("helpers")
}

/// The hub's part of a box's run: its config minus the helpers' template.
pub fn config(
    cx: &Context,
    b: &BoxIdentity,
    engine: &EngineInfo,
    user: &UserMapping,
    runtime_dir: PathBuf,
) -> HubConfig {
    HubConfig {
        box_hash: b.hash.clone(),
        box_name: b.name.as_ref().map(ToString::to_string).unwrap_or_default(),
        director: b.container_name(),
        runtime_dir,
        message_log: hub::message_log_path(&cx.paths.data, &log_id(b)),
        hub_log: hub::hub_log_path(&cx.paths.state, &b.hash),
        engine: EngineConfig::from_info(engine),
        limits: Default::default(),
        member_owner: member_owner(user, nix::unistd::geteuid().as_raw()),
        helper: None,
        fork: Some(hub::config::ForkConfig::for_box(&cx.paths, b)),
        // Always: a remote engine, whose container pids would mean nothing here, gets
        // no hub at all (`Hub::for_launch`).
        peer_check: true,
        director_timeout_ms: 60_000,
        watch_after_ms: 0,
        egress: None,
    }
}

/// What a helper runs: the session's own entrypoint if it named one, else the agent
/// (bare: no session flags, only `--model` when spawn asks for one), else the shell
/// the session ran (upstream §5.5).
pub fn helper_command(k: &Known<'_>) -> (Option<String>, Option<String>) {
    if let Some(e) = &k.launch.entrypoint {
        return (Some(e.clone()), None);
    }
    if let Some((agent, install)) = k.target.agent() {
        return (Some(agent.entrypoint(install)), model_flag(agent));
    }
    let shell = k.in_box().command(false).ok().and_then(|(e, _)| e);
    (shell.or_else(|| Some("/bin/bash".into())), None)
}

/// The flag an agent takes its model with, learnt from the agent's own arguments.
fn model_flag(agent: &dyn crate::agents::Agent) -> Option<String> {
    const PROBE: &str = "kanibako-model-probe";
    let flags = crate::agents::SessionFlags {
        secure: true,
        new_box: true,
        new_session: true,
        resume: false,
    };
    let args = agent.args(flags, &[], Some(PROBE));
    let at = args.iter().position(|a| a == PROBE)?;
    at.checked_sub(1).map(|i| args[i].clone())
}

/// The director's login files, copied into each helper's home when it starts.
fn login(b: &BoxIdentity) -> Vec<TemplateCopy> {
    crate::agents::all()
        .into_iter()
        .filter_map(|a| a.credentials())
        .flat_map(|c| {
            std::iter::once(PathBuf::from(c.dir).join(c.file))
                .chain(c.account_file.map(PathBuf::from))
        })
        .map(|rel| TemplateCopy {
            src: b.shell.join(&rel),
            rel,
        })
        .collect()
}

impl Hub {
    /// The hub of this launch, or `None` when helpers are off (`--no-helpers`,
    /// `allow_helpers: false`) and there is no `egress` proxy to serve, or the runtime
    /// directory cannot be had (a warning).
    pub fn for_launch(
        k: &Known<'_>,
        rt: &Runtime,
        egress: Option<hub::egress::EgressConfig>,
    ) -> Option<Self> {
        let helpers = k.settings.helpers.value;
        if !helpers && egress.is_none() {
            return None;
        }
        if rt.engine.remote {
            // Its sockets are on this host; a box on another cannot reach them.
            let why = "no helpers for this session: the engine is remote, and the helper hub's socket is on this host";
            if k.launch.shell_like() {
                tracing::debug!("{why}");
            } else {
                output::warn(why);
            }
            return None;
        }
        let (cx, b, dry_run) = (k.cx, k.b(), k.launch.dry_run);
        let runtime_dir = if dry_run {
            PathBuf::from(format!("<hub runtime dir {}>", &b.hash[..16]))
        } else {
            match hub::runtime_dir(&cx.host, &b.hash) {
                Ok(d) => d,
                Err(e) => {
                    output::warn(format_args!("no helpers for this session: {e}"));
                    if let Some(h) = e.hint() {
                        output::hint(h);
                    }
                    return None;
                }
            }
        };
        let member = runtime_dir.join("m").join("director");
        let (entrypoint, model_flag) = helper_command(k);
        let under_allowlist = egress.is_some();
        let persistent = k.persistent();
        Some(Self {
            cfg: HubConfig {
                egress,
                // An ephemeral session's end ends its hub (`end`); the hub's own watch
                // is the fallback for a launch that died, so it need not start at once.
                watch_after_ms: if persistent {
                    0
                } else {
                    EPHEMERAL_WATCH_AFTER_MS
                },
                ..config(cx, b, &rt.engine, &k.user, runtime_dir)
            },
            run: HelperRun {
                entrypoint,
                command: Vec::new(),
                model_flag,
                homes: homes(b),
                login: login(b),
                without: vec![super::companions::COMMS_GUEST.to_owned()],
                own_labels: vec![labels::ROOTFS.to_owned()],
                egress: under_allowlist,
            },
            member,
            dry_run,
            persistent,
            kanibako: std::env::current_exe().ok(),
            exec: cx.exec.clone(),
            starting: Mutex::new(None),
            helpers,
        })
    }

    /// The director's member directory, read-only at `/run/kanibako`.
    pub fn mount(&self) -> Mount {
        Mount::Bind {
            src: self.member.clone(),
            dst: hub::GUEST_DIR.into(),
            read_only: true,
            relabel: false,
        }
    }

    /// The full config for `spec`, the director's final plan (on `rootfs`).
    pub fn config_for(&self, spec: &RunSpec, rootfs: Option<&Path>) -> Result<HubConfig, String> {
        let mut cfg = self.cfg.clone();
        cfg.director = spec.name.clone();
        if self.helpers {
            cfg.helper = Some(HelperTemplate::from_spec(
                spec,
                rootfs.map(Path::to_owned),
                self.run.clone(),
            )?);
        }
        Ok(cfg)
    }

    /// Under the box's lock, before the run: the director's directory made (the run
    /// mounts it) and the hub started in the background (clients retry while it binds).
    pub fn start(&self, spec: &RunSpec, rootfs: Option<&Path>) {
        if self.dry_run {
            return;
        }
        let cfg = match self.config_for(spec, rootfs) {
            Ok(c) => c,
            Err(e) => return output::warn(format_args!("no helpers for this session: {e}")),
        };
        if let Err(e) = hub::prepare(&cfg) {
            return output::warn(format_args!("no helpers for this session: {e}"));
        }
        let Some(kanibako) = self.kanibako.clone() else {
            return output::warn("no helpers for this session: where this kanibako is is unknown");
        };
        let exec = self.exec.clone();
        let delay = if self.persistent || cfg.egress.is_some() {
            Duration::ZERO
        } else {
            EPHEMERAL_HUB_AFTER
        };
        let (ended, end_rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            // The session's end (or its sender gone) before the delay: no hub at all.
            if !delay.is_zero()
                && end_rx.recv_timeout(delay) != Err(mpsc::RecvTimeoutError::Timeout)
            {
                return None;
            }
            Some(hub::start(&cfg, exec.as_ref(), &kanibako))
        });
        *self.starting.lock().unwrap_or_else(|e| e.into_inner()) = Some((handle, ended));
    }

    /// Where the session's run returned: how the start went (a warning if it failed),
    /// and for an ephemeral session the hub ended with its helpers.
    pub fn end(&self) {
        let handle = self
            .starting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((handle, ended)) = handle else {
            return;
        };
        let _ = ended.send(());
        // A hub that never started has no helpers to end.
        match handle.join() {
            Ok(None) => return self.leave_nothing(),
            Ok(Some(Ok(s))) => tracing::debug!("helper hub: {s:?}"),
            Ok(Some(Err(e))) => {
                self.leave_nothing();
                return output::warn(format_args!("the helper hub did not start: {e}"));
            }
            Err(_) => {
                self.leave_nothing();
                return output::warn("the helper hub did not start");
            }
        }
        if !self.persistent {
            end_hub(
                Some(&self.cfg.runtime_dir),
                &self.cfg.engine,
                self.exec.clone(),
                &self.cfg.box_hash,
                false,
            );
        }
    }
}

impl Hub {
    /// After a start that failed (the session is over): its config (which holds the
    /// box's environment) and the directories it made, unless a hub runs there after all.
    fn leave_nothing(&self) {
        let rt = &self.cfg.runtime_dir;
        if !matches!(hub::status(rt), hub::HubStatus::NotRunning) {
            return;
        }
        let _ = std::fs::remove_file(rt.join(hub::rundir::CONFIG));
        for d in [self.member.clone(), rt.join("m"), rt.clone()] {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// What ending a box's hub did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub hub: Option<hub::Stopped>,
    /// Helpers removed here because no hub did it.
    pub removed: usize,
}

/// End the hub at `rt` (it removes its helpers), and remove what helpers of box `hash`
/// remain when there was no hub or it had to be killed (unless `none_seen`: the caller
/// has just listed the engine's containers and found none).
pub fn end_hub(
    rt: Option<&Path>,
    engine: &EngineConfig,
    exec: std::sync::Arc<dyn crate::process::Executor>,
    hash: &str,
    none_seen: bool,
) -> Ended {
    let stopped = rt.map_or(Ok(hub::Stopped::NotRunning), |rt| hub::stop(rt, STOP_GRACE));
    if let Err(e) = &stopped {
        output::warn(format_args!("{e}"));
    }
    let stopped = stopped.ok();
    let removed = match stopped {
        Some(hub::Stopped::Clean) => 0,
        Some(hub::Stopped::NotRunning) if none_seen => 0,
        _ => match engine.info() {
            Ok(info) => {
                let e = hub::RuntimeEngine::shared(info, exec, None);
                hub::remove_helpers(&e, hash)
            }
            Err(_) => 0,
        },
    };
    Ended {
        hub: stopped,
        removed,
    }
}

/// `stop` of the box with project hash `hash`: its hub and every helper of it, nothing
/// of another box. `helpers_seen`: the engine's list has helpers of it.
pub fn stop_box(cx: &Context, rt: &Runtime, hash: &str, helpers_seen: bool) -> Ended {
    let dir = hub::rundir::find_for(&cx.host, hash);
    let engine = EngineConfig::from_info(&rt.engine);
    end_hub(
        dir.as_deref(),
        &engine,
        cx.exec.clone(),
        hash,
        !helpers_seen,
    )
}

/// Whether a container with `labels` is a helper (of any box).
pub fn is_helper(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(hub::labels::ROLE).map(String::as_str) == Some(hub::labels::ROLE_HELPER)
}

/// What `stop` says of a box's hub and helpers: nothing when its hub ended them (as
/// upstream's `stop` prints only the container), a warning when it had to be killed.
pub fn report(name: &str, e: Ended) {
    if e.hub == Some(hub::Stopped::Killed) {
        output::warn(format_args!(
            "the helper hub of {name} did not end in time and was killed"
        ));
    }
    if e.removed > 0 {
        output::say(format_args!(
            "Removed {} helper container(s) of {name}",
            e.removed
        ));
    }
}

/// A re-attach or join of a running box whose hub is gone (killed, not given up):
/// started again from the config it ran with, so the box's helpers are reachable.
pub fn revive(cx: &Context, b: &BoxIdentity) {
    let Ok(dir) = hub::runtime_dir(&cx.host, &b.hash) else {
        return;
    };
    let path = dir.join(hub::rundir::CONFIG);
    if !matches!(hub::status(&dir), hub::HubStatus::NotRunning) || !path.is_file() {
        return;
    }
    let (Ok(cfg), Ok(kanibako)) = (HubConfig::load(&path), std::env::current_exe()) else {
        return;
    };
    match hub::start(&cfg, cx.exec.as_ref(), &kanibako) {
        Ok(s) => tracing::debug!("helper hub revived: {s:?}"),
        Err(e) => output::warn(format_args!("the helper hub did not start again: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_directory_belongs_to_whom_the_box_s_user_is_on_the_host() {
        let split = UserMapping::SplitMap {
            host_uid: 0,
            host_gid: 0,
        };
        assert_eq!(
            member_owner(&split, 0),
            None,
            "rootful podman as root: ours"
        );
        assert_eq!(
            member_owner(
                &UserMapping::User {
                    uid: 1000,
                    gid: 1000
                },
                0
            ),
            Some(Owner {
                uid: 1000,
                gid: 1000
            }),
            "docker as root runs the box as uid 1000"
        );
        assert_eq!(member_owner(&UserMapping::KeepId { pin: true }, 1001), None);
    }

    #[test]
    fn claude_takes_its_model_with_a_flag() {
        assert_eq!(
            model_flag(&crate::agents::claude::Claude).as_deref(),
            Some("--model")
        );
    }
}
