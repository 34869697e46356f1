//! The failure counts behind AUTH's lock-out and pacing: per client network and per user
//! name, failures within a sliding window, in a table of bounded size.
//!
//! A check takes a *slot* before the password is looked at ([`FailureTable::reserve`]):
//! a slot counts as a failure until the check says otherwise, so a client that opens
//! ninety connections and sends ninety AUTH commands at once gets no more passwords
//! checked than one that sends them in turn. The table never forgets every lock-out at
//! once when it fills: it drops expired entries first, then the ones with the fewest
//! failures and the oldest last failure, and never one with a check in flight.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Failures of one key.
#[derive(Debug, Default)]
struct Entry {
    /// When each failure within the window happened, oldest first.
    failures: VecDeque<Instant>,
    /// Checks that hold a slot and have not finished.
    in_flight: u32,
    /// When the next paced check of this key may run ([`FailureTable::pace`]).
    next_paced: Option<Instant>,
}

impl Entry {
    fn forget_expired(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn last_failure(&self) -> Option<Instant> {
        self.failures.back().copied()
    }

    fn idle(&self, now: Instant) -> bool {
        self.failures.is_empty() && self.in_flight == 0 && self.next_paced.is_none_or(|t| t <= now)
    }
}

/// One key's standing, for listings (`hermod auth lockouts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing<K> {
    /// The client network or user name.
    pub key: K,
    /// Failures within the window.
    pub failures: usize,
    /// How long until the oldest of them ages out (and the key may try again).
    pub until: Duration,
}

/// Failure counts by key within a sliding window, bounded in size.
#[derive(Debug)]
pub struct FailureTable<K> {
    entries: HashMap<K, Entry>,
    /// Failures (checked or in flight) that lock a key out.
    max: usize,
    window: Duration,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> FailureTable<K> {
    /// A table locking a key out at `max` failures within `window`, remembering at most
    /// `capacity` keys.
    pub fn new(max: u32, window: Duration, capacity: usize) -> Self {
        FailureTable {
            entries: HashMap::new(),
            max: max.max(1) as usize,
            window,
            capacity: capacity.max(16),
        }
    }

    /// Takes a slot for one check of `key`: `false` when its failures and the checks in
    /// flight already reach the limit (it is locked out, and nothing is taken). Every
    /// `true` must be followed by one [`FailureTable::settle`].
    pub fn reserve(&mut self, key: &K, now: Instant) -> bool {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.forget_expired(now, self.window);
            if entry.failures.len() + entry.in_flight as usize >= self.max {
                return false;
            }
            entry.in_flight += 1;
            return true;
        }
        self.make_room(now);
        self.entries.insert(
            key.clone(),
            Entry {
                in_flight: 1,
                ..Entry::default()
            },
        );
        true
    }

