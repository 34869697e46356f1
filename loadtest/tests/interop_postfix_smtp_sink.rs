//! smtp-blaster's sender against Postfix's smtp-sink as the server.

mod common;

use common::postfix::PostfixSink;
use smtp_blaster::send::{self, SendConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_postfix_smtp_sink() {
    let sink = PostfixSink::start(&[]);
    let config = SendConfig {
        server: sink.addr,
        connections: 5,
        messages: Some(500),
        per_connection: 20,
        recipients: 2,
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    assert_eq!((report.accepted, report.errors), (500, 0), "{report}");
    assert_eq!(report.recipients_accepted, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_one_message_per_connection_to_postfix_smtp_sink() {
    let sink = PostfixSink::start(&[]);
    let config = SendConfig {
        server: sink.addr,
        connections: 5,
        messages: Some(200),
        per_connection: 1,
        pipelining: false,
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    assert_eq!(
        (report.accepted, report.connections),
        (200, 200),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_lmtp_to_postfix_smtp_sink() {
    let sink = PostfixSink::start(&["-L"]);
    let config = SendConfig {
        server: sink.addr,
        lmtp: true,
        connections: 2,
        messages: Some(100),
        recipients: 3,
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    assert_eq!((report.accepted, report.errors), (100, 0), "{report}");
}
