//! Log output: text for a terminal, or one JSON object per line for log shippers
//! (`SMTP_ENABLE_JSON_LOGGING=true`). `RUST_LOG` overrides the configured level.
//!
//! Lines are written by a dedicated thread in batches ([`batch_writer`]), so logging under
//! load costs the mail path neither system calls nor thread wake-ups per line; no line is
//! ever dropped (a full buffer slows the logger, it does not lose).

mod batch_writer;

use std::io::IsTerminal;

use crate::config::LogConfig;
use batch_writer::BatchWriter;
pub use batch_writer::FlushGuard;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Keep the guard until exit: dropping it writes what is
/// still buffered. A second call (tests) installs nothing.
pub fn init(config: &LogConfig) -> FlushGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let ansi = std::io::stdout().is_terminal();
    let (writer, guard) = BatchWriter::start(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = if config.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    guard
}
