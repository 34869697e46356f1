//! Queue ids: short, unique, sortable by arrival, so an operator can follow one message
//! through the logs (`queued as 0005F3A1B2C3D4E5`) and the spool keeps FIFO order.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The id of one queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u64);

impl QueueId {
    /// The big-endian key bytes, so sled iterates in arrival order.
    pub fn to_key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Reads a key written by [`QueueId::to_key`].
    pub fn from_key(key: &[u8]) -> Option<Self> {
        Some(QueueId(u64::from_be_bytes(key.try_into().ok()?)))
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl FromStr for QueueId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(QueueId)
    }
}

/// Hands out ids: microseconds since the epoch at start, plus one per id. Ids stay unique
/// across restarts as long as fewer than a million ids a second are issued on average.
#[derive(Debug)]
pub struct QueueIdGenerator {
    next: AtomicU64,
}

impl QueueIdGenerator {
    /// Starts at the current time.
    pub fn new() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        QueueIdGenerator {
            next: AtomicU64::new(micros),
        }
    }

    /// Makes every later id larger than `id`: called with the largest id found in the
    /// spool, so a clock that went backwards cannot reissue a queued message's id.
    pub fn advance_past(&self, id: QueueId) {
        self.next
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
    }

    /// A fresh id.
    pub fn next_id(&self) -> QueueId {
        QueueId(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for QueueIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_ordered_and_round_trip() {
        let ids = QueueIdGenerator::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        assert!(a < b);
        assert_eq!(a.to_string().parse::<QueueId>().unwrap(), a);
        assert_eq!(QueueId::from_key(&b.to_key()), Some(b));
    }

    #[test]
    fn ids_stay_above_those_already_queued() {
        let ids = QueueIdGenerator::new();
        let far_future = QueueId(ids.next_id().0 + 1_000_000_000);
        ids.advance_past(far_future);
        assert!(ids.next_id() > far_future);
    }
}
