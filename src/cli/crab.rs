//! Arguments of the `crab` (alias `agent`) commands: agent profiles and the agents
//! behind them.

use clap::{Args, Subcommand};

use super::config::NamedConfigArgs;
use super::helper::{ForkArgs, HelperCommand};

#[derive(Debug, Subcommand)]
pub enum CrabCommand {
    /// List agent profiles (the default); `--json` also shows every agent kanibako
    /// knows, installed or not.
    #[command(visible_alias = "ls")]
    List(CrabListArgs),
    /// Show one agent profile.
    #[command(visible_alias = "inspect")]
    Info(CrabInfoArgs),
    /// Read, set or reset an agent profile's settings (`crabs/<crab>.yaml`).
    Config(NamedConfigArgs),
    /// Check the host's agent login and refresh a box's copy of it.
    Reauth(ReauthArgs),
    /// Check each agent: installed, its version, the host login and its file mode.
    /// Every `[!!]` line is followed by the command that fixes it; exit 1 if any.
    Diagnose(super::system::JsonArgs),
    /// Inside a box: spawn, list, stop and message helper containers through the
    /// box's hub.
    Helper {
        #[command(subcommand)]
        command: Option<HelperCommand>,
    },
    /// Inside a box: fork it into a new box, `<project>.<NAME>`, with its own copy of
    /// the project, home and vault.
    Fork(ForkArgs),
}

#[derive(Debug, Args, Default)]
pub struct CrabListArgs {
    /// Profile names only.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CrabInfoArgs {
    /// The profile (`claude`, `general`, `no_agent`, …).
    #[arg(value_name = "CRAB")]
    pub crab_id: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReauthArgs {
    /// The box (name or path; default: the one for the current directory).
    pub project: Option<String>,
}
