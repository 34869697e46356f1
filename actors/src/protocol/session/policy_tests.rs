//! The session stopping for its policies: one check per stage, nothing consumed in
//! between (pipelined replies stay in order), and each verdict finishing its command.

use super::tests::settings;
use super::*;
use crate::protocol::check::{CheckStage, CheckStages, Verdict};

fn checked_session() -> ServerSession {
    let mut settings = Arc::try_unwrap(settings(100, 10)).unwrap_or_else(|_| unreachable!());
    settings.checks = CheckStages::of(&[
        CheckStage::Helo,
        CheckStage::Mail,
        CheckStage::Rcpt,
        CheckStage::Data,
    ]);
    ServerSession::new(Arc::new(settings), "198.51.100.9".parse().unwrap())
}

/// Feeds until the session raises an event or wants more input.
fn step(s: &mut ServerSession, input: &mut BytesMut, out: &mut Vec<u8>) -> Option<Event> {
    s.feed(input, out, SystemTime::UNIX_EPOCH)
}

#[test]
fn each_stage_stops_once_and_its_verdict_finishes_the_command() {
    let mut s = checked_session();
    let mut input = BytesMut::from(
        &b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@relay.test>\r\nRCPT TO:<y@relay.test>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\n"[..],
    );
    let mut out = Vec::new();
    let Some(Event::Check(facts)) = step(&mut s, &mut input, &mut out) else {
        panic!("no check at EHLO");
    };
    assert_eq!(
        (facts.stage, facts.helo.as_deref()),
        (CheckStage::Helo, Some("c.test"))
    );
    assert!(out.is_empty(), "a reply before the verdict");
    assert!(s.check_verdict(Verdict::accept(), &mut out).is_none());
    assert!(String::from_utf8_lossy(&out).starts_with("250-mx.hermod.test Hello c.test"));
    out.clear();

    let Some(Event::Check(facts)) = step(&mut s, &mut input, &mut out) else {
        panic!("no check at MAIL");
    };
    assert_eq!(
        (facts.stage, facts.sender.as_deref()),
        (CheckStage::Mail, Some("a@b.test"))
    );
    s.check_verdict(Verdict::accept(), &mut out);
    let Some(Event::Check(facts)) = step(&mut s, &mut input, &mut out) else {
        panic!("no check at the first RCPT");
    };
    assert_eq!(facts.recipients, ["x@relay.test"]);
    s.check_verdict(Verdict::Defer(Reply::greylisted(300)), &mut out);
    let Some(Event::Check(facts)) = step(&mut s, &mut input, &mut out) else {
        panic!("no check at the second RCPT");
    };
    assert_eq!(facts.recipients, ["y@relay.test"]);
    s.check_verdict(Verdict::accept(), &mut out);
    let Some(Event::Check(facts)) = step(&mut s, &mut input, &mut out) else {
        panic!("no check at the end of DATA");
    };
    assert_eq!((facts.stage, facts.recipients.len()), (CheckStage::Data, 1));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "250 2.1.0 Sender ok\r\n451 4.7.1 Greylisted, please try again in 300 seconds\r\n250 2.1.5 Recipient ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    let verdict = Verdict::accept_with_headers(vec!["X-Policy: checked".into()]);
    let Some(Event::Enqueue(message)) = s.check_verdict(verdict, &mut out) else {
        panic!("the accepted message was not handed on");
    };
    assert!(
        message
            .data
            .starts_with(b"X-Policy: checked\r\nReceived: from c.test")
    );
    assert_eq!(message.recipients.len(), 1);
}

#[test]
fn a_refused_message_is_not_queued() {
    let mut s = checked_session();
    let mut input = BytesMut::from(&b"HELO c.test\r\n"[..]);
    let mut out = Vec::new();
    assert!(matches!(
        step(&mut s, &mut input, &mut out),
        Some(Event::Check(_))
    ));
    s.check_verdict(
        Verdict::Reject(Reply::dnsbl_blocked(
            "198.51.100.9".parse().unwrap(),
            "bl.test",
            "listed",
        )),
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "554 5.7.1 Service unavailable; client [198.51.100.9] blocked using bl.test; listed\r\n"
    );
    // HELO was refused: MAIL is out of sequence.
    out.clear();
    let mut input = BytesMut::from(&b"MAIL FROM:<a@b.test>\r\n"[..]);
    assert!(step(&mut s, &mut input, &mut out).is_none());
    assert!(String::from_utf8_lossy(&out).starts_with("503 5.5.1"));
}
