//! The relay domains whose mail would loop back to hermod, as the mail-loop check last
//! found them ([`crate::policy::mail_loop`] finds them). Each finding is published as an
//! immutable [`LoopSnapshot`]; a Session hands the latest one to its protocol as an input
//! when it changes, so the protocol reads plain data at RCPT, with no lock and no I/O.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

/// One finding: the looping relay domains, lowercase, without a trailing dot. Cheap to
/// clone (shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopSnapshot(Arc<BTreeSet<String>>);

impl LoopSnapshot {
    /// Whether mail for `domain` (any case, maybe a trailing dot) would loop.
    pub fn loops(&self, domain: &str) -> bool {
        !self.0.is_empty()
            && self
                .0
                .contains(&domain.trim_end_matches('.').to_ascii_lowercase())
    }
}

/// The relay domains whose mail loops back to hermod, as last found, published to every
/// Session that [subscribed](LoopingDomains::subscribe).
#[derive(Debug)]
pub struct LoopingDomains {
    latest: watch::Sender<LoopSnapshot>,
}

impl Default for LoopingDomains {
    fn default() -> Self {
        LoopingDomains {
            latest: watch::Sender::new(LoopSnapshot::default()),
        }
    }
}

impl LoopingDomains {
    /// The latest finding.
    pub fn snapshot(&self) -> LoopSnapshot {
        self.latest.borrow().clone()
    }

    /// Each new finding, as it is made (the current one counts as seen).
    pub fn subscribe(&self) -> watch::Receiver<LoopSnapshot> {
        self.latest.subscribe()
    }

    /// Replaces the set with a fresh finding; logs each domain that starts or stops
    /// looping, so the log says when an operator's fix took effect.
    pub fn replace(&self, found: Vec<Loop>) {
        let fresh: BTreeSet<String> = found.iter().map(|l| l.domain.clone()).collect();
        let before = self.snapshot();
        for found in &found {
            if !before.0.contains(&found.domain) {
                tracing::error!(
                    domain = %found.domain,
                    next_hop = %found.next_hop,
                    target = %found.target,
                    "mail for a relay domain would loop back to hermod itself; RCPT for it is refused with 5.4.6 until a transport entry (delivery.transport) or its MX records send it elsewhere"
                );
            }
        }
        for gone in before.0.difference(&fresh) {
            tracing::info!(domain = %gone, "relay domain no longer loops back to hermod; RCPT for it is accepted again");
        }
        if *before.0 != fresh {
            self.latest.send_replace(LoopSnapshot(Arc::new(fresh)));
        }
    }
}

/// A relay domain whose next hop is hermod itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loop {
    /// The relay domain.
    pub domain: String,
    /// Its next hop, in the configuration's syntax.
    pub next_hop: String,
    /// The best target of that hop: one of hermod's own listening addresses.
    pub target: SocketAddr,
}
