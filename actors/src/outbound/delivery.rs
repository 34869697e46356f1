//! The Delivery actor: one per next hop (an MX domain, a smarthost, an LMTP host),
//! created by the Queue on demand. It owns the hop's connection pool (bounded, reused
//! with RSET between messages), its message-rate limit, and its back-off: after repeated
//! connection failures the hop is left alone for a while instead of being hammered.
//!
//! Receives [`Deliver`] from the Queue; sends one [`DeliveryReport`] per job back. After
//! a long idle spell it offers to retire ([`DeliveryIdle`]), and stops once the Queue,
//! having forgotten it, says [`Retire`]: a relay that has mailed a million domains must
//! not keep a million idle actors.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::outbound::connection_budget::{Permit, RoomMaker};
use crate::outbound::delivery_job::{
    CONNECTION_DROPPED, JobOutcome, JobPath, NO_ANSWER, all, run_job,
};
pub use crate::outbound::job::{Deliver, DeliveryReport, DeliverySettings, JobRecipient, Outcome};
use crate::outbound::mx::MxResolver;
use crate::outbound::routing::NextHop;
use crate::outbound::shaping::SiteBudget;
use crate::outbound::smtp_client::SmtpConnection;
use crate::protocol::status::Status;

mod egress;
mod site;

/// How a Delivery actor talks back to the Queue that started it.
#[derive(Clone)]
pub struct QueueLink {
    /// Where job reports go.
    pub reports: Recipient<DeliveryReport>,
    /// Where the offer to retire goes.
    pub idle: Recipient<DeliveryIdle>,
    /// Which actor for the hop this is, so a late offer from an older one is told apart.
    pub serial: u64,
}

/// A Delivery actor has had nothing to do for `retire_idle_after` and may stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliveryIdle {
    /// Its next hop.
    pub hop: NextHop,
    /// Its serial from [`QueueLink`].
    pub serial: u64,
    /// Where to send [`Retire`] once the Queue sends it nothing more.
    pub retire: Recipient<Retire>,
}

/// From the Queue, after it dropped the actor from its registry: stop if still idle.
/// Sent after every job the Queue gave it, so it arrives behind them in the mailbox.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire;

/// How soon an actor that found the connection budget full tries again.
const BUDGET_RETRY: Duration = Duration::from_millis(50);

/// The per-next-hop delivery actor.
pub struct Delivery {
    hop: NextHop,
    settings: Arc<DeliverySettings>,
    resolver: Arc<MxResolver>,
    link: QueueLink,
    pending: VecDeque<Deliver>,
    /// Open connections waiting for the next message, with the time they became idle.
    idle: Vec<(SmtpConnection, Instant)>,
    /// Jobs running now (each holds one connection or is opening one).
    active: usize,
    consecutive_failures: u32,
    down_until: Option<Instant>,
    limiter: Option<DefaultDirectRateLimiter>,
    wake_scheduled: bool,
    /// Reports handed to the Queue but not yet received by it.
    reports_in_flight: usize,
    /// When the actor last had a job or finished one.
    last_work: Instant,
    /// An offer to retire is out and unanswered.
    offered_to_retire: bool,
    /// Registered with the connection budget as a holder of idle connections; cleared
    /// by the budget's wake-up (shared, so a registration the budget dropped is redone).
    holds_idle: Arc<AtomicBool>,
    /// Idle connections now, as the budget's [`RoomMaker`] sees them.
    idle_count: Arc<AtomicUsize>,
    /// The site its hop rolls up into, when shaping is on.
    site: site::SiteState,
}

impl Delivery {
    /// A Delivery actor for `hop`, reporting to the Queue through `link`.
    pub fn new(
        hop: NextHop,
        settings: Arc<DeliverySettings>,
        resolver: Arc<MxResolver>,
        link: QueueLink,
    ) -> Self {
        let limiter = NonZeroU32::new(settings.rate_per_second)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Delivery {
            hop,
            settings,
            resolver,
            link,
            pending: VecDeque::new(),
            idle: Vec::new(),
            active: 0,
            consecutive_failures: 0,
            down_until: None,
            limiter,
            wake_scheduled: false,
            reports_in_flight: 0,
            last_work: Instant::now(),
            offered_to_retire: false,
            holds_idle: Arc::default(),
            idle_count: Arc::default(),
            site: site::SiteState::default(),
        }
    }

    fn wake_after(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if !self.wake_scheduled {
            self.wake_scheduled = true;
            ctx.run_later(delay, |act, ctx| {
                act.wake_scheduled = false;
                act.pump(ctx);
            });
        }
    }

