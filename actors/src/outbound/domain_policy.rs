//! The receiving domain's own demands on one delivery job: DANE (RFC 7672) for each MX
//! host whose DNSSEC-signed TLSA records say so, its MTA-STS policy for the others (RFC
//! 8461 §2: DANE takes precedence, and neither lets the other excuse a failure); what
//! they do to a pooled connection, to the job's targets and to the outcome when no target
//! took the job; and how each session counts in the domain's TLS report.

use std::sync::Arc;

use crate::outbound::dane::enforce::{Securities, secure_targets};
use crate::outbound::dane::{DomainDane, HostDane, enforce as dane};
use crate::outbound::job::{DeliverySettings, Outcome};
use crate::outbound::mta_sts::Applied;
use crate::outbound::mta_sts::enforce;
use crate::outbound::mta_sts::policy::Mode;
use crate::outbound::mx::Target;
use crate::outbound::routing::NextHop;
use crate::outbound::smtp_client::{ClientError, SmtpConnection, TlsFailure};
use crate::outbound::tls::{HopSecurity, TlsMode};
use crate::outbound::tls_report::{PolicyRef, SessionFailure};

/// TLSA records named in one report policy at most.
const MAX_POLICY_STRINGS: usize = 16;

/// The longest certificate association shown in a report, in bytes (a SHA-512 is 64; a
/// whole certificate, `x x 0`, is cut there).
const MAX_ASSOCIATION: usize = 64;

/// What a job to a domain (reached by MX) is held to; nothing for other hops.
#[derive(Debug, Default)]
pub(crate) struct DomainPolicy {
    domain: String,
    /// DANE's verdict, when DANE is on.
    dane: Option<Arc<DomainDane>>,
    /// The MTA-STS policy, for the hosts DANE does not protect.
    sts: Option<Applied>,
    /// The shaping file's `tls` for the hop's site or domain, in place of the hop's own.
    tls: Option<TlsMode>,
}

impl DomainPolicy {
    /// The demands of `hop`'s domain: DANE's (when on) and MTA-STS's (when on).
    pub(crate) async fn of(hop: &NextHop, settings: &DeliverySettings) -> DomainPolicy {
        let NextHop::Mx { domain } = hop else {
            return DomainPolicy::default();
        };
        // Boxed: their lookups are large futures, which would make every job's future
        // (copied whole as it starts) as large even where neither is configured.
        let dane = match &settings.dane {
            Some(dane) => Some(Box::pin(dane.for_domain(domain, settings.mx_port)).await),
            None => None,
        };
        let sts = match &settings.mta_sts {
            Some(sts) => Box::pin(sts.policy_for(domain)).await,
            None => None,
        };
        DomainPolicy {
            domain: domain.clone(),
            dane,
            sts,
            tls: None,
        }
    }

    /// The policy with the shaping file's `tls` for the hop (when it sets one).
    pub(crate) fn with_tls(mut self, tls: Option<TlsMode>) -> DomainPolicy {
        self.tls = tls;
        self
    }

    /// How the hop's connections are secured before DANE and MTA-STS: the shaping
    /// file's `tls`, else the hop's own mode.
    fn usual(&self, hop: &NextHop, settings: &DeliverySettings) -> HopSecurity {
        match self.tls {
            Some(mode) => settings.security.with_mode(hop, mode),
            None => settings.security.for_hop(hop),
        }
    }

    fn dane_governs(&self) -> bool {
        self.dane.as_ref().is_some_and(|d| d.protects())
    }

    /// What DANE says of `host`, when DANE governs the domain.
    fn host_dane(&self, host: &str) -> Option<Option<&HostDane>> {
        match self.dane.as_deref() {
            Some(DomainDane::Secure(hosts)) if self.dane_governs() => Some(hosts.get(host)),
            Some(DomainDane::Bogus(_)) => Some(None),
            _ => None,
        }
    }

