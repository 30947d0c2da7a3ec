//! Colour for reports on a terminal: `[ok]` green, `[!!]` red, `[--]` dim, headers
//! bold, hints cyan — never in a pipe, never with `NO_COLOR`, always with
//! `CLICOLOR_FORCE` (the conventions of no-color.org and bixense.com/clicolors).
//!
//! Decided once from the captured [`HostEnv`] (not from the process environment), so
//! tests choose by building the host.

use anstyle::{AnsiColor, Style};

use super::Status;
use crate::host::HostEnv;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Styles {
    colour: bool,
}

/// Whether text for a stream (a terminal: `tty`) is coloured: when it is a terminal
/// that can show it, or when `CLICOLOR_FORCE` asks; `NO_COLOR` wins over both.
pub fn wanted(host: &HostEnv, tty: bool) -> bool {
    let set = |k: &str| host.var_str(k).is_some_and(|v| !v.is_empty());
    if set(crate::host::vars::NO_COLOR) {
        false
    } else if host
        .var_str(crate::host::vars::CLICOLOR_FORCE)
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        true
    } else {
        tty && host.var_str(crate::host::vars::TERM) != Some("dumb")
    }
}

impl Styles {
    pub fn plain() -> Self {
        Self { colour: false }
    }

    pub fn coloured() -> Self {
        Self { colour: true }
    }

    /// For text going to stdout: colour when it is a terminal that can show it, or
    /// when `CLICOLOR_FORCE` asks; `NO_COLOR` wins over both.
    pub fn for_stdout(host: &HostEnv) -> Self {
        Self {
            colour: wanted(host, host.stdout_tty),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    pub fn mark(&self, status: Status) -> String {
        let colour = match status {
            Status::Ok => AnsiColor::Green,
            Status::NeedsFix => AnsiColor::Red,
            Status::Skipped => AnsiColor::BrightBlack,
        };
        let style = Style::new().fg_color(Some(colour.into()));
        self.paint(
            if status == Status::NeedsFix {
                style.bold()
            } else {
                style
            },
            status.mark(),
        )
    }

    pub fn header(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn hint(&self, text: &str) -> String {
        self.paint(Style::new().fg_color(Some(AnsiColor::Cyan.into())), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn host(tty: bool, vars: &[(&str, &str)]) -> HostEnv {
        let mut h = HostEnv::for_test(Path::new("/"), vars);
        h.stdout_tty = tty;
        h
    }

    #[test]
    fn colour_only_on_a_terminal_and_as_the_variables_say() {
        assert_eq!(Styles::for_stdout(&host(false, &[])), Styles::plain());
        assert_eq!(Styles::for_stdout(&host(true, &[])), Styles::coloured());
        assert_eq!(
            Styles::for_stdout(&host(true, &[("NO_COLOR", "1")])),
            Styles::plain()
        );
        assert_eq!(
            Styles::for_stdout(&host(true, &[("TERM", "dumb")])),
            Styles::plain()
        );
        assert_eq!(
            Styles::for_stdout(&host(false, &[("CLICOLOR_FORCE", "1")])),
            Styles::coloured()
        );
        assert_eq!(
            Styles::for_stdout(&host(false, &[("CLICOLOR_FORCE", "0")])),
            Styles::plain()
        );
        assert_eq!(
            Styles::for_stdout(&host(false, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])),
            Styles::plain(),
            "NO_COLOR wins"
        );
    }

    #[test]
    fn marks_are_coloured_only_when_asked() {
        assert_eq!(Styles::plain().mark(Status::NeedsFix), "[!!]");
        let c = Styles::coloured().mark(Status::Ok);
        assert!(c.starts_with("\u{1b}[") && c.contains("[ok]") && c.ends_with("\u{1b}[0m"));
    }
}
