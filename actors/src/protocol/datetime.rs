//! Dates for message headers and logs, in UTC, with the `time` crate.
//!
//! `Received:` and `Date:` headers need RFC 5322 dates and the spool and logs want
//! RFC 3339 stamps. The caller passes the time in (no clock is read here), which keeps
//! every caller testable with a fixed instant.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

/// `t` in UTC, whole seconds: fractions are dropped, counting down, so an instant before
/// 1970 is still in the second it belongs to.
fn utc_seconds(t: SystemTime) -> OffsetDateTime {
    let at = OffsetDateTime::from(t);
    at.replace_nanosecond(0).unwrap_or(at)
}

/// Formats `t` as an RFC 5322 `date-time` in UTC, e.g. `Mon, 23 Nov 2026 16:28:39 +0000`.
///
/// Why this shape: it is what `Date:` and the date after `;` in `Received:` require. The
/// day of month is always two digits (`03 Nov`), which RFC 5322 allows (`1*2DIGIT`) and
/// keeps the header fixed-width; the zone is always `+0000` because an MTA's own clock
/// zone says nothing useful to the reader. Fractions of a second are dropped.
pub fn rfc5322(t: SystemTime) -> String {
    // Rfc2822 cannot write years before 1900, which no clock hermod runs on shows.
    utc_seconds(t)
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_string())
}

/// Formats `t` as an RFC 3339 UTC timestamp, e.g. `2026-11-23T16:28:39Z`.
///
/// Why: logs, the spool's metadata and DSN `Arrival-Date`-style fields want a sortable,
/// machine-readable stamp; whole seconds are enough for mail.
pub fn rfc3339(t: SystemTime) -> String {
    utc_seconds(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

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
}
