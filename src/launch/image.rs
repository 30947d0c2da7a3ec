//! The rig a launch runs on: a rig name made an image (a template not built yet is
//! built now), pinned into a box this launch creates, checked for freshness in the
//! background, pulled when it is not local, and — under a split user map — mounted
//! read-only for a `--rootfs` run, whose environment then comes from the image.
//!
//! No image is looked at before the run when it need not be: a missing one makes the
//! run fail at once (`--pull=never`), and [`obtain`] handles that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::target::Chosen;
use crate::context::Context;
use crate::envfile;
use crate::error::UserError;
use crate::fsutil;
use crate::host::HostEnv;
use crate::output;
use crate::rig::{self, Kind, fresh, registry::Rigs, template};
use crate::runtime::Runtime;
use crate::runtime::spec::{Confinement, Network, RunMode, RunSpec, UserMapping};
use crate::settings::keys::Level;
use crate::settings::stack::{Origin, Stack};

/// A new box started with `--rig` keeps that rig (a dry run makes no box).
pub fn pin(chosen: &Chosen, levels: &Stack, rig: Option<&str>, dry_run: bool) -> Result<()> {
    let Some(image) = rig.filter(|_| chosen.new && !dry_run) else {
        return Ok(());
    };
    let mut doc = levels.doc(Level::Box).expect("a box level").clone();
    doc.set(&["box", "image"], image.into())?;
    doc.save()?;
    Ok(())
}

/// The image for the rig named `name` (`host`, `oci`, a template, a `rigs.yaml`
/// entry, or a reference). A template not built yet is built now, its output on the
/// terminal; a launch (not a dry run) also starts the day's freshness check.
pub fn resolve(
    cx: &Context,
    rt: &Runtime,
    levels: &Stack,
    name: &str,
    dry_run: bool,
) -> Result<String> {
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    // A full reference (`registry/owner/name:tag`) is taken as it is: whether it is
    // local matters only for templates, and asking would add an engine call to every
    // launch.
    let exists = |i: &str| i.contains('/') || rt.image_exists(i);
    let r = rig::resolve(
        name,
        &rigs,
        &template::names(&cx.paths.rig_templates()),
        &levels.image()?,
        &exists,
    );
    if r.kind == Kind::Template && !r.present && !dry_run {
        output::say(format_args!("Rig '{}' isn't prepped — building...", r.name));
        let code = rig::ops::build(rt, &cx.paths, &cx.stack(None, None)?.image()?, &r.name)?;
        if code != 0 {
            return Err(UserError::new(format!(
                "failed to build rig '{}' (exit code {code}).",
                r.name
            ))
            .into());
        }
    }
    if !dry_run {
        freshness(cx, rt, &r.image);
    }
    Ok(r.image)
}

/// The image tweakcc patches the agent on: the system level's rig (`system config
/// box.image`, else the default), never one a box, a workset, a crab or a repository
/// names — its patch is code every box then runs. Neither built nor pulled here.
pub fn trusted(cx: &Context, rt: &Runtime) -> Result<String> {
    let system = cx.stack(None, None)?;
    let name = system.image()?;
    let rigs = Rigs::load(&cx.paths.rigs_file())?;
    let exists = |i: &str| i.contains('/') || rt.image_exists(i);
    let r = rig::resolve(
        &name,
        &rigs,
        &template::names(&cx.paths.rig_templates()),
        &name,
        &exists,
    );
    Ok(r.image)
}

/// Say what the last freshness check of `image` found, and start today's if due — on
/// a thread of its own, so no launch ever waits on a registry.
fn freshness(cx: &Context, rt: &Runtime, image: &str) {
    let file = fresh::cache_file(&cx.paths.cache);
    let (note, due) = fresh::look(&file, image);
    if let Some(note) = note {
        output::say(note);
    }
    if !due {
        return;
    }
    fresh::stamp(&file, image);
    let image = image.to_owned();
    let rt = rt.clone();
    std::thread::spawn(move || {
        let local = rt.image_digest(&image);
        fresh::check(&file, &image, local);
    });
}

pub fn missing_rig(rt: &Runtime, image: &str) -> UserError {
    UserError::new(format!("rig '{image}' is not available locally")).hint(format!(
        "pull it (`{} pull {image}`), or build one from this host's programs: kanibako rig bootstrap",
        rt.engine.kind.name()
    ))
}

/// The file inside the workspace that named the rig, if one did (a standalone box's
/// own settings, which the repository or the box wrote): such an image is pulled only
/// after asking.
pub fn named_in_workspace(setting: &Origin, workspace: &Path) -> Option<PathBuf> {
    match setting {
        Origin::Level { file, .. } if file.starts_with(workspace) => Some(file.clone()),
        _ => None,
    }
}

