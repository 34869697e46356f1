//! The DNSBL actor: the client's address looked up in DNS blocklists (and allow lists),
//! several zones at once, each with a weight; the listed zones' weights add up to a score
//! and a score at the threshold blocks with `554 5.7.1 Service unavailable; client [ADDR]
//! blocked using ZONE; REASON` (the list's TXT record). A DNSWL zone has a negative
//! weight. An answer in 127.0.0.0/8 is a listing, except 127.255.255.0/24, which is the
//! list's own error (over quota, refused) and never blocks; a zone may accept only some
//! return codes. Answers are cached by their TTL (the resolver's cache).
//!
//! A lookup that fails (time-out, SERVFAIL) is logged and counted, and by default
//! ignored (fail open); with `fail_open = false` it defers the client instead. A failed
//! lookup is remembered for [`FAILURE_MEMORY`] per list and address ([`RecentFailures`]),
//! so a client is not made to wait for a dead list once per recipient (a three-recipient
//! message waited 5 + 5 + 4 s).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::ResponseFuture;

use crate::policy::actor::Policy;
use ipnet::IpNet;

use super::set::Ask;
use crate::outbound::mx::{MxResolver, is_negative_answer};
use crate::protocol::check::{Facts, Verdict};
use crate::protocol::reply::Reply;

/// One list.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblZone {
    /// Its DNS zone (`zen.spamhaus.org`).
    pub zone: String,
    /// What a listing adds to the score; negative for an allow list (DNSWL).
    pub weight: f64,
    /// Return codes that count as a listing (empty: any in 127.0.0.0/8).
    pub codes: Vec<Ipv4Addr>,
}

/// The DNSBL's rules, from `[dnsbl]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblRules {
    /// The lists.
    pub zones: Vec<DnsblZone>,
    /// The score that blocks.
    pub threshold: f64,
    /// Clients never looked up.
    pub allow_networks: Vec<IpNet>,
    /// A failed lookup is ignored (else the client is deferred).
    pub fail_open: bool,
}

/// What the lists said about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// The summed weights of the zones that list it.
    pub score: f64,
    /// The zones that list it, heaviest first, with the code they answered.
    pub listed: Vec<(String, Ipv4Addr)>,
    /// The zones whose lookup failed, with why.
    pub failed: Vec<(String, String)>,
}

/// How long a failed lookup of one address in one list is remembered (and not tried).
pub const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// (list, address) pairs remembered at most; past it, expired ones go, then all.
const MAX_REMEMBERED_FAILURES: usize = 50_000;

/// Lookups that failed lately, by list and address, with why.
#[derive(Default)]
pub struct RecentFailures {
    failed: Mutex<HashMap<(String, IpAddr), (Instant, String)>>,
}

impl RecentFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, IpAddr), (Instant, String)>> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why the lookup of `ip` in `zone` failed, if it did within [`FAILURE_MEMORY`].
    pub fn recent(&self, zone: &str, ip: IpAddr) -> Option<String> {
        let failed = self.lock();
        let (at, why) = failed.get(&(zone.to_string(), ip))?;
        (at.elapsed() < FAILURE_MEMORY).then(|| why.clone())
    }

    /// Remembers that the lookup of `ip` in `zone` failed.
    pub fn remember(&self, zone: &str, ip: IpAddr, why: String) {
        let mut failed = self.lock();
        if failed.len() >= MAX_REMEMBERED_FAILURES {
            failed.retain(|_, (at, _)| at.elapsed() < FAILURE_MEMORY);
            if failed.len() >= MAX_REMEMBERED_FAILURES {
                failed.clear();
            }
        }
        failed.insert((zone.to_string(), ip), (Instant::now(), why));
    }
}

/// The actor.
pub struct Dnsbl {
    rules: Arc<DnsblRules>,
    resolver: Arc<MxResolver>,
    failures: Arc<RecentFailures>,
}

impl Dnsbl {
    /// A DNSBL over `resolver`'s servers and cache.
    pub fn new(rules: DnsblRules, resolver: Arc<MxResolver>) -> Self {
        Dnsbl {
            rules: Arc::new(rules),
            resolver,
            failures: Arc::default(),
        }
    }
}

/// The name to look `ip` up under in `zone`: reversed octets, or reversed nibbles for
/// IPv6 (RFC 5782 §2.4).
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => query_name(IpAddr::V4(v4), zone),
            None => {
                let mut name = String::with_capacity(64 + zone.len());
                for byte in v6.octets().iter().rev() {
                    name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
                }
                name.push_str(zone);
                name.push('.');
                name
            }
        },
    }
}

/// Whether `code` is the list's own error (RFC 5782 §2.1 reserves 127.0.0.0/8 for
/// listings; lists answer 127.255.255.x for a query they refuse).
fn is_list_error(code: Ipv4Addr) -> bool {
    let o = code.octets();
    o[0] == 127 && o[1] == 255 && o[2] == 255
}

/// Looks `ip` up in every zone, at once.
pub async fn look_up(rules: &DnsblRules, resolver: &MxResolver, ip: IpAddr) -> Findings {
    look_up_remembering(rules, resolver, &RecentFailures::default(), ip).await
}

