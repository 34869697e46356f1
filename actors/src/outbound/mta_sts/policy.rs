//! An MTA-STS policy as its domain publishes it at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (RFC 8461 §3.2): `version: STSv1`,
//! `mode` (`enforce`, `testing`, `none`), one `mx` pattern a line and `max_age` in seconds,
//! and which MX hosts a pattern admits (§4.1).

use serde::{Deserialize, Serialize};

/// The longest `max_age` RFC 8461 allows (a year); longer values are cut to it.
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// The most `mx` lines a policy may have: real ones have a handful, and every kept
/// policy is held in memory.
pub const MAX_MX: usize = 64;

/// What a domain asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deliver only to a listed MX over verified TLS.
    Enforce,
    /// Deliver as usual; report what `enforce` would have refused.
    Testing,
    /// The domain has withdrawn its policy.
    None,
}

impl Mode {
    /// The mode as the policy writes it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }
}

/// One domain's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// What it asks.
    pub mode: Mode,
    /// MX patterns: `mx.example.com`, or `*.example.com` for one leftmost label.
    pub mx: Vec<String>,
    /// Seconds the policy may be kept.
    pub max_age: u64,
}

/// Why a policy text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The first field is not `version: STSv1`.
    #[error("the first line is not \"version: STSv1\"")]
    Version,
    /// `mode` is missing or not one of the three.
    #[error("mode is missing or not enforce, testing or none")]
    Mode,
    /// `max_age` is missing or not a number.
    #[error("max_age is missing or not a number of seconds")]
    MaxAge,
    /// More than [`MAX_MX`] `mx` lines.
    #[error("more than {MAX_MX} mx lines")]
    TooManyMx,
    /// `enforce` or `testing` without any `mx` line.
    #[error("no mx line in a policy that is not mode none")]
    NoMx,
    /// An `mx` value that is no host name pattern.
    #[error("mx {0:?} is not a host name or *.domain pattern")]
    BadMx(String),
}

impl Policy {
    /// Reads a policy text (lines of `key: value`, CRLF or LF, unknown keys ignored as
    /// §3.2 says).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let key = key.trim();
            // §3.2: the version comes first.
            if version.is_none() {
                version = Some(key == "version" && value == "STSv1");
                continue;
            }
            match key {
                "mode" => {
                    mode = match value {
                        "enforce" => Some(Mode::Enforce),
                        "testing" => Some(Mode::Testing),
                        "none" => Some(Mode::None),
                        _ => return Err(PolicyError::Mode),
                    }
                }
                "max_age" => {
                    let seconds = (!value.is_empty() && value.len() <= 10)
                        .then(|| value.parse::<u64>().ok())
                        .flatten()
                        .ok_or(PolicyError::MaxAge)?;
                    max_age = Some(seconds.min(MAX_AGE_LIMIT));
                }
                "mx" => {
                    let pattern = value.trim_end_matches('.').to_ascii_lowercase();
                    if !is_pattern(&pattern) {
                        return Err(PolicyError::BadMx(value.chars().take(100).collect()));
                    }
                    if mx.len() == MAX_MX {
                        return Err(PolicyError::TooManyMx);
                    }
                    mx.push(pattern);
                }
                _ => {}
            }
        }
        if version != Some(true) {
            return Err(PolicyError::Version);
        }
        let mode = mode.ok_or(PolicyError::Mode)?;
        let max_age = max_age.ok_or(PolicyError::MaxAge)?;
        if mode != Mode::None && mx.is_empty() {
            return Err(PolicyError::NoMx);
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// Whether MX host `host` is one the policy lists (§4.1: a `*.` pattern stands for
    /// exactly one leftmost label).
    pub fn admits(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

/// A host name, or `*.` and a host name with at least two labels.
fn is_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let labels: Vec<&str> = name.split('.').collect();
    (pattern == name || labels.len() >= 2)
        && name.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLE: &str = "version: STSv1\r\nmode: enforce\r\nmx: gmail-smtp-in.l.google.com\r\nmx: *.gmail-smtp-in.l.google.com\r\nmax_age: 86400\r\n";

    #[test]
    fn a_published_policy_reads() {
        let policy = Policy::parse(GOOGLE).unwrap();
        assert_eq!(policy.mode, Mode::Enforce);
        assert_eq!(policy.max_age, 86400);
        assert!(policy.admits("gmail-smtp-in.l.google.com"));
        assert!(policy.admits("alt1.gmail-smtp-in.l.google.com."));
        assert!(policy.admits("ALT2.Gmail-Smtp-In.L.Google.Com"));
        // One label for the star, no more, no less.
        assert!(!policy.admits("a.b.gmail-smtp-in.l.google.com"));
        assert!(!policy.admits("evil-gmail-smtp-in.l.google.com"));
        assert!(!policy.admits("mx.example.com"));
    }

    #[test]
    fn unknown_keys_are_ignored_and_max_age_is_capped() {
        let text = "version: STSv1\nmode: testing\nfuture: thing\nmx: mx.example.com\nmax_age: 9999999999\n";
        let policy = Policy::parse(text).unwrap();
        assert_eq!(policy.mode, Mode::Testing);
        assert_eq!(policy.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn broken_policies_say_why() {
        let cases = [
            (
                "mode: enforce\nmx: a.test\nmax_age: 1\n",
                PolicyError::Version,
            ),
            (
                "version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n",
                PolicyError::Version,
            ),
            (
                "mode: enforce\nversion: STSv1\nmx: a.test\nmax_age: 1\n",
                PolicyError::Version,
            ),
            (
                "version: STSv1\nmode: block\nmx: a.test\nmax_age: 1\n",
                PolicyError::Mode,
            ),
            (
                "version: STSv1\nmx: a.test\nmax_age: 1\n",
                PolicyError::Mode,
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\n",
                PolicyError::MaxAge,
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n",
                PolicyError::MaxAge,
            ),
            (
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                PolicyError::NoMx,
            ),
            (
                "version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 1\n",
                PolicyError::BadMx("*.com".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a b.test\nmax_age: 1\n",
                PolicyError::BadMx("a b.test".into()),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(Policy::parse(text), Err(error), "{text:?}");
        }
        let many = format!(
            "version: STSv1\nmode: enforce\nmax_age: 1\n{}",
            "mx: a.test\n".repeat(MAX_MX + 1)
        );
        assert_eq!(Policy::parse(&many), Err(PolicyError::TooManyMx));
        // Mode none needs no mx: it withdraws the policy.
        let none = Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n").unwrap();
        assert_eq!(none.mode, Mode::None);
    }
}
