//! Suspended destinations: the operator stops delivery to a recipient domain for a
//! while, with a reason (`hermod queue suspend example.com --for 2h --reason "…"`).
//! Mail for it waits in the schedule until the suspension ends, instead of being tried
//! (or even looked at) every tick; other recipients of the same message go on. A
//! suspension ends by itself at its time, or when it is resumed; the binary keeps the
//! suspensions across restarts and gives them back with [`Queue::suspend`].

use std::collections::HashMap;

use actix::prelude::*;

use super::{Queue, unix_now};
use crate::store::spool::Envelope;

/// Stop delivery to `domain` until `until` (unix seconds).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Suspend {
    /// The recipient domain (any case).
    pub domain: String,
    /// When delivery resumes by itself, unix seconds.
    pub until: u64,
    /// Why, for the listing and the log.
    pub reason: String,
}

/// End a suspension now; its mail is due at once. Answers whether there was one.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct Resume {
    /// The recipient domain.
    pub domain: String,
}

/// The suspensions in force.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Suspension>")]
pub struct ListSuspensions;

/// One suspended destination.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Suspension {
    /// The recipient domain.
    pub domain: String,
    /// When delivery resumes by itself, unix seconds.
    pub until: u64,
    /// Why.
    pub reason: String,
}

/// The suspensions, by lowercase domain.
#[derive(Debug, Default)]
pub(super) struct Suspensions(HashMap<String, Suspension>);

impl Suspensions {
    /// When delivery to `domain` resumes, if it is suspended at `now`.
    pub(super) fn until(&self, domain: &str, now: u64) -> Option<u64> {
        if self.0.is_empty() {
            return None;
        }
        self.0
            .get(domain)
            .map(|s| s.until)
            .filter(|&until| until > now)
    }
}

impl Handler<Suspend> for Queue {
    type Result = ();

    fn handle(&mut self, msg: Suspend, _ctx: &mut Context<Self>) {
        self.suspend(msg);
    }
}

impl Queue {
    /// When delivery to recipient `i` of `envelope` may go on, if the operator (its
    /// domain) or a shaping rule (the site of its next hop) holds it at `now`.
    pub(super) fn held_until(&self, envelope: &Envelope, i: usize, now: u64) -> Option<u64> {
        let operator = self.suspensions.until(&envelope.recipients[i].domain, now);
        let site = match &self.shaping {
            // The next hop is worked out only while some site is suspended.
            Some(shaping) if shaping.any_suspended() => {
                shaping.suspended_until(self.hop_of(envelope, i).name(), now)
            }
            _ => None,
        };
        operator.max(site)
    }

    /// Suspends a destination (also before the Queue starts: the suspensions kept by
    /// the last run).
    pub fn suspend(&mut self, msg: Suspend) {
        let domain = msg.domain.trim_end_matches('.').to_ascii_lowercase();
        tracing::warn!(domain = %domain, resumes_in_s = msg.until.saturating_sub(unix_now()), reason = %msg.reason,
            "destination suspended by the operator; its mail waits");
        metrics::counter!("queue_operator_actions_total", "action" => "suspend").increment(1);
        let replaced = self.suspensions.0.insert(
            domain.clone(),
            Suspension {
                domain,
                until: msg.until,
                reason: msg.reason,
            },
        );
        // Mail waiting for the old end is looked at again (and waits for the new one).
        if let Some(old) = replaced {
            self.wake_scheduled_at(old.until);
        }
    }
}

impl Handler<Resume> for Queue {
    type Result = bool;

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) -> bool {
        let domain = msg.domain.trim_end_matches('.').to_ascii_lowercase();
        let Some(ended) = self.suspensions.0.remove(&domain) else {
            return false;
        };
        tracing::info!(domain = %domain, "destination resumed by the operator");
        metrics::counter!("queue_operator_actions_total", "action" => "resume").increment(1);
        // Its mail was scheduled for the suspension's end: that is now. (Other mail due
        // at the same second is looked at early and goes back to wait.)
        self.wake_scheduled_at(ended.until);
        self.pump(ctx);
        true
    }
}

/// Suspensions of sites that ended before their time (cleared by an operator, here or
/// on another node): the mail scheduled for their planned ends is looked at now.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SitesResumed {
    /// The planned ends, unix seconds.
    pub untils: Vec<u64>,
}

impl Handler<SitesResumed> for Queue {
    type Result = ();

    fn handle(&mut self, msg: SitesResumed, ctx: &mut Context<Self>) {
        for until in msg.untils {
            self.wake_scheduled_at(until);
        }
        self.pump(ctx);
    }
}

impl Queue {
    /// Moves the messages scheduled for `at` to the ready list.
    fn wake_scheduled_at(&mut self, at: u64) {
        let waiting: Vec<_> = self
            .schedule
            .range((at, crate::core::id::QueueId(0))..)
            .take_while(|(due, _)| *due == at)
            .copied()
            .collect();
        for entry in waiting {
            self.schedule.remove(&entry);
            self.ready.push_back(entry.1);
        }
    }
}

impl Handler<ListSuspensions> for Queue {
    type Result = MessageResult<ListSuspensions>;

    fn handle(&mut self, _: ListSuspensions, _ctx: &mut Context<Self>) -> Self::Result {
        let now = unix_now();
        self.suspensions.0.retain(|_, s| s.until > now);
        let mut list: Vec<Suspension> = self.suspensions.0.values().cloned().collect();
        list.sort_by(|a, b| a.domain.cmp(&b.domain));
        MessageResult(list)
    }
}
