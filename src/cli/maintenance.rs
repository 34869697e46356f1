//! `hermod maintenance on|off`: asks the running hermod, over its admin API (address and
//! token from the same configuration), to refuse new SMTP connections with 421 4.3.2
//! for a maintenance window, or to take them again.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

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
    match actix::System::new().block_on(put(&config, "/api/maintenance", body)) {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hermod maintenance: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A `PUT` of `body` to the admin API of the hermod `config` describes.
async fn put(config: &Config, path: &str, body: serde_json::Value) -> anyhow::Result<String> {
    let Some(addr) = config.admin.listen_addr().map_err(anyhow::Error::msg)? else {
        anyhow::bail!(
            "admin.listen is empty: the admin API is off, so the running hermod cannot be asked"
        );
    };
    let token = config.admin.read_token()?;
    let client = awc::Client::new();
    let mut request = client
        .put(format!("http://{addr}{path}"))
        .timeout(std::time::Duration::from_secs(10));
    if let Some(token) = &token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send_json(&body).await.map_err(|e| {
        anyhow::anyhow!("hermod is not running, or not at admin.listen {addr}: {e}")
    })?;
    let text = String::from_utf8_lossy(&response.body().await?).into_owned();
    if response.status().is_success() {
        Ok(text)
    } else {
        anyhow::bail!("hermod refused ({}): {text}", response.status())
    }
}
