//! `[greylist]`: the Greylist actor (RFC 6647) — how long a new (client network, sender,
//! recipient) triplet waits, how long a retry may take, when a client is whitelisted,
//! and who is never greylisted.

use std::time::Duration;

use hermod_actors::policy::greylist::GreylistRules;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ConfigIssue, Section, longer_than_zero};

/// `[greylist]`: the Greylist actor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GreylistConfig {
    /// Greylist at RCPT (`SMTP_ENABLE_GREYLIST`).
    pub enabled: bool,
    /// How long a new triplet waits (`GREYLIST_DELAY`, seconds or a duration).
    #[serde(with = "super::duration")]
    pub delay: Duration,
    /// How long after its first attempt a retry still passes; later, it starts over.
    #[serde(with = "super::duration")]
    pub retry_window: Duration,
    /// How long a triplet that passed is let through at once.
    #[serde(with = "super::duration")]
    pub pass_lifetime: Duration,
    /// Passed triplets after which a client network (/24, /64) skips the greylist (0:
    /// never).
    pub whitelist_after: u32,
    /// How long such a client network skips it.
    #[serde(with = "super::duration")]
    pub whitelist_period: Duration,
    /// Client networks never greylisted (besides `relay.networks` and authenticated
    /// clients, which never are).
    pub allow_networks: Vec<IpNet>,
    /// Envelope sender domains never greylisted.
    pub allow_sender_domains: Vec<String>,
    /// Recipient domains never greylisted.
    pub allow_recipient_domains: Vec<String>,
    /// Time the actor gets to answer.
    #[serde(with = "super::duration")]
    pub deadline: Duration,
    /// Let mail through when the greylist fails or does not answer (instead of 451).
    pub fail_open: bool,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: false,
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(24 * 3600),
            pass_lifetime: Duration::from_secs(36 * 86400),
            whitelist_after: 5,
            whitelist_period: Duration::from_secs(36 * 86400),
            allow_networks: Vec::new(),
            allow_sender_domains: Vec::new(),
            allow_recipient_domains: Vec::new(),
            deadline: Duration::from_secs(2),
            fail_open: false,
        }
    }
}

impl Section for GreylistConfig {
    const NAME: &'static str = "greylist";
    const SEED_ENV: &'static [(&'static str, &'static str)] = &[
        ("SMTP_ENABLE_GREYLIST", "enabled"),
        ("GREYLIST_DELAY", "delay"),
    ];

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(
            issues,
            &[
                ("greylist.retry_window", self.retry_window),
                ("greylist.pass_lifetime", self.pass_lifetime),
                ("greylist.deadline", self.deadline),
            ],
        );
        if self.delay >= self.retry_window {
            issues.push(ConfigIssue::new(
                "greylist.delay",
                "must be shorter than greylist.retry_window, or no retry could ever pass",
            ));
        }
    }
}

impl GreylistConfig {
    /// The actor's rules.
    pub fn rules(&self) -> GreylistRules {
        GreylistRules {
            delay: self.delay,
            retry_window: self.retry_window,
            pass_lifetime: self.pass_lifetime,
            whitelist_after: self.whitelist_after,
            whitelist_period: self.whitelist_period,
            allow_networks: self.allow_networks.clone(),
            allow_sender_domains: self.allow_sender_domains.clone(),
            allow_recipient_domains: self.allow_recipient_domains.clone(),
            sweep_interval: Duration::from_secs(600),
            fail_open: self.fail_open,
        }
    }
}
