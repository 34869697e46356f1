//! The HTTP injection API end to end: one request for many recipients becomes one
//! message each, built from parts with each recipient's substitutions, DKIM-signed for
//! its tenant (dkimpy checks the signature), on disk before the 200 (kill -9 right after
//! loses nothing) and delivered to a sink; every bad input gets its 4xx naming the field
//! and queues nothing; keys and TLS where the listener is not loopback-only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::hermod::Hermod;
use common::http::{Answer, request};
use common::sink;
use serde_json::json;

const KEY: &str = "acme-key-0123456789abcdef";

async fn post(port: u16, key: Option<&str>, body: &str) -> Answer {
    request(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        "POST",
        "/api/inject/v1",
        key,
        Some(body),
    )
    .await
}

fn key_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("acme.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn config(sink_port: u16, inject_port: u16, extra: &str) -> String {
    format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\nmax_message_size = 100000\n[queue]\nscan_interval = \"100ms\"\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n\
[http_inject]\nenabled = true\nlisten = \"127.0.0.1:{inject_port}\"\nmax_recipients = 5\nmax_request_size = 300000\n{extra}"
    )
}

fn newsletter(recipients: &[&str]) -> String {
    let recipients: Vec<_> = recipients
        .iter()
        .map(|r| json!({"email": r, "substitutions": {"name": r.split('@').next().unwrap()}}))
        .collect();
    json!({
        "envelope_sender": "news@shop.test",
        "recipients": recipients,
        "substitutions": {"shop": "The Shop"},
        "content": {
            "from": {"email": "news@shop.test", "name": "{{ shop }}"},
            "subject": "Hello {{ name }}",
            "text_body": "Dear {{ name }}, news from {{ shop }}.",
            "html_body": "<p>Dear {{ name }}</p>",
            "headers": {"X-Campaign-Id": "spring"},
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_becomes_one_signed_message_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = common::free_port();
    let record = common::dkim::keygen(dir.path(), "shop.test", "s1", "ed25519");
    let extra = format!(
        "[http_inject.tenants.acme]\nkey_file = \"{}\"\nsenders = [\"@shop.test\"]\n\
[dkim]\n[[dkim.keys]]\ndomain = \"shop.test\"\nselector = \"s1\"\nkey_file = \"{}/s1.key\"\n",
        key_file(dir.path()).display(),
        dir.path().display()
    );
    let h = Hermod::start(
        dir.path(),
        &config(sink.local_addrs()[0].port(), port, &extra),
    )
    .await;
    let answer = post(
        port,
        Some(KEY),
        &newsletter(&["ann@a.test", "bob@b.test", "cy@c.test"]),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["refused"], 0);
    let ids: Vec<&str> = body["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "accepted");
            r["queue_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );

    let stored = sink::wait_stored(&dir.path().join("sink"), 3, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 3, "{}", h.logs().join("\n"));
    let bob = stored
        .iter()
        .find(|m| m.rcpt_to == ["bob@b.test"])
        .expect("bob's");
    assert_eq!(bob.mail_from, "news@shop.test");
    let text = String::from_utf8_lossy(&bob.data).into_owned();
    assert!(text.contains("Subject: Hello bob\r\n"), "{text}");
    assert!(text.contains("Dear bob, news from The Shop."), "{text}");
    assert!(text.contains("(hermod) with HTTP id "), "{text}");
    assert!(
        text.contains("DKIM-Signature:") && text.contains("d=shop.test"),
        "{text}"
    );
    // dkimpy, which we did not write, verifies the signature against the record.
    let script = format!(
        "import dkim,sys\nmsg=open(sys.argv[1],'rb').read()\nrec={record:?}.encode()\n\
print(dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec))\n"
    );
    let message_file = dir.path().join("bob.eml");
    std::fs::write(&message_file, &bob.data).unwrap();
    let out = std::process::Command::new(common::python3())
        .args(["-c", &script])
        .arg(&message_file)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The key is required, and must be a tenant's; the tenant's senders hold.
    assert_eq!(
        post(port, None, &newsletter(&["x@a.test"])).await.status,
        401
    );
    let wrong = post(
        port,
        Some("not-the-key-at-all-000"),
        &newsletter(&["x@a.test"]),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["field"], "Authorization");
    let foreign = newsletter(&["x@a.test"]).replacen(
        "\"envelope_sender\":\"news@shop.test\"",
        "\"envelope_sender\":\"ceo@victim.test\"",
        1,
    );
    assert!(foreign.contains("ceo@victim.test"));
    let refused = post(port, Some(KEY), &foreign).await;
    assert_eq!(
        (refused.status, refused.json()["field"].as_str()),
        (422, Some("envelope_sender")),
        "{}",
        refused.body
    );
    assert!(
        h.wait_log("injection request refused", Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_naming_its_field_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = common::free_port();
    let h = Hermod::start(dir.path(), &config(sink.local_addrs()[0].port(), port, "")).await;
    let raw = |rcpts: &str, content: &str| {
        format!(r#"{{"envelope_sender":"a@shop.test","recipients":[{rcpts}],"content":{content}}}"#)
    };
    let big_body = "x".repeat(120_000);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "body"),
        (
            r#"{"envelope_sender":"a@shop.test","recipients":[{"email":"b@c.test"}]}"#.into(),
            422,
            "content",
        ),
        (
            raw(
                r#"{"email":"b@c.test"},{"email":"not an address"}"#,
                r#""Subject: x\n\nx""#,
            ),
            422,
            "recipients[1].email",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                r#"{"from":{"email":"a@shop.test"},"subject":"x"}"#,
            ),
            422,
            "content",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                r#"{"from":{"email":"a@shop.test"},"subject":"hi\r\nBcc: all@x.test","text_body":"x"}"#,
            ),
            422,
            "content.subject",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                r#"{"from":{"email":"a@shop.test"},"subject":"{{ broken","text_body":"x"}"#,
            ),
            422,
            "content.subject",
        ),
        (
            raw(
                &[r#"{"email":"b@c.test"}"#; 6].join(","),
                r#""Subject: x\n\nx""#,
            ),
            413,
            "recipients",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                &format!(r#""Subject: x\n\n{big_body}""#),
            ),
            413,
            "content",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                &format!(r#""Subject: x\n\n{}""#, "y".repeat(400_000)),
            ),
            413,
            "body",
        ),
        (
            raw(
                r#"{"email":"b@c.test"}"#,
                r#"{"from":{"email":"a@shop.test"},"attachments":[{"content_type":"text/plain","data":"!!"}]}"#,
            ),
            422,
            "content.attachments[0].data",
        ),
    ];
    // Only the second recipient's message is too large: the first is not queued either.
    let second_too_large = raw(
        &format!(
            r#"{{"email":"b@c.test"}},{{"email":"d@c.test","substitutions":{{"big":"{big_body}"}}}}"#
        ),
        r#""Subject: x\n\n{{ big }}""#,
    );
    let mut cases = cases;
    cases.push((second_too_large, 413, "content"));
    for (body, status, field) in &cases {
        let answer = post(port, None, body).await;
        assert_eq!(answer.status, *status, "{body:.200}: {}", answer.body);
        assert_eq!(
            answer.json()["field"],
            *field,
            "{body:.200}: {}",
            answer.body
        );
        assert!(
            answer.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !h.logs().iter().any(|l| l.contains("message accepted")),
        "{}",
        h.logs().join("\n")
    );
    assert!(sink::stored(&dir.path().join("sink")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_is_on_disk_kill_9_right_after_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The next hop is down while hermod takes the request and dies. An attempt that
    // failed before the kill may have been recorded (a loaded machine leaves time for
    // it): its retry comes in a second, not in queue.retry_interval's default 5 minutes.
    let sink_port = common::free_port();
    let port = common::free_port();
    let config = config(sink_port, port, "").replace(
        "scan_interval = \"100ms\"\n",
        "scan_interval = \"100ms\"\nretry_interval = \"1s\"\n",
    );
    let mut h = Hermod::start(dir.path(), &config).await;
    let answer = post(port, None, &newsletter(&["ann@a.test", "bob@b.test"])).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    h.kill().await;
    let _sink = sink::start_on(&dir.path().join("sink"), sink_port).await;
    h.restart().await;
    let stored = sink::wait_stored(&dir.path().join("sink"), 2, Duration::from_secs(30)).await;
    assert_eq!(stored.len(), 2, "{}", h.logs().join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_servers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::certs::TestCa::new(dir.path());
    let server = ca.issue(dir.path(), "server", &["localhost"], false);
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = common::free_port();
    let extra = format!(
        "tls = true\n[http_inject.tenants.acme]\nkey_file = \"{}\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        key_file(dir.path()).display(),
        server.cert.display(),
        server.key.display()
    );
    let h = Hermod::start(
        dir.path(),
        &config(sink.local_addrs()[0].port(), port, &extra),
    )
    .await;
    // Python's urllib, verifying against the test CA.
    let script = format!(
        "import json,ssl,urllib.request\nctx=ssl.create_default_context(cafile={ca:?})\n\
req=urllib.request.Request('https://localhost:{port}/api/inject/v1',data={body:?}.encode(),\
headers={{'Authorization':'Bearer {KEY}','Content-Type':'application/json'}})\n\
print(json.load(urllib.request.urlopen(req,context=ctx))['accepted'])\n",
        ca = ca.cert_file.display().to_string(),
        body = newsletter(&["ann@a.test"]),
    );
    let out = std::process::Command::new(common::python3())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        h.logs().join("\n")
    );
    sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
}

#[test]
fn a_listener_beyond_loopback_needs_tls_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(
        &path,
        "[http_inject]\nenabled = true\nlisten = \"0.0.0.0:8025\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["serve", "--validate-only", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("http_inject.tls") && text.contains("http_inject.tenants"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_blaster_inject_loads_the_api_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = common::free_port();
    let h = Hermod::start(
        dir.path(),
        &config(sink.local_addrs()[0].port(), port, "")
            .replace("max_recipients = 5", "max_recipients = 100"),
    )
    .await;
    let load = smtp_blaster::inject::InjectConfig {
        url: format!("http://127.0.0.1:{port}/api/inject/v1"),
        key: None,
        concurrency: 4,
        messages: 500,
        recipients: 50,
        size: 512,
        from: "blaster@load.test".into(),
        domain: "sink.test".into(),
        timeout: Duration::from_secs(60),
    };
    let report = tokio::task::spawn_blocking(move || {
        actix_web::rt::System::new().block_on(smtp_blaster::inject::run(load))
    })
    .await
    .unwrap();
    assert_eq!((report.requests, report.accepted), (10, 500), "{report:?}");
    assert_eq!(report.statuses.get(&200), Some(&10));
    let stored = sink::wait_stored(&dir.path().join("sink"), 500, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 500, "{}", h.logs().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_rate_limit_holds_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let port = common::free_port();
    let extra = format!(
        "[http_inject.tenants.acme]\nkey_file = \"{}\"\n[rate_limit]\nmessages_per_user = 2\n",
        key_file(dir.path()).display()
    );
    let h = Hermod::start(
        dir.path(),
        &config(sink.local_addrs()[0].port(), port, &extra),
    )
    .await;
    let answer = post(
        port,
        Some(KEY),
        &newsletter(&["a@x.test", "b@x.test", "c@x.test"]),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(
        (body["accepted"].as_u64(), body["refused"].as_u64()),
        (Some(2), Some(1)),
        "{body}"
    );
    let refused = body["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "refused")
        .unwrap();
    assert_eq!(refused["temporary"], true, "{refused}");
    assert!(
        refused["reason"].as_str().unwrap().starts_with("4"),
        "{refused}\n{}",
        h.logs().join("\n")
    );
}
