//! What `kanibako setup` offers to fix, planned purely from what the checks found:
//! each fix is a kanibako command, shown exactly as it is run, so a user who declines
//! can type it later.

use super::checks::{ConfigState, RigFacts};
use crate::process::shell_quote;

/// The rig `kanibako rig bootstrap` makes by default.
pub const HOST_RIG: &str = "host";

/// One fix: why, and the kanibako arguments that do it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub why: String,
    pub args: Vec<String>,
}

impl Fix {
    fn new(why: impl Into<String>, args: &[&str]) -> Self {
        Self {
            why: why.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The command as the user would type it.
    pub fn command(&self) -> String {
        std::iter::once("kanibako".to_owned())
            .chain(self.args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The fixes, in the order they must run (a later one may need an earlier one done:
/// `box.image=host` only after the host rig exists). `host_rig` says whether the
/// host rig is already there.
pub fn fixes(config: &ConfigState, rig: Option<&RigFacts>, host_rig: bool) -> Vec<Fix> {
    let mut out = Vec::new();
    let Some(rig) = rig else {
        return out;
    };
    let pin = format!("box.image={HOST_RIG}");
    if !rig.present {
        match rig.kind {
            crate::rig::Kind::Template => out.push(Fix::new(
                format!("build the template rig {}", rig.name),
                &["rig", "prep", &rig.name],
            )),
            _ => {
                if !host_rig {
                    out.push(Fix::new(
                        "build a rig from this host's own programs (no download)",
                        &["rig", "bootstrap"],
                    ));
                }
                out.push(Fix::new(
                    format!(
                        "make it the rig every box runs on (instead of {})",
                        rig.name
                    ),
                    &["system", "config", &pin],
                ));
            }
        }
    } else if *config == ConfigState::Missing {
        out.push(Fix::new(
            format!("write kanibako.yaml, with {} as the rig", rig.name),
            &["system", "config", &format!("box.image={}", rig.name)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::checks::Fresh;

    fn rig(present: bool, kind: crate::rig::Kind) -> RigFacts {
        RigFacts {
            name: "oci".into(),
            image: "ghcr.io/doctorjei/kanibako-oci:latest".into(),
            kind,
            present,
            fresh: Fresh::NeverChecked,
        }
    }

    fn commands(f: &[Fix]) -> Vec<String> {
        f.iter().map(Fix::command).collect()
    }

    #[test]
    fn a_missing_prefab_is_bootstrapped_then_pinned() {
        let r = rig(false, crate::rig::Kind::Prefab);
        assert_eq!(
            commands(&fixes(&ConfigState::Missing, Some(&r), false)),
            [
                "kanibako rig bootstrap",
                "kanibako system config box.image=host"
            ]
        );
        assert_eq!(
            commands(&fixes(&ConfigState::Parsed, Some(&r), true)),
            ["kanibako system config box.image=host"],
            "an existing host rig is not rebuilt"
        );
    }

    #[test]
    fn a_template_is_built_and_a_present_rig_only_needs_the_config() {
        let t = rig(false, crate::rig::Kind::Template);
        assert_eq!(
            commands(&fixes(&ConfigState::Parsed, Some(&t), false)),
            ["kanibako rig prep oci"]
        );
        let p = rig(true, crate::rig::Kind::Prefab);
        assert_eq!(
            commands(&fixes(&ConfigState::Missing, Some(&p), false)),
            ["kanibako system config box.image=oci"]
        );
        assert!(fixes(&ConfigState::Parsed, Some(&p), false).is_empty());
        assert!(fixes(&ConfigState::Missing, None, false).is_empty());
    }
}
