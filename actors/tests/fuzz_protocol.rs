//! Property-based fuzzing of the two parsers that read a peer's bytes: the server's
//! session state machine ([`ServerSession`]) and the delivery client's reply reader
//! ([`ReplyReader`]). Inputs mix valid SMTP, protocol edge cases (BDAT sizes, dots, bare
//! LF and CR, NUL, overlong lines) and random bytes, fed in random splits.
//!
//! What must hold for every input: no panic; no hang (a watchdog aborts a case that
//! stalls); the same replies and events however the bytes are split across reads;
//! every reply line well formed; one final reply per command line, in order.
//!
//! The suite runs a short pass. The long run (10 million inputs and more) and its
//! figures are in docs/SECURITY.md: set `HERMOD_FUZZ_CASES` to the number of cases per
//! property and run in release mode.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use hermod_actors::protocol::address::Mailbox;
use hermod_actors::protocol::relay::RelayPolicy;
use hermod_actors::protocol::reply_reader::{
    MAX_REPLY_LINE, MalformedReply, ParsedReply, ReplyReader,
};
use hermod_actors::protocol::security::TlsInfo;
use hermod_actors::protocol::session::AuthVerdict;
use hermod_actors::protocol::{Event, ServerSession, ServerSettings};
use hermod_actors::store::room::IntakeRoom;
use proptest::prelude::*;

/// Cases per property: `HERMOD_FUZZ_CASES`, else a pass short enough for every test run.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("HERMOD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bumped by every case; a watchdog thread aborts the process (failing the test with a
/// message) if it stops moving for 20 s: a case that hangs.
static PROGRESS: AtomicU64 = AtomicU64::new(0);

fn watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::spawn(|| {
            let mut last = u64::MAX;
            loop {
                std::thread::sleep(Duration::from_secs(20));
                let now = PROGRESS.load(Ordering::Relaxed);
                if now == last {
                    eprintln!("fuzz case made no progress in 20 s: a hang");
                    std::process::abort();
                }
                last = now;
            }
        });
    });
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

fn settings(max_errors: u32) -> Arc<ServerSettings> {
    Arc::new(ServerSettings {
        hostname: "mx.hermod.test".into(),
        max_message_size: 4096,
        max_recipients: 5,
        max_line_length: 1000,
        max_errors,
        max_received_headers: 5,
        relay: RelayPolicy::new(&["relay.test".to_string()], &[]),
        security: Default::default(),
        checks: Default::default(),
        postmaster: Some(Mailbox {
            local: "hostmaster".into(),
            domain: "ops.test".into(),
        }),
        room: Arc::new(IntakeRoom::default()),
        spill: None,
    })
}

/// What a session did with one input: every byte it wrote (with a stand-in for the
/// Queue's reply to each message), the messages it handed over (queue id masked), and
/// whether it asked to close.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<u8>,
    messages: Vec<String>,
    closed: bool,
}

/// Drives a new session over `input`, delivered in pieces cut at `cuts`, as the Session
/// actor does: append what arrived, feed until the session wants more bytes.
fn run_session(input: &[u8], cuts: &[usize], max_errors: u32) -> Run {
    let client: IpAddr = "192.0.2.7".parse().unwrap();
    let mut session = ServerSession::new(settings(max_errors), client);
    let mut run = Run {
        out: Vec::new(),
        messages: Vec::new(),
        closed: false,
    };
    session.greeting().write_to(&mut run.out);
    let mut buffer = BytesMut::new();
    let mut from = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    ends.push(input.len());
    ends.sort_unstable();
    let mut events = 0usize;
    for end in ends {
        if end < from {
            continue;
        }
        buffer.extend_from_slice(&input[from..end]);
        from = end;
        loop {
            let event = session.feed(&mut buffer, &mut run.out, SystemTime::UNIX_EPOCH);
            session.take_refusals();
            events += 1;
            assert!(
                events <= input.len() + cuts.len() + 2,
                "the session raises events without consuming input"
            );
            match event {
                None => break,
                Some(Event::Enqueue(message)) => {
                    let id = message.id.to_string();
                    let data = String::from_utf8_lossy(&message.data).replace(&id, "ID");
                    let recipients: Vec<String> =
                        message.recipients.iter().map(ToString::to_string).collect();
                    run.messages.push(format!(
                        "{} {recipients:?} {:?} {data}",
                        message.sender, message.options
                    ));
                    run.out.extend_from_slice(b"250 2.0.0 Ok: queued as ID\r\n");
                }
                Some(Event::StartTls) => session.tls_started(TlsInfo {
                    version: "TLSv1.3".into(),
                    cipher: "TLS13_AES_128_GCM_SHA256".into(),
                }),
                Some(Event::Check(_)) => {
                    let _ = session.check_verdict(
                        hermod_actors::protocol::check::Verdict::accept(),
                        &mut run.out,
                    );
                }
                Some(Event::Authenticate(_)) => {
                    if let Some(Event::Close) =
                        session.auth_verdict(AuthVerdict::Rejected, &mut run.out)
                    {
                        run.closed = true;
                        return run;
                    }
                }
                Some(Event::Close) => {
                    run.closed = true;
                    return run;
                }
            }
        }
    }
    run
}

