//! `box move [PROJECT] DEST`: a box and its project directory to a new place.

use super::*;

pub fn move_box(cx: &Context, a: &MoveArgs) -> Result<Exit> {
    let (project, dest) = match a.args.as_slice() {
        [d] => (None, d.as_str()),
        [p, d, ..] => (Some(p.as_str()), d.as_str()),
        [] => unreachable!("clap requires DEST"),
    };
    let src = the_box(cx, project)?;
    if src.mode == Mode::Workset {
        return Err(UserError::new(
            "cannot move a workset project. Use workset-level operations instead.",
        )
        .into());
    }
    let dest = destination(cx, dest)?;
    if dest == src.workspace {
        return Err(UserError::new("source and destination are the same").into());
    }
    if dest.symlink_metadata().is_ok() {
        return Err(
            UserError::new(format!("destination already exists: {}", dest.display()))
                .hint("name a path that does not exist yet; the project directory is moved there")
                .into(),
        );
    }
    if dest.starts_with(&src.workspace) {
        return Err(UserError::new(format!(
            "cannot move {} into itself ({})",
            src.workspace.display(),
            dest.display()
        ))
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
    let to = match &src.name {
        Some(n) => {
            BoxIdentity::default_mode(n.clone(), dest.clone(), &cx.paths.boxes, settings_of(&src))
        }
        None => BoxIdentity::standalone(dest.clone(), settings_of(&src)),
    };
    let _lock = idle(cx, &src, "moved")?;
    if !confirm(
        cx,
        a.force,
        &format!(
            "Move box '{}' from {} to {}?",
            src.display_name(),
            src.workspace.display(),
            dest.display()
        ),
    )? {
        return declined();
    }
    let name = to.name.clone();
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
                Ok(match &name {
                    Some(n) => {
                        reg.projects.insert(n.to_string(), dest.clone());
                        true
                    }
                    None => false,
                })
            },
        },
    )?;
    move_auth_record(cx, &src, &to);
    println!(
        "Moved {} to {}",
        src.workspace.display(),
        to.workspace.display()
    );
    Ok(Exit::Success)
}
