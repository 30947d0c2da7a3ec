//! Arguments of `box vault …` and of `box archive` / `box extract`.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    pub command: Option<VaultCommand>,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Snapshot the vault's share-rw (reflinks where the filesystem can, else hard
    /// links to the last snapshot for unchanged files, else copies).
    Snapshot(VaultTarget),
    /// List the vault's snapshots with their sizes (the default).
    List(VaultListArgs),
    /// Replace share-rw with a snapshot (the current contents are snapshotted first).
    Restore(VaultRestoreArgs),
    /// Remove old snapshots, keeping the newest ones.
    Prune(VaultPruneArgs),
}

#[derive(Debug, Args, Default)]
pub struct VaultTarget {
    /// A box name or project directory (default: the current directory).
    pub project: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct VaultListArgs {
    #[command(flatten)]
    pub target: VaultTarget,
    /// Snapshot names only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VaultRestoreArgs {
    /// Snapshot name, as `list` shows it (e.g. 20260221T103000Z or 20260221T103000Z.tar.xz).
    pub name: String,
    #[command(flatten)]
    pub target: VaultTarget,
    /// Do not ask before replacing share-rw.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VaultPruneArgs {
    #[command(flatten)]
    pub target: VaultTarget,
    /// Number of snapshots to keep.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub keep: usize,
    /// Do not ask before deleting.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// A box name or project directory (required unless --all).
    pub path: Option<String>,
    /// Output file (default: kanibako-<name>-<UTC stamp>.txz here; a directory gets
    /// that name inside it).
    pub file: Option<String>,
    /// Archive every box (default-mode and workset members), one file each.
    #[arg(long)]
    pub all: bool,
    /// Archive even when the project's git work tree has uncommitted changes.
    #[arg(long)]
    pub allow_uncommitted: bool,
    /// Archive even when the current branch has commits its upstream lacks.
    #[arg(long)]
    pub allow_unpushed: bool,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Also archive credentials: the agent's login in the box home and the box's env
    /// file (left out by default; the archive is 0600 either way).
    #[arg(long)]
    pub include_credentials: bool,
    /// No progress bar and no notes.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The archive (.txz) to extract (required unless --all).
    pub file: Option<String>,
    /// A box name or project directory (default: the current directory). A directory
    /// that is not a box yet becomes one (created if missing).
    pub path: Option<String>,
    /// Name for the new box (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Extract every kanibako-*.txz here into the project directory each one records.
    #[arg(long)]
    pub all: bool,
    /// Do not ask: replace an existing box's data, accept a path or git mismatch.
    #[arg(long)]
    pub force: bool,
    /// No progress bar and no notes.
    #[arg(short, long)]
    pub quiet: bool,
}
