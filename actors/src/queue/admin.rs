//! What operators ask the Queue: its counters ([`GetStats`], for the admin API, tests
//! and the drain) and a retry of everything deferred ([`FlushDeferred`], `hermod queue
//! flush`).

use actix::prelude::*;

use super::{Queue, schedule, unix_now};
use crate::core::id::QueueId;
use crate::store::spool::RecipientStatus;

/// Ask for the queue's counters (admin API, tests, drain).
#[derive(Message, Debug)]
#[rtype(result = "QueueStats")]
pub struct GetStats;

/// Recipients under way (handed to a Delivery actor), by recipient domain. Mail parked
/// for a down next hop is not in memory and not counted here (see
/// [`QueueStats::parked`]).
#[derive(Message, Debug)]
#[rtype(result = "InFlight")]
pub struct GetInFlight;

/// The answer to [`GetInFlight`].
#[derive(Debug, Default, Clone, MessageResponse)]
pub struct InFlight(pub std::collections::HashMap<String, usize>);

impl Handler<GetInFlight> for Queue {
    type Result = InFlight;

    fn handle(&mut self, _: GetInFlight, _ctx: &mut Context<Self>) -> InFlight {
        let mut by_domain = std::collections::HashMap::new();
        // Only messages in memory can be under way.
        for message in self.messages.values() {
            for (rcpt, &under_way) in message.envelope.recipients.iter().zip(&message.in_flight) {
                if under_way {
                    *by_domain.entry(rcpt.domain.clone()).or_insert(0) += 1;
                }
            }
        }
        InFlight(by_domain)
    }
}

/// Retry every deferred recipient now (`hermod queue flush`).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct FlushDeferred;

/// What is in the queue.
#[derive(Debug, Clone, Default, MessageResponse, serde::Serialize)]
pub struct QueueStats {
    /// Messages in the spool.
    pub messages: usize,
    /// Of those, messages held in memory: being delivered, due now, or waiting for a
    /// down next hop. The others wait for a retry with only their schedule entry in
    /// memory.
    pub in_memory: usize,
    /// Recipients waiting for their first attempt or due now.
    pub pending: usize,
    /// Recipients waiting for a retry; a message put away until its retry (not held in
    /// memory) counts as one.
    pub deferred: usize,
    /// Messages with a delivery under way.
    pub in_flight: usize,
    /// Messages parked for a next hop that is down (in its index only, not in memory;
    /// counted in `deferred` too).
    pub parked: usize,
    /// Delivery actors registered (one per next hop in recent use; an actor finishing
    /// its last job after it offered to retire is no longer counted).
    pub delivery_actors: usize,
    /// What the Queue has seen since it started.
    pub totals: Totals,
    /// The last delivery attempts, newest first.
    pub recent_deliveries: Vec<super::recent::RecentDelivery>,
}

/// Counts since the Queue started: messages received, and delivery attempts per
/// recipient by what became of them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Totals {
    /// Messages accepted and stored.
    pub received: u64,
    /// Recipients delivered.
    pub delivered: u64,
    /// Attempts deferred (a recipient deferred three times counts three).
    pub deferred: u64,
    /// Recipients bounced.
    pub bounced: u64,
}

impl Totals {
    /// Counts one attempt by what it made of its recipient.
    pub(super) fn count(&mut self, result: super::schedule::AttemptResult) {
        use super::schedule::AttemptResult;
        match result {
            AttemptResult::Sent => self.delivered += 1,
            AttemptResult::Deferred => self.deferred += 1,
            AttemptResult::Bounced => self.bounced += 1,
        }
    }
}

impl Handler<GetStats> for Queue {
    type Result = QueueStats;

    fn handle(&mut self, _: GetStats, _ctx: &mut Context<Self>) -> QueueStats {
        let mut stats = QueueStats {
            messages: self.messages.len() + self.evicted,
            in_memory: self.messages.len(),
            // Messages put away until their next retry count once each.
            deferred: self.evicted,
            in_flight: self.in_flight,
            parked: self.hops.values().map(|h| h.waiting()).sum(),
            delivery_actors: self.deliveries.len(),
            totals: self.totals,
            recent_deliveries: self.recent.list(),
            ..Default::default()
        };
        for message in self.messages.values() {
            for r in &message.envelope.recipients {
                match r.status {
                    RecipientStatus::Pending => stats.pending += 1,
                    RecipientStatus::Deferred { .. } => stats.deferred += 1,
                    _ => {}
                }
            }
        }
        stats
    }
}

impl Handler<FlushDeferred> for Queue {
    type Result = usize;

    fn handle(&mut self, _: FlushDeferred, ctx: &mut Context<Self>) -> usize {
        let now = unix_now();
        let mut count = 0;
        // Messages put away until their retry are read back, to be retried now too.
        let scheduled: Vec<QueueId> = self.schedule.iter().map(|(_, id)| *id).collect();
        for (id, e) in self.read_back_now(scheduled) {
            tracing::error!(queue_id = %id, error = %e, "cannot read a message's envelope from the spool; retrying later");
        }
        for message in self.messages.values_mut() {
            count += schedule::flush(&mut message.envelope, now);
        }
        let due: Vec<QueueId> = std::mem::take(&mut self.schedule)
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        self.ready.extend(due);
        self.pump(ctx);
        count
    }
}
