//! Dispatch: what becomes of one queued message when it is due — jobs to the Delivery
//! actors of its next hops, a place in a down hop's index, or a wait in the schedule.

use std::collections::HashMap;

use actix::prelude::*;

use super::resident::ReadBack;
use super::{Queue, schedule, unix_now};
use crate::core::id::QueueId;
use crate::outbound::routing::NextHop;
use crate::store::envelope::RecipientStatus;
use crate::store::message_data::MessageData;

impl Queue {
    pub(super) fn dispatch(
        &mut self,
        id: QueueId,
        data: Option<MessageData>,
        ctx: &mut Context<Self>,
    ) {
        let now = unix_now();
        if self.loading.contains(&id) {
            // Dispatched when its read comes back.
            return;
        }
        let Some(message) = self.messages.get(&id) else {
            if data.is_none() {
                // Put away until due: read its envelope back first.
                self.load(id, ReadBack::Envelope, ctx);
            }
            // Else it finished while its data was read.
            return;
        };
        if message.envelope.held {
            // Held by the operator: waits on disk until released.
            self.evict(id);
            return;
        }
        if self.stopping {
            // Stays in the spool; the next start dispatches it.
            return;
        }
        if message.jobs > 0 {
            return;
        }
        // Recipients of a suspended destination wait for its end.
        let due: Vec<usize> = (0..message.envelope.recipients.len())
            .filter(|&i| {
                let rcpt = &message.envelope.recipients[i];
                !message.in_flight[i]
                    && schedule::is_due(&rcpt.status, now)
                    && self.held_until(&message.envelope, i, now).is_none()
            })
            .collect();
        if due.is_empty() {
            self.wait_for_next_attempt(id, now);
            return;
        }
        let jobs = self.jobs_by_hop(id, due);
        if jobs.is_empty() {
            return;
        }
        let Some(data) = data else {
            let body_file = self.messages.get(&id).is_some_and(|m| m.envelope.body_file);
            self.load(id, ReadBack::Data { body_file }, ctx);
            return;
        };
        for (hop, indexes) in jobs {
            self.send_job(id, hop, indexes, data.clone(), false, ctx);
        }
    }

    /// Message `id` has nothing due now: it waits in the schedule (out of memory) until
    /// the next time something of it can be tried, or is finished if every recipient is.
    fn wait_for_next_attempt(&mut self, id: QueueId, now: u64) {
        let Some(message) = self.messages.get(&id) else {
            return;
        };
        let idle = message.jobs == 0 && !message.in_flight.iter().any(|&f| f);
        // The next time something of it can be tried: each waiting recipient's next
        // attempt, or the end of the suspension that holds it if later.
        let next = message
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let at = match &r.status {
                    RecipientStatus::Pending => now,
                    RecipientStatus::Deferred { next_attempt, .. } => *next_attempt,
                    _ => return None,
                };
                Some(match self.held_until(&message.envelope, i, now) {
                    Some(until) => at.max(until),
                    None => at,
                })
            })
            .min();
        match (schedule::next_due(&message.envelope), next) {
            // Every recipient is final, but finishing failed earlier (the bounce could
            // not be written): try again now.
            (None, _) => self.finalize(id),
            // Not due yet and nothing under way: wait in the schedule, not in memory.
            (Some(_), Some(at)) if idle => {
                self.schedule.insert((at.max(now + 1), id));
                self.evict(id);
            }
            _ => {}
        }
    }

    /// The jobs for the `due` recipients of message `id`, one per next hop; recipients of
    /// a hop that is down are parked in its index instead (and a message with nothing
    /// else to do leaves memory).
    fn jobs_by_hop(&mut self, id: QueueId, due: Vec<usize>) -> Vec<(NextHop, Vec<usize>)> {
        let Some(message) = self.messages.get(&id) else {
            return Vec::new();
        };
        let mut by_hop: HashMap<NextHop, Vec<usize>> = HashMap::new();
        for i in due {
            by_hop
                .entry(self.hop_of(&message.envelope, i))
                .or_default()
                .push(i);
        }
        // Mail for a hop that is down waits in its index: no spool read, no job, no log,
        // and not in memory (its envelope is in the spool; 16 octets of index remain).
        let expires_at = schedule::expires_at(&self.settings, message.envelope.arrival);
        let mut jobs: Vec<(NextHop, Vec<usize>)> = Vec::with_capacity(by_hop.len());
        let mut parked = false;
        for (hop, indexes) in by_hop {
            match self.hops.get_mut(&hop) {
                Some(health) if health.is_down() => {
                    health.park(id, expires_at);
                    parked = true;
                }
                _ => jobs.push((hop, indexes)),
            }
        }
        if jobs.is_empty() && parked {
            self.evict(id);
        }
        jobs
    }
}
