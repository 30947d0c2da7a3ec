//! Wall-clock instants written as text: the UTC calendar form kanibako shows and the
//! ISO-8601 form the Python tool's files hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
}

impl Civil {
    /// From seconds since the epoch (Howard Hinnant's days-to-civil: no time-zone
    /// database is needed for UTC, so no crate for it either).
    pub fn from_epoch(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }
}

/// `2026-11-26 17:43:01 UTC`.
pub fn utc(secs: u64) -> String {
    let c = Civil::from_epoch(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// ISO-8601 UTC with microseconds and an offset, as Python's `isoformat()` writes.
pub fn iso(at: Duration) -> String {
    let c = Civil::from_epoch(at.as_secs());
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        at.subsec_micros()
    )
}

/// Now, in the ISO form.
pub fn now_iso() -> String {
    iso(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_forms() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_714_981), "2026-11-26 17:43:01 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            iso(Duration::new(1_795_714_981, 5_000)),
            "2026-11-26T17:43:01.000005+00:00"
        );
    }
}
