//! The admin HTTP server of a running hermod, over real HTTP: health, statistics with
//! mail in the queue, a Prometheus scrape that `promtool check metrics` accepts, and
//! maintenance mode through `hermod maintenance` with a real SMTP client.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;
use common::http;

/// Mail for a next hop nobody listens on stays queued.
const HELD_MAIL: &str = "[delivery]\nrelayhost = \"[127.0.0.1]:1\"\n[queue]\nretry_interval = \"1h\"\nmax_retry_interval = \"1h\"\n[admin]\ntoken = \"s3cret\"\n";

async fn with_one_queued_message(dir: &std::path::Path) -> Hermod {
    let hermod = Hermod::start(dir, HELD_MAIL).await;
    let mut client = Client::connect(hermod.addr).await;
    let reply = client
        .send_message("a@b.test", &["u@c.test"], b"Subject: x\r\n\r\nx\r\n")
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    client.cmd("QUIT").await;
    hermod
        .wait_log("delivery attempt", Duration::from_secs(10))
        .await
        .expect("a first attempt");
    hermod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_stats_report_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = with_one_queued_message(dir.path()).await;
    let admin = hermod.admin.expect("an admin server");

    let health = http::get(admin, "/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let health = health.json();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["queue_size"], 1);
    assert_eq!(health["spool_writable"], true);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    for path in ["/stats", "/api/queue/stats"] {
        let stats = http::get(admin, path).await;
        assert_eq!(stats.status, 200, "{}", stats.body);
        let stats = stats.json();
        assert_eq!(stats["queue_size"], 1, "{stats}");
        assert_eq!(stats["messages_received"], 1, "{stats}");
        assert_eq!(stats["messages_deferred"], 1, "{stats}");
        assert_eq!(stats["messages_delivered"], 0, "{stats}");
        assert!(stats["active_connections"].is_u64(), "{stats}");
        assert_eq!(stats["destinations"][0]["domain"], "c.test", "{stats}");
        assert_eq!(stats["destinations"][0]["recipients"], 1, "{stats}");
        assert!(stats["destinations"][0]["in_flight"].is_u64(), "{stats}");
    }
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_that_promtool_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = with_one_queued_message(dir.path()).await;
    let scrape = http::get(hermod.admin.unwrap(), "/metrics").await;
    assert_eq!(scrape.status, 200);
    for line in [
        "# HELP smtp_messages_received_total",
        "# TYPE smtp_messages_received_total counter",
        "smtp_messages_received_total 1",
        "# HELP delivery_attempts_total",
        "delivery_attempts_total{status=\"deferred\"} 1",
        "# HELP queue_flush_seconds",
        "# HELP delivery_attempt_seconds",
        "queue_handling_seconds{message=\"stored\",quantile=\"0.5\"}",
        "queue_destination_recipients{destination=\"c.test\"} 1",
        "# HELP queue_destination_oldest_age_seconds",
        // Everything sent to the Queue and the Delivery actor was taken.
        "actor_mailbox_messages{actor=\"queue\"} 0",
        "actor_mailbox_messages{actor=\"delivery\"} 0",
    ] {
        assert!(
            scrape.body.contains(line),
            "no {line:?} in:\n{}",
            scrape.body
        );
    }
    // promtool comes from Debian's prometheus package (.ci/run extracts it).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool on PATH (see .ci/run)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        scrape.body
    );
    hermod.stop().await;
}

