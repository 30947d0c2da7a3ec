//! Whether rootless podman can give a container its network here: `/dev/net/tun`,
//! which its user-mode network (slirp4netns, or pasta) opens for every container that
//! has one, or the run fails late with slirp4netns's raw `open("/dev/net/tun"): …`.
//!
//! Rootful podman (bridges) and docker's daemon do not need it from us; a run with no
//! network (`--network=none`, or `netns = "none"`/`"host"` in containers.conf) does not
//! either. Checking is one `open` of the device and reading the containers.conf files
//! (the same ones [`super::limits`] reads), no engine call.

use std::path::{Path, PathBuf};

use super::spec::{Network, RunSpec};
use super::{EngineInfo, EngineKind, Runtime, RuntimeError};

pub const DEVICE: &str = "/dev/net/tun";

/// What opening the device found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    Usable,
    Missing,
    /// It exists but this user may not open it (`crw------- root`, as on some VMs).
    Denied,
}

impl Device {
    /// Open it for reading and writing, as slirp4netns does.
    pub fn probe(path: &Path) -> Self {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(_) => Device::Usable,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Device::Missing,
            Err(_) => Device::Denied,
        }
    }
}

/// The answer for one engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunCheck {
    /// Not rootless podman, or its containers get no network: nothing needs the device.
    NotNeeded,
    Usable,
    /// A run with a network would fail: the one-line cause and the fix.
    Unusable {
        cause: String,
        fix: String,
    },
}

impl TunCheck {
    /// As a `system diagnose` line (`None` where it does not apply).
    pub fn report(&self) -> Option<String> {
        match self {
            TunCheck::NotNeeded => None,
            TunCheck::Usable => Some(format!(
                "[ok] network: rootless podman can open {DEVICE} for its containers' network"
            )),
            TunCheck::Unusable { cause, fix } => Some(format!("[!!] network: {cause}: {fix}")),
        }
    }
}

/// Pure: the answer for `engine`, given what opening the device found and the
/// configured `netns` (the last containers.conf that sets it).
pub fn decide(engine: &EngineInfo, device: &Device, netns: Option<&str>) -> TunCheck {
    if engine.kind != EngineKind::Podman || !engine.rootless || engine.remote {
        return TunCheck::NotNeeded;
    }
    if matches!(netns, Some("none" | "host")) {
        return TunCheck::NotNeeded;
    }
    let cause = match device {
        Device::Usable => return TunCheck::Usable,
        Device::Missing => format!(
            "rootless podman needs {DEVICE} for a container's network, and this host has none"
        ),
        Device::Denied => format!(
            "rootless podman needs {DEVICE} for a container's network, and this user may not open it"
        ),
    };
    let host_fix = match device {
        Device::Missing => {
            "as root, `modprobe tun` (or `mkdir -p /dev/net && mknod -m 666 /dev/net/tun c 10 200`)"
        }
        _ => "as root, `chmod 666 /dev/net/tun`",
    };
    TunCheck::Unusable {
        cause,
        fix: format!(
            "{host_fix}; or give containers no network: `netns = \"none\"` under `[containers]` in ~/.config/containers/containers.conf"
        ),
    }
}

/// The `netns` of one containers.conf text (`[containers]` table), if set.
pub fn parse_netns(text: &str) -> Option<String> {
    super::limits::containers_table(text)
        .filter_map(|l| {
            let (key, value) = l.split('#').next()?.split_once('=')?;
            (key.trim() == "netns").then(|| value.trim().trim_matches(['"', '\'']).to_owned())
        })
        .last()
}

/// The check against this host: the device opened, the files read (a later one's
/// `netns` wins). This is what `system diagnose` calls.
pub fn tun_check(engine: &EngineInfo, conf_files: &[PathBuf]) -> TunCheck {
    if engine.kind != EngineKind::Podman || !engine.rootless || engine.remote {
        return TunCheck::NotNeeded;
    }
    let netns = conf_files.iter().rev().find_map(|f| {
        std::fs::read_to_string(f)
            .ok()
            .and_then(|t| parse_netns(&t))
    });
    decide(engine, &Device::probe(Path::new(DEVICE)), netns.as_deref())
}

