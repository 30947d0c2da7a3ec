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
    /// Make a rig ready: build a template, pull a prefab.
    #[command(visible_alias = "prepare")]
    Prep(PrepArgs),
    /// Register a rig: an image reference, an image archive or a Containerfile.
    Add(AddArgs),
    /// Make a new rig by working in a shell on another one, then saving it.
    Extend(ExtendArgs),
    /// Write an extended rig to a bundle file.
    Export(ExportArgs),
    /// Load an extended rig from a bundle file.
    Import(ImportArgs),
    /// Check the engine, its limits, the configured rig and the local kanibako images.
    /// Every `[!!]` line is followed by the command that fixes it; exit 1 if any.
    Diagnose(super::system::JsonArgs),
    /// Upstream's deprecated `rig create`: says what replaces it (`rig prep` for
    /// `--template`, else `rig extend`), then does that.
    #[command(hide = true)]
    Create(CreateArgs),
    /// Upstream's deprecated `rig rebuild`: says it is `rig prep --force`, then does that.
    #[command(hide = true)]
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The rig's name.
    pub name: String,
    /// The rig to start from (`--template`: the image the template builds on).
    #[arg(long, value_name = "RIG")]
    pub base: Option<String>,
    /// Build this template (as `rig prep TEMPLATE`).
    #[arg(long, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Save the container even if the shell exits with an error.
    #[arg(long, conflicts_with = "no_commit_on_error")]
    pub always_commit: bool,
    /// Discard the container if the shell exits with an error.
    #[arg(long)]
    pub no_commit_on_error: bool,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The rig (default: the one configured for all boxes).
    pub image: Option<String>,
    /// Every template kanibako knows.
    #[arg(long, conflicts_with = "image")]
    pub all: bool,
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
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Args)]
pub struct PrepArgs {
    /// The rig (required unless --all).
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
    /// Build or pull it again even if it is ready.
    #[arg(short, long)]
    pub force: bool,
    /// Every template kanibako knows.
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// An image reference, an image archive (tar), or a Containerfile.
    pub source: String,
    /// The rig's name (default: derived from the source).
    #[arg(long)]
    pub name: Option<String>,
    /// What the source is, when it cannot be told.
    #[arg(long = "as", value_parser = ["image", "template"])]
    pub kind: Option<String>,
    /// Replace a rig of the same name.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The new rig's name (image `kanibako-rig-NAME`).
    pub name: String,
    /// The rig to start from.
    #[arg(long, value_name = "RIG")]
    pub from: String,
    /// Save the container even if the shell exits with an error.
    #[arg(long, conflicts_with = "no_commit_on_error")]
    pub always_commit: bool,
    /// Discard the container if the shell exits with an error.
    #[arg(long)]
    pub no_commit_on_error: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// An extended rig.
    pub name: String,
    /// The bundle to write (default: NAME.rig.tgz here).
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A bundle written by `rig export`.
    pub file: String,
}