/// `hermod maintenance STATE` against `hermod`'s admin server, with its config file.
fn maintenance(dir: &std::path::Path, hermod: &Hermod, args: &[&str]) -> std::process::Output {
    let mut all = vec!["maintenance"];
    all.extend_from_slice(args);
    hermod.command(dir, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_refuses_new_connections_until_it_is_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = with_one_queued_message(dir.path()).await;
    let admin = hermod.admin.unwrap();

    // A change needs the token.
    let refused = http::request(
        admin,
        "PUT",
        "/api/maintenance",
        None,
        Some(r#"{"on":true}"#),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let wrong = http::request(
        admin,
        "PUT",
        "/api/maintenance",
        Some("guess"),
        Some(r#"{"on":true}"#),
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);

    let out = maintenance(dir.path(), &hermod, &["on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, banner) = Client::connect_raw(hermod.addr).await;
    assert_eq!(
        banner.trim_end(),
        "421 4.3.2 Service temporarily unavailable, maintenance in progress"
    );
    let health = http::get(admin, "/health").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("maintenance mode"), "{}", health.body);

    let out = maintenance(dir.path(), &hermod, &["off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, banner) = Client::connect_raw(hermod.addr).await;
    assert!(banner.starts_with("220 "), "{banner}");
    assert_eq!(http::get(admin, "/health").await.status, 200);
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_maintenance_mode_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = Hermod::start(dir.path(), HELD_MAIL).await;
    let out = maintenance(dir.path(), &hermod, &["on", "--persist"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hermod.stop().await;
    hermod.restart().await;
    let (_, banner) = Client::connect_raw(hermod.addr).await;
    assert!(banner.starts_with("421 4.3.2"), "{banner}");
    let out = maintenance(dir.path(), &hermod, &["off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hermod.stop().await;
    hermod.restart().await;
    let (_, banner) = Client::connect_raw(hermod.addr).await;
    assert!(banner.starts_with("220 "), "{banner}");
    hermod.stop().await;
}

#[test]
fn maintenance_says_when_hermod_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(&config, "").unwrap();
    let free = common::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["maintenance", "on", "--config"])
        .arg(&config)
        .env("HERMOD_ADMIN_LISTEN", format!("127.0.0.1:{free}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hermod is not running"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_queue_by_destination_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let mut hermod = with_one_queued_message(dir.path()).await;
    let stats = http::get(hermod.admin.unwrap(), "/stats").await.json();
    assert_eq!(stats["destinations"][0]["domain"], "c.test", "{stats}");
    // Debian's chromium runs the page's scripts, then prints the page as they left it.
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            // A container's /dev/shm is small.
            "--disable-dev-shm-usage",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("http://{}/", hermod.admin.unwrap()))
        .output()
        .expect("chromium (see .ci/run)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let table = dom
        .split("id=\"destinations\"")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no destinations table in:\n{dom}"));
    assert!(table.contains("<td>c.test</td>"), "{table}");
    // The first attempt (deferred: the hop is down) is in the recent deliveries.
    let recent = dom
        .split("id=\"recent\"")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no recent deliveries in:\n{dom}"));
    assert!(
        recent.contains("<td>u@c.test</td>") && recent.contains(">deferred</td>"),
        "{recent}"
    );
    assert!(dom.contains("class=\"good\">healthy<"), "{dom}");
    hermod.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_every_request_but_a_bare_health_check_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hermod.toml"),
        "[admin]\ntoken = \"s3cret\"\n",
    )
    .unwrap();
    // A wildcard address is not loopback; the test still talks to it over 127.0.0.1.
    let mut hermod = Hermod::start_with(
        dir.path().join("hermod.toml"),
        dir.path().join("data"),
        &[("HERMOD_ADMIN_LISTEN", "0.0.0.0:0")],
    )
    .await;
    let port = hermod.admin.expect("an admin server").port();
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // A probe gets the status alone (it cannot carry a secret), no details.
    let probe = http::get(admin, "/health").await;
    assert_eq!(probe.status, 200, "{}", probe.body);
    assert_eq!(probe.json(), serde_json::json!({"status": "healthy"}));
    assert_eq!(http::get(admin, "/metrics").await.status, 401);
    assert_eq!(http::get(admin, "/stats").await.status, 401);
    let allowed = http::request(admin, "GET", "/health", Some("s3cret"), None).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert!(allowed.json()["version"].is_string(), "{}", allowed.body);
    hermod.stop().await;
}

#[test]
fn off_loopback_without_a_token_is_a_configuration_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["serve", "--validate-only", "--config", "/dev/null"])
        .env("HERMOD_ADMIN_LISTEN", "0.0.0.0:8080")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.listen: 0.0.0.0:8080 is not a loopback address"),
        "{stderr}"
    );
}
