//! tweakcc: the agent binary patched once per (embedded `cli.js`, tweakcc config) and
//! kept in `$CACHE/tweakcc/` for every later session (spec: upstream-runtime §6).
//!
//! Upstream deleted an entry when its last session ended, so almost every launch
//! patched again. Here an entry stays until the cache outgrows its bound, then the
//! least recently used entries nobody holds go first. A session holds its entry under
//! a shared `flock`; eviction only removes what it can lock exclusively. Launches that
//! need the same entry at once take turns on a per-entry lock, so one patch run serves
//! them all.
//!
//! The patch is code run over the agent every box then runs, so it runs only on a
//! trusted image (the system level's rig, never one a box or a repository names),
//! recorded by its id in the cache key, with no capability, no network and nothing
//! of the user's mounted; its output is kept only if it is still a Bun executable of
//! the same agent ([`same_agent`]), and is copied into a file of ours, never renamed
//! from what the container wrote.

pub mod bun_sea;
pub mod session;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::fsutil::{self, SharedHold};
use crate::output;
use crate::runtime::spec::{Confinement, Mount, Network, RunMode, RunSpec, UserMapping};
use crate::runtime::{EngineInfo, Runtime};

/// How much patched binaries may take together (an agent binary is ~200 MB).
pub const CACHE_MAX_BYTES: u64 = 1 << 30;

/// The merged tweakcc config from a crab's `tweakcc:` mapping, or `None` when patching
/// is off: `enabled` must be true. `config` names an external tweakcc `config.json`
/// (`~` is the host home); every other key overrides it, deep-merged.
pub fn settings(tweakcc: Option<&Value>, home: &Path) -> Result<Option<Value>, String> {
    let Some(Value::Object(map)) = tweakcc else {
        return Ok(None);
    };
    let mut map = map.clone();
    let enabled = match map.remove("enabled") {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "yes" | "on" | "1"),
        _ => false,
    };
    if !enabled {
        return Ok(None);
    }
    let mut merged = Value::Object(Map::new());
    if let Some(path) = map.remove("config") {
        let Value::String(path) = path else {
            return Err("tweakcc.config must be a path".into());
        };
        let path = match path.strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => PathBuf::from(path),
        };
        let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let external: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
        deep_merge(&mut merged, &external);
    }
    deep_merge(&mut merged, &Value::Object(map));
    Ok(Some(merged))
}

/// `over` onto `base`: objects merge key by key, anything else replaces.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                deep_merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// JSON with sorted keys, no spaces and non-ASCII escaped: the form Python's
/// `json.dumps(sort_keys=True, separators=(",", ":"))` gives, so keys match upstream's.
pub fn canonical_json(v: &Value) -> String {
    // serde_json's map is ordered by key, and compact output has no spaces.
    let s = serde_json::to_string(v).expect("a JSON value always serialises");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    crate::hex::encode(bytes)
}

/// The cache key: 16 hex digits of
/// sha256("`<sha256 of cli.js>:<sha256 of the config>:<id of the patch image>`").
pub fn cache_key(cli_js_hash: &str, config: &Value, image_id: &str) -> String {
    let config_hash = hex(&Sha256::digest(canonical_json(config).as_bytes()));
    let key = hex(&Sha256::digest(
        format!("{cli_js_hash}:{config_hash}:{image_id}").as_bytes(),
    ));
    key[..16].to_owned()
}

/// The version an agent's `cli.js` declares (`VERSION:"2.0.14"`), if it does.
fn declared_version(cli: &[u8]) -> Option<&[u8]> {
    let at = cli.windows(9).position(|w| w == b"VERSION:\"")? + 9;
    let len = cli[at..].iter().take(32).position(|b| *b == b'"')?;
    Some(&cli[at..at + len])
}

/// Whether `patched` is still a Bun executable of the same agent as `original`: its
/// module table reads, names the same modules, has a `cli.js`, and declares the same
/// version; otherwise why not.
pub fn same_agent(original: &[u8], patched: &[u8]) -> Result<(), String> {
    let names = |f: &[u8]| -> Result<Vec<String>, String> {
        Ok(bun_sea::modules(f)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| m.name)
            .collect())
    };
    let before = names(original)?;
    let after =
        names(patched).map_err(|e| format!("the patched binary is not a Bun executable ({e})"))?;
    if before != after {
        return Err("the patched binary holds other modules than the agent".into());
    }
    let cli = bun_sea::cli_js(patched).map_err(|e| e.to_string())?;
    let was = declared_version(bun_sea::cli_js(original).map_err(|e| e.to_string())?);
    if was.is_some() && declared_version(cli) != was {
        return Err("the patched binary declares another agent version".into());
    }
    Ok(())
}

