//! Mail addresses as SMTP carries them: the reverse-path of MAIL and the forward-path of
//! RCPT (RFC 5321 §4.1.2), parsed once so nothing downstream re-parses a string.

use std::fmt;

use super::text::is_unsafe;

/// A mailbox `local@domain`, with the domain lower-cased for routing and the local part
/// kept exactly as sent (it belongs to the receiving system).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part as sent, including quotes if it was quoted.
    pub local: String,
    /// The domain (or `[ip]` literal), lower-cased.
    pub domain: String,
}

impl Mailbox {
    /// Whether the domain is an address literal such as `[192.0.2.1]`.
    pub fn is_domain_literal(&self) -> bool {
        self.domain.starts_with('[')
    }

    /// Whether the local part carries routing of its own (`%`, `!` or a quoted `@`):
    /// the classic tricks that turn a relay domain into an open relay.
    pub fn has_routing_in_local_part(&self) -> bool {
        self.local.contains(['%', '!', '@'])
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The reverse-path of MAIL FROM: a mailbox, or the null sender `<>` used by bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: no bounce may be sent for this message.
    Null,
    /// A real sender.
    Mailbox(Mailbox),
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// Why an address was refused; the text goes into the 501 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not enclosed in angle brackets.
    #[error("address must be enclosed in <>")]
    MissingBrackets,
    /// No `@domain` part.
    #[error("address must be local@domain")]
    MissingDomain,
    /// Empty local part.
    #[error("empty local part")]
    EmptyLocalPart,
    /// A domain that is not a hostname or address literal.
    #[error("invalid domain {0:?}")]
    BadDomain(String),
    /// A local part with characters RFC 5321 does not allow unquoted.
    #[error("invalid local part")]
    BadLocalPart,
    /// Longer than RFC 5321's limits (64 local, 255 domain, 256 path).
    #[error("address too long")]
    TooLong,
    /// `<>` where a recipient is needed.
    #[error("null address not allowed here")]
    NullNotAllowed,
}

/// Parses `<path>` as the argument of MAIL FROM; returns the path and the rest (params).
pub fn parse_reverse_path(arg: &str) -> Result<(ReversePath, &str), AddressError> {
    let (inner, rest) = bracketed(arg)?;
    if inner.is_empty() {
        return Ok((ReversePath::Null, rest));
    }
    Ok((ReversePath::Mailbox(parse_mailbox(inner)?), rest))
}

/// Parses `<path>` as the argument of RCPT TO; returns the mailbox and the rest (params).
/// `<postmaster>` without a domain is accepted as RFC 5321 §4.5.1 requires, with `domain`
/// set to `default_domain`.
pub fn parse_forward_path<'a>(
    arg: &'a str,
    default_domain: &str,
) -> Result<(Mailbox, &'a str), AddressError> {
    let (inner, rest) = bracketed(arg)?;
    if inner.is_empty() {
        return Err(AddressError::NullNotAllowed);
    }
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok((
            Mailbox {
                local: "postmaster".into(),
                domain: default_domain.to_ascii_lowercase(),
            },
            rest,
        ));
    }
    Ok((parse_mailbox(inner)?, rest))
}

/// Splits `<...> rest`, honouring quoted strings so `<"a>b"@c>` parses.
fn bracketed(arg: &str) -> Result<(&str, &str), AddressError> {
    let arg = arg.trim_start();
    let body = arg.strip_prefix('<').ok_or(AddressError::MissingBrackets)?;
    let close = unquoted(body, '>')
        .next()
        .ok_or(AddressError::MissingBrackets)?;
    let inner = &body[..close];
    if inner.len() > 256 {
        return Err(AddressError::TooLong);
    }
    Ok((inner, body[close + 1..].trim_start()))
}

/// Byte positions of `target` in `s` outside quoted strings (RFC 5321 quoted-string,
/// with backslash escapes inside quotes).
fn unquoted(s: &str, target: char) -> impl Iterator<Item = usize> + '_ {
    let mut in_quotes = false;
    let mut escaped = false;
    s.char_indices().filter_map(move |(i, c)| {
        if escaped {
            escaped = false;
            return None;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == target && !in_quotes => return Some(i),
            _ => {}
        }
        None
    })
}

