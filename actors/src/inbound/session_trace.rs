//! The receiving part of a message's trace (`tracing.enabled`): what a Session notes of
//! each transaction as it goes (when it began, each policy check and its verdict), and
//! the spans it makes of them once the message is taken: `smtp.receive` for the whole
//! (from the connection for a connection's first message, with an event `smtp.mail`
//! where the greeting, TLS and AUTH ended and the transaction began) and `policy.check`
//! for each check. The root's `traceparent` goes into the envelope.
//!
//! Steps with nothing of their own to say are events of the root, not spans: a span
//! costs the mail path several times what an event does, and source-1's load measured
//! it (docs/BENCHMARKS.md).

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind};

use crate::core::message_trace::{self, Receiving, SpanStart, peer_text};
use crate::protocol::check::{CheckStage, Verdict};
use crate::protocol::session::{AcceptedMessage, ServerSession};

/// What a Session keeps for the traces of its messages.
pub(super) struct SessionTrace {
    /// When the connection was accepted.
    connected: SystemTime,
    /// A message of this connection was traced: the next ones start at their MAIL.
    traced_one: bool,
    /// When the open transaction began (its MAIL check, or the turn that saw it open),
    /// with its number ([`ServerSession::transactions`]).
    began: Option<(u64, SystemTime)>,
    /// The last turn outside a transaction: the start of a transaction whose commands all
    /// came in one read (no turn saw it open).
    idle_since: SystemTime,
    /// The policy checks of the open transaction.
    checks: Vec<CheckTiming>,
}

/// One policy check: its transaction's number, its stage, its verdict and when it ran.
struct CheckTiming {
    transaction: u64,
    stage: CheckStage,
    verdict: &'static str,
    start: SystemTime,
    end: SystemTime,
}

impl SessionTrace {
    /// A new connection's; `None` while tracing is off.
    pub(super) fn start() -> Option<Self> {
        message_trace::enabled().then(|| {
            let now = SystemTime::now();
            SessionTrace {
                connected: now,
                traced_one: false,
                began: None,
                idle_since: now,
                checks: Vec::new(),
            }
        })
    }

    /// A turn of the protocol ended: a transaction that is no longer open (refused,
    /// RSET) leaves nothing for the next one.
    pub(super) fn turn(&mut self, protocol: &ServerSession) {
        if protocol.in_transaction() {
            let open = protocol.transactions();
            if self.began.is_none_or(|(n, _)| n != open) {
                self.began = Some((open, SystemTime::now()));
            }
        } else {
            self.began = None;
            self.checks.clear();
            self.idle_since = SystemTime::now();
        }
    }

    /// The policies gave `verdict` at `stage`, asked at `start`. A MAIL check belongs to
    /// the transaction it would open, the others to the open one: a message's trace gets
    /// only its own transaction's checks, however many came in one read.
    pub(super) fn checked(
        &mut self,
        protocol: &ServerSession,
        stage: CheckStage,
        start: SystemTime,
        verdict: &Verdict,
    ) {
        let transaction = protocol.transactions() + u64::from(stage == CheckStage::Mail);
        // The first check of a transaction is as early as its start is known (the turn
        // that sees it open may come only after all its pipelined commands).
        if self.began.is_none_or(|(n, _)| n != transaction) {
            self.began = Some((transaction, start));
        }
        self.checks.retain(|c| c.transaction == transaction);
        let verdict = match verdict {
            Verdict::Accept(_) => "accept",
            Verdict::Defer(_) => "defer",
            Verdict::Reject(_) => "reject",
        };
        self.checks.push(CheckTiming {
            transaction,
            stage,
            verdict,
            start,
            end: SystemTime::now(),
        });
    }

    /// `message` is complete and about to be stored: its trace starts, with the spans of
    /// what came before, and the envelope gets its `traceparent`.
    pub(super) fn receive(
        &mut self,
        message: &mut AcceptedMessage,
        peer: SocketAddr,
        protocol: &ServerSession,
    ) -> Option<Receiving> {
        let open = protocol.transactions();
        let began = match self.began.take() {
            Some((n, at)) if n == open => at,
            _ => self.idle_since,
        };
        let start = if self.traced_one {
            began
        } else {
            self.connected
        };
        let mut attributes = message_attributes(message, peer.ip());
        attributes.push(KeyValue::new("client.port", i64::from(peer.port())));
        if let Some(helo) = protocol.helo_name() {
            attributes.push(peer_text("smtp.helo", helo));
        }
        if let Some(tls) = protocol.tls() {
            attributes.push(KeyValue::new("tls.protocol.version", tls.version.clone()));
            attributes.push(KeyValue::new("tls.cipher", tls.cipher.clone()));
        }
        let mut root = message_trace::start(
            SpanStart {
                name: "smtp.receive",
                kind: SpanKind::Server,
                start,
                attributes,
            },
            None,
        )?;
        self.traced_one = true;
        // The greeting, EHLO, TLS and AUTH end here for a connection's first message.
        root.add_event_with_timestamp("smtp.mail", began, Vec::new());
        let context = message_trace::context_of(&root);
        for check in self.checks.drain(..).filter(|c| c.transaction == open) {
            message_trace::record(
                SpanStart {
                    name: "policy.check",
                    kind: SpanKind::Internal,
                    start: check.start,
                    attributes: vec![
                        KeyValue::new("hermod.stage", check.stage.name()),
                        KeyValue::new("hermod.verdict", check.verdict),
                    ],
                },
                &context,
                check.end,
            );
        }
        let (receiving, traceparent) = Receiving::new(root);
        message.trace = traceparent;
        Some(receiving)
    }

    /// The client has its answer to a message: the next transaction, if its commands
    /// came in the same read, begins no earlier.
    pub(super) fn answered(&mut self) {
        self.idle_since = SystemTime::now();
    }
}

/// The attributes a received message's root span has however it came (SMTP, the
/// injection API): queue id, client, sender, recipient count, size, AUTH user.
pub fn message_attributes(message: &AcceptedMessage, client: IpAddr) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("hermod.queue_id", message.id.to_string()),
        KeyValue::new("client.address", client.to_string()),
        peer_text("smtp.mail_from", &message.sender.to_string()),
        KeyValue::new("smtp.rcpt_count", message.recipients.len() as i64),
        KeyValue::new("message.size", size_of(message) as i64),
    ];
    if let Some(user) = &message.user {
        attributes.push(peer_text("enduser.id", user));
    }
    attributes
}

/// Octets of `message`: its head and, for a large one, the body in its file.
fn size_of(message: &AcceptedMessage) -> u64 {
    message.data.len() as u64 + message.body_file.as_ref().map_or(0, |f| f.len())
}
