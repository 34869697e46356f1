//! What DANE does to one delivery job (RFC 7672 §2.2): a bogus MX answer defers the job;
//! a secure one gives each MX host its own security (TLS authenticated by its TLSA
//! records; for a host without usable records, what the domain's other policy gives it,
//! with TLS required at least when it has unusable ones) and leaves out hosts whose TLSA
//! lookup failed; a job that cannot meet it is deferred with 4.7.5, the reply naming the
//! host and the records.

use super::{DomainDane, HostDane};
use crate::outbound::job::Outcome;
use crate::outbound::mta_sts::enforce::POLICY_NOT_MET;
use crate::outbound::mx::Target;
use crate::outbound::smtp_client::ClientError;
use crate::outbound::tls::{HopSecurity, TlsMode};
use crate::protocol::status::Status;

/// The securities a job may give a target besides DANE's.
pub(crate) struct Securities<'a> {
    /// The hop's configured security (credentials included), which DANE's builds on.
    pub(crate) usual: HopSecurity,
    /// TLS required, any certificate.
    pub(crate) required: HopSecurity,
    /// What a host DANE does not protect gets from the domain's other policy (an
    /// MTA-STS policy): its security, or why it is not used.
    pub(crate) unprotected: &'a dyn Fn(&Target) -> Result<HopSecurity, String>,
}

fn refused(reason: &'static str, text: String) -> Outcome {
    metrics::counter!("delivery_dane_refusals_total", "reason" => reason).increment(1);
    Outcome::Deferred(Status::local(POLICY_NOT_MET, text))
}

/// A job DANE (or, for the hosts it does not protect, the other policy) left no host to.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The recipients' deferral.
    pub(crate) outcome: Outcome,
    /// Its RFC 8460 result type: `dnssec-invalid` when DANE's answers failed,
    /// `validation-failure` when only the other policy left hosts out.
    pub(crate) result_type: &'static str,
}

/// Each target of a job to `domain` with the security `dane` gives it, in MX order, or
/// the deferral when none is left.
pub(crate) fn secure_targets(
    dane: &DomainDane,
    domain: &str,
    targets: Vec<Target>,
    securities: &Securities<'_>,
) -> Result<Vec<(Target, HopSecurity)>, Refusal> {
    let dnssec = |outcome| Refusal {
        outcome,
        result_type: "dnssec-invalid",
    };
    let hosts = match dane {
        DomainDane::Insecure => {
            return Ok(targets
                .into_iter()
                .map(|t| (t, securities.usual.clone()))
                .collect());
        }
        DomainDane::Bogus(reason) => {
            return Err(dnssec(refused(
                "bogus",
                format!("DANE: {reason}; not delivered"),
            )));
        }
        DomainDane::Secure(hosts) => hosts,
    };
    let mut secured = Vec::with_capacity(targets.len());
    let mut failures = Vec::new();
    // Some host was left out by DANE's own lookups, not by the other policy.
    let mut dane_failed = false;
    for target in targets {
        let host = target.host.trim_end_matches('.').to_ascii_lowercase();
        let security = match hosts.get(&host) {
            // Not in the validated MX answer: the unvalidated one disagreed; not trusted.
            None => continue,
            Some(HostDane::Tlsa(tlsa)) => Ok(HopSecurity {
                mode: TlsMode::Verify,
                client: Some(tlsa.client.clone()),
                dane: Some(tlsa.records.clone()),
                ..securities.usual.clone()
            }),
            Some(HostDane::Unprotected) => (securities.unprotected)(&target),
            // TLS at least; verified, when the other policy wants it.
            Some(HostDane::Unusable) => (securities.unprotected)(&target).map(|other| {
                if other.mode == TlsMode::Verify {
                    other
                } else {
                    securities.required.clone()
                }
            }),
            Some(HostDane::Failed(reason)) => {
                dane_failed = true;
                Err(reason.clone())
            }
        };
        match security {
            Ok(security) => secured.push((target, security)),
            Err(reason) if !failures.contains(&reason) => failures.push(reason),
            Err(_) => {}
        }
    }
    if secured.is_empty() {
        let text = if failures.is_empty() {
            format!(
                "DANE: no MX host of {domain} is in its DNSSEC-validated MX answer; not delivered"
            )
        } else {
            format!("DANE: {}; not delivered", failures.join("; "))
        };
        let outcome = refused("lookup", text);
        return Err(if dane_failed || failures.is_empty() {
            dnssec(outcome)
        } else {
            Refusal {
                outcome,
                result_type: "validation-failure",
            }
        });
    }
    Ok(secured)
}

