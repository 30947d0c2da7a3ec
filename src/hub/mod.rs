//! The helper hub: a box's control plane on the host. The agent in a box (the director)
//! uses it through the mounted `kanibako crab helper …` to spawn, list, stop and message
//! helper containers of the same box; helpers use it to report back.
//!
//! One `kanibako _hub` process per box ([`supervisor`], with its [`worker`]) serves a
//! socket per member in `<rt>/m/<member>/` ([`rundir`]); the directory, mounted
//! read-only at `/run/kanibako`, is the member's identity, cross-checked by the peer's
//! pid namespace ([`peer`]). Requests are versioned JSON lines ([`frame`],
//! [`protocol`]), served by [`server`] under [`limits`] and the helper [`budget`],
//! which is counted from engine labels ([`engine`]). Messages go to the box's log
//! ([`log`]). [`client`] is the in-box side.
//!
//! What the launch calls (phase 2): [`runtime_dir`] and [`prepare`] before the
//! director's `run` (the directory to mount and the env to set), [`start`] to have the
//! hub running (in parallel with the `run`: clients retry while it binds), [`stop`]
//! when the session ends, [`helpers`] for `box info`/`ps`, [`remove_helpers`] as the
//! fallback of a `stop` that finds no hub.
//!
//! Nothing here trusts a box: the hub never takes argv, names, paths or container ids
//! from a request, and acts only on containers whose labels say they are this box's
//! helpers, by id.

pub mod budget;
pub mod client;
pub mod config;
pub mod egress;
pub mod engine;
pub mod fork;
pub mod frame;
pub mod limits;
pub mod log;
pub mod member;
pub mod peer;
pub mod protocol;
pub mod rundir;
pub mod server;
pub mod supervisor;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use config::{EngineConfig, HubConfig};
pub use engine::{GUEST_DIR, HelperPlan, HelperPlanner, HelperRequest, HubEngine, RuntimeEngine};
pub use member::Member;
pub use rundir::for_box as runtime_dir;
pub use server::remove_helpers;

use crate::process::{Executor, Invocation};

/// Labels on helper containers, beside the box's own (`io.kanibako.box`, `.hash`,
/// `.version`). The hub's whole memory of a helper is here.
pub mod labels {
    /// `helper` on helper containers; absent on the director.
    pub const ROLE: &str = "io.kanibako.role";
    pub const ROLE_HELPER: &str = "helper";
    /// The helper's number (1, 2, …).
    pub const HELPER: &str = "io.kanibako.helper";
    /// Who spawned it: 0 for the director.
    pub const PARENT: &str = "io.kanibako.parent";
    /// Its own spawn budget.
    pub const DEPTH: &str = "io.kanibako.depth";
    pub const BREADTH: &str = "io.kanibako.breadth";
    pub const MODEL: &str = "io.kanibako.model";
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{0}")]
    Rundir(#[from] rundir::RundirError),
    #[error("{0}")]
    Save(#[from] crate::fsutil::FsError),
    #[error("starting the helper hub: {0}")]
    Start(String),
    #[error("stopping the helper hub: {0}")]
    Stop(String),
}

/// What the director's container gets: this directory mounted read-only at
/// [`GUEST_DIR`], and these variables (none today: the client finds the socket at its
/// fixed place; the egress proxy will add its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberMount {
    pub host_dir: PathBuf,
    pub guest_dir: &'static str,
    pub env: BTreeMap<String, String>,
}

/// Make `<rt>/m/director/` for `cfg`'s box (kept if it exists: a running container
/// may have it mounted).
pub fn prepare(cfg: &HubConfig) -> Result<MemberMount, HubError> {
    let dir = rundir::ensure_member(&cfg.runtime_dir, Member::Director, cfg.member_owner)?;
    Ok(MemberMount {
        host_dir: dir,
        guest_dir: GUEST_DIR,
        env: BTreeMap::new(),
    })
}

/// The hub of a box, as its lock file tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubStatus {
    Running {
        pid: i32,
        stopping: bool,
    },
    /// Not running, and why it gave up (from `hub.down`).
    Down(String),
    NotRunning,
}

pub fn status(rt: &Path) -> HubStatus {
    let lock = rt.join(rundir::LOCK);
    if crate::fsutil::is_locked(&lock) {
        let rec = supervisor::Record::parse(&std::fs::read_to_string(&lock).unwrap_or_default());
        // Only a real process: 0 and negative numbers would signal whole groups.
        if let Some(pid) = rec.pid.filter(|p| *p > 1) {
            return HubStatus::Running {
                pid,
                stopping: rec.state == "stopping",
            };
        }
    }
    match std::fs::read_to_string(rt.join(rundir::DOWN)) {
        Ok(text) => {
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            HubStatus::Down(reason)
        }
        Err(_) => HubStatus::NotRunning,
    }
}

/// The hub of box `hash`, found without making anything ([`rundir::find_for`]).
pub fn status_of(host: &crate::host::HostEnv, hash: &str) -> HubStatus {
    rundir::find_for(host, hash).map_or(HubStatus::NotRunning, |rt| status(&rt))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    Started { pid: i32 },
    AlreadyRunning { pid: i32 },
}

