//! `kanibako setup`: upstream's three steps (container runtime, agents, rig), then
//! the fixes [`crate::diagnose::setup`] plans — each shown as the exact command it
//! runs and, at a terminal, asked one by one (`--yes` answers yes; without a terminal
//! and without `--yes` it only reports). Exit 1 when there is no runtime or a fix that
//! ran failed, as upstream's exit 1 for no runtime.

use std::sync::Arc;

use anyhow::Result;

use crate::cli::system::SetupArgs;
use crate::diagnose::checks::{self, EngineFacts};
use crate::diagnose::setup::{self as plan, Fix};
use crate::diagnose::style::Styles;
use crate::diagnose::{Status, probe};
use crate::error::{Exit, UserError};
use crate::host::HostEnv;
use crate::process::{Executor, Invocation};

pub fn setup(host: &HostEnv, exec: Arc<dyn Executor>, a: &SetupArgs) -> Result<Exit> {
    let s = Styles::for_stdout(host);
    let line = |c: &crate::diagnose::Check| {
        println!("  {} {}", s.mark(c.status), c.detail);
        if let Some(fix) = &c.fix {
            println!("       {} {fix}", s.hint("fix:"));
        }
    };
    println!();
    println!("{}", s.header("Kanibako Setup"));
    println!("{}", "=".repeat(40));
    println!();
    let (cx, state) = probe::context(host, exec.clone()).map_err(UserError::new)?;

    println!("{}", s.header("Step 1: Container Runtime"));
    let (engine, rt) = probe::engine(&cx);
    let pm = probe::package_manager(host);
    line(&checks::engine(&engine, pm, host.uid == 0));
    if matches!(engine, EngineFacts::Missing { .. }) {
        println!();
        return Ok(Exit::Code(1));
    }
    let answers = probe::answers(&engine);
    if !answers {
        line(&checks::storage_driver(&engine));
    }
    println!();

    println!("{}", s.header("Step 2: Agent Detection"));
    let agents = probe::agents(host);
    for (name, found) in &agents {
        match found {
            Some(_) => println!("  {} {name} detected", s.mark(Status::Ok)),
            None => println!(
                "  {} {name} not found on this system",
                s.mark(Status::Skipped)
            ),
        }
    }
    let found_any = agents.iter().any(|(_, f)| f.is_some());
    if !found_any {
        println!();
        println!("  No agents detected on this system.");
        println!("  Install an agent (e.g., Claude Code) and try again, or use `kanibako shell`.");
    }
    println!();

    println!("{}", s.header("Step 3: Container Rig"));
    let rig = probe::rig(&cx, rt.as_ref(), answers);
    for c in checks::rig(rig.as_ref().map_err(String::as_str)) {
        if c.id == "rig" {
            // the fixes below say what to do
            println!("  {} {}", s.mark(c.status), c.detail);
        }
    }
    let host_rig = rt.as_ref().is_some_and(|rt| {
        probe::rig_named(&cx, rt, plan::HOST_RIG).is_ok_and(|r| r.present)
            && crate::rig::registry::Rigs::load(&cx.paths.rigs_file())
                .is_ok_and(|r| r.get(plan::HOST_RIG).is_some())
    });
    let fixes = plan::fixes(&state, rig.as_ref().ok(), host_rig);
    let mut failed = false;
    let mut pending: Vec<&Fix> = Vec::new();
    for (i, fix) in fixes.iter().enumerate() {
        println!("       {} {}: {}", s.hint("fix:"), fix.why, fix.command());
        let go = if a.yes {
            true
        } else if host.stdin_tty {
            crate::prompt::confirm_yn(host, &format!("Run `{}`?", fix.command()), "--yes")?
        } else {
            false
        };
        if !go {
            // A later fix needs this one done first.
            pending.extend(&fixes[i..]);
            break;
        }
        if !run_fix(host, exec.as_ref(), fix)? {
            failed = true;
            break;
        }
    }
    println!();

    println!("{}", s.header("Setup Complete"));
    println!("{}", "-".repeat(40));
    if failed {
        println!("  A fix failed (see above); `kanibako system diagnose` checks everything.");
    } else if !pending.is_empty() {
        println!("  Still to do (or run `kanibako setup --yes`):");
        for f in pending {
            println!("    {}", f.command());
        }
    } else if found_any {
        println!("  You're ready to go! Run `kanibako` in any project directory.");
    } else {
        println!("  Install an agent and its host binary, then run `kanibako`.");
        println!("  A box without an agent works now: `kanibako shell`.");
    }
    println!();
    println!("  For a full health check: kanibako system diagnose");
    println!();
    Ok(if failed { Exit::Code(1) } else { Exit::Success })
}

/// Run one fix with this very binary, attached to our terminal; whether it worked.
fn run_fix(host: &HostEnv, exec: &dyn Executor, fix: &Fix) -> Result<bool> {
    let exe = std::env::current_exe()
        .map_err(|e| UserError::new(format!("cannot find kanibako's own binary: {e}")))?;
    // The child inherits our environment, so it sees the same HOME, engine and PATH.
    let inv = Invocation::new(exe).args(&fix.args).current_dir(&host.cwd);
    crate::output::say(format_args!("+ {}", fix.command()));
    let status = exec.status(&inv)?;
    Ok(status.success())
}
