//! Block's Goose (`goose`): the host's binary mounted read-only, run as an
//! interactive `goose session` in its autonomous mode (`GOOSE_MODE=auto`) unless `-S`,
//! continued with `session --resume`, its provider keys passed from the host
//! environment by name.
//!
//! What this relies on (block/goose): the CLI's `session` command and its `--resume`
//! (alone: the most recent session; there is no picker, so `-R` resumes that one
//! too); `GOOSE_MODE` (`auto` approves every tool call), `GOOSE_MODEL` and
//! `GOOSE_PROVIDER` read from the environment over `~/.config/goose/config.yaml`;
//! provider keys from the environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, …) or the
//! system keyring, which a box has none of (`GOOSE_DISABLE_KEYRING` makes Goose keep
//! what it is given in the box's own `secrets.yaml` instead); sessions kept under
//! `~/.local/share/goose/sessions/`. Goose has no login of its own to share: no token
//! file moves.

use std::path::Path;

use super::{Agent, Install, SessionFlags};
use crate::host::HostEnv;
use crate::runtime::spec::Mount;

pub struct Goose;

const GUEST_BINARY: &str = "/home/agent/.local/bin/goose";

impl Agent for Goose {
    fn id(&self) -> &'static str {
        "goose"
    }

    fn display_name(&self) -> &'static str {
        "Goose"
    }

    /// `goose` on `PATH`, symlinks resolved: a single binary (its installer's
    /// `~/.local/bin/goose`, or a versioned directory's) mounted alone.
    fn detect(&self, host: &HostEnv) -> Option<Install> {
        let binary = host.which("goose")?.canonicalize().ok()?;
        Some(Install {
            binary,
            install_dir: None,
        })
    }

    fn mounts(&self, install: &Install) -> Vec<Mount> {
        vec![Mount::Bind {
            src: install.binary.clone(),
            dst: GUEST_BINARY.into(),
            read_only: true,
            relabel: false,
        }]
    }

    fn entrypoint(&self, _install: &Install) -> String {
        GUEST_BINARY.to_owned()
    }

    /// `session [--resume] extra…`; the model and the autonomy travel in the
    /// environment ([`Self::session_env`]).
    fn args(&self, flags: SessionFlags, extra: &[String], _model: Option<&str>) -> Vec<String> {
        let user_command = extra.first().is_some_and(|a| !a.starts_with('-'));
        let mut args = Vec::new();
        if !user_command {
            args.push("session".to_owned());
            let user_resumes = extra.iter().any(|a| a == "--resume" || a == "-r");
            // `-R` is `-C` here: with no picker, both resume the last session, which
            // a new box does not have.
            if !(user_resumes || flags.new_box || flags.new_session) {
                args.push("--resume".to_owned());
            }
        }
        args.extend(extra.iter().cloned());
        args
    }

    fn session_env(&self, flags: SessionFlags, model: Option<&str>) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if !flags.secure {
            env.push(("GOOSE_MODE".to_owned(), "auto".to_owned()));
        }
        if let Some(m) = model.filter(|m| !m.is_empty()) {
            env.push(("GOOSE_MODEL".to_owned(), m.to_owned()));
        }
        env
    }

    fn env_defaults(&self) -> &'static [(&'static str, &'static str)] {
        &[("GOOSE_DISABLE_KEYRING", "1")]
    }

    fn default_model(&self) -> Option<&'static str> {
        None
    }

    fn config_dir(&self) -> &'static str {
        ".config/goose"
    }

    fn instruction_files(&self) -> &'static [&'static str] {
        &[".goosehints"]
    }

    fn passed_env(&self) -> &'static [&'static str] {
        &[
            "GOOSE_PROVIDER",
            "GOOSE_MODEL",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "GOOGLE_API_KEY",
            "OPENROUTER_API_KEY",
            "GROQ_API_KEY",
            "DATABRICKS_HOST",
            "DATABRICKS_TOKEN",
            "OLLAMA_HOST",
        ]
    }

    fn has_conversation(&self, home: &Path, _workdir: &str) -> bool {
        super::has_file_below(home, ".local/share/goose/sessions", "", 1)
    }

    fn session_note(&self) -> &'static str {
        "-C: session --resume (the default in a box with a session); -R: the same (Goose has no picker); -N: a new session; -M: GOOSE_MODEL; autonomy: GOOSE_MODE=auto unless -S"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(flags: SessionFlags, extra: &[&str], model: Option<&str>) -> String {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let env: Vec<String> = Goose
            .session_env(flags, model)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "[{}] {}",
            env.join(" "),
            Goose.args(flags, &extra, model).join(" ")
        )
    }

    /// Every combination of the session switches, with and without a model.
    #[test]
    fn argv_for_every_switch_combination() {
        insta::assert_snapshot!(crate::agents::every_switch_combination(
            "gpt-4o",
            |f, model| { run(f, &[], model) }
        ));
    }

    #[test]
    fn user_arguments_keep_their_place() {
        let existing = SessionFlags::default();
        assert_eq!(
            run(existing, &["--name", "x"], None),
            "[GOOSE_MODE=auto] session --resume --name x"
        );
        assert_eq!(
            run(existing, &["--resume", "--id", "7"], None),
            "[GOOSE_MODE=auto] session --resume --id 7"
        );
        // a command of the user's own (`goose run -t …`) replaces `session`
        assert_eq!(
            run(existing, &["run", "-t", "hi"], None),
            "[GOOSE_MODE=auto] run -t hi"
        );
    }

    #[test]
    fn a_session_is_any_file_in_the_sessions_dir() {
        let t = tempfile::tempdir().unwrap();
        assert!(!Goose.has_conversation(t.path(), "/w"));
        let d = t.path().join(".local/share/goose/sessions");
        std::fs::create_dir_all(&d).unwrap();
        assert!(!Goose.has_conversation(t.path(), "/w"));
        std::fs::write(d.join("sessions.db"), "").unwrap();
        assert!(Goose.has_conversation(t.path(), "/w"));
    }
}
