//! MTA-STS (RFC 8461) against real servers on loopback: the domains' records in a DNS
//! server started by the test (hickory), their policies served over HTTPS by Python's
//! standard library with a certificate from a test CA, and the MX a STARTTLS sink
//! (smtp-blaster's) whose certificate names some MX hosts and not others.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::certs::TestCa;
use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::policy_server::{PolicyServer, publish};
use smtp_blaster::sink::{SinkConfig, SinkHandle};
use smtp_blaster::tls::TlsFiles;

/// The test's domains: each has its MX `mx.DOMAIN` and its policy host `mta-sts.DOMAIN`.
const DOMAINS: [&str; 4] = ["good.test", "bad.test", "wrongcert.test", "testing.test"];

/// Every domain's zone: its MX, the MX's and the policy host's address, and the TXT
/// record naming policy `id`.
async fn dns(id: &str) -> TestDns {
    let zones = DOMAINS
        .iter()
        .map(|d| {
            TestZone::new(d)
                .mx("@", 10, &format!("mx.{d}"))
                .a(&format!("mx.{d}"), Ipv4Addr::LOCALHOST)
                .a(&format!("mta-sts.{d}"), Ipv4Addr::LOCALHOST)
                .txt(&format!("_mta-sts.{d}"), &format!("v=STSv1; id={id}"))
        })
        .collect();
    TestDns::start(zones).await
}

/// The MX of every domain: STARTTLS with a certificate for all MX hosts but
/// `mx.wrongcert.test`.
async fn sink(dir: &Path, ca: &TestCa) -> SinkHandle {
    let cert = ca.issue(
        dir,
        "mx",
        &["mx.good.test", "mx.bad.test", "mx.testing.test"],
        false,
    );
    common::sink::start_with(SinkConfig {
        store: Some(dir.join("sink")),
        starttls: true,
        tls: Some(TlsFiles {
            cert: cert.cert,
            key: cert.key,
        }),
        ..SinkConfig::default()
    })
    .await
}

fn config(dir: &Path, ca: &TestCa, dns: &TestDns, mx_port: u16, https_port: u16) -> String {
    let config = format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\n\
[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nmax_retry_interval = \"1s\"\n\
[delivery]\ndns_servers = [\"{}\"]\nmx_port = {mx_port}\nconnect_timeout = \"2s\"\n\
dead_host_failures = 1000\ntls_ca_file = \"{}\"\nmta_sts = true\nmta_sts_port = {https_port}\n",
        dns.addr,
        ca.cert_file.display()
    );
    std::fs::write(dir.join("hermod.toml"), &config).unwrap();
    config
}

async fn start(dir: &Path) -> Hermod {
    Hermod::start_with(dir.join("hermod.toml"), dir.join("data"), &[]).await
}

/// The attempt lines of message `id` so far.
fn attempts(h: &Hermod, id: &str) -> Vec<String> {
    h.logs()
        .into_iter()
        .filter(|l| l.contains("delivery attempt") && l.contains(id))
        .collect()
}

