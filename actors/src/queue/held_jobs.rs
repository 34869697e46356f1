//! Which jobs each Delivery actor holds. A Delivery actor that stops or panics before
//! it reports would otherwise keep its messages "in flight" for ever (never retried, and
//! holding queue slots); the Queue checks on every tick and gives such jobs back as
//! deferred, so they are retried like any other failed attempt.

use std::collections::HashMap;

use actix::prelude::*;

use super::Queue;
use crate::core::id::QueueId;
use crate::outbound::delivery::{Deliver, DeliveryReport, Outcome};
use crate::outbound::routing::NextHop;
use crate::protocol::status::{EnhancedCode, Status};
use crate::store::envelope::RecipientIndex;

/// RFC 3463 4.3.0: other or undefined mail system status.
const MAIL_SYSTEM_ERROR: EnhancedCode = EnhancedCode::new(4, 3, 0);

/// The jobs one Delivery actor has been given and has not reported.
pub(super) struct HeldJobs {
    hop: NextHop,
    delivery: Recipient<Deliver>,
    /// Per message, the recipient indexes of its job.
    jobs: HashMap<QueueId, Vec<usize>>,
}

impl Queue {
    /// Records a job handed to the Delivery actor `serial`.
    pub(super) fn hold_job(
        &mut self,
        serial: u64,
        hop: &NextHop,
        delivery: &Recipient<Deliver>,
        id: QueueId,
        indexes: &[usize],
    ) {
        self.held
            .entry(serial)
            .or_insert_with(|| HeldJobs {
                hop: hop.clone(),
                delivery: delivery.clone(),
                jobs: HashMap::new(),
            })
            .jobs
            .insert(id, indexes.to_vec());
    }

    /// Forgets the job a report answers.
    pub(super) fn release_job(&mut self, report: &DeliveryReport) {
        if let Some(held) = self.held.get_mut(&report.serial) {
            held.jobs.remove(&report.id);
            if held.jobs.is_empty() {
                self.held.remove(&report.serial);
            }
        }
    }

    /// Gives back, as deferred, the jobs of every Delivery actor that has stopped
    /// without reporting them.
    pub(super) fn reclaim_jobs_of_stopped_deliveries(&mut self) {
        let stopped: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, held)| !held.delivery.connected())
            .map(|(serial, _)| *serial)
            .collect();
        for serial in stopped {
            let Some(held) = self.held.remove(&serial) else {
                continue;
            };
            if self
                .deliveries
                .get(&held.hop)
                .is_some_and(|(live, _)| *live == serial)
            {
                self.deliveries.remove(&held.hop);
            }
            metrics::counter!("delivery_actor_failures_total").increment(1);
            tracing::error!(next_hop = %held.hop, jobs = held.jobs.len(),
                "delivery actor stopped before reporting its jobs; they are deferred and retried");
            let reply = Status::local(
                MAIL_SYSTEM_ERROR,
                format!(
                    "delivery to {} stopped before it reported; retrying",
                    held.hop
                ),
            );
            for (id, indexes) in held.jobs {
                // A probe lost with its actor must not keep the hop unprobed for good.
                if let Some(health) = self.hops.get_mut(&held.hop) {
                    health.probe_lost(id);
                }
                let Some(message) = self.messages.get(&id) else {
                    continue;
                };
                let results = indexes
                    .iter()
                    .filter(|&&i| i < message.envelope.recipients.len())
                    .map(|&i| (RecipientIndex(i), Outcome::Deferred(reply.clone())))
                    .collect();
                self.apply_report(DeliveryReport {
                    id,
                    relay: held.hop.to_string(),
                    tls: None,
                    results,
                    unreachable: false,
                    serial,
                    shaping: Vec::new(),
                    held_until: None,
                });
            }
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "delivery_actor_failures_total",
        "Delivery actors that stopped before reporting their jobs (the jobs are retried)."
    );
}
