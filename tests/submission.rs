//! Submission end to end: hermod listening as smtp (25), submission (587, STARTTLS) and
//! submissions (465, TLS from the first byte), with certificates made here by a test CA,
//! AUTH against users added with `hermod user`, and clients we did not write (Python's
//! smtplib, swaks, openssl s_client) relaying through it to smtp-blaster's sink.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{CertFiles, TestCa};
use common::hermod::Hermod;
use common::sink;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::users::{add_user, run_python};

/// A hermod configuration with the three listener kinds on free ports.
fn config(server: &CertFiles, relayhost: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[smtp]
hostname = "localhost"
listen = [
  "127.0.0.1:0",
  {{ address = "127.0.0.1:0", kind = "submission" }},
  {{ address = "127.0.0.1:0", kind = "submissions" }},
]
[tls]
cert = "{}"
key = "{}"
reload_check_interval = "1s"
[auth]
enabled = true
[relay]
networks = []
[delivery]
relayhost = "[127.0.0.1]:{}"
[admin]
token = "test-admin-token"
{extra}
"#,
        server.cert.display(),
        server.key.display(),
        relayhost.port()
    )
}

struct Setup {
    dir: tempfile::TempDir,
    ca: TestCa,
    server: CertFiles,
    sink_dir: std::path::PathBuf,
    sink: smtp_blaster::sink::SinkHandle,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let server = ca.issue(
        dir.path(),
        "server",
        &["localhost", "mx.hermod.test"],
        false,
    );
    let sink_dir = dir.path().join("sink");
    // The downstream speaks TLS too: hermod's own client takes STARTTLS there.
    let sink = sink::start_with(smtp_blaster::sink::SinkConfig {
        store: Some(sink_dir.clone()),
        starttls: true,
        ..smtp_blaster::sink::SinkConfig::default()
    })
    .await;
    Setup {
        dir,
        ca,
        server,
        sink_dir,
        sink,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn smtplib_submits_over_starttls_and_implicit_tls_with_auth() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    std::fs::write(
        s.dir.path().join("hermod.toml"),
        config(&s.server, relay, ""),
    )
    .unwrap();
    add_user(
        s.dir.path(),
        None,
        "app",
        "s3cret pass",
        &["--sender", "@shop.test"],
    );
    let hermod = Hermod::start_listening(s.dir.path(), &config(&s.server, relay, ""), &[]).await;
    let (submission, submissions) = (
        hermod.listener("submission").port(),
        hermod.listener("submissions").port(),
    );
    let out = run_python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
s = smtplib.SMTP("localhost", {submission}, local_hostname="client.test")
s.ehlo()
print("auth before tls:", s.has_extn("auth"))
try:
    s.sendmail("app@shop.test", ["x@remote.test"], "Subject: no\r\n\r\nno\r\n")
except smtplib.SMTPSenderRefused as e:
    print("mail before auth:", e.smtp_code, e.smtp_error.decode())
s.starttls(context=ctx)
s.ehlo()
print("auth after tls:", s.esmtp_features.get("auth"))
try:
    s.login("app", "guess-7Qz")
except smtplib.SMTPAuthenticationError as e:
    print("wrong password:", e.smtp_code, e.smtp_error.decode())
s.login("app", "s3cret pass")
try:
    s.sendmail("ceo@bank.test", ["x@remote.test"], "Subject: no\r\n\r\nno\r\n")
except smtplib.SMTPSenderRefused as e:
    print("foreign sender:", e.smtp_code, e.smtp_error.decode())
s.sendmail("news@shop.test", ["x@remote.test"], "Subject: starttls\r\n\r\nvia 587\r\n")
s.quit()
s = smtplib.SMTP_SSL("localhost", {submissions}, context=ctx)
s.login("app", "s3cret pass")
s.sendmail("news@shop.test", ["y@remote.test"], "Subject: implicit\r\n\r\nvia 465\r\n")
s.quit()
print("done")
"#,
        ca = s.ca.cert_file.display(),
    ));
    assert!(out.contains("auth before tls: False"), "{out}");
    assert!(
        out.contains("mail before auth: 530 5.7.0 Authentication required"),
        "{out}"
    );
    assert!(
        out.contains("auth after tls:  PLAIN LOGIN") || out.contains("auth after tls: PLAIN LOGIN"),
        "{out}"
    );
    assert!(
        out.contains("wrong password: 535 5.7.8 Authentication credentials invalid"),
        "{out}"
    );
    assert!(
        out.contains("foreign sender: 553 5.7.1 <ceo@bank.test>: Sender address rejected: not owned by user app"),
        "{out}"
    );
    assert!(out.contains("done"), "{out}");
    let stored = sink::wait_stored(&s.sink_dir, 2, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 2);
    for message in &stored {
        let text = String::from_utf8_lossy(&message.data);
        assert!(text.contains("with ESMTPSA id"), "{text}");
        assert!(text.contains("(using TLSv1."), "{text}");
    }
    // Both legs over TLS: the relay to the sink too (logged once the sink answered, so
    // every earlier line is in by then).
    assert_eq!(
        relayed_over_tls(&hermod, 2).await,
        2,
        "{}",
        hermod.logs().join("\n")
    );
    let logs = hermod.logs().join("\n");
    assert!(
        logs.contains("Authentication failed") && logs.contains("user=app"),
        "{logs}"
    );
    assert!(
        !logs.contains("guess-7Qz") && !logs.contains("s3cret"),
        "a password reached the log:\n{logs}"
    );
    assert!(
        logs.contains("message accepted") && logs.contains("user=\"app\""),
        "{logs}"
    );
}

