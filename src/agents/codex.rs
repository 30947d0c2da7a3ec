//! OpenAI's Codex CLI (`codex`, npm package `@openai/codex`): found on the host as a
//! standalone binary or an npm global install, mounted read-only, run in its bypass
//! mode unless `-S`, continued with `resume --last`, its login (`~/.codex/auth.json`)
//! shared like Claude Code's.
//!
//! What this relies on (openai/codex): the npm package's `bin/codex.js` is a node
//! launcher for the native binary it ships under `vendor/<target-triple>/codex/codex`
//! (so an npm install with that binary needs no node in the rig); the flags `--model`,
//! `--dangerously-bypass-approvals-and-sandbox`, the `resume` subcommand (`--last`:
//! the most recent session, alone: a picker); sessions kept as
//! `~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`; `codex login` / `codex login status`
//! (exit status 0 when logged in); and `auth.json` with the ChatGPT login under
//! `tokens` (`id_token`, `access_token` — a JWT whose `exp` is its expiry —,
//! `refresh_token`, `account_id`) beside an optional `OPENAI_API_KEY`, of which only
//! `tokens` moves.

use std::path::{Path, PathBuf};

use super::credentials::{CredentialSpec, ExpiryFormat};
use super::{Agent, Install, LoginAnswer, LoginCommands, SessionFlags};
use crate::host::HostEnv;
use crate::runtime::spec::Mount;

pub struct Codex;

/// Where an npm install's package is mounted in the box.
const GUEST_PACKAGE: &str = "/home/agent/.local/share/codex";
const GUEST_BINARY: &str = "/home/agent/.local/bin/codex";

/// Codex's ChatGPT login. Its access tokens live about ten days, so a refresh may
/// expire up to two weeks ahead.
pub const CREDENTIALS: CredentialSpec = CredentialSpec {
    dir: ".codex",
    file: "auth.json",
    oauth_key: "tokens",
    expiry_key: "access_token",
    expiry_format: ExpiryFormat::JwtExp,
    access_field: "access_token",
    refresh_field: "refresh_token",
    max_refresh_lifetime_ms: 14 * 24 * 3600 * 1000,
    account_file: None,
    account_keys: &[],
    token_fields: &["id_token", "access_token", "refresh_token", "account_id"],
    account_fields: &["account_id"],
};

/// `codex login status` exits 0 when logged in, non-zero when not.
fn read_status(ok: bool, _stdout: &[u8]) -> LoginAnswer {
    if ok {
        LoginAnswer::LoggedIn
    } else {
        LoginAnswer::LoggedOut
    }
}

const LOGIN: LoginCommands = LoginCommands {
    status: &["login", "status"],
    login: &["login"],
    read: read_status,
};

/// The npm package directory a (resolved) `codex` belongs to:
/// `…/node_modules/@openai/codex/<file…>`.
pub fn npm_package(binary: &Path) -> Option<PathBuf> {
    let names: Vec<&std::ffi::OsStr> = binary.iter().collect();
    let at = |i: usize, want: &str| names.get(i).is_some_and(|x| *x == want);
    (2..names.len().saturating_sub(1))
        .find(|&i| at(i, "codex") && at(i - 1, "@openai") && at(i - 2, "node_modules"))
        .map(|i| names[..=i].iter().collect())
}

/// The target triple the npm package names its native binary by, for this machine.
fn target_triple() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64-unknown-linux-musl"),
        "aarch64" => Some("aarch64-unknown-linux-musl"),
        _ => None,
    }
}

/// The native binary an npm package ships for this machine, if it does.
fn vendored_binary(package: &Path) -> Option<PathBuf> {
    let p = package
        .join("vendor")
        .join(target_triple()?)
        .join("codex/codex");
    p.is_file().then_some(p)
}

