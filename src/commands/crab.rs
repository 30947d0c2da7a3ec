//! `crab` (alias `agent`): agent profiles (`$DATA/crabs/<id>.yaml`), the agents behind
//! them, and their host login (spec: upstream-cli-and-data §2.11, §9.7).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::agents::{self, Agent, Install, profile};
use crate::cli::crab::{CrabCommand, CrabInfoArgs, CrabListArgs, ReauthArgs};
use crate::cli::system::JsonArgs;
use crate::context::Context;
use crate::diagnose::{Check, Report, checks};
use crate::document::Document;
use crate::error::{Exit, UserError};
use crate::launch::auth::{self, Status};
use crate::output;
use crate::process::Invocation;

pub fn dispatch(cx: &Context, command: Option<CrabCommand>) -> Result<Exit> {
    match command {
        None => list(cx, &CrabListArgs::default()),
        Some(CrabCommand::List(a)) => list(cx, &a),
        Some(CrabCommand::Info(a)) => info(cx, &a),
        Some(CrabCommand::Config(a)) => super::config::crab_config(cx, &a),
        Some(CrabCommand::Reauth(a)) => reauth(cx, &a),
        Some(CrabCommand::Diagnose(a)) => diagnose(cx, &a),
        Some(CrabCommand::Helper { command }) => super::helper::helper(&cx.host, command),
        Some(CrabCommand::Fork(a)) => super::helper::fork(&cx.host, &a),
    }
}

/// One profile file, as `list` and `info` show it.
struct Profile {
    id: String,
    name: Option<String>,
    shell: Option<String>,
    run_args: Vec<String>,
    /// Everything else under `crab:` (the agent's settings: `model`, `access`…).
    state: Vec<(String, String)>,
    env: Vec<(String, String)>,
    shared: Vec<(String, String)>,
}

impl Profile {
    fn load(id: &str, path: &Path) -> Result<Self> {
        let doc = Document::load(path)?;
        let run_args = doc.get_list(&["crab", "run_args"])?.unwrap_or_default();
        let state = doc
            .get_string_map(&["crab"])?
            .into_iter()
            .filter(|(k, _)| !["name", "shell", "run_args"].contains(&k.as_str()))
            .collect();
        Ok(Self {
            id: id.to_owned(),
            name: doc.get_str(&["crab", "name"])?,
            shell: doc.get_str(&["crab", "shell"])?,
            run_args,
            state,
            env: doc.get_string_map(&["env"])?,
            shared: doc.get_string_map(&["shared"])?,
        })
    }

