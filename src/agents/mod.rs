//! Agents (upstream "targets"): what runs in a box on `start`, how it is found on the
//! host, mounted in, called, logged in and continued. Everything a launch needs of an
//! agent is a method of [`Agent`]; the launch never asks which agent it is. Claude
//! Code, OpenAI's Codex CLI and Block's Goose are its implementations, listed once in
//! [`all`]: another agent is one more module and one more line there.

pub mod claude;
pub mod codex;
pub mod credentials;
pub mod goose;
pub mod profile;
pub mod resources;

use std::path::{Path, PathBuf};

use crate::host::HostEnv;
use crate::runtime::spec::Mount;

/// An agent found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// The real (symlink-resolved) binary.
    pub binary: PathBuf,
    /// The install root the binary belongs to, where it is one of the known layouts;
    /// `None`: the binary is mounted alone.
    pub install_dir: Option<PathBuf>,
}

/// The session switches of `start` that shape an agent's arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionFlags {
    /// `-S`: keep the agent's own permission prompts.
    pub secure: bool,
    /// `-R`: open the agent's conversation picker.
    pub resume: bool,
    /// `-N`: start a new conversation.
    pub new_session: bool,
    /// The box was created by this launch, so there is nothing to continue.
    pub new_box: bool,
}

/// What the host agent says about its login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAnswer {
    LoggedIn,
    LoggedOut,
    /// No answer, an error or output we do not understand: not a reason to stop.
    Unknown,
}

/// How the host's agent is asked about its login and made to log in.
pub struct LoginCommands {
    /// Arguments of the status question (`auth status --json`).
    pub status: &'static [&'static str],
    /// Arguments of the interactive login (`auth login`).
    pub login: &'static [&'static str],
    /// Reads the status answer: whether the command succeeded, and its stdout.
    pub read: fn(bool, &[u8]) -> LoginAnswer,
}

pub trait Agent {
    /// Id used in config (`box.crab`) and for the crab file name.
    fn id(&self) -> &'static str;
    fn display_name(&self) -> &'static str;
    /// Find the agent on the host.
    fn detect(&self, host: &HostEnv) -> Option<Install>;
    /// Read-only mounts that make the host's install available in the box.
    fn mounts(&self, install: &Install) -> Vec<Mount>;
    /// The command the container runs, for this install (an npm install runs its
    /// package's own launcher where the mounts put it).
    fn entrypoint(&self, install: &Install) -> String;
    /// Arguments: session flags, then `extra` (crab `run_args` and the user's `--`
    /// arguments), then the model.
    fn args(&self, flags: SessionFlags, extra: &[String], model: Option<&str>) -> Vec<String>;
    /// Environment the agent gets unless the user set the variable.
    fn env_defaults(&self) -> &'static [(&'static str, &'static str)];
    /// The model used when no level sets one.
    fn default_model(&self) -> Option<&'static str>;
    /// The agent's config directory in the home (`.claude`).
    fn config_dir(&self) -> &'static str;
    /// Instruction files merged from templates into a new home (`CLAUDE.md`).
    fn instruction_files(&self) -> &'static [&'static str];
    /// Its resources under the config directory and how each is usually kept
    /// ([`resources`]).
    fn resources(&self) -> &'static [resources::Mapping] {
        &[]
    }
    /// Where the agent keeps a login that group-auth boxes share with the host.
    fn credentials(&self) -> Option<&'static credentials::CredentialSpec> {
        None
    }
    /// How the host's agent reports and starts a login; `None`: it has no such
    /// commands (its keys come from the environment).
    fn login_commands(&self) -> Option<&'static LoginCommands> {
        None
    }
    /// Host environment variables (API keys, provider choice) the box gets when they
    /// are set on the host: passed by name (`-e NAME`), so no value is written on a
    /// command line or into a file.
    fn passed_env(&self) -> &'static [&'static str] {
        &[]
    }
    /// Environment that follows from this run's switches (an agent whose autonomy or
    /// model is chosen by a variable), below every level the user sets.
    fn session_env(&self, _flags: SessionFlags, _model: Option<&str>) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether the box's home holds a conversation of this agent to continue in
    /// `workdir`; without one the agent starts a new one (continuing would fail).
    fn has_conversation(&self, _home: &Path, _workdir: &str) -> bool {
        false
    }
    /// The arguments that make the binary print its version.
    fn version_args(&self) -> &'static [&'static str] {
        &["--version"]
    }
    /// How `-C`, `-R` and `-N` map onto this agent, for `--help` and the README.
    fn session_note(&self) -> &'static str;
}

/// Every agent kanibako knows, in detection order: the one line a new agent adds.
pub fn all() -> Vec<Box<dyn Agent>> {
    vec![
        Box::new(claude::Claude),
        Box::new(codex::Codex),
        Box::new(goose::Goose),
    ]
}

/// Whether `home` has a regular file whose name ends in `suffix` somewhere below
/// `rel`, within `depth` directory levels, no link followed (the home is writable from
/// inside the box).
pub fn has_file_below(home: &Path, rel: &str, suffix: &str, depth: usize) -> bool {
    fn walk(dir: &Path, suffix: &str, depth: usize) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let Ok(t) = e.file_type() else { return false };
            if t.is_file() {
                e.file_name().to_string_lossy().ends_with(suffix)
            } else {
                t.is_dir() && depth > 0 && walk(&e.path(), suffix, depth - 1)
            }
        })
    }
    let mut at = home.to_owned();
    for part in Path::new(rel).components() {
        at.push(part);
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir()) {
            return false;
        }
    }
    walk(&at, suffix, depth)
}

/// The id that means "no agent: run the rig's own entrypoint".
pub const NO_AGENT: &str = "no_agent";

pub fn by_id(id: &str) -> Option<Box<dyn Agent>> {
    all().into_iter().find(|a| a.id() == id)
}

pub fn known_ids() -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = all().iter().map(|a| a.id()).collect();
    ids.push(NO_AGENT);
    ids
}

/// The first agent installed on the host.
pub fn detect_any(host: &HostEnv) -> Option<(Box<dyn Agent>, Install)> {
    all()
        .into_iter()
        .find_map(|a| a.detect(host).map(|i| (a, i)))
}

/// The lines `start` prints when no agent is installed (it then exits 0, as upstream).
pub fn no_agents_message() -> String {
    let names: Vec<String> = all()
        .iter()
        .map(|a| format!("{} (`{}`)", a.display_name(), a.id()))
        .collect();
    format!(
        "No agents detected.\n\n  Install an agent:  {} on your PATH\n  Plain sandbox:     kanibako shell",
        names.join(", ")
    )
}

/// Each agent's argv for every combination of the session switches, with no model,
/// `model` and an empty one, a row each (the agents' snapshot tests).
#[cfg(test)]
pub fn every_switch_combination(
    model: &str,
    render: impl Fn(SessionFlags, Option<&str>) -> String,
) -> String {
    let mut rows = Vec::new();
    for secure in [false, true] {
        for new_box in [false, true] {
            for (conv, new_session, resume) in [
                ("continue", false, false),
                ("-N", true, false),
                ("-R", false, true),
            ] {
                for model in [None, Some(model), Some("")] {
                    let f = SessionFlags {
                        secure,
                        resume,
                        new_session,
                        new_box,
                    };
                    rows.push(format!(
                        "secure={secure} new_box={new_box} {conv} model={model:?}: {}",
                        render(f, model)
                    ));
                }
            }
        }
    }
    rows.join("\n")
}
