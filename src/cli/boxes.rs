//! Arguments of the box commands and their top-level shortcuts
//! (`create`, `list`, `ps`, `rm` = `box create`, `box list`, `box ps`, `box rm`).

use clap::{Args, Subcommand};

use super::session::{ShellArgs, StartArgs, StopArgs};

#[derive(Debug, Subcommand)]
pub enum BoxCommand {
    /// Start the agent in a box (as `kanibako start`).
    Start(Box<StartArgs>),
    /// Open a shell in a box, or run one command there (as `kanibako shell`).
    Shell(Box<ShellArgs>),
    /// Stop a box's session (as `kanibako stop`).
    Stop(StopArgs),
    /// Create a box for a project directory without starting it.
    Create(BoxCreateArgs),
    /// List boxes and their status (the default).
    #[command(visible_alias = "ls")]
    List(BoxListArgs),
    /// List active boxes.
    Ps(PsArgs),
    /// Unregister a box (and with --purge delete its data).
    #[command(visible_alias = "delete")]
    Rm(RmArgs),
    /// Show a box's paths, settings and state.
    #[command(visible_alias = "inspect")]
    Info(InfoArgs),
    /// Read, set or reset a box's settings.
    Config(super::config::BoxConfigArgs),
    /// Archive a box's data (its home and metadata) to a .txz file.
    Archive(super::vault::ArchiveArgs),
    /// Extract a box archive: into a new box, or replacing a box's data.
    Extract(super::vault::ExtractArgs),
    /// Snapshots of the box's vault share-rw (snapshot, list, restore, prune).
    Vault(super::vault::VaultArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Project directory (default: the current directory); created if missing.
    pub path: Option<String>,
    /// Register under this name instead of the directory's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep all box state inside the project (`.kanibako/`) instead of kanibako's data
    /// directory; such a box has no registered name.
    #[arg(long)]
    pub standalone: bool,
    /// Rig (container image) this box runs on.
    #[arg(short = 'i', long = "image", value_name = "IMAGE")]
    pub image: Option<String>,
    /// No vault (`share-ro`/`share-rw`) for this box.
    #[arg(long)]
    pub no_vault: bool,
    /// This box logs in on its own instead of sharing the host's agent credentials.
    #[arg(long)]
    pub distinct_auth: bool,
    /// Allow a standalone box rooted at $HOME.
    #[arg(long)]
    pub allow_home: bool,
}

#[derive(Debug, Args)]
pub struct BoxCreateArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Same as --image.
    #[arg(long = "rig", value_name = "IMAGE", conflicts_with = "image")]
    pub rig: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct ListArgs {
    /// Only boxes whose container is running.
    #[arg(long)]
    pub active: bool,
    /// Include orphans (missing project directories, unregistered metadata).
    #[arg(short, long)]
    pub all: bool,
    /// Names only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BoxListArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only orphans.
    #[arg(long, conflicts_with_all = ["all", "active"])]
    pub orphan: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Every box, as `list --all`.
    #[arg(short, long)]
    pub all: bool,
    /// Names only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// A box name, or a project directory.
    pub target: String,
    /// Also delete the box's data (agent home, metadata).
    #[arg(long)]
    pub purge: bool,
    /// Do not ask before purging; purge even while the box is active.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A box name or project directory (default: the current directory).
    pub target: Option<String>,
}