/// Whether to pull `image`, named by `file` in the workspace: asked at a terminal,
/// refused without one.
fn may_pull(rt: &Runtime, host: &HostEnv, image: &str, file: &Path) -> Result<()> {
    let question = format!(
        "The rig {image} is named by {} in this project and is not local. Pull it?",
        file.display()
    );
    let refused = || {
        UserError::new(format!(
            "not pulling {image}: it is named by {}, a file in the project, and was not confirmed",
            file.display()
        ))
        .hint(format!(
            "if you trust it, pull it yourself: {} pull {image}",
            rt.engine.kind.name()
        ))
    };
    if !host.stdin_tty {
        return Err(refused().into());
    }
    if crate::prompt::confirm_yn(host, &question, "--force")? {
        Ok(())
    } else {
        Err(refused().into())
    }
}

/// Pull a rig that is not local (the engine's progress on the terminal); if that fails,
/// say so in one line and point at a rig made from this host. An image named by a
/// file in the workspace (`named_in`) is pulled only once the user says so.
pub fn obtain(rt: &Runtime, host: &HostEnv, image: &str, named_in: Option<&Path>) -> Result<()> {
    // `localhost/…` and kanibako's own images exist only where they were made: asking a
    // registry for them would only add seconds to the failure.
    let local_only = image.starts_with("localhost/")
        || image.starts_with("kanibako-rig-")
        || image.starts_with("kanibako-template-");
    if local_only {
        return Err(missing_rig(rt, image).into());
    }
    if let Some(file) = named_in {
        may_pull(rt, host, image, file)?;
    }
    output::say(format_args!("Rig not found locally. Pulling {image}..."));
    if rt.pull(image) {
        return Ok(());
    }
    Err(UserError::new(format!("rig '{image}' is not available locally and could not be pulled"))
        .hint(format!(
            "check the network, or build a rig from this host's programs: kanibako rig bootstrap && kanibako system config box.image=host (then `{} pull {image}` later)",
            rt.engine.kind.name()
        ))
        .into())
}

/// An image mounted for a split user map, unmounted when dropped.
pub struct MountedImage<'a> {
    rt: &'a Runtime,
    image: String,
    pub dir: PathBuf,
}

impl<'a> MountedImage<'a> {
    pub fn mount(rt: &'a Runtime, image: &str) -> Result<Self> {
        let dir = rt.mount_image(image).map_err(|_| missing_rig(rt, image))?;
        Ok(Self {
            rt,
            image: image.to_owned(),
            dir,
        })
    }

    /// Mount `image`, pulling it first if it is not local ([`obtain`]).
    pub fn mount_or_obtain(
        rt: &'a Runtime,
        host: &HostEnv,
        image: &str,
        named_in: Option<&Path>,
    ) -> Result<Self> {
        match Self::mount(rt, image) {
            Ok(m) => Ok(m),
            Err(_) => {
                obtain(rt, host, image, named_in)?;
                Self::mount(rt, image)
            }
        }
    }

    /// Keep the image mounted after we exit (a detached container runs on it); `stop`
    /// unmounts it once the container is gone.
    pub fn leak(self) -> PathBuf {
        let dir = self.dir.clone();
        std::mem::forget(self);
        dir
    }
}

impl Drop for MountedImage<'_> {
    /// Released in the background: nothing waits on it, and the user's prompt should
    /// not either.
    fn drop(&mut self) {
        self.rt.unmount_image_later(&self.image);
    }
}

/// Under a split map the rig runs as a mounted rootfs: mounted now (not in a dry run).
pub fn mount_for<'a>(
    rt: &'a Runtime,
    host: &HostEnv,
    image: &str,
    named_in: Option<&Path>,
    split: bool,
    dry_run: bool,
) -> Result<Option<MountedImage<'a>>> {
    if !split || dry_run {
        return Ok(None);
    }
    MountedImage::mount_or_obtain(rt, host, image, named_in).map(Some)
}

/// The image's own `Env` (PATH, LANG …) where the run needs it passed on: a `--rootfs`
/// run does not read the image config. Empty otherwise, and in a dry run, which asks
/// the engine nothing (what it prints does not depend on the image's values: they go
/// in the env file).
pub fn env_layer(
    rt: &Runtime,
    image: &str,
    mounted: Option<&MountedImage<'_>>,
    split: bool,
    dry_run: bool,
    cache: &Path,
) -> Result<BTreeMap<String, String>> {
    match (mounted, split) {
        (Some(m), _) => env_cached(rt, image, &m.dir, cache),
        (None, true) if !dry_run => env(rt, image),
        (None, _) => Ok(BTreeMap::new()),
    }
}

/// [`env`], remembered per mounted image directory (whose path changes whenever the
/// image does), so a launch asks the engine only once per rig version.
fn env_cached(
    rt: &Runtime,
    image: &str,
    mounted: &Path,
    cache: &Path,
) -> Result<BTreeMap<String, String>> {
    let key = crate::boxes::project_hash(mounted);
    let file = cache.join("rig-env").join(format!("{}.env", &key[..16]));
    if let Ok(text) = std::fs::read_to_string(&file) {
        return Ok(envfile::parse(&text));
    }
    let env = env(rt, image)?;
    // A cache that cannot be written only costs the next launch one call.
    let _ = fsutil::atomic_write(&file, envfile::render(&env).as_bytes(), fsutil::MODE_CONFIG);
    Ok(env)
}

