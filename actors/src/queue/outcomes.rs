//! What the Queue records of each delivery attempt once the schedule has applied it:
//! the log line, the metrics, the status page's list, the failure's bounce class, the
//! delivery event and the trace's span, all from one place so that they agree.

use super::attempt_trace::AttemptSpan;
use super::{Queue, recent};
use crate::core::bounce_class::BounceClass;
use crate::core::id::QueueId;
use crate::events::event::{Event, EventKind};
use crate::queue::schedule::{Attempt, AttemptResult};
use crate::store::spool::{Envelope, RecipientStatus};

/// The report the attempts came in.
pub(super) struct ReportOutcomes<'a> {
    /// The message.
    pub id: QueueId,
    /// `host[ip]:port` of the server that answered.
    pub relay: &'a str,
    /// The TLS of the connection, if any.
    pub tls: Option<&'a str>,
    /// Unix seconds of the report.
    pub now: u64,
}

impl Queue {
    /// Records each recipient's attempt (index into the envelope, what it made of it).
    pub(super) fn note_attempts(
        &mut self,
        report: &ReportOutcomes<'_>,
        attempts: Vec<(usize, Attempt)>,
    ) {
        let Some(message) = self.messages.get(&report.id) else {
            return;
        };
        if attempts.is_empty() {
            // A late report of recipients no longer in flight: nothing to record.
            return;
        }
        let envelope = &message.envelope;
        let mut span = AttemptSpan::start(report, envelope, message.dispatched);
        let mut events = Vec::new();
        for (i, attempt) in attempts {
            let rcpt = &envelope.recipients[i];
            // A give-up is an expiry, whatever the last reply it quotes says.
            let class = match attempt.result {
                AttemptResult::Sent => None,
                _ if attempt.gave_up => Some(BounceClass::MessageExpired),
                _ => Some(
                    self.settings
                        .bounce_rules
                        .classify(attempt.code, &attempt.reply)
                        .class,
                ),
            };
            log_attempt(report, envelope, i, &attempt, class);
            if let Some(span) = span.as_mut() {
                span.recipient(&rcpt.address, rcpt.attempts, &attempt, class);
            }
            let status = attempt.result.label();
            metrics::counter!("delivery_attempts_total", "status" => status).increment(1);
            match (attempt.result, class) {
                (AttemptResult::Sent, _) => {
                    let delay_s = report.now.saturating_sub(envelope.arrival);
                    metrics::histogram!("delivery_time_in_queue_seconds").record(delay_s as f64);
                }
                (AttemptResult::Bounced, Some(class)) => {
                    metrics::counter!("delivery_bounces_total", "class" => class.name())
                        .increment(1);
                }
                (AttemptResult::Deferred, Some(class)) => {
                    metrics::counter!("delivery_deferrals_total", "class" => class.name())
                        .increment(1);
                }
                _ => {}
            }
            self.totals.count(attempt.result);
            self.recent.push(recent::RecentDelivery {
                at: report.now,
                queue_id: report.id.to_string(),
                to: rcpt.address.clone(),
                relay: report.relay.to_string(),
                status,
                reply: attempt.reply.clone(),
            });
            if self.committer.keeps_events() {
                events.push(self.attempt_event(report, envelope, i, &attempt, class));
            }
        }
        if let Some(span) = span {
            span.end();
        }
        for event in events {
            self.committer.event(event.to_bytes());
            self.unflushed = true;
        }
    }

    /// The delivery event of one recipient's attempt.
    fn attempt_event(
        &self,
        report: &ReportOutcomes<'_>,
        envelope: &Envelope,
        i: usize,
        attempt: &Attempt,
        class: Option<BounceClass>,
    ) -> Event {
        let kind = match attempt.result {
            AttemptResult::Sent => EventKind::Delivery,
            AttemptResult::Deferred => EventKind::TransientFailure,
            AttemptResult::Bounced if attempt.gave_up => EventKind::Expiration,
            AttemptResult::Bounced => EventKind::Bounce,
        };
        let rcpt = &envelope.recipients[i];
        let mut event = Event::about(
            kind,
            &self.settings.hostname,
            &report.id.to_string(),
            envelope,
        );
        event.recipient = Some(rcpt.address.clone());
        event.next_hop = Some(report.relay.to_string());
        event.reply = Some(attempt.reply.clone());
        event.code = Some(attempt.code.to_string());
        event.bounce_class = class;
        event.attempts = Some(rcpt.attempts);
        event
    }

    /// Appends a `ShapingAction` event for each traffic-shaping action a reply of this
    /// report's job triggered.
    pub(super) fn emit_shaping(&mut self, report: &crate::outbound::job::DeliveryReport) {
        if report.shaping.is_empty() || !self.committer.keeps_events() {
            return;
        }
        let Some(message) = self.messages.get(&report.id) else {
            return;
        };
        let queue_id = report.id.to_string();
        let mut events = Vec::new();
        for action in &report.shaping {
            let mut event = Event::about(
                EventKind::ShapingAction,
                &self.settings.hostname,
                &queue_id,
                &message.envelope,
            );
            event.next_hop = Some(format!("site:{}", action.site));
            event.reply = Some(action.reason.clone());
            event.action = Some(format!(
                "{} for {}s by rule {}",
                action.kind, action.duration_s, action.rule
            ));
            events.push(event.to_bytes());
        }
        for event in events {
            self.committer.event(event);
            self.unflushed = true;
        }
    }

    /// Appends the `AdminAction` event of an operator's `action` (built before the
    /// action changed the message), to be flushed with the change it describes.
    pub(super) fn emit_admin(&mut self, event: Option<Event>, action: &str) {
        if let Some(mut event) = event {
            event.action = Some(action.to_string());
            self.committer.event(event.to_bytes());
            self.unflushed = true;
        }
    }
}

fn log_attempt(
    report: &ReportOutcomes<'_>,
    envelope: &Envelope,
    i: usize,
    attempt: &Attempt,
    class: Option<BounceClass>,
) {
    let rcpt = &envelope.recipients[i];
    let delay_s = report.now.saturating_sub(envelope.arrival);
    let status = attempt.result.label();
    let tls = report.tls.unwrap_or("none");
    let bounce_class = class.map(BounceClass::name);
    match rcpt.status {
        RecipientStatus::Deferred { next_attempt, .. } => {
            tracing::info!(queue_id = %report.id, to = %rcpt.address, relay = %report.relay,
                tls, delay_s, attempts = rcpt.attempts, status,
                next_attempt_in_s = next_attempt.saturating_sub(report.now),
                reply = %attempt.reply, bounce_class, "delivery attempt");
        }
        _ => {
            tracing::info!(queue_id = %report.id, to = %rcpt.address, relay = %report.relay,
                tls, delay_s, attempts = rcpt.attempts, status, reply = %attempt.reply,
                bounce_class, "delivery attempt");
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(super) fn describe_metrics() {
    metrics::describe_counter!(
        "delivery_bounces_total",
        "Recipients bounced (failed for good), by bounce class (see config/bounce_rules.toml)."
    );
    metrics::describe_counter!(
        "delivery_deferrals_total",
        "Recipients deferred (to be tried again), by bounce class."
    );
}
