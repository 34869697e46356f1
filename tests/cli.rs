//! The command line an operator runs: --version, --validate-only, JSON logs.

mod common;

use std::process::Command;
use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;

fn hermod() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hermod"));
    command.env_remove("RUST_LOG");
    command
}

#[test]
fn version_prints_the_package_version() {
    let out = hermod().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("hermod {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn validate_only_summarises_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(&path, "[relay]\ndomains = [\"mx.test\"]\n[delivery.transport]\n\"mx.test\" = \"lmtp:[127.0.0.1]:24\"\n").unwrap();
    let out = hermod()
        .args(["serve", "--validate-only", "--config"])
        .arg(&path)
        .env("SMTP_PORT", "2600")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("configuration OK"), "{stdout}");
    assert!(stdout.contains("listen=127.0.0.1:2600"), "{stdout}");
    assert!(stdout.contains("mx.test=lmtp:[127.0.0.1]:24"), "{stdout}");
    // Like `postconf -n`: what differs from the defaults, every key.
    let differs = stdout
        .split("differs from the built-in defaults:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        differs.contains("  relay.domains = [\"mx.test\"]\n"),
        "{stdout}"
    );
    assert!(
        differs.contains("  smtp.listen = [\"127.0.0.1:2600\"]\n"),
        "{stdout}"
    );
    assert!(differs.contains("  delivery.transport = "), "{stdout}");
    assert!(!differs.contains("smtp.hostname"), "{stdout}");
}

#[test]
fn validate_only_names_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(
        &path,
        "[smtp]\nmax_recipients = 0\n[delivery]\nrelayhost = \"smtp:[\"\n",
    )
    .unwrap();
    let out = hermod()
        .args(["serve", "--validate-only", "--config"])
        .arg(&path)
        .env("SMTP_MAX_CONNECTIONS", "lots")
        .env("RETRY_INTERVAL", "soon")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SMTP_MAX_CONNECTIONS: expected a whole number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RETRY_INTERVAL") || stderr.contains("retry_interval"),
        "{stderr}"
    );
}

