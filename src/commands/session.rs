//! `start` and `shell`: turn the parsed switches into a [`Launch`].

use anyhow::Result;

use crate::agents::SessionFlags;
use crate::boxes::listing::of_data_dir;
use crate::boxes::registry::Registry;
use crate::boxes::resolve::{self, registered};
use crate::boxes::{BoxIdentity, BoxName};
use crate::cli::{LaunchArgs, ShellArgs, StartArgs, StopArgs};
use crate::context::Context;
use crate::error::Exit;
use crate::launch::{self, Launch, Session};
use crate::launch::{helpers, persistent};
use crate::output;
use crate::prompt;
use crate::runtime::containers::ContainerSummary;
use crate::runtime::{Runtime, labels};

/// The parts of a [`Launch`] every launch command shares.
fn launch(
    project: Option<String>,
    a: LaunchArgs,
    persistent: Option<bool>,
    session: Session,
) -> Launch {
    Launch {
        project,
        env: a.env,
        rig: a.rig,
        entrypoint: a.entrypoint,
        dry_run: a.dry_run,
        persistent,
        share_images: match (a.share_images, a.no_share_images) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        helpers: a.no_helpers.then_some(false),
        browser: a.browser,
        learn: false,
        session,
    }
}

/// A first word that implied `start` (`kanibako WORD`) is taken only for an existing
/// directory or a registered box; anything else (`kanibako lsit`) is a usage error with
/// the closest command, never a launch in a new directory.
fn implied_word_is_a_project(cx: &Context, word: &str) -> bool {
    cx.host.cwd.join(word).is_dir()
        || matches!(
            crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, Some(word)),
            Ok(resolve::Resolution::Found(_))
        )
}

pub fn start(cx: &Context, a: StartArgs) -> Result<Exit> {
    if let Some(word) = a.project.as_deref().filter(|_| a.implied)
        && !implied_word_is_a_project(cx, word)
    {
        let mut lines = vec![format!(
            "Error: '{word}' is not a command, a registered box or a directory here"
        )];
        lines.push(match crate::cli::closest_command(word) {
            Some(c) => format!("hint: did you mean `kanibako {c}`?"),
            None => format!(
                "hint: `kanibako --help` lists the commands; `kanibako create {word}` makes a new box"
            ),
        });
        output::error(&lines);
        return Ok(Exit::Code(2));
    }
    let persistent = match (a.persistent, a.launch.ephemeral) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    launch::run(
        cx,
        launch(
            a.project,
            a.launch,
            persistent,
            Session::Start {
                flags: SessionFlags {
                    secure: a.secure,
                    resume: a.resume,
                    new_session: a.new,
                    new_box: false,
                },
                cont: a.cont,
                autonomous: a.autonomous,
                model: a.model,
                args: a.args,
                crab: a.crab,
                auto_auth: !a.no_auto_auth,
            },
        ),
    )
}

pub fn shell(cx: &Context, a: ShellArgs) -> Result<Exit> {
    let session = Session::Shell { command: a.command };
    launch::run(cx, launch(a.project, a.launch, Some(a.persistent), session))
}

/// The containers that belong to `b` of the data directory `data_id`: labelled with its
/// hash (and, when they carry one, with that data directory's id), or (started by the
/// Python tool) unlabelled with exactly its container name.
fn containers_of<'a>(
    list: &'a [ContainerSummary],
    b: &BoxIdentity,
    data_id: &str,
) -> Vec<&'a ContainerSummary> {
    let legacy = b.legacy_container_name();
    list.iter()
        .filter(|c| of_data_dir(c, data_id))
        .filter(|c| match c.labels.get(labels::HASH) {
            // a box's helpers are its hub's to end
            Some(h) => *h == b.hash && !helpers::is_helper(&c.labels),
            None => !c.labels.contains_key(labels::BOX) && c.name == legacy,
        })
        .collect()
}

fn rootfs(c: &ContainerSummary) -> Option<&str> {
    c.labels.get(labels::ROOTFS).map(String::as_str)
}

fn stop_one(cx: &Context, rt: &Runtime, c: &ContainerSummary) -> bool {
    // With --init the agent gets SIGTERM at once; 10 s is only the backstop.
    let stopped = rt.stop_container(&c.name, 10);
    persistent::remove(cx, rt, &c.name, rootfs(c));
    stopped
}

