//! A closed-loop run against the sink: every message sent is accepted and received,
//! and the sender's accepted log matches the sink's received log line for line.

use std::collections::BTreeSet;
use std::path::Path;

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, SinkConfig, SinkHandle};

/// A sink that lists every Message-ID it receives in `log`.
async fn logging_sink(log: &Path) -> SinkHandle {
    sink::start(SinkConfig {
        received_log: Some(log.to_path_buf()),
        ..SinkConfig::default()
    })
    .await
    .unwrap()
}

/// The lines of a Message-ID log, as a set.
fn read(log: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_sink_counts_agree() {
    let dir = tempfile::tempdir().unwrap();
    let received_log = dir.path().join("received.log");
    let accepted_log = dir.path().join("accepted.log");
    let sink = logging_sink(&received_log).await;
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 8,
        messages: Some(2_000),
        per_connection: 50,
        recipients: 2,
        accepted_log: Some(accepted_log.clone()),
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    let summary = sink.shutdown().await;

    assert_eq!(
        (report.sent, report.accepted, report.errors),
        (2_000, 2_000, 0),
        "{report}"
    );
    assert_eq!(summary.stats.received, 2_000);
    assert_eq!(summary.stats.recipients, 4_000);
    assert_eq!(summary.stats.e2e_latency_ms.count, 2_000);
    // 50 messages per connection, but the last connection of each slot may carry fewer.
    assert!(
        (40..=48).contains(&report.connections),
        "{}",
        report.connections
    );
    let (accepted, received) = (read(&accepted_log), read(&received_log));
    assert_eq!(accepted.len(), 2_000);
    assert_eq!(accepted, received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_runs_still_get_unique_message_ids_and_logs_start_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for run in 0..2 {
        let received_log = dir.path().join("received.log");
        let accepted_log = dir.path().join("accepted.log");
        // Left over from an earlier run: both logs must start afresh.
        std::fs::write(&received_log, "<stale@example.com>\n").unwrap();
        std::fs::write(&accepted_log, "<stale@example.com>\n").unwrap();
        let sink = logging_sink(&received_log).await;
        let config = SendConfig {
            server: sink.local_addrs()[0],
            connections: 2,
            messages: Some(20),
            seed: Some(5),
            accepted_log: Some(accepted_log.clone()),
            ..SendConfig::default()
        };
        let report = send::run(config).await.unwrap();
        sink.shutdown().await;
        assert_eq!(report.accepted, 20, "run {run}: {report}");
        let (accepted, received) = (read(&accepted_log), read(&received_log));
        assert_eq!(accepted.len(), 20, "run {run}");
        assert_eq!(accepted, received, "run {run}");
        runs.push(accepted);
    }
    assert!(
        runs[0].is_disjoint(&runs[1]),
        "the same seed repeated Message-IDs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_received_log_is_complete_while_the_sink_runs() {
    let dir = tempfile::tempdir().unwrap();
    let received_log = dir.path().join("received.log");
    let accepted_log = dir.path().join("accepted.log");
    let sink = logging_sink(&received_log).await;
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 4,
        messages: Some(300),
        accepted_log: Some(accepted_log.clone()),
        ..SendConfig::default()
    };
    send::run(config).await.unwrap();
    // Read before shutdown: every acknowledged message is in the log already.
    let (accepted, received) = (read(&accepted_log), read(&received_log));
    assert_eq!(accepted.len(), 300);
    assert_eq!(accepted, received);
    sink.shutdown().await;
}
