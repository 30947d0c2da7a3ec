//! Running what was planned: a foreground container (pulled and run again when the rig
//! was not local), joining a running one with `exec`, or — for `--dry-run` — printing
//! the engine commands instead, which change nothing. After a foreground run, what went
//! wrong gets its hint.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::facts::Known;
use super::image::{MountedImage, missing_rig, obtain};
use super::request::{Launch, Session};
use super::{auth, env, plan};
use crate::boxes::BoxIdentity;
use crate::context::Context;
use crate::envfile;
use crate::error::Exit;
use crate::fsutil::FileLock;
use crate::output;
use crate::process::exit_code;
use crate::runtime::Runtime;
use crate::runtime::containers::ExecInput;
use crate::runtime::spec::RunSpec;

/// A run as planned: its spec, the image it runs on, and that image mounted where the
/// run is on a rootfs.
pub struct Planned<'a> {
    pub spec: RunSpec,
    pub image: String,
    /// The file in the workspace that named the rig, if one did ([`obtain`] asks).
    pub image_named_in: Option<std::path::PathBuf>,
    pub mounted: Option<MountedImage<'a>>,
}

fn code(status: std::process::ExitStatus) -> Exit {
    Exit::Code(u8::try_from(exit_code(status)).unwrap_or(1))
}

/// `exec` `command` in the box's running container, with `env` in an env file.
pub fn join(
    cx: &Context,
    rt: &Runtime,
    b: &BoxIdentity,
    env: &BTreeMap<String, String>,
    command: Vec<OsString>,
    dry_run: bool,
) -> Result<Exit> {
    let input = if cx.host.stdin_tty {
        ExecInput::Terminal
    } else {
        ExecInput::Stdin
    };
    let file = if dry_run || env.is_empty() {
        None
    } else {
        Some(envfile::temporary(env).context("writing the env file")?)
    };
    let env_file = match &file {
        Some(f) => Some(f.to_path_buf()),
        None if !env.is_empty() => Some(env::placeholder(env)),
        None => None,
    };
    let name = b.container_name();
    if dry_run {
        println!(
            "{}",
            rt.exec_command(&name, input, env_file.as_deref(), &command)
        );
        env::log(env);
        return Ok(Exit::Success);
    }
    super::helpers::revive(cx, b);
    let status = rt.exec_attached(&name, input, env_file.as_deref(), &command)?;
    drop(file);
    Ok(code(status))
}

/// What `--dry-run` prints: every engine command the launch would issue, in order.
pub fn dry_run(rt: &Runtime, spec: &RunSpec, k: &Known<'_>, leftover: bool) -> Result<Exit> {
    let (image, split) = (k.image.as_str(), k.split());
    if leftover {
        println!("{}", rt.remove_container_invocation(&spec.name));
    }
    let rootfs = PathBuf::from(format!("<{image} mounted>"));
    if split {
        println!("{}", rt.mount_image_command(image));
    }
    println!(
        "{}",
        rt.run_command(
            spec,
            split.then_some(rootfs.as_path()),
            Some(&env::placeholder(&spec.env))
        )
    );
    if k.persistent() {
        let attach = plan::attach_command();
        println!(
            "{}",
            rt.exec_command(&spec.name, ExecInput::Terminal, None, &attach)
        );
    } else if split {
        println!("{}", rt.unmount_image_command(image));
    }
    env::log(&spec.env);
    Ok(Exit::Success)
}

/// Run in the foreground, holding the box's lock throughout; afterwards the box's
/// newer login goes back to the host and the claim is released. `asked`: whether the
/// engine was asked about the box's container beforehand.
pub fn foreground(
    cx: &Context,
    rt: &Runtime,
    l: &Launch,
    b: &BoxIdentity,
    run: Planned<'_>,
    lock: FileLock,
    asked: bool,
) -> Result<Exit> {
    let Planned {
        spec,
        image,
        image_named_in,
        mounted,
    } = run;
    let split = mounted.is_some();
    let env_file = envfile::temporary(&spec.env).context("writing the env file")?;
    let rootfs = mounted.as_ref().map(|m| m.dir.as_path());
    env::log(&spec.env);
    let mut status = rt.run_attached(&spec, rootfs, Some(&env_file))?;
    // The engine refuses at once when the rig is not local (`--pull=never`): get it,
    // then run again — nothing started the first time.
    if exit_code(status) == 125 && !split && !rt.image_exists(&image) {
        obtain(rt, &cx.host, &image, image_named_in.as_deref())?;
        status = rt.run_attached(&spec, rootfs, Some(&env_file))?;
    }
    drop(env_file);
    drop(mounted);
    auth::write_back(cx, b);
    let _ = std::fs::remove_file(b.container_marker());
    drop(lock);
    after_run(rt, l, &spec, &image, split, exit_code(status), asked)?;
    Ok(code(status))
}

/// Messages after the container ended: name the missing image or the container in the
/// way, hint at `sh -c`. `Err` when the run failed because the rig is missing: that is
/// our error (exit 1), not the engine's status.
fn after_run(
    rt: &Runtime,
    l: &Launch,
    spec: &RunSpec,
    image: &str,
    split: bool,
    code: i32,
    asked: bool,
) -> Result<()> {
    if code == 125 && !asked && rt.container_exists(&spec.name) {
        // The engine was not asked beforehand (no marker): a container nobody told us
        // about holds the name.
        output::hint(format_args!(
            "a container named {} already exists (started outside this kanibako?); `kanibako stop` removes it",
            spec.name
        ));
        return Ok(());
    }
    if code == 125 && !split && !rt.image_exists(image) {
        return Err(missing_rig(rt, image).into());
    }
    match &l.session {
        Session::Shell { command }
            if code == 127 && l.entrypoint.is_none() && !command.is_empty() =>
        {
            output::hint(format_args!(
                "`{}` was not found in the box; arguments after -- are one command and its arguments, to run a shell line use: kanibako shell -- sh -c '…'",
                command[0].to_string_lossy()
            ));
        }
        Session::Start { flags, .. }
            if code != 0
                && code != 125
                && !flags.new_session
                && spec.entrypoint.is_some()
                && l.entrypoint.is_none() =>
        {
            output::hint(
                "if the agent exited because there was no conversation to continue, use 'kanibako start -N' to start fresh.",
            );
        }
        _ => {}
    }
    Ok(())
}
