//! Open loop: messages start on schedule, and when the server is slower than the
//! schedule, latency counts from the due time (no coordinated omission) and the lag
//! is reported.

use std::time::Duration;

use smtp_blaster::send::{self, SendConfig};
use smtp_blaster::sink::{self, Delay, DelayPoint, SinkConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_holds_the_rate() {
    let sink = sink::start(SinkConfig::default()).await.unwrap();
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 4,
        messages: None,
        duration: Some(Duration::from_secs(1)),
        rate: Some(200.0),
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    sink.shutdown().await;
    assert_eq!(report.accepted, 200, "{report}");
    assert!((report.elapsed_s - 1.0).abs() < 0.5, "{report}");
    let schedule = report.schedule.expect("open loop reports its schedule");
    assert!(schedule.behind_ms.p50 < 20.0, "{schedule:?}");
    // A sink that keeps up leaves most messages on time: the timer's 1 ms ticks alone
    // must not count as late (a stall of the loaded test machine may).
    assert!(schedule.late < report.accepted / 4, "{schedule:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_shows_queueing_in_latency() {
    // One connection, 20 ms per message, asked for 100/s: the schedule cannot be kept.
    let delays = vec![Delay {
        point: DelayPoint::Dot,
        duration: Duration::from_millis(20),
        odds: 1.0,
    }];
    let sink = sink::start(SinkConfig {
        delays,
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let config = SendConfig {
        server: sink.local_addrs()[0],
        connections: 1,
        messages: Some(50),
        rate: Some(100.0),
        ..SendConfig::default()
    };
    let report = send::run(config).await.unwrap();
    sink.shutdown().await;
    let schedule = report.schedule.clone().unwrap();
    // The last message is due at 0.49 s but can only start near 1 s.
    assert!(schedule.late > 30, "{report}");
    assert!(schedule.behind_ms.max > 300.0, "{report}");
    assert!(
        report.latency_ms.max > 300.0,
        "latency must include the queueing: {report}"
    );
}
