//! Which queued messages the Queue holds in memory. Memory follows the mail being worked
//! on, not the size of the queue: a message waiting for a retry at a later time is only
//! its entry in the schedule (its envelope is in the spool), and it is read back when
//! it is due. Recovery streams the spool the same way, so a large backlog neither fills
//! memory nor holds up the start.

use super::schedule::next_due;
use super::{Queue, QueuedMessage, unix_now};
use crate::queue::id::QueueId;
use crate::store::spool::{Envelope, Spool, SpoolError};

impl Queue {
    /// Makes the messages of `ids` that were put away resident again, reading their
    /// envelopes on the commit threads and waiting for them: for the operator's actions,
    /// which are rare. Returns the envelopes that could not be read (the ids stay put away).
    pub(super) fn read_back_now(&mut self, ids: Vec<QueueId>) -> Vec<(QueueId, SpoolError)> {
        let ids: Vec<QueueId> = ids
            .into_iter()
            .filter(|id| !self.messages.contains_key(id) && !self.loading.contains(id))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let asked = ids.clone();
        let read = self.committer.read_now(move |spool| {
            ids.into_iter()
                .map(|id| (id, spool.envelope(id)))
                .collect::<Vec<_>>()
        });
        let read = match read {
            Ok(read) => read,
            Err(e) => return asked.into_iter().map(|id| (id, e.clone())).collect(),
        };
        let mut failed = Vec::new();
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
        failed
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
