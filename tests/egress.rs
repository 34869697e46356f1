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
use common::sink::{self, connections, logging_sink, most_at_once};
use smtp_blaster::sink::SinkHandle;

const DOMAINS: usize = 12;

fn zone() -> TestZone {
    let mut zone = TestZone::new("test").a("mx.provider.test", Ipv4Addr::LOCALHOST);
    for i in 0..DOMAINS {
        zone = zone.mx(&format!("p{i}.test"), 10, "mx.provider.test");
    }
    zone
}

async fn sink(dir: &Path, delay_ms: u64) -> SinkHandle {
    logging_sink(dir, "127.0.0.1:0".parse().unwrap(), &[], delay_ms).await
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

/// The messages the sink in `dir` stored, each with its EHLO name and its bytes.
fn stored_with_helo(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let eml = std::fs::read_to_string(path.with_extension("eml")).unwrap();
            out.push((v["helo"].as_str().unwrap_or_default().to_string(), eml));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_senders_x_hermod_pool_chooses_the_pool_and_never_leaves() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let sink_dir = dir.path().join("sink");
    let sink = sink(&sink_dir, 0).await;
    let port = sink.local_addrs()[0].port();
    let key = "acme-key-0123456789abcdef";
    let key_file = dir.path().join("acme.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inject_port = common::free_port();
    // Pools of one source each: s2 the default, s3 the tenant's, s4 named by the field.
    let mut text = config(dir.path(), &dns, port, [1, 1, 1, 1], "");
    text = text.replace(
        "default_pool = \"main\"",
        "default_pool = \"two\"\nuser_pools = { acme = \"three\" }",
    );
    text.push_str(
        "[egress.pools.two]\ns2 = 1\n[egress.pools.three]\ns3 = 1\n[egress.pools.four]\ns4 = 1\n",
    );
    text.push_str(&format!(
        "[http_inject]\nenabled = true\nlisten = \"127.0.0.1:{inject_port}\"\n\
         [http_inject.tenants.acme]\nkey_file = \"{}\"\n",
        key_file.display()
    ));
    let h = Hermod::start(dir.path(), &text).await;
    let inject = |to: &str, pool: Option<&str>| {
        let mut headers = serde_json::json!({"X-Campaign-Id": "spring"});
        if let Some(pool) = pool {
            headers["X-Hermod-Pool"] = serde_json::json!(pool);
        }
        serde_json::json!({
            "envelope_sender": "news@shop.test",
            "recipients": [{"email": to}],
            "content": {"from": {"email": "news@shop.test"}, "subject": "s", "text_body": "b", "headers": headers},
        })
        .to_string()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], inject_port));
    for (to, pool) in [("named@p1.test", Some("four")), ("tenant@p2.test", None)] {
        let answer = common::http::request(
            addr,
            "POST",
            "/api/inject/v1",
            Some(key),
            Some(&inject(to, pool)),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // Over SMTP without AUTH: the field is taken out and not honoured.
    let mut client = Client::connect(h.addr).await;
    queue_id(
        &client
            .send_message(
                "a@sender.test",
                &["anon@p3.test"],
                b"X-Hermod-Pool: four\r\nSubject: x\r\n\r\nx\r\n",
            )
            .await,
    );
    let stored = sink::wait_stored(&sink_dir, 3, Duration::from_secs(30)).await;
    assert_eq!(stored.len(), 3, "{}", h.logs().join("\n"));
    let by_rcpt = |rcpt: &str| {
        stored_with_helo(&sink_dir)
            .into_iter()
            .find(|(_, eml)| eml.contains(rcpt))
            .unwrap_or_else(|| panic!("no message for {rcpt}"))
    };
    let (helo, eml) = by_rcpt("named@p1.test");
    assert_eq!(helo, "s4.hermod.test");
    assert!(!eml.to_ascii_lowercase().contains("x-hermod-pool"), "{eml}");
    assert!(eml.contains("X-Campaign-Id: spring"), "{eml}");
    assert_eq!(by_rcpt("tenant@p2.test").0, "s3.hermod.test");
    let (helo, eml) = by_rcpt("anon@p3.test");
    assert_eq!(helo, "s2.hermod.test");
    assert!(!eml.to_ascii_lowercase().contains("x-hermod-pool"), "{eml}");
    h.wait_log(
        "X-Hermod-Pool from an unauthenticated client removed and not honoured",
        Duration::from_secs(1),
    )
    .await
    .expect("logged");
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sending_from_one_source_share_its_limit_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let sink_dir = dir.path().join("sink");
    let sink = sink(&sink_dir, 200).await;
    let port = sink.local_addrs()[0].port();
    let redis_port = common::free_port();
    let _redis = common::redis::RedisServer::start(dir.path(), redis_port);
    let shaping = dir.path().join("shaping.toml");
    std::fs::write(
        &shaping,
        "[provider.prov]\nmx_suffix = [\".provider.test\"]\nmax_connections = 1\n",
    )
    .unwrap();
    let node = |name: &str| {
        let node_dir = dir.path().join(name);
        std::fs::create_dir_all(&node_dir).unwrap();
        let text = format!(
            "[queue]\nscan_interval = \"100ms\"\n[delivery]\ndns_servers = [\"{}\"]\nmx_port = {port}\n\
             max_messages_per_connection = 1\nshaping_file = \"{}\"\n\
             [redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n\
             [egress]\ndefault_pool = \"one\"\n[egress.sources.s2]\naddress = \"127.0.0.2\"\n\
             [egress.pools.one]\ns2 = 1\n",
            dns.addr,
            shaping.display()
        );
        (node_dir, text)
    };
    let (a_dir, a_text) = node("a");
    let (b_dir, b_text) = node("b");
    let a = Hermod::start(&a_dir, &a_text).await;
    let b = Hermod::start(&b_dir, &b_text).await;
    let (a_send, b_send) = tokio::join!(send_all(&a, 6), send_all(&b, 6));
    let _ = (a_send, b_send);
    let stored = sink::wait_stored(&sink_dir, 12, Duration::from_secs(60)).await;
    assert_eq!(
        stored.len(),
        12,
        "{}\n{}",
        a.logs().join("\n"),
        b.logs().join("\n")
    );
    let log = connections(&sink_dir);
    assert!(
        log.iter().all(|c| c.peer.starts_with("127.0.0.2:")),
        "{log:?}"
    );
    assert_eq!(
        most_at_once(&log),
        1,
        "two nodes went past the source's one connection: {log:?}"
    );
    dns.shutdown().await;
}
