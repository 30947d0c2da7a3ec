//! `box duplicate SOURCE NEW`: a new box with its own copy of the source's home and
//! vault (upstream shared them: defect 9).

use super::migrate::{new_member, workset_flag};
use super::*;

pub fn duplicate(cx: &Context, a: &DuplicateArgs) -> Result<Exit> {
    let src = the_box(cx, Some(&a.source_path))?;
    if src.mode == Mode::Workset {
        return Err(UserError::new(format!(
            "'{}' is a workset member; duplicating one is not supported",
            src.display_name()
        ))
        .hint("`kanibako workset connect` adds a new member to the workset")
        .into());
    }
    let want = match a.to {
        None => src.mode,
        Some(MigrateTo::Default) => Mode::Default,
        Some(MigrateTo::Standalone) => Mode::Standalone,
        Some(MigrateTo::Workset) => Mode::Workset,
    };
    workset_flag(
        a.workset.is_some(),
        want == Mode::Workset,
        "duplicating",
        "kanibako box duplicate BOX NEW --to workset --workset WS [--name N]",
    )?;
    if a.name.is_some() && want == Mode::Standalone {
        return Err(UserError::new(
            "a standalone box has no name; --name is for default-mode boxes and workset members",
        )
        .into());
    }
    let named = destination(cx, &a.new_path)?;
    let settings = ProjectSettings {
        group_auth: src.group_auth && !a.distinct_auth,
        ..settings_of(&src)
    };
    let reg = Registry::load(&cx.paths.names_file())?;
    let to = match want {
        Mode::Standalone => BoxIdentity::standalone(
            named.clone(),
            ProjectSettings {
                mode: Some(Mode::Standalone),
                layout: Some(if src.mode == Mode::Standalone {
                    src.layout
                } else {
                    Layout::Simple
                }),
                ..settings
            },
        ),
        Mode::Workset => {
            let ws =
                crate::workset::Workset::find(&cx.paths, a.workset.as_deref().unwrap_or_default())?;
            let member = new_member(&ws, a.name.as_deref(), &named)?;
            BoxIdentity::workset_member(
                &ws.name,
                &ws.root,
                member,
                ProjectSettings {
                    mode: Some(Mode::Workset),
                    layout: Some(Layout::Robust),
                    ..settings
                },
            )
        }
        Mode::Default => {
            let explicit = a.name.as_deref().map(BoxName::parse).transpose()?;
            let n = choose_name(&cx.paths, &reg, &named, explicit)?;
            let layout = if src.mode == Mode::Default {
                src.layout
            } else {
                Layout::Default
            };
            BoxIdentity::default_mode(
                n,
                named.clone(),
                &cx.paths.boxes,
                ProjectSettings {
                    mode: Some(Mode::Default),
                    layout: Some(layout),
                    ..settings
                },
            )
        }
    };
    // A workset member's copy goes where the workset keeps its members' directories.
    let dest = to.workspace.clone();
    let exists = dest.symlink_metadata().is_ok();
    if exists && !a.bare {
        return Err(
            UserError::new(format!("destination already exists: {}", dest.display()))
                .hint("name a new directory, or pass --bare to make a box for an existing one")
                .into(),
        );
    }
    if dest.starts_with(&src.workspace) || src.workspace.starts_with(&dest) {
        return Err(UserError::new(format!(
            "{} and {} are inside one another",
            src.workspace.display(),
            dest.display()
        ))
        .into());
    }
    if exists && (reg.project_for_path(&dest).is_some() || resolve::standalone_at(&dest)?.is_some())
    {
        return Err(BoxError::AlreadyInitialized(dest).into());
    }
    if !a.bare && !src.workspace.is_dir() {
        return Err(UserError::new(format!(
            "the project directory {} is missing",
            src.workspace.display()
        ))
        .hint("--bare copies the box without the project's files")
        .into());
    }
    // A copy of a running box's home could be torn mid-write.
    let _lock = refuse_running(cx, &src, "duplicated")?;
    if !confirm(
        cx,
        a.force,
        &format!(
            "Duplicate box '{}' ({}) as {} ({} mode)?",
            src.display_name(),
            src.workspace.display(),
            dest.display(),
            want.as_str()
        ),
    )? {
        return declined();
    }
    let made_dir = a.bare && !exists;
    if made_dir {
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    }
    let logins = duplicate::keeps_login(&src, a.distinct_auth);
    let name = to.name.clone().filter(|_| want == Mode::Default);
    let stale = if a.bare {
        Vec::new()
    } else {
        duplicate::leftovers(&src, &to)
    };
    // A member entry is written with the copy and undone with it (carry's error path,
    // or the next command's recovery after a crash): never a member without its box.
    let files: Vec<PathBuf> = to
        .workset
        .iter()
        .map(|(_, root)| root.join(crate::workset::WORKSET_FILE))
        .collect();
    let prepare = || -> Result<()> {
        duplicate::strip(&to, logins)?;
        for p in &stale {
            relocation::remove_tree(p).with_context(|| format!("removing {}", p.display()))?;
        }
        if let Some((ws_name, _)) = &to.workset {
            let mut ws = crate::workset::Workset::find(&cx.paths, ws_name)?;
            ws.members.push(crate::workset::Member {
                name: to.display_name().to_owned(),
                source: src.workspace.clone(),
            });
            ws.save()?;
            crate::fault::point("workset.joined");
        }
        Ok(())
    };
    let result = carry(
        cx,
        &Change {
            from: &src,
            to: &to,
            workspace: if a.bare {
                transfer::Workspace::Leave
            } else {
                transfer::Workspace::Carry
            },
            how: How::Copy,
            prepare: &prepare,
            files: &files,
            edit: &|reg| {
                let Some(n) = &name else { return Ok(false) };
                if let Some((section, path)) = reg.lookup(n.as_str()) {
                    return Err(BoxError::NameTaken {
                        name: n.to_string(),
                        section,
                        path: path.to_owned(),
                    }
                    .into());
                }
                reg.projects.insert(n.to_string(), dest.clone());
                Ok(true)
            },
        },
    );
    if let Err(e) = result {
        if made_dir {
            let _ = std::fs::remove_dir(&dest);
        }
        return Err(e);
    }
    write_auth_record(cx, &to)?;
    if want == Mode::Standalone && src.mode != Mode::Standalone {
        create::ignore_metadata_in_git(&dest)?;
    }
    println!(
        "Duplicated {} to {}",
        src.workspace.display(),
        dest.display()
    );
    match (&to.workset, &name) {
        (Some((ws_name, _)), _) => output::say(format_args!(
            "Workset member: {ws_name}/{}",
            to.display_name()
        )),
        (None, Some(n)) => output::say(format_args!("Project name: {n}")),
        (None, None) => {}
    }
    Ok(Exit::Success)
}
