//! Health checks of the machine and of one box (`system diagnose`, `box diagnose`,
//! `setup`): what a check found, and its report as text or JSON.
//!
//! A check is planned purely from facts ([`checks`]); the facts are gathered by a small
//! effect layer ([`probe`]) that only reads — no check writes anything, so a broken
//! machine (no engine, a broken YAML file, an unwritable `$DATA`) is reported, never
//! repaired behind the user's back. Every check that needs fixing carries the exact
//! command that fixes it.

pub mod checks;
pub mod probe;
pub mod setup;
pub mod style;

use serde::Serialize;

/// How a check came out: `[ok]`, `[!!]` (needs fixing) or `[--]` (not applicable, or
/// could not be looked at).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    NeedsFix,
    Skipped,
}

impl Status {
    pub fn mark(self) -> &'static str {
        match self {
            Status::Ok => "[ok]",
            Status::NeedsFix => "[!!]",
            Status::Skipped => "[--]",
        }
    }
}

/// One line of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name for scripts (`engine`, `disk`, `credentials`, …).
    pub id: &'static str,
    /// What was looked at, as printed.
    pub label: String,
    pub status: Status,
    pub detail: String,
    /// The command that fixes it (set exactly when `status` is `NeedsFix`).
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(id: &'static str, label: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            id,
            label: label.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn skipped(id: &'static str, label: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: Status::Skipped,
            ..Self::ok(id, label, detail)
        }
    }

    pub fn fix(
        id: &'static str,
        label: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::NeedsFix,
            fix: Some(fix.into()),
            ..Self::ok(id, label, detail)
        }
    }
}

/// A titled list of checks.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub title: String,
    /// Whether nothing needs fixing.
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(title: impl Into<String>, checks: Vec<Check>) -> Self {
        Self {
            title: title.into(),
            ok: !checks.iter().any(|c| c.status == Status::NeedsFix),
            checks,
        }
    }

    /// Exit status: 1 when anything needs fixing.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }

    /// The text form: a title underlined as upstream's, one `[..] label: detail` line
    /// per check, and under each `[!!]` the command that fixes it.
    pub fn text(&self, style: &style::Styles) -> String {
        let mut out = format!("{}\n{}\n\n", style.header(&self.title), "=".repeat(40));
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}\n",
                style.mark(c.status),
                c.label,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     {} {fix}\n", style.hint("fix:")));
            }
        }
        out
    }

    /// The `--json` form, in the envelope every command shares.
    pub fn json(&self) -> String {
        crate::json_output::object(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use style::Styles;

    #[test]
    fn a_fix_follows_its_line_and_sets_the_exit() {
        let r = Report::new(
            "T",
            vec![
                Check::ok("a", "A", "fine"),
                Check::fix("b", "B", "mode 0644", "chmod 600 '/x'"),
                Check::skipped("c", "C", "not here"),
            ],
        );
        assert_eq!(
            r.text(&Styles::plain()),
            format!(
                "T\n{}\n\n[ok] A: fine\n[!!] B: mode 0644\n     fix: chmod 600 '/x'\n[--] C: not here\n",
                "=".repeat(40)
            )
        );
        assert_eq!(r.exit_code(), 1);
        let j: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(j["schema_version"], 1);
        assert_eq!(j["checks"][1]["status"], "needs_fix");
        assert_eq!(j["checks"][1]["fix"], "chmod 600 '/x'");
        assert_eq!(j["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(Report::new("T", vec![]).exit_code(), 0);
    }
}
