//! Routing without DNS: the transport map (SMTP and LMTP targets) and the relay host, and
//! what a Delivery actor does with its next hop (connection reuse, rate limit, back-off).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;
use smtp_blaster::sink::{FailAt, SinkConfig, SinkHandle};

const WAIT: Duration = Duration::from_secs(20);

fn config(delivery: &str) -> String {
    format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1s\"\nmax_retry_interval = \"1s\"\nscan_interval = \"100ms\"\n[delivery]\nconnect_timeout = \"2s\"\n{delivery}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_transport_gets_one_reply_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sink");
    let lmtp = sink::start_with(SinkConfig {
        lmtp: true,
        fail_at: FailAt::Data,
        store: Some(store.clone()),
        starttls: false,
        ..Default::default()
    })
    .await;
    let port = lmtp.local_addrs()[0].port();
    let h = Hermod::start(
        dir.path(),
        &config(&format!(
            "[delivery.transport]\n\"lmtp.test\" = \"lmtp:[127.0.0.1]:{port}\"\n"
        )),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "",
            &["ok@lmtp.test", "permfail@lmtp.test", "also@lmtp.test"],
            b"Subject: lmtp\r\n\r\nx\r\n",
        )
        .await,
    );
    let got = sink::wait_stored(&store, 1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, vec!["ok@lmtp.test", "also@lmtp.test"]);
    for (rcpt, status) in [
        ("ok@lmtp.test", "sent"),
        ("also@lmtp.test", "sent"),
        ("permfail@lmtp.test", "bounced"),
    ] {
        let line = h
            .wait_log_matching(
                |l| {
                    l.contains(&id)
                        && l.contains(&format!("to={rcpt}"))
                        && l.contains("delivery attempt")
                },
                WAIT,
            )
            .await;
        let line =
            line.unwrap_or_else(|| panic!("no delivery line for {rcpt}:\n{}", h.logs().join("\n")));
        assert!(line.contains(&format!("status=\"{status}\"")), "{line}");
    }
    assert_eq!(
        lmtp.stats().permfail_data,
        1,
        "the failure came after DATA, per recipient"
    );
}

/// A sink as the smarthost, and hermod relaying everything to it with `delivery_extra`.
async fn via_smarthost(dir: &Path, delivery_extra: &str) -> (SinkHandle, PathBuf, Hermod) {
    let store = dir.join("sink");
    let smarthost = sink::start(&store).await;
    let port = smarthost.local_addrs()[0].port();
    let relay = format!("relayhost = \"[127.0.0.1]:{port}\"\n{delivery_extra}");
    let hermod = Hermod::start(dir, &config(&relay)).await;
    (smarthost, store, hermod)
}

/// Submits `n` messages over one connection, each to a recipient in its own domain.
async fn submit(hermod: &Hermod, n: usize) {
    let mut c = Client::connect(hermod.addr).await;
    for i in 0..n {
        let rcpt = format!("u{i}@domain{i}.test");
        queue_id(
            &c.send_message("a@b.test", &[&rcpt], b"Subject: x\r\n\r\nx\r\n")
                .await,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayhost_takes_every_domain_and_reuses_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (smarthost, store, h) =
        via_smarthost(dir.path(), "max_connections_per_destination = 1").await;
    submit(&h, 5).await;
    let got = sink::wait_stored(&store, 5, WAIT).await;
    assert_eq!(got.len(), 5);
    assert_eq!(
        smarthost.stats().connections,
        1,
        "one connection, reused with RSET between messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_destination_paces_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let (_smarthost, store, h) = via_smarthost(dir.path(), "rate_per_destination = 2").await;
    let started = Instant::now();
    submit(&h, 6).await;
    let got = sink::wait_stored(&store, 6, WAIT).await;
    assert_eq!(got.len(), 6);
    // 2 per second with a burst of 2: the sixth message cannot arrive before 2 seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "6 messages at 2/s took only {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_next_hop_is_backed_off_not_hammered() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Hermod::start(
        dir.path(),
        &config(&format!("relayhost = \"[127.0.0.1]:{closed}\"\ndead_host_failures = 2\ndead_host_backoff = \"1h\"")),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    for i in 0..4 {
        queue_id(
            &c.send_message(
                "a@b.test",
                &[&format!("u{i}@x.test")],
                b"Subject: x\r\n\r\nx\r\n",
            )
            .await,
        );
        if i == 1 {
            // Two refused connections mark the hop down; the other two messages come
            // after that (sent right behind, the third could be tried before the
            // second failure has marked the hop down).
            assert!(
                h.wait_log("next hop is down; backing off", WAIT)
                    .await
                    .is_some(),
                "{}",
                h.logs().join("\n")
            );
        }
    }
    assert!(
        h.wait_log("next hop is down; holding its mail", WAIT)
            .await
            .is_some(),
        "the Queue holds the hop's mail:\n{}",
        h.logs().join("\n")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts = h
        .logs()
        .iter()
        .filter(|l| l.contains("delivery attempt"))
        .count();
    assert_eq!(
        attempts,
        2,
        "later messages wait without an attempt:\n{}",
        h.logs().join("\n")
    );
    let connects = h
        .logs()
        .iter()
        .filter(|l| l.contains("Connection refused"))
        .count();
    assert!(
        connects <= 3,
        "connections after the back-off started: {connects}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_recipients_go_in_several_transactions_of_one_job() {
    let dir = tempfile::tempdir().unwrap();
    let (_smarthost, store, h) =
        via_smarthost(dir.path(), "max_recipients_per_transaction = 2").await;
    let mut c = Client::connect(h.addr).await;
    let rcpts = [
        "r1@x.test",
        "r2@x.test",
        "r3@x.test",
        "r4@x.test",
        "r5@x.test",
    ];
    let id = queue_id(
        &c.send_message("a@b.test", &rcpts, b"Subject: many\r\n\r\nx\r\n")
            .await,
    );
    let got = sink::wait_stored(&store, 3, WAIT).await;
    let mut envelopes: Vec<usize> = got.iter().map(|m| m.rcpt_to.len()).collect();
    envelopes.sort_unstable();
    assert_eq!(envelopes, vec![1, 2, 2]);
    let removed = format!("queue_id={id}");
    assert!(
        h.wait_log_matching(|l| l.contains(&removed) && l.contains("removed"), WAIT)
            .await
            .is_some()
    );
    let sent = h
        .logs()
        .iter()
        .filter(|l| l.contains(&removed) && l.contains("status=\"sent\""))
        .count();
    assert_eq!(sent, 5, "{}", h.logs().join("\n"));
}
