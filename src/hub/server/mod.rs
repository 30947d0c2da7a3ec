//! One box's hub in a process: its state, its listeners, who is connecting, and its
//! end. What each request does is in `control`.
//!
//! Each member (the director, each helper) has its own directory `m/<member>/` with one
//! socket per [`Service`] (`hub.sock` for the control protocol; the egress proxy joins
//! as another service with `egress.sock`). The listener that accepted a connection is
//! the caller's identity; the pid-namespace check cross-checks it against the member's
//! container. One acceptor thread polls every listener; each connection gets a thread.
//!
//! Limits are enforced here whatever a client sends: frame size, request rate,
//! connections per member, consecutive errors, idle time, the helper budget (counted
//! from engine labels, so a restart cannot reset it) and the spawn rate. The hub acts
//! only on containers whose labels say they are this box's helpers, and only by id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::budget::{HelperRecord, Refusal, Team};
use super::config::HubConfig;
use super::engine::{ContainerInfo, HelperRequest, HubEngine};
use super::frame::{FrameError, LineDecoder, send_all};
use super::labels;
use super::limits::{Limits, RateLimiter, SpawnWindow};
use super::log::{self, HubLog, MessageLog, Recipient};
use super::member::Member;
use super::peer::{self, Anchor, Method, PeerCred, Verdict};
use super::protocol::{
    self, CleanupResult, ErrorCode, Event, ForkName, ForkResult, HelloResult, LimitsView,
    ListResult, LogResult, Model, Op, Reply, SpawnResult, StopResult,
};
use super::rundir;
use crate::runtime::labels as box_labels;

mod control;

pub use control::Control;
use control::Follower;

/// How long a reply may take to leave (a client that does not read is dropped).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Something served on a socket in every member's directory.
pub trait Service: Send + Sync {
    /// The socket's file name in `m/<member>/`.
    fn socket_name(&self) -> &'static str;
    /// Open connections one member may have on this socket.
    fn max_connections(&self, limits: &Limits) -> usize {
        limits.connections_per_member
    }
    /// Serve one accepted connection whose peer passed the identity check. Runs on
    /// the connection's own thread.
    fn serve(&self, hub: &Arc<Hub>, conn: Accepted);
}

/// A connection the hub accepted, and who it is from.
pub struct Accepted {
    pub member: Member,
    pub stream: UnixStream,
    pub cred: Option<PeerCred>,
}

/// Makes a new box from this one (`crab fork`): [`super::fork::BoxForker`] when the
/// host gave the hub the box's paths.
pub trait Forker: Send + Sync {
    /// `check` fails once the hub is stopping: the copy then stops and is undone.
    fn fork(
        &self,
        name: &ForkName,
        check: &dyn Fn() -> io::Result<()>,
    ) -> Result<ForkResult, Refusal>;
}

struct Listener {
    member: Member,
    service: usize,
    sock: Arc<UnixListener>,
    path: PathBuf,
}

struct Slot {
    /// The member's container id, once known.
    container: Option<String>,
    anchor: Option<Anchor>,
    open: Vec<usize>,
    rate: RateLimiter,
}

#[derive(Default)]
struct State {
    listeners: Vec<Listener>,
    slots: BTreeMap<Member, Slot>,
    /// Every open connection (a clone of its socket), to be shut at teardown.
    conns: BTreeMap<u64, UnixStream>,
    next_conn: u64,
}

