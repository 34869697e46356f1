//! SIGTERM lets deliveries under way finish (bounded by `smtp.drain_timeout`) and
//! records them, so a clean stop and start never sends a message twice.

mod common;

use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;
use smtp_blaster::sink::{Delay, DelayPoint, SinkConfig};

/// A sink that stores each message at once but answers its final reply `pause` later:
/// a delivery that is under way for that long.
async fn slow_sink(dir: &std::path::Path, pause: Duration) -> smtp_blaster::sink::SinkHandle {
    sink::start_with(SinkConfig {
        store: Some(dir.to_path_buf()),
        starttls: false,
        delays: vec![Delay {
            point: DelayPoint::Dot,
            duration: pause,
            odds: 1.0,
        }],
        ..SinkConfig::default()
    })
    .await
}

fn config(sink_port: u16, drain_timeout: &str) -> String {
    format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\ndrain_timeout = \"{drain_timeout}\"\n\
         [queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\n\
         [delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_delivery_under_way_and_the_restart_sends_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sink");
    let sink = slow_sink(&store, Duration::from_secs(2)).await;
    let mut h = Hermod::start(dir.path(), &config(sink.local_addrs()[0].port(), "20s")).await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "a@sender.test",
            &["x@dest.test"],
            b"Subject: once\r\n\r\nx\r\n",
        )
        .await,
    );
    drop(c);
    // The sink has the message and holds its 250: the delivery is under way.
    assert_eq!(
        sink::wait_stored(&store, 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    assert_eq!(h.stop().await, Some(0), "{}", h.logs().join("\n"));
    assert!(
        h.wait_status(&id, "sent", Duration::ZERO).await.is_some(),
        "the delivery finished before the exit:\n{}",
        h.logs().join("\n")
    );
    assert!(h.logs().iter().any(|l| l.contains("no new deliveries")));

    h.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink::stored(&store).len(),
        1,
        "delivered again after a clean stop:\n{}",
        h.logs().join("\n")
    );
    assert!(
        !h.logs()
            .iter()
            .any(|l| l.contains("recovered messages from the spool")),
        "{}",
        h.logs().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_a_delivery_past_the_drain_timeout_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sink");
    let sink = slow_sink(&store, Duration::from_secs(30)).await;
    let mut h = Hermod::start(dir.path(), &config(sink.local_addrs()[0].port(), "1s")).await;
    let mut c = Client::connect(h.addr).await;
    queue_id(
        &c.send_message(
            "a@sender.test",
            &["x@dest.test"],
            b"Subject: slow\r\n\r\nx\r\n",
        )
        .await,
    );
    drop(c);
    sink::wait_stored(&store, 1, Duration::from_secs(10)).await;
    let started = std::time::Instant::now();
    assert_eq!(h.stop().await, Some(0), "{}", h.logs().join("\n"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let cut = h
        .wait_log("cutting deliveries still under way", Duration::ZERO)
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(cut.contains("WARN") && cut.contains("messages=1"), "{cut}");
}
