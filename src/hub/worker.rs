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

/// Wait for the director to run, then for it to exit.
pub fn watch_director(engine: &dyn HubEngine, cfg: &HubConfig, log: &HubLog) -> Ended {
    let deadline = Instant::now() + Duration::from_millis(cfg.director_timeout_ms);
    let id = loop {
        match engine.inspect(&cfg.director) {
            Ok(Some(c)) => {
                let hash = c.labels.get(box_labels::HASH).map(String::as_str);
                if hash != Some(cfg.box_hash.as_str()) || c.labels.contains_key(labels::ROLE) {
                    return Ended::NotOurs(cfg.director.clone());
                }
                if c.running {
                    break c.id;
                }
            }
            Ok(None) => {}
            Err(e) => log.event("engine_error", json!({"during": "director", "error": e.0})),
        }
        if Instant::now() >= deadline {
            return Ended::NeverStarted;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    log.event("director_running", json!({"id": id}));
    loop {
        match engine.wait(&id, Duration::from_secs(60)) {
            Ok(true) => return Ended::DirectorExited,
            Ok(false) => {}
            Err(e) => {
                log.event("engine_error", json!({"during": "wait", "error": e.0}));
                std::thread::sleep(Duration::from_secs(1));
                if !matches!(engine.inspect(&id), Ok(Some(c)) if c.running) {
                    return Ended::DirectorExited;
                }
            }
        }
    }
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
                let _ = tx.send(watch_director(engine.as_ref(), &hub.cfg, &hub.log));
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
