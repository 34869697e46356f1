//! STARTTLS with the sink's self-made rcgen certificate.

mod common;

use std::sync::Arc;

use common::Raw;
use smtp_blaster::sink::{self, SinkConfig};
use smtp_blaster::tls::{self, Verify};
use tokio::io::BufReader;
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn sink_starttls_upgrades() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let (mut c, _) = Raw::connect(sink.local_addrs()[0]).await;
    assert!(c.cmd("EHLO c").await.contains("250-STARTTLS"));
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 Ready to start TLS\r\n");

    let config = tls::client_config(&Verify::DangerAcceptAny).unwrap();
    let tcp = c.stream.into_inner();
    let stream = TlsConnector::from(Arc::clone(&config))
        .connect(tls::server_name("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut c = Raw {
        stream: BufReader::new(stream),
    };
    let ehlo = c.cmd("EHLO c").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("MAIL FROM:<a@b>").await, "250 2.1.0 Sender ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<c@d>").await, "250 2.1.5 Recipient ok\r\n");
    assert!(c.cmd("DATA").await.starts_with("354"));
    assert_eq!(c.cmd("x\r\n.").await, "250 2.0.0 Ok: queued\r\n");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");

    let summary = sink.shutdown().await;
    assert_eq!(
        (summary.stats.received, summary.stats.tls_handshakes),
        (1, 1)
    );
}
