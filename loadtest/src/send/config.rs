//! What a send run is told to do: target, load shape, content and protocol options.

use std::net::SocketAddr;
use std::num::{ParseFloatError, ParseIntError};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, TryFromFloatSecsError};

use crate::tls::Verify;

/// Everything a send run needs. `Default` sends 1,000 1 KiB messages over 10
/// connections to `127.0.0.1:25`, reusing each connection.
#[derive(Debug, Clone)]
pub struct SendConfig {
    /// Where to connect.
    pub server: SocketAddr,
    /// More servers of the same service (a fleet): connections go to each in turn, and
    /// one that refuses a connection is passed over for the next.
    pub more_servers: Vec<SocketAddr>,
    /// Name for SNI and certificate checks.
    pub tls_name: String,
    /// Connections kept busy at once (the concurrency of the run).
    pub connections: usize,
    /// Total messages to send; `None` with `duration` sends until the time is up.
    pub messages: Option<u64>,
    /// Send for this long instead of (or as well as) a count.
    pub duration: Option<Duration>,
    /// Messages over one connection before QUIT; 0 = keep the connection for the run.
    pub per_connection: u64,
    /// Open loop: start messages at this many per second, whatever the server does.
    pub rate: Option<f64>,
    /// Message sizes and their weights.
    pub size: SizeSpread,
    /// Recipients per message.
    pub recipients: usize,
    /// Spread generated recipients over this many domains.
    pub domains: usize,
    /// Generated recipients are `user<i>@d<j>.<domain_suffix>`.
    pub domain_suffix: String,
    /// Envelope and header sender.
    pub from: String,
    /// A fixed recipient instead of generated ones (`+<n>` added for the n-th extra).
    pub to: Option<String>,
    /// A real message to send instead of generated text (headers patched per message).
    pub template: Option<Vec<u8>>,
    /// Extra header lines, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// Pipeline commands when the server offers PIPELINING.
    pub pipelining: bool,
    /// Send with BDAT when the server offers CHUNKING (one round trip per message).
    pub chunking: bool,
    /// Upgrade with STARTTLS (fails the connection if not offered).
    pub starttls: bool,
    /// Implicit TLS from the first byte (SMTPS).
    pub tls: bool,
    /// How to check the server's certificate.
    pub verify: Verify,
    /// AUTH PLAIN or LOGIN (whichever is offered) with this user and password.
    pub auth: Option<(String, String)>,
    /// Speak LMTP (LHLO, one reply per recipient).
    pub lmtp: bool,
    /// Our EHLO/LHLO name.
    pub helo: String,
    /// Longest wait for a TCP connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// Longest wait for any reply.
    pub command_timeout: Duration,
    /// Append the Message-ID of every accepted message to this file.
    pub accepted_log: Option<PathBuf>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Seed for size choices, so a run can be repeated exactly.
    pub seed: Option<u64>,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            server: SocketAddr::from(([127, 0, 0, 1], 25)),
            more_servers: Vec::new(),
            tls_name: "localhost".to_string(),
            connections: 10,
            messages: Some(1000),
            duration: None,
            per_connection: 0,
            rate: None,
            size: SizeSpread::fixed(1024),
            recipients: 1,
            domains: 1,
            domain_suffix: "example.test".to_string(),
            from: "blaster@example.test".to_string(),
            to: None,
            template: None,
            headers: Vec::new(),
            pipelining: true,
            chunking: false,
            starttls: false,
            tls: false,
            verify: Verify::Roots,
            auth: None,
            lmtp: false,
            helo: "blaster.localhost".to_string(),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            accepted_log: None,
            progress: false,
            seed: None,
        }
    }
}

/// Message sizes in bytes with relative weights, e.g. `1k:70,10k:25,100k:5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeSpread(pub Vec<(usize, u32)>);

impl SizeSpread {
    /// Every message the same size.
    pub fn fixed(bytes: usize) -> Self {
        Self(vec![(bytes, 1)])
    }
}

