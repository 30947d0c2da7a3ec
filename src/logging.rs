//! Diagnostics on stderr: `-v` turns on debug output (every engine call as a command
//! line), `-vv` trace; `KANIBAKO_LOG` (a tracing filter) overrides both.

use tracing_subscriber::EnvFilter;

use crate::host::{HostEnv, vars};

pub fn init(host: &HostEnv, verbose: u8) {
    let filter = match host.var_str(vars::LOG) {
        Some(f) => EnvFilter::new(f),
        None => EnvFilter::new(match verbose {
            0 => "kanibako=warn",
            1 => "kanibako=debug",
            _ => "kanibako=trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .try_init();
}