impl Agent for Codex {
    fn id(&self) -> &'static str {
        "codex"
    }

    fn display_name(&self) -> &'static str {
        "Codex CLI"
    }

    /// `codex` on `PATH`, symlinks resolved. An npm install is its package; its
    /// vendored native binary, where present, is what runs.
    fn detect(&self, host: &HostEnv) -> Option<Install> {
        let found = host.which("codex")?.canonicalize().ok()?;
        let Some(package) = npm_package(&found) else {
            return Some(Install {
                binary: found,
                install_dir: None,
            });
        };
        Some(Install {
            binary: vendored_binary(&package).unwrap_or(found),
            install_dir: Some(package),
        })
    }

    fn mounts(&self, install: &Install) -> Vec<Mount> {
        let bind = |src: &Path, dst: &str| Mount::Bind {
            src: src.to_owned(),
            dst: dst.to_owned(),
            read_only: true,
            relabel: false,
        };
        match &install.install_dir {
            // The package whole: the launcher finds its vendored files beside it.
            Some(package) => vec![bind(package, GUEST_PACKAGE)],
            None => vec![bind(&install.binary, GUEST_BINARY)],
        }
    }

    fn entrypoint(&self, install: &Install) -> String {
        match &install.install_dir {
            Some(package) => match install.binary.strip_prefix(package) {
                Ok(rel) => format!("{GUEST_PACKAGE}/{}", rel.display()),
                Err(_) => format!("{GUEST_PACKAGE}/bin/codex.js"),
            },
            None => GUEST_BINARY.to_owned(),
        }
    }

    /// `[resume [--last]] [--dangerously-bypass-approvals-and-sandbox] extra… [--model M]`.
    fn args(&self, flags: SessionFlags, extra: &[String], model: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        let user_resumes = extra.first().is_some_and(|a| a == "resume");
        if flags.resume && !user_resumes {
            args.push("resume".to_owned());
        } else if !(flags.new_box || flags.new_session || user_resumes) {
            args.push("resume".to_owned());
            args.push("--last".to_owned());
        }
        let (sub, rest) = match extra.split_first() {
            Some((first, rest)) if user_resumes => (Some(first.clone()), rest),
            _ => (None, extra),
        };
        args.extend(sub);
        if !flags.secure {
            // The box is the sandbox; Codex's own (landlock, seccomp) is not
            // available inside a container.
            args.push("--dangerously-bypass-approvals-and-sandbox".to_owned());
        }
        args.extend(rest.iter().cloned());
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            args.push("--model".to_owned());
            args.push(m.to_owned());
        }
        args
    }

    fn env_defaults(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn default_model(&self) -> Option<&'static str> {
        None
    }

    fn config_dir(&self) -> &'static str {
        ".codex"
    }

    fn instruction_files(&self) -> &'static [&'static str] {
        &["AGENTS.md"]
    }

    fn credentials(&self) -> Option<&'static CredentialSpec> {
        Some(&CREDENTIALS)
    }

    fn login_commands(&self) -> Option<&'static LoginCommands> {
        Some(&LOGIN)
    }

    fn passed_env(&self) -> &'static [&'static str] {
        &["OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"]
    }

    fn has_conversation(&self, home: &Path, _workdir: &str) -> bool {
        super::has_file_below(home, ".codex/sessions", ".jsonl", 4)
    }

    fn session_note(&self) -> &'static str {
        "-C: resume --last (the default in a box with a session); -R: resume (its picker); -N: a new session"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: SessionFlags, extra: &[&str], model: Option<&str>) -> String {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        Codex.args(flags, &extra, model).join(" ")
    }

    /// Every combination of the session switches, with and without a model.
    #[test]
    fn argv_for_every_switch_combination() {
        insta::assert_snapshot!(crate::agents::every_switch_combination("o3", |f, model| {
            args(f, &[], model)
        }));
    }

    #[test]
    fn user_arguments_keep_their_place() {
        let existing = SessionFlags::default();
        assert_eq!(
            args(existing, &["fix the tests"], Some("o3")),
            "resume --last --dangerously-bypass-approvals-and-sandbox fix the tests --model o3"
        );
        // the user's own `resume …` replaces ours, and the bypass follows it
        assert_eq!(
            args(existing, &["resume", "abc123"], None),
            "resume --dangerously-bypass-approvals-and-sandbox abc123"
        );
        let r = SessionFlags {
            resume: true,
            ..existing
        };
        assert_eq!(
            args(r, &["resume", "--last"], None),
            "resume --dangerously-bypass-approvals-and-sandbox --last"
        );
    }

    #[test]
    fn an_npm_install_runs_its_vendored_binary_or_its_launcher() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let pkg = root.join("lib/node_modules/@openai/codex");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::write(pkg.join("bin/codex.js"), "#!/usr/bin/env node\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            pkg.join("bin/codex.js"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = root.join("bin");
        std::fs::create_dir_all(&path).unwrap();
        std::os::unix::fs::symlink(pkg.join("bin/codex.js"), path.join("codex")).unwrap();
        let host = HostEnv::for_test(&root, &[("PATH", path.to_str().unwrap())]);
        let i = Codex.detect(&host).unwrap();
        assert_eq!(i.install_dir.as_deref(), Some(pkg.as_path()));
        assert_eq!(i.binary, pkg.join("bin/codex.js"));
        assert_eq!(
            Codex.entrypoint(&i),
            format!("{GUEST_PACKAGE}/bin/codex.js")
        );
        let m = Codex.mounts(&i);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].dst(), GUEST_PACKAGE);
        if let Some(triple) = target_triple() {
            let native = pkg.join("vendor").join(triple).join("codex/codex");
            std::fs::create_dir_all(native.parent().unwrap()).unwrap();
            std::fs::write(&native, "\x7fELF").unwrap();
            let i = Codex.detect(&host).unwrap();
            assert_eq!(i.binary, native);
            assert_eq!(
                Codex.entrypoint(&i),
                format!("{GUEST_PACKAGE}/vendor/{triple}/codex/codex")
            );
        }
        let alone = Install {
            binary: "/opt/codex/codex".into(),
            install_dir: None,
        };
        assert_eq!(Codex.entrypoint(&alone), GUEST_BINARY);
        assert_eq!(Codex.mounts(&alone)[0].dst(), GUEST_BINARY);
        assert_eq!(npm_package(Path::new("/usr/lib/codex/bin/codex")), None);
    }

    #[test]
    fn a_session_is_a_rollout_file_below_sessions() {
        let t = tempfile::tempdir().unwrap();
        assert!(!Codex.has_conversation(t.path(), "/home/agent/workspace"));
        let d = t.path().join(".codex/sessions/2026/12/03");
        std::fs::create_dir_all(&d).unwrap();
        assert!(!Codex.has_conversation(t.path(), "/home/agent/workspace"));
        std::fs::write(d.join("rollout-1.jsonl"), "{}").unwrap();
        assert!(Codex.has_conversation(t.path(), "/home/agent/workspace"));
    }
}
