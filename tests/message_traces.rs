//! One OpenTelemetry trace per message (the seeds' SMTP_ENABLE_TRACING and
//! SMTP_TRACING_SERVICE_NAME), read by a collector stand-in that parses OTLP/HTTP with
//! the OpenTelemetry project's own protobuf definitions: the connection, the policy
//! checks, the spool and every delivery attempt of a message are spans of one trace,
//! and the trace goes on after a restart; a collector that is down costs no mail.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::otlp::OtlpReceiver;
use common::sink;
use common::webhook::wait_events;
use serde_json::Value;
use smtp_blaster::sink::SinkHandle;

/// OTLP's span kinds.
const INTERNAL: u64 = 1;
const SERVER: u64 = 2;
const CLIENT: u64 = 3;
/// OTLP's status codes.
const STATUS_OK: u64 = 1;
const STATUS_ERROR: u64 = 2;

const ENV: &[(&str, &str)] = &[
    ("SMTP_ENABLE_TRACING", "true"),
    ("SMTP_TRACING_SERVICE_NAME", "smtp-test-east-1"),
];

fn config(dir: &Path, sink_port: u16, endpoint: &str, extra: &str) -> String {
    let headers = dir.join("otlp-headers");
    std::fs::write(&headers, "# the collector's key\nX-Api-Key: k3y-for-otlp\n").unwrap();
    std::fs::set_permissions(&headers, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\n\
[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1s\"\nmax_retry_interval = \"1s\"\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n\
[tracing]\nendpoint = \"{endpoint}\"\nheaders_file = \"{}\"\n{extra}",
        headers.display()
    );
    std::fs::write(dir.join("hermod.toml"), &config).unwrap();
    config
}

async fn start(dir: &Path) -> Hermod {
    Hermod::start_with(dir.join("hermod.toml"), dir.join("data"), ENV).await
}

/// A sink (in `dir/sink`), a collector stand-in, and hermod tracing to it with `extra`
/// in `[tracing]` (or after it).
async fn traced(dir: &Path, extra: &str) -> (SinkHandle, OtlpReceiver, Hermod) {
    let sink = sink::start(&dir.join("sink")).await;
    let collector = OtlpReceiver::start(dir);
    config(
        dir,
        sink.local_addrs()[0].port(),
        &collector.endpoint,
        extra,
    );
    (sink, collector, start(dir).await)
}

fn named<'a>(spans: &'a [Value], trace: &str, name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["trace_id"] == trace && s["name"] == name)
        .collect()
}

/// The trace id of the message whose `smtp.receive` span names queue id `id`.
fn trace_of(spans: &[Value], id: &str) -> Option<String> {
    spans
        .iter()
        .find(|s| s["name"] == "smtp.receive" && s["attributes"]["hermod.queue_id"] == id)
        .map(|s| s["trace_id"].as_str().unwrap().to_string())
}

