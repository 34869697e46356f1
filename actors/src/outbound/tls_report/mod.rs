//! TLS reporting (RFC 8460), the recording half: every outbound session to a domain
//! routed by MX is counted under the policy it was held to (DANE's TLSA records, an
//! MTA-STS policy, or none), as a success or as a failure of an RFC 8460 type with the
//! MX host and address; so are the policy failures that allow no session (a bogus DNSSEC
//! answer, a policy that cannot be fetched). Counts are kept per reporting period (a UTC
//! day by default) in memory and, every few seconds, in the spool's `tls_reports` tree,
//! so a restart loses at most those seconds. [`report`] turns a finished period into the
//! RFC 8460 JSON the sender (`queue::tls_reports`) sends.

pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::core::message_trace::bounded;
use crate::outbound::mta_sts::unix_now;

/// Domains counted per period at most: a relay's thousands of destinations fit; past it
/// new domains are not counted (and that is counted).
const MAX_DOMAINS: usize = 100_000;

/// Failure kinds (type, host, address) per policy at most; failures past it still count
/// in the policy's total.
const MAX_FAILURE_KINDS: usize = 64;

/// Policies per domain and period at most: one per MX host with TLSA records (DANE's
/// 16), the MTA-STS policy and "none", with room for a few changes; a domain that changes
/// its records every few minutes must not grow its entry without end.
const MAX_POLICIES: usize = 24;

/// Which policy a session was held to: the report's `policy` object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    /// `tlsa`, `sts` or `no-policy-found`.
    pub kind: String,
    /// The policy as published: TLSA records in presentation form, or the MTA-STS
    /// policy's lines.
    pub strings: Vec<String>,
    /// The MX host patterns of an MTA-STS policy.
    pub mx: Vec<String>,
}

impl PolicyRef {
    /// A domain with no policy.
    pub fn none() -> PolicyRef {
        PolicyRef {
            kind: "no-policy-found".into(),
            strings: Vec::new(),
            mx: Vec::new(),
        }
    }
}

/// A session (or a policy lookup) that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFailure {
    /// The RFC 8460 result type (`certificate-expired`, `dnssec-invalid`, ...).
    pub result_type: &'static str,
    /// The MX host, when the failure is one host's.
    pub mx_host: Option<String>,
    /// Its address, when a connection was made.
    pub ip: Option<IpAddr>,
    /// What went wrong, in words (often a peer's: bounded and escaped when kept).
    pub additional: Option<String>,
}

/// One failure kind's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    /// The RFC 8460 result type.
    pub result_type: String,
    /// The MX host.
    pub mx_host: Option<String>,
    /// The MX address.
    pub ip: Option<IpAddr>,
    /// The first words seen for it.
    pub additional: Option<String>,
    /// Sessions.
    pub count: u64,
}

/// The counts of one policy of a domain in one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCounts {
    /// The policy.
    pub policy: PolicyRef,
    /// Sessions that had the TLS the policy asks for.
    pub success: u64,
    /// Sessions that did not, all of them.
    #[serde(default)]
    pub failed: u64,
    /// Those that did not, by kind.
    pub failures: Vec<FailureCount>,
}

/// A finished period of one domain, ready to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPeriod {
    /// The policy domain.
    pub domain: String,
    /// Unix seconds the period began.
    pub start: u64,
    /// Unix seconds it ended.
    pub end: u64,
    /// Its policies' counts.
    pub policies: Vec<PolicyCounts>,
}

/// The counts of every domain, by period.
pub struct TlsReports {
    period: Duration,
    state: Mutex<State>,
    tree: Option<sled::Tree>,
}

#[derive(Default)]
struct State {
    records: BTreeMap<(u64, String), Vec<PolicyCounts>>,
    dirty: BTreeSet<(u64, String)>,
}

impl std::fmt::Debug for TlsReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReports")
            .field("period", &self.period)
            .finish()
    }
}

