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

/// `Warning: …`: something is off, and kanibako carries on.
pub fn warn(msg: impl Display) {
    eprintln!("Warning: {msg}");
}

/// `hint: …`: what the user can do next.
pub fn hint(msg: impl Display) {
    eprintln!("hint: {msg}");
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
        eprintln!("{line}");
    }
}
