//! A server certificate checked against an MX host's TLSA records (RFC 7672 §3.1,
//! RFC 7671): DANE-EE (`3 x x`) matches the server's own certificate or public key, with
//! no name or expiry check; DANE-TA (`2 x x`) matches a CA certificate the server sent,
//! and the chain from it must be valid for the MX host's name (or the recipient domain).

use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore};
use rustls::{SignatureScheme, pki_types::CertificateDer};
use rustls_pki_types::{ServerName, UnixTime};

use super::Tlsa;
use crate::outbound::tls::{ClientTlsError, builder};

/// Why a certificate was refused under DANE, as the delivery's reply names it.
#[derive(Debug, thiserror::Error)]
#[error("no TLSA record of {host} ({records}) matches the certificate it presented")]
pub struct NoTlsaMatch {
    host: String,
    records: String,
}

/// Checks servers against one MX host's TLSA records.
#[derive(Debug)]
pub struct DaneVerifier {
    records: Arc<[Tlsa]>,
    host: String,
    /// The names a DANE-TA chain may be issued to: the MX host's, then the domain's.
    names: Vec<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

/// The client configuration that takes only a certificate `records` (the TLSA records
/// of the MX host `host`) authenticate; a DANE-TA chain must be issued to one of `names`
/// (the TLSA base domain, the MX host, the recipient domain).
pub fn dane_client_config(
    records: Arc<[Tlsa]>,
    host: &str,
    names: &[&str],
) -> Result<Arc<ClientConfig>, ClientTlsError> {
    let provider = crate::core::tls::provider();
    let mut names: Vec<ServerName<'static>> = names
        .iter()
        .filter_map(|n| ServerName::try_from(n.to_string()).ok())
        .collect();
    names.dedup();
    let verifier = DaneVerifier {
        records,
        host: host.to_owned(),
        names,
        provider,
    };
    let config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The part of `cert` a record selects: its DER, or its SubjectPublicKeyInfo's.
fn selected(cert: &[u8], spki: bool) -> Option<&[u8]> {
    if !spki {
        return Some(cert);
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw)
}

/// Whether `record` matches `cert`.
pub fn matches(record: &Tlsa, cert: &[u8]) -> bool {
    let Some(data) = selected(cert, record.spki) else {
        return false;
    };
    match record.matching {
        0 => data == record.data.as_slice(),
        1 => digest::digest(&digest::SHA256, data).as_ref() == record.data.as_slice(),
        2 => digest::digest(&digest::SHA512, data).as_ref() == record.data.as_slice(),
        _ => false,
    }
}

impl DaneVerifier {
    /// Whether a CA certificate in `intermediates` matches a DANE-TA record and the chain
    /// it anchors is valid for one of the names.
    fn trust_anchor_verifies(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        ocsp: &[u8],
        now: UnixTime,
    ) -> bool {
        for record in self.records.iter().filter(|r| !r.end_entity) {
            for anchor in intermediates.iter().filter(|c| matches(record, c)) {
                let mut roots = RootCertStore::empty();
                if roots.add(anchor.clone().into_owned()).is_err() {
                    continue;
                }
                let Ok(chain) = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build() else {
                    continue;
                };
                if self.names.iter().any(|name| {
                    chain
                        .verify_server_cert(end_entity, intermediates, name, ocsp, now)
                        .is_ok()
                }) {
                    return true;
                }
            }
        }
        false
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let own = self
            .records
            .iter()
            .any(|r| r.end_entity && matches(r, end_entity));
        if own || self.trust_anchor_verifies(end_entity, intermediates, ocsp_response, now) {
            return Ok(ServerCertVerified::assertion());
        }
        let records = self
            .records
            .iter()
            .map(Tlsa::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(NoTlsaMatch {
                host: self.host.clone(),
                records,
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData,
    };

    use super::*;

    struct Made {
        der: CertificateDer<'static>,
        key: KeyPair,
    }

    fn ca() -> (CertificateParams, KeyPair, CertificateDer<'static>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "DANE test CA");
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        (params, key, der)
    }

    fn leaf(
        ca: &(CertificateParams, KeyPair, CertificateDer<'static>),
        name: &str,
        expired: bool,
    ) -> Made {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = if expired {
            (
                now - time::Duration::days(30),
                now - time::Duration::days(1),
            )
        } else {
            (
                now - time::Duration::days(1),
                now + time::Duration::days(30),
            )
        };
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&ca.0, &ca.1);
        let der = params.signed_by(&key, &issuer).unwrap().der().clone();
        Made { der, key }
    }

    fn verifier(records: Vec<Tlsa>) -> DaneVerifier {
        DaneVerifier {
            records: records.into(),
            host: "mx.example.test".into(),
            names: vec![
                ServerName::try_from("mx.example.test").unwrap(),
                ServerName::try_from("example.test").unwrap(),
            ],
            provider: crate::core::tls::provider(),
        }
    }

    fn check(
        v: &DaneVerifier,
        leaf: &Made,
        chain: &[CertificateDer<'static>],
    ) -> Result<(), String> {
        let name = ServerName::try_from("mx.example.test").unwrap();
        v.verify_server_cert(&leaf.der, chain, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                    other.0.to_string()
                }
                e => e.to_string(),
            })
    }

    fn record(end_entity: bool, spki: bool, matching: u8, selected: &[u8]) -> Tlsa {
        let data = match matching {
            0 => selected.to_vec(),
            1 => digest::digest(&digest::SHA256, selected).as_ref().to_vec(),
            _ => digest::digest(&digest::SHA512, selected).as_ref().to_vec(),
        };
        Tlsa {
            end_entity,
            spki,
            matching,
            data,
        }
    }

    #[test]
    fn dane_ee_matches_the_key_or_the_certificate_whatever_its_name_and_age() {
        let ca = ca();
        let old = leaf(&ca, "somewhere.else.test", true);
        // rcgen's public_key_der is the SubjectPublicKeyInfo, as `3 1 x` selects it.
        let by_key = verifier(vec![record(
            true,
            true,
            1,
            &old.key.subject_public_key_info(),
        )]);
        assert_eq!(check(&by_key, &old, &[]), Ok(()));
        let by_cert = verifier(vec![record(true, false, 2, &old.der)]);
        assert_eq!(check(&by_cert, &old, &[]), Ok(()));
        let exact = verifier(vec![record(
            true,
            true,
            0,
            &old.key.subject_public_key_info(),
        )]);
        assert_eq!(check(&exact, &old, &[]), Ok(()));

        let other = leaf(&ca, "mx.example.test", false);
        let refused = check(&by_key, &other, &[]).unwrap_err();
        assert!(
            refused.contains("no TLSA record of mx.example.test (3 1 1) matches"),
            "{refused}"
        );
    }

    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain_and_a_valid_chain_for_the_name() {
        let ca = ca();
        let anchor = vec![record(false, false, 1, &ca.2)];
        let v = verifier(anchor);
        let good = leaf(&ca, "mx.example.test", false);
        assert_eq!(check(&v, &good, std::slice::from_ref(&ca.2)), Ok(()));
        let for_domain = leaf(&ca, "example.test", false);
        assert_eq!(
            check(&v, &for_domain, std::slice::from_ref(&ca.2)),
            Ok(()),
            "the next-hop domain is a reference identifier"
        );

        assert!(
            check(&v, &good, &[]).is_err(),
            "the anchor must be in the chain"
        );
        let wrong_name = leaf(&ca, "mx.elsewhere.test", false);
        assert!(
            check(&v, &wrong_name, std::slice::from_ref(&ca.2)).is_err(),
            "name checked under DANE-TA"
        );
        let expired = leaf(&ca, "mx.example.test", true);
        assert!(
            check(&v, &expired, std::slice::from_ref(&ca.2)).is_err(),
            "expiry checked under DANE-TA"
        );

        let by_key = verifier(vec![record(
            false,
            true,
            1,
            &ca.1.subject_public_key_info(),
        )]);
        assert_eq!(
            check(&by_key, &good, std::slice::from_ref(&ca.2)),
            Ok(()),
            "2 1 1 selects the CA's key"
        );
        let other_ca = self::ca();
        let stranger = leaf(&other_ca, "mx.example.test", false);
        assert!(check(&v, &stranger, std::slice::from_ref(&other_ca.2)).is_err());
    }
}
