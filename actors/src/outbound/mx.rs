//! Turning a [`NextHop`] into the addresses to connect to: MX, then A and AAAA, with
//! hickory-resolver (RFC 5321 §5.1, null MX of RFC 7505).
//!
//! Who uses it: a Delivery actor asks [`MxResolver::targets`] before it opens
//! connections, tries the targets in order, and turns an [`MxError`] into a per-recipient
//! result: permanent errors bounce, the others are retried later.
//!
//! How hickory 0.26 reports a negative answer (read from its source, `hickory-net`
//! `DnsError::from_response`): both NXDOMAIN and an empty NOERROR ("NODATA") answer come
//! back as `Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })))`,
//! told apart only by `response_code` (`NXDomain` vs `NoError`). SERVFAIL and REFUSED are
//! `DnsError::ResponseCode(code)`, time-outs `NetError::Timeout`, unreachable servers
//! `NetError::NoConnections` or `NetError::Io`. [`negative`] is the one place that reads
//! that shape.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{ResolverBuilder, TokioResolver};
use tokio::task::JoinSet;

use crate::outbound::routing::NextHop;
use crate::protocol::status::EnhancedCode;

mod exchanges;

/// At most this many MX hosts of one domain are resolved. Why: the MX list comes from a
/// domain the peer chose, and each entry costs two lookups; real domains have a handful,
/// and Postfix tries no more than 5 addresses per delivery anyway.
const MAX_EXCHANGES: usize = 16;

/// Tries per query; each try waits up to the configured time-out.
const ATTEMPTS: usize = 2;

/// Resolves next hops to socket addresses, in the order to try them.
///
/// Why a wrapper and not a bare `TokioResolver`: it fixes the options an MTA needs
/// (fully qualified names only, our time-out, two attempts) and maps hickory's error
/// shapes to the four outcomes delivery cares about. Cheap to clone (the resolver and
/// its cache are shared), so every Delivery actor can hold one.
#[derive(Clone, Debug)]
pub struct MxResolver {
    /// hickory's caching resolver; its cache honours record TTLs across deliveries.
    resolver: TokioResolver,
}

/// One address to connect to.
///
/// Why `host` beside `addr`: the SMTP client logs it, uses it for TLS server-name checks
/// (DANE/MTA-STS name the MX host, not the address) and the Delivery actor groups
/// attempts by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The MX exchange, configured host or recipient domain (implicit MX), lowercase, no
    /// trailing dot; for an IP literal, the address as text.
    pub host: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The MX preference the address came from; 0 for an implicit MX or a configured host.
    pub preference: u16,
}

/// Why no target could be found. Permanent errors mean the mail can never be delivered
/// and should bounce now; the others may clear up, so the message is deferred.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxError {
    /// The domain publishes a null MX (a single MX with exchange `.`, RFC 7505): it
    /// accepts no mail. Permanent, status 5.1.10.
    #[error("{domain} accepts no mail (null MX, RFC 7505)")]
    NullMx {
        /// The recipient domain.
        domain: String,
    },
    /// The DNS answered NXDOMAIN: the domain does not exist. Permanent.
    #[error("domain {domain} does not exist (NXDOMAIN)")]
    NoSuchDomain {
        /// The name that does not exist.
        domain: String,
    },
    /// The name exists but neither it nor any of its MX hosts has an A or AAAA record.
    /// Temporary: this is usually a DNS change in progress.
    #[error("no A or AAAA record for {host}")]
    NoAddress {
        /// The recipient domain for an MX list or implicit MX, else the configured host.
        host: String,
    },
    /// The lookup itself failed: time-out, SERVFAIL, REFUSED, no server reachable.
    /// Temporary.
    #[error("DNS lookup of {name} failed: {reason}")]
    Dns {
        /// The name being looked up (or the resolver configuration file).
        name: String,
        /// hickory's description of the failure.
        reason: String,
    },
}

impl MxError {
    /// Whether retrying can never help, so the recipient should bounce at once.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NullMx { .. } | Self::NoSuchDomain { .. })
    }

    /// The RFC 3463 enhanced status code for a DSN or log line. Why here: the mapping
    /// from DNS outcome to status belongs with the outcomes (5.1.10 is RFC 7505's code for
    /// a null MX; 5.1.2 "bad destination system address"; 4.4.3 "directory server
    /// failure" for DNS trouble, as Postfix reports it).
    pub fn enhanced_status(&self) -> EnhancedCode {
        match self {
            Self::NullMx { .. } => EnhancedCode::new(5, 1, 10),
            Self::NoSuchDomain { .. } => EnhancedCode::new(5, 1, 2),
            Self::NoAddress { .. } | Self::Dns { .. } => EnhancedCode::new(4, 4, 3),
        }
    }
}

