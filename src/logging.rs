//! Log output: text for a terminal, or one JSON object per line for log shippers
//! (`SMTP_ENABLE_JSON_LOGGING=true`). `RUST_LOG` overrides the configured level.

use hermod_actors::config::LogConfig;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (tests) is ignored.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let _ = if config.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
