//! Arguments of `kanibako system …` and of `box diagnose`.

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the version, paths, engine and install kind of kanibako.
    #[command(visible_alias = "inspect")]
    Info(JsonArgs),
    /// Read, set or reset settings for all boxes (`kanibako.yaml`, `$DATA/env`).
    Config(super::config::SystemConfigArgs),
    /// Check the machine: engine, rootless setup, storage, limits, rig, boxes' files.
    /// Every `[!!]` line is followed by the command that fixes it; exit 1 if any.
    Diagnose(JsonArgs),
    /// Update kanibako: in its source checkout `git pull --ff-only`, then
    /// `cargo install --locked --path <checkout>`; for another binary, say how.
    Upgrade(UpgradeArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct JsonArgs {
    /// Print JSON (with `schema_version`) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct BoxDiagnoseArgs {
    /// A box name, WORKSET/NAME or project directory (default: the current directory).
    pub target: Option<String>,
    #[command(flatten)]
    pub json: JsonArgs,
}

#[derive(Debug, Args, Clone, Default)]
pub struct SetupArgs {
    /// Apply every fix without asking (without a terminal and without this, setup
    /// only reports).
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args, Clone, Default)]
pub struct UpgradeArgs {
    /// Only say whether a newer version is there.
    #[arg(long)]
    pub check: bool,
    /// The kanibako checkout to update (default: the one this binary was built in,
    /// or installed from with `cargo install --path`).
    #[arg(long, value_name = "DIR")]
    pub source: Option<String>,
}

/// The shells `kanibako completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    pub shell: CompletionShell,
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Write a page for every command into DIR (default: print the top page).
    pub dir: Option<std::path::PathBuf>,
}
