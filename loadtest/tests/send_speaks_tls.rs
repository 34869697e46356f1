//! The sender talks TLS to the sink's self-made (rcgen) certificate: STARTTLS on the
//! plain port and implicit TLS on the TLS port.

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig};
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
