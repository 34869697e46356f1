//! A queued message's envelope as the spool stores it: sender, recipients and where
//! each recipient stands. Stored as JSON, so fields added later carry serde defaults and
//! a spool written by an older hermod still reads.

use serde::{Deserialize, Serialize};

pub use crate::protocol::command::MailOptions;
use crate::protocol::status::EnhancedCode;

/// A recipient's place in [`Envelope::recipients`]: how the Queue and a Delivery actor
/// name one recipient between them (the same address may be spelt twice; an index is
/// one recipient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipientIndex(pub usize);

/// Where one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientStatus {
    /// Not tried yet, or due now.
    Pending,
    /// Tried and deferred; next try at `next_attempt` (unix seconds).
    Deferred {
        /// Unix seconds of the next attempt.
        next_attempt: u64,
        /// The reply of the last attempt.
        last_reply: String,
    },
    /// Accepted by the next hop.
    Delivered,
    /// Bounced (permanent failure or expiry).
    Failed {
        /// The reply that made it fail.
        reply: String,
        /// Its enhanced status code, the bounce's `Status:` (absent in spools written
        /// before it was kept: 5.0.0, "other undefined status").
        #[serde(default = "undefined_failure")]
        code: EnhancedCode,
    },
}

/// One recipient and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    /// `local@domain`.
    pub address: String,
    /// Lower-cased domain, for routing.
    pub domain: String,
    /// Where it stands.
    pub status: RecipientStatus,
    /// Delivery attempts made so far.
    pub attempts: u32,
}

/// Everything about a queued message except its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// MAIL FROM; empty for the null sender.
    pub sender: String,
    /// The recipients and their states.
    pub recipients: Vec<RecipientState>,
    /// Unix seconds when it was accepted.
    pub arrival: u64,
    /// Size of the data in bytes.
    pub size: usize,
    /// The client's IP, for logs and bounces.
    pub client: String,
    /// BODY and SMTPUTF8 as the sender declared them (absent in spools written before
    /// they were kept: plain).
    #[serde(default, skip_serializing_if = "MailOptions::is_plain")]
    pub options: MailOptions,
    /// The body is a file in `bodies/` (a large message); sled holds only the head.
    #[serde(default, skip_serializing_if = "is_false")]
    pub body_file: bool,
    /// Held by the operator (`hermod queue hold`): never attempted until released.
    #[serde(default, skip_serializing_if = "is_false")]
    pub held: bool,
    /// The user the submitting client authenticated as (AUTH), for the log, per-user
    /// rate limits and DKIM signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A next hop for every recipient, in place of the routing by domain (`smtp:[host]:port`
    /// syntax): a DMARC quarantine sent to the quarantine transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The header fields the sender marked for tracking (`events.headers`), copied into
    /// every delivery event of the message: name as configured, value as sent (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<(String, String)>,
    /// The W3C `traceparent` of the message's trace (`tracing.enabled`, and the sampler
    /// kept it): each delivery attempt adds its span there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// A TLS report hermod made (RFC 8460 §3): delivered whatever the receiving domain's
    /// TLS policies say, and its sessions are not counted in the next report.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_report: bool,
    /// The egress pool its `X-Hermod-Pool:` field named (an authenticated sender's,
    /// taken out of the message at intake).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

fn undefined_failure() -> EnhancedCode {
    EnhancedCode::new(5, 0, 0)
}

/// A one-recipient envelope for the store's unit tests.
#[cfg(test)]
pub(crate) fn sample(size: usize) -> Envelope {
    Envelope {
        sender: "a@b.test".into(),
        recipients: vec![RecipientState {
            address: "c@d.test".into(),
            domain: "d.test".into(),
            status: RecipientStatus::Pending,
            attempts: 0,
        }],
        arrival: 1,
        size,
        client: "127.0.0.1".into(),
        options: MailOptions::default(),
        body_file: false,
        held: false,
        user: None,
        route: None,
        tracking: Vec::new(),
        trace: None,
        tls_report: false,
        pool: None,
    }
}
