//! A bounce that cannot be delivered is never dropped: it is reported to the configured
//! postmaster, or stays queued with an error line when there is none.

mod common;

use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

async fn setup(
    dir: &std::path::Path,
    postmaster: &str,
) -> (smtp_blaster::sink::SinkHandle, Hermod) {
    let sink = sink::start(&dir.join("sink")).await;
    let port = sink.local_addrs()[0].port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\npostmaster = \"{postmaster}\"\n[delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
    );
    let h = Hermod::start(dir, &config).await;
    (sink, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_bounce_goes_to_the_postmaster() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, h) = setup(dir.path(), "hostmaster@ops.test").await;
    let mut c = Client::connect(h.addr).await;
    // The sink refuses every permfail@ recipient: the message and then its bounce.
    let id = queue_id(
        &c.send_message(
            "permfail@sender.test",
            &["permfail@dest.test"],
            b"Subject: doomed\r\n\r\nx\r\n",
        )
        .await,
    );
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    let report = &stored[0];
    assert_eq!(report.mail_from, "");
    assert_eq!(report.rcpt_to, ["hostmaster@ops.test"]);
    let text = String::from_utf8_lossy(&report.data);
    assert!(text.contains("To: <hostmaster@ops.test>"), "{text}");
    assert!(
        h.wait_log(
            "undeliverable bounce reported to the postmaster",
            Duration::from_secs(5)
        )
        .await
        .is_some()
    );
    assert!(h.logs().iter().any(|l| l.contains(&id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_bounce_without_a_postmaster_stays_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, h) = setup(dir.path(), "").await;
    let mut c = Client::connect(h.addr).await;
    queue_id(
        &c.send_message(
            "permfail@sender.test",
            &["permfail@dest.test"],
            b"Subject: doomed\r\n\r\nx\r\n",
        )
        .await,
    );
    let line = h
        .wait_log(
            "undeliverable bounce kept in queue",
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        !h.logs()
            .iter()
            .any(|l| l.contains("not bouncing a message from the null sender")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_bounces_with_a_status_that_matches_its_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nmax_attempts = 1\n\
         [delivery.transport]\n\"dest.test\" = \"[127.0.0.1]:{}\"\n\"origin.test\" = \"[127.0.0.1]:{}\"\n",
        common::free_port(),
        sink.local_addrs()[0].port()
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "a@origin.test",
            &["b@dest.test"],
            b"Subject: doomed\r\n\r\nx\r\n",
        )
        .await,
    );
    let bounced = h
        .wait_status(&id, "bounced", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        bounced.contains("5.4.7 too many delivery attempts; last reply: 4.4.1"),
        "{bounced}"
    );
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    let text = String::from_utf8_lossy(&stored[0].data);
    assert!(text.contains("Status: 5.4.7\r\n"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: smtp; 5.4.7 too many delivery attempts"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_bounce_keeps_mail_that_would_bounce_until_it_is_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let config = |soft_bounce: bool| {
        format!(
            "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nsoft_bounce = {soft_bounce}\n\
             [delivery]\nrelayhost = \"[127.0.0.1]:{}\"\n",
            sink.local_addrs()[0].port()
        )
    };
    let h = Hermod::start(dir.path(), &config(true)).await;
    let mut c = Client::connect(h.addr).await;
    // The sink refuses permfail@ recipients with a 5xx.
    let id = queue_id(
        &c.send_message(
            "a@sender.test",
            &["permfail@dest.test"],
            b"Subject: kept\r\n\r\nx\r\n",
        )
        .await,
    );
    let kept = h
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(kept.contains("(kept by queue.soft_bounce)"), "{kept}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sink::stored(&dir.path().join("sink")).is_empty(),
        "nothing bounced"
    );
    assert!(
        h.wait_status(&id, "bounced", Duration::ZERO)
            .await
            .is_none()
    );

    // Turned off: the next retry bounces it to the sender.
    h.rewrite_config(&config(false));
    h.hangup();
    h.wait_log("configuration reloaded", Duration::from_secs(10))
        .await
        .expect("reloaded");
    h.wait_status(&id, "bounced", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpt_to, ["a@sender.test"]);
}