pub struct Hub {
    pub cfg: HubConfig,
    engine: Arc<dyn HubEngine>,
    services: Vec<Arc<dyn Service>>,
    forker: Option<Arc<dyn Forker>>,
    proc_check: AtomicBool,
    state: Mutex<State>,
    team: Mutex<Team>,
    messages: Mutex<MessageLog>,
    followers: Mutex<Vec<Arc<Follower>>>,
    /// Held across every engine mutation (spawn, stop, cleanup, respawn), so budget
    /// checks and the actions they allow cannot interleave.
    mutate: Mutex<SpawnWindow>,
    /// Forks made so far; held across a fork, so forks run one at a time without
    /// holding up helper spawns and stops meanwhile.
    forks: Mutex<u32>,
    shutdown: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    pub log: HubLog,
    undetermined: AtomicBool,
    /// Helpers that still run re-adopted (once): at start when a helper's directory is
    /// left from an earlier hub, else at the first connection. Until then the hub asks
    /// the engine nothing, so a short session pays for no engine call of ours.
    adopted: OnceLock<()>,
    /// The engine showed a helper of this box, or one was spawned: teardown must ask
    /// the engine for them. Without it (and with no helper's directory) the hub has
    /// none to remove and its teardown asks the engine nothing.
    seen_helpers: AtomicBool,
    /// Set at the first connection (woken: the director watcher, see
    /// [`Hub::await_contact`]).
    contact: (Mutex<bool>, Condvar),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on one connection must not wedge every other one.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Rundir(#[from] rundir::RundirError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

impl Hub {
    /// A hub for `cfg`, with the director's socket bound and helpers that still run
    /// re-adopted (from labels), ready for [`Hub::accept_loop`].
    pub fn start(
        cfg: HubConfig,
        engine: Arc<dyn HubEngine>,
        services: Vec<Arc<dyn Service>>,
        forker: Option<Arc<dyn Forker>>,
        log: HubLog,
    ) -> Result<Arc<Self>, StartError> {
        let messages =
            MessageLog::open(&cfg.message_log, cfg.limits.log_max_bytes).map_err(|source| {
                StartError::Io {
                    what: format!("opening {}", cfg.message_log.display()),
                    source,
                }
            })?;
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(|source| StartError::Io {
            what: "a wake-up socket".into(),
            source,
        })?;
        let _ = wake_rx.set_nonblocking(true);
        let _ = wake_tx.set_nonblocking(true);
        let window = SpawnWindow::new(cfg.limits.spawns_per_window, cfg.limits.spawn_window());
        let hub = Arc::new(Self {
            engine,
            services,
            forker,
            proc_check: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            team: Mutex::new(Team::default()),
            messages: Mutex::new(messages),
            followers: Mutex::new(Vec::new()),
            mutate: Mutex::new(window),
            forks: Mutex::new(0),
            shutdown: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            log,
            undetermined: AtomicBool::new(false),
            adopted: OnceLock::new(),
            seen_helpers: AtomicBool::new(false),
            contact: (Mutex::new(false), Condvar::new()),
            cfg,
        });
        hub.bind(Member::Director)?;
        // A helper's directory is made before its container and removed after it: with
        // none left by an earlier hub (a restarted worker, a revived hub) no helper
        // waits for its socket, and adoption can wait for the first connection.
        let adopted = if hub.helper_dirs_left() {
            let adopted = hub.adopt()?;
            let _ = hub.adopted.set(());
            Some(adopted)
        } else {
            None
        };
        hub.log.event(
            "hub_started",
            json!({"box": hub.cfg.box_name, "director": hub.cfg.director, "adopted": adopted}),
        );
        Ok(hub)
    }

    /// Whether `m/` holds a helper's directory.
    fn helper_dirs_left(&self) -> bool {
        rundir::existing_members(&self.cfg.runtime_dir)
            .iter()
            .any(|m| matches!(m, Member::Helper(_)))
    }

    /// Bind the sockets of the box's helpers that still run (their labels say which),
    /// and take away sockets a crash left for helpers no longer running. The numbers
    /// adopted.
    fn adopt(&self) -> Result<Vec<u32>, StartError> {
        let team = self.refresh_team().unwrap_or_else(|e| {
            self.log
                .event("engine_error", json!({"during": "adoption", "error": e.1}));
            Team::default()
        });
        let mut adopted = Vec::new();
        for h in team.all().filter(|h| h.running) {
            self.slot_container(Member::Helper(h.number), &h.id);
            self.bind(Member::Helper(h.number))?;
            adopted.push(h.number);
        }
        for m in rundir::existing_members(&self.cfg.runtime_dir) {
            if let Member::Helper(n) = m
                && !adopted.contains(&n)
            {
                for s in &self.services {
                    let _ = std::fs::remove_file(
                        rundir::member_dir(&self.cfg.runtime_dir, m).join(s.socket_name()),
                    );
                }
            }
        }
        Ok(adopted)
    }

    /// Adopt now if that has not happened (the first connection's turn).
    fn adopt_once(&self) {
        self.adopted.get_or_init(|| match self.adopt() {
            Ok(adopted) if !adopted.is_empty() => {
                self.log
                    .event("helpers_adopted", json!({"adopted": adopted}));
            }
            Ok(_) => {}
            Err(e) => {
                self.log.event(
                    "engine_error",
                    json!({"during": "adoption", "error": e.to_string()}),
                );
            }
        });
    }

    /// Wait up to `limit` for the first connection; whether one came.
    pub fn await_contact(&self, limit: Duration) -> bool {
        let (m, cv) = &self.contact;
        let g = lock(m);
        let (g, _) = cv
            .wait_timeout_while(g, limit, |seen| !*seen && !self.is_shutting_down())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g
    }

    fn contacted(&self) {
        let (m, cv) = &self.contact;
        let mut g = lock(m);
        if !*g {
            *g = true;
            cv.notify_all();
        }
    }

    /// Compare peers through `/proc` instead of pidfds (the path of older kernels).
    pub fn force_proc_check(&self) {
        self.proc_check.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        let _ = (&self.wake_tx).write_all_nosig();
    }

    fn slot<'a>(&self, st: &'a mut State, m: Member) -> &'a mut Slot {
        let n = self.services.len();
        let rps = self.cfg.limits.requests_per_second;
        st.slots.entry(m).or_insert_with(|| Slot {
            container: None,
            anchor: None,
            open: vec![0; n],
            rate: RateLimiter::new(rps, Instant::now()),
        })
    }

