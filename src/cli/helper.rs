//! Arguments of `crab helper …` and `crab fork` (run inside a box, talking to its hub)
//! and of the hidden `hub` command (the per-box host process).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum HelperCommand {
    /// Start a helper: another container of this box, numbered 1, 2, …
    Spawn(SpawnArgs),
    /// List this box's helpers (the default).
    #[command(visible_alias = "ls")]
    List(HelperListArgs),
    /// Stop a helper's container (it keeps its number; `respawn` starts it again).
    Stop(NumberArgs),
    /// Stop and remove a helper for good.
    Cleanup(CleanupArgs),
    /// Start a stopped helper again (same number, model and budget).
    Respawn(NumberArgs),
    /// Send a message to one member (0 is the director).
    Send(SendArgs),
    /// Send a message to every other member of the box.
    Broadcast(BroadcastArgs),
    /// Show the box's message log (what this member may read).
    Log(LogArgs),
    /// Ask the hub for an answer (with --count, time round trips).
    #[command(hide = true)]
    Ping(PingArgs),
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// Spawn depth for this spawn (-1: as much as the hub allows); only lowers it.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=1000))]
    pub depth: Option<i64>,
    /// Spawn breadth for this spawn (-1: as much as the hub allows); only lowers it.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=1000))]
    pub breadth: Option<i64>,
    /// The helper's model (for example `sonnet`).
    #[arg(long, value_name = "VARIANT")]
    pub model: Option<String>,
}

#[derive(Debug, Args, Default)]
pub struct HelperListArgs {
    /// Helper numbers only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NumberArgs {
    /// The helper's number.
    #[arg(value_parser = clap::value_parser!(u32).range(1..))]
    pub number: u32,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The helper's number.
    #[arg(value_parser = clap::value_parser!(u32).range(1..))]
    pub number: u32,
    /// Also remove the helpers it spawned, and theirs.
    #[arg(long)]
    pub cascade: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Who gets it: a helper's number, or 0 for the director.
    pub number: u32,
    /// The message text.
    pub message: String,
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The message text.
    pub message: String,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing new entries as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// Only entries from this member (0: the director).
    #[arg(long, value_name = "N")]
    pub from: Option<u32>,
    /// Only the last N entries.
    #[arg(long, value_name = "N")]
    pub last: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// Time this many round trips, on one connection and on a new one each.
    #[arg(long, value_name = "N")]
    pub count: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ForkArgs {
    /// The fork's name (the new project is `<project>.<NAME>`).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct HubArgs {
    /// The hub's configuration (`<runtime dir>/hub.json`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Stay attached to the terminal instead of becoming a daemon.
    #[arg(long)]
    pub foreground: bool,
}
