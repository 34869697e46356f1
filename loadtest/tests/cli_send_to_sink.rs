//! The binary end to end: `sink --expect` exits by itself once the messages from
//! `send` arrived, both write their JSON, the logs agree and the plot is an SVG.

mod common;

use std::process::Command;
use std::time::Duration;

use common::cli::{BIN, Running};

#[test]
fn cli_send_to_sink() {
    let dir = tempfile::tempdir().unwrap();
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let before_send = unix_now();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (sink_json, received_log) = (path("sink.json"), path("received.log"));
    let (mut sink, addr) = Running::sink(&[
        "--expect",
        "300",
        "--idle-exit",
        "30s",
        "--json",
        &sink_json,
        "--received-log",
        &received_log,
    ]);

    let send = Command::new(BIN)
        .args([
            "send",
            &addr,
            "-c",
            "4",
            "-m",
            "300",
            "-k",
            "30",
            "--pipelining",
            "--size",
            "1k:3,4k:1",
        ])
        .args([
            "--json",
            &path("send.json"),
            "--accepted-log",
            &path("accepted.log"),
        ])
        .args(["--plot", &path("plot.svg"), "--header", "X-Test: yes"])
        .output()
        .unwrap();
    assert!(
        send.status.success(),
        "{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(String::from_utf8_lossy(&send.stdout).contains("accepted 300"));

    let status = sink
        .exit_within(Duration::from_secs(20))
        .expect("sink did not exit after --expect");
    assert!(status.success());

    let json = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path(name)).unwrap()).unwrap()
    };
    let (send_json, sink_json) = (json("send.json"), json("sink.json"));
    for key in [
        "sent",
        "accepted",
        "temp_failed",
        "perm_failed",
        "errors",
        "elapsed_s",
        "rate_per_s",
    ] {
        assert!(send_json.get(key).is_some(), "send.json lacks {key}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            send_json["latency_ms"].get(key).is_some(),
            "latency_ms lacks {key}"
        );
        assert!(
            sink_json["e2e_latency_ms"].get(key).is_some(),
            "e2e_latency_ms lacks {key}"
        );
    }
    assert_eq!(send_json["accepted"], 300);
    assert_eq!(send_json["reply_codes"]["354"], 300);
    assert_eq!(sink_json["received"], 300);
    // The first and last acceptance times bracket the run, for end-to-end measurements.
    let first = sink_json["first_message_unix_s"].as_f64().unwrap();
    let last = sink_json["last_message_unix_s"].as_f64().unwrap();
    assert!(before_send <= first && first <= last && last <= unix_now());
    assert_eq!(sink_json["e2e_latency_ms"]["count"], 300);
    let lines = |name: &str| {
        let mut v: Vec<String> = std::fs::read_to_string(path(name))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(lines("accepted.log").len(), 300);
    assert_eq!(lines("accepted.log"), lines("received.log"));
    assert!(
        std::fs::read_to_string(path("plot.svg"))
            .unwrap()
            .starts_with("<svg")
    );
}
