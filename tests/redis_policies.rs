//! A fleet sharing its policy state through a real redis-server started here: two hermod
//! processes spend one rate-limit budget and share one greylist, and Redis stopped in the
//! middle gives the configured fail mode, then recovery when it returns.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::client::Client;
use common::hermod::Hermod;
use common::redis::RedisServer;

fn node_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(sink_port: u16, redis_port: u16, policies: &str) -> String {
    format!(
        "[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\nprefix = \"test:\"\ntimeout = \"300ms\"\n{policies}\n"
    )
}

async fn mail(hermod: &Hermod, from: &str) -> String {
    let mut client = Client::connect(hermod.addr).await;
    client.cmd(&format!("MAIL FROM:<{from}>")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_spend_one_budget_and_share_one_greylist() {
    let root = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(root.path(), common::free_port());
    let sink = common::sink::start(&root.path().join("sink")).await;
    let policies = "[rate_limit]\nmessages_per_ip = 3\nwindow = \"1h\"\n[greylist]\nenabled = true\ndelay = \"2s\"\nretry_window = \"1m\"";
    let config = config(sink.local_addrs()[0].port(), redis.port, policies);
    let a = Hermod::start(&node_dir(root.path(), "a"), &config).await;
    let b = Hermod::start(&node_dir(root.path(), "b"), &config).await;

    // One budget of 3 MAILs per hour for 127.0.0.1, over both nodes.
    assert!(mail(&a, "x@one.test").await.starts_with("250"));
    assert!(mail(&b, "x@one.test").await.starts_with("250"));
    assert!(mail(&a, "x@one.test").await.starts_with("250"));
    common::assert_retry_in(
        &mail(&b, "x@one.test").await,
        "450 4.7.1 Rate limit exceeded, ",
        1200,
    );

    // The greylist: first seen on A, passes on B after the delay (two fresh nodes whose
    // rate limit is off, since 127.0.0.1's budget is spent).
    drop(a);
    drop(b);
    let greylist_only = config.replace(
        "[rate_limit]\nmessages_per_ip = 3",
        "[rate_limit]\nmessages_per_ip = 0",
    );
    let a = Hermod::start(&node_dir(root.path(), "a2"), &greylist_only).await;
    let b = Hermod::start(&node_dir(root.path(), "b2"), &greylist_only).await;
    let mut on_a = Client::connect(a.addr).await;
    assert!(
        on_a.cmd("MAIL FROM:<news@sender.test>")
            .await
            .starts_with("250")
    );
    assert_eq!(
        on_a.cmd("RCPT TO:<user@relay.test>").await,
        "451 4.7.1 Greylisted, please try again in 2 seconds"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut on_b = Client::connect(b.addr).await;
    assert!(
        on_b.cmd("MAIL FROM:<news@sender.test>")
            .await
            .starts_with("250")
    );
    assert_eq!(
        on_b.cmd("RCPT TO:<user@relay.test>").await,
        "250 2.1.5 Recipient ok"
    );
    assert!(
        b.wait_log("greylist passed", Duration::from_secs(5))
            .await
            .is_some(),
        "{}",
        b.logs().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_follows_the_fail_mode_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut redis = RedisServer::start(root.path(), port);
    let sink = common::sink::start(&root.path().join("sink")).await;
    let closed = config(
        sink.local_addrs()[0].port(),
        port,
        "[rate_limit]\nmessages_per_ip = 100\nwindow = \"1h\"",
    );
    let open = closed.replace("window = \"1h\"", "window = \"1h\"\nfail_open = true");
    let strict = Hermod::start(&node_dir(root.path(), "strict"), &closed).await;
    let lenient = Hermod::start(&node_dir(root.path(), "lenient"), &open).await;
    assert!(mail(&strict, "a@s.test").await.starts_with("250"));

    redis.stop();
    let started = Instant::now();
    assert_eq!(
        mail(&strict, "a@s.test").await,
        "451 4.3.0 Temporary policy failure (rate_limit did not answer), try again later"
    );
    assert!(
        mail(&lenient, "a@s.test").await.starts_with("250"),
        "fail_open let nothing through"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a dead Redis hung the session"
    );
    // One line per outage, however many checks fail.
    assert!(mail(&strict, "a@s.test").await.starts_with("451 4.3.0"));
    // The log is read by another thread: wait for the line before counting.
    assert!(
        strict
            .wait_log("Redis unreachable", Duration::from_secs(5))
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outage_lines = strict
        .logs()
        .iter()
        .filter(|l| l.contains("Redis unreachable"))
        .count();
    assert_eq!(outage_lines, 1, "{}", strict.logs().join("\n"));

    // Back on the same port: the next check reconnects.
    let _redis = RedisServer::start(root.path(), port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = mail(&strict, "a@s.test").await;
        if reply.starts_with("250") {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        strict
            .wait_log("Redis reachable again", Duration::from_secs(5))
            .await
            .is_some()
    );
    let metrics = common::http::get(strict.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(metrics.contains("redis_outages_total 1"), "{metrics}");
}