fn tree_key(period: u64, domain: &str) -> Vec<u8> {
    let mut key = period.to_be_bytes().to_vec();
    key.extend_from_slice(domain.as_bytes());
    key
}

impl TlsReports {
    /// Counts kept per `period` (at least a second), in `tree` (none: memory only); the
    /// counts `tree` holds from before a restart are taken up again.
    pub fn new(period: Duration, tree: Option<sled::Tree>) -> TlsReports {
        let mut state = State::default();
        for (key, value) in tree.iter().flat_map(|t| t.iter()).flatten() {
            let (Some(period), Ok(domain)) = (
                key.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
                std::str::from_utf8(key.get(8..).unwrap_or_default()),
            ) else {
                continue;
            };
            if let Ok(counts) = serde_json::from_slice::<Vec<PolicyCounts>>(&value) {
                state.records.insert((period, domain.to_owned()), counts);
            }
        }
        TlsReports {
            period: period.max(Duration::from_secs(1)),
            state: Mutex::new(state),
            tree,
        }
    }

    /// The number of the period `unix` falls in.
    fn period_of(&self, unix: u64) -> u64 {
        unix / self.period.as_secs()
    }

    /// Counts one session to `domain` under `policy`: `Ok` had the TLS the policy asks
    /// for.
    pub fn record(&self, domain: &str, policy: &PolicyRef, outcome: Result<(), SessionFailure>) {
        let key = (self.period_of(unix_now()), domain.to_ascii_lowercase());
        let mut state = self.state.lock().expect("TLS report counts");
        if !state.records.contains_key(&key) && state.records.len() >= MAX_DOMAINS {
            metrics::counter!("tls_report_sessions_uncounted_total").increment(1);
            return;
        }
        let policies = state.records.entry(key.clone()).or_default();
        let counts = match policies.iter_mut().position(|p| p.policy == *policy) {
            Some(i) => &mut policies[i],
            None if policies.len() >= MAX_POLICIES => {
                metrics::counter!("tls_report_sessions_uncounted_total").increment(1);
                return;
            }
            None => {
                policies.push(PolicyCounts {
                    policy: policy.clone(),
                    success: 0,
                    failed: 0,
                    failures: Vec::new(),
                });
                policies.last_mut().expect("just pushed")
            }
        };
        match outcome {
            Ok(()) => counts.success += 1,
            Err(failure) => {
                counts.failed += 1;
                count_failure(counts, failure);
            }
        }
        state.dirty.insert(key);
    }

    /// Writes the counts changed since the last call to the spool's tree, and makes them
    /// durable.
    pub async fn flush(&self) {
        let Some(tree) = &self.tree else { return };
        let changed: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut state = self.state.lock().expect("TLS report counts");
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .filter_map(|key| {
                    let value = serde_json::to_vec(state.records.get(&key)?).ok()?;
                    Some((tree_key(key.0, &key.1), value))
                })
                .collect()
        };
        for (key, value) in changed {
            if let Err(e) = tree.insert(key, value) {
                tracing::warn!(error = %e, "cannot keep TLS report counts in the spool; they are kept in memory");
                return;
            }
        }
        if let Err(e) = tree.flush_async().await {
            tracing::warn!(error = %e, "cannot keep TLS report counts in the spool; they are kept in memory");
        }
    }

    /// The periods that have ended by `now` (unix seconds), taken out of memory; each
    /// leaves the spool when [`TlsReports::done`] says it was sent.
    pub fn take_finished(&self, now: u64) -> Vec<DomainPeriod> {
        let current = self.period_of(now);
        let mut state = self.state.lock().expect("TLS report counts");
        let finished: Vec<(u64, String)> = state
            .records
            .keys()
            .filter(|(period, _)| *period < current)
            .cloned()
            .collect();
        let length = self.period.as_secs();
        finished
            .into_iter()
            .filter_map(|key| {
                state.dirty.remove(&key);
                let policies = state.records.remove(&key)?;
                Some(DomainPeriod {
                    start: key.0 * length,
                    end: (key.0 + 1) * length,
                    domain: key.1,
                    policies,
                })
            })
            .collect()
    }

    /// `period` was reported (or will never be): it leaves the spool.
    pub fn done(&self, period: &DomainPeriod) {
        if let Some(tree) = &self.tree {
            let key = tree_key(period.start / self.period.as_secs(), &period.domain);
            if let Err(e) = tree.remove(key) {
                tracing::warn!(error = %e, "cannot remove reported TLS report counts from the spool");
            }
        }
    }
}

