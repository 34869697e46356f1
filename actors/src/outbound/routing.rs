//! Choosing the next hop for a recipient domain: a transport map, then a relay host,
//! then the domain's own MX records — the order Postfix's `transport_maps` and
//! `relayhost` use, with the same `smtp:[host]:port` syntax so operators can move their
//! configuration over.
//!
//! Everything here is pure: the config strings are parsed once into [`NextHop`] values,
//! and [`Router::route`] is a map lookup. Resolving a next hop to addresses is the job of
//! [`crate::outbound::mx`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

/// The grammar every next-hop error message names, so an operator sees what to write.
const TARGET_SYNTAX: &str = "smtp:[host]:port, smtp:host:port or lmtp:[host]:port";

/// Where to deliver mail for a domain, before any DNS lookup.
///
/// Why an enum and not a host string: whether to look up MX records, which port and which
/// protocol are decided by the configuration, and the Delivery actor keys its connection
/// pools on this value (hence `Hash` and `Eq`; hosts are kept lowercase so equal routes
/// compare equal). `Display` writes the configuration syntax back, for logs and
/// `Received:` comments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Look up the MX records of the recipient domain (RFC 5321 §5.1) and deliver to
    /// the SMTP port. Written `mx:domain`.
    Mx {
        /// The recipient domain, lowercase, without a trailing dot.
        domain: String,
    },
    /// Deliver over SMTP to a configured host: `smtp:[host]:port` connects to the host's
    /// A/AAAA records or IP literal (`mx: false`); `smtp:host:port` looks up the MX
    /// records of `host` first (`mx: true`), as Postfix does.
    Smtp {
        /// Host name (lowercase, no trailing dot) or IP address (no brackets).
        host: String,
        /// TCP port to connect to.
        port: u16,
        /// Whether to look up MX records of `host` before its addresses.
        mx: bool,
    },
    /// Deliver over LMTP (RFC 2033) to a mailbox server. LMTP never uses MX records, so
    /// `lmtp:host:port` and `lmtp:[host]:port` mean the same.
    Lmtp {
        /// Host name (lowercase, no trailing dot) or IP address (no brackets).
        host: String,
        /// TCP port to connect to.
        port: u16,
    },
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mx { domain } => write!(f, "mx:{domain}"),
            Self::Smtp {
                host,
                port,
                mx: false,
            } => write!(f, "smtp:[{host}]:{port}"),
            Self::Smtp {
                host,
                port,
                mx: true,
            } => write!(f, "smtp:{host}:{port}"),
            Self::Lmtp { host, port } => write!(f, "lmtp:[{host}]:{port}"),
        }
    }
}

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

/// Parses a next hop: `smtp:[host]:port`, `smtp:host:port`, `lmtp:[host]:port`,
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
fn parse_name(s: &str) -> Result<String, &'static str> {
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

/// Normalises a domain for lookup: trimmed, lowercase, no trailing dot.
fn normalize_domain(domain: &str) -> String {
    let d = domain.trim();
    d.strip_suffix('.').unwrap_or(d).to_lowercase()
}

/// Per-domain next hops, like Postfix's `transport_maps`.
///
/// Why three tables and not one list of patterns: lookup is on every recipient, so it is
/// one hash probe per label of the domain, and the precedence (exact, then the nearest
/// parent wildcard, then `*`) falls out of the probe order rather than of entry order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportMap {
    /// `example.com`: the domain itself only.
    exact: HashMap<String, NextHop>,
    /// `.example.com`, keyed without the dot: any sub-domain, not the domain itself.
    subdomains: HashMap<String, NextHop>,
    /// `*`: every domain no other entry matches.
    any: Option<NextHop>,
}

impl TransportMap {
    /// An empty map, which routes nothing (the relay host or MX then decides).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one entry. `pattern` is `example.com` (that domain),
    /// `.example.com` (its sub-domains) or `*` (everything); case and a trailing dot are
    /// ignored. Why infallible: programmatic callers (tests, a future config reload)
    /// already hold valid patterns; [`TransportMap::parse`] validates operator text.
    pub fn insert(&mut self, pattern: &str, target: NextHop) {
        let pattern = normalize_domain(pattern);
        if pattern == "*" {
            self.any = Some(target);
        } else if let Some(parent) = pattern.strip_prefix('.') {
            self.subdomains.insert(parent.to_owned(), target);
        } else {
            self.exact.insert(pattern, target);
        }
    }