/// The outcome of a job to a DANE-governed `domain` whose connections failed, the last
/// TLS failure being `error`: the policy's 4.7.5, naming the cause.
pub(crate) fn tls_failure(domain: &str, error: &ClientError) -> Outcome {
    refused(
        "tls",
        format!(
            "DANE (TLSA records of {domain}'s MX hosts) requires authenticated TLS; not delivered: {error}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use super::*;
    use crate::outbound::dane::verify::dane_client_config;
    use crate::outbound::dane::{HostTlsa, Tlsa};

    fn target(host: &str) -> Target {
        Target {
            host: host.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 25)),
            preference: 10,
        }
    }

    fn securities() -> Securities<'static> {
        Securities {
            usual: HopSecurity::default(),
            required: HopSecurity {
                mode: TlsMode::Required,
                ..HopSecurity::default()
            },
            unprotected: &|_| Ok(HopSecurity::default()),
        }
    }

    #[test]
    fn each_host_gets_the_security_its_tlsa_answer_gives() {
        let record = Tlsa {
            end_entity: true,
            spki: true,
            matching: 1,
            data: vec![0; 32],
        };
        let hosts = HashMap::from([
            (
                "a.example.test".to_string(),
                HostDane::Tlsa(HostTlsa {
                    client: dane_client_config(
                        Arc::from(vec![record.clone()]),
                        "a.example.test",
                        &["a.example.test", "example.test"],
                    )
                    .unwrap(),
                    records: Arc::from(vec![record]),
                }),
            ),
            ("b.example.test".to_string(), HostDane::Unusable),
            ("c.example.test".to_string(), HostDane::Unprotected),
            (
                "d.example.test".to_string(),
                HostDane::Failed("the TLSA lookup of d failed".into()),
            ),
        ]);
        let targets = [
            "a.example.test",
            "b.example.test",
            "c.example.test",
            "d.example.test",
            "forged.example.test",
        ]
        .map(target)
        .to_vec();
        let secured = secure_targets(
            &DomainDane::Secure(hosts),
            "example.test",
            targets,
            &securities(),
        )
        .expect("three hosts are usable");
        let modes: Vec<(&str, TlsMode)> = secured
            .iter()
            .map(|(t, s)| (t.host.as_str(), s.mode))
            .collect();
        assert_eq!(
            modes,
            [
                ("a.example.test", TlsMode::Verify),
                ("b.example.test", TlsMode::Required),
                ("c.example.test", TlsMode::Opportunistic)
            ]
        );
    }

    #[test]
    fn hosts_without_usable_records_follow_the_other_policy() {
        let hosts = HashMap::from([
            ("listed.example.test".to_string(), HostDane::Unusable),
            ("unlisted.example.test".to_string(), HostDane::Unprotected),
        ]);
        let other = |t: &Target| {
            if t.host.starts_with("listed") {
                Ok(HopSecurity {
                    mode: TlsMode::Verify,
                    ..HopSecurity::default()
                })
            } else {
                Err(format!("{} is not listed in the MTA-STS policy", t.host))
            }
        };
        let securities = Securities {
            unprotected: &other,
            ..securities()
        };
        let targets = ["listed.example.test", "unlisted.example.test"]
            .map(target)
            .to_vec();
        let secured = secure_targets(
            &DomainDane::Secure(hosts.clone()),
            "example.test",
            targets,
            &securities,
        )
        .expect("the listed host is usable");
        let modes: Vec<(&str, TlsMode)> = secured
            .iter()
            .map(|(t, s)| (t.host.as_str(), s.mode))
            .collect();
        assert_eq!(
            modes,
            [("listed.example.test", TlsMode::Verify)],
            "unusable records: the stronger demand"
        );

        let only_unlisted = vec![target("unlisted.example.test")];
        let Err(Refusal {
            outcome: Outcome::Deferred(status),
            result_type: "validation-failure",
        }) = secure_targets(
            &DomainDane::Secure(hosts),
            "example.test",
            only_unlisted,
            &securities,
        )
        else {
            panic!("not deferred")
        };
        assert!(
            status
                .text
                .contains("unlisted.example.test is not listed in the MTA-STS policy"),
            "{}",
            status.text
        );
    }

    #[test]
    fn bogus_answers_and_failed_lookups_defer_with_4_7_5_naming_the_cause() {
        let bogus = secure_targets(
            &DomainDane::Bogus(
                "the DNSSEC-signed MX answer of example.test is not valid (x)".into(),
            ),
            "example.test",
            vec![target("a.example.test")],
            &securities(),
        );
        let Err(Refusal {
            outcome: Outcome::Deferred(status),
            result_type: "dnssec-invalid",
        }) = bogus
        else {
            panic!("not deferred")
        };
        assert_eq!(status.code.to_string(), "4.7.5");
        assert!(
            status
                .text
                .contains("MX answer of example.test is not valid"),
            "{}",
            status.text
        );

        let hosts = HashMap::from([(
            "a.example.test".to_string(),
            HostDane::Failed("the TLSA lookup of a.example.test failed: timed out".into()),
        )]);
        let failed = secure_targets(
            &DomainDane::Secure(hosts),
            "example.test",
            vec![target("a.example.test")],
            &securities(),
        );
        let Err(Refusal {
            outcome: Outcome::Deferred(status),
            result_type: "dnssec-invalid",
        }) = failed
        else {
            panic!("not deferred")
        };
        assert!(
            status.text.contains("TLSA lookup of a.example.test failed"),
            "{}",
            status.text
        );
    }
}
