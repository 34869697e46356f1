//! A finished period's counts as an RFC 8460 aggregate report: mail-auth's report types,
//! its JSON, gzip-compressed as both the `mailto:` attachment and the `https:` body are.

use std::io::Write as _;

use mail_auth::mta_sts::ReportUri;
use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};
use mail_parser::DateTime;

use super::DomainPeriod;

/// Who sends the reports, as they name it.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// `organization-name`.
    pub organization: String,
    /// `contact-info`.
    pub contact: String,
    /// The submitter (`TLS-Report-Submitter`): the sending host's name.
    pub submitter: String,
}

/// The RFC 8460 report of `period`.
pub fn build(period: &DomainPeriod, reporter: &Reporter) -> TlsReport {
    TlsReport {
        organization_name: Some(reporter.organization.clone()),
        date_range: DateRange {
            start_datetime: DateTime::from_timestamp(period.start as i64),
            end_datetime: DateTime::from_timestamp(period.end as i64),
        },
        contact_info: Some(reporter.contact.clone()),
        report_id: format!("{}.{}@{}", period.start, period.domain, reporter.submitter),
        policies: period
            .policies
            .iter()
            .map(|counts| {
                let kinds: u64 = counts.failures.iter().map(|f| f.count).sum();
                // Counts kept before `failed` existed have only their kinds.
                let total_failure = counts.failed.max(kinds);
                Policy {
                    policy: PolicyDetails {
                        policy_type: match counts.policy.kind.as_str() {
                            "tlsa" => PolicyType::Tlsa,
                            "sts" => PolicyType::Sts,
                            _ => PolicyType::NoPolicyFound,
                        },
                        policy_string: counts.policy.strings.clone(),
                        policy_domain: period.domain.clone(),
                        mx_host: counts.policy.mx.clone(),
                    },
                    summary: Summary {
                        total_success: saturating(counts.success),
                        total_failure: saturating(total_failure),
                    },
                    failure_details: counts
                        .failures
                        .iter()
                        .map(|f| FailureDetails {
                            result_type: result_type(&f.result_type),
                            sending_mta_ip: None,
                            receiving_mx_hostname: f.mx_host.clone(),
                            receiving_mx_helo: None,
                            receiving_ip: f.ip,
                            failed_session_count: saturating(f.count),
                            additional_information: f.additional.clone(),
                            failure_reason_code: None,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

fn saturating(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn result_type(name: &str) -> ResultType {
    serde_json::from_value(serde_json::Value::String(name.into())).unwrap_or(ResultType::Other)
}

/// The report's JSON without the fields it leaves empty (mail-auth writes them as
/// `null`; RFC 8460 leaves them out).
pub fn json(report: &TlsReport) -> String {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(report).unwrap_or_default();
    strip(&mut value);
    value.to_string()
}

/// The report's JSON ([`json`]), gzip-compressed.
pub fn gzip_json(report: &TlsReport) -> std::io::Result<Vec<u8>> {
    let json = json(report);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes())?;
    gz.finish()
}

/// The destinations a `_smtp._tls` TXT record names (`v=TLSRPTv1; rua=...`), or `None`
/// when the record is not one.
pub fn destinations(txt: &str) -> Option<Vec<ReportUri>> {
    use mail_auth::common::parse::TxtRecordParser;
    mail_auth::mta_sts::TlsRpt::parse(txt.as_bytes())
        .ok()
        .map(|record| record.rua)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::tls_report::{FailureCount, PolicyCounts, PolicyRef};

    #[test]
    fn counts_become_an_rfc_8460_report() {
        let period = DomainPeriod {
            domain: "example.test".into(),
            start: 1_796_601_600,
            end: 1_796_688_000,
            policies: vec![PolicyCounts {
                policy: PolicyRef {
                    kind: "tlsa".into(),
                    strings: vec!["3 1 1 abcd".into()],
                    mx: vec![],
                },
                success: 5,
                failed: 2,
                failures: vec![FailureCount {
                    result_type: "tlsa-invalid".into(),
                    mx_host: Some("mx.example.test".into()),
                    ip: Some([127, 0, 0, 1].into()),
                    additional: None,
                    count: 2,
                }],
            }],
        };
        let reporter = Reporter {
            organization: "relay.hermod.test".into(),
            contact: "postmaster@relay.hermod.test".into(),
            submitter: "relay.hermod.test".into(),
        };
        let json: serde_json::Value =
            serde_json::from_str(&json(&build(&period, &reporter))).unwrap();
        assert_eq!(json["date-range"]["start-datetime"], "2026-12-07T00:00:00Z");
        assert_eq!(
            json["report-id"],
            "1796601600.example.test@relay.hermod.test"
        );
        let policy = &json["policies"][0];
        assert_eq!(policy["policy"]["policy-type"], "tlsa");
        assert_eq!(policy["summary"]["total-successful-session-count"], 5);
        assert_eq!(policy["summary"]["total-failure-session-count"], 2);
        assert_eq!(policy["failure-details"][0]["result-type"], "tlsa-invalid");
        assert_eq!(policy["failure-details"][0]["receiving-ip"], "127.0.0.1");
        assert!(
            policy["failure-details"][0].get("sending-mta-ip").is_none(),
            "no nulls"
        );

        assert_eq!(
            destinations("v=TLSRPTv1; rua=mailto:tls@example.test,https://r.example.test/v1"),
            Some(vec![
                ReportUri::Mail("tls@example.test".into()),
                ReportUri::Http("https://r.example.test/v1".into())
            ])
        );
        assert_eq!(destinations("v=spf1 -all"), None);
    }
}