    /// Parses the configuration form `a.com=smtp:[192.0.2.10]:2525, .b.com=lmtp:[127.0.0.1]:24`:
    /// comma-separated `pattern=target` entries, whitespace around each part ignored,
    /// empty entries skipped. Targets use [`parse_target`] with `default_port`.
    ///
    /// Why a duplicate pattern is an error: with a later-wins rule the earlier line would be
    /// silently dead, which is the kind of mistake that misroutes mail.
    pub fn parse(spec: &str, default_port: u16) -> Result<Self, RouteError> {
        let mut map = Self::new();
        let mut seen = std::collections::HashSet::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, target) = entry.split_once('=').ok_or_else(|| RouteError::Entry {
                got: entry.to_owned(),
            })?;
            let pattern = parse_pattern(pattern.trim())?;
            let target = parse_target(target, default_port)?;
            if !seen.insert(pattern.clone()) {
                return Err(RouteError::Duplicate { pattern });
            }
            map.insert(&pattern, target);
        }
        Ok(map)
    }

    /// The next hop for `domain`: the exact entry, else the nearest `.parent` entry
    /// (`a.b.example.com` tries `.b.example.com`, `.example.com`, `.com`), else `*`.
    /// Case-insensitive; a trailing dot is ignored. An address literal (`[192.0.2.1]`)
    /// is no domain and matches only `*`.
    pub fn lookup(&self, domain: &str) -> Option<&NextHop> {
        let domain = normalize_domain(domain);
        if let Some(hop) = self.exact.get(&domain) {
            return Some(hop);
        }
        if !domain.starts_with('[') {
            let mut rest = domain.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if let Some(hop) = self.subdomains.get(parent) {
                    return Some(hop);
                }
                rest = parent;
            }
        }
        self.any.as_ref()
    }

    /// Whether the map has no entry, so a caller can skip it (and say so in logs).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of entries, counting `*` once; for startup logs.
    pub fn len(&self) -> usize {
        self.exact.len() + self.subdomains.len() + usize::from(self.any.is_some())
    }
}

/// Validates a transport-map key and returns it normalised (lowercase, no trailing dot).
fn parse_pattern(s: &str) -> Result<String, RouteError> {
    let bad = || RouteError::Pattern { got: s.to_owned() };
    if s == "*" {
        return Ok("*".to_owned());
    }
    match s.strip_prefix('.') {
        Some(parent) => Ok(format!(".{}", parse_name(parent).map_err(|_| bad())?)),
        None => parse_name(s).map_err(|_| bad()),
    }
}

/// The routing decision for a recipient domain: the transport map, then the relay host,
/// then the domain's MX records.
///
/// Why a plain struct with public fields: it is built once from configuration and then
/// only read, by every Delivery decision; tests build it literally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Router {
    /// Per-domain overrides, consulted first.
    pub transport: TransportMap,
    /// The smarthost for everything the transport map does not match, if any.
    pub relayhost: Option<NextHop>,
}

