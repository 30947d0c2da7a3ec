//! The control protocol on `hub.sock`: a connection's frames become requests, each
//! request its reply (or, for `log`, the entries and then a follow), and the effects
//! of each op on the box's helpers and message log.
//!
//! Every op names helpers by number; the hub maps a number to a container through
//! the box's labels, checks who may act on it, and acts by id.

use super::*;

/// What a request produced: a reply, or (for `log`) events before it and maybe a follow.
pub(super) enum Outcome {
    Reply(Reply),
    Log {
        events: Vec<Vec<u8>>,
        reply: Reply,
        follow: Option<Arc<Follower>>,
    },
}

pub(super) struct FollowQueue {
    pub(super) items: VecDeque<Value>,
    pub(super) dropped: u64,
}

/// A connection following the log.
pub(super) struct Follower {
    pub(super) who: Member,
    pub(super) from: Option<u32>,
    pub(super) below: BTreeSet<u32>,
    pub(super) max: usize,
    pub(super) queue: Mutex<FollowQueue>,
    pub(super) ready: Condvar,
}

impl Follower {
    pub(super) fn push(&self, entry: &Value) {
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

impl Hub {
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
        self.seen_helpers.store(true, Ordering::SeqCst);
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

    pub(super) fn fork(&self, who: Member, name: &ForkName) -> Result<Value, Refusal> {
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
        let mut made = lock(&self.forks);
        let max = self.cfg.limits.max_forks;
        if *made >= max {
            return Err(refusal(
                ErrorCode::BudgetExhausted,
                format!("this box's hub has made its {max} fork(s); no more this session"),
            ));
        }
        let stopping = || {
            if self.is_shutting_down() {
                Err(io::Error::other("the hub is stopping"))
            } else {
                Ok(())
            }
        };
        let r = f.fork(name, &stopping).inspect_err(|(code, message)| {
            self.log.event(
                "fork_failed",
                json!({"name": name.as_str(), "code": code.as_str(), "error": message}),
            );
        })?;
        *made += 1;
        self.control(
            "fork",
            json!({"name": name.as_str(), "path": r.path, "new_name": r.name}),
        );
        Ok(json!(r))
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
