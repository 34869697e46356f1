//! The delivery part of a message's trace: one `smtp.deliver` span per report of a
//! Delivery actor (one job: one next hop, one connection), under the span the message
//! was received in, from when the Queue handed the job out to when its report came back
//! (waiting for a connection included), with an event for each recipient's outcome. A
//! message given up on while its next hop was down gets one too, begun when it was given
//! up on.

use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::global::BoxedSpan;
use opentelemetry::trace::{Span, SpanKind, Status};

use super::outcomes::ReportOutcomes;
use crate::core::bounce_class::BounceClass;
use crate::core::message_trace::{self, SpanStart, peer_text};
use crate::queue::schedule::{Attempt, AttemptResult};
use crate::store::spool::Envelope;

/// The span of one report, open while its recipients are recorded.
pub(super) struct AttemptSpan {
    span: BoxedSpan,
    /// Recipients the next hop accepted.
    sent: u32,
    /// The first reply that was not an acceptance, for the span's status.
    first_failure: Option<String>,
}

impl AttemptSpan {
    /// The span of `report`'s job, begun at `dispatched`; `None` when the message is not
    /// traced (or tracing is off).
    pub(super) fn start(
        report: &ReportOutcomes<'_>,
        envelope: &Envelope,
        dispatched: Option<SystemTime>,
    ) -> Option<Self> {
        let parent = message_trace::parent_from(envelope.trace.as_deref()?)?;
        let mut attributes = vec![
            KeyValue::new("hermod.queue_id", report.id.to_string()),
            peer_text("server.address", report.relay),
        ];
        if let Some(tls) = report.tls {
            attributes.push(peer_text("tls.negotiated", tls));
        }
        let span = message_trace::start(
            SpanStart {
                name: "smtp.deliver",
                kind: SpanKind::Client,
                start: dispatched.unwrap_or_else(SystemTime::now),
                attributes,
            },
            Some(&parent),
        )?;
        Some(AttemptSpan {
            span,
            sent: 0,
            first_failure: None,
        })
    }

    /// Recipient `address` had `attempt` (its `attempts`-th), of `class` if it failed.
    pub(super) fn recipient(
        &mut self,
        address: &str,
        attempts: u32,
        attempt: &Attempt,
        class: Option<BounceClass>,
    ) {
        let mut attributes = vec![
            peer_text("smtp.rcpt_to", address),
            KeyValue::new("hermod.status", attempt.result.label()),
            KeyValue::new("hermod.attempts", i64::from(attempts)),
            KeyValue::new("smtp.enhanced_code", attempt.code.to_string()),
            peer_text("smtp.reply", &attempt.reply),
        ];
        if let Some(class) = class {
            attributes.push(KeyValue::new("hermod.bounce_class", class.name()));
        }
        self.span.add_event("recipient", attributes);
        match attempt.result {
            AttemptResult::Sent => self.sent += 1,
            _ => {
                self.first_failure
                    .get_or_insert_with(|| message_trace::bounded(&attempt.reply));
            }
        }
    }

    /// The report is recorded: the span ends, an error when no recipient got through.
    pub(super) fn end(mut self) {
        self.span.set_attribute(KeyValue::new(
            "hermod.recipients_sent",
            i64::from(self.sent),
        ));
        match self.first_failure {
            Some(reply) if self.sent == 0 => self.span.set_status(Status::error(reply)),
            _ => self.span.set_status(Status::Ok),
        }
        self.span.end();
    }
}
