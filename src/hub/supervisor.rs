//! `kanibako _hub`: the per-box host process. A small supervising parent holds the
//! box's `hub.lock` (so a second hub for the same box is refused) and runs the worker as
//! its child, restarting it when it dies (0.1 s, doubling to 5 s; it gives up after 10
//! crashes in a minute and says why in `hub.down`). A stop signal is passed to the
//! worker, which removes the helpers; the supervisor exits after it.
//!
//! The supervisor parses nothing a box sends: all of that happens in the worker. It is
//! single-threaded by construction, which is what makes forking the worker safe, and
//! as a daemon it is detached (`setsid`, stdio to its log, cwd `/`).

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::json;

use super::config::HubConfig;
use super::engine::RuntimeEngine;
use super::log::HubLog;
use super::member::Member;
use super::rundir;
use super::worker::{self, EXIT_DONE, EXIT_FATAL};
use crate::fsutil::{self, FileLock};
use crate::process::SystemExecutor;

/// The hub log rotates at this size (one older file kept).
pub const HUB_LOG_MAX: u64 = 1024 * 1024;
/// How long a stopping worker may take to remove the helpers before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{0}")]
    Config(#[from] super::config::ConfigError),
    #[error("{0}")]
    Rundir(#[from] rundir::RundirError),
    #[error("the hub of box {name} is already running (pid {pid})")]
    AlreadyRunning { name: String, pid: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
}

impl SupervisorError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SupervisorError::Rundir(e) => e.hint(),
            _ => None,
        }
    }
}

/// What `hub.lock` says about the hub holding it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub pid: Option<i32>,
    pub worker: Option<i32>,
    pub state: String,
}

impl Record {
    pub fn parse(text: &str) -> Self {
        let mut r = Record::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => r.pid = v.trim().parse().ok().filter(|p| *p > 0),
                Some(("worker", v)) => r.worker = v.trim().parse().ok().filter(|p| *p > 0),
                Some(("state", v)) => r.state = v.trim().to_owned(),
                _ => {}
            }
        }
        r
    }

    /// Always [`RECORD_LEN`] bytes (padded with newlines), so a rewrite in place never
    /// shows a reader a truncated or half-written record.
    fn render(&self) -> String {
        let mut s = String::new();
        if let Some(p) = self.pid {
            s.push_str(&format!("pid {p}\n"));
        }
        if let Some(w) = self.worker {
            s.push_str(&format!("worker {w}\n"));
        }
        s.push_str(&format!("state {}\n", self.state));
        while s.len() < RECORD_LEN {
            s.push('\n');
        }
        s
    }

    /// Rewrite the record in place (the lock itself stays with its holder's fd).
    fn write(&self, rt: &Path) {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(rt.join(rundir::LOCK))
        {
            let _ = f.write_all_at(self.render().as_bytes(), 0);
        }
    }
}

const RECORD_LEN: usize = 96;

/// When to restart a dead worker, and when to give up.
#[derive(Debug)]
pub struct RestartPolicy {
    crashes: VecDeque<Instant>,
    delay: Duration,
}

pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(5);
pub const MAX_CRASHES: usize = 10;
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            crashes: VecDeque::new(),
            delay: FIRST_DELAY,
        }
    }
}

impl RestartPolicy {
    /// A worker that ran for `lived` died at `now`: the delay before the next one, or
    /// `None` to give up.
    pub fn crashed(&mut self, now: Instant, lived: Duration) -> Option<Duration> {
        if lived >= CRASH_WINDOW / 2 {
            self.delay = FIRST_DELAY;
        }
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > CRASH_WINDOW)
        {
            self.crashes.pop_front();
        }
        if self.crashes.len() >= MAX_CRASHES {
            return None;
        }
        let d = self.delay;
        self.delay = (d * 2).min(MAX_DELAY);
        Some(d)
    }
}

