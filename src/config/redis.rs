//! `[redis]`: the Redis server a fleet of hermod nodes shares its rate limits and greylist
//! through. Without a URL each node keeps its own (in memory and in its data directory).

use std::time::Duration;

use hermod_actors::policy::backend::redis::RedisBackend;

use super::section::{Key, section};
use super::{ConfigIssue, Section, longer_than_zero};

section! {
    /// `[redis]`: the shared policy state.
    pub struct RedisConfig {
        /// `redis://[:password@]host:port[/db]` (`SMTP_REDIS_URL`); empty: no Redis.
        pub url: String = String::new()
            => (restart, ["SMTP_REDIS_URL"]),
        /// Prefix of every key hermod writes (several fleets can share one Redis).
        pub prefix: String = "hermod:".into()
            => (restart, []),
        /// Time for connecting and for each command; past it the policy's fail mode applies.
        #[serde(with = "super::duration")]
        pub timeout: Duration = Duration::from_millis(500)
            => (restart, []),
        /// Rate limits are counted in Redis (one budget for the fleet).
        pub rate_limit: bool = true
            => (restart, []),
        /// The greylist's triplets and whitelist live in Redis.
        pub greylist: bool = true
            => (restart, []),
        /// Traffic-shaping actions (`delivery.shaping_file`) taken on one node hold on
        /// every node, and nodes sending from one egress source share its connection
        /// limits (leases that lapse when a node stops).
        pub shaping: bool = true
            => (restart, []),
    }
}

impl Section for RedisConfig {
    const KEYS: &'static [Key] = RedisConfig::DECLARED;
    const NAME: &'static str = "redis";

    fn check(&self, issues: &mut Vec<ConfigIssue>) {
        longer_than_zero(issues, &[("redis.timeout", self.timeout)]);
        if !self.url.is_empty()
            && let Err(e) = redis::Client::open(self.url.as_str())
        {
            issues.push(ConfigIssue::new(
                "redis.url",
                format!("{:?}: {e}", self.url),
            ));
        }
    }
}

impl RedisConfig {
    /// The backend, when a URL is set.
    pub fn backend(&self) -> anyhow::Result<Option<RedisBackend>> {
        if self.url.is_empty() {
            return Ok(None);
        }
        Ok(Some(RedisBackend::new(
            &self.url,
            &self.prefix,
            self.timeout,
        )?))
    }
}
