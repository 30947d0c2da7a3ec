//! `box migrate OLD NEW` (a moved project's path remapped) and `box migrate --to
//! default|standalone|workset` (a box changing mode, its trees moved to match).

use super::*;

/// `--workset` goes with `--to workset`, and only with it (upstream's wording).
pub(super) fn workset_flag(given: bool, to_workset: bool, doing: &str, usage: &str) -> Result<()> {
    if given == to_workset {
        return Ok(());
    }
    Err(UserError::new(if to_workset {
        format!("--workset is required when {doing} to workset mode.")
    } else {
        "--workset is only for --to workset".to_owned()
    })
    .hint(usage)
    .into())
}

pub fn migrate(cx: &Context, a: &MigrateArgs) -> Result<Exit> {
    if let Some(to) = a.to {
        workset_flag(
            a.workset.is_some(),
            to == MigrateTo::Workset,
            "converting",
            "kanibako box migrate [PROJECT] --to workset --workset WS [--name N]",
        )?;
        if a.in_place && to != MigrateTo::Workset {
            return Err(UserError::new(
                "--in-place is only for --to workset (the project directory stays where it is)",
            )
            .hint("kanibako box migrate [PROJECT] --to workset --workset WS --in-place")
            .into());
        }
        let src = the_box(cx, a.old_path.as_deref())?;
        return match (src.mode, to) {
            (Mode::Workset, MigrateTo::Default) => {
                leave_workset(cx, &src, a.new_path.as_deref(), a.name.as_deref(), a.force)
            }
            (Mode::Default, MigrateTo::Workset) if a.new_path.is_none() => join_workset(
                cx,
                &src,
                a.workset.as_deref().unwrap_or_default(),
                a.name.as_deref(),
                a.in_place,
                a.force,
            ),
            _ if a.new_path.is_some() => Err(UserError::new(
                "NEW_PATH with --to is only for taking a workset member out to a directory",
            )
            .hint("kanibako box migrate WS/NAME [NEW_PATH] --to default")
            .into()),
            _ => convert(cx, src, to, a.name.as_deref(), a.force),
        };
    }
    let Some(old) = a.old_path.as_deref() else {
        return Err(UserError::new(
            "old_path is required for path remap (use --to for mode conversion).",
        )
        .hint("kanibako box migrate OLD_PATH [NEW_PATH]")
        .into());
    };
    remap(cx, old, a.new_path.as_deref(), a.force)
}

/// The registered box `old` (a name, or the path it was registered for, which may be
/// gone).
fn registered_for(cx: &Context, reg: &Registry, old: &str) -> Result<BoxIdentity> {
    let path = normalize(&cx.host.cwd.join(old));
    let found = reg.projects.iter().find(|(_, p)| **p == path).or_else(|| {
        (!old.contains('/'))
            .then(|| reg.projects.get_key_value(old))
            .flatten()
    });
    let Some((name, path)) = found else {
        return Err(
            UserError::new(format!("No box is registered for {}", path.display()))
                .hint("`kanibako box list --orphan` shows the boxes whose directory is gone")
                .into(),
        );
    };
    let name = BoxName::from_registry(name).ok_or_else(|| BoxError::NotRegistered(name.clone()))?;
    Ok(resolve::registered(&cx.paths, name, path.clone())?)
}

fn remap(cx: &Context, old: &str, new: Option<&str>, force: bool) -> Result<Exit> {
    let raw = cx.host.cwd.join(new.unwrap_or("."));
    let new_dir = raw
        .canonicalize()
        .map_err(|_| BoxError::PathMissing(normalize(&raw)))?;
    if !new_dir.is_dir() {
        return Err(BoxError::NotADirectory(new_dir).into());
    }
    if is_home(&cx.paths, &new_dir) {
        return Err(BoxError::HomeRefused.into());
    }
    if let Some(s) = resolve::standalone_at(&new_dir)? {
        return remap_standalone(cx, old, &s, force);
    }
    let reg = Registry::load(&cx.paths.names_file())?;
    let src = registered_for(cx, &reg, old)?;
    if let Some(n) = reg.project_for_path(&new_dir) {
        return Err(
            UserError::new(format!("{} is already the box '{n}'", new_dir.display()))
                .hint("`kanibako box rm` unregisters that one first")
                .into(),
        );
    }
    let old_name = src.name.clone().expect("a registered box has a name");
    let slug = BoxName::slug(&new_dir.file_name().unwrap_or_default().to_string_lossy());
    let new_name = if slug == old_name {
        old_name.clone()
    } else {
        let mut others = reg.clone();
        others.projects.remove(old_name.as_str());
        choose_name(&cx.paths, &others, &new_dir, None)?
    };
    let to = BoxIdentity::default_mode(
        new_name.clone(),
        new_dir.clone(),
        &cx.paths.boxes,
        settings_of(&src),
    );
    let _lock = idle(cx, &src, "migrated")?;
    if !confirm(
        cx,
        force,
        &format!(
            "Re-attach box '{old_name}' (registered for {}) to {} as '{new_name}'?",
            src.workspace.display(),
            new_dir.display()
        ),
    )? {
        return declined();
    }
    carry(
        cx,
        &Change {
            from: &src,
            to: &to,
            workspace: transfer::Workspace::Moved,
            how: How::Move,
            prepare: &|| Ok(()),
            files: &[],
            edit: &|reg| {
                reg.projects.remove(old_name.as_str());
                if new_name != old_name && reg.lookup(new_name.as_str()).is_some() {
                    return Err(BoxError::NameTaken {
                        name: new_name.to_string(),
                        section: crate::boxes::registry::Section::Projects,
                        path: new_dir.clone(),
                    }
                    .into());
                }
                reg.projects.insert(new_name.to_string(), new_dir.clone());
                Ok(true)
            },
        },
    )?;
    if new_name != old_name {
        let logs = cx.paths.data.join("logs");
        let _ = std::fs::rename(logs.join(old_name.as_str()), logs.join(new_name.as_str()));
    }
    println!("Migrated project data:");
    println!("  From: {} ({old_name})", src.workspace.display());
    println!("  To:   {} ({new_name})", new_dir.display());
    Ok(Exit::Success)
}

