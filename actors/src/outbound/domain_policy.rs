//! The receiving domain's own demands on one delivery job: DANE (RFC 7672) where its
//! DNSSEC-signed TLSA records say so, else its MTA-STS policy (RFC 8461 §2: DANE takes
//! precedence); what each does to a pooled connection, to the job's targets and to the
//! outcome when no target took the job.

use std::sync::Arc;

use crate::outbound::dane::enforce::{Securities, secure_targets};
use crate::outbound::dane::{DomainDane, enforce as dane};
use crate::outbound::job::{DeliverySettings, Outcome};
use crate::outbound::mta_sts::Applied;
use crate::outbound::mta_sts::enforce;
use crate::outbound::mx::Target;
use crate::outbound::routing::NextHop;
use crate::outbound::smtp_client::{ClientError, SmtpConnection};
use crate::outbound::tls::HopSecurity;

/// What a job to a domain (reached by MX) is held to; nothing for other hops.
#[derive(Debug, Default)]
pub(crate) struct DomainPolicy {
    domain: String,
    /// DANE's verdict, when DANE is on.
    dane: Option<Arc<DomainDane>>,
    /// The MTA-STS policy, when DANE does not govern the domain.
    sts: Option<Applied>,
}

impl DomainPolicy {
    /// The demands of `hop`'s domain: DANE first (when on), MTA-STS when DANE does not
    /// govern it.
    pub(crate) async fn of(hop: &NextHop, settings: &DeliverySettings) -> DomainPolicy {
        let NextHop::Mx { domain } = hop else {
            return DomainPolicy::default();
        };
        let dane = match &settings.dane {
            Some(dane) => Some(dane.for_domain(domain, settings.mx_port).await),
            None => None,
        };
        let sts = match (&settings.mta_sts, &dane) {
            (_, Some(dane)) if dane.protects() => None,
            (Some(sts), _) => sts.policy_for(domain).await,
            (None, _) => None,
        };
        DomainPolicy {
            domain: domain.clone(),
            dane,
            sts,
        }
    }

    fn dane_governs(&self) -> bool {
        self.dane.as_ref().is_some_and(|d| d.protects())
    }

    /// Whether a pooled connection (verified for `verified_for`, `None`: not verified)
    /// still meets the domain's demands: a DANE-governed domain wants one DANE verified,
    /// an enforced MTA-STS policy one verified for a listed host.
    pub(crate) fn admits(&self, verified_for: Option<&str>) -> bool {
        if self.dane_governs() {
            return verified_for.is_some();
        }
        self.sts
            .as_ref()
            .is_none_or(|applied| enforce::meets(applied, verified_for))
    }

    /// `targets` (in MX order) with the security each is reached with, or the job's
    /// outcome when the domain's demands leave none.
    pub(crate) fn targets(
        &self,
        hop: &NextHop,
        settings: &DeliverySettings,
        targets: Vec<Target>,
    ) -> Result<Vec<(Target, HopSecurity)>, Outcome> {
        let usual = settings.security.for_hop(hop);
        if let Some(dane) = &self.dane
            && self.dane_governs()
        {
            let securities = Securities {
                usual,
                required: settings.security.required_for(hop),
            };
            return secure_targets(dane, &self.domain, targets, &securities);
        }
        let (targets, security) = match &self.sts {
            Some(applied) => enforce::restrict(
                applied,
                &self.domain,
                targets,
                usual,
                settings.security.verified_for(hop),
            )?,
            None => (targets, usual),
        };
        Ok(targets.into_iter().map(|t| (t, security.clone())).collect())
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
    if !policy.admits(connection.verified_for()) {
        *permit = connection.release_permit();
        actix_rt::spawn(connection.quit());
        return None;
    }
    Some(connection)
}
