//! STARTTLS and AUTH in the sans-IO session: what EHLO offers, what is refused before
//! TLS and AUTH, the injection defence, the SASL exchanges and the Received: header.

use super::tests::{drive, replies, settings};
use super::*;
use crate::protocol::security::{Endpoint, ListenerKind, Security};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

fn secure_settings(security: Security) -> Arc<ServerSettings> {
    let mut settings = Arc::try_unwrap(settings(100, 10)).unwrap_or_else(|_| unreachable!());
    settings.security = security;
    Arc::new(settings)
}

fn tls_and_auth() -> Security {
    Security {
        tls: true,
        auth: true,
        ..Security::default()
    }
}

fn on(kind: ListenerKind, security: Security) -> ServerSession {
    ServerSession::new(secure_settings(security), "198.51.100.9".parse().unwrap())
        .with_endpoint(Endpoint::of_kind(kind))
}

fn tls13() -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
    }
}

fn user(name: &str) -> AuthVerdict {
    AuthVerdict::Accepted(AuthenticatedUser {
        name: name.into(),
        senders: vec!["@shop.test".into()],
    })
}

#[test]
fn commands_pipelined_behind_starttls_are_dropped() {
    let mut s = on(ListenerKind::Smtp, tls_and_auth());
    let (out, events, left) = drive(
        &mut s,
        b"EHLO c.test\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<a@b.test>\r\n",
    );
    let lines = replies(&out);
    assert!(lines.iter().any(|l| l[4..] == *"STARTTLS"), "{out}");
    assert!(
        !lines.iter().any(|l| l.starts_with("250-AUTH")),
        "AUTH before TLS: {out}"
    );
    assert_eq!(lines.last().copied(), Some("220 2.0.0 Ready to start TLS"));
    assert!(matches!(events.as_slice(), [Event::StartTls]));
    assert!(left.is_empty(), "bytes after STARTTLS survived: {left:?}");
    s.tls_started(tls13());
    // The state is reset: EHLO again before MAIL, and no second STARTTLS.
    let (out, _, _) = drive(
        &mut s,
        b"MAIL FROM:<a@b.test>\r\nEHLO c.test\r\nSTARTTLS\r\n",
    );
    let lines = replies(&out);
    assert_eq!(
        lines[0],
        "503 5.5.1 Bad sequence of commands: send EHLO or HELO first"
    );
    assert!(!out.contains("STARTTLS\r\n"), "{out}");
    assert!(lines.iter().any(|l| l[4..] == *"AUTH PLAIN LOGIN"), "{out}");
    assert_eq!(lines.last().copied(), Some("503 5.5.1 TLS already active"));
}

#[test]
fn starttls_without_a_certificate_is_454() {
    let mut s = on(ListenerKind::Smtp, Security::default());
    let (out, events, _) = drive(&mut s, b"EHLO c.test\r\nSTARTTLS\r\n");
    assert!(!out.contains("STARTTLS\r\n250"), "{out}");
    assert_eq!(
        replies(&out).last().copied(),
        Some("454 4.7.0 TLS not available due to temporary reason: no certificate is configured")
    );
    assert!(events.is_empty());
}