/// A standalone box the user moved: everything came along; only what is keyed by its
/// path (its record and hash) is brought up to date.
fn remap_standalone(cx: &Context, old: &str, s: &BoxIdentity, force: bool) -> Result<Exit> {
    let old_path = normalize(&cx.host.cwd.join(old));
    let from = BoxIdentity::standalone(old_path.clone(), settings_of(s));
    let _lock = refuse_running(cx, s, "migrated")?;
    if !confirm(
        cx,
        force,
        &format!(
            "Re-key the standalone box at {} (was {})?",
            s.workspace.display(),
            old_path.display()
        ),
    )? {
        return declined();
    }
    rewrite_record(cx, s)?;
    move_auth_record(cx, &from, s);
    println!("Migrated project data:");
    println!("  From: {}", old_path.display());
    println!("  To:   {}", s.workspace.display());
    Ok(Exit::Success)
}

fn convert(
    cx: &Context,
    src: BoxIdentity,
    to_mode: MigrateTo,
    name: Option<&str>,
    force: bool,
) -> Result<Exit> {
    let want = match to_mode {
        MigrateTo::Default => Mode::Default,
        MigrateTo::Standalone => Mode::Standalone,
        MigrateTo::Workset => Mode::Workset,
    };
    if src.mode == want {
        return Err(UserError::new(format!(
            "box '{}' is already in {} mode",
            src.display_name(),
            want.as_str()
        ))
        .into());
    }
    if src.mode == Mode::Workset || want == Mode::Workset {
        return Err(UserError::new(format!(
            "a {} box converts to {} mode through default mode",
            src.mode.as_str(),
            want.as_str()
        ))
        .hint("kanibako box migrate BOX --to default, then --to the mode you want")
        .into());
    }
    if !src.workspace.is_dir() {
        return Err(UserError::new(format!(
            "the project directory {} is missing",
            src.workspace.display()
        ))
        .hint("if you moved it yourself: kanibako box migrate OLD NEW")
        .into());
    }
    if name.is_some() && want == Mode::Standalone {
        return Err(
            UserError::new("a standalone box has no name; --name is for --to default").into(),
        );
    }
    let ws = src.workspace.clone();
    let to = match want {
        Mode::Standalone => BoxIdentity::standalone(
            ws.clone(),
            ProjectSettings {
                mode: Some(Mode::Standalone),
                layout: Some(Layout::Simple),
                ..settings_of(&src)
            },
        ),
        _ => {
            let reg = Registry::load(&cx.paths.names_file())?;
            let explicit = name.map(BoxName::parse).transpose()?;
            let n = choose_name(&cx.paths, &reg, &ws, explicit)?;
            BoxIdentity::default_mode(
                n,
                ws.clone(),
                &cx.paths.boxes,
                ProjectSettings {
                    mode: Some(Mode::Default),
                    layout: Some(Layout::Default),
                    ..settings_of(&src)
                },
            )
        }
    };
    if want == Mode::Standalone && resolve::standalone_at(&ws)?.is_some() {
        return Err(BoxError::AlreadyInitialized(ws).into());
    }
    let _lock = idle(cx, &src, "converted")?;
    let question = match &to.name {
        None => format!(
            "Convert box '{}' to a standalone box (its data moves to {}; its name is released)?",
            src.display_name(),
            to.metadata.display()
        ),
        Some(n) => format!(
            "Convert the standalone box at {} to a default-mode box named '{n}' (its data moves to {})?",
            ws.display(),
            to.metadata.display()
        ),
    };
    if !confirm(cx, force, &question)? {
        return declined();
    }
    write_auth_record(cx, &to)?;
    let (old_name, new_name) = (src.name.clone(), to.name.clone());
    carry(
        cx,
        &Change {
            from: &src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Move,
            prepare: &|| Ok(()),
            files: &[],
            edit: &|reg| {
                if let Some(n) = &old_name {
                    reg.projects.remove(n.as_str());
                }
                if let Some(n) = &new_name {
                    if let Some((section, path)) = reg.lookup(n.as_str()) {
                        return Err(BoxError::NameTaken {
                            name: n.to_string(),
                            section,
                            path: path.to_owned(),
                        }
                        .into());
                    }
                    reg.projects.insert(n.to_string(), ws.clone());
                }
                Ok(true)
            },
        },
    )?;
    if want == Mode::Standalone {
        create::ignore_metadata_in_git(&ws)?;
        println!(
            "Converted '{}' to standalone mode: {}",
            src.display_name(),
            to.metadata.display()
        );
    } else {
        let _ = std::fs::remove_file(distinct_auth_record(&cx.paths, &src.hash));
        println!(
            "Converted {} to default mode as '{}'",
            ws.display(),
            to.display_name()
        );
        output::say(format_args!("Project name: {}", to.display_name()));
    }
    Ok(Exit::Success)
}

