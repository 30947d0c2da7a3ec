//! Crash points for the tests of what a crash leaves behind: in a debug build, a
//! process whose `KANIBAKO_CRASH_AT` names a point dies there at once (abort: no
//! destructor, no undo, as a kill or a power cut). A release build has no such points.

/// Die here if the tests asked for a crash at `name` (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    {
        // Read directly, not through HostEnv: the points sit deep in the domain code,
        // and this knob exists only in test builds.
        #[allow(clippy::disallowed_methods)]
        if std::env::var_os("KANIBAKO_CRASH_AT").is_some_and(|v| v == name) {
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// [`point`] `name.i` (a step of a loop), the name made only in debug builds.
#[inline]
pub fn point_at(name: &str, i: usize) {
    #[cfg(debug_assertions)]
    point(&format!("{name}.{i}"));
    #[cfg(not(debug_assertions))]
    let _ = (name, i);
}
