//! `box archive` and `box extract`: which box and file, the git checks and the
//! questions, around [`crate::archive`].

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::target::{active, the_box};
use super::vault::now;
use crate::archive::extract::Staging;
use crate::archive::info::Info;
use crate::archive::pack::{self, Source};
use crate::archive::{self, git};
use crate::boxes::error::BoxError;
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, Resolution};
use crate::boxes::{BoxIdentity, BoxName};
use crate::cli::vault::{ArchiveArgs, ExtractArgs};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::progress::Progress;
use crate::{interrupt, prompt};

pub fn archive(cx: &Context, a: &ArchiveArgs) -> Result<Exit> {
    if a.all {
        return archive_all(cx, a);
    }
    let Some(path) = a.path.as_deref() else {
        return Err(UserError::new("specify a project path, or use --all")
            .hint("kanibako box archive PATH [FILE]")
            .into());
    };
    let b = the_box(cx, Some(path))?;
    archive_one(cx, &b, a.file.as_deref(), a)?;
    Ok(Exit::Success)
}

/// Where the archive goes: FILE (a directory gets the default name inside it), else
/// the default name here.
fn output_path(cx: &Context, b: &BoxIdentity, file: Option<&str>) -> PathBuf {
    let default = archive::default_file_name(b, now());
    match file {
        Some(f) => {
            let p = cx.host.cwd.join(f);
            if p.is_dir() { p.join(default) } else { p }
        }
        None => cx.host.cwd.join(default),
    }
}

fn git_checks(
    cx: &Context,
    b: &BoxIdentity,
    a: &ArchiveArgs,
) -> Result<Option<archive::info::GitState>> {
    let ws = &b.workspace;
    if !ws.is_dir() {
        return Ok(None);
    }
    if !git::is_repo(ws) {
        if !a.quiet {
            crate::output::warn(format!("No git repository detected in {}", ws.display()));
            crate::output::say("Only kanibako session data will be archived.");
        }
        return Ok(None);
    }
    let exec = cx.exec.as_ref();
    let need_git = |e: std::io::Error| {
        anyhow::Error::from(
            UserError::new(format!("cannot run git to check {}: {e}", ws.display()))
                .hint("install git, or pass --allow-uncommitted --allow-unpushed"),
        )
    };
    if !a.allow_uncommitted && git::uncommitted(exec, ws).map_err(need_git)? {
        return Err(
            UserError::new(format!("Uncommitted changes detected in {}.", ws.display()))
                .hint("Commit your changes or use --allow-uncommitted to override.")
                .into(),
        );
    }
    if !a.allow_unpushed
        && let Some(n) = git::unpushed(exec, ws).map_err(need_git)?
        && n > 0
    {
        return Err(UserError::new(format!(
            "{n} unpushed commit(s) detected in {}.",
            ws.display()
        ))
        .hint("Push your changes or use --allow-unpushed to override.")
        .into());
    }
    git::state(exec, ws).map_err(need_git)
}

