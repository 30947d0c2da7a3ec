//! The settings a launch runs with, each resolved once from its command-line flag and
//! the levels (box > workset > crab > system > default), typed, with where it came from
//! ([`Origin::Flag`] for a flag). A flag beats every level, in both directions (so
//! `--no-share-images` turns off a `box.share_images: true`); `--dry-run -v` shows each
//! setting and its origin. Must not: touch the disk or the engine (tmux on the host is
//! a `PATH` lookup).

use std::fmt;

use anyhow::Result;

use super::request::{Launch, Session};
use crate::agents::{Agent, SessionFlags};
use crate::host::HostEnv;
use crate::settings::stack::{Origin, Setting, Stack};

/// Which conversation an agent session opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversation {
    /// The last one (`-C`, `start_mode: continue`; nothing to continue on a new box).
    Continue,
    /// A new one (`-N`, `start_mode: new`).
    New,
    /// The agent's picker (`-R`, `start_mode: resume`).
    Resume,
}

/// What an agent session is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// `-M`, else `model`, else the agent's own default; `Some("")` passes none.
    pub model: Setting<Option<String>>,
    /// Keep the agent's permission prompts: `-S` / `-A`, else `access: default` or
    /// `autonomous: false`.
    pub secure: Setting<bool>,
    pub conversation: Setting<Conversation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchSettings {
    /// The rig as named (`--rig`, else `box.image`): a rig name or an image reference.
    pub image: Setting<String>,
    /// `--share-images` / `--no-share-images`, else `box.share_images`.
    pub share_images: Setting<bool>,
    /// The helper hub: `--no-helpers`, else `allow_helpers`.
    pub helpers: Setting<bool>,
    /// A detached tmux session (true) or a foreground run: `--persistent` /
    /// `--ephemeral`, else `persistence` (`auto`: tmux on the host). `None` for `shell`,
    /// which always runs in the foreground.
    pub persistence: Option<Setting<bool>>,
    /// For an agent session only.
    pub agent: Option<AgentSettings>,
    /// With `--browser`: the sidecar's image (`box.browser_image`).
    pub browser: Option<Setting<String>>,
}

/// A yes/no pair of flags (`Some` when one was given), else the setting.
fn pair(
    given: Option<bool>,
    (yes, no): (&'static str, &'static str),
    otherwise: impl FnOnce() -> Result<Setting<bool>>,
) -> Result<Setting<bool>> {
    match given {
        Some(true) => Ok(Setting::flag(true, yes)),
        Some(false) => Ok(Setting::flag(false, no)),
        None => otherwise(),
    }
}

/// `persistence`: `auto` (or nothing) is persistent where tmux is on the host, as
/// upstream.
fn persistence(levels: &Stack, host: &HostEnv) -> Result<Setting<bool>> {
    let r = levels.str_setting("persistence", None)?;
    let value = match r.value.as_deref() {
        Some("persistent") => true,
        Some("ephemeral") => false,
        _ => host.which("tmux").is_some(),
    };
    Ok(Setting {
        value,
        origin: r.origin,
    })
}

/// `-S` / `-A`, else prompts are kept where `access: default` or `autonomous: false`.
fn secure(flags: &SessionFlags, autonomous: bool, levels: &Stack) -> Result<Setting<bool>> {
    if flags.secure {
        return Ok(Setting::flag(true, "-S"));
    }
    if autonomous {
        return Ok(Setting::flag(false, "-A"));
    }
    let access = levels.str_setting("access", None)?;
    if access.value.as_deref() == Some("default") {
        return Ok(Setting {
            value: true,
            origin: access.origin,
        });
    }
    let autonomous = levels.bool_setting("autonomous")?;
    Ok(Setting {
        value: !autonomous.value,
        origin: autonomous.origin,
    })
}

/// `-N` over `-R` over `-C`, else `start_mode`.
fn conversation(flags: &SessionFlags, cont: bool, levels: &Stack) -> Result<Setting<Conversation>> {
    if flags.new_session {
        return Ok(Setting::flag(Conversation::New, "-N"));
    }
    if flags.resume {
        return Ok(Setting::flag(Conversation::Resume, "-R"));
    }
    if cont {
        return Ok(Setting::flag(Conversation::Continue, "-C"));
    }
    let r = levels.str_setting("start_mode", None)?;
    Ok(Setting {
        value: match r.value.as_deref() {
            Some("new") => Conversation::New,
            Some("resume") => Conversation::Resume,
            _ => Conversation::Continue,
        },
        origin: r.origin,
    })
}

