//! What a launch was asked for: `start` or `shell` with its switches ([`Launch`], as
//! the command handlers hand it over), and what can be checked or derived from the
//! request alone (`-e` items, the shell's command wrapper, what a re-attach cannot
//! honour). Must not: read settings, the disk or the engine.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::agents::SessionFlags;
use crate::envfile;
use crate::error::UserError;

/// What kind of session was asked for.
#[derive(Clone, Debug)]
pub enum Session {
    /// `start`: the agent, with its switches and the arguments after `--`.
    Start {
        flags: SessionFlags,
        /// `-C` / `-A` given: explicit choices that config must not override.
        cont: bool,
        autonomous: bool,
        model: Option<String>,
        args: Vec<String>,
        /// `--crab NAME`: the agent for this run, over `box.crab`.
        crab: Option<String>,
        /// `--no-auto-auth` not given: a missing host login may be started at a
        /// terminal.
        auto_auth: bool,
    },
    /// `shell`: a shell, or the exact command after `--`.
    Shell { command: Vec<OsString> },
}

#[derive(Clone, Debug)]
pub struct Launch {
    pub project: Option<String>,
    /// `-e KEY=VALUE` items as typed.
    pub env: Vec<String>,
    pub rig: Option<String>,
    pub entrypoint: Option<String>,
    pub dry_run: bool,
    /// `--persistent` (true) or `--ephemeral` (false); `None`: tmux on the host decides.
    pub persistent: Option<bool>,
    /// `--share-images` (true) or `--no-share-images` (false): the host's image store,
    /// read-only, in the box; `None`: `box.share_images` decides.
    pub share_images: Option<bool>,
    /// `--no-helpers` (false); `None`: `allow_helpers` decides.
    pub helpers: Option<bool>,
    /// `--browser`: a Chromium sidecar for the session.
    pub browser: bool,
    /// `box net learn`: the box runs under `allowlist` in learn mode (its proxy lets
    /// out what no rule allows and logs it), in a new container of its own.
    pub learn: bool,
    pub session: Session,
}

impl Launch {
    /// Whether the agent runs: `start` without `--entrypoint`.
    pub fn runs_agent(&self) -> bool {
        matches!(self.session, Session::Start { .. }) && self.entrypoint.is_none()
    }

    /// Whether this runs a shell or a command of the user's (`shell`, or `start
    /// --entrypoint`): such a launch joins a running container instead of refusing it.
    pub fn shell_like(&self) -> bool {
        matches!(self.session, Session::Shell { .. }) || self.entrypoint.is_some()
    }

    /// The agent `--crab` chose for this run.
    pub fn crab(&self) -> Option<&str> {
        match &self.session {
            Session::Start { crab, .. } => crab.as_deref(),
            Session::Shell { .. } => None,
        }
    }

    /// Whether a missing host login may be started (not `--no-auto-auth`).
    pub fn may_log_in(&self) -> bool {
        matches!(
            self.session,
            Session::Start {
                auto_auth: true,
                ..
            }
        )
    }

    /// Whether `-N` was given.
    pub fn new_session(&self) -> bool {
        matches!(&self.session, Session::Start { flags, .. } if flags.new_session)
    }

    /// The options a re-attach to a running session cannot honour, named as typed
    /// (upstream dropped them without a word).
    pub fn reattach_ignores(&self) -> Option<String> {
        let mut given = Vec::new();
        if !self.env.is_empty() {
            given.push("-e");
        }
        if self.rig.is_some() {
            given.push("--rig");
        }
        if self.entrypoint.is_some() {
            given.push("--entrypoint");
        }
        if self.browser {
            given.push("--browser");
        }
        if let Session::Start {
            flags,
            model,
            args,
            crab,
            ..
        } = &self.session
        {
            if flags.new_session || flags.resume {
                given.push("-N/-R");
            }
            if crab.is_some() {
                given.push("--crab");
            }
            if model.is_some() {
                given.push("-M");
            }
            if !args.is_empty() {
                given.push("arguments after --");
            }
        }
        (!given.is_empty()).then(|| given.join(", "))
    }
}

