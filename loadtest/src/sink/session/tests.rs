//! Sans-IO tests: bytes in, exact reply bytes out, no sockets.

use std::sync::Arc;

use bytes::BytesMut;

use super::{Session, Step};
use crate::sink::config::{FailAt, SinkConfig};
use crate::sink::shared::Shared;

fn session(config: SinkConfig) -> (Session, Arc<Shared>) {
    let shared = Arc::new(Shared::new(config, None, None));
    (Session::new(Arc::clone(&shared)), shared)
}

/// Feeds `input` and returns the replies written until more input is needed.
fn run(session: &mut Session, input: &[u8]) -> String {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match session.feed(&mut buf, 1_000, &mut out) {
            Step::Pause(_) => continue,
            Step::Deliver(_) => session.delivered(true, 1_000, &mut out),
            _ => break,
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn pipelined_transaction_gets_one_reply_per_command() {
    let (mut s, shared) = session(SinkConfig::default());
    let got = run(
        &mut s,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    );
    let codes: Vec<&str> = got.lines().map(|l| &l[..4]).collect();
    assert_eq!(codes.last(), Some(&"221 "));
    assert!(got.contains("250 2.1.0"), "{got}");
    assert!(got.contains("354 "), "{got}");
    assert!(got.contains("250 2.0.0 Ok: queued"), "{got}");
    assert_eq!(shared.stats().received, 1);
    assert_eq!(shared.stats().bytes, 4);
}

#[test]
fn forced_recipients_fail_at_rcpt() {
    let (mut s, shared) = session(SinkConfig::default());
    let got = run(
        &mut s,
        b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<tempfail1@y>\r\nRCPT TO:<permfail@y>\r\n",
    );
    assert!(got.contains("450 4.2.0"), "{got}");
    assert!(got.contains("550 5.1.1"), "{got}");
    assert_eq!(
        (shared.stats().tempfail_rcpt, shared.stats().permfail_rcpt),
        (1, 1)
    );
}

#[test]
fn lmtp_answers_each_recipient_after_data() {
    let config = SinkConfig {
        lmtp: true,
        fail_at: FailAt::Data,
        ..SinkConfig::default()
    };
    let (mut s, shared) = session(config);
    let got = run(
        &mut s,
        b"LHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<ok@y>\r\nRCPT TO:<permfail@y>\r\nDATA\r\nx\r\n.\r\n",
    );
    let tail: Vec<&str> = got.lines().rev().take(2).collect();
    assert!(tail[1].starts_with("250 2.0.0"), "{got}");
    assert!(tail[0].starts_with("550 5.1.1"), "{got}");
    assert_eq!(shared.stats().recipients, 1);
}

#[test]
fn bdat_chunks_make_one_message() {
    let (mut s, shared) = session(SinkConfig::default());
    let got = run(
        &mut s,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nde",
    );
    assert!(got.contains("250 2.0.0 Chunk received"), "{got}");
    assert!(got.ends_with("250 2.0.0 Ok: queued\r\n"), "{got}");
    assert_eq!(shared.stats().bytes, 5);
}

#[test]
fn auth_is_required_when_configured() {
    let config = SinkConfig {
        auth: Some(("u".into(), "p".into())),
        ..SinkConfig::default()
    };
    let (mut s, _) = session(config);
    let got = run(
        &mut s,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@b>\r\n",
    );
    assert!(got.contains("530 5.7.0"), "{got}");
    assert!(got.contains("235 2.7.0"), "{got}");
    assert!(got.ends_with("250 2.1.0 Sender ok\r\n"), "{got}");
}

#[test]
fn auth_login_takes_two_lines() {
    let config = SinkConfig {
        auth: Some(("u".into(), "p".into())),
        ..SinkConfig::default()
    };
    let (mut s, _) = session(config);
    let got = run(&mut s, b"EHLO c\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\n");
    assert!(
        got.ends_with(
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
        ),
        "{got}"
    );
}

#[test]
fn garbage_gets_500_and_counts() {
    let (mut s, shared) = session(SinkConfig::default());
    let got = run(&mut s, b"\x16\x03\x01garbage\r\n");
    assert_eq!(got, "500 5.5.2 Command not recognized\r\n");
    assert_eq!(shared.stats().protocol_errors, 1);
}

#[test]
fn pipelined_data_after_refused_recipients_is_not_a_client_error() {
    let (mut s, shared) = session(SinkConfig::default());
    let got = run(
        &mut s,
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<permfail@y>\r\nDATA\r\nBDAT 2 LAST\r\nhi",
    );
    assert!(got.contains("550 5.1.1"), "{got}");
    assert!(
        got.ends_with("554 5.5.1 No valid recipients\r\n554 5.5.1 No valid recipients\r\n"),
        "{got}"
    );
    assert_eq!(shared.stats().protocol_errors, 0);
    let got = run(&mut s, b"RSET\r\nDATA\r\n");
    assert!(got.ends_with("503 5.5.1 MAIL first\r\n"), "{got}");
    assert_eq!(shared.stats().protocol_errors, 1);
    // DATA with no RCPT tried at all is the client's mistake.
    let got = run(&mut s, b"MAIL FROM:<a@b>\r\nDATA\r\n");
    assert!(got.ends_with("554 5.5.1 No valid recipients\r\n"), "{got}");
    assert_eq!(shared.stats().protocol_errors, 2);
}