impl LaunchSettings {
    /// Resolve every launch setting for `l` from `levels` (a box's, with its crab's);
    /// `agent` is the agent that will run, if one does.
    pub fn resolve(
        l: &Launch,
        levels: &Stack,
        host: &HostEnv,
        agent: Option<&dyn Agent>,
    ) -> Result<Self> {
        let image = match &l.rig {
            Some(r) => Setting::flag(r.clone(), "--rig"),
            None => levels.image_setting()?,
        };
        let share_images = pair(
            l.share_images,
            ("--share-images", "--no-share-images"),
            || levels.bool_setting("box.share_images"),
        )?;
        let helpers = pair(l.helpers, ("--helpers", "--no-helpers"), || {
            levels.bool_setting("allow_helpers")
        })?;
        let (persistence, agent) = match &l.session {
            Session::Start {
                flags,
                cont,
                autonomous,
                model,
                ..
            } => (
                Some(pair(l.persistent, ("--persistent", "--ephemeral"), || {
                    persistence(levels, host)
                })?),
                match agent {
                    Some(agent) => Some(AgentSettings {
                        model: match model {
                            Some(m) => Setting::flag(Some(m.clone()), "-M"),
                            // An agent without a default model of its own gets none
                            // (not Claude Code's, the key's built-in default).
                            None => levels
                                .str_setting("model", Some(agent.default_model().unwrap_or("")))?,
                        },
                        secure: secure(flags, *autonomous, levels)?,
                        conversation: conversation(flags, *cont, levels)?,
                    }),
                    None => None,
                },
            ),
            // A shell is ephemeral unless `--persistent` asks for tmux (as upstream).
            Session::Shell { .. } => (
                match l.persistent {
                    Some(true) => {
                        Some(pair(l.persistent, ("--persistent", "--ephemeral"), || {
                            persistence(levels, host)
                        })?)
                    }
                    _ => None,
                },
                None,
            ),
        };
        let browser = if l.browser {
            let r = levels.str_setting(
                "box.browser_image",
                Some(crate::settings::keys::DEFAULT_BROWSER_IMAGE),
            )?;
            Some(Setting {
                value: r.value.unwrap_or_default(),
                origin: r.origin,
            })
        } else {
            None
        };
        Ok(Self {
            image,
            share_images,
            helpers,
            persistence,
            agent,
            browser,
        })
    }

    /// Whether the session is a detached tmux session.
    pub fn persistent(&self) -> bool {
        self.persistence.as_ref().is_some_and(|p| p.value)
    }

