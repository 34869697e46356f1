//! Which queued messages the Queue holds in memory. Memory follows the mail being worked
//! on, not the size of the queue: a message waiting for a retry at a later time is only
//! its entry in the schedule (its envelope is in the spool), and it is read back when
//! it is due. Recovery streams the spool the same way, so a large backlog neither fills
//! memory nor holds up the start.
//!
//! Reads go through the spool writer thread, in order after the writes the Queue asked
//! for before them, and come back as messages: the envelope of a message put away first,
//! then its data only if some recipient has a job to go out (mail for a hop that is down
//! waits without its data being read).

use actix::prelude::*;

use super::schedule::next_due;
use super::{Queue, QueuedMessage, unix_now};
use crate::core::id::QueueId;
use crate::store::message_data::MessageData;
use crate::store::spool::{Envelope, Spool, SpoolError};

/// Envelopes read back per request of [`Queue::read_back_now`].
const READ_BACK_CHUNK: usize = 256;

impl Queue {
    /// Makes the messages of `ids` that were put away resident again, reading their
    /// envelopes on the commit threads and waiting for them: for the operator's actions,
    /// which are rare. The reads go in chunks, so new messages are written between them
    /// even when the queue is long. Returns the ids whose envelope could not be read (they
    /// stay put away).
    pub(super) fn read_back_now(&mut self, ids: Vec<QueueId>) -> Vec<(QueueId, SpoolError)> {
        let mut ids: Vec<QueueId> = ids
            .into_iter()
            .filter(|id| !self.messages.contains_key(id) && !self.loading.contains(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut failed = Vec::new();
        for chunk in ids.chunks(READ_BACK_CHUNK) {
            let asked = chunk.to_vec();
            let read = self.committer.read_now(move |spool| {
                asked
                    .into_iter()
                    .map(|id| (id, spool.envelope(id)))
                    .collect::<Vec<_>>()
            });
            let read = match read {
                Ok(read) => read,
                Err(e) => {
                    failed.extend(chunk.iter().map(|&id| (id, e.clone())));
                    continue;
                }
            };
            for (id, envelope) in read {
                match envelope {
                    Ok(Some(envelope)) => {
                        self.evicted = self.evicted.saturating_sub(1);
                        self.keep(id, envelope);
                    }
                    // Gone: its dispatch says so.
                    Ok(None) => {}
                    Err(e) => failed.push((id, e)),
                }
            }
        }
        failed
    }

    /// Reads message `id` back on the spool writer thread (`what`), then dispatches it;
    /// until then it is `loading` and takes room in flight.
    pub(super) fn load(&mut self, id: QueueId, what: ReadBack, ctx: &mut Context<Self>) {
        self.loading.insert(id);
        let read = self.committer.read(move |spool| what.read(spool, id));
        ctx.spawn(read.into_actor(self).map(move |read, act, ctx| {
            act.loaded(id, read.and_then(|r| r), ctx);
            act.pump(ctx);
        }));
    }

    /// A read started by [`Queue::load`] came back.
    fn loaded(
        &mut self,
        id: QueueId,
        read: Result<ReadBackResult, SpoolError>,
        ctx: &mut Context<Self>,
    ) {
        self.loading.remove(&id);
        match read {
            Ok(ReadBackResult::Envelope(Some(envelope))) => {
                if !self.messages.contains_key(&id) {
                    self.evicted = self.evicted.saturating_sub(1);
                    self.keep(id, envelope);
                }
                self.dispatch(id, None, ctx);
            }
            Ok(ReadBackResult::Envelope(None)) => {
                tracing::error!(queue_id = %id, "a scheduled message is gone from the spool");
                self.evicted = self.evicted.saturating_sub(1);
            }
            Ok(ReadBackResult::Data(Some(data))) => self.dispatch(id, Some(data), ctx),
            Ok(ReadBackResult::Data(None)) => {
                if self.messages.remove(&id).is_some() {
                    tracing::error!(queue_id = %id, "message data missing from spool; dropping envelope");
                    self.committer.remove(id);
                }
            }
            Err(e) => {
                // Still in the spool: try again at the next retry step.
                tracing::error!(queue_id = %id, error = %e, "cannot read message from spool; retrying later");
                let at = unix_now() + self.settings.retry_interval.as_secs().max(1);
                self.schedule.insert((at, id));
            }
        }
    }

    /// Holds `envelope` in memory as message `id`, nothing of it in flight.
    pub(super) fn keep(&mut self, id: QueueId, envelope: Envelope) {
        let n = envelope.recipients.len();
        self.messages.insert(
            id,
            QueuedMessage {
                envelope,
                in_flight: vec![false; n],
                jobs: 0,
                cost: 0,
                dispatched: None,
            },
        );
    }

    /// Puts message `id` away until it is due again, if nothing of it is in flight or
    /// waiting for a down hop (its state is in the spool already).
    pub(super) fn evict(&mut self, id: QueueId) {
        let idle = self
            .messages
            .get(&id)
            .is_some_and(|m| m.jobs == 0 && !m.in_flight.iter().any(|&f| f));
        if idle {
            self.messages.remove(&id);
            self.evicted += 1;
        }
    }

    /// Loads every message left in the spool, streaming: one due later becomes a
    /// schedule entry, one due now a ready entry (its envelope is read again when it is
    /// dispatched); only messages whose recipients are all final are held, to be
    /// finished. Returns how many messages were recovered.
    pub fn recover(&mut self, spool: &dyn Spool) -> Result<usize, SpoolError> {
        let now = unix_now();
        let mut newest = None;
        let mut finished = Vec::new();
        let count = spool.recover_each(&mut |id, envelope| {
            newest = newest.max(Some(id));
            if envelope.held {
                // Waits on disk until the operator releases it.
                self.evicted += 1;
                return;
            }
            match next_due(&envelope) {
                Some(at) if at > now => {
                    self.schedule.insert((at, id));
                    self.evicted += 1;
                }
                Some(_) => {
                    self.ready.push_back(id);
                    self.evicted += 1;
                }
                None => finished.push((id, envelope)),
            }
        })?;
        if let Some(newest) = newest {
            self.ids.advance_past(newest);
        }
        for (id, envelope) in finished {
            self.keep(id, envelope);
            self.finalize(id);
        }
        Ok(count)
    }
}

/// What [`Queue::load`] reads back of a message.
#[derive(Debug, Clone, Copy)]
pub(super) enum ReadBack {
    /// The envelope of a message put away.
    Envelope,
    /// The data of a message held in memory (`body_file`: its envelope's flag).
    Data { body_file: bool },
}

/// What came back.
enum ReadBackResult {
    Envelope(Option<Envelope>),
    Data(Option<MessageData>),
}

impl ReadBack {
    fn read(self, spool: &dyn Spool, id: QueueId) -> Result<ReadBackResult, SpoolError> {
        Ok(match self {
            ReadBack::Envelope => ReadBackResult::Envelope(spool.envelope(id)?),
            ReadBack::Data { body_file } => ReadBackResult::Data(spool.data(id, body_file)?),
        })
    }
}
