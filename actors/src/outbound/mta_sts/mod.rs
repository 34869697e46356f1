//! MTA-STS (RFC 8461): a receiving domain's published demand that mail to it go only to
//! the MX hosts it lists, over TLS with a certificate that verifies, so that nobody on
//! the path can strip STARTTLS or answer in the MX's place.
//!
//! [`MtaSts::policy_for`] finds the policy that applies to a domain: its `_mta-sts` TXT
//! record (asked at most once a minute per domain) names the current policy id; a policy with that id already kept (in memory and
//! in the spool's `mta_sts` tree, so it survives restarts) is used, else it is fetched
//! ([`fetch`]) and kept for its `max_age`. A fetch that fails falls back to the kept
//! policy, if any (§5.1), else the domain is treated as having none; either way the
//! domain is not fetched again for [`RETRY_FAILED_FETCH`]. A kept policy is fetched again
//! after half its `max_age` (at most a day), and no domain more than once a minute.

pub(crate) mod enforce;
pub mod fetch;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_auth::common::parse::TxtRecordParser;
use serde::{Deserialize, Serialize};

use self::policy::{Mode, Policy};
use crate::outbound::mx::{MxResolver, is_negative_answer};
use crate::outbound::tls_report::{PolicyRef, SessionFailure, TlsReports};

/// How long a domain whose policy could not be fetched (and has none kept) is treated as
/// having none before the next fetch: a broken policy server must not cost a fetch per
/// message.
pub const RETRY_FAILED_FETCH: Duration = Duration::from_secs(300);

/// Domains whose policies (and fetch times) are held in memory at most; the spool keeps
/// every policy.
const MAX_IN_MEMORY: usize = 10_000;

/// What a `_mta-sts` lookup found: the policy id (`None`: no record), or `Err` when the
/// lookup failed.
type RecordAnswer = Result<Option<String>, ()>;

/// How long one `_mta-sts` answer serves the jobs to its domain.
pub const RECORD_MEMO: Duration = Duration::from_secs(60);

/// The least time between two fetches of one domain's policy: a record whose id changes
/// on every lookup costs a fetch a minute, not one per job.
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(60);

/// A policy as hermod keeps it: with the TXT id it was fetched under and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPolicy {
    /// The `id=` of the TXT record it was fetched under.
    pub id: String,
    /// The policy.
    pub policy: Policy,
    /// Unix seconds of the fetch.
    pub fetched: u64,
}

impl KeptPolicy {
    /// The policy as TLS reports name it: its lines, and its `mx` patterns.
    pub fn report_ref(&self) -> PolicyRef {
        let policy = &self.policy;
        let mut strings = vec![
            "version: STSv1".to_string(),
            format!("mode: {}", policy.mode.name()),
        ];
        strings.extend(policy.mx.iter().map(|mx| format!("mx: {mx}")));
        strings.push(format!("max_age: {}", policy.max_age));
        PolicyRef {
            kind: "sts".into(),
            strings,
            mx: policy.mx.clone(),
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.fetched.saturating_add(self.policy.max_age) <= now
    }

    /// Whether to fetch it again though its id has not changed (§10.2: before it
    /// expires, so that a fetch failing then does not leave the domain without one):
    /// after half its `max_age`, at most a day.
    fn due_for_refresh(&self, now: u64) -> bool {
        let refresh_after = (self.policy.max_age / 2).min(86_400);
        self.fetched.saturating_add(refresh_after) <= now
    }
}

/// Where the policy that applies came from, for the log and `hermod route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fetched now: the first time, or its id changed.
    Fetched,
    /// Kept from an earlier fetch under the same id.
    Kept,
    /// Kept from an earlier fetch; this one failed (or the TXT lookup did).
    KeptAfterFailure,
}

impl Source {
    /// The source's name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Source::Fetched => "fetched",
            Source::Kept => "cached",
            Source::KeptAfterFailure => "cached after a failed refresh",
        }
    }
}

/// The policy a delivery to a domain is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The kept policy.
    pub kept: KeptPolicy,
    /// Where it came from.
    pub source: Source,
}

