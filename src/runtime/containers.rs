//! Listing containers: the engine-specific `ps` call and the parsing of its JSON.
//!
//! Pure: builds the invocation and parses captured output; running it is the caller's.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::EngineKind;
use crate::process::Invocation;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub name: String,
    pub running: bool,
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

/// `ps -a` with machine-readable output. Podman prints one JSON array; docker prints one
/// JSON object per line.
pub fn list_invocation(base: Invocation, kind: EngineKind) -> Invocation {
    match kind {
        EngineKind::Podman => base.args(["ps", "-a", "--format", "json"]),
        EngineKind::Docker => base.args(["ps", "-a", "--no-trunc", "--format", "{{json .}}"]),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanPs {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerPs {
    #[serde(default)]
    names: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: String,
}

/// Docker renders labels as `k=v,k=v`. Our own label values never contain commas (names
/// are validated, the rest are hex and versions), so splitting is exact for them.
fn docker_labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn parse_list(kind: EngineKind, stdout: &str) -> Result<Vec<ContainerSummary>, String> {
    match kind {
        EngineKind::Podman => {
            if stdout.trim().is_empty() {
                return Ok(Vec::new());
            }
            let rows: Vec<PodmanPs> = serde_json::from_str(stdout).map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|r| ContainerSummary {
                    name: r.names.into_iter().next().unwrap_or_default(),
                    running: r.state.eq_ignore_ascii_case("running"),
                    image: r.image,
                    labels: r.labels.unwrap_or_default(),
                })
                .collect())
        }
        EngineKind::Docker => stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let r: DockerPs = serde_json::from_str(line).map_err(|e| e.to_string())?;
                Ok(ContainerSummary {
                    name: r.names.split(',').next().unwrap_or_default().to_owned(),
                    running: r.state.eq_ignore_ascii_case("running"),
                    image: r.image,
                    labels: docker_labels(&r.labels),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_json() {
        let out = r#"[{"Names":["kanibako-app"],"State":"running","Image":"localhost/x:latest",
            "Labels":{"io.kanibako.box":"app"}},
            {"Names":["other"],"State":"exited","Image":"busybox","Labels":null}]"#;
        let rows = parse_list(EngineKind::Podman, out).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].running);
        assert_eq!(rows[0].labels["io.kanibako.box"], "app");
        assert!(!rows[1].running && rows[1].labels.is_empty());
        assert!(parse_list(EngineKind::Podman, "").unwrap().is_empty());
        assert!(parse_list(EngineKind::Podman, "not json").is_err());
    }

    #[test]
    fn docker_json_lines() {
        let out = concat!(
            r#"{"Names":"kanibako-app","State":"running","Image":"x","Labels":"io.kanibako.box=app,io.kanibako.hash=ab"}"#,
            "\n",
            r#"{"Names":"legacy","State":"exited","Image":"x","Labels":""}"#,
            "\n"
        );
        let rows = parse_list(EngineKind::Docker, out).unwrap();
        assert_eq!(rows[0].labels["io.kanibako.hash"], "ab");
        assert!(rows[1].labels.is_empty() && !rows[1].running);
    }

    #[test]
    fn invocations() {
        let p = list_invocation(Invocation::new("podman"), EngineKind::Podman);
        assert_eq!(p.to_string(), "podman ps -a --format json");
        let d = list_invocation(Invocation::new("docker"), EngineKind::Docker);
        assert_eq!(
            d.to_string(),
            "docker ps -a --no-trunc --format '{{json .}}'"
        );
    }
}
