//! Choosing the next hop for a recipient domain: a transport map, then a relay host,
//! then the domain's own MX records — the order Postfix's `transport_maps` and
//! `relayhost` use, with the same `smtp:[host]:port` syntax so operators can move their
//! configuration over.
//!
//! Everything here is pure: the config strings are parsed once into [`NextHop`] values,
//! and [`Router::route`] is a map lookup. Resolving a next hop to addresses is the job of
//! [`crate::outbound::mx`].

use std::fmt;

mod target;
mod transport_map;

pub use target::{RouteError, parse_target};
pub use transport_map::TransportMap;

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
    /// Deliver over SMTP with TLS from the first byte (RFC 8314), to a smarthost on port
    /// 465. Written `smtps:[host]:port`; no MX lookup.
    Smtps {
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
            Self::Smtps { host, port } => write!(f, "smtps:[{host}]:{port}"),
        }
    }
}

impl NextHop {
    /// The recipient domain (for `mx:`) or configured host it is named by: what the
    /// shaping file's `[domain]` entries and the Queue's site lookups key on.
    pub fn name(&self) -> &str {
        match self {
            Self::Mx { domain } => domain,
            Self::Smtp { host, .. } | Self::Lmtp { host, .. } | Self::Smtps { host, .. } => host,
        }
    }
}

/// Normalises a domain for lookup: trimmed, lowercase, no trailing dot.
pub(crate) fn normalize_domain(domain: &str) -> String {
    let d = domain.trim();
    d.strip_suffix('.').unwrap_or(d).to_lowercase()
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
    use super::target::TARGET_SYNTAX;
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
