//! DANE (RFC 7672) against real servers on loopback: a DNSSEC-signed root zone served by
//! hickory's own server (signed in the test, with an unsigned zone delegated from it),
//! hermod validating it from a test trust anchor, a STARTTLS sink (smtp-blaster's) with a
//! certificate from a test CA that hermod does not otherwise trust, and an MTA-STS policy
//! host (Python's standard library) for the domain that publishes both.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use aws_lc_rs::digest;
use common::certs::{CertFiles, TestCa};
use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone, ZoneKey};
use common::hermod::Hermod;
use common::policy_server::{PolicyServer, publish};
use smtp_blaster::sink::{SinkConfig, SinkHandle};
use smtp_blaster::tls::TlsFiles;

/// The DER of the first certificate in a PEM file.
fn der(pem: &Path) -> Vec<u8> {
    let text = std::fs::read(pem).unwrap();
    let mut reader = std::io::BufReader::new(text.as_slice());
    rustls_pki_types::pem::PemObject::pem_reader_iter(&mut reader)
        .next()
        .expect("a certificate")
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap()
}

/// The DER of the last certificate in a PEM file (the CA, in an issued chain).
fn last_der(pem: &Path) -> Vec<u8> {
    let text = std::fs::read(pem).unwrap();
    let mut reader = std::io::BufReader::new(text.as_slice());
    rustls_pki_types::pem::PemObject::pem_reader_iter(&mut reader)
        .map(|c: Result<rustls_pki_types::CertificateDer<'static>, _>| c.unwrap().to_vec())
        .last()
        .expect("a certificate")
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// The SubjectPublicKeyInfo of a certificate's key (what `3 1 x` selects), as rcgen
/// encodes it from the key file (not as hermod reads it from the certificate).
fn spki(cert: &CertFiles) -> Vec<u8> {
    use rcgen::PublicKeyData;
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&cert.key).unwrap()).unwrap();
    key.subject_public_key_info()
}

/// The MX of every domain: STARTTLS with `cert`.
async fn sink(dir: &Path, cert: &CertFiles) -> SinkHandle {
    common::sink::start_with(SinkConfig {
        store: Some(dir.join("sink")),
        starttls: true,
        tls: Some(TlsFiles {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
        }),
        ..SinkConfig::default()
    })
    .await
}

fn config(dir: &Path, dns: &TestDns, anchor: &str, mx_port: u16, extra: &str) {
    std::fs::write(dir.join("anchor.keys"), anchor).unwrap();
    let config = format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\n\
[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nmax_retry_interval = \"1s\"\n\
[delivery]\ndns_servers = [\"{}\"]\nmx_port = {mx_port}\nconnect_timeout = \"2s\"\n\
dead_host_failures = 1000\ndane = true\ndane_trust_anchor = \"{}\"\n{extra}",
        dns.addr,
        dir.join("anchor.keys").display()
    );
    std::fs::write(dir.join("hermod.toml"), &config).unwrap();
}

async fn start(dir: &Path) -> Hermod {
    Hermod::start_with(dir.join("hermod.toml"), dir.join("data"), &[]).await
}

/// Sends one message to `user@DOMAIN` for each domain; their queue ids in order.
async fn send_each(h: &Hermod, domains: &[&str]) -> Vec<String> {
    let mut c = Client::connect(h.addr).await;
    let mut ids = Vec::new();
    for domain in domains {
        let to = format!("user@{domain}");
        let reply = c
            .send_message(
                "a@shop.test",
                &[to.as_str()],
                b"Subject: dane\r\n\r\nhello\r\n",
            )
            .await;
        ids.push(queue_id(&reply));
    }
    ids
}

async fn wait(h: &Hermod, id: &str, status: &str) -> String {
    h.wait_status(id, status, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("{id} not {status}:\n{}", h.logs().join("\n")))
}

