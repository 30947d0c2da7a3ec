//! How failures reach the user: one `Error: …` line (the whole cause chain), then any
//! `hint:` lines, and an exit code.
//!
//! Domain modules return their own `thiserror` types; handlers wrap them in `anyhow`
//! with context; [`report`] walks the chain and collects hints from the types it knows.

use std::process::ExitCode;

use crate::boxes::error::BoxError;
use crate::document::DocError;
use crate::paths::PathsError;
use crate::runtime::RuntimeError;

/// A failure with its message and advice, for cases no domain type covers.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
    pub hints: Vec<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hints: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

/// How a command ended, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The user declined a confirmation (`Aborted.`): exit 2, as upstream.
    Declined,
    /// Another program's status, passed through.
    Code(u8),
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        match e {
            Exit::Success => ExitCode::SUCCESS,
            Exit::Declined => ExitCode::from(2),
            Exit::Code(c) => ExitCode::from(c),
        }
    }
}

fn hints_of(cause: &(dyn std::error::Error + 'static)) -> Vec<String> {
    if let Some(e) = cause.downcast_ref::<UserError>() {
        return e.hints.clone();
    }
    if let Some(e) = cause.downcast_ref::<BoxError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<crate::boxes::address::AddressError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<DocError>() {
        return e.hint().into_iter().collect();
    }
    if let Some(e) = cause.downcast_ref::<RuntimeError>() {
        return e.hint().into_iter().collect();
    }
    if let Some(e) = cause.downcast_ref::<crate::workset::WorksetError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<crate::settings::keys::KeyError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<crate::hub::supervisor::SupervisorError>() {
        return e.hint().into_iter().collect();
    }
    if let Some(e) = cause.downcast_ref::<crate::vault::VaultError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<crate::archive::extract::ExtractError>() {
        return e.hints();
    }
    if let Some(e) = cause.downcast_ref::<crate::archive::pack::PackError>() {
        return e.hints();
    }
    if cause.downcast_ref::<PathsError>().is_some() {
        return vec!["check system.path in your kanibako.yaml".into()];
    }
    Vec::new()
}

/// The cause chain as one line, `a: b: c`. A cause whose words its parent already
/// printed (an error type that shows its source in its own message) is not repeated.
fn chain_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.ends_with(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// The lines to print for a failure: `Error: <chain>` and its hints.
pub fn report(err: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("Error: {}", chain_text(err))];
    for cause in err.chain() {
        for h in hints_of(cause) {
            if h.starts_with(' ') {
                lines.push(h);
            } else {
                lines.push(format!("hint: {h}"));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_printed_by_its_parent_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(21);
        let err = anyhow::Error::new(crate::fsutil::FsError::Io {
            path: "/x/project.yaml".into(),
            source: io,
        })
        .context("saving the box");
        let line = &report(&err)[0];
        assert_eq!(line.matches("Is a directory").count(), 1, "{line}");
        assert!(line.starts_with("Error: saving the box: writing /x/project.yaml"));
    }
}
