//! Arguments of the `rig` (alias `image`) commands.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum RigCommand {
    /// List rigs and whether they are prepared (the default).
    #[command(visible_alias = "ls")]
    List(RigListArgs),
    /// Show what a rig name means and its image.
    #[command(visible_alias = "inspect")]
    Info(RigNameArgs),
    /// Build a working rig from this host's own programs (no registry needed).
    Bootstrap(BootstrapArgs),
    /// Remove a rig (its registry entry, and its image).
    #[command(visible_alias = "delete")]
    Rm(RigRmArgs),
}

#[derive(Debug, Args, Default)]
pub struct RigListArgs {
    /// Image names only.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RigNameArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The rig's name (image `kanibako-rig-NAME`).
    #[arg(default_value = "host")]
    pub name: String,
    /// Rebuild it if it exists.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RigRmArgs {
    pub name: String,
    /// Do not ask.
    #[arg(short, long)]
    pub force: bool,
}
