//! The Queue's side of next-hop health ([`HopHealth`]): it learns from each
//! [`DeliveryReport`] whether the hop answered, parks the mail of a hop that is down,
//! sends one probe per back-off step, and releases the mail when a probe gets through.

use actix::prelude::*;

use super::{Queue, schedule, unix_now};
use crate::core::id::QueueId;
use crate::outbound::delivery::DeliveryReport;
use crate::outbound::hop_health::Change;
use crate::outbound::routing::NextHop;
use crate::store::envelope::RecipientIndex;
use crate::store::message_data::MessageData;
use crate::store::spool::{Envelope, SpoolError};

impl Queue {
    /// Updates the health of the report's next hop before the report is applied.
    pub(super) fn note_hop_health(&mut self, report: &DeliveryReport) {
        if !report.unreachable && self.hops.is_empty() {
            return;
        }
        let Some(hop) = self.report_hop(report) else {
            return;
        };
        let now = unix_now();
        if !report.unreachable {
            let Some(mut health) = self.hops.remove(&hop) else {
                return;
            };
            let was_down = health.is_down();
            let released = health.reached();
            if was_down {
                tracing::info!(next_hop = %hop, released = released.len(), "next hop is up again; releasing held mail");
                metrics::gauge!("queue_hops_down").decrement(1.0);
            }
            self.release(released);
            return;
        }
        let policy = self.settings.hops;
        let change = self
            .hops
            .entry(hop.clone())
            .or_default()
            .unreachable(report.id, now, &policy);
        let reason = report.results.first().map_or("", |(_, o)| o.text());
        match change {
            Change::WentDown { probe_at } => {
                tracing::warn!(next_hop = %hop, next_probe_in_s = probe_at.saturating_sub(now), reason,
                    "next hop is down; holding its mail and probing it once per back-off step");
                metrics::counter!("queue_hop_down_total").increment(1);
                metrics::gauge!("queue_hops_down").increment(1.0);
            }
            Change::ProbeFailed { probe_at, waiting } => {
                tracing::info!(next_hop = %hop, waiting, next_probe_in_s = probe_at.saturating_sub(now), reason,
                    "next hop still down after probe");
                self.expire_waiting(&hop, now, reason);
            }
            Change::StillUp | Change::AlreadyDown => {}
        }
    }

    /// The hop a report's job went to: its first recipient's (or the message's route).
    fn report_hop(&self, report: &DeliveryReport) -> Option<NextHop> {
        let (RecipientIndex(i), _) = report.results.first()?;
        let message = self.messages.get(&report.id)?;
        message.envelope.recipients.get(*i)?;
        Some(self.hop_of(&message.envelope, *i))
    }

    /// Sends a probe to every down hop whose back-off step has passed: the oldest
    /// message of its index, read back from the spool (envelope and data) first.
    pub(super) fn probe_down_hops(&mut self, now: u64, ctx: &mut Context<Self>) {
        if self.hops.is_empty() || self.stopping {
            return;
        }
        let mut probes = Vec::new();
        self.hops.retain(|hop, health| {
            let was_down = health.is_down();
            if let Some(parked) = health.due_probe(now) {
                probes.push((hop.clone(), parked));
            } else if was_down && !health.is_down() {
                metrics::gauge!("queue_hops_down").decrement(1.0);
            }
            !health.is_idle()
        });
        for (hop, (id, expires_at)) in probes {
            if self.loading.contains(&id) {
                // Read back for another reason: it is dispatched from there.
                self.probe_not_sent(&hop, id, expires_at);
                continue;
            }
            self.loading.insert(id);
            let read = self
                .committer
                .read(move |spool| -> Result<ProbeRead, SpoolError> {
                    let Some(envelope) = spool.envelope(id)? else {
                        return Ok(ProbeRead::Gone);
                    };
                    match spool.data(id, envelope.body_file)? {
                        Some(data) => Ok(ProbeRead::Message(Box::new((envelope, data)))),
                        None => Ok(ProbeRead::DataMissing),
                    }
                });
            ctx.spawn(read.into_actor(self).map(move |read, act, ctx| {
                act.send_probe(hop, id, expires_at, read.and_then(|r| r), ctx);
                act.pump(ctx);
            }));
        }
    }

