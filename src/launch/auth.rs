//! The agent's login around a session: a box's first copy and the refresh before a launch,
//! the write-back when a session ends or is left, and the host-side `auth status`
//! check (spec: upstream-runtime §3.9 steps 7-8, §8). Distinct-auth boxes log in on
//! their own and are left alone.

use std::time::Duration;

use crate::agents::credentials::{CredentialSpec, Credentials, Outcome};
use crate::agents::{self, Agent, Install};
use crate::boxes::BoxIdentity;
use crate::context::Context;
use crate::error::UserError;
use crate::output;
use crate::process::{Executor, Invocation};

/// `auth status` should answer at once; one that hangs (no network) must not hold up
/// the launch for long, and an unknown answer counts as logged in.
const STATUS_LIMIT: Duration = Duration::from_secs(10);

/// The host's and `b`'s copies of one agent's login.
fn files(cx: &Context, b: &BoxIdentity, spec: &'static CredentialSpec) -> Credentials<'static> {
    Credentials {
        spec,
        host_home: cx.paths.home().to_owned(),
        box_home: b.shell.clone(),
        lock: cx.paths.state.join("credentials.lock"),
    }
}

/// The login files of every agent that has one, for `b`.
fn each(
    cx: &Context,
    b: &BoxIdentity,
) -> impl Iterator<Item = (Box<dyn Agent>, Credentials<'static>)> {
    agents::all().into_iter().filter_map(|a| {
        let spec = a.credentials()?;
        Some((a, files(cx, b, spec)))
    })
}

/// Whether `b` shares the host's login. A standalone box's own file may say so only
/// if it was not made with distinct auth (recorded on the host, out of its reach).
pub fn shares_login(cx: &Context, b: &BoxIdentity) -> bool {
    b.group_auth
        && !(b.mode == crate::boxes::Mode::Standalone
            && crate::boxes::distinct_auth_record(&cx.paths, &b.hash).exists())
}

/// The same, for a group-auth box only: a distinct-auth box keeps its own login.
fn shared(cx: &Context, b: &BoxIdentity) -> Vec<(Box<dyn Agent>, Credentials<'static>)> {
    if shares_login(cx, b) {
        each(cx, b).collect()
    } else {
        Vec::new()
    }
}

fn report(agent: &dyn Agent, outcome: Outcome) {
    match outcome {
        Outcome::Skipped(why) => {
            output::warn(format_args!("{} credentials: {why}", agent.display_name()));
        }
        Outcome::Refused(why) => {
            output::warn(format_args!(
                "{} credentials: the box's token was not written back to the host ({why}); the host's login is unchanged",
                agent.display_name()
            ));
        }
        other => tracing::debug!("{} credentials: {other:?}", agent.display_name()),
    }
}

/// Before a launch: the box's account file if it has none (empty for distinct auth),
/// and for group auth the host's newer token.
pub fn before_launch(cx: &Context, b: &BoxIdentity) {
    let group = shares_login(cx, b);
    for (a, c) in each(cx, b) {
        report(a.as_ref(), c.before_session(group));
    }
}

/// Before a re-attach: the host's newer token into the box.
pub fn refresh(cx: &Context, b: &BoxIdentity) {
    for (a, c) in shared(cx, b) {
        report(a.as_ref(), c.refresh());
    }
}

/// When a session ends, is detached from, or is stopped: the box's newer token back to
/// the host, so the next box (and the host's own agent) is not logged out by a token
/// the box already used up.
pub fn write_back(cx: &Context, b: &BoxIdentity) {
    for (a, c) in shared(cx, b) {
        report(a.as_ref(), c.write_back());
    }
}

/// Switching to distinct auth: the box forgets the shared login (a link in its place
/// is removed, never followed).
pub fn forget(cx: &Context, b: &BoxIdentity) {
    for (_, c) in each(cx, b) {
        if let Err(e) = c.forget() {
            output::warn(format_args!("clearing {}: {e}", b.shell.display()));
        }
    }
}

/// What the host agent says about its login.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    LoggedIn,
    LoggedOut,
    /// No answer, an error or output we do not understand: not a reason to stop.
    Unknown,
}

