//! The shipped alert rules (config/prometheus/alerts.yml): promtool accepts them and
//! their unit tests pass (each rule fires on the series that should raise it, an idle
//! node raises none), and every series they read is served by a fresh hermod that has
//! not seen one message, so an idle node is not mistaken for a missing one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::hermod::Hermod;
use common::http;

fn promtool(args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root)
        .output()
        .expect("promtool on PATH (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_rules_load_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "config/prometheus/alerts.yml"]);
    assert!(checked.contains("SUCCESS: 12 rules found"), "{checked}");
    promtool(&["test", "rules", "config/prometheus/alerts_test.yml"]);
}

/// The metric names the rules' expressions read (`up` is Prometheus' own).
fn metrics_read_by_the_rules() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("config/prometheus/alerts.yml")).unwrap();
    let mut names = BTreeSet::new();
    for line in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
        // Metric names have an underscore; PromQL's functions and the labels used here
        // have none.
        for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.contains('_') && word.starts_with(|c: char| c.is_ascii_lowercase()) {
                names.insert(word.to_string());
            }
        }
    }
    names
}

/// Series labelled by what traffic brings (a refusal's reason: one of dozens of replies);
/// the rules that read them sum over the label, so none present means none raised.
const APPEAR_WITH_TRAFFIC: &[&str] = &["smtp_messages_rejected_total"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_serves_every_series_the_rules_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = Hermod::start(dir.path(), "[smtp]\nmax_connections = 750\n").await;
    let scrape = http::get(hermod.admin.unwrap(), "/metrics").await;
    assert_eq!(scrape.status, 200);
    let served: BTreeSet<&str> = scrape
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let wanted = metrics_read_by_the_rules();
    assert!(wanted.len() >= 12, "{wanted:?}");
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !served.contains(n.as_str()) && !APPEAR_WITH_TRAFFIC.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not served by a fresh node: {missing:?}"
    );
    for line in [
        "smtp_max_connections 750",
        "smtp_messages_received_total 0",
        "smtp_connections_active 0",
        "delivery_attempts_total{status=\"bounced\"} 0",
        "smtp_auth_attempts_total{result=\"failure\"} 0",
        "config_reloads_total{result=\"failed\"} 0",
        "# HELP process_resident_memory_bytes",
        "# HELP smtp_max_connections ",
    ] {
        assert!(
            scrape.body.contains(line),
            "no {line:?} in:\n{}",
            scrape.body
        );
    }
    let memory: f64 = scrape
        .body
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_resident_memory_bytes");
    assert!(memory > 1e6, "{memory}");
    assert!(
        served.len() > 40,
        "a fresh node serves {} series names",
        served.len()
    );
    hermod.stop().await;
}
