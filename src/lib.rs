//! kanibako runs AI coding agents inside podman or docker containers, one persistent
//! "box" per project. This crate is the `kanibako` binary's library.
//!
//! # Module map
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line as clap types; no I/O, no logic |
//! | [`completion`] | shell completion scripts and the dynamic names (boxes, worksets, rigs, crabs) they ask for |
//! | [`commands`] | one handler per command; joins shortcuts with their `box …` forms |
//! | [`context`] | the per-run context: host, paths, global config, executor; start-up work |
//! | [`host`] | the only reader of environment variables, uid, cwd and tty state |
//! | [`paths`] | XDG base directories and the `system.path.*` tier |
//! | [`settings`] | the settings expression language (`~`, `$VAR`, `@key`) |
//! | [`init`] | first-run initialisation and legacy-layout migrations |
//! | [`boxes`] | box identity, names, `names.yaml`, resolution (workset members too: [`boxes::worksets`]), creation, listing, the no-follow home; addressing (`NAME`, `WORKSET/NAME`, PATH), and moving or copying a box's trees ([`boxes::transfer`] plans, [`boxes::relocation`] does) |
//! | [`agents`] | agents (Claude Code, Codex CLI, Goose) behind one trait: detection on the host, mounts, arguments, login files and commands, crab profiles |
//! | [`launch`] | `start`/`shell` as a pipeline of stages: request, target, settings, image, state, a pure decide, facts, the pure plan, companions, home, lock, execute |
//! | [`rig`] | rigs: name resolution, `rigs.yaml`, local images, building templates, the rig built from host programs |
//! | [`workset`] | worksets: making, joining and removing them (reading them is [`boxes::worksets`]) |
//! | [`vault`] | vault snapshots of `share-rw`: names, taking, listing, restoring, pruning |
//! | [`archive`] | box archives (`.txz`): member rules, manifest, info file, pack, staged extract |
//! | [`relocate`] | a box's recorded paths in `project.yaml`, rewritten for where it now lives |
//! | [`remote`] | a box's run on a remote engine: the project mapped (`box.remote_path`), local-only mounts copied into the home, what cannot be had there refused, the sources checked on the engine's host |
//! | [`hub`] | the helper hub: per-box host process, its protocol and limits, the in-box client |
//! | [`tweakcc`] | the agent binary patched by tweakcc, the Bun executable parser, the LRU cache, a session's patched binary |
//! | [`egress`] | per-box network egress: policy, the host-side proxy, the in-box forwarder |
//! | [`browser`] | the `--browser` sidecar: its run planned from the box's ([`browser::plan`]), started beside the box, its DevTools endpoint read from its profile, removed with the box |
//! | [`diagnose`] | health checks (`system diagnose`, `box diagnose`, `setup`): pure checks with their fix commands, a read-only probe, text/JSON reports, colour |
//! | [`document`] | YAML documents on disk through a small typed API: the only `serde_yaml` user |
//! | [`envfile`] | `KEY=VALUE` env files |
//! | [`clock`] | timestamps as text (UTC calendar form, Python's ISO form) |
//! | [`fsutil`] | atomic, symlink-refusing writes and `flock`s |
//! | [`fstree`] | walking, copying (reflink / hard link / copy) and removing trees, never through a link |
//! | [`interrupt`] | Ctrl-C during long file work: a flag checked between steps |
//! | [`progress`] | progress bars, only on a terminal |
//! | [`runtime`] | the engine: detection, podman/docker differences as capabilities, labels, `RunSpec` → argv, every engine call as a typed method (builder + parser) by noun |
//! | [`process`] | [`process::Invocation`] and the one executor (`Send + Sync`) that starts processes |
//! | [`output`] | warnings, hints, notes and progress on stderr (stdout is for data) |
//! | [`json_output`] | the one envelope of every `--json` document (`schema_version` first) |
//! | [`prompt`] | yes/no questions that fail fast without a terminal |
//! | [`error`] | `Error:` lines, hints and exit codes |
//! | [`manpage`] | man pages from the command tree |
//! | [`logging`] | `-v` / `KANIBAKO_LOG` tracing to stderr |
//!
//! # From argv to the engine
//!
//! `main` → [`run`]: [`cli::with_default_command`] inserts `start` where upstream would;
//! clap parses argv into [`cli::Cli`]; [`host::HostEnv::capture`] reads the environment
//! once; [`context::Context::load`] resolves paths, migrates and initialises;
//! [`commands::dispatch`] calls the handler. For `start`/`shell` that is
//! [`launch::run`], a short pipeline: it resolves (or creates) the box with
//! [`boxes::resolve`] and picks the agent ([`launch::target`]), resolves every launch
//! setting from its flag and the levels ([`launch::settings`]), makes the rig an image,
//! looks once at the box's container and decides ([`launch::decide`], pure), gathers
//! the facts ([`launch::facts`]), and [`launch::plan::plan`] turns them into a
//! [`runtime::spec::RunSpec`] — pure — whose `to_args` is the engine argv (what
//! `--dry-run` prints). Only then does it lock the box, prepare the home
//! ([`launch::home`], no-follow via [`boxes::home`]) and run it through a typed
//! [`runtime::Runtime`] method, which hands the [`process::Invocation`] to the
//! context's [`process::Executor`] — the only place a child process starts, and where
//! `-v` logs each call as a copy-pasteable command line.

