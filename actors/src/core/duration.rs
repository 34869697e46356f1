//! Human durations in the configuration: `"30s"`, `"5m"`, `"1h"`, `"5d"`, `"250ms"`,
//! `"1h 30m"` (humantime reads them), or a plain number of seconds. Fields use it with
//! `#[serde(with = "...::duration")]` (settings the engine takes as they are, such as the
//! rate limits, are declared here with it), and it writes a duration in its largest whole
//! unit, so `--validate-only` and `config/hermod.toml` show what an operator would type.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Why a text is not a duration; the text says what would be, as `--validate-only`
/// and the admin API's 400 show it.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    /// Plain seconds past what a `u64` holds.
    #[error("{0:?} is too many seconds")]
    TooManySeconds(String),
    /// Not humantime's syntax; its reason names the unit it did not know.
    #[error("expected a duration such as 30s, 5m, 1h or 5d ({0})")]
    NotADuration(humantime::DurationError),
    /// A capital `M`, which humantime reads as months.
    #[error("{0:?}: `M` would be months; write `m` for minutes (or `months`)")]
    Months(String),
}

/// Parses `"30s"`, `"5m"`, `"1h"`, `"5d"`, `"250ms"`, `"1h 30m"` (humantime's syntax) or
/// `"300"` (seconds).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| DurationError::TooManySeconds(text.to_string()));
    }
    // humantime reads `M` as months: a stray capital meant as minutes would give a value
    // 43,800 times too long, silently.
    if text.contains('M') {
        return Err(DurationError::Months(text.to_string()));
    }
    humantime::parse_duration(text).map_err(DurationError::NotADuration)
}

/// Renders a duration the way an operator writes it, in its largest whole unit (`36d`,
/// not humantime's `1month 5days 13h 26m 24s`); [`parse`] reads it back.
pub fn format(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        format!("{}ms", d.as_millis())
    } else if s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    Text(String),
}

/// serde: a number of seconds or a human duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
    }
}

/// serde: written as a human duration.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["30s", "5m", "1h", "5d", "36d", "250ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(format(parse("1h 30m").unwrap()), "90m");
        assert!(parse("5M").is_err(), "M is not minutes");
        assert_eq!(parse("300").unwrap(), Duration::from_secs(300));
        let unknown = parse("5 parsecs").unwrap_err();
        assert!(
            matches!(unknown, DurationError::NotADuration(_)),
            "{unknown}"
        );
        assert!(
            unknown
                .to_string()
                .starts_with("expected a duration such as 30s, 5m, 1h or 5d (")
        );
        assert_eq!(
            parse("99999999999999999999").unwrap_err().to_string(),
            r#""99999999999999999999" is too many seconds"#
        );
    }
}
