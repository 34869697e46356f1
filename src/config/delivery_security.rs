//! The TLS and AUTH part of `[delivery]`: each next hop's TLS policy and credentials,
//! resolved from the keys as written (a target in `relayhost` or the transport map) to
//! the next hop they name, and the checks on them (a password file others can read is
//! refused).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hermod_actors::outbound::routing::{NextHop, parse_target};
use hermod_actors::outbound::tls::OutboundSecurity;
use hermod_actors::protocol::sasl::Credentials;

use super::ConfigIssue;
use super::delivery::{DeliveryConfig, HopCredentials};
use super::secret_file::SecretFileError;

impl DeliveryConfig {
    /// TLS and AUTH for every next hop.
    pub fn security(&self) -> anyhow::Result<OutboundSecurity> {
        let mut per_hop = HashMap::new();
        for (target, mode) in &self.tls_policy {
            per_hop.insert(parse_target(target, 25)?, *mode);
        }
        let mut credentials = HashMap::new();
        for (target, hop) in &self.auth {
            let password = password(&hop.password, &hop.password_file)
                .map_err(|e| anyhow::anyhow!("delivery.auth.\"{target}\": {e}"))?;
            credentials.insert(
                parse_target(target, 25)?,
                Credentials {
                    user: hop.username.clone(),
                    password,
                },
            );
        }
        if let Some(relayhost) = self.relayhost_hop()
            && !self.relayhost_username.is_empty()
        {
            let password = password(&self.relayhost_password, &self.relayhost_password_file)
                .map_err(|e| anyhow::anyhow!("delivery.relayhost_password_file: {e}"))?;
            credentials.insert(
                relayhost,
                Credentials {
                    user: self.relayhost_username.clone(),
                    password,
                },
            );
        }
        let ca_file =
            (!self.tls_ca_file.as_os_str().is_empty()).then_some(self.tls_ca_file.as_path());
        OutboundSecurity::new(self.tls, per_hop, credentials, self.auth_in_clear, ca_file)
            .map_err(|e| anyhow::anyhow!("delivery.tls_ca_file: {e}"))
    }

    fn relayhost_hop(&self) -> Option<NextHop> {
        match self.relayhost.trim() {
            "" => None,
            target => parse_target(target, 25).ok(),
        }
    }

    /// What serde cannot check in the TLS and AUTH keys.
    pub(super) fn check_security(&self, issues: &mut Vec<ConfigIssue>) {
        for target in self.tls_policy.keys() {
            if let Err(e) = parse_target(target, 25) {
                issues.push(ConfigIssue::new(
                    format!("delivery.tls_policy.\"{target}\""),
                    e.to_string(),
                ));
            }
        }
        for (target, hop) in &self.auth {
            let key = format!("delivery.auth.\"{target}\"");
            if let Err(e) = parse_target(target, 25) {
                issues.push(ConfigIssue::new(&key, e.to_string()));
            }
            check_credentials(issues, &key, hop);
        }
        if !self.relayhost_username.is_empty() {
            if self.relayhost.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    "delivery.relayhost_username",
                    "is set but delivery.relayhost is empty: credentials for which host?",
                ));
            }
            let hop = HopCredentials {
                username: self.relayhost_username.clone(),
                password: self.relayhost_password.clone(),
                password_file: self.relayhost_password_file.clone(),
            };
            check_credentials(issues, "delivery.relayhost_password", &hop);
        }
        if !self.tls_ca_file.as_os_str().is_empty()
            && let Err(e) = OutboundSecurity::new(
                self.tls,
                HashMap::new(),
                HashMap::new(),
                false,
                Some(&self.tls_ca_file),
            )
        {
            issues.push(ConfigIssue::new("delivery.tls_ca_file", e));
        }
    }
}

fn check_credentials(issues: &mut Vec<ConfigIssue>, key: &str, hop: &HopCredentials) {
    if hop.username.is_empty() {
        issues.push(ConfigIssue::new(key, "a user name is needed"));
    }
    if !hop.password.is_empty() && !hop.password_file.as_os_str().is_empty() {
        issues.push(ConfigIssue::new(
            key,
            "set the password or its file, not both",
        ));
    }
    if let Err(e) = password(&hop.password, &hop.password_file) {
        issues.push(ConfigIssue::new(key, e));
    }
}

/// Why a next hop's password cannot be had; the text names the file.
#[derive(Debug, thiserror::Error)]
enum PasswordError {
    /// Neither `password` nor `password_file` is set.
    #[error("no password (password or password_file)")]
    Missing,
    /// The file's mode lets others read it, or it cannot be looked at.
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    /// The file cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        /// The password file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file's first line is empty.
    #[error("{} is empty", .0.display())]
    Empty(PathBuf),
}

/// The password given, or the first line of its file; a file others may read is
/// refused ([`super::secret_file`]).
fn password(given: &str, file: &Path) -> Result<String, PasswordError> {
    if file.as_os_str().is_empty() {
        if given.is_empty() {
            return Err(PasswordError::Missing);
        }
        return Ok(given.to_string());
    }
    super::secret_file::check(file)?;
    let text = std::fs::read_to_string(file).map_err(|error| PasswordError::Unreadable {
        path: file.to_path_buf(),
        error,
    })?;
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_string();
    if line.is_empty() {
        return Err(PasswordError::Empty(file.to_path_buf()));
    }
    Ok(line)
}