/// The events of a span: name and time (Unix nanoseconds), in order.
fn root_events(span: &Value) -> Vec<(String, u64)> {
    span["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["time"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn deliveries(spans: &[Value], id: &str) -> usize {
    trace_of(spans, id).map_or(0, |t| named(spans, &t, "smtp.deliver").len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_message_from_its_connection_to_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, collector, mut h) = traced(dir.path(), "").await;
    let mut c = Client::connect(h.addr).await;
    let body = b"Subject: traced\r\n\r\nhello\r\n";
    // One job to the sink: ok@ is delivered, tempfail@ deferred (and tried again each
    // second); then a second message on the same connection.
    let first = queue_id(
        &c.send_message(
            "news@shop.test",
            &["ok@dest.test", "tempfail@dest.test"],
            body,
        )
        .await,
    );
    let second = queue_id(
        &c.send_message("news@shop.test", &["ok@dest.test"], body)
            .await,
    );
    let both = |spans: &[Value]| deliveries(spans, &first) >= 2 && deliveries(spans, &second) >= 1;
    let spans = wait_events(|| collector.spans(), both, Duration::from_secs(30)).await;
    assert!(both(&spans), "{spans:#?}\n{}", h.logs().join("\n"));

    // Every span comes from this node, under the name the seeds' variable gave, with the
    // key of tracing.headers_file.
    for span in &spans {
        assert_eq!(span["service"], "smtp-test-east-1", "{span}");
        assert_eq!(span["host"], "relay.hermod.test", "{span}");
        assert_eq!(span["api_key"], "k3y-for-otlp", "{span}");
    }

    let trace = trace_of(&spans, &first).unwrap();
    let root = named(&spans, &trace, "smtp.receive")[0];
    assert_eq!(root["parent_span_id"], "", "the root has no parent: {root}");
    assert_eq!(root["kind"], SERVER);
    assert_eq!(root["attributes"]["client.address"], "127.0.0.1");
    assert_eq!(root["attributes"]["smtp.helo"], "client.test");
    assert_eq!(root["attributes"]["smtp.mail_from"], "news@shop.test");
    assert_eq!(root["attributes"]["smtp.rcpt_count"], 2);
    assert_eq!(root["attributes"]["smtp.reply_code"], 250);
    let root_id = root["span_id"].as_str().unwrap();
    // The connection's first message: its trace starts with the connection, and the
    // transaction (MAIL) and the spool's fsync are marked in it.
    let marks = root_events(root);
    assert_eq!(marks.len(), 2, "{root}");
    assert_eq!(marks[0].0, "smtp.mail");
    assert_eq!(marks[1].0, "queue.store");
    assert!(root["start"].as_u64().unwrap() <= marks[0].1, "{root}");
    assert!(marks[0].1 <= marks[1].1, "{root}");
    assert!(marks[1].1 <= root["end"].as_u64().unwrap(), "{root}");

    // Each delivery attempt is a client span under the root, begun once the message was
    // on its way to the spool (the Queue may hand it out before the 250 is written).
    let attempts = named(&spans, &trace, "smtp.deliver");
    for attempt in &attempts {
        assert_eq!(attempt["parent_span_id"], root_id, "{attempt}");
        assert_eq!(attempt["kind"], CLIENT);
        assert_eq!(attempt["attributes"]["hermod.queue_id"], first.as_str());
        assert!(
            attempt["start"].as_u64().unwrap() >= marks[1].1,
            "{attempt}"
        );
        assert!(attempt["end"].as_u64().unwrap() >= attempt["start"].as_u64().unwrap());
        assert!(
            attempt["attributes"]["server.address"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1"),
            "{attempt}"
        );
    }
    // The first carried both recipients: one sent, one deferred with the sink's reply.
    let first_attempt = attempts.iter().min_by_key(|a| a["start"].as_u64()).unwrap();
    let events = first_attempt["events"].as_array().unwrap();
    let status_of = |to: &str| {
        events
            .iter()
            .find(|e| e["attributes"]["smtp.rcpt_to"] == to)
            .map(|e| e["attributes"]["hermod.status"].clone())
    };
    assert_eq!(
        status_of("ok@dest.test"),
        Some("sent".into()),
        "{first_attempt}"
    );
    assert_eq!(
        status_of("tempfail@dest.test"),
        Some("deferred".into()),
        "{first_attempt}"
    );
    assert_eq!(first_attempt["status_code"], STATUS_OK);
    // The retries carry only the deferred recipient and fail.
    let retry = attempts.iter().max_by_key(|a| a["start"].as_u64()).unwrap();
    assert_eq!(retry["events"].as_array().unwrap().len(), 1, "{retry}");
    assert_eq!(retry["status_code"], STATUS_ERROR, "{retry}");
    assert_eq!(
        retry["events"][0]["attributes"]["hermod.bounce_class"],
        "TransientFailure"
    );

    // The second message on the connection is a trace of its own, begun at its MAIL.
    let other = trace_of(&spans, &second).unwrap();
    assert_ne!(other, trace);
    let other_root = named(&spans, &other, "smtp.receive")[0];
    assert!(other_root["start"].as_u64().unwrap() >= root["end"].as_u64().unwrap());
    assert_eq!(
        root_events(other_root)[0].1,
        other_root["start"].as_u64().unwrap()
    );
    assert_eq!(
        named(&spans, &other, "smtp.deliver")[0]["events"][0]["attributes"]["hermod.status"],
        "sent"
    );

    // Stopped and started again, hermod goes on adding the attempts of the deferred
    // recipient to the same trace: the envelope kept it.
    h.stop().await;
    let before = deliveries(&collector.spans(), &first);
    let h = start(dir.path()).await;
    let more = |spans: &[Value]| deliveries(spans, &first) > before;
    let spans = wait_events(|| collector.spans(), more, Duration::from_secs(30)).await;
    assert!(more(&spans), "{}", h.logs().join("\n"));
    for attempt in named(&spans, &trace, "smtp.deliver") {
        assert_eq!(attempt["parent_span_id"], root_id, "{attempt}");
    }
    let ids: HashSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spans.len(), "every span once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_checks_are_spans_of_the_message() {
    let dir = tempfile::tempdir().unwrap();
    // The rate limiter checks at MAIL and RCPT (loopback not exempt).
    let limits = "[rate_limit]\nmessages_per_ip = 1000\nrecipients_per_user = 1000\nexempt = []\n";
    let (_sink, collector, h) = traced(dir.path(), limits).await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message("a@shop.test", &["ok@dest.test"], b"Subject: x\r\n\r\nx\r\n")
            .await,
    );
    let done = |spans: &[Value]| deliveries(spans, &id) >= 1;
    let spans = wait_events(|| collector.spans(), done, Duration::from_secs(30)).await;
    assert!(done(&spans), "{spans:#?}\n{}", h.logs().join("\n"));
    let trace = trace_of(&spans, &id).unwrap();
    let root = named(&spans, &trace, "smtp.receive")[0];
    let checks = named(&spans, &trace, "policy.check");
    let stages: Vec<&str> = checks
        .iter()
        .map(|c| c["attributes"]["hermod.stage"].as_str().unwrap())
        .collect();
    assert!(
        stages.contains(&"mail") && stages.contains(&"rcpt"),
        "{checks:#?}"
    );
    for check in checks {
        assert_eq!(check["parent_span_id"], root["span_id"]);
        assert_eq!(check["attributes"]["hermod.verdict"], "accept");
        assert_eq!(check["kind"], INTERNAL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_no_mail_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let sink = sink::start(&sink_dir).await;
    let down = format!("http://127.0.0.1:{}/v1/traces", common::free_port());
    config(dir.path(), sink.local_addrs()[0].port(), &down, "");
    let h = start(dir.path()).await;
    let mut c = Client::connect(h.addr).await;
    for _ in 0..5 {
        let reply = c
            .send_message("a@shop.test", &["ok@dest.test"], b"Subject: x\r\n\r\nx\r\n")
            .await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    sink::wait_stored(&sink_dir, 5, Duration::from_secs(30)).await;
    let warned = h
        .wait_log(
            "trace collector refused or unreachable",
            Duration::from_secs(20),
        )
        .await;
    assert!(warned.is_some(), "{}", h.logs().join("\n"));
    // Batches go at least every second; one more has failed by now, unlogged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warnings = h
        .logs()
        .iter()
        .filter(|l| l.contains("trace collector refused or unreachable"))
        .count();
    assert_eq!(warnings, 1, "{}", h.logs().join("\n"));
    let scrape = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    let failed: u64 = scrape
        .lines()
        .find_map(|l| l.strip_prefix("tracing_spans_failed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(failed > 0, "{scrape}");
    assert!(scrape.contains("tracing_spans_dropped_total 0"), "{scrape}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_of_zero_traces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let (_sink, collector, mut h) = traced(dir.path(), "sample_ratio = 0.0\n").await;
    let mut c = Client::connect(h.addr).await;
    for _ in 0..3 {
        c.send_message("a@shop.test", &["ok@dest.test"], b"Subject: x\r\n\r\nx\r\n")
            .await;
    }
    sink::wait_stored(&sink_dir, 3, Duration::from_secs(30)).await;
    let scrape = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    // Tracing is on (only the sampler says no), and a stop sends whatever was queued.
    assert!(
        h.logs()
            .iter()
            .any(|l| l.contains("tracing messages to an OTLP collector")),
        "{}",
        h.logs().join("\n")
    );
    h.stop().await;
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
    assert!(
        scrape.contains("tracing_spans_exported_total 0"),
        "{scrape}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gets_only_its_own_transactions_checks() {
    let dir = tempfile::tempdir().unwrap();
    // A check at RCPT only: nothing at MAIL marks where a transaction begins.
    let limits = "[rate_limit]\nrecipients_per_user = 1000\nexempt = []\n";
    let (_sink, collector, h) = traced(dir.path(), limits).await;
    let mut c = Client::connect(h.addr).await;
    // One read: a transaction given up (RSET) after its RCPT was checked, then the one
    // that carries the message.
    c.send(
        b"MAIL FROM:<a@shop.test>\r\nRCPT TO:<ok@dest.test>\r\nRSET\r\n\
MAIL FROM:<a@shop.test>\r\nRCPT TO:<ok@dest.test>\r\nDATA\r\n",
    )
    .await;
    for expected in ["250", "250", "250", "250", "250", "354"] {
        let reply = c.reply().await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    c.send(b"Subject: x\r\n\r\nx\r\n.\r\n").await;
    let id = queue_id(&c.reply().await);
    let done = |spans: &[Value]| deliveries(spans, &id) >= 1;
    let spans = wait_events(|| collector.spans(), done, Duration::from_secs(30)).await;
    assert!(done(&spans), "{spans:#?}\n{}", h.logs().join("\n"));
    let trace = trace_of(&spans, &id).unwrap();
    let checks = named(&spans, &trace, "policy.check");
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0]["attributes"]["hermod.stage"], "rcpt");
    // Its RCPT was checked after the RSET: the check lies after the message's start.
    let root = named(&spans, &trace, "smtp.receive")[0];
    assert!(
        checks[0]["start"].as_u64().unwrap() >= root_events(root)[0].1,
        "{root}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_message_is_a_trace_too() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let inject = format!("[http_inject]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n");
    let (_sink, collector, h) = traced(dir.path(), &inject).await;
    let body = serde_json::json!({
        "envelope_sender": "news@shop.test",
        "recipients": [{"email": "ok@dest.test"}],
        "content": {"from": {"email": "news@shop.test"}, "subject": "hi", "text_body": "hello"}
    })
    .to_string();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let answer = common::http::request(addr, "POST", "/api/inject/v1", None, Some(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let id = answer.json()["recipients"][0]["queue_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", answer.body))
        .to_string();
    let done = |spans: &[Value]| {
        spans.iter().any(|s| {
            s["name"] == "smtp.deliver" && s["attributes"]["hermod.queue_id"] == id.as_str()
        })
    };
    let spans = wait_events(|| collector.spans(), done, Duration::from_secs(30)).await;
    assert!(done(&spans), "{spans:#?}\n{}", h.logs().join("\n"));
    let root = spans
        .iter()
        .find(|s| s["name"] == "http.inject" && s["attributes"]["hermod.queue_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(root["parent_span_id"], "");
    assert_eq!(root["kind"], SERVER);
    assert_eq!(root["attributes"]["smtp.reply_code"], 250);
    let deliver = spans
        .iter()
        .find(|s| s["name"] == "smtp.deliver" && s["trace_id"] == root["trace_id"])
        .unwrap();
    assert_eq!(deliver["parent_span_id"], root["span_id"]);
}
