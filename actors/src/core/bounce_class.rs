//! Bounce classes: what kind of failure a reply describes, named the way senders' list
//! hygiene knows them (KumoMTA's and PowerMTA's classes). A class is a value every stage
//! may carry (the spool keeps it with a failed recipient, the event and the DSN quote it);
//! which reply gets which class is decided by the rules in `events::bounce_rules`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of failure a reply describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BounceClass {
    /// The mailbox does not exist (5.1.1): remove the address from the list.
    InvalidRecipient,
    /// The domain does not exist or accepts no mail (5.1.2, null MX).
    BadDomain,
    /// The mailbox is full (5.2.2, 4.2.2).
    QuotaIssues,
    /// The mailbox exists but is disabled or abandoned (5.2.1).
    InactiveMailbox,
    /// The receiver blocks the sending address or its reputation (blocklists, rate of
    /// unsolicited mail).
    SpamBlock,
    /// The receiver judged the message's content as spam or a virus.
    SpamContent,
    /// The receiver's policy refuses it (DMARC, sender policy, relay denied).
    PolicyRelated,
    /// Authentication failed: SPF, DKIM or DMARC, or the next hop's AUTH.
    AuthFailure,
    /// The message is too large for the receiver (5.3.4).
    MessageTooLarge,
    /// The sender's address was refused (5.1.7, 5.1.8).
    InvalidSender,
    /// The next hop could not be reached or routed to (5.4.x, DNS, connection).
    RoutingErrors,
    /// The receiver did not answer in time, or the connection broke.
    NoAnswerFromHost,
    /// The conversation failed: a command or parameter the receiver refused (5.5.x).
    ProtocolErrors,
    /// hermod gave up: the message outlived the queue's lifetime or its attempts.
    MessageExpired,
    /// A temporary failure no rule names more closely.
    TransientFailure,
    /// A failure no rule names.
    Uncategorized,
}

impl BounceClass {
    /// Every class, in the order the metric and the documentation list them.
    pub const ALL: [BounceClass; 16] = [
        BounceClass::InvalidRecipient,
        BounceClass::BadDomain,
        BounceClass::QuotaIssues,
        BounceClass::InactiveMailbox,
        BounceClass::SpamBlock,
        BounceClass::SpamContent,
        BounceClass::PolicyRelated,
        BounceClass::AuthFailure,
        BounceClass::MessageTooLarge,
        BounceClass::InvalidSender,
        BounceClass::RoutingErrors,
        BounceClass::NoAnswerFromHost,
        BounceClass::ProtocolErrors,
        BounceClass::MessageExpired,
        BounceClass::TransientFailure,
        BounceClass::Uncategorized,
    ];

    /// The class's name, as the rules file, the log, the event and the metric write it.
    pub fn name(self) -> &'static str {
        match self {
            BounceClass::InvalidRecipient => "InvalidRecipient",
            BounceClass::BadDomain => "BadDomain",
            BounceClass::QuotaIssues => "QuotaIssues",
            BounceClass::InactiveMailbox => "InactiveMailbox",
            BounceClass::SpamBlock => "SpamBlock",
            BounceClass::SpamContent => "SpamContent",
            BounceClass::PolicyRelated => "PolicyRelated",
            BounceClass::AuthFailure => "AuthFailure",
            BounceClass::MessageTooLarge => "MessageTooLarge",
            BounceClass::InvalidSender => "InvalidSender",
            BounceClass::RoutingErrors => "RoutingErrors",
            BounceClass::NoAnswerFromHost => "NoAnswerFromHost",
            BounceClass::ProtocolErrors => "ProtocolErrors",
            BounceClass::MessageExpired => "MessageExpired",
            BounceClass::TransientFailure => "TransientFailure",
            BounceClass::Uncategorized => "Uncategorized",
        }
    }
}

impl fmt::Display for BounceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a bounce class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown bounce class {0:?} (one of InvalidRecipient, BadDomain, QuotaIssues, InactiveMailbox, SpamBlock, SpamContent, PolicyRelated, AuthFailure, MessageTooLarge, InvalidSender, RoutingErrors, NoAnswerFromHost, ProtocolErrors, MessageExpired, TransientFailure, Uncategorized)"
)]
pub struct UnknownBounceClass(pub String);

impl FromStr for BounceClass {
    type Err = UnknownBounceClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BounceClass::ALL
            .into_iter()
            .find(|class| class.name() == s)
            .ok_or_else(|| UnknownBounceClass(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_reads_back_from_its_name() {
        for class in BounceClass::ALL {
            assert_eq!(class.name().parse::<BounceClass>(), Ok(class));
            assert_eq!(
                serde_json::to_string(&class).unwrap(),
                format!("\"{class}\"")
            );
        }
        assert!("Spam".parse::<BounceClass>().is_err());
    }
}
