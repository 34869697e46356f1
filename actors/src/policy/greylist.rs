//! The Greylist actor (RFC 6647): at RCPT, the triplet (client network /24 or /64,
//! envelope sender, recipient) must have been seen at least `delay` ago, and no longer
//! than `retry_window` ago, to pass; the first attempt gets `451 4.7.1 Greylisted, please
//! try again in N seconds`, which any real MTA retries. A client network that passes
//! `whitelist_after` times is let through without delay for `whitelist_period`.
//! Authenticated clients, trusted networks, mail to the postmaster and the allow lists
//! skip it.
//!
//! Every decision is one log line naming the triplet, so "where is my mail?" has an
//! answer: `greylisted`, `greylist passed`, `client whitelisted`. The state sits behind
//! [`GreylistBackend`]: sled in the spool's database by default.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::ResponseFuture;

use crate::policy::actor::Policy;
use ipnet::IpNet;

use super::set::Ask;
use crate::protocol::check::{Facts, Verdict};
use crate::protocol::reply::Reply;

pub use crate::core::greylist_state::{
    ClientState, GreylistBackend, GreylistStoreError, TripletState,
};

/// The greylist's rules, from `[greylist]`.
#[derive(Debug, Clone)]
pub struct GreylistRules {
    /// How long a new triplet waits.
    pub delay: Duration,
    /// How long after its first sight a retry still passes (later: it starts over).
    pub retry_window: Duration,
    /// How long a triplet that passed is remembered.
    pub pass_lifetime: Duration,
    /// Passes after which a client network is whitelisted (0: never).
    pub whitelist_after: u32,
    /// How long a whitelisted client network stays so.
    pub whitelist_period: Duration,
    /// Client networks never greylisted.
    pub allow_networks: Vec<IpNet>,
    /// Envelope sender domains never greylisted.
    pub allow_sender_domains: Vec<String>,
    /// Recipient domains never greylisted.
    pub allow_recipient_domains: Vec<String>,
    /// How often expired state is swept.
    pub sweep_interval: Duration,
    /// When the state cannot be read (Redis down): let through instead of deferring.
    pub fail_open: bool,
}

/// The actor, over the backend `B`.
pub struct Greylist<B: GreylistBackend> {
    rules: Arc<GreylistRules>,
    backend: Arc<B>,
}

impl<B: GreylistBackend> Greylist<B> {
    /// A greylist over `backend`.
    pub fn new(rules: GreylistRules, backend: Arc<B>) -> Self {
        Greylist {
            rules: Arc::new(rules),
            backend,
        }
    }
}

/// Decides about one RCPT at `now` (Unix seconds).
pub async fn decide<B: GreylistBackend>(
    rules: &GreylistRules,
    backend: &B,
    facts: &Facts,
    now: u64,
) -> Result<Verdict, GreylistStoreError> {
    {
        let (Some(sender), Some(rcpt)) = (facts.sender.as_deref(), facts.recipients.first()) else {
            return Ok(Verdict::accept());
        };
        if exempt(rules, facts, sender, rcpt) {
            return Ok(Verdict::accept());
        }
        let client = client_network(facts.client_ip);
        let mut client_state = backend.client(&client).await?.unwrap_or_default();
        if client_state.whitelisted_until > now {
            metrics::counter!("greylist_decisions_total", "result" => "whitelisted").increment(1);
            return Ok(Verdict::accept());
        }
        let key = format!(
            "{client}|{}|{}",
            sender.to_ascii_lowercase(),
            rcpt.to_ascii_lowercase()
        );
        let delay = rules.delay.as_secs();
        let Some(first_seen) = first_seen(rules, backend, &key, now).await? else {
            metrics::counter!("greylist_decisions_total", "result" => "known").increment(1);
            return Ok(Verdict::accept());
        };
        let waited = now.saturating_sub(first_seen);
        if waited < delay {
            let wait_s = delay - waited;
            metrics::counter!("greylist_decisions_total", "result" => "greylisted").increment(1);
            tracing::info!(client = %facts.client_ip, triplet_client = %client, from = %sender, to = %rcpt,
                first_seen_s_ago = waited, retry_in_s = wait_s, "greylisted");
            return Ok(Verdict::Defer(Reply::greylisted(wait_s)));
        }
        let passed = TripletState {
            first_seen,
            passed: true,
            expires: now + rules.pass_lifetime.as_secs(),
        };
        backend.set_triplet(&key, &passed).await?;
        client_state.passes += 1;
        client_state.expires = now + rules.whitelist_period.max(rules.pass_lifetime).as_secs();
        metrics::counter!("greylist_decisions_total", "result" => "passed").increment(1);
        tracing::info!(client = %facts.client_ip, triplet_client = %client, from = %sender, to = %rcpt,
            waited_s = waited, "greylist passed");
        if rules.whitelist_after > 0 && client_state.passes >= rules.whitelist_after {
            client_state.whitelisted_until = now + rules.whitelist_period.as_secs();
            tracing::info!(triplet_client = %client, passes = client_state.passes,
                for_s = rules.whitelist_period.as_secs(), "greylist: client whitelisted");
        }
        backend.set_client(&client, &client_state).await?;
        Ok(Verdict::accept())
    }
}

