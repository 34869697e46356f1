//! After kill -9 of an idle server, mail it had delivered is not delivered again: the
//! delivery state reaches disk within `queue.state_flush_interval`, not only with the
//! next accepted message.

mod common;

use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_mail_is_not_delivered_again_after_kill_of_an_idle_server() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let sink = sink::start(&sink_dir).await;
    let port = sink.local_addrs()[0].port();
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nstate_flush_interval = \"100ms\"\n[delivery]\nrelayhost = \"[127.0.0.1]:{port}\"\n"
    );
    let mut h = Hermod::start(dir.path(), &config).await;
    let mut c = Client::connect(h.addr).await;
    let n = 30;
    c.send_numbered(n, "a@sender.test", "dest.test").await;
    drop(c);
    assert_eq!(
        sink::wait_stored(&sink_dir, n, Duration::from_secs(20))
            .await
            .len(),
        n
    );
    // Every report has reached the Queue (the sink stores a message before its 250, so
    // the sink alone does not say so).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h
        .logs()
        .iter()
        .filter(|l| l.contains("status=\"sent\""))
        .count()
        < n
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            h.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Idle now: no accepted message will carry the removals to disk.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.kill().await;
    h.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sink::stored(&sink_dir).len(),
        n,
        "messages delivered again after the restart"
    );
}
