//! Arguments of the hidden egress plumbing commands: the host-side proxy, the in-box
//! forwarder, the in-box self-test and a CONNECT client. Not in `--help`: a box
//! launch starts them, users never do.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Serve the egress proxy on a Unix socket with a policy file.
    #[command(name = "egress-serve", hide = true)]
    Serve(ServeArgs),
    /// In a box: relay a loopback TCP port to the mounted proxy socket.
    #[command(name = "egress-forward", hide = true)]
    Forward(ForwardArgs),
    /// In a box: check that the way out is kanibako's proxy and that there is no other.
    #[command(name = "egress-check", hide = true)]
    Check(CheckArgs),
    /// Open a tunnel through the proxy and join it to stdin/stdout (an ssh ProxyCommand).
    #[command(name = "egress-connect", hide = true)]
    Connect(ConnectArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RelayArg {
    Splice,
    Copy,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The socket to create (a stale socket there is replaced).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The policy: JSON with `allow`, `allow_private`, `deny` (lists of rules) and
    /// `learn`. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The decision log (JSON lines).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The box member this socket belongs to, named in every log line.
    #[arg(long, default_value = "director")]
    pub member: String,
    /// Hand the socket to this uid:gid (the box user's host ids).
    #[arg(long, value_name = "UID:GID", value_parser = parse_owner)]
    pub owner: Option<(u32, u32)>,
    /// Connections open at once; beyond it the proxy answers 429.
    #[arg(long, default_value_t = 256)]
    pub max_tunnels: usize,
    /// Seconds without bytes either way before a tunnel is closed.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
    /// Seconds the whole request head may take to arrive.
    #[arg(long, default_value_t = 10)]
    pub head_timeout: u64,
    /// Answer NAME with ADDR instead of asking DNS (repeatable).
    #[arg(long, value_name = "NAME=ADDR")]
    pub resolve: Vec<String>,
    #[arg(long, value_enum, default_value_t = RelayArg::Splice)]
    pub relay: RelayArg,
}

fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    Ok((
        u.parse().map_err(|_| format!("bad uid {u:?}"))?,
        g.parse().map_err(|_| format!("bad gid {g:?}"))?,
    ))
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// The loopback address to listen on.
    #[arg(default_value = "127.0.0.1:3128")]
    pub listen: SocketAddr,
    /// The proxy's socket, as mounted in the box.
    #[arg(default_value = "/run/kanibako/egress.sock")]
    pub socket: PathBuf,
    /// Return once listening, forwarding on in the background.
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The forwarder's address.
    #[arg(long, default_value = "127.0.0.1:3128")]
    pub proxy: SocketAddr,
    /// Seconds each check may take.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The forwarder's address.
    #[arg(long, default_value = "127.0.0.1:3128")]
    pub proxy: SocketAddr,
    pub host: String,
    pub port: u16,
}