fn archive_one(
    cx: &Context,
    b: &BoxIdentity,
    file: Option<&str>,
    a: &ArchiveArgs,
) -> Result<PathBuf> {
    if !b.metadata.is_dir() {
        return Err(UserError::new(format!(
            "No session data found for project {}",
            b.workspace.display()
        ))
        .into());
    }
    let out = output_path(cx, b, file);
    if !a.force && out.symlink_metadata().is_ok() {
        return Err(UserError::new(format!("{} already exists", out.display()))
            .hint("pass --force to replace it, or name another FILE")
            .into());
    }
    let git_state = git_checks(cx, b, a)?;
    if let Some(why) = active(cx, b)
        && !a.quiet
    {
        crate::output::warn(format!(
            "box '{}' is active ({why}); files it changes meanwhile may be archived mid-write",
            b.display_name()
        ));
    }
    let info = Info {
        project_path: b.workspace.to_string_lossy().into_owned(),
        project_hash: b.hash.clone(),
        date: archive::archive_date(now()),
        git: git_state,
        left_out: Vec::new(),
        manifest: None,
    };
    let exclude = archive::exclusions(a.include_credentials);
    let shell_outside =
        (!b.shell.starts_with(&b.metadata) && b.shell.is_dir()).then_some(b.shell.as_path());
    let src = Source {
        metadata: &b.metadata,
        shell_outside,
        top: &b.hash,
        exclude: &exclude,
    };
    let total = pack::total_size(&src);
    let label = out
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let bar = Progress::bytes(&cx.host, a.quiet, total, &label);
    let read = Cell::new(0u64);
    let done = |n: u64| {
        read.set(read.get() + n);
        bar.set(read.get());
    };
    let _guard = interrupt::Guard::install();
    let result = pack::pack(&src, info, &out, a.force, &done, &interrupt::check);
    bar.finish();
    let (packed, _) = result?;
    println!("Creating archive {}... done.", out.display());
    println!("Archive created: {}", out.display());
    if !a.quiet {
        let names: Vec<String> = archive::credential_paths()
            .into_iter()
            .filter(|c| packed.excluded.contains(c))
            .collect();
        if !names.is_empty() {
            crate::output::say(format!(
                "Left out credentials: {} (--include-credentials archives them)",
                names.join(", ")
            ));
        }
        if !packed.outside_links.is_empty() {
            crate::output::say(format!(
                "Left out {} link(s) pointing outside the box: {}",
                packed.outside_links.len(),
                packed
                    .outside_links
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !packed.special.is_empty() {
            crate::output::say(format!(
                "Left out {} FIFO(s), socket(s) or device(s): {}",
                packed.special.len(),
                packed
                    .special
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(out)
}

/// Every box: default-mode ones, then workset members.
fn all_boxes(cx: &Context) -> Result<Vec<BoxIdentity>> {
    let reg = Registry::load(&cx.paths.names_file())?;
    let mut out = Vec::new();
    for (name, path) in &reg.projects {
        if let Some(n) = BoxName::from_registry(name) {
            out.push(resolve::registered(&cx.paths, n, path.clone())?);
        }
    }
    for (ws_name, root) in crate::workset::registered(&cx.paths)? {
        if let Ok(ws) = crate::workset::Workset::load(&ws_name, &root) {
            out.extend(ws.identities().into_iter().filter(|b| b.metadata.is_dir()));
        }
    }
    Ok(out)
}

fn label(b: &BoxIdentity) -> String {
    match &b.workset {
        Some((ws, _)) => format!("{ws}/{}", b.display_name()),
        None => b.workspace.display().to_string(),
    }
}

fn archive_all(cx: &Context, a: &ArchiveArgs) -> Result<Exit> {
    let boxes: Vec<BoxIdentity> = all_boxes(cx)?
        .into_iter()
        .filter(|b| b.metadata.is_dir())
        .collect();
    if boxes.is_empty() {
        println!("No project session data found.");
        return Ok(Exit::Success);
    }
    println!("Found {} project(s) to archive:", boxes.len());
    for b in &boxes {
        println!("  {}", label(b));
    }
    println!();
    let mut failed = 0;
    for b in &boxes {
        if let Err(e) = archive_one(cx, b, None, a) {
            // Ctrl-C stops them all, not just this one.
            interrupt::check()?;
            failed += 1;
            crate::output::say(format!("  {}: failed: {e:#}", label(b)));
        }
    }
    let archived = boxes.len() - failed;
    println!();
    println!("Archived {archived} project(s).");
    if failed > 0 {
        return Err(UserError::new(format!(
            "{failed} of {} project(s) could not be archived",
            boxes.len()
        ))
        .into());
    }
    Ok(Exit::Success)
}

/// Where an extract goes.
#[allow(clippy::large_enum_variant)]
enum Target {
    /// An existing box: its data is replaced.
    Existing(BoxIdentity),
    /// A directory (maybe not there yet) that becomes a new box.
    New(PathBuf),
}

fn extract_target(cx: &Context, path: Option<&str>) -> Result<Target> {
    use crate::boxes::address::{self, AddressError};
    match address::resolve(&cx.paths, &cx.host.cwd, path) {
        Ok(Resolution::Found(b)) => Ok(Target::Existing(b)),
        Ok(Resolution::Unregistered(dir)) => Ok(Target::New(dir)),
        Err(AddressError::Box(BoxError::PathMissing(_))) => Ok(Target::New(
            crate::boxes::create::target_dir(&cx.host.cwd, path)?,
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn extract(cx: &Context, a: &ExtractArgs) -> Result<Exit> {
    if a.all {
        return extract_all(cx, a);
    }
    let Some(file) = a.file.as_deref() else {
        return Err(UserError::new("specify an archive file, or use --all")
            .hint("kanibako box extract FILE [PATH]")
            .into());
    };
    extract_one(
        cx,
        &cx.host.cwd.join(file),
        a.path.as_deref(),
        a.name.as_deref(),
        a.force,
        a.quiet,
    )
}

fn confirm(cx: &Context, question: &str) -> Result<bool> {
    Ok(prompt::confirm_yes(&cx.host, question, "--force")?)
}

fn extract_one(
    cx: &Context,
    file: &Path,
    path: Option<&str>,
    name: Option<&str>,
    force: bool,
    quiet: bool,
) -> Result<Exit> {
    let meta = std::fs::metadata(file).ok();
    if !meta.as_ref().is_some_and(|m| m.is_file()) {
        return Err(UserError::new(format!("Archive file not found: {}", file.display())).into());
    }
    let target = extract_target(cx, path)?;
    let explicit = name.map(BoxName::parse).transpose()?;
    let (parent, target_dir, target_hash) = match &target {
        Target::Existing(b) => {
            if let Some(n) = &explicit
                && b.name.as_ref() != Some(n)
            {
                return Err(UserError::new(format!(
                    "{} is already the box '{}'; --name names a new box only",
                    b.workspace.display(),
                    b.display_name()
                ))
                .into());
            }
            if let Some(why) = active(cx, b) {
                return Err(UserError::new(format!(
                    "box '{}' is active ({why}); its data cannot be replaced while it runs",
                    b.display_name()
                ))
                .hint("stop the box first (`kanibako stop`)")
                .into());
            }
            if !force
                && !confirm(
                    cx,
                    &format!(
                        "Replace all data of box '{}' ({}) with the archive's?",
                        b.display_name(),
                        b.metadata.display()
                    ),
                )?
            {
                println!("Aborted.");
                return Ok(Exit::Declined);
            }
            (
                b.metadata.parent().unwrap_or(Path::new("/")).to_owned(),
                b.workspace.clone(),
                b.hash.clone(),
            )
        }
        Target::New(dir) => {
            if crate::boxes::create::is_home(&cx.paths, dir) {
                return Err(BoxError::HomeRefused.into());
            }
            (
                cx.paths.boxes.clone(),
                dir.clone(),
                crate::boxes::project_hash(dir),
            )
        }
    };
    let _guard = interrupt::Guard::install();
    let staging = Staging::create(&cx.paths, &parent)?;
    let size = meta.map_or(0, |m| m.len());
    let label = file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let bar = Progress::bytes(&cx.host, quiet, size, &label);
    let staged = staging.unpack(file, &interrupt::check, &|n| bar.set(n));
    bar.finish();
    let staged = staged?;
    if !staged.verified && !quiet {
        crate::output::say(
            "Note: the archive has no manifest (the Python tool writes none); its files were checked one by one, not against a list.",
        );
    }
    let info = &staged.info;
    let archived_base = Path::new(&info.project_path).file_name();
    let matches = staged.unpacked.top.as_deref() == Some(std::ffi::OsStr::new(&target_hash))
        || (archived_base.is_some() && archived_base == target_dir.file_name());
    if !matches && !force {
        println!("Warning: Project path mismatch");
        println!();
        println!("Archive from: {}", info.project_path);
        println!("Restoring to: {}", target_dir.display());
        println!();
        if !confirm(cx, "Continue anyway?")? {
            println!("Aborted.");
            return Ok(Exit::Declined);
        }
    }
    if let Some(g) = &info.git
        && !force
    {
        if !git::is_repo(&target_dir) {
            println!(
                "Warning: Archive came from a git repository, but current workspace is not a git repo."
            );
            println!();
            println!("  Branch: {}", g.branch);
            println!("  Commit: {}", g.commit);
            println!();
            if !confirm(cx, "Continue anyway?")? {
                println!("Aborted.");
                return Ok(Exit::Declined);
            }
        } else {
            let exec = cx.exec.as_ref();
            let head = git::head(exec, &target_dir)
                .ok()
                .flatten()
                .unwrap_or_default();
            if head != g.commit {
                let branch = git::branch(exec, &target_dir)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "unknown".into());
                println!("Warning: Git state mismatch");
                println!();
                println!("Archive from:");
                println!("  Branch: {}", g.branch);
                println!("  Commit: {}", g.commit);
                println!();
                println!("Current workspace:");
                println!("  Branch: {branch}");
                println!("  Commit: {head}");
                println!();
                if !confirm(cx, "Continue anyway?")? {
                    println!("Aborted.");
                    return Ok(Exit::Declined);
                }
            }
        }
    }
    interrupt::check()?;
    match target {
        Target::Existing(b) => {
            if let Some(old) = staging.commit_into(&cx.paths, &b)? {
                crate::output::warn(format!(
                    "the box's old data could not all be removed; it is at {} (files of the container's sub-uids: `podman unshare rm -rf` removes them)",
                    old.display()
                ));
            }
        }
        Target::New(dir) => {
            let b = staging.commit_new(&cx.paths, &dir, explicit)?;
            if let Some(n) = &b.name {
                crate::output::say(format!("Project name: {n}"));
            }
        }
    }
    println!("Session data restored to {}", target_dir.display());
    Ok(Exit::Success)
}

fn extract_all(cx: &Context, a: &ExtractArgs) -> Result<Exit> {
    let dir = &cx.host.cwd;
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with("kanibako-") && n.ends_with(".txz") && p.is_file()
        })
        .collect();
    archives.sort();
    if archives.is_empty() {
        println!("No kanibako-*.txz archives found in {}", dir.display());
        return Ok(Exit::Success);
    }
    let mut plan = Vec::new();
    for f in &archives {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match archive::extract::peek_info(f) {
            Ok(info) if !info.project_path.is_empty() => {
                plan.push((f.clone(), name, info.project_path))
            }
            Ok(_) => crate::output::say(format!("  Skipping {name} (no project path in metadata)")),
            Err(_) => crate::output::say(format!("  Skipping {name} (invalid archive)")),
        }
    }
    if plan.is_empty() {
        println!("No valid archives found to restore.");
        return Ok(Exit::Success);
    }
    println!("Found {} archive(s) to restore:", plan.len());
    for (_, name, path) in &plan {
        println!("  {name} → {path}");
    }
    println!();
    if !a.force
        && !confirm(
            cx,
            "Restore all listed archives? Existing session data will be overwritten.",
        )?
    {
        println!("Aborted.");
        return Ok(Exit::Declined);
    }
    let mut failed = 0;
    for (file, name, path) in &plan {
        println!();
        println!("--- {name} → {path}");
        if let Err(e) = extract_one(cx, file, Some(path), None, true, a.quiet) {
            interrupt::check()?;
            failed += 1;
            crate::output::say(format!("  failed: {e:#}"));
        }
    }
    println!();
    println!("Restored {} archive(s).", plan.len() - failed);
    if failed > 0 {
        return Err(UserError::new(format!(
            "{failed} of {} archive(s) could not be restored",
            plan.len()
        ))
        .into());
    }
    Ok(Exit::Success)
}
