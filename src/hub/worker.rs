//! The hub worker: one process serving one box's hub from start to teardown. It binds
//! the sockets, re-adopts running helpers, waits for the director's container to run
//! and then to exit (or for a stop signal), and then removes the helpers and the runtime
//! directory.
//!
//! It is a child of the supervisor (forked, so no new program starts) and dies with it.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use serde_json::json;

use super::config::HubConfig;
use super::engine::{HelperPlanner, HubEngine, RuntimeEngine};
use super::labels;
use super::log::HubLog;
use super::server::{Control, Hub, Service};
use crate::process::SystemExecutor;
use crate::runtime::labels as box_labels;

/// The worker finished its job: the supervisor exits too.
pub const EXIT_DONE: i32 = 0;
/// It cannot run with this configuration: restarting would not help.
pub const EXIT_FATAL: i32 = 2;

/// The signals that end a hub (delivered to the signal thread only).
pub fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

/// Why the hub ends.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    DirectorExited,
    NeverStarted,
    NotOurs(String),
    Signal(String),
}

impl Ended {
    fn reason(&self) -> String {
        match self {
            Ended::DirectorExited => "director_exited".into(),
            Ended::NeverStarted => "director_never_started".into(),
            Ended::NotOurs(n) => format!("container {n} is not this box's director"),
            Ended::Signal(s) => format!("signal {s}"),
        }
    }
}

/// How long a director that exited may take to be replaced by a new container of the
/// same name (a persistent session restarted as a new conversation) before the hub ends.
pub const SUCCESSOR_GRACE: Duration = Duration::from_secs(3);

/// Wait for the director to run, then for it to exit; a director replaced at once by a
/// new container of the box under its name is watched on (the tests' form of
/// [`watch_director_after`], with no pause).
#[cfg(test)]
pub fn watch_director(engine: &dyn HubEngine, cfg: &HubConfig, log: &HubLog) -> Ended {
    watch_director_after(engine, cfg, log, |_| {})
}

/// Wait for the director to run, then for it to exit, first waiting as `pause` does
/// (up to `cfg.watch_after_ms`).
fn watch_director_after(
    engine: &dyn HubEngine,
    cfg: &HubConfig,
    log: &HubLog,
    pause: impl FnOnce(Duration),
) -> Ended {
    if cfg.watch_after_ms > 0 {
        pause(Duration::from_millis(cfg.watch_after_ms));
    }
    let deadline = Instant::now() + Duration::from_millis(cfg.director_timeout_ms);
    let mut id = match first_director(engine, cfg, log, deadline) {
        Ok(id) => id,
        Err(ended) => return ended,
    };
    loop {
        if let Some(ended) = until_exit(engine, &id, log) {
            return ended;
        }
        match successor(engine, cfg, &id) {
            Some(Ok(next)) => {
                log.event("director_replaced", json!({"id": next}));
                id = next;
            }
            Some(Err(ended)) => return ended,
            None => return Ended::DirectorExited,
        }
    }
}