    /// Whether a pooled `connection` still meets the domain's demands as they stand: to
    /// a host with TLSA records, it must have been verified by those same records; to a
    /// host with only unusable ones, have TLS; under an enforced MTA-STS policy (for a
    /// host without TLSA records), have been verified for a listed host.
    pub(crate) fn admits(&self, connection: &SmtpConnection) -> bool {
        match self.tls {
            Some(TlsMode::Verify) if connection.verified_for().is_none() => return false,
            Some(TlsMode::Required) if connection.tls().is_none() => return false,
            _ => {}
        }
        match self.host_dane(connection.host()) {
            Some(Some(HostDane::Tlsa(tlsa))) => {
                return connection
                    .dane_records()
                    .is_some_and(|records| **records == *tlsa.records);
            }
            Some(Some(HostDane::Unusable)) if connection.tls().is_none() => return false,
            Some(None | Some(HostDane::Failed(_))) => return false,
            _ => {}
        }
        self.sts
            .as_ref()
            .is_none_or(|applied| enforce::meets(applied, connection.verified_for()))
    }

    /// `targets` (in MX order) with the security each is reached with, or the job's
    /// outcome when the domain's demands leave none.
    pub(crate) fn targets(
        &self,
        hop: &NextHop,
        settings: &DeliverySettings,
        targets: Vec<Target>,
    ) -> Result<Vec<(Target, HopSecurity)>, Outcome> {
        let usual = self.usual(hop, settings);
        if let Some(dane) = &self.dane
            && self.dane_governs()
        {
            let verified = settings.security.verified_for(hop);
            let other = |target: &Target| match &self.sts {
                Some(applied) if applied.kept.policy.mode == Mode::Enforce => {
                    if applied.kept.policy.admits(&target.host) {
                        Ok(verified.clone())
                    } else {
                        Err(format!(
                            "{} has no usable TLSA records and {} does not list it",
                            target.host,
                            applied.describe(&self.domain)
                        ))
                    }
                }
                _ => Ok(usual.clone()),
            };
            let securities = Securities {
                usual: usual.clone(),
                required: settings.security.required_for(hop),
                unprotected: &other,
            };
            return secure_targets(dane, &self.domain, targets, &securities).map_err(|refused| {
                self.report_refusal(settings, refused.result_type, &refused.outcome);
                refused.outcome
            });
        }
        let (targets, security) = match &self.sts {
            Some(applied) => enforce::restrict(
                applied,
                &self.domain,
                targets,
                usual,
                settings.security.verified_for(hop),
            )
            .inspect_err(|refused| self.report_refusal(settings, "validation-failure", refused))?,
            None => (targets, usual),
        };
        Ok(targets.into_iter().map(|t| (t, security.clone())).collect())
    }

    /// The policy a session to `host` (`None`: the job as a whole) was held to, as the
    /// domain's TLS report names it: DANE's records (its own, or every host's), else the
    /// MTA-STS policy, else none.
    fn report_ref(&self, host: Option<&str>) -> PolicyRef {
        let dane_hosts = match self.dane.as_deref() {
            Some(DomainDane::Secure(hosts)) if self.dane_governs() => Some(hosts),
            _ => None,
        };
        let held_by_dane = match (dane_hosts, host) {
            (Some(_), None) => true,
            (Some(hosts), Some(host)) => {
                matches!(
                    hosts.get(host),
                    Some(HostDane::Tlsa(_) | HostDane::Failed(_))
                )
            }
            (None, _) => matches!(self.dane.as_deref(), Some(DomainDane::Bogus(_))),
        };
        if held_by_dane {
            let mut strings: Vec<String> = dane_hosts
                .into_iter()
                .flatten()
                .filter(|(name, _)| host.is_none_or(|h| h == name.as_str()))
                .filter_map(|(_, verdict)| match verdict {
                    HostDane::Tlsa(tlsa) => {
                        Some(tlsa.records.iter().map(|r| r.presentation(MAX_ASSOCIATION)))
                    }
                    _ => None,
                })
                .flatten()
                .collect();
            strings.sort();
            strings.dedup();
            strings.truncate(MAX_POLICY_STRINGS);
            return PolicyRef {
                kind: "tlsa".into(),
                strings,
                mx: Vec::new(),
            };
        }
        match &self.sts {
            Some(applied) => applied.kept.report_ref(),
            None => PolicyRef::none(),
        }
    }

