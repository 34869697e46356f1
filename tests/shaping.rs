//! Provider-aware shaping end to end: the hermod binary, a DNS server whose domains use
//! one provider's MX hosts or their own, smtp-blaster sinks that record every
//! connection and answer like a provider, and (for the fleet) a real redis-server.
//!
//! The provider's sink listens on 127.0.0.1, the other site's on 127.0.0.2, both on the
//! port `delivery.mx_port` names, so each connection's site is the sink it reached.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::redis::RedisServer;
use common::sink::{self, connections, logging_sink, most_at_once};
use smtp_blaster::sink::SinkHandle;

/// Domains hosted on the provider's MX hosts (`.provider.test`).
const PROVIDER_DOMAINS: usize = 12;

/// The zone: `pN.test` on the provider (two MX host names), `own.test` on its own.
fn zone() -> TestZone {
    let mut zone = TestZone::new("test")
        .a("mx1.provider.test", Ipv4Addr::new(127, 0, 0, 1))
        .a("mx2.provider.test", Ipv4Addr::new(127, 0, 0, 1))
        .a("mx.own.test", Ipv4Addr::new(127, 0, 0, 2))
        .mx("own.test", 10, "mx.own.test");
    for i in 0..PROVIDER_DOMAINS {
        // Half name one MX host, half the other: still one provider, one site.
        let host = if i % 2 == 0 {
            "mx1.provider.test"
        } else {
            "mx2.provider.test"
        };
        zone = zone.mx(&format!("p{i}.test"), 10, host);
    }
    zone
}

/// Both sinks: the provider's (127.0.0.1) and `own.test`'s (127.0.0.2), on one port.
async fn sinks(dir: &Path, provider_replies: &[&str], delay_ms: u64) -> (SinkHandle, SinkHandle) {
    let provider = logging_sink(
        &dir.join("provider"),
        "127.0.0.1:0".parse().unwrap(),
        provider_replies,
        delay_ms,
    )
    .await;
    let port = provider.local_addrs()[0].port();
    let own = logging_sink(
        &dir.join("own"),
        SocketAddr::from(([127, 0, 0, 2], port)),
        &[],
        0,
    )
    .await;
    (provider, own)
}

