//! Arguments of `start` and `shell` (and `box start`, `box shell`).

use std::ffi::OsString;

use clap::Args;

/// Switches every launch takes.
#[derive(Debug, Args, Clone)]
pub struct LaunchArgs {
    /// Set an environment variable in the box for this run (repeatable). The value
    /// reaches the box without appearing on any command line.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Rig (container image) for this run; pinned into a box this run creates.
    #[arg(
        long,
        visible_alias = "image",
        value_name = "IMAGE",
        overrides_with = "rig"
    )]
    pub rig: Option<String>,
    /// Run this instead of the agent (or shell); the arguments after -- go to it.
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Print the engine command(s) that would run, and change nothing. With -v, also the
    /// environment (secret-looking values masked).
    #[arg(long)]
    pub dry_run: bool,
    /// Run in the foreground and remove the container on exit (always so for `shell`).
    #[arg(long)]
    pub ephemeral: bool,
    /// Mount the host's image store read-only into the box (podman), so the box's own
    /// podman can use the host's images (default: `box.share_images`).
    #[arg(long, overrides_with = "no_share_images")]
    pub share_images: bool,
    /// Do not mount the host's image store, whatever `box.share_images` says.
    #[arg(long, overrides_with = "share_images")]
    pub no_share_images: bool,
    /// No helper hub for this session: the box's agent cannot spawn helpers (default:
    /// `allow_helpers`).
    #[arg(long)]
    pub no_helpers: bool,
    /// Start a headless Chromium beside the box for the session (`box.browser_image`)
    /// and give the agent its DevTools endpoint as BROWSER_WS_ENDPOINT; the endpoint is
    /// reachable from the box alone. A sidecar that does not start is a warning.
    #[arg(long)]
    pub browser: bool,
}

#[derive(Debug, Args, Clone)]
pub struct StartArgs {
    /// Box name or project directory (default: the current directory; a new directory
    /// becomes a box).
    pub project: Option<String>,
    /// Start a new conversation instead of continuing the last one.
    #[arg(short = 'N', long = "new", conflicts_with_all = ["resume", "cont"])]
    pub new: bool,
    /// Continue the last conversation (the default for existing boxes).
    #[arg(short = 'C', long = "continue", id = "cont")]
    pub cont: bool,
    /// Pick a conversation to resume (Claude Code: --resume; Codex: resume; Goose has
    /// no picker: its last session is resumed, as with -C).
    #[arg(short = 'R', long)]
    pub resume: bool,
    /// Let the agent act without asking (the default).
    #[arg(short = 'A', long, conflicts_with = "secure")]
    pub autonomous: bool,
    /// Keep the agent's permission prompts.
    #[arg(short = 'S', long)]
    pub secure: bool,
    /// Model for this run.
    #[arg(short = 'M', long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Run the agent in a tmux session that survives a closed terminal (the default
    /// when tmux is installed on the host); `start` again re-attaches, `stop` ends it.
    #[arg(long, conflicts_with = "ephemeral")]
    pub persistent: bool,
    /// The agent for this run: claude, codex, goose or no_agent (default: box.crab,
    /// else whichever is installed).
    #[arg(long, value_name = "NAME")]
    pub crab: Option<String>,
    /// Never start the agent's login: a host that is not logged in is reported, and
    /// the launch stops (a login is otherwise started only when the host's is missing
    /// or expired, and only at a terminal).
    #[arg(long)]
    pub no_auto_auth: bool,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// Arguments for the agent, after `--`.
    #[arg(last = true, value_name = "AGENT_ARGS")]
    pub args: Vec<String>,
    /// Set when `start` was not typed but implied by a first word that is no command
    /// ([`super::with_default_command`]): that word must then be a directory or a box.
    #[arg(long = "implied-start", hide = true)]
    pub implied: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ShellArgs {
    /// Box name or project directory (default: the current directory).
    pub project: Option<String>,
    /// Run the shell in a tmux session that survives a closed terminal (`shell` is
    /// otherwise ephemeral); while the box's container runs, `shell` joins it.
    #[arg(long, conflicts_with = "ephemeral")]
    pub persistent: bool,
    #[command(flatten)]
    pub launch: LaunchArgs,
    /// A command and its arguments, after `--`, passed exactly as given (no shell
    /// re-parsing: use `sh -c '…'` for a shell line). Default: an interactive bash.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args, Clone)]
pub struct StopArgs {
    /// Box name or project directory (default: the current directory).
    #[arg(conflicts_with = "all")]
    pub project: Option<String>,
    /// Stop every running kanibako container.
    #[arg(long)]
    pub all: bool,
    /// Do not ask before stopping everything.
    #[arg(short, long)]
    pub force: bool,
}
