//! The policy actors the Sessions ask (rate limits, greylisting, DNS blocklists): those
//! the configuration turns on, started on an arbiter of their own so that their work
//! never waits behind sessions, gathered into the [`PolicySet`] every Session gets.

use std::time::Duration;

use actix::prelude::*;
use hermod_actors::policy::rate_limiter::RateLimiter;
use hermod_actors::policy::set::{PolicyMember, PolicySet};

use crate::config::Config;

/// How long the in-process RateLimiter gets to answer (it answers at once unless its
/// mailbox is flooded).
const RATE_LIMIT_DEADLINE: Duration = Duration::from_secs(2);

/// The policies, and the arbiter they run on (to stop at shutdown) if any runs.
pub(super) fn start(config: &Config) -> (PolicySet, Option<ArbiterHandle>) {
    let mut members = Vec::new();
    let arbiter = Arbiter::new().handle();
    if config.rate_limit.enabled() {
        let limits = config.rate_limit.limits();
        let stages = limits.stages();
        let limiter = RateLimiter::start_in_arbiter(&arbiter, move |_| RateLimiter::new(&limits));
        members.push(PolicyMember {
            name: "rate_limit",
            stages,
            ask: limiter.recipient(),
            deadline: RATE_LIMIT_DEADLINE,
            fail_open: false,
        });
        tracing::info!(limits = ?config.rate_limit.limits(), "rate limits on");
    }
    if members.is_empty() {
        arbiter.stop();
        return (PolicySet::default(), None);
    }
    (PolicySet::new(members), Some(arbiter))
}
