//! TLS reporting (RFC 8460) against real servers on loopback: four domains in a DNS
//! server started by the test (hickory), their MTA-STS policies and the report endpoint
//! on an HTTPS server (Python's standard library, certificate from a test CA), their MX a
//! STARTTLS sink (smtp-blaster's) whose certificate names only some of them. hermod counts
//! each session, and once its (short) reporting period ends sends each domain's report
//! where its `_smtp._tls` record says: by mail through its own queue, or by HTTPS POST.
//! Every report is checked against an RFC 8460 JSON schema with Python's jsonschema.

mod common;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::certs::TestCa;
use common::client::{Client, queue_id};
use common::dns::{TestDns, TestZone};
use common::hermod::Hermod;
use common::policy_server::{PolicyServer, posted, publish};
use mail_parser::MimeHeaders as _;
use smtp_blaster::sink::SinkConfig;
use smtp_blaster::tls::TlsFiles;

/// The RFC 8460 schema every report must meet.
const SCHEMA: &str = include_str!("data/tlsrpt.schema.json");

/// Checks `json` against [`SCHEMA`] with Python's jsonschema; the error when it fails.
fn schema_check(dir: &Path, json: &str) -> Result<(), String> {
    let (report, schema) = (dir.join("report.json"), dir.join("schema.json"));
    std::fs::write(&report, json).unwrap();
    std::fs::write(&schema, SCHEMA).unwrap();
    let out = std::process::Command::new(common::python3())
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             jsonschema.Draft202012Validator(json.load(open(sys.argv[2]))).validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&report)
        .arg(&schema)
        .output()
        .expect("python3 with jsonschema (Debian's python3-jsonschema)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut json = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut json)
        .expect("a gzip-compressed report");
    json
}

/// Every report received so far: those mailed to the sink and those POSTed, as JSON.
fn reports(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    for message in common::sink::stored(&dir.join("sink")) {
        if !message.rcpt_to.iter().any(|r| r.starts_with("tlsrpt@")) {
            continue;
        }
        assert_eq!(message.mail_from, "", "reports go with the null sender");
        let parsed = mail_parser::MessageParser::default()
            .parse(&message.data)
            .expect("a MIME report");
        let text = String::from_utf8_lossy(&message.data);
        assert!(
            text.contains("multipart/report") && text.contains("tlsrpt"),
            "{text}"
        );
        let attachment = parsed
            .attachments()
            .find(|a| a.is_content_type("application", "tlsrpt+gzip"))
            .expect("an application/tlsrpt+gzip attachment");
        found.push(("mailto".to_string(), gunzip(attachment.contents())));
    }
    for entry in std::fs::read_dir(posted(dir))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "body") {
            let kind = std::fs::read_to_string(path.with_extension("type")).unwrap();
            assert_eq!(kind, "application/tlsrpt+gzip\n/tlsrpt");
            found.push(("https".to_string(), gunzip(&std::fs::read(&path).unwrap())));
        }
    }
    found
        .into_iter()
        .map(|(how, json)| {
            if let Err(e) = schema_check(dir, &json) {
                panic!("a report that is not RFC 8460:\n{json}\n{e}");
            }
            (how, serde_json::from_str(&json).unwrap())
        })
        .collect()
}

/// What the reports say, summed: (domain, how it came, policy type) → (successes,
/// failures by result type and MX host).
type Totals = BTreeMap<(String, String, String), (u64, BTreeMap<String, u64>)>;