fn count_failure(counts: &mut PolicyCounts, failure: SessionFailure) {
    let same = |f: &FailureCount| {
        f.result_type == failure.result_type && f.mx_host == failure.mx_host && f.ip == failure.ip
    };
    if let Some(kind) = counts.failures.iter_mut().find(|f| same(f)) {
        kind.count += 1;
        return;
    }
    if counts.failures.len() >= MAX_FAILURE_KINDS {
        metrics::counter!("tls_report_sessions_uncounted_total").increment(1);
        return;
    }
    counts.failures.push(FailureCount {
        result_type: failure.result_type.into(),
        mx_host: failure.mx_host,
        ip: failure.ip,
        additional: failure.additional.as_deref().map(bounded),
        count: 1,
    });
}

/// Registers the reporting metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "tls_report_sessions_uncounted_total",
        "Sessions left out of TLS reports because a period held too many domains or failure kinds"
    );
    metrics::describe_counter!(
        "tls_reports_sent_total",
        "TLS reports sent, by destination kind (mailto, https) and result (ok, failed)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: &'static str, host: &str) -> SessionFailure {
        SessionFailure {
            result_type: kind,
            mx_host: Some(host.into()),
            ip: Some(IpAddr::from([127, 0, 0, 1])),
            additional: Some("a\r\nforged line".into()),
        }
    }

    #[tokio::test]
    async fn sessions_are_counted_by_period_domain_policy_and_failure_kind_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let reports = TlsReports::new(Duration::from_secs(3600), Some(db.open_tree("t").unwrap()));
        let sts = PolicyRef {
            kind: "sts".into(),
            strings: vec!["version: STSv1".into()],
            mx: vec!["mx.example.test".into()],
        };
        reports.record("Example.test", &sts, Ok(()));
        reports.record("example.test", &sts, Ok(()));
        reports.record(
            "example.test",
            &sts,
            Err(failure("certificate-expired", "mx.example.test")),
        );
        reports.record(
            "example.test",
            &sts,
            Err(failure("certificate-expired", "mx.example.test")),
        );
        reports.record(
            "example.test",
            &PolicyRef::none(),
            Err(failure("starttls-not-supported", "mx2")),
        );
        reports.flush().await;
        drop(reports);

        let reports = TlsReports::new(Duration::from_secs(3600), Some(db.open_tree("t").unwrap()));
        assert!(
            reports.take_finished(unix_now()).is_empty(),
            "the period has not ended"
        );
        let finished = reports.take_finished(unix_now() + 3600);
        assert_eq!(finished.len(), 1);
        let period = &finished[0];
        assert_eq!(period.domain, "example.test");
        assert_eq!(period.end - period.start, 3600);
        let [sts_counts, none] = period.policies.as_slice() else {
            panic!("{:?}", period.policies)
        };
        assert_eq!(
            (
                sts_counts.success,
                sts_counts.failed,
                sts_counts.failures.len()
            ),
            (2, 2, 1)
        );
        assert_eq!(sts_counts.failures[0].count, 2);
        assert_eq!(
            sts_counts.failures[0].additional.as_deref(),
            Some("a\\r\\nforged line")
        );
        assert_eq!(none.policy.kind, "no-policy-found");
        reports.done(period);
        drop(reports);
        let reports = TlsReports::new(Duration::from_secs(3600), Some(db.open_tree("t").unwrap()));
        assert!(
            reports.take_finished(unix_now() + 7200).is_empty(),
            "reported periods are gone"
        );
    }
}
