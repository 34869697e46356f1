//! Whether a next hop is reachable, as the Queue sees it, and the mail that waits for it
//! while it is not. A hop that stops answering is marked down after
//! `delivery.dead_host_failures` consecutive unreachable reports; from then on its mail
//! waits here in one index instead of being dispatched message by message (no spool
//! rewrite, no log line, no Delivery job per retry), and one message at a time probes
//! the hop, once per back-off step, doubling from `delivery.dead_host_backoff` up to
//! `queue.max_retry_interval`. The first report that reaches the hop releases the whole
//! index. Pure: time comes in as unix seconds.
//!
//! The index holds a message's id and when it expires, nothing else (16 octets and the
//! map's own): the envelope waits in the spool and is read back when the message is
//! released, probed, expired or acted on by the operator, so a million messages parked
//! for a dead destination take tens of megabytes, not a gigabyte.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::core::id::QueueId;

/// When a hop counts as down and how often it is probed.
#[derive(Debug, Clone, Copy)]
pub struct HopPolicy {
    /// Consecutive unreachable reports after which the hop is down.
    pub down_after: u32,
    /// Wait before the first probe.
    pub first_backoff: Duration,
    /// Longest wait between probes.
    pub max_backoff: Duration,
}

impl HopPolicy {
    /// The wait before probe number `step + 1`.
    pub fn backoff(&self, step: u32) -> Duration {
        let factor = 1u32.checked_shl(step).unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff.max(self.first_backoff))
    }
}

/// What an unreachable report changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Not down (yet).
    StillUp,
    /// The hop just went down; the next probe is due at `probe_at`.
    WentDown {
        /// Unix seconds.
        probe_at: u64,
    },
    /// The probe failed: the hop stays down; the next probe is due at `probe_at`.
    ProbeFailed {
        /// Unix seconds.
        probe_at: u64,
        /// Messages waiting.
        waiting: usize,
    },
    /// A job sent before the hop went down failed too: nothing changes.
    AlreadyDown,
}

/// The Queue's view of one next hop.
#[derive(Debug, Default)]
pub struct HopHealth {
    failures: u32,
    down_until: Option<u64>,
    step: u32,
    /// Parked messages, oldest id first, each with the unix second it expires at.
    waiting: BTreeMap<QueueId, u64>,
    probe: Option<QueueId>,
}

impl HopHealth {
    /// Whether the hop is down: its mail is parked, not dispatched.
    pub fn is_down(&self) -> bool {
        self.down_until.is_some()
    }

    /// Messages waiting for the hop.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing is remembered (the entry can be dropped).
    pub fn is_idle(&self) -> bool {
        self.failures == 0 && !self.is_down() && self.waiting.is_empty()
    }

    /// Parks message `id` (its recipients for this hop) until the hop is up again;
    /// `expires_at`: when it has been queued too long and bounces. Parking a message
    /// twice keeps one entry.
    pub fn park(&mut self, id: QueueId, expires_at: u64) {
        self.waiting.insert(id, expires_at);
    }

    /// Whether message `id` waits here.
    pub fn is_parked(&self, id: QueueId) -> bool {
        self.waiting.contains_key(&id)
    }

    /// Takes the messages of `ids` out of the index (the operator acts on them); returns
    /// those that were parked.
    pub fn unpark(&mut self, ids: &std::collections::HashSet<QueueId>) -> Vec<QueueId> {
        let found: Vec<QueueId> = if ids.len() < self.waiting.len() {
            ids.iter()
                .copied()
                .filter(|id| self.waiting.contains_key(id))
                .collect()
        } else {
            self.waiting
                .keys()
                .copied()
                .filter(|id| ids.contains(id))
                .collect()
        };
        for id in &found {
            self.waiting.remove(id);
        }
        found
    }

    /// Takes back a probe that was not sent (its message is suspended, or could not be
    /// read): no probe is out, and the message waits with the others.
    pub fn probe_not_sent(&mut self, id: QueueId, expires_at: u64) {
        self.probe = None;
        self.waiting.insert(id, expires_at);
    }

    /// Forgets a probe whose message is gone from the queue (or was not sent and left
    /// the index): the next message may probe.
    pub fn probe_gone(&mut self) {
        self.probe = None;
    }

    /// Forgets the probe `id` if it is the one out (its job was lost with its Delivery
    /// actor): the hop is probed again at its next step.
    pub fn probe_lost(&mut self, id: QueueId) {
        if self.probe == Some(id) {
            self.probe = None;
        }
    }

    /// The message to send as a probe, when one is due at `now` and none is out. A down
    /// hop with nothing waiting is simply forgotten: the next message tries it.
    pub fn due_probe(&mut self, now: u64) -> Option<(QueueId, u64)> {
        let until = self.down_until?;
        if self.probe.is_some() || until > now {
            return None;
        }
        match self.waiting.pop_first() {
            Some(parked) => {
                self.probe = Some(parked.0);
                Some(parked)
            }
            None => {
                self.down_until = None;
                None
            }
        }
    }

    /// A report reached the hop (any reply, even a refusal): it is up. Returns the
    /// waiting mail to release.
    pub fn reached(&mut self) -> Vec<QueueId> {
        self.failures = 0;
        self.down_until = None;
        self.step = 0;
        self.probe = None;
        std::mem::take(&mut self.waiting).into_keys().collect()
    }

