//! A box's run on a remote engine (one on another machine: `runtime::remote` says how
//! that is known). There, every bind source is a path on the engine's host, so:
//!
//! - the project directory is `box.remote_path` when set (every mount from inside the
//!   project follows it), else the same path as here;
//! - what exists only here — the agent's install (or tweakcc's patched copy), this
//!   kanibako binary — is copied into the box's home once (again when it changes) and
//!   mounted from there; the host's image store (`--share-images`) and the hub's sockets
//!   (helpers, `box.network = allowlist`) cannot be had there and are refused or left
//!   out, with a message;
//! - before the run, one `create` of a container that mounts every source (never
//!   started, removed at once) has the engine check they exist on its host; a missing
//!   one is a one-line error naming it, with a hint.
//!
//! The box's home and kanibako's data directory must be on the engine's host at the same
//! path (a shared home directory, or a data directory on storage both see): the check
//! says so when they are not.
//!
//! [`Remote::plan`] and [`Remote::adapt`] are pure; [`Remote::prepare`] does the
//! copies and the check.

mod copy;

use std::path::{Path, PathBuf};

use crate::error::UserError;
use crate::runtime::spec::{Mount, RunSpec};
use crate::runtime::{EngineInfo, Runtime};
use crate::settings::stack::{Origin, Setting, Stack};

/// Where copies of local-only mounts live in a box's home.
pub const COPIES: &str = ".kanibako-remote";

/// What the launch knows that a remote run depends on.
pub struct Facts<'a> {
    /// The project directory here.
    pub workspace: &'a Path,
    /// The box's home (a path the engine's host must have too).
    pub home: &'a Path,
    /// Bind sources that exist only on this host (the agent's install, this binary).
    pub local_only: Vec<PathBuf>,
    /// `--share-images` is on.
    pub share_images: bool,
    /// `box.network = allowlist` (the box's proxy is in its hub, on this host).
    pub allowlist: bool,
    /// `--browser`: the sidecar's endpoint is read from a directory on this host.
    pub browser: bool,
}

/// The engine as this launch sees it: `engine.remote` applied; why it is remote.
pub fn engine(
    host: &crate::host::HostEnv,
    mut rt: Runtime,
    levels: &Stack,
) -> anyhow::Result<(Runtime, Option<String>)> {
    let setting = levels.str_setting("engine.remote", Some("auto"))?;
    let detected = crate::runtime::remote::detect_for(rt.engine.kind, &rt.engine.program, host);
    let why = crate::runtime::remote::decide(setting.value.as_deref(), detected);
    rt.engine = rt.engine.clone().with_remote(why.is_some(), host.uid);
    Ok((rt, why))
}

/// `box.remote_path`, with where it was set.
pub fn remote_path(levels: &Stack) -> anyhow::Result<Setting<Option<String>>> {
    levels.str_setting("box.remote_path", None)
}

/// A run on a remote engine, planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    why: String,
    /// The project here, and where it is on the engine's host (if elsewhere).
    workspace: PathBuf,
    mapped: Option<(PathBuf, Origin)>,
    home: PathBuf,
    local_only: Vec<PathBuf>,
}

/// A source copied into the home: from here, to there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub src: PathBuf,
    pub dest: PathBuf,
}

fn refuse(what: String, hint: &str) -> anyhow::Error {
    UserError::new(what).hint(hint).into()
}