impl Router {
    /// The next hop for `domain` (the part after `@`, as received from a peer: any case,
    /// maybe a trailing dot). Never fails: with no override the answer is the domain's
    /// own MX records, `NextHop::Mx` with the domain lowercased.
    pub fn route(&self, domain: &str) -> NextHop {
        if let Some(hop) = self.transport.lookup(domain) {
            return hop.clone();
        }
        if let Some(hop) = &self.relayhost {
            return hop.clone();
        }
        NextHop::Mx {
            domain: normalize_domain(domain),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(host: &str, port: u16, mx: bool) -> NextHop {
        NextHop::Smtp {
            host: host.into(),
            port,
            mx,
        }
    }

    fn lmtp(host: &str, port: u16) -> NextHop {
        NextHop::Lmtp {
            host: host.into(),
            port,
        }
    }

    fn mx(domain: &str) -> NextHop {
        NextHop::Mx {
            domain: domain.into(),
        }
    }

    #[test]
    fn parse_target_accepts_every_documented_form() {
        let cases: &[(&str, NextHop)] = &[
            ("smtp:[192.0.2.10]:2525", smtp("192.0.2.10", 2525, false)),
            ("smtp:[192.0.2.10]", smtp("192.0.2.10", 25, false)),
            (
                "smtp:[Relay.Example.COM]:587",
                smtp("relay.example.com", 587, false),
            ),
            (
                "smtp:relay.example.com:587",
                smtp("relay.example.com", 587, true),
            ),
            (
                "smtp:relay.example.com",
                smtp("relay.example.com", 25, true),
            ),
            (
                "smtp:relay.example.com.:26",
                smtp("relay.example.com", 26, true),
            ),
            (
                "SMTP:relay.example.com",
                smtp("relay.example.com", 25, true),
            ),
            ("smtp:[::1]:25", smtp("::1", 25, false)),
            ("smtp:[IPv6:2001:DB8::1]:25", smtp("2001:db8::1", 25, false)),
            ("smtp:192.0.2.10:25", smtp("192.0.2.10", 25, false)),
            ("lmtp:[127.0.0.1]:24", lmtp("127.0.0.1", 24)),
            ("lmtp:mailstore.internal:24", lmtp("mailstore.internal", 24)),
            ("lmtp:[mailstore.internal]", lmtp("mailstore.internal", 25)),
            ("lmtp:[::1]:24", lmtp("::1", 24)),
            ("[192.0.2.10]:2525", smtp("192.0.2.10", 2525, false)),
            ("[relay.example.com]", smtp("relay.example.com", 25, false)),
            (
                "relay.example.com:587",
                smtp("relay.example.com", 587, true),
            ),
            ("relay.example.com", smtp("relay.example.com", 25, true)),
            (
                "  relay_1.example.com  ",
                smtp("relay_1.example.com", 25, true),
            ),
            ("[::1]:2525", smtp("::1", 2525, false)),
            ("mx:Example.ORG.", mx("example.org")),
        ];
        for (input, want) in cases {
            assert_eq!(parse_target(input, 25).as_ref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn parse_target_names_the_problem_and_the_syntax() {
        let cases: &[(&str, &str)] = &[
            ("", "missing host"),
            ("smtp:", "missing host"),
            ("smtp:[]:25", "missing host"),
            ("smtp:[192.0.2.10:25", "missing ]"),
            ("smtp:[192.0.2.10]25", "expected :port after ]"),
            ("smtp:[192.0.2.10]:", "the port must be a number"),
            ("smtp:[192.0.2.10]:smtp", "the port must be a number"),
            ("smtp:[192.0.2.10]:-1", "the port must be a number"),
            ("smtp:[192.0.2.10]:0", "between 1 and 65535"),
            ("smtp:[192.0.2.10]:65536", "between 1 and 65535"),
            ("smtp:::1", "brackets"),
            ("::1", "brackets"),
            ("smtp:[fe80::zz]:25", "invalid IPv6 address"),
            ("smtp:relay..example.com", "empty label"),
            ("smtp:relay example.com", "invalid character"),
            ("smtp:192.0.2.256", "numeric label"),
            ("lmtp:/var/run/lmtp.sock", "invalid character"),
            ("mx:", "missing host"),
        ];
        for (input, reason) in cases {
            let msg = match parse_target(input, 25) {
                Ok(hop) => panic!("{input:?} parsed as {hop:?}"),
                Err(e) => e.to_string(),
            };
            assert!(msg.contains(reason), "{input:?}: {msg}");
            assert!(msg.contains(TARGET_SYNTAX), "{input:?}: {msg}");
            assert!(msg.contains(&format!("got {:?}", input.trim())), "{msg}");
        }
    }

    #[test]
    fn display_writes_the_config_syntax_back() {
        let cases: &[(NextHop, &str)] = &[
            (smtp("192.0.2.10", 2525, false), "smtp:[192.0.2.10]:2525"),
            (
                smtp("relay.example.com", 587, true),
                "smtp:relay.example.com:587",
            ),
            (smtp("::1", 25, false), "smtp:[::1]:25"),
            (lmtp("127.0.0.1", 24), "lmtp:[127.0.0.1]:24"),
            (mx("example.org"), "mx:example.org"),
        ];
        for (hop, want) in cases {
            assert_eq!(hop.to_string(), *want);
            assert_eq!(parse_target(want, 1).as_ref(), Ok(hop), "round trip {want}");
        }
    }

    #[test]
    fn transport_map_lookup_precedence() {
        let map = TransportMap::parse(
            "example.com=smtp:[192.0.2.10]:2525, .example.com=lmtp:[127.0.0.1]:24, \
             .b.example.com=smtp:[192.0.2.20], *=smtp:relay.example.net:587",
            25,
        )
        .expect("valid map");
        assert_eq!(map.len(), 4);
        let cases: &[(&str, Option<NextHop>)] = &[
            ("example.com", Some(smtp("192.0.2.10", 2525, false))),
            ("EXAMPLE.com.", Some(smtp("192.0.2.10", 2525, false))),
            ("a.example.com", Some(lmtp("127.0.0.1", 24))),
            ("x.y.example.com", Some(lmtp("127.0.0.1", 24))),
            ("b.example.com", Some(lmtp("127.0.0.1", 24))),
            ("a.b.example.com", Some(smtp("192.0.2.20", 25, false))),
            ("A.B.Example.Com.", Some(smtp("192.0.2.20", 25, false))),
            ("example.org", Some(smtp("relay.example.net", 587, true))),
            ("notexample.com", Some(smtp("relay.example.net", 587, true))),
            ("[192.0.2.1]", Some(smtp("relay.example.net", 587, true))),
            (
                "[192.0.2.1.example.com]",
                Some(smtp("relay.example.net", 587, true)),
            ),
        ];
        for (domain, want) in cases {
            assert_eq!(map.lookup(domain), want.as_ref(), "{domain}");
        }
    }

    #[test]
    fn transport_map_without_star_misses() {
        let mut map = TransportMap::new();
        assert!(map.is_empty());
        map.insert(".Example.COM.", lmtp("127.0.0.1", 24));
        assert_eq!(map.len(), 1);
        let cases: &[(&str, bool)] = &[
            ("example.com", false),
            ("a.example.com", true),
            ("com", false),
            ("", false),
            (".", false),
            ("..example.com", true),
        ];
        for (domain, hit) in cases {
            assert_eq!(map.lookup(domain).is_some(), *hit, "{domain:?}");
        }
    }

    #[test]
    fn transport_map_insert_replaces() {
        let mut map = TransportMap::new();
        map.insert("example.com", lmtp("127.0.0.1", 24));
        map.insert("EXAMPLE.COM", lmtp("127.0.0.2", 24));
        map.insert("*", mx("a.test"));
        map.insert("*", mx("b.test"));
        assert_eq!(map.len(), 2);
        assert_eq!(map.lookup("example.com"), Some(&lmtp("127.0.0.2", 24)));
        assert_eq!(map.lookup("other.test"), Some(&mx("b.test")));
    }

    #[test]
    fn transport_map_parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("example.com", "expected pattern=target"),
            ("example.com smtp:[192.0.2.10]", "expected pattern=target"),
            ("=smtp:[192.0.2.10]", "expected a transport pattern"),
            (
                "*.example.com=smtp:[192.0.2.10]",
                "expected a transport pattern",
            ),
            (
                "..example.com=smtp:[192.0.2.10]",
                "expected a transport pattern",
            ),
            (
                "[192.0.2.1]=smtp:[192.0.2.10]",
                "expected a transport pattern",
            ),
            ("example.com=", "missing host"),
            ("example.com=smtp:[192.0.2.10]:99999", "between 1 and 65535"),
            (
                "example.com=smtp:[192.0.2.10], Example.Com.=lmtp:[::1]:24",
                "appears twice",
            ),
        ];
        for (spec, want) in cases {
            match TransportMap::parse(spec, 25) {
                Ok(map) => panic!("{spec:?} parsed as {map:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{spec:?}: {e}"),
            }
        }
    }

    #[test]
    fn transport_map_parse_tolerates_whitespace_and_empty_entries() {
        let map = TransportMap::parse(" , a.test = smtp:[192.0.2.10] ,, ", 2525).expect("valid");
        assert_eq!(map.len(), 1);
        assert_eq!(map.lookup("a.test"), Some(&smtp("192.0.2.10", 2525, false)));
        assert!(TransportMap::parse("", 25).expect("empty").is_empty());
    }

    #[test]
    fn router_prefers_transport_then_relayhost_then_mx() {
        let transport = TransportMap::parse("local.test=lmtp:[127.0.0.1]:24", 25).expect("valid");
        let relay = smtp("relay.example.net", 587, true);
        let cases: &[(&Router, &str, NextHop)] = &[
            (&Router::default(), "Example.ORG.", mx("example.org")),
            (
                &Router {
                    transport: transport.clone(),
                    relayhost: None,
                },
                "LOCAL.test",
                lmtp("127.0.0.1", 24),
            ),
            (
                &Router {
                    transport: transport.clone(),
                    relayhost: None,
                },
                "example.org",
                mx("example.org"),
            ),
            (
                &Router {
                    transport: transport.clone(),
                    relayhost: Some(relay.clone()),
                },
                "local.test",
                lmtp("127.0.0.1", 24),
            ),
            (
                &Router {
                    transport: TransportMap::new(),
                    relayhost: Some(relay.clone()),
                },
                "example.org",
                relay.clone(),
            ),
        ];
        for (router, domain, want) in cases {
            assert_eq!(router.route(domain), *want, "{domain}");
        }
    }
}
