//! The spine end to end: a client submits over real TCP, hermod queues on disk, resolves
//! MX through a real DNS server in the test, and delivers to smtp-blaster's sink.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::sink;

const WAIT: Duration = Duration::from_secs(20);

fn zones() -> Vec<TestZone> {
    let mut zones: Vec<TestZone> = ["a.test", "b.test", "c.test", "sender.test"]
        .iter()
        .map(|d| TestZone::new(d).mx("@", 10, "mx.dest.test"))
        .collect();
    zones.push(TestZone::new("dest.test").a("mx.dest.test", Ipv4Addr::LOCALHOST));
    zones.push(TestZone::new("nullmx.test").null_mx("@"));
    zones
}

fn config(dns: SocketAddr, mx_port: u16) -> String {
    format!(
        r#"
[smtp]
hostname = "mx.hermod.test"
[queue]
retry_interval = "1s"
max_retry_interval = "2s"
scan_interval = "100ms"
[delivery]
dns_servers = ["{dns}"]
mx_port = {mx_port}
connect_timeout = "2s"
command_timeout = "10s"
dead_host_failures = 1000
"#
    )
}

async fn setup(dir: &Path) -> (TestDns, smtp_blaster::sink::SinkHandle, Hermod) {
    setup_with(dir, "").await
}