#[test]
fn required_tls_and_auth_refuse_mail_first() {
    let mut s = on(
        ListenerKind::Smtp,
        Security {
            require_tls: true,
            ..tls_and_auth()
        },
    );
    let (out, _, _) = drive(&mut s, b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(
        replies(&out).last().copied(),
        Some("530 5.7.0 Must issue a STARTTLS command first")
    );
    let mut s = on(ListenerKind::Submission, tls_and_auth());
    s.tls_started(tls13());
    let (out, _, _) = drive(&mut s, b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n");
    assert_eq!(
        replies(&out).last().copied(),
        Some("530 5.7.0 Authentication required")
    );
}

#[test]
fn auth_before_tls_is_538_and_unknown_mechanisms_504() {
    let mut s = on(ListenerKind::Submission, tls_and_auth());
    let (out, events, _) = drive(&mut s, b"EHLO c.test\r\nAUTH PLAIN AGFwcABwdw==\r\n");
    assert_eq!(
        replies(&out).last().copied(),
        Some("538 5.7.11 Encryption required for requested authentication mechanism")
    );
    assert!(events.is_empty(), "credentials went on without TLS");
    s.tls_started(tls13());
    let (out, _, _) = drive(&mut s, b"EHLO c.test\r\nAUTH CRAM-MD5\r\n");
    assert!(
        replies(&out).last().unwrap().starts_with("504 5.5.4"),
        "{out}"
    );
}

#[test]
fn plain_login_and_cancel_exchanges() {
    let mut s = on(ListenerKind::Submission, tls_and_auth());
    s.tls_started(tls13());
    // PLAIN with an initial response.
    let (_, events, _) = drive(&mut s, b"EHLO c.test\r\nAUTH PLAIN AGFwcABwdw==\r\n");
    let [Event::Authenticate(c)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!((c.user.as_str(), c.password.as_str()), ("app", "pw"));
    let mut out = Vec::new();
    assert!(s.auth_verdict(AuthVerdict::Rejected, &mut out).is_none());
    assert_eq!(
        String::from_utf8_lossy(&out),
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    // LOGIN in two challenges.
    let user_b64 = STANDARD.encode("app");
    let pass_b64 = STANDARD.encode("pw");
    let (out, events, _) = drive(&mut s, b"AUTH LOGIN\r\n");
    assert_eq!(out, "334 VXNlcm5hbWU6\r\n");
    assert!(events.is_empty());
    let (out, _, _) = drive(&mut s, format!("{user_b64}\r\n").as_bytes());
    assert_eq!(out, "334 UGFzc3dvcmQ6\r\n");
    let (_, events, _) = drive(&mut s, format!("{pass_b64}\r\n").as_bytes());
    assert!(
        matches!(events.as_slice(), [Event::Authenticate(c)] if c.user == "app" && c.password == "pw")
    );
    let mut out = Vec::new();
    s.auth_verdict(user("app"), &mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "235 2.7.0 Authentication successful\r\n"
    );
    // Once authenticated: no second AUTH, and AUTH leaves EHLO.
    let (out, _, _) = drive(&mut s, b"AUTH PLAIN\r\nEHLO c.test\r\n");
    assert!(
        out.starts_with("503 5.5.1 Already authenticated\r\n"),
        "{out}"
    );
    assert!(!out.contains("AUTH PLAIN LOGIN"), "{out}");

    let mut s = on(ListenerKind::Submission, tls_and_auth());
    s.tls_started(tls13());
    let (out, events, _) = drive(
        &mut s,
        b"EHLO c.test\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN\r\n!!!\r\n",
    );
    let lines = replies(&out);
    assert_eq!(lines[lines.len() - 4], "334 ");
    assert_eq!(lines[lines.len() - 3], "501 5.7.0 Authentication cancelled");
    assert_eq!(lines[lines.len() - 2], "334 ");
    assert_eq!(
        lines[lines.len() - 1],
        "501 5.5.2 Cannot decode the AUTH response: the response is not valid base64"
    );
    assert!(events.is_empty());
}

#[test]
fn an_authenticated_user_relays_anywhere_with_its_own_senders_and_is_recorded() {
    let mut s = on(ListenerKind::Submission, tls_and_auth());
    s.tls_started(tls13());
    let (_, events, _) = drive(&mut s, b"EHLO c.test\r\nAUTH PLAIN AGFwcABwdw==\r\n");
    assert_eq!(events.len(), 1);
    s.auth_verdict(user("app"), &mut Vec::new());
    let (out, events, _) = drive(
        &mut s,
        b"MAIL FROM:<ceo@bank.test>\r\nMAIL FROM:<news@shop.test>\r\nRCPT TO:<x@anywhere.test>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\n",
    );
    let lines = replies(&out);
    assert_eq!(
        lines[0],
        "553 5.7.1 <ceo@bank.test>: Sender address rejected: not owned by user app"
    );
    assert_eq!(
        &lines[1..],
        [
            "250 2.1.0 Sender ok",
            "250 2.1.5 Recipient ok",
            "354 End data with <CR><LF>.<CR><LF>"
        ]
    );
    let [Event::Enqueue(message)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(message.user.as_deref(), Some("app"));
    let header = String::from_utf8_lossy(&message.data);
    assert!(
        header.contains("(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n\tby mx.hermod.test (hermod) with ESMTPSA id"),
        "{header}"
    );
}

#[test]
fn a_trusted_network_is_not_enough_on_submission_when_auth_is_required_for_relay() {
    let security = Security {
        require_auth_for_relay: true,
        ..tls_and_auth()
    };
    let trusted = |kind| {
        let mut settings = Arc::try_unwrap(settings(100, 10)).unwrap_or_else(|_| unreachable!());
        settings.security = security;
        settings.relay = RelayPolicy::new(&[], &["192.0.2.0/24".parse().unwrap()]);
        let mut endpoint = Endpoint::of_kind(kind);
        endpoint.require_auth = false;
        ServerSession::new(Arc::new(settings), "192.0.2.7".parse().unwrap()).with_endpoint(endpoint)
    };
    let input = b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@anywhere.test>\r\n";
    let (out, _, _) = drive(&mut trusted(ListenerKind::Submission), input);
    assert!(
        replies(&out).last().unwrap().starts_with("554 5.7.1"),
        "{out}"
    );
    let (out, _, _) = drive(&mut trusted(ListenerKind::Smtp), input);
    assert_eq!(
        replies(&out).last().copied(),
        Some("250 2.1.5 Recipient ok")
    );
}

#[test]
fn a_lockout_closes_the_session() {
    let mut s = on(ListenerKind::Submissions, tls_and_auth());
    s.tls_started(tls13());
    let (out, _, _) = drive(&mut s, b"EHLO c.test\r\n");
    assert!(!out.contains("STARTTLS"), "STARTTLS offered on 465: {out}");
    let (_, events, _) = drive(&mut s, b"AUTH PLAIN AGFwcAB4\r\n");
    assert_eq!(events.len(), 1);
    let mut out = Vec::new();
    let event = s.auth_verdict(AuthVerdict::LockedOut, &mut out);
    assert!(matches!(event, Some(Event::Close)));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "421 4.7.0 Too many authentication failures from your address, try again later\r\n"
    );
}
