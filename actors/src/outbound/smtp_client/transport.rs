//! The byte stream under a client connection: plain TCP, or TLS over it after STARTTLS
//! or from the first byte (`smtps:`). One type for both, so the connection's code reads
//! and writes the same way either side of the upgrade; and the handshake that makes the
//! TLS one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

use super::{ClientError, ClientTimeouts, TlsFailure};
use crate::outbound::tls::{HopSecurity, server_name};
use crate::protocol::security::TlsInfo;
use crate::protocol::status::EnhancedCode;

/// A connection's stream.
pub(super) enum Transport {
    /// In clear.
    Plain(TcpStream),
    /// Over TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// The certificates the server presented over TLS, leaf first.
    pub(super) fn peer_certificates(
        &self,
    ) -> Option<Vec<rustls_pki_types::CertificateDer<'static>>> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(tls) => tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect()),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// RFC 3463 4.7.5: cryptographic failure (the handshake failed).
const TLS_FAILED: EnhancedCode = EnhancedCode::new(4, 7, 5);

/// The client side of a TLS handshake with the next hop, bounded by the command
/// timeout. `retry_in_clear` marks a failure the caller may retry without TLS.
pub(super) async fn handshake(
    tcp: TcpStream,
    host: &str,
    peer: &str,
    security: &HopSecurity,
    timeouts: ClientTimeouts,
    retry_in_clear: bool,
) -> Result<(Transport, TlsInfo), ClientError> {
    let failed = |reason: String, failure: TlsFailure| ClientError::Tls {
        peer: peer.to_string(),
        reason,
        retry_in_clear,
        status: TLS_FAILED,
        failure,
    };
    let Some(config) = security.client.clone() else {
        return Err(failed(
            "no TLS client configuration for this next hop".into(),
            TlsFailure::ValidationFailure,
        ));
    };
    let name = server_name(host).ok_or_else(|| {
        failed(
            format!("{host} is not a name TLS can check"),
            TlsFailure::CertificateHostMismatch,
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match timeout(timeouts.command, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => {
            let info = crate::core::tls::negotiated(tls.get_ref().1);
            Ok((Transport::Tls(Box::new(tls)), info))
        }
        Ok(Err(e)) => {
            if !retry_in_clear {
                metrics::counter!("delivery_tls_failures_total", "reason" => "handshake", "then" => "deferred").increment(1);
            }
            Err(failed(
                format!("TLS handshake failed: {}", handshake_error(&e)),
                TlsFailure::of_handshake(&e),
            ))
        }
        Err(_) => Err(failed(
            "TLS handshake timed out".into(),
            TlsFailure::ValidationFailure,
        )),
    }
}

/// How a failed handshake is told: rustls' text, except that a certificate a verifier
/// of hermod's refused (DANE's) is named by that verifier's own words.
fn handshake_error(e: &std::io::Error) -> String {
    match super::error::rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) => {
            format!("invalid peer certificate: {}", other.0)
        }
        _ => e.to_string(),
    }
}
