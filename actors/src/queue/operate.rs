//! The operator's actions on queued messages (`hermod queue flush|hold|release|delete|
//! bounce`, the admin API): each is applied to the message in memory and in the spool,
//! and its schedule entries follow. A message with a delivery under way (or waiting for
//! a down next hop) cannot be deleted or bounced until that delivery reports: it is
//! answered as busy, to be asked again.

use std::collections::HashSet;

use actix::prelude::*;

use super::schedule::next_due;
use super::{Queue, schedule, unix_now};
use crate::core::id::QueueId;
use crate::events::event::{Event, EventKind};
use crate::protocol::status::{EnhancedCode, Status};
use crate::store::spool::RecipientStatus;

/// What to do to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Retry its deferred recipients now.
    Flush,
    /// Never attempt it until released.
    Hold,
    /// Undo a hold: due now.
    Release,
    /// Remove it without a bounce.
    Delete,
    /// Fail every recipient not yet delivered, with a bounce to the sender.
    Bounce,
}

/// Apply `action` to messages `ids`.
#[derive(Message, Debug)]
#[rtype(result = "Operated")]
pub struct Operate {
    /// The messages.
    pub ids: Vec<QueueId>,
    /// The action.
    pub action: Action,
}

/// What became of each message.
#[derive(Debug, Default, Clone, MessageResponse, serde::Serialize)]
pub struct Operated {
    /// Done.
    pub done: Vec<String>,
    /// A delivery is under way: ask again once it has reported.
    pub busy: Vec<String>,
    /// Not in the queue.
    pub missing: Vec<String>,
}

/// The status a recipient bounced by the operator gets (RFC 3463 X.0.0, other).
const BOUNCED_BY_OPERATOR: EnhancedCode = EnhancedCode::new(5, 0, 0);

impl Handler<Operate> for Queue {
    type Result = ResponseActFuture<Self, Operated>;

    /// Answers once the changes are on disk: a hold that is acknowledged survives a
    /// crash.
    fn handle(&mut self, operate: Operate, ctx: &mut Context<Self>) -> Self::Result {
        let ids: HashSet<QueueId> = operate.ids.iter().copied().collect();
        // Their schedule and ready entries go (what stays queued is put back below); an
        // id found there is a message the Queue knows, put away until due.
        let mut waiting = HashSet::new();
        self.schedule.retain(|(_, id)| {
            let ours = ids.contains(id);
            if ours {
                waiting.insert(*id);
            }
            !ours
        });
        self.ready.retain(|id| {
            let ours = ids.contains(id);
            if ours {
                waiting.insert(*id);
            }
            !ours
        });
        // Mail parked for a down next hop is acted on at once: out of the hop's index
        // (what stays queued is parked again when it is dispatched).
        for health in self.hops.values_mut() {
            waiting.extend(health.unpark(&ids));
        }
        let started = std::time::Instant::now();
        let mut operated = Operated::default();
        for id in operate.ids {
            let list = match self.operate(id, operate.action, waiting.contains(&id)) {
                Some(true) => &mut operated.done,
                Some(false) => &mut operated.busy,
                None => &mut operated.missing,
            };
            list.push(id.to_string());
        }
        self.pump(ctx);
        super::handling::handled(&super::handling::OPERATE, started);
        let committer = self.committer.clone();
        Box::pin(
            async move {
                if let Err(e) = committer.commit().await {
                    tracing::error!(error = %e, "flushing the operator's queue changes failed");
                }
                operated
            }
            .into_actor(self),
        )
    }
}

