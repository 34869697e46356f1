//! The Queue actor: owns the spool, the schedule of retries and the registry of Delivery
//! actors. A Session's [`Enqueue`] is answered only after the message is flushed to disk
//! (group commit through the [`Committer`]); then the message is routed per recipient
//! domain and handed to one Delivery actor per next hop. [`DeliveryReport`]s come back;
//! each recipient is then delivered, deferred with back-off, or failed, and a message
//! whose recipients are all final is bounced (if needed) and removed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

mod admin;
mod attempt_trace;
mod bounce;
mod dispatch;
mod drain;
pub mod dsn;
mod enqueue;
mod handling;
mod held_jobs;
mod hops;
mod operate;
mod outcomes;
pub mod pool_header;
pub mod recent;
mod reconfigure;
mod resident;
pub mod schedule;
mod suspend;
pub mod tls_reports;

use crate::core::id::{QueueId, QueueIdGenerator};
use crate::events::bounce_rules::BounceRules;
use crate::outbound::delivery::{
    Deliver, DeliveryIdle, DeliveryReport, JobRecipient, QueueLink, Retire,
};
use crate::outbound::hop_health::{HopHealth, HopPolicy};
use crate::outbound::routing::{NextHop, Router};
use crate::store::committer::Committer;
use crate::store::message_data::MessageData;
use crate::store::spool::{Envelope, RecipientIndex};
pub use admin::{FlushDeferred, GetInFlight, GetStats, InFlight, QueueStats, Totals};
pub use drain::StopDispatch;
pub use enqueue::{Intake, IntakeEvents, Stored};
pub use operate::{Action, Operate, Operated};
pub use reconfigure::Reconfigure;
pub use suspend::{ListSuspensions, Resume, Suspend, Suspension};

/// How the Queue retries and expires, from `[queue]`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Our host name, for bounces.
    pub hostname: String,
    /// Delay before the first retry.
    pub retry_interval: Duration,
    /// Longest delay between retries.
    pub max_retry_interval: Duration,
    /// Age at which an undelivered message is bounced.
    pub max_lifetime: Duration,
    /// Attempts before a recipient is bounced (0: no limit).
    pub max_attempts: u32,
    /// How often the schedule is checked.
    pub scan_interval: Duration,
    /// Messages handed to Delivery actors at once; the rest wait in the queue, so a large
    /// backlog never sits in memory.
    pub max_in_flight: usize,
    /// Octets of message data handed to Delivery actors at once (a body file counts its
    /// read buffer): with `max_in_flight`, what bounds the Queue's memory.
    pub max_bytes_in_flight: u64,
    /// When a next hop counts as down and how often it is probed while it is.
    pub hops: HopPolicy,
    /// Longest time a delivery-state change waits for a flush when nothing else commits.
    pub state_flush_interval: Duration,
    /// Where a bounce that cannot be delivered is reported (`None`: it stays queued).
    pub postmaster: Option<String>,
    /// Keep mail that would bounce queued instead (permanent failures become
    /// deferrals; no recipient is given up on).
    pub soft_bounce: bool,
    /// What class each failure gets (`bounce.rules_file` and the built-in rules).
    pub bounce_rules: Arc<BounceRules>,
}

/// Makes the Delivery actor for a next hop; the Queue calls it the first time a hop is
/// needed (and again after an idle actor retired). A function, so tests and the binary
/// decide where the actor runs.
pub type DeliveryFactory = Box<dyn Fn(&NextHop, QueueLink) -> Recipient<Deliver>>;

struct QueuedMessage {
    envelope: Envelope,
    /// Per recipient: a Delivery actor has it now.
    in_flight: Vec<bool>,
    /// Deliver jobs not yet reported.
    jobs: usize,
    /// Octets of its data held while its jobs run (see `max_bytes_in_flight`).
    cost: u64,
    /// When its running jobs were handed out: the start of their delivery spans (kept
    /// only for a traced message).
    dispatched: Option<std::time::SystemTime>,
}

