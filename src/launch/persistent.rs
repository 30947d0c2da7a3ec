//! Persistent sessions: the agent in a tmux session inside a detached container, which
//! survives a closed terminal (spec: upstream-runtime §3.12, §0a.4).
//!
//! `start` launches it and attaches; `start` again re-attaches; a detach (`C-b d`)
//! leaves it running. If the agent dies at once because there was no conversation to
//! continue, the session is started again once as a new conversation.

use std::ffi::OsString;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::execute::Planned;
use super::image::MountedImage;
use super::plan::{AGENT_EXIT_FILE, AGENT_OUTPUT_FILE, TMUX_SESSION, attach_command};
use super::request::Launch;
use super::{auth, env, lock};
use crate::boxes::BoxIdentity;
use crate::boxes::home::SafeDir;
use crate::context::Context;
use crate::envfile;
use crate::error::{Exit, UserError};
use crate::fsutil::FileLock;
use crate::output;
use crate::process::{Invocation, exit_code};
use crate::runtime::Runtime;
use crate::runtime::containers::ExecInput;
use crate::runtime::spec::RunSpec;

/// How long a fresh container may take to show as running.
const START_POLLS: u32 = 10;
const START_POLL: Duration = Duration::from_millis(300);
/// How long an ended session's container may take to stop (it only has to exit tmux).
const STOP_POLLS: u32 = 34;
/// `exec` can fail while the container's init is still settling.
const ATTACH_TRIES: u32 = 5;
const ATTACH_PAUSE: Duration = Duration::from_millis(500);

/// What a dead session's logs say when `--continue` had nothing to continue.
const NO_CONVERSATION: &str = "No conversation found";
/// An agent that fails this soon after a `--continue` launch had nothing to continue
/// (its own words may not reach the log: tmux may not have drawn them).
const QUICK_FAILURE: Duration = Duration::from_secs(15);

/// A file the session wrapper left in the home (read without following links: the box
/// owns that directory).
fn home_file(b: &BoxIdentity, rel: &str) -> Option<Vec<u8>> {
    let rel = std::path::Path::new(rel);
    let home = SafeDir::open(&b.shell).ok()?;
    let dir = home.open_dir(rel.parent()?).ok()??;
    dir.read(rel.file_name()?).ok()?
}

fn clear_home_file(b: &BoxIdentity, rel: &str) {
    let rel = std::path::Path::new(rel);
    if let (Ok(home), Some(parent), Some(name)) =
        (SafeDir::open(&b.shell), rel.parent(), rel.file_name())
        && let Ok(Some(dir)) = home.open_dir(parent)
    {
        let _ = dir.remove(name);
    }
}

/// What the session wrapper recorded of the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AgentRecord {
    /// Nothing: the agent never started (or this is not kanibako's wrapper).
    None,
    /// It started and did not end by itself (its container was stopped or killed).
    Started,
    /// It ended by itself with this status.
    Ended(i32),
}

fn agent_record(b: &BoxIdentity) -> AgentRecord {
    match home_file(b, AGENT_EXIT_FILE) {
        None => AgentRecord::None,
        Some(text) => match String::from_utf8_lossy(&text).trim() {
            "" => AgentRecord::Started,
            s => s.parse().map_or(AgentRecord::None, AgentRecord::Ended),
        },
    }
}

fn agent_exit(b: &BoxIdentity) -> Option<i32> {
    match agent_record(b) {
        AgentRecord::Ended(status) => Some(status),
        _ => None,
    }
}

/// The agent's last screen as the session wrapper captured it, without the blank rows
/// below the last line it wrote.
fn agent_output(b: &BoxIdentity) -> String {
    let text = home_file(b, AGENT_OUTPUT_FILE).unwrap_or_default();
    String::from_utf8_lossy(&text).trim_end().to_owned()
}

fn clear_agent_records(b: &BoxIdentity) {
    clear_home_file(b, AGENT_EXIT_FILE);
    clear_home_file(b, AGENT_OUTPUT_FILE);
}

