//! Egress sources and pools: a relay that owns several outbound addresses sends from
//! them in the weights the operator gives. A source is a local address to bind to and
//! the EHLO name that goes with it (its PTR record's, for the receivers' checks); a pool
//! is a weighted set of sources; which pool a message uses is chosen by the user it was
//! submitted as (or the injection tenant), else the default pool.
//!
//! Each new connection goes to the source furthest behind its share (connections opened
//! over weight), counted over every Delivery actor, so that over many connections each
//! source gets its share, however many domains the connections are spread over; a source
//! whose limits refuse a connection now is passed over for the next one behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One local address mail may leave from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its name, in logs, the shaping file's paths and `hermod shaping status`.
    pub name: String,
    /// The address connections are bound to.
    pub address: IpAddr,
    /// The EHLO name given from it.
    pub ehlo: String,
}

/// A weighted set of sources.
#[derive(Debug)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// The sources with their weights (each at least 1).
    sources: Vec<(Arc<Source>, u32)>,
    /// Connections opened from each source (same order as `sources`).
    opened: Vec<AtomicU64>,
}

impl Pool {
    /// A pool of `sources` with their weights (a weight of 0 counts as 1); `None` when
    /// it has no source.
    pub fn new(name: &str, sources: Vec<(Arc<Source>, u32)>) -> Option<Pool> {
        let sources: Vec<(Arc<Source>, u32)> =
            sources.into_iter().map(|(s, w)| (s, w.max(1))).collect();
        (!sources.is_empty()).then(|| Pool {
            name: name.to_string(),
            opened: sources.iter().map(|_| AtomicU64::new(0)).collect(),
            sources,
        })
    }

    /// The sources in the order the next connection should try them: furthest behind
    /// its share first (the fewest connections opened, after one more, per weight),
    /// ties in the configured order.
    pub fn ranked(&self) -> Vec<&Arc<Source>> {
        let mut order: Vec<(u64, u64, usize)> = self
            .sources
            .iter()
            .zip(&self.opened)
            .enumerate()
            .map(|(i, ((_, weight), opened))| {
                (opened.load(Ordering::Relaxed) + 1, u64::from(*weight), i)
            })
            .collect();
        // a/wa < b/wb  ⇔  a·wb < b·wa (no division, no rounding).
        order.sort_by(|(a, wa, i), (b, wb, j)| {
            (u128::from(*a) * u128::from(*wb))
                .cmp(&(u128::from(*b) * u128::from(*wa)))
                .then(i.cmp(j))
        });
        order
            .into_iter()
            .map(|(_, _, i)| &self.sources[i].0)
            .collect()
    }

    /// Counts a connection opened from `source`.
    pub fn opened(&self, source: &Source) {
        if let Some(i) = self.sources.iter().position(|(s, _)| s.name == source.name) {
            self.opened[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether `source` (a name) is one of its sources.
    pub fn has(&self, source: &str) -> bool {
        self.sources.iter().any(|(s, _)| s.name == source)
    }

    /// Its sources, in the configured order.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.sources.iter().map(|(s, _)| s)
    }
}

/// Every pool, and which one a message uses.
#[derive(Debug, Default)]
pub struct Egress {
    /// The pool of mail nothing else places; `None`: the system's own address.
    pub default: Option<Arc<Pool>>,
    /// Pools by the user (AUTH, or the injection tenant) a message came from.
    pub by_user: HashMap<String, Arc<Pool>>,
    /// Every pool by name (an `X-Hermod-Pool:` field names one).
    pub by_name: HashMap<String, Arc<Pool>>,
}

impl Egress {
    /// The pool of a message that named `named` (its `X-Hermod-Pool:` field, kept in
    /// its envelope), else of its `user` (if any), else the default.
    pub fn pool_for(&self, named: Option<&str>, user: Option<&str>) -> Option<Arc<Pool>> {
        named
            .and_then(|name| self.by_name.get(name))
            .or_else(|| user.and_then(|u| self.by_user.get(u)))
            .or(self.default.as_ref())
            .cloned()
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.by_name.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, last: u8) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            address: IpAddr::from([127, 0, 0, last]),
            ehlo: format!("{name}.example.test"),
        })
    }

    #[test]
    fn sources_get_connections_in_their_weights() {
        let pool = Pool::new(
            "p",
            vec![
                (source("a", 2), 1),
                (source("b", 3), 1),
                (source("c", 4), 3),
            ],
        )
        .unwrap();
        let mut counts = HashMap::new();
        for _ in 0..50 {
            let source = pool.ranked()[0].clone();
            pool.opened(&source);
            *counts.entry(source.name.clone()).or_insert(0) += 1;
        }
        assert_eq!((counts["a"], counts["b"], counts["c"]), (10, 10, 30));
        // Never more than one connection off its share on the way there.
        let ranked: Vec<&str> = pool.ranked().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(ranked.len(), 3);
        assert!(pool.has("b") && !pool.has("z"));
        assert!(Pool::new("empty", Vec::new()).is_none());
    }

    #[test]
    fn a_named_pool_wins_over_the_users_over_the_default() {
        let bulk = Arc::new(Pool::new("bulk", vec![(source("a", 2), 1)]).unwrap());
        let vip = Arc::new(Pool::new("vip", vec![(source("b", 3), 1)]).unwrap());
        let egress = Egress {
            default: Some(bulk.clone()),
            by_user: HashMap::from([("alice".to_string(), vip.clone())]),
            by_name: HashMap::from([("bulk".to_string(), bulk), ("vip".to_string(), vip)]),
        };
        assert_eq!(egress.pool_for(None, Some("alice")).unwrap().name, "vip");
        assert_eq!(egress.pool_for(None, Some("bob")).unwrap().name, "bulk");
        assert_eq!(egress.pool_for(None, None).unwrap().name, "bulk");
        // A pool the message named wins; an unknown name does not count.
        assert_eq!(
            egress.pool_for(Some("vip"), Some("bob")).unwrap().name,
            "vip"
        );
        assert_eq!(egress.pool_for(Some("nope"), None).unwrap().name, "bulk");
        assert!(Egress::default().pool_for(None, Some("alice")).is_none());
    }
}
