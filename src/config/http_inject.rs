//! `[http_inject]`: the HTTP injection API (`POST /api/inject/v1`), on its own listener,
//! off by default. On loopback it may run without keys; anywhere else it needs TLS (the
//! `[tls]` certificate) and a bearer key per tenant, so that no request is taken in clear
//! or from somebody nobody named.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::section::{Key, section};
use super::{ConfigIssue, Section, at_least_one};

section! {
    /// `[http_inject]`: the injection API.
    pub struct HttpInjectConfig {
        /// Turn the injection listener on.
        pub enabled: bool = false
            => (restart, []),
        /// Where it listens; anything but loopback needs `tls` and `tenants`.
        pub listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8025))
            => (restart, []),
        /// Serve HTTPS with the `[tls]` certificate (read at start).
        pub tls: bool = false
            => (restart, []),
        /// Recipients one request may carry.
        pub max_recipients: usize = 1000
            => (restart, []),
        /// Octets of one request's body (its JSON, attachments in base64 included); a
        /// built message is also held to `smtp.max_message_size`.
        pub max_request_size: usize = 64 * 1024 * 1024
            => (restart, []),
        /// The tenants and their bearer keys (`[http_inject.tenants.NAME]`, `key_file` and
        /// `senders`); each request names its tenant by its key. A tenant's messages
        /// carry its name as their user (events, logs, per-user limits, DKIM).
        pub tenants: BTreeMap<String, TenantConfig> = BTreeMap::new()
            => (restart, []),
    }
}

/// One tenant of the injection API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    /// A file, readable by hermod's user only, whose first line is the bearer key.
    pub key_file: PathBuf,
    /// Envelope senders (and From: addresses, for DKIM) the tenant may use: addresses or
    /// `@domain`; empty: any.
    pub senders: Vec<String>,
}

impl Section for HttpInjectConfig {
    const KEYS: &'static [Key] = HttpInjectConfig::DECLARED;
    const NAME: &'static str = "http_inject";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        at_least_one(
            issues,
            &[
                ("http_inject.max_recipients", self.max_recipients as u64),
                ("http_inject.max_request_size", self.max_request_size as u64),
            ],
        );
        if !self.enabled {
            return;
        }
        if !self.listen.ip().is_loopback() {
            if !self.tls {
                issues.push(ConfigIssue::new(
                    "http_inject.tls",
                    format!("{} is not loopback: requests would cross the network in clear; set tls = true (with [tls] cert and key)", self.listen),
                ));
            }
            if self.tenants.is_empty() {
                issues.push(ConfigIssue::new(
                    "http_inject.tenants",
                    format!("{} is not loopback: anyone could inject; name tenants with a key_file each", self.listen),
                ));
            }
        }
        if let Err(e) = self.keys() {
            issues.push(ConfigIssue::new("http_inject.tenants", format!("{e:#}")));
        }
    }
}

impl HttpInjectConfig {
    /// Each tenant's name, key and senders.
    pub fn keys(&self) -> anyhow::Result<Vec<(String, String, Vec<String>)>> {
        let mut out = Vec::new();
        for (name, tenant) in &self.tenants {
            let path = &tenant.key_file;
            if path.as_os_str().is_empty() {
                anyhow::bail!("tenant {name:?} has no key_file");
            }
            super::secret_file::check(path)?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let key = text.lines().next().map(str::trim).unwrap_or("");
            if key.len() < 16 {
                anyhow::bail!(
                    "tenant {name:?}: the key in {} is shorter than 16 characters",
                    path.display()
                );
            }
            out.push((name.clone(), key.to_string(), tenant.senders.clone()));
        }
        Ok(out)
    }
}
