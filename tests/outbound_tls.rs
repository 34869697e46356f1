//! TLS and AUTH towards the next hop: opportunistic STARTTLS to smtp-blaster's sink, a
//! plaintext retry after a broken handshake (and none when TLS is required), `verify`
//! against aiosmtpd (a server we did not write) with a certificate from a test CA and
//! one with the wrong name, implicit TLS (`smtps:`), and AUTH to a smarthost that wants
//! it (right and wrong password).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::certs::TestCa;
use common::client::Client;
use common::hermod::Hermod;
use common::sink;
use smtp_blaster::sink::SinkConfig;

fn relay_config(relayhost: &str, extra: &str) -> String {
    format!(
        "[delivery]\nrelayhost = \"{relayhost}\"\ncommand_timeout = \"10s\"\n{extra}\n[queue]\nretry_interval = \"1h\"\n"
    )
}

async fn submit(hermod: &Hermod, subject: &str) -> String {
    let mut client = Client::connect(hermod.addr).await;
    let body = format!("Subject: {subject}\r\n\r\nhello\r\n");
    let reply = client
        .send_message("app@shop.test", &["rcpt@remote.test"], body.as_bytes())
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    common::client::queue_id(&reply)
}

fn stored_json(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                out.push(serde_json::from_str(&text).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn opportunistic_starttls_and_the_plaintext_retry() {
    let dir = tempfile::tempdir().unwrap();
    let good_dir = dir.path().join("good");
    let good = sink::start_with(SinkConfig {
        store: Some(good_dir.clone()),
        starttls: true,
        ..SinkConfig::default()
    })
    .await;
    let hermod = Hermod::start(
        dir.path(),
        &relay_config(&format!("[127.0.0.1]:{}", good.local_addrs()[0].port()), ""),
    )
    .await;
    let id = submit(&hermod, "tls").await;
    let line = hermod
        .wait_status(&id, "sent", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert!(line.contains("tls=\"TLSv1.3 TLS13_"), "{line}");
    let stored = stored_json(&good_dir);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["tls"], true, "{:?}", stored[0]);

    // A next hop that answers STARTTLS with 220 and then no TLS: retried in clear.
    let broken_dir = dir.path().join("broken");
    let broken = sink::start_with(SinkConfig {
        store: Some(broken_dir.clone()),
        starttls: true,
        broken_tls: true,
        ..SinkConfig::default()
    })
    .await;
    let port = broken.local_addrs()[0].port();
    let dir2 = tempfile::tempdir().unwrap();
    let hermod = Hermod::start(
        dir2.path(),
        &relay_config(&format!("[127.0.0.1]:{port}"), ""),
    )
    .await;
    let id = submit(&hermod, "fallback").await;
    let line = hermod
        .wait_status(&id, "sent", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert!(
        line.contains("tls=\"none\"") || line.contains("tls=none"),
        "{line}"
    );
    let logs = hermod.logs().join("\n");
    assert!(logs.contains("retrying in plaintext"), "{logs}");
    assert_eq!(stored_json(&broken_dir)[0]["tls"], false);

    // The same next hop with TLS required: deferred, with the reason.
    let dir3 = tempfile::tempdir().unwrap();
    let hermod = Hermod::start(
        dir3.path(),
        &relay_config(&format!("[127.0.0.1]:{port}"), "tls = \"required\""),
    )
    .await;
    let id = submit(&hermod, "required").await;
    let line = hermod
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert!(
        line.contains("4.7.5") && line.contains("TLS handshake failed"),
        "{line}"
    );
    assert!(!hermod.logs().join("\n").contains("retrying in plaintext"));
    assert_eq!(stored_json(&broken_dir).len(), 1);
}

/// aiosmtpd (PyPI / Debian python3-aiosmtpd) on a free port with a certificate:
/// STARTTLS, or TLS from the first byte with `implicit`.
struct Aiosmtpd {
    child: Child,
    addr: SocketAddr,
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Aiosmtpd {
    async fn start(cert: &Path, key: &Path, implicit: bool) -> Aiosmtpd {
        let port = common::free_port();
        let mut command = Command::new(common::python3());
        command
            .args(["-u", "-m", "aiosmtpd", "-n", "-d", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        if implicit {
            command
                .arg("--smtpscert")
                .arg(cert)
                .arg("--smtpskey")
                .arg(key);
        } else {
            command
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key)
                .arg("--no-requiretls");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 -m aiosmtpd (Debian: python3-aiosmtpd)");
        let output = common::hermod::collect_output(&mut child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start: {:?}",
                output.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Aiosmtpd {
            child,
            addr,
            output,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_checks_chain_and_name_against_aiosmtpd() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let right = ca.issue(dir.path(), "right", &["127.0.0.1"], false);
    let wrong = ca.issue(dir.path(), "wrong", &["elsewhere.test"], false);
    let ca_line = format!(
        "tls = \"verify\"\ntls_ca_file = \"{}\"",
        ca.cert_file.display()
    );

    let server = Aiosmtpd::start(&right.cert, &right.key, false).await;
    let hermod_dir = dir.path().join("h1");
    std::fs::create_dir_all(&hermod_dir).unwrap();
    let hermod = Hermod::start(
        &hermod_dir,
        &relay_config(&format!("[127.0.0.1]:{}", server.addr.port()), &ca_line),
    )
    .await;
    let id = submit(&hermod, "verified").await;
    let line = hermod
        .wait_status(&id, "sent", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}\n{}", hermod.logs().join("\n"), server.output()));
    assert!(line.contains("tls=\"TLSv1."), "{line}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.output().contains("Subject: verified") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.output().contains("Subject: verified"),
        "{}",
        server.output()
    );

    // A certificate for another name: no delivery, deferred with the reason.
    let impostor = Aiosmtpd::start(&wrong.cert, &wrong.key, false).await;
    let hermod_dir = dir.path().join("h2");
    std::fs::create_dir_all(&hermod_dir).unwrap();
    let hermod = Hermod::start(
        &hermod_dir,
        &relay_config(&format!("[127.0.0.1]:{}", impostor.addr.port()), &ca_line),
    )
    .await;
    let id = submit(&hermod, "impostor").await;
    let line = hermod
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert!(
        line.contains("4.7.5") && line.contains("certificate"),
        "{line}"
    );
    assert!(!impostor.output().contains("Subject: impostor"));

    // TLS from the first byte to a 465-style smarthost.
    let smtps = Aiosmtpd::start(&right.cert, &right.key, true).await;
    let hermod_dir = dir.path().join("h3");
    std::fs::create_dir_all(&hermod_dir).unwrap();
    let hermod = Hermod::start(
        &hermod_dir,
        &relay_config(
            &format!("smtps:[127.0.0.1]:{}", smtps.addr.port()),
            &ca_line,
        ),
    )
    .await;
    let id = submit(&hermod, "implicit").await;
    let line = hermod
        .wait_status(&id, "sent", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}\n{}", hermod.logs().join("\n"), smtps.output()));
    assert!(line.contains("tls=\"TLSv1."), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_to_a_smarthost_right_and_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sink");
    let smarthost = sink::start_with(SinkConfig {
        store: Some(sink_dir.clone()),
        starttls: true,
        auth: Some(("relay-user".into(), "relay-pass".into())),
        ..SinkConfig::default()
    })
    .await;
    let target = format!("[127.0.0.1]:{}", smarthost.local_addrs()[0].port());
    let password_file = dir.path().join("relay.pw");
    std::fs::write(&password_file, "relay-pass\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "relayhost_username = \"relay-user\"\nrelayhost_password_file = \"{}\"",
        password_file.display()
    );
    let h1 = dir.path().join("h1");
    std::fs::create_dir_all(&h1).unwrap();
    let hermod = Hermod::start(&h1, &relay_config(&target, &extra)).await;
    let id = submit(&hermod, "authenticated").await;
    hermod
        .wait_status(&id, "sent", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert_eq!(stored_json(&sink_dir).len(), 1);

    // The password from the environment, and wrong: deferred with the smarthost's text.
    let h2 = dir.path().join("h2");
    std::fs::create_dir_all(&h2).unwrap();
    std::fs::write(h2.join("hermod.toml"), relay_config(&target, "")).unwrap();
    let hermod = Hermod::start_with(
        h2.join("hermod.toml"),
        h2.join("data"),
        &[
            ("SMTP_RELAYHOST_USERNAME", "relay-user"),
            ("SMTP_RELAYHOST_PASSWORD", "not-the-password"),
        ],
    )
    .await;
    let id = submit(&hermod, "refused").await;
    let line = hermod
        .wait_status(&id, "deferred", Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("{}", hermod.logs().join("\n")));
    assert!(line.contains("AUTH as relay-user refused: 535"), "{line}");
    assert!(!line.contains("not-the-password"), "{line}");
    assert_eq!(stored_json(&sink_dir).len(), 1);

    // A password file others can read is refused at start.
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hermod"))
        .args(["--validate-only", "--config"])
        .arg(h1.join("hermod.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("chmod 600"), "{text}");
}
