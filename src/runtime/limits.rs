//! The host's resource limits against what rootful podman asks of them: the `--ulimit`
//! values a run needs so that runc can start it at all, or why it cannot.
//!
//! Rootful podman gives every container `nofile` and `nproc` of 1048576 (soft and hard)
//! unless `containers.conf` sets `default_ulimits`. Raising a hard limit needs
//! `CAP_SYS_RESOURCE`; on a host (a VM or a container) whose root lacks it and whose hard
//! limits are lower, every `podman run` fails with runc's `error setting rlimit type 7:
//! operation not permitted`. Rootless podman already clamps to the caller's limits, and
//! docker's daemon has its own, so only local rootful podman is looked at.
//!
//! Reading the limits is a few `getrlimit` calls and reading the (small) containers.conf
//! files, no engine call; a [`Probe`] does it once per process, on the first `run`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{EngineInfo, EngineKind};

/// What podman asks for `nofile` and `nproc` when nothing configures them.
pub const PODMAN_DEFAULT: u64 = 1_048_576;

/// One `--ulimit NAME=SOFT:HARD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ulimit {
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    pub fn arg(&self) -> String {
        format!("{}={}:{}", self.name, self.soft, self.hard)
    }
}

/// The hard limits a container started from here may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    pub nofile: u64,
    pub nproc: u64,
}

impl HostLimits {
    /// This process's hard limits. Podman lowers its own `nproc` to the kernel's
    /// `pid_max` before it starts runc (seen with podman 4.3: a host with a hard `nproc`
    /// of 96363 and `pid_max` 32768 can start containers with nproc 32768 only), so that
    /// bounds it too.
    pub fn read() -> Self {
        use nix::sys::resource::{Resource, getrlimit};
        let hard = |r| getrlimit(r).map_or(u64::MAX, |(_, h)| h);
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        Self {
            nofile: hard(Resource::RLIMIT_NOFILE),
            nproc: hard(Resource::RLIMIT_NPROC).min(pid_max),
        }
    }

    fn allows(&self, name: &str, hard: u64) -> bool {
        match name {
            "nofile" => hard <= self.nofile,
            "nproc" => hard <= self.nproc,
            _ => true,
        }
    }

    /// The `default_ulimits` line that works here.
    pub fn conf_line(&self) -> String {
        let v = |h: u64| h.min(PODMAN_DEFAULT);
        format!(
            "default_ulimits = [\"nofile={n}:{n}\", \"nproc={p}:{p}\"]",
            n = v(self.nofile),
            p = v(self.nproc)
        )
    }
}

/// What the engine's configuration says about limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Configured {
    /// No `default_ulimits`: podman's defaults apply.
    Defaults,
    /// `default_ulimits`, as `(name, hard)` pairs, from this file.
    Set {
        file: PathBuf,
        limits: Vec<(String, u64)>,
    },
}

/// What a rootful podman run needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the engine's limits fit the host (or it is not rootful podman).
    Fits,
    /// Pass these (both together: one `--ulimit` replaces podman's whole default list,
    /// so naming only `nofile` would leave `nproc` unset rather than lowered).
    Pass(Vec<Ulimit>),
    /// The configured `default_ulimits` exceed the host: it is the user's setting, so it
    /// is not overridden; the launch stops and says what to change.
    Exceeds {
        file: PathBuf,
        name: String,
        hard: u64,
        host: HostLimits,
    },
}

/// Pure: what a run on `engine` needs, given the host's limits and the configuration.
pub fn decide(engine: &EngineInfo, host: HostLimits, conf: &Configured) -> Decision {
    if engine.kind != EngineKind::Podman || engine.rootless || engine.remote {
        return Decision::Fits;
    }
    match conf {
        Configured::Set { file, limits } => limits
            .iter()
            .find(|(name, hard)| !host.allows(name, *hard))
            .map_or(Decision::Fits, |(name, hard)| Decision::Exceeds {
                file: file.clone(),
                name: name.clone(),
                hard: *hard,
                host,
            }),
        Configured::Defaults if host.nofile >= PODMAN_DEFAULT && host.nproc >= PODMAN_DEFAULT => {
            Decision::Fits
        }
        Configured::Defaults => Decision::Pass(
            [("nofile", host.nofile), ("nproc", host.nproc)]
                .into_iter()
                .map(|(name, h)| {
                    let v = h.min(PODMAN_DEFAULT);
                    Ulimit {
                        name,
                        soft: v,
                        hard: v,
                    }
                })
                .collect(),
        ),
    }
}

/// The containers.conf files podman reads, in order (a later one's setting wins):
/// `CONTAINERS_CONF` alone when set, else the distribution's, the system's (and its
/// `.d` drop-ins), then the user's.
pub fn conf_files(containers_conf: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    if let Some(f) = containers_conf {
        return vec![f.to_owned()];
    }
    let mut files = vec![
        PathBuf::from("/usr/share/containers/containers.conf"),
        PathBuf::from("/etc/containers/containers.conf"),
    ];
    let dropins = |dir: PathBuf| {
        let mut d: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        d.sort();
        d
    };
    files.extend(dropins(PathBuf::from("/etc/containers/containers.conf.d")));
    if let Some(h) = home {
        files.push(h.join(".config/containers/containers.conf"));
        files.extend(dropins(h.join(".config/containers/containers.conf.d")));
    }
    files
}