fn sys(what: &str) -> impl FnOnce(nix::Error) -> SupervisorError + '_ {
    move |source| SupervisorError::Sys {
        what: what.into(),
        source,
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

/// Take the box's lock and make the director's directory (the launch mounts it right
/// after this returns).
fn claim(cfg: &HubConfig) -> Result<FileLock, SupervisorError> {
    let rt = &cfg.runtime_dir;
    if let Some(parent) = rt.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SupervisorError::Io {
            what: format!("creating {}", parent.display()),
            source,
        })?;
    }
    rundir::private_dir(rt, nix::unistd::geteuid().as_raw())?;
    let path = rt.join(rundir::LOCK);
    let lock = fsutil::try_lock_exclusive(&path).map_err(|source| SupervisorError::Io {
        what: format!("locking {}", path.display()),
        source,
    })?;
    let Some(lock) = lock else {
        let rec = Record::parse(&std::fs::read_to_string(&path).unwrap_or_default());
        return Err(SupervisorError::AlreadyRunning {
            name: if cfg.box_name.is_empty() {
                cfg.box_hash.chars().take(8).collect()
            } else {
                cfg.box_name.clone()
            },
            pid: rec.pid.map_or("?".into(), |p| p.to_string()),
        });
    };
    let _ = std::fs::remove_file(rt.join(rundir::DOWN));
    rundir::ensure_member(rt, Member::Director, cfg.member_owner)?;
    Ok(lock)
}

/// `kanibako _hub --config PATH [--foreground]`.
pub fn run(config: &Path, foreground: bool) -> Result<(), SupervisorError> {
    let cfg = HubConfig::load(config)?;
    let lock = claim(&cfg)?;
    if foreground {
        let log = HubLog::open(&cfg.hub_log, HUB_LOG_MAX, false);
        let code = supervise(&cfg, &lock, &log, None);
        std::process::exit(code);
    }
    if threads() > 1 {
        return Err(SupervisorError::Io {
            what: "starting the hub".into(),
            source: std::io::Error::other("cannot fork a multi-threaded process"),
        });
    }
    // The daemon says when its record is written (or dies trying): the caller learns
    // the hub's pid from the lock as soon as this returns.
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: this process has one thread (checked just above), so the child starts
    // from a consistent state.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() }.map_err(sys("fork"))?;
    match forked {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(ready_w);
            drop(lock);
            let mut b = [0u8; 1];
            let mut r = std::fs::File::from(ready_r);
            if r.read(&mut b).is_ok_and(|n| n == 1) {
                return Ok(());
            }
            Err(SupervisorError::Io {
                what: "starting the hub".into(),
                source: std::io::Error::other(format!(
                    "it exited at once; see {}",
                    cfg.hub_log.display()
                )),
            })
        }
        nix::unistd::ForkResult::Child => {
            drop(ready_r);
            let _ = nix::unistd::setsid();
            let _ = nix::unistd::chdir("/");
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
            }
            let log = HubLog::open(&cfg.hub_log, HUB_LOG_MAX, true);
            let code = supervise(&cfg, &lock, &log, Some(ready_w));
            std::process::exit(code);
        }
    }
}

fn write_down(cfg: &HubConfig, reason: &str) {
    let text = json!({"reason": reason, "at": crate::clock::now_iso()}).to_string();
    let _ = fsutil::atomic_write(
        &cfg.runtime_dir.join(rundir::DOWN),
        text.as_bytes(),
        fsutil::MODE_SECRET,
    );
}

/// Remove the helpers and the runtime directory without a worker (it hung or could
/// not start).
fn fallback_teardown(cfg: &HubConfig, log: &HubLog, reason: &str) {
    let Ok(info) = cfg.engine.info() else { return };
    let engine = RuntimeEngine::new(info, Box::new(SystemExecutor), None);
    let removed = super::server::remove_helpers(&engine, &cfg.box_hash);
    let _ = rundir::remove_all(&cfg.runtime_dir);
    log.event(
        "hub_stopped",
        json!({"reason": reason, "helpers_removed": removed, "by": "supervisor"}),
    );
}

struct Worker {
    pid: Pid,
    started: Instant,
    ready: Option<OwnedFd>,
}

