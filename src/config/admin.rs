//! `[admin]`: the admin HTTP server — health, statistics and Prometheus metrics for
//! monitoring, and the operator's controls (maintenance mode) behind a bearer token.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[admin]`: the admin HTTP server.
    pub struct AdminConfig {
        /// Where the admin HTTP server listens (`/health`, `/stats`, `/metrics`, `/api/...`);
        /// empty (`""`) turns it off. Parsed once, as the file is read.
        #[serde(with = "optional_address")]
        pub listen: Option<SocketAddr> = Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
            => (restart, []),
        /// Also serve `/metrics` on this port, at the admin listener's address (the seeds'
        /// `METRICS_PORT`, usually 9090); 0: `/metrics` on the admin listener only.
        pub metrics_port: u16 = 0
            => (restart, ["METRICS_PORT"]),
        /// Serve `/metrics` at all (the seeds' `METRICS_ENABLED`).
        pub metrics: bool = true
            => (restart, ["METRICS_ENABLED"]),
        /// The bearer token every request that changes something must carry (and every
        /// request when the admin listener is not on loopback). Empty: read `token_file`.
        pub token: String = String::new()
            => (restart, []),
        /// A file whose first line is the token (kept out of the configuration file).
        pub token_file: PathBuf = PathBuf::new()
            => (restart, []),
        /// The admin API on a Unix socket, owner-only, for the command line on this machine
        /// (no token needed there for root and hermod's user); relative to
        /// `queue.data_dir`; empty turns it off.
        pub socket: PathBuf = PathBuf::from("admin.sock")
            => (restart, []),
    }
}

impl Section for AdminConfig {
    const KEYS: &'static [Key] = AdminConfig::DECLARED;
    const NAME: &'static str = "admin";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.listen.is_none() && self.metrics_port != 0 {
            issues.push(ConfigIssue::new(
                "admin.metrics_port",
                "needs admin.listen (the metrics port is opened on its address)",
            ));
        }
        if !self.token.is_empty() && !self.token_file.as_os_str().is_empty() {
            issues.push(ConfigIssue::new(
                "admin.token_file",
                "set admin.token or admin.token_file, not both",
            ));
        }
        if !self.token_file.as_os_str().is_empty()
            && let Err(e) = super::secret_file::check(&self.token_file)
        {
            issues.push(ConfigIssue::new("admin.token_file", e));
        }
        if let Some(addr) = self.listen
            && !addr.ip().is_loopback()
            && self.token.is_empty()
            && self.token_file.as_os_str().is_empty()
        {
            issues.push(ConfigIssue::new(
                "admin.listen",
                format!(
                    "{addr} is not a loopback address: set admin.token or admin.token_file, which every request must then carry"
                ),
            ));
        }
    }
}

/// `admin.listen` that is not an address and port to listen on (the loader names the
/// text it got).
#[derive(Debug, thiserror::Error)]
#[error("expected ip:port (such as 127.0.0.1:8080), or \"\" for none")]
pub struct NotAListenAddress;

/// `admin.listen` in the file: `"ip:port"`, or `""` for none.
mod optional_address {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::NotAListenAddress;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        match String::deserialize(d)?.trim() {
            "" => Ok(None),
            text => text
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(NotAListenAddress)),
        }
    }

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str(""),
        }
    }
}

impl AdminConfig {
    /// The admin socket's path (`socket` under `data_dir` unless absolute); `None` when
    /// it is off.
    pub fn socket_path(&self, data_dir: &std::path::Path) -> Option<PathBuf> {
        (!self.socket.as_os_str().is_empty()).then(|| data_dir.join(&self.socket))
    }

    /// The token: `token`, or the first line of `token_file`; `None` when neither is set.
    pub fn read_token(&self) -> anyhow::Result<Option<String>> {
        if !self.token.is_empty() {
            return Ok(Some(self.token.clone()));
        }
        if self.token_file.as_os_str().is_empty() {
            return Ok(None);
        }
        super::secret_file::check(&self.token_file)
            .map_err(|e| anyhow::anyhow!("admin.token_file: {e}"))?;
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| {
            anyhow::anyhow!(
                "reading admin.token_file {}: {e}",
                self.token_file.display()
            )
        })?;
        match text.lines().next().map(str::trim) {
            Some(token) if !token.is_empty() => Ok(Some(token.to_string())),
            _ => anyhow::bail!("admin.token_file {} is empty", self.token_file.display()),
        }
    }
}
