//! The sans-IO session command by command: bytes in, exact replies and events out, with
//! a fixed clock.

use super::*;

pub(super) fn settings(max_recipients: usize, max_errors: u32) -> Arc<ServerSettings> {
    Arc::new(ServerSettings {
        hostname: "mx.hermod.test".into(),
        max_message_size: 1 << 20,
        max_recipients,
        max_line_length: 1000,
        max_errors,
        max_received_headers: 30,
        relay: RelayPolicy::new(&["relay.test".to_string()], &[]),
        security: Default::default(),
        checks: Default::default(),
        postmaster: Some(Mailbox {
            local: "hostmaster".into(),
            domain: "ops.test".into(),
        }),
        room: Arc::new(TestRoom::default()),
        spill: None,
    })
}

/// The spool's room in memory: never low, ids counted from 1.
#[derive(Debug, Default)]
pub(super) struct TestRoom {
    space: Arc<crate::core::disk_space::DiskSpace>,
    next: std::sync::atomic::AtomicU64,
}

impl SpoolRoom for TestRoom {
    fn is_low(&self) -> bool {
        self.space.is_low()
    }

    fn try_claim(&self, bytes: u64) -> Option<Claim> {
        self.space.try_claim(bytes)
    }

    fn next_id(&self) -> QueueId {
        QueueId(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }
}

/// Feeds `input` until the session wants more bytes or acts; returns what it wrote,
/// the events it raised, and what is left unread.
pub(super) fn drive(session: &mut ServerSession, input: &[u8]) -> (String, Vec<Event>, Vec<u8>) {
    let mut buffer = BytesMut::from(input);
    let mut out = Vec::new();
    let mut events = Vec::new();
    loop {
        match session.feed(&mut buffer, &mut out, SystemTime::UNIX_EPOCH) {
            Some(Event::Close) => {
                events.push(Event::Close);
                break;
            }
            Some(event) => events.push(event),
            None => break,
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        events,
        buffer.to_vec(),
    )
}

fn session() -> ServerSession {
    ServerSession::new(settings(100, 10), "192.0.2.7".parse().unwrap())
}

pub(super) fn replies(out: &str) -> Vec<&str> {
    out.split("\r\n").filter(|l| !l.is_empty()).collect()
}

#[test]
fn bare_lf_in_a_command_is_one_refused_line_and_a_close() {
    let mut s = session();
    let (out, events, _) = drive(
        &mut s,
        b"HELO c.test\r\nNOOP\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\n",
    );
    assert_eq!(
        replies(&out),
        [
            "250 mx.hermod.test Hello c.test",
            "500 5.5.2 Bare LF in command; lines must end with CRLF, closing connection"
        ]
    );
    assert!(matches!(events.as_slice(), [Event::Close]));
    assert!(!s.in_transaction());
}

#[test]
fn bdat_with_an_unreadable_size_closes_before_its_payload_is_read() {
    for bdat in ["BDAT 99999999999999999999999 LAST", "BDAT -5"] {
        let mut s = session();
        let input = format!(
            "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\n{bdat}\r\nRCPT TO:<evil@relay.test>\r\n"
        );
        let (out, events, _) = drive(&mut s, input.as_bytes());
        let lines = replies(&out);
        assert_eq!(
            lines.last().copied(),
            Some(
                "501 5.5.4 Syntax: BDAT chunk-size [LAST]; unreadable chunk size, closing connection"
            ),
            "{bdat}"
        );
        assert!(!out.contains("2.1.5 Recipient ok\r\n250 2.1.5"), "{out}");
        assert!(matches!(events.as_slice(), [Event::Close]), "{bdat}");
    }
}

#[test]
fn refusals_past_the_recipient_limit_count_as_errors() {
    let mut s = ServerSession::new(settings(2, 5), "192.0.2.7".parse().unwrap());
    let mut input = b"HELO c.test\r\nMAIL FROM:<a@b.test>\r\n".to_vec();
    for i in 0..50 {
        input.extend_from_slice(format!("RCPT TO:<u{i}@relay.test>\r\n").as_bytes());
    }
    let (out, events, _) = drive(&mut s, &input);
    let lines = replies(&out);
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("452 4.5.3")).count(),
        5
    );
    assert_eq!(
        lines.last().copied(),
        Some("421 4.7.0 Too many errors, closing connection")
    );
    assert!(matches!(events.as_slice(), [Event::Close]));
}

