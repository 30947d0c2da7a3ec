//! The host as kanibako sees it: environment variables, user ids, home, cwd and terminal
//! state, captured once at start-up.
//!
//! This is the only module that reads the process environment (clippy enforces it), so
//! tests build a `HostEnv` by hand instead of mutating global state.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Environment variable names kanibako reads, in one place.
pub mod vars {
    pub const HOME: &str = "HOME";
    pub const PATH: &str = "PATH";
    pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";
    pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
    pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
    pub const XDG_CACHE_HOME: &str = "XDG_CACHE_HOME";
    pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
    /// Container engine override, the name the Python tool uses.
    pub const DOCKER_CMD: &str = "KANIBAKO_DOCKER_CMD";
    /// Tracing filter (`kanibako=debug` and so on); `-v` sets debug when this is unset.
    pub const LOG: &str = "KANIBAKO_LOG";
    /// Remote podman: when set, rootless-ness cannot be inferred from our own uid.
    pub const CONTAINER_HOST: &str = "CONTAINER_HOST";
    pub const DOCKER_HOST: &str = "DOCKER_HOST";
    /// podman's configuration file, replacing the system's (for its `default_ulimits`).
    pub const CONTAINERS_CONF: &str = "CONTAINERS_CONF";
    /// Set (to anything): no colour and no progress bars.
    pub const NO_COLOR: &str = "NO_COLOR";
    /// `dumb`: a terminal that cannot redraw a progress bar.
    pub const TERM: &str = "TERM";
    /// Set (to anything but `0`): colour even when stdout is not a terminal.
    pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";
    /// Where `cargo install` put kanibako (default `~/.cargo`), for `system upgrade`.
    pub const CARGO_HOME: &str = "CARGO_HOME";
    /// Who we are, for the `/etc/subuid` entry a rootless engine needs.
    pub const USER: &str = "USER";
}

#[derive(Clone, Debug)]
pub struct HostEnv {
    vars: BTreeMap<String, OsString>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub stdin_tty: bool,
    pub stdout_tty: bool,
    pub stderr_tty: bool,
}

impl HostEnv {
    /// Capture the real process state.
    pub fn capture() -> std::io::Result<Self> {
        #[allow(clippy::disallowed_methods)] // the one sanctioned read of the environment
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
            .collect();
        Ok(Self {
            vars,
            cwd: std::env::current_dir()?,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            stdin_tty: std::io::stdin().is_terminal(),
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        })
    }

    /// A host for tests: no variables beyond those given, not a terminal.
    pub fn for_test(cwd: &Path, vars: &[(&str, &str)]) -> Self {
        Self {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
                .collect(),
            cwd: cwd.to_owned(),
            uid: 1000,
            gid: 1000,
            stdin_tty: false,
            stdout_tty: false,
            stderr_tty: false,
        }
    }

    /// A variable's value; an empty value counts as unset, as XDG asks.
    pub fn var(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|v| !v.is_empty())
    }

    pub fn var_str(&self, name: &str) -> Option<&str> {
        self.var(name).and_then(|v| v.to_str())
    }

    /// The whole captured environment, for children that must inherit it.
    pub fn all_vars(&self) -> impl Iterator<Item = (&str, &OsString)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn home(&self) -> Option<PathBuf> {
        self.var(vars::HOME).map(PathBuf::from)
    }

    pub fn path_var(&self) -> Option<&OsString> {
        self.var(vars::PATH)
    }

    /// Look a program up on the captured `PATH`.
    pub fn which(&self, program: &str) -> Option<PathBuf> {
        let path = self.path_var()?;
        which::which_in(program, Some(path), &self.cwd).ok()
    }
}