/// Why a size (`--size`, `--max-size`) is not one; clap prints it after the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The number before the unit does not parse.
    #[error("bad size {text:?}: {error}")]
    Number {
        /// The size as given.
        text: String,
        /// Why.
        error: ParseIntError,
    },
    /// A unit other than `b`, `k` or `m`.
    #[error("unknown size unit {unit:?} in {text:?}")]
    Unit {
        /// The unit as given.
        unit: String,
        /// The size as given.
        text: String,
    },
    /// The weight after `:` does not parse.
    #[error("bad weight in {part:?}: {error}")]
    Weight {
        /// The `SIZE:WEIGHT` part.
        part: String,
        /// Why.
        error: ParseIntError,
    },
    /// Every weight is 0: no size could be chosen.
    #[error("no size with a weight above 0 in {0:?}")]
    NoWeight(String),
}

impl FromStr for SizeSpread {
    type Err = SizeError;

    /// `BYTES` or `BYTES:WEIGHT,...`; sizes take `k`/`m` suffixes (powers of 1024).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spread = Vec::new();
        for part in s.split(',') {
            let (size, weight) = match part.split_once(':') {
                Some((size, weight)) => (
                    size,
                    weight.trim().parse().map_err(|error| SizeError::Weight {
                        part: part.to_string(),
                        error,
                    })?,
                ),
                None => (part, 1),
            };
            spread.push((parse_bytes(size)?, weight));
        }
        if spread.iter().all(|(_, w)| *w == 0) {
            return Err(SizeError::NoWeight(s.to_string()));
        }
        Ok(Self(spread))
    }
}

/// `1024`, `1k`, `10K`, `2m`.
pub fn parse_bytes(s: &str) -> Result<usize, SizeError> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().map_err(|error| SizeError::Number {
        text: s.to_string(),
        error,
    })?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        other => {
            return Err(SizeError::Unit {
                unit: other.to_string(),
                text: s.to_string(),
            });
        }
    };
    Ok(n * unit)
}

/// Why a duration (`--duration`, `--timeout`, ...) is not one; clap prints it after the
/// flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The number before the unit does not parse.
    #[error("bad duration {text:?}: {error}")]
    Number {
        /// The duration as given.
        text: String,
        /// Why.
        error: ParseFloatError,
    },
    /// A unit other than `ms`, `s`, `m` or `h`.
    #[error("unknown duration unit {unit:?} in {text:?}")]
    Unit {
        /// The unit as given.
        unit: String,
        /// The duration as given.
        text: String,
    },
    /// Negative, or too long for a `Duration`.
    #[error("bad duration {text:?}: {error}")]
    OutOfRange {
        /// The duration as given.
        text: String,
        /// Why.
        error: TryFromFloatSecsError,
    },
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().map_err(|error| DurationError::Number {
        text: s.to_string(),
        error,
    })?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(DurationError::Unit {
                unit: other.to_string(),
                text: s.to_string(),
            });
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|error| DurationError::OutOfRange {
        text: s.to_string(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_spread_parses_weights_and_units() {
        let s: SizeSpread = "1k:70,10k:25,100k:5".parse().unwrap();
        assert_eq!(s.0, vec![(1024, 70), (10240, 25), (102_400, 5)]);
        assert_eq!(
            "2048".parse::<SizeSpread>().unwrap(),
            SizeSpread::fixed(2048)
        );
        assert_eq!(
            "1q".parse::<SizeSpread>().unwrap_err().to_string(),
            r#"unknown size unit "q" in "1q""#
        );
        assert!(matches!(
            "1k:0".parse::<SizeSpread>(),
            Err(SizeError::NoWeight(_))
        ));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(matches!(
            parse_duration("x"),
            Err(DurationError::Number { .. })
        ));
        assert_eq!(
            parse_duration("5y").unwrap_err().to_string(),
            r#"unknown duration unit "y" in "5y""#
        );
    }
}