#[test]
fn duplicate_recipients_are_merged() {
    let mut s = session();
    let (out, events, _) = drive(
        &mut s,
        b"HELO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\nRCPT TO:<u@RELAY.test.>\r\nDATA\r\nx\r\n.\r\n",
    );
    assert_eq!(out.matches("250 2.1.5").count(), 2, "{out}");
    let [Event::Enqueue(message)] = events.as_slice() else {
        panic!("no message: {out}");
    };
    assert_eq!(message.recipients.len(), 1);
}

#[test]
fn postmaster_is_accepted_from_anyone_and_goes_to_the_configured_address() {
    let mut s = session();
    let (out, events, _) = drive(
        &mut s,
        b"HELO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<postmaster@MX.hermod.test>\r\nRCPT TO:<postmaster@elsewhere.test>\r\nDATA\r\nx\r\n.\r\n",
    );
    let lines = replies(&out);
    assert_eq!(lines[2], "250 2.1.5 Recipient ok");
    assert_eq!(lines[3], "250 2.1.5 Recipient ok");
    assert!(lines[4].starts_with("554 5.7.1"), "{out}");
    let [Event::Enqueue(message)] = events.as_slice() else {
        panic!("no message: {out}");
    };
    assert_eq!(message.recipients.len(), 1);
    assert_eq!(message.recipients[0].to_string(), "hostmaster@ops.test");
}

#[test]
fn bdat_chunk_past_the_size_limit_is_refused_at_that_chunk() {
    let mut s = session();
    let max = 1 << 20;
    let input = format!(
        "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\nBDAT 10\r\n0123456789BDAT {max}\r\n"
    );
    let (out, events, _) = drive(&mut s, input.as_bytes());
    assert!(events.is_empty());
    assert!(out.ends_with("250 2.0.0 10 octets received\r\n"), "{out}");
    // The refusal comes once the chunk's payload is read, before any later chunk.
    let (out, _, _) = drive(&mut s, &vec![b'x'; max]);
    assert_eq!(
        out,
        format!("552 5.3.4 Message size exceeds fixed maximum message size of {max} bytes\r\n")
    );
    assert!(!s.in_transaction());
    let (out, _, _) = drive(&mut s, b"BDAT 1 LAST\r\nx");
    assert!(out.starts_with("503 5.5.1"), "{out}");
}

#[test]
fn nul_in_data_is_refused() {
    let mut s = session();
    let (out, events, _) = drive(
        &mut s,
        b"HELO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\nDATA\r\na\0b\r\n.\r\n",
    );
    assert_eq!(
        replies(&out).last().copied(),
        Some("550 5.6.0 Message contains NUL characters")
    );
    assert!(events.is_empty());
}

#[test]
fn received_header_lines_fit_998_octets() {
    let mut s = session();
    let helo = "h".repeat(990);
    let input = format!("EHLO {helo}\r\nHELO {}\r\n", "c".repeat(255));
    let (out, _, _) = drive(&mut s, input.as_bytes());
    assert!(
        out.starts_with("501 5.5.4 Syntax: EHLO domain; domain longer than 255 octets"),
        "{out}"
    );
    let (out, events, _) = drive(
        &mut s,
        b"MAIL FROM:<a@b.test>\r\nRCPT TO:<u@relay.test>\r\nDATA\r\nx\r\n.\r\n",
    );
    let [Event::Enqueue(message)] = events.as_slice() else {
        panic!("no message: {out}");
    };
    for line in message.data.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line of {} octets", line.len());
    }
}

#[test]
fn repeated_mail_parameter_is_refused() {
    let mut s = session();
    let (out, _, _) = drive(
        &mut s,
        b"HELO c.test\r\nMAIL FROM:<a@b.test> SIZE=1 SIZE=2\r\n",
    );
    assert!(
        replies(&out)[1].starts_with("501 5.5.4 Syntax: MAIL FROM:"),
        "{out}"
    );
    assert!(!s.in_transaction());
}

