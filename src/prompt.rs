//! Questions to the user. A question needs a terminal: without one it fails at once with
//! a hint naming the flag that skips it, so scripts never hang on a hidden prompt.

use std::io::{BufRead, Write};

use crate::error::UserError;
use crate::host::HostEnv;

/// Put `prompt` on stderr and read one answer line; without a terminal, fail with a hint
/// naming `skip_flag` instead of waiting for an answer that cannot come.
fn ask(host: &HostEnv, question: &str, prompt: &str, skip_flag: &str) -> Result<String, UserError> {
    if !host.stdin_tty {
        return Err(UserError::new(format!(
            "{question} — confirmation needed, but standard input is not a terminal"
        ))
        .hint(format!("pass {skip_flag} to go ahead without asking")));
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(answer.trim().to_owned())
}

/// Ask for a typed `yes`. `Ok(false)` when the user answered anything else.
pub fn confirm_yes(host: &HostEnv, question: &str, skip_flag: &str) -> Result<bool, UserError> {
    let answer = ask(
        host,
        question,
        &format!("{question}\nType 'yes' to confirm: "),
        skip_flag,
    )?;
    Ok(answer == "yes")
}

/// Ask `Continue? [y/N]`; `y` or `yes` goes ahead.
pub fn confirm_yn(host: &HostEnv, question: &str, skip_flag: &str) -> Result<bool, UserError> {
    let answer = ask(host, question, &format!("{question} [y/N] "), skip_flag)?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}