/// A new running container of this box under the director's name, within the grace.
fn successor(engine: &dyn HubEngine, cfg: &HubConfig, old: &str) -> Option<Result<String, Ended>> {
    let until = Instant::now() + SUCCESSOR_GRACE;
    while Instant::now() < until {
        match engine.inspect(&cfg.director) {
            Ok(Some(c)) if c.id == old && c.running => return None,
            Ok(Some(c)) if c.id != old => {
                let hash = c.labels.get(box_labels::HASH).map(String::as_str);
                if hash != Some(cfg.box_hash.as_str()) || c.labels.contains_key(labels::ROLE) {
                    return Some(Err(Ended::NotOurs(cfg.director.clone())));
                }
                if c.running {
                    return Some(Ok(c.id));
                }
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The director's exit: `None` once it exited.
fn until_exit(engine: &dyn HubEngine, id: &str, log: &HubLog) -> Option<Ended> {
    loop {
        match engine.wait(id, Duration::from_secs(60)) {
            Ok(true) => return None,
            Ok(false) => {}
            Err(e) => {
                log.event("engine_error", json!({"during": "wait", "error": e.0}));
                std::thread::sleep(Duration::from_secs(1));
                if !matches!(engine.inspect(id), Ok(Some(c)) if c.running) {
                    return None;
                }
            }
        }
    }
}

/// The first director container to run, by the deadline.
fn first_director(
    engine: &dyn HubEngine,
    cfg: &HubConfig,
    log: &HubLog,
    deadline: Instant,
) -> Result<String, Ended> {
    let id = loop {
        match engine.inspect(&cfg.director) {
            Ok(Some(c)) => {
                let hash = c.labels.get(box_labels::HASH).map(String::as_str);
                if hash != Some(cfg.box_hash.as_str()) || c.labels.contains_key(labels::ROLE) {
                    return Err(Ended::NotOurs(cfg.director.clone()));
                }
                if c.running {
                    break c.id;
                }
            }
            Ok(None) => {}
            Err(e) => log.event("engine_error", json!({"during": "director", "error": e.0})),
        }
        if Instant::now() >= deadline {
            return Err(Ended::NeverStarted);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    log.event("director_running", json!({"id": id}));
    Ok(id)
}

/// What every member's directory serves, one socket each. This is where another
/// per-member listener joins the hub (the egress proxy's `egress.sock`): same
/// identity check, same lifetime, same log.
pub fn services(cfg: &HubConfig) -> Result<Vec<Arc<dyn Service>>, String> {
    let mut out: Vec<Arc<dyn Service>> = vec![Arc::new(Control)];
    if let Some(e) = &cfg.egress {
        out.push(Arc::new(super::egress::Egress(e.proxy()?)));
    }
    Ok(out)
}

/// Serve until the director goes or a stop signal comes; then tear down. Returns the
/// exit code. `ready` gets one byte once the sockets are bound.
pub fn run(cfg: HubConfig, ready: Option<OwnedFd>, log: HubLog) -> i32 {
    // Stop signals go to the signal thread alone (every thread started below
    // inherits this mask).
    let signals = stop_signals();
    let _ = signals.thread_block();
    let info = match cfg.engine.info() {
        Ok(i) => i,
        Err(e) => {
            log.event("fatal", json!({"error": e}));
            return EXIT_FATAL;
        }
    };
    let planner = cfg
        .helper
        .clone()
        .map(|t| Box::new(t) as Box<dyn HelperPlanner>);
    let engine: Arc<RuntimeEngine> = Arc::new(
        RuntimeEngine::new(info, Box::new(SystemExecutor), planner).with_limits({
            // A helper starts within the host's limits, as its box did.
            let host = crate::host::HostEnv::capture().ok();
            crate::runtime::limits::Probe::new(
                host.as_ref()
                    .and_then(|h| h.var(crate::host::vars::CONTAINERS_CONF))
                    .map(Into::into),
                host.as_ref().and_then(crate::host::HostEnv::home),
            )
        }),
    );
    let forker = cfg.fork.clone().map(|f| {
        Arc::new(super::fork::BoxForker::new(f, &cfg.box_hash)) as Arc<dyn super::server::Forker>
    });
    let services = match services(&cfg) {
        Ok(s) => s,
        Err(e) => {
            log.event("fatal", json!({"error": e}));
            return EXIT_FATAL;
        }
    };
    let hub = match Hub::start(cfg.clone(), engine.clone(), services, forker, log) {
        Ok(h) => h,
        Err(e) => {
            crate::output::say(format!("kanibako _hub: {e}"));
            return EXIT_FATAL;
        }
    };
    if let Some(fd) = ready {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(b"r");
    }
    let (tx, rx) = mpsc::channel::<Ended>();
    {
        let hub = hub.clone();
        std::thread::Builder::new()
            .name("hub-accept".into())
            .spawn(move || hub.accept_loop())
            .ok();
    }
    {
        let tx = tx.clone();
        let hub = hub.clone();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("hub-director".into())
            .spawn(move || {
                let ended = watch_director_after(engine.as_ref(), &hub.cfg, &hub.log, |d| {
                    hub.await_contact(d);
                });
                let _ = tx.send(ended);
            })
            .ok();
    }
    std::thread::Builder::new()
        .name("hub-signals".into())
        .spawn(move || {
            let sig = signals.wait().map_or("?".into(), |s| s.as_str().to_owned());
            let _ = tx.send(Ended::Signal(sig));
        })
        .ok();
    let ended = rx.recv().unwrap_or(Ended::Signal("lost".into()));
    hub.teardown(&ended.reason());
    EXIT_DONE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::engine::fake::FakeEngine;

    const HASH: &str = "0123456789abcdef0123456789abcdef";

    /// An ephemeral session's hub asks the engine nothing about its director until its
    /// pause is over (the launch ends it before that when the session is short).
    #[test]
    fn the_director_is_watched_after_the_pause_only() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = crate::hub::config::sample(d.path());
        cfg.box_hash = HASH.into();
        cfg.watch_after_ms = 3_000;
        let log = HubLog::open(&d.path().join("hub.log"), 1 << 20, false);
        let e = FakeEngine::default();
        e.add(&cfg.director, true, &[(box_labels::HASH, HASH)]);
        e.director_exits();
        let mut paused = None;
        let ended = watch_director_after(&e, &cfg, &log, |d| {
            assert!(e.calls().is_empty(), "{:?}", e.calls());
            paused = Some(d);
        });
        assert_eq!(paused, Some(Duration::from_secs(3)));
        assert_eq!(ended, Ended::DirectorExited);
        assert!(!e.calls().is_empty());
        cfg.watch_after_ms = 0;
        let ended = watch_director_after(&e, &cfg, &log, |_| panic!("no pause"));
        assert_eq!(ended, Ended::DirectorExited);
    }

    /// A persistent session restarted as a new conversation replaces the director
    /// under its name: the hub watches the new one instead of ending.
    #[test]
    fn a_replaced_director_is_watched_on_and_a_foreign_one_is_not() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = crate::hub::config::sample(d.path());
        cfg.box_hash = HASH.into();
        let log_path = d.path().join("hub.log");
        let log = HubLog::open(&log_path, 1 << 20, false);
        let e = FakeEngine::default();
        let first = e.add(&cfg.director, true, &[(box_labels::HASH, HASH)]);
        std::thread::scope(|s| {
            let watch = s.spawn(|| watch_director(&e, &cfg, &log));
            std::thread::sleep(Duration::from_millis(300));
            e.stop(&first).unwrap();
            e.director_exits();
            std::thread::sleep(Duration::from_millis(300));
            e.remove(&first).unwrap();
            e.add(&cfg.director, true, &[(box_labels::HASH, HASH)]);
            assert_eq!(watch.join().unwrap(), Ended::DirectorExited);
        });
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(text.contains("director_replaced"), "{text}");

        let e = FakeEngine::default();
        let first = e.add(&cfg.director, true, &[(box_labels::HASH, HASH)]);
        e.director_exits();
        e.remove(&first).unwrap();
        e.add(&cfg.director, true, &[(box_labels::HASH, "another")]);
        assert!(matches!(watch_director(&e, &cfg, &log), Ended::NotOurs(_)));
    }
}