/// Delivery lines with TLS, once `n` of them are in the log (or after 10 s).
async fn relayed_over_tls(hermod: &Hermod, n: usize) -> usize {
    let count = || {
        hermod
            .logs()
            .iter()
            .filter(|l| l.contains("delivery attempt") && l.contains("status=\"sent\""))
            .filter(|l| l.contains("tls=\"TLSv1.3"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    count()
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_relays_with_tls_and_auth() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    std::fs::write(
        s.dir.path().join("hermod.toml"),
        config(&s.server, relay, ""),
    )
    .unwrap();
    add_user(s.dir.path(), None, "swaks", "pw-swaks", &[]);
    let hermod = Hermod::start_listening(s.dir.path(), &config(&s.server, relay, ""), &[]).await;
    let runs = [
        (hermod.listener("submission"), "--tls", "PLAIN"),
        (hermod.listener("submissions"), "--tls-on-connect", "LOGIN"),
    ];
    for (addr, tls, mechanism) in runs {
        let out = Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--from", "app@shop.test", "--to", "z@remote.test"])
            .args([tls, "--tls-verify", "--tls-ca-path"])
            .arg(&s.ca.cert_file)
            .args(["--tls-sni", "localhost"])
            .args([
                "--auth",
                mechanism,
                "--auth-user",
                "swaks",
                "--auth-password",
                "pw-swaks",
            ])
            .args(["--helo", "swaks.test", "--timeout", "20"])
            .output()
            .expect("swaks (Debian package swaks, with libnet-ssleay-perl for TLS)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "swaks {tls} {mechanism}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("235 2.7.0 Authentication successful"),
            "{text}"
        );
        assert!(text.contains("250 2.0.0"), "{text}");
    }
    let stored = sink::wait_stored(&s.sink_dir, 2, Duration::from_secs(20)).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        relayed_over_tls(&hermod, 2).await,
        2,
        "the relay leg was not over TLS:\n{}",
        hermod.logs().join("\n")
    );
}

/// `STARTTLS\r\nRSET\r\n` in one write: the RSET must never be answered (CVE-2011-0411).
#[tokio::test(flavor = "multi_thread")]
async fn commands_injected_before_the_handshake_are_not_run() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let hermod = Hermod::start_listening(s.dir.path(), &config(&s.server, relay, ""), &[]).await;
    let mut stream = TcpStream::connect(hermod.listener("smtp")).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let n = stream.read(&mut buffer).await.unwrap();
    assert!(buffer[..n].starts_with(b"220 "));
    stream.write_all(b"EHLO c.test\r\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("250 ") {
        let n = stream.read(&mut buffer).await.unwrap();
        seen.extend_from_slice(&buffer[..n]);
    }
    stream.write_all(b"STARTTLS\r\nRSET\r\n").await.unwrap();
    let n = stream.read(&mut buffer).await.unwrap();
    assert_eq!(&buffer[..n], b"220 2.0.0 Ready to start TLS\r\n");
    let tls = tls_client(&s.ca.cert_file)
        .connect("localhost".try_into().unwrap(), stream)
        .await
        .expect("handshake after STARTTLS");
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"NOOP\r\n").await.unwrap();
    let mut line = String::new();
    tls.read_line(&mut line).await.unwrap();
    assert_eq!(line, "250 2.0.0 Ok\r\n", "the injected RSET was answered");
}

