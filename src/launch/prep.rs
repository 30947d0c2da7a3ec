//! Host-side work on a box's home before a launch (spec: upstream-runtime §3.9 steps
//! 2-5): the `.bashrc` upgrade, hygiene, mount-point stubs, and for a new box the shell
//! templates and instruction files. Everything goes through [`SafeDir`], so a link the
//! box planted in its home is reported and skipped, never followed (defect 1).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::boxes::home::{Kind, SafeDir};
use crate::output;

/// The block that makes `.bashrc` source `~/.shell.d/*.sh`.
const SHELL_D_BLOCK: &str = "# Source user init scripts\nfor _f in ~/.shell.d/*.sh; do [ -r \"$_f\" ] && . \"$_f\"; done\nunset _f\n";

/// Files larger than this named `claude` outside `.local/` are stray agent copies.
const STRAY_BINARY_MIN: u64 = 100 * 1024 * 1024;
/// Conversation logs older than this are compressed.
const LOG_AGE_SECS: i64 = 7 * 24 * 3600;

/// Make sure `.shell.d/` exists and `.bashrc` sources it.
pub fn upgrade_shell(home: &SafeDir) -> io::Result<()> {
    if home.kind(OsStr::new(".shell.d")) == Some(Kind::Symlink) {
        output::warn(format!(
            "{}/.shell.d is a symbolic link; left alone",
            home.path().display()
        ));
    } else {
        home.create_dir_all(Path::new(".shell.d"))?;
    }
    let bashrc = OsStr::new(".bashrc");
    match home.kind(bashrc) {
        Some(Kind::File) => {
            let text = home.read(bashrc)?.unwrap_or_default();
            if !String::from_utf8_lossy(&text).contains(".shell.d/") {
                let mut block = String::new();
                if !text.is_empty() && !text.ends_with(b"\n") {
                    block.push('\n');
                }
                block.push_str(SHELL_D_BLOCK);
                home.append(bashrc, block.as_bytes())?;
            }
        }
        Some(Kind::Symlink) => output::warn(format!(
            "{}/.bashrc is a symbolic link; not upgrading it",
            home.path().display()
        )),
        _ => {}
    }
    Ok(())
}

/// What [`hygiene`] did, and what it could not do (warnings, never a reason to stop
/// the launch: the home is the box's, and anything in it may be odd).
#[derive(Debug, Default)]
pub struct Cleaned {
    pub done: Vec<String>,
    pub failed: Vec<String>,
}

impl Cleaned {
    fn step(&mut self, what: &str, r: io::Result<()>) {
        if let Err(e) = r {
            self.failed.push(format!("{what}: {e}"));
        }
    }
}

