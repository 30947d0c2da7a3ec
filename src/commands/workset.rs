//! `workset create|list|info|rm|connect|disconnect|config`.

use anyhow::Result;
use serde::Serialize;

use crate::boxes::create::target_dir;
use crate::boxes::registry::Registry;
use crate::cli::workset::{
    ConnectArgs, DisconnectArgs, WorksetCommand, WorksetCreateArgs, WorksetListArgs,
    WorksetNameArgs, WorksetRmArgs,
};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::prompt;
use crate::workset::{self, Workset};

pub fn dispatch(cx: &Context, command: Option<WorksetCommand>) -> Result<Exit> {
    match command {
        None => list(cx, &WorksetListArgs::default()),
        Some(WorksetCommand::Create(a)) => create(cx, &a),
        Some(WorksetCommand::List(a)) => list(cx, &a),
        Some(WorksetCommand::Info(a)) => info(cx, &a),
        Some(WorksetCommand::Rm(a)) => rm(cx, &a),
        Some(WorksetCommand::Connect(a)) => connect(cx, &a),
        Some(WorksetCommand::Disconnect(a)) => disconnect(cx, &a),
        Some(WorksetCommand::Config(a)) => super::config::workset_config(cx, &a),
    }
}

fn create(cx: &Context, a: &WorksetCreateArgs) -> Result<Exit> {
    let root = target_dir(&cx.host.cwd, a.path.as_deref())?;
    let ws = workset::create(
        &cx.paths,
        &workset::CreateRequest {
            root,
            name: a.name.clone(),
            image: a.image.clone(),
            no_vault: a.no_vault,
            distinct_auth: a.distinct_auth,
            standalone: a.standalone,
        },
    )?;
    println!("Created working set '{}' at {}", ws.name, ws.root.display());
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct ListRow {
    name: String,
    projects: usize,
    root: Option<String>,
    default: bool,
}

fn list(cx: &Context, a: &WorksetListArgs) -> Result<Exit> {
    let defaults = Registry::load(&cx.paths.names_file())?.projects.len();
    let mut rows = vec![ListRow {
        name: workset::DEFAULT.into(),
        projects: defaults,
        root: None,
        default: true,
    }];
    for (name, root) in workset::registered(&cx.paths)? {
        let count = Workset::load(&name, &root).map_or(0, |w| w.members.len());
        rows.push(ListRow {
            name,
            projects: count,
            root: Some(root.display().to_string()),
            default: false,
        });
    }
    if a.json {
        crate::json_output::print_list("worksets", &rows);
    } else if a.quiet {
        for r in rows {
            println!("{}", r.name);
        }
    } else {
        println!("{:<20} {:>8}  ROOT", "NAME", "PROJECTS");
        for r in rows {
            let name = if r.default {
                format!("{} (default)", r.name)
            } else {
                r.name
            };
            println!(
                "{name:<20} {:>8}  {}",
                r.projects,
                r.root.as_deref().unwrap_or("<default workset>")
            );
        }
    }
    Ok(Exit::Success)
}

/// `workset info --json`.
#[derive(Serialize)]
struct InfoDoc {
    name: String,
    root: String,
    default: bool,
    /// `null` for the default workset, which has no `workset.yaml`.
    created: Option<String>,
    group_auth: Option<bool>,
    projects: Vec<InfoProject>,
}

#[derive(Serialize)]
struct InfoProject {
    name: String,
    source: String,
}

fn info(cx: &Context, a: &WorksetNameArgs) -> Result<Exit> {
    if a.name == workset::DEFAULT || a.name == "__default__" {
        let reg = Registry::load(&cx.paths.names_file())?;
        if a.json {
            crate::json_output::print_object(&InfoDoc {
                name: workset::DEFAULT.into(),
                root: cx.paths.data.display().to_string(),
                default: true,
                created: None,
                group_auth: None,
                projects: reg
                    .projects
                    .iter()
                    .map(|(n, p)| InfoProject {
                        name: n.to_string(),
                        source: p.display().to_string(),
                    })
                    .collect(),
            });
            return Ok(Exit::Success);
        }
        println!("Name:       {}", workset::DEFAULT);
        println!(
            "Root:       {} (the data directory)",
            cx.paths.data.display()
        );
        println!("Projects:");
        for (n, p) in reg.projects {
            println!("  {n}: {}", p.display());
        }
        return Ok(Exit::Success);
    }
    let ws = Workset::find(&cx.paths, &a.name)?;
    if a.json {
        crate::json_output::print_object(&InfoDoc {
            name: ws.name.clone(),
            root: ws.root.display().to_string(),
            default: false,
            created: Some(ws.created.clone()),
            group_auth: Some(ws.group_auth),
            projects: ws
                .members
                .iter()
                .map(|m| InfoProject {
                    name: m.name.clone(),
                    source: m.source.display().to_string(),
                })
                .collect(),
        });
        return Ok(Exit::Success);
    }
    println!("Name:       {}", ws.name);
    println!("Root:       {}", ws.root.display());
    println!("Created:    {}", ws.created);
    println!("Group auth: {}", ws.group_auth);
    println!("Projects:");
    if ws.members.is_empty() {
        println!("  (none)");
    }
    for m in &ws.members {
        println!("  {}: {}", m.name, m.source.display());
    }
    Ok(Exit::Success)
}

fn rm(cx: &Context, a: &WorksetRmArgs) -> Result<Exit> {
    if a.name == workset::DEFAULT || a.name == "__default__" {
        return Err(workset::WorksetError::DefaultFixed.into());
    }
    let ws = Workset::find(&cx.paths, &a.name)?;
    if !ws.members.is_empty() && !a.force {
        return Err(workset::WorksetError::HasMembers {
            name: ws.name.clone(),
            count: ws.members.len(),
        }
        .into());
    }
    let what = if a.purge {
        format!(
            "Remove working set '{}' and delete {}?",
            ws.name,
            ws.root.display()
        )
    } else {
        format!("Remove working set '{}'?", ws.name)
    };
    if !a.force && !prompt::confirm_yes(&cx.host, &what, "--force")? {
        println!("Aborted.");
        return Ok(Exit::Declined);
    }
    workset::remove(&cx.paths, &ws, a.purge)?;
    println!("Removed working set '{}'", ws.name);
    Ok(Exit::Success)
}

fn connect(cx: &Context, a: &ConnectArgs) -> Result<Exit> {
    let mut ws = Workset::find(&cx.paths, &a.workset)?;
    let source = cx.host.cwd.join(a.source.as_deref().unwrap_or("."));
    let source = source
        .canonicalize()
        .map_err(|_| UserError::new(format!("source {} does not exist", source.display())))?;
    let vault = crate::document::Document::load(&ws.config_file())?
        .get_bool(&["project", "enable_vault"])?
        .is_none_or(|v| v);
    let b = workset::connect(&mut ws, &source, a.name.as_deref(), vault)?;
    println!(
        "Added project '{}' to working set '{}'",
        b.display_name(),
        ws.name
    );
    println!("  workspace: {}", b.workspace.display());
    Ok(Exit::Success)
}

fn disconnect(cx: &Context, a: &DisconnectArgs) -> Result<Exit> {
    if a.workset == workset::DEFAULT || a.workset == "__default__" {
        return Err(workset::WorksetError::DefaultFixed.into());
    }
    let mut ws = Workset::find(&cx.paths, &a.workset)?;
    if ws.member(&a.project).is_none() {
        return Err(crate::boxes::error::BoxError::NoMember {
            workset: ws.name.clone(),
            project: a.project.clone(),
        }
        .into());
    }
    let what = format!(
        "Remove {}project '{}' from '{}'?",
        if a.remove_files {
            "and delete the files of "
        } else {
            ""
        },
        a.project,
        ws.name
    );
    if !a.force && !prompt::confirm_yes(&cx.host, &what, "--force")? {
        println!("Aborted.");
        return Ok(Exit::Declined);
    }
    workset::disconnect(&mut ws, &a.project, a.remove_files)?;
    println!(
        "Removed project '{}' from working set '{}'",
        a.project, ws.name
    );
    Ok(Exit::Success)
}
