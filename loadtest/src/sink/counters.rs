//! What the sink counts, shared by every connection, and the snapshots it hands out.
//!
//! Plain relaxed atomics: each counter is independent and a snapshot that is a few
//! messages stale is fine, while a lock on the hot path would serialize connections.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::latency::Percentiles;

/// Live counters, one per event kind.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) recipients: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) tempfail_rcpt: AtomicU64,
    pub(crate) permfail_rcpt: AtomicU64,
    pub(crate) tempfail_data: AtomicU64,
    pub(crate) permfail_data: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) delays: AtomicU64,
    pub(crate) too_big: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) tls_handshakes: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
    pub(crate) auth_successes: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) store_failures: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) scripted_replies: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// A consistent-enough copy of every counter.
    pub(crate) fn snapshot(&self, active: u64, e2e: Percentiles) -> SinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkStats {
            received: get(&self.received),
            recipients: get(&self.recipients),
            bytes: get(&self.bytes),
            connections: get(&self.connections),
            active_connections: active,
            rejected_connections: get(&self.rejected_connections),
            tempfail_rcpt: get(&self.tempfail_rcpt),
            permfail_rcpt: get(&self.permfail_rcpt),
            tempfail_data: get(&self.tempfail_data),
            permfail_data: get(&self.permfail_data),
            disconnects: get(&self.disconnects),
            delays: get(&self.delays),
            too_big: get(&self.too_big),
            protocol_errors: get(&self.protocol_errors),
            tls_handshakes: get(&self.tls_handshakes),
            tls_failures: get(&self.tls_failures),
            auth_successes: get(&self.auth_successes),
            auth_failures: get(&self.auth_failures),
            store_failures: get(&self.store_failures),
            timeouts: get(&self.timeouts),
            scripted_replies: get(&self.scripted_replies),
            e2e_latency_ms: e2e,
        }
    }
}

/// A snapshot of what the sink has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SinkStats {
    /// Messages accepted (at least one recipient got a 2xx after the message).
    pub received: u64,
    /// Recipients accepted, summed over accepted messages.
    pub recipients: u64,
    /// Bytes of accepted messages, after dot-unstuffing.
    pub bytes: u64,
    /// Connections accepted (rejected ones not included).
    pub connections: u64,
    /// Connections open now.
    pub active_connections: u64,
    /// Connections refused with 421 past `max_connections` (injected).
    pub rejected_connections: u64,
    /// Recipients given a temporary failure at RCPT (injected or `tempfail*`).
    pub tempfail_rcpt: u64,
    /// Recipients given a permanent failure at RCPT (injected or `permfail*`).
    pub permfail_rcpt: u64,
    /// Temporary failures after the message (per recipient in LMTP).
    pub tempfail_data: u64,
    /// Permanent failures after the message (per recipient in LMTP).
    pub permfail_data: u64,
    /// Connections dropped instead of answering a message (injected).
    pub disconnects: u64,
    /// Replies held back by `--delay` (injected).
    pub delays: u64,
    /// Messages refused for passing the size limit.
    pub too_big: u64,
    /// Unknown commands, bad syntax and commands out of sequence.
    pub protocol_errors: u64,
    /// TLS sessions established (STARTTLS or implicit).
    pub tls_handshakes: u64,
    /// TLS handshakes that failed.
    pub tls_failures: u64,
    /// Successful AUTH exchanges.
    pub auth_successes: u64,
    /// Failed or cancelled AUTH exchanges.
    pub auth_failures: u64,
    /// Messages refused with 451 because the store could not write them.
    pub store_failures: u64,
    /// Connections closed for silence past the command timeout.
    pub timeouts: u64,
    /// Recipients answered by a `--reply` rule.
    pub scripted_replies: u64,
    /// End-to-end latency of messages that carried `X-Blaster-Sent`.
    pub e2e_latency_ms: Percentiles,
}

/// The final report of a sink, written by `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SinkSummary {
    /// Every counter, flattened into the top level.
    #[serde(flatten)]
    pub stats: SinkStats,
    /// Seconds from the first to the last accepted message (from start if fewer than two).
    pub elapsed_s: f64,
    /// Seconds the sink was up.
    pub uptime_s: f64,
    /// `received / elapsed_s`.
    pub rate_per_s: f64,
    /// When the first message was accepted, in seconds since the Unix epoch (0 if none).
    pub first_message_unix_s: f64,
    /// When the last message was accepted, in seconds since the Unix epoch (0 if none):
    /// the end of an end-to-end measurement, which the sink's own exit is not (it first
    /// gives the relay's idle connections their shutdown grace).
    pub last_message_unix_s: f64,
}
