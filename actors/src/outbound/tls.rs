//! TLS and AUTH towards the next hop: the policy each hop gets (`none`, `opportunistic`,
//! `required`, `verify`), the rustls client configurations behind them (one that takes
//! any certificate, as opportunistic SMTP does, and one that checks the chain and name),
//! and the credentials a smarthost wants.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};

use crate::core::tls::{PemFileError, read_certificates};
use crate::outbound::routing::NextHop;
use crate::protocol::sasl::Credentials;

/// How a next hop's connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate; a failed handshake is retried in clear on
    /// a new connection (RFC 7435). The default.
    #[default]
    Opportunistic,
    /// TLS or no delivery, any certificate.
    Required,
    /// TLS or no delivery; the chain must lead to a trusted root and the name match.
    Verify,
}

impl TlsMode {
    /// The mode's name in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verify => "verify",
        }
    }

    /// Whether the mode insists on TLS.
    pub fn requires_tls(self) -> bool {
        matches!(self, TlsMode::Required | TlsMode::Verify)
    }
}

/// Why the client configurations towards next hops cannot be made: almost always the
/// roots `verify` trusts (`delivery.tls_ca_file`), named with the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The crypto provider refused TLS 1.2 and 1.3.
    #[error("TLS versions: {0}")]
    Versions(rustls::Error),
    /// The CA file cannot be read, or is not PEM.
    #[error(transparent)]
    Pem(#[from] PemFileError),
    /// A certificate in the CA file cannot be a root.
    #[error("{}: not a CA certificate: {error}", path.display())]
    NotCa {
        /// The CA file.
        path: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// The CA file holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
}

/// What one connection to a next hop does about TLS and AUTH.
#[derive(Clone, Default)]
pub struct HopSecurity {
    /// STARTTLS policy (for `smtps:` targets: whether the certificate is verified).
    pub mode: TlsMode,
    /// The client configuration for `mode` (`None` with [`TlsMode::None`]).
    pub client: Option<Arc<ClientConfig>>,
    /// AUTH credentials for the hop.
    pub credentials: Option<Credentials>,
    /// AUTH may be sent without TLS (an operator's explicit choice).
    pub auth_in_clear: bool,
    /// The TLSA records `client` checks the certificate against (DANE), whose
    /// connections are DANE-verified rather than verified for a name.
    pub dane: Option<Arc<[crate::outbound::dane::Tlsa]>>,
}

impl HopSecurity {
    /// The same hop without TLS, for the retry in clear after a failed opportunistic
    /// handshake.
    pub fn without_tls(&self) -> HopSecurity {
        HopSecurity {
            mode: TlsMode::None,
            client: None,
            ..self.clone()
        }
    }
}

/// The outbound TLS and AUTH settings of every next hop, from `[delivery]`.
#[derive(Clone)]
pub struct OutboundSecurity {
    default: TlsMode,
    per_hop: HashMap<NextHop, TlsMode>,
    credentials: HashMap<NextHop, Credentials>,
    auth_in_clear: bool,
    any_certificate: Arc<ClientConfig>,
    verified: Arc<ClientConfig>,
    /// The check `verified` makes, for certificates taken without it (an MTA-STS policy
    /// in testing mode reports what enforce would have refused).
    checker: Arc<WebPkiServerVerifier>,
}

impl OutboundSecurity {
    /// Settings with `default` for hops that `per_hop` does not name; `ca_file` holds
    /// the roots `verify` trusts (none: the system's, else the Mozilla roots built in).
    pub fn new(
        default: TlsMode,
        per_hop: HashMap<NextHop, TlsMode>,
        credentials: HashMap<NextHop, Credentials>,
        auth_in_clear: bool,
        ca_file: Option<&Path>,
    ) -> Result<Self, ClientTlsError> {
        let roots = Arc::new(roots(ca_file)?);
        let verified = builder()?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(OutboundSecurity {
            default,
            per_hop,
            credentials,
            auth_in_clear,
            any_certificate: any_certificate_config()?,
            verified: Arc::new(verified),
            checker: WebPkiServerVerifier::builder_with_provider(
                roots,
                crate::core::tls::provider(),
            )
            .build()
            .map_err(|e| ClientTlsError::Versions(rustls::Error::General(e.to_string())))?,
        })
    }

    /// What connections to `hop` do.
    pub fn for_hop(&self, hop: &NextHop) -> HopSecurity {
        let mode = self.per_hop.get(hop).copied().unwrap_or(self.default);
        self.with_mode(hop, mode)
    }

    /// Connections to `hop` under `mode` whatever the hop's own (the shaping file's
    /// `tls` for a site or domain); its credentials as configured.
    pub fn with_mode(&self, hop: &NextHop, mode: TlsMode) -> HopSecurity {
        let client = match mode {
            TlsMode::None if !matches!(hop, NextHop::Smtps { .. }) => None,
            TlsMode::Verify => Some(self.verified.clone()),
            _ => Some(self.any_certificate.clone()),
        };
        HopSecurity {
            mode,
            client,
            credentials: self.credentials.get(hop).cloned(),
            auth_in_clear: self.auth_in_clear,
            dane: None,
        }
    }
}

impl OutboundSecurity {
    /// Connections to `hop` with the certificate verified whatever the hop's own mode
    /// (an MTA-STS policy in enforce demands it); its credentials as configured.
    pub fn verified_for(&self, hop: &NextHop) -> HopSecurity {
        self.with_mode(hop, TlsMode::Verify)
    }

    /// Connections to `hop` that must use TLS but take any certificate (a DANE host
    /// whose TLSA records are all unusable, RFC 7672 §2.2); its credentials as configured.
    pub fn required_for(&self, hop: &NextHop) -> HopSecurity {
        self.with_mode(hop, TlsMode::Required)
    }

    /// Whether `certificates` (leaf first) verify for `host` as `verify` would check them:
    /// `Err` names the failure as TLS reports do.
    pub fn check_certificate(
        &self,
        host: &str,
        certificates: &[CertificateDer<'static>],
    ) -> Result<(), crate::outbound::smtp_client::TlsFailure> {
        use crate::outbound::smtp_client::TlsFailure;
        let (Some(leaf), Some(name)) = (certificates.first(), server_name(host)) else {
            return Err(TlsFailure::ValidationFailure);
        };
        match self
            .checker
            .verify_server_cert(leaf, &certificates[1..], &name, &[], UnixTime::now())
        {
            Ok(_) => Ok(()),
            Err(e) => Err(TlsFailure::of_handshake(&std::io::Error::other(e))),
        }
    }

    /// The client configuration that takes any certificate (opportunistic TLS's), for a
    /// TLS report's POST to a destination whose certificate does not verify.
    pub fn any_certificate_config(&self) -> Arc<ClientConfig> {
        self.any_certificate.clone()
    }

    /// The client configuration `verify` uses (its roots), for the MTA-STS policy fetch.
    pub fn verified_config(&self) -> Arc<ClientConfig> {
        self.verified.clone()
    }
}

impl std::fmt::Debug for OutboundSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundSecurity")
            .field("default", &self.default)
            .field("per_hop", &self.per_hop)
            .field(
                "credentials_for",
                &self.credentials.keys().collect::<Vec<_>>(),
            )
            .field("auth_in_clear", &self.auth_in_clear)
            .finish()
    }
}

