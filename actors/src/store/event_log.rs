//! The event log: delivery events kept in the spool's database until every destination
//! has acknowledged them. The commit thread appends each event in the same group commit
//! as the state change it describes (a message's arrival, a recipient's delivery), so a
//! crash loses neither or both; the senders read only what a flush made durable, each
//! from its own cursor, and what every destination has is pruned. The backlog is bounded:
//! past `max_backlog` the oldest events are dropped, counted and logged, so a destination
//! that stays down never fills the disk.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::id::QueueId;
use crate::store::spool::SpoolError;

/// Events appended and not yet pruned, the cursors of their destinations, and how far a
/// flush has made them durable.
pub struct EventLog {
    events: sled::Tree,
    /// Per destination name: the sequence number of the next event it should get.
    cursors: sled::Tree,
    /// The sequence number the next event gets.
    next: AtomicU64,
    /// The highest sequence number whose append has finished (0: none).
    written: AtomicU64,
    /// The highest sequence number a flush has made durable; senders read no further.
    flushed: AtomicU64,
    /// Events kept (appended and not pruned).
    kept: AtomicU64,
    /// The destinations in force: pruning keeps what the slowest of them has not had.
    destinations: Mutex<Vec<String>>,
    /// Events of new messages whose flush has not been answered yet, by message.
    pending: Mutex<HashMap<QueueId, Vec<u64>>>,
    max_backlog: u64,
}

impl EventLog {
    /// Opens the log in `db` (the spool's database, so one flush covers both), keeping at
    /// most `max_backlog` events.
    pub fn open(db: &sled::Db, max_backlog: u64) -> Result<Self, SpoolError> {
        let events = db.open_tree("events")?;
        let cursors = db.open_tree("event_cursors")?;
        let last = match events.last()? {
            Some((key, _)) => seq_of(&key),
            None => 0,
        };
        // Sequence numbers go on from the last kept event or the furthest cursor (which is
        // past every event a destination had, pruned or not), or from the clock if that is
        // further: an event id is never given twice across restarts, even when the clock
        // stepped back while the log was empty.
        let mut furthest = 0;
        for entry in cursors.iter() {
            let (_, value) = entry?;
            furthest = furthest.max(seq_of(&value));
        }
        let now_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let next = (last + 1).max(furthest).max(now_micros);
        Ok(EventLog {
            kept: AtomicU64::new(events.len() as u64),
            events,
            cursors,
            next: AtomicU64::new(next),
            written: AtomicU64::new(last),
            flushed: AtomicU64::new(last),
            destinations: Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
            max_backlog: max_backlog.max(1),
        })
    }

    /// Names the destinations in force; a cursor of one no longer named is forgotten, so
    /// its backlog does not hold events back.
    pub fn set_destinations(&self, names: &[String]) -> Result<(), SpoolError> {
        for entry in self.cursors.iter() {
            let (key, _) = entry?;
            if !names.iter().any(|n| n.as_bytes() == &key[..]) {
                self.cursors.remove(key)?;
            }
        }
        *self.destinations.lock().unwrap_or_else(|p| p.into_inner()) = names.to_vec();
        Ok(())
    }

