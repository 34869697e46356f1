//! Stopping a sink: clients get the grace period to QUIT on their own; one still
//! connected after it gets `421 4.3.2` and a closed connection, never a silent cut,
//! and the sink's shutdown ends in bounded time.

mod common;

use std::time::{Duration, Instant};

use common::Raw;
use smtp_blaster::sink::{self, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_still_connected_after_the_grace_gets_421() {
    let sink = sink::start(SinkConfig {
        shutdown_grace: Duration::from_secs(1),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let (mut quitting, _) = Raw::connect(sink.local_addrs()[0]).await;
    let (mut lingering, _) = Raw::connect(sink.local_addrs()[0]).await;
    assert!(lingering.cmd("HELO c").await.starts_with("250 "));
    let started = Instant::now();
    let shutdown = tokio::spawn(sink.shutdown());
    // Within the grace the sink still answers.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(quitting.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert_eq!(lingering.reply().await, "421 4.3.2 Sink shutting down\r\n");
    assert_eq!(lingering.reply().await, "", "closed after the 421");
    let summary = shutdown.await.unwrap();
    assert_eq!(summary.stats.connections, 2);
    assert!(started.elapsed() < Duration::from_secs(5));
}