impl Applied {
    /// How a reply names it: `MTA-STS policy of DOMAIN (enforce, id ID)`.
    pub fn describe(&self, domain: &str) -> String {
        format!(
            "MTA-STS policy of {domain} ({}, id {})",
            self.kept.policy.mode.name(),
            self.kept.id
        )
    }
}

/// The MTA-STS policies of the domains hermod delivers to.
pub struct MtaSts {
    resolver: MxResolver,
    tls: Arc<rustls::ClientConfig>,
    port: u16,
    timeout: Duration,
    /// Policies kept, by domain (also in `tree`).
    kept: Mutex<HashMap<String, KeptPolicy>>,
    /// Each domain's last fetch: when, and whether it brought a policy.
    attempts: Mutex<HashMap<String, (u64, bool)>>,
    /// Each domain's last `_mta-sts` answer, until when it is used again: with a DNS
    /// server that does not answer, every job would otherwise wait out the lookup.
    answers: Mutex<HashMap<String, (u64, RecordAnswer)>>,
    /// One fetch at a time per domain: the jobs that find the same new id at once wait
    /// for the first one's fetch instead of each making their own.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tree: Option<sled::Tree>,
    /// Where failed fetches are counted for the domains' TLS reports.
    reports: Option<Arc<TlsReports>>,
}

impl std::fmt::Debug for MtaSts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtaSts").field("port", &self.port).finish()
    }
}

impl MtaSts {
    /// Looks policies up through `resolver`, fetches them over `tls` (the roots `verify`
    /// trusts) on `port` (443 but in tests), each fetch bounded by `timeout`, and keeps
    /// them in `tree` (none: in memory only).
    pub fn new(
        resolver: MxResolver,
        tls: Arc<rustls::ClientConfig>,
        port: u16,
        timeout: Duration,
        tree: Option<sled::Tree>,
    ) -> Self {
        MtaSts {
            resolver,
            tls,
            port,
            timeout,
            kept: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            answers: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            tree,
            reports: None,
        }
    }

    /// The same, counting failed fetches in `reports` (RFC 8460
    /// `sts-policy-fetch-error`, `sts-policy-invalid`).
    pub fn with_reports(mut self, reports: Option<Arc<TlsReports>>) -> Self {
        self.reports = reports;
        self
    }

