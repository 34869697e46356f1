//! The Delivery actor's side of provider-aware shaping: which site its next hop rolls up
//! into (learnt from the hop's MX hosts, again every [`SITE_TTL`]), the limits the
//! shaping file sets for its own domain, the site's budget asked before each connection
//! and message, and the replies handed to the automation rules.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use governor::{Quota, RateLimiter};

use super::Delivery;
use crate::outbound::connection_budget::Permit;
use crate::outbound::delivery_job::{all, report};
use crate::outbound::job::Outcome;
use crate::outbound::shaping::{Action, Limits, SiteBudget, Wait};
use crate::outbound::tls::TlsMode;
use crate::protocol::status::{EnhancedCode, Status};

/// After a failed lookup (the hop is its own site meanwhile), how soon it is tried again.
const SITE_RETRY: Duration = Duration::from_secs(5);

/// How long a learnt site holds before the hop's MX hosts are looked at again.
pub(super) const SITE_TTL: Duration = Duration::from_secs(300);

/// RFC 3463 4.4.5: mail system congestion, hermod's own: the site is suspended.
const SITE_SUSPENDED: EnhancedCode = EnhancedCode::new(4, 4, 5);

/// What the actor knows of its site.
#[derive(Default)]
pub(super) struct SiteState {
    /// The site's budget, once learnt.
    pub(super) budget: Option<Arc<SiteBudget>>,
    /// Until when it holds: [`SITE_TTL`] after a lookup, [`SITE_RETRY`] after a failed
    /// one.
    pub(super) fresh_until: Option<Instant>,
    /// A lookup is under way.
    pub(super) looking: bool,
    /// The shaping file's limits of this hop's own domain.
    pub(super) own: Limits,
    /// The site's MX host names, to name the paths from egress sources.
    pub(super) hosts: Vec<String>,
    /// The site's budget for each egress source (by name) connections left from.
    pub(super) by_source: std::collections::HashMap<String, Arc<SiteBudget>>,
    /// Registered with the site's budget as a holder of idle connections (shared with
    /// the registration, which clears it when the budget drops it).
    pub(super) holds_idle: Arc<std::sync::atomic::AtomicBool>,
}

/// Why the pump stops at the site.
pub(super) enum SiteStop {
    /// Not known yet: the pump is called again when it is.
    Learning,
    /// Suspended until then (unix seconds): pending jobs are handed back at once.
    Suspended(Status, u64),
    /// Ask again after this long.
    Later(Duration),
}

impl Delivery {
    /// The shaping, when the site is what the pump must wait for first.
    pub(super) fn site_ready(&mut self, ctx: &mut Context<Self>) -> Result<(), SiteStop> {
        let Some(shaping) = self.settings.shaping.clone() else {
            return Ok(());
        };
        let stale = self
            .site
            .fresh_until
            .is_none_or(|until| Instant::now() >= until);
        if stale && !self.site.looking {
            self.site.looking = true;
            let (hop, resolver) = (self.hop.clone(), self.resolver.clone());
            let lookup = async move {
                // Its jobs fail with the real error; meanwhile it is its own site, and
                // the lookup is tried again soon.
                let (hosts, holds) = match resolver.exchanges(&hop).await {
                    Ok(hosts) => (hosts, SITE_TTL),
                    Err(_) => (vec![hop.name().to_string()], SITE_RETRY),
                };
                let domain = hop.name();
                (
                    shaping.path("", domain, hosts.iter().map(String::as_str)),
                    shaping.rules().domain_limits(domain).cloned(),
                    holds,
                    hosts,
                )
            };
            ctx.spawn(
                lookup
                    .into_actor(self)
                    .map(|(budget, own, holds, hosts), act, ctx| {
                        act.site.looking = false;
                        if act.site.hosts != hosts {
                            act.site.by_source.clear();
                            act.site.hosts = hosts;
                        }
                        act.site.fresh_until = Some(Instant::now() + holds);
                        act.set_own_limits(own.unwrap_or_default());
                        let moved = act
                            .site
                            .budget
                            .as_ref()
                            .is_some_and(|old| !Arc::ptr_eq(old, &budget));
                        if moved {
                            act.site.holds_idle = Arc::default();
                            act.site.by_source.clear();
                        }
                        act.site.budget = Some(budget);
                        act.pump(ctx);
                    }),
            );
        }
        if self.site.budget.is_none() {
            return Err(SiteStop::Learning);
        }
        Ok(())
    }

