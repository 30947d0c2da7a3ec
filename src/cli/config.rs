//! Arguments of the `config` verb, the same at every level.

use clap::Args;

#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Show every setting in force here (not only this level's), resolved.
    #[arg(long)]
    pub effective: bool,
    /// With a key or --effective: say where each value comes from.
    #[arg(long)]
    pub show_origin: bool,
    /// Remove KEY from this level (or everything, with --all; a box's or workset's
    /// bare `--reset` is `--reset --all`, as upstream). The key may follow `--reset` or
    /// stand in its usual place, as upstream parses it.
    #[arg(long, value_name = "KEY", num_args = 0..=1)]
    pub reset: Option<Option<String>>,
    /// With --reset: every key of this level.
    #[arg(long, requires = "reset")]
    pub all: bool,
    /// Do not ask before --reset --all.
    #[arg(short, long)]
    pub force: bool,
}

impl ConfigArgs {
    pub fn resetting(&self) -> bool {
        self.reset.is_some()
    }

    /// The key given as `--reset KEY`.
    pub fn reset_key(&self) -> Option<&str> {
        self.reset.as_ref().and_then(Option::as_deref)
    }
}

#[derive(Debug, Args, Clone)]
pub struct BoxConfigArgs {
    /// `[BOX] [KEY[=VALUE]]`: KEY reads a setting, KEY=VALUE sets it, nothing shows
    /// what this box sets. BOX is a name or path (default: the current directory).
    #[arg(num_args = 0..=2, value_name = "ARG")]
    pub args: Vec<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Set the `resource.*` KEY to `project`: this box keeps its own copy.
    #[arg(long, conflicts_with_all = ["reset", "effective"])]
    pub local: bool,
}

#[derive(Debug, Args, Clone)]
pub struct NamedConfigArgs {
    /// Which one.
    pub target: String,
    /// KEY reads a setting, KEY=VALUE sets it, nothing shows what this level sets.
    pub key: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `workset config`: the named level's arguments and upstream's `--local`.
#[derive(Debug, Args, Clone)]
pub struct WorksetConfigArgs {
    #[command(flatten)]
    pub named: NamedConfigArgs,
    /// Set the `resource.*` KEY to `project`: the workset's boxes keep their own copy.
    #[arg(long, conflicts_with_all = ["reset", "effective"])]
    pub local: bool,
}

#[derive(Debug, Args, Clone)]
pub struct SystemConfigArgs {
    /// KEY reads a setting, KEY=VALUE sets it, nothing shows what kanibako.yaml sets.
    pub key: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}