    /// Starts as many pending jobs as the connection limit and the rate limit allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while !self.pending.is_empty() {
            if let Some(until) = self.down_until {
                let probe_first = self.pending.front().is_some_and(|job| job.probe);
                if Instant::now() < until && !probe_first {
                    self.defer_pending_while_down(until, ctx);
                    return;
                }
                self.down_until = None;
            }
            if self.site_ready(ctx).is_err() {
                // Learning its site: the pump runs again when it is known.
                return;
            }
            let pool = self.pending.front().and_then(|job| job.pool.clone());
            let reuse = self.matching_idle(pool.as_deref());
            if reuse.is_none() && self.active + self.idle.len() >= self.max_connections() {
                if self.idle.is_empty() || self.active >= self.max_connections() {
                    return;
                }
                // Room for a connection from the job's pool: an idle one from another
                // source goes, oldest first.
                let (other, _) = self.idle.remove(0);
                self.idle_count.store(self.idle.len(), Ordering::Relaxed);
                actix::spawn(other.quit());
            }
            if let Some(limiter) = &self.limiter
                && let Err(not_until) = limiter.check()
            {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.wake_after(wait, ctx);
                return;
            }
            // A pooled connection, else a new one if the budget has room for it; if not,
            // ask idle connections elsewhere to make room and try again shortly.
            let pooled = reuse.is_some();
            let permit = match pooled {
                true => None,
                false => match self.settings.budget.try_take() {
                    Some(permit) => Some(permit),
                    None => {
                        self.settings.budget.ask_for_room();
                        metrics::counter!("delivery_connection_budget_waits_total").increment(1);
                        self.wake_after(BUDGET_RETRY, ctx);
                        return;
                    }
                },
            };
            // The site's budget last: its tokens are spent only on a job that starts.
            let chosen = match self.choose(pool.as_ref(), reuse) {
                Ok(chosen) => chosen,
                Err(site::SiteStop::Learning) => return,
                Err(site::SiteStop::Later(wait)) => {
                    self.wake_after(wait, ctx);
                    return;
                }
                Err(site::SiteStop::Suspended(status, until)) => {
                    // This job's paths are all suspended; the next job (another pool's,
                    // maybe) is looked at in turn.
                    self.hand_back_front(status, until, ctx);
                    continue;
                }
            };
            let Some(job) = self.pending.pop_front() else {
                return;
            };
            metrics::gauge!("delivery_pending_jobs").decrement(1.0);
            let connection = reuse.map(|i| self.idle.remove(i).0);
            let permit = permit.map(|permit| permit.with_site(chosen.lease));
            let path = JobPath {
                tls: self.tls_mode(),
                source: chosen.source,
            };
            self.start_job(job, connection, permit, (path, chosen.budget), ctx);
        }
    }

    /// The hop is down until `until`: every pending job is answered at once as deferred
    /// (and unreachable, so the Queue parks its mail) instead of waiting here.
    fn defer_pending_while_down(&mut self, until: Instant, ctx: &mut Context<Self>) {
        let reason = Status::local(
            NO_ANSWER,
            format!(
                "next hop {} is down after {} connection failures; not retrying before {}s",
                self.hop,
                self.consecutive_failures,
                until.saturating_duration_since(Instant::now()).as_secs()
            ),
        );
        let jobs = std::mem::take(&mut self.pending);
        metrics::gauge!("delivery_pending_jobs").decrement(jobs.len() as f64);
        for job in jobs {
            let results = all(&job.recipients, Outcome::Deferred(reason.clone()));
            let mut report =
                crate::outbound::delivery_job::report(&job, &self.hop.to_string(), results);
            report.unreachable = true;
            self.report(report, ctx);
        }
    }

    /// Runs `job` over `connection` (pooled) or a new one under `permit`, bounded by the
    /// job's time budget; its outcome comes back to this actor.
    fn start_job(
        &mut self,
        job: Deliver,
        connection: Option<SmtpConnection>,
        permit: Option<Permit>,
        (path, site_budget): (JobPath, Option<Arc<SiteBudget>>),
        ctx: &mut Context<Self>,
    ) {
        self.idle_count.store(self.idle.len(), Ordering::Relaxed);
        self.active += 1;
        let (id, recipients, relay) = (job.id, job.recipients.clone(), self.hop.to_string());
        let budget = self.settings.job_budget(recipients.len());
        let work = run_job(
            connection,
            permit,
            job,
            self.hop.clone(),
            self.settings.clone(),
            self.resolver.clone(),
            path,
        );
        // Each read and write has its own timeout; this bounds the whole job, so a next
        // hop that trickles bytes cannot hold a message (and its queue slot) forever.
        let started = Instant::now();
        let bounded = async move {
            let outcome = tokio::time::timeout(budget, work)
                .await
                .unwrap_or_else(|_| {
                    let reason = Status::local(
                        CONNECTION_DROPPED,
                        format!("delivery to {relay} took longer than {}s", budget.as_secs()),
                    );
                    JobOutcome {
                        report: DeliveryReport {
                            id,
                            relay,
                            tls: None,
                            results: all(&recipients, Outcome::Deferred(reason)),
                            unreachable: false,
                            serial: 0,
                            shaping: Vec::new(),
                            held_until: None,
                        },
                        connection: None,
                        connect_failed: false,
                        refusals: Vec::new(),
                    }
                });
            metrics::histogram!("delivery_attempt_seconds").record(started.elapsed().as_secs_f64());
            outcome
        };
        ctx.spawn(bounded.into_actor(self).map(move |outcome, act, ctx| {
            act.active -= 1;
            act.finish(outcome, site_budget.as_ref(), ctx);
            act.pump(ctx);
        }));
    }

    /// A job is over: the connection goes back to the pool (or closes), the automation
    /// rules read the next hop's refusals on its path (`budget`), the report goes out.
    fn finish(
        &mut self,
        outcome: JobOutcome,
        budget: Option<&Arc<SiteBudget>>,
        ctx: &mut Context<Self>,
    ) {
        self.last_work = Instant::now();
        if outcome.connect_failed {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= self.settings.dead_host_failures {
                tracing::warn!(next_hop = %self.hop, failures = self.consecutive_failures,
                    backoff_s = self.settings.dead_host_backoff.as_secs(), "next hop is down; backing off");
                metrics::counter!("delivery_host_backoff_total").increment(1);
                self.down_until = Some(Instant::now() + self.settings.dead_host_backoff);
            }
        } else {
            self.consecutive_failures = 0;
            self.down_until = None;
        }
        if let Some(connection) = outcome.connection {
            if connection.transactions < self.max_messages_per_connection(budget)
                && !connection.is_spent()
                && !Self::site_over_limit(budget)
            {
                self.idle.push((connection, Instant::now()));
                self.offer_idle(ctx);
            } else {
                actix::spawn(connection.quit());
            }
        }
        let mut report = outcome.report;
        report.shaping = self.observe(budget, &outcome.refusals);
        self.report(report, ctx);
    }

    fn report(&mut self, mut report: DeliveryReport, ctx: &mut Context<Self>) {
        report.serial = self.link.serial;
        let to = self.link.reports.clone();
        self.reports_in_flight += 1;
        crate::mailbox::QUEUE.sent();
        ctx.spawn(
            async move {
                if to.send(report).await.is_err() {
                    crate::mailbox::QUEUE.taken();
                    tracing::error!(
                        "queue is gone; delivery report dropped (message stays queued)"
                    );
                }
            }
            .into_actor(self)
            .map(|(), act, _| act.reports_in_flight -= 1),
        );
    }

    /// Nothing to do, nothing open, nothing owed to the Queue, and no back-off to
    /// remember: stopping loses nothing.
    fn retirable(&self) -> bool {
        self.pending.is_empty()
            && self.active == 0
            && self.idle.is_empty()
            && self.reports_in_flight == 0
            && !self.wake_scheduled
            && self.down_until.is_none_or(|until| Instant::now() >= until)
    }

    /// Offers the Queue to retire after a long enough idle spell.
    fn offer_to_retire(&mut self, ctx: &mut Context<Self>) {
        if self.offered_to_retire
            || !self.retirable()
            || self.last_work.elapsed() < self.settings.retire_idle_after
        {
            return;
        }
        self.offered_to_retire = true;
        self.link.idle.do_send(DeliveryIdle {
            hop: self.hop.clone(),
            serial: self.link.serial,
            retire: ctx.address().recipient(),
        });
    }

    /// Registers with the budget as a holder of idle connections (once), so that a
    /// request for room reaches this actor at once.
    fn offer_idle(&mut self, ctx: &mut Context<Self>) {
        if self.idle.is_empty() {
            return;
        }
        self.idle_count.store(self.idle.len(), Ordering::Relaxed);
        if !self.holds_idle.swap(true, Ordering::AcqRel) {
            let maker = self.room_maker(false, self.holds_idle.clone(), ctx);
            self.settings.budget.hold_idle(maker);
        }
        // Its site's budget too, once the site is half full: another domain of the site
        // may come to wait for room (the sweep answers within a second meanwhile).
        if let Some(site) = self.site.budget.clone()
            && site.open() * 2 >= site.connections().limit()
            && !self.site.holds_idle.swap(true, Ordering::AcqRel)
        {
            let maker = self.room_maker(true, self.site.holds_idle.clone(), ctx);
            site.connections().hold_idle(maker);
        }
    }

    /// How a budget (the site's, or the process's) wakes this actor to close an idle
    /// connection.
    fn room_maker(
        &self,
        site: bool,
        registered: Arc<AtomicBool>,
        ctx: &mut Context<Self>,
    ) -> RoomMaker {
        let (me, alive) = (ctx.address().recipient::<MakeRoom>(), ctx.address());
        let idle = self.idle_count.clone();
        RoomMaker {
            // One whose idle connections timed out meanwhile has nothing to give; the
            // budget drops its entry, so it registers again when it has some.
            wake: Box::new(move || {
                let woken = idle.load(Ordering::Relaxed) > 0
                    && !matches!(me.try_send(MakeRoom { site }), Err(SendError::Closed(_)));
                if !woken {
                    registered.store(false, Ordering::Release);
                }
                woken
            }),
            alive: Box::new(move || alive.connected()),
        }
    }

    /// Closes idle connections, oldest first, while the budget (or the site's) asks for
    /// room.
    fn make_room(&mut self) {
        while !self.idle.is_empty() && self.settings.budget.claim_close() {
            let (connection, _) = self.idle.remove(0);
            tracing::debug!(next_hop = %self.hop, "closing an idle connection to make room in the outbound connection budget");
            actix::spawn(connection.quit());
        }
        self.make_room_on_paths();
        self.idle_count.store(self.idle.len(), Ordering::Relaxed);
    }

    fn close_idle(&mut self) {
        let limit = self.settings.idle_timeout;
        let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(&mut self.idle)
            .into_iter()
            .partition(|(_, since)| since.elapsed() >= limit);
        self.idle = fresh;
        self.idle_count.store(self.idle.len(), Ordering::Relaxed);
        for (connection, _) in stale {
            actix::spawn(connection.quit());
        }
    }
}

