//! The TLS every stage shares: one crypto backend for the process (the server's
//! certificates and the client's verification use the same), reading certificates from
//! PEM files, and what a finished handshake agreed on, for the log and the `Received:`
//! header.

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, aws_lc_rs};

/// The TLS a client negotiated, for the Received: header and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite's IANA name.
    pub cipher: String,
}

/// One crypto backend for the whole process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// The version and cipher a finished handshake agreed on (either side's connection).
pub fn negotiated(conn: &rustls::CommonState) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or_else(
        || "unknown".to_string(),
        |suite| {
            let suite = suite.suite();
            suite
                .as_str()
                .map_or_else(|| format!("{suite:?}"), str::to_string)
        },
    );
    TlsInfo { version, cipher }
}

/// A PEM file of certificates (a server's chain, a CA list) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemFileError {
    /// It cannot be opened or read.
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
    /// It is not PEM.
    #[error("cannot parse {}: {error}", path.display())]
    Unparsable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        error: rustls_pki_types::pem::Error,
    },
}

/// Every certificate in the PEM file at `path`, in order.
pub fn read_certificates(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PemFileError> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|error| PemFileError::Unreadable {
            path: path.to_path_buf(),
            error,
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PemFileError::Unparsable {
            path: path.to_path_buf(),
            error,
        })
}
