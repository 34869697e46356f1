//! One (source, site) path's budget, shared by every Delivery actor whose destination
//! rolls up into the site: how many connections are open over it, how fast new ones and
//! messages may go, and whether an automation action suspends it or lowers its limits.
//! A Delivery actor asks before opening a connection ([`SiteBudget::try_connect`]) and
//! before each message ([`SiteBudget::try_send`]); a refusal says how long to wait.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::actions::Action;
use super::rules::{ActionKind, Limits, Rate, SiteOrigin};
use crate::outbound::connection_budget::{ConnectionBudget, Permit};

/// Which path a budget is for: the local address mail leaves from ("" for the system's
/// choice) and the site it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathKey {
    /// The egress source's name; empty: no egress source configured.
    pub source: String,
    /// The site's name.
    pub site: String,
}

/// Why a path does not take a connection or a message now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// An automation action suspends the path until `until` (unix seconds).
    Suspended {
        /// When the suspension ends.
        until: u64,
        /// The rule that took it.
        rule: String,
    },
    /// A limit is reached; ask again after this long.
    Later(Duration),
}

/// The limiter of one rate, remade when the rate changes.
struct Limiter {
    rate: Rate,
    limiter: DefaultDirectRateLimiter,
}

impl Limiter {
    /// A limiter spreading `rate` evenly: a burst of one, or of a millisecond's worth
    /// for rates above 1000 a second (a wake-up takes a millisecond at least).
    fn new(rate: Rate) -> Option<Limiter> {
        let per_ms = rate.per.as_millis().max(1);
        let burst = u32::try_from(u128::from(rate.count).div_ceil(per_ms))
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())?.allow_burst(burst);
        Some(Limiter {
            rate,
            limiter: RateLimiter::direct(quota),
        })
    }

    fn check(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The limits in force on a path and what enforces them.
#[derive(Default)]
struct State {
    /// The shaping file's limits of the site.
    base: Limits,
    /// `base` as the actions in force change it.
    effective: Limits,
    /// The actions version `effective` was computed at.
    version: u64,
    /// When an action in force ends (unix seconds): recompute then.
    next_change: Option<u64>,
    suspended: Option<Wait>,
    messages: Option<Limiter>,
    connections: Option<Limiter>,
}

/// The budget of one path.
pub struct SiteBudget {
    key: PathKey,
    origin: SiteOrigin,
    /// Its connections: a lease is a [`Permit`] of this budget, and a Delivery actor
    /// that finds it full asks the actors holding idle connections over the site to
    /// close one (as for the process's budget).
    connections: Arc<ConnectionBudget>,
    /// A std Mutex: held for a few comparisons, never across an await.
    state: Mutex<State>,
    /// This node's share of the path's `max_connections` across the fleet (the leases
    /// it holds in Redis); `usize::MAX` when not shared.
    fleet_share: AtomicUsize,
    /// A connection was refused for want of room since the last lease renewal.
    wanting: AtomicBool,
}

impl std::fmt::Debug for SiteBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteBudget")
            .field("key", &self.key)
            .field("open", &self.connections.open())
            .finish_non_exhaustive()
    }
}

impl SiteBudget {
    /// A budget for `key` under the file's `limits`.
    pub(super) fn new(key: PathKey, origin: SiteOrigin, limits: Limits) -> Self {
        SiteBudget {
            key,
            origin,
            connections: ConnectionBudget::for_site(limits.max_connections.unwrap_or(usize::MAX)),
            fleet_share: AtomicUsize::new(usize::MAX),
            wanting: AtomicBool::new(false),
            state: Mutex::new(State {
                base: limits,
                version: u64::MAX,
                ..State::default()
            }),
        }
    }

    /// Its path.
    pub fn key(&self) -> &PathKey {
        &self.key
    }

    /// Where its site's name came from.
    pub fn origin(&self) -> &SiteOrigin {
        &self.origin
    }

    /// The provider whose site this is, if any.
    pub fn provider(&self) -> Option<&str> {
        match &self.origin {
            SiteOrigin::Provider(name) => Some(name),
            SiteOrigin::MxHosts => None,
        }
    }

    /// Connections open over the path now.
    pub fn open(&self) -> usize {
        self.connections.open()
    }

    /// The path's `max_connections` as the file and the actions in force set it, for
    /// the fleet's leases; `None`: no limit.
    pub fn max_connections(&self) -> Option<usize> {
        self.lock().effective.max_connections
    }