/// Whether the RCPT skips the greylist: an authenticated or trusted client, mail to the
/// postmaster, or an allow list.
fn exempt(rules: &GreylistRules, facts: &Facts, sender: &str, rcpt: &str) -> bool {
    let sender_domain = domain_of(sender);
    let rcpt_domain = domain_of(rcpt);
    facts.user.is_some()
        || facts.trusted
        || facts.postmaster
        || rules
            .allow_networks
            .iter()
            .any(|n| n.contains(&facts.client_ip))
        || rules
            .allow_sender_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(sender_domain))
        || rules
            .allow_recipient_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(rcpt_domain))
}

/// When the triplet under `key` was first seen within its retry window (recorded now if
/// it is new or its window passed); `None` for a triplet that passed before, whose
/// lifetime is renewed.
async fn first_seen<B: GreylistBackend>(
    rules: &GreylistRules,
    backend: &B,
    key: &str,
    now: u64,
) -> Result<Option<u64>, GreylistStoreError> {
    Ok(Some(match backend.triplet(key).await? {
        Some(state) if state.passed => {
            let renewed = TripletState {
                expires: now + rules.pass_lifetime.as_secs(),
                ..state
            };
            backend.set_triplet(key, &renewed).await?;
            return Ok(None);
        }
        Some(state) if now.saturating_sub(state.first_seen) <= rules.retry_window.as_secs() => {
            state.first_seen
        }
        // New, or its retry window passed: it starts over.
        _ => {
            let fresh = TripletState {
                first_seen: now,
                passed: false,
                expires: now + rules.retry_window.as_secs(),
            };
            backend.set_triplet(key, &fresh).await?;
            now
        }
    }))
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The network a client's retries may come from: its /24, or its /64.
fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_network(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<B: GreylistBackend> Policy for Greylist<B> {
    fn housekeeping_interval(&self) -> Option<Duration> {
        Some(self.rules.sweep_interval)
    }

    fn keep_house(&mut self) {
        let removed = self.backend.sweep(unix_now());
        if let Some(len) = self.backend.stored() {
            metrics::gauge!("greylist_triplets").set(len as f64);
        }
        if removed > 0 {
            tracing::debug!(removed, "greylist: expired entries removed");
        }
    }

    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let (rules, backend) = (self.rules.clone(), self.backend.clone());
        Box::pin(async move {
            match decide(&rules, backend.as_ref(), &facts, unix_now()).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    metrics::counter!("greylist_decisions_total", "result" => "error").increment(1);
                    tracing::error!(client = %facts.client_ip, error = %e, fail_open = rules.fail_open,
                        "greylist state unreadable");
                    if rules.fail_open {
                        Verdict::accept()
                    } else {
                        Verdict::Defer(Reply::policy_unavailable("greylist"))
                    }
                }
            }
        })
    }
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "greylist_decisions_total",
        "Greylist decisions at RCPT, by result (greylisted, passed, known, whitelisted, error)."
    );
    metrics::describe_gauge!(
        "greylist_triplets",
        "Greylist triplets remembered (after the last sweep)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::check::CheckStage;
    use crate::store::greylist::SledGreylist;

    fn rules() -> GreylistRules {
        GreylistRules {
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(4 * 3600),
            pass_lifetime: Duration::from_secs(30 * 86400),
            whitelist_after: 2,
            whitelist_period: Duration::from_secs(30 * 86400),
            allow_networks: vec!["198.18.0.0/15".parse().unwrap()],
            allow_sender_domains: vec!["friend.test".into()],
            allow_recipient_domains: vec![],
            sweep_interval: Duration::from_secs(600),
            fail_open: false,
        }
    }

    /// The decision function over a sled backend, driven to completion (sled answers
    /// at once).
    struct G {
        backend: SledGreylist,
    }

    impl G {
        fn decide(&self, facts: &Facts, now: u64) -> Result<Verdict, GreylistStoreError> {
            futures_util::FutureExt::now_or_never(decide(&rules(), &self.backend, facts, now))
                .expect("sled answers at once")
        }
    }

    fn greylist() -> (tempfile::TempDir, G) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let backend = SledGreylist::new(&db).unwrap();
        (dir, G { backend })
    }

    fn rcpt(ip: &str, from: &str, to: &str) -> Facts {
        let mut facts = Facts::connect(ip.parse().unwrap(), false);
        facts.stage = CheckStage::Rcpt;
        facts.sender = Some(from.into());
        facts.recipients = vec![to.into()];
        facts
    }

    #[test]
    fn a_triplet_passes_after_the_delay_and_within_the_window() {
        let (_dir, g) = greylist();
        let t0 = 1_000_000;
        let first = g
            .decide(&rcpt("192.0.2.10", "a@s.test", "u@r.test"), t0)
            .unwrap();
        assert_eq!(first, Verdict::Defer(Reply::greylisted(300)));
        // Too soon, from another host of the same /24.
        let soon = g
            .decide(&rcpt("192.0.2.77", "a@s.test", "u@r.test"), t0 + 100)
            .unwrap();
        assert_eq!(soon, Verdict::Defer(Reply::greylisted(200)));
        assert_eq!(
            g.decide(&rcpt("192.0.2.77", "a@s.test", "u@r.test"), t0 + 300)
                .unwrap(),
            Verdict::accept()
        );
        // Known from now on.
        assert_eq!(
            g.decide(&rcpt("192.0.2.10", "a@s.test", "u@r.test"), t0 + 9000)
                .unwrap(),
            Verdict::accept()
        );
        // Another recipient is another triplet.
        assert!(matches!(
            g.decide(&rcpt("192.0.2.10", "a@s.test", "v@r.test"), t0 + 9000)
                .unwrap(),
            Verdict::Defer(_)
        ));
    }

    #[test]
    fn a_retry_after_the_window_starts_over() {
        let (_dir, g) = greylist();
        let t0 = 1_000_000;
        g.decide(&rcpt("198.51.100.1", "a@s.test", "u@r.test"), t0)
            .unwrap();
        let late = g
            .decide(&rcpt("198.51.100.1", "a@s.test", "u@r.test"), t0 + 5 * 3600)
            .unwrap();
        assert_eq!(late, Verdict::Defer(Reply::greylisted(300)));
    }

    #[test]
    fn passes_whitelist_the_client_and_allow_lists_skip() {
        let (_dir, g) = greylist();
        let t0 = 1_000_000;
        for to in ["a@r.test", "b@r.test"] {
            g.decide(&rcpt("203.0.113.5", "x@s.test", to), t0).unwrap();
            assert_eq!(
                g.decide(&rcpt("203.0.113.5", "x@s.test", to), t0 + 301)
                    .unwrap(),
                Verdict::accept()
            );
        }
        // Whitelisted after two passes: a new triplet goes through at once.
        assert_eq!(
            g.decide(&rcpt("203.0.113.9", "new@s.test", "c@r.test"), t0 + 400)
                .unwrap(),
            Verdict::accept()
        );
        assert_eq!(
            g.decide(&rcpt("198.18.1.1", "y@s.test", "u@r.test"), t0)
                .unwrap(),
            Verdict::accept()
        );
        assert_eq!(
            g.decide(&rcpt("192.0.2.1", "y@FRIEND.test", "u@r.test"), t0)
                .unwrap(),
            Verdict::accept()
        );
        let mut authenticated = rcpt("192.0.2.1", "y@s.test", "u@r.test");
        authenticated.user = Some("app".into());
        assert_eq!(g.decide(&authenticated, t0).unwrap(), Verdict::accept());
    }

    #[test]
    fn expired_triplets_are_swept() {
        let (_dir, g) = greylist();
        g.decide(&rcpt("192.0.2.10", "a@s.test", "u@r.test"), 1000)
            .unwrap();
        assert_eq!(g.backend.stored(), Some(1));
        assert_eq!(g.backend.sweep(1000 + 4 * 3600 + 1), 1);
        assert_eq!(g.backend.stored(), Some(0));
    }
}
