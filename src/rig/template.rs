//! Rig templates: Containerfiles kanibako builds into `kanibako-template-<name>` — the
//! ones bundled in the binary (`containers/` in the source tree) and the user's own in
//! `$DATA/containers/Containerfile.template-<name>` (which win on the same name).

use std::path::{Path, PathBuf};

/// The bundled Containerfiles, by file name.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "Containerfile.kanibako",
        include_str!("../../containers/Containerfile.kanibako"),
    ),
    (
        "Containerfile.template-android",
        include_str!("../../containers/Containerfile.template-android"),
    ),
    (
        "Containerfile.template-dotnet",
        include_str!("../../containers/Containerfile.template-dotnet"),
    ),
    (
        "Containerfile.template-js",
        include_str!("../../containers/Containerfile.template-js"),
    ),
    (
        "Containerfile.template-jvm",
        include_str!("../../containers/Containerfile.template-jvm"),
    ),
    (
        "Containerfile.template-systems",
        include_str!("../../containers/Containerfile.template-systems"),
    ),
];

const PREFIX: &str = "Containerfile.template-";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Bundled,
    User(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub origin: Origin,
    pub text: String,
}

impl Template {
    /// `# kanibako-template: <description>` in the first 10 lines.
    pub fn description(&self) -> String {
        self.text
            .lines()
            .take(10)
            .find_map(|l| l.trim().strip_prefix("# kanibako-template:"))
            .map_or_else(
                || format!("{} template", self.name),
                |d| d.trim().to_owned(),
            )
    }

    /// `# kanibako-template-check: <command>` lines of the leading comment block.
    pub fn checks(&self) -> Vec<String> {
        self.text
            .lines()
            .take(30)
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            .filter_map(|l| l.trim().strip_prefix("# kanibako-template-check:"))
            .map(|c| c.trim().to_owned())
            .collect()
    }

    pub fn source(&self) -> &'static str {
        match self.origin {
            Origin::Bundled => "bundled",
            Origin::User(_) => "user",
        }
    }
}

/// Bundled templates, overridden by user ones of the same name.
/// The names of every template (bundled and the user's), without reading the user's
/// files: a launch only needs to know whether a rig name is one.
pub fn names(user_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = BUNDLED
        .iter()
        .filter_map(|(file, _)| file.strip_prefix(PREFIX).map(str::to_owned))
        .collect();
    if let Ok(entries) = std::fs::read_dir(user_dir) {
        names.extend(entries.flatten().filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|f| f.strip_prefix(PREFIX))
                .map(str::to_owned)
        }));
    }
    names.sort();
    names.dedup();
    names
}

pub fn discover(user_dir: &Path) -> Vec<Template> {
    let mut all: Vec<Template> = BUNDLED
        .iter()
        .filter_map(|(file, text)| {
            Some(Template {
                name: file.strip_prefix(PREFIX)?.to_owned(),
                origin: Origin::Bundled,
                text: (*text).to_owned(),
            })
        })
        .collect();
    if let Ok(entries) = std::fs::read_dir(user_dir) {
        for e in entries.flatten() {
            let Some(name) = e
                .file_name()
                .to_str()
                .and_then(|f| f.strip_prefix(PREFIX))
                .map(str::to_owned)
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            all.retain(|t| t.name != name);
            all.push(Template {
                name,
                origin: Origin::User(e.path()),
                text,
            });
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The base Containerfile (a user override in `$DATA/containers` first).
pub fn base(user_dir: &Path) -> String {
    std::fs::read_to_string(user_dir.join("Containerfile.kanibako"))
        .unwrap_or_else(|_| BUNDLED[0].1.to_owned())
}

/// Whether a file looks like a Containerfile: a template header, or `FROM` as its
/// first instruction.
pub fn looks_like_containerfile(text: &str) -> bool {
    text.lines()
        .take(20)
        .any(|l| l.trim().starts_with("# kanibako-template"))
        || text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| {
                let up = l.to_ascii_uppercase();
                up.starts_with("FROM ") || up.starts_with("ARG ")
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_templates_render_with_their_metadata() {
        let all = discover(Path::new("/nonexistent"));
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["android", "dotnet", "js", "jvm", "systems"]);
        for t in &all {
            assert!(
                !t.description().ends_with(" template"),
                "{} has a description",
                t.name
            );
            assert!(!t.checks().is_empty(), "{} has checks", t.name);
            assert!(
                t.text.contains("ARG BASE_IMAGE=") && t.text.contains("FROM ${BASE_IMAGE}"),
                "{}",
                t.name
            );
            assert!(
                t.text.trim_end().ends_with("USER agent"),
                "{} returns to the agent user",
                t.name
            );
            assert!(looks_like_containerfile(&t.text));
        }
        let jvm = all.iter().find(|t| t.name == "jvm").unwrap();
        assert_eq!(
            jvm.checks(),
            ["java -version", "mvn -version", "kotlinc -version"]
        );
        assert!(base(Path::new("/nonexistent")).contains("useradd --uid 1000"));
    }

    #[test]
    fn user_templates_override_bundled_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Containerfile.template-jvm"), "FROM x\n").unwrap();
        std::fs::write(
            d.path().join("Containerfile.template-mine"),
            "# kanibako-template: mine\nFROM y\n",
        )
        .unwrap();
        let all = discover(d.path());
        let jvm = all.iter().find(|t| t.name == "jvm").unwrap();
        assert_eq!(jvm.source(), "user");
        assert_eq!(
            all.iter().find(|t| t.name == "mine").unwrap().description(),
            "mine"
        );
        assert!(!looks_like_containerfile("just some text\n"));
    }
}
