//! `create`, `list`, `ps`, `rm` and `box info`.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

use crate::boxes::create::{self, CreateRequest};
use crate::boxes::error::BoxError;
use crate::boxes::listing::{self, Activity, Row, Status};
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, Resolution};
use crate::boxes::{BoxIdentity, BoxName};
use crate::cli::{CreateArgs, InfoArgs, ListArgs, PsArgs, RmArgs};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::output;
use crate::prompt;
use crate::runtime::containers::ContainerSummary;
use crate::runtime::labels;

pub fn create(cx: &Context, a: CreateArgs) -> Result<Exit> {
    let req = CreateRequest {
        path: a.path,
        name: a.name,
        standalone: a.standalone,
        image: a.image,
        no_vault: a.no_vault,
        distinct_auth: a.distinct_auth,
        allow_home: a.allow_home,
    };
    let (b, fresh) = create::create(&cx.paths, &cx.host.cwd, &req)?;
    if fresh {
        create::announce(&b);
    } else if let Some(n) = &b.name {
        output::say(format_args!(
            "Project name: {n} (re-registered; its earlier home was kept)"
        ));
    }
    println!(
        "Created {} project in {}",
        b.mode.as_str(),
        b.workspace.display()
    );
    Ok(Exit::Success)
}

/// Ask the engine what runs. Without an engine every box's activity is `unknown`, with a
/// note.
fn activity(cx: &Context) -> Option<Activity> {
    match cx.runtime().and_then(|rt| rt.containers()) {
        Ok(list) => Some(Activity::new(list, &cx.paths.data_id())),
        Err(e) => {
            output::note(format_args!("box activity unknown: {e}"));
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Filter {
    Default,
    All,
    Active,
    Orphans,
}

impl Filter {
    fn keeps(self, r: &Row) -> bool {
        match self {
            Filter::Default => !r.status.is_orphan(),
            Filter::All => true,
            Filter::Active => r.status == Status::Active,
            Filter::Orphans => r.status.is_orphan(),
        }
    }
}

/// An active box's helpers and hub, beside its row (`ps`, `list`).
#[derive(Clone, Debug, Default, serde::Serialize)]
struct Team {
    /// Its running helpers' numbers.
    helpers: Vec<u32>,
    /// `running` (with `hub_pid`), `down` (with `hub_down`: why it gave up) or `none`.
    hub: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hub_pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hub_down: Option<String>,
}

impl Team {
    fn of(cx: &Context, hash: &str, helpers: Vec<u32>) -> Self {
        let (hub, hub_pid, hub_down) = match crate::hub::status_of(&cx.host, hash) {
            crate::hub::HubStatus::Running { pid, .. } => ("running", Some(pid), None),
            crate::hub::HubStatus::Down(why) => ("down", None, Some(why)),
            crate::hub::HubStatus::NotRunning => ("none", None, None),
        };
        Self {
            helpers,
            hub,
            hub_pid,
            hub_down,
        }
    }

    fn text(&self) -> String {
        let hub = match (self.hub_pid, &self.hub_down) {
            (Some(pid), _) => format!("hub running (pid {pid})"),
            (_, Some(why)) => format!("hub down ({why})"),
            _ => "no hub".into(),
        };
        let helpers: Vec<String> = self.helpers.iter().map(u32::to_string).collect();
        match helpers.is_empty() {
            true => hub,
            false => format!("helpers {}; {hub}", helpers.join(", ")),
        }
    }
}

/// The team of each active row (from the one engine listing, and the hubs' own files).
fn teams(cx: &Context, rows: &[Row], activity: Option<&Activity>) -> Vec<Option<Team>> {
    rows.iter()
        .map(|r| {
            let (hash, helpers) = activity?.helpers_of(r.container.as_deref()?)?;
            let t = Team::of(cx, &hash, helpers);
            (t.hub != "none" || !t.helpers.is_empty()).then_some(t)
        })
        .collect()
}

fn print_rows(
    rows: &[Row],
    teams: &[Option<Team>],
    quiet: bool,
    json: bool,
    empty: &str,
) -> Result<()> {
    if json {
        // The rows as they are, with a box's `team` last where it has one.
        #[derive(serde::Serialize)]
        struct WithTeam<'a, R> {
            #[serde(flatten)]
            row: R,
            #[serde(skip_serializing_if = "Option::is_none")]
            team: Option<&'a Team>,
        }
        let out: Vec<_> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| WithTeam {
                row: r.json(),
                team: teams.get(i).and_then(Option::as_ref),
            })
            .collect();
        crate::json_output::print_list("boxes", &out);
    } else {
        // One write for the whole table: a thousand rows are a thousand writes to a
        // pipe otherwise (stdout flushes each line).
        print!("{}", table(rows, teams, quiet, empty));
    }
    Ok(())
}

fn table(rows: &[Row], teams: &[Option<Team>], quiet: bool, empty: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if quiet {
        for r in rows {
            let _ = writeln!(s, "{}", r.name);
        }
    } else if rows.is_empty() {
        let _ = writeln!(s, "{empty}");
    } else {
        let path = |r: &Row| match &r.path {
            Some(p) => p.display().to_string(),
            None if r.status == Status::Unknown => "(no breadcrumb)".into(),
            None => format!("({})", r.container.as_deref().unwrap_or("-")),
        };
        let team = |i: usize| teams.get(i)?.as_ref().map(Team::text);
        type Numbered<'a> = Vec<(usize, &'a Row)>;
        let (plain, members): (Numbered<'_>, Numbered<'_>) = rows
            .iter()
            .enumerate()
            .partition(|(_, r)| r.workset.is_none());
        if !plain.is_empty() {
            let _ = writeln!(s, "{:<18} {:<10} PATH", "NAME", "STATUS");
        }
        for (i, r) in plain {
            let _ = writeln!(s, "{:<18} {:<10} {}", r.name, r.status_text(), path(r));
            if let Some(t) = team(i) {
                let _ = writeln!(s, "{:<18} {:<10} {t}", "", "");
            }
        }
        let mut current: Option<&str> = None;
        for (i, r) in members {
            let (ws, root) = r.workset.as_ref().expect("a member row");
            if current != Some(ws.as_str()) {
                current = Some(ws);
                let _ = writeln!(s);
                let _ = writeln!(s, "Workset: {ws} ({})", root.display());
                let _ = writeln!(s, "  {:<18} {:<10} SOURCE", "NAME", "STATUS");
            }
            let _ = writeln!(s, "  {:<18} {:<10} {}", r.name, r.status_text(), path(r));
            if let Some(t) = team(i) {
                let _ = writeln!(s, "  {:<18} {:<10} {t}", "", "");
            }
        }
    }
    s
}

