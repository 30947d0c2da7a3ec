//! `start` and `shell`: from a request to a running box (spec: upstream-runtime §3).
//!
//! [`run`] is the whole path as a short sequence of stages, each a small module:
//!
//! 1. [`request`] — what was asked, checked before anything is made (`-e` items);
//! 2. [`target`] — the box (registered on first use) and what runs in it, with its
//!    settings levels; [`settings`] — every launch setting, flag over level, with its
//!    origin (`--dry-run -v` shows them); [`image`] — the rig made an image (built,
//!    pinned, pulled); together what the launch knows ([`facts::Known`]);
//! 3. [`state`] and [`decide`](mod@decide) — one look at the box's container, and the pure decision
//!    to run, join ([`execute::join`]), re-attach ([`persistent::reattach`]) or refuse;
//! 4. [`facts`] — what the plan needs from the host and the engine ([`env`](mod@env),
//!    [`mounts`], [`command`], tweakcc), which [`plan`] turns into the run (pure), plus
//!    what the box's [`companions`] add: what `--dry-run` prints ([`execute::dry_run`]);
//! 5. under the box's [`lock`]: a leftover container removed, the login and the home
//!    prepared ([`home`], [`auth`], [`prep`], [`seeds`]), the companions started, and the
//!    run — in the foreground ([`execute::foreground`]) or in tmux ([`persistent`]).
//!
//! Per-box companions (the helper hub, [`helpers`]; the egress proxy) plug in at
//! [`companions`]: they add to the planned run, start beside it, hear of its end.
//!
//! Nothing on the way asks the engine more than it must: no `podman info`, no image
//! pre-checks (a missing image is learnt from the run).

#[cfg(test)]
mod argv;
pub mod auth;
pub mod command;
pub mod companions;
pub mod decide;
pub mod egress;
pub mod env;
pub mod execute;
pub mod facts;
pub mod helpers;
pub mod home;
pub mod image;
pub mod lock;
pub mod mounts;
pub mod persistent;
pub mod plan;
pub mod prep;
pub mod request;
pub mod seeds;
pub mod settings;
pub mod shared_store;
pub mod state;
pub mod target;

use anyhow::Result;

use crate::context::Context;
use crate::error::Exit;
use crate::runtime::Runtime;
use crate::runtime::spec::RunSpec;
use companions::Companions;
use decide::{Action, decide};
use execute::Planned;
use facts::{Gathered, Known};
pub use request::{Launch, Session};
use settings::LaunchSettings;
use target::Installed;

pub fn run(cx: &Context, l: Launch) -> Result<Exit> {
    let Some((k, rt)) = settle(cx, l)? else {
        return Ok(Exit::Success);
    };
    let (b, dry_run) = (k.b(), k.launch.dry_run);

    // An agent session holds the box's lock while it starts (an ephemeral one for its
    // whole run); a second one stops here. A shell first looks for a container to join.
    // Then one look at the box's container decides.
    let held = (!dry_run && !k.launch.shell_like())
        .then(|| lock::session(b))
        .transpose()?;
    let seen = state::gather(&cx.host, &rt, b, dry_run, k.launch.shell_like())?;
    let leftover = match decide(&seen.existing, k.launch.shell_like(), k.persistent()) {
        Action::Run { leftover } => leftover,
        Action::Join | Action::Reattach { .. } if k.launch.learn => {
            return Err(egress::refuse_running(b).into());
        }
        Action::Join => {
            return execute::join(cx, &rt, b, &k.cli_env, k.in_box().joining()?, dry_run);
        }
        Action::Reattach { rootfs } => {
            drop(held);
            return persistent::reattach(cx, &rt, b, rootfs.as_deref(), &k.launch);
        }
        Action::Refuse(why) => return Err(why.error(b, rt.engine.kind.name()).into()),
    };

    // The run, planned whole: what `--dry-run` prints.
    let Gathered {
        mut inputs,
        mounted,
        tweakcc: _held,
    } = facts::gather(&k, &rt)?;
    let companions = Companions::for_launch(&k, &rt);
    // The run as planned here, and (on a remote engine) as the engine's host sees it.
    let local = companions.add_to(plan::plan(&inputs));
    let remote = remote_run(&k, &rt, &inputs, companions.egress())?;
    let there = |spec: RunSpec| match &remote {
        Some(r) => r.adapt(spec),
        None => spec,
    };
    let spec = there(local.clone());
    mounts::check_paths(&spec)?;
    if dry_run {
        let spec = companions.dry_run(spec);
        return execute::dry_run(&rt, &spec, &k, leftover.is_some());
    }

    // From here on, things change: under the box's lock.
    let lock = lock::claim(held, b, &spec.name)?;
    if let Some(rootfs) = &leftover {
        persistent::remove(cx, &rt, &spec.name, rootfs.as_deref());
    }
    home::prepare(&k, &local)?;
    let spec = companions.start(spec, mounted.as_ref().map(|m| m.dir.as_path()));
    // After everything the run mounts is made (a remote engine has no hub to start).
    if let Some(r) = &remote {
        r.prepare(&rt, &k.image, &spec)?;
    }
    let run = Planned {
        spec,
        image: k.image.clone(),
        image_named_in: k.image_named_in.clone(),
        mounted,
    };
    // Either kind of run; the companions hear of its end.
    let ran = if k.persistent() {
        let may_retry = k.target.agent().is_some() && !k.launch.new_session() && !k.chosen.new;
        let in_box = k.in_box();
        let replan = |new_session: bool| -> Result<RunSpec> {
            (inputs.entrypoint, inputs.command) = in_box.command(new_session)?;
            Ok(there(companions.add_to(plan::plan(&inputs))))
        };
        persistent::launch(cx, &rt, b, run, lock, may_retry, replan)
    } else {
        execute::foreground(cx, &rt, &k.launch, b, run, lock, seen.asked)
    };
    companions.end(ran)
}