    /// Each setting as `name = value (origin)`, for `-v`.
    pub fn lines(&self) -> Vec<String> {
        fn line(name: &str, value: impl fmt::Display, origin: &Origin) -> String {
            format!("{name} = {value} ({origin})")
        }
        let mut out = vec![
            line("box.image", &self.image.value, &self.image.origin),
            line(
                "box.share_images",
                self.share_images.value,
                &self.share_images.origin,
            ),
            line("allow_helpers", self.helpers.value, &self.helpers.origin),
        ];
        if let Some(p) = &self.persistence {
            let v = if p.value { "persistent" } else { "ephemeral" };
            out.push(line("persistence", v, &p.origin));
        }
        if let Some(a) = &self.agent {
            let model = match a.model.value.as_deref() {
                None | Some("") => "(none)",
                Some(m) => m,
            };
            out.push(line("model", model, &a.model.origin));
            let access = if a.secure.value {
                "default"
            } else {
                "permissive"
            };
            out.push(line("access", access, &a.secure.origin));
            let mode = match a.conversation.value {
                Conversation::Continue => "continue",
                Conversation::New => "new",
                Conversation::Resume => "resume",
            };
            out.push(line("start_mode", mode, &a.conversation.origin));
        }
        if let Some(b) = &self.browser {
            out.push(line("box.browser_image", &b.value, &b.origin));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use crate::settings::keys::{DEFAULT_IMAGE, Level};
    use crate::settings::stack::Source;
    use std::path::{Path, PathBuf};

    fn levels(boxed: &str, system: &str) -> Stack {
        let doc = |p: &str, t: &str| Document::parse(Path::new(p), t).unwrap();
        Stack {
            box_in_reach: false,
            sources: vec![
                Source {
                    level: Level::Box,
                    doc: doc("/b/project.yaml", boxed),
                    env_file: None,
                },
                Source {
                    level: Level::System,
                    doc: doc("/c/kanibako.yaml", system),
                    env_file: None,
                },
            ],
        }
    }

    fn start(flags: SessionFlags) -> Launch {
        Launch {
            project: None,
            env: Vec::new(),
            rig: None,
            entrypoint: None,
            dry_run: true,
            persistent: None,
            share_images: None,
            helpers: None,
            browser: false,
            learn: false,
            session: Session::Start {
                flags,
                cont: false,
                autonomous: false,
                model: None,
                args: Vec::new(),
                crab: None,
                auto_auth: true,
            },
        }
    }

    fn host_without_tmux() -> HostEnv {
        HostEnv::for_test(Path::new("/"), &[("PATH", "/nonexistent")])
    }

    fn at_box() -> Origin {
        Origin::Level {
            level: Level::Box,
            file: PathBuf::from("/b/project.yaml"),
        }
    }

    fn resolve(l: &Launch, s: &Stack) -> LaunchSettings {
        LaunchSettings::resolve(
            l,
            s,
            &host_without_tmux(),
            Some(&crate::agents::claude::Claude),
        )
        .unwrap()
    }

    #[test]
    fn a_flag_turns_a_configured_boolean_off_and_on() {
        let s = levels("box:\n  share_images: true\n", "");
        let mut l = start(SessionFlags::default());
        assert_eq!(
            resolve(&l, &s).share_images,
            Setting {
                value: true,
                origin: at_box()
            }
        );
        l.share_images = Some(false);
        assert_eq!(
            resolve(&l, &s).share_images,
            Setting::flag(false, "--no-share-images")
        );
        let off = levels("", "");
        l.share_images = Some(true);
        assert_eq!(
            resolve(&l, &off).share_images,
            Setting::flag(true, "--share-images")
        );
        l.share_images = None;
        assert_eq!(
            resolve(&l, &off).share_images,
            Setting {
                value: false,
                origin: Origin::Default
            }
        );
    }

    #[test]
    fn the_rig_and_persistence_come_from_flags_then_levels_then_defaults() {
        let mut l = start(SessionFlags::default());
        let s = levels("persistence: persistent\n", "box:\n  image: sysrig\n");
        let r = resolve(&l, &s);
        assert_eq!(r.image.value, "sysrig");
        assert!(matches!(
            r.image.origin,
            Origin::Level {
                level: Level::System,
                ..
            }
        ));
        assert_eq!(
            r.persistence,
            Some(Setting {
                value: true,
                origin: at_box()
            })
        );
        l.rig = Some("mine".into());
        l.persistent = Some(false);
        let r = resolve(&l, &s);
        assert_eq!(r.image, Setting::flag("mine".to_owned(), "--rig"));
        assert_eq!(r.persistence, Some(Setting::flag(false, "--ephemeral")));
        let r = resolve(&start(SessionFlags::default()), &levels("", ""));
        assert_eq!(
            r.image,
            Setting {
                value: DEFAULT_IMAGE.to_owned(),
                origin: Origin::Default
            }
        );
        assert_eq!(
            r.persistence,
            Some(Setting {
                value: false,
                origin: Origin::Default
            }),
            "auto without tmux on the host is a foreground run"
        );
        let shell = Launch {
            session: Session::Shell {
                command: Vec::new(),
            },
            ..start(SessionFlags::default())
        };
        let r = resolve(&shell, &s);
        assert!(r.persistence.is_none() && r.agent.is_none() && !r.persistent());
    }

    #[test]
    fn agent_switches_beat_the_settings() {
        let s = levels(
            "crab:\n  start_mode: new\n  access: default\n  model: haiku\n",
            "",
        );
        let a = resolve(&start(SessionFlags::default()), &s).agent.unwrap();
        assert_eq!(
            a.model,
            Setting {
                value: Some("haiku".into()),
                origin: at_box()
            }
        );
        assert_eq!(
            a.secure,
            Setting {
                value: true,
                origin: at_box()
            }
        );
        assert_eq!(
            a.conversation,
            Setting {
                value: Conversation::New,
                origin: at_box()
            }
        );
        let mut l = start(SessionFlags {
            resume: true,
            ..SessionFlags::default()
        });
        if let Session::Start {
            autonomous, model, ..
        } = &mut l.session
        {
            *autonomous = true;
            *model = Some("sonnet".into());
        }
        let a = resolve(&l, &s).agent.unwrap();
        assert_eq!(a.model, Setting::flag(Some("sonnet".into()), "-M"));
        assert_eq!(a.secure, Setting::flag(false, "-A"));
        assert_eq!(a.conversation, Setting::flag(Conversation::Resume, "-R"));
        let d = resolve(&start(SessionFlags::default()), &levels("", ""))
            .agent
            .unwrap();
        assert_eq!(
            d.model,
            Setting {
                value: Some("opus".into()),
                origin: Origin::Default
            }
        );
        assert!(!d.secure.value);
        assert_eq!(d.conversation.value, Conversation::Continue);
        assert_eq!(
            resolve(
                &start(SessionFlags::default()),
                &levels("crab:\n  autonomous: false\n", "")
            )
            .agent
            .unwrap()
            .secure,
            Setting {
                value: true,
                origin: at_box()
            }
        );
    }

    #[test]
    fn verbose_lines_name_every_setting_and_its_origin() {
        let mut l = start(SessionFlags::default());
        l.share_images = Some(false);
        l.helpers = Some(false);
        let lines = resolve(&l, &levels("crab:\n  model: ''\n", "")).lines();
        assert_eq!(
            lines,
            [
                format!("box.image = {DEFAULT_IMAGE} (default)"),
                "box.share_images = false (flag --no-share-images)".to_owned(),
                "allow_helpers = false (flag --no-helpers)".to_owned(),
                "persistence = ephemeral (default)".to_owned(),
                "model = (none) (box: /b/project.yaml)".to_owned(),
                "access = permissive (default)".to_owned(),
                "start_mode = continue (default)".to_owned(),
            ]
        );
    }
}
