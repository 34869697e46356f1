//! One SMTP command line (without its CRLF) parsed into a [`Command`]. The grammar each
//! verb expects is named in its error, so the 501 reply tells the client what was wrong.

use super::address::{self, AddressError, Mailbox, ReversePath};

/// A parsed client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain`
    Ehlo(String),
    /// `HELO domain`
    Helo(String),
    /// `MAIL FROM:<path> [params]`
    Mail(MailFrom),
    /// `RCPT TO:<path> [params]`
    Rcpt(Mailbox),
    /// `DATA`
    Data,
    /// `BDAT size [LAST]`
    Bdat {
        /// Chunk size in octets.
        size: usize,
        /// Whether this is the final chunk.
        last: bool,
    },
    /// `RSET`
    Rset,
    /// `NOOP [string]`
    Noop,
    /// `QUIT`
    Quit,
    /// `VRFY string`
    Vrfy,
    /// `HELP [string]`
    Help,
    /// `STARTTLS`
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism's name, as sent.
        mechanism: String,
        /// The base64 initial response, if given (`=` is an empty one).
        initial: Option<String>,
    },
}

/// The MAIL FROM command with the ESMTP parameters hermod understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse-path.
    pub sender: ReversePath,
    /// `SIZE=n`, the client's declared message size.
    pub size: Option<usize>,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
}

/// What the sender declared in MAIL FROM about the message, kept with it so that each
/// next hop is told the same: `BODY=8BITMIME` (RFC 6152) and `SMTPUTF8` (RFC 6531).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailOptions {
    /// `BODY=8BITMIME`: the body may hold octets above 127.
    #[serde(default, skip_serializing_if = "is_false")]
    pub eight_bit_mime: bool,
    /// `SMTPUTF8`: addresses and headers may be UTF-8.
    #[serde(default, skip_serializing_if = "is_false")]
    pub smtputf8: bool,
}

impl MailOptions {
    /// Neither option: plain 7-bit ASCII mail.
    pub fn is_plain(&self) -> bool {
        !self.eight_bit_mime && !self.smtputf8
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The verb is unknown.
    Unknown,
    /// The arguments do not follow the grammar named here.
    Syntax(&'static str),
    /// An address did not parse.
    Address {
        /// "sender" or "recipient".
        which: &'static str,
        /// What was wrong with it.
        error: AddressError,
    },
    /// An ESMTP parameter we do not offer.
    UnsupportedParameter(String),
    /// A BODY= value we do not offer.
    BadBody(String),
    /// A BDAT whose chunk size cannot be read: where its payload ends is unknowable, so
    /// the connection must close rather than read the payload as commands.
    BadChunkSize,
    /// A HELO/EHLO name longer than a domain can be (255 octets, RFC 5321 §4.5.3.1.2);
    /// copied into a Received: header it would break the 998-octet line limit.
    DomainTooLong,
    /// A HELO/EHLO name that is neither a domain nor an address literal (control
    /// characters, punctuation): it would be copied into the EHLO reply, the
    /// Received: header and the log.
    BadHeloName,
}

const MAIL_SYNTAX: &str = "MAIL FROM:<reverse-path> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]";
const RCPT_SYNTAX: &str = "RCPT TO:<forward-path>";
const AUTH_SYNTAX: &str = "AUTH mechanism [initial-response]";
const HELO_SYNTAX: &str = "HELO domain";
const EHLO_SYNTAX: &str = "EHLO domain";

/// Parses one command line. `default_domain` completes `RCPT TO:<postmaster>`.
pub fn parse(line: &[u8], default_domain: &str) -> Result<Command, CommandError> {
    let line = std::str::from_utf8(line)
        .map_err(|_| CommandError::Syntax("commands must be UTF-8 text"))?;
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "EHLO" => domain_arg(arg, EHLO_SYNTAX).map(Command::Ehlo),
        "HELO" => domain_arg(arg, HELO_SYNTAX).map(Command::Helo),
        "MAIL" => parse_mail(arg).map(Command::Mail),
        "RCPT" => parse_rcpt(arg, default_domain).map(Command::Rcpt),
        "DATA" => no_arg(arg, Command::Data, "DATA"),
        "BDAT" => parse_bdat(arg),
        "RSET" => no_arg(arg, Command::Rset, "RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arg(arg, Command::Quit, "QUIT"),
        "VRFY" if !arg.is_empty() => Ok(Command::Vrfy),
        "VRFY" => Err(CommandError::Syntax("VRFY string")),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_arg(arg, Command::StartTls, "STARTTLS"),
        "AUTH" => parse_auth(arg),
        _ => Err(CommandError::Unknown),
    }
}

fn no_arg(arg: &str, cmd: Command, syntax: &'static str) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax(syntax))
    }
}

/// Longest HELO/EHLO name accepted, in octets: the longest a domain can be.
pub const MAX_HELO_NAME: usize = 255;

fn domain_arg(arg: &str, syntax: &'static str) -> Result<String, CommandError> {
    let domain = arg
        .split_whitespace()
        .next()
        .ok_or(CommandError::Syntax(syntax))?;
    if domain.len() > MAX_HELO_NAME {
        return Err(CommandError::DomainTooLong);
    }
    if !is_helo_name(domain) {
        return Err(CommandError::BadHeloName);
    }
    Ok(domain.to_string())
}

/// Whether `name` may stand after EHLO/HELO: an address literal (`[192.0.2.1]`,
/// `[IPv6:2001:db8::1]`) or a domain (with an optional final dot) whose labels hold
/// letters, digits, `-` and `_` (sent by many Windows clients), or non-ASCII letters
/// and digits (an internationalised name). Nothing else: no control character,
/// space-like character or punctuation reaches the reply, a header or the log.
pub fn is_helo_name(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[') {
        let Some(inner) = literal.strip_suffix(']') else {
            return false;
        };
        let ip = inner
            .strip_prefix("IPv6:")
            .or_else(|| inner.strip_prefix("ipv6:"));
        return match ip {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '-'
                        || c == '_'
                        || (!c.is_ascii() && c.is_alphanumeric())
                })
        })
}

fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &arg[keyword.len()..])
}

fn parse_mail(arg: &str) -> Result<MailFrom, CommandError> {
    let rest = strip_keyword(arg, "FROM:").ok_or(CommandError::Syntax(MAIL_SYNTAX))?;
    let (sender, params) = address::parse_reverse_path(rest).map_err(|error| match error {
        AddressError::MissingBrackets => CommandError::Syntax(MAIL_SYNTAX),
        error => CommandError::Address {
            which: "sender",
            error,
        },
    })?;
    let mut mail = MailFrom {
        sender,
        size: None,
        eight_bit: false,
        smtputf8: false,
    };
    let mut seen: Vec<String> = Vec::new();
    for param in params.split_whitespace() {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let upper = key.to_ascii_uppercase();
        // A parameter given twice is ambiguous (which SIZE counts?): RFC 5321 §4.1.2
        // allows each keyword once.
        if seen.contains(&upper) {
            return Err(CommandError::Syntax(MAIL_SYNTAX));
        }
        seen.push(upper.clone());
        match upper.as_str() {
            "SIZE" => {
                mail.size = Some(
                    value
                        .parse()
                        .map_err(|_| CommandError::Syntax(MAIL_SYNTAX))?,
                )
            }
            "BODY" => match value.to_ascii_uppercase().as_str() {
                "8BITMIME" => mail.eight_bit = true,
                "7BIT" => {}
                _ => return Err(CommandError::BadBody(value.to_string())),
            },
            "SMTPUTF8" if value.is_empty() => mail.smtputf8 = true,
            // RFC 4954 §5: who submitted the message, as the previous hop says; an
            // authenticated session's own user is what hermod records.
            "AUTH" if !value.is_empty() => {}
            _ => return Err(CommandError::UnsupportedParameter(key.to_string())),
        }
    }
    Ok(mail)
}

fn parse_auth(arg: &str) -> Result<Command, CommandError> {
    let mut words = arg.split_whitespace();
    let (Some(mechanism), initial, None) = (words.next(), words.next(), words.next()) else {
        return Err(CommandError::Syntax(AUTH_SYNTAX));
    };
    Ok(Command::Auth {
        mechanism: mechanism.to_string(),
        initial: initial.map(str::to_string),
    })
}

fn parse_rcpt(arg: &str, default_domain: &str) -> Result<Mailbox, CommandError> {
    let rest = strip_keyword(arg, "TO:").ok_or(CommandError::Syntax(RCPT_SYNTAX))?;
    let (mailbox, params) =
        address::parse_forward_path(rest, default_domain).map_err(|error| match error {
            AddressError::MissingBrackets => CommandError::Syntax(RCPT_SYNTAX),
            error => CommandError::Address {
                which: "recipient",
                error,
            },
        })?;
    if let Some(param) = params.split_whitespace().next() {
        let key = param.split_once('=').map_or(param, |(k, _)| k);
        return Err(CommandError::UnsupportedParameter(key.to_string()));
    }
    Ok(mailbox)
}