    /// Ends a check that [`FailureTable::reserve`] let through; a failure is counted.
    /// Returns whether the key is now locked out.
    pub fn settle(&mut self, key: &K, now: Instant, failed: bool) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if failed {
            entry.failures.push_back(now);
            while entry.failures.len() > self.max {
                entry.failures.pop_front();
            }
        }
        entry.forget_expired(now, self.window);
        let locked = entry.failures.len() >= self.max;
        if entry.idle(now) {
            self.entries.remove(key);
        }
        locked
    }

    /// Counts a failure without a slot (the per-user counts). Returns the failures of
    /// `key` within the window.
    pub fn record(&mut self, key: &K, now: Instant) -> usize {
        if !self.entries.contains_key(key) {
            self.make_room(now);
        }
        let entry = self.entries.entry(key.clone()).or_default();
        entry.forget_expired(now, self.window);
        entry.failures.push_back(now);
        while entry.failures.len() > self.max {
            entry.failures.pop_front();
        }
        entry.failures.len()
    }

    /// Failures of `key` within the window.
    pub fn failures(&mut self, key: &K, now: Instant) -> usize {
        self.entries.get_mut(key).map_or(0, |entry| {
            entry.forget_expired(now, self.window);
            entry.failures.len()
        })
    }

    /// Paces the checks of `key` once it has `threshold` failures within the window: each
    /// check is given a turn `interval` after the one before. Returns how long this
    /// check must wait for its turn (zero below the threshold), or `None` when the turn
    /// is more than `longest` away (nothing is taken then).
    pub fn pace(
        &mut self,
        key: &K,
        now: Instant,
        threshold: usize,
        interval: Duration,
        longest: Duration,
    ) -> Option<Duration> {
        let Some(entry) = self.entries.get_mut(key) else {
            return Some(Duration::ZERO);
        };
        entry.forget_expired(now, self.window);
        if entry.failures.len() < threshold {
            return Some(Duration::ZERO);
        }
        let turn = entry.next_paced.map_or(now, |t| t.max(now));
        let wait = turn - now;
        if wait > longest {
            return None;
        }
        entry.next_paced = Some(turn + interval);
        Some(wait)
    }

    /// Forgets the failures of `key`; whether it had any.
    pub fn clear(&mut self, key: &K) -> bool {
        match self.entries.get_mut(key) {
            Some(entry) if entry.in_flight > 0 => {
                let had = !entry.failures.is_empty();
                entry.failures.clear();
                entry.next_paced = None;
                had
            }
            Some(_) => self
                .entries
                .remove(key)
                .is_some_and(|e| !e.failures.is_empty()),
            None => false,
        }
    }

    /// The keys locked out now, most failures first.
    pub fn locked(&mut self, now: Instant) -> Vec<Standing<K>> {
        let window = self.window;
        let mut out: Vec<Standing<K>> = self
            .entries
            .iter_mut()
            .filter_map(|(key, entry)| {
                entry.forget_expired(now, window);
                let oldest = *entry.failures.front()?;
                (entry.failures.len() >= self.max).then(|| Standing {
                    key: key.clone(),
                    failures: entry.failures.len(),
                    until: window.saturating_sub(now.saturating_duration_since(oldest)),
                })
            })
            .collect();
        out.sort_by(|a, b| b.failures.cmp(&a.failures).then(a.until.cmp(&b.until)));
        out
    }

    /// Every key remembered.
    pub fn keys(&self) -> Vec<K> {
        self.entries.keys().cloned().collect()
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room for one more key: expired entries go first; if the table is still full, a
    /// tenth of it goes, fewest failures and oldest last failure first, never a key with
    /// a check in flight. Locked-out keys are the last to go.
    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        let window = self.window;
        self.entries.retain(|_, entry| {
            entry.forget_expired(now, window);
            !entry.idle(now)
        });
        if self.entries.len() < self.capacity {
            return;
        }
        let mut candidates: Vec<(usize, Option<Instant>, K)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_flight == 0)
            .map(|(k, e)| (e.failures.len(), e.last_failure(), k.clone()))
            .collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let drop = (self.capacity / 10).max(1);
        for (_, _, key) in candidates.into_iter().take(drop) {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn slots_in_flight_count_before_their_checks_finish() {
        let mut table = FailureTable::new(3, MINUTE, 100);
        let now = Instant::now();
        let key = "192.0.2.1";
        // Ninety checks arrive at once: three get a slot, the rest are refused before
        // any password is looked at.
        let granted = (0..90).filter(|_| table.reserve(&key, now)).count();
        assert_eq!(granted, 3);
        // One of the three was the right password: its slot is given back.
        assert!(!table.settle(&key, now, false));
        assert!(!table.settle(&key, now, true));
        assert!(table.reserve(&key, now));
        table.settle(&key, now, true);
        assert!(table.settle(&key, now, true));
        assert!(!table.reserve(&key, now));
        // The window passes.
        assert!(table.reserve(&key, now + MINUTE));
    }

    #[test]
    fn a_full_table_keeps_its_lock_outs() {
        let mut table = FailureTable::new(2, MINUTE, 100);
        let now = Instant::now();
        for _ in 0..2 {
            assert!(table.reserve(&0u32, now));
            table.settle(&0u32, now, true);
        }
        // A flood of addresses that fail once each fills the table many times over.
        for key in 1..10_000u32 {
            if table.reserve(&key, now) {
                table.settle(&key, now, true);
            }
            assert!(table.len() <= 100);
        }
        assert!(!table.reserve(&0u32, now), "the lock-out was forgotten");
        assert_eq!(table.locked(now)[0].key, 0);
    }

    #[test]
    fn pacing_spaces_checks_once_past_the_threshold() {
        let mut table = FailureTable::new(1000, MINUTE, 100);
        let now = Instant::now();
        let user = "app".to_string();
        let second = Duration::from_secs(1);
        let longest = Duration::from_secs(3);
        assert_eq!(
            table.pace(&user, now, 2, second, longest),
            Some(Duration::ZERO)
        );
        table.record(&user, now);
        table.record(&user, now);
        let waits: Vec<Option<u64>> = (0..5)
            .map(|_| {
                table
                    .pace(&user, now, 2, second, longest)
                    .map(|w| w.as_secs())
            })
            .collect();
        // The fifth turn would be 4 s away: refused, and it takes no turn.
        assert_eq!(waits, [Some(0), Some(1), Some(2), Some(3), None]);
        assert_eq!(
            table.pace(&user, now + second, 2, second, longest),
            Some(longest)
        );
    }

    #[test]
    fn clearing_lifts_a_lock_out() {
        let mut table = FailureTable::new(1, MINUTE, 100);
        let now = Instant::now();
        assert!(table.reserve(&"a", now));
        assert!(table.settle(&"a", now, true));
        assert!(!table.reserve(&"a", now));
        assert!(table.clear(&"a"));
        assert!(table.reserve(&"a", now));
        assert!(!table.clear(&"b"));
    }
}
