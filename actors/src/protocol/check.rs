//! Policy checks as values: the stages at which the session stops for its policies
//! (connect, HELO, MAIL, RCPT, end of data), the facts it knows at that point, and the
//! verdict it resumes with. The policy actors and their transport live in
//! [`crate::policy`]; the protocol only stops and resumes.

use std::net::IpAddr;
use std::ops::Range;

use super::reply::Reply;
use crate::core::id::QueueId;

/// Where in a session a policy may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStage {
    /// The connection was accepted; nothing was said yet.
    Connect,
    /// EHLO or HELO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// One RCPT TO.
    Rcpt,
    /// The message content is in, before it is queued.
    Data,
}

impl CheckStage {
    /// Its name in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            CheckStage::Connect => "connect",
            CheckStage::Helo => "helo",
            CheckStage::Mail => "mail",
            CheckStage::Rcpt => "rcpt",
            CheckStage::Data => "data",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of stages: where the session must stop, because some policy wants to speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStages(u8);

impl CheckStages {
    /// No stage: the session never stops for policies.
    pub const NONE: CheckStages = CheckStages(0);

    /// These stages.
    pub fn of(stages: &[CheckStage]) -> Self {
        CheckStages(stages.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Whether `stage` is in the set.
    pub fn contains(self, stage: CheckStage) -> bool {
        self.0 & stage.bit() != 0
    }

    /// Both sets together.
    pub fn union(self, other: CheckStages) -> Self {
        CheckStages(self.0 | other.0)
    }
}

/// What the session knows when it stops for a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Where the session stopped.
    pub stage: CheckStage,
    /// The client's address.
    pub client_ip: IpAddr,
    /// The EHLO/HELO name, once given.
    pub helo: Option<String>,
    /// MAIL FROM (empty for the null sender), from the MAIL stage on.
    pub sender: Option<String>,
    /// The recipient being checked (RCPT), or every accepted one (DATA).
    pub recipients: Vec<String>,
    /// The user the client authenticated as.
    pub user: Option<String>,
    /// The senders that user may use (addresses, or `@domain`; empty: any), for the
    /// signer's check of the From: header.
    pub user_senders: Vec<String>,
    /// The client sits in `relay.networks`.
    pub trusted: bool,
    /// The recipient is the postmaster, whom RFC 5321 §4.5.1 says anyone must reach.
    pub postmaster: bool,
    /// The message's size in octets (DATA).
    pub size: usize,
    /// The whole message (DATA), when it is in memory (not spilled to a file).
    pub message: Option<std::sync::Arc<Vec<u8>>>,
    /// A large message (DATA) as the client sent it, in a file (written out, not yet
    /// synced) instead of `message`; read it with [`crate::policy::content`].
    pub body_file: Option<std::path::PathBuf>,
    /// The queue id the message will have (DATA), for log lines.
    pub queue_id: Option<QueueId>,
    /// What earlier stages of this transaction found (the SPF result at DATA).
    pub findings: Vec<Finding>,
}

impl Facts {
    /// The facts of a new connection.
    pub fn connect(client_ip: IpAddr, trusted: bool) -> Self {
        Facts {
            stage: CheckStage::Connect,
            client_ip,
            helo: None,
            sender: None,
            recipients: Vec::new(),
            user: None,
            user_senders: Vec::new(),
            trusted,
            postmaster: false,
            size: 0,
            message: None,
            body_file: None,
            queue_id: None,
            findings: Vec::new(),
        }
    }