fn spawn_worker(
    cfg: &HubConfig,
    log: &HubLog,
    sigfd: SignalFd,
    me: Pid,
    lock_fd: std::os::fd::RawFd,
) -> Result<(Worker, SignalFd), SupervisorError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: the supervisor never starts a thread (`run` checked it has one; nothing
    // since spawns any), so the child starts from a consistent state.
    #[allow(unsafe_code)]
    let forked = unsafe { nix::unistd::fork() }.map_err(sys("fork"))?;
    match forked {
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            Ok((
                Worker {
                    pid: child,
                    started: Instant::now(),
                    ready: Some(r),
                },
                sigfd,
            ))
        }
        nix::unistd::ForkResult::Child => {
            drop(sigfd);
            drop(r);
            // The box's lock is the supervisor's alone: a worker holding a copy of it
            // would keep a killed supervisor's hub looking alive (until the death signal
            // reached the worker), and the next join would not start a new one.
            let _ = nix::unistd::close(lock_fd);
            // Stop signals stay blocked: the worker's signal thread takes them.
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&worker::stop_signals()),
                None,
            );
            // Die with the supervisor: a worker without one would hold the lock alone.
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() != me {
                std::process::exit(EXIT_FATAL);
            }
            // Its own handle on the same log (stdout and stderr already point there).
            let _ = log;
            let code = worker::run(
                cfg.clone(),
                Some(w),
                HubLog::open(&cfg.hub_log, HUB_LOG_MAX, false),
            );
            std::process::exit(code);
        }
    }
}