/// Save `cfg` as `<rt>/hub.json` and start `kanibako _hub` for it (the program at
/// `kanibako`), unless a hub already runs for this box. Returns once the hub holds the
/// box's lock and the director's directory exists.
pub fn start(cfg: &HubConfig, exec: &dyn Executor, kanibako: &Path) -> Result<Started, HubError> {
    if let HubStatus::Running { pid, .. } = status(&cfg.runtime_dir) {
        return Ok(Started::AlreadyRunning { pid });
    }
    rundir::private_dir(&cfg.runtime_dir, nix::unistd::geteuid().as_raw())?;
    let path = cfg.runtime_dir.join(rundir::CONFIG);
    cfg.save(&path)?;
    let inv = Invocation::new(kanibako)
        .arg("_hub")
        .arg("--config")
        .arg(&path);
    let out = exec
        .output(&inv)
        .map_err(|e| HubError::Start(format!("{inv}: {e}")))?;
    match status(&cfg.runtime_dir) {
        HubStatus::Running { pid, .. } if out.status.success() => Ok(Started::Started { pid }),
        HubStatus::Running { pid, .. } => Ok(Started::AlreadyRunning { pid }),
        _ => Err(HubError::Start(
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("it exited at once")
                .trim_start_matches("Error: ")
                .to_owned(),
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The hub removed its helpers and exited.
    Clean,
    /// It did not exit in time and was killed (helpers may remain: see
    /// [`remove_helpers`]).
    Killed,
    NotRunning,
}

/// End the box's hub: it removes every helper and its runtime directory. Waits up to
/// `grace`, then kills it.
pub fn stop(rt: &Path, grace: Duration) -> Result<Stopped, HubError> {
    use nix::sys::signal::{Signal, kill};
    let HubStatus::Running { pid, .. } = status(rt) else {
        return Ok(Stopped::NotRunning);
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let lock = rt.join(rundir::LOCK);
    // Gone: the lock is free (or went with the runtime directory) and the process ended
    // (a zombie waiting for init to reap it has ended).
    let gone = || !crate::fsutil::is_locked(&lock) && !running(pid.as_raw());
    // Opened before the signal, so the exit cannot come between the two unseen.
    let exit = pidfd_open(pid.as_raw());
    kill(pid, Signal::SIGTERM).map_err(|e| HubError::Stop(format!("signal to {pid}: {e}")))?;
    if wait_until(Instant::now() + grace, exit.as_ref(), &gone) {
        return Ok(Stopped::Clean);
    }
    let _ = kill(pid, Signal::SIGKILL);
    wait_until(
        Instant::now() + Duration::from_secs(2),
        exit.as_ref(),
        &gone,
    );
    Ok(Stopped::Killed)
}

/// Wait until `gone` or `until`; whether it is gone. With the hub's pidfd the wait
/// ends the moment it exits (its teardown is a few ms when it had no helpers: a fixed
/// poll interval would be most of the wait); without one (an old kernel), short polls.
fn wait_until(
    until: Instant,
    exit: Option<&std::os::fd::OwnedFd>,
    gone: &dyn Fn() -> bool,
) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut exited = exit.is_none();
    loop {
        if gone() {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match exit {
            Some(fd) if !exited => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
                // Readable once it exited; then its lock goes with its last fd.
                exited = matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0);
            }
            _ => std::thread::sleep(left.min(Duration::from_millis(5))),
        }
    }
}

/// A pidfd for process `pid` (`None` where the kernel has none, or it is gone).
#[allow(unsafe_code)]
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and only returns a new descriptor (or
    // fails); no memory is passed.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a non-negative result is a fresh descriptor owned by us alone.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The helpers of box `hash` as the engine's labels describe them (for `box info`, `ps`).
pub fn helpers(
    engine: &dyn HubEngine,
    hash: &str,
) -> Result<Vec<protocol::HelperInfo>, engine::EngineError> {
    use crate::runtime::labels as box_labels;
    let rows = engine.labelled(&[
        (box_labels::HASH, hash),
        (labels::ROLE, labels::ROLE_HELPER),
    ])?;
    let team = budget::Team::new(
        rows.iter()
            .filter_map(|c| {
                budget::HelperRecord::from_labels(&c.id, &c.name, c.running, &c.labels, hash)
            })
            .collect(),
    );
    Ok(team.all().map(budget::HelperRecord::info).collect())
}

/// The box's message log, where upstream keeps it: `$DATA/logs/<name or hash8>/helper-messages.jsonl`.
pub fn message_log_path(data: &Path, log_id: &str) -> PathBuf {
    data.join("logs").join(log_id).join("helper-messages.jsonl")
}

/// The hub's own log (kept after the runtime directory goes): `$STATE/hub/<hash16>.log`.
pub fn hub_log_path(state: &Path, hash: &str) -> PathBuf {
    state
        .join("hub")
        .join(format!("{}.log", &hash[..hash.len().min(16)]))
}