    /// The finding of `method`, if an earlier stage made one.
    pub fn finding(&self, method: AuthMethod) -> Option<&Finding> {
        self.findings.iter().find(|f| f.method == method)
    }
}

/// A mail authentication method, as RFC 8601 names it in `Authentication-Results:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// SPF of the MAIL FROM identity (or of the HELO name for the null sender).
    Spf,
    /// SPF of the HELO identity, beside a non-null MAIL FROM (recorded, not enforced).
    SpfHelo,
    /// DKIM (the best result over every signature).
    Dkim,
    /// DMARC of the From: domain.
    Dmarc,
}

impl AuthMethod {
    /// Its name in headers, logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Spf => "spf",
            AuthMethod::SpfHelo => "spf_helo",
            AuthMethod::Dkim => "dkim",
            AuthMethod::Dmarc => "dmarc",
        }
    }
}

/// A result of one authentication method (RFC 8601 §2.7 and RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    /// Authenticated.
    Pass,
    /// Definitely not authenticated.
    Fail,
    /// SPF `~all`: probably not authenticated.
    SoftFail,
    /// SPF `?all`, or a DKIM signature that could not be checked (RFC 8601 `neutral`).
    Neutral,
    /// Nothing to check (no record, no signature).
    None,
    /// A temporary failure (DNS): the answer may differ later.
    TempError,
    /// A permanent error (a broken record, too many lookups).
    PermError,
}

impl AuthResult {
    /// Its name in headers, logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::None => "none",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// What one authentication method found, kept by the session for later stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The method.
    pub method: AuthMethod,
    /// Its result.
    pub result: AuthResult,
    /// The domain it was about (SPF: the MAIL FROM or HELO domain).
    pub domain: String,
}

/// What an accepting policy adds to or takes from the message, and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acceptance {
    /// Header lines (without CRLF) to go on top of the message (DATA).
    pub headers: Vec<String>,
    /// Byte ranges of [`Facts::message`] to take out (forged header fields), at DATA.
    pub remove: Vec<Range<usize>>,
    /// For a message in [`Facts::body_file`]: a file beside it holding the message to
    /// queue instead (the same without forged header fields).
    pub replace_body_file: Option<std::path::PathBuf>,
    /// Findings the session keeps for the later stages of the transaction.
    pub findings: Vec<Finding>,
    /// Queue the message on hold (a DMARC quarantine), to be released by the operator.
    pub hold: bool,
    /// Send every recipient to this next hop (a DMARC quarantine transport).
    pub route: Option<String>,
}

impl Acceptance {
    /// Adds `other` to this one.
    pub fn merge(&mut self, other: Acceptance) {
        self.headers.extend(other.headers);
        self.remove.extend(other.remove);
        if other.replace_body_file.is_some() {
            self.replace_body_file = other.replace_body_file;
        }
        self.findings.extend(other.findings);
        self.hold |= other.hold;
        if other.route.is_some() {
            self.route = other.route;
        }
    }
}

/// What the policies decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on, with what the policy adds, takes out and found.
    Accept(Acceptance),
    /// A temporary refusal (4xx): the client should try again later.
    Defer(Reply),
    /// A permanent refusal (5xx).
    Reject(Reply),
}

impl Verdict {
    /// Go on, adding nothing.
    pub fn accept() -> Self {
        Verdict::Accept(Acceptance::default())
    }

    /// Go on, adding these header lines on top of the message (at DATA).
    pub fn accept_with_headers(headers: Vec<String>) -> Self {
        Verdict::Accept(Acceptance {
            headers,
            ..Acceptance::default()
        })
    }

    /// The refusal, if it is one.
    pub fn refusal(&self) -> Option<&Reply> {
        match self {
            Verdict::Accept(_) => None,
            Verdict::Defer(reply) | Verdict::Reject(reply) => Some(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_sets() {
        let set = CheckStages::of(&[CheckStage::Connect, CheckStage::Rcpt]);
        assert!(set.contains(CheckStage::Connect) && set.contains(CheckStage::Rcpt));
        assert!(!set.contains(CheckStage::Mail) && !CheckStages::NONE.contains(CheckStage::Data));
        assert!(
            set.union(CheckStages::of(&[CheckStage::Data]))
                .contains(CheckStage::Data)
        );
    }
}