pub fn stop(cx: &Context, a: &StopArgs) -> Result<Exit> {
    let rt = cx.runtime()?;
    let list = rt.containers()?;
    if a.all {
        return stop_all(cx, &rt, &list, a.force);
    }
    let b =
        crate::boxes::address::resolve(&cx.paths, &cx.host.cwd, a.project.as_deref())?.require()?;
    let mine = containers_of(&list, &b, &cx.paths.data_id());
    let _ = std::fs::remove_file(b.container_marker());
    // The hub first: it removes the helpers, then the director goes.
    let seen = list
        .iter()
        .any(|c| c.labels.get(labels::HASH) == Some(&b.hash) && helpers::is_helper(&c.labels));
    helpers::report(
        &b.container_name(),
        helpers::stop_box(cx, &rt, &b.hash, seen),
    );
    if mine.is_empty() {
        println!(
            "No running container found for this project ({})",
            b.container_name()
        );
        return Ok(Exit::Success);
    }
    for c in &mine {
        if c.running {
            if stop_one(cx, &rt, c) {
                println!("Stopped {}", c.name);
            } else {
                output::say(format_args!("Failed to stop {}", c.name));
            }
        } else if persistent::remove(cx, &rt, &c.name, rootfs(c)) {
            println!("Removed stopped container: {}", c.name);
        }
    }
    crate::launch::auth::write_back(cx, &b);
    Ok(Exit::Success)
}

fn stop_all(cx: &Context, rt: &Runtime, list: &[ContainerSummary], force: bool) -> Result<Exit> {
    // Ours by this data directory's label (never another user's or another data
    // directory's on a shared engine), a box registered here by hash (started before
    // that label existed), and the Python tool's by the exact name of a registered box:
    // never a container that merely has `kanibako-` somewhere in its name.
    let registry = Registry::load(&cx.paths.names_file())?;
    let boxes: Vec<BoxIdentity> = registry
        .projects
        .iter()
        .filter_map(|(n, p)| {
            let name = BoxName::from_registry(n)?;
            registered(&cx.paths, name, p.clone()).ok()
        })
        .collect();
    let data_id = cx.paths.data_id();
    let running: Vec<&ContainerSummary> = list
        .iter()
        .filter(|c| c.running && !helpers::is_helper(&c.labels))
        .filter(|c| {
            c.labels.get(labels::DATA) == Some(&data_id)
                || boxes
                    .iter()
                    .any(|b| containers_of(std::slice::from_ref(*c), b, &data_id).len() == 1)
        })
        .collect();
    if running.is_empty() {
        println!("No running kanibako containers found.");
        return Ok(Exit::Success);
    }
    if !force {
        println!("This will stop {} running container(s):", running.len());
        for c in &running {
            println!("  {}", c.name);
        }
        if !prompt::confirm_yn(&cx.host, "Continue?", "--force")? {
            println!("Aborted.");
            return Ok(Exit::Declined);
        }
    }
    // Every hub of this data directory's boxes first (each removes its helpers).
    let hashes: std::collections::BTreeSet<&String> = running
        .iter()
        .filter_map(|c| c.labels.get(labels::HASH))
        .chain(boxes.iter().map(|b| &b.hash))
        .collect();
    for hash in hashes {
        let seen = list.iter().any(|c| {
            c.labels.get(labels::HASH) == Some(hash)
                && of_data_dir(c, &data_id)
                && helpers::is_helper(&c.labels)
        });
        let name = running
            .iter()
            .find(|c| c.labels.get(labels::HASH) == Some(hash))
            .map_or(&hash[..hash.len().min(16)], |c| c.name.as_str());
        helpers::report(name, helpers::stop_box(cx, rt, hash, seen));
    }
    let mut stopped = 0;
    for c in &running {
        if stop_one(cx, rt, c) {
            println!("Stopped {}", c.name);
            stopped += 1;
        } else {
            output::say(format_args!("Failed to stop {}", c.name));
        }
    }
    for b in &boxes {
        if !containers_of(list, b, &data_id).is_empty() {
            crate::launch::auth::write_back(cx, b);
        }
    }
    println!("\nStopped {stopped} container(s).");
    Ok(Exit::Success)
}