    /// The policy mail to `domain` is held to; `None` when it publishes none (or `mode:
    /// none`), or none could be had.
    pub async fn policy_for(&self, domain: &str) -> Option<Applied> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.starts_with('[') {
            // An address literal has no name to publish a policy under.
            return None;
        }
        let now = unix_now();
        let kept = self.kept(&domain, now);
        let applied = match (self.published_id_memo(&domain, now).await, kept) {
            (Ok(Some(id)), Some(kept)) if kept.id == id && !kept.due_for_refresh(now) => {
                Some(Applied {
                    kept,
                    source: Source::Kept,
                })
            }
            (Ok(Some(id)), kept) => self.refresh(&domain, id, kept, now).await,
            // No record now, or the lookup failed: a policy kept and not expired still
            // holds (§5.1), so removing the record cannot downgrade senders at once.
            (_, Some(kept)) => Some(Applied {
                kept,
                source: Source::Kept,
            }),
            (_, None) => None,
        };
        applied.filter(|a| a.kept.policy.mode != Mode::None)
    }

    /// Fetches the policy published under `id` (a new id, or the kept policy is due for
    /// its refresh); `kept` when that fails, or when the domain was fetched moments ago.
    async fn refresh(
        &self,
        domain: &str,
        id: String,
        kept: Option<KeptPolicy>,
        now: u64,
    ) -> Option<Applied> {
        let gate = self.gate(domain);
        let _turn = gate.lock().await;
        // What another job's fetch left while this one waited, or a fetch too recent to
        // repeat: at most one a minute per domain, none for 5 minutes after a failure,
        // whatever id its record names (a record that changes on every lookup must not
        // cost a fetch each).
        if let Some(succeeded) = self.recent_attempt(domain, now) {
            let source = match succeeded {
                true => Source::Kept,
                false => Source::KeptAfterFailure,
            };
            return self
                .kept(domain, now)
                .or(kept)
                .map(|kept| Applied { kept, source });
        }
        let fetched =
            fetch::fetch(domain, &self.resolver, &self.tls, self.port, self.timeout).await;
        self.attempted(domain, now, fetched.is_ok());
        match fetched {
            Ok(policy) => {
                let fresh = KeptPolicy {
                    id,
                    policy,
                    fetched: now,
                };
                tracing::info!(domain = %domain, id = %fresh.id, mode = fresh.policy.mode.name(),
                    mx = ?fresh.policy.mx, max_age = fresh.policy.max_age, "MTA-STS policy fetched");
                self.keep(domain, &fresh);
                metrics::counter!("delivery_mta_sts_fetches_total", "result" => "ok").increment(1);
                Some(Applied {
                    kept: fresh,
                    source: Source::Fetched,
                })
            }
            Err(e) => {
                metrics::counter!("delivery_mta_sts_fetches_total", "result" => "failed")
                    .increment(1);
                let fallback = if kept.is_some() {
                    "the policy kept earlier still applies"
                } else {
                    "delivering as if the domain had no policy"
                };
                tracing::warn!(domain = %domain, id = %id, error = %e, fallback,
                    "MTA-STS policy fetch failed");
                if let Some(reports) = &self.reports {
                    let result_type = match e {
                        fetch::FetchError::Invalid { .. } => "sts-policy-invalid",
                        _ => "sts-policy-fetch-error",
                    };
                    let policy = kept
                        .as_ref()
                        .map_or_else(PolicyRef::none, KeptPolicy::report_ref);
                    let failure = SessionFailure {
                        result_type,
                        mx_host: None,
                        ip: None,
                        additional: Some(e.to_string()),
                    };
                    reports.record(domain, &policy, Err(failure));
                }
                kept.map(|kept| Applied {
                    kept,
                    source: Source::KeptAfterFailure,
                })
            }
        }
    }

    /// The fetch gate of `domain` (entries no job holds are dropped when there are many).
    fn gate(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = lock(&self.fetching);
        if gates.len() >= MAX_IN_MEMORY {
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        gates.entry(domain.to_string()).or_default().clone()
    }

    /// Whether `domain` was fetched too recently to fetch again: `Some(true)` after a
    /// fetch that brought a policy less than [`MIN_FETCH_INTERVAL`] ago, `Some(false)`
    /// after one that failed less than [`RETRY_FAILED_FETCH`] ago.
    fn recent_attempt(&self, domain: &str, now: u64) -> Option<bool> {
        let (at, succeeded) = *lock(&self.attempts).get(domain)?;
        let wait = match succeeded {
            true => MIN_FETCH_INTERVAL,
            false => RETRY_FAILED_FETCH,
        };
        (now < at + wait.as_secs()).then_some(succeeded)
    }

    /// Notes a fetch of `domain` at `now`.
    fn attempted(&self, domain: &str, now: u64, succeeded: bool) {
        let mut attempts = lock(&self.attempts);
        if attempts.len() >= MAX_IN_MEMORY {
            attempts.retain(|_, (at, _)| now < *at + RETRY_FAILED_FETCH.as_secs());
        }
        attempts.insert(domain.to_string(), (now, succeeded));
    }

    /// [`MtaSts::published_id`], asked again at most every [`RECORD_MEMO`] (a failed
    /// lookup every [`RECORD_MEMO`] / 2).
    async fn published_id_memo(&self, domain: &str, now: u64) -> RecordAnswer {
        if let Some((until, answer)) = lock(&self.answers).get(domain)
            && *until > now
        {
            return answer.clone();
        }
        let answer = self.published_id(domain).await;
        let keep_for = match answer {
            Ok(_) => RECORD_MEMO.as_secs(),
            Err(()) => RECORD_MEMO.as_secs() / 2,
        };
        let mut answers = lock(&self.answers);
        if answers.len() >= MAX_IN_MEMORY {
            answers.retain(|_, (until, _)| *until > now);
        }
        answers.insert(domain.to_string(), (now + keep_for, answer.clone()));
        answer
    }

    /// The policy id `_mta-sts.DOMAIN` publishes: `Ok(None)` for no record (or not
    /// exactly one STSv1 record, §3.1), `Err` when the lookup failed.
    async fn published_id(&self, domain: &str) -> RecordAnswer {
        let name = format!("_mta-sts.{domain}.");
        let lookup = match self.resolver.resolver().txt_lookup(name.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if is_negative_answer(&e) => return Ok(None),
            Err(e) => {
                tracing::debug!(domain = %domain, error = %e, "MTA-STS record lookup failed");
                return Err(());
            }
        };
        let records: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::TXT(txt) => Some(txt.txt_data.concat()),
                _ => None,
            })
            .filter(|text| is_sts_record(text))
            .collect();
        match records.as_slice() {
            [record] => Ok(mail_auth::mta_sts::MtaSts::parse(record).ok().map(|r| r.id)),
            _ => Ok(None),
        }
    }

    /// The policy kept for `domain`, unless expired (memory first, then the spool); an
    /// expired one is forgotten in both.
    fn kept(&self, domain: &str, now: u64) -> Option<KeptPolicy> {
        let in_memory = lock(&self.kept).get(domain).cloned();
        let kept = in_memory.or_else(|| {
            let bytes = self.tree.as_ref()?.get(domain).ok()??;
            let kept: KeptPolicy = serde_json::from_slice(&bytes).ok()?;
            let mut memory = lock(&self.kept);
            if memory.len() < MAX_IN_MEMORY {
                memory.insert(domain.to_string(), kept.clone());
            }
            Some(kept)
        })?;
        if kept.expired(now) {
            lock(&self.kept).remove(domain);
            if let Some(tree) = &self.tree {
                let _ = tree.remove(domain);
            }
            return None;
        }
        Some(kept)
    }

    /// Keeps `policy` for `domain`, in memory and in the spool.
    fn keep(&self, domain: &str, policy: &KeptPolicy) {
        {
            let mut kept = lock(&self.kept);
            if kept.len() >= MAX_IN_MEMORY {
                // The spool has them all; memory keeps the ones still good.
                kept.retain(|_, k| !k.expired(policy.fetched));
                if kept.len() >= MAX_IN_MEMORY {
                    kept.clear();
                }
            }
            kept.insert(domain.to_string(), policy.clone());
        }
        if let Some(tree) = &self.tree {
            let stored = serde_json::to_vec(policy)
                .map_err(|e| e.to_string())
                .and_then(|bytes| tree.insert(domain, bytes).map_err(|e| e.to_string()));
            if let Err(e) = stored {
                tracing::warn!(domain = %domain, error = %e, "cannot keep an MTA-STS policy in the spool; it is kept in memory");
            }
        }
    }
}

