//! `store: Some(dir)` keeps each accepted message byte for byte, with its envelope.

mod common;

use common::Raw;
use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test]
async fn sink_stores_messages_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = SinkConfig {
        store: Some(dir.path().to_path_buf()),
        ..SinkConfig::default()
    };
    let sink = sink::start(config).await.unwrap();
    let (mut c, greeting) = Raw::connect(sink.local_addrs()[0]).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(c.cmd("EHLO client.test").await.contains("250-PIPELINING"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.test>").await,
        "250 2.1.0 Sender ok\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<x@example.test>").await,
        "250 2.1.5 Recipient ok\r\n"
    );
    assert!(
        c.cmd("RCPT TO:<permfail@example.test>")
            .await
            .starts_with("550 5.1.1")
    );
    assert_eq!(
        c.cmd("RCPT TO:<y@example.test>").await,
        "250 2.1.5 Recipient ok\r\n"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(b"Subject: hi\r\nMessage-ID: <1@t>\r\n\r\n..dot\r\nline\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.0.0 Ok: queued\r\n");

    let eml = std::fs::read(dir.path().join("1.eml")).unwrap();
    assert_eq!(
        eml,
        b"Subject: hi\r\nMessage-ID: <1@t>\r\n\r\n.dot\r\nline\r\n"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("1.json")).unwrap()).unwrap();
    assert_eq!(json["mail_from"], "a@example.test");
    assert_eq!(
        json["rcpt_to"],
        serde_json::json!(["x@example.test", "y@example.test"])
    );
    assert_eq!(json["helo"], "client.test");
    assert_eq!(json["lmtp"], false);

    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    let summary = sink.shutdown().await;
    assert_eq!((summary.stats.received, summary.stats.recipients), (1, 2));
    assert_eq!(summary.stats.permfail_rcpt, 1);
}