/// Parses `[@route,@route:]local@domain`. A source route is accepted and ignored as
/// RFC 5321 §4.1.1.3 says, so routing decisions use the final mailbox only.
fn parse_mailbox(inner: &str) -> Result<Mailbox, AddressError> {
    let inner = match inner.strip_prefix('@') {
        Some(route) => route
            .split_once(':')
            .map(|(_, m)| m)
            .ok_or(AddressError::MissingDomain)?,
        None => inner,
    };
    let at = last_unquoted_at(inner).ok_or(AddressError::MissingDomain)?;
    let (local, domain) = (&inner[..at], &inner[at + 1..]);
    // `user@example.com.` is the same mailbox written as an absolute name; Postfix
    // accepts it and drops the dot, and so do we (one dot only: `..` stays an error).
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > 64 || domain.len() > 255 {
        return Err(AddressError::TooLong);
    }
    validate_local(local)?;
    validate_domain(domain)?;
    Ok(Mailbox {
        local: local.to_string(),
        domain: domain.to_ascii_lowercase(),
    })
}

fn last_unquoted_at(s: &str) -> Option<usize> {
    unquoted(s, '@').last()
}

fn validate_local(local: &str) -> Result<(), AddressError> {
    if local.starts_with('"') {
        // RFC 5321 qtextSMTP and quoted-pairSMTP are printable: no control character
        // (RFC 6531 adds non-ASCII, but not its controls).
        return if local.len() >= 2 && local.ends_with('"') && !local.chars().any(is_unsafe) {
            Ok(())
        } else {
            Err(AddressError::BadLocalPart)
        };
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !is_unsafe(c))
    };
    let ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    if ok {
        Ok(())
    } else {
        Err(AddressError::BadLocalPart)
    }
}

fn validate_domain(domain: &str) -> Result<(), AddressError> {
    let bad = || AddressError::BadDomain(domain.to_string());
    if let Some(literal) = domain.strip_prefix('[') {
        let literal = literal.strip_suffix(']').ok_or_else(bad)?;
        let ip = literal
            .strip_prefix("IPv6:")
            .or_else(|| literal.strip_prefix("ipv6:"))
            .unwrap_or(literal);
        return ip
            .parse::<std::net::IpAddr>()
            .map(|_| ())
            .map_err(|_| bad());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !is_unsafe(c)))
    };
    if domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_params() {
        let (p, rest) = parse_reverse_path("<Alice@Example.COM> SIZE=100").unwrap();
        assert_eq!(p.to_string(), "Alice@example.com");
        assert_eq!(rest, "SIZE=100");
    }

    #[test]
    fn trailing_dot_in_domain_is_dropped() {
        let (m, _) = parse_forward_path("<user@Example.COM.>", "h").unwrap();
        assert_eq!(m.to_string(), "user@example.com");
        assert!(parse_forward_path("<user@example.com..>", "h").is_err());
        assert!(parse_forward_path("<user@.>", "h").is_err());
    }

    #[test]
    fn null_sender() {
        assert_eq!(parse_reverse_path("<>").unwrap().0, ReversePath::Null);
        assert_eq!(
            parse_forward_path("<>", "h").unwrap_err(),
            AddressError::NullNotAllowed
        );
    }

    #[test]
    fn source_route_is_ignored() {
        let (m, _) = parse_forward_path("<@relay.test,@b.test:user@final.test>", "h").unwrap();
        assert_eq!(m.to_string(), "user@final.test");
    }

    #[test]
    fn quoted_local_part_keeps_at_sign() {
        let (m, _) = parse_forward_path("<\"user@evil.test\"@relay.test>", "h").unwrap();
        assert_eq!(m.domain, "relay.test");
        assert!(m.has_routing_in_local_part());
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "user@example.com",
            "<user>",
            "<user@>",
            "<@example.com>",
            "<us er@example.com>",
            "<user@exa mple.com>",
            "<user@[1.2.3]>",
            "<a..b@example.com>",
            "<user@example.com",
        ] {
            assert!(
                parse_forward_path(bad, "h").is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn quoted_angle_bracket_does_not_end_the_path() {
        let (m, rest) = parse_forward_path("<\"a>b\"@c.test> X=1", "h").unwrap();
        assert_eq!(
            (m.local.as_str(), m.domain.as_str(), rest),
            ("\"a>b\"", "c.test", "X=1")
        );
    }

    #[test]
    fn postmaster_without_domain() {
        let (m, _) = parse_forward_path("<Postmaster>", "mx.test").unwrap();
        assert_eq!(m.to_string(), "postmaster@mx.test");
    }

    #[test]
    fn ip_literal_domain() {
        let (m, _) = parse_forward_path("<u@[127.0.0.1]>", "h").unwrap();
        assert!(m.is_domain_literal());
    }
}
