//! `kanibako-archive-info.txt`, the file that makes a tarball a box archive: where the
//! box came from, its git state, and (ours only) the manifest. Upstream's reader takes
//! every unindented `Key: value` line; the layout below keeps its lines where it put
//! them, so the Python tool reads our info file as its own.
//!
//! ```text
//! Project path: /home/alice/projects/app
//! Project hash: 6dde1c14…
//! Archive date: 2026-02-21T10:30:00Z
//!
//! Git repository: yes
//! Branch: main
//! Commit: 1f0c…
//! Remotes:
//!   origin: git@example.com:alice/app.git
//! Left out: shell/.claude/.credentials.json, env
//! Manifest sha256:
//!   d - shell
//!   …
//! ```

use super::manifest::{self, Record};

pub const FILE: &str = "kanibako-archive-info.txt";

/// A project's git state as archived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitState {
    pub branch: String,
    pub commit: String,
    /// (name, fetch URL)
    pub remotes: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub project_path: String,
    pub project_hash: String,
    pub date: String,
    /// `None`: not a git repository (or its state could not be read).
    pub git: Option<GitState>,
    /// What was deliberately not archived (credentials), for the reader to know.
    pub left_out: Vec<String>,
    /// `None`: the archive has none (the Python tool writes none).
    pub manifest: Option<Vec<Record>>,
}

/// Neither a line break nor anything else that would end a value early.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl Info {
    /// The text before the manifest (the part upstream reads).
    pub fn header(&self) -> String {
        let mut lines = vec![
            format!("Project path: {}", one_line(&self.project_path)),
            format!("Project hash: {}", one_line(&self.project_hash)),
            format!("Archive date: {}", one_line(&self.date)),
            String::new(),
        ];
        match &self.git {
            Some(g) => {
                lines.push("Git repository: yes".into());
                lines.push(format!("Branch: {}", one_line(&g.branch)));
                lines.push(format!("Commit: {}", one_line(&g.commit)));
                lines.push("Remotes:".into());
                for (name, url) in &g.remotes {
                    lines.push(format!("  {}: {}", one_line(name), one_line(url)));
                }
            }
            None => {
                lines.push(String::new());
                lines.push("Git repository: no".into());
            }
        }
        if !self.left_out.is_empty() {
            lines.push(format!("Left out: {}", one_line(&self.left_out.join(", "))));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    /// The whole file.
    pub fn render(&self) -> String {
        let mut text = self.header();
        if let Some(m) = &self.manifest {
            text.push_str(&manifest::render(m));
        }
        text
    }

    /// Read an info file (ours or the Python tool's). Unknown lines are ignored, as
    /// upstream ignores them; a manifest that does not parse is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut info = Info::default();
        let mut git_yes = false;
        let mut git = GitState::default();
        let mut lines = text.lines().peekable();
        let mut in_remotes = false;
        while let Some(line) = lines.next() {
            if line == manifest::HEADER {
                let body: Vec<&str> =
                    std::iter::from_fn(|| lines.next_if(|l| l.starts_with("  "))).collect();
                info.manifest = Some(manifest::parse_lines(body.into_iter())?);
                in_remotes = false;
                continue;
            }
            if let Some(rest) = line.strip_prefix("  ") {
                if in_remotes && let Some((name, url)) = rest.split_once(": ") {
                    git.remotes
                        .push((name.trim().to_owned(), url.trim().to_owned()));
                }
                continue;
            }
            in_remotes = line == "Remotes:";
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "Project path" => info.project_path = value,
                "Project hash" => info.project_hash = value,
                "Archive date" => info.date = value,
                "Git repository" => git_yes = value == "yes",
                "Branch" => git.branch = value,
                "Commit" => git.commit = value,
                "Left out" => info.left_out = value.split(", ").map(str::to_owned).collect(),
                _ => {}
            }
        }
        info.git = git_yes.then_some(git);
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::member::MemberKind;

    #[test]
    fn reads_what_the_python_tool_writes() {
        let text = "Project path: /home/u/p/app\nProject hash: abc\nArchive date: 2026-02-21T10:30:00Z\n\nGit repository: yes\nBranch: main\nCommit: 1234\nRemotes:\n  origin: https://example.com/x.git\n";
        let i = Info::parse(text).unwrap();
        assert_eq!(i.project_path, "/home/u/p/app");
        let g = i.git.as_ref().unwrap();
        assert_eq!((g.branch.as_str(), g.commit.as_str()), ("main", "1234"));
        assert_eq!(
            g.remotes,
            [("origin".into(), "https://example.com/x.git".into())]
        );
        assert!(i.manifest.is_none());
        assert_eq!(i.header(), text, "and writes the same lines");
        let plain = "Project path: /p\nProject hash: h\nArchive date: d\n\n\nGit repository: no\n";
        let i = Info::parse(plain).unwrap();
        assert!(i.git.is_none());
        assert_eq!(i.header(), plain);
    }

    #[test]
    fn our_additions_round_trip() {
        let i = Info {
            project_path: "/p/odd\nname".into(),
            project_hash: "h".into(),
            date: "d".into(),
            git: None,
            left_out: vec!["shell/.claude/.credentials.json".into(), "env".into()],
            manifest: Some(vec![Record::new(b"shell".to_vec(), MemberKind::Dir, None)]),
        };
        let text = i.render();
        assert!(
            text.ends_with(
                "Left out: shell/.claude/.credentials.json, env\nManifest sha256:\n  d - shell\n"
            ),
            "{text}"
        );
        let back = Info::parse(&text).unwrap();
        assert_eq!(back.project_path, "/p/odd name");
        assert_eq!(back.left_out, i.left_out);
        assert_eq!(back.manifest, i.manifest);
        assert!(Info::parse("Manifest sha256:\n  z bad\n").is_err());
    }
}
