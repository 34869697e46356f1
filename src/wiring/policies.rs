//! The policy actors the Sessions ask (rate limits, greylisting, DNS blocklists): those
//! the configuration turns on, started on an arbiter of their own so that their work
//! never waits behind sessions, gathered into the [`PolicySet`] every Session gets.

use std::time::Duration;

use actix::prelude::*;
use std::sync::Arc;

use hermod_actors::outbound::mx::MxResolver;
use hermod_actors::policy::actor::PolicyActor;
use hermod_actors::policy::dkim_sign::DkimSigner;
use hermod_actors::policy::dnsbl::Dnsbl;
use hermod_actors::policy::greylist::Greylist;
use hermod_actors::policy::mail_auth::dkim_verify::DkimVerifier;
use hermod_actors::policy::mail_auth::dmarc::DmarcVerifier;
use hermod_actors::policy::mail_auth::pool::VerifyPool;
use hermod_actors::policy::mail_auth::spf::SpfVerifier;
use hermod_actors::policy::mail_auth::{self, AuthRules, TempErrorAction};
use hermod_actors::policy::rate_limiter::RateLimiter;
use hermod_actors::policy::set::{PolicyMember, PolicySet};
use hermod_actors::protocol::check::{CheckStage, CheckStages};
use hermod_actors::store::greylist::SledGreylist;

use crate::config::Config;
use hermod_actors::policy::backend::redis::RedisBackend;

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
    let mut pool = None;
    let redis = config.redis.backend()?;
    if redis.is_some() {
        tracing::info!(url = %redact(&config.redis.url), rate_limit = config.redis.rate_limit,
            greylist = config.redis.greylist, "policy state shared through Redis");
    }
    if config.rate_limit.enabled() {
        members.push(rate_limiter(config, &arbiter, redis.clone()));
    }
    if config.greylist.enabled {
        members.push(greylist(config, &arbiter, redis.clone(), db)?);
    }
    if config.dnsbl.enabled {
        members.push(dnsbl(config, &arbiter)?);
    }
    if config.dkim.enabled() {
        let pool = crypto_pool(config, &mut pool)?;
        members.push(dkim_signer(config, &arbiter, pool)?);
    }
    if config.mail_auth.verify {
        let pool = crypto_pool(config, &mut pool)?;
        members.extend(verifiers(config, &arbiter, pool)?);
    }
    if members.is_empty() {
        arbiter.stop();
        return Ok((PolicySet::default(), None));
    }
    Ok((
        PolicySet::new(members).with_dns_budget(config.smtp.dns_budget),
        Some(arbiter),
    ))
}

/// The rate limiter, its counters shared through Redis when `redis.rate_limit` is on.
fn rate_limiter(
    config: &Config,
    arbiter: &ArbiterHandle,
    redis: Option<RedisBackend>,
) -> PolicyMember {
    let limits = config.rate_limit.clone();
    let stages = limits.stages();
    let shared = redis.filter(|_| config.redis.rate_limit);
    let limiter = PolicyActor::start_on(arbiter, move || {
        let limiter = RateLimiter::new(&limits);
        match shared {
            Some(redis) => limiter.shared(redis),
            None => limiter,
        }
    });
    let member = PolicyMember {
        name: "rate_limit",
        uses_dns: false,
        stages,
        ask: limiter,
        deadline: RATE_LIMIT_DEADLINE,
        fail_open: false,
    };
    tracing::info!(limits = ?config.rate_limit, "rate limits on");
    member
}

/// The greylist, its state in Redis when `redis.greylist` is on, else in the spool's sled.
fn greylist(
    config: &Config,
    arbiter: &ArbiterHandle,
    redis: Option<RedisBackend>,
    db: &sled::Db,
) -> anyhow::Result<PolicyMember> {
    let rules = config.greylist.rules();
    let ask = match redis.clone().filter(|_| config.redis.greylist) {
        Some(redis) => {
            let backend = Arc::new(redis);
            PolicyActor::start_on(arbiter, move || Greylist::new(rules, backend))
        }
        None => {
            let backend = Arc::new(SledGreylist::new(db)?);
            PolicyActor::start_on(arbiter, move || Greylist::new(rules, backend))
        }
    };
    let member = PolicyMember {
        name: "greylist",
        uses_dns: false,
        stages: CheckStages::of(&[CheckStage::Rcpt]),
        ask,
        deadline: config.greylist.deadline,
        fail_open: config.greylist.fail_open,
    };
    tracing::info!(delay_s = config.greylist.delay.as_secs(), "greylisting on");
    Ok(member)
}