pub mod agents;
pub mod archive;
pub mod boxes;
pub mod browser;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod completion;
pub mod context;
pub mod diagnose;
pub mod document;
pub mod egress;
pub mod envfile;
pub mod error;
pub mod fault;
pub mod fstree;
pub mod fsutil;
#[cfg(test)]
mod fuzzing;
pub mod hardening;
pub mod hex;
pub mod host;
pub mod hub;
pub mod init;
pub mod interrupt;
pub mod json_output;
pub mod launch;
pub mod logging;
pub mod manpage;
pub mod output;
pub mod paths;
pub mod process;
pub mod progress;
pub mod prompt;
pub mod relocate;
pub mod remote;
pub mod rig;
pub mod runtime;
pub mod settings;
pub mod tweakcc;
pub mod vault;
pub mod workset;

use std::ffi::OsString;
use std::process::ExitCode;

use crate::context::Context;
use crate::host::HostEnv;
use crate::process::SystemExecutor;

/// Run kanibako with these arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    // A Tab press in a shell with kanibako's completion script: answered at once.
    if completion::answer(&args) {
        return ExitCode::SUCCESS;
    }
    let args = cli::with_default_command(args);
    // An upstream command word is never taken for a box, even where a directory of that
    // name exists (`kanibako vault` in a project): a usage error, as clap's are.
    if let Some(msg) = args
        .iter()
        .position(|a| a == cli::IMPLIED)
        .and_then(|i| args.get(i + 1))
        .and_then(|w| cli::upstream_word(&w.to_string_lossy()))
    {
        output::error(&[
            format!("Error: {msg}"),
            "hint: `kanibako --help` lists the commands".into(),
        ]);
        return ExitCode::from(2);
    }
    let cli = match cli::try_parse_from(args) {
        Ok(cli) => cli,
        // clap prints usage errors (exit 2) and --help/--version (exit 0) itself.
        Err(e) => e.exit(),
    };
    let host = match HostEnv::capture() {
        Ok(h) => h,
        Err(e) => {
            output::error(&[format!("Error: cannot read the current directory: {e}")]);
            return ExitCode::FAILURE;
        }
    };
    logging::init(&host, cli.verbose);
    output::colour(diagnose::style::wanted(&host, host.stderr_tty));
    // The hidden plumbing run inside a box (`egress-*`, `crab helper`, `crab fork`) or as
    // a box's host process (`_hub`) needs none of the start-up work.
    let result = match cli.command {
        cli::Command::Egress(c) => commands::egress::run(c),
        command => match commands::helper::early(&host, command) {
            Ok(done) => done,
            // The checks read the machine as it is: no start-up work (which writes).
            Err(command) => match commands::system::early(&host, *command) {
                Ok(done) => done,
                Err(command) => Context::load(host, std::sync::Arc::new(SystemExecutor))
                    .and_then(|cx| commands::dispatch(&cx, *command)),
            },
        },
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            output::error(&error::report(&err));
            ExitCode::FAILURE
        }
    }
}
