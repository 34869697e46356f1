//! One budget of outbound connections for all Delivery actors. Each open connection
//! costs a file descriptor; with thousands of destinations, idle connections kept for
//! reuse once used up the open-files limit, and then the spool could not open its files
//! (`451 … fsync of spool blobs: Too many open files`). A connection may be opened only
//! with a [`Permit`] from the budget, which stays below the limit with room for the
//! spool and the inbound sessions; when it is short, the actor that needs one asks, and
//! Delivery actors close idle connections first to give theirs back. An actor that holds
//! idle connections registers a [`RoomMaker`]; a request for room wakes one of them at
//! once (with few descriptors and thousands of destinations, waiting for the holders'
//! next sweep, up to a second per new destination, let through 58 messages a second).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How the budget reaches one Delivery actor that holds idle connections.
pub struct RoomMaker {
    /// Asks it to close idle connections now; `false` when it is gone or has none left.
    pub wake: Box<dyn Fn() -> bool + Send + Sync>,
    /// Whether it is still there (entries of retired actors are dropped).
    pub alive: Box<dyn Fn() -> bool + Send + Sync>,
}

/// The budget: how many outbound connections may be open at once, how many are, and
/// how many idle connections actors are asked to close.
pub struct ConnectionBudget {
    /// Changes only for a site's budget (a reloaded shaping file, an automation action).
    limit: AtomicUsize,
    /// Whether this is the process's budget, whose count is the open-connections gauge
    /// (a site's budget counts the same connections again).
    gauged: bool,
    open: AtomicUsize,
    /// Idle connections still wanted closed, to make room for a new one.
    wanted: AtomicUsize,
    /// Actors holding idle connections, to wake when room is wanted.
    holders: Mutex<VecDeque<RoomMaker>>,
}

impl std::fmt::Debug for ConnectionBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionBudget")
            .field("limit", &self.limit())
            .field("open", &self.open)
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl ConnectionBudget {
    /// A budget of `limit` connections (at least 1).
    pub fn new(limit: usize) -> Arc<Self> {
        Self::made(limit, true)
    }

    /// A site's budget of `limit` connections (its leases are held beside the
    /// process's [`Permit`], and not counted in the gauge).
    pub fn for_site(limit: usize) -> Arc<Self> {
        Self::made(limit, false)
    }

    fn made(limit: usize, gauged: bool) -> Arc<Self> {
        Arc::new(ConnectionBudget {
            limit: AtomicUsize::new(limit.max(1)),
            gauged,
            open: AtomicUsize::new(0),
            wanted: AtomicUsize::new(0),
            holders: Mutex::new(VecDeque::new()),
        })
    }

    /// The budget for this process: `configured` if not 0, else the open-files limit
    /// less what inbound sessions (`inbound`) and the spool, logs and listeners
    /// (`reserve`) may need.
    pub fn sized(configured: usize, open_files: u64, inbound: usize, reserve: usize) -> usize {
        if configured > 0 {
            return configured;
        }
        let open_files = usize::try_from(open_files).unwrap_or(usize::MAX);
        open_files
            .saturating_sub(inbound)
            .saturating_sub(reserve)
            .max(16)
    }

    /// The most connections at once.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// A new limit (a site's: 0 when its fleet share is nothing); connections over it
    /// stay open until they close.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A permit for one more connection, if the budget has room.
    pub fn try_take(self: &Arc<Self>) -> Option<Permit> {
        let mut open = self.open.load(Ordering::Relaxed);
        let limit = self.limit();
        loop {
            if open >= limit {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.gauged {
                        metrics::gauge!("delivery_connections_open").increment(1.0);
                    }
                    return Some(Permit {
                        budget: self.clone(),
                        site: None,
                    });
                }
                Err(now) => open = now,
            }
        }
    }

    /// Asks that one idle connection somewhere be closed (the caller found no room).
    /// Requests do not pile up past the connections that could answer them.
    pub fn ask_for_room(&self) {
        let _ = self
            .wanted
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |wanted| {
                (wanted < self.limit()).then_some(wanted + 1)
            });
        // Wake a holder of idle connections now; one that is gone is skipped.
        loop {
            let maker = self
                .holders
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match maker {
                Some(maker) if (maker.wake)() => return,
                Some(_) => continue,
                None => return,
            }
        }
    }

    /// An actor now holds idle connections: `maker` wakes it when room is wanted. It is
    /// called at most once; register again while idle connections remain.
    pub fn hold_idle(&self, maker: RoomMaker) {
        let mut holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        // Retired actors leave their entry behind: drop those as the list grows.
        if holders.len() >= 64 && holders.len().is_power_of_two() {
            holders.retain(|holder| (holder.alive)());
        }
        holders.push_back(maker);
    }

    /// Takes one close request, if any is open: the caller then closes an idle
    /// connection.
    pub fn claim_close(&self) -> bool {
        self.wanted
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |wanted| {
                wanted.checked_sub(1)
            })
            .is_ok()
    }
}

/// The right to hold one outbound connection; given back when dropped (with the
/// connection that holds it), with the connection's place in its site's budget.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<ConnectionBudget>,
    /// The connection's lease in its site's budget, dropped with this permit.
    site: Option<Box<Permit>>,
}

impl Permit {
    /// The permit, also holding the connection's `lease` in its site's budget.
    pub fn with_site(mut self, lease: Option<Permit>) -> Permit {
        self.site = lease.map(Box::new);
        self
    }

    /// Whether it holds a lease in a site's budget.
    pub fn has_site_lease(&self) -> bool {
        self.site.is_some()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.open.fetch_sub(1, Ordering::AcqRel);
        if self.budget.gauged {
            metrics::gauge!("delivery_connections_open").decrement(1.0);
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "delivery_connections_open",
        "Outbound connections open now, over all next hops."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_limit_and_come_back_when_dropped() {
        let budget = ConnectionBudget::new(2);
        let a = budget.try_take().unwrap();
        let _b = budget.try_take().unwrap();
        assert!(budget.try_take().is_none());
        assert_eq!(budget.open(), 2);
        drop(a);
        assert!(budget.try_take().is_some());
    }

    #[test]
    fn close_requests_are_claimed_once_each_and_capped() {
        let budget = ConnectionBudget::new(2);
        assert!(!budget.claim_close());
        for _ in 0..5 {
            budget.ask_for_room();
        }
        assert!(budget.claim_close());
        assert!(budget.claim_close());
        assert!(!budget.claim_close(), "at most `limit` requests wait");
    }

    #[test]
    fn a_request_for_room_wakes_a_holder_of_idle_connections_at_once() {
        let budget = ConnectionBudget::new(1);
        let woken = Arc::new(AtomicUsize::new(0));
        // A holder that is gone, then one that answers.
        budget.hold_idle(RoomMaker {
            wake: Box::new(|| false),
            alive: Box::new(|| false),
        });
        let counter = woken.clone();
        budget.hold_idle(RoomMaker {
            wake: Box::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                true
            }),
            alive: Box::new(|| true),
        });
        budget.ask_for_room();
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert!(budget.claim_close());
        // Called once per registration.
        budget.ask_for_room();
        assert_eq!(woken.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_automatic_size_leaves_room_for_sessions_and_the_spool() {
        assert_eq!(ConnectionBudget::sized(0, 65536, 1000, 256), 64280);
        assert_eq!(ConnectionBudget::sized(0, 1024, 1000, 256), 16);
        assert_eq!(ConnectionBudget::sized(50, 1024, 1000, 256), 50);
    }
}
