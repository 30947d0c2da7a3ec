//! Docker-style `KEY=VALUE` env files (`$DATA/env`, `<box>/env`, `<workset>/env`).
//!
//! Reading follows the Python tool exactly (blank lines, `#` comments and lines without
//! `=` are skipped; the value is literal). Writing sorts by key and is atomic with mode
//! 0600, since env files are where users keep tokens.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use crate::fsutil::{self, FsError};

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if is_valid_name(key) {
            vars.insert(key.to_owned(), value.to_owned());
        }
    }
    vars
}

/// Read an env file. A standalone box's env file sits in its workspace, where a
/// repository or the box can put a link or a FIFO there: the open does not follow a
/// link nor block, and only a regular file is read.
pub fn read(path: &Path) -> io::Result<BTreeMap<String, String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(io::Error::other(format!(
                "{} is a symbolic link; not read",
                path.display()
            )));
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file; not read",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(crate::fsutil::MAX_READ)
        .read_to_string(&mut text)?;
    Ok(parse(&text))
}

pub fn render(vars: &BTreeMap<String, String>) -> String {
    vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

pub fn write(path: &Path, vars: &BTreeMap<String, String>) -> Result<(), FsError> {
    fsutil::atomic_write(path, render(vars).as_bytes(), fsutil::MODE_SECRET)
}

/// A private (0600, randomly named) env file for one engine call, deleted when the
/// returned value is dropped.
pub fn temporary(vars: &BTreeMap<String, String>) -> std::io::Result<tempfile::TempPath> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("kanibako-env-")
        .tempfile()?;
    f.write_all(render(vars).as_bytes())?;
    f.flush()?;
    Ok(f.into_temp_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        let vars = parse("# c\n\nA=1\n  B = x y \nnoeq\n1BAD=z\nC=a=b\n");
        assert_eq!(
            vars.into_iter().collect::<Vec<_>>(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), " x y".into()),
                ("C".into(), "a=b".into())
            ]
        );
    }

    #[test]
    fn renders_sorted_with_trailing_newline() {
        let vars = BTreeMap::from([("Z".to_owned(), "1".to_owned()), ("A".into(), "2".into())]);
        assert_eq!(render(&vars), "A=2\nZ=1\n");
        assert_eq!(render(&BTreeMap::new()), "");
    }
}
