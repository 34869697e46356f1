//! `hermod maintenance on|off`: asks the running hermod, over its admin API (address and
//! token from the same configuration), to refuse new SMTP connections with 421 4.3.2
//! for a maintenance window, or to take them again.

use std::path::PathBuf;
use std::process::ExitCode;

/// The state asked for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum State {
    /// Refuse new connections.
    On,
    /// Take connections again.
    Off,
}

/// Sends the change and prints what hermod answered.
pub fn run(config: Option<PathBuf>, state: State, persist: bool) -> ExitCode {
    let config = match super::load(config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let body = serde_json::json!({ "on": matches!(state, State::On), "persist": persist });
    let call = super::admin_client::call(
        &config,
        awc::http::Method::PUT,
        "/api/maintenance",
        Some(body),
    );
    super::admin_client::print_outcome("maintenance", call)
}