fn config(dir: &Path, dns: &TestDns, port: u16, shaping: &str, extra: &str) -> String {
    let file = dir.join("shaping.toml");
    std::fs::write(&file, shaping).unwrap();
    format!(
        "[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nmax_retry_interval = \"2s\"\n\
         [delivery]\ndns_servers = [\"{}\"]\nmx_port = {port}\nmax_connections_per_destination = 5\n\
         shaping_file = \"{}\"\n{extra}",
        dns.addr,
        file.display()
    )
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_on_one_provider_share_its_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    // Each recipient takes the sink 100 ms: connections overlap unless held back.
    let (provider, own) = sinks(dir.path(), &[], 100).await;
    let port = provider.local_addrs()[0].port();
    let shaping = "[provider.prov]\nmx_suffix = [\".provider.test\"]\nmax_connections = 1\n";
    let h = Hermod::start(dir.path(), &config(dir.path(), &dns, port, shaping, "")).await;

    let mut client = Client::connect(h.addr).await;
    for round in 0..3 {
        for i in 0..PROVIDER_DOMAINS {
            let to = format!("u{round}@p{i}.test");
            queue_id(
                &client
                    .send_message("a@sender.test", &[&to], b"Subject: x\r\n\r\nx\r\n")
                    .await,
            );
        }
    }
    let expected = 3 * PROVIDER_DOMAINS;
    let stored = sink::wait_stored(
        &dir.path().join("provider"),
        expected,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(stored.len(), expected, "{}", h.logs().join("\n"));
    let log = connections(&dir.path().join("provider"));
    assert_eq!(
        most_at_once(&log),
        1,
        "{PROVIDER_DOMAINS} domains on one provider opened connections side by side: {log:?}"
    );

    // hermod route names the site, why, and the limits it shares.
    let out = h.command(dir.path(), &["route", "p3.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("site: prov (provider prov: every MX host ends in one of its mx_suffix)"),
        "{text}"
    );
    assert!(text.contains("max_connections=1"), "{text}");
    let out = h.command(dir.path(), &["route", "own.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("site: mx.own.test (its MX host names"),
        "{text}"
    );
    drop(own);
    dns.shutdown().await;
}

/// The shaping file of the automation tests: suspend the provider's site for 4 s at a
/// 421 4.7.28.
const SUSPEND_ON_421: &str = "[provider.prov]\nmx_suffix = [\".provider.test\"]\n\n\
    [[automation]]\nname = \"prov-unusual-rate\"\nprovider = \"prov\"\nenhanced_code = \"4.7.28\"\n\
    regex = \"(?i)unusual rate\"\ntrigger = \"immediate\"\naction = \"suspend\"\nduration = \"4s\"\n";

const UNUSUAL_RATE: &str =
    "blocked@p0.test=421 4.7.28 Our system has detected an unusual rate of unsolicited mail";

/// Sends one message to `to` and returns its queue id.
async fn send(h: &Hermod, to: &str) -> String {
    let mut client = Client::connect(h.addr).await;
    queue_id(
        &client
            .send_message("a@sender.test", &[to], b"Subject: x\r\n\r\nx\r\n")
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_421_suspends_its_site_for_the_duration_then_mail_flows_again() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let (provider, _own) = sinks(dir.path(), &[UNUSUAL_RATE], 0).await;
    let port = provider.local_addrs()[0].port();
    let events = dir.path().join("events.jsonl");
    let extra = format!("[events]\nfile = \"{}\"\n", events.display());
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), &dns, port, SUSPEND_ON_421, &extra),
    )
    .await;

    let blocked = send(&h, "blocked@p0.test").await;
    let taken = h
        .wait_log("shaping action taken", Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no action; log:\n{}", h.logs().join("\n")));
    let taken_ms = unix_ms();
    assert!(
        taken.contains("prov-unusual-rate") && taken.contains("site=prov"),
        "{taken}"
    );
    // One event names the message whose reply triggered it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let event = loop {
        let found = common::webhook::read_json_lines(&events)
            .into_iter()
            .find(|e| e["type"] == "ShapingAction");
        if let Some(event) = found {
            break event;
        }
        assert!(Instant::now() < deadline, "no ShapingAction event");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(event["queue_id"], blocked.as_str());
    assert_eq!(event["next_hop"], "site:prov");
    assert!(
        event["action"].as_str().is_some_and(
            |a| a.starts_with("suspend for ") && a.ends_with("s by rule prov-unusual-rate")
        ),
        "{event}"
    );
    // The blocked recipient would trigger it again at its retry: out of the way.
    let out = h.command(dir.path(), &["queue", "delete", &blocked]);
    assert!(out.status.success(), "{out:?}");

    // The action is listed with its rule, the reply and the time left.
    let out = h.command(dir.path(), &["shaping", "status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.contains("prov-unusual-rate") && status.contains("suspend"),
        "{status}"
    );
    assert!(
        status.contains("421 4.7.28 Our system has detected an unusual rate"),
        "{status}"
    );
    let api = common::http::get(h.admin.unwrap(), "/api/shaping")
        .await
        .json();
    let remaining = api["actions"][0]["remaining_s"].as_u64().unwrap();
    assert!((1..=5).contains(&remaining), "{api}");

    // Mail for the provider's domains (the suspended one and another) waits; the other
    // site's flows.
    let before = connections(&dir.path().join("provider")).len();
    for to in ["later@p0.test", "later@p1.test", "later@p2.test"] {
        send(&h, to).await;
    }
    send(&h, "now@own.test").await;
    let own = sink::wait_stored(&dir.path().join("own"), 1, Duration::from_secs(3)).await;
    assert_eq!(own.len(), 1, "the other site's mail must not wait");
    assert!(
        unix_ms() < taken_ms + 3500,
        "the other site's mail took the whole suspension"
    );

    // After the duration, delivery resumes by itself.
    let stored = sink::wait_stored(&dir.path().join("provider"), 3, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 3, "{}", h.logs().join("\n"));
    let log = connections(&dir.path().join("provider"));
    let first_after = log[before..]
        .iter()
        .map(|c| c.opened_ms)
        .min()
        .expect("connections after the suspension");
    assert!(
        first_after + 500 >= taken_ms + 4000,
        "a connection {} ms after the action, within its 4 s",
        first_after.saturating_sub(taken_ms)
    );
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_clears_an_action_and_the_file_reloads_on_hangup() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let (provider, _own) = sinks(dir.path(), &[UNUSUAL_RATE], 0).await;
    let port = provider.local_addrs()[0].port();
    let long = SUSPEND_ON_421.replace("duration = \"4s\"", "duration = \"1h\"");
    let mut h = Hermod::start(dir.path(), &config(dir.path(), &dns, port, &long, "")).await;

    let blocked = send(&h, "blocked@p0.test").await;
    h.wait_log("shaping action taken", Duration::from_secs(15))
        .await
        .expect("an action");
    assert!(
        h.command(dir.path(), &["queue", "delete", &blocked])
            .status
            .success()
    );

    // The hour-long suspension outlives a restart (kept in the data directory).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.stop().await;
    h.restart().await;
    h.wait_log(
        "shaping action kept across the restart in force",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|| panic!("not restored; log:\n{}", h.logs().join("\n")));
    let out = h.command(dir.path(), &["shaping", "status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("prov-unusual-rate"),
        "{out:?}"
    );
    send(&h, "later@p1.test").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sink::stored(&dir.path().join("provider")).is_empty(),
        "delivered while suspended"
    );

    let out = h.command(dir.path(), &["shaping", "clear", "prov"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("prov-unusual-rate"),
        "{out:?}"
    );
    assert!(
        text.contains("still in force:\nno shaping action in force"),
        "{text}"
    );
    let started = Instant::now();
    let stored = sink::wait_stored(&dir.path().join("provider"), 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1, "{}", h.logs().join("\n"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    h.wait_log(
        "shaping action cleared by the operator",
        Duration::from_secs(1),
    )
    .await
    .expect("the clear is logged");
    let out = h.command(dir.path(), &["shaping", "clear", "prov"]);
    assert!(!out.status.success(), "nothing left to clear: {out:?}");

    // A broken file keeps the rules; a good one replaces them.
    std::fs::write(
        dir.path().join("shaping.toml"),
        "[provider.prov]\nmax_connections = 1\n",
    )
    .unwrap();
    h.hangup();
    let failed = h
        .wait_log("configuration reload failed", Duration::from_secs(5))
        .await
        .expect("a failed reload is logged");
    assert!(
        failed.contains("delivery.shaping_file") && failed.contains("mx_suffix"),
        "{failed}"
    );
    std::fs::write(dir.path().join("shaping.toml"), &long).unwrap();
    h.hangup();
    h.wait_log("shaping file reloaded", Duration::from_secs(5))
        .await
        .expect("a reload is logged");
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_taken_on_one_node_holds_on_the_other_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let (provider, _own) = sinks(dir.path(), &[UNUSUAL_RATE], 0).await;
    let port = provider.local_addrs()[0].port();
    let redis_port = common::free_port();
    let _redis = RedisServer::start(dir.path(), redis_port);
    let long = SUSPEND_ON_421.replace("duration = \"4s\"", "duration = \"1h\"");
    let redis = format!("[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = Hermod::start(&a_dir, &config(&a_dir, &dns, port, &long, &redis)).await;
    let b = Hermod::start(&b_dir, &config(&b_dir, &dns, port, &long, &redis)).await;

    let blocked = send(&a, "blocked@p0.test").await;
    a.wait_log("shaping action taken", Duration::from_secs(15))
        .await
        .expect("an action on node a");
    assert!(
        a.command(&a_dir, &["queue", "delete", &blocked])
            .status
            .success()
    );
    let seen = b
        .wait_log(
            "shaping action from the fleet in force",
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|| panic!("node b did not see it; log:\n{}", b.logs().join("\n")));
    assert!(seen.contains("prov-unusual-rate"), "{seen}");

    // Node b holds its mail for the site: no connection, no delivery.
    let before = connections(&dir.path().join("provider")).len();
    send(&b, "later@p1.test").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(connections(&dir.path().join("provider")).len(), before);
    assert!(sink::stored(&dir.path().join("provider")).is_empty());

    // Cleared on node b: it ends on node a too.
    assert!(
        b.command(&b_dir, &["shaping", "clear", "*"])
            .status
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let api = common::http::get(a.admin.unwrap(), "/api/shaping")
            .await
            .json();
        if api["actions"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "still in force on node a: {api}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = sink::wait_stored(&dir.path().join("provider"), 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1, "{}", b.logs().join("\n"));
    dns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shaping_file_sets_tls_per_domain_and_per_site() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    // Neither sink offers STARTTLS.
    let (provider, _own) = sinks(dir.path(), &[], 0).await;
    let port = provider.local_addrs()[0].port();
    let shaping = "[provider.prov]\nmx_suffix = [\".provider.test\"]\ntls = \"required\"\n\n\
        [domain.\"p1.test\"]\ntls = \"opportunistic\"\n";
    let h = Hermod::start(dir.path(), &config(dir.path(), &dns, port, shaping, "")).await;
    send(&h, "a@p0.test").await;
    send(&h, "b@p1.test").await;
    send(&h, "c@own.test").await;
    let refused = h
        .wait_log_matching(
            |l| l.contains("delivery attempt") && l.contains("to=a@p0.test"),
            Duration::from_secs(15),
        )
        .await
        .expect("an attempt to a@p0.test");
    assert!(
        refused.contains("status=\"deferred\"") && refused.contains("does not offer STARTTLS"),
        "{refused}"
    );
    // The domain's own entry wins over its site's; a site the file leaves alone keeps
    // delivery.tls.
    let stored = sink::wait_stored(&dir.path().join("provider"), 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].rcpt_to, ["b@p1.test"]);
    assert_eq!(
        sink::wait_stored(&dir.path().join("own"), 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    dns.shutdown().await;
}

#[test]
fn shaping_check_validates_a_file_and_names_its_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let hermod = env!("CARGO_BIN_EXE_hermod");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/shaping.toml");
    let out = std::process::Command::new(hermod)
        .args(["shaping", "check", shipped])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("provider google: mx_suffix .google.com"),
        "{text}"
    );
    assert!(text.contains("rule yahoo-tss04"), "{text}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[automation]]\nname = \"r\"\nregex = \"x\"\ntrigger = \"often\"\naction = \"suspend\"\nduration = \"1h\"\n").unwrap();
    let out = std::process::Command::new(hermod)
        .args(["shaping", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(err.contains("[[automation]] #1 (\"r\"): trigger"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_action_slows_the_site_to_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start(vec![zone()]).await;
    let slow_down = "blocked@p0.test=421 4.7.0 Try again later, closing connection";
    let (provider, _own) = sinks(dir.path(), &[slow_down], 0).await;
    let port = provider.local_addrs()[0].port();
    let shaping = "[provider.prov]\nmx_suffix = [\".provider.test\"]\n\n\
        [[automation]]\nname = \"prov-try-later\"\nprovider = \"prov\"\nenhanced_code = \"4.7.0\"\n\
        regex = \"(?i)try again later\"\ntrigger = \"immediate\"\naction = \"limit\"\n\
        message_rate = \"2/s\"\nduration = \"5s\"\n";
    let extra = "max_messages_per_connection = 1\n";
    let h = Hermod::start(dir.path(), &config(dir.path(), &dns, port, shaping, extra)).await;
    let blocked = send(&h, "blocked@p0.test").await;
    let taken = h
        .wait_log("shaping action taken", Duration::from_secs(15))
        .await
        .expect("an action");
    assert!(taken.contains("action=limit message_rate=2/s"), "{taken}");
    assert!(
        h.command(dir.path(), &["queue", "delete", &blocked])
            .status
            .success()
    );
    let before = connections(&dir.path().join("provider")).len();
    for i in 1..=5 {
        send(&h, &format!("m{i}@p{i}.test")).await;
    }
    let stored = sink::wait_stored(&dir.path().join("provider"), 5, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 5, "{}", h.logs().join("\n"));
    // Two a second, spread evenly: five messages over two seconds at least.
    let opened: Vec<u64> = connections(&dir.path().join("provider"))[before..]
        .iter()
        .map(|c| c.opened_ms)
        .collect();
    let span = opened.iter().max().unwrap() - opened.iter().min().unwrap();
    assert!(
        span >= 1_800,
        "5 messages went out within {span} ms under 2/s"
    );
    // The status says what is in force.
    let out = h.command(dir.path(), &["shaping", "status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("limit message_rate=2/s"),
        "{out:?}"
    );
    dns.shutdown().await;
}
