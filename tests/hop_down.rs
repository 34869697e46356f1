//! A next hop that is down: its mail waits in one list and the hop is probed once per
//! back-off step, instead of every message being re-dispatched, rewritten and logged at
//! every retry (the retry storm). When the hop answers again, everything goes.

mod common;

use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::sink;

const MESSAGES: usize = 100;

fn attempt_lines(h: &Hermod) -> usize {
    h.logs()
        .iter()
        .filter(|l| l.contains("delivery attempt"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_hop_holds_its_mail_and_probes_instead_of_a_retry_storm() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        r#"
[smtp]
hostname = "mx.hermod.test"
[queue]
retry_interval = "1s"
max_retry_interval = "3s"
scan_interval = "100ms"
[delivery]
relayhost = "[127.0.0.1]:{port}"
connect_timeout = "1s"
dead_host_failures = 1
dead_host_backoff = "1s"
"#
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    c.send_numbered(MESSAGES, "a@sender.test", "dest.test")
        .await;
    h.wait_log("next hop is down", Duration::from_secs(10))
        .await
        .expect("the hop is marked down");
    // With a 1 s retry interval, every message used to be re-dispatched and logged every
    // second while the hop was down.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let early = attempt_lines(&h);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let late = attempt_lines(&h);
    assert!(
        early <= MESSAGES + 10,
        "{early} attempt lines for {MESSAGES} messages"
    );
    assert!(
        late - early <= 5,
        "{} attempt lines in 5 s of outage: only probes should be tried",
        late - early
    );
    let probes = h
        .logs()
        .iter()
        .filter(|l| l.contains("next hop still down after probe"))
        .count();
    assert!(probes >= 1, "the hop was probed");

    let sink_dir = dir.path().join("sink");
    let _sink = sink::start_on(&sink_dir, port).await;
    let stored = sink::wait_stored(&sink_dir, MESSAGES, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), MESSAGES);
    assert!(
        h.wait_log("next hop is up again", Duration::from_secs(5))
            .await
            .is_some()
    );
}

/// The first probe of a down hop that is back must connect. It fired a fraction of a
/// second before the Delivery actor's own back-off ran out and was refused ("next hop
/// still down after probe ... not retrying before 0s"), so held mail waited a whole step
/// more (177 s with the default 60 s in 3 of 4 runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_due_probe_of_a_hop_that_came_back_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        r#"
[queue]
retry_interval = "1s"
max_retry_interval = "1h"
scan_interval = "100ms"
[delivery]
relayhost = "[127.0.0.1]:{port}"
connect_timeout = "1s"
dead_host_failures = 1
dead_host_backoff = "4s"
"#
    );
    let h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    c.send_numbered(3, "a@sender.test", "dest.test").await;
    h.wait_log("next hop is down", Duration::from_secs(10))
        .await
        .expect("the hop is marked down");
    let down = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sink_dir = dir.path().join("sink");
    let _sink = sink::start_on(&sink_dir, port).await;
    // One back-off step (4 s) and a little; the next step would be 8 s later.
    let stored = sink::wait_stored(&sink_dir, 3, Duration::from_secs(7)).await;
    assert_eq!(stored.len(), 3, "held mail not released by the first probe");
    assert!(down.elapsed() < Duration::from_secs(8));
    assert!(
        !h.logs()
            .iter()
            .any(|l| l.contains("next hop still down after probe")),
        "a due probe was refused"
    );
}
