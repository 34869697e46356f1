//! The EventSender actor: one per destination, on the main arbiter. It reads the durable
//! events past its cursor from the event log in batches, hands each batch to its
//! [`Destination`], and moves its cursor only when the destination acknowledged the
//! whole batch (at-least-once; each event's id lets a receiver drop a duplicate). A
//! destination that fails is retried with back-off; meanwhile intake and delivery go on,
//! and the backlog waits in the spool, bounded by the event log.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::events::destination::Destination;
use crate::events::event::Event;
use crate::store::event_log::EventLog;

/// How often a sender looks for new durable events when it has none.
const POLL: Duration = Duration::from_millis(100);
/// The first wait after a failure; it doubles up to the sender's `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// How one destination is driven.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// The node's name, the first part of each event's id.
    pub node: String,
    /// Events per batch.
    pub batch_size: usize,
    /// The longest wait between retries of a failing destination.
    pub max_backoff: Duration,
}

/// Sends the event log to one destination.
pub struct EventSender {
    log: Arc<EventLog>,
    destination: Rc<dyn Destination>,
    settings: SenderSettings,
    /// A batch is out.
    busy: bool,
    /// Failures in a row.
    failures: u32,
    /// No batch before this (a failure's back-off).
    retry_at: Option<Instant>,
}

impl EventSender {
    /// A sender of `log` to `destination`.
    pub fn new(
        log: Arc<EventLog>,
        destination: Rc<dyn Destination>,
        settings: SenderSettings,
    ) -> Self {
        EventSender {
            log,
            destination,
            settings,
            busy: false,
            failures: 0,
            retry_at: None,
        }
    }

    /// Sends the next batch, if there is one and no batch or back-off is under way.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let name = self.destination.name();
        let (cursor, batch) = match self
            .log
            .cursor(name)
            .and_then(|cursor| Ok((cursor, self.log.batch(cursor, self.settings.batch_size)?)))
        {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(destination = name, error = %e, "cannot read the event log");
                return;
            }
        };
        metrics::gauge!("events_backlog", "destination" => name)
            .set(self.log.backlog(cursor) as f64);
        let Some(&(last, _)) = batch.last() else {
            return;
        };
        let full = batch.len() == self.settings.batch_size;
        let events: Vec<Vec<u8>> = batch
            .iter()
            .filter_map(|(seq, stored)| {
                let event = Event::for_sending(stored, &self.settings.node, *seq);
                if event.is_none() {
                    tracing::error!(
                        destination = name,
                        seq,
                        "an unreadable event in the event log is skipped"
                    );
                }
                event
            })
            .collect();
        let count = events.len();
        self.busy = true;
        let sent = self.destination.send(events);
        ctx.spawn(sent.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            match result {
                Ok(()) => {
                    if let Err(e) = act.log.acknowledge(name, last + 1) {
                        tracing::error!(destination = name, error = %e, "cannot record what an event destination acknowledged");
                    }
                    metrics::counter!("events_sent_total", "destination" => name).increment(count as u64);
                    if act.failures > 0 {
                        tracing::info!(destination = name, "event destination reachable again");
                    }
                    act.failures = 0;
                    act.retry_at = None;
                    if full {
                        act.pump(ctx);
                    }
                }
                Err(e) => {
                    act.failures += 1;
                    let wait = FIRST_BACKOFF
                        .saturating_mul(1u32 << act.failures.saturating_sub(1).min(16))
                        .min(act.settings.max_backoff);
                    act.retry_at = Some(Instant::now() + wait);
                    metrics::counter!("events_destination_errors_total", "destination" => name).increment(1);
                    tracing::warn!(destination = name, error = %e, failures = act.failures,
                        retry_in_s = wait.as_secs_f64(), backlog = act.log.kept(),
                        "event destination failed; the batch is kept and sent again");
                }
            }
        }));
    }
}

impl Actor for EventSender {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(POLL, |act, ctx| act.pump(ctx));
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "events_sent_total",
        "Delivery events a destination acknowledged, by destination (webhook, redis, file)."
    );
    metrics::describe_counter!(
        "events_destination_errors_total",
        "Batches of delivery events a destination failed to take (sent again after a back-off), by destination."
    );
    metrics::describe_gauge!(
        "events_backlog",
        "Delivery events kept for a destination and not yet acknowledged by it, by destination."
    );
}
