//! The sender talks TLS to the sink's self-made (rcgen) certificate: STARTTLS on the
//! plain port and implicit TLS on the TLS port; and a certificate given as files,
//! verified against its CA.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig, TlsFiles};
use smtp_blaster::tls::Verify;

fn config(server: std::net::SocketAddr) -> SendConfig {
    SendConfig {
        server,
        connections: 4,
        messages: Some(200),
        per_connection: 10,
        verify: Verify::DangerAcceptAny,
        ..SendConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_starttls_to_sink() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let report = send::run(SendConfig {
        starttls: true,
        ..config(sink.local_addrs()[0])
    })
    .await
    .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!((report.accepted, report.errors), (200, 0), "{report}");
    assert_eq!(summary.stats.tls_handshakes, report.connections);
    assert_eq!(summary.stats.received, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_implicit_tls_to_sink() {
    let listen_tls = vec!["127.0.0.1:0".parse().unwrap()];
    let sink = sink::start(SinkConfig {
        listen_tls,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let report = send::run(SendConfig {
        tls: true,
        ..config(sink.tls_addrs()[0])
    })
    .await
    .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!((report.accepted, report.errors), (200, 0), "{report}");
    assert_eq!(summary.stats.tls_handshakes, report.connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_refuses_unverified_certificate_by_default() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let config = SendConfig {
        starttls: true,
        verify: Verify::Roots,
        ..config(sink.local_addrs()[0])
    };
    let report = send::run(SendConfig {
        messages: Some(3),
        ..config
    })
    .await
    .unwrap();
    sink.shutdown().await;
    assert_eq!(
        report.errors_by_kind.get("tls_handshake"),
        Some(&3),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_serves_a_given_certificate_that_send_verifies_with_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let (cert, key, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let sink = sink::start(SinkConfig {
        tls: Some(TlsFiles { cert, key }),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let report = send::run(SendConfig {
        starttls: true,
        verify: Verify::CaFile(ca_file),
        ..config(sink.local_addrs()[0])
    })
    .await
    .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!((report.accepted, report.errors), (200, 0), "{report}");
    assert_eq!(summary.stats.tls_handshakes, report.connections);
}
