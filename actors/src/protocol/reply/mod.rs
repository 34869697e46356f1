//! Every reply hermod's SMTP server sends, in one place: code, enhanced status code
//! (RFC 3463) and a text that names the cause. No other file writes reply literals.

use std::borrow::Cow;
use std::fmt;

use crate::protocol::status::EnhancedCode;

mod mail_auth;
mod policy;
mod security;

/// One SMTP reply line (or lines, for EHLO). Kept as parts so a caller can count, log and
/// label metrics by code without parsing text back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code (RFC 2034), a value so that a caller compares and logs
    /// it without parsing text back; `None` only for the greeting, HELO, EHLO, the DATA
    /// go-ahead and an AUTH challenge, whose lines carry none.
    pub status: Option<EnhancedCode>,
    /// The human text of the last (or only) line; fixed texts are not allocated.
    pub text: Cow<'static, str>,
    /// Lines before the last one, for multi-line replies (EHLO); empty otherwise. Fixed
    /// lines (the extension names) are not allocated.
    pub leading: Vec<Cow<'static, str>>,
    /// A short stable name of the cause, for logs and metric labels.
    pub reason: &'static str,
}

impl Reply {
    /// A reply with its enhanced status code, as almost every reply has one.
    fn new(
        code: u16,
        status: EnhancedCode,
        reason: &'static str,
        text: impl Into<Cow<'static, str>>,
    ) -> Self {
        Reply {
            status: Some(status),
            ..Self::without_enhanced_code(code, reason, text)
        }
    }

    /// A reply whose line carries no enhanced status code: the greeting and HELO (RFC
    /// 2034 leaves them without one), the DATA go-ahead and an AUTH challenge.
    fn without_enhanced_code(
        code: u16,
        reason: &'static str,
        text: impl Into<Cow<'static, str>>,
    ) -> Self {
        Reply {
            code,
            status: None,
            text: text.into(),
            leading: Vec::new(),
            reason,
        }
    }

    /// Whether the client may try again later (4xx).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Whether this is a failure (4xx or 5xx).
    pub fn is_failure(&self) -> bool {
        self.code >= 400
    }