impl Default for OutboundSecurity {
    /// Opportunistic TLS everywhere, no credentials.
    fn default() -> Self {
        OutboundSecurity::new(
            TlsMode::Opportunistic,
            HashMap::new(),
            HashMap::new(),
            false,
            None,
        )
        .expect("the built-in roots load")
    }
}

/// A client configuration builder with hermod's crypto provider, TLS 1.3 and 1.2: every
/// outbound configuration (DANE's too) starts here.
pub(crate) fn builder()
-> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, ClientTlsError> {
    ClientConfig::builder_with_provider(crate::core::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ClientTlsError::Versions)
}

fn any_certificate_config() -> Result<Arc<ClientConfig>, ClientTlsError> {
    let algorithms = crate::core::tls::provider().signature_verification_algorithms;
    let config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algorithms)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn verified_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ClientTlsError> {
    let config = builder()?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The roots `verify` trusts: `ca_file`'s, or the system's (Mozilla's when it has none).
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, ClientTlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let path_buf = || path.to_path_buf();
            for cert in read_certificates(path)? {
                roots.add(cert).map_err(|error| ClientTlsError::NotCa {
                    path: path_buf(),
                    error,
                })?;
            }
            if roots.is_empty() {
                return Err(ClientTlsError::NoCertificate(path_buf()));
            }
        }
        None => {
            // The system's store, as every other program on the machine trusts it (an
            // operator's private CA added there included); Mozilla's roots built in when
            // the system has none.
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    Ok(roots)
}

/// A client configuration that verifies servers against `ca_file`'s certificates, or the
/// system's roots (Mozilla's when it has none): what `verify` delivery uses, and HTTPS
/// clients such as the events' webhook.
pub fn verified_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ClientTlsError> {
    verified_config(ca_file)
}

/// The name a next hop's certificate is checked against (and sent as SNI).
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    ServerName::try_from(host.to_string()).ok()
}

/// Opportunistic TLS: any certificate is taken (RFC 7435: encryption against passive
/// eavesdroppers without authentication), but handshake signatures are still checked,
/// so the session itself is sound.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Help texts of the metrics recorded for outbound TLS and AUTH.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "delivery_tls_connections_total",
        "Connections to next hops, by TLS state (tls, plaintext)."
    );
    metrics::describe_counter!(
        "delivery_tls_failures_total",
        "TLS failures towards next hops, by reason (handshake, not_offered, certificate) and what followed (plaintext_retry, deferred)."
    );
    metrics::describe_counter!(
        "delivery_auth_failures_total",
        "AUTH refused by a next hop (its 535 or other reply), or not sent because TLS was missing."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_without_a_ca_file_trusts_roots_and_a_bad_ca_file_is_named() {
        assert!(verified_config(None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = verified_config(Some(&empty)).unwrap_err();
        assert!(matches!(err, ClientTlsError::NoCertificate(_)), "{err}");
        assert!(err.to_string().ends_with("empty.pem holds no certificate"));
        let security = OutboundSecurity::default();
        let hop = NextHop::Smtp {
            host: "mx.test".into(),
            port: 25,
            mx: false,
        };
        let for_hop = security.for_hop(&hop);
        assert_eq!(for_hop.mode, TlsMode::Opportunistic);
        assert!(for_hop.client.is_some() && for_hop.credentials.is_none());
        assert!(for_hop.without_tls().client.is_none());
    }
}
