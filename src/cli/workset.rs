//! Arguments of the `workset` commands.

use clap::{Args, Subcommand};

use super::config::WorksetConfigArgs;

#[derive(Debug, Subcommand)]
pub enum WorksetCommand {
    /// Create a workset at PATH (which must not exist yet).
    Create(WorksetCreateArgs),
    /// List worksets (the default).
    #[command(visible_alias = "ls")]
    List(WorksetListArgs),
    /// Show a workset and its boxes.
    #[command(visible_alias = "inspect")]
    Info(WorksetNameArgs),
    /// Unregister a workset (and with --purge delete its root).
    #[command(visible_alias = "delete")]
    Rm(WorksetRmArgs),
    /// Add a box for SOURCE to a workset.
    Connect(ConnectArgs),
    /// Remove a box from a workset.
    Disconnect(DisconnectArgs),
    /// Read, set or reset a workset's settings (`default`: all default-mode boxes).
    Config(WorksetConfigArgs),
}

#[derive(Debug, Args)]
pub struct WorksetCreateArgs {
    /// The workset's root directory (default: the current directory).
    pub path: Option<String>,
    /// Its name (default: the root's directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Upstream's flag, recorded as upstream records it (`standalone: true` in the
    /// workset's `config.yaml`); a workset's boxes keep all their state under its root
    /// either way.
    #[arg(long)]
    pub standalone: bool,
    /// The rig its boxes run on.
    #[arg(short = 'i', long = "image", value_name = "IMAGE")]
    pub image: Option<String>,
    /// No vaults for its boxes.
    #[arg(long)]
    pub no_vault: bool,
    /// Its boxes log in on their own instead of sharing the host's agent login.
    #[arg(long)]
    pub distinct_auth: bool,
}

#[derive(Debug, Args, Default)]
pub struct WorksetListArgs {
    /// Names only.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorksetNameArgs {
    pub name: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WorksetRmArgs {
    pub name: String,
    /// Also delete the workset's root directory and everything in it.
    #[arg(long)]
    pub purge: bool,
    /// Remove even with boxes in it, without asking.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    pub workset: String,
    /// The project the box is for (recorded as its source; default: the current
    /// directory).
    pub source: Option<String>,
    /// The box's name in the workset (default: the source's directory name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    pub workset: String,
    pub project: String,
    /// Also delete the box's metadata, workspace and vault.
    #[arg(long)]
    pub remove_files: bool,
    /// Do not ask.
    #[arg(short, long)]
    pub force: bool,
}
