//! The RateLimiter actor: keyed GCRA limits (governor) on connections and messages per
//! client address (IPv6 by /64), messages and recipients per authenticated user, and
//! messages per sender domain, each "so many per window". Clients in the exempt networks
//! are never limited. Past a limit: `450 4.7.1 Rate limit exceeded, try again in N
//! seconds` (at connect `421 4.7.0 …`, and the connection closes), one log line with the
//! key and the limit, and `smtp_rate_limit_hits_total{scope}`.
//!
//! Keys whose budget is full again are dropped every `cleanup_interval`, so memory stays
//! bounded under a flood of distinct addresses. With the Redis backend every check is one
//! atomic GCRA step in Redis instead, so the nodes of a fleet spend from one budget; while
//! Redis is down the limiter defers (or, with `fail_open`, lets through).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix::ResponseFuture;

use crate::policy::actor::Policy;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use super::backend::redis::RedisBackend;
use super::set::Ask;
use crate::protocol::check::{CheckStage, CheckStages, Facts, Verdict};
use crate::protocol::reply::Reply;

/// The limits, each "count per `window`" (0: no limit): the configuration's
/// `[rate_limit]` table itself, so each setting is declared once, here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// New connections per client address (IPv6: per /64) per window; past it `421 4.7.0`.
    pub connections_per_ip: u32,
    /// Messages (MAIL commands) per client address per window (`SMTP_RATE_LIMIT_PER_IP`);
    /// past it `450 4.7.1` at MAIL.
    pub messages_per_ip: u32,
    /// Messages per authenticated user per window (`SMTP_RATE_LIMIT_PER_USER`).
    pub messages_per_user: u32,
    /// Recipients per authenticated user per window; past it `450 4.7.1` at RCPT.
    pub recipients_per_user: u32,
    /// Messages per envelope sender domain per window.
    pub messages_per_sender_domain: u32,
    /// The window every limit counts in; the budget comes back evenly over it.
    #[serde(with = "crate::core::duration")]
    pub window: Duration,
    /// Client networks never limited.
    pub exempt: Vec<IpNet>,
    /// How often keys whose budget is full again are dropped
    /// (`SMTP_RATE_LIMIT_CLEANUP_INTERVAL`).
    #[serde(with = "crate::core::duration")]
    pub cleanup_interval: Duration,
    /// When Redis (`[redis]`) cannot be reached: let mail through (`true`) or defer it
    /// with `451 4.3.0` (`false`).
    pub fail_open: bool,
}