impl Queue {
    /// Applies `action` to message `id` (`waiting`: it had a schedule or ready entry):
    /// `Some(true)` done, `Some(false)` busy, `None` not queued.
    fn operate(&mut self, id: QueueId, action: Action, waiting: bool) -> Option<bool> {
        if self.loading.contains(&id) {
            // Being read back to be dispatched: ask again in a moment.
            return Some(false);
        }
        if !self.messages.contains_key(&id) {
            // Put away until its retry, or held on disk: read it back.
            let envelope = match self.committer.read_now(move |spool| spool.envelope(id)) {
                Ok(Ok(Some(envelope))) => envelope,
                Ok(Ok(None)) => return None,
                Ok(Err(e)) | Err(e) => {
                    tracing::error!(queue_id = %id, error = %e, "cannot read a message's envelope from the spool");
                    if waiting {
                        self.ready.push_back(id);
                    }
                    return Some(false);
                }
            };
            if !waiting && !envelope.held {
                // On disk but not handed to the Queue yet (its Session is still being
                // answered): ask again in a moment.
                return Some(false);
            }
            self.evicted = self.evicted.saturating_sub(1);
            self.keep(id, envelope);
        }
        let now = unix_now();
        let message = self.messages.get_mut(&id)?;
        // Only a job under way (a connection sending it now) makes a message busy.
        let busy = message.jobs > 0;
        let event = self.committer.keeps_events().then(|| {
            let queue_id = id.to_string();
            Event::about(
                EventKind::AdminAction,
                &self.settings.hostname,
                &queue_id,
                &message.envelope,
            )
        });
        match action {
            Action::Flush => {
                schedule::flush(&mut message.envelope, now);
            }
            Action::Hold => message.envelope.held = true,
            Action::Release => message.envelope.held = false,
            Action::Delete | Action::Bounce if busy => {
                self.put_back(id);
                return Some(false);
            }
            Action::Delete => {
                self.messages.remove(&id);
                self.committer.remove(id);
                self.emit_admin(event, "delete");
                tracing::info!(queue_id = %id, "message deleted by the operator");
                metrics::counter!("queue_operator_actions_total", "action" => "delete")
                    .increment(1);
                return Some(true);
            }
            Action::Bounce => {
                self.bounce_by_operator(id, event);
                return Some(true);
            }
        }
        self.committer.update(id, &message.envelope);
        let name = match action {
            Action::Flush => "flush",
            Action::Hold => "hold",
            _ => "release",
        };
        if name != "flush" {
            self.emit_admin(event, name);
        }
        tracing::info!(queue_id = %id, action = name, "queue action by the operator");
        metrics::counter!("queue_operator_actions_total", "action" => name).increment(1);
        self.put_back(id);
        Some(true)
    }

    /// Fails every recipient of message `id` not yet final (5.0.0, "bounced by the
    /// operator"), so its sender gets a bounce, and removes it.
    fn bounce_by_operator(&mut self, id: QueueId, event: Option<Event>) {
        let Some(message) = self.messages.get_mut(&id) else {
            return;
        };
        let status = Status::local(BOUNCED_BY_OPERATOR, "bounced by the operator");
        for rcpt in &mut message.envelope.recipients {
            if matches!(
                rcpt.status,
                RecipientStatus::Pending | RecipientStatus::Deferred { .. }
            ) {
                rcpt.status = schedule::failed(&status);
            }
        }
        self.emit_admin(event, "bounce");
        tracing::info!(queue_id = %id, "message bounced by the operator");
        metrics::counter!("queue_operator_actions_total", "action" => "bounce").increment(1);
        self.finalize(id);
    }

    /// Puts a message that stays queued where it belongs: held messages wait on disk
    /// only, others in the ready list when due, else in the schedule.
    pub(super) fn put_back(&mut self, id: QueueId) {
        let Some(message) = self.messages.get(&id) else {
            return;
        };
        if message.jobs > 0 || message.in_flight.iter().any(|&f| f) {
            // Its delivery's report puts it back.
            return;
        }
        if message.envelope.held {
            self.evict(id);
            return;
        }
        match next_due(&message.envelope) {
            None => self.finalize(id),
            Some(at) if at <= unix_now() => self.ready.push_back(id),
            Some(at) => {
                self.schedule.insert((at, id));
                self.evict(id);
            }
        }
    }
}

/// Help texts of the metrics recorded in this file, for the Prometheus exporter.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "queue_operator_actions_total",
        "Queue actions by the operator, by action (flush, hold, release, delete, bounce, suspend, resume)."
    );
}
