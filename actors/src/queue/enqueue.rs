//! How a message enters the queue. A Session hands its accepted message to the
//! [`Intake`]: the commit thread writes it and flushes (group commit), and only then
//! does the Session answer 250; the Queue is told afterwards ([`Stored`]) and schedules
//! the delivery. The Queue actor is not on the path of the 250, and no sled work runs on
//! the arbiter that serves sessions.
//!
//! A message that is not on disk by the Session's deadline is refused with 451 and
//! taken out of the spool: the client's retry is the copy that will be delivered.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::dev::SendError;
use actix::prelude::*;
use bytes::Bytes;

use super::Queue;
use crate::core::id::QueueId;
use crate::events::bounce_rules::SharedBounceRules;
use crate::events::event::{Event, EventKind, tracked_headers};
use crate::events::returned_dsn;
use crate::protocol::session::AcceptedMessage;
use crate::store::committer::Committer;
use crate::store::message_data::MessageData;
use crate::store::spool::{Envelope, RecipientState, RecipientStatus, SpoolError};

/// A message now on disk: the Queue keeps it and schedules its delivery.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Stored {
    /// Its queue id.
    pub id: QueueId,
    /// Its envelope as stored.
    pub envelope: Envelope,
    /// Its data in memory, so the first attempt needs no read from the spool; `None`
    /// for a large message, whose body is read from its file when it is sent.
    pub data: Option<MessageData>,
}

/// The way into the queue for Sessions; clones share the commit thread and the Queue.
#[derive(Clone)]
pub struct Intake {
    committer: Committer,
    queue: Recipient<Stored>,
    /// Set when delivery events are kept.
    events: Option<Arc<IntakeEvents>>,
    /// The egress pools an `X-Hermod-Pool:` field may name (`[egress]`).
    egress: Option<Arc<crate::outbound::egress::Egress>>,
}

/// What the intake needs to write delivery events.
pub struct IntakeEvents {
    /// The node's name (`queue.hostname`), in each event and its id.
    pub node: String,
    /// Header fields copied into every event of a message (`events.headers`).
    pub headers: Vec<String>,
    /// The rules that classify a returned DSN's failures.
    pub rules: SharedBounceRules,
}

impl Intake {
    /// Messages go to disk through `committer`, then to `queue`.
    pub fn new(committer: Committer, queue: Recipient<Stored>) -> Self {
        Intake {
            committer,
            queue,
            events: None,
            egress: None,
        }
    }

    /// The same intake, keeping the egress pool an authenticated sender's
    /// `X-Hermod-Pool:` field names (the field is taken out of every message anyway).
    pub fn with_egress(mut self, egress: Option<Arc<crate::outbound::egress::Egress>>) -> Self {
        self.egress = egress;
        self
    }

    /// The same intake, writing a `Reception` event with each message (and an `OOB`
    /// event for each failure a returned DSN reports) when the committer keeps events.
    pub fn with_events(mut self, events: IntakeEvents) -> Self {
        if self.committer.keeps_events() {
            self.events = Some(Arc::new(events));
        }
        self
    }

    /// Makes `message` durable and hands it to the Queue; `Ok` means the client may
    /// get its 250. By `deadline` the answer is given, one way or the other.
    pub async fn enqueue(
        &self,
        message: AcceptedMessage,
        client: IpAddr,
        deadline: Instant,
    ) -> Result<QueueId, SpoolError> {
        if !self.queue.connected() {
            return Err(SpoolError("queue not running".into()));
        }
        let id = message.id;
        let (mut envelope, data, body_file) = envelope_of(message, client);
        let (data, body_file) =
            super::pool_header::take(&mut envelope, data, body_file, self.egress.as_deref())
                .await
                .map_err(|e| SpoolError(format!("taking X-Hermod-Pool out of the message: {e}")))?;
        let events = match &self.events {
            Some(events) => intake_events(events, id, &mut envelope, &data),
            None => Vec::new(),
        };
        let stored = self
            .committer
            .store(id, envelope, data.clone(), body_file, events, deadline);
        let envelope = match tokio::time::timeout_at(deadline.into(), stored).await {
            Ok(Ok(envelope)) => envelope,
            Ok(Err(e)) => {
                // Written, maybe, but its flush failed: the client is told 451, so a
                // later flush must not make it durable.
                self.committer.withdraw(id);
                return Err(e);
            }
            Err(_) => {
                // Written or not, it must not stay: the client is told 451.
                self.committer.withdraw(id);
                return Err(SpoolError::not_in_time(id, "before it reached the disk"));
            }
        };
        let data = (!envelope.body_file).then(|| MessageData::Inline(data));
        self.tell_queue(Stored { id, envelope, data });
        Ok(id)
    }

