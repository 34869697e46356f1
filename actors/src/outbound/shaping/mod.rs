//! Provider-aware shaping: destinations roll up into sites (a provider's, or the set of
//! MX hosts they share), each site has one budget of connections and messages however
//! many domains draw from it, and automation rules react to what receivers answer by
//! suspending a site or lowering its limits for a while.
//!
//! One [`Shaping`] serves every Delivery actor and the Queue: actors ask it for their
//! path's [`SiteBudget`] and tell it the replies they get; the Queue asks whether a
//! recipient domain's site is suspended, so that its mail waits in the schedule instead
//! of being tried. A fleet shares the actions in force through Redis (the binary's
//! wiring copies them in and out with [`Shaping::replace_fleet`] and the publish hook).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

mod actions;
mod rules;
mod site;

pub use actions::Action;
pub use rules::{
    ActionKind, Limits, NotRate, Provider, Rate, Rule, ShapingRules, SiteOrigin, Trigger,
};
pub use site::{PathKey, SiteBudget, Wait};

use crate::outbound::connection_budget::Permit;
use crate::outbound::mta_sts::unix_now;
use crate::protocol::status::Status;

/// Most recipient domains whose site is remembered for the Queue's checks.
const MAX_DOMAIN_SITES: usize = 200_000;

/// How long an action this node took is kept though the fleet's copy lacks it (it
/// may have been read before the action was written).
const FLEET_GRACE_S: u64 = 3;

/// Called with each action this node takes (to publish it to the fleet) or clears.
pub type ActionHook = Box<dyn Fn(ActionChange) + Send + Sync>;

/// What changed, for the fleet.
#[derive(Debug, Clone)]
pub enum ActionChange {
    /// An action was taken here.
    Taken(Action),
    /// The operator ended actions here (their ids).
    Cleared(Vec<String>),
}

/// The shaping state of one node.
pub struct Shaping {
    node: String,
    rules: RwLock<Arc<ShapingRules>>,
    budgets: Mutex<HashMap<PathKey, Arc<SiteBudget>>>,
    actions: Mutex<Vec<Action>>,
    /// Bumped at each change of `actions`, so budgets recompute only then.
    version: AtomicU64,
    /// Suspensions among `actions`: the Queue's check is one load when there are none.
    suspensions: AtomicUsize,
    domain_sites: Mutex<HashMap<String, String>>,
    thresholds: Mutex<actions::Thresholds>,
    hook: Mutex<Option<ActionHook>>,
    /// The connections of paths from an egress source are shared with the fleet: a new
    /// path starts with no share until its first lease.
    fleet_leases: AtomicBool,
    /// Told the ends (unix seconds) of suspensions that ended before their time, so
    /// that the Queue looks at the mail it scheduled for them now.
    early_end: Mutex<Option<EarlyEndHook>>,
}

/// Called with the planned ends of suspensions that ended early.
pub type EarlyEndHook = Box<dyn Fn(Vec<u64>) + Send + Sync>;

