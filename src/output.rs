//! What kanibako tells the user besides a command's data: warnings, hints, notes and
//! progress lines, all on stderr and all through here, so stdout carries only data
//! (lists, JSON, the commands `--dry-run` prints) and every message has one spelling of
//! its prefix. Must not: print data (that is `println!` in the command), or decide what
//! a failure says (`error::report` does; [`error`] only prints its lines).
//!
//! Diagnostics for `-v` go through `tracing`, not here.

// The one place that writes to stderr (clippy.toml bans the macros elsewhere).
#![allow(clippy::disallowed_macros)]

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};

/// Whether the prefixes are coloured: decided once at start from the environment
/// ([`colour`]); off until then, so nothing is coloured by accident in a pipe.
static COLOUR: AtomicBool = AtomicBool::new(false);

const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const HINT: Style = AnsiColor::Cyan.on_default();
const ERROR: Style = AnsiColor::Red.on_default().bold();

/// Colour the `Warning:`, `hint:` and `Error:` prefixes from now on (stderr is a
/// terminal that shows colour, or `CLICOLOR_FORCE`; never with `NO_COLOR`).
pub fn colour(on: bool) {
    COLOUR.store(on, Ordering::Relaxed);
}

/// `prefix` in `style` when colour is on.
fn painted(style: Style, prefix: &str) -> String {
    if COLOUR.load(Ordering::Relaxed) {
        format!("{style}{prefix}{style:#}")
    } else {
        prefix.to_owned()
    }
}

/// `Warning: …`: something is off, and kanibako carries on.
pub fn warn(msg: impl Display) {
    eprintln!("{} {msg}", painted(WARNING, "Warning:"));
}

/// `hint: …`: what the user can do next.
pub fn hint(msg: impl Display) {
    eprintln!("{} {msg}", painted(HINT, "hint:"));
}

/// `note: …`: a fact worth knowing that needs no action.
pub fn note(msg: impl Display) {
    eprintln!("note: {msg}");
}

/// A progress or status line, as it is.
pub fn say(msg: impl Display) {
    eprintln!("{msg}");
}

/// Another program's own diagnostics (the engine's stderr), passed on untouched.
pub fn relay(text: &str) {
    eprint!("{text}");
}

/// The lines of a failure report (`Error: …` and its hints).
pub fn error(lines: &[String]) {
    for line in lines {
        match [("Error:", ERROR), ("hint:", HINT)]
            .into_iter()
            .find_map(|(p, style)| Some((line.strip_prefix(p)?, p, style)))
        {
            Some((rest, p, style)) => eprintln!("{}{rest}", painted(style, p)),
            None => eprintln!("{line}"),
        }
    }
}
