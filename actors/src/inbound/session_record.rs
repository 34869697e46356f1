//! What a Session keeps of itself while it runs ([`Seen`]): its refusals for the log (the
//! first of each reason logged at once, repeats counted and logged once at the end),
//! for a client in `log.transcript_peers`, its transcript, and, with tracing on, what
//! its messages' traces need.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::session_trace::SessionTrace;
use crate::core::id::QueueId;
use crate::core::message_trace::Receiving;
use crate::protocol::check::{CheckStage, Verdict};
use crate::protocol::reply::Reply;
use crate::protocol::session::{AcceptedMessage, ServerSession};
use crate::protocol::transcript::Transcript;

/// What a session keeps of itself: its refusals for the log, and its transcript when the
/// client is a listed peer.
pub(super) struct Seen {
    pub(super) refusals: RefusalLog,
    pub(super) transcript: Option<Transcript>,
    pub(super) trace: Option<SessionTrace>,
}

impl Seen {
    /// One turn of the protocol ends with `output` to write: its refusals are logged, the
    /// transcript records the replies.
    pub(super) fn turn(&mut self, protocol: &mut ServerSession, peer: SocketAddr, output: &[u8]) {
        self.refusals.record(protocol, peer);
        if let Some(trace) = self.trace.as_mut() {
            trace.turn(protocol);
        }
        if let Some(transcript) = self.transcript.as_mut() {
            transcript.server(output, SystemTime::now());
        }
    }

    /// The client's `bytes` were read (the transcript records them).
    pub(super) fn read(&mut self, bytes: &[u8]) {
        if let Some(transcript) = self.transcript.as_mut() {
            transcript.client(bytes, SystemTime::now());
        }
    }

    /// The policies gave `verdict` at `stage`, asked at `asked` (for the trace).
    pub(super) fn checked(
        &mut self,
        protocol: &ServerSession,
        stage: CheckStage,
        asked: SystemTime,
        verdict: &Verdict,
    ) {
        if let Some(trace) = self.trace.as_mut() {
            trace.checked(protocol, stage, asked, verdict);
        }
    }

    /// `message` is complete: its trace starts (when tracing is on).
    pub(super) fn receiving(
        &mut self,
        message: &mut AcceptedMessage,
        peer: SocketAddr,
        protocol: &ServerSession,
    ) -> Option<Receiving> {
        self.trace.as_mut()?.receive(message, peer, protocol)
    }

    /// Message `id` got `reply` at its end of data: its trace ends, a queued one gets the
    /// transcript. The reply goes on to the client.
    pub(super) fn queued(&mut self, id: QueueId, reply: Reply, trace: Option<Receiving>) -> Reply {
        if let Some(trace) = trace {
            trace.answered(reply.code, &reply);
        }
        if let Some(session) = self.trace.as_mut() {
            session.answered();
        }
        if let Some(transcript) = self.transcript.as_mut()
            && reply.code == 250
        {
            transcript.queue_ids.push(id);
        }
        reply
    }
}

/// The refusals of one session, for the log: the first of each reason is logged at once
/// (so "Relay access denied" can be found by client), repeats only counted and logged
/// once with their count when the session ends, so a client cannot write the log full.
#[derive(Default)]
pub(super) struct RefusalLog {
    /// Per reason: how many, and the first reply.
    seen: Vec<(&'static str, u64, Reply)>,
}

impl RefusalLog {
    /// Logs and counts the refusals the protocol wrote since the last call.
    pub(super) fn record(&mut self, protocol: &mut ServerSession, peer: SocketAddr) {
        for reply in protocol.take_refusals() {
            metrics::counter!("smtp_messages_rejected_total", "reason" => reply.reason)
                .increment(1);
            match self.seen.iter_mut().find(|(r, _, _)| *r == reply.reason) {
                Some((_, count, _)) => *count += 1,
                None => {
                    tracing::info!(client = %peer, reason = reply.reason, reply = %reply, "rejected");
                    self.seen.push((reply.reason, 1, reply));
                }
            }
        }
    }

    /// One line per reason that repeated, with its count.
    pub(super) fn finish(&self, peer: SocketAddr) {
        for (reason, count, reply) in self.seen.iter().filter(|(_, n, _)| *n > 1) {
            tracing::info!(client = %peer, reason, count, reply = %reply, "rejected repeatedly in one session");
        }
    }
}
