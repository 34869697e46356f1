//! What a sink is told to do: where to listen, which protocol, what to keep, and which
//! failures to inject with what odds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use crate::tls::TlsFiles;

/// Everything a sink needs; `Default` is an SMTP sink on `127.0.0.1:0` that accepts all.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Plain listeners (STARTTLS offered on them); port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Implicit-TLS listeners (SMTPS/LMTPS), for testing clients that start with TLS.
    pub listen_tls: Vec<SocketAddr>,
    /// Speak LMTP: LHLO instead of EHLO, and one reply per recipient after the message.
    pub lmtp: bool,
    /// Name in the greeting and EHLO reply, and in the self-made certificate.
    pub hostname: String,
    /// Keep each accepted message as `<seq>.eml` plus `<seq>.json` in this directory.
    pub store: Option<PathBuf>,
    /// Append the Message-ID of every accepted message to this file, one a line.
    pub received_log: Option<PathBuf>,
    /// Odds (0..=1) that a recipient or message gets a temporary failure.
    pub tempfail: f64,
    /// Odds (0..=1) that a recipient or message gets a permanent failure.
    pub permfail: f64,
    /// Whether injected failures are answered at RCPT or after the message.
    pub fail_at: FailAt,
    /// Pauses before chosen replies, to mimic a slow server.
    pub delays: Vec<Delay>,
    /// Odds (0..=1) that the connection is dropped instead of answering a message.
    pub disconnect: f64,
    /// Connections past this many are greeted with 421 and closed.
    pub max_connections: Option<usize>,
    /// Certificate and key; `None` makes a self-signed one with rcgen at start.
    pub tls: Option<TlsFiles>,
    /// Offer STARTTLS on plain listeners.
    pub starttls: bool,
    /// After the 220 to STARTTLS, send plain text and close instead of a handshake: a
    /// server whose TLS is broken, for testing a client's fallback.
    pub broken_tls: bool,
    /// Extensions left out of the EHLO reply (`8BITMIME`, `SMTPUTF8`, `CHUNKING`, ...),
    /// to play an older server.
    pub without: Vec<String>,
    /// Require AUTH PLAIN or LOGIN with this user and password before MAIL.
    pub auth: Option<(String, String)>,
    /// Largest message accepted (advertised with SIZE); larger ones get 552.
    pub max_message_size: usize,
    /// Report done (see `SinkHandle::done`) once this many messages were accepted.
    pub expect: Option<u64>,
    /// Report done after this long without any traffic.
    pub idle_exit: Option<Duration>,
    /// A connection silent for this long is closed with 421.
    pub command_timeout: Duration,
    /// How long `shutdown` lets open connections finish before cutting them.
    pub shutdown_grace: Duration,
    /// Seed for the failure odds, so a test sees the same draws every run.
    pub seed: Option<u64>,
    /// Scripted replies to RCPT TO by recipient domain, to play a provider.
    pub replies: Vec<super::scripted::ReplyRule>,
    /// Write a JSON line when a connection opens (peer, local address, time) and one
    /// when it closes.
    pub connection_log: Option<PathBuf>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            listen_tls: Vec::new(),
            lmtp: false,
            hostname: "localhost".to_string(),
            store: None,
            received_log: None,
            tempfail: 0.0,
            permfail: 0.0,
            fail_at: FailAt::Rcpt,
            delays: Vec::new(),
            disconnect: 0.0,
            max_connections: None,
            tls: None,
            starttls: true,
            without: Vec::new(),
            auth: None,
            broken_tls: false,
            max_message_size: 100 * 1024 * 1024,
            expect: None,
            idle_exit: None,
            command_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(2),
            seed: None,
            replies: Vec::new(),
            connection_log: None,
        }
    }
}

/// Where injected failures are answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailAt {
    /// At RCPT TO, so the client never sends the message for that recipient.
    #[default]
    Rcpt,
    /// After the message (per recipient in LMTP), so the whole body was wasted.
    Data,
}

/// `--fail-at` that is neither `rcpt` nor `data`; holds the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected rcpt or data, got {0:?}")]
pub struct NotFailAt(String);

impl FromStr for FailAt {
    type Err = NotFailAt;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rcpt" => Ok(Self::Rcpt),
            "data" => Ok(Self::Data),
            _ => Err(NotFailAt(s.to_string())),
        }
    }
}

