//! `[dnsbl]`: the DNSBL actor — which DNS blocklists (and allow lists) the client's
//! address is looked up in, their weights and the score that blocks, when (at connect or
//! at RCPT), and what a failed lookup means.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hermod_actors::policy::dnsbl::{DnsblRules, DnsblZone};
use hermod_actors::protocol::check::CheckStage;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[dnsbl]`: the DNSBL actor.
    pub struct DnsblConfig {
        /// Look clients up (`SMTP_ENABLE_DNSBL`).
        pub enabled: bool = false
            => (restart, ["SMTP_ENABLE_DNSBL"]),
        /// The lists: `{ zone = "zen.spamhaus.org", weight = 1.0, codes = ["127.0.0.2"] }`.
        pub zones: Vec<ZoneConfig> = Vec::new()
            => (restart, []),
        /// The summed weight of the listing zones that blocks.
        pub threshold: f64 = 1.0
            => (restart, []),
        /// `"connect"` (refuse before anything is said) or `"rcpt"` (refuse each recipient,
        /// so the reply can be read and the postmaster still reached).
        pub check_at: String = "rcpt".into()
            => (restart, []),
        /// Clients never looked up (besides `relay.networks` and authenticated clients).
        pub allow_networks: Vec<IpNet> = Vec::new()
            => (restart, []),
        /// DNS servers to ask (`ip:port`); empty: `delivery.dns_servers`, or the system's.
        pub dns_servers: Vec<SocketAddr> = Vec::new()
            => (restart, []),
        /// Time for each DNS query.
        #[serde(with = "super::duration")]
        pub timeout: Duration = Duration::from_secs(2)
            => (restart, []),
        /// Time the whole check gets.
        #[serde(with = "super::duration")]
        pub deadline: Duration = Duration::from_secs(5)
            => (restart, []),
        /// A failed lookup is ignored (logged, counted); off: the client gets `451 4.3.0`.
        pub fail_open: bool = true
            => (restart, []),
    }
}

/// One list in `[dnsbl] zones`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The list's DNS zone.
    pub zone: String,
    /// What a listing adds to the score (negative: an allow list).
    #[serde(default = "one")]
    pub weight: f64,
    /// Return codes that count (empty: any in 127.0.0.0/8 but 127.255.255.0/24).
    #[serde(default)]
    pub codes: Vec<Ipv4Addr>,
}

fn one() -> f64 {
    1.0
}

impl Section for DnsblConfig {
    const KEYS: &'static [Key] = DnsblConfig::DECLARED;
    const NAME: &'static str = "dnsbl";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.enabled && self.zones.is_empty() {
            issues.push(ConfigIssue::new(
                "dnsbl.zones",
                "DNSBL is on but no zone is listed (zones = [{ zone = \"zen.spamhaus.org\" }])",
            ));
        }
        for zone in &self.zones {
            if zone.zone.trim().is_empty() || zone.zone.contains(char::is_whitespace) {
                issues.push(ConfigIssue::new(
                    "dnsbl.zones",
                    format!("{:?} is not a DNS zone", zone.zone),
                ));
            }
        }
        if self.stage().is_none() {
            issues.push(ConfigIssue::new(
                "dnsbl.check_at",
                format!("must be \"connect\" or \"rcpt\", got {:?}", self.check_at),
            ));
        }
        if self.threshold <= 0.0 {
            issues.push(ConfigIssue::new("dnsbl.threshold", "must be above 0"));
        }
        longer_than_zero(
            issues,
            &[
                ("dnsbl.timeout", self.timeout),
                ("dnsbl.deadline", self.deadline),
            ],
        );
    }
}

impl DnsblConfig {
    /// The stage the lists are asked at.
    pub fn stage(&self) -> Option<CheckStage> {
        match self.check_at.as_str() {
            "connect" => Some(CheckStage::Connect),
            "rcpt" => Some(CheckStage::Rcpt),
            _ => None,
        }
    }

    /// The actor's rules.
    pub fn rules(&self) -> DnsblRules {
        DnsblRules {
            zones: self
                .zones
                .iter()
                .map(|z| DnsblZone {
                    zone: z.zone.clone(),
                    weight: z.weight,
                    codes: z.codes.clone(),
                })
                .collect(),
            threshold: self.threshold,
            allow_networks: self.allow_networks.clone(),
            fail_open: self.fail_open,
        }
    }
}
