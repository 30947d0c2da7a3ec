//! The seccomp filter that stops a box from making set-id files where its writes land as
//! host root (rootful podman started by root: the agent is host uid 0 on disk, so a
//! `chmod 4755` of its own copy of a shell would be a setuid-root binary for every local
//! user). The engine's own default profile, with every call that sets a file's mode
//! allowed only when the mode carries no setuid or setgid bit.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::fsutil;

/// Where podman keeps its default profile (packaged, then the administrator's copy).
const DEFAULT_PROFILES: &[&str] = &[
    "/etc/containers/seccomp.json",
    "/usr/share/containers/seccomp.json",
];

/// Each call that gives a file its mode, with the index of that mode argument.
const MODE_CALLS: &[(&str, u32)] = &[
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
    ("creat", 1),
    ("mkdir", 1),
    ("mkdirat", 2),
    ("mknod", 1),
    ("mknodat", 2),
    ("open", 2),
    ("openat", 3),
];

/// Calls whose mode cannot be looked at (it sits in a struct, or in a ring the filter
/// never sees): refused, so the C library falls back to the calls above.
const OPAQUE_CALLS: &[&str] = &[
    "openat2",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

const S_ISUID: u64 = 0o4000;
const S_ISGID: u64 = 0o2000;
const EPERM: u64 = 1;
const ENOSYS: u64 = 38;

/// `default` (the engine's profile, JSON) with the set-id filter. Without a default
/// profile, one that allows everything else: the box holds no capability anyway.
pub fn setid_filter(default: Option<&str>) -> Result<String> {
    let mut p: Value = match default {
        Some(text) => serde_json::from_str(text).context("the engine's seccomp profile")?,
        None => json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}),
    };
    let calls = p
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .context("the engine's seccomp profile has no syscalls list")?;
    let ours = |n: &str| MODE_CALLS.iter().any(|(c, _)| *c == n) || OPAQUE_CALLS.contains(&n);
    // What the profile allowed of these calls unconditionally, it allows no longer: a
    // conditional rule beside an unconditional one would not be applied.
    for rule in calls.iter_mut() {
        if let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) {
            names.retain(|n| !n.as_str().is_some_and(ours));
        }
    }
    calls.retain(|r| {
        r.get("names")
            .and_then(Value::as_array)
            .is_none_or(|n| !n.is_empty())
    });
    for (name, index) in MODE_CALLS {
        let arg = |mask: u64, want: u64| json!({"index": index, "value": mask, "valueTwo": want, "op": "SCMP_CMP_MASKED_EQ"});
        calls.push(json!({"names": [name], "action": "SCMP_ACT_ALLOW",
            "args": [arg(S_ISUID | S_ISGID, 0)]}));
        for bit in [S_ISUID, S_ISGID] {
            calls.push(json!({"names": [name], "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM, "args": [arg(bit, bit)]}));
        }
    }
    calls.push(json!({"names": OPAQUE_CALLS, "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}));
    Ok(serde_json::to_string_pretty(&p)?)
}

/// The filter's file under `cache`, written (0644, atomically) unless `dry_run`; made
/// from the first default profile found.
pub fn setid_profile(cache: &Path, dry_run: bool) -> Result<PathBuf> {
    let path = cache.join("seccomp-no-setid.json");
    if dry_run {
        return Ok(path);
    }
    let default = DEFAULT_PROFILES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok());
    let text = setid_filter(default.as_deref())?;
    // Written once: a launch that finds the same profile leaves the file alone.
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(path);
    }
    std::fs::create_dir_all(cache).with_context(|| cache.display().to_string())?;
    fsutil::atomic_write(&path, text.as_bytes(), fsutil::MODE_CONFIG)
        .with_context(|| path.display().to_string())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_for<'a>(p: &'a Value, name: &str) -> Vec<&'a Value> {
        p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn set_id_modes_are_refused_and_the_rest_of_the_default_kept() {
        let default = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "syscalls":[{"names":["read","chmod","openat2"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["mknod"],"action":"SCMP_ACT_ALLOW"}]}"#;
        let p: Value = serde_json::from_str(&setid_filter(Some(default)).unwrap()).unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(rules_for(&p, "read").len(), 1);
        let chmod = rules_for(&p, "chmod");
        assert_eq!(chmod.len(), 3, "{chmod:?}");
        assert_eq!(chmod[0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(chmod[0]["args"][0]["value"], 0o6000);
        assert_eq!(chmod[0]["args"][0]["valueTwo"], 0);
        assert_eq!(chmod[1]["errnoRet"], 1);
        let openat2 = rules_for(&p, "openat2");
        assert_eq!(openat2.len(), 1);
        assert_eq!(openat2[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(rules_for(&p, "openat")[0]["args"][0]["index"], 3);
        assert_eq!(rules_for(&p, "mknod").len(), 3, "the emptied rule is gone");
    }

    #[test]
    fn without_a_default_everything_else_is_allowed() {
        let p: Value = serde_json::from_str(&setid_filter(None).unwrap()).unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(setid_filter(Some("{")).is_err());
    }
}
