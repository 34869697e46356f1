//! DANE for SMTP (RFC 7672): a receiving domain whose MX answer is DNSSEC-secure and
//! whose MX hosts publish TLSA records (`_25._tcp.HOST`) has said, in a way nobody on the
//! path can forge, which certificates its servers hold; mail to it then goes only over
//! TLS that those records authenticate, never in clear.
//!
//! [`Dane::for_domain`] asks a resolver of its own that validates DNSSEC (hickory's, from
//! the root trust anchor or an operator's anchor file): the domain's MX (an insecure
//! answer: DANE does not apply, the other policies do; a bogus one: the job is deferred),
//! then each MX host's TLSA records. [`verify`] checks a server's certificate against
//! them, [`enforce`] turns them into the security of each target. DANE takes precedence
//! over MTA-STS for a domain it protects (RFC 8461 §2).
//!
//! A host's TLSA records count only when its own address answer is secure too, and a host
//! that is a secure CNAME has them looked for at the chain's target first (RFC 7672
//! §2.2.2).

pub(crate) mod enforce;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::task::JoinSet;

use crate::outbound::mx::resolver_builder;

/// At most this many MX hosts of one domain have their TLSA records looked up (as many
/// as [`crate::outbound::mx`] resolves).
const MAX_HOSTS: usize = 16;

/// At most this many usable TLSA records of one host are kept: real hosts publish two
/// or three (current and next key); the rest of a hostile answer is ignored.
const MAX_RECORDS: usize = 8;

/// The longest certificate association kept: a full certificate (`x 0 0`) may be a few
/// kilobytes; anything longer is not a certificate a server would send.
const MAX_ASSOCIATION: usize = 16 * 1024;

/// Why the validating resolver could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DaneError {
    /// The trust anchor file cannot be read or holds no DNSKEY record.
    #[error("{}: {reason}", path.display())]
    TrustAnchor {
        /// The file (`delivery.dane_trust_anchor`).
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The resolver configuration was refused.
    #[error("DANE resolver: {0}")]
    Resolver(String),
}

/// One usable TLSA record (DANE-TA or DANE-EE, a known selector and matching type).
/// Ordered, so a host's records compare the same whatever order DNS gives them in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tlsa {
    /// DANE-EE (3): the server's own certificate; else DANE-TA (2): a CA in its chain.
    pub end_entity: bool,
    /// Selector 1 (the public key); else 0 (the whole certificate).
    pub spki: bool,
    /// Matching type: 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

impl Tlsa {
    /// The record in presentation form (`3 1 1 ab12…`), its data in hex cut after
    /// `max_bytes` (marked `…`): for reports and `hermod route`.
    pub fn presentation(&self, max_bytes: usize) -> String {
        let mut hex: String = self
            .data
            .iter()
            .take(max_bytes)
            .map(|b| format!("{b:02x}"))
            .collect();
        if self.data.len() > max_bytes {
            hex.push('…');
        }
        format!("{self} {hex}")
    }
}

impl std::fmt::Display for Tlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            if self.end_entity { 3 } else { 2 },
            u8::from(self.spki),
            self.matching
        )
    }
}

/// One MX host's usable TLSA records, with the TLS client configuration that checks
/// certificates against them (made once per lookup, not once per job).
#[derive(Clone)]
pub struct HostTlsa {
    /// The records.
    pub records: Arc<[Tlsa]>,
    /// The client configuration whose verifier takes only what they match.
    pub client: Arc<rustls::ClientConfig>,
}

impl PartialEq for HostTlsa {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for HostTlsa {}

impl std::fmt::Debug for HostTlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.records.iter()).finish()
    }
}

/// What DANE says of one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDane {
    /// No TLSA records (a secure denial), or an answer that is not secure: DANE does not
    /// protect this host.
    Unprotected,
    /// Usable records: TLS is required and the certificate must match one of them.
    Tlsa(HostTlsa),
    /// Records, none usable (PKIX usages, unknown types): TLS is required, the
    /// certificate is not checked (RFC 7672 §2.2).
    Unusable,
    /// The TLSA lookup failed or did not validate: this host is not used (§2.2).
    Failed(String),
}

/// What DANE says of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainDane {
    /// The MX answer is not DNSSEC-secure: DANE does not apply.
    Insecure,
    /// The MX answer did not validate (or the lookup failed): nothing can be trusted,
    /// the job is deferred.
    Bogus(String),
    /// A secure MX answer (or a secure "no MX": the domain is its own host), with what
    /// DANE says of each host, by lower-case name without the final dot.
    Secure(HashMap<String, HostDane>),
}