impl std::fmt::Debug for Shaping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shaping")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shaping {
    /// Shaping by `rules` on the node named `node` (its host name, in actions).
    pub fn new(rules: ShapingRules, node: &str) -> Arc<Self> {
        Arc::new(Shaping {
            node: node.to_string(),
            rules: RwLock::new(Arc::new(rules)),
            budgets: Mutex::default(),
            actions: Mutex::default(),
            version: AtomicU64::new(0),
            suspensions: AtomicUsize::new(0),
            domain_sites: Mutex::default(),
            thresholds: Mutex::default(),
            hook: Mutex::new(None),
            fleet_leases: AtomicBool::new(false),
            early_end: Mutex::new(None),
        })
    }

    /// The rules now in force.
    pub fn rules(&self) -> Arc<ShapingRules> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A reloaded shaping file: sites keep their open connections, under the new limits.
    pub fn reload(&self, rules: ShapingRules) {
        let rules = Arc::new(rules);
        for budget in lock(&self.budgets).values() {
            let key = budget.key();
            budget.set_base(rules.site_limits(&key.site, budget.origin()));
        }
        // Sites named by a provider may change; Delivery actors learn theirs again
        // within SITE_TTL, and tell the map.
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Where this node's actions go as they are taken or cleared (the fleet's Redis).
    pub fn on_change(&self, hook: ActionHook) {
        *lock(&self.hook) = Some(hook);
    }

    /// Where the planned ends of suspensions that end early go (the Queue's schedule).
    pub fn on_early_end(&self, hook: EarlyEndHook) {
        *lock(&self.early_end) = Some(hook);
    }

    /// Tells the Queue of suspensions among `ended` that were still to run.
    fn ended_early(&self, ended: &[Action]) {
        let now = unix_now();
        let untils: Vec<u64> = ended
            .iter()
            .filter(|a| a.kind == ActionKind::Suspend && a.until > now)
            .map(|a| a.until)
            .collect();
        if !untils.is_empty()
            && let Some(hook) = lock(&self.early_end).as_ref()
        {
            hook(untils);
        }
    }

    /// The budget of the path from `source` to the site of `domain`, whose MX hosts (or
    /// configured host) are `hosts`.
    pub fn path<'a>(
        &self,
        source: &str,
        domain: &str,
        hosts: impl IntoIterator<Item = &'a str>,
    ) -> Arc<SiteBudget> {
        let rules = self.rules();
        let (site, origin) = rules.site_of(hosts);
        {
            let mut sites = lock(&self.domain_sites);
            if sites.len() >= MAX_DOMAIN_SITES && !sites.contains_key(domain) {
                sites.clear();
            }
            sites.insert(domain.to_string(), site.clone());
        }
        let key = PathKey {
            source: source.to_string(),
            site,
        };
        let mut budgets = lock(&self.budgets);
        // Sites no actor uses and no connection holds go, as the map grows.
        if budgets.len() >= 1024 && budgets.len().is_power_of_two() && !budgets.contains_key(&key) {
            budgets.retain(|_, budget| Arc::strong_count(budget) > 1 || budget.open() > 0);
        }
        budgets
            .entry(key.clone())
            .or_insert_with(|| {
                let limits = rules.site_limits(&key.site, &origin);
                let sourced = !key.source.is_empty();
                let budget = SiteBudget::new(key, origin, limits);
                if sourced && self.fleet_leases.load(Ordering::Acquire) {
                    // No connection before the fleet grants one.
                    budget.set_fleet_share(0);
                }
                Arc::new(budget)
            })
            .clone()
    }

    fn in_force(&self) -> impl Fn() -> Vec<Action> + '_ {
        || lock(&self.actions).clone()
    }

    /// Whether one more message may start over `budget`'s path now, over a pooled
    /// connection or (`pooled` false) a new one, whose lease in the site's budget is
    /// returned; else how long to wait.
    pub fn try_start(&self, budget: &SiteBudget, pooled: bool) -> Result<Option<Permit>, Wait> {
        let version = self.version.load(Ordering::Acquire);
        budget.try_start(pooled, version, &self.in_force(), unix_now())
    }

    /// The limits in force on `budget`'s path now (the file's, as actions change them).
    pub fn limits(&self, budget: &SiteBudget) -> Limits {
        let version = self.version.load(Ordering::Acquire);
        budget.effective(version, &self.in_force(), unix_now())
    }

    /// Paths from an egress source share their connections with the fleet from now on
    /// (through leases the binary's wiring renews in Redis).
    pub fn share_connections_with_fleet(&self) {
        self.fleet_leases.store(true, Ordering::Release);
    }

    /// The paths from an egress source whose connections are limited: their leases are
    /// shared with the fleet.
    pub fn sourced_paths(&self) -> Vec<Arc<SiteBudget>> {
        lock(&self.budgets)
            .values()
            .filter(|b| !b.key().source.is_empty())
            .cloned()
            .collect()
    }

    /// Whether any site is suspended now (the Queue's checks cost one load otherwise).
    pub fn any_suspended(&self) -> bool {
        self.suspensions.load(Ordering::Acquire) > 0
    }

    /// When delivery over the next hop named `hop` ([`NextHop::name`]) may go on, if
    /// its site is suspended now (for every source). Unknown sites are not suspended:
    /// their Delivery actor finds out.
    ///
    /// [`NextHop::name`]: crate::outbound::routing::NextHop::name
    pub fn suspended_until(&self, hop: &str, now: u64) -> Option<u64> {
        if !self.any_suspended() {
            return None;
        }
        let site = lock(&self.domain_sites).get(hop)?.clone();
        lock(&self.actions)
            .iter()
            .filter(|a| a.site == site && a.source.is_empty() && a.until > now)
            .filter(|a| a.kind == ActionKind::Suspend)
            .map(|a| a.until)
            .max()
    }

    /// A reply seen on `budget`'s path: the rules it matches count it, and those whose
    /// trigger fires take their action. Returns the actions taken.
    pub fn observe(&self, budget: &SiteBudget, reply: &Status) -> Vec<Action> {
        let rules = self.rules();
        if rules.automation.is_empty() {
            return Vec::new();
        }
        let key = budget.key();
        let now = unix_now();
        let now_ms = now.saturating_mul(1000);
        let mut taken = Vec::new();
        for rule in &rules.automation {
            if !rule.matches(&key.site, budget.provider(), reply) {
                continue;
            }
            let id = format!("{}|{}|{}", key.source, key.site, rule.name);
            let duration_s = rule.duration.as_secs_f64().ceil().max(1.0) as u64;
            if !lock(&self.thresholds).fires(&id, rule.trigger, now_ms) {
                continue;
            }
            let reason: String = reply
                .text
                .replace(crate::protocol::text::is_unsafe, "?")
                .chars()
                .take(actions::MAX_REASON)
                .collect();
            let action = Action {
                source: key.source.clone(),
                site: key.site.clone(),
                rule: rule.name.clone(),
                kind: rule.action.clone(),
                reason,
                since: now,
                // Whole seconds, rounded up (`now` is too): never shorter than the rule says.
                until: now + duration_s + 1,
                duration_s,
                node: self.node.clone(),
            };
            tracing::warn!(rule = %action.rule, site = %action.site, source = %action.source,
                action = %action.kind, duration_s, reply = %action.reason,
                "shaping action taken");
            metrics::counter!("shaping_actions_total", "rule" => rule.name.clone()).increment(1);
            self.put(action.clone());
            if let Some(hook) = lock(&self.hook).as_ref() {
                hook(ActionChange::Taken(action.clone()));
            }
            taken.push(action);
        }
        taken
    }

    /// Puts `action` in force, replacing the one of the same rule and path.
    fn put(&self, action: Action) {
        let mut actions = lock(&self.actions);
        let id = action.id();
        actions.retain(|a| a.id() != id);
        actions.push(action);
        self.changed(&actions);
    }

    /// Recounts after `actions` changed; budgets see the new version.
    fn changed(&self, actions: &[Action]) {
        let now = unix_now();
        let suspensions = actions
            .iter()
            .filter(|a| a.kind == ActionKind::Suspend && a.until > now)
            .count();
        self.suspensions.store(suspensions, Ordering::Release);
        metrics::gauge!("shaping_actions_in_force").set(actions.len() as f64);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// A number that changes whenever the actions in force change (to save them then).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Actions kept before a restart: those not yet ended are in force again.
    pub fn restore(&self, kept: Vec<Action>) {
        let now = unix_now();
        for action in kept.into_iter().filter(|a| !a.ended() && a.plausible(now)) {
            tracing::info!(rule = %action.rule, site = %action.site, source = %action.source,
                action = %action.kind, remaining_s = action.until.saturating_sub(unix_now()),
                "shaping action kept across the restart in force");
            self.put(action);
        }
    }

    /// The actions in force, oldest first; those that ended are dropped.
    pub fn list(&self) -> Vec<Action> {
        let now = unix_now();
        let mut actions = lock(&self.actions);
        let before = actions.len();
        actions.retain(|a| a.until > now);
        if actions.len() != before {
            self.changed(&actions);
        }
        actions.clone()
    }

    /// Ends the actions on `site` (every site when empty) of `rule` (every rule when
    /// `None`); returns those ended.
    pub fn clear(&self, site: &str, rule: Option<&str>) -> Vec<Action> {
        let mut actions = lock(&self.actions);
        let (ended, kept): (Vec<Action>, Vec<Action>) = actions
            .drain(..)
            .partition(|a| (site.is_empty() || a.site == site) && rule.is_none_or(|r| a.rule == r));
        *actions = kept;
        self.changed(&actions);
        drop(actions);
        self.ended_early(&ended);
        for action in &ended {
            tracing::info!(rule = %action.rule, site = %action.site, source = %action.source,
                action = %action.kind, "shaping action cleared by the operator");
        }
        if !ended.is_empty()
            && let Some(hook) = lock(&self.hook).as_ref()
        {
            hook(ActionChange::Cleared(
                ended.iter().map(Action::id).collect(),
            ));
        }
        ended
    }

    /// The fleet's actions, as Redis holds them: they replace this node's (actions of
    /// this node that Redis does not have yet are in `pending` and kept).
    pub fn replace_fleet(&self, fleet: Vec<Action>, pending: &[Action]) {
        let now = unix_now();
        let mut actions = lock(&self.actions);
        let mut next: Vec<Action> = fleet
            .into_iter()
            .filter(|a| a.until > now && a.plausible(now))
            .collect();
        // Taken here a moment ago, maybe after the fleet's copy was read: kept.
        let recent: Vec<Action> = actions
            .iter()
            .filter(|a| a.node == self.node && a.since.saturating_add(FLEET_GRACE_S) > now)
            .cloned()
            .collect();
        for action in pending.iter().chain(&recent) {
            if action.until > now && !next.iter().any(|a| a.id() == action.id()) {
                next.push(action.clone());
            }
        }
        next.sort_by_key(|a| (a.since, a.id()));
        let mut current = actions.clone();
        current.sort_by_key(|a| (a.since, a.id()));
        if current != next {
            for action in next.iter().filter(|a| !current.contains(a)) {
                tracing::info!(rule = %action.rule, site = %action.site, source = %action.source,
                    action = %action.kind, node = %action.node, "shaping action from the fleet in force");
            }
            let gone: Vec<Action> = current
                .into_iter()
                .filter(|a| !next.iter().any(|n| n.id() == a.id()))
                .collect();
            *actions = next;
            self.changed(&actions);
            drop(actions);
            self.ended_early(&gone);
        }
    }
}

