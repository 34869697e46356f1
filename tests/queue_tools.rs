//! The operator's queue tools against a running hermod: `hermod queue list` (with
//! filters and pages), `show`, `hold` / `release`, `flush`, `delete`, and `bounce`, whose
//! bounce reaches the sender's server; the same actions over the admin API.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;
use common::{http, sink};

const TOKEN: &str = "s3cret";

/// Mail for `dest.test` waits (its next hop is down); mail for `origin.test` (bounces to
/// the senders) goes to the sink.
async fn setup(dir: &Path) -> (Hermod, smtp_blaster::sink::SinkHandle) {
    let sink = sink::start(&dir.join("sink")).await;
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n[queue]\nretry_interval = \"1h\"\nmax_retry_interval = \"1h\"\nscan_interval = \"100ms\"\n\
         [delivery]\ndead_host_failures = 1000\n[admin]\ntoken = \"{TOKEN}\"\n\
         [delivery.transport]\n\"dest.test\" = \"smtp:[127.0.0.1]:{}\"\n\"other.test\" = \"smtp:[127.0.0.1]:{}\"\n\"origin.test\" = \"smtp:[127.0.0.1]:{}\"\n",
        common::free_port(),
        common::free_port(),
        sink.local_addrs()[0].port()
    );
    (Hermod::start(dir, &config).await, sink)
}

async fn send(hermod: &Hermod, to: &str, subject: &str) -> String {
    let mut client = Client::connect(hermod.addr).await;
    let body = format!("Subject: {subject}\r\n\r\nbody\r\n");
    let id = queue_id(
        &client
            .send_message("a@origin.test", &[to], body.as_bytes())
            .await,
    );
    client.cmd("QUIT").await;
    hermod
        .wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .expect("a first, deferred attempt");
    id
}