/// The supervisor's loop; its exit code. A daemon's `ready` gets a byte once the
/// record names it.
fn supervise(cfg: &HubConfig, lock: &FileLock, log: &HubLog, ready: Option<OwnedFd>) -> i32 {
    let daemon = ready.is_some();
    // Signals first: a stop that comes right after the caller learns our pid must be
    // read from the signalfd, not kill us with helpers left behind.
    let mut mask = worker::stop_signals();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let Ok(mut sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        log.event("fatal", json!({"error": "signalfd"}));
        return 1;
    };
    let me = nix::unistd::getpid();
    let mut record = Record {
        pid: Some(me.as_raw()),
        worker: None,
        state: "running".into(),
    };
    record.write(&cfg.runtime_dir);
    if let Some(fd) = ready {
        use std::io::Write;
        let _ = std::fs::File::from(fd).write_all(b"r");
    }
    // SIGPIPE: a log or socket that went away is an error to handle, not our death.
    #[allow(unsafe_code)]
    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
    log.event(
        "supervisor_started",
        json!({"box": cfg.box_name, "daemon": daemon}),
    );
    let mut policy = RestartPolicy::default();
    let mut current: Option<Worker> = None;
    let mut restart_at = Some(Instant::now());
    let mut died_at: Option<Instant> = None;
    let mut stopping: Option<Instant> = None;
    let mut generation = 0u32;
    let code = loop {
        let now = Instant::now();
        if current.is_none() && stopping.is_none() && restart_at.is_some_and(|t| t <= now) {
            match spawn_worker(cfg, log, sigfd, me, lock.raw_fd()) {
                Ok((w, fd)) => {
                    sigfd = fd;
                    generation += 1;
                    record.worker = Some(w.pid.as_raw());
                    record.write(&cfg.runtime_dir);
                    current = Some(w);
                    restart_at = None;
                }
                Err(e) => {
                    log.event("fatal", json!({"error": e.to_string()}));
                    break 1;
                }
            }
        }
        let timeout_ms = match (&current, restart_at, stopping) {
            (Some(_), _, Some(t)) => (t + STOP_GRACE).saturating_duration_since(now).as_millis(),
            (None, Some(t), _) => t.saturating_duration_since(now).as_millis(),
            _ => 1000,
        }
        .clamp(1, 1000) as u16;
        let ready_fd = current.as_ref().and_then(|w| w.ready.as_ref());
        let mut fds = vec![nix::poll::PollFd::new(
            sigfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(r) = ready_fd {
            fds.push(nix::poll::PollFd::new(
                r.as_fd(),
                nix::poll::PollFlags::POLLIN,
            ));
        }
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(timeout_ms));
        let ready_hit = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        drop(fds);
        if ready_hit && let Some(w) = current.as_mut() {
            let mut b = [0u8; 1];
            if let Some(r) = w.ready.take() {
                let mut f = std::fs::File::from(r);
                if f.read(&mut b).is_ok_and(|n| n == 1) {
                    let outage = died_at.take().map(|d| d.elapsed().as_millis() as u64);
                    log.event(
                        "worker_ready",
                        json!({"worker": w.pid.as_raw(), "generation": generation, "outage_ms": outage,
                               "start_ms": w.started.elapsed().as_millis() as u64}),
                    );
                }
            }
        }
        while let Ok(Some(info)) = sigfd.read_signal() {
            let signo = info.ssi_signo as i32;
            if signo == Signal::SIGCHLD as i32 {
                continue;
            }
            if stopping.is_none() {
                log.event("stop_requested", json!({"signal": signo}));
                stopping = Some(Instant::now());
                record.state = "stopping".into();
                record.write(&cfg.runtime_dir);
                if let Some(w) = &current {
                    let _ = nix::sys::signal::kill(w.pid, Signal::SIGTERM);
                }
            }
        }
        // Reap whatever died.
        let mut ended = None;
        loop {
            match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if current
                        .as_ref()
                        .is_some_and(|w| Some(w.pid) == status.pid())
                    {
                        ended = Some(status);
                    }
                }
            }
        }
        if let Some(status) = ended {
            let Some(w) = current.take() else { continue };
            record.worker = None;
            record.write(&cfg.runtime_dir);
            match status {
                WaitStatus::Exited(_, EXIT_DONE) => break 0,
                WaitStatus::Exited(_, EXIT_FATAL) => {
                    log.event("worker_fatal", json!({"worker": w.pid.as_raw()}));
                    write_down(
                        cfg,
                        "the hub cannot start with its configuration (see its log)",
                    );
                    break 1;
                }
                other => {
                    log.event(
                        "worker_died",
                        json!({"worker": w.pid.as_raw(), "status": format!("{other:?}")}),
                    );
                    if stopping.is_some() {
                        fallback_teardown(cfg, log, "stopped; the worker died");
                        break 0;
                    }
                    let now = Instant::now();
                    died_at = Some(now);
                    match policy.crashed(now, now.saturating_duration_since(w.started)) {
                        Some(d) => {
                            log.event("worker_restart", json!({"in_ms": d.as_millis() as u64}));
                            restart_at = Some(now + d);
                        }
                        None => {
                            let why = format!(
                                "gave up after {MAX_CRASHES} worker crashes within {} s",
                                CRASH_WINDOW.as_secs()
                            );
                            log.event("gave_up", json!({"reason": why}));
                            write_down(cfg, &why);
                            break 1;
                        }
                    }
                }
            }
            continue;
        }
        if let Some(t) = stopping {
            match &current {
                None => {
                    fallback_teardown(cfg, log, "stopped");
                    break 0;
                }
                Some(w) if t.elapsed() >= STOP_GRACE => {
                    log.event("worker_killed", json!({"worker": w.pid.as_raw()}));
                    let _ = nix::sys::signal::kill(w.pid, Signal::SIGKILL);
                }
                Some(_) => {}
            }
        }
    };
    log.event("supervisor_exit", json!({"code": code}));
    if daemon {
        // Leftovers of the worker (an engine `wait` still running) share our group.
        #[allow(unsafe_code)]
        // SAFETY: SIG_IGN installs no handler code; we exit right after.
        unsafe {
            let _ = nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn);
        }
        let _ = nix::sys::signal::killpg(nix::unistd::getpgrp(), Signal::SIGTERM);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_give_up() {
        let t0 = Instant::now();
        let mut p = RestartPolicy::default();
        let mut delays = Vec::new();
        for i in 0..9 {
            delays.push(
                p.crashed(t0 + Duration::from_secs(i), Duration::from_millis(50))
                    .unwrap(),
            );
        }
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        assert_eq!(
            p.crashed(t0 + Duration::from_secs(9), Duration::ZERO),
            None,
            "10 in a minute"
        );

        // crashes spread out are forgiven, and a long-lived worker resets the delay
        let mut p = RestartPolicy::default();
        for i in 0..30 {
            assert!(
                p.crashed(t0 + Duration::from_secs(i * 61), Duration::from_secs(61))
                    .is_some()
            );
        }
        assert_eq!(
            p.crashed(t0 + Duration::from_secs(30 * 61), Duration::from_secs(40)),
            Some(FIRST_DELAY)
        );
    }

    #[test]
    fn the_lock_record_round_trips() {
        let r = Record {
            pid: Some(12),
            worker: Some(13),
            state: "running".into(),
        };
        assert_eq!(Record::parse(&r.render()), r);
        assert_eq!(Record::parse("garbage\npid -4\n"), Record::default());
    }
}
