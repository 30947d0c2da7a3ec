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
pub use crate::agents::LoginAnswer as Status;

/// The host agent's answer, run from the host home: its working directory would be
/// ours, the untrusted project, whose files the agent reads as settings. An agent
/// with no status command answers [`Status::Unknown`].
pub fn status(
    exec: &dyn Executor,
    agent: &dyn Agent,
    install: &Install,
    home: &std::path::Path,
) -> Status {
    let Some(login) = agent.login_commands() else {
        return Status::Unknown;
    };
    let inv = Invocation::new(&install.binary)
        .args(login.status)
        .current_dir(home);
    match exec.output_within(&inv, STATUS_LIMIT) {
        Ok(Some(o)) => (login.read)(o.status.success(), &o.stdout),
        _ => Status::Unknown,
    }
}

/// The command that logs the host's agent in, as the user would type it.
pub fn login_hint(agent: &dyn Agent) -> String {
    match agent.login_commands() {
        Some(l) => format!("{} {}", agent.id(), l.login.join(" ")),
        None => format!("configure {} on the host", agent.display_name()),
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

/// The host's login state of `agent`, for `crab list --json`: `logged_in` (a token on
/// file, or the agent says so), `api_key` (one of its key variables is set),
/// `logged_out`, or `unknown`.
pub fn login_state(cx: &Context, agent: &dyn Agent, install: &Install) -> &'static str {
    if agent.credentials().is_some() && host_has_token(cx, agent) {
        return "logged_in";
    }
    if agent
        .passed_env()
        .iter()
        .any(|n| n.ends_with("_API_KEY") && cx.host.var(n).is_some_and(|v| !v.is_empty()))
    {
        return "api_key";
    }
    match status(cx.exec.as_ref(), agent, install, cx.paths.home()) {
        Status::LoggedIn => "logged_in",
        Status::LoggedOut => "logged_out",
        Status::Unknown => "unknown",
    }
}

/// Before an agent launch in a group-auth box: the host must be logged in, or the
/// box would start logged out. At a terminal, run the agent's login; without one, fail
/// with what to do.
pub fn check(cx: &Context, agent: &dyn Agent, install: &Install) -> anyhow::Result<()> {
    check_with(cx, agent, install, true)
}

/// [`check`], where `may_log_in` false (`start --no-auto-auth`) never starts a login:
/// a missing login is then reported at once. A login is only ever started when the
/// host's is missing or expired, and only at a terminal (fixing upstream defect 16,
/// an OAuth login started on every launch).
pub fn check_with(
    cx: &Context,
    agent: &dyn Agent,
    install: &Install,
    may_log_in: bool,
) -> anyhow::Result<()> {
    let (Some(_), Some(login)) = (agent.credentials(), agent.login_commands()) else {
        return Ok(());
    };
    // A token on file means logged in, without starting the agent (hundreds of ms).
    if host_has_token(cx, agent) {
        return Ok(());
    }
    let exec = cx.exec.as_ref();
    if status(exec, agent, install, cx.paths.home()) != Status::LoggedOut {
        return Ok(());
    }
    if may_log_in && cx.host.stdin_tty {
        output::say(format_args!(
            "{} is not authenticated. Running '{}'...",
            agent.display_name(),
            login_hint(agent)
        ));
        let run = Invocation::new(&install.binary)
            .args(login.login)
            .current_dir(cx.paths.home());
        let _ = exec.foreground(&run);
        if status(exec, agent, install, cx.paths.home()) != Status::LoggedOut {
            return Ok(());
        }
    }
    Err(UserError::new(format!(
        "{} is not logged in on this host",
        agent.display_name()
    ))
    .hint(format!(
        "log in: {} (or kanibako crab reauth)",
        login_hint(agent)
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
        status(
            &exec,
            &crate::agents::claude::Claude,
            &install,
            std::path::Path::new("/h"),
        );
        assert_eq!(
            exec.calls()[0].cwd.as_deref(),
            Some(std::path::Path::new("/h"))
        );
    }

    #[test]
    fn status_answers() {
        use crate::agents::claude::parse_status;
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
