//! `box purge [PATH] [--all]`: a box's data deleted and its name released (upstream
//! kept the name: defect 18).

use super::*;

pub fn purge(cx: &Context, a: &PurgeArgs) -> Result<Exit> {
    if a.all {
        return purge_all(cx, a.force);
    }
    let Some(path) = a.path.as_deref() else {
        return Err(UserError::new("specify a project path, or use --all")
            .hint("kanibako box purge PATH")
            .into());
    };
    let b = the_box(cx, Some(path))?;
    if b.metadata.is_dir() {
        let _lock = idle(cx, &b, "purged")?;
        if !a.force {
            println!("Project: {}", b.workspace.display());
            println!("Name:    {}", b.display_name());
        }
        if !confirm(
            cx,
            a.force,
            "Delete all session data for this project? This cannot be undone.",
        )? {
            return declined();
        }
        purge_one(cx, &b)?;
    } else {
        println!(
            "No session data found for project {}",
            b.workspace.display()
        );
        release_name(cx, &b)?;
    }
    Ok(Exit::Success)
}

/// Take the name off `names.yaml` (upstream keeps it: defect 18).
fn release_name(cx: &Context, b: &BoxIdentity) -> Result<bool> {
    let (Some(n), Mode::Default) = (&b.name, b.mode) else {
        return Ok(false);
    };
    Registry::update(&cx.paths, |reg| {
        let removed = reg.projects.remove(n.as_str()).is_some();
        Ok::<_, anyhow::Error>((removed, removed))
    })
}

/// Delete `b`'s data: its metadata (with the home in it), a home kept elsewhere, its
/// helper logs and host-side records; release its name. The trees are first renamed
/// aside in one step each, so a stop midway leaves a box with no data rather than one
/// with half a home; the name goes before anything is deleted.
fn purge_one(cx: &Context, b: &BoxIdentity) -> Result<()> {
    let mut trees = vec![b.metadata.clone()];
    if !b.shell.starts_with(&b.metadata) {
        trees.push(b.shell.clone());
    }
    let log_id = b
        .name
        .as_ref()
        .map_or_else(|| b.short_hash().to_owned(), |n| n.to_string());
    trees.push(cx.paths.data.join("logs").join(log_id));
    let mut aside = Vec::new();
    let _guard = interrupt::Guard::install();
    for t in &trees {
        if let Some(p) = hide(t)? {
            aside.push(p);
        }
    }
    release_name(cx, b)?;
    let _ = std::fs::remove_file(distinct_auth_record(&cx.paths, &b.hash));
    let _ = std::fs::remove_file(crate::vault::lock_file(&cx.paths, b));
    let mut failed = Vec::new();
    for p in aside {
        if let Err(e) = remove_with_engine(cx, &p) {
            failed.push(format!("{}: {e:#}", p.display()));
        }
    }
    if !failed.is_empty() {
        return Err(UserError::new(format!(
            "the data of '{}' is unregistered, but some could not be deleted: {}",
            b.display_name(),
            failed.join("; ")
        ))
        .hint("files of a container's sub-uids: `podman unshare rm -rf PATH` removes them")
        .into());
    }
    println!("Session data removed for {}", b.workspace.display());
    Ok(())
}

/// Rename the tree at `p` to a temporary sibling (cleared by the next run if we stop);
/// `None` when nothing is there.
fn hide(p: &Path) -> Result<Option<PathBuf>> {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Ok(None);
    };
    if p.symlink_metadata().is_err() {
        return Ok(None);
    }
    relocation::clear_temporaries(parent);
    let aside = parent.join(format!(
        ".kanibako-tmp-{}-purge-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    std::fs::rename(p, &aside).with_context(|| format!("moving {} aside", p.display()))?;
    Ok(Some(aside))
}

fn purge_all(cx: &Context, force: bool) -> Result<Exit> {
    let reg = Registry::load(&cx.paths.names_file())?;
    let mut boxes = Vec::new();
    for (name, path) in &reg.projects {
        if let Some(n) = BoxName::from_registry(name) {
            boxes.push(resolve::registered(&cx.paths, n, path.clone())?);
        }
    }
    for (ws_name, root) in crate::workset::registered(&cx.paths)? {
        if let Ok(ws) = crate::workset::Workset::load(&ws_name, &root) {
            boxes.extend(ws.identities());
        }
    }
    boxes.retain(|b| b.metadata.is_dir());
    if boxes.is_empty() {
        println!("No project session data found.");
        return Ok(Exit::Success);
    }
    println!("Found {} project(s) with session data:", boxes.len());
    for b in &boxes {
        match &b.workset {
            Some((ws, _)) => println!("  {ws}/{}", b.display_name()),
            None => println!("  {} ({})", b.display_name(), b.workspace.display()),
        }
    }
    if !confirm(
        cx,
        force,
        &format!(
            "Delete all session data for these {} project(s)? This cannot be undone.",
            boxes.len()
        ),
    )? {
        return declined();
    }
    let mut failed = 0;
    for b in &boxes {
        let done = idle(cx, b, "purged").and_then(|_lock| purge_one(cx, b));
        if let Err(e) = done {
            interrupt::check()?;
            failed += 1;
            output::say(format_args!("  {}: not purged: {e:#}", b.display_name()));
        }
    }
    if failed > 0 {
        return Err(UserError::new(format!(
            "{failed} of {} project(s) could not be purged",
            boxes.len()
        ))
        .into());
    }
    Ok(Exit::Success)
}