    /// A report for message `id` could not reach the hop.
    pub fn unreachable(&mut self, id: QueueId, now: u64, policy: &HopPolicy) -> Change {
        if self.is_down() {
            if self.probe != Some(id) {
                return Change::AlreadyDown;
            }
            self.probe = None;
            self.step = self.step.saturating_add(1);
            let probe_at = now + policy.backoff(self.step).as_secs().max(1);
            self.down_until = Some(probe_at);
            return Change::ProbeFailed {
                probe_at,
                waiting: self.waiting.len(),
            };
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures < policy.down_after.max(1) {
            return Change::StillUp;
        }
        self.step = 0;
        let probe_at = now + policy.backoff(0).as_secs().max(1);
        self.down_until = Some(probe_at);
        Change::WentDown { probe_at }
    }

    /// Takes the waiting messages past their lifetime at `now`, at most `limit`.
    pub fn take_expired(&mut self, now: u64, limit: usize) -> Vec<QueueId> {
        let gone: Vec<QueueId> = self
            .waiting
            .iter()
            .filter(|(_, expires_at)| **expires_at <= now)
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &gone {
            self.waiting.remove(id);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HopPolicy = HopPolicy {
        down_after: 2,
        first_backoff: Duration::from_secs(60),
        max_backoff: Duration::from_secs(3600),
    };

    #[test]
    fn goes_down_after_the_threshold_and_parks_mail() {
        let mut h = HopHealth::default();
        assert_eq!(h.unreachable(QueueId(1), 1000, &POLICY), Change::StillUp);
        assert!(!h.is_down());
        assert_eq!(
            h.unreachable(QueueId(2), 1000, &POLICY),
            Change::WentDown { probe_at: 1060 }
        );
        assert!(h.is_down());
        h.park(QueueId(3), u64::MAX);
        h.park(QueueId(4), u64::MAX);
        h.park(QueueId(4), u64::MAX);
        assert_eq!(h.waiting(), 2);
        // A job that was already out fails too: no change.
        assert_eq!(
            h.unreachable(QueueId(9), 1001, &POLICY),
            Change::AlreadyDown
        );
    }

    #[test]
    fn a_probe_not_sent_lets_another_message_probe_at_once() {
        let mut h = HopHealth::default();
        h.unreachable(QueueId(1), 0, &POLICY);
        h.unreachable(QueueId(1), 0, &POLICY);
        h.park(QueueId(10), u64::MAX);
        h.park(QueueId(11), u64::MAX);
        let skipped = h.due_probe(60).expect("a probe is due");
        assert_eq!(skipped.0, QueueId(10), "the oldest probes first");
        // Its destination is suspended: it goes back to the index.
        h.probe_not_sent(skipped.0, skipped.1);
        assert_eq!(h.waiting(), 2);
        assert_eq!(h.due_probe(60).map(|p| p.0), Some(QueueId(10)));
        // A probe whose message is gone is forgotten, and the next one may go.
        h.probe_gone();
        assert_eq!(h.due_probe(60).map(|p| p.0), Some(QueueId(11)));
    }

    #[test]
    fn one_probe_per_backoff_step_doubling_to_the_cap() {
        let mut h = HopHealth::default();
        h.unreachable(QueueId(1), 0, &POLICY);
        h.unreachable(QueueId(1), 0, &POLICY);
        for i in 0..10 {
            h.park(QueueId(100 + i), u64::MAX);
        }
        assert_eq!(h.due_probe(59), None);
        let mut now = 60;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let (probe, _) = h.due_probe(now).expect("a probe is due");
            assert_eq!(h.due_probe(now), None, "one probe at a time");
            let Change::ProbeFailed { probe_at, .. } = h.unreachable(probe, now, &POLICY) else {
                panic!("probe failure not seen");
            };
            gaps.push(probe_at - now);
            h.park(probe, u64::MAX);
            now = probe_at;
        }
        assert_eq!(gaps, [120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(h.waiting(), 10);
    }

    #[test]
    fn reaching_the_hop_releases_everything() {
        let mut h = HopHealth::default();
        h.unreachable(QueueId(1), 0, &POLICY);
        h.unreachable(QueueId(1), 0, &POLICY);
        h.park(QueueId(5), u64::MAX);
        h.park(QueueId(6), u64::MAX);
        let probe = h.due_probe(60).unwrap();
        let mut released = h.reached();
        released.push(probe.0);
        assert_eq!(released.len(), 2);
        assert!(!h.is_down());
        assert!(h.is_idle());
    }

    #[test]
    fn expired_mail_leaves_the_waiting_list() {
        let mut h = HopHealth::default();
        h.park(QueueId(1), 100);
        h.park(QueueId(2), 200);
        let gone = h.take_expired(150, 10);
        assert_eq!(gone, vec![QueueId(1)]);
        assert_eq!(h.waiting(), 1);
    }

    #[test]
    fn the_operator_takes_parked_mail_out_of_the_index() {
        let mut h = HopHealth::default();
        for i in 0..5 {
            h.park(QueueId(i), u64::MAX);
        }
        let ids = [QueueId(1), QueueId(3), QueueId(9)].into_iter().collect();
        let mut found = h.unpark(&ids);
        found.sort();
        assert_eq!(found, [QueueId(1), QueueId(3)]);
        assert_eq!(h.waiting(), 3);
        assert!(!h.is_parked(QueueId(1)) && h.is_parked(QueueId(2)));
    }
}