#[test]
fn an_overlong_line_gets_the_same_refusal_whole_or_in_pieces() {
    // Found by the fuzzer: a bare CR in an overlong line was reported as a bare CR when
    // the line arrived whole, and as too long when its start arrived first.
    let mut line = b"\rW".to_vec();
    line.extend(std::iter::repeat_n(b'a', 1010));
    line.extend_from_slice(b"\r\nNOOP\r\n");
    let (whole, _, _) = drive(&mut session(), &line);
    let mut s = session();
    let (first, _, rest) = drive(&mut s, &line[..1005]);
    let mut remaining = rest;
    remaining.extend_from_slice(&line[1005..]);
    let (second, _, _) = drive(&mut s, &remaining);
    assert_eq!(whole, format!("{first}{second}"));
    assert_eq!(replies(&whole), ["500 5.5.2 Line too long", "250 2.0.0 Ok"]);
}

#[test]
fn an_overlong_data_line_gets_the_same_refusal_whole_or_in_pieces() {
    // Found by the fuzzer: in DATA, a bare CR in an overlong line was reported as a
    // bare CR when the line arrived whole, and as too long when its start came first.
    let mut input =
        b"EHLO c.test\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<b@relay.test>\r\nDATA\r\n".to_vec();
    let cut = input.len() + 1005;
    input.extend_from_slice(b"bare cr\r");
    input.extend(std::iter::repeat_n(b'a', 1010));
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let (whole, _, _) = drive(&mut session(), &input);
    let mut s = session();
    let (first, _, rest) = drive(&mut s, &input[..cut]);
    let mut remaining = rest;
    remaining.extend_from_slice(&input[cut..]);
    let (second, _, _) = drive(&mut s, &remaining);
    assert_eq!(whole, format!("{first}{second}"));
    assert!(
        whole.contains("500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n"),
        "{whole}"
    );
}

/// The reply lines of `input` sent after EHLO, one command per line.
fn after_ehlo(s: &mut ServerSession, input: &str) -> Vec<String> {
    let (out, _, _) = drive(s, format!("EHLO client.test\r\n{input}").as_bytes());
    // The EHLO reply is every "250-" line and the "250 " line that ends it.
    let lines = replies(&out);
    let ehlo = lines.iter().take_while(|l| l.starts_with("250-")).count() + 1;
    lines[ehlo..].iter().map(|l| l.to_string()).collect()
}

#[test]
fn ehlo_names_the_client_and_lists_the_extensions() {
    let (out, events, _) = drive(&mut session(), b"EHLO client.test\r\n");
    assert!(events.is_empty());
    assert_eq!(
        replies(&out),
        [
            "250-mx.hermod.test Hello client.test",
            "250-PIPELINING",
            "250-SIZE 1048576",
            "250-8BITMIME",
            "250-ENHANCEDSTATUSCODES",
            "250-SMTPUTF8",
            "250 CHUNKING"
        ]
    );
}

#[test]
fn helo_greets_without_extensions() {
    let (out, _, _) = drive(&mut session(), b"HELO client.test\r\n");
    assert_eq!(replies(&out), ["250 mx.hermod.test Hello client.test"]);
}

#[test]
fn mail_needs_a_greeting_first() {
    let (out, _, _) = drive(&mut session(), b"MAIL FROM:<a@b.test>\r\n");
    assert_eq!(
        replies(&out),
        ["503 5.5.1 Bad sequence of commands: send EHLO or HELO first"]
    );
}

#[test]
fn mail_opens_a_transaction_and_a_second_mail_is_refused() {
    let mut s = session();
    let lines = after_ehlo(&mut s, "MAIL FROM:<a@b.test>\r\nMAIL FROM:<c@d.test>\r\n");
    assert!(lines[0].starts_with("250 2.1.0"), "{lines:?}");
    assert!(lines[1].starts_with("503 5.5.1"), "{lines:?}");
    assert!(s.in_transaction());
}

#[test]
fn rcpt_needs_mail_first() {
    let lines = after_ehlo(&mut session(), "RCPT TO:<x@relay.test>\r\n");
    assert_eq!(
        lines,
        ["503 5.5.1 Bad sequence of commands: need MAIL before RCPT"]
    );
}

#[test]
fn rcpt_outside_the_relay_domains_is_denied_to_an_untrusted_client() {
    let lines = after_ehlo(
        &mut session(),
        "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@elsewhere.test>\r\nRCPT TO:<x@relay.test>\r\n",
    );
    assert_eq!(
        lines[1],
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    );
    assert!(lines[2].starts_with("250 2.1.5"), "{lines:?}");
}