/// Waits (up to 30 s) until message `id` has `n` attempt lines that `matching` accepts.
async fn wait_attempts(h: &Hermod, id: &str, n: usize, matching: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if attempts(h, id).iter().filter(|l| matching(l)).count() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_delivers_only_to_listed_mx_hosts_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let https_port = common::free_port();
    publish(dir.path(), "good.test", "enforce", &["mx.good.test"]);
    publish(dir.path(), "bad.test", "enforce", &["mx.elsewhere.test"]);
    publish(
        dir.path(),
        "wrongcert.test",
        "enforce",
        &["*.wrongcert.test"],
    );
    publish(
        dir.path(),
        "testing.test",
        "testing",
        &["mx.elsewhere.test"],
    );
    let _policies = PolicyServer::start(dir.path(), &ca, https_port, &DOMAINS);
    let dns = dns("20261207").await;
    let sink = sink(dir.path(), &ca).await;
    config(
        dir.path(),
        &ca,
        &dns,
        sink.local_addrs()[0].port(),
        https_port,
    );
    let h = start(dir.path()).await;
    let mut c = Client::connect(h.addr).await;
    let mut ids = Vec::new();
    for domain in DOMAINS {
        let to = format!("user@{domain}");
        let reply = c
            .send_message(
                "a@shop.test",
                &[to.as_str()],
                b"Subject: sts\r\n\r\nhello\r\n",
            )
            .await;
        ids.push(queue_id(&reply));
    }
    let [good, bad, wrongcert, testing] = [&ids[0], &ids[1], &ids[2], &ids[3]];

    // Listed, and its certificate verifies for mx.good.test: delivered over TLS.
    let sent = h.wait_status(good, "sent", Duration::from_secs(30)).await;
    let sent = sent.unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(sent.contains("tls=\"TLSv1"), "{sent}");
    // Its MX is not in the policy: never connected to, deferred naming the policy.
    let deferred = h
        .wait_status(bad, "deferred", Duration::from_secs(30))
        .await;
    let deferred = deferred.unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        deferred.contains(
            "4.7.5 MTA-STS policy of bad.test (enforce, id 20261207) lists none of its MX hosts (mx.bad.test)"
        ),
        "{deferred}"
    );
    // Listed, but the certificate names other hosts: deferred, not sent in clear.
    let deferred = h
        .wait_status(wrongcert, "deferred", Duration::from_secs(30))
        .await;
    let deferred = deferred.unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        deferred.contains(
            "4.7.5 MTA-STS policy of wrongcert.test (enforce, id 20261207) requires verified TLS"
        ) && deferred.contains("not valid for name \"mx.wrongcert.test\""),
        "{deferred}"
    );
    // Testing mode: delivered, and the MX hosts the policy does not list are logged.
    assert!(
        h.wait_status(testing, "sent", Duration::from_secs(30))
            .await
            .is_some(),
        "{}",
        h.logs().join("\n")
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("testing mode does not list these MX hosts")
                && l.contains("testing.test")),
        "{}",
        h.logs().join("\n")
    );
    // Retried on the schedule, the refused ones stay refused and nothing else arrives.
    let retried = wait_attempts(&h, bad, 2, |l| l.contains("lists none")).await;
    assert!(retried, "{}", h.logs().join("\n"));
    let stored = common::sink::stored(&dir.path().join("sink"));
    let mut rcpts: Vec<String> = stored.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["user@good.test", "user@testing.test"]);
    // Each policy was fetched once (one per domain and id), not once per attempt.
    let fetched = h
        .logs()
        .iter()
        .filter(|l| l.contains("MTA-STS policy fetched"))
        .count();
    assert_eq!(fetched, 4, "{}", h.logs().join("\n"));

    // `hermod route` shows the policy and which MX hosts it lists.
    let route = |domain: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["route", domain, "--config"])
            .arg(dir.path().join("hermod.toml"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = route("bad.test");
    assert!(
        text.contains("MTA-STS: enforce (id 20261207, fetched now")
            && text.contains("mx mx.elsewhere.test")
            && text.contains("mx.bad.test")
            && text.contains("(NOT listed in the MTA-STS policy)"),
        "{text}"
    );
    let text = route("good.test");
    assert!(text.contains("(listed in the MTA-STS policy)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_kept_across_a_restart_and_refetched_when_its_id_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let https_port = common::free_port();
    publish(dir.path(), "bad.test", "enforce", &["mx.elsewhere.test"]);
    let policies = PolicyServer::start(dir.path(), &ca, https_port, &DOMAINS);
    let first_dns = dns("1").await;
    let sink = sink(dir.path(), &ca).await;
    let mx_port = sink.local_addrs()[0].port();
    config(dir.path(), &ca, &first_dns, mx_port, https_port);
    let mut h = start(dir.path()).await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message(
            "a@shop.test",
            &["user@bad.test"],
            b"Subject: sts\r\n\r\nx\r\n",
        )
        .await,
    );
    let refused = h
        .wait_status(&id, "deferred", Duration::from_secs(30))
        .await;
    assert!(
        refused.is_some_and(|l| l.contains("(enforce, id 1) lists none")),
        "{}",
        h.logs().join("\n")
    );
    h.stop().await;

    // The policy server is gone: after a restart the kept policy (same id) still holds,
    // and nothing is fetched.
    drop(policies);
    let mut h = start(dir.path()).await;
    let refused = h
        .wait_log_matching(
            |l| l.contains(&id) && l.contains("(enforce, id 1) lists none"),
            Duration::from_secs(30),
        )
        .await;
    assert!(refused.is_some(), "{}", h.logs().join("\n"));
    assert!(
        !h.logs().iter().any(|l| l.contains("MTA-STS policy fetch")),
        "{}",
        h.logs().join("\n")
    );
    h.stop().await;

    // A new id in DNS and a new policy that lists the MX: fetched, and the mail goes.
    publish(dir.path(), "bad.test", "enforce", &["mx.bad.test"]);
    let _policies = PolicyServer::start(dir.path(), &ca, https_port, &DOMAINS);
    let second_dns = dns("2").await;
    config(dir.path(), &ca, &second_dns, mx_port, https_port);
    let h = start(dir.path()).await;
    let sent = h.wait_status(&id, "sent", Duration::from_secs(30)).await;
    assert!(sent.is_some(), "{}", h.logs().join("\n"));
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("MTA-STS policy fetched") && l.contains("id=2")),
        "{}",
        h.logs().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_cannot_be_fetched_falls_back_and_is_not_fetched_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let https_port = common::free_port();
    publish(dir.path(), "bad.test", "enforce", &["mx.elsewhere.test"]);
    let policies = PolicyServer::start(dir.path(), &ca, https_port, &DOMAINS);
    let sink = sink(dir.path(), &ca).await;
    let mx_port = sink.local_addrs()[0].port();
    let first_dns = dns("1").await;
    config(dir.path(), &ca, &first_dns, mx_port, https_port);
    let mut h = start(dir.path()).await;
    let mut c = Client::connect(h.addr).await;
    let body = b"Subject: sts\r\n\r\nx\r\n";
    // good.test publishes a record but no policy (404): no policy applies, the mail goes.
    let good = queue_id(
        &c.send_message("a@shop.test", &["user@good.test"], body)
            .await,
    );
    let bad = queue_id(
        &c.send_message("a@shop.test", &["user@bad.test"], body)
            .await,
    );
    assert!(
        h.wait_status(&good, "sent", Duration::from_secs(30))
            .await
            .is_some(),
        "{}",
        h.logs().join("\n")
    );
    let warned = h
        .wait_log("MTA-STS policy fetch failed", Duration::from_secs(5))
        .await;
    assert!(
        warned.as_ref().is_some_and(|l| l.contains("good.test")
            && l.contains("answered 404")
            && l.contains("delivering as if the domain had no policy")),
        "{warned:?}"
    );
    // A second message within the 5 minutes: no second fetch.
    let again = queue_id(
        &c.send_message("a@shop.test", &["user@good.test"], body)
            .await,
    );
    assert!(
        h.wait_status(&again, "sent", Duration::from_secs(30))
            .await
            .is_some()
    );
    let failures = |h: &Hermod, domain: &str| {
        h.logs()
            .iter()
            .filter(|l| l.contains("MTA-STS policy fetch failed") && l.contains(domain))
            .count()
    };
    assert_eq!(failures(&h, "good.test"), 1, "{}", h.logs().join("\n"));
    assert!(
        h.wait_status(&bad, "deferred", Duration::from_secs(30))
            .await
            .is_some()
    );
    h.stop().await;

    // bad.test's id changes while its policy server is down: the kept policy (id 1)
    // still holds, and the new id is fetched once, not on every retry.
    drop(policies);
    let second_dns = dns("2").await;
    config(dir.path(), &ca, &second_dns, mx_port, https_port);
    let h = start(dir.path()).await;
    let warned = h
        .wait_log_matching(
            |l| l.contains("MTA-STS policy fetch failed") && l.contains("bad.test"),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        warned.as_ref().is_some_and(
            |l| l.contains("id=2") && l.contains("the policy kept earlier still applies")
        ),
        "{warned:?}\n{}",
        h.logs().join("\n")
    );
    // Retried every second: still refused under the kept policy, fetched no more.
    let retried = wait_attempts(&h, &bad, 2, |l| l.contains("(enforce, id 1) lists none")).await;
    assert!(retried, "{}", h.logs().join("\n"));
    assert_eq!(failures(&h, "bad.test"), 1, "{}", h.logs().join("\n"));
    assert!(
        common::sink::stored(&dir.path().join("sink"))
            .iter()
            .all(|m| !m.rcpt_to.iter().any(|r| r == "user@bad.test"))
    );
}