/// A client that reconnects with the same configuration resumes its TLS session.
#[tokio::test(flavor = "multi_thread")]
async fn reconnecting_clients_resume_their_tls_session() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let hermod = Hermod::start_listening(s.dir.path(), &config(&s.server, relay, ""), &[]).await;
    let connector = tls_client(&s.ca.cert_file);
    for _ in 0..2 {
        let mut tls = tls_session(&connector, hermod.listener("submissions")).await;
        tls.get_mut().write_all(b"QUIT\r\n").await.unwrap();
        let mut line = String::new();
        tls.read_line(&mut line).await.unwrap();
    }
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("smtp_tls_handshakes_total{version=\"TLSv1.3\",resumed=\"yes\"} 1"),
        "{metrics}"
    );
}

/// A TLS session to an implicit-TLS listener, its 220 greeting read.
async fn tls_session(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut tls = BufReader::new(
        connector
            .connect("localhost".try_into().unwrap(), stream)
            .await
            .unwrap(),
    );
    let mut greeting = String::new();
    tls.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    tls
}

fn tls_client(ca: &Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// What `openssl s_client` says about the certificate a listener presents.
fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            "-crlf",
            "-CAfile",
        ])
        .arg(ca)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_verifies_the_chain_and_failed_handshakes_are_named() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let config = config(&s.server, relay, "").replace(
        "reload_check_interval = \"1s\"",
        "reload_check_interval = \"1s\"\nhandshake_timeout = \"3s\"",
    );
    let hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let out = s_client(
        hermod.listener("smtp"),
        &s.ca.cert_file,
        &["-starttls", "smtp"],
        "EHLO openssl.test\nQUIT\n",
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("250"), "{out}");
    let out = s_client(
        hermod.listener("submissions"),
        &s.ca.cert_file,
        &[],
        "QUIT\n",
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("220 localhost ESMTP"), "{out}");
    // TLS 1.1 is not spoken: a failed handshake, named.
    let _ = s_client(
        hermod.listener("submissions"),
        &s.ca.cert_file,
        &["-tls1_1"],
        "QUIT\n",
    );
    // Plain text on the TLS port.
    let mut plain = TcpStream::connect(hermod.listener("submissions"))
        .await
        .unwrap();
    plain.write_all(b"EHLO plain.test\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut sink)).await;
    let line = hermod
        .wait_log_matching(
            |l| l.contains("TLS handshake failed") && l.contains("reason=\"not_tls\""),
            Duration::from_secs(10),
        )
        .await;
    assert!(line.is_some(), "{}", hermod.logs().join("\n"));
    let line = hermod
        .wait_log_matching(
            |l| l.contains("TLS handshake failed") && l.contains("reason=\"no_shared_version\""),
            Duration::from_secs(10),
        )
        .await;
    assert!(line.is_some(), "{}", hermod.logs().join("\n"));
    // A client that never starts its handshake is cut at tls.handshake_timeout.
    let mut silent = TcpStream::connect(hermod.listener("submissions"))
        .await
        .unwrap();
    let started = Instant::now();
    let mut nothing = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut nothing)).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "not cut by the handshake timeout"
    );
    assert!(
        hermod
            .wait_log_matching(
                |l| l.contains("TLS handshake failed") && l.contains("reason=\"timeout\""),
                Duration::from_secs(5),
            )
            .await
            .is_some(),
        "{}",
        hermod.logs().join("\n")
    );
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("smtp_tls_handshake_failures_total{reason=\"not_tls\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_taken_without_a_restart_and_a_broken_one_is_not() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    // Only SIGHUP reloads here; the file watch is tested in inbound::tls.
    let config = config(&s.server, relay, "").replace(
        "reload_check_interval = \"1s\"",
        "reload_check_interval = \"1h\"",
    );
    let hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let addr = hermod.listener("submissions");
    let subject = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or("")
            .to_string()
    };
    let before = s_client(addr, &s.ca.cert_file, &[], "QUIT\n");
    assert!(subject(&before).contains("localhost"), "{before}");
    // An open TLS session across the changes.
    let mut open = tls_session(&tls_client(&s.ca.cert_file), addr).await;
    let mut line = String::new();
    // A key that does not go with the certificate: kept out, with the reason.
    let stray = s.ca.issue(s.dir.path(), "stray", &["stray.test"], false);
    std::fs::copy(&stray.key, &s.server.key).unwrap();
    hermod.hangup();
    let refused = hermod
        .wait_log("TLS certificate not reloaded", Duration::from_secs(10))
        .await;
    assert!(
        refused.is_some_and(|l| l.contains("do not go together")),
        "{}",
        hermod.logs().join("\n")
    );
    assert_eq!(
        subject(&s_client(addr, &s.ca.cert_file, &[], "QUIT\n")),
        subject(&before)
    );
    // A renewed pair (new name) is taken by new connections.
    let renewed = s.ca.issue(
        s.dir.path(),
        "renewed",
        &["localhost", "renewed.hermod.test"],
        false,
    );
    std::fs::copy(&renewed.cert, &s.server.cert).unwrap();
    std::fs::copy(&renewed.key, &s.server.key).unwrap();
    hermod.hangup();
    // The renewed leaf, as s_client -showcerts prints it.
    let leaf = std::fs::read_to_string(&renewed.cert).unwrap();
    let leaf = leaf
        .split("-----END CERTIFICATE-----")
        .next()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = s_client(addr, &s.ca.cert_file, &["-showcerts"], "QUIT\n");
        if out.contains(&leaf) || Instant::now() > deadline {
            assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
            assert!(
                out.contains(&leaf),
                "renewed certificate not served:\n{out}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    open.get_mut().write_all(b"NOOP\r\n").await.unwrap();
    line.clear();
    open.read_line(&mut line).await.unwrap();
    assert_eq!(line, "250 2.0.0 Ok\r\n", "the open session was disturbed");
}

/// Sends AUTH PLAIN on a fresh implicit-TLS connection; returns the reply and how long
/// it took.
async fn auth_once(addr: SocketAddr, ca: &Path, user: &str, password: &str) -> (String, Duration) {
    let mut tls = tls_session(&tls_client(ca), addr).await;
    let mut reply = String::new();
    tls.get_mut().write_all(b"EHLO c.test\r\n").await.unwrap();
    loop {
        reply.clear();
        tls.read_line(&mut reply).await.unwrap();
        if reply.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    let started = Instant::now();
    tls.get_mut()
        .write_all(format!("AUTH PLAIN {token}\r\n").as_bytes())
        .await
        .unwrap();
    reply.clear();
    tls.read_line(&mut reply).await.unwrap();
    (reply.trim_end().to_string(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_take_as_long_and_guessers_are_locked_out() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    // First with a lock-out far away: a known user with a wrong password and a user that
    // does not exist get the same answer in about the same time (the unknown user is
    // checked against a dummy hash). Medians of interleaved tries, so that another test's
    // load on the machine does not decide it.
    let config = config(&s.server, relay, "").replace(
        "[auth]\nenabled = true",
        "[auth]\nenabled = true\nmax_failures = 100\nfailure_window = \"1m\"",
    );
    std::fs::write(s.dir.path().join("hermod.toml"), &config).unwrap();
    add_user(s.dir.path(), None, "app", "right", &[]);
    let mut hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let addr = hermod.listener("submissions");
    let ca = &s.ca.cert_file;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (reply, time) = auth_once(addr, ca, "app", "wrong").await;
        assert_eq!(reply, "535 5.7.8 Authentication credentials invalid");
        known.push(time);
        let (reply, time) = auth_once(addr, ca, "nobody", "wrong").await;
        assert_eq!(reply, "535 5.7.8 Authentication credentials invalid");
        unknown.push(time);
    }
    known.sort();
    unknown.sort();
    let (known_time, unknown_time) = (known[2], unknown[2]);
    let ratio = unknown_time.as_secs_f64() / known_time.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "unknown user {unknown_time:?} vs known user {known_time:?}: the difference tells which users exist"
    );
    hermod.stop().await;

    // Then with max_failures = 4.
    let config = config.replace("max_failures = 100", "max_failures = 4");
    std::fs::write(s.dir.path().join("hermod.toml"), &config).unwrap();
    let hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let addr = hermod.listener("submissions");
    for _ in 0..3 {
        let (reply, _) = auth_once(addr, ca, "app", "wrong").await;
        assert_eq!(reply, "535 5.7.8 Authentication credentials invalid");
    }
    let (fourth, _) = auth_once(addr, ca, "app", "wrong").await;
    assert_eq!(
        fourth,
        "421 4.7.0 Too many authentication failures from your address, try again later"
    );
    // Locked out even with the right password, within the window.
    let (locked, _) = auth_once(addr, ca, "app", "right").await;
    assert!(locked.starts_with("421 4.7.0"), "{locked}");
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(metrics.contains("smtp_auth_failures_total 5"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_user_command_changes_a_running_server_at_once() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let config = config(&s.server, relay, "");
    let hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let addr = hermod.listener("submissions");
    let ca = &s.ca.cert_file;
    assert!(
        auth_once(addr, ca, "late", "pw1")
            .await
            .0
            .starts_with("535")
    );
    add_user(s.dir.path(), hermod.admin, "late", "pw1", &[]);
    assert_eq!(
        auth_once(addr, ca, "late", "pw1").await.0,
        "235 2.7.0 Authentication successful"
    );
    let out = hermod.command(s.dir.path(), &["user", "disable", "late"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        auth_once(addr, ca, "late", "pw1")
            .await
            .0
            .starts_with("535")
    );
    let out = hermod.command(s.dir.path(), &["user", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("late") && listing.contains("disabled"),
        "{listing}"
    );
    let out = hermod.command(s.dir.path(), &["user", "del", "late"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hermod.command(s.dir.path(), &["user", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no users"));
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_only_reports_the_certificate() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let validate = |config: &str| {
        let path = s.dir.path().join("check.toml");
        std::fs::write(&path, config).unwrap();
        Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["--validate-only", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let good = validate(&config(&s.server, relay, ""));
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{text}");
    assert!(text.contains("names=[localhost,mx.hermod.test]"), "{text}");
    assert!(
        text.contains("(in 89 days)") || text.contains("(in 90 days)"),
        "{text}"
    );
    assert!(text.contains("covers smtp.hostname localhost"), "{text}");
    assert!(
        !text.contains("test-admin-token"),
        "a secret was printed:\n{text}"
    );
    assert!(
        text.contains("admin.token = \"(set, not shown)\""),
        "{text}"
    );

    let wrong_name = s.ca.issue(s.dir.path(), "wrong", &["other.test"], false);
    let out = validate(&config(&wrong_name, relay, ""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING: does not cover smtp.hostname localhost"),
        "{text}"
    );

    let expired = s.ca.issue(s.dir.path(), "expired", &["localhost"], true);
    let out = validate(&config(&expired, relay, ""));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("EXPIRED on"), "{text}");

    let mismatched = CertFiles {
        cert: s.server.cert.clone(),
        key: wrong_name.key.clone(),
    };
    let out = validate(&config(&mismatched, relay, ""));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("tls.cert") && text.contains("do not go together"),
        "{text}"
    );
}

/// A refusal at connect on port 465 comes over TLS, where the client can read it.
#[tokio::test(flavor = "multi_thread")]
async fn a_connect_refusal_on_port_465_is_said_over_tls() {
    let s = setup().await;
    let relay = s.sink.local_addrs()[0];
    let config = config(
        &s.server,
        relay,
        "[rate_limit]\nconnections_per_ip = 1\nwindow = \"1h\"",
    );
    let hermod = Hermod::start_listening(s.dir.path(), &config, &[]).await;
    let connector = tls_client(&s.ca.cert_file);
    let _first = tls_session(&connector, hermod.listener("submissions")).await;
    let stream = TcpStream::connect(hermod.listener("submissions"))
        .await
        .unwrap();
    let mut second = BufReader::new(
        connector
            .connect("localhost".try_into().unwrap(), stream)
            .await
            .expect("the handshake comes before the refusal"),
    );
    let mut line = String::new();
    second.read_line(&mut line).await.unwrap();
    assert!(
        line.starts_with("421 4.7.0 Rate limit exceeded, try again in "),
        "{line}"
    );
}