/// Any BDAT that does not parse is [`CommandError::BadChunkSize`]: its payload follows
/// whatever the grammar error, and only a close keeps it from being read as commands.
fn parse_bdat(arg: &str) -> Result<Command, CommandError> {
    let mut parts = arg.split_whitespace();
    let size = parts
        .next()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(CommandError::BadChunkSize)?;
    let last = match parts.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::BadChunkSize),
    };
    if parts.next().is_some() {
        return Err(CommandError::BadChunkSize);
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_with_params() {
        let Command::Mail(m) = parse(
            b"mail from:<a@b.test> SIZE=1000 BODY=8BITMIME SMTPUTF8",
            "h",
        )
        .unwrap() else {
            panic!("not MAIL")
        };
        assert_eq!((m.size, m.eight_bit, m.smtputf8), (Some(1000), true, true));
    }

    #[test]
    fn mail_without_colon_names_grammar() {
        assert_eq!(
            parse(b"MAIL <a@b.test>", "h"),
            Err(CommandError::Syntax(MAIL_SYNTAX))
        );
    }

    #[test]
    fn bdat_forms() {
        assert_eq!(
            parse(b"BDAT 10 LAST", "h"),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(
            parse(b"BDAT 10", "h"),
            Ok(Command::Bdat {
                size: 10,
                last: false
            })
        );
        assert_eq!(parse(b"BDAT x", "h"), Err(CommandError::BadChunkSize));
    }

    #[test]
    fn bdat_unreadable_sizes_are_bad_chunk_sizes() {
        for line in [
            &b"BDAT 99999999999999999999999 LAST"[..],
            b"BDAT -5",
            b"BDAT +5",
            b"BDAT 5 LAST x",
            b"BDAT 5 FIRST",
            b"BDAT",
        ] {
            assert_eq!(
                parse(line, "h"),
                Err(CommandError::BadChunkSize),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn repeated_mail_parameter_is_a_syntax_error() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.test> SIZE=10 size=20", "h"),
            Err(CommandError::Syntax(MAIL_SYNTAX))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.test> BODY=8BITMIME BODY=7BIT", "h"),
            Err(CommandError::Syntax(MAIL_SYNTAX))
        );
    }

    #[test]
    fn helo_name_longer_than_a_domain_is_refused() {
        let long = format!("EHLO {}", "a".repeat(MAX_HELO_NAME + 1));
        assert_eq!(
            parse(long.as_bytes(), "h"),
            Err(CommandError::DomainTooLong)
        );
        let ok = format!("EHLO {}", "a".repeat(MAX_HELO_NAME));
        assert!(parse(ok.as_bytes(), "h").is_ok());
    }

    #[test]
    fn helo_names_that_are_not_domains_or_literals_are_refused() {
        for good in [
            "mail.example.com",
            "mail.example.com.",
            "DESKTOP_PC",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "bücher.example",
        ] {
            assert!(
                parse(format!("EHLO {good}").as_bytes(), "h").is_ok(),
                "{good}"
            );
        }
        for bad in [
            "evil\x1b[2J.test",
            "a\x01b",
            "x\x7f",
            "a..b",
            "<script>",
            "[192.0.2.1",
            "[not-an-ip]",
            "host\u{200b}name",
            "a;b",
        ] {
            assert_eq!(
                parse(format!("HELO {bad}").as_bytes(), "h"),
                Err(CommandError::BadHeloName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_verb() {
        assert_eq!(parse(b"XYZZY", "h"), Err(CommandError::Unknown));
    }

    #[test]
    fn rcpt_unknown_param() {
        assert_eq!(
            parse(b"RCPT TO:<a@b.test> NOTIFY=NEVER", "h"),
            Err(CommandError::UnsupportedParameter("NOTIFY".into()))
        );
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg==", "h"),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            })
        );
        assert_eq!(
            parse(b"auth login", "h"),
            Ok(Command::Auth {
                mechanism: "login".into(),
                initial: None
            })
        );
        assert_eq!(parse(b"AUTH", "h"), Err(CommandError::Syntax(AUTH_SYNTAX)));
        assert_eq!(
            parse(b"AUTH PLAIN a b", "h"),
            Err(CommandError::Syntax(AUTH_SYNTAX))
        );
        let Ok(Command::Mail(mail)) = parse(b"MAIL FROM:<a@b.test> AUTH=<>", "h") else {
            panic!("MAIL with AUTH=<> refused");
        };
        assert_eq!(mail.sender.to_string(), "a@b.test");
    }
}