    /// The shaping file's limits of this hop's domain, in force from now.
    fn set_own_limits(&mut self, own: Limits) {
        if own == self.site.own {
            return;
        }
        let rate = own.message_rate.map_or_else(
            || NonZeroU32::new(self.settings.rate_per_second).map(Quota::per_second),
            |rate| Quota::with_period(rate.interval()).map(|q| q.allow_burst(NonZeroU32::MIN)),
        );
        self.limiter = rate.map(RateLimiter::direct);
        self.site.own = own;
    }

    /// Connections this hop may have open at once.
    pub(super) fn max_connections(&self) -> usize {
        self.site
            .own
            .max_connections
            .unwrap_or(self.settings.max_connections)
    }

    /// Messages one connection over the path of `budget` may carry: the least of the
    /// settings', the domain's and the path's.
    pub(super) fn max_messages_per_connection(&self, budget: Option<&Arc<SiteBudget>>) -> u32 {
        let mut max = self
            .site
            .own
            .max_messages_per_connection
            .unwrap_or(self.settings.max_messages_per_connection);
        if let (Some(shaping), Some(budget)) = (&self.settings.shaping, budget)
            && let Some(site) = shaping.limits(budget).max_messages_per_connection
        {
            max = max.min(site);
        }
        max
    }

    /// Whether the site has more connections open than its limit (an action lowered
    /// it): a finished connection then closes instead of going back to the pool.
    pub(super) fn site_over_limit(budget: Option<&Arc<SiteBudget>>) -> bool {
        budget.is_some_and(|site| site.open() > site.connections().limit())
    }

    /// The shaping file's `tls` for this hop: its domain's, else its site's.
    pub(super) fn tls_mode(&self) -> Option<TlsMode> {
        self.site
            .own
            .tls
            .or_else(|| match (&self.settings.shaping, &self.site.budget) {
                (Some(shaping), Some(budget)) => shaping.limits(budget).tls,
                _ => None,
            })
    }

    /// Whether the site takes one more message now, over a connection from the pool
    /// (`pooled`) or a new one, whose lease is then returned.
    pub(super) fn site_allows(
        &self,
        budget: Option<&Arc<SiteBudget>>,
        pooled: bool,
    ) -> Result<Option<Permit>, SiteStop> {
        let (Some(shaping), Some(budget)) = (&self.settings.shaping, budget) else {
            return Ok(None);
        };
        shaping
            .try_start(budget, pooled)
            .map_err(|w| self.site_wait(w))
    }

    fn site_wait(&self, wait: Wait) -> SiteStop {
        match wait {
            Wait::Later(after) => {
                metrics::counter!("shaping_waits_total", "reason" => "limit").increment(1);
                SiteStop::Later(after)
            }
            Wait::Suspended { until, rule, .. } => {
                metrics::counter!("shaping_waits_total", "reason" => "suspended").increment(1);
                let site = self.site.budget.as_ref().map_or("", |b| &b.key().site);
                let left = until.saturating_sub(crate::outbound::mta_sts::unix_now());
                SiteStop::Suspended(
                    Status::local(
                        SITE_SUSPENDED,
                        format!(
                            "shaping: delivery to site {site} is suspended for {left}s more by rule {rule} (hermod shaping status shows the reply that triggered it)"
                        ),
                    ),
                    until,
                )
            }
        }
    }

    /// Hands the next pending job back untried while every path it may take is
    /// suspended (the soonest until `until`): not an attempt; the Queue keeps the mail in
    /// its schedule until the suspension ends or is cleared.
    pub(super) fn hand_back_front(&mut self, status: Status, until: u64, ctx: &mut Context<Self>) {
        if let Some(job) = self.pending.pop_front() {
            metrics::gauge!("delivery_pending_jobs").decrement(1.0);
            let results = all(&job.recipients, Outcome::Deferred(status));
            let mut report = report(&job, &self.hop.to_string(), results);
            report.held_until = Some(until);
            self.report(report, ctx);
        }
    }

    /// Hands the next hop's refusals in a finished job (each distinct one once, not
    /// hermod's own errors) to the automation rules; returns the actions they took.
    pub(super) fn observe(
        &self,
        budget: Option<&Arc<SiteBudget>>,
        refusals: &[Status],
    ) -> Vec<Action> {
        let (Some(shaping), Some(budget)) = (&self.settings.shaping, budget) else {
            return Vec::new();
        };
        refusals
            .iter()
            .flat_map(|status| shaping.observe(budget, status))
            .collect()
    }
}