/// The reply a [`Delay`] holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayPoint {
    /// The 220 greeting.
    Greeting,
    /// The reply to EHLO, HELO or LHLO.
    Hello,
    /// The reply to MAIL FROM.
    Mail,
    /// The reply to each RCPT TO.
    Rcpt,
    /// The 354 go-ahead for DATA.
    Data,
    /// The final reply(ies) to a message (end of DATA or BDAT LAST).
    Dot,
    /// The reply to RSET.
    Rset,
    /// The reply to QUIT.
    Quit,
}

/// A [`Delay`]'s command that names no reply the sink holds back; holds the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command {0:?} (connect, ehlo, mail, rcpt, data, dot, rset, quit)")]
pub struct UnknownDelayPoint(String);

impl FromStr for DelayPoint {
    type Err = UnknownDelayPoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "connect" | "greeting" | "banner" => Self::Greeting,
            "ehlo" | "helo" | "lhlo" => Self::Hello,
            "mail" => Self::Mail,
            "rcpt" => Self::Rcpt,
            "data" => Self::Data,
            "dot" | "eom" | "message" | "bdat" => Self::Dot,
            "rset" => Self::Rset,
            "quit" => Self::Quit,
            _ => return Err(UnknownDelayPoint(s.to_string())),
        })
    }
}

/// A pause of `duration` before the reply at `point`, taken with probability `odds`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    /// Which reply is held back.
    pub point: DelayPoint,
    /// How long.
    pub duration: Duration,
    /// Probability (0..=1) of pausing at each such reply.
    pub odds: f64,
}

/// Why a `--delay` is not `CMD:MS[:ODDS]`; clap prints it after the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayError {
    /// The command names no reply.
    #[error(transparent)]
    Point(#[from] UnknownDelayPoint),
    /// No `:MS` after the command.
    #[error("expected CMD:MS[:ODDS]")]
    NoMilliseconds,
    /// `MS` is not a whole number.
    #[error("bad milliseconds in {text:?}: {error}")]
    Milliseconds {
        /// The flag's value.
        text: String,
        /// Why.
        error: std::num::ParseIntError,
    },
    /// `ODDS` is not a number.
    #[error("bad odds in {text:?}: {error}")]
    Odds {
        /// The flag's value.
        text: String,
        /// Why.
        error: std::num::ParseFloatError,
    },
    /// More parts than three, or odds outside 0..=1.
    #[error("expected CMD:MS[:ODDS] with ODDS in 0..=1, got {0:?}")]
    Shape(String),
}

impl FromStr for Delay {
    type Err = DelayError;

    /// Parses `CMD:MS[:ODDS]`, e.g. `rcpt:200:0.1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let point = parts.next().unwrap_or_default().parse()?;
        let ms: u64 = parts
            .next()
            .ok_or(DelayError::NoMilliseconds)?
            .parse()
            .map_err(|error| DelayError::Milliseconds {
                text: s.to_string(),
                error,
            })?;
        let odds: f64 = match parts.next() {
            Some(p) => p.parse().map_err(|error| DelayError::Odds {
                text: s.to_string(),
                error,
            })?,
            None => 1.0,
        };
        if parts.next().is_some() || !(0.0..=1.0).contains(&odds) {
            return Err(DelayError::Shape(s.to_string()));
        }
        Ok(Self {
            point,
            duration: Duration::from_millis(ms),
            odds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_parses_with_and_without_odds() {
        let d: Delay = "rcpt:200:0.5".parse().unwrap();
        assert_eq!(d.point, DelayPoint::Rcpt);
        assert_eq!(d.duration, Duration::from_millis(200));
        assert_eq!(d.odds, 0.5);
        assert_eq!("dot:5".parse::<Delay>().unwrap().odds, 1.0);
        assert!(matches!(
            "rcpt:x".parse::<Delay>(),
            Err(DelayError::Milliseconds { .. })
        ));
        assert!(matches!(
            "rcpt:1:2".parse::<Delay>(),
            Err(DelayError::Shape(_))
        ));
        assert_eq!(
            "helo".parse::<Delay>().unwrap_err().to_string(),
            "expected CMD:MS[:ODDS]"
        );
        assert_eq!(
            "auth:5".parse::<Delay>().unwrap_err().to_string(),
            r#"unknown command "auth" (connect, ehlo, mail, rcpt, data, dot, rset, quit)"#
        );
    }
}
