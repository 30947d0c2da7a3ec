//! Members of a box's team: the director (the box's own container, number 0, as
//! upstream numbers it) and its helpers (1, 2, …), and the names they go by on disk,
//! in labels and on the wire.
//!
//! A member is never taken from what a client says: the hub knows it from the listener
//! that accepted the connection.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    Director,
    Helper(u32),
}

impl Member {
    /// Upstream's numbering: 0 is the director.
    pub fn from_number(n: u32) -> Self {
        if n == 0 {
            Member::Director
        } else {
            Member::Helper(n)
        }
    }

    pub fn number(self) -> u32 {
        match self {
            Member::Director => 0,
            Member::Helper(n) => n,
        }
    }

    /// The member's directory under `<rt>/m/`: `director`, `h1`, `h2`, …
    pub fn dir_name(self) -> String {
        match self {
            Member::Director => "director".into(),
            Member::Helper(n) => format!("h{n}"),
        }
    }

    /// The inverse of [`Member::dir_name`] (`h0` and leading zeros are not names).
    pub fn from_dir_name(s: &str) -> Option<Self> {
        if s == "director" {
            return Some(Member::Director);
        }
        let digits = s.strip_prefix('h')?;
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok().map(Member::Helper)
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Director => f.write_str("director"),
            Member::Helper(n) => write!(f, "helper {n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_not_members() {
        for m in [
            Member::Director,
            Member::Helper(1),
            Member::Helper(4_000_000),
        ] {
            assert_eq!(Member::from_dir_name(&m.dir_name()), Some(m));
            assert_eq!(Member::from_number(m.number()), m);
        }
        for bad in [
            "",
            "h",
            "h0",
            "h01",
            "h-1",
            "h1x",
            "H1",
            "director2",
            "h99999999999",
        ] {
            assert_eq!(Member::from_dir_name(bad), None, "{bad}");
        }
        assert_eq!(Member::Helper(3).to_string(), "helper 3");
    }
}
