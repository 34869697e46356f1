//! rustls configurations for both sides.
//!
//! The sink needs a certificate with no setup, so it makes a self-signed one with rcgen
//! unless given files; the sender must be able to talk to such a server, so it can accept
//! any certificate when told to (`--insecure`) or trust a given CA file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

/// A certificate chain and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One crypto backend for the whole crate, so a process that links ring too still works.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// A server configuration from files, or from a fresh self-signed certificate for
/// `localhost` and `hostname` when `files` is `None`.
pub fn server_config(files: Option<&TlsFiles>, hostname: &str) -> Result<Arc<ServerConfig>> {
    let (chain, key) = match files {
        Some(files) => read_files(files)?,
        None => self_signed(hostname)?,
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("certificate and key do not match")?;
    Ok(Arc::new(config))
}

/// Reads a PEM chain and key.
fn read_files(files: &TlsFiles) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    Ok((chain, key))
}

/// A self-signed certificate made on the spot.
fn self_signed(hostname: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut names = vec!["localhost".to_string()];
    if hostname != "localhost" && !hostname.is_empty() {
        names.push(hostname.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((vec![certified.cert.der().clone()], key.into()))
}

/// How the sender checks the server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verify {
    /// Trust the CAs in this PEM file.
    CaFile(PathBuf),
    /// Trust nothing: every certificate fails (there is no system store in this build).
    #[default]
    Roots,
    /// Accept any certificate, self-signed ones included: for test servers only.
    DangerAcceptAny,
}

/// A client configuration that verifies as asked.
pub fn client_config(verify: &Verify) -> Result<Arc<ClientConfig>> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match verify {
        Verify::DangerAcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(
                provider().signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        Verify::CaFile(path) => builder
            .with_root_certificates(roots(Some(path))?)
            .with_no_client_auth(),
        Verify::Roots => builder
            .with_root_certificates(roots(None)?)
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A root store holding the certificates of `path`, or empty.
fn roots(path: Option<&Path>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if let Some(path) = path {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading {}", path.display()))?
        {
            store.add(cert.with_context(|| format!("parsing {}", path.display()))?)?;
        }
    }
    Ok(store)
}

/// The name to send in SNI and check the certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).with_context(|| format!("bad TLS server name {host}"))
}

/// Accepts any certificate but still checks handshake signatures, so the TLS session
/// itself is sound; only the server's identity goes unchecked.
#[derive(Debug)]
struct AcceptAny(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAny {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_server_config_builds() {
        assert!(server_config(None, "sink.test").is_ok());
    }

    #[test]
    fn client_configs_build() {
        assert!(client_config(&Verify::DangerAcceptAny).is_ok());
        assert!(client_config(&Verify::Roots).is_ok());
    }
}
