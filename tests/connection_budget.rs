//! One budget of outbound connections for every next hop: when it is full, an idle
//! connection kept for reuse is closed to make room, so mail for a new destination goes
//! out without the open-files limit ever being passed.

mod common;

use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_closes_an_idle_connection_to_reach_a_new_destination() {
    let dir = tempfile::tempdir().unwrap();
    let first = sink::start(&dir.path().join("first")).await;
    let second = sink::start(&dir.path().join("second")).await;
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\n\
         [delivery]\nmax_connections_total = 1\nidle_timeout = \"60s\"\n\
         [delivery.transport]\n\"first.test\" = \"[127.0.0.1]:{}\"\n\"second.test\" = \"[127.0.0.1]:{}\"\n",
        first.local_addrs()[0].port(),
        second.local_addrs()[0].port()
    );
    let h = Hermod::start(dir.path(), &config).await;
    assert!(
        h.wait_log("outbound connection budget", Duration::ZERO)
            .await
            .is_some_and(|l| l.contains("limit=1"))
    );
    let mut c = Client::connect(h.addr).await;
    queue_id(
        &c.send_message("a@s.test", &["x@first.test"], b"Subject: 1\r\n\r\nx\r\n")
            .await,
    );
    sink::wait_stored(&dir.path().join("first"), 1, Duration::from_secs(10)).await;
    // The connection to the first hop stays open for reuse (idle_timeout is 60 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.stats().active_connections, 1);

    let started = Instant::now();
    queue_id(
        &c.send_message("a@s.test", &["y@second.test"], b"Subject: 2\r\n\r\nx\r\n")
            .await,
    );
    let stored = sink::wait_stored(&dir.path().join("second"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    // Not after the first connection's idle_timeout of 60 s.
    assert!(started.elapsed() < Duration::from_secs(15));
    // Its place went to the second hop: never two connections at once. The first sink
    // counts its connection until its session task has seen the QUIT.
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.stats().active_connections != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first.stats().active_connections, 0);
    assert_eq!(second.stats().active_connections, 1);
}