    /// Hands a stored message to the Queue without waiting for it (the client's 250
    /// does not depend on it), but respecting its mailbox's capacity. If the Queue is
    /// gone, the message waits in the spool for the next start.
    fn tell_queue(&self, stored: Stored) {
        crate::mailbox::QUEUE.sent();
        match self.queue.try_send(stored) {
            Ok(()) => {}
            Err(SendError::Full(stored)) => {
                let queue = self.queue.clone();
                actix::spawn(async move {
                    let _ = queue.send(stored).await;
                });
            }
            Err(SendError::Closed(stored)) => {
                crate::mailbox::QUEUE.taken();
                tracing::error!(queue_id = %stored.id, "queue not running; the message stays in the spool until the next start");
            }
        }
    }
}

/// The `Reception` event of a new message (its tracked headers copied into its
/// envelope first), and an `OOB` event for each failure it reports if it is a DSN that
/// came back for a message hermod sent.
fn intake_events(
    events: &IntakeEvents,
    id: QueueId,
    envelope: &mut Envelope,
    data: &[u8],
) -> Vec<Vec<u8>> {
    envelope.tracking = tracked_headers(data, &events.headers);
    let queue_id = id.to_string();
    let mut reception = Event::about(EventKind::Reception, &events.node, &queue_id, envelope);
    reception.recipients = envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let mut out = vec![reception.to_bytes()];
    // DSNs come from the null sender (RFC 3464 §2); anything else is not one.
    if envelope.sender.is_empty() && returned_dsn::looks_like_dsn(data) {
        let rules = events.rules.current();
        for failure in returned_dsn::failures(data, &events.node, &rules) {
            let mut oob = Event::about(EventKind::Oob, &events.node, &failure.queue_id, envelope);
            oob.recipient = Some(failure.recipient);
            oob.next_hop = Some(failure.reporting_mta);
            oob.reply = Some(failure.diagnostic);
            oob.code = Some(failure.code.to_string());
            oob.bounce_class = Some(failure.class);
            oob.sender = String::new();
            oob.tenant = None;
            oob.headers = Vec::new();
            tracing::info!(queue_id = %failure.queue_id, dsn_queue_id = %id, to = %oob.recipient.as_deref().unwrap_or(""),
                bounce_class = failure.class.name(), "returned DSN matched to a sent message");
            metrics::counter!("delivery_oob_bounces_total", "class" => failure.class.name())
                .increment(1);
            out.push(oob.to_bytes());
        }
    }
    out
}

/// The envelope of a new message, its data (the head only for a large message) and its
/// body file.
fn envelope_of(
    message: AcceptedMessage,
    client: IpAddr,
) -> (
    Envelope,
    Bytes,
    Option<crate::protocol::body_sink::IncomingBody>,
) {
    let AcceptedMessage {
        sender,
        recipients,
        options,
        data,
        body_file,
        user,
        hold,
        route,
        trace,
        tls_report,
        ..
    } = message;
    let size = data.len() + body_file.as_ref().map_or(0, |f| f.len() as usize);
    let arrival = super::unix_now();
    let envelope = Envelope {
        sender: sender.to_string(),
        recipients: recipients
            .iter()
            .map(|m| RecipientState {
                address: m.to_string(),
                domain: m.domain.clone(),
                status: RecipientStatus::Pending,
                attempts: 0,
            })
            .collect(),
        arrival,
        size,
        client: client.to_string(),
        options,
        body_file: false,
        // A DMARC quarantine: on disk, waiting for `hermod queue release`.
        held: hold,
        route,
        user,
        tracking: Vec::new(),
        trace,
        tls_report,
        pool: None,
    };
    (envelope, Bytes::from(data), body_file)
}

impl Handler<Stored> for Queue {
    type Result = ();

    fn handle(&mut self, stored: Stored, ctx: &mut Context<Self>) {
        let started = std::time::Instant::now();
        crate::mailbox::QUEUE.taken();
        let Stored { id, envelope, data } = stored;
        tracing::info!(queue_id = %id, client = %envelope.client, user = envelope.user.as_deref(),
            from = %envelope.sender, size = envelope.size, nrcpt = envelope.recipients.len(), "message accepted");
        metrics::counter!("smtp_messages_received_total").increment(1);
        self.totals.received += 1;
        if self.has_room() {
            self.keep(id, envelope);
            self.dispatch(id, data, ctx);
        } else {
            // A backlog waits in the spool, not in memory: read back when its turn
            // comes within the in-flight window.
            self.evicted += 1;
            self.ready.push_back(id);
        }
        super::handling::handled(&super::handling::STORED, started);
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "smtp_messages_received_total",
        "Messages accepted (250 after DATA) and on disk."
    );
    metrics::describe_counter!(
        "delivery_oob_bounces_total",
        "Failures reported by DSNs that came back later for messages hermod sent, by bounce class."
    );
}
