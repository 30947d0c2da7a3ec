//! The box's home before a run, under the session lock: the host's login checked (for
//! a box that shares it), the home re-made if it was deleted, upgraded and tidied, on a
//! new box filled from the home templates and the seeds, the agent's login brought in,
//! and a stub made for every mount inside it. Everything is
//! written through [`SafeDir`], so nothing the box planted there is followed.

use std::ffi::OsStr;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context as _, Result};

use super::target::Target;
use super::{auth, prep, seeds};
use crate::agents::Agent;
use crate::boxes::home::SafeDir;
use crate::boxes::{Mode, create};
use crate::context::Context;
use crate::output;
use crate::runtime::spec::{Mount, RunSpec};

/// Host-side preparation of the home, under the session lock.
pub fn prepare(k: &super::facts::Known<'_>, spec: &RunSpec) -> Result<()> {
    let (cx, b, target, new, levels) = (k.cx, k.b(), &k.target, k.chosen.new, &k.levels);
    let may_log_in = k.launch.may_log_in();
    if let Some((agent, install)) = target.agent()
        && auth::shares_login(cx, b)
    {
        // A box sharing the host's login would start logged out.
        auth::check_with(cx, agent, install, may_log_in)?;
    }
    let crab_id = target.crab_id();
    if std::fs::symlink_metadata(&b.shell).is_err() {
        // Recovery: a box whose home was deleted gets a fresh skeleton.
        create::shell_skeleton(&b.shell)
            .with_context(|| format!("re-making the box home {}", b.shell.display()))?;
    }
    let home = SafeDir::open(&b.shell).with_context(|| {
        format!(
            "opening the box home {} (it must be a real directory)",
            b.shell.display()
        )
    })?;
    prep::upgrade_shell(&home)?;
    let cleaned = prep::hygiene(&home, SystemTime::now());
    for action in cleaned.done {
        tracing::debug!("hygiene: {action}");
    }
    for why in cleaned.failed {
        output::warn(format_args!("box home {}: {why}", b.shell.display()));
    }
    if new && let Target::Agent(agent, _) = target {
        apply_templates(cx, &home, agent.as_ref())?;
    }
    if new {
        let (seeds, warnings) = seeds::resolve(
            levels,
            &cx.paths,
            crab_id,
            "seeded",
            b.mode != Mode::Standalone,
        );
        for w in warnings {
            output::warn(w);
        }
        seeds::apply(&home, &seeds)?;
    }
    // Every launch, as upstream: a seeded resource the home lacks is copied in.
    // (A bad value was warned about when the mounts were gathered.)
    let (resources, _) = super::mounts::resources(cx, levels, b, target)?;
    seeds::apply_resources(&home, &resources)?;
    // Not only for a new box: one made by `create` meets its agent on the first start.
    auth::before_launch(cx, b);
    let stubs: Vec<(String, bool)> = spec
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind { src, dst, .. } => dst
                .strip_prefix("/home/agent/")
                .filter(|_| !dst.starts_with("/home/agent/workspace/"))
                .map(|rel| (rel.to_owned(), !src.is_file())),
            Mount::Mask { .. } => None,
        })
        .collect();
    prep::mount_stubs(&home, &stubs)?;
    Ok(())
}

/// A new box's home: `templates/general/base`, then the agent's (or the general)
/// variant, then the layered instruction files.
fn apply_templates(cx: &Context, home: &SafeDir, agent: &dyn Agent) -> Result<()> {
    let t = &cx.paths.templates;
    let variant = "standard";
    let chosen = [
        t.join(agent.id()).join(variant),
        t.join("general").join(variant),
    ]
    .into_iter()
    .find(|d| d.is_dir());
    let Some(template) = chosen else {
        return Ok(());
    };
    let base = t.join("general/base");
    prep::copy_template(&base, home, Path::new(""))?;
    prep::copy_template(&template, home, Path::new(""))?;
    let config = Path::new(agent.config_dir());
    for file in agent.instruction_files() {
        let read_host = |dir: &Path| std::fs::read_to_string(dir.join(config).join(file)).ok();
        let dir = home.create_dir_all(config)?;
        let current = dir
            .read(OsStr::new(file))?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let tmpl = read_host(&template);
        if let Some(merged) = prep::merge_instructions(
            read_host(&base).as_deref(),
            tmpl.as_deref().map(|t| (variant, t)),
            current.as_deref(),
        ) {
            dir.replace(OsStr::new(file), merged.as_bytes(), 0o644)?;
        }
    }
    Ok(())
}
