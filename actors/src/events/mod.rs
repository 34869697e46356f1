//! Delivery events and what classifies them: each outcome (reception, delivery,
//! deferral, bounce, expiry, an operator's action, a DSN returned later) as one JSON
//! object (`event`), kept in the spool's event log until every destination has it, sent
//! by one EventSender actor per destination (`sender`) through the `destination` trait:
//! a signed webhook (`webhook`), a Redis stream (`redis_stream`) or a rotated JSON-lines
//! file (`json_file`). The bounce rules (`bounce_rules`) give each failure its class;
//! `returned_dsn` matches a DSN that comes back later to the message it is about.

pub mod bounce_rules;
pub mod destination;
pub mod event;
pub mod json_file;
pub mod redis_stream;
pub mod returned_dsn;
pub mod sender;
pub mod webhook;

/// Help texts of the events' metrics, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    sender::describe_metrics();
}
