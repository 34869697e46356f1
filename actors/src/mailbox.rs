//! How many messages wait for each kind of actor: actix does not expose a mailbox's
//! length, so hermod counts what it sends to an actor kind and what those actors take
//! (`actor_mailbox_messages{actor}`). A number that keeps growing names the actor that
//! is behind, before its backlog shows anywhere else.

use std::sync::OnceLock;

/// The mailbox count of one actor kind that every message passes (the Queue, the Delivery
/// actors), its gauge looked up once instead of for each of the several messages every
/// mail sends. The process's recorder must be installed before the first count, as
/// hermod does at start.
pub struct Mailbox {
    actor: &'static str,
    gauge: OnceLock<metrics::Gauge>,
}

impl Mailbox {
    /// The count of actors of kind `actor`.
    pub const fn new(actor: &'static str) -> Self {
        Mailbox {
            actor,
            gauge: OnceLock::new(),
        }
    }

    fn gauge(&self) -> &metrics::Gauge {
        self.gauge.get_or_init(|| gauge(self.actor))
    }

    /// A message to an actor of this kind was sent.
    pub fn sent(&self) {
        self.gauge().increment(1.0);
    }

    /// An actor of this kind took a message (or a sent one was lost with its actor).
    pub fn taken(&self) {
        self.gauge().decrement(1.0);
    }
}

/// The Queue's mailbox: stored messages, delivery reports.
pub static QUEUE: Mailbox = Mailbox::new("queue");
/// The Delivery actors' mailboxes: jobs.
pub static DELIVERY: Mailbox = Mailbox::new("delivery");

fn gauge(actor: &'static str) -> metrics::Gauge {
    metrics::gauge!("actor_mailbox_messages", "actor" => actor)
}

/// A message to an actor of kind `actor` was sent (a kind asked now and then, as a
/// policy is; see [`Mailbox`] for the kinds every message passes).
pub fn sent(actor: &'static str) {
    gauge(actor).increment(1.0);
}

/// An actor of kind `actor` took a message (or a sent one was lost with its actor).
pub fn taken(actor: &'static str) {
    gauge(actor).decrement(1.0);
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "actor_mailbox_messages",
        "Messages sent to the actors of a kind and not yet taken: queue (stored messages and delivery reports), delivery (jobs), and each policy by name (questions not yet answered)."
    );
}
