//! How many messages wait for each kind of actor: actix does not expose a mailbox's
//! length, so hermod counts what it sends to an actor kind and what those actors take
//! (`actor_mailbox_messages{actor}`). A number that keeps growing names the actor that
//! is behind, before its backlog shows anywhere else.

/// A message to an actor of kind `actor` was sent.
pub fn sent(actor: &'static str) {
    metrics::gauge!("actor_mailbox_messages", "actor" => actor).increment(1.0);
}

/// An actor of kind `actor` took a message (or a sent one was lost with its actor).
pub fn taken(actor: &'static str) {
    metrics::gauge!("actor_mailbox_messages", "actor" => actor).decrement(1.0);
}

/// Help texts of the metrics recorded in this file.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "actor_mailbox_messages",
        "Messages sent to the actors of a kind and not yet taken: queue (stored messages and delivery reports), delivery (jobs), and each policy by name (questions not yet answered)."
    );
}
