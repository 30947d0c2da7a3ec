//! Everything a run's plan depends on, read from the host and the engine once the
//! launch knows it will start a container: the rig mounted (under a split user map)
//! and its environment, the layered environment, what is mounted, the agent's
//! tweakcc-patched binary, and the command. The result is [`PlanInputs`], which
//! [`super::plan::plan`] turns into the run without further I/O.

use std::collections::BTreeMap;

use anyhow::Result;

use super::command::InBox;
use super::image::{self, MountedImage};
use super::plan::PlanInputs;
use super::request::Launch;
use super::settings::LaunchSettings;
use super::target::{Chosen, Target};
use super::{env, mounts};
use crate::agents::Install;
use crate::boxes::BoxIdentity;
use crate::context::Context;
use crate::output;
use crate::runtime::spec::{BOX_UID, RunMode, UserMapping};
use crate::runtime::{Runtime, seccomp};
use crate::settings::keys::Level;
use crate::settings::stack::Stack;
use crate::tweakcc::session::{self as tweakcc, Dirs, Held};

/// What a launch knows once its box, what runs there, its settings, the rig and the
/// in-box user are settled: what every later stage reads.
pub struct Known<'a> {
    pub cx: &'a Context,
    pub launch: Launch,
    /// The `-e` items, checked.
    pub cli_env: BTreeMap<String, String>,
    pub chosen: Chosen,
    pub target: Target,
    pub levels: Stack,
    pub image: String,
    /// The file in the workspace that named the rig, if one did: pulled only if asked.
    pub image_named_in: Option<std::path::PathBuf>,
    pub user: UserMapping,
    pub settings: LaunchSettings,
    /// Why the engine is remote (`None`: it is local; see [`crate::remote`]).
    pub remote: Option<String>,
}

impl Known<'_> {
    pub fn b(&self) -> &BoxIdentity {
        &self.chosen.identity
    }

    /// The rig runs as a mounted rootfs (rootful podman's split user map).
    pub fn split(&self) -> bool {
        matches!(self.user, UserMapping::SplitMap { .. })
    }

    /// A detached tmux session rather than a foreground run.
    pub fn persistent(&self) -> bool {
        self.settings.persistent()
    }

    /// What runs inside the box.
    pub fn in_box(&self) -> InBox<'_> {
        InBox {
            launch: &self.launch,
            target: &self.target,
            levels: &self.levels,
            settings: &self.settings,
            // A box made by `create` or `shell` is new to the agent too.
            new_box: self.chosen.new
                || !self.target.agent().is_some_and(|(a, _)| {
                    a.has_conversation(&self.b().shell, super::plan::GUEST_WORKSPACE)
                }),
        }
    }
}

/// The plan's inputs, and what must live as long as the run: the mounted rig and the
/// hold on the patched binary.
pub struct Gathered<'a> {
    pub inputs: PlanInputs,
    pub mounted: Option<MountedImage<'a>>,
    pub tweakcc: Option<Held>,
}

pub fn gather<'r>(k: &Known<'_>, rt: &'r Runtime) -> Result<Gathered<'r>> {
    let (cx, b, dry_run) = (k.cx, k.b(), k.launch.dry_run);
    let (levels, target) = (&k.levels, &k.target);
    let mounted = image::mount_for(
        rt,
        &cx.host,
        &k.image,
        k.image_named_in.as_deref(),
        k.split(),
        dry_run,
    )?;
    let image_env = image::env_layer(
        rt,
        &k.image,
        mounted.as_ref(),
        k.split(),
        dry_run,
        &cx.paths.cache,
    )?;
    if let Some((agent, install)) = target.agent().filter(|_| !dry_run) {
        image::check_interpreter(
            rt,
            &k.image,
            agent.display_name(),
            &install.binary,
            mounted.as_ref(),
            &cx.paths.cache,
        )?;
    }
    let session = match (target.agent(), &k.settings.agent) {
        (Some((a, _)), Some(s)) => a.session_env(
            crate::agents::SessionFlags {
                secure: s.secure.value,
                ..Default::default()
            },
            s.model.value.as_deref(),
        ),
        _ => Vec::new(),
    };
    let env = env::assemble(levels, image_env, k.cli_env.clone(), target, session, b)?;
    let pass_env = env::passed(target, &cx.host, &env);
    let vault_present = mounts::vault(b, k.chosen.new);
    // tweakcc: the agent's binary swapped for its patched copy, held for the session.
    let tweakcc = match target.agent() {
        Some((_, install)) if !dry_run => tweakcc::for_session(
            rt,
            levels.doc(Level::Crab),
            &Dirs {
                home: cx.paths.home(),
                cache: &cx.paths.cache,
                state: &cx.paths.state,
            },
            &|| image::trusted(cx, rt).map_err(|e| format!("{e:#}")),
            &install.binary,
            k.persistent().then_some(b.hash.as_str()),
        ),
        _ => None,
    };
    let patched = match (target.agent(), &tweakcc) {
        (Some((_, install)), Some(held)) => Some(Install {
            binary: held.binary.clone(),
            install_dir: install.install_dir.clone(),
        }),
        _ => None,
    };
    let crab_id = target.crab_id();
    let (entrypoint, command) = k.in_box().command(false)?;
    let hardening = super::egress::policy(k)?;
    for w in hardening.warnings(rt.engine.kind) {
        crate::output::warn(w);
    }
    let inputs = PlanInputs {
        identity: b.clone(),
        image: k.image.clone(),
        mode: if k.persistent() {
            RunMode::Detached
        } else {
            RunMode::Foreground {
                tty: cx.host.stdin_tty,
            }
        },
        user: k.user.clone(),
        vault_present,
        agent_mounts: mounts::agent(target, patched.as_ref()),
        self_binary: std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok()),
        shared: {
            let mut shared = mounts::shared(cx, levels, b, crab_id)?;
            let (found, warnings) = mounts::resources(cx, levels, b, target)?;
            warnings.into_iter().for_each(crate::output::warn);
            shared.extend(mounts::shared_resources(&found, dry_run));
            shared
        },
        shares: mounts::shares(cx, levels, b, crab_id, dry_run),
        image_store: k
            .settings
            .share_images
            .value
            .then(|| mounts::image_store(rt, &cx.paths.state, dry_run))
            .flatten(),
        env,
        pass_env,
        entrypoint,
        command,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_id: cx.paths.data_id(),
        seccomp: matches!(k.user, UserMapping::SplitMap { host_uid: 0, .. })
            .then(|| seccomp::setid_profile(&cx.paths.cache, dry_run))
            .transpose()?,
        limits: hardening.limits(),
        network: hardening.run_network(),
    };
    Ok(Gathered {
        inputs,
        mounted,
        tweakcc,
    })
}

/// The in-box user for this engine and invoking user (see [`UserMapping`]).
pub fn user_mapping(cx: &Context, rt: &Runtime) -> UserMapping {
    if rt.engine.cannot_map_root(cx.host.uid) {
        output::warn(format_args!(
            "{} cannot map the box's user to root: the box runs as uid {BOX_UID}, can write only where uid {BOX_UID} may, and what it writes belongs to uid {BOX_UID}",
            rt.engine.kind.name()
        ));
        output::hint("run kanibako as your own user (in the docker group), or use podman");
    }
    rt.user_mapping(cx.host.uid, cx.host.gid, &cx.paths.cache)
}
