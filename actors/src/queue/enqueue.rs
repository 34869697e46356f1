//! How a message enters the queue: the Session's [`Enqueue`], written to the spool and
//! answered only after the committer's flush put it on disk (or refused when that does
//! not happen by the Session's deadline).

use std::net::IpAddr;

use actix::prelude::*;
use bytes::Bytes;

use super::{Queue, unix_now};
use crate::protocol::session::AcceptedMessage;
use crate::queue::id::QueueId;
use crate::store::message_data::MessageData;
use crate::store::spool::{Envelope, RecipientState, RecipientStatus, SpoolError};

/// Store a message durably; answered with its id once it is on disk.
///
/// The answer comes by `deadline`, when the Session gives up and tells the client 451:
/// a message that is not on disk by then is taken out of the spool and never
/// delivered, so the client's retry cannot make a duplicate.
#[derive(Message, Debug)]
#[rtype(result = "Result<QueueId, SpoolError>")]
pub struct Enqueue {
    /// The message as the protocol accepted it.
    pub message: AcceptedMessage,
    /// The client that sent it.
    pub client: IpAddr,
    /// When the Session stops waiting.
    pub deadline: std::time::Instant,
}

/// The refusal of a message the Queue could not make durable before the Session's
/// deadline; logged and counted here, answered with 451 by the Session.
fn not_in_time(id: QueueId, when: &str) -> SpoolError {
    metrics::counter!("queue_enqueue_timeouts_total").increment(1);
    tracing::warn!(queue_id = %id, when, "message not queued: the queue could not store it in time; it is removed and will not be delivered");
    SpoolError("the queue could not store the message in time".into())
}

impl Handler<Enqueue> for Queue {
    type Result = ResponseActFuture<Self, Result<QueueId, SpoolError>>;

    fn handle(&mut self, msg: Enqueue, _ctx: &mut Context<Self>) -> Self::Result {
        let deadline = msg.deadline;
        if std::time::Instant::now() >= deadline {
            return Box::pin(fut::ready(Err(not_in_time(
                msg.message.id,
                "before it was written",
            ))));
        }
        let AcceptedMessage {
            id,
            sender,
            recipients,
            options,
            data,
            body_file,
        } = msg.message;
        let size = data.len() + body_file.as_ref().map_or(0, |f| f.len() as usize);
        let mut envelope = Envelope {
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
            arrival: unix_now(),
            size,
            client: msg.client.to_string(),
            options,
            body_file: false,
        };
        let stored = match body_file {
            None => self.spool.insert(id, &envelope, &data),
            Some(file) => self.spool.insert_with_file(id, &mut envelope, &data, file),
        };
        if let Err(e) = stored {
            metrics::counter!("queue_enqueue_errors_total").increment(1);
            tracing::error!(queue_id = %id, error = %e, "cannot write message to spool");
            return Box::pin(fut::ready(Err(e)));
        }
        let committer = self.committer.clone();
        // A body file is read from the spool when it is sent.
        let data = (!envelope.body_file).then(|| MessageData::Inline(Bytes::from(data)));
        let commit = async move {
            tokio::time::timeout_at(deadline.into(), committer.commit())
                .await
                .unwrap_or_else(|_| Err(not_in_time(id, "before it reached the disk")))
        };
        Box::pin(commit.into_actor(self).map(move |result, act, ctx| {
            if let Err(e) = result {
                metrics::counter!("queue_enqueue_errors_total").increment(1);
                let _ = act.spool.remove(id);
                return Err(e);
            }
            tracing::info!(queue_id = %id, client = %envelope.client, from = %envelope.sender, size = envelope.size,
                nrcpt = envelope.recipients.len(), "message accepted");
            metrics::counter!("smtp_messages_received_total").increment(1);
            act.keep(id, envelope);
            if act.has_room() {
                act.dispatch(id, data, ctx);
            } else {
                act.ready.push_back(id);
            }
            Ok(id)
        }))
    }
}