impl DomainDane {
    /// Whether DANE governs the domain: some host has TLSA records (RFC 8461 §2: then
    /// MTA-STS gives way).
    pub fn protects(&self) -> bool {
        match self {
            DomainDane::Secure(hosts) => hosts.values().any(|h| *h != HostDane::Unprotected),
            DomainDane::Bogus(_) => true,
            DomainDane::Insecure => false,
        }
    }
}

/// How long one domain's answer serves the jobs to it: the lookups, DNSSEC validation and
/// the TLS client configurations behind it are made at most this often per domain.
pub const ANSWER_MEMO: Duration = Duration::from_secs(30);

/// Domains whose answers are held at most; past it, expired ones are dropped first.
const MAX_MEMO: usize = 10_000;

/// The validating resolver DANE's lookups go through, and the answers of the last
/// [`ANSWER_MEMO`].
pub struct Dane {
    resolver: TokioResolver,
    memo: Mutex<HashMap<(String, u16), Remembered>>,
}

/// A domain's answer and when it was looked up.
type Remembered = (Instant, Arc<DomainDane>);

impl std::fmt::Debug for Dane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dane")
    }
}

impl Dane {
    /// A resolver asking `dns_servers` (the system's when empty) that validates DNSSEC
    /// from `trust_anchor` (a file of DNSKEY records; `None`: the root zone's keys built
    /// into hickory).
    pub fn new(
        dns_servers: &[SocketAddr],
        timeout: Duration,
        trust_anchor: Option<&Path>,
    ) -> Result<Self, DaneError> {
        let anchors = match trust_anchor {
            None => TrustAnchors::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| DaneError::TrustAnchor {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
                let anchors: TrustAnchors = text.parse().map_err(|e| DaneError::TrustAnchor {
                    path: path.to_owned(),
                    reason: format!("not a file of DNSKEY records: {e}"),
                })?;
                if !text.contains("DNSKEY") {
                    return Err(DaneError::TrustAnchor {
                        path: path.to_owned(),
                        reason: "holds no DNSKEY record".into(),
                    });
                }
                anchors
            }
        };
        let resolver = resolver_builder(dns_servers, timeout)
            .map_err(|e| DaneError::Resolver(e.to_string()))?
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| DaneError::Resolver(e.to_string()))?;
        Ok(Dane {
            resolver,
            memo: Mutex::new(HashMap::new()),
        })
    }

    /// What DANE says of `domain`, whose MX hosts listen on `port`: from the memo when it
    /// was asked in the last [`ANSWER_MEMO`], else looked up.
    pub async fn for_domain(&self, domain: &str, port: u16) -> Arc<DomainDane> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let key = (domain, port);
        let now = Instant::now();
        if let Some((at, found)) = self.memo.lock().expect("DANE memo").get(&key)
            && now.duration_since(*at) < ANSWER_MEMO
        {
            return found.clone();
        }
        let found = Arc::new(self.look_up(&key.0, port).await);
        let mut memo = self.memo.lock().expect("DANE memo");
        if memo.len() >= MAX_MEMO {
            memo.retain(|_, (at, _)| now.duration_since(*at) < ANSWER_MEMO);
            if memo.len() >= MAX_MEMO {
                memo.clear();
            }
        }
        memo.insert(key, (Instant::now(), found.clone()));
        found
    }

    /// The lookups behind [`Dane::for_domain`].
    async fn look_up(&self, domain: &str, port: u16) -> DomainDane {
        let domain = domain.to_owned();
        let Ok(mut name) = Name::from_ascii(&domain) else {
            return DomainDane::Insecure;
        };
        name.set_fqdn(true);
        let hosts: Vec<Name> = match self.resolver.mx_lookup(name.clone()).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                if any_bogus(answers) {
                    return bogus(&domain, "MX", "DNSSEC validation failed".into());
                }
                if !all_secure(answers) {
                    return DomainDane::Insecure;
                }
                let mut hosts: Vec<(u16, Name)> = answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) if !mx.exchange.is_root() => {
                            Some((mx.preference, mx.exchange.to_lowercase()))
                        }
                        _ => None,
                    })
                    .collect();
                hosts.sort_by_key(|(preference, _)| *preference);
                hosts.dedup_by(|a, b| a.1 == b.1);
                hosts
                    .into_iter()
                    .map(|(_, host)| host)
                    .take(MAX_HOSTS)
                    .collect()
            }
            Err(e) => match secure_denial(&e) {
                // A secure "no MX": the domain itself is the host (implicit MX).
                Some(ResponseCode::NoError) => vec![name],
                Some(_) => return DomainDane::Insecure,
                None if is_bogus(&e) => return bogus(&domain, "MX", e.to_string()),
                None if is_insecure_negative(&e) => return DomainDane::Insecure,
                None => return bogus(&domain, "MX", e.to_string()),
            },
        };
        let mut lookups = JoinSet::new();
        for host in hosts {
            let resolver = self.resolver.clone();
            let domain = domain.clone();
            lookups.spawn(async move {
                let text = host.to_ascii().trim_end_matches('.').to_owned();
                let found = host_tlsa(&resolver, &host, port, &domain).await;
                (text, found)
            });
        }
        let mut hosts = HashMap::new();
        while let Some(joined) = lookups.join_next().await {
            if let Ok((host, found)) = joined {
                hosts.insert(host, found);
            }
        }
        DomainDane::Secure(hosts)
    }
}

