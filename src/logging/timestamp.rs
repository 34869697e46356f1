//! Log lines' timestamps: RFC 3339 in UTC with microseconds (`2026-12-08T02:33:20.111499Z`),
//! as tracing-subscriber's own timer writes them, but with the date and the time to the
//! second formatted once a second per thread instead of for every line: that formatting
//! was a third of what a log line cost the mail path (three lines a message).

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The timer of hermod's log layer (text and JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_rfc3339_micros(w, SystemTime::now())
    }
}

/// The second last formatted on this thread, and its text up to the seconds.
struct Cached {
    second: u64,
    text: String,
}

thread_local! {
    static CACHED: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, text: String::new() })
    };
}

/// Writes `at` as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`. A time before 1970 (a clock gone wrong)
/// is written as the epoch, as tracing-subscriber's timer writes it.
fn write_rfc3339_micros(w: &mut impl fmt::Write, at: SystemTime) -> fmt::Result {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since.as_secs();
    CACHED.with_borrow_mut(|cached| {
        if cached.second != second {
            cached.text.clear();
            // humantime writes `YYYY-MM-DDTHH:MM:SSZ`: the `Z` comes after the fraction.
            let whole = UNIX_EPOCH + Duration::from_secs(second);
            fmt::write(
                &mut cached.text,
                format_args!("{}", humantime::format_rfc3339_seconds(whole)),
            )?;
            cached.text.pop();
            cached.second = second;
        }
        w.write_str(&cached.text)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = since.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    w.write_str(std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::write_rfc3339_micros;

    fn text(at: std::time::SystemTime) -> String {
        let mut out = String::new();
        write_rfc3339_micros(&mut out, at).unwrap();
        out
    }

    #[test]
    fn writes_the_format_of_tracing_subscribers_own_timer() {
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
        // Both read the clock; a second may turn between them, so a few tries.
        let agree = (0..3).any(|_| {
            let (mut theirs, mut ours) = (String::new(), String::new());
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            super::Rfc3339Micros
                .format_time(&mut Writer::new(&mut ours))
                .unwrap();
            theirs.len() == ours.len() && theirs[..20] == ours[..20] && ours.ends_with('Z')
        });
        assert!(
            agree,
            "the timestamps differ in form from tracing-subscriber's"
        );
    }

    #[test]
    fn writes_dates_times_and_fractions() {
        let at = UNIX_EPOCH + Duration::new(1_796_696_000, 111_499_321);
        assert_eq!(text(at), "2026-12-08T02:13:20.111499Z");
        // The same second again comes from the cache; the fraction is this line's own.
        let later = UNIX_EPOCH + Duration::new(1_796_696_000, 7_000);
        assert_eq!(text(later), "2026-12-08T02:13:20.000007Z");
        // A new second is formatted anew.
        let next = UNIX_EPOCH + Duration::new(1_796_696_001, 999_999_999);
        assert_eq!(text(next), "2026-12-08T02:13:21.999999Z");
        // A leap day and the epoch itself.
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 0);
        assert_eq!(text(leap), "2000-02-29T00:00:00.000000Z");
        assert_eq!(text(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
    }
}
