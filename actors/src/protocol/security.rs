//! What a connection's security is: the kind of listener it came in on (port 25, 587 or
//! 465 style), whether TLS and AUTH are on offer, the TLS the client negotiated and the
//! user it authenticated as. The session state machine decides with these what to offer
//! in EHLO and what to refuse before MAIL and RCPT.

use serde::{Deserialize, Serialize};

/// The kind of a listening address, as RFC 8314 and RFC 6409 name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// Port 25 style: mail from anywhere; STARTTLS offered when a certificate is
    /// configured; AUTH only when asked for.
    #[default]
    Smtp,
    /// Port 587 (RFC 6409): STARTTLS, then AUTH before MAIL unless configured otherwise.
    Submission,
    /// Port 465 (RFC 8314): TLS from the first byte, then AUTH before MAIL.
    Submissions,
}

impl ListenerKind {
    /// The kind's name in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Smtp => "smtp",
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
        }
    }

    /// Whether clients of this kind submit mail (587 and 465) rather than relay it.
    pub fn is_submission(self) -> bool {
        !matches!(self, ListenerKind::Smtp)
    }

    /// The kind a well-known port has, for sockets handed over by the service manager
    /// that no `smtp.listen` entry describes.
    pub fn for_port(port: u16) -> Self {
        match port {
            465 => ListenerKind::Submissions,
            587 => ListenerKind::Submission,
            _ => ListenerKind::Smtp,
        }
    }
}

/// One listening address's rules, fixed for the sessions it accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Its kind.
    pub kind: ListenerKind,
    /// AUTH must succeed before MAIL (`530 5.7.0 Authentication required`).
    pub require_auth: bool,
    /// AUTH is offered without TLS (a listener the operator trusts, e.g. on loopback).
    pub plaintext_auth: bool,
}

impl Endpoint {
    /// A listener of `kind` with its usual rules: submission listeners require AUTH.
    pub fn of_kind(kind: ListenerKind) -> Self {
        Endpoint {
            kind,
            require_auth: kind.is_submission(),
            plaintext_auth: false,
        }
    }
}

/// TLS and AUTH settings shared by every listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Security {
    /// A certificate is configured: STARTTLS is offered (`SMTP_ENABLE_TLS`).
    pub tls: bool,
    /// No MAIL before STARTTLS on listeners that start in clear (`SMTP_REQUIRE_TLS`).
    pub require_tls: bool,
    /// AUTH PLAIN and LOGIN are offered (`SMTP_ENABLE_AUTH`).
    pub auth: bool,
    /// On submission listeners, a trusted client network is not enough to relay: the
    /// client must authenticate (`SMTP_REQUIRE_AUTH_FOR_RELAY`).
    pub require_auth_for_relay: bool,
}

pub use crate::core::tls::TlsInfo;

/// A user who authenticated, with what the user store says about them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthenticatedUser {
    /// The login name.
    pub name: String,
    /// Envelope senders the user may use: addresses, or `@domain` for a whole domain;
    /// empty means any (Postfix's `reject_sender_login_mismatch` when not empty).
    pub senders: Vec<String>,
}

impl AuthenticatedUser {
    /// Whether the user may send as `sender` (an address, or empty for the null sender).
    pub fn may_send_as(&self, sender: &str) -> bool {
        if self.senders.is_empty() {
            return true;
        }
        let domain = sender.rsplit_once('@').map(|(_, d)| d);
        self.senders
            .iter()
            .any(|allowed| match allowed.strip_prefix('@') {
                Some(allowed_domain) => {
                    domain.is_some_and(|d| d.eq_ignore_ascii_case(allowed_domain))
                }
                None => allowed.eq_ignore_ascii_case(sender),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_list_takes_addresses_and_domains() {
        let user = AuthenticatedUser {
            name: "app".into(),
            senders: vec!["billing@shop.test".into(), "@news.test".into()],
        };
        assert!(user.may_send_as("billing@shop.test"));
        assert!(user.may_send_as("Billing@SHOP.test"));
        assert!(user.may_send_as("anyone@news.test"));
        assert!(!user.may_send_as("ceo@shop.test"));
        assert!(!user.may_send_as("x@sub.news.test"));
        assert!(!user.may_send_as(""));
        assert!(AuthenticatedUser::default().may_send_as("any@where.test"));
    }

    #[test]
    fn well_known_ports_have_their_kind() {
        assert_eq!(ListenerKind::for_port(465), ListenerKind::Submissions);
        assert_eq!(ListenerKind::for_port(587), ListenerKind::Submission);
        assert_eq!(ListenerKind::for_port(25), ListenerKind::Smtp);
        assert!(Endpoint::of_kind(ListenerKind::Submission).require_auth);
        assert!(!Endpoint::of_kind(ListenerKind::Smtp).require_auth);
    }
}