    /// Appends one event (the commit thread does, beside the write it describes); durable
    /// with the next flush.
    pub fn append(&self, event: &[u8]) -> Result<u64, SpoolError> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.events.insert(seq.to_be_bytes(), event)?;
        self.written.fetch_max(seq, Ordering::Release);
        if self.kept.fetch_add(1, Ordering::Relaxed) + 1 > self.max_backlog {
            self.drop_oldest()?;
        }
        Ok(seq)
    }

    /// The highest sequence number appended so far: the flusher reads it before it
    /// flushes, and after a good flush everything up to it is durable.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Everything up to `seq` is on disk: the senders may send it.
    pub fn flushed_up_to(&self, seq: u64) {
        self.flushed.fetch_max(seq, Ordering::Release);
    }

    /// The sequence number of the next event `destination` should get: its cursor, or the
    /// oldest kept event for a destination new to this log.
    pub fn cursor(&self, destination: &str) -> Result<u64, SpoolError> {
        if let Some(value) = self.cursors.get(destination)? {
            return Ok(seq_of(&value));
        }
        Ok(self.events.first()?.map_or(0, |(key, _)| seq_of(&key)))
    }

    /// Up to `limit` durable events from sequence number `from` on, with their numbers.
    pub fn batch(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, SpoolError> {
        let durable = self.flushed.load(Ordering::Acquire);
        let mut out = Vec::new();
        for entry in self.events.range(from.to_be_bytes()..) {
            let (key, value) = entry?;
            let seq = seq_of(&key);
            if seq > durable || out.len() == limit {
                break;
            }
            out.push((seq, value.to_vec()));
        }
        Ok(out)
    }

    /// `destination` has every event before `next`: moves its cursor and prunes what
    /// every destination has.
    pub fn acknowledge(&self, destination: &str, next: u64) -> Result<(), SpoolError> {
        self.cursors.insert(destination, &next.to_be_bytes())?;
        let names = self
            .destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut lowest = u64::MAX;
        for name in &names {
            lowest = lowest.min(self.cursor(name)?);
        }
        if lowest == u64::MAX {
            return Ok(());
        }
        self.prune_below(lowest)
    }

    /// Events kept that a destination whose cursor is at `cursor` has not had. About:
    /// from sequence numbers, not a count of the tree, so it is cheap on every batch;
    /// events taken back or dropped leave it an upper bound, at most `kept`.
    pub fn backlog(&self, cursor: u64) -> u64 {
        (self.written() + 1).saturating_sub(cursor).min(self.kept())
    }

    /// Events kept in all.
    pub fn kept(&self) -> u64 {
        self.kept.load(Ordering::Relaxed)
    }

    /// Appends the events of new message `id` (its `Reception`, and `OOB` for a returned
    /// DSN) and remembers them until its flush is answered ([`EventLog::settled`]), so a
    /// message its client is told 451 for takes its events back out
    /// ([`EventLog::withdraw`]).
    pub fn append_for(&self, id: QueueId, events: &[Vec<u8>]) -> Result<(), SpoolError> {
        let mut seqs = Vec::with_capacity(events.len());
        for event in events {
            seqs.push(self.append(event)?);
        }
        if !seqs.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, seqs);
        }
        Ok(())
    }

    /// Messages `ids` are on disk and their clients answered: their events stay.
    pub fn settled(&self, ids: impl Iterator<Item = QueueId>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return;
        }
        for id in ids {
            pending.remove(&id);
        }
    }

    /// Takes the events of message `id`, which its client was told 451 for, back out.
    pub fn withdraw(&self, id: QueueId) -> Result<(), SpoolError> {
        let seqs = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let Some(seqs) = seqs else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for seq in &seqs {
            batch.remove(&seq.to_be_bytes());
        }
        self.events.apply_batch(batch)?;
        self.kept
            .fetch_sub((seqs.len() as u64).min(self.kept()), Ordering::Relaxed);
        Ok(())
    }

    fn prune_below(&self, seq: u64) -> Result<(), SpoolError> {
        let mut pruned = 0u64;
        for entry in self.events.range(..seq.to_be_bytes()) {
            let (key, _) = entry?;
            self.events.remove(key)?;
            pruned += 1;
        }
        if pruned > 0 {
            self.kept
                .fetch_sub(pruned.min(self.kept()), Ordering::Relaxed);
        }
        Ok(())
    }

    /// The backlog is over its bound: the oldest tenth goes, and every cursor behind it
    /// moves on.
    fn drop_oldest(&self) -> Result<(), SpoolError> {
        let excess = (self.max_backlog / 10).max(1);
        let mut dropped = 0u64;
        let mut first_kept = 0;
        for entry in self.events.iter() {
            let (key, _) = entry?;
            if dropped == excess {
                first_kept = seq_of(&key);
                break;
            }
            self.events.remove(key)?;
            dropped += 1;
        }
        self.kept
            .fetch_sub(dropped.min(self.kept()), Ordering::Relaxed);
        for entry in self.cursors.iter() {
            let (name, value) = entry?;
            if seq_of(&value) < first_kept {
                self.cursors.insert(name, &first_kept.to_be_bytes())?;
            }
        }
        metrics::counter!("events_dropped_total").increment(dropped);
        tracing::error!(
            dropped,
            max_backlog = self.max_backlog,
            "event backlog full: the oldest events were dropped (a destination is down or too slow; see events_backlog)"
        );
        Ok(())
    }
}

