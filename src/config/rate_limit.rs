//! `[rate_limit]`: the RateLimiter actor — connections and messages per client address,
//! messages and recipients per authenticated user, messages per sender domain, each so
//! many per `window`; 0 turns a limit off.

use hermod_actors::policy::rate_limiter::RateLimits;

use super::{ConfigIssue, Key, Section, longer_than_zero};

/// `[rate_limit]`: the RateLimiter actor's limits, as the engine takes them.
pub type RateLimitConfig = RateLimits;

impl Section for RateLimitConfig {
    const NAME: &'static str = "rate_limit";
    /// The keys with seed names (the struct and its defaults are the engine's; a reload
    /// applies none of them).
    const KEYS: &'static [Key] = &[
        Key {
            name: "messages_per_ip",
            env: &["SMTP_RATE_LIMIT_PER_IP"],
            live: false,
        },
        Key {
            name: "messages_per_user",
            env: &["SMTP_RATE_LIMIT_PER_USER"],
            live: false,
        },
        Key {
            name: "cleanup_interval",
            env: &["SMTP_RATE_LIMIT_CLEANUP_INTERVAL"],
            live: false,
        },
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