/// Clean agent waste out of the home, best effort: each step that fails is recorded
/// and the next one runs.
pub fn hygiene(home: &SafeDir, now: SystemTime) -> Cleaned {
    let mut c = Cleaned::default();
    // telemetry and debug dumps: empty the directories, keep them
    for rel in [".claude/telemetry", ".claude/debug"] {
        let r = (|| -> io::Result<()> {
            if let Some(dir) = home.open_dir(Path::new(rel))? {
                let entries = dir.entries()?;
                if !entries.is_empty() {
                    for e in &entries {
                        dir.remove(e)?;
                    }
                    c.done.push(format!(
                        "Removed {rel}/ contents ({} entries)",
                        entries.len()
                    ));
                }
            }
            Ok(())
        })();
        c.step(&format!("cleaning {rel}"), r);
    }
    // caches the agent rebuilds
    let r = (|| -> io::Result<()> {
        if let Some(cache) = home.open_dir(Path::new(".cache"))? {
            for name in ["claude", "sentry", "@anthropic"] {
                if cache.kind(OsStr::new(name)) == Some(Kind::Dir) {
                    cache.remove(OsStr::new(name))?;
                    c.done.push(format!("Removed .cache/{name}"));
                }
            }
        }
        Ok(())
    })();
    c.step("cleaning .cache", r);
    // stray copies of the agent binary (never under .local/, where the mount lives)
    for rel in ["", ".claude/bin", "bin", ".bin", ".npm/_npx"] {
        let r = (|| -> io::Result<()> {
            if let Some(dir) = home.open_dir(Path::new(rel))?
                && let Some((size, _)) = dir.file_stat(OsStr::new("claude"))
                && size >= STRAY_BINARY_MIN
            {
                dir.remove(OsStr::new("claude"))?;
                c.done.push(format!(
                    "Removed duplicate binary {rel}/claude ({size} bytes)"
                ));
            }
            Ok(())
        })();
        c.step(&format!("removing a stray {rel}/claude"), r);
    }
    // old conversation logs
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let r = (|| -> io::Result<()> {
        let Some(projects) = home.open_dir(Path::new(".claude/projects"))? else {
            return Ok(());
        };
        for p in projects.entries()? {
            let Some(logs) = projects.open_dir(&Path::new(&p).join("conversation_logs"))? else {
                continue;
            };
            for f in logs.entries()? {
                let name = f.to_string_lossy().into_owned();
                if !name.ends_with(".jsonl") {
                    continue;
                }
                let Some((size, mtime)) = logs.file_stat(&f) else {
                    continue;
                };
                if size == 0 || now_secs - mtime < LOG_AGE_SECS {
                    continue;
                }
                let where_ = format!("{}/conversation_logs/{name}", p.to_string_lossy());
                match compress(&logs, &f, &format!("{name}.gz")) {
                    Ok(true) => c.done.push(format!("Compressed {where_}")),
                    Ok(false) => {}
                    Err(e) => c.failed.push(format!("compressing {where_}: {e}")),
                }
            }
        }
        Ok(())
    })();
    c.step("looking at old conversation logs", r);
    c
}

/// `name` gzipped to `target` (streamed: a log may be any size) and removed;
/// `Ok(false)` if it is no regular file or `target` exists.
fn compress(dir: &SafeDir, name: &OsStr, target: &str) -> io::Result<bool> {
    let Some(mut src) = dir.open_regular(name)? else {
        return Ok(false);
    };
    let target = OsStr::new(target);
    let Some(dst) = dir.create_new(target, 0o600)? else {
        return Ok(false);
    };
    let mut gz = flate2::write::GzEncoder::new(dst, flate2::Compression::default());
    let packed = io::copy(&mut src, &mut gz).and_then(|_| gz.finish().map(drop));
    if let Err(e) = packed {
        let _ = dir.remove(target);
        return Err(e);
    }
    dir.remove(name)?;
    Ok(true)
}

/// Create mount points inside the home before the engine needs them: directories for
/// directory mounts, empty files for file mounts. A link at a mount point is removed
/// (it lives in the home; removing the link touches nothing else). Where a parent is a
/// link the stub is skipped: the engine then makes the mount point itself, resolving
/// links inside the container, never on the host.
pub fn mount_stubs(home: &SafeDir, stubs: &[(String, bool)]) -> io::Result<()> {
    for (rel, is_dir) in stubs {
        let rel = Path::new(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Ok(dir) = home.create_dir_all(parent) else {
            tracing::debug!(
                "mount point {} not prepared: a parent is not a directory",
                rel.display()
            );
            continue;
        };
        if dir.kind(name) == Some(Kind::Symlink) {
            dir.remove(name)?;
        }
        if *is_dir {
            dir.create_dir_all(Path::new(name))?;
        } else if dir.kind(name).is_none() {
            dir.write_new(name, b"", 0o644)?;
        }
    }
    Ok(())
}

/// Copy a host template tree into the home, merging into existing directories. Host
/// templates are the user's own files; the home side is written without following links.
pub fn copy_template(src: &Path, home: &SafeDir, rel: &Path) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(src) else {
        return Ok(());
    };
    let dest = home.create_dir_all(rel)?;
    for e in entries.flatten() {
        let name = e.file_name();
        let ty = e.file_type()?;
        if ty.is_dir() {
            copy_template(&e.path(), home, &rel.join(&name))?;
        } else if ty.is_file() {
            let data = std::fs::read(e.path())?;
            if dest.kind(&name) == Some(Kind::Dir) {
                continue;
            }
            dest.replace(&name, &data, 0o644)?;
        }
    }
    Ok(())
}

