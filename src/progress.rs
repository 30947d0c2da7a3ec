//! Progress bars and spinners: the one place that decides whether one is drawn. Only
//! on a terminal (stderr), only for work over [`MIN_BYTES`] (bars), and never with
//! `-q`, `NO_COLOR` or `TERM=dumb`; piped output stays clean.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::host::{HostEnv, vars};

/// Smaller work finishes before a bar would be worth drawing.
pub const MIN_BYTES: u64 = 4 << 20;

/// A byte-count bar, or nothing.
pub struct Progress(Option<ProgressBar>);

/// Whether a bar may be drawn at all.
pub fn wanted(host: &HostEnv, quiet: bool) -> bool {
    !quiet
        && host.stderr_tty
        && host.var(vars::NO_COLOR).is_none()
        && host.var_str(vars::TERM) != Some("dumb")
}

impl Progress {
    pub fn bytes(host: &HostEnv, quiet: bool, total: u64, label: &str) -> Self {
        if !wanted(host, quiet) || total < MIN_BYTES {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        Self(Some(bar))
    }

    pub fn none() -> Self {
        Self(None)
    }

    pub fn set(&self, done: u64) {
        if let Some(b) = &self.0 {
            b.set_position(done);
        }
    }

    /// Remove the bar (what follows is printed on a clean line).
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A spinner for a wait of unknown length (an image build or pull): drawn on stderr,
/// ticking on its own thread, removed by [`Spinner::finish`] (or when dropped).
pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn start(label: impl Into<String>) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(label.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        Self(bar)
    }

    pub fn finish(self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn never_off_a_terminal_or_when_asked_not_to() {
        let mut h = HostEnv::for_test(Path::new("/"), &[]);
        assert!(!wanted(&h, false), "not a terminal");
        h.stderr_tty = true;
        assert!(wanted(&h, false));
        assert!(!wanted(&h, true), "-q");
        let mut dumb = HostEnv::for_test(Path::new("/"), &[("TERM", "dumb")]);
        dumb.stderr_tty = true;
        assert!(!wanted(&dumb, false));
        let mut nc = HostEnv::for_test(Path::new("/"), &[("NO_COLOR", "1")]);
        nc.stderr_tty = true;
        assert!(!wanted(&nc, false));
        assert!(Progress::bytes(&h, false, 1, "x").0.is_none(), "too small");
    }
}
