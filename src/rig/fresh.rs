//! The freshness check: is there a newer version of a rig pulled from a registry?
//!
//! At most once a day per image, and never in a launch's way: the check runs on a
//! background thread while the session runs, asks the registry with a 5 s timeout, and
//! records what it learnt in `$CACHE/digest-cache.json`. The *next* launch reads the
//! cache and prints one line — that a newer version exists, or (once) that the registry
//! could not be asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// How long an answer counts as fresh.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const TIMEOUT: Duration = Duration::from_secs(5);

/// One image's entry. `digest` and `ts` are the Python tool's fields; the rest are ours.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub noted: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn load(file: &Path) -> BTreeMap<String, Entry> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(file: &Path, all: &BTreeMap<String, Entry>) {
    if let Ok(text) = serde_json::to_string(all) {
        // Losing a cache write costs one more check tomorrow; nothing else.
        let _ = fsutil::atomic_write(file, text.as_bytes(), fsutil::MODE_CONFIG);
    }
}

/// `(registry, repository, tag)` of a reference that names a registry host
/// (`ghcr.io/owner/name:tag`); `None` for local or bare names.
pub fn parse_reference(image: &str) -> Option<(String, String, String)> {
    let (host, rest) = image.split_once('/')?;
    if !(host.contains('.') || host.contains(':')) || host.starts_with("localhost") {
        return None;
    }
    let rest = rest.split('@').next()?;
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (rest, "latest"),
    };
    Some((host.to_owned(), repo.to_owned(), tag.to_owned()))
}

/// What the next launch should say about `image`, if anything (a failure note is
/// marked as said), and whether a new check is due — from one read of the cache, and
/// none at all for an image no registry has (`localhost/…`, a bare name).
pub fn look(file: &Path, image: &str) -> (Option<String>, bool) {
    if parse_reference(image).is_none() {
        return (None, false);
    }
    let mut all = load(file);
    let Some(e) = all.get_mut(image) else {
        return (None, true);
    };
    let due = now() - e.ts > MAX_AGE.as_secs_f64();
    let note = if let Some(err) = e.error.clone() {
        if e.noted {
            None
        } else {
            e.noted = true;
            save(file, &all);
            Some(format!("note: could not check {image} for updates ({err})"))
        }
    } else {
        match &e.local {
            Some(local) if !e.digest.is_empty() && *local != e.digest => Some(format!(
                "Note: A newer version of {image} is available. Run 'kanibako rig prep {image} --force' to update."
            )),
            _ => None,
        }
    };
    (note, due)
}

/// Mark `image` as checked now, before its check runs on a thread the process does
/// not wait for: a short session that ends first must not leave the check due, so that
/// every launch starts another.
pub fn stamp(file: &Path, image: &str) {
    let mut all = load(file);
    all.entry(image.to_owned()).or_default().ts = now();
    save(file, &all);
}

