//! Delivery events reach every destination at once (a signed webhook served by Python's
//! standard library, a real redis-server's stream, a JSON-lines file), each outcome with
//! its class and the sender's tracking headers; a destination that is down keeps its
//! events until it returns; kill -9 under load loses no event of an acknowledged
//! message; a DSN that comes back later becomes an OOB event of the message it is about.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::redis::RedisServer;
use common::sink;
use common::webhook::{WebhookReceiver, read_json_lines, wait_events};
use serde_json::Value;

const KEY: &str = "s3cret-hmac-key";

fn secret_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("webhook.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn config(dir: &Path, sink_port: u16, webhook_port: u16, extra: &str) -> String {
    format!(
        "[smtp]\nhostname = \"relay.hermod.test\"\n[queue]\nscan_interval = \"100ms\"\nretry_interval = \"1h\"\n\
[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n\
[events]\nwebhook_url = \"http://127.0.0.1:{webhook_port}/events\"\nwebhook_secret_file = \"{}\"\n\
headers = [\"X-Campaign-Id\"]\nmax_backoff = \"1s\"\n{extra}",
        secret_file(dir).display()
    )
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_reaches_the_webhook_the_stream_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let redis = RedisServer::start(dir.path(), common::free_port());
    let webhook_port = common::free_port();
    let webhook = WebhookReceiver::start(dir.path(), webhook_port, KEY, 0);
    let file = dir.path().join("events.jsonl");
    let extra = format!(
        "redis_stream = \"hermod:events\"\nfile = \"{}\"\n[redis]\nurl = \"redis://127.0.0.1:{}\"\n",
        file.display(),
        redis.port
    );
    let h = Hermod::start(
        dir.path(),
        &config(
            dir.path(),
            sink.local_addrs()[0].port(),
            webhook_port,
            &extra,
        ),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    let body = b"Subject: spring\r\nX-Campaign-Id: spring-sale\r\n\r\nhello\r\n";
    let mut ids = HashMap::new();
    for to in ["ok@dest.test", "permfail@dest.test", "tempfail@dest.test"] {
        ids.insert(
            to,
            queue_id(&c.send_message("news@shop.test", &[to], body).await),
        );
    }
    // The bounce to news@shop.test is a message too: its Reception is not an event (it
    // was not received), but its delivery is.
    let done = |events: &[Value]| {
        of_kind(events, "Reception").len() == 3
            && of_kind(events, "Delivery").len() == 2
            && of_kind(events, "Bounce").len() == 1
            && of_kind(events, "TransientFailure").len() == 1
    };
    let events = wait_events(|| webhook.events(), done, Duration::from_secs(30)).await;
    assert!(done(&events), "{events:#?}\n{}", h.logs().join("\n"));
    assert_eq!(webhook.bad_signatures(), 0);

    let bounce = of_kind(&events, "Bounce")[0];
    assert_eq!(bounce["queue_id"], ids["permfail@dest.test"]);
    assert_eq!(bounce["recipient"], "permfail@dest.test");
    assert_eq!(bounce["bounce_class"], "InvalidRecipient");
    assert_eq!(bounce["code"], "5.1.1");
    assert!(
        bounce["reply"]
            .as_str()
            .unwrap()
            .contains("Mailbox unavailable")
    );
    assert!(bounce["next_hop"].as_str().unwrap().contains("127.0.0.1"));
    let deferral = of_kind(&events, "TransientFailure")[0];
    assert_eq!(deferral["bounce_class"], "TransientFailure");
    assert_eq!(deferral["queue_id"], ids["tempfail@dest.test"]);
    let delivery = of_kind(&events, "Delivery")
        .into_iter()
        .find(|e| e["recipient"] == "ok@dest.test")
        .expect("the delivery to ok@");
    assert_eq!(delivery["queue_id"], ids["ok@dest.test"]);
    assert!(delivery.get("bounce_class").is_none());
    let ours: HashSet<&str> = ids.values().map(String::as_str).collect();
    for event in events
        .iter()
        .filter(|e| ours.contains(e["queue_id"].as_str().unwrap()))
    {
        assert_eq!(
            event["headers"],
            serde_json::json!([["X-Campaign-Id", "spring-sale"]]),
            "{event}"
        );
        assert_eq!(event["node"], "relay.hermod.test");
        assert!(
            event["id"]
                .as_str()
                .unwrap()
                .starts_with("relay.hermod.test-")
        );
    }
    let ids_seen: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids_seen.len(), events.len(), "event ids are unique");

    // The same events, with the same ids, in the file and in the stream.
    let in_file = wait_events(
        || read_json_lines(&file),
        |e| e.len() >= events.len(),
        Duration::from_secs(10),
    )
    .await;
    let file_ids: HashSet<&str> = in_file.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(file_ids, ids_seen);
    let stream = wait_events(
        || {
            redis
                .cli(&["XRANGE", "hermod:events", "-", "+"])
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        },
        |e| e.len() >= events.len(),
        Duration::from_secs(10),
    )
    .await;
    let stream_ids: HashSet<&str> = stream.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(stream_ids, ids_seen);

    // The class is in the log line and the metric too.
    let line = h
        .wait_log("bounce_class=\"InvalidRecipient\"", Duration::from_secs(5))
        .await;
    assert!(
        line.as_ref()
            .is_some_and(|l| l.contains("permfail@dest.test")),
        "{line:?}\n{}",
        h.logs().join("\n")
    );

    let scrape = common::http::get(h.admin.unwrap(), "/metrics").await.body;
    assert!(
        scrape.contains("delivery_bounces_total{class=\"InvalidRecipient\"} 1"),
        "{scrape}"
    );

    // An operator's action is an event as well.
    let out = h.command(dir.path(), &["queue", "delete", &ids["tempfail@dest.test"]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = wait_events(
        || webhook.events(),
        |e| !of_kind(e, "AdminAction").is_empty(),
        Duration::from_secs(10),
    )
    .await;
    let action = of_kind(&events, "AdminAction")[0];
    assert_eq!(action["action"], "delete");
    assert_eq!(action["queue_id"], ids["tempfail@dest.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_is_down_gets_its_events_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let webhook_port = common::free_port();
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), sink.local_addrs()[0].port(), webhook_port, ""),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = format!("Subject: {i}\r\n\r\nx\r\n");
        ids.push(queue_id(
            &c.send_message("a@shop.test", &["ok@dest.test"], body.as_bytes())
                .await,
        ));
    }
    // Delivery goes on while the destination is down.
    sink::wait_stored(&dir.path().join("sink"), 5, Duration::from_secs(20)).await;
    let line = h
        .wait_log("event destination failed", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(line.contains("webhook") && line.contains("WARN"), "{line}");
    // It comes back, refusing its first batch with 503: the batch is sent again.
    let webhook = WebhookReceiver::start(dir.path(), webhook_port, KEY, 1);
    let done =
        |e: &[Value]| of_kind(e, "Reception").len() == 5 && of_kind(e, "Delivery").len() == 5;
    let events = wait_events(|| webhook.events(), done, Duration::from_secs(30)).await;
    assert!(done(&events), "{events:#?}\n{}", h.logs().join("\n"));
    let got: HashSet<&str> = events
        .iter()
        .map(|e| e["queue_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect());
    assert!(
        h.wait_log("event destination reachable again", Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_by_the_receiver_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let webhook_port = common::free_port();
    let webhook = WebhookReceiver::start(dir.path(), webhook_port, "another-key", 0);
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), sink.local_addrs()[0].port(), webhook_port, ""),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    c.send_message("a@shop.test", &["ok@dest.test"], b"Subject: x\r\n\r\nx\r\n")
        .await;
    let line = h
        .wait_log("event destination failed", Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(line.contains("HTTP 401"), "{line}");
    assert!(webhook.bad_signatures() >= 1);
    assert!(webhook.events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_event_of_an_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let webhook_port = common::free_port();
    let webhook = WebhookReceiver::start(dir.path(), webhook_port, KEY, 0);
    let mut h = Hermod::start(
        dir.path(),
        &config(dir.path(), sink.local_addrs()[0].port(), webhook_port, ""),
    )
    .await;
    // Four clients send until hermod dies under them; every 250 is an acknowledged
    // message.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for n in 0..4 {
        let (addr, acknowledged) = (h.addr, acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..200 {
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                    return;
                };
                let Some(id) = send_one(stream, n, i).await else {
                    return;
                };
                acknowledged.lock().unwrap().push(id);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.kill().await;
    for client in clients {
        let _ = client.await;
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "only {} messages before the kill",
        acknowledged.len()
    );
    h.restart().await;
    let done = |events: &[Value]| {
        let received: HashSet<&str> = of_kind(events, "Reception")
            .iter()
            .map(|e| e["queue_id"].as_str().unwrap())
            .collect();
        let delivered: HashSet<&str> = of_kind(events, "Delivery")
            .iter()
            .map(|e| e["queue_id"].as_str().unwrap())
            .collect();
        acknowledged
            .iter()
            .all(|id| received.contains(id.as_str()) && delivered.contains(id.as_str()))
    };
    let events = wait_events(|| webhook.events(), done, Duration::from_secs(60)).await;
    let received: HashSet<&str> = of_kind(&events, "Reception")
        .iter()
        .map(|e| e["queue_id"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !received.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "no Reception event for {} acknowledged messages: {missing:?}",
        missing.len()
    );
    assert!(
        done(&events),
        "a Delivery event is missing\n{}",
        h.logs().join("\n")
    );
}

/// One message over `stream`; its queue id once hermod answered 250, `None` when the
/// connection broke first.
async fn send_one(stream: tokio::net::TcpStream, n: usize, i: usize) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut expect = async |code: &str| loop {
        let line = lines.next_line().await.ok()??;
        if line.as_bytes().get(3) == Some(&b' ') {
            return line.starts_with(code).then_some(line);
        }
    };
    expect("220").await?;
    let commands = [
        ("EHLO load.test\r\n".to_string(), "250"),
        ("MAIL FROM:<load@shop.test>\r\n".to_string(), "250"),
        (format!("RCPT TO:<ok{n}@dest.test>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
    ];
    for (command, code) in commands {
        write.write_all(command.as_bytes()).await.ok()?;
        expect(code).await?;
    }
    let body = format!("Subject: {n}-{i}\r\n\r\nload\r\n.\r\n");
    write.write_all(body.as_bytes()).await.ok()?;
    let reply = expect("250").await?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Some(queue_id(&reply))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsn_that_comes_back_later_is_an_oob_event_of_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink::start(&dir.path().join("sink")).await;
    let webhook_port = common::free_port();
    let webhook = WebhookReceiver::start(dir.path(), webhook_port, KEY, 0);
    let h = Hermod::start(
        dir.path(),
        &config(dir.path(), sink.local_addrs()[0].port(), webhook_port, ""),
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    let original = queue_id(
        &c.send_message(
            "news@shop.test",
            &["gone@remote.test"],
            b"Subject: offer\r\nX-Campaign-Id: c1\r\n\r\nx\r\n",
        )
        .await,
    );
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    let sent = String::from_utf8_lossy(&stored[0].data).into_owned();
    let headers = sent.split("\r\n\r\n").next().unwrap();
    // The remote server accepted it, then failed it: its DSN returns our headers.
    let dsn = format!(
        "From: MAILER-DAEMON@mx.remote.test\r\nTo: news@shop.test\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.test\r\n\r\n\
Final-Recipient: rfc822; gone@remote.test\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n\r\n\
--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--b1--\r\n"
    );
    c.send_message("", &["news@shop.test"], dsn.as_bytes())
        .await;
    let events = wait_events(
        || webhook.events(),
        |e| !of_kind(e, "OOB").is_empty(),
        Duration::from_secs(20),
    )
    .await;
    let oob = of_kind(&events, "OOB");
    assert_eq!(oob.len(), 1, "{events:#?}");
    assert_eq!(oob[0]["queue_id"], original);
    assert_eq!(oob[0]["recipient"], "gone@remote.test");
    assert_eq!(oob[0]["bounce_class"], "QuotaIssues");
    assert_eq!(oob[0]["code"], "5.2.2");
    assert_eq!(oob[0]["next_hop"], "mx.remote.test");
    assert!(
        h.wait_log(
            "returned DSN matched to a sent message",
            Duration::from_secs(5)
        )
        .await
        .is_some()
    );
}