/// Every reply line: a code 200-599, a space or hyphen (or nothing), CRLF, no bare CR
/// or LF inside, and no longer than RFC 5321's 512 octets.
fn assert_well_formed(out: &[u8]) {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "output ends mid-line"
    );
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = String::from_utf8_lossy(line);
        assert!(line.ends_with(b"\r"), "line without CRLF: {text:?}");
        let line = &line[..line.len() - 1];
        assert!(!line.contains(&b'\r'), "bare CR in reply: {text:?}");
        assert!(line.len() <= 512, "reply line over 512 octets: {text:?}");
        let code: u16 = std::str::from_utf8(&line[..3.min(line.len())])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!((200..600).contains(&code), "not a reply: {text:?}");
        assert!(
            matches!(line.get(3), None | Some(b' ') | Some(b'-')),
            "bad separator: {text:?}"
        );
    }
}

/// The final lines of every reply (`ddd ` or a bare code), in order.
fn final_replies(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter(|l| l.len() >= 3 && l.as_bytes().get(3) != Some(&b'-'))
        .map(String::from)
        .collect()
}

/// A piece of client input: commands, data lines, the edge cases found by attacking
/// hermod, and random bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        "EHLO client.test\r\n",
        "HELO client.test\r\n",
        "LHLO client.test\r\n",
        "MAIL FROM:<a@sender.test>\r\n",
        "MAIL FROM:<> BODY=8BITMIME SMTPUTF8\r\n",
        "MAIL FROM:<a@sender.test> SIZE=99999999\r\n",
        "MAIL FROM:<a@sender.test> BODY=7BIT BODY=8BITMIME\r\n",
        "RCPT TO:<x@relay.test>\r\n",
        "RCPT TO:<x@relay.test.>\r\n",
        "RCPT TO:<postmaster>\r\n",
        "RCPT TO:<x@elsewhere.test>\r\n",
        "RCPT TO:<\"quoted local\"@relay.test>\r\n",
        "DATA\r\n",
        "BDAT 10\r\n",
        "BDAT 0 LAST\r\n",
        "BDAT 5 LAST\r\n",
        "BDAT 99999999999999999999999 LAST\r\n",
        "BDAT -5\r\n",
        "RSET\r\n",
        "NOOP\r\n",
        "VRFY x\r\n",
        "HELP\r\n",
        "STARTTLS\r\n",
        "AUTH PLAIN AAAA\r\n",
        "QUIT\r\n",
        "Subject: fuzz\r\n",
        "Received: from x\r\n",
        "\r\n",
        ".\r\n",
        "..dot\r\n",
        "body line\r\n",
        "NOOP\nMAIL FROM:<a@b.test>\r\n",
        "bare lf\n",
        "bare cr\r",
        "nul\0byte\r\n",
        "\r\n.\r\n",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        8 => fixed,
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (990usize..1010).prop_map(|n| {
            let mut line = vec![b'a'; n];
            line.extend_from_slice(b"\r\n");
            line
        }),
        1 => "[ -~]{0,40}\r\n".prop_map(String::into_bytes),
    ]
}

fn session_input() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    prop::collection::vec(piece(), 0..40).prop_flat_map(|pieces| {
        let input = pieces.concat();
        let len = input.len();
        (Just(input), prop::collection::vec(0..=len.max(1), 0..12))
    })
}

