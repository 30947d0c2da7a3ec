//! Per-box companions: what lives on the host beside a box's session and reaches into
//! its run. Each adds its mounts (and environment) to the planned run, and prepares its
//! host side under the box's lock just before the run starts.
//!
//! Today that is the comms mailbox (`system.path.comms`, shared with every box, each
//! with its own mailbox in it). The helper hub and the egress proxy join here the same
//! way; a companion that must be told when a session ends gets that step where
//! [`super::run`] says so.

use std::path::PathBuf;

use crate::boxes::{BoxIdentity, BoxName};
use crate::output;
use crate::paths::Paths;
use crate::runtime::spec::{Mount, RunSpec};

use super::plan::GUEST_HOME;
use super::prep;

pub struct Companions {
    /// The comms mailbox directory, and this box's name in it.
    comms: PathBuf,
    name: Option<String>,
}

impl Companions {
    /// The companions of box `b`.
    pub fn for_box(paths: &Paths, b: &BoxIdentity) -> Self {
        Self {
            comms: paths.comms.clone(),
            name: b.name.as_ref().map(BoxName::to_string),
        }
    }

    /// Their mounts, after everything else the run mounts.
    pub fn add_to(&self, mut spec: RunSpec) -> RunSpec {
        spec.mounts.push(Mount::Bind {
            src: self.comms.clone(),
            dst: format!("{GUEST_HOME}/comms"),
            read_only: false,
            relabel: true,
        });
        spec
    }

    /// Their host side, under the box's lock, before the run. The mailbox is shared
    /// with every box: what is wrong there is theirs to fix, not a reason to stop.
    pub fn start(&self) {
        if let Err(e) = prep::comms(&self.comms, self.name.as_deref()) {
            output::warn(format_args!("{}: {e}", self.comms.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::ProjectSettings;
    use crate::runtime::spec::{Network, RunMode, UserMapping};
    use std::collections::BTreeMap;
    use std::path::Path;

    #[test]
    fn the_mailbox_is_mounted_last_and_made_on_start() {
        let t = tempfile::tempdir().unwrap();
        let b = BoxIdentity::default_mode(
            BoxName::parse("app").unwrap(),
            "/p/app".into(),
            Path::new("/d/boxes"),
            ProjectSettings::default(),
        );
        let c = Companions {
            comms: t.path().join("comms"),
            name: b.name.as_ref().map(BoxName::to_string),
        };
        let spec = RunSpec {
            name: "kanibako-app".into(),
            image: "i".into(),
            mode: RunMode::Detached,
            network: Network::Default,
            user: UserMapping::Image,
            confined: None,
            workdir: String::new(),
            mounts: vec![Mount::Mask { dst: "/x".into() }],
            env: BTreeMap::new(),
            pass_env: Vec::new(),
            labels: BTreeMap::new(),
            entrypoint: None,
            command: Vec::new(),
        };
        let spec = c.add_to(spec);
        assert_eq!(
            spec.mounts.last(),
            Some(&Mount::Bind {
                src: t.path().join("comms"),
                dst: "/home/agent/comms".into(),
                read_only: false,
                relabel: true,
            })
        );
        c.start();
        assert!(t.path().join("comms").is_dir());
    }
}
