//! `box vault snapshot|list|restore|prune`: the questions and messages around
//! [`crate::vault`].

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::target::active;
use crate::boxes::BoxIdentity;
use crate::cli::vault::{
    VaultArgs, VaultCommand, VaultListArgs, VaultPruneArgs, VaultRestoreArgs, VaultTarget,
};
use crate::context::Context;
use crate::error::{Exit, UserError};
use crate::fstree::Dir;
use crate::fsutil::{self, FileLock};
use crate::vault::{self, Location, VaultError};
use crate::{interrupt, prompt};

pub fn dispatch(cx: &Context, a: VaultArgs) -> Result<Exit> {
    match a.command {
        None => list(cx, &VaultListArgs::default()),
        Some(VaultCommand::Snapshot(t)) => snapshot(cx, &t),
        Some(VaultCommand::List(l)) => list(cx, &l),
        Some(VaultCommand::Restore(r)) => restore(cx, &r),
        Some(VaultCommand::Prune(p)) => prune(cx, &p),
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Opened {
    location: Location,
    vault: Option<Dir>,
    _lock: FileLock,
}

fn open(cx: &Context, t: &VaultTarget) -> Result<(BoxIdentity, Opened)> {
    let b = super::target::the_box(cx, t.project.as_deref())?;
    let location = Location::of(&b)?;
    let lock = fsutil::lock_exclusive(&vault::lock_file(&cx.paths, &b))?;
    let vault = location.open()?;
    Ok((
        b,
        Opened {
            location,
            vault,
            _lock: lock,
        },
    ))
}

fn note_left_out(what: &str, paths: &[std::path::PathBuf]) {
    if paths.is_empty() {
        return;
    }
    let shown: Vec<String> = paths
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    let more = if paths.len() > 5 {
        format!(" and {} more", paths.len() - 5)
    } else {
        String::new()
    };
    crate::output::say(format!("Note: {what}: {}{more}", shown.join(", ")));
}

fn snapshot(cx: &Context, t: &VaultTarget) -> Result<Exit> {
    let (_, o) = open(cx, t)?;
    let Some(v) = &o.vault else {
        crate::output::say("Nothing to snapshot (share-rw is empty or missing).");
        return Ok(Exit::Success);
    };
    let _guard = interrupt::Guard::install();
    let started = Instant::now();
    match vault::snapshot::take(v, now(), &interrupt::check)? {
        None => crate::output::say("Nothing to snapshot (share-rw is empty or missing)."),
        Some(made) => {
            println!("Snapshot created: {}", made.name.file_name());
            crate::output::say(format!(
                "  {}: {} file(s), {} in {:.2} s",
                made.method(),
                made.report.files,
                vault::human_size(made.report.bytes),
                started.elapsed().as_secs_f64()
            ));
            let skipped: Vec<_> = made
                .report
                .left_out
                .iter()
                .map(|(p, _)| p.clone())
                .collect();
            note_left_out(
                "left out (not regular files, directories or links)",
                &skipped,
            );
        }
    }
    Ok(Exit::Success)
}

fn list(cx: &Context, l: &VaultListArgs) -> Result<Exit> {
    let (_, o) = open(cx, &l.target)?;
    let snaps = match &o.vault {
        Some(v) => vault::list(v).map_err(VaultError::io(format!(
            "listing snapshots in {}",
            o.location.vault_dir().display()
        )))?,
        None => Vec::new(),
    };
    if l.json {
        #[derive(serde::Serialize)]
        struct Row {
            name: String,
            when: String,
            size_bytes: u64,
        }
        let rows: Vec<Row> = snaps
            .iter()
            .map(|s| Row {
                name: s.name.file_name(),
                when: s.name.when(),
                size_bytes: s.size,
            })
            .collect();
        crate::json_output::print_list("snapshots", &rows);
        return Ok(Exit::Success);
    }
    if snaps.is_empty() {
        if !l.quiet {
            println!("No snapshots found.");
        }
        return Ok(Exit::Success);
    }
    for s in snaps {
        if l.quiet {
            println!("{}", s.name.file_name());
        } else {
            println!(
                "  {}  {}  {}",
                s.name.file_name(),
                s.name.when(),
                vault::human_size(s.size)
            );
        }
    }
    Ok(Exit::Success)
}

fn refuse_active(cx: &Context, b: &BoxIdentity, doing: &str) -> Result<()> {
    match active(cx, b) {
        Some(why) => Err(UserError::new(format!(
            "box '{}' is active ({why}); {doing} would change files under it while it runs",
            b.display_name()
        ))
        .hint("stop the box first (`kanibako stop`)")
        .into()),
        None => Ok(()),
    }
}

fn restore(cx: &Context, r: &VaultRestoreArgs) -> Result<Exit> {
    let (b, o) = open(cx, &r.target)?;
    let Some(v) = &o.vault else {
        return Err(VaultError::NotFound(r.name.clone()).into());
    };
    // Checked before asking, so a typo is not met with a question.
    vault::restore::find(v, &r.name)?;
    refuse_active(cx, &b, "restoring its vault")?;
    if !r.force
        && !prompt::confirm_yes(
            &cx.host,
            &format!(
                "Replace the contents of {} with snapshot {}? (what is there now is snapshotted first)",
                o.location.rw().display(),
                r.name
            ),
            "--force",
        )?
    {
        println!("Aborted.");
        return Ok(Exit::Declined);
    }
    let _guard = interrupt::Guard::install();
    let done = vault::restore::restore(v, &r.name, now(), &interrupt::check)?;
    if let Some(before) = &done.before {
        crate::output::say(format!(
            "The previous contents are kept as snapshot {}.",
            before.file_name()
        ));
    }
    note_left_out(
        "links pointing outside share-rw were not restored",
        &done.left_out,
    );
    println!("Restored vault share-rw from {}", r.name);
    Ok(Exit::Success)
}

fn prune(cx: &Context, p: &VaultPruneArgs) -> Result<Exit> {
    let (_, o) = open(cx, &p.target)?;
    let names: Vec<_> = match &o.vault {
        Some(v) => match vault::versions(v)? {
            Some(versions) => vault::snapshots(&versions)?
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let doomed = vault::plan_prune(&names, p.keep);
    let Some(v) = o.vault.as_ref().filter(|_| !doomed.is_empty()) else {
        println!("Nothing to prune.");
        return Ok(Exit::Success);
    };
    if !p.force
        && !prompt::confirm_yes(
            &cx.host,
            &format!(
                "Delete {} snapshot(s) of {}, keeping the newest {}?",
                doomed.len(),
                o.location.vault_dir().display(),
                p.keep
            ),
            "--force",
        )?
    {
        println!("Aborted.");
        return Ok(Exit::Declined);
    }
    vault::remove(v, &doomed)?;
    println!("Pruned {} snapshot(s), keeping {}.", doomed.len(), p.keep);
    Ok(Exit::Success)
}