/// How a session that is over ended, from what the attach returned (`None`: never got
/// in), what the wrapper recorded, and whether it ended soon after it started.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The agent ended with this status; `show`: its last screen is printed, because
    /// nobody saw it (the end of an attach puts the terminal's own screen back) and it
    /// ended at once or failed.
    Agent { status: i32, show: bool },
    /// The agent was running when its container was stopped: the attach's own status,
    /// or that of a process ended by SIGTERM.
    Stopped(i32),
    /// The agent never started: the container died first (its log says why).
    Unknown,
}

fn ending(attached: Option<i32>, agent: AgentRecord, quick: bool) -> Ending {
    match (attached, agent) {
        (attached, AgentRecord::Ended(status)) => Ending::Agent {
            status,
            show: attached.is_none() || quick || status != 0,
        },
        (attached, AgentRecord::Started) => Ending::Stopped(attached.unwrap_or(143)),
        (Some(code), AgentRecord::None) => Ending::Stopped(code),
        (None, AgentRecord::None) => Ending::Unknown,
    }
}

fn exit_status(code: i32) -> Exit {
    Exit::Code(u8::try_from(code).unwrap_or(1))
}

pub fn attach_invocation(rt: &Runtime, name: &str, tty: bool) -> Invocation {
    rt.exec_command(name, input(tty), None, &attach_command())
}

fn input(tty: bool) -> ExecInput {
    if tty {
        ExecInput::Terminal
    } else {
        ExecInput::Stdin
    }
}

/// How much of a dead session's log is read for why it ended.
const LOG_LINES: u32 = 50;

/// Where a detached container's claim on its mounted rig is recorded: one file per
/// container, made when the container starts and unlinked by whoever releases the mount.
/// `unlink` succeeds once, so two removers racing (a `stop` and the session's own clean
/// up) release the mount once: a second release would take it from under another box on
/// the same rig (podman counts mounts per image, not per container).
pub fn mount_claim(cx: &Context, name: &str) -> PathBuf {
    cx.paths.state.join("mounts").join(name)
}

/// Remove a (stopped) container, and release the image it ran on if it was mounted
/// (`rootfs`: its `io.kanibako.rootfs` label) and its claim is still there. Whether this
/// call removed it (podman's `rm -f` also succeeds for a container already gone, but
/// then names nothing). Its browser sidecar, if it had one, goes too.
pub fn remove(cx: &Context, rt: &Runtime, name: &str, rootfs: Option<&str>) -> bool {
    let named = remove_box(cx, rt, name, rootfs);
    crate::browser::remove_for(rt, &cx.paths.state, name);
    named
}

/// [`remove`], keeping a browser sidecar (a session started again joins it).
fn remove_box(cx: &Context, rt: &Runtime, name: &str, rootfs: Option<&str>) -> bool {
    let image = rootfs.filter(|s| !s.is_empty() && *s != "<no value>");
    let Some(named) = rt.remove_container(name) else {
        return false;
    };
    if let Some(image) = image
        && std::fs::remove_file(mount_claim(cx, name)).is_ok()
    {
        rt.unmount_image(image);
    }
    named
}

/// Whether the box's tmux session is still there. `attach` returns 0 both when the user
/// detaches and when the agent ends, and in the second case the container may still
/// be shutting down for a moment: only the session itself tells the two apart.
fn session_alive(rt: &Runtime, name: &str) -> bool {
    let check = ["tmux", "has-session", "-t", TMUX_SESSION].map(OsString::from);
    rt.exec_succeeds(name, &check)
}

/// After an attach returned: true if the session goes on (the user detached). If it
/// ended, wait (bounded) for its container to stop so its logs and state are final.
fn still_in_session(rt: &Runtime, name: &str) -> bool {
    if !rt.is_running(name) {
        return false;
    }
    if session_alive(rt, name) {
        return true;
    }
    for _ in 0..STOP_POLLS {
        if !rt.is_running(name) {
            break;
        }
        sleep(START_POLL);
    }
    false
}