impl Runtime {
    /// [`tun_check`] for this runtime's engine and configuration.
    pub fn tun_check(&self) -> TunCheck {
        let files = self
            .limits
            .as_ref()
            .map_or_else(|| super::limits::conf_files(None, None), |p| p.files());
        tun_check(&self.engine, &files)
    }

    /// Before a run with a network: stop with the cause and the fix instead of
    /// slirp4netns's raw error.
    pub(super) fn check_tun(&self, spec: &RunSpec) -> Result<(), RuntimeError> {
        // no network of its own: none at all, or another container's
        if spec.network != Network::Default {
            return Ok(());
        }
        match self.tun_check() {
            TunCheck::Unusable { cause, fix } => Err(RuntimeError::NoTun { cause, fix }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podman(rootless: bool) -> EngineInfo {
        EngineInfo {
            kind: EngineKind::Podman,
            program: "podman".into(),
            rootless,
            remote: false,
        }
    }

    #[test]
    fn only_rootless_podman_with_a_network_needs_the_device() {
        let rootless = podman(true);
        assert_eq!(
            decide(&podman(false), &Device::Missing, None),
            TunCheck::NotNeeded
        );
        let docker = EngineInfo {
            kind: EngineKind::Docker,
            ..podman(true)
        };
        assert_eq!(decide(&docker, &Device::Denied, None), TunCheck::NotNeeded);
        for none in ["none", "host"] {
            assert_eq!(
                decide(&rootless, &Device::Missing, Some(none)),
                TunCheck::NotNeeded
            );
        }
        assert_eq!(
            decide(&rootless, &Device::Usable, Some("slirp4netns")),
            TunCheck::Usable
        );
        let TunCheck::Unusable { cause, fix } = decide(&rootless, &Device::Denied, None) else {
            panic!()
        };
        assert!(cause.contains("/dev/net/tun") && cause.contains("may not open"));
        assert!(
            fix.starts_with("as root, `chmod 666 /dev/net/tun`; or ")
                && fix.contains("`netns = \"none\"` under `[containers]`"),
            "{fix}"
        );
        let TunCheck::Unusable { fix, .. } = decide(&rootless, &Device::Missing, None) else {
            panic!()
        };
        assert!(fix.contains("modprobe tun"), "{fix}");
        assert!(
            decide(&rootless, &Device::Missing, None)
                .report()
                .unwrap()
                .starts_with("[!!] network: rootless podman needs /dev/net/tun")
        );
    }

    #[test]
    fn netns_is_read_from_the_containers_table_and_the_last_setting_wins() {
        assert_eq!(
            parse_netns("[containers]\nnetns = \"none\" # no network\n").as_deref(),
            Some("none")
        );
        assert_eq!(parse_netns("[containers]\n#netns = \"none\"\n"), None);
        assert_eq!(parse_netns("[engine]\nnetns = \"none\"\n"), None);
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, "[containers]\nnetns=\"none\"\n").unwrap();
        std::fs::write(&b, "[containers]\nnetns = \"slirp4netns\"\n").unwrap();
        assert_eq!(
            tun_check(&podman(true), &[b.clone(), a.clone()]),
            TunCheck::NotNeeded
        );
        assert_ne!(tun_check(&podman(true), &[a, b]), TunCheck::NotNeeded);
    }

    #[test]
    fn a_missing_device_is_told_from_a_denied_one() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(Device::probe(&t.path().join("tun")), Device::Missing);
        let f = t.path().join("f");
        std::fs::write(&f, "").unwrap();
        assert_eq!(Device::probe(&f), Device::Usable);
    }
}