fn is_key(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The patched-binary cache.
pub struct Cache {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl Cache {
    pub fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The entry held for this session, if it is there (and not being evicted). Its
    /// modification time is its last use.
    pub fn get(&self, key: &str) -> Option<SharedHold> {
        let held = fsutil::try_hold_shared(&self.entry(key)).ok()??;
        held.touch();
        Some(held)
    }

    /// Remove least recently used entries nobody holds until the cache fits, never
    /// `keep`. Returns the keys removed.
    pub fn evict(&self, keep: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut entries: Vec<(std::time::SystemTime, u64, String)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let m = e.metadata().ok()?;
                if !(is_key(&name) && m.is_file()) {
                    return None;
                }
                Some((m.modified().ok()?, m.len(), name))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        let mut removed = Vec::new();
        for (_, size, key) in entries {
            if total <= self.max_bytes {
                break;
            }
            // A key being patched right now (its lock held) is left alone, config and all.
            let Ok(Some(_turn)) =
                fsutil::try_lock_exclusive(&self.dir.join(format!(".lock-{key}")))
            else {
                continue;
            };
            if key != keep && fsutil::remove_if_unheld(&self.entry(&key)) {
                let _ = std::fs::remove_file(self.dir.join(format!(".config-{key}.json")));
                total = total.saturating_sub(size);
                removed.push(key);
            }
        }
        removed
    }

    /// The sha256 of the binary's `cli.js`, remembered per (path, size, mtime) so an
    /// unchanged binary is not read again on every launch.
    pub fn cli_js_hash(&self, binary: &Path) -> Result<String, String> {
        let meta = std::fs::metadata(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let id = hex(&Sha256::digest(
            format!("{}|{}|{mtime}", binary.display(), meta.len()).as_bytes(),
        ));
        let memo = self.dir.join(format!(".cli-{}", &id[..16]));
        if let Ok(h) = std::fs::read_to_string(&memo)
            && h.len() == 64
        {
            return Ok(h);
        }
        let bytes = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
        let cli = bun_sea::cli_js(&bytes).map_err(|e| e.to_string())?;
        let h = hex(&Sha256::digest(cli));
        let _ = fsutil::atomic_write(&memo, h.as_bytes(), fsutil::MODE_CONFIG);
        Ok(h)
    }
}

/// The patched binary for `binary` under `config`, from the cache or made now in a
/// throw-away container of `image` with no network. The hold keeps it from eviction
/// until dropped.
pub fn patched(
    rt: &Runtime,
    cache: &Cache,
    image: &str,
    binary: &Path,
    config: &Value,
) -> Result<SharedHold, String> {
    std::fs::create_dir_all(&cache.dir)
        .map_err(|e| format!("creating {}: {e}", cache.dir.display()))?;
    let image_id = rt
        .image_details(image)
        .map(|d| d.id)
        .ok_or_else(|| format!("the patch image {image} is not available locally"))?;
    // The image is run by its id: the tag cannot move between the look and the run.
    let image = image_id.as_str();
    let key = cache_key(&cache.cli_js_hash(binary)?, config, image);
    if let Some(held) = cache.get(&key) {
        tracing::debug!("tweakcc: cache hit {key}");
        return Ok(held);
    }
    // One patch run per entry: whoever waited here finds it made.
    let _turn = fsutil::lock_exclusive(&cache.dir.join(format!(".lock-{key}")))
        .map_err(|e| format!("locking the tweakcc cache: {e}"))?;
    if let Some(held) = cache.get(&key) {
        return Ok(held);
    }
    output::say("Patching the agent with tweakcc (once for this version and config)...");
    let config_file = cache.dir.join(format!(".config-{key}.json"));
    let mut pretty = serde_json::to_string_pretty(config).expect("serialises");
    pretty.push('\n');
    fsutil::atomic_write(&config_file, pretty.as_bytes(), fsutil::MODE_CONFIG)
        .map_err(|e| e.to_string())?;
    let staging = cache
        .dir
        .join(format!(".staging-{key}-{}", std::process::id()));
    let result = patch_in(rt, &staging, &config_file, image, binary)
        .and_then(|patched| store(binary, &patched, &cache.entry(&key)));
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    let held = cache
        .get(&key)
        .ok_or_else(|| "the patched binary vanished from the cache".to_owned())?;
    for gone in cache.evict(&key) {
        tracing::debug!("tweakcc: evicted {gone}");
    }
    Ok(held)
}

/// The container's output checked ([`same_agent`]) and copied into a new file of
/// ours (0755, written aside and renamed into the cache).
fn store(binary: &Path, patched: &Path, entry: &Path) -> Result<(), String> {
    let original = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let out = std::fs::read(patched).map_err(|e| format!("reading the patched binary: {e}"))?;
    same_agent(&original, &out).map_err(|e| format!("{e}; not used"))?;
    fsutil::atomic_write(entry, &out, 0o755).map_err(|e| format!("storing the patched binary: {e}"))
}

fn patch_in(
    rt: &Runtime,
    staging: &Path,
    config_file: &Path,
    image: &str,
    binary: &Path,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(staging);
    // The run's root holds no capability, so it may write only what anyone may: its
    // work directory is open to all, inside one only we can enter.
    let work = staging.join("work");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o700))
        .and_then(|()| std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)))
        .map_err(|e| format!("{}: {e}", staging.display()))?;
    let name = binary
        .file_name()
        .ok_or_else(|| format!("{} has no file name", binary.display()))?;
    let copy = work.join(name);
    std::fs::copy(binary, &copy).map_err(|e| format!("copying {}: {e}", binary.display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| e.to_string())?;
    // tweakcc reads its config from (and keeps notes in) `~/.tweakcc`: an open home
    // beside the work directory, mounted over the image's `/root` (which no one but
    // root may enter), so the unprivileged patch user may read and write it.
    let home = staging.join("home");
    let dot = home.join(".tweakcc");
    std::fs::create_dir_all(&dot)
        .and_then(|()| std::fs::copy(config_file, dot.join("config.json")).map(drop))
        .and_then(|()| {
            for d in [&home, &dot] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))?;
            }
            std::fs::set_permissions(
                dot.join("config.json"),
                std::fs::Permissions::from_mode(0o644),
            )
        })
        .map_err(|e| format!("{}: {e}", dot.display()))?;
    let user = patch_user(
        &rt.engine,
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let spec = patch_spec(&work, &home, image, &name.to_string_lossy(), user);
    let env_file =
        crate::envfile::temporary(&spec.env).map_err(|e| format!("writing the env file: {e}"))?;
    // Once per agent version and config, but long (a container, a Bun binary
    // rewritten): shown as a spinner on a terminal.
    let spinner = rt.spinner("Patching the agent with tweakcc (once per version)");
    let out = rt.run_captured(&spec, None, Some(&env_file));
    drop(spinner);
    let out = out.map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "tweakcc container failed (exit {}): {}",
            crate::process::exit_code(out.status),
            err.trim().lines().last().unwrap_or("")
        ));
    }
    Ok(copy)
}

