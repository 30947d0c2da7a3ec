//! The command line as clap types: no I/O and no logic, so the whole tree can be
//! checked (`Cli::command().debug_assert()`) and printed without side effects.
//!
//! Only commands that work are here; later ones join as they are built.

pub mod boxes;
pub mod config;
pub mod crab;
pub mod egress;
pub mod help;
pub mod helper;
pub mod rig;
pub mod session;
pub mod system;
pub mod vault;
pub mod workset;

use std::ffi::OsString;

use clap::{ArgAction, Parser, Subcommand};

pub use boxes::{BoxCommand, CreateArgs, InfoArgs, ListArgs, PsArgs, RmArgs};
pub use session::{LaunchArgs, ShellArgs, StartArgs, StopArgs};
pub use system::SystemCommand;

/// The marker [`with_default_command`] puts after an implied `start`.
pub const IMPLIED: &str = "--implied-start";

/// Upstream's command words below the top level, by parent (spec: upstream-cli-and-data
/// §2.1, with the helper's and the dead top-level ones): none of them may ever be taken
/// for a box (`kanibako vault` in a project with a `vault/` directory, `kanibako info
/// demo`). Where a word has several parents the first one listed is suggested.
const UPSTREAM_WORDS: &[(&str, &[&str])] = &[
    (
        "box",
        &[
            "info",
            "inspect",
            "config",
            "vault",
            "archive",
            "extract",
            "migrate",
            "duplicate",
            "move",
            "purge",
            "diagnose",
            "delete",
            "ls",
        ],
    ),
    ("crab", &["reauth", "helper", "fork"]),
    (
        "crab helper",
        &[
            "spawn",
            "respawn",
            "send",
            "broadcast",
            "log",
            "cleanup",
            "register",
        ],
    ),
    (
        "rig",
        &[
            "prep",
            "prepare",
            "add",
            "extend",
            "export",
            "import",
            "rebuild",
            "bootstrap",
        ],
    ),
    ("workset", &["connect", "disconnect"]),
    ("system", &["upgrade"]),
];

/// Upstream top-level words this version does not have.
const UPSTREAM_TOP: &[&str] = &["help"];

/// What a first word that is no command here means: `Some(message)` for a usage error,
/// `None` when it may be a box or directory (checked by `start`).
pub fn upstream_word(word: &str) -> Option<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let built = |path: &str| {
        let mut c = &cmd;
        for w in path.split(' ') {
            match c
                .get_subcommands()
                .find(|s| s.get_name() == w || s.get_all_aliases().any(|a| a == w))
            {
                Some(s) => c = s,
                None => return false,
            }
        }
        true
    };
    if UPSTREAM_TOP.contains(&word) {
        return Some(format!(
            "`kanibako {word}` is not in this version of kanibako"
        ));
    }
    let (parent, _) = UPSTREAM_WORDS.iter().find(|(_, ws)| ws.contains(&word))?;
    let full = format!("{parent} {word}");
    Some(if built(&full) {
        format!("'{word}' is not a command here; did you mean `kanibako {full}`?")
    } else {
        format!("`kanibako {full}` is not in this version of kanibako")
    })
}

/// The top-level command closest to `word` (a typo such as `lsit`), if one is close.
pub fn closest_command(word: &str) -> Option<String> {
    let cmd = <Cli as clap::CommandFactory>::command();
    cmd.get_subcommands()
        .filter(|c| !c.is_hide_set())
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_visible_aliases()))
        .map(|name| (distance(word, name), name))
        .filter(|(d, name)| *d <= 2.min(name.len() / 2))
        .min()
        .map(|(_, n)| n.to_owned())
}

/// Edit distance with adjacent transpositions (`lsit` is one step from `list`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Bare `kanibako`, or a first word that is not a command, means `start` (so
/// `kanibako myapp` starts the box `myapp`, and `kanibako -- -p hi` passes `-p hi` to the
/// agent). Global `-v` flags before the first word are skipped over. An implied `start`
/// carries [`IMPLIED`], so that `start` takes its word only for an existing directory
/// or a registered box. `kanibako help [WORD…]` is `kanibako [WORD…] --help`.
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
            let word = args[i].to_string_lossy().into_owned();
            if word == "help" {
                args.remove(i);
                args.push("--help".into());
                return args;
            }
            // The command words come from the clap tree itself, so they cannot drift.
            let cmd = <Cli as clap::CommandFactory>::command();
            let is_command = cmd
                .get_subcommands()
                .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word));
            let keep = is_command || matches!(word.as_ref(), "-h" | "--help" | "-V" | "--version");
            if !keep {
                args.insert(i, "start".into());
                if !word.starts_with('-') {
                    args.insert(i + 1, IMPLIED.into());
                }
            }
        }
    }
    args
}

/// Parse argv with the whole help text attached ([`help::decorate`]); the derive's own
/// `try_parse_from` would print help without the epilogue and examples.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches =
        help::decorate(<Cli as clap::CommandFactory>::command()).try_get_matches_from(args)?;
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
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
    /// kanibako itself (`system` alone: `system info`).
    System {
        #[command(subcommand)]
        command: Option<SystemCommand>,
    },
    /// Check the engine, agents and rig, and offer to fix what is missing (each fix
    /// shown as the command it runs, asked one by one).
    Setup(system::SetupArgs),
    /// Print a shell completion script (box, workset, rig and crab names complete from
    /// the registry): `source <(kanibako completions bash)`.
    Completions(system::CompletionsArgs),
    /// Manual pages: print kanibako's, or with DIR write one per command there.
    Man(system::ManArgs),
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
        assert_eq!(
            norm(&["kanibako", "myapp"]),
            ["kanibako", "start", IMPLIED, "myapp"]
        );
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
        assert_eq!(
            norm(&["kanibako", "hub"]),
            ["kanibako", "start", IMPLIED, "hub"]
        );
        assert_eq!(norm(&["kanibako", "_hub"]), ["kanibako", "_hub"]);
    }

    #[test]
    fn help_is_help_and_upstream_words_never_mean_start() {
        assert_eq!(norm(&["kanibako", "help"]), ["kanibako", "--help"]);
        assert_eq!(
            norm(&["kanibako", "help", "rig"]),
            ["kanibako", "rig", "--help"]
        );
        let err = Cli::try_parse_from(norm(&["kanibako", "help"])).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(
            upstream_word("info").as_deref(),
            Some("'info' is not a command here; did you mean `kanibako box info`?")
        );
        assert_eq!(
            upstream_word("vault").as_deref(),
            Some("'vault' is not a command here; did you mean `kanibako box vault`?")
        );
        assert_eq!(norm(&["kanibako", "setup"]), ["kanibako", "setup"]);
        assert!(
            upstream_word("upgrade")
                .unwrap()
                .contains("`kanibako system upgrade`")
        );
        assert!(
            upstream_word("reauth")
                .unwrap()
                .contains("`kanibako crab reauth`")
        );
        assert_eq!(upstream_word("myapp"), None);
        // every upstream word of the spec's tree is either a command or refused
        for (_, words) in UPSTREAM_WORDS {
            for w in *words {
                assert!(upstream_word(w).is_some(), "{w}");
            }
        }
    }

    #[test]
    fn typos_get_the_closest_command() {
        assert_eq!(closest_command("lsit").as_deref(), Some("list"));
        assert_eq!(closest_command("strat").as_deref(), Some("start"));
        assert_eq!(closest_command("shel").as_deref(), Some("shell"));
        assert_eq!(closest_command("myproject"), None);
        assert_eq!(closest_command("app"), None);
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