/// The interpreter a script names on its `#!` line (`#!/usr/bin/env node` → `node`),
/// unless it is a shell every rig has; `None` for a binary.
pub fn interpreter(head: &[u8]) -> Option<String> {
    let line = head.strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next()?).into_owned();
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let prog = if first.ends_with("/env") {
        words.find(|w| !w.starts_with('-'))?
    } else {
        first
    };
    let name = prog.rsplit('/').next()?.to_owned();
    (!["sh", "bash", "dash"].contains(&name.as_str())).then_some(name)
}

/// Whether a mounted rig directory has `program` where `PATH` usually looks.
pub fn rootfs_has(dir: &Path, program: &str) -> bool {
    ["usr/local/bin", "usr/bin", "bin"]
        .iter()
        .any(|d| std::fs::symlink_metadata(dir.join(d).join(program)).is_ok())
}

/// Whether the rig has `program` on its `PATH`: looked for in the mounted image, else
/// asked of a short confined run, remembered per image version.
fn rig_has(
    rt: &Runtime,
    image: &str,
    mounted: Option<&MountedImage<'_>>,
    program: &str,
    cache: &Path,
) -> bool {
    if let Some(m) = mounted {
        return rootfs_has(&m.dir, program);
    }
    let key = rt
        .image_details(image)
        .map(|d| d.id[..16.min(d.id.len())].to_owned());
    let file = key
        .as_ref()
        .map(|k| cache.join("rig-tools").join(format!("{k}-{program}")));
    if let Some(known) = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        return known.trim() == "yes";
    }
    let mut spec = RunSpec::job(
        "rig-check",
        format!("kanibako-check-{}", std::process::id()),
        image,
        RunMode::Batch,
        UserMapping::Image,
    );
    spec.network = Network::None;
    spec.confined = Some(Confinement::default());
    spec.entrypoint = Some("/bin/sh".into());
    spec.command = ["-c", &format!("command -v {program}")]
        .map(Into::into)
        .to_vec();
    // No answer (the engine failed) is not a reason to stop: the run will say more.
    let Ok(out) = rt.run_captured(&spec, None, None) else {
        return true;
    };
    let has = out.status.success();
    if let Some(f) = file {
        let _ = fsutil::atomic_write(
            &f,
            if has { b"yes\n" } else { b"no\n" },
            fsutil::MODE_CONFIG,
        );
    }
    has
}

/// Before a launch: an agent that is a script (an npm install of Claude Code is a
/// `#!/usr/bin/env node` script) runs only on a rig with its interpreter. Said at
/// once, instead of the box's `/usr/bin/env: 'node': No such file`.
pub fn check_interpreter(
    rt: &Runtime,
    image: &str,
    agent: &str,
    binary: &Path,
    mounted: Option<&MountedImage<'_>>,
    cache: &Path,
) -> Result<()> {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(binary) {
        let _ = f.take(256).read_to_end(&mut head);
    }
    let Some(program) = interpreter(&head) else {
        return Ok(());
    };
    if rig_has(rt, image, mounted, &program, cache) {
        return Ok(());
    }
    Err(UserError::new(format!(
        "{agent} at {} is a {program} script, and the rig {image} has no {program}",
        binary.display()
    ))
    .hint(format!(
        "use a rig with {program} on its PATH (kanibako start --rig js), or install {agent} as a single binary (its native installer)"
    ))
    .into())
}

fn env(rt: &Runtime, image: &str) -> Result<BTreeMap<String, String>> {
    rt.image_env(image)?
        .ok_or_else(|| missing_rig(rt, image).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 (npm-installed agent): a script's interpreter is read from its `#!`
    /// line, and looked for in a mounted rig.
    #[test]
    fn a_node_script_needs_node_in_the_rig() {
        assert_eq!(
            interpreter(b"#!/usr/bin/env node\nconsole.log(1)").as_deref(),
            Some("node")
        );
        assert_eq!(
            interpreter(b"#!/usr/bin/env -S node --no-warnings\n").as_deref(),
            Some("node")
        );
        assert_eq!(
            interpreter(b"#!/usr/local/bin/node\n").as_deref(),
            Some("node")
        );
        assert_eq!(interpreter(b"#!/bin/sh\nexit 0\n"), None);
        assert_eq!(interpreter(b"\x7fELF\x02\x01"), None);
        let t = tempfile::tempdir().unwrap();
        assert!(!rootfs_has(t.path(), "node"));
        std::fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-on-host", t.path().join("usr/bin/node")).unwrap();
        assert!(rootfs_has(t.path(), "node"), "a link valid only in the rig");
    }
}
