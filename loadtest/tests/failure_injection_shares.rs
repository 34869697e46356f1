//! Injected failures come in the asked-for shares, and both sides count them alike.

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, FailAt, SinkConfig};

const MESSAGES: u64 = 4_000;

async fn run(
    sink_config: SinkConfig,
    recipients: usize,
) -> (send::Report, smtp_blaster::sink::SinkSummary) {
    let sink = sink::start(sink_config).await.unwrap();
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 8,
        messages: Some(MESSAGES),
        recipients,
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    (report, sink.shutdown().await)
}

fn share(n: u64) -> f64 {
    n as f64 / MESSAGES as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_at_rcpt_match_the_odds() {
    let config = SinkConfig {
        tempfail: 0.2,
        permfail: 0.1,
        seed: Some(1),
        ..SinkConfig::default()
    };
    let (report, summary) = run(config, 1).await;
    assert!((share(report.temp_failed) - 0.2).abs() < 0.03, "{report}");
    assert!((share(report.perm_failed) - 0.1).abs() < 0.03, "{report}");
    assert_eq!(report.temp_failed, summary.stats.tempfail_rcpt);
    assert_eq!(report.perm_failed, summary.stats.permfail_rcpt);
    assert_eq!(report.accepted, summary.stats.received);
    assert_eq!(report.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_after_data_match_the_odds() {
    let config = SinkConfig {
        tempfail: 0.25,
        fail_at: FailAt::Data,
        seed: Some(2),
        ..SinkConfig::default()
    };
    let (report, summary) = run(config, 2).await;
    assert!((share(report.temp_failed) - 0.25).abs() < 0.03, "{report}");
    assert_eq!(report.temp_failed, summary.stats.tempfail_data);
    assert_eq!(summary.stats.tempfail_rcpt, 0);
    assert_eq!(report.accepted, summary.stats.received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_are_counted_as_closed() {
    let config = SinkConfig {
        disconnect: 0.1,
        seed: Some(3),
        ..SinkConfig::default()
    };
    let (report, summary) = run(config, 1).await;
    let (received, dropped) = (summary.stats.received, summary.stats.disconnects);
    let closed = report.errors_by_kind.get("closed").copied().unwrap_or(0);
    // A drop also loses the next message already pipelined on that connection.
    assert!(closed >= dropped && closed <= 2 * dropped, "{report}");
    assert_eq!(report.errors, closed, "{report}");
    assert!(
        (dropped as f64 / (received + dropped) as f64 - 0.1).abs() < 0.03,
        "{dropped}"
    );
    assert_eq!(report.accepted, received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempfail_and_permfail_recipients_always_fail() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    for (to, temp, perm) in [
        ("tempfail.x@example.test", 10, 0),
        ("permfail@example.test", 0, 10),
    ] {
        let config = SendConfig {
            server: sink.local_addrs()[0],
            connections: 2,
            messages: Some(10),
            to: Some(to.to_string()),
            ..SendConfig::default()
        };
        let report = send::run(config).await.unwrap();
        assert_eq!(
            (report.temp_failed, report.perm_failed),
            (temp, perm),
            "{report}"
        );
    }
    let reply_codes = sink.shutdown().await.stats;
    assert_eq!(
        (reply_codes.tempfail_rcpt, reply_codes.permfail_rcpt),
        (10, 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_get_421() {
    let sink = sink::start(SinkConfig {
        max_connections: Some(2),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 6,
        messages: Some(300),
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    let summary = sink.shutdown().await;
    // A 421 greeting defers the message, as it would for a mail client.
    let refused = report.temp_failed;
    assert!(refused > 0, "{report}");
    assert_eq!(refused, summary.stats.rejected_connections);
    assert_eq!(report.reply_codes.get("421").copied(), Some(refused));
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.accepted + refused, 300);
}
