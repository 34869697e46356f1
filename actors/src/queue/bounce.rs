//! The end of a message: when every recipient is final, the failed ones are reported to
//! the sender (RFC 3464) and the message leaves the spool. A report that itself cannot
//! be delivered (its sender is the null sender) is never dropped: it goes to the
//! configured postmaster, or stays queued with a log line until an operator acts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Queue, QueuedMessage, schedule, unix_now};
use crate::core::bounce_class::BounceClass;
use crate::core::id::QueueId;
use crate::queue::dsn::{self, BounceRequest, FailedRecipient};
use crate::store::spool::{Envelope, RecipientState, RecipientStatus, SpoolError};

impl Queue {
    /// Every recipient is final: report the failed ones, remove the message.
    pub(super) fn finalize(&mut self, id: QueueId) {
        let Some(mut message) = self.messages.remove(&id) else {
            return;
        };
        let rules = &self.settings.bounce_rules;
        let failed: Vec<FailedRecipient> = message
            .envelope
            .recipients
            .iter()
            .filter_map(|r| match &r.status {
                RecipientStatus::Failed { reply, code } => Some(FailedRecipient {
                    address: r.address.clone(),
                    status: *code,
                    diagnostic: reply.clone(),
                    class: if schedule::is_gave_up(*code, reply) {
                        BounceClass::MessageExpired
                    } else {
                        rules.classify(*code, reply).class
                    },
                }),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            let notify = if message.envelope.sender.is_empty() {
                self.postmaster_for(&failed)
            } else {
                Some(message.envelope.sender.clone())
            };
            let Some(notify) = notify else {
                self.keep_undeliverable_bounce(id, &mut message, &failed);
                self.messages.insert(id, message);
                return;
            };
            if let Err(e) = self.bounce(id, &message.envelope, &failed, &notify) {
                tracing::error!(queue_id = %id, error = %e, "cannot create bounce; message kept for retry");
                self.messages.insert(id, message);
                self.schedule.insert((
                    unix_now() + self.settings.retry_interval.as_secs().max(1),
                    id,
                ));
                return;
            }
        }
        self.unflushed = true;
        self.committer.remove(id);
        tracing::info!(queue_id = %id, "removed");
        metrics::counter!("queue_messages_removed_total").increment(1);
    }

    /// The postmaster, for a null-sender message that failed, unless it was the
    /// postmaster that failed (then nobody is left to tell).
    fn postmaster_for(&self, failed: &[FailedRecipient]) -> Option<String> {
        let postmaster = self.settings.postmaster.clone()?;
        let to_postmaster = failed
            .iter()
            .all(|f| f.address.eq_ignore_ascii_case(&postmaster));
        (!to_postmaster).then_some(postmaster)
    }

    /// A bounce nobody can receive stays in the queue, retried at the longest interval,
    /// so an operator can still find it (and its original's headers) instead of losing
    /// the only notice of a failed message.
    fn keep_undeliverable_bounce(
        &mut self,
        id: QueueId,
        message: &mut QueuedMessage,
        failed: &[FailedRecipient],
    ) {
        let next_attempt = unix_now() + self.settings.max_retry_interval.as_secs().max(1);
        for rcpt in &mut message.envelope.recipients {
            if let RecipientStatus::Failed { reply, .. } = &rcpt.status {
                rcpt.status = RecipientStatus::Deferred {
                    next_attempt,
                    last_reply: reply.clone(),
                };
            }
        }
        let to: Vec<&str> = failed.iter().map(|f| f.address.as_str()).collect();
        tracing::error!(queue_id = %id, to = ?to, reply = %failed[0].diagnostic,
            retry_in_s = self.settings.max_retry_interval.as_secs(),
            "undeliverable bounce kept in queue; set queue.postmaster to have it reported");
        metrics::counter!("queue_undeliverable_bounces_total").increment(1);
        self.unflushed = true;
        self.committer.update(id, &message.envelope);
        self.schedule.insert((next_attempt, id));
    }

    /// Queues a delivery status notification about `failed` recipients of message `id`,
    /// addressed to `notify`, from the null sender.
    fn bounce(
        &mut self,
        id: QueueId,
        envelope: &Envelope,
        failed: &[FailedRecipient],
        notify: &str,
    ) -> Result<(), SpoolError> {
        let bounce_id = self.ids.next_id();
        let notify_domain = notify
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let mut bounce = Envelope {
            sender: String::new(),
            recipients: vec![RecipientState {
                address: notify.to_string(),
                domain: notify_domain,
                status: RecipientStatus::Pending,
                attempts: 0,
            }],
            arrival: unix_now(),
            size: 0,
            client: "127.0.0.1".into(),
            // The bounce quotes the original's headers: it needs what the original needed.
            options: envelope.options,
            body_file: false,
            held: false,
            user: None,
            route: None,
            tracking: Vec::new(),
            trace: None,
            tls_report: false,
            pool: None,
        };
        // Read, built and written in one turn of the spool writer (the original's
        // headers are read there): the Queue waits once.
        let (hostname, sender) = (self.settings.hostname.clone(), envelope.sender.clone());
        let (to, failed) = (notify.to_string(), failed.to_vec());
        let (arrival, body_file) = (envelope.arrival, envelope.body_file);
        let written = bounce.clone();
        let size = self.committer.read_now(move |spool| {
            // Only the header section is returned; a large body file is not read through.
            let original = match spool.data(id, body_file)? {
                Some(data) => data
                    .prefix(dsn::ORIGINAL_PREFIX)
                    .map_err(|e| SpoolError(format!("reading the original message: {e}")))?,
                None => Vec::new(),
            };
            let request = BounceRequest {
                reporting_mta: &hostname,
                original_id: id,
                original_sender: &sender,
                notify: &to,
                arrival: UNIX_EPOCH + Duration::from_secs(arrival),
                failed: &failed,
                original: &original,
            };
            let data = dsn::build_bounce(&request, bounce_id, SystemTime::now());
            let mut written = written;
            written.size = data.len();
            spool.insert(bounce_id, &written, &data)?;
            Ok::<usize, SpoolError>(data.len())
        })??;
        bounce.size = size;
        if envelope.sender.is_empty() {
            tracing::warn!(queue_id = %id, bounce_id = %bounce_id, to = %notify, "undeliverable bounce reported to the postmaster");
        } else {
            tracing::info!(queue_id = %id, bounce_id = %bounce_id, to = %notify, "sender non-delivery notification");
        }
        metrics::counter!("queue_bounces_total").increment(1);
        self.keep(bounce_id, bounce);
        self.ready.push_back(bounce_id);
        let committer = self.committer.clone();
        actix::spawn(async move {
            if let Err(e) = committer.commit().await {
                tracing::error!(error = %e, "flushing bounce failed");
            }
        });
        Ok(())
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "queue_messages_removed_total",
        "Messages removed from the queue with every recipient final."
    );
    metrics::describe_counter!(
        "queue_undeliverable_bounces_total",
        "Bounces that could not be delivered and had no postmaster to go to."
    );
    metrics::describe_counter!(
        "queue_bounces_total",
        "Bounces (delivery status notifications) created."
    );
}
