//! What runs inside the box: the agent with its arguments (session switches, the
//! crab's `run_args`, the arguments after `--`, the model), the user's entrypoint, an
//! interactive shell, or the user's command passed exactly; and what a running
//! container is joined with. Pure over the request, the target and the settings.

use std::ffi::OsString;

use anyhow::Result;

use super::request::{Launch, Session, exec_wrapper};
use super::settings::{Conversation, LaunchSettings};
use super::target::Target;
use crate::agents::SessionFlags;
use crate::settings::stack::Stack;

/// The entrypoint (`None`: the rig's own) and its arguments.
pub type Command = (Option<String>, Vec<OsString>);

pub struct InBox<'a> {
    pub launch: &'a Launch,
    pub target: &'a Target,
    pub levels: &'a Stack,
    pub settings: &'a LaunchSettings,
    /// The box was created by this launch, so there is nothing to continue.
    pub new_box: bool,
}

impl InBox<'_> {
    /// The command a new container runs; `new_session` re-makes an agent's as a new
    /// conversation (the retry of a session that had nothing to continue).
    pub fn command(&self, new_session: bool) -> Result<Command> {
        let l = self.launch;
        Ok(match (&l.session, self.target, &self.settings.agent) {
            (Session::Start { args, .. }, Target::Agent(agent, install), Some(s)) => {
                let mut extra = self.levels.run_args()?;
                extra.extend(args.iter().cloned());
                let flags = SessionFlags {
                    secure: s.secure.value,
                    new_box: self.new_box,
                    new_session: new_session || s.conversation.value == Conversation::New,
                    resume: s.conversation.value == Conversation::Resume,
                };
                let args = agent.args(flags, &extra, s.model.value.as_deref());
                (
                    Some(agent.entrypoint(install)),
                    args.into_iter().map(OsString::from).collect(),
                )
            }
            (Session::Start { args, .. }, _, _) => (
                l.entrypoint.clone(),
                args.iter().map(OsString::from).collect(),
            ),
            (Session::Shell { command }, _, _) => match (&l.entrypoint, command.is_empty()) {
                (Some(e), _) => (Some(e.clone()), command.clone()),
                (None, false) => (Some("/bin/sh".to_owned()), exec_wrapper(command)),
                (None, true) => (Some("/bin/bash".to_owned()), Vec::new()),
            },
        })
    }

    /// What `exec` runs in a running container: the user's command as it is (`exec`
    /// reports a missing command itself: no wrapper needed), else the entrypoint and its
    /// arguments.
    pub fn joining(&self) -> Result<Vec<OsString>> {
        let l = self.launch;
        Ok(match (&l.session, &l.entrypoint) {
            (Session::Shell { command }, None) if !command.is_empty() => command.clone(),
            _ => {
                let (entrypoint, command) = self.command(false)?;
                std::iter::once(entrypoint.unwrap_or_else(|| "/bin/bash".into()).into())
                    .chain(command)
                    .collect()
            }
        })
    }
}