    /// Counts a job the domain's policy held back before any session (`result_type`),
    /// for its TLS report.
    fn report_refusal(
        &self,
        settings: &DeliverySettings,
        result_type: &'static str,
        refused: &Outcome,
    ) {
        let (Some(reports), false) = (&settings.tls_reports, self.domain.is_empty()) else {
            return;
        };
        let (Outcome::Deferred(status) | Outcome::Failed(status) | Outcome::Delivered(status)) =
            refused;
        let additional = Some(status.text.clone());
        let failure = SessionFailure {
            result_type,
            mx_host: None,
            ip: None,
            additional,
        };
        reports.record(&self.domain, &self.report_ref(None), Err(failure));
    }

    /// Counts a session to `target` for the domain's TLS report: `opened` (its TLS, and
    /// under an MTA-STS policy in testing mode whether its certificate would have
    /// verified and its host is listed), or the TLS failure `failed`.
    pub(crate) fn report_session(
        &self,
        settings: &DeliverySettings,
        target: &Target,
        opened: Result<&SmtpConnection, (TlsFailure, &ClientError)>,
    ) {
        let (Some(reports), false) = (&settings.tls_reports, self.domain.is_empty()) else {
            return;
        };
        // MTA-STS in testing mode, for a host DANE does not hold to its TLSA records.
        let held_by_dane = matches!(
            self.host_dane(&target.host),
            Some(Some(HostDane::Tlsa(_)) | None)
        );
        let testing = self
            .sts
            .as_ref()
            .filter(|applied| applied.kept.policy.mode == Mode::Testing && !held_by_dane);
        let outcome = match opened {
            Ok(connection) => match (connection.tls_outcome(), testing) {
                (Err(failure), _) => Err((failure, "the session had no TLS".to_string())),
                (Ok(()), Some(applied)) if !applied.kept.policy.admits(&target.host) => Err((
                    TlsFailure::ValidationFailure,
                    format!("{} is not listed in the MTA-STS policy", target.host),
                )),
                (Ok(()), Some(_)) => settings
                    .security
                    .check_certificate(
                        &target.host,
                        &connection.peer_certificates().unwrap_or_default(),
                    )
                    .map_err(|failure| (failure, "the certificate would not verify".to_string())),
                (Ok(()), None) => Ok(()),
            },
            Err((failure, error)) => Err((failure, error.to_string())),
        };
        let outcome = outcome.map_err(|(failure, additional)| SessionFailure {
            result_type: failure.result_type(),
            mx_host: Some(target.host.clone()),
            ip: Some(target.addr.ip()),
            additional: Some(additional),
        });
        reports.record(&self.domain, &self.report_ref(Some(&target.host)), outcome);
    }

    /// The outcome when no target took the job and one failed TLS with `tls_error`:
    /// DANE's or an enforced policy's 4.7.5, naming it; `None`: the usual outcome.
    pub(crate) fn tls_failure(&self, tls_error: Option<&ClientError>) -> Option<Outcome> {
        let error = tls_error?;
        if self.dane_governs() {
            return Some(dane::tls_failure(&self.domain, error));
        }
        enforce::tls_failure(self.sts.as_ref()?, &self.domain, error)
    }
}

/// `connection`, unless `policy` does not admit it (it was opened before the policy
/// applied): then it says QUIT on its own (the job does not wait) and gives back its
/// place in the budget.
pub(crate) fn pooled_under(
    policy: &DomainPolicy,
    connection: Option<SmtpConnection>,
    permit: &mut Option<crate::outbound::connection_budget::Permit>,
) -> Option<SmtpConnection> {
    let mut connection = connection?;
    if !policy.admits(&connection) {
        *permit = connection.release_permit();
        actix_rt::spawn(connection.quit());
        return None;
    }
    Some(connection)
}
