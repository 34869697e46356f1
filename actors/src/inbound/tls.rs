//! The server side of TLS: the certificate and key from PEM files, made into a rustls
//! configuration that every Session's handshake reads, swapped on SIGHUP and when the
//! files change (a broken new pair keeps the old one and says why), with one session
//! cache and ticket key shared across swaps so that clients resume their sessions.
//!
//! It also names why a handshake failed, for the one log line and the metric label each
//! failure gets, and inspects a certificate for `--validate-only` (names, expiry).

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::aws_lc_rs;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{AlertDescription, PeerIncompatible, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::core::tls::{PemFileError, read_certificates};

pub use crate::core::tls::{negotiated, provider};

/// The certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate pair cannot be used. Each text names the file and the problem, as
/// `--validate-only` prints it and a failed reload logs it; the cause is in the text, not
/// a separate source, so a chained report does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The certificate file cannot be read, or is not PEM.
    #[error(transparent)]
    Pem(#[from] PemFileError),
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no private key hermod reads.
    #[error("cannot read a private key from {}: {error}", path.display())]
    NoKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
    /// The leaf certificate is not X.509 that x509-parser reads.
    #[error("the first certificate does not parse: {0}")]
    LeafUnparsable(x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The key is not the leaf's.
    #[error("{} and {} do not go together: {error}", cert.display(), key.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// The session ticket key could not be made (no randomness).
    #[error("cannot make the TLS session ticket key: {0}")]
    TicketKey(rustls::Error),
    /// The crypto provider refused TLS 1.2 and 1.3.
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
    /// rustls refused the pair in a server configuration.
    #[error("certificate and key: {0}")]
    Config(rustls::Error),
}

/// Sessions kept for resumption by session id (TLS 1.2); TLS 1.3 resumes by ticket.
const SESSION_CACHE_SIZE: usize = 20_000;

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// DNS names (subjectAltName, or the common name when there is none).
    pub names: Vec<String>,
    /// The end of its validity (Unix seconds).
    pub not_after: i64,
    /// Certificates in the chain, the leaf included.
    pub chain_length: usize,
}

impl CertificateSummary {
    /// Whether one of its names covers `host` (a `*.` name covers one label).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => name == host,
            }
        })
    }

    /// Seconds until it expires (negative once expired).
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.not_after - now
    }
}

/// Reads and checks a certificate pair: the chain parses, the key parses and matches
/// the leaf. Returns the rustls configuration's parts and what the leaf says.
fn load_pair(
    files: &TlsFiles,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
        CertificateSummary,
    ),
    CertificateError,
> {
    let path = || files.cert.clone();
    let chain = read_certificates(&files.cert)?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate(path()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|error| CertificateError::NoKey {
            path: files.key.clone(),
            error,
        })?;
    let summary = summarize(&chain)?;
    let provider = provider();
    rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
        |error| CertificateError::Mismatch {
            cert: path(),
            key: files.key.clone(),
            error,
        },
    )?;
    Ok((chain, key, summary))
}

