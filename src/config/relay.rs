//! `[relay]`: the relay policy — which domains hermod accepts mail for from anyone, and
//! which client networks may relay anywhere.

use hermod_actors::protocol::relay::RelayPolicy;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ConfigIssue, Section};

/// `[relay]`: the relay policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Domains accepted from anyone (the MX gateway's `relay_domains`); `.example.com`
    /// covers its sub-domains.
    pub domains: Vec<String>,
    /// Client networks allowed to relay to any domain (Postfix's `mynetworks`). In the
    /// environment, a bare IP means that one host.
    pub networks: Vec<IpNet>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            domains: Vec::new(),
            networks: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
        }
    }
}

impl Section for RelayConfig {
    const NAME: &'static str = "relay";
    const SEED_ENV: &'static [(&'static str, &'static str)] = &[
        ("RELAY_ALLOWED_DOMAINS", "domains"),
        ("RELAY_ALLOWED_IPS", "networks"),
    ];
    const LIVE: &'static [&'static str] = &["domains", "networks"];

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