/// A new member's name in `ws`: `name`, else `dir`'s name made valid; refused when
/// the workset has a member of that name.
pub(super) fn new_member(
    ws: &crate::workset::Workset,
    name: Option<&str>,
    dir: &Path,
) -> Result<BoxName> {
    let member = match name {
        Some(n) => BoxName::parse(n)?,
        None => BoxName::slug(&dir.file_name().unwrap_or_default().to_string_lossy()),
    };
    if ws.member(member.as_str()).is_some() {
        return Err(UserError::new(format!(
            "Project '{member}' is already in workset '{}'.",
            ws.name
        ))
        .hint("choose another name with --name")
        .into());
    }
    Ok(member)
}

/// A default-mode box becomes member `name` of workset `ws_name`: its project
/// directory moves to the workset's `workspaces/`, its data to `boxes/`, its vault to
/// `vault/`; the member records where it came from. The member entry is written before
/// the name is released, so a stop between leaves it findable.
///
/// `in_place`: the project directory stays, and the member works there: the member
/// records it as its source and `workspaces/<name>` links to it (see
/// [`crate::boxes::worksets::Workset::in_place_workspace`]). Upstream copies the
/// metadata only and leaves the member an empty workspace; here it is the same tree.
fn join_workset(
    cx: &Context,
    src: &BoxIdentity,
    ws_name: &str,
    name: Option<&str>,
    in_place: bool,
    force: bool,
) -> Result<Exit> {
    let ws = crate::workset::Workset::find(&cx.paths, ws_name)?;
    let member = new_member(&ws, name, &src.workspace)?;
    if !src.workspace.is_dir() {
        return Err(UserError::new(format!(
            "the project directory {} is missing",
            src.workspace.display()
        ))
        .hint("if you moved it yourself: kanibako box migrate OLD NEW")
        .into());
    }
    let mut to = BoxIdentity::workset_member(
        &ws.name,
        &ws.root,
        member.clone(),
        ProjectSettings {
            mode: Some(Mode::Workset),
            layout: Some(Layout::Robust),
            ..settings_of(src)
        },
    );
    let link = to.workspace.clone();
    if in_place {
        if link.symlink_metadata().is_ok() {
            return Err(UserError::new(format!("{} already exists", link.display()))
                .hint("choose another member name with --name")
                .into());
        }
        to.workspace = src.workspace.clone();
    }
    let _lock = idle(cx, src, "converted")?;
    let question = if in_place {
        format!(
            "Make box '{}' member '{member}' of workset '{}' (its project directory stays at {})?",
            src.display_name(),
            ws.name,
            to.workspace.display()
        )
    } else {
        format!(
            "Move box '{}' into workset '{}' as '{member}' (its project directory moves to {})?",
            src.display_name(),
            ws.name,
            to.workspace.display()
        )
    };
    if !confirm(cx, force, &question)? {
        return declined();
    }
    let old_name = src.name.clone();
    let source = src.workspace.clone();
    // The member entry and the link are written with the trees: undone with them (by
    // carry's own error path, or after a crash by the next command), so a workset
    // never keeps a member whose box went back.
    let add_member = || -> Result<()> {
        let mut ws = crate::workset::Workset::find(&cx.paths, ws_name)?;
        ws.members.push(crate::workset::Member {
            name: member.to_string(),
            source: source.clone(),
        });
        ws.save()?;
        crate::fault::point("workset.joined");
        if in_place {
            if let Some(p) = link.parent() {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            }
            std::os::unix::fs::symlink(&source, &link)
                .with_context(|| format!("linking {} to {}", link.display(), source.display()))?;
        }
        Ok(())
    };
    let mut files = vec![ws.root.join(crate::workset::WORKSET_FILE)];
    if in_place {
        files.push(link.clone());
    }
    carry(
        cx,
        &Change {
            from: src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Move,
            prepare: &add_member,
            files: &files,
            edit: &|reg| {
                Ok(match &old_name {
                    Some(n) => reg.projects.remove(n.as_str()).is_some(),
                    None => false,
                })
            },
        },
    )?;
    if in_place {
        println!(
            "Made '{}' member '{member}' of workset '{}' in place: {}",
            src.display_name(),
            ws.name,
            to.workspace.display()
        );
        return Ok(Exit::Success);
    }
    println!(
        "Moved '{}' into workset '{}' as '{member}': {}",
        src.display_name(),
        ws.name,
        to.workspace.display()
    );
    Ok(Exit::Success)
}

