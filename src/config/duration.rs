//! Human durations in the configuration: `"30s"`, `"5m"`, `"1h"`, `"5d"`, `"250ms"`, or a
//! plain number of seconds. Fields use it with `#[serde(with = "super::duration")]`, and
//! it writes a duration back the way it reads one, so `--validate-only` and
//! `config/hermod.toml` show what an operator would type.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"30s"`, `"5m"`, `"1h"`, `"5d"`, `"250ms"` or `"300"` (seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration such as 30s, 5m, 1h or 5d, got {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(seconds))
}

/// Renders a duration the way [`parse`] reads it.
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
        for text in ["30s", "5m", "1h", "5d", "250ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(parse("300").unwrap(), Duration::from_secs(300));
        assert!(parse("5 parsecs").is_err());
    }
}
