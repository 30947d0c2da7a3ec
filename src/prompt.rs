//! Questions to the user. A question needs a terminal: without one it fails at once with
//! a hint naming the flag that skips it, so scripts never hang on a hidden prompt.

use std::io::{BufRead, Write};

use crate::error::UserError;
use crate::host::HostEnv;

/// Ask for a typed `yes`. `Ok(false)` when the user answered anything else.
pub fn confirm_yes(host: &HostEnv, question: &str, skip_flag: &str) -> Result<bool, UserError> {
    if !host.stdin_tty {
        return Err(UserError::new(format!(
            "{question} — confirmation needed, but standard input is not a terminal"
        ))
        .hint(format!("pass {skip_flag} to go ahead without asking")));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}\nType 'yes' to confirm: ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(answer.trim() == "yes")
}

/// Ask `Continue? [y/N]`; `y` or `yes` goes ahead.
pub fn confirm_yn(host: &HostEnv, question: &str, skip_flag: &str) -> Result<bool, UserError> {
    if !host.stdin_tty {
        return Err(UserError::new(format!(
            "{question} — confirmation needed, but standard input is not a terminal"
        ))
        .hint(format!("pass {skip_flag} to go ahead without asking")));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
