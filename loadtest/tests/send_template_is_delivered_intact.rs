//! `--eml` sends a real message: the sink stores it with our two headers added and
//! its own Message-ID replaced, body byte for byte (dots included).

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test]
async fn send_template_is_delivered_intact() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(SinkConfig {
        store: Some(dir.path().to_path_buf()),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let eml = b"From: a@example.test\nMessage-ID: <orig@x>\nSubject: report\n\nline one\n.starts with a dot\n".to_vec();
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 1,
        messages: Some(2),
        template: Some(eml),
        headers: vec![("X-Campaign".into(), "spring".into())],
        chunking: true,
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    sink.shutdown().await;
    assert_eq!(report.accepted, 2, "{report}");
    for seq in 1..=2 {
        let stored = std::fs::read_to_string(dir.path().join(format!("{seq}.eml"))).unwrap();
        assert!(
            stored.starts_with("Message-ID: <0000000000000000000"),
            "{stored}"
        );
        assert!(stored.contains("\r\nX-Blaster-Sent: "), "{stored}");
        assert!(stored.contains("\r\nX-Campaign: spring\r\n"), "{stored}");
        assert!(!stored.contains("<orig@x>"), "{stored}");
        assert!(
            stored.ends_with("Subject: report\r\n\r\nline one\r\n.starts with a dot\r\n"),
            "{stored}"
        );
    }
}