/// What `hermod route DOMAIN` prints with the test's configuration.
fn route(dir: &Path, domain: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["route", domain, "--config"])
        .arg(dir.join("hermod.toml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The recipients the sink got, but the TLS reports.
fn recipients(dir: &Path) -> Vec<String> {
    let stored = common::sink::stored(&dir.join("sink"));
    let mut rcpts: Vec<String> = stored
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .filter(|r| r != "tlsrpt@unsigned.example")
        .collect();
    rcpts.sort();
    rcpts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsa_records_decide_the_certificate_and_an_insecure_domain_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    // The sink's certificate names only mx.ta.test, and hermod does not trust the CA:
    // only TLSA records can make it acceptable.
    let cert = ca.issue(dir.path(), "mx", &["mx.ta.test"], false);
    let sink = sink(dir.path(), &cert).await;
    let port = sink.local_addrs()[0].port();
    let leaf = der(&cert.cert);
    let ca_der = last_der(&cert.cert);
    let https_port = common::free_port();
    // sts.test publishes an enforced MTA-STS policy that lists another host: DANE wins.
    publish(dir.path(), "sts.test", "enforce", &["mx.elsewhere.test"]);
    let _policies = PolicyServer::start(
        dir.path(),
        &ca,
        https_port,
        &["sts.test", "unsigned.example"],
    );
    let key = ZoneKey::generate();
    let tlsa = |zone: TestZone, domain: &str, usage: u8, selector: u8, data: &[u8]| {
        zone.mx(domain, 10, &format!("mx.{domain}"))
            .a(&format!("mx.{domain}"), Ipv4Addr::LOCALHOST)
            .tlsa(
                &format!("_{port}._tcp.mx.{domain}"),
                usage,
                selector,
                1,
                &sha256(data),
            )
    };
    let mut root = TestZone::new(".");
    root = tlsa(root, "ee.test", 3, 1, &spki(&cert));
    root = tlsa(root, "eefull.test", 3, 0, &leaf);
    root = tlsa(root, "ta.test", 2, 0, &ca_der);
    root = tlsa(root, "mismatch.test", 3, 1, b"another key");
    root = tlsa(root, "sts.test", 3, 1, &spki(&cert));
    root = root
        .a("mta-sts.sts.test", Ipv4Addr::LOCALHOST)
        .txt("_mta-sts.sts.test", "v=STSv1; id=1")
        .mx("plain.test", 10, "mx.plain.test")
        .a("mx.plain.test", Ipv4Addr::LOCALHOST)
        // MX hosts that are CNAMEs: the TLSA records are looked for at the target.
        .mx("cname.test", 10, "mx.cname.test")
        .cname("mx.cname.test", "real.cname.test")
        .a("real.cname.test", Ipv4Addr::LOCALHOST)
        .tlsa(
            &format!("_{port}._tcp.real.cname.test"),
            3,
            1,
            1,
            &sha256(&spki(&cert)),
        )
        .mx("cnamebad.test", 10, "mx.cnamebad.test")
        .cname("mx.cnamebad.test", "real.cnamebad.test")
        .a("real.cnamebad.test", Ipv4Addr::LOCALHOST)
        .tlsa(
            &format!("_{port}._tcp.real.cnamebad.test"),
            3,
            1,
            1,
            &sha256(b"not its key"),
        )
        // A secure MX answer naming a host in the unsigned zone: its TLSA record (which
        // matches nothing) is not secure, so it does not count.
        .mx("insecurehost.test", 10, "mx.unsigned.example")
        // mismatch.test and ee.test ask for TLS reports, mailed to the unsigned domain.
        .txt(
            "_smtp._tls.mismatch.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@unsigned.example",
        )
        .txt(
            "_smtp._tls.ee.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@unsigned.example",
        )
        // An unsigned zone below a delegation without DS: provably insecure.
        .ns("example", "ns.example")
        .a("ns.example", Ipv4Addr::LOCALHOST)
        .signed(&key);
    let unsigned = TestZone::new("unsigned.example")
        .mx("@", 10, "mx.unsigned.example")
        .a("mx.unsigned.example", Ipv4Addr::LOCALHOST)
        .tlsa(
            &format!("_{port}._tcp.mx.unsigned.example"),
            3,
            1,
            1,
            &sha256(b"no key"),
        );
    let dns = TestDns::start(vec![root, unsigned]).await;
    config(
        dir.path(),
        &dns,
        &key.trust_anchor("."),
        port,
        &format!(
            "tls_ca_file = \"{}\"\nmta_sts_port = {https_port}\n[tls_report]\ninterval = \"2s\"\n",
            ca.cert_file.display()
        ),
    );
    let h = start(dir.path()).await;
    let domains = [
        "ee.test",
        "eefull.test",
        "ta.test",
        "mismatch.test",
        "sts.test",
        "plain.test",
        "unsigned.example",
        "insecurehost.test",
        "cname.test",
        "cnamebad.test",
    ];
    let ids = send_each(&h, &domains).await;

    for (domain, id) in domains.iter().zip(&ids) {
        if ["mismatch.test", "cnamebad.test"].contains(domain) {
            continue;
        }
        let sent = wait(&h, id, "sent").await;
        assert!(sent.contains("tls=\"TLSv1"), "{domain}: {sent}");
    }
    let deferred = wait(&h, &ids[3], "deferred").await;
    assert!(
        deferred.contains("4.7.5 DANE (TLSA records of mismatch.test's MX hosts) requires authenticated TLS; not delivered")
            && deferred.contains("no TLSA record of mx.mismatch.test (3 1 1) matches the certificate it presented"),
        "{deferred}"
    );
    let deferred = wait(&h, &ids[9], "deferred").await;
    assert!(
        deferred.contains("no TLSA record of mx.cnamebad.test (3 1 1) matches"),
        "{deferred}"
    );
    assert_eq!(
        recipients(dir.path()),
        [
            "user@cname.test",
            "user@ee.test",
            "user@eefull.test",
            "user@insecurehost.test",
            "user@plain.test",
            "user@sts.test",
            "user@ta.test",
            "user@unsigned.example"
        ]
    );
    let metrics = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    assert!(
        metrics.contains("delivery_dane_refusals_total{reason=\"tls\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("delivery_dane_lookups_total{result=\"tlsa\"}"),
        "{metrics}"
    );

    // The TLS reports: ee.test's sessions succeeded under its TLSA policy, mismatch.test's
    // failed as tlsa-invalid, naming the host and the record.
    let report = |domain: &str| {
        common::sink::stored(&dir.path().join("sink"))
            .iter()
            .filter(|m| m.rcpt_to == ["tlsrpt@unsigned.example"])
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .find(|text| text.contains(&format!("TLS-Report-Domain: {domain}")))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (report("ee.test").is_none() || report("mismatch.test").is_none())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let json = |domain: &str| -> serde_json::Value {
        let text = report(domain).unwrap_or_else(|| panic!("no report for {domain}"));
        let message = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        let gz = message.attachment(0).expect("the report").contents();
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut json).unwrap();
        serde_json::from_str(&json).unwrap()
    };
    let ee = json("ee.test");
    assert_eq!(ee["policies"][0]["policy"]["policy-type"], "tlsa", "{ee}");
    assert!(ee["policies"][0]["summary"]["total-successful-session-count"].as_u64() >= Some(1));
    let mismatch = json("mismatch.test");
    let policy = &mismatch["policies"][0];
    let record = format!("3 1 1 {}", hex(&sha256(b"another key")));
    assert_eq!(
        policy["policy"]["policy-string"],
        serde_json::json!([record]),
        "{mismatch}"
    );
    assert_eq!(policy["summary"]["total-successful-session-count"], 0);
    let failure = &policy["failure-details"][0];
    assert_eq!(failure["result-type"], "tlsa-invalid", "{mismatch}");
    assert_eq!(failure["receiving-mx-hostname"], "mx.mismatch.test");

    // `hermod route` shows what DANE says of a domain and of each MX host.
    let text = route(dir.path(), "sts.test");
    assert!(
        text.contains("DANE: the MX answer is DNSSEC-secure and TLSA records govern the domain")
            && text.contains("for the MX hosts without TLSA records only (DANE takes precedence)")
            && text.contains("mx.sts.test")
            && text.contains("(DANE: TLSA 3 1 1 "),
        "{text}"
    );
    let text = route(dir.path(), "plain.test");
    assert!(text.contains("(DANE: no TLSA records)"), "{text}");
    let text = route(dir.path(), "unsigned.example");
    assert!(
        text.contains("DANE: does not apply (the MX answer is not DNSSEC-signed)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_signature_defers_and_nothing_goes_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let cert = ca.issue(dir.path(), "mx", &["mx.signed.test"], false);
    let sink = sink(dir.path(), &cert).await;
    let port = sink.local_addrs()[0].port();
    let key = ZoneKey::generate();
    let root = TestZone::new(".")
        .mx("signed.test", 10, "mx.signed.test")
        .a("mx.signed.test", Ipv4Addr::LOCALHOST)
        .tlsa(
            &format!("_{port}._tcp.mx.signed.test"),
            3,
            1,
            1,
            &sha256(&spki(&cert)),
        )
        .signed(&key.corrupting());
    let dns = TestDns::start(vec![root]).await;
    config(dir.path(), &dns, &key.trust_anchor("."), port, "");
    let h = start(dir.path()).await;
    let ids = send_each(&h, &["signed.test"]).await;
    let deferred = wait(&h, &ids[0], "deferred").await;
    assert!(
        deferred.contains("4.7.5 DANE: the DNSSEC-signed MX answer of signed.test is not valid"),
        "{deferred}"
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("DNSSEC answer for a DANE lookup is not valid")),
        "{}",
        h.logs().join("\n")
    );
    // Retried, still refused, and the sink never saw the message.
    let retried = h
        .wait_log_matching(
            |l| l.contains(&ids[0]) && l.contains("delivery attempt") && l.contains("attempts=2"),
            Duration::from_secs(30),
        )
        .await;
    assert!(retried.is_some(), "{}", h.logs().join("\n"));
    assert!(recipients(dir.path()).is_empty());
    let metrics = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    assert!(
        metrics.contains("delivery_dane_refusals_total{reason=\"bogus\"}"),
        "{metrics}"
    );
    let text = route(dir.path(), "signed.test");
    assert!(
        text.contains("DANE: the DNSSEC-signed MX answer of signed.test is not valid")
            && text.contains("mail for it is deferred 4.7.5"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signature_on_every_answer_keeps_them_secure() {
    // Two keys sign every record set (a rollover, or a second signer): hickory proves one
    // signature of each set; the answers are still secure, and DANE still applies.
    let dir = tempfile::tempdir().unwrap();
    let (anchor_key, second) = (ZoneKey::generate(), ZoneKey::generate());
    let root = TestZone::new(".")
        .mx("signed.test", 10, "mx.signed.test")
        .a("mx.signed.test", Ipv4Addr::LOCALHOST)
        .tlsa("_25._tcp.mx.signed.test", 3, 1, 1, &sha256(b"a key"))
        .signed(&anchor_key)
        .signed(&second);
    let dns = TestDns::start(vec![root]).await;
    let anchor = dir.path().join("anchor.keys");
    std::fs::write(&anchor, anchor_key.trust_anchor(".")).unwrap();
    let dane = hermod_actors::outbound::dane::Dane::new(
        &[dns.addr],
        Duration::from_secs(2),
        Some(&anchor),
    )
    .unwrap();
    let found = dane.for_domain("signed.test", 25).await;
    let hermod_actors::outbound::dane::DomainDane::Secure(hosts) = found.as_ref() else {
        panic!("not secure: {found:?}");
    };
    assert!(
        matches!(
            hosts.get("mx.signed.test"),
            Some(hermod_actors::outbound::dane::HostDane::Tlsa(_))
        ),
        "{hosts:?}"
    );
}
