//! The replies of the policy actors: rate limits, greylisting, DNS blocklists, and a
//! policy that could not answer.

use std::net::IpAddr;

use super::Reply;
use crate::protocol::status::EnhancedCode;

impl Reply {
    /// Past a rate limit at MAIL or RCPT.
    pub fn rate_limited(wait_s: u64) -> Self {
        Self::new(
            450,
            EnhancedCode::new(4, 7, 1),
            "rate_limited",
            format!("Rate limit exceeded, try again in {wait_s} seconds"),
        )
    }
    /// Past the connection rate limit: said at connect, then the connection closes.
    pub fn rate_limited_connect(wait_s: u64) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "rate_limited",
            format!("Rate limit exceeded, try again in {wait_s} seconds"),
        )
    }
    /// A triplet seen for the first time, or too soon again (RFC 6647).
    pub fn greylisted(wait_s: u64) -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 7, 1),
            "greylisted",
            format!("Greylisted, please try again in {wait_s} seconds"),
        )
    }
    /// The client's address is on DNS blocklists past the threshold.
    pub fn dnsbl_blocked(client: IpAddr, zone: &str, reason: &str) -> Self {
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!("; {reason}")
        };
        Self::new(
            554,
            EnhancedCode::new(5, 7, 1),
            "dnsbl",
            format!("Service unavailable; client [{client}] blocked using {zone}{reason}"),
        )
    }
    /// A policy failed or did not answer in time and does not fail open.
    pub fn policy_unavailable(policy: &str) -> Self {
        Self::new(
            451,
            EnhancedCode::new(4, 3, 0),
            "policy_unavailable",
            format!("Temporary policy failure ({policy} did not answer), try again later"),
        )
    }
    /// The same at connect: said, then the connection closes.
    pub fn policy_unavailable_connect(policy: &str) -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 3, 0),
            "policy_unavailable",
            format!("Temporary policy failure ({policy} did not answer), try again later"),
        )
    }
}
