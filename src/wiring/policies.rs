//! The policy actors the Sessions ask (rate limits, greylisting, DNS blocklists): those
//! the configuration turns on, started on an arbiter of their own so that their work
//! never waits behind sessions, gathered into the [`PolicySet`] every Session gets.

use std::time::Duration;

use actix::prelude::*;
use std::sync::Arc;

use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::policy::dkim_sign::DkimSigner;
use hermod_actors::policy::dnsbl::Dnsbl;
use hermod_actors::policy::greylist::Greylist;
use hermod_actors::policy::rate_limiter::RateLimiter;
use hermod_actors::policy::set::{PolicyMember, PolicySet};
use hermod_actors::protocol::check::{CheckStage, CheckStages};
use hermod_actors::store::greylist::SledGreylist;

use crate::config::Config;

/// How long the in-process RateLimiter gets to answer (it answers at once unless its
/// mailbox is flooded).
const RATE_LIMIT_DEADLINE: Duration = Duration::from_secs(2);

/// How long signing one message may take (RSA over a large message, on a busy machine).
const DKIM_DEADLINE: Duration = Duration::from_secs(10);

/// A Redis URL without its password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The policies, and the arbiter they run on (to stop at shutdown) if any runs.
pub(super) fn start(
    config: &Config,
    db: &sled::Db,
) -> anyhow::Result<(PolicySet, Option<ArbiterHandle>)> {
    let mut members = Vec::new();
    let arbiter = Arbiter::new().handle();
    let redis = config.redis.backend()?;
    if redis.is_some() {
        tracing::info!(url = %redact(&config.redis.url), rate_limit = config.redis.rate_limit,
            greylist = config.redis.greylist, "policy state shared through Redis");
    }
    if config.rate_limit.enabled() {
        let limits = config.rate_limit.limits();
        let stages = limits.stages();
        let shared = redis.clone().filter(|_| config.redis.rate_limit);
        let limiter = RateLimiter::start_in_arbiter(&arbiter, move |_| {
            let limiter = RateLimiter::new(&limits);
            match shared {
                Some(redis) => limiter.shared(redis),
                None => limiter,
            }
        });
        members.push(PolicyMember {
            name: "rate_limit",
            stages,
            ask: limiter.recipient(),
            deadline: RATE_LIMIT_DEADLINE,
            fail_open: false,
        });
        tracing::info!(limits = ?config.rate_limit.limits(), "rate limits on");
    }
    if config.greylist.enabled {
        let rules = config.greylist.rules();
        let ask = match redis.clone().filter(|_| config.redis.greylist) {
            Some(redis) => {
                let backend = Arc::new(redis);
                Greylist::start_in_arbiter(&arbiter, move |_| Greylist::new(rules, backend))
                    .recipient()
            }
            None => {
                let backend = Arc::new(SledGreylist::new(db).map_err(anyhow::Error::msg)?);
                Greylist::start_in_arbiter(&arbiter, move |_| Greylist::new(rules, backend))
                    .recipient()
            }
        };
        members.push(PolicyMember {
            name: "greylist",
            stages: CheckStages::of(&[CheckStage::Rcpt]),
            ask,
            deadline: config.greylist.deadline,
            fail_open: config.greylist.fail_open,
        });
        tracing::info!(delay_s = config.greylist.delay.as_secs(), "greylisting on");
    }
    if config.dnsbl.enabled {
        let servers = if config.dnsbl.dns_servers.is_empty() {
            &config.delivery.dns_servers
        } else {
            &config.dnsbl.dns_servers
        };
        let resolver = Arc::new(MxResolver::new(servers, config.dnsbl.timeout)?);
        let rules = config.dnsbl.rules();
        let stage = config.dnsbl.stage().unwrap_or(CheckStage::Rcpt);
        let dnsbl = Dnsbl::start_in_arbiter(&arbiter, move |_| Dnsbl::new(rules, resolver));
        members.push(PolicyMember {
            name: "dnsbl",
            stages: CheckStages::of(&[stage]),
            ask: dnsbl.recipient(),
            deadline: config.dnsbl.deadline,
            fail_open: config.dnsbl.fail_open,
        });
        let zones: Vec<&str> = config.dnsbl.zones.iter().map(|z| z.zone.as_str()).collect();
        tracing::info!(zones = ?zones, threshold = config.dnsbl.threshold, at = stage.name(), "DNSBL on");
    }
    if config.dkim.enabled() {
        let keys = config.dkim.signing_keys()?;
        let domains: Vec<String> = keys.keys().cloned().collect();
        let signer = DkimSigner::start_in_arbiter(&arbiter, move |_| DkimSigner::new(keys));
        members.push(PolicyMember {
            name: "dkim_sign",
            stages: CheckStages::of(&[CheckStage::Data]),
            ask: signer.recipient(),
            deadline: DKIM_DEADLINE,
            fail_open: false,
        });
        tracing::info!(domains = ?domains, "DKIM signing on");
    }
    if members.is_empty() {
        arbiter.stop();
        return Ok((PolicySet::default(), None));
    }
    Ok((PolicySet::new(members), Some(arbiter)))
}