fn summarize(chain: &[CertificateDer<'static>]) -> Result<CertificateSummary, CertificateError> {
    let (_, leaf) =
        x509_parser::parse_x509_certificate(&chain[0]).map_err(CertificateError::LeafUnparsable)?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_string());
            }
        }
    }
    if names.is_empty() {
        names.extend(
            leaf.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    Ok(CertificateSummary {
        names,
        not_after: leaf.validity().not_after.timestamp(),
        chain_length: chain.len(),
    })
}

/// Checks the pair for `--validate-only`: it loads, and what the leaf says.
pub fn inspect(files: &TlsFiles) -> Result<CertificateSummary, CertificateError> {
    load_pair(files).map(|(_, _, summary)| summary)
}

/// The size and modification time of both files, to see that they changed.
type FileStamp = Vec<Option<(u64, SystemTime)>>;

fn stamp(files: &TlsFiles) -> FileStamp {
    [&files.cert, &files.key]
        .iter()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// The server's TLS: the configuration in use, and how to renew it.
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    summary: Mutex<CertificateSummary>,
    stamp: Mutex<FileStamp>,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
    /// How long a client has to finish its handshake.
    pub handshake_timeout: Duration,
}

impl ServerTls {
    /// Loads the pair; fails with a sentence naming the file and the problem.
    pub fn load(
        files: TlsFiles,
        handshake_timeout: Duration,
    ) -> Result<Arc<Self>, CertificateError> {
        let sessions: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        let tickets = aws_lc_rs::Ticketer::new().map_err(CertificateError::TicketKey)?;
        let stamp_now = stamp(&files);
        let (config, summary) = build(&files, &sessions, &tickets)?;
        record_certificate(&summary);
        Ok(Arc::new(ServerTls {
            files,
            current: RwLock::new(config),
            summary: Mutex::new(summary),
            stamp: Mutex::new(stamp_now),
            sessions,
            tickets,
            handshake_timeout,
        }))
    }

    /// An acceptor with the configuration in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }

    /// The certificate in use now.
    pub fn summary(&self) -> CertificateSummary {
        self.summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Loads the files again (SIGHUP). A pair that does not load leaves the one in use
    /// and is logged with the reason; open connections are never touched.
    pub fn reload(&self) -> Result<CertificateSummary, CertificateError> {
        let stamp_now = stamp(&self.files);
        match build(&self.files, &self.sessions, &self.tickets) {
            Ok((config, summary)) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
                *self.summary.lock().unwrap_or_else(|p| p.into_inner()) = summary.clone();
                *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp_now;
                record_certificate(&summary);
                metrics::counter!("smtp_tls_certificate_reloads_total", "result" => "loaded")
                    .increment(1);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    names = ?summary.names,
                    expires_in_days = summary.seconds_left(SystemTime::now()) / 86_400,
                    "TLS certificate loaded"
                );
                Ok(summary)
            }
            Err(reason) => {
                // Not tried again until the files change once more.
                *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp_now;
                metrics::counter!("smtp_tls_certificate_reloads_total", "result" => "failed")
                    .increment(1);
                tracing::error!(
                    cert = %self.files.cert.display(),
                    reason = %reason,
                    "TLS certificate not reloaded; still using the previous one"
                );
                Err(reason)
            }
        }
    }

    /// Reloads when either file changed since the last load (called every few seconds).
    pub fn reload_if_changed(&self) {
        let changed = *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) != stamp(&self.files);
        if changed {
            let _ = self.reload();
        }
    }
}

fn build(
    files: &TlsFiles,
    sessions: &Arc<dyn StoresServerSessions>,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<(Arc<ServerConfig>, CertificateSummary), CertificateError> {
    let (chain, key, summary) = load_pair(files)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(CertificateError::Versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(CertificateError::Config)?;
    config.session_storage = sessions.clone();
    config.ticketer = tickets.clone();
    Ok((Arc::new(config), summary))
}

fn record_certificate(summary: &CertificateSummary) {
    metrics::gauge!("smtp_tls_certificate_expiry_timestamp_seconds").set(summary.not_after as f64);
}

/// Why a handshake failed: a short label for the metric and a sentence for the log.
pub fn failure(error: &std::io::Error) -> (&'static str, String) {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify(tls);
    }
    match error.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => (
            "closed",
            "the client closed the connection during the handshake".to_string(),
        ),
        ErrorKind::TimedOut => (
            "timeout",
            "the client did not finish the handshake in time".to_string(),
        ),
        _ => ("other", error.to_string()),
    }
}