fn drop_member(cx: &Context, ws_name: &str, member: &str) -> Result<()> {
    let mut ws = crate::workset::Workset::find(&cx.paths, ws_name)?;
    ws.members.retain(|m| m.name != member);
    ws.save()?;
    Ok(())
}

/// A workset member becomes a default-mode box at `dest` (default: the source it was
/// connected from). The member entry goes with the trees and the name comes with the
/// registry, in one change ([`carry`]): a stop or a crash anywhere leaves either the
/// member or the default-mode box, never both, never neither.
fn leave_workset(
    cx: &Context,
    src: &BoxIdentity,
    dest: Option<&str>,
    name: Option<&str>,
    force: bool,
) -> Result<Exit> {
    let (ws_name, root) = src.workset.clone().expect("a member has a workset");
    let ws = crate::workset::Workset::load(&ws_name, &root)?;
    let member = src.display_name().to_owned();
    let dest = match dest {
        Some(d) => destination(cx, d)?,
        None => {
            let recorded = ws
                .member(&member)
                .map(|m| m.source.clone())
                .filter(|s| !s.as_os_str().is_empty());
            match recorded {
                Some(s) => s,
                None => {
                    return Err(UserError::new(format!(
                        "'{ws_name}/{member}' records no source directory"
                    ))
                    .hint(format!(
                        "name where its project goes: kanibako box migrate {ws_name}/{member} NEW_PATH --to default"
                    ))
                    .into());
                }
            }
        }
    };
    if is_home(&cx.paths, &dest) {
        return Err(BoxError::HomeRefused.into());
    }
    // A member that joined in place leaves in place: its directory is already there.
    let in_place = ws.in_place_workspace(&member).is_some_and(|w| w == dest);
    if !in_place && dest.symlink_metadata().is_ok() {
        return Err(UserError::new(format!("destination already exists: {}", dest.display()))
            .hint(format!(
                "name a new directory: kanibako box migrate {ws_name}/{member} NEW_PATH --to default"
            ))
            .into());
    }
    let reg = Registry::load(&cx.paths.names_file())?;
    let explicit = name.map(BoxName::parse).transpose()?;
    let n = choose_name(&cx.paths, &reg, &dest, explicit)?;
    let to = BoxIdentity::default_mode(
        n.clone(),
        dest.clone(),
        &cx.paths.boxes,
        ProjectSettings {
            mode: Some(Mode::Default),
            layout: Some(Layout::Default),
            ..settings_of(src)
        },
    );
    let _lock = idle(cx, src, "converted")?;
    if !confirm(
        cx,
        force,
        &format!(
            "Take '{ws_name}/{member}' out of its workset as box '{n}' at {}?",
            dest.display()
        ),
    )? {
        return declined();
    }
    // The member entry (and an in-place member's link) goes with the trees, undone
    // with them: never a member without its box, nor a box in two places.
    let link = root.join("workspaces").join(&member);
    let leave = || -> Result<()> {
        drop_member(cx, &ws_name, &member)?;
        if in_place {
            std::fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
        }
        crate::fault::point("workset.left");
        Ok(())
    };
    let mut files = vec![root.join(crate::workset::WORKSET_FILE)];
    if in_place {
        files.push(link.clone());
    }
    carry(
        cx,
        &Change {
            from: src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Move,
            prepare: &leave,
            files: &files,
            edit: &|reg| {
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
    )?;
    println!(
        "Converted '{ws_name}/{member}' to default mode as '{n}': {}",
        dest.display()
    );
    output::say(format_args!("Project name: {n}"));
    Ok(Exit::Success)
}