#[test]
fn rcpt_for_a_domain_that_loops_back_is_refused_with_5_4_6() {
    use crate::core::looping_domains::Loop;
    use crate::core::looping_domains::LoopingDomains;
    let found = LoopingDomains::default();
    found.replace(vec![Loop {
        domain: "relay.test".into(),
        next_hop: "mx:relay.test".into(),
        target: "127.0.0.1:25".parse().unwrap(),
    }]);
    let mut s = ServerSession::new(settings(100, 10), "192.0.2.7".parse().unwrap());
    s.looping_domains(found.snapshot());
    let lines = after_ehlo(&mut s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<x@Relay.Test>\r\n");
    assert_eq!(
        lines[1],
        "550 5.4.6 <x@relay.test>: mail for relay.test loops back to myself"
    );
}

#[test]
fn data_needs_a_recipient() {
    let lines = after_ehlo(&mut session(), "MAIL FROM:<a@b.test>\r\nDATA\r\n");
    assert_eq!(lines[1], "554 5.5.1 No valid recipients");
}

#[test]
fn data_ends_in_an_enqueue_with_our_received_header_in_front() {
    let mut s = session();
    let (out, events, _) = drive(
        &mut s,
        b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@relay.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n",
    );
    assert!(replies(&out).last().unwrap().starts_with("354"), "{out}");
    let [Event::Enqueue(message)] = events.as_slice() else {
        panic!("expected one Enqueue, got {events:?}");
    };
    assert_eq!(message.sender.to_string(), "a@b.test");
    assert_eq!(message.recipients.len(), 1);
    let text = String::from_utf8_lossy(&message.data);
    assert!(
        text.starts_with("Received: from client.test ([192.0.2.7])"),
        "{text}"
    );
    assert!(text.ends_with("Subject: hi\r\n\r\nbody\r\n"), "{text}");
}

#[test]
fn rset_ends_the_transaction() {
    let mut s = session();
    let lines = after_ehlo(
        &mut s,
        "MAIL FROM:<a@b.test>\r\nRSET\r\nRCPT TO:<x@relay.test>\r\n",
    );
    assert_eq!(lines[1], "250 2.0.0 Reset state");
    assert!(lines[2].starts_with("503 5.5.1"), "{lines:?}");
    assert!(!s.in_transaction());
}

#[test]
fn noop_vrfy_and_help_answer_without_changing_state() {
    let mut s = session();
    let lines = after_ehlo(&mut s, "NOOP\r\nVRFY x\r\nHELP\r\n");
    assert_eq!(lines[0], "250 2.0.0 Ok");
    assert!(lines[1].starts_with("252 "), "{lines:?}");
    assert!(lines[2].starts_with("214 "), "{lines:?}");
    assert!(!s.in_transaction());
}

#[test]
fn starttls_without_tls_configured_is_not_available() {
    let lines = after_ehlo(&mut session(), "STARTTLS\r\n");
    assert_eq!(
        lines,
        ["454 4.7.0 TLS not available due to temporary reason: no certificate is configured"]
    );
}

#[test]
fn quit_says_bye_and_closes() {
    let (out, events, _) = drive(&mut session(), b"QUIT\r\nNOOP\r\n");
    assert_eq!(replies(&out), ["221 2.0.0 Bye"]);
    assert!(matches!(events.as_slice(), [Event::Close]));
}

#[test]
fn a_non_ascii_address_needs_smtputf8() {
    let mut s = session();
    let (out, _, _) = drive(
        &mut s,
        "EHLO c.test\r\nMAIL FROM:<é@relay.test>\r\nMAIL FROM:<a@relay.test>\r\nRCPT TO:<ü@relay.test>\r\nRSET\r\nMAIL FROM:<é@relay.test> SMTPUTF8\r\nRCPT TO:<ü@relay.test>\r\n"
            .as_bytes(),
    );
    let replies = replies(&out);
    assert!(
        replies.contains(
            &"553 5.6.7 Non-ASCII sender address requires the SMTPUTF8 parameter of MAIL FROM"
        ),
        "{out}"
    );
    assert!(
        replies.contains(
            &"553 5.6.7 Non-ASCII recipient address requires the SMTPUTF8 parameter of MAIL FROM"
        ),
        "{out}"
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.starts_with("250 2.1.5"))
            .count(),
        1,
        "{out}"
    );
}
