//! What one delivery job is, shared by the Delivery actor and the code that runs a job
//! ([`crate::outbound::delivery_job`]): the [`Deliver`] message and its recipients, each
//! recipient's [`Outcome`] and the [`DeliveryReport`] that carries them back, and the
//! settings every job runs with.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::core::id::QueueId;
use crate::outbound::connection_budget::ConnectionBudget;
use crate::outbound::smtp_client::{ClientTimeouts, ServerReply};
use crate::protocol::command::MailOptions;
use crate::protocol::status::Status;
use crate::store::envelope::RecipientIndex;
use crate::store::message_data::MessageData;

/// Deliver one message to some of its recipients, all routed to this actor's next hop.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The queue id, for the report and the logs.
    pub id: QueueId,
    /// MAIL FROM (empty for the null sender).
    pub sender: String,
    /// RCPT TOs, each with its place in the message's envelope.
    pub recipients: Vec<JobRecipient>,
    /// BODY=8BITMIME and SMTPUTF8 as the sender declared them.
    pub options: MailOptions,
    /// The message, CRLF line ends, not dot-stuffed.
    pub data: MessageData,
    /// The Queue's probe of a hop it holds mail for: it is due, so it connects even
    /// while this actor's own back-off has not quite run out (the two clocks differ by
    /// a fraction of a second, and a probe refused for that waited a whole step more).
    pub probe: bool,
    /// A TLS report hermod made: the receiving domain's TLS policies do not hold it back
    /// (RFC 8460 §3), and its sessions are not counted.
    pub tls_report: bool,
    /// The egress pool it leaves from (`[egress]`); `None`: the system's own address.
    pub pool: Option<Arc<crate::outbound::egress::Pool>>,
}

/// One recipient of a [`Deliver`] job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecipient {
    /// Its place in the message's envelope, by which the report names it.
    pub index: RecipientIndex,
    /// `local@domain`, as sent in RCPT TO.
    pub address: String,
}

impl AsRef<str> for JobRecipient {
    fn as_ref(&self) -> &str {
        &self.address
    }
}

/// The result of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the next hop, with its reply.
    Delivered(Status),
    /// Temporary failure: retry later (counts as an attempt, so back-off doubles).
    Deferred(Status),
    /// Permanent failure: bounce.
    Failed(Status),
}

impl Outcome {
    pub(crate) fn from_reply(reply: &ServerReply) -> Self {
        let status = Status::from_reply(reply.code, &reply.text);
        if reply.is_positive() {
            Outcome::Delivered(status)
        } else if reply.is_transient() {
            Outcome::Deferred(status)
        } else {
            Outcome::Failed(status)
        }
    }

    /// The status: code and text.
    pub fn status(&self) -> &Status {
        match self {
            Outcome::Delivered(s) | Outcome::Deferred(s) | Outcome::Failed(s) => s,
        }
    }

    /// The reply or reason text.
    pub fn text(&self) -> &str {
        &self.status().text
    }
}

/// What happened to one [`Deliver`], recipient by recipient.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DeliveryReport {
    /// The message.
    pub id: QueueId,
    /// `host[ip]:port` of the server that answered, or the next hop if none did.
    pub relay: String,
    /// The TLS of the connection that carried the job (`TLSv1.3 TLS13_...`), if any.
    pub tls: Option<String>,
    /// One entry per recipient of the job, named by its index in the envelope.
    pub results: Vec<(RecipientIndex, Outcome)>,
    /// The job never reached a server of the hop (no connection at any address, or the
    /// hop is backing off): the Queue counts these to decide the hop is down and holds
    /// its mail until a probe gets through.
    pub unreachable: bool,
    /// The Delivery actor that ran the job (its [`QueueLink`](crate::outbound::delivery::QueueLink) serial), so the Queue can
    /// tell which jobs an actor still holds.
    pub serial: u64,
    /// Traffic-shaping actions a reply of this job triggered, for their delivery events.
    pub shaping: Vec<crate::outbound::shaping::Action>,
    /// The job was not tried: its site is suspended until then (unix seconds). Not an
    /// attempt; the Queue keeps the mail in its schedule until that time (or until the
    /// suspension is cleared).
    pub held_until: Option<u64>,
}

/// Settings shared by all Delivery actors, resolved once from `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// EHLO name.
    pub helo_name: String,
    /// Port for MX delivery.
    pub mx_port: u16,
    /// Connections at once per next hop.
    pub max_connections: usize,
    /// Messages per connection before it is closed.
    pub max_messages_per_connection: u32,
    /// Messages per second per next hop (0: unlimited).
    pub rate_per_second: u32,
    /// Recipients per transaction.
    pub max_recipients_per_transaction: usize,
    /// Connect and reply timeouts.
    pub timeouts: ClientTimeouts,
    /// TLS and AUTH towards each next hop.
    pub security: crate::outbound::tls::OutboundSecurity,
    /// The MTA-STS policies of the domains delivered to (`delivery.mta_sts`); `None`: not
    /// honoured.
    pub mta_sts: Option<Arc<crate::outbound::mta_sts::MtaSts>>,
    /// DANE's validating resolver (`delivery.dane`); `None`: DANE is not honoured.
    pub dane: Option<Arc<crate::outbound::dane::Dane>>,
    /// Where each session's TLS outcome is counted for the domains' TLS reports
    /// (`tls_report.enabled`); `None`: not counted.
    pub tls_reports: Option<Arc<crate::outbound::tls_report::TlsReports>>,
    /// How long an idle connection is kept for reuse.
    pub idle_timeout: Duration,
    /// Use BDAT (CHUNKING) when the next hop offers it.
    pub chunking: bool,
    /// Consecutive connection failures before the hop is considered down.
    pub dead_host_failures: u32,
    /// How long a hop that is down is left alone.
    pub dead_host_backoff: Duration,
    /// How long an actor with no work, no connection and no back-off lives on.
    pub retire_idle_after: Duration,
    /// Outbound connections at once, over all next hops.
    pub budget: Arc<ConnectionBudget>,
    /// Whose conversations are recorded (`log.transcript_peers`), and where.
    pub transcripts: Option<Arc<crate::store::transcripts::Transcripts>>,
    /// Sites, their budgets and the automation rules (`delivery.shaping_file`); `None`:
    /// each next hop is shaped alone by the settings above.
    pub shaping: Option<Arc<crate::outbound::shaping::Shaping>>,
}

impl DeliverySettings {
    /// The most time one job may take: DNS and connecting, then a few replies per
    /// transaction, each bounded by the reply timeout.
    pub(crate) fn job_budget(&self, recipients: usize) -> std::time::Duration {
        let transactions = recipients
            .div_ceil(self.max_recipients_per_transaction.max(1))
            .max(1) as u32;
        self.timeouts.connect * 2 + self.timeouts.command * (2 + 2 * transactions)
    }
}
