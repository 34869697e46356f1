//! Every reply the sink sends, in one place; nothing else writes reply text.
//!
//! Fixed replies are byte constants so the hot path copies bytes and formats nothing.

/// MAIL accepted.
pub(crate) const MAIL_OK: &[u8] = b"250 2.1.0 Sender ok\r\n";
/// RCPT accepted.
pub(crate) const RCPT_OK: &[u8] = b"250 2.1.5 Recipient ok\r\n";
/// Go ahead with the message.
pub(crate) const DATA_GO: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
/// The message (or, in LMTP, this recipient's copy) is accepted.
pub(crate) const QUEUED: &[u8] = b"250 2.0.0 Ok: queued\r\n";
/// A non-final BDAT chunk arrived.
pub(crate) const CHUNK_OK: &[u8] = b"250 2.0.0 Chunk received\r\n";
/// RSET, NOOP.
pub(crate) const OK: &[u8] = b"250 2.0.0 Ok\r\n";
/// QUIT.
pub(crate) const BYE: &[u8] = b"221 2.0.0 Bye\r\n";
/// VRFY is not answered truthfully by a sink.
pub(crate) const VRFY: &[u8] = b"252 2.1.5 Cannot verify, send some mail\r\n";
/// HELP.
pub(crate) const HELP: &[u8] = b"214 2.0.0 smtp-blaster sink, see RFC 5321\r\n";
/// Injected (or `tempfail*` recipient) temporary failure.
pub(crate) const TEMPFAIL: &[u8] = b"450 4.2.0 Mailbox temporarily unavailable (injected)\r\n";
/// Injected (or `permfail*` recipient) permanent failure.
pub(crate) const PERMFAIL: &[u8] = b"550 5.1.1 Mailbox unavailable (injected)\r\n";
/// DATA or BDAT without an accepted recipient.
pub(crate) const NO_RECIPIENTS: &[u8] = b"554 5.5.1 No valid recipients\r\n";
/// A message past the SIZE limit.
pub(crate) const TOO_BIG: &[u8] = b"552 5.3.4 Message too big\r\n";
/// Storing the message failed, so it is not accepted.
pub(crate) const STORE_FAILED: &[u8] = b"451 4.3.0 Could not store message\r\n";
/// MAIL inside a transaction.
pub(crate) const NESTED_MAIL: &[u8] = b"503 5.5.1 Nested MAIL command\r\n";
/// RCPT, DATA or BDAT before MAIL.
pub(crate) const NEED_MAIL: &[u8] = b"503 5.5.1 MAIL first\r\n";
/// A command the sink does not know.
pub(crate) const UNKNOWN: &[u8] = b"500 5.5.2 Command not recognized\r\n";
/// A command line past the length limit; the connection is closed after it.
pub(crate) const LINE_TOO_LONG: &[u8] = b"500 5.5.6 Line too long\r\n";
/// EHLO or HELO on an LMTP sink.
pub(crate) const USE_LHLO: &[u8] = b"500 5.5.1 This is LMTP: use LHLO\r\n";
/// LHLO on an SMTP sink.
pub(crate) const USE_EHLO: &[u8] = b"500 5.5.1 This is SMTP: use EHLO or HELO\r\n";
/// Malformed EHLO, HELO or LHLO.
pub(crate) const HELLO_SYNTAX: &[u8] = b"501 5.5.4 Syntax: EHLO <domain>\r\n";
/// Malformed MAIL.
pub(crate) const MAIL_SYNTAX: &[u8] =
    b"501 5.5.4 Syntax: MAIL FROM:<reverse-path> [parameters]\r\n";