#[test]
fn missing_config_file_is_an_error() {
    let out = hermod()
        .args([
            "serve",
            "--validate-only",
            "--config",
            "/nonexistent/hermod.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(
        &config,
        "[delivery]\nrelayhost = \"[127.0.0.1]:1\"\n[queue]\nretry_interval = \"1h\"\n",
    )
    .unwrap();
    let h = Hermod::start_with(
        config,
        dir.path().join("data"),
        &[("SMTP_ENABLE_JSON_LOGGING", "true")],
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    let id = queue_id(
        &c.send_message("a@b.test", &["u@c.test"], b"Subject: x\r\n\r\nx\r\n")
            .await,
    );
    let line = h
        .wait_log_matching(|l| l.contains("message accepted"), Duration::from_secs(10))
        .await
        .expect("accepted line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(value["queue_id"], id.as_str());
    assert_eq!(value["from"], "a@b.test");
    assert_eq!(value["nrcpt"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_hermod_on_the_same_address_fails_instead_of_sharing_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = Hermod::start(dir.path(), "[smtp]\nhostname = \"mx.hermod.test\"\n").await;
    let port = first.addr.port().to_string();
    let mut second = hermod()
        .args(["serve", "--config"])
        .arg(dir.path().join("hermod.toml"))
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", &port)
        .env("SMTP_DB_PATH", dir.path().join("second-spool"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must give up at once; one that joined the first one's port would run on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second hermod started on a port in use");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("address in use"), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    // The first one still has its port to itself.
    let mut c = Client::connect(first.addr).await;
    assert!(c.cmd("NOOP").await.starts_with("250"));
}

/// A busy admin port: one clear line and exit 1, no panic ("there is no reactor
/// running" was printed first, from actors dropped outside their runtime).
#[test]
fn a_busy_admin_port_is_one_clear_error_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::fs::write(dir.path().join("hermod.toml"), "").unwrap();
    let out = hermod()
        .args(["serve", "--config"])
        .arg(dir.path().join("hermod.toml"))
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", "0")
        .env("SMTP_DB_PATH", dir.path().join("data"))
        .env(
            "HERMOD_ADMIN_LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("hermod: cannot listen on admin.listen")
            && lines[0].contains("Address already in use"),
        "{stderr}"
    );
}

#[test]
fn a_log_level_that_would_hide_every_line_is_refused() {
    let out = hermod()
        .args(["serve", "--validate-only"])
        .env("SMTP_LOG_LEVEL", "verbose")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("log.level: \"verbose\" is not a level"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_that_set_nothing_are_named_at_start_and_by_validate_only() {
    let out = hermod()
        .args(["serve", "--validate-only"])
        .env("SMTP_WEBHOOK_ENABLED", "true")
        .env("SMTP_WEBHOOK_URL", "http://hook.test/")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: SMTP_WEBHOOK_ENABLED is not a hermod setting; it is ignored"),
        "{stdout}"
    );
    assert!(stdout.contains("SMTP_WEBHOOK_URL"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hermod.toml");
    std::fs::write(&config, "[smtp]\nhostname = \"mx.hermod.test\"\n").unwrap();
    let h = Hermod::start_with(
        config.clone(),
        dir.path().join("data"),
        &[("SMTP_WEBHOOK_ENABLED", "true")],
    )
    .await;
    let starting = h.wait_log("hermod starting", Duration::ZERO).await.unwrap();
    assert!(
        starting.contains(&config.display().to_string()),
        "{starting}"
    );
    let warning = h
        .wait_log("SMTP_WEBHOOK_ENABLED", Duration::ZERO)
        .await
        .unwrap_or_else(|| panic!("{}", h.logs().join("\n")));
    assert!(
        warning.contains("WARN") && warning.contains("not one; it is ignored"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_names_the_next_hop_and_why() {
    use common::dns::{TestDns, TestZone};
    use std::net::Ipv4Addr;
    let dns = TestDns::start(vec![
        TestZone::new("example.test")
            .mx("@", 20, "mx2.example.test")
            .mx("@", 10, "mx1.example.test")
            .a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 11))
            .a("mx2.example.test", Ipv4Addr::new(127, 0, 0, 12))
            .null_mx("nullmx.example.test"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(
        &path,
        format!(
            "[delivery]\ndns_servers = [\"{}\"]\n[delivery.transport]\n\"internal.test\" = \"lmtp:[127.0.0.1]:24\"\n",
            dns.addr
        ),
    )
    .unwrap();
    let route = |domain: &str| {
        let out = hermod()
            .args(["route", domain, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = route("Example.Test.");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.starts_with("example.test: MX records of the domain"),
        "{text}"
    );
    let mx1 = text.find("mx1.example.test").expect("mx1 listed");
    let mx2 = text.find("mx2.example.test").expect("mx2 listed");
    assert!(mx1 < mx2, "by preference: {text}");
    assert!(
        text.contains("127.0.0.11:25") && text.contains("preference 10"),
        "{text}"
    );

    let (code, text) = route("internal.test");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("transport map") && text.contains("lmtp:[127.0.0.1]:24"),
        "{text}"
    );

    let (code, text) = route("nullmx.example.test");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no address") && text.contains("bounces"),
        "{text}"
    );
}

#[test]
fn validate_only_names_every_bad_key_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(
        &path,
        "[smtp]\nmax_conections = 5\nmax_recipients = \"ten\"\n[relay]\nnetworks = [\"10.0.0.0/33\"]\n[queue]\nretry_interval = \"5 parsecs\"\n",
    )
    .unwrap();
    let out = hermod()
        .args(["serve", "--validate-only", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(4 problems)"), "{stderr}");
    for expected in [
        "smtp.max_conections: unknown field `max_conections`",
        "smtp.max_recipients: invalid type: string \"ten\"",
        "relay.networks: invalid IP address syntax (got [\"10.0.0.0/33\"])",
        "queue.retry_interval: expected a duration such as 30s, 5m, 1h or 5d (unknown time unit \"parsecs\"",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing in:\n{stderr}"
        );
    }
}

#[test]
fn validate_only_works_without_the_serve_command_as_runbooks_write_it() {
    let out = hermod()
        .arg("--validate-only")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("configuration OK (built-in defaults)"),
        "{stdout}"
    );
}

#[test]
fn config_get_prints_effective_values_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hermod.toml");
    std::fs::write(
        &path,
        "[admin]\ntoken = \"hunter2\"\n[smtp]\nmax_recipients = 50\n",
    )
    .unwrap();
    let out = hermod()
        .args([
            "config",
            "get",
            "smtp.max_recipients",
            "admin.token",
            "log.level",
            "--config",
        ])
        .arg(&path)
        .env("SMTP_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        "smtp.max_recipients = 50\nadmin.token = \"(set, not shown)\"\nlog.level = \"debug\"\n"
    );
    assert!(!stdout.contains("hunter2"));
    // Every setting, and an unknown one refused.
    let all = hermod()
        .args(["config", "get", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(all.lines().count() > 100, "{all}");
    assert!(all.contains("queue.max_lifetime = \"5d\"\n"), "{all}");
    let unknown = hermod()
        .args(["config", "get", "smtp.max_conections", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no setting smtp.max_conections"));
}

#[test]
fn the_top_level_help_names_every_queue_command() {
    let top = hermod().arg("--help").output().unwrap();
    let top = String::from_utf8_lossy(&top.stdout);
    let queue_line = top
        .lines()
        .find(|l| l.trim_start().starts_with("queue "))
        .expect("a queue line");
    let queue = hermod().args(["queue", "--help"]).output().unwrap();
    let queue = String::from_utf8_lossy(&queue.stdout);
    let commands: Vec<&str> = queue
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in commands {
        assert!(
            queue_line.contains(command),
            "{command} missing from: {queue_line}"
        );
    }
}
