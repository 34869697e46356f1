//! BODY=8BITMIME and SMTPUTF8 travel with the message: kept in the queue and passed to
//! a next hop that offers them (RFC 6152, RFC 6531). A hop without SMTPUTF8 gets no
//! message that needs it: it bounces with 5.6.7, a plain-ASCII one goes as it is.

mod common;

use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;
use smtp_blaster::sink::SinkConfig;

async fn setup(dir: &Path, without: &[&str]) -> (smtp_blaster::sink::SinkHandle, Hermod) {
    let sink = sink::start_with(SinkConfig {
        store: Some(dir.join("sink")),
        starttls: false,
        without: without.iter().map(|w| w.to_string()).collect(),
        ..SinkConfig::default()
    })
    .await;
    let port = sink.local_addrs()[0].port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
    );
    let h = Hermod::start(dir, &config).await;
    (sink, h)
}

/// Sends one message with the given MAIL FROM parameters; returns its queue id.
async fn send(h: &Hermod, from: &str, params: &str, to: &str, body: &[u8]) -> String {
    let mut c = Client::connect(h.addr).await;
    let mail = c.cmd(&format!("MAIL FROM:<{from}> {params}")).await;
    assert!(mail.starts_with("250"), "{mail}");
    let rcpt = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(body).await;
    queue_id(&c.cmd(".").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bit_and_smtputf8_are_passed_to_a_hop_that_offers_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, h) = setup(dir.path(), &[]).await;
    send(
        &h,
        "jörg@sender.test",
        "BODY=8BITMIME SMTPUTF8",
        "zoë@dest.test",
        "Subject: grüße\r\n\r\nä\r\n".as_bytes(),
    )
    .await;
    send(
        &h,
        "a@sender.test",
        "",
        "b@dest.test",
        b"Subject: plain\r\n\r\nx\r\n",
    )
    .await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 2, "{}", h.logs().join("\n"));
    let utf8 = stored
        .iter()
        .find(|s| s.mail_from == "jörg@sender.test")
        .unwrap();
    assert!(
        utf8.mail_params.contains("BODY=8BITMIME"),
        "{}",
        utf8.mail_params
    );
    assert!(
        utf8.mail_params.contains("SMTPUTF8"),
        "{}",
        utf8.mail_params
    );
    assert_eq!(utf8.rcpt_to, ["zoë@dest.test"]);
    let plain = stored
        .iter()
        .find(|s| s.mail_from == "a@sender.test")
        .unwrap();
    assert!(!plain.mail_params.contains("BODY"), "{}", plain.mail_params);
    assert!(
        !plain.mail_params.contains("SMTPUTF8"),
        "{}",
        plain.mail_params
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtputf8_message_to_a_hop_without_it_bounces_with_5_6_7() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, h) = setup(dir.path(), &["SMTPUTF8"]).await;
    // The bounce goes back through the same hop, to an ASCII sender.
    let id = send(
        &h,
        "sender@origin.test",
        "SMTPUTF8",
        "zoë@dest.test",
        b"Subject: hi\r\n\r\nx\r\n",
    )
    .await;
    let bounced = h
        .wait_status(&id, "bounced", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(bounced.contains("5.6.7"), "{bounced}");
    assert!(bounced.contains("SMTPUTF8"), "{bounced}");
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    assert_eq!(stored[0].mail_from, "");
    assert_eq!(stored[0].rcpt_to, ["sender@origin.test"]);
    let text = String::from_utf8_lossy(&stored[0].data);
    assert!(text.contains("Status: 5.6.7"), "{text}");

    // Declared SMTPUTF8 but all ASCII: nothing needs the extension, so it is delivered.
    send(
        &h,
        "a@sender.test",
        "SMTPUTF8",
        "b@dest.test",
        b"Subject: ascii\r\n\r\nx\r\n",
    )
    .await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 2, "{}", h.logs().join("\n"));
    assert_eq!(stored[1].rcpt_to, ["b@dest.test"]);
    assert!(!stored[1].mail_params.contains("SMTPUTF8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_bit_message_to_a_hop_without_8bitmime_bounces_with_5_6_3() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, h) = setup(dir.path(), &["8BITMIME"]).await;
    let id = send(
        &h,
        "sender@origin.test",
        "BODY=8BITMIME",
        "b@dest.test",
        "Subject: hi\r\n\r\nEin Gruß\r\n".as_bytes(),
    )
    .await;
    let bounced = h
        .wait_status(&id, "bounced", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        bounced.contains("5.6.3") && bounced.contains("8BITMIME"),
        "{bounced}"
    );
    // Declared 8-bit but plain ASCII: delivered without the parameter.
    send(
        &h,
        "a@sender.test",
        "BODY=8BITMIME",
        "c@dest.test",
        b"Subject: ascii\r\n\r\nx\r\n",
    )
    .await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(20)).await;
    let ascii = stored.iter().find(|s| s.rcpt_to == ["c@dest.test"]);
    assert!(ascii.is_some(), "{}", h.logs().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The hop is down: the message waits in the spool across a restart.
    let port = common::free_port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
    );
    let mut h = Hermod::start(dir.path(), &config).await;
    let id = send(
        &h,
        "jörg@sender.test",
        "BODY=8BITMIME SMTPUTF8",
        "zoë@dest.test",
        "Subject: grüße\r\n\r\nä\r\n".as_bytes(),
    )
    .await;
    let deferred = h
        .wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    // A deferral says when the next attempt comes (retry_interval = 1s).
    assert!(deferred.contains("next_attempt_in_s=1 "), "{deferred}");
    assert_eq!(h.stop().await, Some(0));
    let _sink = sink::start_on(&dir.path().join("sink"), port).await;
    h.restart().await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    let params = &stored[0].mail_params;
    assert!(
        params.contains("BODY=8BITMIME") && params.contains("SMTPUTF8"),
        "{params}"
    );
}
