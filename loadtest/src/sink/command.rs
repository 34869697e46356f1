//! One command line (bytes, line end removed) → a typed command. Pure, no state.

/// A parsed SMTP/LMTP command; borrowed from the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    /// EHLO with the client's name.
    Ehlo(&'a str),
    /// HELO with the client's name.
    Helo(&'a str),
    /// LHLO (LMTP) with the client's name.
    Lhlo(&'a str),
    /// MAIL FROM with its path (without brackets) and the SIZE parameter if given.
    Mail {
        from: &'a str,
        size: Option<usize>,
        params: &'a str,
    },
    /// RCPT TO with its path (without brackets).
    Rcpt { to: &'a str },
    /// DATA.
    Data,
    /// BDAT with the chunk length and whether it is the last chunk.
    Bdat { size: usize, last: bool },
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// QUIT.
    Quit,
    /// STARTTLS.
    StartTls,
    /// AUTH with its mechanism and optional initial response.
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
    /// VRFY or EXPN.
    Vrfy,
    /// HELP.
    Help,
    /// A known verb with bad arguments; the reply names the expected grammar.
    Syntax(&'static [u8]),
    /// Anything else.
    Unknown,
}

use super::replies;

/// Parses one command line.
pub(crate) fn parse(line: &[u8]) -> Command<'_> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Command::Unknown;
    };
    let (verb, args) = match line.find(' ') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => (line, ""),
    };
    if verb.len() > 8 {
        return Command::Unknown;
    }
    let mut upper = [0u8; 8];
    upper[..verb.len()].copy_from_slice(verb.as_bytes());
    upper.make_ascii_uppercase();
    match &upper[..verb.len()] {
        b"EHLO" => hello(args, Command::Ehlo),
        b"HELO" => hello(args, Command::Helo),
        b"LHLO" => hello(args, Command::Lhlo),
        b"MAIL" => mail(args),
        b"RCPT" => rcpt(args),
        b"DATA" => bare(args, Command::Data),
        b"BDAT" => bdat(args),
        b"RSET" => bare(args, Command::Rset),
        b"NOOP" => Command::Noop,
        b"QUIT" => bare(args, Command::Quit),
        b"STARTTLS" => bare(args, Command::StartTls),
        b"AUTH" => auth(args),
        b"VRFY" | b"EXPN" => Command::Vrfy,
        b"HELP" => Command::Help,
        _ => Command::Unknown,
    }
}

/// EHLO, HELO, LHLO: one domain or address literal.
fn hello<'a>(args: &'a str, make: fn(&'a str) -> Command<'a>) -> Command<'a> {
    match args.split_whitespace().next() {
        Some(name) => make(name),
        None => Command::Syntax(replies::HELLO_SYNTAX),
    }
}

/// Commands that take no arguments.
fn bare(args: &str, command: Command<'static>) -> Command<'static> {
    if args.is_empty() {
        command
    } else {
        Command::Syntax(replies::NO_ARGUMENTS)
    }
}

/// `FROM:<path> [params]`.
fn mail(args: &str) -> Command<'_> {
    let Some((from, params)) = path(args, "FROM:") else {
        return Command::Syntax(replies::MAIL_SYNTAX);
    };
    let mut size = None;
    for param in params.split_whitespace() {
        if param
            .get(..5)
            .is_some_and(|k| k.eq_ignore_ascii_case("SIZE="))
        {
            match param[5..].parse() {
                Ok(n) => size = Some(n),
                Err(_) => return Command::Syntax(replies::MAIL_SYNTAX),
            }
        }
    }
    Command::Mail {
        from,
        size,
        params: params.trim(),
    }
}

/// `TO:<path> [params]`.
fn rcpt(args: &str) -> Command<'_> {
    match path(args, "TO:") {
        Some((to, _)) if !to.is_empty() => Command::Rcpt { to },
        _ => Command::Syntax(replies::RCPT_SYNTAX),
    }
}

/// Splits `KEY:<path> params` into the path without brackets and the parameters.
fn path<'a>(args: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
    let head = args.get(..key.len())?;
    if !head.eq_ignore_ascii_case(key) {
        return None;
    }
    let rest = args[key.len()..].trim_start().strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

/// `<size> [LAST]`.
fn bdat(args: &str) -> Command<'_> {
    let mut words = args.split_whitespace();
    let size = words.next().and_then(|w| w.parse().ok());
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Command::Syntax(replies::BDAT_SYNTAX),
    };
    match (size, words.next()) {
        (Some(size), None) => Command::Bdat { size, last },
        _ => Command::Syntax(replies::BDAT_SYNTAX),
    }
}

/// `<mechanism> [initial-response]`.
fn auth(args: &str) -> Command<'_> {
    let mut words = args.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(mechanism), initial, None) => Command::Auth { mechanism, initial },
        _ => Command::Syntax(replies::AUTH_SYNTAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_commands() {
        assert_eq!(parse(b"ehlo client.test"), Command::Ehlo("client.test"));
        assert_eq!(
            parse(b"MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME"),
            Command::Mail {
                from: "a@b",
                size: Some(100),
                params: "SIZE=100 BODY=8BITMIME"
            }
        );
        assert_eq!(
            parse(b"MAIL FROM:<>"),
            Command::Mail {
                from: "",
                size: None,
                params: ""
            }
        );
        assert_eq!(parse(b"rcpt to: <x@y>"), Command::Rcpt { to: "x@y" });
        assert_eq!(
            parse(b"BDAT 12 LAST"),
            Command::Bdat {
                size: 12,
                last: true
            }
        );
        assert_eq!(parse(b"DATA"), Command::Data);
    }

    #[test]
    fn names_the_grammar_on_bad_arguments() {
        assert_eq!(
            parse(b"MAIL FROM:a@b"),
            Command::Syntax(replies::MAIL_SYNTAX)
        );
        assert_eq!(parse(b"RCPT TO:<>"), Command::Syntax(replies::RCPT_SYNTAX));
        assert_eq!(parse(b"BDAT x"), Command::Syntax(replies::BDAT_SYNTAX));
        assert_eq!(parse(b"DATA now"), Command::Syntax(replies::NO_ARGUMENTS));
        assert_eq!(parse(b"EHLO"), Command::Syntax(replies::HELLO_SYNTAX));
    }

    #[test]
    fn garbage_is_unknown() {
        assert_eq!(parse(b"\xff\xfe"), Command::Unknown);
        assert_eq!(parse(b"GET / HTTP/1.1"), Command::Unknown);
        assert_eq!(parse(b""), Command::Unknown);
    }
}