    /// How many connections this node would hold now: those open, and when a
    /// connection waited for room since the last call, as many again (at least one
    /// more), so a busy node reaches its share in a few renewals.
    pub fn wanted(&self) -> usize {
        let open = self.open();
        match self.wanting.swap(false, Ordering::AcqRel) {
            true => open.saturating_mul(2).max(open + 1),
            false => open,
        }
    }

    /// This node's share of the path's connections across the fleet.
    pub fn fleet_share(&self) -> usize {
        self.fleet_share.load(Ordering::Acquire)
    }

    /// This node's share of the path's connections across the fleet (the leases it
    /// holds); `usize::MAX` lifts it (no fleet, or Redis out of reach: local limits).
    pub fn set_fleet_share(&self, share: usize) {
        self.fleet_share.store(share, Ordering::Release);
        let mut state = self.lock();
        // The limit is worked out again at the next check.
        state.version = u64::MAX;
    }

    /// Its connection budget, where Delivery actors holding idle connections over the
    /// site register to be asked to close one.
    pub fn connections(&self) -> &Arc<ConnectionBudget> {
        &self.connections
    }

    /// New limits from a reloaded file; the actions in force still apply over them.
    pub(super) fn set_base(&self, limits: Limits) {
        let mut state = self.lock();
        state.base = limits;
        state.version = u64::MAX;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits in force now, the actions (`version`, `actions`) applied.
    pub(super) fn effective(
        &self,
        version: u64,
        actions: &dyn Fn() -> Vec<Action>,
        now: u64,
    ) -> Limits {
        let mut state = self.lock();
        self.refresh(&mut state, version, actions, now);
        state.effective.clone()
    }

    /// Brings `state` up to the actions in force, when they changed or one ended.
    fn refresh(
        &self,
        state: &mut State,
        version: u64,
        actions: &dyn Fn() -> Vec<Action>,
        now: u64,
    ) {
        if state.version == version && state.next_change.is_none_or(|at| now < at) {
            return;
        }
        let mut effective = state.base.clone();
        let mut suspended = None;
        let mut next_change: Option<u64> = None;
        for action in actions() {
            if action.site != self.key.site
                || !(action.source.is_empty() || action.source == self.key.source)
                || action.until <= now
            {
                continue;
            }
            next_change = Some(next_change.map_or(action.until, |at| at.min(action.until)));
            match &action.kind {
                ActionKind::Suspend => {
                    let later = matches!(&suspended, Some(Wait::Suspended { until, .. }) if *until >= action.until);
                    if !later {
                        suspended = Some(Wait::Suspended {
                            until: action.until,
                            rule: action.rule.clone(),
                        });
                    }
                }
                ActionKind::Limit(lower) => effective = lowered(&effective, lower),
            }
        }
        if state.messages.as_ref().map(|l| l.rate) != effective.message_rate {
            state.messages = effective.message_rate.and_then(Limiter::new);
        }
        if state.connections.as_ref().map(|l| l.rate) != effective.connection_rate {
            state.connections = effective.connection_rate.and_then(Limiter::new);
        }
        // At least one of its own (0 comes only from the fleet: no lease yet).
        self.connections.set_limit(
            effective
                .max_connections
                .unwrap_or(usize::MAX)
                .max(1)
                .min(self.fleet_share.load(Ordering::Acquire)),
        );
        state.effective = effective;
        state.suspended = suspended;
        state.next_change = next_change;
        state.version = version;
    }

    /// Whether one more message may start over the path now, over a pooled connection
    /// or (`pooled` false) a new one, whose lease is returned. The checks that spend
    /// nothing come first; the message rate's token before the connection rate's.
    pub(super) fn try_start(
        &self,
        pooled: bool,
        version: u64,
        actions: &dyn Fn() -> Vec<Action>,
        now: u64,
    ) -> Result<Option<Permit>, Wait> {
        let mut state = self.lock();
        self.refresh(&mut state, version, actions, now);
        if let Some(wait) = &state.suspended {
            return Err(wait.clone());
        }
        let lease = match pooled {
            true => None,
            false => match self.connections.try_take() {
                Some(lease) => Some(lease),
                None => {
                    // Full: an actor holding an idle connection over the site closes one.
                    self.connections.ask_for_room();
                    self.wanting.store(true, Ordering::Release);
                    return Err(Wait::Later(Duration::from_millis(50)));
                }
            },
        };
        if let Some(limiter) = &state.messages {
            limiter.check().map_err(Wait::Later)?;
        }
        if let (Some(limiter), false) = (&state.connections, pooled) {
            limiter.check().map_err(Wait::Later)?;
        }
        Ok(lease)
    }
}

/// `limits` with each limit `lower` sets taken down to it (never raised).
fn lowered(limits: &Limits, lower: &Limits) -> Limits {
    fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    let slower = |a: Option<Rate>, b: Option<Rate>| match (a, b) {
        (Some(a), Some(b)) => Some(if a.interval() >= b.interval() { a } else { b }),
        (a, b) => a.or(b),
    };
    Limits {
        max_connections: min(limits.max_connections, lower.max_connections),
        max_messages_per_connection: min(
            limits.max_messages_per_connection,
            lower.max_messages_per_connection,
        ),
        message_rate: slower(limits.message_rate, lower.message_rate),
        connection_rate: slower(limits.connection_rate, lower.connection_rate),
        // An action slows a site down; it does not change how it is secured.
        tls: limits.tls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limits: Limits) -> SiteBudget {
        SiteBudget::new(
            PathKey {
                source: String::new(),
                site: "google".into(),
            },
            SiteOrigin::Provider("google".into()),
            limits,
        )
    }

    fn action(kind: ActionKind, until: u64) -> Action {
        Action {
            source: String::new(),
            site: "google".into(),
            rule: "r".into(),
            kind,
            reason: "421 4.7.28 slow down".into(),
            since: 0,
            until,
            duration_s: until,
            node: "n".into(),
        }
    }

    #[test]
    fn connections_stop_at_the_limit_and_come_back_when_leases_drop() {
        let budget = budget(Limits {
            max_connections: Some(2),
            ..Limits::default()
        });
        let none = || Vec::new();
        let a = budget.try_start(false, 0, &none, 100).unwrap();
        let _b = budget.try_start(false, 0, &none, 100).unwrap();
        assert!(matches!(
            budget.try_start(false, 0, &none, 100),
            Err(Wait::Later(_))
        ));
        drop(a);
        assert!(budget.try_start(false, 0, &none, 100).is_ok());
    }

    #[test]
    fn an_action_suspends_or_lowers_until_it_ends() {
        let budget = budget(Limits {
            max_connections: Some(5),
            ..Limits::default()
        });
        let suspend = || vec![action(ActionKind::Suspend, 200)];
        match budget.try_start(false, 1, &suspend, 100) {
            Err(Wait::Suspended { until, rule, .. }) => {
                assert_eq!((until, rule.as_str()), (200, "r"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            budget.try_start(true, 1, &suspend, 150),
            Err(Wait::Suspended { .. })
        ));
        // Same version, but the action has ended: recomputed.
        assert!(budget.try_start(true, 1, &suspend, 200).is_ok());
        let lower = || {
            vec![action(
                ActionKind::Limit(Limits {
                    max_connections: Some(1),
                    message_rate: Some("1/min".parse().unwrap()),
                    ..Limits::default()
                }),
                500,
            )]
        };
        let limits = budget.effective(2, &lower, 300);
        assert_eq!(limits.max_connections, Some(1));
        let _lease = budget.try_start(false, 2, &lower, 300).unwrap();
        assert!(matches!(
            budget.try_start(false, 2, &lower, 300),
            Err(Wait::Later(_))
        ));
        // The new connection took the minute's one message.
        assert!(
            matches!(budget.try_start(true, 2, &lower, 300), Err(Wait::Later(d)) if d > Duration::from_secs(50))
        );
        assert_eq!(budget.effective(2, &lower, 500).max_connections, Some(5));
    }

    #[test]
    fn lowering_never_raises_a_limit() {
        let base = Limits {
            max_connections: Some(2),
            message_rate: Some("1/s".parse().unwrap()),
            ..Limits::default()
        };
        let lower = Limits {
            max_connections: Some(10),
            message_rate: Some("10/s".parse().unwrap()),
            max_messages_per_connection: Some(5),
            ..Limits::default()
        };
        let out = lowered(&base, &lower);
        assert_eq!(out.max_connections, Some(2));
        assert_eq!(out.message_rate.unwrap().to_string(), "1/s");
        assert_eq!(out.max_messages_per_connection, Some(5));
    }
}
