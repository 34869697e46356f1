//! Lists of peers as operators write them (`log.debug_peers`, `log.transcript_peers`):
//! client and next-hop addresses, networks and domains, and whether a value (a client's
//! address, a next hop, a mail address) names one of them.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The listed peers: networks (an address is a /32 or /128) and domains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerList {
    networks: Vec<IpNet>,
    /// Lowercase, without a trailing dot.
    domains: Vec<String>,
}

impl PeerList {
    /// Reads a list; `Err` names the first entry that is neither an address, a network
    /// nor a domain.
    pub fn parse(entries: &[String]) -> Result<Self, NotAPeer> {
        let mut peers = PeerList::default();
        for entry in entries {
            let text = entry.trim();
            if let Ok(network) = text.parse::<IpNet>() {
                peers.networks.push(network);
            } else if let Ok(ip) = text.parse::<IpAddr>() {
                peers.networks.push(IpNet::from(ip.to_canonical()));
            } else if is_domain(text) {
                peers
                    .domains
                    .push(text.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(NotAPeer(entry.clone()));
            }
        }
        Ok(peers)
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.domains.is_empty()
    }

    /// Whether a field's value names a listed peer.
    pub fn names(&self, value: &str) -> bool {
        let value = value.trim_matches(|c| c == '"' || c == '<' || c == '>');
        let ip = value
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .or_else(|_| value.parse::<IpAddr>());
        if let Ok(ip) = ip {
            // A client behind a `[::]` listener is `::ffff:192.0.2.7`.
            let ip = ip.to_canonical();
            return self.networks.iter().any(|n| n.contains(&ip));
        }
        // A next hop as configured (`[mx.example.com]:25`, `smtp:host`), a mail address
        // or a bare domain.
        let host = host_of(value);
        self.domains.iter().any(|d| {
            host.strip_suffix(d.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
        })
    }
}

/// The host a value names: after a mail address's `@`, without a next hop's scheme,
/// brackets and port, lowercase, without a trailing dot.
fn host_of(value: &str) -> String {
    let mut host = value.rsplit('@').next().unwrap_or(value);
    for scheme in ["smtp:", "smtps:", "lmtp:", "mx:"] {
        host = host.strip_prefix(scheme).unwrap_or(host);
    }
    if let Some((name, port)) = host.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        host = name;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// A list entry that is neither an address, a network nor a domain.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address, a network (192.0.2.0/24) or a domain")]
pub struct NotAPeer(pub String);

fn is_domain(text: &str) -> bool {
    let text = text.trim_end_matches('.');
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_networks_and_domains_name_their_peers() {
        let entries = [
            "192.0.2.7",
            "198.51.100.0/24",
            "Example.COM.",
            "2001:db8::/32",
        ]
        .map(String::from);
        let peers = PeerList::parse(&entries).unwrap();
        for named in [
            "192.0.2.7:41234",
            "198.51.100.200",
            "[2001:db8::1]:25",
            "user@example.com",
            "<a@mx.example.com>",
            "example.com",
            "[mx1.example.com]:25",
            "[::ffff:192.0.2.7]:41234",
            "smtp:mail.example.com",
        ] {
            assert!(peers.names(named), "{named}");
        }
        for other in [
            "192.0.2.8:25",
            "203.0.113.1",
            "notexample.com",
            "a@example.org",
        ] {
            assert!(!peers.names(other), "{other}");
        }
        assert!(PeerList::parse(&["not a peer".to_string()]).is_err());
    }
}