/// The DNSBL checks, on their own resolver when `dnsbl.dns_servers` is set.
fn dnsbl(config: &Config, arbiter: &ArbiterHandle) -> anyhow::Result<PolicyMember> {
    let servers = if config.dnsbl.dns_servers.is_empty() {
        &config.delivery.dns_servers
    } else {
        &config.dnsbl.dns_servers
    };
    let resolver = Arc::new(MxResolver::new(servers, config.dnsbl.timeout)?);
    let rules = config.dnsbl.rules();
    let stage = config.dnsbl.stage().unwrap_or(CheckStage::Rcpt);
    let dnsbl = PolicyActor::start_on(arbiter, move || Dnsbl::new(rules, resolver));
    let member = PolicyMember {
        name: "dnsbl",
        uses_dns: true,
        stages: CheckStages::of(&[stage]),
        ask: dnsbl,
        deadline: config.dnsbl.deadline,
        fail_open: config.dnsbl.fail_open,
    };
    let zones: Vec<&str> = config.dnsbl.zones.iter().map(|z| z.zone.as_str()).collect();
    tracing::info!(zones = ?zones, threshold = config.dnsbl.threshold, at = stage.name(), "DNSBL on");
    Ok(member)
}

/// DKIM signing with the configured keys, on the shared crypto pool.
fn dkim_signer(
    config: &Config,
    arbiter: &ArbiterHandle,
    pool: Arc<VerifyPool>,
) -> anyhow::Result<PolicyMember> {
    let keys = config.dkim.signing_keys()?;
    let domains: Vec<String> = keys.keys().cloned().collect();
    let rules = config.dkim.rules();
    let signer = PolicyActor::start_on(arbiter, move || DkimSigner::new(keys, pool, rules));
    let member = PolicyMember {
        name: "dkim_sign",
        uses_dns: false,
        stages: CheckStages::of(&[CheckStage::Data]),
        ask: signer,
        deadline: DKIM_DEADLINE,
        fail_open: false,
    };
    tracing::info!(domains = ?domains, "DKIM signing on");
    Ok(member)
}

/// The SPF verifier (at MAIL FROM) and the DMARC verifier (at the end of DATA), which
/// asks the DKIM verifier; the DKIM checks run on a [`VerifyPool`] of their own.
fn verifiers(
    config: &Config,
    arbiter: &ArbiterHandle,
    pool: Arc<VerifyPool>,
) -> anyhow::Result<Vec<PolicyMember>> {
    let settings = &config.mail_auth;
    let rules: Arc<AuthRules> = Arc::new(settings.rules(&config.smtp.hostname));
    let servers = &config.delivery.dns_servers;
    // SPF and DMARC share a resolver and its cache (both run on the policy arbiter); the
    // DKIM verifier has its own, used on the pool's runtime.
    let dns = MxResolver::new(servers, settings.dns_timeout)?;
    let dkim_dns = MxResolver::new(servers, settings.dns_timeout)?;
    let dkim = DkimVerifier::start_in_arbiter(arbiter, move |_| {
        DkimVerifier::new(mail_auth::authenticator(&dkim_dns), pool)
    });
    let spf_rules = rules.clone();
    let spf_dns = dns.clone();
    let spf = PolicyActor::start_on(arbiter, move || {
        SpfVerifier::new(mail_auth::authenticator(&spf_dns), spf_rules)
    });
    let dmarc_rules = rules.clone();
    let dmarc = PolicyActor::start_on(arbiter, move || {
        DmarcVerifier::new(mail_auth::authenticator(&dns), dkim, dmarc_rules)
    });
    tracing::info!(authserv_id = %rules.authserv_id, spf_fail = ?rules.spf_fail,
        dmarc_reject = ?rules.dmarc_reject, dmarc_quarantine = ?rules.dmarc_quarantine,
        temp_error = ?rules.temp_error, threads = settings.threads(), "SPF/DKIM/DMARC verification on");
    // No answer in time is a DNS that does not answer: `temp_error` decides, as for a
    // time-out inside the check.
    let fail_open = matches!(rules.temp_error, TempErrorAction::Accept);
    Ok(vec![
        PolicyMember {
            name: "spf",
            uses_dns: true,
            stages: CheckStages::of(&[CheckStage::Mail]),
            ask: spf,
            deadline: settings.deadline,
            fail_open,
        },
        PolicyMember {
            name: "dmarc",
            uses_dns: true,
            stages: CheckStages::of(&[CheckStage::Data]),
            ask: dmarc,
            deadline: settings.deadline,
            fail_open,
        },
    ])
}

/// The threads that sign and verify (one pool for both), made when the first needs it.
fn crypto_pool(
    config: &Config,
    pool: &mut Option<Arc<VerifyPool>>,
) -> anyhow::Result<Arc<VerifyPool>> {
    if let Some(pool) = pool {
        return Ok(pool.clone());
    }
    let made = Arc::new(VerifyPool::new(config.mail_auth.threads())?);
    *pool = Some(made.clone());
    Ok(made)
}