/// The queue actor.
pub struct Queue {
    settings: QueueSettings,
    /// Every spool read and write of the Queue goes through the commit threads, in order
    /// (none runs on the arbiter that serves sessions).
    committer: Committer,
    ids: Arc<QueueIdGenerator>,
    router: Router,
    factory: DeliveryFactory,
    /// The live Delivery actor of each next hop, with its serial.
    deliveries: HashMap<NextHop, (u64, Recipient<Deliver>)>,
    /// Serial of the last Delivery actor started.
    delivery_serial: u64,
    messages: HashMap<QueueId, QueuedMessage>,
    /// Due time (unix seconds) and id of messages waiting for a retry.
    schedule: BTreeSet<(u64, QueueId)>,
    /// Messages due now, waiting for room in flight.
    ready: VecDeque<QueueId>,
    /// Messages whose data (and envelope, if put away) is being read back to be
    /// dispatched; they take room in flight.
    loading: HashSet<QueueId>,
    in_flight: usize,
    /// Octets of message data held by jobs under way.
    bytes_in_flight: u64,
    /// Next hops that failed to answer, and the mail waiting for those that are down.
    hops: HashMap<NextHop, HopHealth>,
    /// Delivery state was written to the spool since the last commit.
    unflushed: bool,
    /// hermod is stopping: no new delivery starts.
    stopping: bool,
    /// Jobs each Delivery actor (by serial) holds and has not reported.
    held: HashMap<u64, held_jobs::HeldJobs>,
    /// Queued messages not held in memory (waiting in the schedule or the ready list,
    /// their envelopes in the spool).
    evicted: usize,
    /// Counts since start, for the admin API.
    totals: admin::Totals,
    /// The last delivery attempts, for the status page.
    recent: recent::RecentDeliveries,
    /// Destinations the operator suspended.
    suspensions: suspend::Suspensions,
    /// Sites an automation rule suspended (`delivery.shaping_file`).
    shaping: Option<std::sync::Arc<crate::outbound::shaping::Shaping>>,
    /// The egress pools, and which one a message's user sends from (`[egress]`).
    egress: Option<std::sync::Arc<crate::outbound::egress::Egress>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Queue {
    /// A queue over the spool of `committer`; call [`Queue::recover`] before starting it.
    pub fn new(
        settings: QueueSettings,
        committer: Committer,
        ids: Arc<QueueIdGenerator>,
        router: Router,
        factory: DeliveryFactory,
    ) -> Self {
        Queue {
            settings,
            committer,
            ids,
            router,
            factory,
            deliveries: HashMap::new(),
            delivery_serial: 0,
            messages: HashMap::new(),
            schedule: BTreeSet::new(),
            ready: VecDeque::new(),
            loading: HashSet::new(),
            in_flight: 0,
            bytes_in_flight: 0,
            hops: HashMap::new(),
            unflushed: false,
            stopping: false,
            held: HashMap::new(),
            evicted: 0,
            totals: admin::Totals::default(),
            recent: recent::RecentDeliveries::default(),
            suspensions: Default::default(),
            shaping: None,
            egress: None,
        }
    }

    /// Messages leave from the egress pool of their user (or the default pool).
    pub fn with_egress(mut self, egress: std::sync::Arc<crate::outbound::egress::Egress>) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Mail for a site an automation rule suspends waits in the schedule until the
    /// suspension ends, as for a destination the operator suspended.
    pub fn with_shaping(
        mut self,
        shaping: std::sync::Arc<crate::outbound::shaping::Shaping>,
    ) -> Self {
        self.shaping = Some(shaping);
        self
    }

    fn delivery_for(
        &mut self,
        hop: &NextHop,
        ctx: &mut Context<Self>,
    ) -> (u64, Recipient<Deliver>) {
        if let Some((serial, existing)) = self.deliveries.get(hop) {
            return (*serial, existing.clone());
        }
        self.delivery_serial += 1;
        let link = QueueLink {
            reports: ctx.address().recipient(),
            idle: ctx.address().recipient(),
            serial: self.delivery_serial,
        };
        let delivery = (self.factory)(hop, link);
        self.deliveries
            .insert(hop.clone(), (self.delivery_serial, delivery.clone()));
        (self.delivery_serial, delivery)
    }

    /// Hands due recipients of ready messages to Delivery actors while there is room.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.has_room() && !self.stopping {
            let Some(id) = self.ready.pop_front() else {
                return;
            };
            self.dispatch(id, None, ctx);
        }
    }

    /// Whether another message may be handed to Delivery actors.
    fn has_room(&self) -> bool {
        self.in_flight + self.loading.len() < self.settings.max_in_flight
            && self.bytes_in_flight < self.settings.max_bytes_in_flight
    }

    /// The next hop of recipient `i` of `envelope`: its domain's route, or the route of
    /// the whole message (a DMARC quarantine transport; checked when the configuration
    /// was loaded).
    fn hop_of(&self, envelope: &Envelope, i: usize) -> NextHop {
        envelope
            .route
            .as_deref()
            .and_then(|target| crate::outbound::routing::parse_target(target, 25).ok())
            .unwrap_or_else(|| self.router.route(&envelope.recipients[i].domain))
    }

    /// Hands recipients `indexes` of message `id` to the Delivery actor of `hop`.
    fn send_job(
        &mut self,
        id: QueueId,
        hop: NextHop,
        indexes: Vec<usize>,
        data: MessageData,
        probe: bool,
        ctx: &mut Context<Self>,
    ) {
        let (serial, delivery) = self.delivery_for(&hop, ctx);
        if !self.messages.contains_key(&id) {
            return;
        }
        self.hold_job(serial, &hop, &delivery, id, &indexes);
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        let recipients = indexes
            .iter()
            .map(|&i| JobRecipient {
                index: RecipientIndex(i),
                address: message.envelope.recipients[i].address.clone(),
            })
            .collect();
        for &i in &indexes {
            message.in_flight[i] = true;
        }
        if message.jobs == 0 {
            self.in_flight += 1;
            message.cost = data.memory_cost();
            self.bytes_in_flight += message.cost;
            message.dispatched = message
                .envelope
                .trace
                .is_some()
                .then(std::time::SystemTime::now);
        }
        message.jobs += 1;
        let job = Deliver {
            id,
            options: message.envelope.options,
            sender: message.envelope.sender.clone(),
            recipients,
            data,
            probe,
            tls_report: message.envelope.tls_report,
            pool: self.egress.as_ref().and_then(|egress| {
                egress.pool_for(
                    message.envelope.pool.as_deref(),
                    message.envelope.user.as_deref(),
                )
            }),
        };
        // Delivery actors keep their own unbounded pending list, so this never blocks
        // the queue; `max_in_flight` bounds what is outstanding.
        crate::mailbox::DELIVERY.sent();
        if !delivery.connected() {
            // do_send drops it unsaid; not counted as waiting.
            crate::mailbox::DELIVERY.taken();
        }
        delivery.do_send(job);
    }

    fn apply_report(&mut self, report: DeliveryReport) {
        let now = unix_now();
        let settings = &self.settings;
        let Some(message) = self.messages.get_mut(&report.id) else {
            return;
        };
        let arrival = message.envelope.arrival;
        if let Some(until) = report.held_until {
            self.hand_back(report.id, &report.results, until);
            return;
        }
        let mut attempts = Vec::with_capacity(report.results.len());
        for (RecipientIndex(i), outcome) in report.results {
            // Only a recipient this job holds: a late report of a job the Queue already
            // gave up on must not overwrite a newer result.
            if !message.in_flight.get(i).copied().unwrap_or(false) {
                continue;
            }
            message.in_flight[i] = false;
            let rcpt = &mut message.envelope.recipients[i];
            let attempt = schedule::after_attempt(settings, rcpt, outcome, arrival, now);
            attempts.push((i, attempt));
        }
        let outcomes = outcomes::ReportOutcomes {
            id: report.id,
            relay: &report.relay,
            tls: report.tls.as_deref(),
            now,
        };
        self.note_attempts(&outcomes, attempts);
        if !self.job_over(report.id) {
            return;
        }
        let Some(message) = self.messages.get(&report.id) else {
            return;
        };
        match schedule::next_due(&message.envelope) {
            None => self.finalize(report.id),
            Some(at) => {
                self.unflushed = true;
                self.committer.update(report.id, &message.envelope);
                if at <= now {
                    self.ready.push_back(report.id);
                } else {
                    self.schedule.insert((at, report.id));
                    self.evict(report.id);
                }
            }
        }
    }

    /// A job handed back untried (its site suspended until `until`): its recipients
    /// keep their state, not an attempt, and once the message has no job left it waits
    /// in the schedule until `until` (woken early if the suspension is cleared).
    fn hand_back(
        &mut self,
        id: QueueId,
        results: &[(RecipientIndex, crate::outbound::job::Outcome)],
        until: u64,
    ) {
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        for &(RecipientIndex(i), _) in results {
            if let Some(flight) = message.in_flight.get_mut(i) {
                *flight = false;
            }
        }
        if self.job_over(id) {
            self.schedule.insert((until, id));
            self.evict(id);
        }
    }

    /// One job of message `id` is over; `true` when it was the last, and the message
    /// left the in-flight count.
    fn job_over(&mut self, id: QueueId) -> bool {
        let Some(message) = self.messages.get_mut(&id) else {
            return false;
        };
        message.jobs = message.jobs.saturating_sub(1);
        if message.jobs > 0 {
            return false;
        }
        message.dispatched = None;
        let cost = std::mem::take(&mut message.cost);
        self.in_flight = self.in_flight.saturating_sub(1);
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(cost);
        true
    }

    /// Commits delivery-state changes that no accepted message has carried to disk yet,
    /// so a crash of an idle server does not deliver them again.
    fn flush_state(&mut self) {
        if !std::mem::take(&mut self.unflushed) {
            return;
        }
        let committer = self.committer.clone();
        actix::spawn(async move {
            if let Err(e) = committer.commit().await {
                tracing::error!(error = %e, "flushing delivery state failed");
            }
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = unix_now();
        while let Some(&(at, id)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.pop_first();
            self.ready.push_back(id);
        }
        self.reclaim_jobs_of_stopped_deliveries();
        self.probe_down_hops(now, ctx);
        self.pump(ctx);
        metrics::gauge!("queue_messages").set((self.messages.len() + self.evicted) as f64);
        metrics::gauge!("queue_ready_messages").set(self.ready.len() as f64);
        metrics::gauge!("queue_in_flight_messages").set(self.in_flight as f64);
    }
}

impl Actor for Queue {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65536);
        ctx.run_interval(self.settings.scan_interval, |act, ctx| act.tick(ctx));
        ctx.run_interval(self.settings.state_flush_interval, |act, _| {
            act.flush_state()
        });
        if let Some(shaping) = &self.shaping {
            let me = ctx.address();
            shaping.on_early_end(Box::new(move |untils| {
                me.do_send(suspend::SitesResumed { untils });
            }));
        }
        self.pump(ctx);
    }
}