    fn model(&self) -> Option<&str> {
        self.state
            .iter()
            .find(|(k, v)| k == "model" && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The profile files, sorted by id.
fn profiles(cx: &Context) -> Result<Vec<Profile>> {
    profile::ids(&cx.paths.crabs)
        .iter()
        .map(|id| Profile::load(id, &profile::path(&cx.paths.crabs, id)))
        .collect()
}

/// The host login of an installed agent (`None`: not installed).
fn login_state(cx: &Context, agent: &dyn Agent, install: Option<&Install>) -> Option<&'static str> {
    install.map(|i| auth::login_state(cx, agent, i))
}

/// `<agent> --version`'s first line; an agent that does not answer in time has none.
fn version(cx: &Context, agent: &dyn Agent, install: &Install) -> Option<String> {
    let inv = Invocation::new(&install.binary)
        .args(agent.version_args())
        .current_dir(cx.paths.home());
    let out = cx.exec.output_within(&inv, Duration::from_secs(5)).ok()??;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or("").trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn list(cx: &Context, a: &CrabListArgs) -> Result<Exit> {
    let profiles = profiles(cx)?;
    if a.json {
        let mut out = Vec::new();
        for agent in agents::all() {
            let install = agent.detect(&cx.host);
            let profile = profiles.iter().find(|p| p.id == agent.id());
            out.push(json!({
                "name": agent.id(),
                "display_name": agent.display_name(),
                "agent": true,
                "installed": install.is_some(),
                "binary": install.as_ref().map(|i| i.binary.display().to_string()),
                "version": install.as_ref().and_then(|i| version(cx, agent.as_ref(), i)),
                "login": login_state(cx, agent.as_ref(), install.as_ref()),
                "profile": profile.is_some(),
                "shell": profile.and_then(|p| p.shell.clone()),
                "model": profile.and_then(|p| p.model().map(str::to_owned)),
            }));
        }
        for p in profiles.iter().filter(|p| agents::by_id(&p.id).is_none()) {
            out.push(json!({
                "name": p.id,
                "display_name": p.name,
                "agent": false,
                "installed": false,
                "binary": null,
                "version": null,
                "profile": true,
                "shell": p.shell,
                "model": p.model(),
            }));
        }
        crate::json_output::print_list("crabs", &out);
        return Ok(Exit::Success);
    }
    if profiles.is_empty() {
        println!("No crabs configured.");
        return Ok(Exit::Success);
    }
    if a.quiet {
        for p in &profiles {
            println!("{}", p.id);
        }
        return Ok(Exit::Success);
    }
    println!("{:<20} {:<12} MODEL", "NAME", "SHELL");
    for p in &profiles {
        println!(
            "{:<20} {:<12} {}",
            p.id,
            p.shell.as_deref().unwrap_or("-"),
            p.model().unwrap_or("-")
        );
    }
    Ok(Exit::Success)
}

fn info(cx: &Context, a: &CrabInfoArgs) -> Result<Exit> {
    let path = cx.paths.crabs.join(format!("{}.yaml", a.crab_id));
    if crate::boxes::BoxName::from_registry(&a.crab_id).is_none() || !path.is_file() {
        return Err(UserError::new(format!(
            "crab '{}' not found ({})",
            a.crab_id,
            path.display()
        ))
        .hint("list them: kanibako crab list")
        .into());
    }
    let p = Profile::load(&a.crab_id, &path)?;
    if a.json {
        let pairs = |v: &[(String, String)]| -> serde_json::Map<String, serde_json::Value> {
            v.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
        };
        crate::json_output::print_object(&json!({
            "name": p.id,
            "display_name": p.name,
            "shell": p.shell,
            "run_args": p.run_args,
            "state": pairs(&p.state),
            "env": pairs(&p.env),
            "shared": pairs(&p.shared),
        }));
        return Ok(Exit::Success);
    }
    let block = |label: &str, v: &[(String, String)]| {
        if v.is_empty() {
            println!("{label:<14}(none)");
        } else {
            println!("{label}");
            for (k, val) in v {
                println!("  {k} = {val}");
            }
        }
    };
    println!("{:<14}{}", "Name:", p.name.as_deref().unwrap_or(&p.id));
    println!("{:<14}{}", "Shell:", p.shell.as_deref().unwrap_or("-"));
    println!(
        "{:<14}{}",
        "Default args:",
        if p.run_args.is_empty() {
            "(none)".to_owned()
        } else {
            p.run_args.join(" ")
        }
    );
    block("State:", &p.state);
    block("Env:", &p.env);
    block("Shared:", &p.shared);
    Ok(Exit::Success)
}

/// An agent and, if it is installed on the host, where.
type AgentOnHost = (Box<dyn Agent>, Option<Install>);

/// The agent `reauth` is about: the system-level `box.crab`, else the one installed.
fn configured_agent(cx: &Context) -> Result<Option<AgentOnHost>> {
    let id = cx.stack(None, None)?.crab_id()?;
    Ok(match id {
        Some(id) => agents::by_id(&id).map(|a| {
            let install = a.detect(&cx.host);
            (a, install)
        }),
        None => agents::detect_any(&cx.host).map(|(a, i)| (a, Some(i))),
    })
}

fn reauth(cx: &Context, a: &ReauthArgs) -> Result<Exit> {
    let b =
        crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, a.project.as_deref())?.require()?;
    let Some((agent, install)) = configured_agent(cx)? else {
        output::say("No agent target configured.");
        return Ok(Exit::Code(1));
    };
    let name = agent.display_name();
    let Some(spec) = agent.credentials() else {
        output::say(format_args!("{name}: this agent has no login to check."));
        return Ok(Exit::Success);
    };
    if !auth::shares_login(cx, &b) {
        let own = b.shell.join(spec.dir).join(spec.file);
        return Ok(if own.is_file() {
            output::say(format_args!(
                "{name}: distinct auth (project credentials exist)."
            ));
            Exit::Success
        } else {
            output::say(format_args!(
                "{name}: distinct auth -- no credentials found. Launch the container to authenticate."
            ));
            Exit::Code(1)
        });
    }
    let Some(install) = install else {
        return Err(
            UserError::new(format!("{name} is not installed on this host"))
                .hint(format!(
                    "install it, then log in: {}",
                    auth::login_hint(agent.as_ref())
                ))
                .into(),
        );
    };
    match auth::check(cx, agent.as_ref(), &install) {
        Ok(()) => {
            auth::refresh(cx, &b);
            output::say(format_args!("{name}: authenticated."));
            Ok(Exit::Success)
        }
        Err(e) => {
            output::say(format_args!("{name}: authentication failed."));
            Err(e)
        }
    }
}

fn diagnose(cx: &Context, a: &JsonArgs) -> Result<Exit> {
    let q = |p: &Path| crate::process::shell_quote(&p.to_string_lossy());
    let mut out = Vec::new();
    for agent in agents::all() {
        let name = agent.display_name();
        let Some(install) = agent.detect(&cx.host) else {
            out.push(Check::skipped("agent", name, "not installed"));
            continue;
        };
        out.push(match version(cx, agent.as_ref(), &install) {
            Some(v) => Check::ok("agent", name, format!("{} ({v})", install.binary.display())),
            None => Check::fix(
                "agent",
                name,
                format!("{} does not answer --version", install.binary.display()),
                format!("{} --version", q(&install.binary)),
            ),
        });
        // The agent's API-key variables that reach its boxes by name (never their values).
        let set: Vec<&str> = agent
            .passed_env()
            .iter()
            .copied()
            .filter(|n| cx.host.var(n).is_some_and(|v| !v.is_empty()))
            .collect();
        let label = format!("{name} variables");
        if !set.is_empty() {
            out.push(Check::ok(
                "variables",
                label,
                format!("passed to its boxes by name: {}", set.join(", ")),
            ));
        } else if agent.credentials().is_none() {
            out.push(Check::skipped(
                "variables",
                label,
                format!(
                    "none of its variables is set ({})",
                    agent.passed_env().join(", ")
                ),
            ));
        }
        let login = auth::login_hint(agent.as_ref());
        let label = format!("{name} login file");
        if let Some(spec) = agent.credentials() {
            let file = cx.paths.home().join(spec.dir).join(spec.file);
            out.push(match std::fs::symlink_metadata(&file) {
                Err(_) => Check::skipped(
                    "login_file",
                    label,
                    format!("no login on file ({})", file.display()),
                ),
                Ok(m) if m.file_type().is_symlink() => Check::fix(
                    "login_file",
                    label,
                    format!(
                        "{} is a symbolic link; kanibako will not write through it",
                        file.display()
                    ),
                    format!("rm {} && {}", q(&file), login),
                ),
                Ok(m) => {
                    use std::os::unix::fs::PermissionsExt;
                    let c = checks::credential(&file, m.permissions().mode());
                    Check {
                        id: "login_file",
                        label,
                        ..c
                    }
                }
            });
        }
        let label = format!("{name} host login");
        out.push(
            match auth::status(cx.exec.as_ref(), agent.as_ref(), &install, cx.paths.home()) {
                Status::LoggedIn => Check::ok("login", label, "logged in on the host"),
                Status::LoggedOut => Check::fix("login", label, "not logged in on the host", login),
                Status::Unknown => Check::skipped("login", label, "login state unknown"),
            },
        );
    }
    let report = Report::new("Crab (Agent) Diagnostics", out);
    Ok(super::system::emit(&cx.host, &report, a.json))
}
