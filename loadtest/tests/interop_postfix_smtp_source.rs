//! Postfix's smtp-source as a client of our sink, SMTP and LMTP.

mod common;

use std::time::Duration;

use common::postfix::smtp_source;
use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_one_message_per_session() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    assert!(
        smtp_source(
            &["-s", "5", "-m", "300", "-l", "1024"],
            sink.local_addrs()[0]
        )
        .await
    );
    assert!(sink.wait_received(300, Duration::from_secs(10)).await);
    let summary = sink.shutdown().await;
    assert_eq!(
        (summary.stats.received, summary.stats.connections),
        (300, 300)
    );
    assert_eq!(summary.stats.protocol_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_reusing_sessions_with_recipients() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let args = ["-d", "-s", "5", "-m", "500", "-l", "2048", "-r", "3"];
    assert!(smtp_source(&args, sink.local_addrs()[0]).await);
    let summary = sink.shutdown().await;
    assert_eq!(
        (summary.stats.received, summary.stats.recipients),
        (500, 1_500)
    );
    assert!(summary.stats.connections <= 5, "{:?}", summary.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_speaks_lmtp() {
    let sink = sink::start(SinkConfig {
        lmtp: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    assert!(
        smtp_source(
            &["-L", "-d", "-s", "2", "-m", "100", "-r", "2"],
            sink.local_addrs()[0]
        )
        .await
    );
    let summary = sink.shutdown().await;
    assert_eq!(
        (summary.stats.received, summary.stats.recipients),
        (100, 200)
    );
}
