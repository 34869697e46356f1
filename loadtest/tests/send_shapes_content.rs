//! What `send` puts on the wire: a size spread gives the asked-for mix, recipients
//! spread over `--domains`, `--duration` bounds a closed-loop run, and a delayed RCPT
//! shows in the latency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, Delay, DelayPoint, SinkConfig, SinkHandle};

/// A sink that keeps every message in `dir`.
async fn storing_sink(dir: &Path) -> SinkHandle {
    sink::start(SinkConfig {
        store: Some(dir.to_path_buf()),
        ..SinkConfig::default()
    })
    .await
    .unwrap()
}

/// The files the sink stored with this extension (`eml` messages, `json` envelopes).
fn stored(dir: &Path, extension: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_spread_gives_the_asked_for_mix() {
    let dir = tempfile::tempdir().unwrap();
    let sink = storing_sink(dir.path()).await;
    let report = send::run(SendConfig {
        server: sink.local_addrs()[0],
        connections: 4,
        messages: Some(400),
        size: "1k:75,16k:25".parse().unwrap(),
        seed: Some(7),
        ..SendConfig::default()
    })
    .await
    .unwrap();
    sink.shutdown().await;
    assert_eq!(report.accepted, 400, "{report}");
    let mut big = 0;
    for path in stored(dir.path(), "eml") {
        let len = std::fs::metadata(&path).unwrap().len();
        // Headers add a few hundred bytes to the body size asked for.
        assert!(
            (1024..3_000).contains(&len) || (16_384..18_500).contains(&len),
            "{len}"
        );
        if len > 16_000 {
            big += 1;
        }
    }
    // 25% of 400 is 100; a fair draw stays well within 60..140.
    assert!((60..140).contains(&big), "{big} of 400 were 16k");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_spread_over_domains() {
    let dir = tempfile::tempdir().unwrap();
    let sink = storing_sink(dir.path()).await;
    let report = send::run(SendConfig {
        server: sink.local_addrs()[0],
        connections: 2,
        messages: Some(30),
        recipients: 2,
        domains: 3,
        domain_suffix: "example.net".to_string(),
        ..SendConfig::default()
    })
    .await
    .unwrap();
    sink.shutdown().await;
    assert_eq!(report.accepted, 30, "{report}");
    let mut per_domain = BTreeMap::<String, u32>::new();
    for path in stored(dir.path(), "json") {
        let envelope: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for rcpt in envelope["rcpt_to"].as_array().unwrap() {
            let (local, domain) = rcpt.as_str().unwrap().split_once('@').unwrap();
            assert!(local.starts_with("user"), "{rcpt}");
            *per_domain.entry(domain.to_string()).or_default() += 1;
        }
    }
    let domains: Vec<&str> = per_domain.keys().map(String::as_str).collect();
    assert_eq!(
        domains,
        ["d0.example.net", "d1.example.net", "d2.example.net"]
    );
    assert_eq!(per_domain.values().sum::<u32>(), 60);
    assert!(per_domain.values().all(|&n| n >= 10), "{per_domain:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_bounds_a_closed_loop_run() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let report = send::run(SendConfig {
        server: sink.local_addrs()[0],
        connections: 2,
        messages: None,
        duration: Some(Duration::from_millis(700)),
        ..SendConfig::default()
    })
    .await
    .unwrap();
    let summary = sink.shutdown().await;
    assert!(report.sent > 0, "{report}");
    assert_eq!(report.accepted, report.sent, "{report}");
    assert_eq!(summary.stats.received, report.accepted);
    assert!(
        (0.6..2.0).contains(&report.elapsed_s),
        "ran {} s for 0.7 s asked",
        report.elapsed_s
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_rcpt_shows_in_latency() {
    let sink = sink::start(SinkConfig {
        delays: vec![Delay {
            point: DelayPoint::Rcpt,
            duration: Duration::from_millis(150),
            odds: 1.0,
        }],
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let report = send::run(SendConfig {
        server: sink.local_addrs()[0],
        connections: 2,
        messages: Some(4),
        ..SendConfig::default()
    })
    .await
    .unwrap();
    let summary = sink.shutdown().await;
    assert_eq!(report.accepted, 4, "{report}");
    assert_eq!(summary.stats.delays, 4);
    assert!(report.latency_ms.p50 >= 150.0, "{report}");
}
