//! SIGHUP reloads the configuration: relay domains, transport map and limits change for
//! new sessions and new dispatches, open connections are kept, keys that need a restart
//! are named, and a broken file changes nothing.

mod common;

use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::sink;

fn config(domain: &str, sink_port: u16, max_recipients: usize, workers: usize) -> String {
    format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\nmax_recipients = {max_recipients}\nworkers = {workers}\n\
         [relay]\ndomains = [\"{domain}\"]\nnetworks = [\"192.0.2.0/24\"]\n\
         [queue]\nscan_interval = \"100ms\"\n\
         [delivery.transport]\n\"{domain}\" = \"[127.0.0.1]:{sink_port}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_relay_domains_transport_and_limits_to_new_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let first = sink::start(&dir.path().join("first")).await;
    let second = sink::start(&dir.path().join("second")).await;
    let h = Hermod::start(
        dir.path(),
        &config("old.test", first.local_addrs()[0].port(), 100, 2),
    )
    .await;

    // A session opened before the reload keeps its settings and its connection.
    let mut open = Client::connect(h.addr).await;
    assert!(
        open.cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );

    h.rewrite_config(&config("new.test", second.local_addrs()[0].port(), 1, 1));
    h.hangup();
    let reloaded = h
        .wait_log("configuration reloaded", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    for key in ["relay.domains", "delivery.transport", "smtp.max_recipients"] {
        assert!(reloaded.contains(key), "{reloaded}");
    }
    let restart = h
        .wait_log("until a restart", Duration::from_secs(5))
        .await
        .expect("restart-only key named");
    assert!(restart.contains("smtp.workers"), "{restart}");

    let mut fresh = Client::connect(h.addr).await;
    assert!(
        fresh
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    let refused = fresh.cmd("RCPT TO:<x@old.test>").await;
    assert!(refused.starts_with("554 5.7.1"), "{refused}");
    assert!(fresh.cmd("RCPT TO:<x@new.test>").await.starts_with("250"));
    let limited = fresh.cmd("RCPT TO:<y@new.test>").await;
    assert!(limited.starts_with("452 4.5.3"), "{limited}");
    assert!(fresh.cmd("DATA").await.starts_with("354"));
    let id_new = queue_id(&fresh.cmd("Subject: new\r\n\r\nx\r\n.").await);

    // The old session still relays to the old domain with the old recipient limit; its
    // mail takes the route of the new transport map (old.test is no longer in it, and
    // no relay host is set: it would go to MX), so only check it is accepted.
    assert!(open.cmd("RCPT TO:<x@old.test>").await.starts_with("250"));
    assert!(open.cmd("RCPT TO:<y@old.test>").await.starts_with("250"));

    let stored = sink::wait_stored(&dir.path().join("second"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    assert_eq!(stored[0].rcpt_to, ["x@new.test"]);
    // Logged just after the delivery the sink saw: waited for, not raced.
    assert!(
        h.wait_log(&id_new, Duration::from_secs(5)).await.is_some(),
        "no log line names {id_new}"
    );
    assert!(sink::stored(&dir.path().join("first")).is_empty());
}

/// With one arbiter, the sessions before and after the reload are accepted by the same
/// Listener, which keeps the sessions' shared context between connections: the reload
/// must replace it, or new sessions would go on with the old limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reaches_new_sessions_of_the_listener_that_served_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = sink.local_addrs()[0].port();
    let h = Hermod::start(dir.path(), &config("same.test", port, 100, 1)).await;
    let mut before = Client::connect(h.addr).await;
    assert!(
        before
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    assert!(before.cmd("RCPT TO:<x@same.test>").await.starts_with("250"));
    assert!(before.cmd("RCPT TO:<y@same.test>").await.starts_with("250"));

    h.rewrite_config(&config("same.test", port, 1, 1));
    h.hangup();
    h.wait_log("configuration reloaded", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    let mut after = Client::connect(h.addr).await;
    assert!(
        after
            .cmd("MAIL FROM:<a@sender.test>")
            .await
            .starts_with("250")
    );
    assert!(after.cmd("RCPT TO:<x@same.test>").await.starts_with("250"));
    let limited = after.cmd("RCPT TO:<y@same.test>").await;
    assert!(limited.starts_with("452 4.5.3"), "{limited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let mut h = Hermod::start(
        dir.path(),
        &config("kept.test", sink.local_addrs()[0].port(), 100, 1),
    )
    .await;
    h.rewrite_config("[smtp\nmax_recipients = ");
    h.hangup();
    let failed = h
        .wait_log("configuration reload failed", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(failed.contains("ERROR"), "{failed}");
    assert!(h.is_running());
    let mut c = Client::connect(h.addr).await;
    queue_id(
        &c.send_message(
            "a@sender.test",
            &["x@kept.test"],
            b"Subject: still here\r\n\r\nx\r\n",
        )
        .await,
    );
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    // An invalid value (not just bad syntax) is refused the same way.
    h.rewrite_config("[smtp]\nmax_connections = 0\n");
    h.hangup();
    h.wait_log_matching(
        |l| l.contains("configuration reload failed") && l.contains("max_connections"),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(h.is_running());
}
