//! The hidden egress commands. They run before (and without) the per-run context: in
//! a box there is no kanibako home to load, and the host-side proxy needs none.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::cli::egress::{CheckArgs, ConnectArgs, EgressCommand, ForwardArgs, RelayArg, ServeArgs};
use crate::egress::journal::{self, Journal};
use crate::egress::policy::{Policy, PolicySpec};
use crate::egress::proxy::{self, Limits, Proxy};
use crate::egress::relay::Mode;
use crate::egress::resolve::{Resolver, StaticResolver, SystemResolver};
use crate::egress::{self, client, forward, selftest};
use crate::error::{Exit, UserError};

pub fn run(command: EgressCommand) -> Result<Exit> {
    match command {
        EgressCommand::Serve(a) => serve(&a),
        EgressCommand::Forward(a) => forward_cmd(&a),
        EgressCommand::Check(a) => check(&a),
        EgressCommand::Connect(a) => connect(&a),
    }
}

/// Read and compile a policy file.
pub fn load_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the egress policy {}", path.display()))?;
    let spec: PolicySpec = serde_json::from_str(&text).map_err(|e| {
        UserError::new(format!(
            "{}:{}: not a valid egress policy: {e}",
            path.display(),
            e.line()
        ))
        .hint("the keys are allow, allow_private, deny (lists of rules) and learn (true/false)")
    })?;
    spec.compile(&path.display().to_string()).map_err(|e| {
        let hints = e.source.hints();
        let mut err = UserError::new(format!("{}: {e}", path.display()));
        for h in hints {
            err = err.hint(h);
        }
        err.into()
    })
}

fn resolver(pins: &[String]) -> Result<Arc<dyn Resolver>> {
    if pins.is_empty() {
        return Ok(Arc::new(SystemResolver));
    }
    let mut r = StaticResolver::new().with_fallback(Arc::new(SystemResolver));
    for p in pins {
        let bad = || UserError::new(format!("--resolve {p:?}: expected NAME=ADDR"));
        let (name, addr) = p.split_once('=').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        r = r.pin(name.trim_end_matches('.'), &[addr]);
    }
    Ok(Arc::new(r))
}

fn serve(a: &ServeArgs) -> Result<Exit> {
    let policy = load_policy(&a.policy)?;
    let journal = match &a.log {
        Some(p) => Journal::open(p, journal::DEFAULT_MAX_BYTES)
            .with_context(|| format!("opening the egress log {}", p.display()))?,
        None => Journal::discard(),
    };
    let limits = Limits {
        max_tunnels: a.max_tunnels.max(1),
        idle_timeout: Duration::from_secs(a.idle_timeout.max(1)),
        head_timeout: Duration::from_secs(a.head_timeout.max(1)),
        relay: match a.relay {
            RelayArg::Splice => Mode::Splice,
            RelayArg::Copy => Mode::Copy,
        },
        ..Limits::default()
    };
    egress::ignore_sigpipe();
    egress::raise_fd_limit();
    // SIGHUP is taken by one thread with sigwait; block it before any other thread
    // exists, so every thread inherits the mask.
    let hup = hup_set();
    let _ = hup.thread_block();
    let listener = proxy::bind(&a.socket, a.owner)
        .with_context(|| format!("listening on {}", a.socket.display()))?;
    let proxy = Proxy::new(policy, resolver(&a.resolve)?, journal, limits);
    reload_on_hup(proxy.clone(), a.policy.clone());
    let e = proxy.serve(&listener, &a.member);
    Err(anyhow::Error::new(e).context(format!("serving {}", a.socket.display())))
}

fn hup_set() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGHUP);
    set
}

fn reload_on_hup(proxy: Proxy, path: PathBuf) {
    let set = hup_set();
    let _ = thread::Builder::new()
        .name("egress-hup".into())
        .spawn(move || {
            while set.wait().is_ok() {
                match load_policy(&path) {
                    Ok(p) => {
                        proxy.set_policy(p);
                        tracing::info!("egress policy re-read from {}", path.display());
                    }
                    Err(e) => crate::output::warn(format!(
                        "kanibako egress-serve: keeping the old policy: {e:#}"
                    )),
                }
            }
        });
}

fn forward_cmd(a: &ForwardArgs) -> Result<Exit> {
    egress::ignore_sigpipe();
    egress::raise_fd_limit();
    let run = if a.detach {
        forward::run_detached
    } else {
        forward::run
    };
    run(a.listen, &a.socket)
        .with_context(|| format!("forwarding {} to {}", a.listen, a.socket.display()))?;
    Ok(Exit::Success)
}

fn check(a: &CheckArgs) -> Result<Exit> {
    let checks = selftest::run(a.proxy, Duration::from_secs(a.timeout.max(1)));
    for c in &checks {
        let mark = if c.passed { "ok  " } else { "FAIL" };
        println!("{mark} {}: {}", c.name, c.detail);
    }
    if selftest::passed(&checks) {
        return Ok(Exit::Success);
    }
    Err(UserError::new("the egress self-test failed: this box's network is not what its policy says")
        .hint("is `kanibako egress-forward` running in the box, and the host-side proxy behind /run/kanibako/egress.sock?")
        .into())
}

fn connect(a: &ConnectArgs) -> Result<Exit> {
    egress::ignore_sigpipe();
    let answer =
        client::connect(a.proxy, &a.host, a.port, Duration::from_secs(15)).with_context(|| {
            format!(
                "asking the egress proxy at {} for {}:{}",
                a.proxy, a.host, a.port
            )
        })?;
    if answer.status != 200 {
        let body = String::from_utf8_lossy(&answer.leftover);
        let why = body.trim().trim_start_matches("kanibako egress: ");
        return Err(UserError::new(format!(
            "{}:{}: {} ({why})",
            a.host, a.port, answer.status_line
        ))
        .hint("the box's egress policy decides which hosts it may reach (box.allow)")
        .into());
    }
    let mut stdout = io::stdout().lock();
    stdout.write_all(&answer.leftover)?;
    stdout.flush()?;
    let mut up = answer.stream.try_clone()?;
    let sender = thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut up);
        let _ = up.shutdown(Shutdown::Write);
    });
    let mut down = answer.stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(sender);
    Ok(Exit::Success)
}