impl Handler<DeliveryReport> for Queue {
    type Result = ();

    fn handle(&mut self, report: DeliveryReport, ctx: &mut Context<Self>) {
        crate::mailbox::QUEUE.taken();
        let started = std::time::Instant::now();
        self.release_job(&report);
        self.note_hop_health(&report);
        self.emit_shaping(&report);
        self.apply_report(report);
        self.pump(ctx);
        handling::handled(&handling::DELIVERY_REPORT, started);
    }
}

impl Handler<DeliveryIdle> for Queue {
    type Result = ();

    /// Forgets an idle Delivery actor (unless a newer one serves the hop by now), then
    /// lets it go: [`Retire`] lands behind every job already sent to it.
    fn handle(&mut self, idle: DeliveryIdle, _ctx: &mut Context<Self>) {
        if self
            .deliveries
            .get(&idle.hop)
            .is_some_and(|(serial, _)| *serial == idle.serial)
        {
            self.deliveries.remove(&idle.hop);
        }
        idle.retire.do_send(Retire);
    }
}

/// Help texts of the metrics recorded in this file and the Queue's others, for the
/// Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_histogram!(
        "queue_handling_seconds",
        metrics::Unit::Seconds,
        "Time the Queue actor took to handle one message, by kind (stored, delivery_report, operate)."
    );
    metrics::describe_gauge!(
        "queue_ready_messages",
        "Messages due now, waiting for room among those in flight (max_in_flight)."
    );
    metrics::describe_gauge!(
        "queue_in_flight_messages",
        "Messages handed to Delivery actors and not reported yet."
    );
    metrics::describe_histogram!(
        "delivery_time_in_queue_seconds",
        metrics::Unit::Seconds,
        "Time from a message's arrival to a recipient's delivery (whole seconds)."
    );
    bounce::describe_metrics();
    enqueue::describe_metrics();
    held_jobs::describe_metrics();
    hops::describe_metrics();
    operate::describe_metrics();
    outcomes::describe_metrics();
    metrics::describe_counter!(
        "delivery_attempts_total",
        "Delivery attempts per recipient, by status (sent, deferred, bounced)."
    );
    metrics::describe_gauge!(
        "queue_messages",
        "Messages in the queue, in memory or waiting on disk for their retry."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = QueueSettings {
            hostname: "h".into(),
            retry_interval: Duration::from_secs(300),
            max_retry_interval: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(5 * 86400),
            max_attempts: 0,
            scan_interval: Duration::from_secs(1),
            max_in_flight: 10,
            max_bytes_in_flight: 1 << 20,
            soft_bounce: false,
            hops: HopPolicy {
                down_after: 5,
                first_backoff: Duration::from_secs(60),
                max_backoff: Duration::from_secs(3600),
            },
            state_flush_interval: Duration::from_millis(200),
            postmaster: None,
            bounce_rules: Arc::new(BounceRules::shipped()),
        };
        let delays: Vec<u64> = (1..=6).map(|a| settings.backoff(a).as_secs()).collect();
        assert_eq!(delays, vec![300, 600, 1200, 2400, 3600, 3600]);
        assert_eq!(settings.backoff(100).as_secs(), 3600);
    }
}