    /// Appends the wire form (CRLF-terminated lines) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let code = [
            b'0' + (self.code / 100 % 10) as u8,
            b'0' + (self.code / 10 % 10) as u8,
            b'0' + (self.code % 10) as u8,
        ];
        let lines = self
            .leading
            .iter()
            .map(|line| &**line)
            .chain(std::iter::once(&*self.text));
        let last = self.leading.len();
        for (i, line) in lines.enumerate() {
            out.extend_from_slice(&code);
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(status) = self.status {
                status.write_to(out);
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (tests and logs).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    // ---- connection level ----

    /// The banner.
    pub fn greeting(hostname: &str) -> Self {
        Self::without_enhanced_code(220, "greeting", format!("{hostname} ESMTP hermod"))
    }
    /// Maintenance mode: the operator closed the door for a while.
    pub fn maintenance() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 3, 2),
            "maintenance",
            "Service temporarily unavailable, maintenance in progress",
        )
    }
    /// Past the total connection limit.
    pub fn too_many_connections() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "too_many_connections",
            "Too many connections, try again later",
        )
    }
    /// Past the per-client-IP connection limit.
    pub fn too_many_connections_from_ip() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "too_many_connections_per_ip",
            "Too many connections from your IP address, try again later",
        )
    }
    /// The server is draining (SIGTERM) or in maintenance.
    pub fn shutting_down(hostname: &str) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 3, 2),
            "shutting_down",
            format!("{hostname} Service shutting down, try again later"),
        )
    }
    /// No command within the command timeout.
    pub fn command_timeout() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 4, 2),
            "command_timeout",
            "Command timeout, closing connection",
        )
    }
    /// No data within the data timeout.
    pub fn data_timeout() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 4, 2),
            "data_timeout",
            "Data timeout, closing connection",
        )
    }
    /// The client sent nothing at all before the greeting timeout.
    pub fn greeting_timeout() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 4, 2),
            "greeting_timeout",
            "Greeting timeout, closing connection",
        )
    }
    /// Goodbye.
    pub fn bye() -> Self {
        Self::new(221, EnhancedCode::new(2, 0, 0), "quit", "Bye")
    }
    /// Too many protocol errors: the client is not speaking SMTP.
    pub fn too_many_errors() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "too_many_errors",
            "Too many errors, closing connection",
        )
    }

    // ---- command level ----

    /// Generic success.
    pub fn ok() -> Self {
        Self::new(250, EnhancedCode::new(2, 0, 0), "ok", "Ok")
    }
    /// STARTTLS accepted; the handshake follows.
    pub fn ready_to_start_tls() -> Self {
        Self::new(
            220,
            EnhancedCode::new(2, 0, 0),
            "starttls",
            "Ready to start TLS",
        )
    }
    /// MAIL accepted.
    pub fn sender_ok() -> Self {
        Self::new(250, EnhancedCode::new(2, 1, 0), "ok", "Sender ok")
    }
    /// RCPT accepted.
    pub fn recipient_ok() -> Self {
        Self::new(250, EnhancedCode::new(2, 1, 5), "ok", "Recipient ok")
    }
    /// RSET.
    pub fn reset_ok() -> Self {
        Self::new(250, EnhancedCode::new(2, 0, 0), "ok", "Reset state")
    }
    /// HELO.
    pub fn helo(hostname: &str, client: &str) -> Self {
        Self::without_enhanced_code(250, "ok", format!("{hostname} Hello {client}"))
    }
    /// EHLO with its extension list.
    pub fn ehlo(hostname: &str, client: &str, mut extensions: Vec<Cow<'static, str>>) -> Self {
        let greeting = Cow::Owned(format!("{hostname} Hello {client}"));
        let Some(text) = extensions.pop() else {
            return Reply {
                code: 250,
                status: None,
                text: greeting,
                leading: Vec::new(),
                reason: "ok",
            };
        };
        extensions.insert(0, greeting);
        Reply {
            code: 250,
            status: None,
            text,
            leading: extensions,
            reason: "ok",
        }
    }
    /// VRFY is answered without disclosing anything (RFC 5321 §3.5.3).
    pub fn vrfy() -> Self {
        Self::new(
            252,
            EnhancedCode::new(2, 5, 2),
            "vrfy",
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    /// HELP.
    pub fn help() -> Self {
        Self::new(
            214,
            EnhancedCode::new(2, 0, 0),
            "help",
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
        )
    }
    /// DATA accepted; the body follows.
    pub fn start_data() -> Self {
        Self::without_enhanced_code(354, "data", "End data with <CR><LF>.<CR><LF>")
    }
    /// The message is on disk.
    pub fn queued(id: &str) -> Self {
        Self::new(
            250,
            EnhancedCode::new(2, 0, 0),
            "queued",
            format!("Ok: queued as {id}"),
        )
    }
    /// One BDAT chunk received (not the last).
    pub fn chunk_ok(size: usize) -> Self {
        Self::new(
            250,
            EnhancedCode::new(2, 0, 0),
            "ok",
            format!("{size} octets received"),
        )
    }

    // ---- errors ----

    /// A command or data line over the configured length.
    pub fn line_too_long() -> Self {
        Self::new(
            500,
            EnhancedCode::new(5, 5, 2),
            "line_too_long",
            "Line too long",
        )
    }
    /// A bare CR inside a command line.
    pub fn bare_line_ending_command() -> Self {
        Self::new(
            500,
            EnhancedCode::new(5, 5, 2),
            "bare_lf_or_cr",
            "Command must end with CRLF; bare LF or CR is not allowed",
        )
    }
    /// A bare LF in a command: where the command ends is ambiguous (one line to us, two
    /// to a lenient parser downstream), so the connection closes, as Postfix's
    /// `smtpd_forbid_bare_newline = reject` does.
    pub fn bare_lf_command_closing() -> Self {
        Self::new(
            500,
            EnhancedCode::new(5, 5, 2),
            "bare_lf_command",
            "Bare LF in command; lines must end with CRLF, closing connection",
        )
    }
    /// A BDAT whose chunk size cannot be read: its payload cannot be skipped.
    pub fn bad_chunk_size() -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 4),
            "bad_chunk_size",
            "Syntax: BDAT chunk-size [LAST]; unreadable chunk size, closing connection",
        )
    }
    /// A HELO/EHLO name over 255 octets.
    pub fn helo_name_too_long() -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 4),
            "helo_name_too_long",
            "Syntax: EHLO domain; domain longer than 255 octets",
        )
    }
    /// A non-ASCII address in a transaction that did not ask for SMTPUTF8 (RFC 6531).
    pub fn utf8_address_without_smtputf8(which: &str) -> Self {
        Self::new(
            553,
            EnhancedCode::new(5, 6, 7),
            "utf8_without_smtputf8",
            format!("Non-ASCII {which} address requires the SMTPUTF8 parameter of MAIL FROM"),
        )
    }
    /// A HELO/EHLO name that is neither a domain nor an address literal.
    pub fn bad_helo_name() -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 2),
            "bad_helo_name",
            "Syntax: EHLO domain-or-address-literal; the name holds characters a domain cannot",
        )
    }
    /// A NUL octet in message data.
    pub fn nul_in_data() -> Self {
        Self::new(
            550,
            EnhancedCode::new(5, 6, 0),
            "nul_in_data",
            "Message contains NUL characters",
        )
    }
    /// A bare LF or CR in message data (SMTP smuggling defence).
    pub fn bare_line_ending_data() -> Self {
        Self::new(
            550,
            EnhancedCode::new(5, 6, 11),
            "bare_lf_or_cr",
            "Message contains bare LF or CR; lines must end with CRLF",
        )
    }
    /// Not a command we know.
    pub fn unknown_command() -> Self {
        Self::new(
            500,
            EnhancedCode::new(5, 5, 1),
            "unknown_command",
            "Command not recognized",
        )
    }
    /// A command whose arguments do not follow the grammar.
    pub fn syntax(expected: &'static str) -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 4),
            "syntax",
            format!("Syntax: {expected}"),
        )
    }
    /// A malformed address.
    pub fn bad_address(which: &'static str, detail: &str) -> Self {
        let status = if which == "sender" {
            EnhancedCode::new(5, 1, 7)
        } else {
            EnhancedCode::new(5, 1, 3)
        };
        Self::new(
            501,
            status,
            "bad_address",
            format!("Bad {which} address syntax: {detail}"),
        )
    }
    /// An unknown MAIL/RCPT parameter.
    pub fn unsupported_parameter(name: &str) -> Self {
        Self::new(
            555,
            EnhancedCode::new(5, 5, 4),
            "unsupported_parameter",
            format!("Unsupported parameter {name}"),
        )
    }
    /// Commands in the wrong order.
    pub fn bad_sequence(detail: &'static str) -> Self {
        Self::new(
            503,
            EnhancedCode::new(5, 5, 1),
            "bad_sequence",
            format!("Bad sequence of commands: {detail}"),
        )
    }
    /// The message is bigger than the configured limit.
    pub fn message_too_big(limit: usize) -> Self {
        Self::new(
            552,
            EnhancedCode::new(5, 3, 4),
            "message_too_big",
            format!("Message size exceeds fixed maximum message size of {limit} bytes"),
        )
    }
    /// More Received: headers than a message needs: it is going round in circles.
    pub fn mail_loop(count: usize) -> Self {
        Self::new(
            554,
            EnhancedCode::new(5, 4, 6),
            "mail_loop",
            format!("Too many Received: headers ({count}): mail forwarding loop"),
        )
    }
    /// Too many recipients in one transaction.
    pub fn too_many_recipients(limit: usize) -> Self {
        Self::new(
            452,
            EnhancedCode::new(4, 5, 3),
            "too_many_recipients",
            format!("Too many recipients (maximum {limit})"),
        )
    }
    /// A recipient in a relay domain whose next hop is this server: delivering it would
    /// start a mail loop.
    pub fn loops_back(rcpt: &str, domain: &str) -> Self {
        Self::new(
            550,
            EnhancedCode::new(5, 4, 6),
            "loops_back",
            format!("<{rcpt}>: mail for {domain} loops back to myself"),
        )
    }
    /// A recipient the client may not relay to.
    pub fn relay_denied(rcpt: &str) -> Self {
        Self::new(
            554,
            EnhancedCode::new(5, 7, 1),
            "relay_denied",
            format!("<{rcpt}>: Relay access denied"),
        )
    }
    /// DATA without any accepted recipient.
    pub fn no_valid_recipients() -> Self {
        Self::new(
            554,
            EnhancedCode::new(5, 5, 1),
            "no_valid_recipients",
            "No valid recipients",
        )
    }
    /// The queue could not store the message (disk full, storage error, timeout).
    pub fn queue_unavailable(detail: &str) -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 3, 0),
            "queue_error",
            format!("Temporary queue failure, try again later: {detail}"),
        )
    }
    /// The spool's free space is below `queue.min_free_space`.
    pub fn insufficient_storage() -> Self {
        Self::new(
            452,
            EnhancedCode::new(4, 3, 1),
            "insufficient_storage",
            "Insufficient system storage",
        )
    }
    /// The 8-bit/UTF-8 parameter combination we do not accept.
    pub fn bad_body_type(value: &str) -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 4),
            "syntax",
            format!("Unsupported BODY type {value}"),
        )
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_wire();
        f.write_str(wire.trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_has_enhanced_code() {
        assert_eq!(
            Reply::too_many_recipients(100).to_wire(),
            "452 4.5.3 Too many recipients (maximum 100)\r\n"
        );
    }

    #[test]
    fn the_enhanced_code_is_a_value_and_written_before_the_text() {
        let reply = Reply::bad_address("sender", "no closing bracket");
        assert_eq!(reply.status, Some(EnhancedCode::new(5, 1, 7)));
        assert_eq!(
            reply.to_wire(),
            "501 5.1.7 Bad sender address syntax: no closing bracket\r\n"
        );
        assert_eq!(
            Reply::bare_line_ending_data().to_wire(),
            "550 5.6.11 Message contains bare LF or CR; lines must end with CRLF\r\n"
        );
    }

    #[test]
    fn the_greeting_and_the_data_go_ahead_carry_no_enhanced_code() {
        let greeting = Reply::greeting("mx.test");
        assert_eq!(greeting.status, None);
        assert_eq!(greeting.to_wire(), "220 mx.test ESMTP hermod\r\n");
        assert_eq!(
            Reply::start_data().to_wire(),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
    }

    #[test]
    fn ehlo_is_multi_line() {
        let r = Reply::ehlo(
            "mx.test",
            "client",
            vec!["PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            r.to_wire(),
            "250-mx.test Hello client\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        assert_eq!(
            Reply::ehlo("mx.test", "client", Vec::new()).to_wire(),
            "250 mx.test Hello client\r\n"
        );
    }
}
