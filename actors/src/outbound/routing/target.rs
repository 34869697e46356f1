//! Next-hop targets as operators write them (`smtp:[host]:port`, `smtp:host:port`,
//! `lmtp:[host]:port`, Postfix's syntax), parsed once into [`NextHop`] values; every
//! error names the grammar that was expected.

use std::net::IpAddr;

use super::NextHop;

/// The grammar every next-hop error message names, so an operator sees what to write.
pub(super) const TARGET_SYNTAX: &str = "smtp:[host]:port, smtp:host:port or lmtp:[host]:port";

/// Why a transport-map entry or relay-host setting was refused; each message names the
/// syntax that was expected, because an operator reads it at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A next hop that is not `smtp:[host]:port`, `smtp:host:port`, `lmtp:[host]:port`,
    /// `mx:domain` or a bare `[host]:port` / `host:port`.
    #[error("{reason}: expected {TARGET_SYNTAX}, got {got:?}")]
    Target {
        /// The text as written.
        got: String,
        /// What exactly is wrong with it.
        reason: &'static str,
    },
    /// A transport-map key that is not `example.com`, `.example.com` or `*`.
    #[error("expected a transport pattern example.com, .example.com or *, got {got:?}")]
    Pattern {
        /// The pattern as written.
        got: String,
    },
    /// A transport-map entry without `=`.
    #[error("expected pattern=target (e.g. example.com=smtp:[192.0.2.10]:25), got {got:?}")]
    Entry {
        /// The entry as written.
        got: String,
    },
    /// The same pattern twice in one transport map, which is almost always a typo.
    #[error("transport pattern {pattern:?} appears twice")]
    Duplicate {
        /// The normalised pattern.
        pattern: String,
    },
}

/// Parses a next hop: `smtp:[host]:port`, `smtp:host:port`, `smtps:[host]:port` (TLS
/// from the first byte), `lmtp:[host]:port`,
/// `lmtp:host:port`, `mx:domain`, or the bare `[host]:port`, `host:port`, `[host]` and
/// `host` of a relay-host setting (which mean `smtp:`).
///
/// Why one parser for both settings: an operator writes the same syntax in the transport
/// map and in `relayhost`. A missing port is `default_port`, whatever the protocol. IP
/// addresses go in brackets (`[::1]:25`, `[IPv6:::1]` also accepted); a bare IPv4
/// address is taken as `[address]` since it can have no MX records.
pub fn parse_target(s: &str, default_port: u16) -> Result<NextHop, RouteError> {
    let s = s.trim();
    let err = |reason| RouteError::Target {
        got: s.to_owned(),
        reason,
    };
    let (scheme, rest) = match s.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtp") => (Scheme::Smtp, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("lmtp") => (Scheme::Lmtp, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("smtps") => (Scheme::Smtps, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mx") => (Scheme::Mx, rest),
        _ => (Scheme::Smtp, s),
    };
    if scheme == Scheme::Mx {
        let domain = parse_name(rest).map_err(err)?;
        return Ok(NextHop::Mx { domain });
    }
    let (host, port, bracketed) = parse_host_port(rest, default_port).map_err(err)?;
    Ok(match scheme {
        Scheme::Lmtp => NextHop::Lmtp { host, port },
        Scheme::Smtps => NextHop::Smtps { host, port },
        _ => {
            let is_ip = host.parse::<IpAddr>().is_ok();
            NextHop::Smtp {
                host,
                port,
                mx: !bracketed && !is_ip,
            }
        }
    })
}

/// The protocol prefix of a next hop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Smtp,
    Smtps,
    Lmtp,
    Mx,
}

/// Splits `[host]:port`, `[host]`, `host:port` or `host` into a canonical host, the port
/// and whether the host was bracketed (which turns MX lookup off).
fn parse_host_port(s: &str, default_port: u16) -> Result<(String, u16, bool), &'static str> {
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("missing ] after the host")?;
        let port = match after {
            "" => default_port,
            _ => parse_port(after.strip_prefix(':').ok_or("expected :port after ]")?)?,
        };
        return Ok((parse_bracketed_host(host)?, port, true));
    }
    if s.matches(':').count() > 1 {
        return Err("an IPv6 address must be written in brackets");
    }
    let (host, port) = match s.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (s, default_port),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((ip.to_string(), port, false));
    }
    Ok((parse_name(host)?, port, false))
}

/// Canonicalises the inside of `[...]`: an IP address (optionally `IPv6:`-prefixed, as in
/// an RFC 5321 address literal) or a host name whose MX records are not to be used.
fn parse_bracketed_host(s: &str) -> Result<String, &'static str> {
    let s = strip_ipv6_tag(s);
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if s.contains(':') {
        return Err("invalid IPv6 address");
    }
    parse_name(s)
}

/// Drops an RFC 5321 `IPv6:` tag, compared case-insensitively.
fn strip_ipv6_tag(s: &str) -> &str {
    match s.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &s[5..],
        _ => s,
    }
}

/// Parses a TCP port; 0 is refused because nothing listens there.
fn parse_port(s: &str) -> Result<u16, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number");
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be between 1 and 65535"),
        Ok(port) => Ok(port),
    }
}

/// Validates a host or domain name and returns it lowercase without a trailing dot.
///
/// Lenient on purpose (underscores and non-ASCII letters pass, for internal names and
/// IDNs); strict enough to catch the usual slips: empty labels, spaces, stray brackets,
/// an all-numeric last label (an IP address written without brackets or a missing host).
pub(super) fn parse_name(s: &str) -> Result<String, &'static str> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err("missing host");
    }
    if s.len() > 253 {
        return Err("the host name is longer than 253 characters");
    }
    let valid_char = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    for label in s.split('.') {
        if label.is_empty() {
            return Err("empty label in the host name");
        }
        if label.len() > 63 {
            return Err("a label of the host name is longer than 63 characters");
        }
        if !label.chars().all(valid_char) {
            return Err("invalid character in the host name");
        }
    }
    if s.rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the host name ends in a numeric label");
    }
    Ok(s.to_lowercase())
}