fn seq_of(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "events_dropped_total",
        "Delivery events dropped unsent because the backlog reached events.max_backlog."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max: u64) -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, EventLog::open(&db, max).unwrap())
    }

    #[test]
    fn only_flushed_events_are_sent_and_acknowledged_ones_pruned() {
        let (_dir, log) = log(100);
        log.set_destinations(&["a".into(), "b".into()]).unwrap();
        let first = log.append(b"1").unwrap();
        log.append(b"2").unwrap();
        assert!(log.batch(log.cursor("a").unwrap(), 10).unwrap().is_empty());
        log.flushed_up_to(log.written());
        let batch = log.batch(log.cursor("a").unwrap(), 10).unwrap();
        assert_eq!(
            batch.iter().map(|(_, e)| e.as_slice()).collect::<Vec<_>>(),
            [b"1", b"2"]
        );
        log.acknowledge("a", first + 2).unwrap();
        assert_eq!(log.kept(), 2, "b has not had them");
        assert_eq!(log.backlog(log.cursor("a").unwrap()), 0);
        assert_eq!(log.backlog(log.cursor("b").unwrap()), 2);
        log.acknowledge("b", first + 1).unwrap();
        assert_eq!(log.kept(), 1);
        assert_eq!(log.batch(log.cursor("b").unwrap(), 10).unwrap()[0].1, b"2");
    }

    #[test]
    fn a_withdrawn_message_takes_its_events_back_and_a_settled_one_keeps_them() {
        let (_dir, log) = log(100);
        log.append_for(QueueId(1), &[b"r1".to_vec(), b"o1".to_vec()])
            .unwrap();
        log.append_for(QueueId(2), &[b"r2".to_vec()]).unwrap();
        log.settled([QueueId(2)].into_iter());
        log.withdraw(QueueId(1)).unwrap();
        log.withdraw(QueueId(2)).unwrap();
        log.flushed_up_to(log.written());
        let left: Vec<Vec<u8>> = log
            .batch(0, 10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(left, [b"r2".to_vec()]);
        assert_eq!(log.kept(), 1);
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_and_moves_cursors_on() {
        let (_dir, log) = log(10);
        log.set_destinations(&["a".into()]).unwrap();
        let first = log.append(b"0").unwrap();
        log.acknowledge("a", first).unwrap();
        for i in 1..=10 {
            log.append(format!("{i}").as_bytes()).unwrap();
        }
        assert_eq!(log.kept(), 10);
        assert_eq!(log.cursor("a").unwrap(), first + 1);
    }

    #[test]
    fn sequence_numbers_go_on_past_every_cursor_when_all_was_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = EventLog::open(&db, 100).unwrap();
        log.set_destinations(&["a".into()]).unwrap();
        // A cursor far ahead of the clock: as if the clock had stepped back since.
        let ahead = u64::MAX / 2;
        log.acknowledge("a", ahead).unwrap();
        drop(log);
        let again = EventLog::open(&db, 100).unwrap();
        assert!(again.append(b"y").unwrap() >= ahead);
    }

    #[test]
    fn sequence_numbers_go_on_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let log = EventLog::open(&db, 100).unwrap();
        let seq = log.append(b"x").unwrap();
        drop(log);
        let again = EventLog::open(&db, 100).unwrap();
        assert!(again.append(b"y").unwrap() > seq);
    }
}