impl MxResolver {
    /// Builds a resolver that asks `dns_servers` (UDP and TCP on each one's port), or the
    /// system's resolvers from `/etc/resolv.conf` when the list is empty. Each query waits
    /// up to `timeout` and is tried twice.
    ///
    /// Why configurable servers: tests point it at an in-process DNS server, and an
    /// operator may want a local validating resolver rather than the system's.
    pub fn new(dns_servers: &[SocketAddr], timeout: Duration) -> Result<Self, MxError> {
        let resolver = resolver_builder(dns_servers, timeout)?
            .build()
            .map_err(|e| MxError::Dns {
                name: "resolver configuration".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self { resolver })
    }

    /// The resolver itself, for other lookups through the same servers and cache (the
    /// DNSBL's).
    pub(crate) fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    /// The addresses to try for `hop`, best first.
    ///
    /// - `Mx { domain }`: the domain's MX hosts by preference (stable for equal
    ///   preferences), each host's IPv4 then IPv6 addresses, on `mx_port`. No MX records
    ///   but the domain exists: its own A/AAAA (implicit MX, preference 0). An address
    ///   literal domain (`[192.0.2.1]`) is used as is.
    /// - `Smtp { mx: true }`: the same MX procedure for `host`, on the configured port.
    /// - `Smtp { mx: false }` and `Lmtp`: `host`'s A/AAAA, or the IP literal, on the port.
    ///
    /// MX hosts that fail to resolve are skipped; an error is returned only when nothing
    /// is left, and then a lookup failure (temporary) wins over "no address".
    pub async fn targets(&self, hop: &NextHop, mx_port: u16) -> Result<Vec<Target>, MxError> {
        match hop {
            NextHop::Mx { domain } => match address_literal(domain) {
                Some(ip) => Ok(vec![direct(ip, mx_port)]),
                None => self.mx_targets(domain, mx_port).await,
            },
            NextHop::Smtp {
                host,
                port,
                mx: true,
            } => match host.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![direct(ip, *port)]),
                Err(_) => self.mx_targets(host, *port).await,
            },
            NextHop::Smtp { host, port, .. }
            | NextHop::Lmtp { host, port }
            | NextHop::Smtps { host, port } => match address_literal(host) {
                Some(ip) => Ok(vec![direct(ip, *port)]),
                None => self.host_targets(host, *port).await,
            },
        }
    }

    /// RFC 5321 §5.1 for one domain: MX list, null MX, implicit MX.
    async fn mx_targets(&self, domain: &str, port: u16) -> Result<Vec<Target>, MxError> {
        let domain = display_name(domain);
        let name = fqdn(&domain)?;
        let mut exchanges: Vec<(u16, Name)> = match self.resolver.mx_lookup(name.clone()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_lowercase())),
                    _ => None,
                })
                .collect(),
            Err(e) => match negative(&e) {
                Some(Negative::NxDomain) => return Err(MxError::NoSuchDomain { domain }),
                Some(Negative::NoData) => Vec::new(),
                None => return Err(dns_error(&domain, &e)),
            },
        };
        if exchanges.is_empty() {
            // Implicit MX: the domain itself, preference 0.
            return self.host_targets(&domain, port).await;
        }
        if exchanges.iter().all(|(_, exchange)| exchange.is_root()) {
            return Err(MxError::NullMx { domain });
        }
        // A null MX mixed with real ones violates RFC 7505 §3; the real ones still work.
        exchanges.retain(|(_, exchange)| !exchange.is_root());
        exchanges.sort_by_key(|(preference, _)| *preference);
        let mut seen = std::collections::HashSet::new();
        exchanges.retain(|(_, exchange)| seen.insert(exchange.clone()));
        exchanges.truncate(MAX_EXCHANGES);

        let resolved = self.resolve_exchanges(&domain, &exchanges).await;

        let mut targets = Vec::new();
        let mut failure = None;
        for ((preference, exchange), result) in exchanges.iter().zip(resolved) {
            let host = display_name(&exchange.to_ascii());
            match result {
                Some(Ok(addrs)) => {
                    if addrs.is_empty() {
                        tracing::debug!(%domain, %host, "MX host has no A or AAAA record");
                    }
                    targets.extend(addrs.into_iter().map(|ip| Target {
                        host: host.clone(),
                        addr: SocketAddr::new(ip, port),
                        preference: *preference,
                    }));
                }
                Some(Err(e)) => {
                    tracing::debug!(%domain, %host, error = %e, "MX host lookup failed");
                    failure.get_or_insert(e);
                }
                None => {
                    failure.get_or_insert_with(|| MxError::Dns {
                        name: host.clone(),
                        reason: "lookup task failed".to_owned(),
                    });
                }
            }
        }
        if targets.is_empty() {
            return Err(failure.unwrap_or(MxError::NoAddress { host: domain }));
        }
        Ok(targets)
    }

    /// The addresses of each exchange, looked up at once; `None` where a lookup task
    /// failed.
    async fn resolve_exchanges(
        &self,
        domain: &str,
        exchanges: &[(u16, Name)],
    ) -> Vec<Option<Result<Vec<IpAddr>, MxError>>> {
        let mut lookups = JoinSet::new();
        for (index, (_, exchange)) in exchanges.iter().enumerate() {
            let resolver = self.resolver.clone();
            let exchange = exchange.clone();
            lookups.spawn(async move { (index, addresses(&resolver, &exchange).await) });
        }
        let mut resolved: Vec<Option<Result<Vec<IpAddr>, MxError>>> = vec![None; exchanges.len()];
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok((index, result)) => {
                    if let Some(slot) = resolved.get_mut(index) {
                        *slot = Some(result);
                    }
                }
                Err(e) => tracing::warn!(%domain, error = %e, "MX host lookup task failed"),
            }
        }
        resolved
    }

    /// A/AAAA of one host name, preference 0.
    async fn host_targets(&self, host: &str, port: u16) -> Result<Vec<Target>, MxError> {
        let host = display_name(host);
        let name = fqdn(&host)?;
        let addrs = addresses(&self.resolver, &name).await?;
        if addrs.is_empty() {
            return Err(MxError::NoAddress { host });
        }
        Ok(addrs
            .into_iter()
            .map(|ip| Target {
                host: host.clone(),
                addr: SocketAddr::new(ip, port),
                preference: 0,
            })
            .collect())
    }
}