/// Merge an instruction file's layers (base template, variant template, what the home
/// already has) under section markers; one layer is written as-is.
pub fn merge_instructions(
    base: Option<&str>,
    template: Option<(&str, &str)>,
    current: Option<&str>,
) -> Option<String> {
    let base = base.map(str::trim).filter(|s| !s.is_empty());
    let tmpl = template
        .map(|(v, t)| (v, t.trim()))
        .filter(|(_, t)| !t.is_empty());
    let user = current
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|c| Some(*c) != base && Some(*c) != tmpl.map(|(_, t)| t));
    let mut layers: Vec<(String, &str)> = Vec::new();
    if let Some(b) = base {
        layers.push(("# --- kanibako base ---".into(), b));
    }
    if let Some((variant, t)) = tmpl {
        layers.push((format!("# --- template: {variant} ---"), t));
    }
    if let Some(u) = user {
        layers.push(("# --- project ---".into(), u));
    }
    match layers.as_slice() {
        [] => None,
        [(_, only)] => Some(format!("{only}\n")),
        many => Some(
            many.iter()
                .map(|(marker, text)| format!("{marker}\n\n{text}\n"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

/// `$DATA/comms`: the box's mailbox, the broadcast log, rotated at 1 MiB. Every box
/// can write in that directory, so everything in it is reached without following a
/// link (a planted `mailbox` link is an error here, not a directory made elsewhere).
pub fn comms(comms_dir: &Path, name: Option<&str>) -> io::Result<()> {
    std::fs::create_dir_all(comms_dir)?;
    let dir = SafeDir::open(comms_dir)?;
    let mailbox = Path::new("mailbox");
    dir.create_dir_all(mailbox)?;
    if let Some(n) = name {
        dir.create_dir_all(&mailbox.join(n))?;
    }
    let log = OsStr::new("broadcast.log");
    if let Some((size, _)) = dir.file_stat(log)
        && size >= 1024 * 1024
    {
        dir.rename(log, OsStr::new("broadcast.log.1"))?;
    }
    if dir.kind(log).is_none() {
        dir.write_new(log, b"", 0o644)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::time::Duration;

    fn home() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let h = t.path().join("shell");
        let victim = t.path().join("victim");
        fs::create_dir_all(&h).unwrap();
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("data"), "precious").unwrap();
        (t, h, victim)
    }

    #[test]
    fn planted_links_change_nothing_outside_the_home() {
        let (_t, h, victim) = home();
        fs::create_dir_all(h.join(".claude")).unwrap();
        symlink(&victim, h.join(".claude/telemetry")).unwrap();
        symlink(&victim, h.join(".claude/debug")).unwrap();
        symlink(victim.join("data"), h.join(".bashrc")).unwrap();
        fs::create_dir_all(h.join(".cache")).unwrap();
        symlink(&victim, h.join(".cache/claude")).unwrap();
        symlink(&victim, h.join("bin")).unwrap();
        let d = SafeDir::open(&h).unwrap();
        upgrade_shell(&d).unwrap();
        assert!(hygiene(&d, SystemTime::now()).failed.is_empty());
        mount_stubs(&d, &[("bin/kanibako".into(), false)]).unwrap();
        assert_eq!(fs::read_to_string(victim.join("data")).unwrap(), "precious");
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 1);
    }

    #[test]
    fn bashrc_is_upgraded_once() {
        let (_t, h, _) = home();
        fs::write(h.join(".bashrc"), "export A=1").unwrap();
        let d = SafeDir::open(&h).unwrap();
        upgrade_shell(&d).unwrap();
        upgrade_shell(&d).unwrap();
        let text = fs::read_to_string(h.join(".bashrc")).unwrap();
        assert_eq!(text.matches(".shell.d/").count(), 1, "{text}");
        assert!(text.starts_with("export A=1\n# Source user init scripts\n"));
        assert!(h.join(".shell.d").is_dir());
    }

    #[test]
    fn hygiene_cleans_waste_and_compresses_old_logs() {
        let (_t, h, _) = home();
        fs::create_dir_all(h.join(".claude/telemetry/x")).unwrap();
        fs::write(h.join(".claude/telemetry/x/f"), "t").unwrap();
        fs::create_dir_all(h.join(".cache/sentry")).unwrap();
        let logs = h.join(".claude/projects/p/conversation_logs");
        fs::create_dir_all(&logs).unwrap();
        fs::write(logs.join("old.jsonl"), "{}\n").unwrap();
        fs::write(logs.join("new.jsonl"), "{}\n").unwrap();
        let d = SafeDir::open(&h).unwrap();
        let later = SystemTime::now() + Duration::from_secs(8 * 24 * 3600);
        // both are "old" a week from now: compress, keep nothing uncompressed
        let done = hygiene(&d, later).done;
        assert!(h.join(".claude/telemetry").is_dir());
        assert_eq!(
            fs::read_dir(h.join(".claude/telemetry")).unwrap().count(),
            0
        );
        assert!(!h.join(".cache/sentry").exists());
        assert!(logs.join("old.jsonl.gz").exists() && !logs.join("old.jsonl").exists());
        assert!(done.len() >= 4, "{done:?}");
        // and today nothing is old
        fs::write(logs.join("fresh.jsonl"), "{}\n").unwrap();
        hygiene(&d, SystemTime::now());
        assert!(logs.join("fresh.jsonl").exists());
    }

    /// Issue 10, item 11: a conversation log over 16 MiB is compressed like any other,
    /// and what hygiene cannot do is a warning, not a failed launch.
    #[test]
    fn a_huge_old_log_is_compressed_and_failures_are_only_reported() {
        let (_t, h, _) = home();
        let logs = h.join(".claude/projects/p/conversation_logs");
        fs::create_dir_all(&logs).unwrap();
        let big = vec![b'x'; 17 << 20];
        fs::write(logs.join("big.jsonl"), &big).unwrap();
        let d = SafeDir::open(&h).unwrap();
        let later = SystemTime::now() + Duration::from_secs(8 * 24 * 3600);
        let c = hygiene(&d, later);
        assert!(c.failed.is_empty(), "{c:?}");
        assert!(!logs.join("big.jsonl").exists());
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(fs::File::open(logs.join("big.jsonl.gz")).unwrap()),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), big.len());
        // a log it cannot replace (its .gz name is a directory it cannot remove into)
        fs::write(logs.join("stuck.jsonl"), "{}\n").unwrap();
        fs::create_dir_all(logs.join("stuck.jsonl.gz")).unwrap();
        let c = hygiene(&d, later);
        assert!(logs.join("stuck.jsonl").exists(), "{c:?}");
    }

    #[test]
    fn instruction_layers() {
        assert_eq!(
            merge_instructions(
                Some("BASE LAYER"),
                Some(("standard", "TEMPLATE LAYER")),
                None
            )
            .unwrap(),
            "# --- kanibako base ---\n\nBASE LAYER\n\n# --- template: standard ---\n\nTEMPLATE LAYER\n"
        );
        assert_eq!(
            merge_instructions(None, Some(("s", "only")), Some("only")).unwrap(),
            "only\n"
        );
        assert_eq!(merge_instructions(Some("  "), None, None), None);
        let three = merge_instructions(Some("b"), Some(("v", "t")), Some("mine")).unwrap();
        assert!(three.ends_with("# --- project ---\n\nmine\n"), "{three}");
    }

    #[test]
    fn comms_rotates_at_one_mebibyte() {
        let t = tempfile::tempdir().unwrap();
        let c = t.path().join("comms");
        comms(&c, Some("app")).unwrap();
        assert!(c.join("mailbox/app").is_dir());
        fs::write(c.join("broadcast.log"), vec![b'x'; 1024 * 1024]).unwrap();
        comms(&c, None).unwrap();
        assert_eq!(fs::metadata(c.join("broadcast.log")).unwrap().len(), 0);
        assert!(c.join("broadcast.log.1").exists());
        // a box plants a `mailbox` link: an error, and nothing made where it points
        let victim = t.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::remove_dir_all(c.join("mailbox")).unwrap();
        symlink(&victim, c.join("mailbox")).unwrap();
        assert!(comms(&c, Some("other")).is_err());
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
    }
}
