//! Hands out messages to connections: a count, a deadline, and in open loop a due time
//! for each, so latency is measured from when a message should have started.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One message handed to a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// Run-wide message number, from 0.
    pub(crate) index: u64,
    /// When it is due: on the open-loop schedule, or now in closed loop.
    pub(crate) due: Instant,
}

/// The shared message counter of one run.
#[derive(Debug)]
pub(crate) struct Source {
    next: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    rate: Option<f64>,
    start: Instant,
    stopped: AtomicBool,
}

impl Source {
    /// A source for `limit` messages and/or until `start + duration`, paced at `rate`.
    pub(crate) fn new(
        limit: Option<u64>,
        duration: Option<Duration>,
        rate: Option<f64>,
        start: Instant,
    ) -> Self {
        Self {
            next: AtomicU64::new(0),
            limit,
            deadline: duration.map(|d| start + d),
            rate: rate.filter(|r| *r > 0.0),
            start,
            stopped: AtomicBool::new(false),
        }
    }

    /// The next message, or `None` when the run is over.
    pub(crate) fn claim(&self) -> Option<Claim> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        if self.rate.is_none() && self.deadline.is_some_and(|d| now >= d) {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        if self.limit.is_some_and(|limit| index >= limit) {
            return None;
        }
        let due = match self.rate {
            Some(rate) => self.start + Duration::from_secs_f64(index as f64 / rate),
            None => now,
        };
        if self.rate.is_some() && self.deadline.is_some_and(|d| due >= d) {
            return None;
        }
        Some(Claim { index, due })
    }

    /// Stops handing out messages (Ctrl-C): messages under way still finish.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether this is an open-loop (scheduled) run.
    pub(crate) fn open_loop(&self) -> bool {
        self.rate.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limits_claims() {
        let source = Source::new(Some(3), None, None, Instant::now());
        assert_eq!((0..5).filter_map(|_| source.claim()).count(), 3);
    }

    #[test]
    fn open_loop_spaces_due_times() {
        let start = Instant::now();
        let source = Source::new(Some(3), None, Some(10.0), start);
        let dues: Vec<_> = (0..3)
            .filter_map(|_| source.claim())
            .map(|c| c.due - start)
            .collect();
        assert_eq!(
            dues,
            [
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200)
            ]
        );
    }

    #[test]
    fn open_loop_stops_at_the_deadline() {
        let source = Source::new(
            None,
            Some(Duration::from_secs(1)),
            Some(10.0),
            Instant::now(),
        );
        assert_eq!((0..100).filter_map(|_| source.claim()).count(), 10);
    }
}