/// The deferral of a domain whose `what` answer did not validate, counted and logged.
fn bogus(domain: &str, what: &str, reason: String) -> DomainDane {
    metrics::counter!("delivery_dane_lookups_total", "result" => "bogus").increment(1);
    tracing::warn!(domain = %domain, record = what, reason = %reason,
        "DNSSEC answer for a DANE lookup is not valid; mail to the domain is deferred");
    DomainDane::Bogus(format!(
        "the DNSSEC-signed {what} answer of {domain} is not valid ({reason})"
    ))
}

/// What DANE says of `host` (an MX host of `domain`) from its `_PORT._tcp` TLSA records.
/// RFC 7672 §2.2.2: they count only when the host's address answer is secure too; when
/// that answer came through a secure CNAME chain, the records are looked for at the
/// chain's target first, then at the host's own name.
async fn host_tlsa(resolver: &TokioResolver, host: &Name, port: u16, domain: &str) -> HostDane {
    let shown = host.to_ascii();
    let shown = shown.trim_end_matches('.');
    let target = match address_security(resolver, host).await {
        Address::Secure(target) => target,
        Address::Insecure => {
            count("insecure");
            return HostDane::Unprotected;
        }
        Address::Bogus => {
            count("bogus");
            return HostDane::Failed(format!("the address answer of {shown} is not valid"));
        }
    };
    if let Some(target) = target {
        let found = tlsa_at(resolver, &target, port, shown, domain).await;
        if found != HostDane::Unprotected {
            return found;
        }
    }
    tlsa_at(resolver, host, port, shown, domain).await
}

/// What the TLSA records at `_PORT._tcp.BASE` say of the MX host `shown` of `domain`.
async fn tlsa_at(
    resolver: &TokioResolver,
    base: &Name,
    port: u16,
    shown: &str,
    domain: &str,
) -> HostDane {
    let Ok(name) = Name::from_ascii(format!("_{port}._tcp")).and_then(|n| n.append_domain(base))
    else {
        return HostDane::Unprotected;
    };
    let base_text = base.to_ascii();
    let base_text = base_text.trim_end_matches('.');
    match resolver.tlsa_lookup(name).await {
        Ok(lookup) => {
            let answers = lookup.answers();
            if any_bogus(answers) {
                count("bogus");
                return HostDane::Failed(format!("the TLSA answer of {base_text} is not valid"));
            }
            if !all_secure(answers) {
                count("insecure");
                return HostDane::Unprotected;
            }
            let mut usable: Vec<Tlsa> = answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(tlsa) => usable(tlsa),
                    _ => None,
                })
                .collect();
            // In one order, whatever order the answer came in (a pooled connection is
            // compared with them), and the same eight kept each time.
            usable.sort();
            usable.dedup();
            usable.truncate(MAX_RECORDS);
            if usable.is_empty() {
                count("unusable");
                return HostDane::Unusable;
            }
            let records: Arc<[Tlsa]> = usable.into();
            // DANE-TA's reference identifiers: the TLSA base, the MX host, the domain.
            let names = [base_text, shown, domain];
            match verify::dane_client_config(records.clone(), shown, &names) {
                Ok(client) => {
                    count("tlsa");
                    HostDane::Tlsa(HostTlsa { records, client })
                }
                Err(e) => {
                    count("failed");
                    HostDane::Failed(format!("no TLS client for {shown}: {e}"))
                }
            }
        }
        Err(e) if secure_denial(&e).is_some() || is_insecure_negative(&e) => {
            count("none");
            HostDane::Unprotected
        }
        Err(e) => {
            count(if is_bogus(&e) { "bogus" } else { "failed" });
            HostDane::Failed(format!("the TLSA lookup of {base_text} failed: {e}"))
        }
    }
}

/// What a host's address answer says for DANE.
enum Address {
    /// Secure; with the name a CNAME chain led to, when it is another than the host's.
    Secure(Option<Name>),
    /// Not secure: DANE does not protect the host.
    Insecure,
    /// It did not validate.
    Bogus,
}

