//! Log output: text for a terminal, or one JSON object per line for log shippers
//! (`SMTP_ENABLE_JSON_LOGGING=true`). `RUST_LOG` overrides the configured level;
//! `log.debug_peers` raises it to DEBUG for chosen peers ([`debug_peers`]).
//!
//! In the text format every field value is written through [`EscapingWriter`]: values a
//! peer chose (EHLO names, addresses, AUTH user names, header values, next hops'
//! replies, DNS texts) cannot start a forged line with `\r` or `\n` or send escape
//! sequences to the operator's terminal; one event is always one line.
//!
//! Lines are written by a dedicated thread in batches ([`batch_writer`]), so logging under
//! load costs the mail path neither system calls nor thread wake-ups per line; no line is
//! ever dropped (a full buffer slows the logger, it does not lose).
//!
//! Timestamps are formatted a second at a time ([`timestamp`]).
//!
//! Messages' OpenTelemetry traces go to a collector through [`traces`].

mod batch_writer;
pub mod debug_peers;
mod fields;
pub mod recent;
mod timestamp;
pub mod traces;

use std::fmt;
use std::io::IsTerminal;

use crate::config::LogConfig;
use batch_writer::BatchWriter;
pub use batch_writer::FlushGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Keep the guard until exit: dropping it writes what is
/// still buffered. A second call (tests) installs nothing. The warnings and errors logged
/// are also kept in `recent`, for the admin API and `hermod diagnose`.
pub fn init(config: &LogConfig, recent: &recent::RecentProblems) -> FlushGuard {
    use tracing_subscriber::prelude::*;
    let level = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    debug_peers::set(config.debug_peers().unwrap_or_default());
    let filter = debug_peers::PeerFilter { level };
    let ansi = std::io::stdout().is_terminal();
    let (writer, guard) = BatchWriter::start(std::io::stdout());
    let layer = tracing_subscriber::fmt::layer()
        .with_timer(timestamp::Rfc3339Micros)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    // Filtered to WARN itself: a layer without a filter would enable every DEBUG and TRACE
    // call site of hermod and its libraries, on the mail path.
    let kept = recent::RecentLayer(recent.clone())
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    let registry = tracing_subscriber::registry().with(kept);
    let _ = if config.json {
        let layer = layer.json().flatten_event(true).with_filter(filter);
        registry.with(layer).try_init()
    } else {
        let layer = layer.fmt_fields(escaped_fields()).with_filter(filter);
        registry.with(layer).try_init()
    };
    guard
}

/// The text format's fields: `name=value`, the message alone, every value escaped
/// ([`fields`]).
pub fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    fields::EscapedFields
}

/// Writes through to `W` with every control character (C0, DEL, C1, U+2028 and U+2029)
/// as a `\uXXXX` escape ([`crate::escape`]), without a copy of the text.
pub struct EscapingWriter<'a, W: fmt::Write>(pub &'a mut W);

impl<W: fmt::Write> fmt::Write for EscapingWriter<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // Most values are printable ASCII: checked a byte at a time, they go through whole.
        if text.bytes().all(|b| (b' '..b'\x7f').contains(&b)) {
            return self.0.write_str(text);
        }
        let mut rest = text;
        while let Some(at) = rest.find(crate::escape::is_unsafe) {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or(' ');
            write!(self.0, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::EscapingWriter;

    #[test]
    fn the_escaping_writer_leaves_no_control_character() {
        let mut out = String::new();
        let forged = "admin\r\n2026-01-01T00:00:00Z  INFO message accepted\x1b[2J\u{2029}";
        write!(EscapingWriter(&mut out), "{forged}").unwrap();
        assert_eq!(
            out,
            "admin\\u000d\\u000a2026-01-01T00:00:00Z  INFO message accepted\\u001b[2J\\u2029"
        );
    }
}
