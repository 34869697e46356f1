//! What an MTA-STS policy does to one delivery job (RFC 8461 §5): in `enforce`, only the
//! MX hosts it lists are tried, each over TLS whose certificate verifies for the MX
//! host's name (no retry in clear); a job that cannot meet it is deferred with 4.7.5,
//! the reply naming the policy. In `testing`, delivery goes on as usual and what enforce
//! would have refused is logged.

use super::Applied;
use super::policy::Mode;
use crate::outbound::job::Outcome;
use crate::outbound::mx::Target;
use crate::outbound::smtp_client::ClientError;
use crate::outbound::tls::HopSecurity;
use crate::protocol::status::{EnhancedCode, Status};

/// RFC 3463 4.7.5: cryptographic failure; what RFC 8461 senders answer an unmet policy.
pub(crate) const POLICY_NOT_MET: EnhancedCode = EnhancedCode::new(4, 7, 5);

/// The targets and the security of a job to `domain` under `applied`: in enforce, the
/// listed MX hosts with `verified` security, or the deferral when none is listed.
pub(crate) fn restrict(
    applied: &Applied,
    domain: &str,
    targets: Vec<crate::outbound::mx::Target>,
    security: HopSecurity,
    verified: HopSecurity,
) -> Result<(Vec<Target>, HopSecurity), Outcome> {
    let policy = &applied.kept.policy;
    let unlisted: Vec<&str> = targets
        .iter()
        .filter(|t| !policy.admits(&t.host))
        .map(|t| t.host.as_str())
        .collect();
    match policy.mode {
        Mode::Enforce => {
            let listed: Vec<Target> = targets
                .iter()
                .filter(|t| policy.admits(&t.host))
                .cloned()
                .collect();
            if listed.is_empty() {
                metrics::counter!("delivery_mta_sts_refusals_total", "reason" => "mx").increment(1);
                let mut hosts = unlisted;
                hosts.dedup();
                return Err(Outcome::Deferred(Status::local(
                    POLICY_NOT_MET,
                    format!(
                        "{} lists none of its MX hosts ({}); not delivered",
                        applied.describe(domain),
                        hosts.join(", ")
                    ),
                )));
            }
            Ok((listed, verified))
        }
        Mode::Testing => {
            if !unlisted.is_empty() {
                tracing::info!(domain = %domain, id = %applied.kept.id, unlisted = ?unlisted,
                    "MTA-STS policy in testing mode does not list these MX hosts; delivering anyway");
            }
            Ok((targets, security))
        }
        Mode::None => Ok((targets, security)),
    }
}

/// The outcome of a job under an enforced policy whose last connection failed with
/// `error`: a TLS failure (no STARTTLS, a certificate that does not verify) is the
/// policy's 4.7.5, naming it; other failures keep their own outcome.
pub(crate) fn tls_failure(applied: &Applied, domain: &str, error: &ClientError) -> Option<Outcome> {
    if applied.kept.policy.mode != Mode::Enforce || !matches!(error, ClientError::Tls { .. }) {
        return None;
    }
    metrics::counter!("delivery_mta_sts_refusals_total", "reason" => "tls").increment(1);
    Some(Outcome::Deferred(Status::local(
        POLICY_NOT_MET,
        format!(
            "{} requires verified TLS; not delivered: {error}",
            applied.describe(domain)
        ),
    )))
}
