//! The command line as clap types: no I/O and no logic, so the whole tree can be
//! checked (`Cli::command().debug_assert()`) and printed without side effects.
//!
//! Only commands that work are here; later ones join as they are built.

pub mod boxes;

use clap::{ArgAction, Parser, Subcommand};

pub use boxes::{BoxCommand, CreateArgs, InfoArgs, ListArgs, PsArgs, RmArgs};

#[derive(Debug, Parser)]
#[command(
    name = "kanibako",
    version,
    about = "Run AI coding agents in podman or docker containers, one persistent box per project",
    disable_help_subcommand = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log what kanibako does (each engine call as a command line) to stderr.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a box for a project directory without starting it.
    Create(CreateArgs),
    /// List boxes and their status.
    List(ListArgs),
    /// List active boxes (same as `list --active`).
    Ps(PsArgs),
    /// Unregister a box (and with --purge delete its data).
    Rm(RmArgs),
    /// Manage boxes.
    #[command(name = "box", visible_alias = "container")]
    Box {
        #[command(subcommand)]
        command: Option<BoxCommand>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbose_is_global_but_not_after_double_dash() {
        let cli = Cli::try_parse_from(["kanibako", "list", "-v"]).unwrap();
        assert_eq!(cli.verbose, 1);
        let cli = Cli::try_parse_from(["kanibako", "-vv", "box", "ls"]).unwrap();
        assert_eq!(cli.verbose, 2);
    }

    #[test]
    fn container_is_an_alias_of_box() {
        let cli = Cli::try_parse_from(["kanibako", "container", "ls", "-q"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Box {
                command: Some(BoxCommand::List(_))
            }
        ));
    }
}
