//! What the next hop said ([`ServerReply`]) and how a connection can fail
//! ([`ClientError`]); the Delivery actor turns each into a per-recipient status.

use std::fmt;
use std::net::SocketAddr;

use crate::protocol::reply_reader::MalformedReply;
use crate::protocol::status::EnhancedCode;

/// A reply from the remote server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The reply code.
    pub code: u16,
    /// The text of all lines joined by a space (enhanced code included).
    pub text: String,
}

impl ServerReply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// A failure of the connection itself: every recipient of the transaction is deferred.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed or timed out.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// No reply in time.
    #[error("timeout waiting for reply to {stage} from {peer}")]
    Timeout {
        /// The command we were waiting on.
        stage: &'static str,
        /// The server.
        peer: String,
    },
    /// The connection broke.
    #[error("connection to {peer} lost during {stage}: {reason}")]
    Io {
        /// The command in progress.
        stage: &'static str,
        /// The server.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The server sent something that is not an SMTP reply.
    #[error("protocol error from {peer} during {stage}: {detail}")]
    Protocol {
        /// The command in progress.
        stage: &'static str,
        /// The server.
        peer: String,
        /// What was wrong.
        detail: MalformedReply,
    },
    /// The message needs an extension the server does not offer; nothing was sent. A
    /// permanent failure: another attempt at the same server cannot succeed.
    #[error("{status} {peer} does not offer {extension}, which this message needs ({why})")]
    Unsupported {
        /// The enhanced status code of the failure.
        status: EnhancedCode,
        /// The extension.
        extension: &'static str,
        /// The server.
        peer: String,
        /// What in the message needs it.
        why: &'static str,
    },
    /// TLS could not be had: the handshake failed, or the policy requires TLS and the
    /// next hop does not offer it. The recipients are deferred.
    #[error("{peer}: {reason}")]
    Tls {
        /// The server.
        peer: String,
        /// Why.
        reason: String,
        /// An opportunistic handshake failed: a new connection in clear may carry it.
        retry_in_clear: bool,
        /// 4.7.4 (TLS not available) or 4.7.5 (handshake failed).
        status: EnhancedCode,
        /// The failure as TLS reports name it.
        failure: TlsFailure,
    },
    /// AUTH to the next hop failed or could not be sent; the mail is deferred, with the
    /// hop's own reply in the reason.
    #[error("{peer}: {reason}")]
    Auth {
        /// The server.
        peer: String,
        /// Why, with the server's reply when it refused.
        reason: String,
    },
    /// The greeting or EHLO was refused: the whole session failed with this reply.
    #[error("{peer} refused the session at {stage}: {reply}")]
    Refused {
        /// The command that was refused.
        stage: &'static str,
        /// The server.
        peer: String,
        /// Its reply.
        reply: ServerReply,
    },
}

/// Why a session could not have (or trust) TLS, in the terms of TLS reporting (RFC 8460
/// §4.3): what the receiving domain is told about its MX hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TlsFailure {
    /// No STARTTLS offered, or refused.
    StartTlsNotSupported,
    /// The certificate has expired (or is not valid yet).
    CertificateExpired,
    /// The certificate does not name the MX host.
    CertificateHostMismatch,
    /// The chain does not lead to a trusted root.
    CertificateNotTrusted,
    /// No TLSA record matches the certificate (DANE).
    TlsaInvalid,
    /// Any other handshake failure.
    ValidationFailure,
}

/// The rustls error inside a failed handshake's I/O error, if that is what it is.
pub(crate) fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

impl TlsFailure {
    /// The failure behind a failed handshake's error.
    pub fn of_handshake(e: &std::io::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(e) else {
            return TlsFailure::ValidationFailure;
        };
        match cert {
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsFailure::CertificateExpired,
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                TlsFailure::CertificateHostMismatch
            }
            C::UnknownIssuer | C::BadSignature | C::BadEncoding | C::InvalidPurpose => {
                TlsFailure::CertificateNotTrusted
            }
            C::Other(other) if other.0.is::<crate::outbound::dane::verify::NoTlsaMatch>() => {
                TlsFailure::TlsaInvalid
            }
            _ => TlsFailure::ValidationFailure,
        }
    }

    /// The RFC 8460 result type.
    pub fn result_type(self) -> &'static str {
        match self {
            TlsFailure::StartTlsNotSupported => "starttls-not-supported",
            TlsFailure::CertificateExpired => "certificate-expired",
            TlsFailure::CertificateHostMismatch => "certificate-host-mismatch",
            TlsFailure::CertificateNotTrusted => "certificate-not-trusted",
            TlsFailure::TlsaInvalid => "tlsa-invalid",
            TlsFailure::ValidationFailure => "validation-failure",
        }
    }
}

impl ClientError {
    /// Whether the connection failed before the server saw any of the transaction: a
    /// pooled connection the server closed while idle fails at the first reply, that of
    /// the RSET which starts every reused transaction.
    pub fn is_stale_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Io { stage: "RSET", .. } | ClientError::Protocol { stage: "RSET", .. }
        )
    }

    /// Whether the connection is as good as before the failed message: nothing of it
    /// was sent, so the connection can carry the next one.
    pub fn leaves_connection_usable(&self) -> bool {
        matches!(self, ClientError::Unsupported { .. })
    }
}
