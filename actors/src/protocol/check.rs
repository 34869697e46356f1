//! Policy checks as values: the stages at which the session stops for its policies
//! (connect, HELO, MAIL, RCPT, end of data), the facts it knows at that point, and the
//! verdict it resumes with. The policy actors and their transport live in
//! [`crate::policy`]; the protocol only stops and resumes.

use std::net::IpAddr;

use super::reply::Reply;

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
    /// The client sits in `relay.networks`.
    pub trusted: bool,
    /// The recipient is the postmaster, whom RFC 5321 §4.5.1 says anyone must reach.
    pub postmaster: bool,
    /// The message's size in octets (DATA).
    pub size: usize,
    /// The whole message (DATA), when it is in memory (not spilled to a file).
    pub message: Option<std::sync::Arc<Vec<u8>>>,
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
            trusted,
            postmaster: false,
            size: 0,
            message: None,
        }
    }
}

/// What the policies decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; at DATA, these header lines (without CRLF) go on top of the message.
    Accept {
        /// Header lines to add.
        headers: Vec<String>,
    },
    /// A temporary refusal (4xx): the client should try again later.
    Defer(Reply),
    /// A permanent refusal (5xx).
    Reject(Reply),
}

impl Verdict {
    /// Go on, adding nothing.
    pub fn accept() -> Self {
        Verdict::Accept {
            headers: Vec::new(),
        }
    }

    /// The refusal, if it is one.
    pub fn refusal(&self) -> Option<&Reply> {
        match self {
            Verdict::Accept { .. } => None,
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