/// Parse `Bearer realm="…",service="…",scope="…"`.
fn challenge(header: &str) -> Option<(String, Vec<(String, String)>)> {
    let rest = header.strip_prefix("Bearer ")?;
    let mut realm = None;
    let mut params = Vec::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim_matches('"').to_owned();
        if k == "realm" {
            realm = Some(v);
        } else {
            params.push((k.to_owned(), v));
        }
    }
    Some((realm?, params))
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// The registry's digest for `image` (anonymous pull token when the registry asks).
pub fn remote_digest(image: &str) -> Result<String, String> {
    let (host, repo, tag) = parse_reference(image).ok_or("not a registry reference")?;
    let agent = ureq::AgentBuilder::new().timeout(TIMEOUT).build();
    let url = format!("https://{host}/v2/{repo}/manifests/{tag}");
    // (ureq's error carries the whole response; boxing it buys nothing on a path that
    // runs once a day)
    #[allow(clippy::result_large_err)]
    let head = |token: Option<&str>| {
        let mut req = agent
            .head(&url)
            .set("Accept", ACCEPT)
            .set("User-Agent", "kanibako");
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.call()
    };
    let resp = match head(None) {
        Ok(r) => r,
        Err(ureq::Error::Status(401, r)) => {
            let (realm, params) = r
                .header("WWW-Authenticate")
                .and_then(challenge)
                .ok_or("the registry asked for credentials")?;
            let mut req = agent.get(&realm);
            for (k, v) in &params {
                req = req.query(k, v);
            }
            let text = req
                .call()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|e| e.to_string())?;
            let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let token = body["token"]
                .as_str()
                .or_else(|| body["access_token"].as_str())
                .ok_or("no token from the registry")?
                .to_owned();
            head(Some(&token)).map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    resp.header("Docker-Content-Digest")
        .map(str::to_owned)
        .ok_or_else(|| "no digest in the registry's answer".to_owned())
}

/// Run a check and record it. `local` is the image's digest in the local store.
pub fn check(file: &Path, image: &str, local: Option<String>) {
    let entry = match remote_digest(image) {
        Ok(digest) => Entry {
            digest,
            ts: now(),
            local,
            error: None,
            noted: false,
        },
        Err(e) => Entry {
            ts: now(),
            local,
            error: Some(e.lines().next().unwrap_or("").chars().take(120).collect()),
            ..Entry::default()
        },
    };
    let mut all = load(file);
    all.insert(image.to_owned(), entry);
    save(file, &all);
}

pub fn cache_file(cache_dir: &Path) -> PathBuf {
    cache_dir.join("digest-cache.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("ghcr.io/doctorjei/kanibako-oci:latest"),
            Some((
                "ghcr.io".into(),
                "doctorjei/kanibako-oci".into(),
                "latest".into()
            ))
        );
        assert_eq!(
            parse_reference("registry:5000/a/b"),
            Some(("registry:5000".into(), "a/b".into(), "latest".into()))
        );
        assert_eq!(parse_reference("localhost/x:1"), None);
        assert_eq!(parse_reference("busybox"), None);
        assert_eq!(parse_reference("corp/img:1"), None);
    }

    #[test]
    fn challenges() {
        let (realm, p) = challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(realm, "https://ghcr.io/token");
        assert_eq!(p[1], ("scope".into(), "repository:a/b:pull".into()));
    }

    #[test]
    fn notes_come_from_the_cache_and_failures_are_said_once() {
        let d = tempfile::tempdir().unwrap();
        let f = cache_file(d.path());
        let img = "ghcr.io/o/n:latest";
        assert!(look(&f, img).1);
        assert_eq!(
            look(&f, "localhost/x"),
            (None, false),
            "local images are never checked"
        );
        let mut all = BTreeMap::new();
        all.insert(
            img.to_owned(),
            Entry {
                digest: "sha256:new".into(),
                ts: now(),
                local: Some("sha256:old".into()),
                ..Entry::default()
            },
        );
        save(&f, &all);
        assert!(!look(&f, img).1, "checked today");
        stamp(&f, "ghcr.io/o/other:1");
        assert!(
            !look(&f, "ghcr.io/o/other:1").1,
            "stamped before its check ran"
        );
        assert!(look(&f, img).0.unwrap().contains("A newer version"));
        all.insert(
            img.to_owned(),
            Entry {
                ts: now(),
                error: Some("no route".into()),
                ..Entry::default()
            },
        );
        save(&f, &all);
        assert!(look(&f, img).0.unwrap().contains("could not check"));
        assert_eq!(look(&f, img).0, None, "said once");
        // the Python tool's entries read fine
        std::fs::write(
            &f,
            r#"{"ghcr.io/o/n:latest": {"digest": "sha256:x", "ts": 1.7e9}}"#,
        )
        .unwrap();
        assert!(look(&f, img).1);
    }

    #[test]
    fn an_unreachable_registry_answers_within_the_timeout() {
        let started = std::time::Instant::now();
        // 127.0.0.1:9 (discard) refuses at once on these machines
        let r = remote_digest("127.0.0.1:9/a/b:1");
        assert!(r.is_err());
        assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
    }
}
