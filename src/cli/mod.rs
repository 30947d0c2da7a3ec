//! The command line as clap types: no I/O and no logic, so the whole tree can be
//! checked (`Cli::command().debug_assert()`) and printed without side effects.
//!
//! Only commands that work are here; later ones join as they are built.

pub mod boxes;
pub mod config;
pub mod crab;
pub mod egress;
pub mod helper;
pub mod rig;
pub mod session;
pub mod vault;
pub mod workset;

use std::ffi::OsString;

use clap::{ArgAction, Parser, Subcommand};

pub use boxes::{BoxCommand, CreateArgs, InfoArgs, ListArgs, PsArgs, RmArgs};
pub use session::{LaunchArgs, ShellArgs, StartArgs, StopArgs};

/// Bare `kanibako`, or a first word that is not a command, means `start` (so
/// `kanibako myapp` starts the box `myapp`, and `kanibako -- -p hi` passes `-p hi` to the
/// agent). Global `-v` flags before the first word are skipped over.
pub fn with_default_command(args: Vec<OsString>) -> Vec<OsString> {
    let mut args = args;
    let first = args
        .iter()
        .skip(1)
        .position(|a| {
            let s = a.to_string_lossy();
            !(s == "--verbose" || (s.starts_with("-v") && s[1..].chars().all(|c| c == 'v')))
        })
        .map(|i| i + 1);
    match first {
        None => args.push("start".into()),
        Some(i) => {
            let word = args[i].to_string_lossy();
            // The command words come from the clap tree itself, so they cannot drift.
            let cmd = <Cli as clap::CommandFactory>::command();
            let is_command = cmd
                .get_subcommands()
                .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word));
            let keep = is_command || matches!(word.as_ref(), "-h" | "--help" | "-V" | "--version");
            if !keep {
                args.insert(i, "start".into());
            }
        }
    }
    args
}

#[derive(Debug, Parser)]
#[command(
    name = "kanibako",
    version,
    about = "Run AI coding agents in podman or docker containers, one persistent box per project",
    disable_help_subcommand = true,
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
    /// Start the agent in a box (the default command: `kanibako` alone starts the box of
    /// the current directory, creating it if needed).
    Start(Box<StartArgs>),
    /// Open a shell in a box, or run one command there (`shell -- cmd args`).
    Shell(Box<ShellArgs>),
    /// Stop a box's session (or every one with --all).
    Stop(StopArgs),
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
    /// Agents and their profiles ("crabs").
    #[command(visible_alias = "agent")]
    Crab {
        #[command(subcommand)]
        command: Option<crab::CrabCommand>,
    },
    /// kanibako itself.
    #[command(subcommand)]
    System(SystemCommand),
    /// Rigs: the images boxes run on.
    #[command(visible_alias = "image")]
    Rig {
        #[command(subcommand)]
        command: Option<rig::RigCommand>,
    },
    /// Worksets: groups of boxes under one root that share settings.
    Workset {
        #[command(subcommand)]
        command: Option<workset::WorksetCommand>,
    },
    /// The hidden egress plumbing (`egress-serve`, `egress-forward`, …).
    #[command(flatten)]
    Egress(egress::EgressCommand),
    /// The helper hub of one box (started by kanibako itself). The leading `_` keeps
    /// it from ever shadowing a box: `kanibako NAME` starts the box NAME, and box names
    /// start with a letter or digit.
    #[command(name = "_hub", hide = true)]
    Hub(helper::HubArgs),
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Read, set or reset settings for all boxes (`kanibako.yaml`, `$DATA/env`).
    Config(config::SystemConfigArgs),
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

    fn norm(args: &[&str]) -> Vec<String> {
        with_default_command(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn unknown_first_words_mean_start() {
        assert_eq!(norm(&["kanibako"]), ["kanibako", "start"]);
        assert_eq!(norm(&["kanibako", "myapp"]), ["kanibako", "start", "myapp"]);
        assert_eq!(norm(&["kanibako", "-N"]), ["kanibako", "start", "-N"]);
        assert_eq!(
            norm(&["kanibako", "-v", "--", "-p"]),
            ["kanibako", "-v", "start", "--", "-p"]
        );
        assert_eq!(norm(&["kanibako", "-v"]), ["kanibako", "-v", "start"]);
        assert_eq!(
            norm(&["kanibako", "list", "-a"]),
            ["kanibako", "list", "-a"]
        );
        assert_eq!(norm(&["kanibako", "--version"]), ["kanibako", "--version"]);
        assert_eq!(norm(&["kanibako", "-vv", "ps"]), ["kanibako", "-vv", "ps"]);
        for word in [
            "start",
            "shell",
            "stop",
            "create",
            "list",
            "ps",
            "rm",
            "box",
            "container",
        ] {
            assert_eq!(
                norm(&["kanibako", word]),
                ["kanibako", word],
                "{word} is a command"
            );
        }
    }

    #[test]
    fn arguments_after_double_dash_are_untouched() {
        let cli = Cli::try_parse_from(norm(&["kanibako", "shell", "--", "ls", "-v", "--verbose"]))
            .unwrap();
        assert_eq!(cli.verbose, 0);
        let Command::Shell(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.command, ["ls", "-v", "--verbose"]);
        // and under `box` too (upstream had no `--` split there)
        let cli =
            Cli::try_parse_from(["kanibako", "box", "start", "--", "--foo", "--bar"]).unwrap();
        let Command::Box {
            command: Some(BoxCommand::Start(a)),
        } = cli.command
        else {
            panic!()
        };
        assert_eq!(a.args, ["--foo", "--bar"]);
    }

    #[test]
    fn conflicting_switches_are_usage_errors() {
        for bad in [["-N", "-R"], ["-A", "-S"]] {
            let mut args = vec!["kanibako", "start"];
            args.extend(bad);
            assert!(Cli::try_parse_from(args).is_err());
        }
        let cli = Cli::try_parse_from(["kanibako", "start", "--image", "a", "--rig", "b"]).unwrap();
        let Command::Start(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.launch.rig.as_deref(), Some("b"), "the last one wins");
    }

    #[test]
    fn a_box_named_like_an_internal_command_still_starts() {
        assert_eq!(norm(&["kanibako", "hub"]), ["kanibako", "start", "hub"]);
        assert_eq!(norm(&["kanibako", "_hub"]), ["kanibako", "_hub"]);
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