/// `hermod queue ARGS` against `hermod`.
fn queue(dir: &Path, hermod: &Hermod, args: &[&str]) -> Output {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    hermod.command(dir, &all)
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn listed(dir: &Path, hermod: &Hermod, filter: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(filter);
    let page: serde_json::Value =
        serde_json::from_str(&stdout(&queue(dir, hermod, &args))).unwrap();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pages_and_show_gives_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    let first = send(&hermod, "u@dest.test", "one").await;
    let second = send(&hermod, "v@other.test", "two").await;

    let text = stdout(&queue(dir.path(), &hermod, &["list"]));
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    assert!(text.contains("u@dest.test [deferred]"), "{text}");
    assert_eq!(
        listed(dir.path(), &hermod, &["--domain", "dest.test"]),
        [first.as_str()]
    );
    assert_eq!(
        listed(dir.path(), &hermod, &["--recipient", "V@Other.Test"]),
        [second.as_str()]
    );
    assert_eq!(
        listed(dir.path(), &hermod, &["--state", "deferred"]).len(),
        2
    );
    assert!(listed(dir.path(), &hermod, &["--min-age", "1h"]).is_empty());
    // Pages: one message each, in arrival order.
    let page = stdout(&queue(
        dir.path(),
        &hermod,
        &["list", "--json", "--limit", "1"],
    ));
    let page: serde_json::Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["messages"][0]["id"], first.as_str());
    assert_eq!(page["next"], first.as_str());
    assert_eq!(
        listed(dir.path(), &hermod, &["--limit", "1", "--after", &first]),
        [second.as_str()]
    );

    let shown: serde_json::Value = serde_json::from_str(&stdout(&queue(
        dir.path(),
        &hermod,
        &["show", &first, "--json"],
    )))
    .unwrap();
    assert!(
        shown["headers"].as_str().unwrap().contains("Subject: one"),
        "{shown}"
    );
    assert_eq!(shown["recipients"][0]["attempts"], 1);
    assert!(
        shown["recipients"][0]["last_reply"]
            .as_str()
            .unwrap()
            .starts_with("4.4.1"),
        "{shown}"
    );
    // For people: text, the headers, and with --body the body.
    let text = stdout(&queue(dir.path(), &hermod, &["show", &first, "--body"]));
    for part in [
        format!("Queue ID: {first}"),
        "Recipients:\n".to_string(),
        "attempts=1".to_string(),
        "    last reply: 4.4.1".to_string(),
        "Headers:\n".to_string(),
        "Subject: one".to_string(),
        "Body:\n".to_string(),
    ] {
        assert!(text.contains(&part), "{part:?} not in:\n{text}");
    }
    let without_body = stdout(&queue(dir.path(), &hermod, &["show", &first]));
    assert!(!without_body.contains("Body:"), "{without_body}");
    let stats = stdout(&queue(dir.path(), &hermod, &["stats"]));
    assert!(stats.lines().all(|l| l.contains(": ")), "{stats}");
    let missing = queue(dir.path(), &hermod, &["show", "0000000000000001"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_mail_is_not_attempted_until_released_and_delete_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    let id = send(&hermod, "u@dest.test", "held").await;

    stdout(&queue(dir.path(), &hermod, &["hold", &id]));
    assert_eq!(
        listed(dir.path(), &hermod, &["--state", "held"]),
        [id.as_str()]
    );
    let attempts = |h: &Hermod| {
        h.logs()
            .iter()
            .filter(|l| l.contains("delivery attempt") && l.contains(&id))
            .count()
    };
    // A flush of everything does not touch held mail.
    stdout(&queue(dir.path(), &hermod, &["flush"]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(attempts(&hermod), 1, "{}", hermod.logs().join("\n"));
    // Held across a restart too.
    hermod.stop().await;
    hermod.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(attempts(&hermod), 0, "{}", hermod.logs().join("\n"));
    assert_eq!(
        listed(dir.path(), &hermod, &["--state", "held"]),
        [id.as_str()]
    );

    stdout(&queue(dir.path(), &hermod, &["release", &id]));
    hermod
        .wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .expect("attempted again once released");
    assert!(listed(dir.path(), &hermod, &["--state", "held"]).is_empty());

    stdout(&queue(dir.path(), &hermod, &["delete", &id]));
    assert!(listed(dir.path(), &hermod, &[]).is_empty());
    let stats: serde_json::Value =
        serde_json::from_str(&stdout(&queue(dir.path(), &hermod, &["stats", "--json"]))).unwrap();
    assert_eq!(stats["queue_size"], 0, "{stats}");
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounce_sends_the_sender_a_report_and_actions_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    let id = send(&hermod, "u@dest.test", "to bounce").await;
    let admin = hermod.admin.unwrap();
    let path = format!("/api/queue/{id}/bounce");
    assert_eq!(
        http::request(admin, "POST", &path, None, None).await.status,
        401
    );

    let done = http::request(admin, "POST", &path, Some(TOKEN), None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["done"][0], id.as_str());
    let stored = sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 1, "{}", hermod.logs().join("\n"));
    assert_eq!(stored[0].rcpt_to, ["a@origin.test"]);
    let report = String::from_utf8_lossy(&stored[0].data);
    assert!(report.contains("bounced by the operator"), "{report}");
    assert!(report.contains("Status: 5.0.0"), "{report}");
    assert!(listed(dir.path(), &hermod, &["--domain", "dest.test"]).is_empty());
    let again = http::request(admin, "POST", &path, Some(TOKEN), None).await;
    assert_eq!(again.status, 404, "{}", again.body);
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_destination_waits_until_it_is_resumed_or_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    // origin.test goes to the sink: suspended, its mail waits.
    let out = queue(
        dir.path(),
        &hermod,
        &[
            "suspend",
            "origin.test",
            "--for",
            "2h",
            "--reason",
            "migrating the mailbox hosts",
            "--json",
        ],
    );
    let listed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        listed["suspensions"][0]["domain"], "origin.test",
        "{listed}"
    );
    let table = stdout(&queue(dir.path(), &hermod, &["suspensions"]));
    assert!(
        table.contains("origin.test") && table.contains("migrating the mailbox hosts"),
        "{table}"
    );
    assert_eq!(
        listed["suspensions"][0]["reason"],
        "migrating the mailbox hosts"
    );

    let mut client = Client::connect(hermod.addr).await;
    let id = queue_id(
        &client
            .send_message(
                "x@else.test",
                &["b@origin.test"],
                b"Subject: s\r\n\r\nx\r\n",
            )
            .await,
    );
    client.cmd("QUIT").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sink_dir = dir.path().join("sink");
    assert!(
        sink::stored(&sink_dir).is_empty(),
        "delivered while suspended"
    );
    assert!(
        !hermod
            .logs()
            .iter()
            .any(|l| l.contains("delivery attempt") && l.contains(&id))
    );
    let stats = http::get(hermod.admin.unwrap(), "/stats").await.json();
    let row = stats["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["domain"] == "origin.test")
        .cloned();
    assert_eq!(
        row.as_ref().map(|r| r["suspension_reason"].clone()),
        Some("migrating the mailbox hosts".into()),
        "{stats}"
    );

    stdout(&queue(dir.path(), &hermod, &["resume", "origin.test"]));
    let stored = sink::wait_stored(&sink_dir, 1, Duration::from_secs(10)).await;
    assert_eq!(stored.len(), 1, "{}", hermod.logs().join("\n"));

    // A suspension also ends by itself.
    stdout(&queue(
        dir.path(),
        &hermod,
        &["suspend", "origin.test", "--for", "5s"],
    ));
    let mut client = Client::connect(hermod.addr).await;
    client
        .send_message(
            "x@else.test",
            &["c@origin.test"],
            b"Subject: t\r\n\r\nx\r\n",
        )
        .await;
    client.cmd("QUIT").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink::stored(&sink_dir).len(), 1);
    let stored = sink::wait_stored(&sink_dir, 2, Duration::from_secs(15)).await;
    assert_eq!(stored.len(), 2, "{}", hermod.logs().join("\n"));
    let none: serde_json::Value = serde_json::from_str(&stdout(&queue(
        dir.path(),
        &hermod,
        &["suspensions", "--json"],
    )))
    .unwrap();
    assert_eq!(none["suspensions"].as_array().unwrap().len(), 0, "{none}");
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_match_only_recipients_still_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    let mut client = Client::connect(hermod.addr).await;
    let id = queue_id(
        &client
            .send_message(
                "x@else.test",
                &["u@dest.test", "b@origin.test"],
                b"Subject: two\r\n\r\nx\r\n",
            )
            .await,
    );
    client.cmd("QUIT").await;
    hermod
        .wait_status(&id, "sent", Duration::from_secs(10))
        .await
        .expect("origin.test delivered");
    hermod
        .wait_status(&id, "deferred", Duration::from_secs(10))
        .await
        .expect("dest.test deferred");
    assert_eq!(
        listed(dir.path(), &hermod, &["--domain", "dest.test"]),
        [id.as_str()]
    );
    // Its origin.test recipient is delivered: a bulk action by that domain must not
    // reach the message (and bounce its other recipient).
    assert!(listed(dir.path(), &hermod, &["--domain", "origin.test"]).is_empty());
    assert!(listed(dir.path(), &hermod, &["--recipient", "b@origin.test"]).is_empty());
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_survives_a_restart_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hermod, _sink) = setup(dir.path()).await;
    stdout(&queue(
        dir.path(),
        &hermod,
        &[
            "suspend",
            "origin.test",
            "--for",
            "2h",
            "--reason",
            "moving",
        ],
    ));
    hermod.stop().await;
    hermod.restart().await;
    let listed: serde_json::Value = serde_json::from_str(&stdout(&queue(
        dir.path(),
        &hermod,
        &["suspensions", "--json"],
    )))
    .unwrap();
    assert_eq!(
        listed["suspensions"][0]["domain"], "origin.test",
        "{listed}"
    );
    assert_eq!(listed["suspensions"][0]["reason"], "moving", "{listed}");
    // Mail for it waits, as before the restart.
    let mut client = Client::connect(hermod.addr).await;
    client
        .send_message(
            "x@else.test",
            &["b@origin.test"],
            b"Subject: s\r\n\r\nx\r\n",
        )
        .await;
    client.cmd("QUIT").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(sink::stored(&dir.path().join("sink")).is_empty());
    // Resumed, it is forgotten for good.
    stdout(&queue(dir.path(), &hermod, &["resume", "origin.test"]));
    sink::wait_stored(&dir.path().join("sink"), 1, Duration::from_secs(10)).await;
    hermod.stop().await;
    hermod.restart().await;
    let listed: serde_json::Value = serde_json::from_str(&stdout(&queue(
        dir.path(),
        &hermod,
        &["suspensions", "--json"],
    )))
    .unwrap();
    assert_eq!(
        listed["suspensions"].as_array().unwrap().len(),
        0,
        "{listed}"
    );
    hermod.stop().await;
}