/// Read `claude auth status --json` output.
pub fn parse_status(ok: bool, stdout: &[u8]) -> Status {
    if !ok {
        return Status::Unknown;
    }
    match serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| v.get("loggedIn").and_then(serde_json::Value::as_bool))
    {
        Some(true) => Status::LoggedIn,
        Some(false) => Status::LoggedOut,
        None => Status::Unknown,
    }
}

/// The host agent's answer, run from the host home: its working directory would be
/// ours, the untrusted project, whose files the agent reads as settings.
pub fn status(exec: &dyn Executor, install: &Install, home: &std::path::Path) -> Status {
    let inv = Invocation::new(&install.binary)
        .args(["auth", "status", "--json"])
        .current_dir(home);
    match exec.output_within(&inv, STATUS_LIMIT) {
        Ok(Some(o)) => parse_status(o.status.success(), &o.stdout),
        _ => Status::Unknown,
    }
}

/// Whether the host's token file holds a token (a refresh token, or an access token
/// that has not expired).
fn host_has_token(cx: &Context, agent: &dyn Agent) -> bool {
    let Some(spec) = agent.credentials() else {
        return false;
    };
    let path = cx.paths.home().join(spec.dir).join(spec.file);
    let Some(v) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    crate::agents::credentials::holds_token(spec, &v)
}

/// Before an agent launch in a group-auth box: the host must be logged in, or the
/// box would start logged out. At a terminal, run the agent's login; without one, fail
/// with what to do.
pub fn check(cx: &Context, agent: &dyn Agent, install: &Install) -> anyhow::Result<()> {
    if agent.credentials().is_none() {
        return Ok(());
    }
    // A token on file means logged in, without starting the agent (hundreds of ms).
    if host_has_token(cx, agent) {
        return Ok(());
    }
    let exec = cx.exec.as_ref();
    if status(exec, install, cx.paths.home()) != Status::LoggedOut {
        return Ok(());
    }
    if cx.host.stdin_tty {
        output::say(format_args!(
            "{} is not authenticated. Running '{} auth login'...",
            agent.display_name(),
            agent.id()
        ));
        let login = Invocation::new(&install.binary)
            .args(["auth", "login"])
            .current_dir(cx.paths.home());
        let _ = exec.foreground(&login);
        if status(exec, install, cx.paths.home()) != Status::LoggedOut {
            return Ok(());
        }
    }
    Err(UserError::new(format!(
        "{} is not logged in on this host",
        agent.display_name()
    ))
    .hint(format!(
        "log in: {} auth login (or kanibako crab reauth)",
        agent.id()
    ))
    .hint("skip the agent: kanibako shell")
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 (low): the host's `auth status` runs from the host home, never from the
    /// project it was launched in.
    #[test]
    fn auth_status_runs_from_the_host_home() {
        let exec = crate::process::testing::Recorder::default();
        let install = Install {
            binary: "/h/.local/bin/claude".into(),
            install_dir: None,
        };
        status(&exec, &install, std::path::Path::new("/h"));
        assert_eq!(
            exec.calls()[0].cwd.as_deref(),
            Some(std::path::Path::new("/h"))
        );
    }

    #[test]
    fn status_answers() {
        assert_eq!(
            parse_status(true, br#"{"loggedIn": true}"#),
            Status::LoggedIn
        );
        assert_eq!(
            parse_status(true, br#"{"loggedIn": false}"#),
            Status::LoggedOut
        );
        assert_eq!(
            parse_status(false, br#"{"loggedIn": false}"#),
            Status::Unknown
        );
        assert_eq!(parse_status(true, b"Logged in"), Status::Unknown);
        assert_eq!(parse_status(true, br#"{"other": 1}"#), Status::Unknown);
    }
}