/// Whether a TXT record is an MTA-STS one: `v=STSv1` and then `;`, a space or its end
/// (not `v=STSv10`).
fn is_sts_record(text: &[u8]) -> bool {
    text.strip_prefix(b"v=STSv1")
        .is_some_and(|rest| matches!(rest.first(), None | Some(b';' | b' ' | b'\t')))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch (0 before it): policy ages, and TLS report periods.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Help texts of the metrics recorded here, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "delivery_mta_sts_fetches_total",
        "MTA-STS policy fetches, by result (ok, failed)."
    );
    metrics::describe_counter!(
        "delivery_mta_sts_refusals_total",
        "Deliveries deferred because an enforced MTA-STS policy was not met, by reason (mx, tls)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_stsv1_record_is_one() {
        assert!(is_sts_record(b"v=STSv1; id=20260101"));
        assert!(is_sts_record(b"v=STSv1 ;id=1"));
        assert!(!is_sts_record(b"v=STSv10; id=1"));
        assert!(!is_sts_record(b"v=spf1 -all"));
    }

    #[test]
    fn a_kept_policy_is_refreshed_after_half_its_age_at_most_a_day() {
        let kept = |max_age| KeptPolicy {
            id: "1".into(),
            policy: Policy {
                mode: Mode::Enforce,
                mx: vec!["mx.example.test".into()],
                max_age,
            },
            fetched: 1_000,
        };
        assert!(!kept(3_600).due_for_refresh(1_000 + 1_799));
        assert!(kept(3_600).due_for_refresh(1_000 + 1_800));
        assert!(!kept(604_800).due_for_refresh(1_000 + 86_399));
        assert!(kept(604_800).due_for_refresh(1_000 + 86_400));
        assert!(!kept(604_800).expired(1_000 + 86_400));
    }
}