fn totals(reports: &[(String, serde_json::Value)]) -> Totals {
    let mut totals = Totals::new();
    for (how, report) in reports {
        for policy in report["policies"].as_array().unwrap() {
            let key = (
                policy["policy"]["policy-domain"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                how.clone(),
                policy["policy"]["policy-type"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            let entry = totals.entry(key).or_default();
            entry.0 += policy["summary"]["total-successful-session-count"]
                .as_u64()
                .unwrap();
            for failure in policy["failure-details"].as_array().into_iter().flatten() {
                let kind = format!(
                    "{} {}",
                    failure["result-type"].as_str().unwrap(),
                    failure["receiving-mx-hostname"].as_str().unwrap_or("-")
                );
                *entry.1.entry(kind).or_default() +=
                    failure["failed-session-count"].as_u64().unwrap();
            }
        }
    }
    totals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_domain_gets_a_report_with_its_sessions_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let https_port = common::free_port();
    publish(dir.path(), "good.test", "enforce", &["mx.good.test"]);
    publish(
        dir.path(),
        "wrongname.test",
        "enforce",
        &["mx.wrongname.test"],
    );
    publish(dir.path(), "testing.test", "testing", &["mx.testing.test"]);
    let _server = PolicyServer::start_for(
        dir.path(),
        &ca,
        https_port,
        &[
            "mta-sts.good.test",
            "mta-sts.wrongname.test",
            "mta-sts.testing.test",
            "reports.test",
        ],
    );
    let by_mail = "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test";
    let by_post = format!("v=TLSRPTv1; rua=https://reports.test:{https_port}/tlsrpt");
    let domain = |name: &str, sts: bool, rua: &str| {
        let mut zone = TestZone::new(name)
            .mx("@", 10, &format!("mx.{name}"))
            .a(&format!("mx.{name}"), Ipv4Addr::LOCALHOST)
            .txt(&format!("_smtp._tls.{name}"), rua);
        if sts {
            zone = zone
                .a(&format!("mta-sts.{name}"), Ipv4Addr::LOCALHOST)
                .txt(&format!("_mta-sts.{name}"), "v=STSv1; id=1");
        }
        zone
    };
    let dns = TestDns::start(vec![
        domain("good.test", true, by_mail),
        domain("plain.test", false, by_mail),
        // Its own MX fails its enforced policy, and still its report reaches it (RFC 8460
        // §3: reports go whatever the TLS policies say).
        domain(
            "wrongname.test",
            true,
            "v=TLSRPTv1; rua=mailto:tlsrpt@wrongname.test",
        ),
        domain("testing.test", true, &by_post),
        TestZone::new("reports.test")
            .a("@", Ipv4Addr::LOCALHOST)
            .mx("@", 10, "mx.reports.test")
            .a("mx.reports.test", Ipv4Addr::LOCALHOST),
    ])
    .await;
    let cert = ca.issue(dir.path(), "mx", &["mx.good.test", "mx.plain.test"], false);
    let sink = common::sink::start_with(SinkConfig {
        store: Some(dir.path().join("sink")),
        starttls: true,
        tls: Some(TlsFiles {
            cert: cert.cert,
            key: cert.key,
        }),
        ..SinkConfig::default()
    })
    .await;
    let config = format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\n\
[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1h\"\nmax_retry_interval = \"1h\"\n\
[delivery]\ndns_servers = [\"{}\"]\nmx_port = {}\nconnect_timeout = \"2s\"\n\
max_messages_per_connection = 1\ndead_host_failures = 1000\ntls_ca_file = \"{}\"\n\
mta_sts_port = {https_port}\n\
[tls_report]\ninterval = \"3s\"\nprivate_destinations = true\norganization = \"Hermod Test Relay\"\n",
        dns.addr,
        sink.local_addrs()[0].port(),
        ca.cert_file.display()
    );
    std::fs::write(dir.path().join("hermod.toml"), config).unwrap();
    let h = Hermod::start_with(dir.path().join("hermod.toml"), dir.path().join("data"), &[]).await;

    let mut c = Client::connect(h.addr).await;
    let mut ids = Vec::new();
    for domain in ["good.test", "plain.test", "wrongname.test", "testing.test"] {
        for _ in 0..2 {
            let to = format!("user@{domain}");
            let reply = c
                .send_message("a@shop.test", &[to.as_str()], b"Subject: r\r\n\r\nx\r\n")
                .await;
            ids.push((domain, queue_id(&reply)));
        }
    }
    for (domain, id) in &ids {
        let status = if *domain == "wrongname.test" {
            "deferred"
        } else {
            "sent"
        };
        let line = h.wait_status(id, status, Duration::from_secs(30)).await;
        assert!(
            line.is_some(),
            "{domain} {id} not {status}:\n{}",
            h.logs().join("\n")
        );
    }

    let expected: Totals = [
        (("good.test", "mailto", "sts"), (2, vec![])),
        (("plain.test", "mailto", "no-policy-found"), (2, vec![])),
        (
            ("testing.test", "https", "sts"),
            (0, vec![("certificate-host-mismatch mx.testing.test", 2)]),
        ),
        (
            ("wrongname.test", "mailto", "sts"),
            (0, vec![("certificate-host-mismatch mx.wrongname.test", 2)]),
        ),
    ]
    .into_iter()
    .map(|((d, how, kind), (ok, failures))| {
        (
            (d.to_string(), how.to_string(), kind.to_string()),
            (
                ok,
                failures
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), n))
                    .collect(),
            ),
        )
    })
    .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = Totals::new();
    while Instant::now() < deadline {
        seen = totals(&reports(dir.path()));
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(seen, expected, "{}", h.logs().join("\n"));

    // One report's details: who sent it, for which dates, and the sts policy's lines.
    let all = reports(dir.path());
    let (_, report) = all
        .iter()
        .find(|(how, r)| {
            how == "https" && r["policies"][0]["policy"]["policy-domain"] == "testing.test"
        })
        .unwrap();
    assert_eq!(report["organization-name"], "Hermod Test Relay");
    assert_eq!(report["contact-info"], "postmaster@relay.hermod.test");
    let policy = &report["policies"][0]["policy"];
    assert_eq!(policy["mx-host"], serde_json::json!(["mx.testing.test"]));
    assert!(
        policy["policy-string"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("mode: testing")),
        "{policy}"
    );
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("TLS report sent") && l.contains("good.test")),
        "{}",
        h.logs().join("\n")
    );
    let metrics = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    assert!(
        metrics.contains("tls_reports_sent_total{destination=\"https\",result=\"ok\"}"),
        "{metrics}"
    );
}