    fn slot_container(&self, m: Member, id: &str) {
        let mut st = lock(&self.state);
        let s = self.slot(&mut st, m);
        s.container = Some(id.to_owned());
        s.anchor = None;
    }

    /// Bind `m`'s sockets (in its directory, made if missing; stale sockets replaced).
    pub fn bind(&self, m: Member) -> Result<(), StartError> {
        let rt = &self.cfg.runtime_dir;
        rundir::ensure_member(rt, m, self.cfg.member_owner)?;
        let mut new = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let path = rundir::socket_path(rt, m, s.socket_name())?;
            let io = |what: &str| {
                let what = format!("{what} {}", path.display());
                move |source| StartError::Io { what, source }
            };
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io("removing")(e)),
                _ => {}
            }
            let sock = UnixListener::bind(&path).map_err(io("binding"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io("securing"))?;
            if let Some(o) = self.cfg.member_owner {
                let _ = std::os::unix::fs::lchown(&path, Some(o.uid), Some(o.gid));
            }
            sock.set_nonblocking(true).map_err(io("configuring"))?;
            new.push(Listener {
                member: m,
                service: i,
                sock: Arc::new(sock),
                path,
            });
        }
        let mut st = lock(&self.state);
        st.listeners.retain(|l| l.member != m);
        st.listeners.extend(new);
        self.slot(&mut st, m);
        drop(st);
        self.wake();
        Ok(())
    }

    /// Close `m`'s sockets (its directory stays, for a respawn).
    fn unbind(&self, m: Member) {
        let mut st = lock(&self.state);
        st.listeners.retain(|l| {
            if l.member == m {
                let _ = std::fs::remove_file(&l.path);
                false
            } else {
                true
            }
        });
        if let Some(s) = st.slots.get_mut(&m) {
            s.anchor = None;
        }
        drop(st);
        self.wake();
    }

    fn refresh_team(&self) -> Result<Team, Refusal> {
        let hash = self.cfg.box_hash.as_str();
        let rows = self
            .engine
            .labelled(&[
                (box_labels::HASH, hash),
                (labels::ROLE, labels::ROLE_HELPER),
            ])
            .map_err(|e| {
                refusal(
                    ErrorCode::Internal,
                    format!("the container engine failed: {e}"),
                )
            })?;
        let team = Team::new(
            rows.iter()
                .filter_map(|c| {
                    HelperRecord::from_labels(&c.id, &c.name, c.running, &c.labels, hash)
                })
                .collect(),
        );
        if team.all().next().is_some() {
            self.seen_helpers.store(true, Ordering::SeqCst);
        }
        *lock(&self.team) = team.clone();
        Ok(team)
    }

    /// Poll every listener and hand out connections until shutdown.
    pub fn accept_loop(self: &Arc<Self>) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        while !self.is_shutting_down() {
            let listeners: Vec<(Member, usize, Arc<UnixListener>)> = lock(&self.state)
                .listeners
                .iter()
                .map(|l| (l.member, l.service, l.sock.clone()))
                .collect();
            let mut fds = vec![PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                listeners
                    .iter()
                    .map(|(_, _, l)| PollFd::new(l.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::from(1000u16)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    self.log
                        .event("poll_failed", json!({"error": e.to_string()}));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                let mut buf = [0u8; 64];
                while (&self.wake_rx).read(&mut buf).is_ok_and(|n| n > 0) {}
            }
            for (i, (member, service, l)) in listeners.iter().enumerate() {
                if !ready[i + 1] {
                    continue;
                }
                loop {
                    match l.accept() {
                        Ok((stream, _)) => self.admit(*member, *service, stream),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            self.log
                                .event("accept_failed", json!({"error": e.to_string()}));
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Count the connection in, or turn it away as `busy`; then check and serve it on
    /// its own thread.
    fn admit(self: &Arc<Self>, member: Member, service: usize, stream: UnixStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let max = self.services[service].max_connections(&self.cfg.limits);
        {
            let mut st = lock(&self.state);
            let slot = self.slot(&mut st, member);
            if slot.open[service] >= max {
                drop(st);
                let r = Reply::error(
                    None,
                    ErrorCode::Busy,
                    format!("{member} already has {max} connections open"),
                );
                let _ = send_all(&stream, &r.to_line());
                return;
            }
            slot.open[service] += 1;
        }
        let conn_id = {
            let mut st = lock(&self.state);
            st.next_conn += 1;
            let id = st.next_conn;
            if let Ok(c) = stream.try_clone() {
                st.conns.insert(id, c);
            }
            id
        };
        let hub = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hub-{}", member.dir_name()))
            .spawn(move || {
                let _guard = OpenGuard {
                    hub: &hub,
                    member,
                    service,
                    conn_id,
                };
                hub.contacted();
                hub.adopt_once();
                let cred = peer::peer_cred(&stream).ok();
                if let Err((code, message)) = hub.verify(member, &stream) {
                    hub.log.event(
                        "peer_refused",
                        json!({"member": member.dir_name(), "code": code.as_str(), "message": message,
                               "pid": cred.map(|c| c.pid), "uid": cred.map(|c| c.uid), "gid": cred.map(|c| c.gid)}),
                    );
                    let _ = send_all(&stream, &Reply::error(None, code, message).to_line());
                    linger(&stream);
                    return;
                }
                let service = hub.services[service].clone();
                let conn = Accepted {
                    member,
                    stream,
                    cred,
                };
                let hub2 = hub.clone();
                if catch_unwind(AssertUnwindSafe(|| service.serve(&hub2, conn))).is_err() {
                    hub.log.event("connection_panicked", json!({"member": member.dir_name()}));
                }
            });
        if spawned.is_err() {
            let mut st = lock(&self.state);
            st.conns.remove(&conn_id);
            if let Some(s) = st.slots.get_mut(&member) {
                s.open[service] = s.open[service].saturating_sub(1);
            }
        }
    }

    /// The member's container as the engine sees it, if it is what the labels say.
    fn member_container(&self, m: Member) -> Option<ContainerInfo> {
        let key = match m {
            Member::Director => self.cfg.director.clone(),
            Member::Helper(_) => lock(&self.state).slots.get(&m)?.container.clone()?,
        };
        let c = self.engine.inspect(&key).ok()??;
        let l = |k: &str| c.labels.get(k).map(String::as_str);
        let ours = l(box_labels::HASH) == Some(self.cfg.box_hash.as_str());
        let fits = match m {
            Member::Director => l(labels::ROLE).is_none() && c.name == self.cfg.director,
            Member::Helper(n) => {
                l(labels::ROLE) == Some(labels::ROLE_HELPER)
                    && l(labels::HELPER) == Some(n.to_string().as_str())
            }
        };
        (ours && fits).then_some(c)
    }

    fn anchor(&self, m: Member, fresh: bool) -> Option<Anchor> {
        if !fresh && let Some(a) = lock(&self.state).slots.get(&m).and_then(|s| s.anchor) {
            return Some(a);
        }
        let c = self.member_container(m).filter(|c| c.running)?;
        let a = Anchor::of(c.pid)?;
        let mut st = lock(&self.state);
        let s = self.slot(&mut st, m);
        s.container = Some(c.id);
        s.anchor = Some(a);
        Some(a)
    }

    fn verify(&self, m: Member, stream: &UnixStream) -> Result<(), Refusal> {
        if !self.cfg.peer_check {
            return Ok(());
        }
        let ns = self
            .anchor(m, false)
            .and_then(|a| a.pidns())
            .or_else(|| self.anchor(m, true).and_then(|a| a.pidns()));
        let Some(ns) = ns else {
            return Err(refusal(
                ErrorCode::PeerMismatch,
                format!("the container of this socket ({m}) is not running"),
            ));
        };
        let method = if self.proc_check.load(Ordering::SeqCst) {
            Method::Proc
        } else {
            Method::Pidfd
        };
        match peer::check(stream, ns, method) {
            Verdict::Match { .. } => Ok(()),
            Verdict::Mismatch => Err(refusal(
                ErrorCode::PeerMismatch,
                "connection is not from this socket's container",
            )),
            Verdict::Gone => Err(refusal(
                ErrorCode::PeerMismatch,
                "the connecting process exited before it could be checked",
            )),
            Verdict::Denied => Err(refusal(
                ErrorCode::PeerMismatch,
                "the connecting process cannot be inspected (is it non-dumpable?), so it is not known to run in this socket's container",
            )),
            Verdict::Undetermined(why) => {
                if !self.undetermined.swap(true, Ordering::SeqCst) {
                    self.log
                        .event("peer_check_undetermined", json!({"why": why}));
                }
                Ok(())
            }
        }
    }

    /// Stop serving, remove every helper of the box (by label, by id) and the runtime
    /// directory. Returns how many helpers were removed.
    pub fn teardown(&self, reason: &str) -> usize {
        self.shutdown.store(true, Ordering::SeqCst);
        self.wake();
        let (listeners, conns) = {
            let mut st = lock(&self.state);
            (
                std::mem::take(&mut st.listeners),
                std::mem::take(&mut st.conns),
            )
        };
        for l in listeners {
            let _ = std::fs::remove_file(&l.path);
        }
        for c in conns.values() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        for f in lock(&self.followers).iter() {
            f.ready.notify_all();
        }
        self.contact.1.notify_all();
        let _held = lock(&self.mutate);
        // A fork under way sees the flag between two files and undoes its copy: wait
        // for that, so the hub never exits with half a box on the host.
        let _forking = lock(&self.forks);
        // No helper seen, spawned or left (see `seen_helpers`): none to ask the engine for.
        let removed = if self.seen_helpers.load(Ordering::SeqCst) || self.helper_dirs_left() {
            remove_helpers(self.engine.as_ref(), &self.cfg.box_hash)
        } else {
            0
        };
        let _ = rundir::remove_all(&self.cfg.runtime_dir);
        self.log.event(
            "hub_stopped",
            json!({"reason": reason, "helpers_removed": removed}),
        );
        removed
    }
}

/// Remove every helper container of box `hash` (labels checked, by id); how many.
pub fn remove_helpers(engine: &dyn HubEngine, hash: &str) -> usize {
    let Ok(rows) = engine.labelled(&[
        (box_labels::HASH, hash),
        (labels::ROLE, labels::ROLE_HELPER),
    ]) else {
        return 0;
    };
    let mut n = 0;
    for c in rows {
        if let Some(h) = HelperRecord::from_labels(&c.id, &c.name, c.running, &c.labels, hash)
            && engine.remove(&c.id).is_ok()
        {
            engine.release(h.number);
            n += 1;
        }
    }
    n
}

struct OpenGuard<'a> {
    hub: &'a Arc<Hub>,
    member: Member,
    service: usize,
    conn_id: u64,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.hub.state);
        st.conns.remove(&self.conn_id);
        if let Some(s) = st.slots.get_mut(&self.member) {
            s.open[self.service] = s.open[self.service].saturating_sub(1);
        }
    }
}

trait WriteNoSig {
    fn write_all_nosig(self) -> io::Result<()>;
}

impl WriteNoSig for &UnixStream {
    fn write_all_nosig(self) -> io::Result<()> {
        match send_all(self, b"w") {
            // a full wake-up socket already wakes the acceptor
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }
}

/// Close gently after a refusal: say we are done writing and read what the client
/// already sent (briefly), so closing does not reset the connection before the client
/// has read why.
fn linger(stream: &UnixStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match (&*stream).read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests;