fn show(cx: &Context, filter: Filter, quiet: bool, json: bool) -> Result<Exit> {
    let activity = activity(cx);
    let rows: Vec<Row> = listing::rows(&cx.paths, activity.as_ref())?
        .into_iter()
        .filter(|r| filter.keeps(r))
        .collect();
    let empty = match filter {
        Filter::Active if activity.is_none() => "Box activity unknown: no engine could be asked.",
        Filter::Active => "No active boxes.",
        Filter::Orphans => "No orphaned projects found.",
        _ => "No known projects.",
    };
    let teams = teams(cx, &rows, activity.as_ref());
    print_rows(&rows, &teams, quiet, json, empty)?;
    Ok(Exit::Success)
}

pub fn list(cx: &Context, a: &ListArgs, orphans: bool) -> Result<Exit> {
    let filter = if orphans {
        Filter::Orphans
    } else if a.all {
        Filter::All
    } else if a.active {
        Filter::Active
    } else {
        Filter::Default
    };
    show(cx, filter, a.quiet, a.json)
}

pub fn ps(cx: &Context, a: &PsArgs) -> Result<Exit> {
    let filter = if a.all { Filter::All } else { Filter::Active };
    show(cx, filter, a.quiet, a.json)
}

/// What an `rm` target named.
enum RmTarget {
    Registered(BoxIdentity),
    /// A `boxes/<name>` directory no name points to any more.
    Leftover {
        name: String,
        metadata: std::path::PathBuf,
    },
}

fn rm_target(cx: &Context, target: &str) -> Result<RmTarget> {
    let registry = Registry::load(&cx.paths.names_file())?;
    let by_name = !target.contains('/') && !cx.host.cwd.join(target).exists();
    if by_name {
        if let Some(path) = registry.projects.get(target) {
            return registered_target(cx, target, path);
        }
        if registry.worksets.contains_key(target) {
            return Err(BoxError::IsWorkset(target.into()).into());
        }
        let metadata = cx.paths.boxes.join(target);
        if BoxName::from_registry(target).is_some() && metadata.is_dir() {
            return Ok(RmTarget::Leftover {
                name: target.into(),
                metadata,
            });
        }
        return Err(BoxError::NotRegistered(target.into()).into());
    }
    // A path: only the box registered for exactly that directory (not an enclosing one).
    let dir = cx
        .host
        .cwd
        .join(target)
        .canonicalize()
        .map_err(|_| BoxError::NotRegistered(target.into()))?;
    match registry.project_for_path(&dir) {
        Some(name) => registered_target(cx, name, &dir),
        None => Err(BoxError::NotRegistered(target.into()).into()),
    }
}

