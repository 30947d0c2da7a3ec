//! The hub's listeners and what it does for each request, for one box.
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
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// Makes a new box from this one (`crab fork`); provided by the launch.
pub trait Forker: Send + Sync {
    fn fork(&self, name: &ForkName) -> Result<ForkResult, String>;
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

struct FollowQueue {
    items: VecDeque<Value>,
    dropped: u64,
}

/// A connection following the log.
struct Follower {
    who: Member,
    from: Option<u32>,
    below: BTreeSet<u32>,
    max: usize,
    queue: Mutex<FollowQueue>,
    ready: Condvar,
}

impl Follower {
    fn push(&self, entry: &Value) {
        let Some(m) = entry.as_object() else { return };
        if !log::visible(m, self.who, &self.below) || !log::from_matches(m, self.from) {
            return;
        }
        if let Ok(mut q) = self.queue.lock() {
            if q.items.len() >= self.max {
                q.items.pop_front();
                q.dropped += 1;
            }
            q.items.push_back(entry.clone());
            self.ready.notify_one();
        }
    }
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
    shutdown: AtomicBool,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    pub log: HubLog,
    undetermined: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic on one connection must not wedge every other one.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

/// What a request produced: a reply, or (for `log`) events before it and maybe a follow.
enum Outcome {
    Reply(Reply),
    Log {
        events: Vec<Vec<u8>>,
        reply: Reply,
        follow: Option<Arc<Follower>>,
    },
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
            shutdown: AtomicBool::new(false),
            wake_tx,
            wake_rx,
            log,
            undetermined: AtomicBool::new(false),
            cfg,
        });
        hub.bind(Member::Director)?;
        let team = hub.refresh_team().unwrap_or_else(|e| {
            hub.log
                .event("engine_error", json!({"during": "adoption", "error": e.1}));
            Team::default()
        });
        let mut adopted = Vec::new();
        for h in team.all().filter(|h| h.running) {
            hub.slot_container(Member::Helper(h.number), &h.id);
            hub.bind(Member::Helper(h.number))?;
            adopted.push(h.number);
        }
        // Sockets left by a crash for helpers no longer running.
        for m in rundir::existing_members(&hub.cfg.runtime_dir) {
            if let Member::Helper(n) = m
                && !adopted.contains(&n)
            {
                for s in &hub.services {
                    let _ = std::fs::remove_file(
                        rundir::member_dir(&hub.cfg.runtime_dir, m).join(s.socket_name()),
                    );
                }
            }
        }
        hub.log.event(
            "hub_started",
            json!({"box": hub.cfg.box_name, "director": hub.cfg.director, "adopted": adopted}),
        );
        Ok(hub)
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

    /// One frame from `who`: its reply (or log events), never a panic.
    fn handle(self: &Arc<Self>, who: Member, line: &[u8]) -> Outcome {
        let allowed = {
            let mut st = lock(&self.state);
            self.slot(&mut st, who).rate.allow(Instant::now())
        };
        if !allowed {
            return Outcome::Reply(Reply::error(
                None,
                ErrorCode::RateLimited,
                format!(
                    "more than {} requests per second",
                    self.cfg.limits.requests_per_second
                ),
            ));
        }
        let req = match protocol::parse_request(line) {
            Ok(r) => r,
            Err(r) => return Outcome::Reply(Reply::error(r.id, r.code, r.message)),
        };
        let id = req.id;
        let result = match req.op {
            Op::Hello { .. } => Ok(self.hello(who)),
            Op::Ping => Ok(json!({})),
            Op::List => self.list(who),
            Op::Spawn {
                depth,
                breadth,
                model,
            } => self.spawn(who, depth, breadth, model),
            Op::Stop { helper } => self.stop(who, helper),
            Op::Cleanup { helper, cascade } => self.cleanup(who, helper, cascade),
            Op::Respawn { helper } => self.respawn(who, helper),
            Op::Send { to, text } => self.send(who, Recipient::One(Member::from_number(to)), &text),
            Op::Broadcast { text } => self.send(who, Recipient::All, &text),
            Op::Log { from, last, follow } => return self.log_entries(id, who, from, last, follow),
            Op::Fork { name } => self.fork(who, &name),
        };
        Outcome::Reply(match result {
            Ok(v) => Reply::ok(id, v),
            Err((code, message)) => Reply::error(Some(id), code, message),
        })
    }

    fn hello(&self, who: Member) -> Value {
        let l = &self.cfg.limits;
        let mut features = vec!["log", "follow"];
        if self.cfg.helper.is_some() {
            features.insert(0, "spawn");
        }
        if self.forker.is_some() {
            features.push("fork");
        }
        json!(HelloResult {
            proto: protocol::VERSION,
            server: format!("kanibako {}", env!("CARGO_PKG_VERSION")),
            box_name: self.cfg.box_name.clone(),
            you: who.to_string(),
            member: who.number(),
            limits: LimitsView {
                max_frame: l.max_frame,
                max_payload: protocol::MAX_PAYLOAD,
                max_helpers: l.max_helpers,
                max_depth: l.max_depth,
                max_breadth: l.max_breadth,
            },
            features: features.into_iter().map(Into::into).collect(),
        })
    }

    fn list(&self, who: Member) -> Result<Value, Refusal> {
        let team = self.refresh_team()?;
        let helpers = team
            .visible_to(who)
            .into_iter()
            .map(HelperRecord::info)
            .collect();
        Ok(json!(ListResult { helpers }))
    }

    fn control(&self, event: &str, fields: Value) {
        let Value::Object(f) = fields else { return };
        let mut log = lock(&self.messages);
        match log.control(event, f) {
            Ok(entry) => self.publish(&entry),
            Err(e) => self
                .log
                .event("message_log_failed", json!({"error": e.to_string()})),
        }
    }

