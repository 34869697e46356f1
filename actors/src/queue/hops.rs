//! The Queue's side of next-hop health ([`HopHealth`]): it learns from each
//! [`DeliveryReport`] whether the hop answered, parks the mail of a hop that is down,
//! sends one probe per back-off step, and releases the mail when a probe gets through.

use actix::prelude::*;

use super::{Queue, schedule, unix_now};
use crate::outbound::delivery::DeliveryReport;
use crate::outbound::hop_health::{Change, Parked};
use crate::outbound::routing::NextHop;
use crate::queue::id::QueueId;
use crate::store::envelope::RecipientIndex;
use crate::store::message_data::MessageData;
use crate::store::spool::SpoolError;

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

    /// The hop a report's job went to: the route of its first recipient's domain.
    fn report_hop(&self, report: &DeliveryReport) -> Option<NextHop> {
        let (RecipientIndex(i), _) = report.results.first()?;
        let message = self.messages.get(&report.id)?;
        Some(
            self.router
                .route(&message.envelope.recipients.get(*i)?.domain),
        )
    }

    /// Sends a probe to every down hop whose back-off step has passed.
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
        for (hop, (id, indexes)) in probes {
            // A suspended destination is not probed: its mail waits for the end.
            let suspended = self.messages.get(&id).is_none_or(|m| {
                indexes.iter().all(|&i| {
                    m.envelope
                        .recipients
                        .get(i)
                        .is_none_or(|r| self.suspensions.until(&r.domain, now).is_some())
                })
            });
            let body_file = self.messages.get(&id).map(|m| m.envelope.body_file);
            match body_file {
                Some(body_file) if !suspended => {
                    // Its data is read on the commit threads; the probe goes out then.
                    let read = self.committer.read(move |spool| spool.data(id, body_file));
                    ctx.spawn(read.into_actor(self).map(move |read, act, ctx| {
                        act.send_probe(hop, id, indexes, read.and_then(|r| r), ctx);
                    }));
                }
                _ => self.probe_not_sent(&hop, id, indexes),
            }
        }
    }

    /// Sends the probe of a down `hop` (recipients `indexes` of message `id`) once its
    /// data was read; puts the probe back if it could not be.
    fn send_probe(
        &mut self,
        hop: NextHop,
        id: QueueId,
        indexes: Vec<usize>,
        data: Result<Option<MessageData>, SpoolError>,
        ctx: &mut Context<Self>,
    ) {
        if !self.hops.get(&hop).is_some_and(|health| health.is_down()) {
            // The hop answered while the data was read (a late report) and released what
            // waited for it: these recipients go out like the rest.
            if let Some(message) = self.messages.get_mut(&id) {
                for &i in &indexes {
                    message.in_flight[i] = false;
                }
                self.ready.push_back(id);
                self.pump(ctx);
            }
            return;
        }
        match data {
            Ok(Some(data)) if self.messages.contains_key(&id) && !self.stopping => {
                tracing::debug!(next_hop = %hop, queue_id = %id, "probing next hop");
                self.send_job(id, hop, indexes, data, true, ctx);
            }
            Ok(Some(_)) => self.probe_not_sent(&hop, id, indexes),
            Ok(None) => {
                if self.messages.remove(&id).is_some() {
                    tracing::error!(queue_id = %id, "message data missing from spool; dropping envelope");
                    self.committer.remove(id);
                }
                self.probe_not_sent(&hop, id, indexes);
            }
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot read message from spool; retrying later");
                self.probe_not_sent(&hop, id, indexes);
            }
        }
    }

    /// A due probe did not go out (suspended, unreadable, or its message is gone): the
    /// hop's next probe is not held up by it.
    fn probe_not_sent(&mut self, hop: &NextHop, id: QueueId, indexes: Vec<usize>) {
        let known = self.messages.contains_key(&id);
        if let Some(health) = self.hops.get_mut(hop) {
            if known {
                health.probe_not_sent((id, indexes));
            } else {
                health.probe_gone();
            }
        }
    }

    /// Makes parked recipients dispatchable again.
    pub(super) fn release(&mut self, released: Vec<Parked>) {
        for (id, indexes) in released {
            let Some(message) = self.messages.get_mut(&id) else {
                continue;
            };
            for i in indexes {
                message.in_flight[i] = false;
            }
            self.ready.push_back(id);
        }
    }

    /// Fails the waiting recipients of messages past their lifetime (they would
    /// otherwise wait as long as the hop is down).
    fn expire_waiting(&mut self, hop: &NextHop, now: u64, reason: &str) {
        if self.settings.soft_bounce {
            return;
        }
        let (messages, settings) = (&self.messages, &self.settings);
        let expired = |id: QueueId| {
            messages
                .get(&id)
                .is_none_or(|m| schedule::expired(settings, m.envelope.arrival, now))
        };
        let Some(health) = self.hops.get_mut(hop) else {
            return;
        };
        let gone = health.take_expired(expired);
        for (id, indexes) in gone {
            let Some(message) = self.messages.get_mut(&id) else {
                continue;
            };
            let reply = schedule::gave_up("message expired in queue", reason);
            for i in indexes {
                message.in_flight[i] = false;
                let rcpt = &mut message.envelope.recipients[i];
                tracing::info!(queue_id = %id, to = %rcpt.address, relay = %hop, attempts = rcpt.attempts,
                    status = "bounced", reply = %reply, "delivery attempt");
                metrics::counter!("delivery_attempts_total", "status" => "bounced").increment(1);
                self.totals.bounced += 1;
                self.recent.push(super::recent::RecentDelivery {
                    at: super::unix_now(),
                    queue_id: id.to_string(),
                    to: rcpt.address.clone(),
                    relay: hop.to_string(),
                    status: "bounced",
                    reply: reply.to_string(),
                });
                rcpt.status = schedule::failed(&reply);
            }
            if message.jobs == 0 {
                self.ready.push_back(id);
            }
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "queue_hops_down",
        "Next hops considered down now (their mail is held, one probe per back-off step)."
    );
    metrics::describe_counter!("queue_hop_down_total", "Times a next hop was found down.");
}
