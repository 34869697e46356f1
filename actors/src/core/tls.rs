//! The TLS every stage shares: one crypto backend for the process (the server's
//! certificates and the client's verification use the same), and what a finished
//! handshake agreed on, for the log and the `Received:` header.

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
