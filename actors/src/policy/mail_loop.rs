//! Relay domains whose mail would come back to hermod itself. When a relay domain has no
//! transport entry and its best MX host is this server (a common slip while moving an MX
//! gateway), every message for it would be delivered to hermod again, and again, until
//! the `Received:` count stops it 50 hops later. Instead, hermod looks up the next hop of
//! each relay domain ahead of time, in the background, and refuses RCPT for a looping
//! one with `550 5.4.6 … loops back to myself` and a log line naming the hop.
//!
//! Who uses it: the wiring runs [`find_loops`] at start, after a reload and every
//! [`RECHECK_INTERVAL`]; Sessions read [`LoopingDomains`] at RCPT (one read lock, no I/O).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::outbound::mx::MxResolver;
use crate::outbound::routing::Router;

/// How often the relay domains' next hops are looked up again: DNS changes reach the
/// RCPT check within this.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(300);

pub use crate::core::looping_domains::{Loop, LoopingDomains};

/// What [`find_loops`] needs to know about where hermod is and where mail goes.
pub struct LoopCheck<'a> {
    /// Relay domains; `.example.com` (sub-domains) entries cannot be looked up and are
    /// skipped.
    pub domains: &'a [String],
    /// The routing the Queue uses.
    pub router: &'a Router,
    /// The resolver Delivery actors use.
    pub resolver: &'a MxResolver,
    /// The port MX hosts are delivered to (`delivery.mx_port`).
    pub mx_port: u16,
    /// Where hermod listens (the bound addresses, so a port 0 in the configuration is
    /// the real port).
    pub listen: &'a [SocketAddr],
}

/// The relay domains whose best next-hop target is one of hermod's own listening
/// addresses. A lookup that fails (DNS down, no such domain) counts as no loop: mail is
/// then accepted and the Queue's retries and bounces apply as usual.
pub async fn find_loops(check: LoopCheck<'_>) -> Vec<Loop> {
    let lookups = check
        .domains
        .iter()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty() && !d.starts_with('.'))
        .map(|domain| async {
            let hop = check.router.route(&domain);
            let targets = check.resolver.targets(&hop, check.mx_port).await.ok()?;
            let best = targets.first()?;
            is_ours(best.addr, check.listen).then(|| Loop {
                domain,
                next_hop: hop.to_string(),
                target: best.addr,
            })
        });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What changes on a reload: the relay domains and the routing.
pub type LoopInputs = (Vec<String>, Router);

/// Checks again every [`RECHECK_INTERVAL`] and whenever `inputs` changes (a reload),
/// until the sender is dropped. The first check is the caller's, before it listens.
pub async fn keep_checking(
    mut inputs: tokio::sync::watch::Receiver<LoopInputs>,
    resolver: Arc<MxResolver>,
    mx_port: u16,
    listen: Vec<SocketAddr>,
    loops: Arc<LoopingDomains>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RECHECK_INTERVAL) => {}
            changed = inputs.changed() => if changed.is_err() { return },
        }
        let (domains, router) = inputs.borrow_and_update().clone();
        let found = find_loops(LoopCheck {
            domains: &domains,
            router: &router,
            resolver: &resolver,
            mx_port,
            listen: &listen,
        })
        .await;
        loops.replace(found);
    }
}

/// Whether a connection to `target` would reach one of `listen`: the same port, and the
/// same address or, for a wildcard listener, an address of this machine.
fn is_ours(target: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen.iter().any(|ours| {
        ours.port() == target.port()
            && (ours.ip() == target.ip() || (ours.ip().is_unspecified() && is_local(target.ip())))
    })
}

/// Whether `ip` is an address of this machine: only those can be bound.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_target_on_our_address_and_port_is_ours() {
        let listen = [addr("127.0.0.1:2525")];
        assert!(is_ours(addr("127.0.0.1:2525"), &listen));
        assert!(!is_ours(addr("127.0.0.1:25"), &listen));
        assert!(!is_ours(addr("192.0.2.1:2525"), &listen));
    }

    #[test]
    fn a_wildcard_listener_owns_the_machines_addresses_only() {
        let listen = [addr("0.0.0.0:25")];
        assert!(is_ours(addr("127.0.0.2:25"), &listen));
        // TEST-NET-1 is never an address of this machine.
        assert!(!is_ours(addr("192.0.2.1:25"), &listen));
    }

    #[test]
    fn looping_domains_match_without_case_or_trailing_dot() {
        let loops = LoopingDomains::default();
        assert!(!loops.snapshot().loops("example.com"));
        loops.replace(vec![Loop {
            domain: "example.com".into(),
            next_hop: "mx:example.com".into(),
            target: addr("127.0.0.1:25"),
        }]);
        assert!(loops.snapshot().loops("Example.COM."));
        assert!(!loops.snapshot().loops("other.example.com"));
        loops.replace(Vec::new());
        assert!(!loops.snapshot().loops("example.com"));
    }
}
