//! `box move`, `box migrate` (path remap and `--to` mode conversion), `box duplicate`
//! and `box purge`: the checks, questions and messages around
//! [`crate::boxes::transfer`] (what goes where) and [`crate::boxes::relocation`]
//! (doing it so a stop leaves the source whole).
//!
//! Every change ends the same way ([`duplicate::carry`]): under the registry lock, the trees are
//! moved or copied, the new place's `project.yaml` is rewritten for it (the Python tool
//! mounts what it records), and `names.yaml` is written last. Any failure before that
//! puts the trees back, so the box is either where it was or wholly where it goes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::boxes::address;
use crate::boxes::create::{self, choose_name, is_home};
use crate::boxes::duplicate::{self, settings_of};
use crate::boxes::error::BoxError;
use crate::boxes::registry::Registry;
use crate::boxes::relocation::{self, How};
use crate::boxes::resolve::{self, Resolution, normalize};
use crate::boxes::transfer;
use crate::boxes::{BoxIdentity, BoxName, Layout, Mode, ProjectSettings, distinct_auth_record};
use crate::cli::boxes::{DuplicateArgs, MigrateArgs, MigrateTo, MoveArgs, PurgeArgs};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::fsutil::{self, FileLock};
use crate::launch::persistent;
use crate::runtime::labels;
use crate::{interrupt, output, prompt};

/// The box a word names (NAME, WORKSET/NAME or PATH; `None`: here), which must exist.
pub fn the_box(cx: &Context, word: Option<&str>) -> Result<BoxIdentity> {
    match address::resolve(&cx.paths, &cx.host.cwd, word)? {
        Resolution::Found(b) => Ok(b),
        Resolution::Unregistered(p) => Err(UserError::new(format!(
            "No project data found for: {}",
            p.display()
        ))
        .hint("`kanibako create` makes it a box")
        .into()),
    }
}

fn refuse_running(cx: &Context, b: &BoxIdentity, what: &str) -> Result<Option<FileLock>> {
    let running = |why: String| -> anyhow::Error {
        UserError::new(format!(
            "box '{}' is running ({why}); it cannot be {what} while it runs",
            b.display_name()
        ))
        .hint(format!(
            "stop it first: kanibako stop {}",
            b.workspace.display()
        ))
        .into()
    };
    if let Some(why) = super::vault::active(cx, b) {
        return Err(running(why));
    }
    if !b.metadata.is_dir() {
        return Ok(None);
    }
    // Held until the change is done, so no session starts in the middle of it; a lock
    // file made for this is removed after (the Python tool reads one as "active").
    match fsutil::try_lock_exclusive_transient(&b.lock_file())
        .with_context(|| format!("locking {}", b.lock_file().display()))?
    {
        Some(lock) => Ok(Some(lock)),
        None => Err(running("a kanibako session holds its lock".into())),
    }
}

/// Refuse while `b` runs, and remove its stopped containers: their mounts name the
/// place the box is leaving (a persistent box's container is made again on its next
/// start, as after `kanibako stop`).
fn idle(cx: &Context, b: &BoxIdentity, what: &str) -> Result<Option<FileLock>> {
    let lock = refuse_running(cx, b, what)?;
    if let Ok(rt) = cx.runtime()
        && let Ok(list) = rt.containers()
    {
        let legacy = b.legacy_container_name();
        for c in list.iter().filter(|c| {
            !c.running
                && match c.labels.get(labels::HASH) {
                    Some(h) => *h == b.hash,
                    None => !c.labels.contains_key(labels::BOX) && c.name == legacy,
                }
        }) {
            let rootfs = c.labels.get(labels::ROOTFS).map(String::as_str);
            if persistent::remove(cx, &rt, &c.name, rootfs) {
                println!("Removed stopped container: {}", c.name);
            }
        }
    }
    let _ = std::fs::remove_file(b.container_marker());
    Ok(lock)
}

fn confirm(cx: &Context, force: bool, question: &str) -> Result<bool> {
    Ok(force || prompt::confirm_yes(&cx.host, question, "--force")?)
}

fn declined() -> Result<Exit> {
    println!("Aborted.");
    Ok(Exit::Declined)
}

type Change<'a> = duplicate::Change<'a, anyhow::Error>;

/// Carry out `c` ([`duplicate::carry`]), stopped by Ctrl-C; a moved source a container's
/// files keep in place is removed through the engine.
fn carry(cx: &Context, c: &Change<'_>) -> Result<()> {
    let _guard = interrupt::Guard::install();
    for left in duplicate::carry(&cx.paths, c, &interrupt::check)? {
        if let Err(e) = remove_with_engine(cx, &left) {
            output::warn(format_args!(
                "{} was copied but could not be removed: {e:#}",
                left.display()
            ));
        }
    }
    Ok(())
}

