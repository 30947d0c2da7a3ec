//! What a run mounts besides the box's home and workspace, as facts gathered from the
//! host for [`super::plan::plan`]: which vault directories are real, the
//! agent's install, the shared caches and named shares in force, the host's image
//! store for `--share-images`. A source that is missing or a link is left out with a
//! warning; only a read-write share's source is made.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::target::Target;
use super::{plan, seeds};
use crate::agents::Install;
use crate::agents::resources::{self, Resource, Scope};
use crate::boxes::{BoxIdentity, Mode, SharedDirs};
use crate::context::Context;
use crate::error::UserError;
use crate::fsutil;
use crate::output;
use crate::runtime::Runtime;
use crate::runtime::spec::{Mount, RunSpec};
use crate::settings::keys::KeyRef;
use crate::settings::stack::Stack;

fn missing(src: &Path) {
    output::warn(format_args!(
        "mount source does not exist: {}",
        src.display()
    ));
}

/// Which of the box's vault directories (`ro`, `rw`) are real directories inside its
/// workspace; the others are not mounted, and said so (a missing one only on a box
/// that is not new).
pub fn vault(b: &BoxIdentity, new: bool) -> (bool, bool) {
    let Some(v) = &b.vault else {
        return (false, false);
    };
    let real = |d: &Path| crate::boxes::home::real_dir(&b.workspace, d);
    let present = (real(&v.ro), real(&v.rw));
    for (dir, present) in [(&v.ro, present.0), (&v.rw, present.1)] {
        if present {
            continue;
        }
        if fsutil::is_symlink(dir) || dir.is_dir() {
            output::warn(format_args!(
                "{} is (or lies behind) a symbolic link; not mounted",
                dir.display()
            ));
        } else if !new {
            missing(dir);
        }
    }
    present
}

/// The agent's install, read-only (`patched`: its binary swapped for tweakcc's copy).
pub fn agent(target: &Target, patched: Option<&Install>) -> Vec<Mount> {
    let Some((agent, install)) = target.agent() else {
        return Vec::new();
    };
    agent
        .mounts(patched.unwrap_or(install))
        .into_iter()
        .filter(|m| match m {
            Mount::Bind { src, .. } if !src.exists() => {
                missing(src);
                false
            }
            _ => true,
        })
        .collect()
}

/// The box's shared-cache directories under the `paths.shared` in force (none for a
/// standalone box); `box info` shows the same.
pub fn shared_dirs(cx: &Context, levels: &Stack, b: &BoxIdentity) -> Result<Option<SharedDirs>> {
    let name = levels.known("paths.shared")?;
    Ok(b.shared_dirs(&cx.paths.data, name.get().unwrap_or("shared")))
}

/// The shared caches in force that exist: global ones (`shared:`) and the crab's own.
/// A standalone box gets none.
pub fn shared(
    cx: &Context,
    levels: &Stack,
    b: &BoxIdentity,
    crab_id: &str,
) -> Result<Vec<(PathBuf, String)>> {
    let mut shared = Vec::new();
    let Some(dirs) = shared_dirs(cx, levels, b)? else {
        return Ok(shared);
    };
    for (name, rel) in levels.shared()? {
        let src = dirs.global.join(&name);
        if src.is_dir() {
            shared.push((src, rel));
        }
    }
    // The crab's own caches: the workset's for a member, as upstream.
    for (name, rel) in levels.crab_shared()? {
        let src = dirs.local.join(crab_id).join(&name);
        if src.is_dir() {
            shared.push((src, rel));
        }
    }
    Ok(shared)
}

/// The agent's resources kept outside the box's home (`resource.<path>`, [`Resource`]):
/// none for a standalone box or without an agent, as upstream. A bad value keeps the
/// usual scope and is described in the warnings that come back.
pub fn resources(
    cx: &Context,
    levels: &Stack,
    b: &BoxIdentity,
    target: &Target,
) -> Result<(Vec<Resource>, Vec<String>)> {
    let Some((agent, _)) = target.agent() else {
        return Ok(Default::default());
    };
    let Some(dirs) = shared_dirs(cx, levels, b)? else {
        return Ok(Default::default());
    };
    let global = dirs.global;
    let mut err = None;
    let (found, warnings) = resources::in_force(
        agent.resources(),
        agent.id(),
        agent.config_dir(),
        &global,
        |path| match levels.resolve(&KeyRef::Resource(path.to_owned())) {
            Ok(r) => r.value,
            Err(e) => {
                err.get_or_insert(e);
                None
            }
        },
    );
    match err {
        Some(e) => Err(e),
        None => Ok((found, warnings)),
    }
}

