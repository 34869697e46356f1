//! What became of one message, and the kinds of errors a misbehaving server causes.

use serde::Serialize;

/// The fate of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx after the message (in LMTP: for at least one recipient).
    Accepted,
    /// Refused with a 4xx (at MAIL, every RCPT, DATA or after the message), or 421.
    TempFailed,
    /// Refused with a 5xx.
    PermFailed,
    /// The exchange broke before an answer.
    Error(ErrorKind),
}

impl Outcome {
    /// The outcome a final reply code stands for.
    pub(crate) fn from_code(code: u16) -> Self {
        match code {
            200..=299 => Self::Accepted,
            400..=499 => Self::TempFailed,
            500..=599 => Self::PermFailed,
            _ => Self::Error(ErrorKind::UnexpectedReply),
        }
    }
}

/// Why an exchange broke, counted by kind in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Nothing listens there.
    ConnectRefused,
    /// The TCP connection (or TLS handshake) took too long.
    ConnectTimeout,
    /// Connecting failed otherwise.
    ConnectFailed,
    /// The TLS handshake failed (bad certificate, protocol error).
    TlsHandshake,
    /// The server greeted with a code that is neither 220 nor a refusal (4xx/5xx
    /// greetings temp- or perm-fail the message instead).
    GreetingRejected,
    /// EHLO/LHLO (and HELO) were refused with a 5xx: most likely the wrong protocol
    /// (a 4xx there temp-fails the message instead).
    HelloRejected,
    /// STARTTLS was asked for but not offered or refused.
    StarttlsUnavailable,
    /// AUTH was asked for but no usable mechanism was offered.
    AuthUnavailable,
    /// The server refused our credentials.
    AuthFailed,
    /// No reply within the command timeout.
    Timeout,
    /// The server closed the connection in the middle of an exchange.
    Closed,
    /// The connection was reset or another I/O error struck.
    Reset,
    /// Bytes that are not an SMTP reply.
    MalformedReply,
    /// A well-formed reply that makes no sense at that point (e.g. 250 instead of 354).
    UnexpectedReply,
}

impl ErrorKind {
    /// Every kind, for tallies indexed by kind.
    pub const ALL: [ErrorKind; 14] = [
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::ConnectFailed,
        Self::TlsHandshake,
        Self::GreetingRejected,
        Self::HelloRejected,
        Self::StarttlsUnavailable,
        Self::AuthUnavailable,
        Self::AuthFailed,
        Self::Timeout,
        Self::Closed,
        Self::Reset,
        Self::MalformedReply,
        Self::UnexpectedReply,
    ];

    /// The snake_case name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::ConnectFailed => "connect_failed",
            Self::TlsHandshake => "tls_handshake",
            Self::GreetingRejected => "greeting_rejected",
            Self::HelloRejected => "hello_rejected",
            Self::StarttlsUnavailable => "starttls_unavailable",
            Self::AuthUnavailable => "auth_unavailable",
            Self::AuthFailed => "auth_failed",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Reset => "reset",
            Self::MalformedReply => "malformed_reply",
            Self::UnexpectedReply => "unexpected_reply",
        }
    }

    /// The kind of an I/O error during an exchange.
    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Closed,
            std::io::ErrorKind::TimedOut => Self::Timeout,
            _ => Self::Reset,
        }
    }
}