/// A resolver asking `dns_servers` (UDP and TCP on each one's port), or the system's
/// resolvers from `/etc/resolv.conf` when the list is empty, each query waiting up to
/// `timeout` and tried twice: [`MxResolver`]'s, and DANE's before it adds validation.
pub(crate) fn resolver_builder(
    dns_servers: &[SocketAddr],
    timeout: Duration,
) -> Result<ResolverBuilder<TokioRuntimeProvider>, MxError> {
    let mut builder = if dns_servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| MxError::Dns {
            name: "/etc/resolv.conf".to_owned(),
            reason: e.to_string(),
        })?
    } else {
        let servers = dns_servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = ATTEMPTS;
    Ok(builder)
}

/// A and AAAA of `name`, asked at once, IPv4 first. Empty when the name has neither (or
/// does not exist). One family failing while the other answers is not an error: the
/// addresses we have are worth trying. Both failing is, and it is temporary.
async fn addresses(resolver: &TokioResolver, name: &Name) -> Result<Vec<IpAddr>, MxError> {
    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.clone()),
        resolver.ipv6_lookup(name.clone())
    );
    let mut addrs = Vec::new();
    let mut failure = None;
    for result in [v4, v6] {
        match result {
            Ok(lookup) => addrs.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })),
            Err(e) if negative(&e).is_some() => {}
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) if addrs.is_empty() => Err(dns_error(&display_name(&name.to_ascii()), &e)),
        Some(e) => {
            tracing::debug!(%name, error = %e, "one address family failed; using the other");
            Ok(addrs)
        }
        None => Ok(addrs),
    }
}

/// The two negative answers a DNS server can give authoritatively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negative {
    /// RCODE NXDOMAIN: the name does not exist, for any type.
    NxDomain,
    /// RCODE NOERROR with no record of the type asked (RFC 2308 "NODATA").
    NoData,
}

/// Whether `e` is an answer that the name or the record does not exist (NXDOMAIN or
/// NODATA), rather than a failure to get an answer.
pub(crate) fn is_negative_answer(e: &NetError) -> bool {
    negative(e).is_some()
}

