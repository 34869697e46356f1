//! The replies of mail authentication: an SPF fail or a DMARC `p=reject` refused, and a
//! check that could not finish because the DNS failed (RFC 7372's codes for SPF).

use std::net::IpAddr;

use super::Reply;
use crate::protocol::status::EnhancedCode;

impl Reply {
    /// SPF says the client may not send for the MAIL FROM (or HELO) domain: RFC 7372's
    /// 5.7.23, with the domain's own explanation (`exp=`) when it has one.
    pub fn spf_failed(client: IpAddr, domain: &str, explanation: Option<&str>) -> Self {
        // The domain's own text: printable ASCII only and short, so that it can never end
        // the reply line or start another.
        let explanation = explanation
            .map(|e| {
                e.chars()
                    .filter(|c| (' '..='~').contains(c))
                    .take(200)
                    .collect::<String>()
            })
            .filter(|e| !e.trim().is_empty())
            .map(|e| format!(": {}", e.trim()))
            .unwrap_or_default();
        Self::new(
            550,
            EnhancedCode::new(5, 7, 23),
            "spf_fail",
            format!(
                "SPF check failed: [{client}] is not allowed to send mail for {domain}{explanation}"
            ),
        )
    }

    /// The SPF record of `domain` could not be read (DNS time-out or SERVFAIL): RFC 7372's
    /// 4.7.24.
    pub fn spf_temporary_error(domain: &str) -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 7, 24),
            "spf_temperror",
            format!("SPF check of {domain} failed temporarily (DNS error), try again later"),
        )
    }

    /// The From: domain publishes `p=reject` and neither SPF nor DKIM passed aligned with
    /// it; `why` names the failed alignment.
    pub fn dmarc_rejected(domain: &str, why: &str) -> Self {
        Self::new(
            550,
            EnhancedCode::new(5, 7, 1),
            "dmarc_reject",
            format!("DMARC policy of {domain} rejects this message: {why}"),
        )
    }

    /// The From: header names addresses of several domains, which DMARC cannot check
    /// (RFC 7489 §6.6.1): refused when `p=reject` failures are.
    pub fn dmarc_several_from_domains(domains: &str) -> Self {
        Self::new(
            550,
            EnhancedCode::new(5, 7, 1),
            "dmarc_reject",
            format!(
                "Message refused: its From: header names several domains ({domains}), which DMARC cannot check"
            ),
        )
    }

    /// The DMARC check of `domain` could not finish because the DNS failed.
    pub fn dmarc_temporary_error(domain: &str) -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 7, 1),
            "dmarc_temperror",
            format!("DMARC check of {domain} failed temporarily (DNS error), try again later"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domains_explanation_cannot_end_the_reply_or_start_another() {
        let reply = Reply::spf_failed(
            "192.0.2.1".parse().unwrap(),
            "evil.test",
            Some("go away\r\n250 2.1.0 Sender ok"),
        );
        let wire = reply.to_wire();
        assert_eq!(wire.matches("\r\n").count(), 1, "{wire}");
        assert!(wire.starts_with("550 5.7.23 SPF check failed: [192.0.2.1] is not allowed to send mail for evil.test: go away250"), "{wire}");
        let long = "x".repeat(1000);
        assert!(
            Reply::spf_failed("192.0.2.1".parse().unwrap(), "d.test", Some(&long))
                .to_wire()
                .len()
                < 400
        );
    }
}
