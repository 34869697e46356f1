//! Every limit and every refusal an operator expects, asserted by reply code, enhanced
//! code and text over real TCP. Nothing here is delivered: the relay host is a closed
//! loopback port.

mod common;

use std::time::Duration;

use common::client::{Client, queue_id};
use common::hermod::Hermod;

async fn hermod(dir: &std::path::Path, smtp: &str, relay: &str) -> Hermod {
    let config = format!(
        "[smtp]\nhostname = \"mx.hermod.test\"\n{smtp}\n[relay]\n{relay}\n[delivery]\nrelayhost = \"[127.0.0.1]:1\"\n[queue]\nretry_interval = \"1h\"\n"
    );
    Hermod::start(dir, &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_denied_for_foreign_domain_from_untrusted_client() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(
        dir.path(),
        "",
        "domains = [\"relay.test\"]\nnetworks = [\"192.0.2.0/24\"]",
    )
    .await;
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@outside.test>").await,
        "250 2.1.0 Sender ok"
    );
    assert_eq!(
        c.cmd("RCPT TO:<u@elsewhere.test>").await,
        "554 5.7.1 <u@elsewhere.test>: Relay access denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<u%elsewhere.test@relay.test>").await,
        "554 5.7.1 <u%elsewhere.test@relay.test>: Relay access denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<@relay.test:u@elsewhere.test>").await,
        "554 5.7.1 <u@elsewhere.test>: Relay access denied"
    );
    assert_eq!(
        c.cmd("RCPT TO:<u@relay.test>").await,
        "250 2.1.5 Recipient ok"
    );
    assert!(
        h.wait_log("message accepted", Duration::ZERO)
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_network_may_relay_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "", "networks = [\"127.0.0.0/8\"]").await;
    let mut c = Client::connect(h.addr).await;
    queue_id(
        &c.send_message(
            "a@inside.test",
            &["u@anywhere.test"],
            b"Subject: x\r\n\r\nx\r\n",
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_total_limit_get_421() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(
        dir.path(),
        "max_connections = 2\nmax_connections_per_ip = 2",
        "",
    )
    .await;
    let _a = Client::connect(h.addr).await;
    let _b = Client::connect(h.addr).await;
    let (mut third, greeting) = Client::connect_raw(h.addr).await;
    assert_eq!(greeting, "421 4.7.0 Too many connections, try again later");
    assert!(third.is_closed().await);
    drop(_a);
    // The slot frees once the server has seen the close; until then a 421 is right.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let greeting = loop {
        let (_again, greeting) = Client::connect_raw(h.addr).await;
        if greeting.starts_with("220 ") || std::time::Instant::now() > deadline {
            break greeting;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        greeting.starts_with("220 "),
        "a slot frees when a session ends: {greeting}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_ip_limit_get_421() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(
        dir.path(),
        "max_connections = 10\nmax_connections_per_ip = 1",
        "",
    )
    .await;
    let _a = Client::connect(h.addr).await;
    let (_b, greeting) = Client::connect_raw(h.addr).await;
    assert_eq!(
        greeting,
        "421 4.7.0 Too many connections from your IP address, try again later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_size_over_limit_is_refused_at_mail() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_message_size = 1000", "").await;
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.test> SIZE=2000").await,
        "552 5.3.4 Message size exceeds fixed maximum message size of 1000 bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_data_is_refused_after_the_dot_and_not_queued() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_message_size = 1000", "").await;
    let mut c = Client::connect(h.addr).await;
    let body = "x".repeat(98) + "\r\n";
    let reply = c
        .send_message("a@b.test", &["u@c.test"], body.repeat(20).as_bytes())
        .await;
    assert_eq!(
        reply,
        "552 5.3.4 Message size exceeds fixed maximum message size of 1000 bytes"
    );
    assert_eq!(
        c.cmd("NOOP").await,
        "250 2.0.0 Ok",
        "the session stays in step"
    );
    assert!(
        h.wait_log("message accepted", Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_past_the_limit_get_452() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_recipients = 2", "").await;
    let mut c = Client::connect(h.addr).await;
    c.cmd("MAIL FROM:<a@b.test>").await;
    assert_eq!(c.cmd("RCPT TO:<u1@c.test>").await, "250 2.1.5 Recipient ok");
    assert_eq!(c.cmd("RCPT TO:<u2@c.test>").await, "250 2.1.5 Recipient ok");
    assert_eq!(
        c.cmd("RCPT TO:<u3@c.test>").await,
        "452 4.5.3 Too many recipients (maximum 2)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_command_line_gets_500() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_line_length = 600", "").await;
    let mut c = Client::connect(h.addr).await;
    let long = format!("NOOP {}", "x".repeat(2000));
    assert_eq!(c.cmd(&long).await, "500 5.5.2 Line too long");
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_data_line_refuses_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_line_length = 600", "").await;
    let mut c = Client::connect(h.addr).await;
    let body = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(5000));
    assert_eq!(
        c.send_message("a@b.test", &["u@c.test"], body.as_bytes())
            .await,
        "500 5.5.2 Line too long"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_cr_in_a_command_is_one_refused_line() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "", "").await;
    let mut c = Client::connect(h.addr).await;
    c.send(b"NOOP\rRSET\r\n").await;
    assert_eq!(
        c.reply().await,
        "500 5.5.2 Command must end with CRLF; bare LF or CR is not allowed"
    );
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_greeting_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "greeting_timeout = \"1s\"", "").await;
    let (mut c, greeting) = Client::connect_raw(h.addr).await;
    assert!(greeting.starts_with("220 "));
    assert_eq!(
        c.reply().await,
        "421 4.4.2 Greeting timeout, closing connection"
    );
    assert!(c.is_closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_gets_command_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "command_timeout = \"1s\"", "").await;
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 Command timeout, closing connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_data_gets_data_timeout_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "data_timeout = \"1s\"", "").await;
    let mut c = Client::connect(h.addr).await;
    c.cmd("MAIL FROM:<a@b.test>").await;
    c.cmd("RCPT TO:<u@c.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(b"Subject: half\r\n").await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 Data timeout, closing connection"
    );
    assert!(
        h.wait_log("message accepted", Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_errors = 3", "").await;
    let mut c = Client::connect(h.addr).await;
    for _ in 0..3 {
        assert_eq!(c.cmd("BOGUS").await, "500 5.5.1 Command not recognized");
    }
    assert_eq!(
        c.reply().await,
        "421 4.7.0 Too many errors, closing connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_addresses_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "", "").await;
    let mut c = Client::connect(h.addr).await;
    assert_eq!(
        c.cmd("MAIL FROM:a@b.test").await,
        "501 5.5.4 Syntax: MAIL FROM:<reverse-path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@b..test>").await,
        "501 5.1.7 Bad sender address syntax: invalid domain \"b..test\""
    );
    assert_eq!(c.cmd("MAIL FROM:<a@b.test>").await, "250 2.1.0 Sender ok");
    assert_eq!(
        c.cmd("RCPT TO:<no-domain>").await,
        "501 5.1.3 Bad recipient address syntax: address must be local@domain"
    );
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 No valid recipients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehlo_advertises_the_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_message_size = 12345", "").await;
    let (mut c, _) = Client::connect_raw(h.addr).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert_eq!(
        ehlo,
        "250-mx.hermod.test Hello client.test\n250-PIPELINING\n250-SIZE 12345\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n250 CHUNKING"
    );
    assert_eq!(
        c.cmd("VRFY someone").await,
        "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"
    );
    assert!(c.cmd("HELP").await.starts_with("214 2.0.0 "));
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 Reset state");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_chunks_are_queued() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "", "").await;
    let mut c = Client::connect(h.addr).await;
    c.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME").await;
    c.cmd("RCPT TO:<u@c.test>").await;
    c.send(b"BDAT 12\r\nSubject: x\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 12 octets received");
    c.send(b"BDAT 8 LAST\r\n\r\nbody\r\n").await;
    queue_id(&c.reply().await);
}

/// Each sequence some receiver might take for the end of data (SMTP smuggling). None may
/// end the message: hermod keeps reading to the real CRLF.CRLF and refuses the whole
/// message for its bare line ending, so no second message can be smuggled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_sequences_never_end_data_or_start_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "", "").await;
    for sequence in [
        &b"\n.\n"[..],
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\r.\r\n",
    ] {
        let mut c = Client::connect(h.addr).await;
        c.cmd("MAIL FROM:<a@b.test>").await;
        c.cmd("RCPT TO:<u@c.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        let mut body = b"Subject: outer\r\n\r\nhello".to_vec();
        body.extend_from_slice(sequence);
        body.extend_from_slice(b"MAIL FROM:<evil@b.test>\r\nRCPT TO:<victim@c.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n");
        c.send(&body).await;
        let reply = c.reply().await;
        assert_eq!(
            reply, "550 5.6.11 Message contains bare LF or CR; lines must end with CRLF",
            "sequence {sequence:?}"
        );
        assert_eq!(
            c.cmd("NOOP").await,
            "250 2.0.0 Ok",
            "no further replies for sequence {sequence:?}"
        );
    }
    assert!(
        h.wait_log("message accepted", Duration::from_millis(300))
            .await
            .is_none(),
        "nothing was queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_loop_is_refused_by_received_count() {
    let dir = tempfile::tempdir().unwrap();
    let h = hermod(dir.path(), "max_received_headers = 5", "").await;
    let mut c = Client::connect(h.addr).await;
    let looped = "Received: from a by b; Mon, 23 Nov 2026 00:00:00 +0000\r\n".repeat(6)
        + "Subject: loop\r\n\r\nx\r\n";
    let reply = c
        .send_message("a@b.test", &["u@c.test"], looped.as_bytes())
        .await;
    assert_eq!(
        reply,
        "554 5.4.6 Too many Received: headers (6): mail forwarding loop"
    );
    let fine = "Received: from a by b; Mon, 23 Nov 2026 00:00:00 +0000\r\n".repeat(5)
        + "Subject: ok\r\n\r\nReceived: in the body does not count\r\n";
    queue_id(
        &c.send_message("a@b.test", &["u@c.test"], fine.as_bytes())
            .await,
    );
}