/// Reads hickory's negative-answer shape (see the module doc). `NoRecordsFound` with any
/// other response code is not a negative answer but a failure.
fn negative(e: &NetError) -> Option<Negative> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match response_code {
                ResponseCode::NXDomain => Some(Negative::NxDomain),
                ResponseCode::NoError => Some(Negative::NoData),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A temporary lookup failure for `name`.
fn dns_error(name: &str, e: &NetError) -> MxError {
    MxError::Dns {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

/// The fully qualified form of `host`, so no search domain is ever appended. A name that
/// cannot be written in DNS cannot exist there, hence `NoSuchDomain`.
fn fqdn(host: &str) -> Result<Name, MxError> {
    let no_such = || MxError::NoSuchDomain {
        domain: host.to_owned(),
    };
    if host.is_empty() {
        return Err(no_such());
    }
    let mut name = Name::from_str_relaxed(host).map_err(|_| no_such())?;
    name.set_fqdn(true);
    Ok(name)
}

/// A name as hermod shows and compares it: trimmed, lowercase, no trailing dot.
fn display_name(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_lowercase()
}

/// The IP address of an address literal: `[192.0.2.1]`, `[IPv6:2001:db8::1]`, or a bare
/// address as routing stores it.
fn address_literal(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let inner = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &inner[5..],
        _ => inner,
    };
    inner.parse().ok()
}

/// A target for an IP literal: no lookup, preference 0.
fn direct(ip: IpAddr, port: u16) -> Target {
    Target {
        host: ip.to_string(),
        addr: SocketAddr::new(ip, port),
        preference: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::RecordType;

    fn no_records(code: ResponseCode) -> NetError {
        let query = Query::query(Name::root(), RecordType::MX);
        NetError::from(NoRecords::new(query, code))
    }

    #[test]
    fn negative_answers_are_told_apart_by_response_code() {
        let cases: Vec<(NetError, Option<Negative>)> = vec![
            (no_records(ResponseCode::NXDomain), Some(Negative::NxDomain)),
            (no_records(ResponseCode::NoError), Some(Negative::NoData)),
            (no_records(ResponseCode::ServFail), None),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)),
                None,
            ),
            (
                NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
                None,
            ),
            (NetError::Timeout, None),
            (NetError::NoConnections, None),
        ];
        for (err, want) in cases {
            assert_eq!(negative(&err), want, "{err}");
        }
    }

    #[test]
    fn permanence_and_status_codes() {
        let cases = [
            (MxError::NullMx { domain: "a".into() }, true, "5.1.10"),
            (MxError::NoSuchDomain { domain: "a".into() }, true, "5.1.2"),
            (MxError::NoAddress { host: "a".into() }, false, "4.4.3"),
            (
                MxError::Dns {
                    name: "a".into(),
                    reason: "request timed out".into(),
                },
                false,
                "4.4.3",
            ),
        ];
        for (err, permanent, status) in cases {
            assert_eq!(err.is_permanent(), permanent, "{err}");
            assert_eq!(err.enhanced_status().to_string(), status, "{err}");
        }
    }

    #[test]
    fn address_literals() {
        let cases: &[(&str, Option<&str>)] = &[
            ("[192.0.2.1]", Some("192.0.2.1")),
            ("192.0.2.1", Some("192.0.2.1")),
            ("[IPv6:2001:db8::1]", Some("2001:db8::1")),
            ("[ipv6:::1]", Some("::1")),
            ("::1", Some("::1")),
            ("[example.com]", None),
            ("example.com", None),
            ("[192.0.2.1", None),
            ("", None),
        ];
        for (input, want) in cases {
            let want = want.map(|s| s.parse::<IpAddr>().expect("test address"));
            assert_eq!(address_literal(input), want, "{input}");
        }
    }

    #[test]
    fn lookups_use_fully_qualified_names() {
        for host in ["example.com", "example.com.", "mx1.example.com"] {
            let name = fqdn(host).expect("valid name");
            assert!(name.is_fqdn(), "{host}");
            assert_eq!(name.to_ascii(), format!("{}.", host.trim_end_matches('.')));
        }
        assert!(matches!(fqdn(""), Err(MxError::NoSuchDomain { .. })));
    }

    #[tokio::test]
    async fn ip_literal_hops_need_no_dns() {
        // An unreachable server: any query would fail, so success proves none was sent.
        let server: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let resolver = MxResolver::new(&[server], Duration::from_millis(50)).expect("resolver");
        let cases: &[(NextHop, &str)] = &[
            (
                NextHop::Smtp {
                    host: "127.0.0.2".into(),
                    port: 2525,
                    mx: false,
                },
                "127.0.0.2:2525",
            ),
            (
                NextHop::Smtp {
                    host: "::1".into(),
                    port: 26,
                    mx: true,
                },
                "[::1]:26",
            ),
            (
                NextHop::Lmtp {
                    host: "127.0.0.3".into(),
                    port: 24,
                },
                "127.0.0.3:24",
            ),
            (
                NextHop::Mx {
                    domain: "[IPv6:::1]".into(),
                },
                "[::1]:25",
            ),
        ];
        for (hop, want) in cases {
            let targets = resolver.targets(hop, 25).await.expect("literal");
            assert_eq!(targets.len(), 1, "{hop}");
            assert_eq!(targets[0].addr.to_string(), *want, "{hop}");
            assert_eq!(targets[0].preference, 0);
        }
    }

    #[tokio::test]
    async fn unreachable_server_is_a_temporary_dns_error() {
        let server: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let resolver = MxResolver::new(&[server], Duration::from_millis(100)).expect("resolver");
        let hop = NextHop::Mx {
            domain: "example.test".into(),
        };
        match resolver.targets(&hop, 25).await {
            Err(e @ MxError::Dns { .. }) => assert!(!e.is_permanent()),
            other => panic!("expected a DNS error, got {other:?}"),
        }
    }
}
