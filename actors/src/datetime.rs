//! Dates for message headers and logs, in UTC, without a date crate.
//!
//! `Received:` and `Date:` headers need RFC 5322 dates and the spool and logs want
//! RFC 3339 stamps; both are a few lines over Howard Hinnant's `civil_from_days`, so
//! hermod carries no calendar dependency. The caller passes the time in (no clock is read
//! here), which keeps every caller testable with a fixed instant.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a civil day (UTC has no leap seconds in the Unix time scale).
const SECS_PER_DAY: i64 = 86_400;

/// Day names as RFC 5322 §3.3 spells them, indexed from Sunday.
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Month names as RFC 5322 §3.3 spells them, indexed from January.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `t` as an RFC 5322 `date-time` in UTC, e.g. `Mon, 23 Nov 2026 16:28:39 +0000`.
///
/// Why this shape: it is what `Date:` and the date after `;` in `Received:` require. The
/// day of month is always two digits (`03 Nov`), which RFC 5322 allows (`1*2DIGIT`) and
/// keeps the header fixed-width; the zone is always `+0000` because an MTA's own clock
/// zone says nothing useful to the reader. Fractions of a second are dropped.
pub fn rfc5322(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[c.weekday as usize],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Formats `t` as an RFC 3339 UTC timestamp, e.g. `2026-11-23T16:28:39Z`.
///
/// Why: logs, the spool's metadata and DSN `Arrival-Date`-style fields want a sortable,
/// machine-readable stamp; whole seconds are enough for mail.
pub fn rfc3339(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// A UTC instant broken into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday .. 6 = Saturday
    weekday: u32,
}

impl Civil {
    /// Splits a `SystemTime` into UTC fields; times before 1970 count backwards correctly
    /// (floor division), so a skewed clock never produces a garbled header.
    fn from_system_time(t: SystemTime) -> Self {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => {
                let before = e.duration();
                let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
                // -0.5 s is in the second that starts at -1 s.
                if before.subsec_nanos() > 0 {
                    -whole - 1
                } else {
                    -whole
                }
            }
        };
        Self::from_unix(secs)
    }

    /// Splits seconds since the Unix epoch into UTC fields.
    fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(SECS_PER_DAY);
        let in_day = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (in_day / 3600) as u32,
            minute: (in_day % 3600 / 60) as u32,
            second: (in_day % 60) as u32,
            // 1970-01-01 was a Thursday (index 4).
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's algorithm (<https://howardhinnant.github.io/date_algorithms.html>):
/// shift the epoch to 0000-03-01 so leap days fall at the end of a year, then split into
/// 400-year eras of 146 097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants_format_as_rfc5322_and_rfc3339() {
        // (unix seconds, RFC 5322, RFC 3339); checked against `date -u -d @N`.
        let cases: &[(u64, &str, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 +0000", "1970-01-01T00:00:00Z"),
            (
                1_795_451_319,
                "Mon, 23 Nov 2026 16:28:39 +0000",
                "2026-11-23T16:28:39Z",
            ),
            (
                951_782_400,
                "Tue, 29 Feb 2000 00:00:00 +0000",
                "2000-02-29T00:00:00Z",
            ),
            (
                1_709_251_199,
                "Thu, 29 Feb 2024 23:59:59 +0000",
                "2024-02-29T23:59:59Z",
            ),
            (
                1_709_251_200,
                "Fri, 01 Mar 2024 00:00:00 +0000",
                "2024-03-01T00:00:00Z",
            ),
            (
                4_107_542_400,
                "Mon, 01 Mar 2100 00:00:00 +0000",
                "2100-03-01T00:00:00Z",
            ),
            (
                1_767_225_599,
                "Wed, 31 Dec 2025 23:59:59 +0000",
                "2025-12-31T23:59:59Z",
            ),
            (
                2_147_483_648,
                "Tue, 19 Jan 2038 03:14:08 +0000",
                "2038-01-19T03:14:08Z",
            ),
        ];
        for &(secs, want5322, want3339) in cases {
            assert_eq!(rfc5322(at(secs)), want5322, "rfc5322 of {secs}");
            assert_eq!(rfc3339(at(secs)), want3339, "rfc3339 of {secs}");
        }
    }

    #[test]
    fn subsecond_part_is_dropped() {
        let t = at(1_795_451_319) + Duration::from_millis(999);
        assert_eq!(rfc3339(t), "2026-11-23T16:28:39Z");
    }

    #[test]
    fn times_before_the_epoch_count_backwards() {
        let t = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc5322(t), "Wed, 31 Dec 1969 23:59:59 +0000");
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(rfc3339(t), "1969-12-31T23:59:59Z");
        let t = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(rfc3339(t), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn civil_from_days_round_trips_every_day_of_four_centuries() {
        // Walk day by day from 1900-01-01 to 2300-01-01 and check the calendar advances
        // exactly one day each time, including every leap rule.
        let start = -25_567; // 1900-01-01
        let mut prev = civil_from_days(start);
        assert_eq!(prev, (1900, 1, 1));
        for days in start + 1..start + 146_097 {
            let cur = civil_from_days(days);
            let (py, pm, pd) = prev;
            let leap = (py % 4 == 0 && py % 100 != 0) || py % 400 == 0;
            let month_len = match pm {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let want = if pd < month_len {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!(cur, want, "day {days}");
            prev = cur;
        }
    }
}