/// Attach to the session, retrying while the container settles. Returns the attach's
/// exit code, or `None` if the container is gone.
fn attach(rt: &Runtime, b: &BoxIdentity, name: &str, tty: bool) -> Result<Option<i32>> {
    for attempt in 1..=ATTACH_TRIES {
        let status = rt.exec_attached(name, input(tty), None, &attach_command())?;
        let code = exit_code(status);
        if code == 0 {
            return Ok(Some(0));
        }
        if !rt.is_running(name) {
            return Ok(None);
        }
        if agent_record(b) != AgentRecord::None {
            // The session had started (its wrapper ran the agent), so this was no
            // container still settling: the session ended under the attach, as a
            // `stop` ends it while the container is on its way out. Trying again
            // would only meet the engine's "no such container".
            return Ok(Some(code));
        }
        if attempt < ATTACH_TRIES {
            output::warn(format_args!(
                "container not ready for exec (attempt {attempt}/{ATTACH_TRIES}), retrying..."
            ));
            sleep(ATTACH_PAUSE);
        } else {
            return Ok(Some(code));
        }
    }
    Ok(None)
}

/// Without a terminal there is nothing to attach: say where the session is instead.
fn background_note(b: &BoxIdentity, name: &str) {
    output::say(format_args!(
        "Box {} runs in the background ({name}); attach from a terminal with `kanibako start {}`, end it with `kanibako stop {}`.",
        b.display_name(),
        b.display_name(),
        b.display_name()
    ));
}

/// `start` on a box whose session is running: attach to it.
/// What `l` asked for that only a new session could honour is named, not dropped.
pub fn reattach(
    cx: &Context,
    rt: &Runtime,
    b: &BoxIdentity,
    rootfs: Option<&str>,
    l: &Launch,
) -> Result<Exit> {
    if let Some(ignored) = l.reattach_ignores() {
        output::warn(format_args!(
            "the session is already running; {ignored} apply to a new session only (`kanibako stop` first)"
        ));
    }
    let name = b.container_name();
    if l.dry_run {
        println!("{}", attach_invocation(rt, &name, cx.host.stdin_tty));
        return Ok(Exit::Success);
    }
    // A hub that was killed comes back with its box's session.
    super::helpers::revive(cx, b);
    if !cx.host.stdin_tty {
        background_note(b, &name);
        return Ok(Exit::Success);
    }
    auth::refresh(cx, b);
    let code = attach(rt, b, &name, true)?;
    auth::write_back(cx, b);
    // A session that ended leaves a stopped container: clear it, and pass on how the
    // agent ended (the attach's own status says only that the session closed).
    if !still_in_session(rt, &name) {
        remove(cx, rt, &name, rootfs);
        let _ = std::fs::remove_file(b.container_marker());
        if let Some(status) = agent_exit(b) {
            return Ok(exit_status(status));
        }
    }
    Ok(exit_status(code.unwrap_or(0)))
}

