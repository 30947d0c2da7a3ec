//! What a launch is for: the box (registered here on first use, or only imagined for a
//! dry run) and what runs in it — the agent its `box.crab` names (else whichever is
//! installed), the rig's own entrypoint, or a shell — with the settings levels that
//! follow from the two, each file read once.

use anyhow::Result;

use crate::agents::{self, Agent, Install, NO_AGENT};
use crate::boxes::create::{self, register_new};
use crate::boxes::error::BoxError;
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, Resolution};
use crate::boxes::{BoxIdentity, ProjectSettings};
use crate::context::Context;
use crate::error::UserError;
use crate::host::HostEnv;
use crate::output;
use crate::prompt;
use crate::settings::stack::Stack;

use super::request::Launch;

/// A box that may not exist yet, and whether this launch makes it.
pub struct Chosen {
    pub identity: BoxIdentity,
    pub new: bool,
}

/// Resolve the box `l` names. A standalone box found above the directory, and not used
/// from below before, is used only if the user says so at a terminal (its marker may
/// have come with a repository); without one the launch stops with a hint.
fn resolve_asking(cx: &Context, l: &Launch) -> Result<Resolution> {
    use crate::boxes::address::{self, AddressError};
    match address::resolve(&cx.paths, &cx.host.cwd, l.project.as_deref()) {
        Err(AddressError::Box(BoxError::NotAdopted { root, from })) if cx.host.stdin_tty => {
            let question = format!(
                "{} lies inside a standalone box at {}; the box would see all of {}. Use it?",
                from.display(),
                root.display(),
                root.display()
            );
            if !prompt::confirm_yn(&cx.host, &question, "")? {
                return Err(BoxError::NotAdopted { root, from }.into());
            }
            let Some(b) = resolve::standalone_at(&root)? else {
                return Err(BoxError::NotAdopted { root, from }.into());
            };
            resolve::adopt(&cx.paths, &b)?;
            Ok(Resolution::Found(b))
        }
        other => Ok(other?),
    }
}

/// The box `l` names (or the current directory's), registered now if it is new.
pub fn choose_box(cx: &Context, l: &Launch) -> Result<Chosen> {
    match resolve_asking(cx, l)? {
        Resolution::Found(identity) => Ok(Chosen {
            identity,
            new: false,
        }),
        Resolution::Unregistered(dir) => {
            if create::is_home(&cx.paths, &dir) {
                return Err(BoxError::HomeRefused.into());
            }
            if let Some(refused) = create::refused_workspace(&cx.paths, &dir) {
                return Err(refused.into());
            }
            let settings = ProjectSettings::default();
            if l.dry_run {
                // What a real launch would create, without creating it.
                let reg = Registry::load(&cx.paths.names_file())?;
                let name = create::choose_name(&cx.paths, &reg, &dir, None)?;
                let identity = BoxIdentity::default_mode(name, dir, &cx.paths.boxes, settings);
                return Ok(Chosen {
                    identity,
                    new: true,
                });
            }
            let (identity, fresh) = register_new(&cx.paths, &dir, None, settings, None)?;
            if fresh {
                create::announce(&identity);
            }
            Ok(Chosen {
                identity,
                new: true,
            })
        }
    }
}

/// The agent installed on the host, as far as a launch needs one.
pub enum Installed {
    /// Not an agent session: nothing to look for.
    NotNeeded,
    Found(Box<dyn Agent>, Install),
    /// An agent session, and no agent is installed: the launch ends at once.
    Missing,
}

/// Looked up before the box is chosen: with no agent at all there is nothing to make.
pub fn installed(host: &HostEnv, l: &Launch) -> Installed {
    if !l.runs_agent() {
        return Installed::NotNeeded;
    }
    match agents::detect_any(host) {
        Some((agent, install)) => Installed::Found(agent, install),
        None => Installed::Missing,
    }
}

/// What the agent side of a launch turned out to be.
pub enum Target {
    Agent(Box<dyn Agent>, Install),
    /// `box.crab: no_agent`: the rig's own entrypoint.
    NoAgent,
    /// `shell`, or `start --entrypoint`.
    Plain,
}

impl Target {
    /// The crab profile whose level the launch reads.
    pub fn crab_id(&self) -> &'static str {
        match self {
            Target::Agent(a, _) => a.id(),
            Target::NoAgent => NO_AGENT,
            Target::Plain => "general",
        }
    }

    pub fn agent(&self) -> Option<(&dyn Agent, &Install)> {
        match self {
            Target::Agent(a, i) => Some((a.as_ref(), i)),
            _ => None,
        }
    }
}

/// Which agent runs in `b` — its `box.crab`, else the one installed — and the box's
/// levels with that agent's crab added. The first time an agent is used its profile
/// is written (not in a dry run).
pub fn choose_target(
    cx: &Context,
    l: &Launch,
    b: &BoxIdentity,
    installed: Installed,
) -> Result<(Target, Stack)> {
    let pre = cx.stack(Some(b), None)?;
    let (chosen, source) = match l.crab() {
        Some(id) => (Some(id.to_owned()), "--crab"),
        None => (pre.crab_id()?, "box.crab"),
    };
    let target = match installed {
        Installed::NotNeeded | Installed::Missing => Target::Plain,
        Installed::Found(found, found_install) => match chosen {
            Some(id) if id == NO_AGENT => Target::NoAgent,
            Some(id) => {
                let agent = agents::by_id(&id).ok_or_else(|| {
                    UserError::new(format!(
                        "unknown agent '{id}' ({source}); available: {}",
                        agents::known_ids().join(", ")
                    ))
                    .hint(format!(
                        "set {source} to one of those, or leave it out to use whichever is installed"
                    ))
                })?;
                let install = agent.detect(&cx.host).ok_or_else(|| {
                    UserError::new(format!(
                        "{} is not installed on this host",
                        agent.display_name()
                    ))
                })?;
                Target::Agent(agent, install)
            }
            None => Target::Agent(found, found_install),
        },
    };
    if let Target::Agent(a, install) = &target {
        if !l.dry_run {
            agents::profile::ensure(&cx.paths.crabs, a.id(), a.display_name())?;
        }
        output::say(format_args!(
            "Using host {}: {}",
            a.display_name(),
            install.binary.display()
        ));
    }
    // The levels already read, with the crab's added: nothing is read twice.
    let levels = cx.add_crab(pre, target.crab_id())?;
    Ok((target, levels))
}
