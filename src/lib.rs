//! kanibako runs AI coding agents inside podman or docker containers, one persistent
//! "box" per project. This crate is the `kanibako` binary's library.
//!
//! # Module map
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line as clap types; no I/O, no logic |
//! | [`commands`] | one handler per command; joins shortcuts with their `box …` forms |
//! | [`context`] | the per-run context: host, paths, global config, executor; start-up work |
//! | [`host`] | the only reader of environment variables, uid, cwd and tty state |
//! | [`paths`] | XDG base directories and the `system.path.*` tier |
//! | [`settings`] | the settings expression language (`~`, `$VAR`, `@key`) |
//! | [`init`] | first-run initialisation and legacy-layout migrations |
//! | [`boxes`] | box identity, names, `names.yaml`, resolution, creation, listing, the no-follow home |
//! | [`agents`] | agents (Claude Code): detection on the host, mounts, arguments |
//! | [`launch`] | `start`/`shell`: config levels, pure planning, home preparation, seeds, the run |
//! | [`rig`] | rigs: name resolution, `rigs.yaml`, the rig built from host programs |
//! | [`workset`] | worksets: the root layout, the one registry, members, create/connect/remove |
//! | [`vault`] | vault snapshots of `share-rw`: names, taking, listing, restoring, pruning |
//! | [`archive`] | box archives (`.txz`): member rules, manifest, info file, pack, staged extract |
//! | [`relocate`] | a box's recorded paths in `project.yaml`, rewritten for where it now lives |
//! | [`tweakcc`] | the agent binary patched by tweakcc, the Bun executable parser, the LRU cache |
//! | [`document`] | YAML documents on disk: the only `serde_yaml` user |
//! | [`envfile`] | `KEY=VALUE` env files |
//! | [`clock`] | timestamps as text (UTC calendar form, Python's ISO form) |
//! | [`fsutil`] | atomic, symlink-refusing writes and `flock`s |
//! | [`fstree`] | walking, copying (reflink / hard link / copy) and removing trees, never through a link |
//! | [`interrupt`] | Ctrl-C during long file work: a flag checked between steps |
//! | [`progress`] | progress bars, only on a terminal |
//! | [`runtime`] | engine detection (podman/docker), container labels, `RunSpec` → argv, queries |
//! | [`process`] | [`process::Invocation`] and the one executor that starts processes |
//! | [`prompt`] | yes/no questions that fail fast without a terminal |
//! | [`error`] | `Error:` lines, hints and exit codes |
//! | [`logging`] | `-v` / `KANIBAKO_LOG` tracing to stderr |
//!
//! # From argv to the engine
//!
//! `main` → [`run`]: [`cli::with_default_command`] inserts `start` where upstream would;
//! clap parses argv into [`cli::Cli`]; [`host::HostEnv::capture`] reads the environment
//! once; [`context::Context::load`] resolves paths, migrates and initialises;
//! [`commands::dispatch`] calls the handler. For `start`/`shell` that is
//! [`launch::run`]: it resolves (or creates) the box with [`boxes::resolve`], reads the
//! config levels ([`launch::levels`]), picks the agent ([`agents`]) and the in-box user,
//! gathers facts, and [`launch::plan::plan`] turns them into a
//! [`runtime::spec::RunSpec`] — pure — whose `to_args` is the engine argv (what
//! `--dry-run` prints). Only then does it lock the box, prepare the home
//! ([`launch::prep`], no-follow via [`boxes::home`]) and hand the
//! [`process::Invocation`] to the context's [`process::Executor`] — the only place a
//! child process starts, and where `-v` logs each call as a copy-pasteable command line.

pub mod agents;
pub mod archive;
pub mod boxes;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod context;
pub mod document;
pub mod envfile;
pub mod error;
pub mod fstree;
pub mod fsutil;
pub mod host;
pub mod init;
pub mod interrupt;
pub mod launch;
pub mod logging;
pub mod paths;
pub mod process;
pub mod progress;
pub mod prompt;
pub mod relocate;
pub mod rig;
pub mod runtime;
pub mod settings;
pub mod tweakcc;
pub mod vault;
pub mod workset;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::context::Context;
use crate::host::HostEnv;
use crate::process::SystemExecutor;

/// Run kanibako with these arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = cli::with_default_command(args.into_iter().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // clap prints usage errors (exit 2) and --help/--version (exit 0) itself.
        Err(e) => e.exit(),
    };
    let host = match HostEnv::capture() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("Error: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&host, cli.verbose);
    let result = Context::load(host, Box::new(SystemExecutor))
        .and_then(|cx| commands::dispatch(&cx, cli.command));
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            for line in error::report(&err) {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}
