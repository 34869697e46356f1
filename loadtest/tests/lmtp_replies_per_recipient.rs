//! LMTP: the sink answers each recipient after the message, and the sender reads one
//! reply per accepted recipient.

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, FailAt, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_replies_per_recipient() {
    let config = SinkConfig {
        lmtp: true,
        fail_at: FailAt::Data,
        permfail: 0.3,
        seed: Some(3),
        ..SinkConfig::default()
    };
    let sink = sink::start(config).await.unwrap();
    let send = SendConfig {
        server: sink.local_addrs()[0],
        lmtp: true,
        connections: 4,
        messages: Some(500),
        recipients: 3,
        ..SendConfig::default()
    };
    let report = send::run(send).await.unwrap();
    let summary = sink.shutdown().await;
    let s = &summary.stats;

    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.sent, 500);
    // One reply per recipient after the message: each 250 or 550.
    assert_eq!(s.recipients + s.permfail_data, 1_500);
    assert_eq!(
        report.reply_codes.get("550").copied().unwrap_or(0),
        s.permfail_data
    );
    assert!(
        s.permfail_data > 300 && s.permfail_data < 600,
        "{}",
        s.permfail_data
    );
    // A message is accepted when any recipient was; all three fail with odds 0.3³.
    assert_eq!(report.accepted, s.received);
    assert_eq!(report.accepted + report.perm_failed, 500);
}

#[tokio::test]
async fn lmtp_sink_refuses_ehlo() {
    let sink = sink::start(SinkConfig {
        lmtp: true,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let send = SendConfig {
        server: sink.local_addrs()[0],
        connections: 1,
        messages: Some(2),
        ..SendConfig::default()
    };
    let report = send::run(send).await.unwrap();
    sink.shutdown().await;
    assert_eq!(
        report.errors_by_kind.get("hello_rejected"),
        Some(&2),
        "{report}"
    );
}
