//! Mail authentication of what untrusted, unauthenticated clients send (the inbound MX
//! gateway): SPF at MAIL FROM ([`spf::SpfVerifier`]), DKIM of every signature
//! ([`dkim_verify::DkimVerifier`], on a runtime of its own because hashing and RSA are CPU
//! work) and DMARC at the end of DATA ([`dmarc::DmarcVerifier`]), which also writes the
//! one `Authentication-Results:` header (RFC 8601) and takes out forged ones. Lookups go
//! through the same DNS servers as delivery. What a failure does is the operator's
//! choice ([`AuthRules`]).

use serde::{Deserialize, Serialize};

use crate::outbound::mx::MxResolver;

pub mod authentication_results;
pub mod dkim_verify;
pub mod dmarc;
pub mod pool;
pub mod spf;

/// What an SPF `fail` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfFailAction {
    /// Refuse MAIL FROM with `550 5.7.23`, before any data is sent.
    Reject,
    /// Only record it (Authentication-Results, log, metrics); DMARC may still decide.
    Record,
}

/// What a DMARC `p=reject` failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcRejectAction {
    /// Refuse the message with `550 5.7.1`, as the domain asks.
    Reject,
    /// Treat it as a quarantine (see [`QuarantineAction`]).
    Quarantine,
    /// Only record it.
    Record,
}

/// What a DMARC `p=quarantine` failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineAction {
    /// Deliver with the quarantine header on top, for the mailbox's spam filter.
    Header,
    /// Queue it on hold; `hermod queue release` delivers it, `hermod queue delete`
    /// drops it.
    Hold,
    /// Send every recipient to the quarantine transport (`quarantine_transport`).
    Transport,
    /// Only record it.
    Record,
}

/// What a check that failed because the DNS did (temperror) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TempErrorAction {
    /// Answer `451 4.7.x`: the sender retries later, when the DNS may answer.
    Defer,
    /// Accept and record `temperror`.
    Accept,
}

/// The operator's choices, shared by the three verifiers.
#[derive(Debug, Clone)]
pub struct AuthRules {
    /// The authserv-id of our `Authentication-Results:` header (the hostname); incoming
    /// headers claiming it are forged and removed.
    pub authserv_id: String,
    /// SPF `fail`.
    pub spf_fail: SpfFailAction,
    /// DMARC failure of a `p=reject` domain.
    pub dmarc_reject: DmarcRejectAction,
    /// DMARC failure of a `p=quarantine` domain (and of a `p=reject` one sampled out by
    /// `pct`).
    pub dmarc_quarantine: QuarantineAction,
    /// The header line added by [`QuarantineAction::Header`].
    pub quarantine_header: String,
    /// The next hop of [`QuarantineAction::Transport`] (`smtp:[host]:port` syntax).
    pub quarantine_transport: String,
    /// A DNS failure during SPF or DMARC.
    pub temp_error: TempErrorAction,
}

/// mail-auth's verifier over `resolver` (its cache shared).
pub fn authenticator(resolver: &MxResolver) -> mail_auth::MessageAuthenticator {
    mail_auth::MessageAuthenticator(resolver.resolver().clone())
}

/// Help texts of the metrics recorded by the verifiers.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "mail_auth_results_total",
        "Mail authentication results of untrusted, unauthenticated mail, by method (spf: MAIL FROM, or HELO for the null sender; spf_helo: the HELO name beside a MAIL FROM; dkim; dmarc) and result (pass, fail, softfail, neutral, none, temperror, permerror)."
    );
    metrics::describe_counter!(
        "mail_auth_actions_total",
        "What mail authentication did to a message or sender, by action (spf_rejected, dmarc_rejected, quarantined_header, quarantined_hold, quarantined_transport, deferred_temperror)."
    );
    metrics::describe_histogram!(
        "mail_auth_verify_seconds",
        "Time to verify one message or sender, by method (spf; dkim: every signature; dmarc: the policy lookup and alignment)."
    );
}