/// The `shared` resources as mounts (source, place under the home): the one copy is
/// made where it is missing — a directory, or an empty file — as upstream (not in a
/// dry run, which still shows the mount).
pub fn shared_resources(found: &[Resource], dry_run: bool) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for r in found.iter().filter(|r| r.scope == Scope::Shared) {
        if !dry_run && let Err(e) = make_shared(r) {
            output::warn(format_args!(
                "resource {}: cannot make {}: {e}; not mounted",
                r.guest_rel,
                r.host.display()
            ));
            continue;
        }
        out.push((r.host.clone(), r.guest_rel.clone()));
    }
    out
}

fn make_shared(r: &Resource) -> std::io::Result<()> {
    if fsutil::is_symlink(&r.host) {
        return Err(std::io::Error::other("it is a symbolic link"));
    }
    if r.dir {
        return std::fs::create_dir_all(&r.host);
    }
    if let Some(parent) = r.host.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&r.host)
        .map(drop)
}

/// Named shares (`*.path.share_ro|share_rw.NAME`): source, place under the home,
/// read-only. Read-only sources must exist; read-write ones are made, as upstream (not
/// in a dry run).
pub fn shares(
    cx: &Context,
    levels: &Stack,
    b: &BoxIdentity,
    crab_id: &str,
    dry_run: bool,
) -> Vec<(PathBuf, PathBuf, bool)> {
    let mut shares = Vec::new();
    for (kind, read_only) in [("share_ro", true), ("share_rw", false)] {
        let (found, warnings) =
            seeds::resolve(levels, &cx.paths, crab_id, kind, b.mode != Mode::Standalone);
        for w in warnings {
            output::warn(w.replacen("seed ", "share ", 1));
        }
        for s in found {
            if !read_only && !s.host.exists() && !dry_run {
                let _ = std::fs::create_dir_all(&s.host);
            }
            if s.host.exists() {
                shares.push((s.host, s.guest_rel, read_only));
            } else {
                missing(&s.host);
            }
        }
    }
    shares
}

/// The host's image store for `--share-images` — only its image layers and records
/// ([`super::shared_store`]) — with the storage.conf written for the box; `None` (and a
/// warning) where there is none to share.
pub fn image_store(
    rt: &Runtime,
    state: &Path,
    dry_run: bool,
) -> Option<(Vec<super::shared_store::Part>, PathBuf)> {
    let parts = rt
        .image_store()
        .map(|graph| super::shared_store::image_parts(&graph))
        .filter(|parts| !parts.is_empty());
    let Some(parts) = parts else {
        output::warn(
            "--share-images enabled but host image storage could not be detected. Continuing without image sharing.",
        );
        return None;
    };
    // The same content for every box: one copy in kanibako's state, where no box (nor a
    // repository holding a standalone box's metadata) can have put a link.
    let conf = state.join("image-sharing").join("storage.conf");
    if !dry_run
        && let Err(e) = fsutil::atomic_write(
            &conf,
            plan::shared_images_conf().as_bytes(),
            fsutil::MODE_CONFIG,
        )
    {
        output::warn(format_args!(
            "cannot write {}: {e}; continuing without image sharing.",
            conf.display()
        ));
        return None;
    }
    Some((parts, conf))
}

/// A `-v` source whose path the engine's `-v src:dst` syntax cannot carry.
pub fn check_paths(spec: &RunSpec) -> Result<()> {
    for m in &spec.mounts {
        if let Mount::Bind { src, .. } = m {
            let s = src.to_string_lossy();
            if s.contains(':') || s.contains(',') {
                bail!(UserError::new(format!(
                    "cannot mount {s}: paths containing ':' or ',' cannot be passed to the engine"
                ))
                .hint("rename the directory, or move the project to a path without them"));
            }
        }
    }
    Ok(())
}
