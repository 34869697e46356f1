//! The replies of mail authentication: an SPF fail or a DMARC `p=reject` refused, and a
//! check that could not finish because the DNS failed (RFC 7372's codes for SPF).

use std::net::IpAddr;

use super::Reply;

impl Reply {
    /// SPF says the client may not send for the MAIL FROM (or HELO) domain: RFC 7372's
    /// 5.7.23, with the domain's own explanation (`exp=`) when it has one.
    pub fn spf_failed(client: IpAddr, domain: &str, explanation: Option<&str>) -> Self {
        let explanation = explanation
            .filter(|e| !e.is_empty())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        Self::new(
            550,
            "5.7.23",
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
            "4.7.24",
            "spf_temperror",
            format!("SPF check of {domain} failed temporarily (DNS error), try again later"),
        )
    }

    /// The From: domain publishes `p=reject` and neither SPF nor DKIM passed aligned with
    /// it; `why` names the failed alignment.
    pub fn dmarc_rejected(domain: &str, why: &str) -> Self {
        Self::new(
            550,
            "5.7.1",
            "dmarc_reject",
            format!("DMARC policy of {domain} rejects this message: {why}"),
        )
    }

    /// The DMARC check of `domain` could not finish because the DNS failed.
    pub fn dmarc_temporary_error(domain: &str) -> Self {
        Self::new(
            451,
            "4.7.1",
            "dmarc_temperror",
            format!("DMARC check of {domain} failed temporarily (DNS error), try again later"),
        )
    }
}
