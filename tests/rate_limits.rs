//! Rate limits end to end: exact counts at the boundary per client address (messages and
//! connections) and per authenticated user (messages and recipients, with Python's
//! smtplib logging in), the reply, the log line and the metric.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::client::Client;
use common::hermod::Hermod;

fn config(sink_port: u16, limits: &str) -> String {
    format!(
        "[relay]\ndomains = [\"relay.test\"]\nnetworks = []\n[delivery]\nrelayhost = \"[127.0.0.1]:{sink_port}\"\n[rate_limit]\nwindow = \"1h\"\n{limits}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_and_connections_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let sink = common::sink::start(&dir.path().join("sink")).await;
    let hermod = Hermod::start(
        dir.path(),
        &config(
            sink.local_addrs()[0].port(),
            "messages_per_ip = 3\nconnections_per_ip = 4",
        ),
    )
    .await;
    let mut client = Client::connect(hermod.addr).await;
    client
        .send_numbered(3, "a@outside.test", "relay.test")
        .await;
    let fourth = client.cmd("MAIL FROM:<a@outside.test>").await;
    // 3 per hour: the next one in 20 minutes.
    common::assert_retry_in(&fourth, "450 4.7.1 Rate limit exceeded, ", 1200);
    let line = hermod
        .wait_log("Rate limit exceeded", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        line.contains("scope=\"messages_per_ip\"")
            && line.contains("key=127.0.0.1")
            && line.contains("limit=3"),
        "{line}"
    );
    // Connections: the first one above, three more, then 421 and close.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Client::connect(hermod.addr).await);
    }
    let (mut refused, greeting) = Client::connect_raw(hermod.addr).await;
    assert!(
        greeting.starts_with("421 4.7.0 Rate limit exceeded, try again in "),
        "{greeting}"
    );
    assert!(refused.is_closed().await);
    let metrics = common::http::get(hermod.admin.unwrap(), "/metrics")
        .await
        .body;
    assert!(
        metrics.contains("smtp_rate_limit_hits_total{scope=\"messages_per_ip\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("smtp_rate_limit_hits_total{scope=\"connections_per_ip\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_and_recipients_per_authenticated_user() {
    let dir = tempfile::tempdir().unwrap();
    let sink = common::sink::start(&dir.path().join("sink")).await;
    // A submission listener that takes AUTH in clear (loopback, for this test), and
    // cheap password hashes.
    let config = format!(
        "{}\n[smtp]\nlisten = [{{ address = \"127.0.0.1:0\", kind = \"submission\", plaintext_auth = true }}]\n[auth]\nenabled = true\nargon2_memory_kib = 64\nargon2_iterations = 1\n",
        config(
            sink.local_addrs()[0].port(),
            "messages_per_user = 2\nrecipients_per_user = 3"
        )
    );
    std::fs::write(dir.path().join("hermod.toml"), &config).unwrap();
    for user in ["app", "other"] {
        let mut add = Command::new(env!("CARGO_BIN_EXE_hermod"))
            .args(["user", "add", user, "--password-stdin", "--config"])
            .arg(dir.path().join("hermod.toml"))
            .env("SMTP_DB_PATH", dir.path().join("data"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(add.stdin.take().unwrap(), "pw").unwrap();
        assert!(add.wait().unwrap().success());
    }
    let hermod = Hermod::start_listening(dir.path(), &config, &[]).await;
    let port = hermod.listener("submission").port();
    let out = Command::new(common::python3())
        .arg("-c")
        .arg(format!(
            r#"
import smtplib
def session(user):
    s = smtplib.SMTP("127.0.0.1", {port}, local_hostname="client.test")
    s.login(user, "pw")
    return s
s = session("app")
# Recipients: 3 per hour for app; the fourth RCPT is refused.
refused = s.sendmail("a@shop.test", ["r1@x.test", "r2@x.test", "r3@x.test", "r4@x.test"], "Subject: 1\r\n\r\n1\r\n")
print("refused:", refused)
# Messages: 2 per hour for app; the third MAIL is refused.
try:
    s.sendmail("a@shop.test", ["r5@x.test"], "Subject: 2\r\n\r\n2\r\n")
    print("second: sent")
except smtplib.SMTPRecipientsRefused as e:
    print("second: recipients refused", e.recipients)
try:
    s.sendmail("a@shop.test", ["r6@x.test"], "Subject: 3\r\n\r\n3\r\n")
except smtplib.SMTPSenderRefused as e:
    print("third:", e.smtp_code, e.smtp_error.decode())
s.quit()
o = session("other")
o.sendmail("b@shop.test", ["r7@x.test"], "Subject: other\r\n\r\nother\r\n")
print("other: sent")
o.quit()
"#
        ))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_retry_in(
        &text,
        "refused: {'r4@x.test': (450, b'4.7.1 Rate limit exceeded, ",
        1200,
    );
    // The recipient budget is spent, so the second message's only recipient is refused.
    assert!(text.contains("second: recipients refused"), "{text}");
    common::assert_retry_in(&text, "third: 450 4.7.1 Rate limit exceeded, ", 1800);
    assert!(text.contains("other: sent"), "{text}");
    // The log is read by another thread: wait for the last refusal's line.
    hermod
        .wait_log_matching(
            |l| l.contains("Rate limit exceeded") && l.contains("messages_per_user"),
            Duration::from_secs(5),
        )
        .await
        .expect("a messages_per_user refusal line");
    let logs = hermod.logs().join("\n");
    assert!(
        logs.contains("scope=\"recipients_per_user\"") && logs.contains("key=app"),
        "{logs}"
    );
    assert!(logs.contains("scope=\"messages_per_user\""), "{logs}");
}
