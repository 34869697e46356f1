//! The Delivery actor's side of egress pools: which idle connection a job of a pool may
//! take (one from a source of its pool), which source a new connection leaves from (the
//! one furthest behind its share whose site budget has room), and the site budget of
//! each (source, site) path, so that a pool of four sources may open four times the
//! connections of one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Delivery;
use super::site::SiteStop;
use crate::outbound::connection_budget::Permit;
use crate::outbound::egress::{Pool, Source};
use crate::outbound::shaping::SiteBudget;

/// What a new or pooled connection for the next job is: its source, its lease in its
/// path's site budget, and that budget.
pub(super) struct Chosen {
    pub(super) source: Option<Arc<Source>>,
    pub(super) lease: Option<Permit>,
    pub(super) budget: Option<Arc<SiteBudget>>,
}

impl Delivery {
    /// Closes idle connections, oldest first, while the budget of their (source, site)
    /// path asks for room.
    pub(super) fn make_room_on_paths(&mut self) {
        let budgets: Vec<Arc<SiteBudget>> = self
            .site
            .budget
            .iter()
            .chain(self.site.by_source.values())
            .cloned()
            .collect();
        for budget in budgets {
            let source = budget.key().source.as_str();
            while let Some(i) = self.idle.iter().position(|(connection, _)| {
                connection.source().map_or("", |s| s.name.as_str()) == source
            }) {
                if !budget.connections().claim_close() {
                    break;
                }
                let (connection, _) = self.idle.remove(i);
                actix::spawn(connection.quit());
            }
        }
    }

    /// The idle connection (newest first) a job of `pool` may take: one from a source
    /// of the pool, or without a source when the job has no pool.
    pub(super) fn matching_idle(&self, pool: Option<&Pool>) -> Option<usize> {
        self.idle
            .iter()
            .rposition(|(connection, _)| match (pool, connection.source()) {
                (None, None) => true,
                (Some(pool), Some(source)) => pool.has(&source.name),
                _ => false,
            })
    }

    /// The site budget of the path from `source` (none: the system's address) to this
    /// hop's site, once the site is known.
    pub(super) fn path_budget(&mut self, source: Option<&Source>) -> Option<Arc<SiteBudget>> {
        let Some(source) = source else {
            return self.site.budget.clone();
        };
        let shaping = self.settings.shaping.clone()?;
        if let Some(budget) = self.site.by_source.get(&source.name) {
            return Some(budget.clone());
        }
        let budget = shaping.path(
            &source.name,
            self.hop.name(),
            self.site.hosts.iter().map(String::as_str),
        );
        self.site
            .by_source
            .insert(source.name.clone(), budget.clone());
        Some(budget)
    }

    /// The source (and site lease) of the next job's connection: the pooled one's
    /// (`reuse`), else the pool's sources furthest behind their share first, passing
    /// over those whose site budget refuses now.
    pub(super) fn choose(
        &mut self,
        pool: Option<&Arc<Pool>>,
        reuse: Option<usize>,
    ) -> Result<Chosen, SiteStop> {
        if let Some(i) = reuse {
            let source = self.idle[i].0.source_arc();
            let budget = self.path_budget(source.as_deref());
            match self.site_allows(budget.as_ref(), true) {
                Ok(lease) => {
                    return Ok(Chosen {
                        source,
                        lease,
                        budget,
                    });
                }
                // Its source is suspended: the connection goes, and the pump tries again
                // at once (another source of the pool, or another idle connection).
                Err(SiteStop::Suspended(..)) if pool.is_some() => {
                    let (connection, _) = self.idle.remove(i);
                    self.idle_count.store(self.idle.len(), Ordering::Relaxed);
                    actix::spawn(connection.quit());
                    return Err(SiteStop::Later(Duration::from_millis(1)));
                }
                Err(stop) => return Err(stop),
            }
        }
        let Some(pool) = pool else {
            let budget = self.path_budget(None);
            let lease = self.site_allows(budget.as_ref(), false)?;
            return Ok(Chosen {
                source: None,
                lease,
                budget,
            });
        };
        let mut first_stop = None;
        let mut soonest: Option<Duration> = None;
        for source in pool.ranked().into_iter().cloned().collect::<Vec<_>>() {
            let budget = self.path_budget(Some(&source));
            match self.site_allows(budget.as_ref(), false) {
                Ok(lease) => {
                    pool.opened(&source);
                    return Ok(Chosen {
                        source: Some(source),
                        lease,
                        budget,
                    });
                }
                Err(SiteStop::Later(wait)) => {
                    soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
                }
                Err(stop) => {
                    // The suspension that ends first is the one to wait for.
                    let sooner = match (&stop, &first_stop) {
                        (SiteStop::Suspended(_, until), Some(SiteStop::Suspended(_, held))) => {
                            until < held
                        }
                        _ => first_stop.is_none(),
                    };
                    if sooner {
                        first_stop = Some(stop);
                    }
                }
            }
        }
        // Every source refused: the soonest wait, else (all suspended) the soonest end.
        Err(match (soonest, first_stop) {
            (Some(wait), _) => SiteStop::Later(wait),
            (None, Some(stop)) => stop,
            (None, None) => SiteStop::Later(Duration::from_millis(50)),
        })
    }
}