/// The patch run's home, where tweakcc looks for `.tweakcc/config.json`.
const PATCH_HOME: &str = "/root";

/// The nobody user: who runs the patch where the invoking user is root.
const NOBODY: u32 = 65534;

/// Who runs the patch: never root, not even the image's. Rootless podman maps the
/// invoking user in (`keep-id`); elsewhere the invoking user's uid, or nobody when
/// kanibako runs as root, so what the patch writes is never a host root's.
pub fn patch_user(engine: &EngineInfo, uid: u32, gid: u32) -> UserMapping {
    if engine.keeps_ids() {
        UserMapping::KeepId { pin: false }
    } else if uid == 0 {
        UserMapping::User {
            uid: NOBODY,
            gid: NOBODY,
        }
    } else {
        UserMapping::User { uid, gid }
    }
}

/// The throw-away run that patches the copy in `staging` (`/work/<binary>`) with the
/// config copied into `home` (mounted as `/root`, its `HOME`): as `user` (never root),
/// no network, no capability, confined like a box, nothing else mounted.
fn patch_spec(
    staging: &Path,
    home: &Path,
    image: &str,
    binary: &str,
    user: UserMapping,
) -> RunSpec {
    let mut spec = RunSpec::job(
        "tweakcc",
        format!("kanibako-tweakcc-{}", std::process::id()),
        image,
        RunMode::Batch,
        user,
    );
    spec.network = Network::None;
    spec.confined = Some(Confinement::default());
    spec.mounts = vec![
        Mount::Bind {
            src: staging.to_owned(),
            dst: "/work".into(),
            read_only: false,
            relabel: false,
        },
        Mount::Bind {
            src: home.to_owned(),
            dst: PATCH_HOME.into(),
            read_only: false,
            relabel: false,
        },
    ];
    spec.env = std::collections::BTreeMap::from([
        (
            "TWEAKCC_CC_INSTALLATION_PATH".to_owned(),
            format!("/work/{binary}"),
        ),
        ("HOME".to_owned(), PATCH_HOME.to_owned()),
    ]);
    spec.command = ["tweakcc", "--apply"].map(Into::into).to_vec();
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_merge_file_then_inline() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("tw.json"),
            r#"{"settings": {"themes": [1], "misc": {"a": 1, "b": 2}}}"#,
        )
        .unwrap();
        let inline =
            json!({"enabled": true, "config": "~/tw.json", "settings": {"misc": {"b": 3}}});
        let merged = settings(Some(&inline), t.path()).unwrap().unwrap();
        assert_eq!(
            merged,
            json!({"settings": {"themes": [1], "misc": {"a": 1, "b": 3}}})
        );
        let off = json!({"enabled": false, "x": 1});
        assert_eq!(settings(Some(&off), t.path()).unwrap(), None);
        assert_eq!(settings(None, t.path()).unwrap(), None);
        let bad = json!({"enabled": true, "config": "~/missing.json"});
        assert!(
            settings(Some(&bad), t.path())
                .unwrap_err()
                .contains("missing.json")
        );
    }

    #[test]
    fn the_patch_runs_offline_on_its_scratch_copy_with_the_path_in_the_env_file() {
        let spec = patch_spec(
            Path::new("/c/.staging-k-1/work"),
            Path::new("/c/.staging-k-1/home"),
            "rig:1",
            "claude",
            UserMapping::User { uid: 7, gid: 7 },
        );
        let args: Vec<String> = spec
            .to_args(
                crate::runtime::EngineKind::Podman,
                None,
                Some(Path::new("/tmp/e")),
            )
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with(
                "run --pull=never --rm --init --network=none --cap-drop=ALL \
                 --security-opt=no-new-privileges --pids-limit=4096 --user 7:7 \
                 -v /c/.staging-k-1/work:/work:nosuid,nodev \
                 -v /c/.staging-k-1/home:/root:nosuid,nodev --env-file /tmp/e --label io.kanibako.role=tweakcc "
            ),
            "{line}"
        );
        assert!(line.ends_with(" rig:1 tweakcc --apply"), "{line}");
        assert_eq!(spec.env["TWEAKCC_CC_INSTALLATION_PATH"], "/work/claude");
    }

    #[test]
    fn keys_are_stable_and_python_shaped() {
        let v = json!({"b": 1, "a": {"z": "é", "y": [true, null]}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"y":[true,null],"z":"\u00e9"},"b":1}"#
        );
        let k = cache_key(&"0".repeat(64), &v, "img");
        assert_eq!(k.len(), 16);
        assert_eq!(k, cache_key(&"0".repeat(64), &v, "img"));
        assert_ne!(k, cache_key(&"1".repeat(64), &v, "img"));
        // Issue 10, item 4: another patch image is another entry
        assert_ne!(k, cache_key(&"0".repeat(64), &v, "other"));
    }

    /// Issue 10, item 4: a patch's output is kept only if it is still the same agent,
    /// and the patch run holds no capability and no network.
    #[test]
    fn a_patch_must_leave_the_same_agent() {
        let agent = |cli: &[u8], extra: &[(&str, &[u8])]| {
            let mut mods: Vec<(&str, &[u8])> = vec![("/$bunfs/root/cli.js", cli)];
            mods.extend_from_slice(extra);
            bun_sea::build(b"#!/bin/sh\n", &mods)
        };
        let original = agent(b"x;VERSION:\"2.0.1\";y", &[]);
        assert!(same_agent(&original, &agent(b"patched;VERSION:\"2.0.1\";", &[])).is_ok());
        assert!(same_agent(&original, b"#!/bin/sh\necho trojan\n").is_err());
        assert!(same_agent(&original, &agent(b"VERSION:\"9.9.9\"", &[])).is_err());
        assert!(
            same_agent(
                &original,
                &agent(b"VERSION:\"2.0.1\"", &[("/$bunfs/root/evil.js", b"x")])
            )
            .is_err()
        );
        let args: Vec<String> = patch_spec(
            Path::new("/s"),
            Path::new("/h"),
            "abc123",
            "claude",
            UserMapping::Image,
        )
        .to_args(
            crate::runtime::EngineKind::Docker,
            None,
            Some(Path::new("/e")),
        )
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        for flag in [
            "--network=none",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
        ] {
            assert!(args.iter().any(|a| a == flag), "{args:?}");
        }
    }

    #[test]
    fn eviction_takes_the_oldest_unheld_first() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache {
            dir: t.path().to_owned(),
            max_bytes: 250,
        };
        let keys = [
            "aaaaaaaaaaaaaaaa",
            "bbbbbbbbbbbbbbbb",
            "cccccccccccccccc",
            "dddddddddddddddd",
        ];
        for (i, k) in keys.iter().enumerate() {
            let p = cache.entry(k);
            std::fs::write(&p, [0u8; 100]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64))
                .unwrap();
        }
        std::fs::write(t.path().join("not-a-key"), [0u8; 100]).unwrap();
        // the oldest is in use: it stays, and the next oldest go instead
        let held = fsutil::try_hold_shared(&cache.entry(keys[0]))
            .unwrap()
            .unwrap();
        let removed = cache.evict(keys[3]);
        assert_eq!(removed, [keys[1], keys[2]]);
        assert!(cache.entry(keys[0]).exists() && cache.entry(keys[3]).exists());
        drop(held);
        assert!(t.path().join("not-a-key").exists());
    }

    /// Issue 10, item 4: the patch runs as a non-root user (the invoking one, mapped in
    /// with keep-id on rootless podman; nobody when that is root), holding no capability,
    /// with no network and nothing mounted but its work directory.
    #[test]
    fn the_patch_runs_unprivileged_without_network() {
        use crate::runtime::EngineKind;
        let engine = |kind: EngineKind, rootless: bool| EngineInfo {
            kind,
            program: kind.name().into(),
            rootless,
            remote: false,
        };
        let render = |e: &EngineInfo, uid: u32| {
            let spec = patch_spec(
                Path::new("/s/work"),
                Path::new("/s/home"),
                "sha256:abc",
                "claude",
                patch_user(e, uid, uid),
            );
            spec.to_args(e.kind, None, Some(Path::new("/run/e")))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let cases = [
            (engine(EngineKind::Podman, true), 1000, "--userns=keep-id"),
            (engine(EngineKind::Podman, false), 0, "--user 65534:65534"),
            (engine(EngineKind::Podman, false), 1001, "--user 1001:1001"),
            (engine(EngineKind::Docker, false), 0, "--user 65534:65534"),
            (engine(EngineKind::Docker, false), 1001, "--user 1001:1001"),
        ];
        for (e, uid, user) in cases {
            let out = render(&e, uid);
            for flag in [
                user,
                "--network=none",
                "--cap-drop=ALL",
                "--security-opt=no-new-privileges",
                "-v /s/work:/work",
            ] {
                assert!(out.contains(flag), "{:?} uid {uid}: {out}", e.kind);
            }
            assert_eq!(out.matches(" -v ").count(), 2, "{out}");
            assert!(out.contains("-v /s/home:/root"), "{out}");
            assert!(out.ends_with("sha256:abc tweakcc --apply"), "{out}");
        }
        let spec = patch_spec(
            Path::new("/s"),
            Path::new("/h"),
            "i",
            "claude",
            UserMapping::Image,
        );
        assert_eq!(spec.env["HOME"], "/root");
    }
}
