//! Snapshot names: the UTC second a snapshot was taken, `YYYYMMDDTHHMMSSZ`, as the
//! Python tool names them, plus `.tar.xz` for its archive snapshots. A name is checked
//! against this form before it is joined to any path, so `../ro` or `x/y` never is.

use crate::clock::Civil;

pub const ARCHIVE_SUFFIX: &str = ".tar.xz";

/// What a snapshot is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Form {
    /// A directory (reflinks, hard links or copies).
    Dir,
    /// An xz tarball of share-rw's entries (the Python tool's `box vault snapshot`).
    TarXz,
}

/// A valid snapshot name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotName {
    /// Seconds since the epoch of the stamp.
    pub at: u64,
    pub form: Form,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The stamp's seconds since the epoch, if `s` is exactly `YYYYMMDDTHHMMSSZ` with a
/// real date and time in it.
fn parse_stamp(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, sec) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if y < 1970 || !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec).ok()
}

impl SnapshotName {
    pub fn new(at: u64, form: Form) -> Self {
        Self { at, form }
    }

    /// A listed name: the stamp, or the stamp and `.tar.xz`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.strip_suffix(ARCHIVE_SUFFIX) {
            Some(stem) => parse_stamp(stem).map(|at| Self::new(at, Form::TarXz)),
            None => parse_stamp(name).map(|at| Self::new(at, Form::Dir)),
        }
    }

    pub fn stamp(&self) -> String {
        let c = Civil::from_epoch(self.at);
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// The entry's name in `.versions/`.
    pub fn file_name(&self) -> String {
        match self.form {
            Form::Dir => self.stamp(),
            Form::TarXz => format!("{}{ARCHIVE_SUFFIX}", self.stamp()),
        }
    }

    /// `2026-02-21 10:30:00 UTC`, as `list` shows it.
    pub fn when(&self) -> String {
        crate::clock::utc(self.at)
    }
}

/// The first free directory name at or after `now`: two snapshots within one second
/// get consecutive stamps instead of colliding (upstream nested or overwrote them).
pub fn next_free(now: u64, taken: &dyn Fn(&SnapshotName) -> bool) -> SnapshotName {
    let mut at = now;
    loop {
        let dir = SnapshotName::new(at, Form::Dir);
        if !taken(&dir) && !taken(&SnapshotName::new(at, Form::TarXz)) {
            return dir;
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = SnapshotName::parse("20260221T103000Z").unwrap();
        assert_eq!(n.form, Form::Dir);
        assert_eq!(n.stamp(), "20260221T103000Z");
        assert_eq!(n.when(), "2026-02-21 10:30:00 UTC");
        let t = SnapshotName::parse("20260221T103000Z.tar.xz").unwrap();
        assert_eq!((t.at, t.form), (n.at, Form::TarXz));
        assert_eq!(t.file_name(), "20260221T103000Z.tar.xz");
        assert_eq!(
            SnapshotName::new(951_782_400, Form::Dir).stamp(),
            "20000229T000000Z"
        );
        for at in [0u64, 1, 86_399, 1_795_714_981, 4_102_444_799] {
            let s = SnapshotName::new(at, Form::Dir).stamp();
            assert_eq!(SnapshotName::parse(&s).unwrap().at, at, "{s}");
        }
    }

    #[test]
    fn anything_else_is_not_a_name() {
        for bad in [
            "",
            "..",
            "../ro",
            "20260221T103000Z/..",
            "x/20260221T103000Z",
            "20260221T103000",
            "20260221T103000Z.tar",
            "20260221t103000Z",
            "2026022XT103000Z",
            "20261321T103000Z",
            "20260230T103000Z",
            "20260221T243000Z",
            "20260221T106000Z",
            "+0260221T103000Z",
            "19690101T000000Z",
            ".kanibako-tmp-20260221T103000Z",
            "20260221T103000Z ",
        ] {
            assert!(SnapshotName::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn collisions_move_to_the_next_second() {
        let taken = |n: &SnapshotName| n.at == 100 || (n.at == 101 && n.form == Form::TarXz);
        assert_eq!(next_free(100, &taken).at, 102);
        assert_eq!(next_free(99, &taken).at, 99);
    }
}