fn registered_target(cx: &Context, name: &str, path: &Path) -> Result<RmTarget> {
    let name = BoxName::from_registry(name).ok_or_else(|| BoxError::NotRegistered(name.into()))?;
    Ok(RmTarget::Registered(resolve::registered(
        &cx.paths,
        name,
        path.to_owned(),
    )?))
}

/// Delete a box's metadata. Files a rootless container created belong to sub-uids the
/// user cannot remove directly; podman's user namespace can.
fn delete_tree(cx: &Context, dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let rt = cx.runtime()?;
            if !rt.engine.can_unshare() {
                return Err(e).with_context(|| format!("deleting {}", dir.display()));
            }
            rt.unshare_remove(dir)?;
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("deleting {}", dir.display())),
    }
}

fn confirm_purge(cx: &Context, what: &str, force: bool) -> Result<bool> {
    if force {
        return Ok(true);
    }
    Ok(prompt::confirm_yes(
        &cx.host,
        &format!("Delete all data of {what}? This cannot be undone."),
        "--force",
    )?)
}

pub fn rm(cx: &Context, a: &RmArgs) -> Result<Exit> {
    match rm_target(cx, &a.target)? {
        RmTarget::Leftover { name, metadata } => {
            if !a.purge {
                return Err(UserError::new(format!(
                    "'{name}' is not registered; its leftover data is at {}",
                    metadata.display()
                ))
                .hint(format!("`kanibako rm {name} --purge` deletes it"))
                .into());
            }
            if !confirm_purge(cx, &format!("'{name}' ({})", metadata.display()), a.force)? {
                println!("Aborted.");
                return Ok(Exit::Declined);
            }
            delete_tree(cx, &metadata)?;
            println!("Deleted {}", metadata.display());
            Ok(Exit::Success)
        }
        RmTarget::Registered(b) => {
            let name = b.display_name().to_owned();
            println!("Removing project: {name} ({})", b.workspace.display());
            if a.purge {
                if !a.force {
                    refuse_if_active(cx, &b)?;
                }
                if !confirm_purge(
                    cx,
                    &format!("box '{name}' ({})", b.metadata.display()),
                    a.force,
                )? {
                    println!("Aborted.");
                    return Ok(Exit::Declined);
                }
            }
            Registry::update(&cx.paths, |reg| {
                let removed = reg.projects.remove(&name).is_some();
                Ok::<_, anyhow::Error>(((), removed))
            })?;
            println!("Removed '{name}' from names.yaml");
            if a.purge {
                delete_tree(cx, &b.metadata)?;
                if b.shell.exists() && !b.shell.starts_with(&b.metadata) {
                    delete_tree(cx, &b.shell)?;
                }
                println!("Deleted {}", b.metadata.display());
            } else if b.metadata.exists() {
                println!(
                    "Metadata kept at {}; `kanibako rm {name} --purge` deletes it.",
                    b.metadata.display()
                );
            }
            Ok(Exit::Success)
        }
    }
}

fn refuse_if_active(cx: &Context, b: &BoxIdentity) -> Result<()> {
    let running = if b.session_active() {
        Some("a kanibako session holds its lock".to_owned())
    } else {
        cx.runtime()
            .ok()
            .and_then(|rt| rt.containers().ok())
            .and_then(|list| Activity::new(list, &cx.paths.data_id()).of(b))
            .map(|a| format!("container {} is running", a.container))
    };
    match running {
        Some(why) => Err(UserError::new(format!(
            "box '{}' is active ({why}); purging would pull its home out from under it",
            b.display_name()
        ))
        .hint("stop the box first, or pass --force")
        .into()),
        None => Ok(()),
    }
}

/// The box's container, and its helpers and hub, from one engine listing.
fn container_state(cx: &Context, b: &BoxIdentity) -> (String, Option<String>) {
    let list = match cx.runtime().and_then(|rt| rt.containers()) {
        Ok(l) => l,
        Err(_) => return ("unknown (no container runtime)".into(), None),
    };
    (director_state(cx, b, &list), Some(helpers_state(b, &list)))
}

