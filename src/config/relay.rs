//! `[relay]`: the relay policy — which domains hermod accepts mail for from anyone, and
//! which client networks may relay anywhere.

use hermod_actors::protocol::relay::RelayPolicy;
use ipnet::IpNet;

use super::section::{Key, section};
use super::{ConfigIssue, Section};

section! {
    /// `[relay]`: the relay policy.
    pub struct RelayConfig {
        /// Domains accepted from anyone (the MX gateway's `relay_domains`); `.example.com`
        /// covers its sub-domains.
        pub domains: Vec<String> = Vec::new()
            => (live, ["RELAY_ALLOWED_DOMAINS"]),
        /// Client networks allowed to relay to any domain (Postfix's `mynetworks`). In the
        /// environment, a bare IP means that one host.
        pub networks: Vec<IpNet> = vec![ "127.0.0.0/8".parse().expect("literal"), "::1/128".parse().expect("literal"), ]
            => (live, ["RELAY_ALLOWED_IPS"]),
    }
}

impl Section for RelayConfig {
    const KEYS: &'static [Key] = RelayConfig::DECLARED;
    const NAME: &'static str = "relay";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        for domain in &self.domains {
            if domain.trim().is_empty() || domain.contains(['@', ' ', ',']) {
                issues.push(ConfigIssue::new(
                    "relay.domains",
                    format!("{domain:?} is not a domain"),
                ));
            }
        }
    }
}

impl RelayConfig {
    /// The policy Sessions apply at RCPT.
    pub fn policy(&self) -> RelayPolicy {
        RelayPolicy::new(&self.domains, &self.networks)
    }
}
