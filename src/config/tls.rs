//! `[tls]`: the server's certificate (STARTTLS on `smtp` and `submission` listeners, TLS
//! from the first byte on `submissions` listeners), whether TLS is required before MAIL,
//! and the handshake's timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hermod_actors::inbound::tls::{CertificateError, ServerTls, TlsFiles};

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[tls]`: the server's certificate and what TLS is required for.
    ///
    /// The files themselves are read again on every reload; their paths, and whether TLS
    /// is on at all, wait for a restart.
    pub struct TlsConfig {
        /// Offer TLS when a certificate is configured (`SMTP_ENABLE_TLS`); off: no STARTTLS
        /// even with a certificate.
        pub enabled: bool = true
            => (restart, ["SMTP_ENABLE_TLS"]),
        /// PEM certificate chain, leaf first (`TLS_CERT_PATH`). Reloaded on SIGHUP and when
        /// the file changes.
        pub cert: PathBuf = PathBuf::new()
            => (restart, ["TLS_CERT_PATH"]),
        /// PEM private key of the certificate (`TLS_KEY_PATH`).
        pub key: PathBuf = PathBuf::new()
            => (restart, ["TLS_KEY_PATH"]),
        /// Refuse MAIL before STARTTLS on listeners that start in clear
        /// (`SMTP_REQUIRE_TLS`): `530 5.7.0 Must issue a STARTTLS command first`.
        pub require: bool = false
            => (live, ["SMTP_REQUIRE_TLS"]),
        /// Time a client has to finish its TLS handshake.
        #[serde(with = "super::duration")]
        pub handshake_timeout: Duration = Duration::from_secs(30)
            => (restart, []),
        /// How often the certificate files are checked for changes (a renewed certificate
        /// is taken without a restart or a SIGHUP).
        #[serde(with = "super::duration")]
        pub reload_check_interval: Duration = Duration::from_secs(10)
            => (restart, []),
    }
}

impl Section for TlsConfig {
    const KEYS: &'static [Key] = TlsConfig::DECLARED;
    const NAME: &'static str = "tls";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let (cert, key) = (
            self.cert.as_os_str().is_empty(),
            self.key.as_os_str().is_empty(),
        );
        if cert != key {
            let missing = if cert { "tls.cert" } else { "tls.key" };
            issues.push(ConfigIssue::new(
                missing,
                "tls.cert and tls.key go together: set both, or neither",
            ));
        }
        if !key && let Err(e) = super::secret_file::check(&self.key) {
            issues.push(ConfigIssue::new("tls.key", e));
        }
        if self.enabled
            && let Some(files) = self.files()
            && let Err(reason) = hermod_actors::inbound::tls::inspect(&files)
        {
            issues.push(ConfigIssue::new("tls.cert", reason));
        }
        if self.require && !self.offered() {
            issues.push(ConfigIssue::new(
                "tls.require",
                "TLS cannot be required without a certificate (tls.cert, tls.key) and tls.enabled",
            ));
        }
        longer_than_zero(
            issues,
            &[
                ("tls.handshake_timeout", self.handshake_timeout),
                ("tls.reload_check_interval", self.reload_check_interval),
            ],
        );
    }
}

impl TlsConfig {
    /// The certificate files, when both are set.
    pub fn files(&self) -> Option<TlsFiles> {
        if self.cert.as_os_str().is_empty() || self.key.as_os_str().is_empty() {
            return None;
        }
        Some(TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        })
    }

    /// Whether TLS is offered: on, with a certificate.
    pub fn offered(&self) -> bool {
        self.enabled && self.files().is_some()
    }

    /// The server's TLS, loaded now (`None` when not offered).
    pub fn load(&self) -> Result<Option<Arc<ServerTls>>, CertificateError> {
        match self.files() {
            Some(files) if self.enabled => ServerTls::load(files, self.handshake_timeout).map(Some),
            _ => Ok(None),
        }
    }
}