/// `delivery_extra` is appended to the `[delivery]` section.
async fn setup_with(
    dir: &Path,
    delivery_extra: &str,
) -> (TestDns, smtp_blaster::sink::SinkHandle, Hermod) {
    let dns = TestDns::start(zones()).await;
    let sink = sink::start(&dir.join("sink")).await;
    let port = sink.local_addrs()[0].port();
    let hermod = Hermod::start(
        dir,
        &format!("{}{delivery_extra}\n", config(dns.addr, port)),
    )
    .await;
    (dns, sink, hermod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_byte_for_byte_with_dots_and_8bit_over_bdat() {
    byte_for_byte("chunking = true").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_byte_for_byte_with_dots_and_8bit_over_data() {
    byte_for_byte("chunking = false").await;
}

async fn byte_for_byte(delivery_extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, hermod) = setup_with(dir.path(), delivery_extra).await;
    let original: &[u8] = b"From: a@sender.test\r\nTo: u@a.test\r\nSubject: caf\xc3\xa9\r\n\r\n.leading dot\r\n..two dots\r\n.\xe9t\xe9 latin-1\r\nend\r\n";
    let mut stuffed = Vec::new();
    for line in original.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    let mut client = Client::connect(hermod.addr).await;
    let reply = client
        .send_message("a@sender.test", &["u@a.test"], &stuffed)
        .await;
    let id = queue_id(&reply);
    let got = sink::wait_stored(&dir.path().join("sink"), 1, WAIT).await;
    assert_eq!(got.len(), 1, "log:\n{}", hermod.logs().join("\n"));
    let data = &got[0].data;
    let received_end = data
        .windows(4)
        .position(|w| w == b"\r\nFr")
        .expect("original headers follow Received")
        + 2;
    let received = String::from_utf8_lossy(&data[..received_end]);
    assert!(received.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby mx.hermod.test (hermod) with ESMTP id "), "{received}");
    assert!(received.contains(&format!("id {id}")), "{received}");
    assert_eq!(&data[received_end..], original);
    assert_eq!(got[0].mail_from, "a@sender.test");
    assert_eq!(got[0].rcpt_to, vec!["u@a.test"]);
    assert!(hermod.wait_status(&id, "sent", WAIT).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_one_message_per_destination_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, hermod) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    let reply = client
        .send_message(
            "a@sender.test",
            &["u1@a.test", "u2@b.test", "u3@b.test", "u4@c.test"],
            b"Subject: split\r\n\r\nhi\r\n",
        )
        .await;
    queue_id(&reply);
    let got = sink::wait_stored(&dir.path().join("sink"), 3, WAIT).await;
    let mut envelopes: Vec<Vec<String>> = got.iter().map(|m| m.rcpt_to.clone()).collect();
    envelopes.sort();
    assert_eq!(
        envelopes,
        vec![
            vec!["u1@a.test".to_string()],
            vec!["u2@b.test".into(), "u3@b.test".into()],
            vec!["u4@c.test".into()]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_client_gets_replies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, hermod) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    client
        .send(
            b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<p1@a.test>\r\nRCPT TO:<p2@a.test>\r\nDATA\r\n",
        )
        .await;
    assert_eq!(client.reply().await, "250 2.1.0 Sender ok");
    assert_eq!(client.reply().await, "250 2.1.5 Recipient ok");
    assert_eq!(client.reply().await, "250 2.1.5 Recipient ok");
    assert!(client.reply().await.starts_with("354 "));
    client.send(b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@sender.test>\r\nRCPT TO:<p3@b.test>\r\nDATA\r\n").await;
    queue_id(&client.reply().await);
    assert_eq!(client.reply().await, "250 2.1.0 Sender ok");
    assert_eq!(client.reply().await, "250 2.1.5 Recipient ok");
    assert!(client.reply().await.starts_with("354 "));
    client
        .send(b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    queue_id(&client.reply().await);
    assert_eq!(client.reply().await, "221 2.0.0 Bye");
    let got = sink::wait_stored(&dir.path().join("sink"), 2, WAIT).await;
    assert_eq!(got.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempfail_is_retried_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(zones()).await;
    let port = common::free_port();
    let hermod = Hermod::start(dir.path(), &config(dns.addr, port)).await;
    let mut client = Client::connect(hermod.addr).await;
    let id = queue_id(
        &client
            .send_message(
                "a@sender.test",
                &["later@a.test"],
                b"Subject: retry\r\n\r\nx\r\n",
            )
            .await,
    );
    let deferred = hermod.wait_status(&id, "deferred", WAIT).await;
    assert!(
        deferred.expect("a deferral first").contains("4.4.1"),
        "the reason names the connection failure"
    );
    let _sink = sink::start_on(&dir.path().join("sink"), port).await;
    let got = sink::wait_stored(&dir.path().join("sink"), 1, WAIT).await;
    assert_eq!(got.len(), 1, "log:\n{}", hermod.logs().join("\n"));
    assert!(hermod.wait_status(&id, "sent", WAIT).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_bounces_to_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, hermod) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    let id = queue_id(
        &client
            .send_message(
                "alice@sender.test",
                &["permfail@a.test"],
                b"Subject: doomed\r\n\r\nx\r\n",
            )
            .await,
    );
    let got = sink::wait_stored(&dir.path().join("sink"), 1, WAIT).await;
    assert_eq!(got.len(), 1, "log:\n{}", hermod.logs().join("\n"));
    let bounce = &got[0];
    assert_eq!(bounce.mail_from, "", "bounces come from the null sender");
    assert_eq!(bounce.rcpt_to, vec!["alice@sender.test"]);
    let text = String::from_utf8_lossy(&bounce.data);
    assert!(text.contains("report-type=delivery-status"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; permfail@a.test"),
        "{text}"
    );
    assert!(text.contains("Diagnostic-Code: smtp; 550"), "{text}");
    assert!(text.contains("Subject: doomed"), "{text}");
    assert!(text.contains(&id), "{text}");
    assert!(hermod.wait_status(&id, "bounced", WAIT).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_bounces_without_trying() {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, hermod) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    queue_id(
        &client
            .send_message(
                "alice@sender.test",
                &["bob@nullmx.test"],
                b"Subject: nowhere\r\n\r\nx\r\n",
            )
            .await,
    );
    let got = sink::wait_stored(&dir.path().join("sink"), 1, WAIT).await;
    assert_eq!(got.len(), 1, "log:\n{}", hermod.logs().join("\n"));
    let text = String::from_utf8_lossy(&got[0].data);
    assert_eq!(got[0].rcpt_to, vec!["alice@sender.test"]);
    assert!(text.contains("Status: 5.1.10"), "{text}");
    assert!(text.contains("null MX"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_survives_a_crash_after_250() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(zones()).await;
    let port = common::free_port();
    let mut hermod = Hermod::start(dir.path(), &config(dns.addr, port)).await;
    let mut client = Client::connect(hermod.addr).await;
    let id = queue_id(
        &client
            .send_message(
                "a@sender.test",
                &["durable@a.test"],
                b"Subject: durable\r\n\r\nkeep me\r\n",
            )
            .await,
    );
    hermod.kill().await;
    let _sink = sink::start_on(&dir.path().join("sink"), port).await;
    hermod.restart().await;
    let got = sink::wait_stored(&dir.path().join("sink"), 1, WAIT).await;
    assert_eq!(got.len(), 1, "log:\n{}", hermod.logs().join("\n"));
    assert!(String::from_utf8_lossy(&got[0].data).contains(&format!("id {id}")));
    assert!(
        hermod
            .wait_log("recovered messages from the spool", WAIT)
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_dns, _sink, mut hermod) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    queue_id(
        &client
            .send_message("a@sender.test", &["u@a.test"], b"Subject: x\r\n\r\nx\r\n")
            .await,
    );
    assert_eq!(hermod.stop().await, Some(0));
    assert!(
        client.reply().await.starts_with("421 4.3.2"),
        "idle sessions are told the server is going away"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_delivery_actor_retires_and_comes_back_for_new_mail() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(zones()).await;
    let _sink = sink::start(&dir.path().join("sink")).await;
    let port = _sink.local_addrs()[0].port();
    let config_path = dir.path().join("hermod.toml");
    let config = format!(
        "{}idle_timeout = \"200ms\"\nretire_idle_after = \"1s\"\n",
        config(dns.addr, port)
    );
    std::fs::write(&config_path, config).unwrap();
    let log_filter = "info,hermod::wiring=debug,hermod_actors::outbound::delivery=debug";
    let hermod = Hermod::start_with(
        config_path,
        dir.path().join("data"),
        &[("RUST_LOG", log_filter)],
    )
    .await;
    let count = |needle: &str| hermod.logs().iter().filter(|l| l.contains(needle)).count();
    for round in 1..=2 {
        let mut client = Client::connect(hermod.addr).await;
        let reply = client
            .send_message("a@sender.test", &["u@a.test"], b"Subject: r\r\n\r\nhi\r\n")
            .await;
        let id = queue_id(&reply);
        assert!(
            hermod.wait_status(&id, "sent", WAIT).await.is_some(),
            "round {round}: log:\n{}",
            hermod.logs().join("\n")
        );
        // Nothing more for the hop: after `retire_idle_after` its actor stops.
        let deadline = std::time::Instant::now() + WAIT;
        while count("delivery actor retired") < round && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count("delivery actor retired"), round, "round {round}");
    }
    // The second message found no actor and started a new one.
    assert_eq!(count("starting delivery actor"), 2);
}