fn classify(error: &rustls::Error) -> (&'static str, String) {
    use rustls::Error;
    match error {
        Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => (
            "no_shared_cipher",
            "no cipher suite in common with the client".to_string(),
        ),
        Error::PeerIncompatible(
            PeerIncompatible::SignatureAlgorithmsExtensionRequired
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls13RequiredForQuic
            | PeerIncompatible::SupportedVersionsExtensionRequired,
        ) => (
            "no_shared_version",
            format!(
                "no TLS version in common with the client ({error}); hermod speaks TLS 1.2 and 1.3"
            ),
        ),
        Error::PeerIncompatible(_) => (
            "incompatible",
            format!("the client is incompatible: {error}"),
        ),
        Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => (
            "certificate_rejected",
            format!("the client rejected our certificate ({error}): check the chain and its names"),
        ),
        Error::AlertReceived(
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity,
        ) => (
            "no_shared_cipher",
            format!("the client found no acceptable parameters ({error})"),
        ),
        Error::AlertReceived(AlertDescription::ProtocolVersion) => (
            "no_shared_version",
            format!("the client does not speak TLS 1.2 or 1.3 ({error})"),
        ),
        Error::InvalidMessage(_) => ("not_tls", format!("the client did not speak TLS ({error})")),
        other => ("other", other.to_string()),
    }
}

/// Help texts of the metrics recorded for TLS.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_tls_handshakes_total",
        "TLS handshakes completed by SMTP clients, by version and whether the session was resumed."
    );
    metrics::describe_counter!(
        "smtp_tls_handshake_failures_total",
        "TLS handshakes with SMTP clients that failed, by reason (no_shared_cipher, no_shared_version, certificate_rejected, not_tls, timeout, closed, other)."
    );
    metrics::describe_counter!(
        "smtp_tls_certificate_reloads_total",
        "Loads of the TLS certificate after start (SIGHUP or changed files), by result (loaded, failed)."
    );
    metrics::describe_gauge!(
        "smtp_tls_certificate_expiry_timestamp_seconds",
        "When the TLS certificate in use expires (Unix seconds)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write_pair(dir: &Path, names: &[&str]) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, certified.cert.pem()).unwrap();
        std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn names_cover_hosts_with_one_wildcard_label() {
        let summary = CertificateSummary {
            names: vec!["mx.example.test".into(), "*.relay.test".into()],
            not_after: 0,
            chain_length: 1,
        };
        assert!(summary.covers("MX.example.test."));
        assert!(summary.covers("a.relay.test"));
        assert!(!summary.covers("relay.test"));
        assert!(!summary.covers("a.b.relay.test"));
        assert!(!summary.covers("other.test"));
    }

    #[test]
    fn a_broken_new_pair_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), &["mx.test"]);
        let tls = ServerTls::load(files.clone(), Duration::from_secs(5)).unwrap();
        assert!(tls.summary().covers("mx.test"));
        // A key that belongs to another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["x.test".to_string()]).unwrap();
        std::fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, CertificateError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("do not go together"), "{err}");
        assert!(tls.summary().covers("mx.test"));
        // A good new pair replaces it.
        write_pair(dir.path(), &["new.test"]);
        assert!(tls.reload().unwrap().covers("new.test"));
        assert!(tls.summary().covers("new.test"));
    }

    #[test]
    fn changed_files_are_taken_without_being_asked() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), &["old.test"]);
        let tls = ServerTls::load(files, Duration::from_secs(5)).unwrap();
        tls.reload_if_changed();
        assert!(tls.summary().covers("old.test"));
        // Written within the same clock tick, the size tells the files apart.
        write_pair(dir.path(), &["a-new-and-longer-name.test"]);
        tls.reload_if_changed();
        assert!(tls.summary().covers("a-new-and-longer-name.test"));
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("none.pem"),
            key: dir.path().join("none.key"),
        };
        let missing = inspect(&files).unwrap_err().to_string();
        assert!(missing.starts_with("cannot read "), "{missing}");
        assert!(missing.contains("none.pem"), "{missing}");
        std::fs::write(&files.cert, "").unwrap();
        let empty = inspect(&files).unwrap_err();
        assert!(
            matches!(empty, CertificateError::NoCertificate(_)),
            "{empty}"
        );
        assert!(
            empty
                .to_string()
                .ends_with("none.pem holds no PEM certificate")
        );
    }
}
