//! Per-box network egress for `box.network = allowlist`: the box runs with
//! `--network=none`, and its only way out is a host-side CONNECT proxy reached through
//! a Unix socket mounted into the box, in front of which an in-box forwarder listens on
//! loopback.
//!
//! | module | owns |
//! |---|---|
//! | [`policy`] | rules, allow/deny lists, presets expanded, the decision (pure) |
//! | [`preset`] | the built-in rule sets (`@claude`, `@npm`, …) |
//! | [`name`] | host-name and IP-literal normalisation, IDNA for rules (pure) |
//! | [`addr`] | the address classifier: public or not, and which range (pure) |
//! | [`head`] | the request-head parser (pure, fuzzed) |
//! | [`resolve`] | the resolver trait, the system resolver, a pinned one for tests |
//! | [`journal`] | the JSON-lines decision log |
//! | [`proposal`] | the allow list learn mode proposes from a log (pure) |
//! | [`relay`] | moving bytes both ways between two sockets |
//! | [`proxy`] | the host-side proxy serving one socket per box member |
//! | [`forward`] | the in-box forwarder (loopback TCP → mounted socket) |
//! | [`client`] | a CONNECT client (self-test probe, ssh `ProxyCommand`) |
//! | [`env`] | the proxy variables a box gets (pure) |
//! | [`entry`] | the in-box entry: the forwarder, then the command (pure) |
//! | [`selftest`] | the in-box start-up self-test |
//!
//! This module never starts containers or reads settings: the launch decides the mode
//! and mounts, and hands the proxy a [`policy::Policy`].

pub mod addr;
pub mod client;
pub mod entry;
pub mod env;
pub mod forward;
pub mod head;
pub mod journal;
pub mod name;
pub mod policy;
pub mod preset;
pub mod proposal;
pub mod proxy;
pub mod relay;
pub mod resolve;
pub mod selftest;

/// The proxy's socket in each member's directory (`m/<member>/egress.sock`).
pub const SOCKET_NAME: &str = "egress.sock";

/// Where a box sees its member directory's socket.
pub const IN_BOX_SOCKET: &str = "/run/kanibako/egress.sock";

/// Ignore SIGPIPE in this process, so a write to a socket whose peer has gone is an
/// error to handle, not the end of the process. The proxy and forwarder need it; the
/// `kanibako` binary otherwise restores the default for `kanibako list | head`.
#[allow(unsafe_code)]
pub fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code; called before the serving threads start.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}

/// Raise this process's open-file limit to its hard limit: every tunnel holds two
/// sockets and two pipes, and the soft default (1024 in many containers) would cap a
/// box at far fewer tunnels than the proxy allows.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