/// Malformed RCPT.
pub(crate) const RCPT_SYNTAX: &[u8] = b"501 5.5.4 Syntax: RCPT TO:<forward-path> [parameters]\r\n";
/// Malformed BDAT; the connection is closed, as the chunk length is unknown.
pub(crate) const BDAT_SYNTAX: &[u8] = b"501 5.5.4 Syntax: BDAT <size> [LAST]\r\n";
/// Malformed AUTH.
pub(crate) const AUTH_SYNTAX: &[u8] = b"501 5.5.4 Syntax: AUTH <mechanism> [initial-response]\r\n";
/// Arguments where none belong (DATA, QUIT, RSET, STARTTLS).
pub(crate) const NO_ARGUMENTS: &[u8] = b"501 5.5.4 Syntax: no parameters allowed\r\n";
/// STARTTLS accepted; the handshake follows.
pub(crate) const TLS_GO: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";
/// STARTTLS when not offered.
pub(crate) const TLS_UNAVAILABLE: &[u8] = b"454 4.7.0 TLS not available\r\n";
/// Authentication succeeded.
pub(crate) const AUTH_OK: &[u8] = b"235 2.7.0 Authentication successful\r\n";
/// Wrong user or password.
pub(crate) const AUTH_FAILED: &[u8] = b"535 5.7.8 Authentication credentials invalid\r\n";
/// MAIL before AUTH on a sink that requires it.
pub(crate) const AUTH_REQUIRED: &[u8] = b"530 5.7.0 Authentication required\r\n";
/// An AUTH mechanism other than PLAIN or LOGIN.
pub(crate) const AUTH_MECHANISM: &[u8] = b"504 5.5.4 Unrecognized authentication type\r\n";
/// AUTH on a sink without credentials, or a second AUTH.
pub(crate) const AUTH_UNAVAILABLE: &[u8] = b"503 5.5.1 AUTH not available now\r\n";
/// The client answered `*` to a challenge, or sent bad base64.
pub(crate) const AUTH_CANCELLED: &[u8] = b"501 5.7.0 Authentication cancelled\r\n";
/// Empty challenge (AUTH PLAIN without an initial response).
pub(crate) const AUTH_CONTINUE: &[u8] = b"334 \r\n";
/// AUTH LOGIN asks for the user name ("Username:").
pub(crate) const AUTH_USERNAME: &[u8] = b"334 VXNlcm5hbWU6\r\n";
/// AUTH LOGIN asks for the password ("Password:").
pub(crate) const AUTH_PASSWORD: &[u8] = b"334 UGFzc3dvcmQ6\r\n";
/// Refused past `max_connections`.
pub(crate) const TOO_MANY_CONNECTIONS: &[u8] = b"421 4.7.0 Too many connections, try later\r\n";
/// The client was silent past the command timeout.
pub(crate) const TIMEOUT: &[u8] = b"421 4.4.2 Timeout, closing connection\r\n";
/// The sink is stopping and the client did not finish within the grace period.
pub(crate) const SHUTTING_DOWN: &[u8] = b"421 4.3.2 Sink shutting down\r\n";

/// The greeting for `hostname`.
pub(crate) fn greeting(hostname: &str, lmtp: bool) -> Vec<u8> {
    let proto = if lmtp { "LMTP" } else { "ESMTP" };
    format!("220 {hostname} {proto} smtp-blaster sink ready\r\n").into_bytes()
}

/// The HELO reply.
pub(crate) fn helo(hostname: &str) -> Vec<u8> {
    format!("250 {hostname}\r\n").into_bytes()
}

/// The EHLO/LHLO reply, listing what the sink offers in this state, less the
/// extensions named in `without`.
pub(crate) fn ehlo(
    hostname: &str,
    max_size: usize,
    starttls: bool,
    auth: bool,
    without: &[String],
) -> Vec<u8> {
    let size = format!("SIZE {max_size}");
    let mut lines = vec![hostname, "PIPELINING", "8BITMIME", &size, "CHUNKING"];
    if starttls {
        lines.push("STARTTLS");
    }
    lines.extend(["ENHANCEDSTATUSCODES", "SMTPUTF8"]);
    if auth {
        lines.push("AUTH PLAIN LOGIN");
    }
    lines.retain(|line| {
        let keyword = line.split_whitespace().next().unwrap_or_default();
        *line == hostname || !without.iter().any(|w| w.eq_ignore_ascii_case(keyword))
    });
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
    }
    out
}

/// RCPT past the per-message recipient limit.
pub(crate) const TOO_MANY_RECIPIENTS: &[u8] = b"452 4.5.3 Too many recipients\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_leaves_out_the_extensions_asked_for() {
        let without = ["smtputf8".to_string(), "8BITMIME".to_string()];
        let reply = String::from_utf8(ehlo("sink.test", 100, false, false, &without)).unwrap();
        assert!(reply.starts_with("250-sink.test\r\n"), "{reply}");
        assert!(reply.contains("250-SIZE 100\r\n"), "{reply}");
        assert!(
            !reply.contains("8BITMIME") && !reply.contains("SMTPUTF8"),
            "{reply}"
        );
        assert!(reply.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{reply}");
    }
}
