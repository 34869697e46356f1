//! How the command line reaches the running hermod: its admin API, at `admin.listen`
//! with `admin.token`, from the same configuration as `serve`.

use std::time::Duration;

use awc::http::Method;

use crate::config::Config;

/// Sends `method path` (with a JSON `body` if given) and returns the answer's text; an
/// answer that is not a success is an error carrying it.
pub async fn call(
    config: &Config,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<String> {
    let Some(addr) = config.admin.listen_addr().map_err(anyhow::Error::msg)? else {
        anyhow::bail!(
            "admin.listen is empty: the admin API is off, so the running hermod cannot be asked"
        );
    };
    let token = config.admin.read_token()?;
    let mut request = awc::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(30));
    if let Some(token) = &token {
        request = request.bearer_auth(token);
    }
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = sent.map_err(|e| {
        anyhow::anyhow!("hermod is not running, or not at admin.listen {addr}: {e}")
    })?;
    let text = String::from_utf8_lossy(&response.body().limit(64 << 20).await?).into_owned();
    if response.status().is_success() {
        Ok(text)
    } else {
        anyhow::bail!("hermod answered {}: {text}", response.status())
    }
}