/// Help texts of the metrics recorded in this module, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "shaping_actions_total",
        "Traffic-shaping actions taken on this node, by rule."
    );
    metrics::describe_gauge!(
        "shaping_actions_in_force",
        "Traffic-shaping actions in force now (this node's and the fleet's)."
    );
    metrics::describe_counter!(
        "shaping_waits_total",
        "Times a Delivery actor waited for its site's budget, by reason (suspended, limit)."
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn shaping() -> Arc<Shaping> {
        let rules = ShapingRules {
            providers: vec![Provider {
                name: "google".into(),
                mx_suffix: vec![".google.test".into()],
                limits: Limits {
                    max_connections: Some(1),
                    ..Limits::default()
                },
            }],
            automation: vec![Rule {
                name: "rate".into(),
                provider: None,
                site: None,
                enhanced_code: Some("4.7.28".into()),
                pattern: None,
                trigger: Trigger::Immediate,
                action: ActionKind::Suspend,
                duration: Duration::from_secs(60),
            }],
            ..ShapingRules::default()
        };
        Shaping::new(rules, "node1")
    }

    #[test]
    fn domains_of_one_provider_share_one_budget() {
        let shaping = shaping();
        let a = shaping.path("", "a.example", ["mx.google.test"]);
        let b = shaping.path("", "b.example", ["alt.mx.google.test"]);
        assert!(Arc::ptr_eq(&a, &b));
        let lease = shaping.try_start(&a, false).unwrap();
        assert!(matches!(shaping.try_start(&b, false), Err(Wait::Later(_))));
        drop(lease);
        assert!(shaping.try_start(&b, false).is_ok());
        let c = shaping.path("", "c.example", ["mx.c.example"]);
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn a_matching_reply_suspends_the_site_for_the_queue_and_the_actors_until_cleared() {
        let shaping = shaping();
        let budget = shaping.path("", "a.example", ["mx.google.test"]);
        let other = shaping.path("", "c.example", ["mx.c.example"]);
        let taken = shaping.observe(&budget, &Status::from_reply(450, "4.2.0 busy"));
        assert!(taken.is_empty());
        let taken = shaping.observe(&budget, &Status::from_reply(421, "4.7.28 unusual rate"));
        assert_eq!(taken.len(), 1);
        assert!(matches!(
            shaping.try_start(&budget, true),
            Err(Wait::Suspended { .. })
        ));
        assert!(shaping.try_start(&other, true).is_ok());
        let now = unix_now();
        assert!(
            shaping
                .suspended_until("a.example", now)
                .is_some_and(|u| u >= now + 59)
        );
        assert_eq!(shaping.suspended_until("c.example", now), None);
        assert_eq!(shaping.list().len(), 1);
        assert_eq!(shaping.clear("google", None).len(), 1);
        assert!(shaping.try_start(&budget, true).is_ok());
        assert_eq!(shaping.suspended_until("a.example", now), None);
    }

    #[test]
    fn the_fleet_replaces_actions_but_keeps_unpublished_ones() {
        let shaping = shaping();
        let budget = shaping.path("", "a.example", ["mx.google.test"]);
        let mine = shaping.observe(&budget, &Status::from_reply(421, "4.7.28 unusual rate"));
        // Just taken here: kept though the fleet's copy was read before it was written.
        shaping.replace_fleet(Vec::new(), &[]);
        assert_eq!(shaping.list().len(), 1);
        let mut theirs = mine[0].clone();
        theirs.node = "node2".into();
        theirs.site = "other".into();
        shaping.replace_fleet(vec![theirs.clone()], &[]);
        assert_eq!(shaping.list().len(), 2);
        // Cleared elsewhere: gone here at the next read.
        shaping.replace_fleet(mine.clone(), &[]);
        assert_eq!(shaping.list(), mine);
        // A fleet action suspends here too.
        shaping.clear("", None);
        theirs.site = "google".into();
        shaping.replace_fleet(vec![theirs], &[]);
        assert!(matches!(
            shaping.try_start(&budget, false),
            Err(Wait::Suspended { .. })
        ));
    }
}
