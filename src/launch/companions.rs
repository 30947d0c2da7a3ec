//! Per-box companions: what lives on the host beside a box's session and reaches into
//! its run. Each adds its mounts (and environment) to the planned run, and prepares its
//! host side under the box's lock just before the run starts.
//!
//! Today that is the comms mailbox (`system.path.comms`, with a mailbox per named box
//! in it; a box mounts only its own, never the directory: spec §0b defect 6) and the
//! helper hub ([`super::helpers`]). The egress proxy and the browser sidecar
//! ([`crate::browser`], `--browser`) join here the same way; a
//! companion that must be told when a session ends is told by [`Companions::end`],
//! where [`super::run`] returns from either kind of run.

use std::path::{Path, PathBuf};

use crate::boxes::{BoxIdentity, BoxName};
use crate::output;
use crate::paths::Paths;
use crate::runtime::Runtime;
use crate::runtime::spec::{Mount, RunSpec};

use super::facts::Known;
use super::helpers::Hub;
use super::prep;
use crate::browser::Browser;

/// Where a box sees its own mailbox: upstream's place in its `~/comms`.
pub const COMMS_GUEST: &str = "/home/agent/comms/mailbox";

pub struct Companions {
    /// The comms directory, and this box's name in it (its mailbox).
    comms: PathBuf,
    name: Option<String>,
    hub: Option<Hub>,
    /// Under `box.network = allowlist`: the run gets the proxy's env and forwarder.
    egress: bool,
    browser: Option<Browser>,
}

impl Companions {
    /// The companions of box `b`, without a hub.
    pub fn for_box(paths: &Paths, b: &BoxIdentity) -> Self {
        Self {
            comms: paths.comms.clone(),
            name: b.name.as_ref().map(BoxName::to_string),
            hub: None,
            egress: false,
            browser: None,
        }
    }

    /// The companions of this launch: the hub too, unless helpers are off.
    pub fn for_launch(k: &Known<'_>, rt: &Runtime) -> Self {
        let egress = super::egress::for_launch(k);
        let proxy = egress
            .as_ref()
            .map(|_| format!("http://{}", crate::egress::env::DEFAULT_LISTEN));
        Self {
            browser: k.settings.browser.as_ref().map(|image| {
                Browser::new(rt, &image.value, &k.cx.paths.state, proxy, k.persistent())
            }),
            egress: egress.is_some(),
            hub: Hub::for_launch(k, rt, egress),
            ..Self::for_box(&k.cx.paths, k.b())
        }
    }

    /// Whether the box's egress proxy (`box.network = allowlist`) is among them.
    pub fn egress(&self) -> bool {
        self.egress
    }

    /// Their mounts, after everything else the run mounts: the box's own mailbox (a
    /// standalone box has none), the hub's member directory.
    pub fn add_to(&self, mut spec: RunSpec) -> RunSpec {
        if let Some(n) = &self.name {
            spec.mounts.push(Mount::Bind {
                src: self.comms.join("mailbox").join(n),
                dst: format!("{COMMS_GUEST}/{n}"),
                read_only: false,
                relabel: true,
            });
        }
        if let Some(h) = &self.hub {
            spec.mounts.push(h.mount());
        }
        if self.egress {
            spec = super::egress::add_to(spec);
        }
        match &self.browser {
            Some(b) => b.add_to(spec),
            None => spec,
        }
    }

    /// `--dry-run`: the engine commands they issue before the run, and the run as it
    /// would start beside them.
    pub fn dry_run(&self, spec: RunSpec) -> RunSpec {
        let Some(b) = &self.browser else { return spec };
        let (sidecar, spec) = b.dry_run(spec);
        println!("{sidecar}");
        spec
    }

    /// Their host side, under the box's lock, before the run of `spec` (on `rootfs`),
    /// and that run as it starts beside them (the browser sidecar's network).
    /// The comms directory is shared with every box: what is wrong there is not a
    /// reason to stop.
    pub fn start(&self, spec: RunSpec, rootfs: Option<&Path>) -> RunSpec {
        if let Err(e) = prep::comms(&self.comms, self.name.as_deref()) {
            output::warn(format_args!("{}: {e}", self.comms.display()));
        }
        if let Some(h) = &self.hub {
            h.start(&spec, rootfs);
        }
        match &self.browser {
            Some(b) => b.start(spec),
            None => spec,
        }
    }

    /// The session's run returned (`result`, passed on).
    pub fn end<T>(&self, result: T) -> T {
        if let Some(h) = &self.hub {
            h.end();
        }
        if let Some(b) = &self.browser {
            b.end();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::ProjectSettings;
    use crate::runtime::spec::{Network, RunMode, UserMapping};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn spec_without() -> RunSpec {
        RunSpec {
            name: "kanibako-app".into(),
            image: "i".into(),
            mode: RunMode::Detached,
            network: Network::Default,
            user: UserMapping::Image,
            confined: None,
            pass_env: Vec::new(),
            workdir: String::new(),
            mounts: Vec::new(),
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            entrypoint: None,
            command: Vec::new(),
        }
    }

    #[test]
    fn only_the_box_s_own_mailbox_is_mounted_last_and_made_on_start() {
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
            hub: None,
            egress: false,
            browser: None,
        };
        let spec = RunSpec {
            mounts: vec![Mount::Mask { dst: "/x".into() }],
            ..spec_without()
        };
        let spec = c.add_to(spec);
        assert_eq!(
            spec.mounts.last(),
            Some(&Mount::Bind {
                src: t.path().join("comms/mailbox/app"),
                dst: "/home/agent/comms/mailbox/app".into(),
                read_only: false,
                relabel: true,
            })
        );
        assert_eq!(
            spec.mounts
                .iter()
                .filter(|m| m.dst().starts_with("/home/agent/comms"))
                .count(),
            1,
            "never the whole comms directory"
        );
        let _ = c.start(spec.clone(), None);
        assert!(t.path().join("comms/mailbox/app").is_dir());
        assert!(
            t.path().join("comms/broadcast.log").is_file(),
            "the layout the Python tool keeps"
        );
        // a standalone box has no mailbox, so nothing of comms
        let solo = Companions { name: None, ..c };
        assert!(solo.add_to(spec_without()).mounts.is_empty());
    }
}
