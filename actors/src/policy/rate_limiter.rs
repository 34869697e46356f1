//! The RateLimiter actor: keyed GCRA limits (governor) on connections and messages per
//! client address (IPv6 by /64), messages and recipients per authenticated user, and
//! messages per sender domain, each "so many per window". Clients in the exempt networks
//! are never limited. Past a limit: `450 4.7.1 Rate limit exceeded, try again in N
//! seconds` (at connect `421 4.7.0 …`, and the connection closes), one log line with the
//! key and the limit, and `smtp_rate_limit_hits_total{scope}`.
//!
//! Keys whose budget is full again are dropped every `cleanup_interval`, so memory stays
//! bounded under a flood of distinct addresses.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use super::set::Ask;
use crate::protocol::check::{CheckStage, CheckStages, Facts, Verdict};
use crate::protocol::reply::Reply;

/// The limits, each "count per `window`" (0: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// New connections per client address.
    pub connections_per_ip: u32,
    /// Messages (MAIL commands) per client address.
    pub messages_per_ip: u32,
    /// Messages per authenticated user.
    pub messages_per_user: u32,
    /// Recipients per authenticated user.
    pub recipients_per_user: u32,
    /// Messages per envelope sender domain.
    pub messages_per_sender_domain: u32,
    /// The window every count is per.
    pub window: Duration,
    /// Clients never limited.
    pub exempt: Vec<IpNet>,
    /// How often idle keys are dropped.
    pub cleanup_interval: Duration,
}

impl RateLimits {
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

    /// Decides about `facts`: every limit of the stage spends from its key.
    pub fn decide(&self, facts: &Facts) -> Verdict {
        if self.exempt.iter().any(|net| net.contains(&facts.client_ip)) {
            return Verdict::accept();
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
        for (limit, key) in checks {
            if let Err(wait_s) = limit.spend(&key) {
                metrics::counter!("smtp_rate_limit_hits_total", "scope" => limit.scope)
                    .increment(1);
                tracing::warn!(
                    scope = limit.scope,
                    key = %key,
                    client = %facts.client_ip,
                    limit = limit.count,
                    window_s = self.window.as_secs(),
                    retry_in_s = wait_s,
                    "Rate limit exceeded"
                );
                let reply = if facts.stage == CheckStage::Connect {
                    Reply::rate_limited_connect(wait_s)
                } else {
                    Reply::rate_limited(wait_s)
                };
                return Verdict::Defer(reply);
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

impl Actor for RateLimiter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(100_000);
        ctx.run_interval(self.cleanup_interval, |this, _| this.clean_up());
    }
}

impl Handler<Ask> for RateLimiter {
    type Result = MessageResult<Ask>;

    fn handle(&mut self, Ask(facts): Ask, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.decide(&facts))
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
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
            cleanup_interval: Duration::from_secs(60),
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
                limiter.decide(&facts(CheckStage::Mail, "10.1.2.3", None)),
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