/// The lines of a containers.conf text's `[containers]` table, trimmed (the only table
/// kanibako reads: `default_ulimits` here, `netns` for [`super::tun`]).
pub fn containers_table(text: &str) -> impl Iterator<Item = &str> {
    let mut table = "";
    text.lines().map(str::trim).filter(move |l| {
        if l.starts_with('[') && !l.starts_with("[[") && l.ends_with(']') && !l.contains('=') {
            table = l.trim_matches(['[', ']']).trim();
            return false;
        }
        table == "containers"
    })
}

/// The `default_ulimits` of one containers.conf text (`[containers]` table), if set:
/// `(name, hard)` of each entry (`nofile=1024:2048`; a lone value is soft and hard;
/// `-1` is unlimited).
pub fn parse_default_ulimits(text: &str) -> Option<Vec<(String, u64)>> {
    let mut lines = containers_table(text);
    while let Some(l) = lines.next() {
        let Some(rest) = l.strip_prefix("default_ulimits") else {
            continue;
        };
        let Some(value) = rest.trim_start().strip_prefix('=') else {
            continue;
        };
        let mut value = value.to_owned();
        while !value.contains(']') {
            match lines.next() {
                Some(more) => value.push_str(more.split('#').next().unwrap_or("")),
                None => break,
            }
        }
        let entries = value
            .split('"')
            .skip(1)
            .step_by(2)
            .filter_map(|e| {
                let (name, limits) = e.split_once('=')?;
                let hard = limits.rsplit(':').next()?.trim();
                let hard = if hard == "-1" {
                    u64::MAX
                } else {
                    hard.parse().ok()?
                };
                Some((name.trim().to_owned(), hard))
            })
            .collect();
        return Some(entries);
    }
    None
}

/// Reads the configuration from `files` (the last that sets `default_ulimits` wins).
pub fn read_configured(files: &[PathBuf]) -> Configured {
    let mut found = Configured::Defaults;
    for f in files {
        if let Some(limits) = std::fs::read_to_string(f)
            .ok()
            .and_then(|t| parse_default_ulimits(&t))
        {
            found = if limits.is_empty() {
                Configured::Defaults
            } else {
                Configured::Set {
                    file: f.clone(),
                    limits,
                }
            };
        }
    }
    found
}

/// The one-line cause and the fix of a run refused for the host's limits.
/// `conf` is where the fix goes when no file set the limits (the file `CONTAINERS_CONF`
/// names, else the system's).
pub fn explain(decision: &Decision, host: HostLimits, conf: &Path) -> (String, String) {
    let (cause, file) = match decision {
        Decision::Exceeds {
            file, name, hard, ..
        } => (
            format!(
                "default_ulimits in {} asks for {name} {hard}, above this host's hard limit",
                file.display()
            ),
            file.display().to_string(),
        ),
        _ => (
            format!(
                "podman cannot start a container within this host's hard limits (nofile {}, nproc {})",
                host.nofile, host.nproc
            ),
            conf.display().to_string(),
        ),
    };
    (
        cause,
        format!("put `{}` under `[containers]` in {file}", host.conf_line()),
    )
}

/// The decision for one engine, worked out on first use and then remembered.
#[derive(Debug)]
pub struct Probe {
    /// `CONTAINERS_CONF` and `HOME`, to find the files ([`conf_files`]) when needed.
    containers_conf: Option<PathBuf>,
    home: Option<PathBuf>,
    /// Fixed files and limits instead of the host's (tests).
    fixed: Option<(Vec<PathBuf>, HostLimits)>,
    done: OnceLock<(HostLimits, Decision)>,
}

impl Probe {
    pub fn new(containers_conf: Option<PathBuf>, home: Option<PathBuf>) -> Self {
        Self {
            containers_conf,
            home,
            fixed: None,
            done: OnceLock::new(),
        }
    }

    /// A probe that reads `files` and sees `host` instead of this process's limits.
    pub fn fixed(files: Vec<PathBuf>, host: HostLimits) -> Self {
        Self {
            fixed: Some((files, host)),
            ..Self::new(None, None)
        }
    }