impl Remote {
    /// `None` on a local engine (`why` is `None`). Refuses what a remote engine
    /// cannot have.
    pub fn plan(
        engine: &EngineInfo,
        why: Option<String>,
        remote_path: Setting<Option<String>>,
        f: Facts<'_>,
    ) -> anyhow::Result<Option<Self>> {
        let Some(why) = why.filter(|_| engine.remote) else {
            return Ok(None);
        };
        if f.share_images {
            return Err(refuse(
                format!(
                    "--share-images mounts this host's image store, which a remote engine ({why}) cannot see"
                ),
                "use --no-share-images (or box.share_images: false) with a remote engine",
            ));
        }
        if f.allowlist {
            return Err(refuse(
                format!(
                    "box.network = allowlist needs the box's proxy on this host, which a box on a remote engine ({why}) cannot reach"
                ),
                "use box.network full or none with a remote engine",
            ));
        }
        if f.browser {
            return Err(refuse(
                format!(
                    "--browser reads the sidecar's DevTools endpoint from a directory on this host, which a remote engine ({why}) does not write"
                ),
                "leave out --browser with a remote engine",
            ));
        }
        let mapped = match remote_path.value.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) if !p.starts_with('/') => {
                return Err(refuse(
                    format!(
                        "box.remote_path {p} ({}) is not an absolute path",
                        remote_path.origin
                    ),
                    "set it to where the project is on the engine's host, as /srv/work/app",
                ));
            }
            Some(p) => Some((PathBuf::from(p), remote_path.origin)),
        };
        Ok(Some(Self {
            why,
            workspace: f.workspace.to_owned(),
            mapped,
            home: f.home.to_owned(),
            local_only: f.local_only,
        }))
    }

    /// Why the engine is remote.
    pub fn why(&self) -> &str {
        &self.why
    }

    /// Where `src` is on the engine's host.
    fn there(&self, src: &Path) -> PathBuf {
        if let Some((to, _)) = &self.mapped
            && let Ok(rest) = src.strip_prefix(&self.workspace)
        {
            return if rest.as_os_str().is_empty() {
                to.clone()
            } else {
                to.join(rest)
            };
        }
        if self.local_only.iter().any(|l| l == src) {
            return self.copy_of(src);
        }
        src.to_owned()
    }

    /// Where a local-only source's copy lives in the home (named by the source's path,
    /// so each source has one copy).
    fn copy_of(&self, src: &Path) -> PathBuf {
        let flat: String = src
            .to_string_lossy()
            .trim_start_matches('/')
            .chars()
            .map(|c| if c == '/' { '_' } else { c })
            .collect();
        self.home.join(COPIES).join(flat)
    }

    /// The copies [`Remote::prepare`] makes.
    pub fn copies(&self) -> Vec<Copy> {
        self.local_only
            .iter()
            .map(|src| Copy {
                src: src.clone(),
                dest: self.copy_of(src),
            })
            .collect()
    }

    /// The run as the engine's host must see it: every bind source there.
    pub fn adapt(&self, mut spec: RunSpec) -> RunSpec {
        for m in &mut spec.mounts {
            if let Mount::Bind { src, .. } = m {
                *src = self.there(src);
            }
        }
        spec
    }

    /// Before the run of `spec` (adapted) on `image`: the local-only sources copied
    /// into the home (once), then every bind source checked on the engine's host.
    pub fn prepare(&self, rt: &Runtime, image: &str, spec: &RunSpec) -> anyhow::Result<()> {
        for c in self.copies() {
            copy::once(&c.src, &c.dest).map_err(|e| {
                anyhow::Error::from(UserError::new(format!(
                    "copying {} into the box's home for the remote engine: {e}",
                    c.src.display()
                )))
            })?;
        }
        let sources: Vec<&Path> = spec
            .mounts
            .iter()
            .filter_map(|m| match m {
                Mount::Bind { src, .. } => Some(src.as_path()),
                Mount::Mask { .. } => None,
            })
            .collect();
        let name = format!("{}-check-{}", spec.name, std::process::id());
        let Some(complaint) = rt.check_bind_sources(image, &name, &sources)? else {
            return Ok(());
        };
        // Only a source the engine names is ours to explain; anything else (the image
        // not here yet, …) is for the run itself to meet and report.
        // The longest it names: a project's path is inside its vault's.
        match sources
            .iter()
            .filter(|s| complaint.contains(&*s.to_string_lossy()))
            .max_by_key(|s| s.as_os_str().len())
        {
            Some(missing) => Err(self.missing(missing)),
            None => {
                tracing::debug!("remote mount check: {complaint}");
                Ok(())
            }
        }
    }

    /// The error for a bind source the engine's host lacks.
    fn missing(&self, path: &Path) -> anyhow::Error {
        let shown = path.display();
        let why = &self.why;
        if let Some((to, origin)) = &self.mapped
            && path.starts_with(to)
        {
            return refuse(
                format!(
                    "{shown} does not exist on the engine's host ({why}), where box.remote_path ({origin}) puts the project"
                ),
                "put the project there on that host, or set box.remote_path to where it is: kanibako box config box.remote_path=/path/there",
            );
        }
        if path.starts_with(&self.workspace) {
            return refuse(
                format!(
                    "the project directory {shown} does not exist on the engine's host ({why})"
                ),
                "set box.remote_path to where the project is on that host: kanibako box config box.remote_path=/path/there",
            );
        }
        refuse(
            format!("{shown} does not exist on the engine's host ({why})"),
            "a remote engine needs kanibako's data directory (the box's home) at the same path on its host, e.g. a shared home directory; or run kanibako on that host",
        )
    }
}

#[cfg(test)]
mod tests;