/// `b`'s `project.yaml` rewritten for where it now is (kept keys stay).
fn rewrite_record(cx: &Context, b: &BoxIdentity) -> Result<()> {
    Ok(duplicate::rewrite_record(&cx.paths, b)?)
}

/// Remove a tree; files a rootless container's sub-uids own go through the engine's
/// user namespace (`podman unshare rm -rf`), as upstream does.
fn remove_with_engine(cx: &Context, p: &Path) -> Result<()> {
    match relocation::remove_tree(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let rt = cx.runtime()?;
            if !rt.engine.can_unshare() {
                return Err(e).with_context(|| format!("deleting {}", p.display()));
            }
            rt.unshare_remove(p)?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("deleting {}", p.display())),
    }
}

/// The distinct-auth record follows a standalone box whose hash changed.
fn move_auth_record(cx: &Context, from: &BoxIdentity, to: &BoxIdentity) {
    let old = distinct_auth_record(&cx.paths, &from.hash);
    if from.hash != to.hash && old.exists() {
        let new = distinct_auth_record(&cx.paths, &to.hash);
        if to.mode == Mode::Standalone
            && fsutil::atomic_write(&new, b"", fsutil::MODE_CONFIG).is_err()
        {
            return;
        }
        let _ = std::fs::remove_file(old);
    }
}

fn write_auth_record(cx: &Context, b: &BoxIdentity) -> Result<()> {
    Ok(duplicate::write_auth_record(&cx.paths, b)?)
}

fn destination(cx: &Context, word: &str) -> Result<PathBuf> {
    let dest = create::target_dir(&cx.host.cwd, Some(word))?;
    if is_home(&cx.paths, &dest) {
        return Err(BoxError::HomeRefused.into());
    }
    Ok(dest)
}

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

/// `--workset` goes with `--to workset`, and only with it (upstream's wording).
fn workset_flag(given: bool, to_workset: bool, doing: &str, usage: &str) -> Result<()> {
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

/// A default-mode box becomes member `name` of workset `ws_name`: its project
/// directory moves to the workset's `workspaces/`, its data to `boxes/`, its vault to
/// `vault/`; the member records where it came from. The member entry is written before
/// the name is released, so a stop between leaves it findable.
///
/// `in_place`: the project directory stays, and the member works there: the member
/// records it as its source and `workspaces/<name>` links to it (see
/// [`crate::boxes::worksets::Workset::in_place_workspace`]). Upstream copies the
/// metadata only and leaves the member an empty workspace; here it is the same tree.
/// A new member's name in `ws`: `name`, else `dir`'s name made valid; refused when
/// the workset has a member of that name.
fn new_member(ws: &crate::workset::Workset, name: Option<&str>, dir: &Path) -> Result<BoxName> {
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
    let joined = std::cell::Cell::new(false);
    let linked = std::cell::Cell::new(false);
    let add_member = || -> Result<()> {
        if in_place {
            if let Some(p) = link.parent() {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
            }
            std::os::unix::fs::symlink(&source, &link)
                .with_context(|| format!("linking {} to {}", link.display(), source.display()))?;
            linked.set(true);
        }
        let mut ws = crate::workset::Workset::find(&cx.paths, ws_name)?;
        ws.members.push(crate::workset::Member {
            name: member.to_string(),
            source: source.clone(),
        });
        ws.save()?;
        joined.set(true);
        Ok(())
    };
    let result = carry(
        cx,
        &Change {
            from: src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Move,
            prepare: &add_member,
            edit: &|reg| {
                Ok(match &old_name {
                    Some(n) => reg.projects.remove(n.as_str()).is_some(),
                    None => false,
                })
            },
        },
    );
    if let Err(e) = result {
        if joined.get() {
            let _ = drop_member(cx, ws_name, member.as_str());
        }
        if linked.get() {
            let _ = std::fs::remove_file(&link);
        }
        return Err(e);
    }
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
/// connected from). The name is registered before the member entry goes, so a stop
/// between leaves the box findable.
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
    carry(
        cx,
        &Change {
            from: src,
            to: &to,
            workspace: transfer::Workspace::Carry,
            how: How::Move,
            prepare: &|| Ok(()),
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
    drop_member(cx, &ws_name, &member)?;
    if in_place {
        let _ = std::fs::remove_file(root.join("workspaces").join(&member));
    }
    println!(
        "Converted '{ws_name}/{member}' to default mode as '{n}': {}",
        dest.display()
    );
    output::say(format_args!("Project name: {n}"));
    Ok(Exit::Success)
}

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
    let joined = std::cell::Cell::new(false);
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
            joined.set(true);
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
        if let (true, Some((ws_name, _))) = (joined.get(), &to.workset) {
            let _ = drop_member(cx, ws_name, to.display_name());
        }
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