/// What `host`'s address answer (A, else AAAA) says. A host with no address at all
/// counts as secure: it is not connected to anyway.
async fn address_security(resolver: &TokioResolver, host: &Name) -> Address {
    let judge = |answers: &[Record]| {
        if any_bogus(answers) {
            return Address::Bogus;
        }
        if !all_secure(answers) {
            return Address::Insecure;
        }
        let own = host.to_lowercase();
        let target = answers
            .iter()
            .find(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
            .map(|r| r.name.to_lowercase())
            .filter(|name| *name != own);
        Address::Secure(target)
    };
    match resolver.ipv4_lookup(host.clone()).await {
        Ok(lookup) if !lookup.answers().is_empty() => return judge(lookup.answers()),
        Err(e) if is_bogus(&e) => return Address::Bogus,
        Err(e) if is_insecure_negative(&e) => return Address::Insecure,
        _ => {}
    }
    match resolver.ipv6_lookup(host.clone()).await {
        Ok(lookup) => judge(lookup.answers()),
        Err(e) if is_bogus(&e) => Address::Bogus,
        Err(e) if is_insecure_negative(&e) => Address::Insecure,
        Err(_) => Address::Secure(None),
    }
}

fn count(result: &'static str) {
    metrics::counter!("delivery_dane_lookups_total", "result" => result).increment(1);
}

/// The record as DANE for SMTP uses it, or `None` when it is not usable there.
fn usable(tlsa: &hickory_resolver::proto::rr::rdata::TLSA) -> Option<Tlsa> {
    let end_entity = match tlsa.cert_usage {
        CertUsage::DaneEe => true,
        CertUsage::DaneTa => false,
        _ => return None,
    };
    let spki = match tlsa.selector {
        Selector::Full => false,
        Selector::Spki => true,
        _ => return None,
    };
    let (matching, length) = match tlsa.matching {
        Matching::Raw => (0, None),
        Matching::Sha256 => (1, Some(32)),
        Matching::Sha512 => (2, Some(64)),
        _ => return None,
    };
    let data = &tlsa.cert_data;
    if data.is_empty() || data.len() > MAX_ASSOCIATION || length.is_some_and(|l| data.len() != l) {
        return None;
    }
    Some(Tlsa {
        end_entity,
        spki,
        matching,
        data: data.clone(),
    })
}

/// The proofs of the records that carry an answer. Signatures are left out: hickory
/// marks the one RRSIG of a set that verified and leaves the others (a second key's
/// during a rollover, or junk added on the path) unproved, as its own summary does.
fn proofs(records: &[Record]) -> impl Iterator<Item = Proof> + '_ {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| r.proof)
}

/// Whether `records` hold data and all of it is proved secure.
fn all_secure(records: &[Record]) -> bool {
    let mut any = false;
    proofs(records).all(|proof| {
        any = true;
        proof.is_secure()
    }) && any
}

/// Whether any of the data in `records` failed validation.
fn any_bogus(records: &[Record]) -> bool {
    proofs(records).any(|proof| proof == Proof::Bogus)
}

/// The response code of a negative answer that DNSSEC proved (NXDOMAIN or NODATA):
/// hickory marks the SOA and NSEC records that prove it secure.
fn secure_denial(e: &NetError) -> Option<ResponseCode> {
    match e {
        NetError::Dns(DnsError::Nsec {
            response, proof, ..
        }) if proof.is_secure() => Some(response.response_code),
        NetError::Dns(DnsError::NoRecordsFound(no))
            if no.authorities.as_ref().is_some_and(|a| all_secure(a)) =>
        {
            Some(no.response_code)
        }
        _ => None,
    }
}

/// A negative answer that is neither proved nor bogus: from an unsigned zone.
fn is_insecure_negative(e: &NetError) -> bool {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => secure_denial(e).is_none(),
        NetError::Dns(DnsError::Nsec { proof, .. }) => !proof.is_secure() && *proof != Proof::Bogus,
        _ => false,
    }
}

fn is_bogus(e: &NetError) -> bool {
    matches!(
        e,
        NetError::Dns(DnsError::DnssecBogus)
            | NetError::Dns(DnsError::Nsec {
                proof: Proof::Bogus,
                ..
            })
    )
}

/// Registers DANE's metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "delivery_dane_lookups_total",
        "DANE lookups by result: tlsa (usable records), unusable, none, insecure, bogus, failed"
    );
    metrics::describe_counter!(
        "delivery_dane_refusals_total",
        "Deliveries DANE held back, by reason: bogus (DNSSEC), lookup (TLSA lookup failed), tls (no TLS or no matching certificate)"
    );
}