/// Jobs an actor still held when it went away leave the pending count with it.
impl Drop for Delivery {
    fn drop(&mut self) {
        metrics::gauge!("delivery_pending_jobs").decrement(self.pending.len() as f64);
    }
}

impl Actor for Delivery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // At least once a second: a request for room in the connection budget is
        // answered within it.
        let sweep = (self.settings.idle_timeout / 2)
            .min(self.settings.retire_idle_after / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        ctx.run_interval(sweep, |act, ctx| {
            act.make_room();
            act.close_idle();
            act.offer_to_retire(ctx);
        });
    }
}

/// The connection budget (or the site's) asks this actor to close idle connections now.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct MakeRoom {
    /// It is the site's budget that asks.
    site: bool,
}

impl Handler<MakeRoom> for Delivery {
    type Result = ();

    fn handle(&mut self, msg: MakeRoom, ctx: &mut Context<Self>) {
        let registered = match msg.site {
            true => &self.site.holds_idle,
            false => &self.holds_idle,
        };
        registered.store(false, Ordering::Release);
        self.make_room();
        self.offer_idle(ctx);
    }
}

impl Handler<Retire> for Delivery {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        self.offered_to_retire = false;
        // A job that came in before the Queue forgot us keeps us going; we offer again
        // after the next idle spell.
        if self.retirable() {
            tracing::debug!(next_hop = %self.hop, "delivery actor retired");
            ctx.stop();
        }
    }
}

impl Handler<Deliver> for Delivery {
    type Result = ();

    fn handle(&mut self, job: Deliver, ctx: &mut Context<Self>) {
        crate::mailbox::DELIVERY.taken();
        // One job, one report, however many transactions its recipients need: the Queue
        // counts reports per job.
        self.last_work = Instant::now();
        self.pending.push_back(job);
        metrics::gauge!("delivery_pending_jobs").increment(1.0);
        self.pump(ctx);
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "delivery_pending_jobs",
        "Jobs waiting in Delivery actors for a connection (over all next hops): the Delivery side's backlog."
    );
    metrics::describe_histogram!(
        "delivery_attempt_seconds",
        metrics::Unit::Seconds,
        "Time one delivery job took, from taking a connection to the next hop's last reply."
    );
    metrics::describe_counter!(
        "delivery_connection_budget_waits_total",
        "Times a delivery waited because the outbound connection budget was full."
    );
    metrics::describe_counter!(
        "delivery_host_backoff_total",
        "Times a next hop was left alone after repeated connection failures."
    );
}