/// The first stages: the request checked, the box chosen (registered if new), what
/// runs in it, its settings and rig, the in-box user. `None`: an agent session with no
/// agent installed, which says so and ends.
fn settle(cx: &Context, l: Launch) -> Result<Option<(Known<'_>, Runtime)>> {
    let cli_env = request::parse_env_items(&l.env, |k| cx.host.var_str(k).map(str::to_owned))?;
    let installed = target::installed(&cx.host, &l);
    if matches!(installed, Installed::Missing) {
        println!("{}", crate::agents::no_agents_message());
        return Ok(None);
    }
    let chosen = target::choose_box(cx, &l)?;
    let (target, levels) = target::choose_target(cx, &l, &chosen.identity, installed)?;
    let settings = LaunchSettings::resolve(&l, &levels, &cx.host, target.agent().map(|a| a.0))?;
    for line in settings.lines() {
        tracing::debug!("  setting {line}");
    }
    image::pin(&chosen, &levels, l.rig.as_deref(), l.dry_run)?;
    let (rt, remote) = crate::remote::engine(&cx.host, cx.runtime()?, &levels)?;
    let image_named_in =
        image::named_in_workspace(&settings.image.origin, &chosen.identity.workspace);
    let k = Known {
        cx,
        image: image::resolve(cx, &rt, &levels, &settings.image.value, l.dry_run)?,
        image_named_in,
        user: facts::user_mapping(cx, &rt),
        settings,
        cli_env,
        launch: l,
        chosen,
        target,
        levels,
        remote,
    };
    Ok(Some((k, rt)))
}

/// On a remote engine, what its run becomes there (see [`crate::remote`]).
fn remote_run(
    k: &Known<'_>,
    rt: &Runtime,
    inputs: &plan::PlanInputs,
    allowlist: bool,
) -> Result<Option<crate::remote::Remote>> {
    // A local engine: nothing to plan (nor box.remote_path to read).
    if k.remote.is_none() {
        return Ok(None);
    }
    let b = k.b();
    let local_only = inputs
        .agent_mounts
        .iter()
        .filter_map(|m| match m {
            crate::runtime::spec::Mount::Bind { src, .. } => Some(src.clone()),
            crate::runtime::spec::Mount::Mask { .. } => None,
        })
        .chain(inputs.self_binary.clone())
        .collect();
    let facts = crate::remote::Facts {
        workspace: &b.workspace,
        home: &b.shell,
        local_only,
        share_images: inputs.image_store.is_some(),
        allowlist,
        browser: k.settings.browser.is_some(),
    };
    let path = crate::remote::remote_path(&k.levels)?;
    crate::remote::Remote::plan(&rt.engine, k.remote.clone(), path, facts)
}
