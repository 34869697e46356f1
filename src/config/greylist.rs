//! `[greylist]`: the Greylist actor (RFC 6647) — how long a new (client network, sender,
//! recipient) triplet waits, how long a retry may take, when a client is whitelisted,
//! and who is never greylisted.

use std::time::Duration;

use hermod_actors::policy::greylist::GreylistRules;
use ipnet::IpNet;

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[greylist]`: the Greylist actor.
    pub struct GreylistConfig {
        /// Greylist at RCPT (`SMTP_ENABLE_GREYLIST`).
        pub enabled: bool = false
            => (restart, ["SMTP_ENABLE_GREYLIST"]),
        /// How long a new triplet waits (`GREYLIST_DELAY`, seconds or a duration).
        #[serde(with = "super::duration")]
        pub delay: Duration = Duration::from_secs(300)
            => (restart, ["GREYLIST_DELAY"]),
        /// How long after its first attempt a retry still passes; later, it starts over.
        #[serde(with = "super::duration")]
        pub retry_window: Duration = Duration::from_secs(24 * 3600)
            => (restart, []),
        /// How long a triplet that passed is let through at once.
        #[serde(with = "super::duration")]
        pub pass_lifetime: Duration = Duration::from_secs(36 * 86400)
            => (restart, []),
        /// Passed triplets after which a client network (/24, /64) skips the greylist (0:
        /// never).
        pub whitelist_after: u32 = 5
            => (restart, []),
        /// How long such a client network skips it.
        #[serde(with = "super::duration")]
        pub whitelist_period: Duration = Duration::from_secs(36 * 86400)
            => (restart, []),
        /// Client networks never greylisted (besides `relay.networks` and authenticated
        /// clients, which never are).
        pub allow_networks: Vec<IpNet> = Vec::new()
            => (restart, []),
        /// Envelope sender domains never greylisted.
        pub allow_sender_domains: Vec<String> = Vec::new()
            => (restart, []),
        /// Recipient domains never greylisted.
        pub allow_recipient_domains: Vec<String> = Vec::new()
            => (restart, []),
        /// Time the actor gets to answer.
        #[serde(with = "super::duration")]
        pub deadline: Duration = Duration::from_secs(2)
            => (restart, []),
        /// Let mail through when the greylist fails or does not answer (instead of 451).
        pub fail_open: bool = false
            => (restart, []),
    }
}

impl Section for GreylistConfig {
    const KEYS: &'static [Key] = GreylistConfig::DECLARED;
    const NAME: &'static str = "greylist";

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