/// Each helper of `b` with its state and model, as the labels say.
fn helpers_state(b: &BoxIdentity, list: &[ContainerSummary]) -> String {
    use crate::hub::labels as hl;
    let mut helpers: Vec<(u32, String)> = list
        .iter()
        .filter(|c| listing::is_helper(c) && c.labels.get(labels::HASH) == Some(&b.hash))
        .filter_map(|c| {
            let n: u32 = c.labels.get(hl::HELPER)?.parse().ok()?;
            let state = if c.running { "running" } else { "stopped" };
            Some(match c.labels.get(hl::MODEL) {
                Some(m) => (n, format!("{n} ({state}, {m})")),
                None => (n, format!("{n} ({state})")),
            })
        })
        .collect();
    helpers.sort();
    if helpers.is_empty() {
        return "none".into();
    }
    helpers
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

fn director_state(cx: &Context, b: &BoxIdentity, list: &[ContainerSummary]) -> String {
    if let Some(active) = Activity::new(list.to_vec(), &cx.paths.data_id()).of(b) {
        let image = list
            .iter()
            .find(|c| c.name == active.container)
            .map_or("", |c| c.image.as_str());
        let legacy = if active.legacy { ", legacy" } else { "" };
        return format!("running ({}: {image}{legacy})", active.container);
    }
    let own = b.container_name();
    if list
        .iter()
        .any(|c| c.name == own || c.name == b.legacy_container_name())
    {
        return format!("stopped ({own})");
    }
    format!("not running ({own})")
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn credentials_state(b: &BoxIdentity) -> String {
    let file = b.shell.join(".claude/.credentials.json");
    let Ok(meta) = fs::symlink_metadata(&file) else {
        return "n/a (no credentials file)".into();
    };
    if meta.file_type().is_symlink() {
        return "n/a (a symbolic link; kanibako ignores it)".into();
    }
    let Ok(modified) = meta.modified() else {
        return "n/a".into();
    };
    let at = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ago = SystemTime::now()
        .duration_since(modified)
        .map_or(0, |d| d.as_secs());
    format!("{} ago ({})", age(ago), crate::clock::utc(at))
}

/// A box's settings levels as its launch reads them: with its crab's (`box.crab`, else
/// the agent installed), so `box info` shows the policy a launch would use.
fn info_levels(cx: &Context, b: &BoxIdentity) -> Result<crate::settings::stack::Stack> {
    let levels = cx.stack(Some(b), None)?;
    let crab = match levels.crab_id()? {
        Some(id) => Some(id),
        None => crate::agents::detect_any(&cx.host).map(|(a, _)| a.id().to_owned()),
    };
    match crab {
        Some(id) => cx.add_crab(levels, &id),
        None => Ok(levels),
    }
}

pub fn info(cx: &Context, a: &InfoArgs) -> Result<Exit> {
    let b = match crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, a.target.as_deref())? {
        Resolution::Found(b) => b,
        Resolution::Unregistered(p) => {
            return Err(
                UserError::new(format!("No project data found for: {}", p.display()))
                    .hint("this directory has not been used with kanibako yet")
                    .hint("`kanibako create` makes it a box")
                    .into(),
            );
        }
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", b.display_name().to_owned()),
        ("Mode", b.mode.as_str().to_owned()),
        ("Project", b.workspace.display().to_string()),
        ("Hash", b.short_hash().to_owned()),
        ("Metadata", b.metadata.display().to_string()),
        ("Shell", b.shell.display().to_string()),
    ];
    match &b.vault {
        Some(v) => {
            fields.push(("Vault RO", v.ro.display().to_string()));
            fields.push(("Vault RW", v.rw.display().to_string()));
        }
        None => fields.push(("Vault", "disabled".into())),
    }
    // Where the launch mounts shared caches from (a member's crab caches: its workset's).
    if let Some(d) = crate::launch::mounts::shared_dirs(cx, &cx.stack(Some(&b), None)?, &b)? {
        fields.push(("Shared", d.global.display().to_string()));
        fields.push(("Local", d.local.display().to_string()));
    }
    // The image a launch would use today: the same settings stack the launch reads.
    fields.push(("Image", cx.stack(Some(&b), None)?.image()?));
    // The hardening and network policy in force, each part with where it comes from.
    fields.extend(crate::hardening::Policy::resolve(&info_levels(cx, &b)?)?.info_lines());
    fields.push((
        "Auth",
        if b.group_auth {
            "shared with host"
        } else {
            "distinct"
        }
        .into(),
    ));
    fields.push((
        "Lock",
        if b.session_active() {
            "held (a session is running)"
        } else {
            "none"
        }
        .into(),
    ));
    let (container, helpers) = container_state(cx, &b);
    fields.push(("Container", container));
    fields.push(("Hub", Team::of(cx, &b.hash, Vec::new()).text()));
    if let Some(h) = helpers {
        fields.push(("Helpers", h));
    }
    fields.push(("Credentials", credentials_state(&b)));
    if a.json {
        println!("{}", crate::json_output::fields(&fields));
        return Ok(Exit::Success);
    }
    for (label, value) in fields {
        println!("  {:<14}{value}", format!("{label}:"));
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(3 * 86_400), "3d");
    }
}