impl Default for RateLimits {
    /// Every limit off; an hour's window; idle keys dropped every minute.
    fn default() -> Self {
        RateLimits {
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

impl RateLimits {
    /// Each count by its key.
    pub fn counts(&self) -> [(&'static str, u32); 5] {
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

    /// The stages some limit speaks at.
    pub fn stages(&self) -> CheckStages {
        let mut stages = Vec::new();
        if self.connections_per_ip > 0 {
            stages.push(CheckStage::Connect);
        }
        if self.messages_per_ip > 0
            || self.messages_per_user > 0
            || self.messages_per_sender_domain > 0
        {
            stages.push(CheckStage::Mail);
        }
        if self.recipients_per_user > 0 {
            stages.push(CheckStage::Rcpt);
        }
        CheckStages::of(&stages)
    }
}

/// One limit: its scope name and its keyed limiter.
struct Limit {
    scope: &'static str,
    count: u32,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Limit {
    fn new(scope: &'static str, count: u32, window: Duration) -> Option<Self> {
        let burst = NonZeroU32::new(count)?;
        let quota = Quota::with_period(window / count)?.allow_burst(burst);
        Some(Limit {
            scope,
            count,
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        })
    }

    /// Spends one from `key`'s budget; the seconds to wait when it is empty.
    fn spend(&self, key: &str) -> Result<(), u64> {
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                // Rounded up: "try again in N seconds" must not be too early.
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
            })
    }
}

/// The actor.
pub struct RateLimiter {
    exempt: Vec<IpNet>,
    /// The shared budget of a fleet; `None`: this process's own.
    redis: Option<RedisBackend>,
    fail_open: bool,
    window: Duration,
    cleanup_interval: Duration,
    connections: Option<Limit>,
    messages_ip: Option<Limit>,
    messages_user: Option<Limit>,
    recipients_user: Option<Limit>,
    messages_domain: Option<Limit>,
}

impl RateLimiter {
    /// A limiter for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        let window = limits.window;
        RateLimiter {
            exempt: limits.exempt.clone(),
            redis: None,
            fail_open: limits.fail_open,
            window,
            cleanup_interval: limits.cleanup_interval,
            connections: Limit::new("connections_per_ip", limits.connections_per_ip, window),
            messages_ip: Limit::new("messages_per_ip", limits.messages_per_ip, window),
            messages_user: Limit::new("messages_per_user", limits.messages_per_user, window),
            recipients_user: Limit::new("recipients_per_user", limits.recipients_per_user, window),
            messages_domain: Limit::new(
                "messages_per_sender_domain",
                limits.messages_per_sender_domain,
                window,
            ),
        }
    }

    /// The same limits kept in Redis, shared with every node that uses it.
    pub fn shared(mut self, redis: RedisBackend) -> Self {
        self.redis = Some(redis);
        self
    }

    fn limits(&self) -> impl Iterator<Item = &Limit> {
        [
            &self.connections,
            &self.messages_ip,
            &self.messages_user,
            &self.recipients_user,
            &self.messages_domain,
        ]
        .into_iter()
        .flatten()
    }

    /// Keys tracked now, over every limit.
    pub fn tracked_keys(&self) -> usize {
        self.limits().map(|l| l.limiter.len()).sum()
    }

    /// The limits of `facts.stage` and the key each spends from; empty for an exempt
    /// client.
    fn checks(&self, facts: &Facts) -> Vec<(&Limit, String)> {
        if self.exempt.iter().any(|net| net.contains(&facts.client_ip)) {
            return Vec::new();
        }
        let ip = client_key(facts.client_ip);
        let mut checks: Vec<(&Limit, String)> = Vec::new();
        match facts.stage {
            CheckStage::Connect => checks.extend(self.connections.iter().map(|l| (l, ip.clone()))),
            CheckStage::Mail => {
                checks.extend(self.messages_ip.iter().map(|l| (l, ip.clone())));
                if let Some(user) = &facts.user {
                    checks.extend(self.messages_user.iter().map(|l| (l, user.clone())));
                }
                let domain = facts
                    .sender
                    .as_deref()
                    .and_then(|s| s.rsplit_once('@'))
                    .map(|(_, d)| d.to_ascii_lowercase());
                if let Some(domain) = domain {
                    checks.extend(self.messages_domain.iter().map(|l| (l, domain.clone())));
                }
            }
            CheckStage::Rcpt => {
                if let Some(user) = &facts.user {
                    checks.extend(self.recipients_user.iter().map(|l| (l, user.clone())));
                }
            }
            CheckStage::Helo | CheckStage::Data => {}
        }
        checks
    }

    /// Decides about `facts` from this process's own budget: every limit of the stage
    /// spends from its key.
    pub fn decide(&self, facts: &Facts) -> Verdict {
        for (limit, key) in self.checks(facts) {
            if let Err(wait_s) = limit.spend(&key) {
                return refused(limit.scope, limit.count, &key, wait_s, self.window, facts);
            }
        }
        Verdict::accept()
    }

    /// Drops the keys whose budget is full again.
    pub fn clean_up(&self) {
        for limit in self.limits() {
            limit.limiter.retain_recent();
            limit.limiter.shrink_to_fit();
        }
        metrics::gauge!("smtp_rate_limit_keys").set(self.tracked_keys() as f64);
    }
}

/// The refusal past a limit, logged and counted.
fn refused(
    scope: &'static str,
    count: u32,
    key: &str,
    wait_s: u64,
    window: Duration,
    facts: &Facts,
) -> Verdict {
    metrics::counter!("smtp_rate_limit_hits_total", "scope" => scope).increment(1);
    tracing::warn!(scope, key = %key, client = %facts.client_ip, limit = count,
        window_s = window.as_secs(), retry_in_s = wait_s, "Rate limit exceeded");
    let reply = if facts.stage == CheckStage::Connect {
        Reply::rate_limited_connect(wait_s)
    } else {
        Reply::rate_limited(wait_s)
    };
    Verdict::Defer(reply)
}

/// The same decision from the fleet's budget in Redis.
async fn decide_shared(
    redis: RedisBackend,
    checks: Vec<(&'static str, u32, String)>,
    window: Duration,
    fail_open: bool,
    facts: Arc<Facts>,
) -> Verdict {
    for (scope, count, key) in checks {
        let interval_ms = (window.as_millis() as u64 / u64::from(count)).max(1);
        match redis
            .gcra(
                &redis.key("rate", &format!("{scope}:{key}")),
                interval_ms,
                count,
            )
            .await
        {
            Ok(0) => {}
            Ok(wait_ms) => {
                return refused(
                    scope,
                    count,
                    &key,
                    wait_ms.div_ceil(1000).max(1),
                    window,
                    &facts,
                );
            }
            Err(_) if fail_open => {
                metrics::counter!("policy_failures_total", "policy" => "rate_limit", "outcome" => "fail_open").increment(1);
                return Verdict::accept();
            }
            Err(_) => {
                metrics::counter!("policy_failures_total", "policy" => "rate_limit", "outcome" => "deferred").increment(1);
                return Verdict::Defer(if facts.stage == CheckStage::Connect {
                    Reply::policy_unavailable_connect("rate_limit")
                } else {
                    Reply::policy_unavailable("rate_limit")
                });
            }
        }
    }
    Verdict::accept()
}

/// The key of a client address: IPv4 as it is, IPv6 by its /64 (one host's share).
fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl Policy for RateLimiter {
    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.cleanup_interval)
    }

    fn keep_house(&mut self) {
        self.clean_up();
    }

    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let Some(redis) = self.redis.clone() else {
            let verdict = self.decide(&facts);
            return Box::pin(async move { verdict });
        };
        let checks = self
            .checks(&facts)
            .into_iter()
            .map(|(limit, key)| (limit.scope, limit.count, key))
            .collect();
        Box::pin(decide_shared(
            redis,
            checks,
            self.window,
            self.fail_open,
            facts,
        ))
    }
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_rate_limit_hits_total",
        "Commands refused (450 4.7.1, or 421 at connect) because a rate limit was reached, by scope."
    );
    metrics::describe_gauge!(
        "smtp_rate_limit_keys",
        "Rate-limit keys (client addresses, users, sender domains) tracked after the last clean-up."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RateLimits {
        RateLimits {
            connections_per_ip: 0,
            messages_per_ip: 3,
            messages_per_user: 0,
            recipients_per_user: 2,
            messages_per_sender_domain: 0,
            window: Duration::from_secs(3600),
            exempt: vec!["198.18.0.0/15".parse().unwrap()],
            cleanup_interval: Duration::from_secs(60),
            fail_open: false,
        }
    }

    fn facts(stage: CheckStage, ip: &str, user: Option<&str>) -> Facts {
        let mut facts = Facts::connect(ip.parse().unwrap(), false);
        facts.stage = stage;
        facts.user = user.map(str::to_string);
        facts.sender = Some("a@b.test".into());
        facts
    }

    #[test]
    fn exact_counts_at_the_boundary() {
        let limiter = RateLimiter::new(&limits());
        for _ in 0..3 {
            assert_eq!(
                limiter.decide(&facts(CheckStage::Mail, "192.0.2.1", None)),
                Verdict::accept()
            );
        }
        let Verdict::Defer(reply) = limiter.decide(&facts(CheckStage::Mail, "192.0.2.1", None))
        else {
            panic!("the fourth message passed");
        };
        assert_eq!(reply.code, 450);
        assert!(
            reply.text.starts_with("Rate limit exceeded, try again in "),
            "{}",
            reply.text
        );
        // 3 per hour: one comes back every 20 minutes.
        assert!(reply.text.contains("in 1200 seconds"), "{}", reply.text);
        // Another client has its own budget; an exempt one has none.
        assert_eq!(
            limiter.decide(&facts(CheckStage::Mail, "192.0.2.2", None)),
            Verdict::accept()
        );
        for _ in 0..10 {
            assert_eq!(
                limiter.decide(&facts(CheckStage::Mail, "198.18.2.3", None)),
                Verdict::accept()
            );
        }
        // Per user, at RCPT.
        for _ in 0..2 {
            assert_eq!(
                limiter.decide(&facts(CheckStage::Rcpt, "192.0.2.9", Some("app"))),
                Verdict::accept()
            );
        }
        assert!(matches!(
            limiter.decide(&facts(CheckStage::Rcpt, "192.0.2.8", Some("app"))),
            Verdict::Defer(_)
        ));
        assert_eq!(
            limiter.decide(&facts(CheckStage::Rcpt, "192.0.2.9", Some("other"))),
            Verdict::accept()
        );
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        assert_eq!(
            client_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        let limiter = RateLimiter::new(&limits());
        for host in ["2001:db8::1", "2001:db8::2", "2001:db8::3"] {
            assert_eq!(
                limiter.decide(&facts(CheckStage::Mail, host, None)),
                Verdict::accept()
            );
        }
        assert!(matches!(
            limiter.decide(&facts(CheckStage::Mail, "2001:db8::4", None)),
            Verdict::Defer(_)
        ));
    }

    #[test]
    fn idle_keys_are_dropped() {
        let mut short = limits();
        short.window = Duration::from_millis(30);
        let limiter = RateLimiter::new(&short);
        for i in 0..1000 {
            limiter.decide(&facts(
                CheckStage::Mail,
                &format!("198.51.{}.{}", i / 250, i % 250),
                None,
            ));
        }
        assert_eq!(limiter.tracked_keys(), 1000);
        std::thread::sleep(Duration::from_millis(60));
        limiter.clean_up();
        assert_eq!(limiter.tracked_keys(), 0);
    }
}
