//! Egress pools end to end: the hermod binary sends from loopback sources 127.0.0.2 …
//! 127.0.0.5 to a sink that logs the peer address of every connection (and keeps each
//! message's EHLO name), through a DNS server whose domains all use one provider's MX.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::sink::{self, connections, most_at_once};
use smtp_blaster::sink::{Delay, DelayPoint, SinkConfig, SinkHandle};

const DOMAINS: usize = 12;

fn zone() -> TestZone {
    let mut zone = TestZone::new("test").a("mx.provider.test", Ipv4Addr::LOCALHOST);
    for i in 0..DOMAINS {
        zone = zone.mx(&format!("p{i}.test"), 10, "mx.provider.test");
    }
    zone
}

async fn sink(dir: &Path, delay_ms: u64) -> SinkHandle {
    std::fs::create_dir_all(dir).unwrap();
    sink::start_with(SinkConfig {
        store: Some(dir.to_path_buf()),
        starttls: false,
        connection_log: Some(dir.join("connections.jsonl")),
        delays: (delay_ms > 0)
            .then_some(Delay {
                point: DelayPoint::Rcpt,
                duration: Duration::from_millis(delay_ms),
                odds: 1.0,
            })
            .into_iter()
            .collect(),
        ..SinkConfig::default()
    })
    .await
}

/// hermod with sources s2 … s5 on 127.0.0.2 … 127.0.0.5 in pool `main` (weights
/// `weights`), the default pool, one message per connection.
fn config(dir: &Path, dns: &TestDns, port: u16, weights: [u32; 4], extra: &str) -> String {
    let mut text = format!(
        "[queue]\nscan_interval = \"100ms\"\n[delivery]\ndns_servers = [\"{}\"]\nmx_port = {port}\n\
         max_messages_per_connection = 1\n{extra}\n[egress]\ndefault_pool = \"main\"\n",
        dns.addr
    );
    for n in 2..=5 {
        text.push_str(&format!(
            "[egress.sources.s{n}]\naddress = \"127.0.0.{n}\"\nehlo = \"s{n}.hermod.test\"\n"
        ));
    }
    text.push_str("[egress.pools.main]\n");
    for (n, weight) in (2..=5).zip(weights) {
        text.push_str(&format!("s{n} = {weight}\n"));
    }
    let _ = dir;
    text
}

async fn send_all(h: &Hermod, n: usize) {
    let mut client = Client::connect(h.addr).await;
    for i in 0..n {
        let to = format!("u{i}@p{}.test", i % DOMAINS);
        queue_id(
            &client
                .send_message("a@sender.test", &[&to], b"Subject: x\r\n\r\nx\r\n")
                .await,
        );
    }
}

/// The EHLO name of each message the sink in `dir` stored.
fn helo_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            names.push(v["helo"].as_str().unwrap_or_default().to_string());
        }
    }
    names
}

fn count<'a>(items: impl Iterator<Item = &'a str>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item.to_string()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_leaves_from_the_pools_sources_in_their_weights_with_their_ehlo_names() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let sink_dir = dir.path().join("sink");
    let sink = sink(&sink_dir, 0).await;
    let port = sink.local_addrs()[0].port();
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), &dns, port, [1, 1, 1, 3], ""),
    )
    .await;
    send_all(&h, 60).await;
    let stored = sink::wait_stored(&sink_dir, 60, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 60, "{}", h.logs().join("\n"));

    // Every connection came from a source, in the weights 1:1:1:3.
    let log = connections(&sink_dir);
    let peers = count(log.iter().map(|c| c.peer.split(':').next().unwrap_or("")));
    let near = |n: usize, want: usize| n.abs_diff(want) <= 2;
    assert!(
        near(peers["127.0.0.2"], 10)
            && near(peers["127.0.0.3"], 10)
            && near(peers["127.0.0.4"], 10)
            && near(peers["127.0.0.5"], 30),
        "{peers:?}"
    );
    assert_eq!(peers.values().sum::<usize>(), 60, "{peers:?}");
    // Each source said its own EHLO name.
    let names = count(helo_names(&sink_dir).iter().map(String::as_str));
    assert!(near(names["s5.hermod.test"], 30), "{names:?}");
    assert_eq!(names.len(), 4, "{names:?}");
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_connection_limit_holds_per_source_so_four_sources_open_four() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let sink_dir = dir.path().join("sink");
    // Each recipient takes the sink 150 ms: connections overlap unless held back.
    let sink = sink(&sink_dir, 150).await;
    let port = sink.local_addrs()[0].port();
    let shaping = dir.path().join("shaping.toml");
    std::fs::write(
        &shaping,
        "[provider.prov]\nmx_suffix = [\".provider.test\"]\nmax_connections = 1\n",
    )
    .unwrap();
    let extra = format!("shaping_file = \"{}\"", shaping.display());
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), &dns, port, [1, 1, 1, 1], &extra),
    )
    .await;
    send_all(&h, 24).await;
    let stored = sink::wait_stored(&sink_dir, 24, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 24, "{}", h.logs().join("\n"));
    let log = connections(&sink_dir);
    for n in 2..=5 {
        let from: Vec<_> = log
            .iter()
            .filter(|c| c.peer.starts_with(&format!("127.0.0.{n}:")))
            .cloned()
            .collect();
        assert!(!from.is_empty(), "no connection from 127.0.0.{n}");
        assert_eq!(
            most_at_once(&from),
            1,
            "127.0.0.{n} over its limit: {from:?}"
        );
    }
    let all = most_at_once(&log);
    assert!((2..=4).contains(&all), "{all} at once over four sources");
    dns.shutdown().await;
}