/// Create the detached container (under the box lock) and attach to it. `may_retry`:
/// an agent session that dies at once with nothing to continue is started once more
/// as a new conversation, from `replan(true)`.
pub fn launch(
    cx: &Context,
    rt: &Runtime,
    b: &BoxIdentity,
    run: Planned<'_>,
    lock: FileLock,
    may_retry: bool,
    mut replan: impl FnMut(bool) -> Result<RunSpec>,
) -> Result<Exit> {
    let Planned {
        mut spec,
        image,
        mut mounted,
        ..
    } = run;
    let image = image.as_str();
    let mut retried = false;
    let mut lock = Some(lock);
    let split = mounted.is_some();
    loop {
        clear_agent_records(b);
        let started = std::time::Instant::now();
        let rootfs = match mounted.take() {
            Some(m) => Some(m),
            None if split => Some(MountedImage::mount(rt, image)?),
            None => None,
        };
        let env_file = envfile::temporary(&spec.env).context("writing the env file")?;
        env::log(&spec.env);
        // Captured: the container id `run -d` prints is noise on the user's terminal.
        let out = rt.run_captured(
            &spec,
            rootfs.as_ref().map(|m| m.dir.as_path()),
            Some(&env_file),
        )?;
        drop(env_file);
        if !out.status.success() {
            output::relay(&String::from_utf8_lossy(&out.stderr));
            return Ok(Exit::Code(u8::try_from(exit_code(out.status)).unwrap_or(1)));
        }
        if let Some(m) = rootfs {
            m.leak();
            let claim = mount_claim(cx, &spec.name);
            if let Err(e) = crate::fsutil::atomic_write(&claim, b"", crate::fsutil::MODE_CONFIG) {
                tracing::debug!("recording the mount claim {}: {e}", claim.display());
            }
        }
        // The container exists: the next `start` re-attaches, so the lock is done.
        drop(lock.take());

        let mut up = rt.is_running(&spec.name);
        for _ in 1..START_POLLS {
            if up {
                break;
            }
            sleep(START_POLL);
            up = rt.is_running(&spec.name);
        }
        let attached = if up && cx.host.stdin_tty {
            let code = attach(rt, b, &spec.name, true)?;
            // Left or ended: either way the box may hold a newer token than the host.
            auth::write_back(cx, b);
            code
        } else if up {
            background_note(b, &spec.name);
            return Ok(Exit::Success);
        } else {
            None
        };
        if still_in_session(rt, &spec.name) {
            // Detached: the session goes on.
            return Ok(Exit::Code(u8::try_from(attached.unwrap_or(0)).unwrap_or(1)));
        }
        // The log driver may still be flushing the session's last screen: look again
        // briefly before deciding that the agent did not say why it ended.
        let logs = rt.container_logs(&spec.name, LOG_LINES);
        let agent = agent_record(b);
        let failed_fast = started.elapsed() < QUICK_FAILURE
            && matches!(agent, AgentRecord::Ended(code) if code != 0);
        // (the sidecar goes at the session's end, with the companions)
        remove_box(cx, rt, &spec.name, split.then_some(image));
        let _ = std::fs::remove_file(b.container_marker());
        let fresh = if may_retry && !retried && (logs.contains(NO_CONVERSATION) || failed_fast) {
            // Only a session that continued a conversation can start anew; any other
            // agent that fails at once says why below.
            Some(replan(true)?).filter(|fresh| fresh.command != spec.command)
        } else {
            None
        };
        if let Some(fresh) = fresh {
            output::say("Restarting with a new session.");
            retried = true;
            spec = fresh;
            // The same claim as the first start: the lock's record and the marker that
            // tells the next command a container of this box may exist.
            lock = Some(lock::claim(None, b, &spec.name)?);
            continue;
        }
        let quick = started.elapsed() < QUICK_FAILURE;
        return match ending(attached, agent, quick) {
            Ending::Agent { status, show } => {
                if show {
                    let said = agent_output(b);
                    let said = if said.is_empty() {
                        logs.trim_end()
                    } else {
                        &said
                    };
                    if !said.is_empty() {
                        output::say(said);
                    }
                    output::say(format_args!(
                        "The agent ended (exit status {status}); its last output is above."
                    ));
                }
                Ok(exit_status(status))
            }
            Ending::Stopped(code) => {
                output::say("The session's container was stopped.");
                Ok(exit_status(code))
            }
            Ending::Unknown => {
                if !logs.trim().is_empty() {
                    output::say(logs.trim_end());
                }
                Err(UserError::new("Container exited before session could attach.")
                    .hint("check the output above, or run the box with --ephemeral to see it directly")
                    .into())
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_with_the_agents_status_or_says_it_was_stopped() {
        use AgentRecord::{Ended, Started};
        let agent = |status, show| Ending::Agent { status, show };
        // ended at once, before or just as the attach got in: its last screen is shown
        assert_eq!(ending(None, Ended(3), true), agent(3, true));
        assert_eq!(ending(Some(0), Ended(0), true), agent(0, true));
        assert_eq!(ending(None, Ended(0), false), agent(0, true));
        // a long session the user ended: only its status; one that failed: its screen
        assert_eq!(ending(Some(0), Ended(0), false), agent(0, false));
        assert_eq!(ending(Some(0), Ended(2), false), agent(2, true));
        // stopped from outside while the agent ran, attached or not yet
        assert_eq!(ending(Some(137), Started, false), Ending::Stopped(137));
        assert_eq!(ending(None, Started, true), Ending::Stopped(143));
        // the agent never ran
        assert_eq!(ending(None, AgentRecord::None, true), Ending::Unknown);
    }
}
