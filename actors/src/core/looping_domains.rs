//! The relay domains whose mail would loop back to hermod, as the mail-loop check last
//! found them ([`crate::policy::mail_loop`] finds them; Sessions read them at RCPT with
//! one read lock and no I/O).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::RwLock;

/// The relay domains whose mail loops back to hermod, as last found.
#[derive(Debug, Default)]
pub struct LoopingDomains {
    /// Lowercase, without a trailing dot. A std lock: held for one lookup or one swap.
    domains: RwLock<BTreeSet<String>>,
}

impl LoopingDomains {
    /// Whether mail for `domain` (any case, maybe a trailing dot) would loop.
    pub fn loops(&self, domain: &str) -> bool {
        let domains = self.domains.read().unwrap_or_else(|e| e.into_inner());
        if domains.is_empty() {
            return false;
        }
        domains.contains(&domain.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Replaces the set with a fresh finding; logs each domain that starts or stops
    /// looping, so the log says when an operator's fix took effect.
    pub fn replace(&self, found: Vec<Loop>) {
        let fresh: BTreeSet<String> = found.iter().map(|l| l.domain.clone()).collect();
        let mut domains = self.domains.write().unwrap_or_else(|e| e.into_inner());
        for found in &found {
            if !domains.contains(&found.domain) {
                tracing::error!(
                    domain = %found.domain,
                    next_hop = %found.next_hop,
                    target = %found.target,
                    "mail for a relay domain would loop back to hermod itself; RCPT for it is refused with 5.4.6 until a transport entry (delivery.transport) or its MX records send it elsewhere"
                );
            }
        }
        for gone in domains.difference(&fresh) {
            tracing::info!(domain = %gone, "relay domain no longer loops back to hermod; RCPT for it is accepted again");
        }
        *domains = fresh;
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
