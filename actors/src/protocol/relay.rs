//! Relay policy: who may send mail to which domains. Mail for a relay domain is accepted
//! from anyone (the MX gateway); mail for any other domain only from the allowed networks
//! (the outbound relay). Everything else is "Relay access denied".

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::protocol::address::Mailbox;

/// The relay decision's inputs, resolved once from configuration.
#[derive(Debug, Clone, Default)]
pub struct RelayPolicy {
    /// Domains we accept mail for from anyone; an entry `.example.com` covers sub-domains.
    domains: HashSet<String>,
    /// Client networks allowed to relay to any domain.
    networks: Vec<IpNet>,
}

impl RelayPolicy {
    /// Builds the policy; domains are compared case-insensitively without trailing dots.
    pub fn new(domains: &[String], networks: &[IpNet]) -> Self {
        let domains = domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        RelayPolicy {
            domains,
            networks: networks.to_vec(),
        }
    }

    /// Whether `client` is inside the networks allowed to relay anywhere.
    pub fn is_trusted_client(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        self.networks.iter().any(|net| net.contains(&client))
    }

    /// Whether `domain` is one we accept mail for from anyone.
    pub fn is_relay_domain(&self, domain: &str) -> bool {
        if self.domains.contains(domain) {
            return true;
        }
        let mut rest = domain;
        while let Some(dot) = rest.find('.') {
            if self.domains.contains(&rest[dot..]) {
                return true;
            }
            rest = &rest[dot + 1..];
        }
        false
    }

    /// Whether `client` may send to `rcpt`. An untrusted client may only reach a relay
    /// domain, and only with a plain local part: `%`, `!` and quoted `@` are routing
    /// tricks that the next hop might honour, turning us into an open relay.
    pub fn allows(&self, client: IpAddr, rcpt: &Mailbox) -> bool {
        self.is_trusted_client(client) || self.accepts_from_anyone(rcpt)
    }

    /// Whether anyone, trusted or not, may send to `rcpt`: a relay domain with a plain
    /// local part.
    pub fn accepts_from_anyone(&self, rcpt: &Mailbox) -> bool {
        self.is_relay_domain(&rcpt.domain) && !rcpt.has_routing_in_local_part()
    }
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to IPv4, so a dual-stack socket
/// matches IPv4 networks.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::address::parse_forward_path;

    fn policy() -> RelayPolicy {
        RelayPolicy::new(
            &["relay.test".into(), ".sub.test".into()],
            &["192.0.2.0/24".parse().unwrap()],
        )
    }

    #[test]
    fn open_relay_tricks_are_denied_to_outsiders() {
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        let insider: IpAddr = "192.0.2.9".parse().unwrap();
        let table = [
            ("<user@relay.test>", true),
            ("<user@RELAY.test>", true),
            ("<user@a.sub.test>", true),
            ("<user@sub.test>", false),
            ("<user@elsewhere.test>", false),
            ("<user%elsewhere.test@relay.test>", false),
            ("<elsewhere.test!user@relay.test>", false),
            ("<\"user@elsewhere.test\"@relay.test>", false),
            ("<@relay.test:user@elsewhere.test>", false),
            ("<@elsewhere.test:user@relay.test>", true),
            ("<user@[192.0.2.1]>", false),
            ("<user@relay.test.elsewhere.test>", false),
            ("<user@notrelay.test>", false),
        ];
        for (rcpt, expected) in table {
            let (mailbox, _) = parse_forward_path(rcpt, "mx.test").unwrap();
            assert_eq!(
                policy().allows(outsider, &mailbox),
                expected,
                "{rcpt} from outsider"
            );
            assert!(policy().allows(insider, &mailbox), "{rcpt} from insider");
        }
    }

    #[test]
    fn ipv4_mapped_client_matches_ipv4_network() {
        assert!(policy().is_trusted_client("::ffff:192.0.2.5".parse().unwrap()));
    }
}