/// A command line that is neither DATA, BDAT nor QUIT and has no bare LF: it gets
/// exactly one reply, at its turn. Returns the line and the code it must get (`0`: any).
fn plain_command() -> impl Strategy<Value = (String, u16)> {
    prop_oneof![
        Just(("NOOP\r\n".to_string(), 250)),
        Just(("RSET\r\n".to_string(), 250)),
        Just(("EHLO c.test\r\n".to_string(), 250)),
        Just(("MAIL FROM:<a@s.test>\r\n".to_string(), 0)),
        Just(("RCPT TO:<b@relay.test>\r\n".to_string(), 0)),
        Just(("VRFY b\r\n".to_string(), 252)),
        Just(("XYZZY\r\n".to_string(), 500)),
        "[A-Za-z]{1,8}( [ -~]{0,30})?\r\n".prop_map(|l| (l, 0)),
    ]
    .prop_filter("not a verb that reads data or ends", |(line, _)| {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        !matches!(verb.as_str(), "DATA" | "BDAT" | "QUIT" | "STARTTLS")
    })
}

/// Replies a server might send, well formed: code and lines of printable text.
fn server_replies() -> impl Strategy<Value = Vec<(u16, Vec<String>)>> {
    prop::collection::vec(
        (200u16..600, prop::collection::vec("[ -~]{0,60}", 1..5)),
        0..10,
    )
}

/// Reads every reply from `input` delivered in pieces cut at `cuts`; stops at the first
/// error.
fn read_replies(input: &[u8], cuts: &[usize]) -> (Vec<ParsedReply>, Option<MalformedReply>) {
    let mut reader = ReplyReader::default();
    let mut buffer = BytesMut::new();
    let mut replies = Vec::new();
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    ends.push(input.len());
    ends.sort_unstable();
    let mut from = 0;
    for end in ends {
        buffer.extend_from_slice(&input[from..end]);
        from = end;
        loop {
            match reader.next_reply(&mut buffer) {
                Ok(Some(reply)) => {
                    assert!((200..600).contains(&reply.code));
                    assert!(!reply.lines.is_empty());
                    replies.push(reply);
                }
                Ok(None) => {
                    assert!(buffer.len() <= MAX_REPLY_LINE, "unbounded buffering");
                    break;
                }
                Err(e) => return (replies, Some(e)),
            }
        }
    }
    (replies, None)
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn session_output_is_the_same_however_input_is_split((input, cuts) in session_input()) {
        watchdog();
        let whole = run_session(&input, &[], 10);
        assert_well_formed(&whole.out);
        let split = run_session(&input, &cuts, 10);
        prop_assert_eq!(&whole, &split);
        // One byte per read, the slowest client there is (kept to short inputs: it
        // costs a feed per byte).
        if input.len() <= 1024 {
            let bytewise: Vec<usize> = (0..input.len()).collect();
            prop_assert_eq!(&whole, &run_session(&input, &bytewise, 10));
        }
    }

    #[test]
    fn every_command_line_gets_one_reply_in_order(
        commands in prop::collection::vec(plain_command(), 0..60),
        cuts in prop::collection::vec(0usize..2000, 0..8),
    ) {
        watchdog();
        let input: String = commands.iter().map(|(line, _)| line.as_str()).collect();
        let run = run_session(input.as_bytes(), &cuts, u32::MAX);
        assert_well_formed(&run.out);
        prop_assert!(!run.closed);
        let finals = final_replies(&run.out);
        // The greeting, then one reply per command.
        prop_assert_eq!(finals.len(), commands.len() + 1, "{:?}", finals);
        for ((line, code), reply) in commands.iter().zip(&finals[1..]) {
            if *code != 0 {
                prop_assert!(reply.starts_with(&code.to_string()), "{:?} got {:?}", line, reply);
            }
        }
    }

    #[test]
    fn reply_reader_is_the_same_however_input_is_split(
        input in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(0usize..600, 0..10),
    ) {
        watchdog();
        let whole = read_replies(&input, &[]);
        prop_assert_eq!(&whole, &read_replies(&input, &cuts));
    }

    #[test]
    fn reply_reader_reads_back_what_a_server_sent(
        replies in server_replies(),
        cuts in prop::collection::vec(0usize..4000, 0..10),
        bare_lf in any::<bool>(),
    ) {
        watchdog();
        let eol = if bare_lf { "\n" } else { "\r\n" };
        let mut wire = String::new();
        for (code, lines) in &replies {
            for (i, text) in lines.iter().enumerate() {
                let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                wire.push_str(&format!("{code}{sep}{text}{eol}"));
            }
        }
        let (read, error) = read_replies(wire.as_bytes(), &cuts);
        prop_assert_eq!(error, None);
        let expected: Vec<ParsedReply> = replies
            .iter()
            .map(|(code, lines)| ParsedReply { code: *code, lines: lines.clone() })
            .collect();
        prop_assert_eq!(read, expected);
    }
}
