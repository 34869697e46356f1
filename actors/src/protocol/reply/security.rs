//! The replies of STARTTLS and AUTH, and of the rules they enforce before MAIL and RCPT
//! (RFC 3207, RFC 4954, RFC 5248's 5.7.x codes).

use super::Reply;
use crate::protocol::status::EnhancedCode;

impl Reply {
    /// STARTTLS asked for where no certificate is configured, or TLS failed to start.
    pub fn tls_not_available(detail: &str) -> Self {
        Self::new(
            454,
            EnhancedCode::new(4, 7, 0),
            "tls_not_available",
            format!("TLS not available due to temporary reason: {detail}"),
        )
    }
    /// A second STARTTLS, or STARTTLS on an implicit-TLS connection.
    pub fn tls_already_active() -> Self {
        Self::new(
            503,
            EnhancedCode::new(5, 5, 1),
            "bad_sequence",
            "TLS already active",
        )
    }
    /// `SMTP_REQUIRE_TLS`: MAIL before STARTTLS.
    pub fn must_start_tls() -> Self {
        Self::new(
            530,
            EnhancedCode::new(5, 7, 0),
            "tls_required",
            "Must issue a STARTTLS command first",
        )
    }
    /// MAIL before AUTH on a listener that requires it.
    pub fn auth_required() -> Self {
        Self::new(
            530,
            EnhancedCode::new(5, 7, 0),
            "auth_required",
            "Authentication required",
        )
    }
    /// AUTH over a connection without TLS.
    pub fn encryption_required() -> Self {
        Self::new(
            538,
            EnhancedCode::new(5, 7, 11),
            "encryption_required",
            "Encryption required for requested authentication mechanism",
        )
    }
    /// AUTH where it is not offered.
    pub fn auth_not_offered() -> Self {
        Self::new(
            503,
            EnhancedCode::new(5, 5, 1),
            "auth_not_offered",
            "AUTH not offered on this server (smtp.auth is off)",
        )
    }
    /// A second AUTH on an authenticated connection.
    pub fn already_authenticated() -> Self {
        Self::new(
            503,
            EnhancedCode::new(5, 5, 1),
            "bad_sequence",
            "Already authenticated",
        )
    }
    /// AUTH inside a mail transaction.
    pub fn auth_in_transaction() -> Self {
        Self::new(
            503,
            EnhancedCode::new(5, 5, 1),
            "bad_sequence",
            "AUTH not allowed during a mail transaction",
        )
    }
    /// A mechanism hermod does not offer.
    pub fn unknown_mechanism() -> Self {
        Self::new(
            504,
            EnhancedCode::new(5, 5, 4),
            "unknown_mechanism",
            "Unrecognized authentication type (offered: PLAIN LOGIN)",
        )
    }
    /// A server challenge in an AUTH exchange (base64 text, possibly empty).
    pub fn auth_challenge(base64: String) -> Self {
        Self::without_enhanced_code(334, "auth_challenge", base64)
    }
    /// The client answered a challenge with `*`.
    pub fn auth_cancelled() -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 7, 0),
            "auth_cancelled",
            "Authentication cancelled",
        )
    }
    /// The client's SASL message cannot be decoded.
    pub fn bad_auth_response(detail: &str) -> Self {
        Self::new(
            501,
            EnhancedCode::new(5, 5, 2),
            "bad_auth_response",
            format!("Cannot decode the AUTH response: {detail}"),
        )
    }
    /// AUTH succeeded.
    pub fn auth_succeeded() -> Self {
        Self::new(
            235,
            EnhancedCode::new(2, 7, 0),
            "ok",
            "Authentication successful",
        )
    }
    /// Wrong user name or password (the same text for both: no user enumeration).
    pub fn auth_failed() -> Self {
        Self::new(
            535,
            EnhancedCode::new(5, 7, 8),
            "auth_failed",
            "Authentication credentials invalid",
        )
    }
    /// The user store could not be read: try later.
    pub fn auth_unavailable(detail: &str) -> Self {
        Self::new(
            454,
            EnhancedCode::new(4, 7, 0),
            "auth_unavailable",
            format!("Temporary authentication failure: {detail}"),
        )
    }
    /// Too many failed AUTH attempts from one client address: closing.
    pub fn too_many_auth_failures() -> Self {
        Self::new(
            421,
            EnhancedCode::new(4, 7, 0),
            "auth_lockout",
            "Too many authentication failures from your address, try again later",
        )
    }
    /// Too many failed logins for one user name, from anywhere: its checks are paced.
    pub fn auth_paced() -> Self {
        Self::new(
            454,
            EnhancedCode::new(4, 7, 0),
            "auth_paced",
            "Temporary authentication failure: too many failed logins for this user, try again later",
        )
    }
    /// The message's From: (or Sender:) header names an address the authenticated user
    /// may not use: it would be signed for a domain the user does not own.
    pub fn from_header_not_owned(address: &str, user: &str) -> Self {
        // The sender's own text: printable ASCII only and short, so that it can never
        // end the reply line or start another.
        let address: String = address
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .take(256)
            .collect();
        Self::new(
            550,
            EnhancedCode::new(5, 7, 1),
            "from_header_not_owned",
            format!(
                "From: header address <{address}> is not owned by user {user}; not signed, not accepted"
            ),
        )
    }
    /// The authenticated user may not use this envelope sender.
    pub fn sender_not_owned(sender: &str, user: &str) -> Self {
        Self::new(
            553,
            EnhancedCode::new(5, 7, 1),
            "sender_login_mismatch",
            format!("<{sender}>: Sender address rejected: not owned by user {user}"),
        )
    }
}
