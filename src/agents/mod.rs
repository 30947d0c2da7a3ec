//! Agents (upstream "targets"): what runs in a box on `start`, how it is found on the
//! host, mounted in, and called. Claude Code is the first; the trait keeps room for
//! Codex, Goose and others.

pub mod claude;
pub mod credentials;
pub mod profile;
pub mod resources;

use std::path::PathBuf;

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

pub trait Agent {
    /// Id used in config (`box.crab`) and for the crab file name.
    fn id(&self) -> &'static str;
    fn display_name(&self) -> &'static str;
    /// Find the agent on the host.
    fn detect(&self, host: &HostEnv) -> Option<Install>;
    /// Read-only mounts that make the host's install available in the box.
    fn mounts(&self, install: &Install) -> Vec<Mount>;
    /// The command the container runs.
    fn entrypoint(&self) -> &'static str;
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
}

/// Every agent kanibako knows, in detection order.
pub fn all() -> Vec<Box<dyn Agent>> {
    vec![Box::new(claude::Claude)]
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
pub const NO_AGENTS_MESSAGE: &str = "No agents detected.

  Install an agent:  Claude Code (`claude` on your PATH)
  Plain sandbox:     kanibako shell";