    /// The containers.conf files podman reads here ([`conf_files`]).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.fixed {
            Some((files, _)) => files.clone(),
            None => conf_files(self.containers_conf.as_deref(), self.home.as_deref()),
        }
    }

    /// The file a fix goes in ([`explain`]).
    pub fn conf_file(&self) -> PathBuf {
        self.containers_conf
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/containers/containers.conf"))
    }

    pub fn get(&self, engine: &EngineInfo) -> &(HostLimits, Decision) {
        self.done.get_or_init(|| {
            // Only rootful podman is affected; for the others nothing is read.
            if engine.kind != EngineKind::Podman || engine.rootless || engine.remote {
                return (HostLimits::read(), Decision::Fits);
            }
            let (files, host) = match &self.fixed {
                Some((f, h)) => (f.clone(), *h),
                None => (
                    conf_files(self.containers_conf.as_deref(), self.home.as_deref()),
                    HostLimits::read(),
                ),
            };
            (host, decide(engine, host, &read_configured(&files)))
        })
    }
}

/// Whether an engine's error text is runc refusing a limit.
pub fn is_rlimit_error(stderr: &str) -> bool {
    stderr.contains("error setting rlimit")
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

    const LOW: HostLimits = HostLimits {
        nofile: 20000,
        nproc: 32768,
    };

    #[test]
    fn rootful_podman_under_low_hard_limits_passes_both_within_them() {
        let d = decide(&podman(false), LOW, &Configured::Defaults);
        let Decision::Pass(u) = d else {
            panic!("{d:?}")
        };
        let args: Vec<_> = u.iter().map(Ulimit::arg).collect();
        assert_eq!(args, ["nofile=20000:20000", "nproc=32768:32768"]);
    }

    #[test]
    fn generous_hosts_rootless_podman_and_docker_pass_nothing() {
        let high = HostLimits {
            nofile: PODMAN_DEFAULT,
            nproc: u64::MAX,
        };
        assert_eq!(
            decide(&podman(false), high, &Configured::Defaults),
            Decision::Fits
        );
        assert_eq!(
            decide(&podman(true), LOW, &Configured::Defaults),
            Decision::Fits
        );
        let docker = EngineInfo {
            kind: EngineKind::Docker,
            ..podman(false)
        };
        assert_eq!(decide(&docker, LOW, &Configured::Defaults), Decision::Fits);
    }

    #[test]
    fn configured_ulimits_are_respected_and_checked() {
        let fits = Configured::Set {
            file: "/c".into(),
            limits: vec![("nofile".into(), 1024), ("nproc".into(), 1024)],
        };
        assert_eq!(decide(&podman(false), LOW, &fits), Decision::Fits);
        let high = Configured::Set {
            file: "/c".into(),
            limits: vec![("nofile".into(), 65536)],
        };
        let d = decide(&podman(false), LOW, &high);
        assert!(
            matches!(&d, Decision::Exceeds { name, hard: 65536, .. } if name == "nofile"),
            "{d:?}"
        );
        let (cause, fix) = explain(&d, LOW, Path::new("/etc/containers/containers.conf"));
        assert!(
            cause.contains("/c") && cause.contains("nofile 65536"),
            "{cause}"
        );
        assert_eq!(
            fix,
            "put `default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]` under \
             `[containers]` in /c"
        );
    }

    #[test]
    fn default_ulimits_are_read_from_the_containers_table_only() {
        let text = "# x\n[containers]\ndefault_capabilities = [\"CHOWN\"]\n\
                    default_ulimits = [\n  \"nofile=1024:2048\", # comment\n  \"nproc=512\",\n]\n\
                    [engine]\ndefault_ulimits = [\"nofile=9:9\"]\n";
        assert_eq!(
            parse_default_ulimits(text),
            Some(vec![("nofile".into(), 2048), ("nproc".into(), 512)])
        );
        assert_eq!(
            parse_default_ulimits("[containers]\n#default_ulimits = [\"nofile=1:1\"]\n"),
            None,
            "a commented-out line (as in Debian's file) sets nothing"
        );
        assert_eq!(
            parse_default_ulimits("[containers]\ndefault_ulimits = [\"core=-1:-1\"]\n"),
            Some(vec![("core".into(), u64::MAX)])
        );
        assert_eq!(
            parse_default_ulimits("[engine]\nruntime = \"runc\"\n"),
            None
        );
    }

    #[test]
    fn the_configuration_is_read_once_in_order() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.conf");
        let b = t.path().join("b.conf");
        std::fs::write(
            &a,
            "[containers]\ndefault_ulimits = [\"nofile=99999:99999\"]\n",
        )
        .unwrap();
        std::fs::write(&b, "[containers]\ndefault_ulimits = [\"nofile=100:100\"]\n").unwrap();
        let probe = Probe::fixed(vec![a.clone(), b.clone()], LOW);
        assert_eq!(probe.get(&podman(false)).1, Decision::Fits, "b wins");
        std::fs::remove_file(&b).unwrap();
        assert_eq!(probe.get(&podman(false)).1, Decision::Fits, "remembered");
        let fresh = Probe::fixed(vec![a, b], LOW);
        assert!(matches!(
            fresh.get(&podman(false)).1,
            Decision::Exceeds { .. }
        ));
        assert_eq!(
            conf_files(Some(Path::new("/x.conf")), Some(Path::new("/h"))),
            [PathBuf::from("/x.conf")],
            "CONTAINERS_CONF replaces the others"
        );
    }
}