/// `-e` items: `KEY=VALUE`, or a bare `KEY` whose value comes from kanibako's own
/// environment (so a secret need not be typed on any command line). A valid name is
/// required; the value may hold `=`.
pub fn parse_env_items(
    items: &[String],
    own: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, UserError> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, v.to_owned()),
            None if envfile::is_valid_name(item) => match own(item) {
                Some(v) => (item.as_str(), v),
                None => {
                    return Err(UserError::new(format!(
                        "-e {item}: {item} is not set in kanibako's environment"
                    ))
                    .hint("pass -e KEY=VALUE, or export the variable first"));
                }
            },
            None => {
                return Err(
                    UserError::new(format!("-e expects KEY=VALUE, got '{item}'"))
                        .hint("for example: -e DEBUG=1"),
                );
            }
        };
        if !envfile::is_valid_name(k) {
            return Err(UserError::new(format!(
                "invalid environment variable name '{k}' in -e {item}"
            ))
            .hint("names are letters, digits and '_', not starting with a digit"));
        }
        if v.contains('\n') || v.contains('\0') {
            return Err(UserError::new(format!(
                "the value of {k} contains a newline or NUL byte"
            )));
        }
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// `sh -c 'exec "$@"' kanibako CMD ARGS…`: runs the command with its arguments exactly as
/// given (they travel as `"$@"`, never re-parsed), while a command that is not there
/// still ends with the shell's 127 (an init process in front of a missing command would
/// report a bare 1).
pub fn exec_wrapper(command: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-c".into(), "exec \"$@\"".into(), "kanibako".into()];
    args.extend(command.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(model: Option<&str>, new_session: bool) -> Launch {
        Launch {
            project: None,
            env: Vec::new(),
            rig: None,
            entrypoint: None,
            dry_run: false,
            persistent: None,
            share_images: None,
            helpers: None,
            browser: false,
            learn: false,
            session: Session::Start {
                flags: SessionFlags {
                    new_session,
                    ..SessionFlags::default()
                },
                cont: false,
                autonomous: false,
                model: model.map(str::to_owned),
                args: Vec::new(),
                crab: None,
                auto_auth: true,
            },
        }
    }

    #[test]
    fn a_reattach_names_what_it_cannot_honour() {
        assert_eq!(start(None, false).reattach_ignores(), None);
        assert_eq!(
            start(Some("sonnet"), true).reattach_ignores().as_deref(),
            Some("-N/-R, -M")
        );
        let mut l = start(None, false);
        l.env.push("A=1".into());
        assert_eq!(l.reattach_ignores().as_deref(), Some("-e"));
        let mut l = start(None, false);
        if let Session::Start { crab, .. } = &mut l.session {
            *crab = Some("codex".into());
        }
        assert_eq!(l.reattach_ignores().as_deref(), Some("--crab"));
        assert_eq!(l.crab(), Some("codex"));
        assert!(l.may_log_in());
    }

    #[test]
    fn what_runs_follows_the_command_and_entrypoint() {
        let mut l = start(None, false);
        assert!(l.runs_agent() && !l.shell_like());
        l.entrypoint = Some("/bin/zsh".into());
        assert!(!l.runs_agent() && l.shell_like());
        l.session = Session::Shell {
            command: Vec::new(),
        };
        l.entrypoint = None;
        assert!(!l.runs_agent() && l.shell_like());
    }

    #[test]
    fn env_items_must_be_key_value() {
        let none = |_: &str| None;
        let ok = parse_env_items(&["A=1".into(), "B=x=y".into(), "C=".into()], none).unwrap();
        assert_eq!(ok["B"], "x=y");
        assert_eq!(ok["C"], "");
        assert!(parse_env_items(&["NOEQ".into()], none).is_err());
        assert!(parse_env_items(&["1BAD=x".into()], none).is_err());
        assert!(parse_env_items(&["bad name".into()], |_| Some("x".into())).is_err());
        assert!(parse_env_items(&["A=line\nbreak".into()], none).is_err());
        let from_env =
            parse_env_items(&["TOKEN".into()], |k| (k == "TOKEN").then(|| "s3".into())).unwrap();
        assert_eq!(from_env["TOKEN"], "s3");
    }
}