/// [`look_up`], skipping the zones whose lookup of `ip` failed lately and remembering
/// the ones that fail now.
pub async fn look_up_remembering(
    rules: &DnsblRules,
    resolver: &MxResolver,
    failures: &RecentFailures,
    ip: IpAddr,
) -> Findings {
    let mut findings = Findings {
        score: 0.0,
        listed: Vec::new(),
        failed: Vec::new(),
    };
    let mut asked = Vec::with_capacity(rules.zones.len());
    for zone in &rules.zones {
        match failures.recent(&zone.zone, ip) {
            Some(why) => {
                metrics::counter!("dnsbl_errors_total", "zone" => zone.zone.clone(), "kind" => "remembered").increment(1);
                findings.failed.push((zone.zone.clone(), why));
            }
            None => asked.push(zone),
        }
    }
    let lookups = asked.into_iter().map(|zone| async move {
        let name = query_name(ip, &zone.zone);
        (zone, resolver.resolver().ipv4_lookup(name).await)
    });
    let answers = futures_util::future::join_all(lookups).await;
    let mut listed: Vec<(f64, String, Ipv4Addr)> = Vec::new();
    for (zone, answer) in answers {
        match answer {
            Ok(lookup) => {
                let codes: Vec<Ipv4Addr> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_resolver::proto::rr::RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                if let Some(error) = codes.iter().find(|c| is_list_error(**c)) {
                    metrics::counter!("dnsbl_errors_total", "zone" => zone.zone.clone(), "kind" => "list_error").increment(1);
                    tracing::warn!(zone = %zone.zone, code = %error, client = %ip,
                        "DNSBL answered with its error code (over quota or refused); not a listing");
                    continue;
                }
                let hit = codes.iter().copied().find(|c| {
                    c.octets()[0] == 127 && (zone.codes.is_empty() || zone.codes.contains(c))
                });
                if let Some(code) = hit {
                    listed.push((zone.weight, zone.zone.clone(), code));
                }
            }
            Err(e) if is_negative_answer(&e) => {}
            Err(e) => {
                metrics::counter!("dnsbl_errors_total", "zone" => zone.zone.clone(), "kind" => "lookup").increment(1);
                tracing::warn!(zone = %zone.zone, client = %ip, error = %e,
                    fail_open = rules.fail_open, remembered_s = FAILURE_MEMORY.as_secs(), "DNSBL lookup failed");
                failures.remember(&zone.zone, ip, e.to_string());
                findings.failed.push((zone.zone.clone(), e.to_string()));
            }
        }
    }
    listed.sort_by(|a, b| b.0.total_cmp(&a.0));
    findings.score = listed.iter().map(|(w, _, _)| w).sum();
    findings.listed = listed
        .into_iter()
        .map(|(_, zone, code)| (zone, code))
        .collect();
    findings
}

/// The list's reason for `ip`, from its TXT record (empty when it has none).
async fn reason(resolver: &MxResolver, ip: IpAddr, zone: &str) -> String {
    match resolver.resolver().txt_lookup(query_name(ip, zone)).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                hickory_resolver::proto::rr::RData::TXT(txt) => Some(txt.to_string()),
                _ => None,
            })
            .next()
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Decides about the client of `facts`.
pub async fn decide(
    rules: &DnsblRules,
    resolver: &MxResolver,
    failures: &RecentFailures,
    facts: &Facts,
) -> Verdict {
    let ip = facts.client_ip;
    if facts.trusted
        || facts.user.is_some()
        || facts.postmaster
        || rules.allow_networks.iter().any(|n| n.contains(&ip))
    {
        return Verdict::accept();
    }
    let findings = look_up_remembering(rules, resolver, failures, ip).await;
    if findings.score >= rules.threshold
        && let Some((zone, code)) = findings.listed.first()
    {
        let text = reason(resolver, ip, zone).await;
        metrics::counter!("dnsbl_hits_total", "zone" => zone.clone()).increment(1);
        tracing::info!(client = %ip, zone = %zone, code = %code, score = findings.score,
            threshold = rules.threshold, listed = ?findings.listed, reason = %text, "blocked by DNSBL");
        return Verdict::Reject(Reply::dnsbl_blocked(ip, zone, &text));
    }
    if !findings.failed.is_empty() && !rules.fail_open {
        return Verdict::Defer(Reply::policy_unavailable("dnsbl"));
    }
    if !findings.listed.is_empty() {
        tracing::debug!(client = %ip, score = findings.score, listed = ?findings.listed, "listed, under the DNSBL threshold");
    }
    Verdict::accept()
}

impl Policy for Dnsbl {
    fn ask(&mut self, Ask(facts): Ask) -> ResponseFuture<Verdict> {
        let (rules, resolver, failures) = (
            self.rules.clone(),
            self.resolver.clone(),
            self.failures.clone(),
        );
        Box::pin(async move { decide(&rules, &resolver, &failures, &facts).await })
    }
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "dnsbl_hits_total",
        "Clients refused with 554 5.7.1 because DNS blocklists scored them at the threshold, by the heaviest listing zone."
    );
    metrics::describe_counter!(
        "dnsbl_errors_total",
        "DNSBL lookups that gave no usable answer, by zone and kind (lookup: time-out or SERVFAIL; remembered: not asked again, it failed within 30 s; list_error: the list's 127.255.255.x code)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_reverse_octets_and_nibbles() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "bl.test"),
            "99.2.0.192.bl.test."
        );
        assert_eq!(
            query_name("::ffff:192.0.2.99".parse().unwrap(), "bl.test."),
            "99.2.0.192.bl.test."
        );
        assert_eq!(
            query_name("2001:db8::1".parse().unwrap(), "bl.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test."
        );
        assert!(is_list_error("127.255.255.254".parse().unwrap()));
        assert!(!is_list_error("127.0.0.2".parse().unwrap()));
    }
}