    /// Sends the probe of a down `hop` (message `id`) once it was read; puts the probe
    /// back if it could not be sent.
    fn send_probe(
        &mut self,
        hop: NextHop,
        id: QueueId,
        expires_at: u64,
        read: Result<ProbeRead, SpoolError>,
        ctx: &mut Context<Self>,
    ) {
        self.loading.remove(&id);
        let resident = self.messages.contains_key(&id);
        let (envelope, data) = match read {
            Ok(ProbeRead::Message(read)) => *read,
            Ok(ProbeRead::Gone) => {
                // Deleted or finished meanwhile.
                if !resident {
                    self.evicted = self.evicted.saturating_sub(1);
                }
                self.probe_gone(&hop);
                return;
            }
            Ok(ProbeRead::DataMissing) => {
                tracing::error!(queue_id = %id, "message data missing from spool; dropping envelope");
                if !resident {
                    self.evicted = self.evicted.saturating_sub(1);
                    self.committer.remove(id);
                } else if self.messages.get(&id).is_some_and(|m| m.jobs == 0) {
                    self.messages.remove(&id);
                    self.committer.remove(id);
                }
                self.probe_gone(&hop);
                return;
            }
            Err(e) => {
                // Still in the spool: it waits for its next retry step in the schedule
                // (whether the hop is still down or came back meanwhile), and the next
                // message may probe.
                tracing::error!(queue_id = %id, error = %e, "cannot read message from spool; retrying later");
                self.probe_gone(&hop);
                if !resident {
                    let at = unix_now() + self.settings.retry_interval.as_secs().max(1);
                    self.schedule.insert((at, id));
                }
                return;
            }
        };
        if !self.messages.contains_key(&id) {
            self.evicted = self.evicted.saturating_sub(1);
            self.keep(id, envelope);
        }
        if !self.hops.get(&hop).is_some_and(|health| health.is_down()) {
            // The hop answered while the message was read (a late report) and released
            // what waited for it: this one goes out like the rest.
            self.dispatch(id, Some(data), ctx);
            return;
        }
        let now = unix_now();
        let indexes = self.due_for(id, &hop, now);
        if self.stopping {
            self.probe_not_sent(&hop, id, expires_at);
            self.evict(id);
            return;
        }
        if indexes.is_empty() {
            // Its destination is suspended, or nothing of it is due: it leaves the
            // index for the schedule (the suspension's end, or its next attempt), and
            // the next message probes. Put back, it would be picked again at every tick
            // and keep the hop from ever being probed.
            self.probe_gone(&hop);
            self.dispatch(id, Some(data), ctx);
            return;
        }
        tracing::debug!(next_hop = %hop, queue_id = %id, "probing next hop");
        self.send_job(id, hop, indexes, data, true, ctx);
    }

    /// The recipients of resident message `id` for `hop` that are due at `now`, not
    /// under way and not suspended.
    fn due_for(&self, id: QueueId, hop: &NextHop, now: u64) -> Vec<usize> {
        let Some(message) = self.messages.get(&id) else {
            return Vec::new();
        };
        (0..message.envelope.recipients.len())
            .filter(|&i| {
                let rcpt = &message.envelope.recipients[i];
                !message.in_flight[i]
                    && schedule::is_due(&rcpt.status, now)
                    && self.held_until(&message.envelope, i, now).is_none()
                    && self.hop_of(&message.envelope, i) == *hop
            })
            .collect()
    }

    /// A due probe did not go out (suspended, or unreadable): the message goes back to
    /// the index and the hop's next probe is not held up by it.
    fn probe_not_sent(&mut self, hop: &NextHop, id: QueueId, expires_at: u64) {
        if let Some(health) = self.hops.get_mut(hop) {
            health.probe_not_sent(id, expires_at);
        }
    }

    /// A due probe's message is gone from the queue.
    fn probe_gone(&mut self, hop: &NextHop) {
        if let Some(health) = self.hops.get_mut(hop) {
            health.probe_gone();
        }
    }

    /// Makes parked messages dispatchable again: they are read back within the
    /// in-flight window, like any backlog. One still in memory has a job out for
    /// another hop: its report dispatches it.
    pub(super) fn release(&mut self, released: Vec<QueueId>) {
        let resident = &self.messages;
        self.ready
            .extend(released.into_iter().filter(|id| !resident.contains_key(id)));
    }

    /// Fails the recipients for `hop` of parked messages past their lifetime (they
    /// would otherwise wait as long as the hop is down). Their envelopes are read back
    /// for it; a message whose recipients are all final then bounces.
    fn expire_waiting(&mut self, hop: &NextHop, now: u64, reason: &str) {
        if self.settings.soft_bounce {
            return;
        }
        let Some(health) = self.hops.get_mut(hop) else {
            return;
        };
        let gone = health.take_expired(now, MAX_EXPIRED_PER_PROBE);
        if gone.is_empty() {
            return;
        }
        for (id, e) in self.read_back_now(gone.clone()) {
            tracing::error!(queue_id = %id, error = %e, "cannot read an expired message's envelope; retrying later");
            if let Some(health) = self.hops.get_mut(hop) {
                health.park(id, now);
            }
        }
        let reply = schedule::gave_up("message expired in queue", reason);
        let relay = hop.to_string();
        for id in gone {
            let indexes = self.due_for(id, hop, u64::MAX);
            let Some(message) = self.messages.get_mut(&id) else {
                continue;
            };
            let mut attempts = Vec::with_capacity(indexes.len());
            for i in indexes {
                message.envelope.recipients[i].status = schedule::failed(&reply);
                attempts.push((
                    i,
                    schedule::Attempt {
                        result: schedule::AttemptResult::Bounced,
                        reply: reply.text.clone(),
                        code: reply.code,
                        gave_up: true,
                    },
                ));
            }
            let report = super::outcomes::ReportOutcomes {
                id,
                relay: &relay,
                tls: None,
                now,
            };
            self.note_attempts(&report, attempts);
            let Some(message) = self.messages.get(&id) else {
                continue;
            };
            self.committer.update(id, &message.envelope);
            self.put_back(id);
        }
    }
}

/// Expired parked messages failed per failed probe at most (their envelopes are read
/// back at once): a large backlog expires over several probes, not in one long stop.
const MAX_EXPIRED_PER_PROBE: usize = 5_000;

/// What reading a probe's message back found.
enum ProbeRead {
    /// Its envelope and data.
    Message(Box<(Envelope, MessageData)>),
    /// Not in the spool any more.
    Gone,
    /// An envelope without its data.
    DataMissing,
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "queue_hops_down",
        "Next hops considered down now (their mail is held, one probe per back-off step)."
    );
    metrics::describe_counter!("queue_hop_down_total", "Times a next hop was found down.");
}
