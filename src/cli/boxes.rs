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
    /// Move a box's project directory; its name, home and vault follow.
    Move(MoveArgs),
    /// Re-attach a box to its moved directory (OLD NEW), or change its mode (--to).
    Migrate(MigrateArgs),
    /// Make a new box with its own copy of a box's files, home and vault.
    Duplicate(DuplicateArgs),
    /// Delete a box's session data (home, metadata) and release its name.
    Purge(PurgeArgs),
    /// Check one box: its directories, lock, home and login files.
    Diagnose(super::system::BoxDiagnoseArgs),
    /// The box's network: what it tried to reach under `box.network=allowlist`.
    Net {
        #[command(subcommand)]
        command: NetCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// What the box tried to reach through its egress proxy, allowed or refused, and why.
    Log(NetLogArgs),
    /// Run a session of the box in learn mode (under allowlist, letting out and logging
    /// what no rule allows), then propose the box.allow entries it needed.
    Learn(NetLearnArgs),
}

#[derive(Debug, Args)]
pub struct NetLearnArgs {
    /// A box name or project directory (default: the current directory).
    pub target: Option<String>,
    /// Add the proposed entries to the box's box.allow without asking.
    #[arg(short, long)]
    pub force: bool,
    /// Learn from this command (after `--`, as `shell` runs it) instead of the agent.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct NetLogArgs {
    /// A box name or project directory (default: the current directory).
    pub target: Option<String>,
    /// Machine-readable output (the records, in the one JSON envelope).
    #[arg(long)]
    pub json: bool,
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
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// [PROJECT] DEST: the box (a name, WORKSET/NAME or directory; default: the current
    /// directory) and where its project directory goes (must not exist).
    #[arg(num_args = 1..=2, required = true, value_names = ["PROJECT", "DEST"])]
    pub args: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// The modes `box migrate --to` converts between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrateTo {
    /// State in kanibako's data directory, under a registered name.
    Default,
    /// State inside the project (`.kanibako/`), no registered name.
    Standalone,
    /// A member of a workset (--workset): the project directory moves into it.
    Workset,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Path remap: the directory the box was registered for (or its name). With --to:
    /// the box to convert (default: the current directory).
    pub old_path: Option<String>,
    /// Path remap: where that directory is now (default: the current directory). With
    /// --to default from a workset: where the member's project directory goes (default:
    /// the source it was connected from).
    pub new_path: Option<String>,
    /// Convert the box to this mode instead of remapping a path.
    #[arg(long, value_enum, value_name = "MODE")]
    pub to: Option<MigrateTo>,
    /// The workset to join (--to workset).
    #[arg(long, value_name = "WS", requires = "to")]
    pub workset: Option<String>,
    /// The name to register (--to default), or the member's name in the workset (--to
    /// workset); default: the directory's name.
    #[arg(long, requires = "to")]
    pub name: Option<String>,
    /// With --to workset: the project directory stays where it is and the member works
    /// there (its home and vault still move into the workset).
    #[arg(long, requires = "to")]
    pub in_place: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DuplicateArgs {
    /// The box to copy: a name, WORKSET/NAME or project directory.
    pub source_path: String,
    /// The new box's project directory (must not exist, unless --bare).
    pub new_path: String,
    /// Copy the box only (home, vault, settings), not the project's files; the new
    /// directory may already exist.
    #[arg(long)]
    pub bare: bool,
    /// Register the new box under this name (default: the new directory's name); with
    /// --to workset, the member's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The new box's mode (default: the source's). With workset, NEW names the member
    /// (unless --name) and the copy goes to the workset's `workspaces/`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub to: Option<MigrateTo>,
    /// The workset the new box joins (--to workset).
    #[arg(long, value_name = "WS")]
    pub workset: Option<String>,
    /// The new box logs in on its own: no agent login is copied and it never shares
    /// the host's.
    #[arg(long)]
    pub distinct_auth: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// A box name, WORKSET/NAME or project directory (required unless --all).
    pub path: Option<String>,
    /// Purge every default-mode box and workset member.
    #[arg(long, conflicts_with = "path")]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}
