//! `[rate_limit]`: the RateLimiter actor — connections and messages per client address,
//! messages and recipients per authenticated user, messages per sender domain, each so
//! many per `window`; 0 turns a limit off.

use std::time::Duration;

use hermod_actors::policy::rate_limiter::RateLimits;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ConfigIssue, Section, longer_than_zero};

/// `[rate_limit]`: the RateLimiter actor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// New connections per client address (IPv6: per /64) per window; past it `421 4.7.0`.
    pub connections_per_ip: u32,
    /// Messages per client address per window (`SMTP_RATE_LIMIT_PER_IP`); past it
    /// `450 4.7.1` at MAIL.
    pub messages_per_ip: u32,
    /// Messages per authenticated user per window (`SMTP_RATE_LIMIT_PER_USER`).
    pub messages_per_user: u32,
    /// Recipients per authenticated user per window; past it `450 4.7.1` at RCPT.
    pub recipients_per_user: u32,
    /// Messages per envelope sender domain per window.
    pub messages_per_sender_domain: u32,
    /// The window every limit counts in; the budget comes back evenly over it.
    #[serde(with = "super::duration")]
    pub window: Duration,
    /// Client networks never limited.
    pub exempt: Vec<IpNet>,
    /// How often keys whose budget is full again are dropped
    /// (`SMTP_RATE_LIMIT_CLEANUP_INTERVAL`).
    #[serde(with = "super::duration")]
    pub cleanup_interval: Duration,
    /// When Redis (`[redis]`) cannot be reached: let mail through (`true`) or defer it
    /// with `451 4.3.0` (`false`).
    pub fail_open: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            connections_per_ip: 0,
            messages_per_ip: 0,
            messages_per_user: 0,
            recipients_per_user: 0,
            messages_per_sender_domain: 0,
            window: Duration::from_secs(3600),
            exempt: Vec::new(),
            cleanup_interval: Duration::from_secs(60),
            fail_open: false,
        }
    }
}

impl Section for RateLimitConfig {
    const NAME: &'static str = "rate_limit";
    const SEED_ENV: &'static [(&'static str, &'static str)] = &[
        ("SMTP_RATE_LIMIT_PER_IP", "messages_per_ip"),
        ("SMTP_RATE_LIMIT_PER_USER", "messages_per_user"),
        ("SMTP_RATE_LIMIT_CLEANUP_INTERVAL", "cleanup_interval"),
    ];

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(
            issues,
            &[
                ("rate_limit.window", self.window),
                ("rate_limit.cleanup_interval", self.cleanup_interval),
            ],
        );
        if !self.window.is_zero() {
            for (key, count) in self.counts() {
                if count > 0 && (self.window / count).is_zero() {
                    issues.push(ConfigIssue::new(
                        format!("rate_limit.{key}"),
                        "more than one per nanosecond of rate_limit.window",
                    ));
                }
            }
        }
    }
}

impl RateLimitConfig {
    fn counts(&self) -> [(&'static str, u32); 5] {
        [
            ("connections_per_ip", self.connections_per_ip),
            ("messages_per_ip", self.messages_per_ip),
            ("messages_per_user", self.messages_per_user),
            ("recipients_per_user", self.recipients_per_user),
            (
                "messages_per_sender_domain",
                self.messages_per_sender_domain,
            ),
        ]
    }

    /// Whether any limit is on.
    pub fn enabled(&self) -> bool {
        self.counts().iter().any(|(_, count)| *count > 0)
    }

    /// The RateLimiter's settings.
    pub fn limits(&self) -> RateLimits {
        RateLimits {
            connections_per_ip: self.connections_per_ip,
            messages_per_ip: self.messages_per_ip,
            messages_per_user: self.messages_per_user,
            recipients_per_user: self.recipients_per_user,
            messages_per_sender_domain: self.messages_per_sender_domain,
            window: self.window,
            exempt: self.exempt.clone(),
            cleanup_interval: self.cleanup_interval,
            fail_open: self.fail_open,
        }
    }
}