    fn publish(&self, entry: &Value) {
        for f in lock(&self.followers).iter() {
            f.push(entry);
        }
    }

    fn helper_labels(
        &self,
        plan_number: u32,
        parent: u32,
        depth: u32,
        breadth: u32,
        model: Option<&Model>,
    ) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (box_labels::BOX.to_owned(), self.cfg.box_name.clone()),
            (box_labels::HASH.to_owned(), self.cfg.box_hash.clone()),
            (
                box_labels::VERSION.to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            (labels::ROLE.to_owned(), labels::ROLE_HELPER.to_owned()),
            (labels::HELPER.to_owned(), plan_number.to_string()),
            (labels::PARENT.to_owned(), parent.to_string()),
            (labels::DEPTH.to_owned(), depth.to_string()),
            (labels::BREADTH.to_owned(), breadth.to_string()),
        ]);
        if let Some(m) = model {
            l.insert(labels::MODEL.to_owned(), m.as_str().to_owned());
        }
        l
    }

    /// Start helper `number` (new or respawned) under the mutation lock.
    fn start_helper(
        &self,
        window: &mut SpawnWindow,
        number: u32,
        parent: u32,
        depth: u32,
        breadth: u32,
        model: Option<Model>,
    ) -> Result<(String, String), Refusal> {
        if let Err(wait) = window.admit(Instant::now()) {
            return Err(refusal(
                ErrorCode::RateLimited,
                format!(
                    "at most {}; try again in {} s",
                    window.describe(),
                    wait.as_secs() + 1
                ),
            ));
        }
        let member = Member::Helper(number);
        let dir = rundir::ensure_member(&self.cfg.runtime_dir, member, self.cfg.member_owner)
            .map_err(|e| refusal(ErrorCode::Internal, e.to_string()))?;
        // Listening before the container starts: its first connect must find us.
        self.bind(member)
            .map_err(|e| refusal(ErrorCode::Internal, e.to_string()))?;
        let req = HelperRequest {
            number,
            parent,
            depth,
            breadth,
            labels: self.helper_labels(number, parent, depth, breadth, model.as_ref()),
            model,
            name: format!("{}-helper-{number}", self.cfg.director),
            member_dir: dir,
        };
        match self.engine.spawn(&req) {
            Ok(id) => {
                self.slot_container(member, &id);
                Ok((id, req.name))
            }
            Err(e) => {
                self.unbind(member);
                let _ = rundir::remove_member(&self.cfg.runtime_dir, member);
                self.log
                    .event("spawn_failed", json!({"helper": number, "error": e.0}));
                let mut message = e.0;
                message.truncate(600);
                Err(refusal(
                    ErrorCode::SpawnFailed,
                    format!("container launch failed: {message}"),
                ))
            }
        }
    }

    fn spawn(
        &self,
        who: Member,
        depth: Option<u32>,
        breadth: Option<u32>,
        model: Option<Model>,
    ) -> Result<Value, Refusal> {
        if self.cfg.helper.is_none() {
            return Err(refusal(
                ErrorCode::Unavailable,
                "this box's hub cannot start helpers",
            ));
        }
        let mut window = lock(&self.mutate);
        let team = self.refresh_team()?;
        let plan = team
            .plan_spawn(who, depth, breadth, model, &self.cfg.limits)
            .map_err(|(c, m)| (c, format!("cannot spawn: {m}")))?;
        let (id, name) = self.start_helper(
            &mut window,
            plan.number,
            plan.parent,
            plan.depth,
            plan.breadth,
            plan.model.clone(),
        )?;
        let model = plan.model.map(|m| m.as_str().to_owned());
        // What the labels now say, without asking the engine again.
        lock(&self.team).note(HelperRecord {
            number: plan.number,
            parent: plan.parent,
            depth: plan.depth,
            breadth: plan.breadth,
            model: model.clone(),
            running: true,
            id,
            name: name.clone(),
        });
        self.log.event(
            "spawned",
            json!({"helper": plan.number, "by": who.dir_name(), "container": name}),
        );
        self.control(
            "spawn",
            json!({"helper": plan.number, "parent": plan.parent, "model": model}),
        );
        Ok(json!(SpawnResult {
            helper: plan.number,
            container: name,
            model,
            depth: plan.depth,
            breadth: plan.breadth,
        }))
    }

    /// Helper `n`, if `who` may act on it.
    fn target(&self, team: &Team, who: Member, n: u32) -> Result<HelperRecord, Refusal> {
        let Some(h) = team.get(n) else {
            return Err(refusal(
                ErrorCode::NotFound,
                format!("helper {n} does not exist in this box"),
            ));
        };
        if !team.may_act_on(who, n) {
            return Err(refusal(
                ErrorCode::Forbidden,
                format!("helper {n} was not spawned by {who} (nor by a helper it spawned)"),
            ));
        }
        Ok(h.clone())
    }

    /// Inspect by id and insist the labels still say helper `n` of this box.
    fn confirm(&self, h: &HelperRecord) -> Result<Option<ContainerInfo>, Refusal> {
        let c = self.engine.inspect(&h.id).map_err(|e| {
            refusal(
                ErrorCode::Internal,
                format!("the container engine failed: {e}"),
            )
        })?;
        let Some(c) = c else { return Ok(None) };
        match HelperRecord::from_labels(&c.id, &c.name, c.running, &c.labels, &self.cfg.box_hash) {
            Some(r) if r.number == h.number => Ok(Some(c)),
            _ => {
                self.log
                    .event("label_mismatch", json!({"helper": h.number, "id": h.id}));
                Err(refusal(
                    ErrorCode::NotFound,
                    format!("helper {} is not a container of this box", h.number),
                ))
            }
        }
    }

    fn stop(&self, who: Member, n: u32) -> Result<Value, Refusal> {
        let _held = lock(&self.mutate);
        let team = self.refresh_team()?;
        let h = self.target(&team, who, n)?;
        let running = self.confirm(&h)?.is_some_and(|c| c.running);
        if running {
            self.engine
                .stop(&h.id)
                .map_err(|e| refusal(ErrorCode::Internal, format!("stopping helper {n}: {e}")))?;
        }
        self.unbind(Member::Helper(n));
        lock(&self.team).set_running(n, false);
        if running {
            self.control("stop", json!({"helper": n}));
        }
        Ok(json!(StopResult {
            helper: n,
            already_stopped: !running,
        }))
    }

    fn cleanup(&self, who: Member, n: u32, cascade: bool) -> Result<Value, Refusal> {
        let _held = lock(&self.mutate);
        let team = self.refresh_team()?;
        let h = self.target(&team, who, n)?;
        let below = team.descendants(n);
        if !below.is_empty() && !cascade {
            return Err(refusal(
                ErrorCode::Conflict,
                format!(
                    "helper {n} has {} descendant(s); clean them up first or use --cascade",
                    below.len()
                ),
            ));
        }
        let mut removed = Vec::new();
        for k in below.into_iter().chain([n]) {
            let Some(rec) = (if k == n {
                Some(h.clone())
            } else {
                team.get(k).cloned()
            }) else {
                continue;
            };
            if self.confirm(&rec)?.is_some() {
                self.engine.remove(&rec.id).map_err(|e| {
                    refusal(ErrorCode::Internal, format!("removing helper {k}: {e}"))
                })?;
            }
            self.engine.release(k);
            self.unbind(Member::Helper(k));
            let _ = rundir::remove_member(&self.cfg.runtime_dir, Member::Helper(k));
            lock(&self.state).slots.remove(&Member::Helper(k));
            lock(&self.team).forget(k);
            self.control("cleanup", json!({"helper": k}));
            removed.push(k);
        }
        Ok(json!(CleanupResult { removed }))
    }

    fn respawn(&self, who: Member, n: u32) -> Result<Value, Refusal> {
        if self.cfg.helper.is_none() {
            return Err(refusal(
                ErrorCode::Unavailable,
                "this box's hub cannot start helpers",
            ));
        }
        let mut window = lock(&self.mutate);
        let team = self.refresh_team()?;
        let h = self.target(&team, who, n)?;
        if let Some(c) = self.confirm(&h)? {
            if c.running {
                return Err(refusal(
                    ErrorCode::Conflict,
                    format!(
                        "Helper {n} is running, not stopped. Only stopped helpers can be respawned."
                    ),
                ));
            }
            self.engine
                .remove(&c.id)
                .map_err(|e| refusal(ErrorCode::Internal, format!("removing helper {n}: {e}")))?;
            self.engine.release(n);
        }
        // Same number, parent, budget and model: the labels carry them over.
        let model = h.model.as_deref().and_then(Model::parse);
        let result = self.start_helper(&mut window, n, h.parent, h.depth, h.breadth, model);
        let (id, name) = match result {
            Ok(r) => r,
            Err(e) => {
                lock(&self.team).forget(n);
                return Err(e);
            }
        };
        lock(&self.team).note(HelperRecord {
            running: true,
            id,
            name: name.clone(),
            ..h.clone()
        });
        self.control("respawn", json!({"helper": n, "model": h.model}));
        Ok(json!({"helper": n, "container": name}))
    }

    fn send(&self, who: Member, to: Recipient, text: &str) -> Result<Value, Refusal> {
        if let Recipient::One(Member::Helper(n)) = to {
            let cached = lock(&self.team).get(n).is_some();
            let known = cached || self.refresh_team()?.get(n).is_some();
            if !known {
                return Err(refusal(
                    ErrorCode::NotFound,
                    format!("helper {n} does not exist in this box"),
                ));
            }
        }
        let mut log = lock(&self.messages);
        let entry = log.message(who, to, text).map_err(|e| {
            self.log
                .event("message_log_failed", json!({"error": e.to_string()}));
            refusal(ErrorCode::Internal, "the message log could not be written")
        })?;
        self.publish(&entry);
        Ok(json!({}))
    }

    fn log_entries(
        self: &Arc<Self>,
        id: u64,
        who: Member,
        from: Option<u32>,
        last: Option<u32>,
        follow: bool,
    ) -> Outcome {
        let below: BTreeSet<u32> = match who {
            Member::Director => BTreeSet::new(),
            Member::Helper(n) => lock(&self.team).descendants(n).into_iter().collect(),
        };
        // Read and subscribe under the log's lock: nothing written in between is lost
        // or shown twice.
        let messages = lock(&self.messages);
        let mut entries: Vec<Map<String, Value>> = log::read_entries(messages.path())
            .into_iter()
            .filter(|e| log::visible(e, who, &below) && log::from_matches(e, from))
            .collect();
        let follower = follow.then(|| {
            let f = Arc::new(Follower {
                who,
                from,
                below: below.clone(),
                max: self.cfg.limits.follow_queue.max(1),
                queue: Mutex::new(FollowQueue {
                    items: VecDeque::new(),
                    dropped: 0,
                }),
                ready: Condvar::new(),
            });
            lock(&self.followers).push(f.clone());
            f
        });
        drop(messages);
        if let Some(n) = last {
            let skip = entries.len().saturating_sub(n as usize);
            entries.drain(..skip);
        }
        let max = self.cfg.limits.max_frame;
        let events: Vec<Vec<u8>> = entries
            .into_iter()
            .map(|e| {
                Event::Log {
                    entry: Value::Object(e),
                }
                .to_line()
            })
            .filter(|l| l.len() <= max)
            .collect();
        let reply = Reply::ok(
            id,
            json!(LogResult {
                count: events.len(),
                following: follow,
            }),
        );
        Outcome::Log {
            events,
            reply,
            follow: follower,
        }
    }

    fn fork(&self, who: Member, name: &ForkName) -> Result<Value, Refusal> {
        if who != Member::Director {
            return Err(refusal(
                ErrorCode::Forbidden,
                "only the director may fork the box",
            ));
        }
        let Some(f) = &self.forker else {
            return Err(refusal(
                ErrorCode::Unavailable,
                "this box's hub cannot fork it",
            ));
        };
        let _held = lock(&self.mutate);
        let r = f.fork(name).map_err(|m| refusal(ErrorCode::Internal, m))?;
        self.control(
            "fork",
            json!({"name": name.as_str(), "path": r.path, "new_name": r.name}),
        );
        Ok(json!(r))
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
        let _held = lock(&self.mutate);
        let removed = remove_helpers(self.engine.as_ref(), &self.cfg.box_hash);
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

/// Whether the client closed its end (a follower never sends again).
fn peer_closed(stream: &UnixStream) -> bool {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut b = [0u8; 1];
    match recv(
        stream.as_raw_fd(),
        &mut b,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// The control protocol (`hub.sock`).
pub struct Control;

impl Service for Control {
    fn socket_name(&self) -> &'static str {
        rundir::SOCKET
    }

    fn serve(&self, hub: &Arc<Hub>, conn: Accepted) {
        let Accepted { member, stream, .. } = conn;
        let limits = &hub.cfg.limits;
        let _ = stream.set_read_timeout(Some(limits.idle_timeout()));
        let mut decoder = LineDecoder::new(limits.max_frame);
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut errors = 0u32;
        let send = |bytes: &[u8]| send_all(&stream, bytes).is_ok();
        loop {
            if hub.is_shutting_down() {
                return;
            }
            let n = match (&stream).read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    send(
                        &Reply::error(None, ErrorCode::IdleTimeout, "idle for too long").to_line(),
                    );
                    return;
                }
                Err(_) => return,
            };
            decoder.push(&buf[..n], &mut frames);
            for frame in frames.drain(..) {
                let line = match frame {
                    Ok(l) => l,
                    Err(FrameError::TooLarge) => {
                        send(
                            &Reply::error(
                                None,
                                ErrorCode::FrameTooLarge,
                                format!("a frame may be at most {} bytes", limits.max_frame),
                            )
                            .to_line(),
                        );
                        return;
                    }
                };
                let outcome = match catch_unwind(AssertUnwindSafe(|| hub.handle(member, &line))) {
                    Ok(o) => o,
                    Err(_) => {
                        hub.log
                            .event("request_panicked", json!({"member": member.dir_name()}));
                        Outcome::Reply(Reply::error(None, ErrorCode::Internal, "internal error"))
                    }
                };
                let (reply, events, follow) = match outcome {
                    Outcome::Reply(r) => (r, Vec::new(), None),
                    Outcome::Log {
                        events,
                        reply,
                        follow,
                    } => (reply, events, follow),
                };
                for e in &events {
                    if !send(e) {
                        return;
                    }
                }
                if !send(&reply.to_line()) {
                    return;
                }
                if let Some(f) = follow {
                    pump(hub, &stream, &f);
                    lock(&hub.followers).retain(|x| !Arc::ptr_eq(x, &f));
                    return;
                }
                if reply.ok {
                    errors = 0;
                } else {
                    errors += 1;
                    if errors >= limits.max_consecutive_errors {
                        send(
                            &Reply::error(
                                None,
                                ErrorCode::TooManyErrors,
                                format!("{errors} errors in a row"),
                            )
                            .to_line(),
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Write a follower's entries as they come, until it hangs up or the hub stops.
fn pump(hub: &Arc<Hub>, stream: &UnixStream, f: &Follower) {
    loop {
        if hub.is_shutting_down() || peer_closed(stream) {
            return;
        }
        let (items, dropped) = {
            let q = lock(&f.queue);
            let (mut q, _) = f
                .ready
                .wait_timeout_while(q, Duration::from_millis(500), |q| {
                    q.items.is_empty() && q.dropped == 0
                })
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (std::mem::take(&mut q.items), std::mem::take(&mut q.dropped))
        };
        if dropped > 0 && send_all(stream, &Event::Dropped { n: dropped }.to_line()).is_err() {
            return;
        }
        for entry in items {
            let line = Event::Log { entry }.to_line();
            if line.len() <= hub.cfg.limits.max_frame && send_all(stream, &line).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A real hub on sockets in a temporary directory, over the fake engine: what a
    //! box can and cannot make it do.
    use super::*;
    use crate::hub::engine::fake::FakeEngine;
    use crate::hub::engine::{HelperTemplate, TemplateUser};
    use std::io::Write;

    struct TestHub {
        hub: Arc<Hub>,
        engine: Arc<FakeEngine>,
        _dir: tempfile::TempDir,
        rt: PathBuf,
    }

    fn template() -> HelperTemplate {
        HelperTemplate {
            image: "localhost/rig".into(),
            user: TemplateUser::User {
                uid: 1000,
                gid: 1000,
            },
            rootfs: None,
            workdir: None,
            mounts: Vec::new(),
            env: BTreeMap::new(),
            entrypoint: None,
            command: vec!["sleep".into(), "60".into()],
            model_flag: None,
        }
    }

    const HASH: &str = "0123456789abcdef0123456789abcdef";

    fn start_with(limits: Limits, engine: Arc<FakeEngine>, dir: tempfile::TempDir) -> TestHub {
        let rt = dir.path().join("rt");
        let mut cfg = crate::hub::config::sample(&rt);
        cfg.limits = limits;
        cfg.helper = Some(template());
        let hub = Hub::start(
            cfg,
            engine.clone(),
            vec![Arc::new(Control)],
            None,
            HubLog::none(),
        )
        .unwrap();
        let h = hub.clone();
        std::thread::spawn(move || h.accept_loop());
        TestHub {
            hub,
            engine,
            _dir: dir,
            rt,
        }
    }

    fn start(limits: Limits) -> TestHub {
        let engine = Arc::new(FakeEngine::default());
        engine.add(
            "kanibako-app",
            true,
            &[(box_labels::HASH, HASH), (box_labels::BOX, "app")],
        );
        start_with(limits, engine, tempfile::tempdir().unwrap())
    }

    fn fast() -> Limits {
        Limits {
            requests_per_second: 1_000_000,
            spawns_per_window: 1000,
            ..Limits::default()
        }
    }

    struct Conn {
        s: UnixStream,
        pending: Vec<u8>,
        next: u64,
    }

    impl Conn {
        fn open(t: &TestHub, m: Member) -> Self {
            let p = rundir::socket_path(&t.rt, m, rundir::SOCKET).unwrap();
            let s = UnixStream::connect(p).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            Conn {
                s,
                pending: Vec::new(),
                next: 1,
            }
        }

        fn send_raw(&mut self, bytes: &[u8]) -> bool {
            self.s.write_all(bytes).is_ok()
        }

        /// The next line, or None at EOF.
        fn line(&mut self) -> Option<Value> {
            loop {
                if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                    let l: Vec<u8> = self.pending.drain(..=i).collect();
                    return Some(serde_json::from_slice(&l).unwrap());
                }
                let mut b = [0u8; 65536];
                match (&self.s).read(&mut b) {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.pending.extend_from_slice(&b[..n]),
                }
            }
        }

        fn call(&mut self, op: Value) -> Value {
            let id = self.next;
            self.next += 1;
            let mut req = op;
            req["v"] = json!(1);
            req["id"] = json!(id);
            let mut line = serde_json::to_vec(&req).unwrap();
            line.push(b'\n');
            assert!(self.send_raw(&line));
            loop {
                let r = self.line().expect("a reply");
                if r.get("event").is_none() {
                    assert_eq!(r["id"], json!(id), "{r}");
                    return r;
                }
            }
        }
    }

    fn code(r: &Value) -> &str {
        r["error"]["code"].as_str().unwrap_or("ok")
    }

    #[test]
    fn hello_and_ping() {
        let t = start(fast());
        let mut c = Conn::open(&t, Member::Director);
        let r = c.call(json!({"op": "hello"}));
        assert_eq!(r["result"]["you"], "director");
        assert_eq!(r["result"]["box"], "app");
        assert_eq!(r["result"]["limits"]["max_frame"], 65536);
        assert!(
            r["result"]["features"]
                .as_array()
                .unwrap()
                .contains(&json!("spawn"))
        );
        assert_eq!(c.call(json!({"op": "ping"}))["ok"], true);
        let meta = std::fs::metadata(rundir::member_dir(&t.rt, Member::Director)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mode() & 0o777, 0o700);
    }

    /// Random bytes, bad UTF-8, non-objects, unknown fields, deep nesting, other
    /// versions and some oversized lines: every frame gets exactly one reply, the hub
    /// reconnects cleanly after an oversized one, and a ping still works after.
    #[test]
    fn a_hostile_barrage_leaves_the_hub_serving() {
        let t = start(fast());
        let mut seed: u64 = 0x1234_5678_9abc_def1;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut c = Conn::open(&t, Member::Director);
        let mut codes: BTreeMap<String, u32> = BTreeMap::new();
        let mut reconnects = 0;
        for i in 0..4000u32 {
            if i % 10 == 9 {
                assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
                continue;
            }
            let frame: Vec<u8> = match next() % 9 {
                0 => (0..1 + next() % 300)
                    .map(|_| next() as u8)
                    .filter(|b| *b != b'\n')
                    .collect(),
                1 => b"{\"v\":1,\"id\":1,\"op\":\"p\xff\xfeng\"}".to_vec(),
                2 => b"[1,2,3]".to_vec(),
                3 => br#"{"v":1,"id":5,"op":"stop","container":"kbhx-victim"}"#.to_vec(),
                4 => format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes(),
                5 => br#"{"v":99,"id":5,"op":"ping"}"#.to_vec(),
                6 => br#"{"v":1,"id":"x","op":"ping"}"#.to_vec(),
                7 if next() % 8 == 0 => vec![b'x'; 70 * 1024],
                _ => format!(
                    r#"{{"v":1,"id":1,"op":"send","to":0,"text":"{}"}}"#,
                    "a".repeat((next() % 20_000) as usize)
                )
                .into_bytes(),
            };
            let mut line = frame.clone();
            line.push(b'\n');
            if frame.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if !c.send_raw(&line) {
                c = Conn::open(&t, Member::Director);
                reconnects += 1;
                continue;
            }
            let Some(r) = c.line() else {
                panic!("no reply to frame {i}");
            };
            let k = code(&r).to_owned();
            *codes.entry(k.clone()).or_default() += 1;
            if k == "frame_too_large" {
                assert!(c.line().is_none(), "closed after an oversized frame");
                c = Conn::open(&t, Member::Director);
                reconnects += 1;
            }
        }
        for want in [
            "bad_json",
            "bad_request",
            "unsupported_version",
            "ok",
            "payload_too_large",
        ] {
            assert!(codes.contains_key(want), "{want} in {codes:?}");
        }
        assert!(
            reconnects > 0 && codes.contains_key("frame_too_large"),
            "{codes:?}"
        );
        assert!(!codes.contains_key("internal"), "{codes:?}");
        let mut c = Conn::open(&t, Member::Director);
        assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
    }

    #[test]
    fn oversized_idle_errors_and_busy_connections_are_closed() {
        let t = start(Limits {
            idle_timeout_ms: 300,
            connections_per_member: 3,
            ..fast()
        });
        // 1 MiB without a newline
        let mut c = Conn::open(&t, Member::Director);
        let _ = c.send_raw(&vec![b'{'; 1 << 20]);
        assert_eq!(code(&c.line().unwrap()), "frame_too_large");
        assert!(c.line().is_none());
        // half a frame, then silence
        let mut c = Conn::open(&t, Member::Director);
        c.send_raw(b"{\"v\":1,");
        assert_eq!(code(&c.line().unwrap()), "idle_timeout");
        assert!(c.line().is_none());
        // sixteen errors in a row
        let mut c = Conn::open(&t, Member::Director);
        for _ in 0..15 {
            c.send_raw(b"nope\n");
            assert_eq!(code(&c.line().unwrap()), "bad_json");
        }
        c.send_raw(b"nope\n");
        assert_eq!(code(&c.line().unwrap()), "bad_json");
        assert_eq!(code(&c.line().unwrap()), "too_many_errors");
        assert!(c.line().is_none());
        // connections per member
        let mut open: Vec<Conn> = (0..3).map(|_| Conn::open(&t, Member::Director)).collect();
        for c in &mut open {
            assert_eq!(code(&c.call(json!({"op": "ping"}))), "ok");
        }
        let mut extra = Conn::open(&t, Member::Director);
        assert_eq!(code(&extra.line().unwrap()), "busy");
        assert!(extra.line().is_none());
        drop(open);
        std::thread::sleep(Duration::from_millis(100));
        let mut again = Conn::open(&t, Member::Director);
        assert_eq!(code(&again.call(json!({"op": "ping"}))), "ok");
    }

    #[test]
    fn the_request_rate_is_capped_per_member() {
        let t = start(Limits {
            requests_per_second: 5,
            ..fast()
        });
        let mut c = Conn::open(&t, Member::Director);
        let mut pipelined = Vec::new();
        for i in 0..8 {
            pipelined.extend(format!("{{\"v\":1,\"id\":{i},\"op\":\"ping\"}}\n").into_bytes());
        }
        c.send_raw(&pipelined);
        let codes: Vec<String> = (0..8)
            .map(|_| code(&c.line().unwrap()).to_owned())
            .collect();
        assert_eq!(&codes[..5], &["ok"; 5]);
        assert!(codes[5..].iter().all(|c| c == "rate_limited"), "{codes:?}");
    }

    fn spawn(c: &mut Conn) -> Value {
        c.call(json!({"op": "spawn"}))
    }

    #[test]
    fn a_member_acts_only_on_what_it_spawned_and_never_on_other_containers() {
        let t = start(fast());
        // a container of another box, and one of ours that is no helper
        let victim = t.engine.add(
            "kbhx-victim",
            true,
            &[
                (box_labels::HASH, "ffffffffffffffffffffffffffffffff"),
                (labels::ROLE, "helper"),
                (labels::HELPER, "3"),
            ],
        );
        let mut d = Conn::open(&t, Member::Director);
        assert_eq!(spawn(&mut d)["result"]["helper"], 1);
        assert_eq!(spawn(&mut d)["result"]["helper"], 2);
        let r = spawn(&mut d);
        assert_eq!(r["result"]["container"], "kanibako-app-helper-3");
        assert_eq!(r["result"]["depth"], 3);

        // helper 1's own socket: it sees and touches only its own descendants
        let mut h1 = Conn::open(&t, Member::Helper(1));
        assert_eq!(h1.call(json!({"op": "hello"}))["result"]["you"], "helper 1");
        assert_eq!(
            code(&h1.call(json!({"op": "stop", "helper": 2}))),
            "forbidden"
        );
        assert_eq!(
            code(&h1.call(json!({"op": "cleanup", "helper": 2}))),
            "forbidden"
        );
        assert_eq!(
            h1.call(json!({"op": "list"}))["result"]["helpers"],
            json!([])
        );
        let r = spawn(&mut h1);
        assert_eq!(r["result"]["helper"], 4);
        assert_eq!(r["result"]["depth"], 2, "one level below helper 1");
        let listed = h1.call(json!({"op": "list"}));
        assert_eq!(listed["result"]["helpers"][0]["helper"], 4);
        assert_eq!(listed["result"]["helpers"][0]["parent"], 1);
        assert_eq!(code(&h1.call(json!({"op": "stop", "helper": 4}))), "ok");
        // a helper cannot stop itself or its parent's other children
        assert_eq!(
            code(&h1.call(json!({"op": "stop", "helper": 1}))),
            "forbidden"
        );

        // the director reaches every helper, never the victim
        assert_eq!(
            code(&d.call(json!({"op": "stop", "helper": 9}))),
            "not_found"
        );
        assert_eq!(
            code(&d.call(json!({"op": "stop", "helper": "../../kbhx-victim"}))),
            "bad_request"
        );
        assert_eq!(
            code(&d.call(json!({"op": "stop", "container": "kbhx-victim"}))),
            "bad_request"
        );
        assert_eq!(
            code(&d.call(json!({"op": "spawn", "model": "x; podman rm -f kbhx-victim"}))),
            "bad_request"
        );
        let r = d.call(json!({"op": "stop", "helper": 2}));
        assert_eq!(r["result"], json!({"helper": 2, "already_stopped": false}));
        let r = d.call(json!({"op": "stop", "helper": 2}));
        assert_eq!(r["result"]["already_stopped"], true);
        let calls = t.engine.calls();
        assert!(!calls.iter().any(|c| c.contains(&victim)), "{calls:?}");
        let listed = d.call(json!({"op": "list"}));
        let nums: Vec<u64> = listed["result"]["helpers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["helper"].as_u64().unwrap())
            .collect();
        assert_eq!(nums, vec![1, 2, 3, 4], "the victim is not listed");
        // a stopped helper's socket is gone
        assert!(
            !rundir::member_dir(&t.rt, Member::Helper(2))
                .join(rundir::SOCKET)
                .exists()
        );
    }

    #[test]
    fn cleanup_respawn_and_cascade() {
        let t = start(fast());
        let mut d = Conn::open(&t, Member::Director);
        spawn(&mut d);
        let mut h1 = Conn::open(&t, Member::Helper(1));
        spawn(&mut h1); // 2, child of 1
        let mut h2 = Conn::open(&t, Member::Helper(2));
        spawn(&mut h2); // 3, child of 2
        assert_eq!(
            code(&d.call(json!({"op": "respawn", "helper": 1}))),
            "conflict"
        );
        assert_eq!(
            code(&d.call(json!({"op": "cleanup", "helper": 1}))),
            "conflict"
        );
        d.call(json!({"op": "stop", "helper": 3}));
        let r = d.call(json!({"op": "respawn", "helper": 3}));
        assert_eq!(code(&r), "ok", "{r}");
        let l = d.call(json!({"op": "list"}));
        assert_eq!(l["result"]["helpers"][2]["status"], "running");
        assert_eq!(
            l["result"]["helpers"][2]["parent"], 2,
            "respawn keeps the parent"
        );
        let r = d.call(json!({"op": "cleanup", "helper": 1, "cascade": true}));
        assert_eq!(r["result"]["removed"], json!([3, 2, 1]));
        assert_eq!(
            d.call(json!({"op": "list"}))["result"]["helpers"],
            json!([])
        );
        assert!(!rundir::member_dir(&t.rt, Member::Helper(1)).exists());
        assert!(rundir::member_dir(&t.rt, Member::Director).exists());
    }

    #[test]
    fn the_budget_comes_from_labels_and_survives_a_restart() {
        let limits = Limits {
            max_helpers: 2,
            ..fast()
        };
        let engine = Arc::new(FakeEngine::default());
        engine.add("kanibako-app", true, &[(box_labels::HASH, HASH)]);
        let dir = tempfile::tempdir().unwrap();
        let t = start_with(limits.clone(), engine.clone(), dir);
        let mut d = Conn::open(&t, Member::Director);
        spawn(&mut d);
        spawn(&mut d);
        d.call(json!({"op": "stop", "helper": 2}));
        let r = spawn(&mut d);
        assert_eq!(code(&r), "budget_exhausted", "stopped helpers count: {r}");
        // a new hub over the same engine (a restart) counts the same
        t.hub.teardown_listeners_for_test();
        let t2 = start_with(limits, engine, tempfile::tempdir().unwrap());
        let mut d2 = Conn::open(&t2, Member::Director);
        assert_eq!(code(&spawn(&mut d2)), "budget_exhausted");
        // and re-adopted helper 1 (running) is reachable on its socket
        let mut h1 = Conn::open(&t2, Member::Helper(1));
        assert_eq!(code(&h1.call(json!({"op": "ping"}))), "ok");
    }

    #[test]
    fn spawns_are_rate_limited_and_engine_failures_still_get_a_reply() {
        let t = start(Limits {
            spawns_per_window: 2,
            ..fast()
        });
        let mut d = Conn::open(&t, Member::Director);
        spawn(&mut d);
        spawn(&mut d);
        let r = spawn(&mut d);
        assert_eq!(code(&r), "rate_limited", "{r}");
        let t = start(fast());
        t.engine.state.lock().unwrap().fail_spawn = true;
        let mut d = Conn::open(&t, Member::Director);
        let r = spawn(&mut d);
        assert_eq!(code(&r), "spawn_failed");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the engine said no")
        );
        assert!(!rundir::member_dir(&t.rt, Member::Helper(1)).exists());
        assert_eq!(code(&d.call(json!({"op": "ping"}))), "ok");
    }

    #[test]
    fn messages_are_logged_routed_by_visibility_and_followed() {
        let t = start(fast());
        let mut d = Conn::open(&t, Member::Director);
        spawn(&mut d);
        spawn(&mut d);
        assert_eq!(
            code(&d.call(json!({"op": "send", "to": 1, "text": "hi h1"}))),
            "ok"
        );
        assert_eq!(
            code(&d.call(json!({"op": "send", "to": 7, "text": "x"}))),
            "not_found"
        );
        assert_eq!(
            code(&d.call(json!({"op": "send", "to": 1, "text": "x", "from": 2}))),
            "bad_request",
            "the sender cannot be named"
        );
        // helper 1 follows; the director and helper 2 write
        let mut f = Conn::open(&t, Member::Helper(1));
        f.send_raw(b"{\"v\":1,\"id\":1,\"op\":\"log\",\"follow\":true}\n");
        let mut backlog = Vec::new();
        let reply = loop {
            let l = f.line().unwrap();
            if l.get("event").is_none() {
                break l;
            }
            backlog.push(l["entry"].clone());
        };
        assert_eq!(reply["result"], json!({"count": 2, "following": true}));
        assert_eq!(backlog[0]["event"], "spawn", "its own spawn");
        assert_eq!(backlog[0]["helper"], 1);
        assert_eq!(backlog[1]["payload"]["text"], "hi h1");
        assert_eq!(backlog[1]["from"], 0);
        let mut h2 = Conn::open(&t, Member::Helper(2));
        h2.call(json!({"op": "send", "to": 0, "text": "h2 to boss"}));
        h2.call(json!({"op": "broadcast", "text": "all hands"}));
        d.call(json!({"op": "send", "to": 1, "text": "second"}));
        let e = f.line().unwrap();
        assert_eq!(e["entry"]["payload"]["text"], "all hands");
        assert_eq!(e["entry"]["from"], 2, "set by the hub");
        assert_eq!(e["entry"]["to"], "all");
        let e = f.line().unwrap();
        assert_eq!(e["entry"]["payload"]["text"], "second");
        // the director reads everything; --from and --last filter
        let mut all = Conn::open(&t, Member::Director);
        all.send_raw(b"{\"v\":1,\"id\":1,\"op\":\"log\",\"from\":2}\n");
        let mut texts = Vec::new();
        loop {
            let l = all.line().unwrap();
            if l.get("event").is_none() {
                break;
            }
            let e = &l["entry"];
            texts.push(match e["type"].as_str() {
                Some("message") => e["payload"]["text"].as_str().unwrap().to_owned(),
                _ => format!("[{}]", e["event"].as_str().unwrap()),
            });
        }
        // upstream's --from: what N sent, and control entries about N
        assert_eq!(texts, vec!["[spawn]", "h2 to boss", "all hands"]);
        let r = all.call(json!({"op": "log", "last": 1}));
        assert_eq!(r["result"]["count"], 1);
        // on disk: upstream's format, 0600
        let entries = log::read_entries(&t.hub.cfg.message_log);
        assert!(
            entries
                .iter()
                .any(|e| e["event"] == "spawn" && e["helper"] == 2)
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&t.hub.cfg.message_log).unwrap().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_slow_follower_loses_the_oldest_entries_and_is_told() {
        let t = start(Limits {
            follow_queue: 4,
            ..fast()
        });
        let f = Follower {
            who: Member::Director,
            from: None,
            below: BTreeSet::new(),
            max: 4,
            queue: Mutex::new(FollowQueue {
                items: VecDeque::new(),
                dropped: 0,
            }),
            ready: Condvar::new(),
        };
        for i in 0..10 {
            f.push(&json!({"type": "message", "from": 0, "to": 1, "payload": {"text": i}}));
        }
        let q = f.queue.lock().unwrap();
        assert_eq!(q.dropped, 6);
        assert_eq!(q.items.front().unwrap()["payload"]["text"], 6);
        drop(q);
        drop(t);
    }

    /// A socket leaked into another container: the peer's pid namespace is not the
    /// member's. Also: a member whose container is not running is refused.
    #[test]
    fn a_peer_from_another_pid_namespace_is_refused() {
        let t = start(fast());
        t.engine.set_pid("kanibako-app", 0);
        t.engine.state.lock().unwrap().containers[0].running = false;
        let mut c = Conn::open(&t, Member::Director);
        let r = c.line().unwrap();
        assert_eq!(code(&r), "peer_mismatch");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not running")
        );
        assert!(c.line().is_none());

        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped the namespace half: needs root for unshare");
            return;
        }
        #[allow(clippy::disallowed_methods)]
        let mut other = std::process::Command::new("unshare")
            .args(["--pid", "--fork", "sleep", "30"])
            .spawn()
            .unwrap();
        // the sleep inside the new namespace is unshare's child
        let mut inner = 0;
        for _ in 0..100 {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", other.id()))
                    .unwrap_or_default();
            if let Some(p) = children.split_whitespace().next() {
                inner = p.parse().unwrap();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(inner > 0);
        {
            let mut s = t.engine.state.lock().unwrap();
            s.containers[0].running = true;
            s.containers[0].pid = inner;
        }
        for proc_path in [false, true] {
            if proc_path {
                t.hub.force_proc_check();
            }
            let mut c = Conn::open(&t, Member::Director);
            let r = c.line().unwrap();
            assert_eq!(code(&r), "peer_mismatch", "{r}");
            assert!(c.line().is_none());
        }
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn teardown_removes_the_boxs_helpers_and_the_runtime_dir_only() {
        let t = start(fast());
        let stranger = t.engine.add(
            "other-helper",
            true,
            &[
                (box_labels::HASH, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
                (labels::ROLE, "helper"),
                (labels::HELPER, "1"),
                (labels::PARENT, "0"),
                (labels::DEPTH, "1"),
                (labels::BREADTH, "1"),
            ],
        );
        let mut d = Conn::open(&t, Member::Director);
        spawn(&mut d);
        spawn(&mut d);
        assert_eq!(t.hub.teardown("test"), 2);
        assert!(!t.rt.exists());
        let calls = t.engine.calls();
        assert!(!calls.iter().any(|c| c.contains(&stranger)), "{calls:?}");
        assert!(
            t.engine.inspect("kanibako-app").unwrap().is_some(),
            "the director is not the hub's to remove"
        );
        assert!(d.call_may_fail());
    }

    impl Conn {
        /// After teardown: the connection is closed (or answers nothing more).
        fn call_may_fail(&mut self) -> bool {
            let _ = self.send_raw(b"{\"v\":1,\"id\":99,\"op\":\"ping\"}\n");
            self.line().is_none()
        }
    }

    impl Hub {
        fn teardown_listeners_for_test(&self) {
            self.shutdown.store(true, Ordering::SeqCst);
            self.wake();
        }
    }
}
