//! What an MTA-STS policy does to one delivery job (RFC 8461 §5): in `enforce`, only the
//! MX hosts it lists are tried, each over TLS whose certificate verifies for the MX
//! host's name (no retry in clear); a job that cannot meet it is deferred with 4.7.5,
//! the reply naming the policy. In `testing`, delivery goes on as usual and the MX hosts
//! the policy does not list are logged (certificates are not verified there).

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

/// Whether a connection whose certificate was verified for `verified_for` (`None`: not
/// verified) meets `applied`: anything does but an enforced policy, which wants a listed
/// MX host, verified.
pub(crate) fn meets(applied: &Applied, verified_for: Option<&str>) -> bool {
    let policy = &applied.kept.policy;
    policy.mode != Mode::Enforce || verified_for.is_some_and(|host| policy.admits(host))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::mta_sts::policy::Policy;
    use crate::outbound::mta_sts::{KeptPolicy, Source};

    fn applied(mode: Mode) -> Applied {
        Applied {
            kept: KeptPolicy {
                id: "1".into(),
                policy: Policy {
                    mode,
                    mx: vec!["*.example.test".into()],
                    max_age: 86400,
                },
                fetched: 0,
            },
            source: Source::Kept,
        }
    }

    #[test]
    fn a_pooled_connection_meets_enforce_only_verified_for_a_listed_host() {
        let enforce = applied(Mode::Enforce);
        assert!(meets(&enforce, Some("mx1.example.test")));
        assert!(!meets(&enforce, None), "not verified");
        assert!(!meets(&enforce, Some("mx.elsewhere.test")), "not listed");
        assert!(meets(&applied(Mode::Testing), None));
        assert!(meets(&applied(Mode::None), None));
    }
}
