//! The browser sidecar of `start --browser` / `shell --browser` (spec: upstream-runtime
//! §8.5, §3.9 item 13): a headless Chromium container `<box container>-browser`, started
//! before the box, whose DevTools endpoint the box gets as `BROWSER_WS_ENDPOINT`.
//!
//! [`plan`] decides every argv (pure). Here are the effects, behind a small API the
//! launch's companions call: [`Browser::start`] (the sidecar up, its endpoint read,
//! the box's run joined to it; a failure is one warning and the box runs without it),
//! [`Browser::add_to`] (a run planned again joins the same sidecar), [`Browser::end`]
//! (an ephemeral session's sidecar goes with it; a persistent one's stays with its
//! container) and [`remove_for`] (whoever removes a box's container removes its
//! sidecar too).
//!
//! The endpoint is read without a network probe from the host (none could reach it):
//! Chromium writes `DevToolsActivePort` into its profile, which lies in a per-session
//! host directory (`$STATE/browser/<box container>`, 0700) mounted into the sidecar.

pub mod plan;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::output;
use crate::process::Invocation;
use crate::runtime::Runtime;
use crate::runtime::spec::RunSpec;

/// How often the profile is looked at for the endpoint, and for how long.
const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(30);
/// Every this many polls, whether the sidecar still runs (a Chromium that died is not
/// waited for).
const ALIVE_EVERY: u32 = 10;

/// The per-session host directory of the box container `container`'s sidecar.
pub fn dir_for(state: &Path, container: &str) -> PathBuf {
    state.join("browser").join(container)
}

/// A sidecar that runs, and the endpoint its box was given.
#[derive(Debug)]
pub struct Sidecar {
    pub name: String,
    pub endpoint: String,
    /// The box container it stands beside (its name and directory derive from it).
    pub container: String,
}

/// `--browser` for one launch.
pub struct Browser {
    rt: Runtime,
    image: String,
    state: PathBuf,
    /// The box's egress forwarder (`box.network=allowlist`), as Chromium's proxy.
    proxy: Option<String>,
    persistent: bool,
    started: OnceCell<Sidecar>,
}

impl Browser {
    /// `image`: `box.browser_image`; `proxy`: the box's egress forwarder, if any.
    pub fn new(
        rt: &Runtime,
        image: &str,
        state: &Path,
        proxy: Option<String>,
        persistent: bool,
    ) -> Self {
        Self {
            rt: rt.clone(),
            image: image.to_owned(),
            state: state.to_owned(),
            proxy,
            persistent,
            started: OnceCell::new(),
        }
    }

    /// The sidecar's run for the box run `spec`.
    fn spec_for(&self, spec: &RunSpec) -> RunSpec {
        plan::sidecar(
            spec,
            &self.image,
            &dir_for(&self.state, &spec.name),
            self.proxy.as_deref(),
        )
    }

    /// `--dry-run`: the sidecar's run, and the box's as it would join it.
    pub fn dry_run(&self, spec: RunSpec) -> (Invocation, RunSpec) {
        let side = self.spec_for(&spec);
        let inv = self
            .rt
            .run_command(&side, None, Some(Path::new("<env file: HOME=/browser>")));
        (
            inv,
            plan::join(spec, &side.name, &plan::endpoint_placeholder()),
        )
    }

    /// A run planned again (a persistent session restarted as a new conversation):
    /// beside the sidecar already started, if one was.
    pub fn add_to(&self, spec: RunSpec) -> RunSpec {
        match self.started.get() {
            Some(s) => plan::join(spec, &s.name, &s.endpoint),
            None => spec,
        }
    }

    /// Start the sidecar for the box run `spec` and return that run joined to it; if
    /// it does not start, say so in one line and return `spec` as it was.
    pub fn start(&self, spec: RunSpec) -> RunSpec {
        match self.start_sidecar(&spec) {
            Ok(s) => {
                tracing::debug!("browser sidecar {} at {}", s.name, s.endpoint);
                let joined = plan::join(spec, &s.name, &s.endpoint);
                let _ = self.started.set(s);
                joined
            }
            Err(why) => {
                output::warn(format_args!(
                    "the browser sidecar did not start ({why}); the box runs without {}",
                    plan::ENDPOINT_VAR
                ));
                spec
            }
        }
    }

    fn start_sidecar(&self, spec: &RunSpec) -> Result<Sidecar, String> {
        if self.image.is_empty() {
            return Err("box.browser_image is empty".into());
        }
        let side = self.spec_for(spec);
        let dir = dir_for(&self.state, &spec.name);
        // A sidecar left by a launch that was killed holds the name, and its profile
        // an old endpoint.
        remove(&self.rt, &side.name, &dir);
        make_private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ran = crate::envfile::temporary(&side.env)
            .map_err(|e| format!("env file: {e}"))
            .and_then(|env| {
                self.rt
                    .run_captured(&side, None, Some(&env))
                    .map_err(|e| e.to_string())
            });
        let out = match ran {
            Ok(out) => out,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty());
            return Err(match last {
                Some(l) if !self.rt.image_exists(&self.image) => format!(
                    "{} has no image {}: build it with scripts/browser-image, or set box.browser_image; {}",
                    self.rt.engine.kind.name(),
                    self.image,
                    l.trim()
                ),
                Some(l) => l.trim().to_owned(),
                None => format!("{} run failed", self.rt.engine.kind.name()),
            });
        }
        let file = dir.join(plan::PROFILE).join(plan::ACTIVE_PORT_FILE);
        let deadline = Instant::now() + WAIT;
        let mut polls = 0u32;
        loop {
            // Never through a link: the directory is the sidecar's to write.
            if let Ok(Some(bytes)) = crate::fsutil::read_settings(&file, 4096, false)
                && let Some(endpoint) = plan::endpoint(&String::from_utf8_lossy(&bytes))
            {
                return Ok(Sidecar {
                    name: side.name,
                    endpoint,
                    container: spec.name.clone(),
                });
            }
            polls += 1;
            let gone = polls.is_multiple_of(ALIVE_EVERY) && !self.rt.is_running(&side.name);
            if gone || Instant::now() >= deadline {
                let logs = self.rt.container_logs(&side.name, 20);
                remove(&self.rt, &side.name, &dir);
                // Chromium's complaints about a missing D-Bus are noise here
                let said = logs
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.contains("dbus") && !l.contains("GLib"));
                let what = if gone {
                    "Chromium exited"
                } else {
                    "no DevTools endpoint after 30 s"
                };
                return Err(match said {
                    Some(l) => format!("{what}: {}", l.trim()),
                    None => what.to_owned(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The session's run returned: an ephemeral session's sidecar goes, a persistent
    /// one's only if its box's container is not there (it did not start, or ended).
    pub fn end(&self) {
        let Some(s) = self.started.get() else { return };
        if self.persistent && self.rt.is_running(&s.container) {
            return;
        }
        remove_for(&self.rt, &self.state, &s.container);
    }
}

/// The box container `container` is being removed: its sidecar goes with it. Only a
/// look at the disk when it never had one.
pub fn remove_for(rt: &Runtime, state: &Path, container: &str) {
    remove(
        rt,
        &plan::sidecar_name(container),
        &dir_for(state, container),
    );
}

fn remove(rt: &Runtime, sidecar: &str, dir: &Path) {
    if std::fs::symlink_metadata(dir).is_err() {
        return;
    }
    rt.remove_container(sidecar);
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!("removing {}: {e}", dir.display());
    }
}

/// `dir` made anew, owner-only (its parent too): the profile holds the session's
/// cookies.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}
